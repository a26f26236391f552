//! Firmware and configuration files over TFTP and HTTP from one tree.

pub mod owners;
pub mod path;
pub mod resolve;
pub mod tftp;
