//! DHCPv4: option encodings, class selection, the exchange logic and the server.

pub mod classes;
pub mod client;
pub mod clock;
pub mod engine;
pub mod flood;
pub mod options;
pub mod packet;
pub mod ratelimit;
pub mod server;
pub mod show;
