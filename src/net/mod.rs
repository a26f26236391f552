//! Operating-system networking helpers: interface addresses.

pub mod ifaces;
