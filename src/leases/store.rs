//! The lease database: SQLite (bundled) in `state_dir/leases.sqlite`, one row per
//! address, readable with the `sqlite3` tool.
//!
//! Durability: WAL with `synchronous = FULL`, so a committed row survives a crash
//! of the process or the machine. The DHCP side hands its writes to one writer
//! thread, which commits everything queued since its last commit in a single
//! transaction and only then releases the replies waiting on it. Many concurrent
//! exchanges therefore share one fsync, and no ACK leaves before its lease is on disk.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, params};
use thiserror::Error;
use tokio::sync::oneshot;

use super::table::{Lease, LeaseState};
use crate::units::Mac;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("lease database {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "lease database {path} has schema version {version}, newer than this dialtone understands; use the dialtone that wrote it"
    )]
    NewerSchema { path: String, version: i64 },
    #[error(
        "lease database {path} is damaged: {detail}. dialtone does not start on a partial lease table, which would hand out addresses phones still hold. Salvage every readable lease into a new database with `dialtone leases --repair` (the damaged file is kept beside it), then start again"
    )]
    Damaged { path: String, detail: String },
    #[error("the lease writer has stopped")]
    WriterGone,
    #[error("lease write failed: {0}")]
    Write(String),
}

/// Schema version 2: one B-tree per write (the table is keyed by address
/// WITHOUT ROWID and has no secondary index; the MAC index lives in memory).
const SCHEMA_VERSION: i64 = 2;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    ip           TEXT PRIMARY KEY,
    mac          TEXT NOT NULL,
    state        TEXT NOT NULL,
    expires      INTEGER NOT NULL,
    hostname     TEXT,
    vendor_class TEXT,
    user_class   TEXT,
    interface    TEXT NOT NULL,
    updated      INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 1 (rowid table plus a MAC index) is rebuilt in place, keeping its
/// rows: renamed aside, `SCHEMA` created, rows copied, the old table dropped.
const MIGRATE_FROM_1_ASIDE: &str = "
DROP INDEX IF EXISTS leases_mac;
ALTER TABLE leases RENAME TO leases_v1;
";
const MIGRATE_FROM_1_COPY: &str = "
INSERT INTO leases SELECT ip, mac, state, expires, hostname, vendor_class, user_class, interface, updated FROM leases_v1;
DROP TABLE leases_v1;
";

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database for the server.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::StateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let damaged = |source: rusqlite::Error| match damage(&source) {
            Some(detail) => StoreError::Damaged {
                path: path.display().to_string(),
                detail,
            },
            None => StoreError::Sqlite {
                path: path.display().to_string(),
                source,
            },
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(damaged)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        // Freed space is zeroed: a page that leaves the table keeps no old
        // rows for `leases --repair` to mistake for live ones.
        conn.pragma_update(None, "secure_delete", true)
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        check_integrity(&conn, path)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        let has_table: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'leases'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(err)?
            > 0;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.display().to_string(),
                version,
            });
        }
        if has_table && version == SCHEMA_VERSION {
            check_columns(&conn, path)?;
        }
        let tx = conn.unchecked_transaction().map_err(err)?;
        let from_v1 = has_table && version < 2;
        if from_v1 {
            tx.execute_batch(MIGRATE_FROM_1_ASIDE).map_err(err)?;
        }
        tx.execute_batch(SCHEMA).map_err(err)?;
        if from_v1 {
            tx.execute_batch(MIGRATE_FROM_1_COPY).map_err(err)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing database read-only (for `dialtone leases`, while the
    /// server runs).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
            |source| StoreError::Sqlite {
                path: path.display().to_string(),
                source,
            },
        )?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Every stored lease. Rows that cannot be read are reported and skipped.
    pub fn load(&self) -> Result<Vec<Lease>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM leases"))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], Row::read).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(|e| match damage(&e) {
                Some(detail) => StoreError::Damaged {
                    path: self.path.display().to_string(),
                    detail,
                },
                None => self.err(e),
            })?;
            if let Some(l) = row.lease() {
                out.push(l);
            }
        }
        Ok(out)
    }

    /// Writes leases in one transaction.
    pub fn write<'a>(
        &mut self,
        leases: impl IntoIterator<Item = &'a Lease>,
    ) -> Result<(), StoreError> {
        let now = crate::now();
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO leases (ip, mac, state, expires, hostname, vendor_class, user_class, interface, updated)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT(ip) DO UPDATE SET mac = excluded.mac, state = excluded.state,
                       expires = excluded.expires, hostname = excluded.hostname,
                       vendor_class = excluded.vendor_class, user_class = excluded.user_class,
                       interface = excluded.interface, updated = excluded.updated",
                )
                .map_err(err)?;
            for l in leases {
                stmt.execute(params![
                    l.ip.to_string(),
                    l.mac.to_string(),
                    l.state.as_str(),
                    i64::try_from(l.expires).unwrap_or(i64::MAX),
                    l.hostname,
                    l.vendor_class,
                    l.user_class,
                    l.interface,
                    i64::try_from(now).unwrap_or(i64::MAX),
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}

/// The columns a lease is read from, in `Row::read`'s order.
pub(super) const COLUMNS: &str =
    "ip, mac, state, expires, hostname, vendor_class, user_class, interface";

/// One stored row as SQLite gives it, before it is checked.
pub(super) struct Row {
    ip: String,
    mac: String,
    state: String,
    expires: i64,
    hostname: Option<String>,
    vendor_class: Option<String>,
    user_class: Option<String>,
    interface: String,
}

impl Row {
    /// A row read from a page of the file (see `pages`).
    pub(super) fn from_page(p: super::pages::PageRow) -> Row {
        Row {
            ip: p.ip,
            mac: p.mac,
            state: p.state,
            expires: p.expires,
            hostname: p.hostname,
            vendor_class: p.vendor_class,
            user_class: p.user_class,
            interface: p.interface,
        }
    }

    pub(super) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            ip: r.get(0)?,
            mac: r.get(1)?,
            state: r.get(2)?,
            expires: r.get(3)?,
            hostname: r.get(4)?,
            vendor_class: r.get(5)?,
            user_class: r.get(6)?,
            interface: r.get(7)?,
        })
    }

    /// The lease, or `None` (logged) for a row whose address, MAC or state
    /// does not parse: one bad row never keeps the server from starting.
    pub(super) fn lease(self) -> Option<Lease> {
        match (
            self.ip.parse::<Ipv4Addr>(),
            self.mac.parse::<Mac>(),
            LeaseState::parse(&self.state),
        ) {
            (Ok(ip), Ok(mac), Some(state)) => Some(Lease {
                ip,
                mac,
                hostname: self.hostname,
                vendor_class: self.vendor_class,
                user_class: self.user_class,
                interface: self.interface,
                state,
                expires: u64::try_from(self.expires).unwrap_or(0),
            }),
            _ => {
                tracing::warn!(
                    target: "dialtone::leases",
                    ip = %self.ip.escape_debug(), mac = %self.mac.escape_debug(),
                    state = %self.state.escape_debug(), "skipping unreadable lease row"
                );
                None
            }
        }
    }
}

