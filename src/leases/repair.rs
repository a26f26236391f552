//! Salvaging a damaged lease database (`dialtone leases --repair`).
//!
//! The server refuses to start on a damaged database (see `Store::open`):
//! starting with an empty or partial table would offer addresses that phones
//! still hold. Repair reads every lease that can still be read, four ways,
//! because one damaged page breaks a scan at that page but not the rest:
//! a scan in key order and one in reverse (each stops at the first unreadable
//! page, so together they reach both sides of it), a lookup of every address
//! the configuration could have leased (each lookup walks only its own path
//! from the root, so it fails only when that path is damaged), and last the
//! rows in the cells of every leaf page of the file and its log (`pages`),
//! which finds the rows whose path from the root is gone (a file cut short
//! loses interior pages). A row is only ever copied, never guessed: a lease
//! either comes out whole or not at all. An address whose lookup hits damage may have been leased to a
//! phone that still holds it: it goes into the new database as declined
//! (held out of the pool) until the longest lease could have run out, so it
//! is never offered to a second phone. The damaged file (with its `-wal` and
//! `-shm`) is kept beside the new one as `leases.sqlite.damaged-<unix time>`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::pages;
use super::store::{COLUMNS, Row, Store, StoreError, damage};
use super::table::{Lease, LeaseState};
use crate::units::Mac;

/// What a repair did.
#[derive(Debug)]
pub struct Repaired {
    /// The leases written into the new database.
    pub leases: Vec<Lease>,
    /// Rows read by the two scans, by the address lookups beyond those, and
    /// from the pages that no path from the root reaches.
    pub scanned: usize,
    pub looked_up: usize,
    pub from_pages: usize,
    /// Addresses whose lookup hit damage: held out of the pool until
    /// `held_until`.
    pub unreadable: usize,
    pub held_until: u64,
    /// The first problem met, as SQLite words it.
    pub first_problem: Option<String>,
    /// Where the damaged database was moved.
    pub kept_as: PathBuf,
}

/// Reads every lease that can be read from the database at `path`, scanning
/// and then looking up `candidates` (the addresses the configuration can
/// lease). Never fails on damage; fails only when the file cannot be opened.
pub fn salvage(
    path: &Path,
    candidates: impl IntoIterator<Item = Ipv4Addr>,
) -> Result<(BTreeMap<Ipv4Addr, Lease>, Salvage), StoreError> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
            StoreError::Sqlite {
                path: path.display().to_string(),
                source,
            }
        })?;
    // A file cut short (a full disk, a bad copy) says it has more pages than
    // it has; SQLite refuses such a file outright unless the schema is
    // writable, and then reads the pages that are there. This connection is
    // read-only all the same.
    let _ = conn.pragma_update(None, "writable_schema", true);
    let mut found: BTreeMap<Ipv4Addr, Lease> = BTreeMap::new();
    let mut s = Salvage::default();
    let mut unreadable = Vec::new();
    for order in ["ASC", "DESC"] {
        let sql = format!("SELECT {COLUMNS} FROM leases ORDER BY ip {order}");
        if let Err(e) = scan(&conn, &sql, [], &mut found, &mut s.scanned) {
            s.problem(e);
        }
    }
    let sql = format!("SELECT {COLUMNS} FROM leases WHERE ip = ?1");
    for ip in candidates {
        if found.contains_key(&ip) {
            continue;
        }
        let mut n = 0;
        match scan(&conn, &sql, [ip.to_string()], &mut found, &mut n) {
            Ok(()) => s.looked_up += n,
            Err(e) => {
                unreadable.push(ip);
                s.problem(e);
            }
        }
    }
    // Rows no path reaches, read from the pages themselves: for each
    // address the newest version (by its `updated` time) wins.
    let db = std::fs::read(path).unwrap_or_default();
    let wal = std::fs::read(format!("{}-wal", path.display())).unwrap_or_default();
    let mut newest: BTreeMap<Ipv4Addr, (i64, Lease)> = BTreeMap::new();
    for row in pages::rows(&db, &wal) {
        let updated = row.updated;
        if let Some(l) = Row::from_page(row).lease()
            && !found.contains_key(&l.ip)
            && newest.get(&l.ip).is_none_or(|(u, _)| updated >= *u)
        {
            newest.insert(l.ip, (updated, l));
        }
    }
    s.from_pages = newest.len();
    found.extend(newest.into_iter().map(|(ip, (_, l))| (ip, l)));
    unreadable.retain(|ip| !found.contains_key(ip));
    s.unreadable = unreadable;
    Ok((found, s))
}

