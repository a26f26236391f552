//! dialtone: a network boot appliance for IP phones.
//!
//! The library holds everything the `dialtone` binary runs: the configuration,
//! the DHCP protocol logic (pure, no I/O), the lease store, and the servers
//! that put them on sockets.

pub mod config;
pub mod dhcp;
pub mod glob;
pub mod leases;
pub mod units;

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
pub mod demo;
pub mod dns;
pub mod files;
pub mod lab;
pub mod net;
pub mod serve;
pub mod sys;
pub mod time;
