//! dialtone: a network boot appliance for IP phones.
//!
//! The library holds everything the `dialtone` binary runs: the configuration,
//! the DHCP protocol logic (pure, no I/O), the lease store, and the servers
//! that put them on sockets.

pub mod config;
pub mod dhcp;
pub mod glob;
pub mod units;
