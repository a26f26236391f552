//! Leases: the in-memory table the DHCP logic decides with, and the SQLite
//! store that makes every acknowledged lease durable before its ACK leaves.

pub mod pages;
pub mod repair;
pub mod store;
pub mod table;

pub use table::{Lease, LeaseState, LeaseTable};
