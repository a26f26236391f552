//! HTTP file serving.

pub mod conditional;
pub mod server;
pub mod wire;
