//! Operating-system networking helpers: interface addresses and sockets
//! bound to an interface.

pub mod ifaces;
pub mod places;
pub mod ready;
pub mod sockets;
pub mod sources;
