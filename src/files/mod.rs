//! Firmware and configuration files over TFTP and HTTP from one tree.

pub mod http;
pub mod owners;
pub mod path;
pub mod resolve;
pub mod sweep;
pub mod tftp;
pub mod transfers;
pub mod upload;

use std::sync::Arc;

/// The file services built from one configuration's `[files]` section (and
/// the inventory its generated files come from). A reload builds new ones;
/// a transfer running then finishes with the ones it started with.
#[derive(Clone)]
pub struct Services {
    pub tftp: Arc<tftp::server::Tftp>,
    pub http: Arc<http::server::Http>,
}

/// The file services of the live configuration (None: no `[files]`).
pub type LiveServices = tokio::sync::watch::Receiver<Option<Services>>;
