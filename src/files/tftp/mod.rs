//! TFTP (RFC 1350, 2347-2349, 7440), read-only.

pub mod pace;
pub mod packet;
pub mod server;
pub mod window;
