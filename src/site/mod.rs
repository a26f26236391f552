//! The whole site at a glance: the status page's content (phones with their
//! boot lines, transfers, leases, call servers, the service), the metrics
//! and the health answer, built from what `serve` holds. Reads only copies
//! and locks no request waits on: the lease table as DHCP last published it,
//! the phones seen, the activity collector, the transfers in progress.

pub mod activity;
pub mod boot;
pub mod metrics;
pub mod syslog;
pub mod view;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use crate::config::Config;
use crate::dhcp::server::Dhcp;
use crate::dns::server::SharedZone;
use crate::files::transfers::{Live, Transfer};
use crate::inventory::seen::Seen;
use crate::net::ready::Readiness;

/// The service itself: where its configuration came from and how the last
/// reload went.
#[derive(Debug, Default)]
pub struct Service {
    pub source: Option<PathBuf>,
    /// Unix seconds.
    pub started: u64,
    pub loaded_at: AtomicU64,
    /// The last reload's result (None before any).
    pub last_reload: RwLock<Option<String>>,
}

impl Service {
    pub fn reloaded(&self, result: String) {
        self.loaded_at.store(crate::now(), Ordering::Relaxed);
        if let Ok(mut r) = self.last_reload.write() {
            *r = Some(result);
        }
    }

    pub fn refused(&self, result: String) {
        if let Ok(mut r) = self.last_reload.write() {
            *r = Some(result);
        }
    }
}

/// Transfers counted by protocol, family and outcome, and bytes sent by
/// protocol (fed by the transfer observer, not by the transfers' tasks).
#[derive(Debug, Default)]
pub struct TransferCounts {
    pub by: Mutex<HashMap<(&'static str, &'static str, &'static str), u64>>,
    pub bytes: Mutex<HashMap<&'static str, u64>>,
}

impl TransferCounts {
    pub fn count(&self, t: &Transfer, family: &'static str) {
        if let Ok(mut m) = self.by.lock() {
            *m.entry((t.protocol, family, t.outcome.as_str()))
                .or_default() += 1;
        }
        if let Ok(mut m) = self.bytes.lock() {
            *m.entry(t.protocol).or_default() += t.sent;
        }
    }
}

/// Everything the page, `/metrics` and `/health` read.
pub struct Site {
    pub live: watch::Receiver<Arc<Config>>,
    pub seen: Arc<Seen>,
    pub dhcp: Arc<Dhcp>,
    pub activity: Arc<activity::Activity>,
    pub transfers: Arc<Live>,
    pub zone: watch::Receiver<Option<SharedZone>>,
    pub ready: Arc<Readiness>,
    pub logs: Arc<syslog::Logs>,
    pub service: Arc<Service>,
    pub counts: Arc<TransferCounts>,
}

impl Site {
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.live.borrow())
    }

    /// Whether dialtone serves: every configured place bound and the lease
    /// store taking writes; else why not.
    pub async fn health(&self) -> Result<(), String> {
        let waiting: Vec<String> = self
            .ready
            .snapshot()
            .into_iter()
            .filter_map(|(service, place, slot)| match slot {
                crate::net::ready::Slot::Bound => None,
                crate::net::ready::Slot::Waiting(why) => {
                    Some(format!("{service} on {place}: {why}"))
                }
            })
            .collect();
        if !waiting.is_empty() {
            return Err(format!("not serving: {}", waiting.join("; ")));
        }
        if let Some(e) = crate::stats::commit_error() {
            return Err(format!(
                "the last lease commit failed ({e}); acknowledgements are held back"
            ));
        }
        // The state folder takes a write and an fsync now.
        let probe = self.config().server.state_dir.join(".health-probe");
        let wrote = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            tokio::task::spawn_blocking(move || {
                crate::statefile::replace(&probe, crate::now().to_string().as_bytes(), 0o600)
            }),
        )
        .await;
        match wrote {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(format!(
                "the state folder does not take writes ({e}); lease commits would fail"
            )),
            _ => Err("the state folder did not take a write within 2 s".into()),
        }
    }
}