/// Counts of a salvage.
#[derive(Debug, Default)]
pub struct Salvage {
    pub scanned: usize,
    pub looked_up: usize,
    /// Rows read from the pages that no path from the root reaches.
    pub from_pages: usize,
    pub unreadable: Vec<Ipv4Addr>,
    pub first_problem: Option<String>,
}

impl Salvage {
    fn problem(&mut self, e: rusqlite::Error) {
        if self.first_problem.is_none() {
            self.first_problem = Some(damage(&e).unwrap_or_else(|| e.to_string()));
        }
    }
}

/// Runs `sql`, adding each readable lease to `found` until the first error.
fn scan<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    found: &mut BTreeMap<Ipv4Addr, Lease>,
    count: &mut usize,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, Row::read)?;
    for row in rows {
        if let Some(l) = row?.lease()
            && !found.contains_key(&l.ip)
        {
            found.insert(l.ip, l);
            *count += 1;
        }
    }
    Ok(())
}

/// Whether the database at `path` is damaged: `Some(why)` when `Store::open`
/// would refuse it as damaged.
pub fn damaged(path: &Path) -> Result<Option<String>, StoreError> {
    match Store::open(path) {
        Ok(_) => Ok(None),
        Err(StoreError::Damaged { detail, .. }) => Ok(Some(detail)),
        Err(e) => Err(e),
    }
}

