//! The phones' own logs: a syslog receiver (UDP, RFC 3164 and RFC 5424, as
//! phones send both) on every served interface. Each message is tied to a
//! phone by its source address through the lease table (an address no
//! phone holds is dropped and counted), bounded in size and rate per
//! source, and kept per phone in `state_dir/syslog/<mac>.log` (one JSON
//! object a line, the last `lines_per_phone` kept, written in batches once
//! a second), which `dialtone logs` and the status page read.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::files::owners::Owners;
use crate::units::Mac;

/// A datagram longer than this is cut (RFC 5426 asks receivers for 2048).
pub const MAX_DATAGRAM: usize = 2_048;
/// A message's text is cut to this many characters.
pub const MAX_TEXT: usize = 1_000;
/// Lines waiting for the next batch, for every phone together; past it
/// lines are dropped and counted.
pub const MAX_PENDING: usize = 20_000;
/// Lines a second one source may send, and its burst.
pub const RATE: f64 = 50.0;
pub const BURST: f64 = 200.0;
/// Sources whose rate is tracked at once.
pub const SOURCES: usize = 4_096;

/// One line of a phone's log, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Line {
    /// Unix seconds when dialtone received it.
    pub at: u64,
    /// `emerg` ... `debug`, or empty.
    #[serde(default)]
    pub severity: String,
    /// The sending program (RFC 5424 APP-NAME, RFC 3164 TAG).
    #[serde(default)]
    pub app: String,
    pub text: String,
}

impl Line {
    /// As `dialtone logs` prints it.
    pub fn display(&self) -> String {
        let app = if self.app.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.app)
        };
        format!(
            "{} {:<7} {app}{}",
            crate::units::utc(self.at),
            self.severity,
            self.text
        )
    }
}

/// Printable text only: control characters and invalid UTF-8 become `?`
/// or U+FFFD, cut to `max` characters.
fn clean(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect()
}

/// A datagram as a line; None for one that is empty.
pub fn parse(datagram: &[u8], at: u64) -> Option<Line> {
    let bytes = &datagram[..datagram.len().min(MAX_DATAGRAM)];
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    if text.trim().is_empty() {
        return None;
    }
    let m = syslog_loose::parse_message(text, syslog_loose::Variant::Either);
    if m.facility.is_none()
        && let Some((severity, rest)) = bare_priority(text)
    {
        // `<PRI>` and a message with neither timestamp nor host, as some
        // phones send: the priority is still read.
        return Some(Line {
            at,
            severity: severity.to_string(),
            app: String::new(),
            text: clean(rest.trim(), MAX_TEXT),
        });
    }
    let severity = m
        .severity
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    Some(Line {
        at,
        severity: clean(&severity, 8),
        app: clean(m.appname.unwrap_or(""), 48),
        text: clean(m.msg.trim(), MAX_TEXT),
    })
}

/// The severity of a leading `<PRI>` (0-191) and the text after it.
fn bare_priority(text: &str) -> Option<(&'static str, &str)> {
    const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    let rest = text.strip_prefix('<')?;
    let end = rest.find('>')?;
    let pri: u8 = rest[..end].parse().ok().filter(|p| *p <= 191)?;
    Some((NAMES[usize::from(pri % 8)], &rest[end + 1..]))
}

/// The file holding `mac`'s lines.
pub fn path(state_dir: &Path, mac: Mac) -> PathBuf {
    state_dir.join("syslog").join(format!("{}.log", mac.bare()))
}

/// The last `n` lines of `mac`'s log (none if it has none). Lines that do
/// not parse are skipped.
pub fn tail(state_dir: &Path, mac: Mac, n: usize) -> std::io::Result<Vec<Line>> {
    tail_of(&path(state_dir, mac), n)
}

/// The last `n` lines of a log file.
fn tail_of(file: &Path, n: usize) -> std::io::Result<Vec<Line>> {
    let file = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = std::collections::VecDeque::with_capacity(n.min(4096));
    for l in std::io::BufReader::new(file).lines() {
        let l = l?;
        if let Ok(line) = serde_json::from_str::<Line>(&l) {
            if out.len() == n {
                out.pop_front();
            }
            if n > 0 {
                out.push_back(line);
            }
        }
    }
    Ok(out.into())
}