/// What an SQLite error says about the file, when it says it is damaged
/// (malformed pages, not a database at all).
pub(super) fn damage(e: &rusqlite::Error) -> Option<String> {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt) => Some(format!("malformed ({e})")),
        Some(ErrorCode::NotADatabase) => Some(format!("not an SQLite database ({e})")),
        _ => None,
    }
}

/// `PRAGMA quick_check`: every page and B-tree is read and checked (cheap
/// for a lease table). Anything but "ok" is damage.
fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let damaged = |detail: String| StoreError::Damaged {
        path: path.display().to_string(),
        detail,
    };
    let mut problems: Vec<String> = Vec::new();
    let outcome = conn.prepare("PRAGMA quick_check(5)").and_then(|mut stmt| {
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for r in rows {
            problems.push(r?);
        }
        Ok(())
    });
    if let Err(e) = outcome {
        return Err(match damage(&e) {
            Some(detail) => damaged(detail),
            None => StoreError::Sqlite {
                path: path.display().to_string(),
                source: e,
            },
        });
    }
    if problems != ["ok"] {
        return Err(damaged(format!("integrity check: {}", problems.join("; "))));
    }
    Ok(())
}

/// The leases table must have the columns this version reads.
fn check_columns(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let have: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('leases')")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        })?;
    let missing: Vec<&str> = COLUMNS
        .split(", ")
        .filter(|c| !have.iter().any(|h| h == c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(StoreError::Damaged {
        path: path.display().to_string(),
        detail: format!(
            "the leases table lacks the columns {} (it has {})",
            missing.join(", "),
            have.join(", ")
        ),
    })
}

/// What to do once a job's leases are committed (or the commit failed).
type Then = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Job {
    leases: Vec<Lease>,
    then: Then,
}

/// A commit that ends less than this before the next lease arrives means
/// the writer is under load.
const BUSY: Duration = Duration::from_millis(5);
/// Under load, how long the writer gathers leases for one commit.
const GATHER: Duration = Duration::from_millis(1);
/// At most this many jobs in one commit.
const BATCH: usize = 1024;

/// Failed commits (a full disk, a read-only state folder) are logged once a
/// minute with the count in between, and their end once: the phones whose
/// ACKs wait on them retry, and the log must not fill the disk further.
#[derive(Default)]
struct Failing {
    since: Option<Instant>,
    warned: Option<Instant>,
    quiet: u64,
    total: u64,
}

const FAILING_QUIET: Duration = Duration::from_secs(60);

impl Failing {
    fn after(&mut self, result: &Result<(), String>, leases: usize, now: Instant) {
        match result {
            Err(e) => {
                self.since.get_or_insert(now);
                self.total += 1;
                if self
                    .warned
                    .is_none_or(|w| now.duration_since(w) >= FAILING_QUIET)
                {
                    tracing::error!(target: "dialtone::leases", error = %e, leases, failed_quietly = self.quiet, "lease commit failed; the replies waiting on it are not sent (the phones ask again). Said once a minute while it lasts");
                    self.warned = Some(now);
                    self.quiet = 0;
                } else {
                    self.quiet += 1;
                }
            }
            Ok(()) => {
                if let Some(since) = self.since.take() {
                    tracing::warn!(target: "dialtone::leases", failed = self.total, seconds = since.elapsed().as_secs(), "lease commits succeed again");
                    *self = Failing::default();
                }
            }
        }
    }
}

/// The writer thread's handle; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread that owns `store`.
    pub fn spawn(mut store: Store) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("lease-writer".into())
            .spawn(move || {
                let mut last_commit: Option<Instant> = None;
                let mut failing = Failing::default();
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        jobs.push(more);
                    }
                    // Group commit: under load (the last commit just ended)
                    // more exchanges are on their way, so wait a moment for
                    // them and pay one fsync for all. A lone phone's lease is
                    // committed at once.
                    let busy = last_commit.is_some_and(|t| t.elapsed() < BUSY);
                    if busy && jobs.len() < BATCH {
                        let deadline = Instant::now() + GATHER;
                        while jobs.len() < BATCH {
                            let left = deadline.saturating_duration_since(Instant::now());
                            match rx.recv_timeout(left) {
                                Ok(more) => jobs.push(more),
                                Err(_) => break,
                            }
                        }
                    }
                    let all: Vec<&Lease> = jobs.iter().flat_map(|j| j.leases.iter()).collect();
                    let began = Instant::now();
                    let result = store.write(all.iter().copied()).map_err(|e| e.to_string());
                    crate::stats::commit_took(
                        u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
                    );
                    failing.after(&result, all.len(), Instant::now());
                    if !all.is_empty() {
                        crate::stats::commit_failing(result.as_ref().err().cloned());
                    }
                    drop(all);
                    for j in jobs {
                        (j.then)(result.clone().map_err(StoreError::Write));
                    }
                    last_commit = Some(Instant::now());
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the lease writer"));
        Writer { tx }
    }

    /// Commits `leases`, then runs `then` on the writer thread with the
    /// outcome. `then` must be quick (it delays the next commit): sending the
    /// reply that waited for these leases is what it is for.
    pub fn persist_then(
        &self,
        leases: Vec<Lease>,
        then: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) {
        if let Err(mpsc::SendError(job)) = self.tx.send(Job {
            leases,
            then: Box::new(then),
        }) {
            (job.then)(Err(StoreError::WriterGone));
        }
    }

    /// Returns once `leases` are committed to disk.
    pub async fn persist(&self, leases: Vec<Lease>) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.persist_then(leases, move |r| {
            let _ = done.send(r);
        });
        wait.await.unwrap_or(Err(StoreError::WriterGone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(n: u8) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 0, 0, n),
            mac: Mac([0, 0x90, 0x8f, 0, 0, n]),
            hostname: Some(format!("phone{n}")),
            vendor_class: Some("SIP100".into()),
            user_class: None,
            interface: "eth0".into(),
            state: LeaseState::Bound,
            expires: 1000 + u64::from(n),
        }
    }

    #[tokio::test]
    async fn writes_are_durable_and_reload() {
        let dir = std::env::temp_dir().join(format!("dialtone-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("leases.sqlite");
        let w = Writer::spawn(Store::open(&path).unwrap());
        let mut handles = Vec::new();
        for n in 1..=50u8 {
            let w = w.clone();
            handles.push(tokio::spawn(async move { w.persist(vec![lease(n)]).await }));
        }
        for h in handles {
            h.await.unwrap().unwrap();
        }
        // Update one row: same address, new owner.
        let mut l = lease(7);
        l.mac = Mac([1, 2, 3, 4, 5, 6]);
        w.persist(vec![l.clone()]).await.unwrap();
        let ro = Store::open_read_only(&path).unwrap();
        let mut all = ro.load().unwrap();
        all.sort_by_key(|l| l.ip);
        assert_eq!(all.len(), 50);
        assert_eq!(all[6], l);
        assert_eq!(all[0], lease(1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn version_1_database_is_migrated_and_newer_is_refused() {
        let dir = std::env::temp_dir().join(format!("dialtone-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("leases.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE leases (ip TEXT PRIMARY KEY, mac TEXT NOT NULL, state TEXT NOT NULL,
                   expires INTEGER NOT NULL, hostname TEXT, vendor_class TEXT, user_class TEXT,
                   interface TEXT NOT NULL, updated INTEGER NOT NULL);
                 CREATE INDEX leases_mac ON leases(mac);
                 INSERT INTO leases VALUES ('10.0.0.9', '00:90:8f:00:00:09', 'bound', 1009,
                   'phone9', 'SIP100', NULL, 'eth0', 1);",
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].ip, Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(loaded[0].hostname.as_deref(), Some("phone9"));
        store.write([&lease(3)]).unwrap();
        assert_eq!(store.load().unwrap().len(), 2);
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // Opening again is a no-op.
        drop(store);
        assert_eq!(Store::open(&path).unwrap().load().unwrap().len(), 2);
        // A database from a newer dialtone is refused, not rewritten.
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Store::open(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("schema version 99"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