/// Salvages the damaged database at `path` into a new one in its place,
/// keeping the damaged file beside it. `now` names the kept file;
/// unreadable addresses are held out of the pool until `now + hold`.
pub fn repair(
    path: &Path,
    candidates: impl IntoIterator<Item = Ipv4Addr>,
    now: u64,
    hold: u64,
) -> Result<Repaired, StoreError> {
    let (found, s) = salvage(path, candidates)?;
    let kept_as = PathBuf::from(format!("{}.damaged-{now}", path.display()));
    let io = |source: std::io::Error| {
        StoreError::Write(format!(
            "cannot move the damaged {} aside: {source}",
            path.display()
        ))
    };
    // The main file last: until it moves, a crash leaves the damaged
    // database where it was, and repair can run again.
    for suffix in ["-wal", "-shm", ""] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if from.exists() {
            std::fs::rename(&from, format!("{}{suffix}", kept_as.display())).map_err(io)?;
        }
    }
    let mut store = Store::open(path)?;
    let held_until = now + hold;
    let held: Vec<Lease> = s
        .unreadable
        .iter()
        .map(|&ip| Lease {
            ip,
            mac: Mac([0; 6]),
            hostname: None,
            vendor_class: None,
            user_class: None,
            interface: String::new(),
            state: LeaseState::Declined,
            expires: held_until,
        })
        .collect();
    let leases: Vec<Lease> = found.into_values().collect();
    store.write(leases.iter().chain(held.iter()))?;
    Ok(Repaired {
        leases,
        scanned: s.scanned,
        looked_up: s.looked_up,
        from_pages: s.from_pages,
        unreadable: s.unreadable.len(),
        held_until,
        first_problem: s.first_problem,
        kept_as,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    fn lease(n: u32) -> Lease {
        let [_, _, a, b] = n.to_be_bytes();
        Lease {
            ip: Ipv4Addr::new(10, 20, a, b),
            mac: Mac([0, 0x90, 0x8f, 0, a, b]),
            hostname: Some(format!("phone-{n}")),
            vendor_class: Some("SIP100".into()),
            user_class: None,
            interface: "voice0".into(),
            state: LeaseState::Bound,
            expires: 2_000_000_000 + u64::from(n),
        }
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dialtone-repair-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A database of `n` leases, checkpointed into the main file (closing
    /// the last connection does that), then `pages` of it overwritten.
    fn damaged_db(d: &Path, n: u32, pages: &[u64]) -> (PathBuf, Vec<Lease>) {
        let path = d.join("leases.sqlite");
        let all: Vec<Lease> = (1..=n).map(lease).collect();
        Store::open(&path).unwrap().write(all.iter()).unwrap();
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        for &p in pages {
            assert!(
                (p + 1) * 4096 <= len,
                "page {p} is past the end ({len} bytes)"
            );
            f.seek(SeekFrom::Start(p * 4096)).unwrap();
            let junk: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            f.write_all(&junk).unwrap();
        }
        (path, all)
    }

    fn pool() -> impl Iterator<Item = Ipv4Addr> {
        (1..=4000u32).map(|n| lease(n).ip)
    }

    #[test]
    fn a_damaged_database_is_refused_and_repair_salvages_every_readable_lease() {
        let d = dir("pages");
        // Pages 5 and 20 of about 45: leaf pages in the middle of the table.
        let (path, all) = damaged_db(&d, 3000, &[5, 20]);
        let err = Store::open(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is damaged"), "{err}");
        assert!(err.contains("dialtone leases --repair"), "{err}");
        assert!(damaged(&path).unwrap().is_some());

        let r = repair(&path, pool(), 1234, 3600).unwrap();
        // Nothing invented: every salvaged lease is one that was written.
        for l in &r.leases {
            assert_eq!(
                l,
                &all[(u32::from_be_bytes(l.ip.octets()) & 0xffff) as usize - 1]
            );
        }
        // Two leaf pages hold well under 10 % of 3000 rows; the rest is back,
        // found by the scans from both ends and the lookups between.
        assert!(r.leases.len() > 2700 && r.leases.len() < 3000, "{r:?}");
        assert!(r.unreadable > 0 && r.first_problem.is_some(), "{r:?}");
        assert_eq!(r.scanned + r.looked_up + r.from_pages, r.leases.len());
        // The damaged file is kept; the new one opens and holds the leases.
        assert!(d.join("leases.sqlite.damaged-1234").exists());
        // The new database holds them, and every unreadable address held
        // out of the pool (declined) until the longest lease ran out.
        let back = Store::open(&path).unwrap().load().unwrap();
        assert_eq!(back.len(), r.leases.len() + r.unreadable);
        let held: Vec<&Lease> = back
            .iter()
            .filter(|l| l.state == LeaseState::Declined)
            .collect();
        assert_eq!(held.len(), r.unreadable);
        assert!(held.iter().all(|l| l.expires == 1234 + 3600));
        // Every lease lost is among the held addresses: none can be offered.
        for l in &all {
            assert!(
                back.iter().any(|b| b.ip == l.ip),
                "{} neither salvaged nor held",
                l.ip
            );
        }
        assert!(damaged(&path).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn garbage_and_a_truncated_file_are_damage_not_an_empty_table() {
        let d = dir("garbage");
        let path = d.join("leases.sqlite");
        std::fs::write(&path, vec![0x5a; 20_000]).unwrap();
        let err = Store::open(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not an SQLite database"), "{err}");
        let r = repair(&path, pool(), 1, 3600).unwrap();
        assert!(r.leases.is_empty());
        // Nothing could be read: every address is held out of the pool.
        assert_eq!(r.unreadable, 4000);
        assert_eq!(Store::open(&path).unwrap().load().unwrap().len(), 4000);

        let d2 = dir("truncated");
        let (path, _) = damaged_db(&d2, 3000, &[]);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len / 2).unwrap();
        drop(f);
        let err = Store::open(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is damaged"), "{err}");
        let r = repair(&path, pool(), 1, 3600).unwrap();
        // The interior pages past the cut are gone: SQLite reaches no leaf,
        // and the rows come from the leaf pages before the cut.
        assert!(r.from_pages > 1000 && r.leases.len() < 3000, "{r:?}");
        for l in &r.leases {
            assert_eq!(l, &lease(u32::from_be_bytes(l.ip.octets()) & 0xffff));
        }
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&d2);
    }

    #[test]
    fn a_table_without_the_expected_columns_is_refused() {
        let d = dir("schema");
        let path = d.join("leases.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE leases (ip TEXT PRIMARY KEY, owner TEXT) WITHOUT ROWID;
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let err = Store::open(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("lacks the columns mac, state"), "{err}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
