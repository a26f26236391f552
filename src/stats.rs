//! What the servers did, for the whole process: DHCP packets by type, DNS
//! queries by type and answer code, lease commit latency (plain atomics, no
//! lock on any hot path), and the exchanges each phone had, sent to the
//! status page's collector when one listens (`activity`). The status page
//! and `/metrics` read these; nothing here does I/O.

use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use crate::units::Mac;

/// DHCP message types counted, by their Kea-style operation names: the
/// index is the message type (1 DISCOVER ... 8 INFORM); 0 is "other".
pub const DHCP_OPERATIONS: [&str; 9] = [
    "other", "discover", "offer", "request", "decline", "ack", "nak", "release", "inform",
];

static DHCP_RECEIVED: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
static DHCP_SENT: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];

fn dhcp_index(name: &str) -> usize {
    DHCP_OPERATIONS
        .iter()
        .position(|o| o.eq_ignore_ascii_case(name))
        .unwrap_or(0)
}

/// A request of this type (`DISCOVER`, `REQUEST`, ...) was read.
pub fn dhcp_received(request: &str) {
    DHCP_RECEIVED[dhcp_index(request)].fetch_add(1, Ordering::Relaxed);
}

/// A reply of this type (`OFFER`, `ACK`, `NAK`) was sent.
pub fn dhcp_sent(reply: &str) {
    DHCP_SENT[dhcp_index(reply)].fetch_add(1, Ordering::Relaxed);
}

/// (operation, received, sent) for every message type.
pub fn dhcp_packets() -> Vec<(&'static str, u64, u64)> {
    DHCP_OPERATIONS
        .iter()
        .enumerate()
        .map(|(i, o)| {
            (
                *o,
                DHCP_RECEIVED[i].load(Ordering::Relaxed),
                DHCP_SENT[i].load(Ordering::Relaxed),
            )
        })
        .collect()
}

static RECLAIMED: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// An address was leased again after a declined record (`declined`) or
/// another client's expired lease.
pub fn reclaimed(declined: bool) {
    RECLAIMED[usize::from(declined)].fetch_add(1, Ordering::Relaxed);
}

/// (expired leases reclaimed, declined addresses reclaimed).
pub fn reclaims() -> (u64, u64) {
    (
        RECLAIMED[0].load(Ordering::Relaxed),
        RECLAIMED[1].load(Ordering::Relaxed),
    )
}

/// DNS query types counted by name; the rest are "other".
pub const DNS_TYPES: [(u16, &str); 8] = [
    (1, "A"),
    (28, "AAAA"),
    (33, "SRV"),
    (12, "PTR"),
    (35, "NAPTR"),
    (255, "ANY"),
    (6, "SOA"),
    (0, "other"),
];

/// Answer codes counted by name (by their number; 6 and above are "other").
pub const DNS_RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

static DNS_ANSWERS: [AtomicU64; DNS_TYPES.len() * DNS_RCODES.len()] =
    [const { AtomicU64::new(0) }; DNS_TYPES.len() * DNS_RCODES.len()];

/// Walks the first question's name, label by label, to the index just past
/// it; None for a message without a question or a name that does not
/// parse (compression pointers included: questions are not compressed).
fn walk_question(msg: &[u8], mut label: impl FnMut(&[u8])) -> Option<usize> {
    if u16::from_be_bytes([*msg.get(4)?, *msg.get(5)?]) == 0 {
        return None;
    }
    let mut i = 12;
    let mut total = 0;
    loop {
        let len = usize::from(*msg.get(i)?);
        if len == 0 {
            return Some(i + 1);
        }
        total += len + 1;
        if len > 63 || total > 255 {
            return None;
        }
        label(msg.get(i + 1..i + 1 + len)?);
        i += 1 + len;
    }
}

/// The question's type and name of a DNS message (a query or its answer):
/// the first question; None if it does not parse.
pub fn dns_question(msg: &[u8]) -> Option<(u16, String)> {
    let mut name = String::new();
    let end = walk_question(msg, |label| {
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b.to_ascii_lowercase())
            } else {
                '?'
            }
        }));
    })?;
    let qtype = u16::from_be_bytes([*msg.get(end)?, *msg.get(end + 1)?]);
    Some((qtype, name))
}

/// The first question's type, without building its name.
fn dns_qtype(msg: &[u8]) -> Option<u16> {
    let end = walk_question(msg, |_| {})?;
    Some(u16::from_be_bytes([*msg.get(end)?, *msg.get(end + 1)?]))
}

