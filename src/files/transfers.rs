//! What happened to each transfer: one tracing event per transfer (both
//! protocols) and counters per file, kept by `dialtone serve` and written to
//! `file-counters.json` in the state directory for `dialtone files`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::resolve::{Client, Miss};
use crate::statefile::JsonState;
use crate::units::Mac;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// An HTTP range or a HEAD: what was asked was sent, not the whole file.
    Partial,
    /// Not modified (HTTP 304).
    NotModified,
    AbortedByClient,
    Timeout,
    NotFound,
    Refused,
    /// A private file asked for by another client.
    Private,
    /// The transfer limit was reached.
    Busy,
    /// A MAC-named file asked for by a source that is sweeping MACs: not
    /// looked up (the sweep has its own warning and counter, so each of
    /// these is a debug event).
    Slowed,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Partial => "partial",
            Outcome::NotModified => "not modified",
            Outcome::AbortedByClient => "aborted by client",
            Outcome::Timeout => "timeout",
            Outcome::NotFound => "not found",
            Outcome::Refused => "refused",
            Outcome::Private => "private",
            Outcome::Busy => "busy",
            Outcome::Slowed => "slowed",
            Outcome::Failed => "failed",
        }
    }
}

/// One transfer, filled in as it goes and reported once with `Counters::finish`.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub protocol: &'static str,
    pub client: Ipv4Addr,
    pub mac: Option<Mac>,
    /// The name as asked for.
    pub requested: String,
    /// The file in the tree it resolved to, if any.
    pub file: Option<String>,
    pub sent: u64,
    pub total: Option<u64>,
    pub started: Instant,
    pub outcome: Outcome,
    /// Protocol details (blksize, window; HTTP status and range).
    pub detail: String,
    /// The client's User-Agent (HTTP), which names its model and firmware.
    pub agent: Option<String>,
}

impl Transfer {
    /// A transfer that has just been asked for; `Failed` until told otherwise.
    pub fn begin(protocol: &'static str, client: &Client, requested: &str) -> Transfer {
        Transfer {
            protocol,
            client: client.ip,
            mac: client.mac,
            requested: requested.to_string(),
            file: None,
            sent: 0,
            total: None,
            started: Instant::now(),
            outcome: Outcome::Failed,
            detail: String::new(),
            agent: None,
        }
    }

