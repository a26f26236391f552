//! The voice VLAN's DNS: the zone (pure), the server on the interfaces, and
//! the health checks of call-server switchover pairs.

pub mod health;
pub mod reply;
pub mod server;
pub mod tcp;
pub mod udp;
pub mod zone;