/// An answer went out: counted by its question's type and its answer code.
pub fn dns_answered(answer: &[u8]) {
    let Some(&flags) = answer.get(3) else { return };
    let rcode = usize::from(flags & 0x0f).min(DNS_RCODES.len() - 1);
    let qtype = dns_qtype(answer).unwrap_or(0);
    let t = DNS_TYPES
        .iter()
        .position(|(code, _)| *code == qtype)
        .unwrap_or(DNS_TYPES.len() - 1);
    DNS_ANSWERS[t * DNS_RCODES.len() + rcode].fetch_add(1, Ordering::Relaxed);
}

/// (type, rcode, answers) for every pair counted so far.
pub fn dns_answers() -> Vec<(&'static str, &'static str, u64)> {
    let mut out = Vec::new();
    for (t, (_, tname)) in DNS_TYPES.iter().enumerate() {
        for (r, rname) in DNS_RCODES.iter().enumerate() {
            let n = DNS_ANSWERS[t * DNS_RCODES.len() + r].load(Ordering::Relaxed);
            if n > 0 {
                out.push((*tname, *rname, n));
            }
        }
    }
    out
}

/// Upper bounds of the lease commit latency buckets, in microseconds.
pub const COMMIT_BUCKETS_US: [u64; 12] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000,
];

static COMMIT_COUNTS: [AtomicU64; COMMIT_BUCKETS_US.len() + 1] =
    [const { AtomicU64::new(0) }; COMMIT_BUCKETS_US.len() + 1];
static COMMIT_SUM_US: AtomicU64 = AtomicU64::new(0);
static COMMIT_LAST_US: AtomicU64 = AtomicU64::new(0);
static COMMIT_LAST_AT: AtomicU64 = AtomicU64::new(0);

/// A lease commit took `us` microseconds (the lease writer's thread).
pub fn commit_took(us: u64) {
    let b = COMMIT_BUCKETS_US
        .iter()
        .position(|&le| us <= le)
        .unwrap_or(COMMIT_BUCKETS_US.len());
    COMMIT_COUNTS[b].fetch_add(1, Ordering::Relaxed);
    COMMIT_SUM_US.fetch_add(us, Ordering::Relaxed);
    COMMIT_LAST_US.store(us, Ordering::Relaxed);
    COMMIT_LAST_AT.store(crate::now(), Ordering::Relaxed);
}

static COMMIT_ERROR: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The last lease commit's error, or None when it succeeded.
pub fn commit_failing(error: Option<String>) {
    if let Ok(mut e) = COMMIT_ERROR.lock() {
        *e = error;
    }
}

/// Why the last lease commit failed, if it did.
pub fn commit_error() -> Option<String> {
    COMMIT_ERROR.lock().ok().and_then(|e| e.clone())
}

/// The commit latency histogram: (count per bucket, the last one past
/// every bound; sum in microseconds).
pub fn commits() -> (Vec<u64>, u64) {
    (
        COMMIT_COUNTS
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect(),
        COMMIT_SUM_US.load(Ordering::Relaxed),
    )
}

/// The last commit's latency (microseconds) and when it ended (unix
/// seconds); None before the first.
pub fn last_commit() -> Option<(u64, u64)> {
    let at = COMMIT_LAST_AT.load(Ordering::Relaxed);
    (at > 0).then(|| (COMMIT_LAST_US.load(Ordering::Relaxed), at))
}

static HEALTH_CHANGED: std::sync::Mutex<Vec<(String, String, u64)>> =
    std::sync::Mutex::new(Vec::new());

/// A switchover member's health changed at `at` (the checks' task).
pub fn health_changed(switchover: &str, member: &str, at: u64) {
    if let Ok(mut h) = HEALTH_CHANGED.lock() {
        h.retain(|(s, m, _)| !(s == switchover && m == member));
        h.push((switchover.to_string(), member.to_string(), at));
        // Bounded: a reload may rename members.
        if h.len() > 1_024 {
            h.remove(0);
        }
    }
}

/// When a member's health last changed (unix seconds); None: not since
/// the start.
pub fn health_changed_at(switchover: &str, member: &str) -> Option<u64> {
    HEALTH_CHANGED.lock().ok().and_then(|h| {
        h.iter()
            .find(|(s, m, _)| s == switchover && m == member)
            .map(|x| x.2)
    })
}

