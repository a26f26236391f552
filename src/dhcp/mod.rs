//! DHCPv4: option encodings, class selection, the exchange logic and the server.

pub mod client;
pub mod options;
pub mod packet;