/// Lines as the file holds them: one JSON object a line.
fn encode(lines: &[Line]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(lines.len() * 120);
    for l in lines {
        serde_json::to_writer(&mut out, l).map_err(std::io::Error::other)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Counts of the receiver, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counts {
    pub kept: AtomicU64,
    /// From an address no phone holds.
    pub unknown_source: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Over the pending bound, or the disk refused them.
    pub lost: AtomicU64,
    pub empty: AtomicU64,
}

struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

/// The phones' logs: lines waiting for the disk, and line counts per file.
pub struct Logs {
    dir: PathBuf,
    lines_per_phone: usize,
    /// Lines waiting for the next batch, by phone, and how many in all.
    pending: Mutex<(HashMap<Mac, Vec<Line>>, usize)>,
    /// Lines in each phone's file (counted on its first write).
    lines: Mutex<HashMap<Mac, usize>>,
    rates: Mutex<HashMap<Ipv4Addr, Bucket>>,
    /// Each phone's last line about its registration (for its boot line).
    registrations: Mutex<HashMap<Mac, String>>,
    pub counts: Counts,
}

impl Logs {
    pub fn new(state_dir: &Path, lines_per_phone: usize) -> Logs {
        Logs {
            dir: state_dir.join("syslog"),
            lines_per_phone,
            pending: Mutex::default(),
            lines: Mutex::default(),
            rates: Mutex::default(),
            registrations: Mutex::default(),
            counts: Counts::default(),
        }
    }

    fn allowed(&self, from: Ipv4Addr) -> bool {
        let Ok(mut rates) = self.rates.lock() else {
            return false;
        };
        if rates.len() >= SOURCES && !rates.contains_key(&from) {
            let now = std::time::Instant::now();
            rates.retain(|_, b| now.duration_since(b.at) < Duration::from_secs(10));
            if rates.len() >= SOURCES {
                rates.clear();
            }
        }
        let now = std::time::Instant::now();
        let b = rates.entry(from).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * RATE).min(BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Each phone's last line about its registration.
    pub fn registrations(&self) -> HashMap<Mac, String> {
        self.registrations
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// One datagram from `from`: kept for its phone, or counted as dropped.
    pub fn receive(&self, datagram: &[u8], from: Ipv4Addr, owners: &dyn Owners, at: u64) {
        let Some(mac) = owners.mac_of(from) else {
            self.counts.unknown_source.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if !self.allowed(from) {
            self.counts.rate_limited.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(line) = parse(datagram, at) else {
            self.counts.empty.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let registration = line
            .text
            .to_ascii_lowercase()
            .contains("regist")
            .then(|| line.text.clone());
        if let Ok(mut p) = self.pending.lock() {
            let (by_phone, count) = &mut *p;
            if *count >= MAX_PENDING {
                self.counts.lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
            by_phone.entry(mac).or_default().push(line);
            *count += 1;
        }
        if let Some(text) = registration
            && let Ok(mut r) = self.registrations.lock()
        {
            if r.len() >= crate::inventory::seen::PHONES_KEPT && !r.contains_key(&mac) {
                r.clear();
            }
            r.insert(mac, text);
        }
    }

    /// Writes the lines waiting, each phone's in one append; a file past
    /// its bound by a quarter is rewritten with its last lines only.
    pub fn flush(&self) {
        let batch = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p).0,
            Err(_) => return,
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            let n: usize = batch.values().map(Vec::len).sum();
            self.counts.lost.fetch_add(n as u64, Ordering::Relaxed);
            tracing::warn!(target: "dialtone::syslog", path = %self.dir.display(), error = %e, lost = n, "cannot make the phones' log folder");
            return;
        }
        for (mac, lines) in batch {
            let n = lines.len();
            match self.append(mac, &lines) {
                Ok(()) => {
                    self.counts.kept.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    self.counts.lost.fetch_add(n as u64, Ordering::Relaxed);
                    tracing::warn!(target: "dialtone::syslog", %mac, error = %e, lost = n, "cannot write the phone's log");
                }
            }
        }
    }

    fn append(&self, mac: Mac, lines: &[Line]) -> std::io::Result<()> {
        let file = self.dir.join(format!("{}.log", mac.bare()));
        let text = encode(lines)?;
        let mut counts = self
            .lines
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        let have = match counts.get(&mac) {
            Some(n) => *n,
            None => match std::fs::File::open(&file) {
                Ok(f) => std::io::BufReader::new(f).lines().count(),
                Err(_) => 0,
            },
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)?;
        f.write_all(&text)?;
        let mut total = have + lines.len();
        if total > self.lines_per_phone + self.lines_per_phone / 4 {
            let keep = tail_of(&file, self.lines_per_phone)?;
            crate::statefile::replace(&file, &encode(&keep)?, 0o640)?;
            total = keep.len();
        }
        counts.insert(mac, total);
        Ok(())
    }
}

/// Where syslog listens under `config`: its port on each served interface.
pub fn places(config: &crate::config::Config) -> Vec<crate::net::places::Place> {
    if !config.syslog.serve {
        return Vec::new();
    }
    config
        .server
        .interfaces
        .iter()
        .map(|i| crate::net::places::Place::on(i, config.syslog.port.to_string()))
        .collect()
}

/// Receives on every served interface and writes the batches, until dropped.
pub async fn run(
    live: tokio::sync::watch::Receiver<Arc<crate::config::Config>>,
    ready: Arc<crate::net::ready::Readiness>,
    logs: Arc<Logs>,
    owners: Arc<dyn Owners>,
) -> anyhow::Result<()> {
    let l = Arc::clone(&logs);
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let l = Arc::clone(&l);
            let _ = tokio::task::spawn_blocking(move || l.flush()).await;
        }
    });
    let config = live.clone();
    let result = crate::net::places::serve(
        live,
        "syslog",
        ready,
        |c| places(c),
        move |place, report| {
            let port = config.borrow().syslog.port;
            serve_interface(
                place.label,
                port,
                Arc::clone(&logs),
                Arc::clone(&owners),
                report,
            )
        },
    )
    .await;
    writer.abort();
    result
}

async fn serve_interface(
    name: String,
    port: u16,
    logs: Arc<Logs>,
    owners: Arc<dyn Owners>,
    report: crate::net::ready::Report,
) -> anyhow::Result<()> {
    // Phones log most while they boot, and they boot together.
    let sock = crate::net::sockets::udp(&name, port, |s| {
        crate::net::sockets::large_buffers(s, 1 << 20, false);
        Ok(())
    })
    .with_context(|| format!("cannot listen for syslog on {name} UDP port {port}"))?;
    report.bound();
    tracing::info!(target: "dialtone::syslog", interface = %name, port, "receiving the phones' logs");
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: "dialtone::syslog", interface = %name, error = %e, "receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let std::net::IpAddr::V4(ip) = from.ip() {
            logs.receive(&buf[..n], ip, owners.as_ref(), crate::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One(Ipv4Addr, Mac);
    impl Owners for One {
        fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
            (ip == self.0).then_some(self.1)
        }
    }

    #[test]
    fn both_formats_parse_and_hostile_bytes_stay_printable() {
        let l = parse(
            b"<13>Dec  6 22:40:09 phone1 sipua[42]: line 1 registered",
            5,
        )
        .unwrap();
        assert_eq!(l.severity, "notice");
        assert_eq!(l.app, "sipua");
        assert_eq!(l.text, "line 1 registered");
        let l = parse(
            b"<11>1 2026-12-06T22:40:09Z phone1 provision 7 ID1 - config 450HD.cfg not found",
            5,
        )
        .unwrap();
        assert_eq!(l.severity, "err");
        assert_eq!(l.app, "provision");
        assert!(l.text.contains("450HD.cfg not found"));
        let l = parse(b"\x00\x01<script>\xff\xfe\x1b[31m", 5).unwrap();
        assert!(!l.text.chars().any(char::is_control));
        assert!(parse(b"   \n", 5).is_none());
        let big = vec![b'a'; 70_000];
        assert!(parse(&big, 5).unwrap().text.len() <= MAX_TEXT);
    }

    #[test]
    fn lines_are_kept_per_phone_bounded_and_read_back() {
        let dir = std::env::temp_dir().join(format!("dialtone-syslog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mac: Mac = "00:90:8f:00:00:01".parse().unwrap();
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let owners = One(ip, mac);
        let logs = Logs::new(&dir, 10);
        logs.receive(
            b"<14>from a stranger",
            Ipv4Addr::new(10, 0, 0, 6),
            &owners,
            1,
        );
        assert_eq!(logs.counts.unknown_source.load(Ordering::Relaxed), 1);
        for i in 0..40 {
            logs.receive(format!("<14>message {i}").as_bytes(), ip, &owners, i);
            if i % 7 == 0 {
                logs.flush();
            }
        }
        logs.flush();
        let all = tail(&dir, mac, 1000).unwrap();
        assert!(all.len() <= 13, "bounded: {}", all.len());
        assert_eq!(all.last().unwrap().text, "message 39");
        let last3 = tail(&dir, mac, 3).unwrap();
        assert_eq!(last3.len(), 3);
        // A flood is cut to the burst.
        for _ in 0..1000 {
            logs.receive(b"<14>flood", ip, &owners, 2);
        }
        assert!(logs.counts.rate_limited.load(Ordering::Relaxed) >= 1000 - BURST as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