/// One DHCP exchange as the status page keeps it.
#[derive(Debug, Clone)]
pub struct DhcpSeen {
    pub mac: Mac,
    pub request: &'static str,
    pub reply: Option<&'static str>,
    pub ip: Option<Ipv4Addr>,
    pub interface: String,
    pub vendor_class: Option<String>,
    pub classes: Vec<String>,
    /// Option codes sent, in order.
    pub options: Vec<u8>,
    pub note: Option<String>,
}

/// What a phone did, told to the status page's collector.
#[derive(Debug, Clone)]
pub enum Event {
    Dhcp(DhcpSeen),
    Dns {
        client: Ipv4Addr,
        name: String,
        qtype: u16,
        rcode: u8,
    },
    Sntp {
        client: Ipv4Addr,
    },
}

static ACTIVITY: OnceLock<SyncSender<(u64, Event)>> = OnceLock::new();
static ACTIVITY_LOST: AtomicU64 = AtomicU64::new(0);

/// Sends every later event to `tx` (once per process: the status page's
/// collector). Returns false if one was already installed.
pub fn listen(tx: SyncSender<(u64, Event)>) -> bool {
    ACTIVITY.set(tx).is_ok()
}

/// Whether a collector listens (events are built only then).
pub fn listening() -> bool {
    ACTIVITY.get().is_some()
}

/// Tells the collector, never waiting: when its queue is full the event is
/// counted as lost.
pub fn tell(event: impl FnOnce() -> Event) {
    if let Some(tx) = ACTIVITY.get() {
        match tx.try_send((crate::now(), event())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                ACTIVITY_LOST.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// DNS answers told to the collector between two of its drains, at most:
/// a query costs the DNS path a name and a queue slot only while this
/// lasts, so a flood of queries (or a benchmark) costs the collector a
/// bounded amount of work, and the page keeps each phone's first names.
pub const DNS_TOLD_PER_DRAIN: u64 = 2_048;
static DNS_BUDGET: AtomicU64 = AtomicU64::new(DNS_TOLD_PER_DRAIN);

/// Whether one more DNS answer may be told (takes one from the budget).
pub fn dns_budget() -> bool {
    DNS_BUDGET
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
        .is_ok()
}

/// The collector drained its queue: the DNS budget is full again.
pub fn drained() {
    DNS_BUDGET.store(DNS_TOLD_PER_DRAIN, Ordering::Relaxed);
}

/// Events the collector could not take.
pub fn activity_lost() -> u64 {
    ACTIVITY_LOST.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn a_question_is_read_and_counted_by_type_and_code() {
        let q = query("Sfb.Lab.voip", 33);
        assert_eq!(dns_question(&q), Some((33, "sfb.lab.voip".to_string())));
        assert_eq!(dns_qtype(&q), Some(33));
        assert_eq!(dns_qtype(&q[..q.len() - 3]), None);
        assert_eq!(dns_question(&q[..14]), None);
        assert_eq!(dns_question(&[0; 12]), None);
        let before = dns_answers()
            .iter()
            .find(|(t, r, _)| *t == "SRV" && *r == "NXDOMAIN")
            .map_or(0, |x| x.2);
        dns_answered(&q);
        let after = dns_answers()
            .iter()
            .find(|(t, r, _)| *t == "SRV" && *r == "NXDOMAIN")
            .map_or(0, |x| x.2);
        assert_eq!(after, before + 1);
        // Garbage is counted as "other", never a panic.
        dns_answered(&[1, 2, 3, 0xff]);
        dns_answered(&[]);
    }

    #[test]
    fn the_dns_budget_runs_out_until_the_next_drain() {
        drained();
        for _ in 0..DNS_TOLD_PER_DRAIN {
            assert!(dns_budget());
        }
        assert!(!dns_budget(), "spent");
        drained();
        assert!(dns_budget(), "full again");
    }

    #[test]
    fn dhcp_types_and_commit_buckets() {
        let before = dhcp_packets()[1].1;
        dhcp_received("DISCOVER");
        dhcp_received("BOGUS");
        assert_eq!(dhcp_packets()[1].1, before + 1);
        commit_took(700);
        commit_took(9_000_000);
        let (counts, sum) = commits();
        assert!(counts[2] >= 1, "700 us falls in the 1 ms bucket");
        assert!(
            counts[COMMIT_BUCKETS_US.len()] >= 1,
            "9 s is past every bound"
        );
        assert!(sum >= 9_000_700);
        assert!(last_commit().is_some());
    }
}