    /// Records why the resolver found nothing to send.
    pub fn missed(&mut self, miss: &Miss) {
        (self.outcome, self.detail) = match miss {
            Miss::NotFound => (Outcome::NotFound, String::new()),
            Miss::Private { path, owner } => {
                (Outcome::Private, format!("{path} belongs to {owner}"))
            }
            Miss::Refused(why) => (Outcome::Refused, why.clone()),
            Miss::Slowed => (
                Outcome::Slowed,
                "too many misses on MAC-named files from this address".into(),
            ),
            Miss::Io(e) => (Outcome::Failed, e.to_string()),
        };
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileCounters {
    pub requests: u64,
    pub complete: u64,
    pub partial: u64,
    pub not_modified: u64,
    pub aborted: u64,
    pub timeouts: u64,
    pub refused: u64,
    pub bytes: u64,
}

/// Told of every transfer as it ends (the phones-seen record).
pub type Observer = Box<dyn Fn(&Transfer) + Send + Sync>;

/// Counters per file (by the path in the tree; misses by the name asked).
#[derive(Default)]
pub struct Counters {
    files: JsonState<BTreeMap<String, FileCounters>>,
    observer: Option<Observer>,
}

impl Counters {
    pub fn with_observer(observer: Observer) -> Counters {
        Counters {
            files: JsonState::default(),
            observer: Some(observer),
        }
    }

    /// Logs the transfer (one event) and counts it.
    pub fn finish(&self, t: &Transfer) {
        log(t);
        if t.protocol.starts_with("tftp")
            && matches!(
                t.outcome,
                Outcome::NotFound | Outcome::Refused | Outcome::Private | Outcome::Busy
            )
        {
            crate::counters::bump(crate::counters::Counter::TftpRefused);
        }
        if let Some(o) = &self.observer {
            o(t);
        }
        let key = t.file.as_deref().unwrap_or(&t.requested).to_string();
        self.files.update(|files| {
            let c = files.entry(key).or_default();
            c.requests += 1;
            c.bytes += t.sent;
            match t.outcome {
                Outcome::Complete => c.complete += 1,
                Outcome::Partial => c.partial += 1,
                Outcome::NotModified => c.not_modified += 1,
                Outcome::AbortedByClient => c.aborted += 1,
                Outcome::Timeout => c.timeouts += 1,
                Outcome::Refused | Outcome::Private | Outcome::Slowed => c.refused += 1,
                Outcome::NotFound | Outcome::Busy | Outcome::Failed => {}
            }
        });
    }

    /// Writes the counters to `path` (atomically) if they changed since the
    /// last write.
    pub fn save_if_changed(&self, path: &Path) -> std::io::Result<()> {
        self.files.save_if_changed(path)
    }
}

/// Transfers in progress (TFTP reads, HTTP bodies), for live progress
/// (`dialtone recover`, the status page).
#[derive(Default)]
pub struct Live {
    running: Mutex<BTreeMap<u64, Arc<InFlight>>>,
    next: AtomicU64,
}

/// One transfer in progress.
#[derive(Debug)]
pub struct InFlight {
    pub protocol: &'static str,
    pub client: Ipv4Addr,
    pub mac: Option<Mac>,
    /// The file in the tree.
    pub file: String,
    pub total: u64,
    pub started: Instant,
    sent: AtomicU64,
}

impl InFlight {
    /// Bytes acknowledged so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn set_sent(&self, bytes: u64) {
        self.sent.store(bytes, Ordering::Relaxed);
    }
}

/// A transfer listed in `Live` until dropped.
pub struct Tracked {
    live: Arc<Live>,
    id: u64,
    pub progress: Arc<InFlight>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut r) = self.live.running.lock() {
            r.remove(&self.id);
        }
    }
}

impl Live {
    /// Lists `t` (its file found, `total` bytes to send) while the result lives.
    pub fn track(self: &Arc<Live>, t: &Transfer, total: u64) -> Tracked {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let progress = Arc::new(InFlight {
            protocol: t.protocol,
            client: t.client,
            mac: t.mac,
            file: t.file.clone().unwrap_or_else(|| t.requested.clone()),
            total,
            started: t.started,
            sent: AtomicU64::new(0),
        });
        if let Ok(mut r) = self.running.lock() {
            r.insert(id, Arc::clone(&progress));
        }
        Tracked {
            live: Arc::clone(self),
            id,
            progress,
        }
    }

    /// The transfers in progress, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<InFlight>> {
        self.running
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }
}

pub fn counters_path(state_dir: &Path) -> PathBuf {
    state_dir.join("file-counters.json")
}

fn log(t: &Transfer) {
    let mac = t.mac.map(|m| m.to_string()).unwrap_or_default();
    let file = t.file.as_deref().unwrap_or("");
    let total = t.total.map(|n| n.to_string()).unwrap_or_default();
    let ms = t.started.elapsed().as_millis() as u64;
    macro_rules! ev {
        ($lvl:expr) => {
            tracing::event!(target: "dialtone::files", $lvl,
                protocol = t.protocol, client = %t.client, mac, requested = %t.requested, file,
                sent = t.sent, total, duration_ms = ms, outcome = t.outcome.as_str(),
                detail = %t.detail, "file transfer")
        };
    }
    match t.outcome {
        Outcome::Private | Outcome::Refused | Outcome::Busy | Outcome::Failed => {
            ev!(tracing::Level::WARN)
        }
        Outcome::Slowed => ev!(tracing::Level::DEBUG),
        _ => ev!(tracing::Level::INFO),
    }
}
