//! Operating-system networking helpers: interface addresses and ARP entries.

pub mod arp;
pub mod ifaces;
