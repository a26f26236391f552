//! Firmware and configuration files over TFTP and HTTP from one tree.

pub mod http;
pub mod owners;
pub mod path;
pub mod resolve;
pub mod tftp;
pub mod transfers;
