//! The only module with `unsafe` code: kernel calls that no safe crate wraps.
//! Each call is one system call on plain, zero-initialised C structures that
//! nothing retains after it returns; each file says why it needs it.

pub mod arp;
pub mod cache;
pub mod clock;
pub mod ready;
