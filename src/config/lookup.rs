//! Where a host name in an option value gets its addresses when `[dns]`
//! does not define it: the pass is injected, so `Config::parse`, the
//! engine's tests, fuzzing and `dialtone check --offline` never ask the
//! host's resolver, and `serve` and `check` do.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

/// Addresses for a name `[dns]` does not define.
pub trait Lookup {
    /// The name's IPv4 addresses, or why there are none (said after the
    /// name in the error: "`name` {why}").
    fn ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>, String>;
}

/// The system resolver (`/etc/hosts`, then DNS as the host is set up).
pub struct System;

impl Lookup for System {
    fn ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>, String> {
        let found = (name, 0u16)
            .to_socket_addrs()
            .map_err(|e| format!("cannot be resolved: {e}"))?;
        Ok(found
            .filter_map(|a| match a.ip() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect())
    }
}

/// Nothing outside the configuration: a name `[dns]` does not define is
/// an error.
pub struct Offline;

impl Lookup for Offline {
    fn ipv4(&self, _: &str) -> Result<Vec<Ipv4Addr>, String> {
        Err("is not defined in [dns] (names are not resolved here)".into())
    }
}

/// A fixed table, for tests.
pub struct Table(pub Vec<(String, Vec<Ipv4Addr>)>);

impl Lookup for Table {
    fn ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>, String> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.trim_end_matches('.')))
            .map(|(_, a)| a.clone())
            .ok_or_else(|| "is not in the table".into())
    }
}
