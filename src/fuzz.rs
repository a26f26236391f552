//! Fuzz harnesses: one plain function per parser or state machine that sees
//! bytes from the network or a user, each checking what must hold for every
//! input, not only "no panic". cargo-fuzz targets (`tests/fuzz/`) call them
//! with generated inputs; `tests/fuzz_corpus.rs` replays the committed
//! corpus through them on every `cargo test`, so a crash once found stays
//! found. A violated property panics, which is what both runners catch.

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::dhcp::client::ParsedReply;
use crate::dhcp::engine::{Engine, Ingress};
use crate::dhcp::packet::Request;
use crate::dns::zone::Zone;
use crate::files::tftp::packet as tftp;
use crate::files::tftp::receive::{Got, Receive};
use crate::files::tftp::window::{Resend, Step, Window};
use crate::leases::{Lease, LeaseState, LeaseTable};
use crate::units::Mac;

/// The configuration every harness answers with: the phone families'
/// classes, a reservation, two subnets (one reached through a relay), a
/// zone with hosts, a switchover pair and SRV records, time and files.
pub const FIXTURE: &str = r#"
[server]
state_dir = "/nonexistent/dialtone-fuzz"
interfaces = ["voice0"]

[dhcp]
options.time_offset = "-05:00"

[[dhcp.subnet]]
cidr = "10.250.0.0/24"
pool = ["10.250.0.100-10.250.0.110"]
router = "10.250.0.1"
dns = ["self"]
domain = "lab.voip"
options.ntp_servers = ["self"]
options.provisioning_url = "{http}/{mac}/"

[[dhcp.subnet]]
cidr = "10.251.0.0/24"
pool = ["10.251.0.100-10.251.0.101"]
router = "10.251.0.1"
options.vlan_id = 100

[[dhcp.class]]
name = "audiocodes"
profile = "audiocodes"

[[dhcp.class]]
name = "sfb"
profile = "audiocodes-sfb"
options.vendor_specific = { 3 = "sfb.lab.voip" }
options.sip_servers = ["sfb.lab.voip"]

[[dhcp.class]]
name = "polycom"
profile = "polycom"

[[dhcp.class]]
name = "iss"
profile = "interaction-sip-station"

[[dhcp.class]]
name = "soft"
profile = "softphone"

[[dhcp.class]]
name = "bricked"
profile = "recovery"

[[dhcp.host]]
mac = "00:90:8f:00:00:01"
ip = "10.250.0.50"
hostname = "reserved"
options.bootfile = "loader.bin"

[dns]
zone = "lab.voip"

[[dns.host]]
name = "pbx1"
ip = "10.250.0.10"

[[dns.host]]
name = "pbx2"
ip = "10.250.0.11"

[[dns.host]]
name = "sfb"
ip = "10.250.0.12"

[[dns.switchover]]
name = "cic"
members = ["pbx1", "pbx2"]
services = [{ srv = "_sip._udp", port = 5060 }, { srv = "_sip._tcp", port = 5060 }]

[time]
serve = true

[files]
root = "/nonexistent/dialtone-fuzz/files"
http = ["0.0.0.0:80"]
"#;

/// A fixed time for every harness: runs are repeatable.
pub const NOW: u64 = 1_800_000_000;

fn fixture() -> &'static Arc<Config> {
    static C: OnceLock<Arc<Config>> = OnceLock::new();
    C.get_or_init(|| match Config::parse("fixture", FIXTURE) {
        Ok(c) => Arc::new(c),
        Err(e) => panic!("the fuzz fixture does not load: {e}"),
    })
}

fn zone() -> &'static Zone {
    static Z: OnceLock<Zone> = OnceLock::new();
    Z.get_or_init(|| {
        let c = fixture();
        let subnets: Vec<_> = c.dhcp.subnets.iter().map(|s| s.net).collect();
        match &c.dns {
            Some(dns) => Zone::new(dns, &subnets, c.time.serve),
            None => panic!("the fuzz fixture has no [dns]"),
        }
    })
}

/// DHCP: the request parser and `Engine::handle` on a small lease table
/// (a bound lease, a declined address, a reservation). Every reply
/// re-parses strictly, is at least 300 bytes (BOOTP's minimum) and never
/// larger than the client's option 57 allows.
pub fn dhcp(data: &[u8]) {
    let Ok(req) = Request::parse(data) else {
        return;
    };
    let table = LeaseTable::from_leases([
        Lease {
            ip: Ipv4Addr::new(10, 250, 0, 100),
            mac: Mac([0x00, 0x90, 0x8f, 0x12, 0x34, 0x56]),
            hostname: Some("phone".into()),
            vendor_class: Some("450HD".into()),
            user_class: None,
            interface: "voice0".into(),
            state: LeaseState::Bound,
            expires: NOW + 3600,
        },
        Lease {
            ip: Ipv4Addr::new(10, 250, 0, 101),
            mac: Mac([0x00, 0x04, 0xf2, 0, 0, 1]),
            hostname: None,
            vendor_class: None,
            user_class: None,
            interface: "voice0".into(),
            state: LeaseState::Declined,
            expires: NOW + 600,
        },
    ]);
    let mut engine = Engine::new(Arc::clone(fixture()), table);
    let ingress = Ingress {
        interface: "voice0".into(),
        addrs: vec![crate::units::Ipv4Net {
            addr: Ipv4Addr::new(10, 250, 0, 1),
            prefix: 24,
        }],
    };
    // The same request twice: the second meets the state the first left.
    for now in [NOW, NOW + 1] {
        let out = engine.handle(&req, &ingress, now);
        if let Some(reply) = &out.reply {
            let b = &reply.bytes;
            assert!(b.len() >= 300, "a reply of {} bytes", b.len());
            // A relay takes option 82 out before the reply reaches the
            // client (RFC 3046), so it does not count against the client's
            // size.
            let relay_info = if req.giaddr.is_unspecified() {
                0
            } else {
                req.option(crate::dhcp::options::RELAY_AGENT_INFO)
                    .map_or(0, |o| o.len() + 2 * o.len().div_ceil(255))
            };
            assert!(
                b.len() <= req.max_reply() + relay_info,
                "a reply of {} bytes for a client that takes {}",
                b.len(),
                req.max_reply()
            );
            let parsed = ParsedReply::parse(b);
            assert!(parsed.is_some(), "a reply that does not parse: {b:02x?}");
            if let Some(p) = parsed {
                assert_eq!(p.xid, req.xid);
            }
        }
        for lease in &out.persist {
            // Only addresses of the configured subnets are ever leased.
            assert!(
                fixture()
                    .dhcp
                    .subnets
                    .iter()
                    .any(|s| s.net.contains(lease.ip)),
                "leased {} outside every subnet",
                lease.ip
            );
        }
    }
}

/// DNS: the fast path's parser and the full answer through hickory-proto.
/// An answer re-parses, answers the question's ID, and is never larger than
/// the client may take (512 bytes, or its EDNS size up to 1232).
pub fn dns(data: &[u8]) {
    use crate::dns::udp::{Outcome, quick_parse, respond};
    use hickory_proto::op::Message;
    let appliance = Some(Ipv4Addr::new(10, 250, 0, 1));
    let _ = quick_parse(data, appliance);
    let (outcome, _) = respond(zone(), data, appliance, NOW, false);
    let Outcome::Reply(bytes) = outcome else {
        return;
    };
    assert!(bytes.len() >= 12);
    assert_eq!(bytes[..2], data[..2], "the reply answers another ID");
    assert!(bytes[2] & 0x80 != 0, "a reply without QR");
    let limit = match Message::from_vec(data) {
        Ok(q) => q
            .edns
            .as_ref()
            .map_or(512, |e| usize::from(e.max_payload().clamp(512, 1232))),
        Err(_) => 512,
    };
    assert!(
        bytes.len() <= limit,
        "{} bytes for a client that takes {limit}",
        bytes.len()
    );
    if let Err(e) = Message::from_vec(&bytes) {
        panic!("a reply that does not parse ({e}): {bytes:02x?}");
    }
    // The answer cache: asked twice, the second answer (from the cache
    // when the first was cacheable) is the first's, byte for byte.
    let mut cache = crate::dns::udp::Cache::default();
    let first = cache.handle(zone(), data, appliance, NOW, false);
    let second = cache.handle(zone(), data, appliance, NOW, false);
    if let (Outcome::Reply(a), Outcome::Reply(b)) = (&first, &second) {
        assert_eq!(a, b, "the cached answer differs");
        assert_eq!(a, &bytes, "the cache's first answer differs from respond's");
    }
}

/// TFTP: the packet codec, option negotiation, and the sending and
/// receiving state machines fed the rest of the input as a sequence of
/// events. The sender never sends a block it was not asked for (a
/// duplicate ACK sends nothing: no Sorcerer's Apprentice), never past the
/// file's end, never more than a window ahead; the receiver never stores
/// past its limit.
pub fn tftp(data: &[u8]) {
    if let Ok(tftp::Packet::Read(r) | tftp::Packet::Write(r)) = tftp::parse(data) {
        let _ = crate::files::path::components(&r.filename, "/srv/dialtone", false);
        let limits = tftp::Limits {
            max_window: 64,
            default_timeout: Duration::from_secs(1),
        };
        let n = tftp::negotiate(&r.options, 123_456, limits);
        assert!((8..=65464).contains(&n.blksize), "blksize {}", n.blksize);
        assert!((1..=64).contains(&n.window), "window {}", n.window);
        let mut names: Vec<&str> = n.oack.iter().map(|(k, _)| *k).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(
            names.len(),
            count,
            "an option twice in the OACK: {:?}",
            n.oack
        );
        let oack = tftp::oack(&n.oack);
        for (k, v) in &n.oack {
            assert_eq!(tftp::oack_value(&oack, k), Some(v.as_str()));
        }
    }
    // The state machines: the first bytes choose the file and transfer,
    // the rest are events.
    let [a, b, c, d, rest @ ..] = data else {
        return;
    };
    let size = u64::from(u16::from_be_bytes([*a, *b])) * 7;
    let blksize = u16::from(*c % 64) * 8 + 8;
    let window = u16::from(*d % 8) + 1;
    let mut w = Window::new(size, blksize, window, false);
    let total = w.total_blocks();
    let mut sent_to: u64 = 0;
    let step = w.start();
    check_step(&step, 0, total, window, &mut sent_to);
    for pair in rest.chunks(2) {
        let before = w.acked();
        match pair {
            [0xff, _] => {
                if let Some(Resend::Blocks(r)) = w.on_timeout(5) {
                    assert!(
                        *r.start() == before + 1 && *r.end() <= total,
                        "resent {r:?}"
                    );
                }
            }
            [hi, lo] => {
                let block = u16::from_be_bytes([*hi, *lo]);
                let step = w.on_ack(block);
                if w.acked() == before {
                    assert!(
                        !matches!(step, Step::Send(_)),
                        "ACK {block} moved nothing but sent {step:?}"
                    );
                }
                check_step(&step, before, total, window, &mut sent_to);
                assert!(w.acked() <= total);
                assert!(
                    w.acked() <= sent_to,
                    "acknowledged {} of {sent_to} sent",
                    w.acked()
                );
            }
            _ => {}
        }
    }
    let max = u64::from(*a) * 100;
    let mut r = Receive::new(blksize, window, max);
    for pair in rest.chunks(2) {
        if let [hi, lo] = pair {
            let len = usize::from(*lo) % (usize::from(blksize) + 2);
            if let Got::Store { .. } = r.on_data(u16::from(*hi), len) {
                assert!(r.bytes() <= max);
            }
        }
    }
}

/// A sender's step: blocks within the file, after the last acknowledged,
/// at most a window of them.
fn check_step(step: &Step, acked: u64, total: u64, window: u16, sent_to: &mut u64) {
    if let Step::Send(r) = step {
        assert!(*r.start() >= 1 && *r.end() <= total, "{r:?} of {total}");
        assert!(
            *r.start() > acked,
            "{r:?} after block {acked} was acknowledged"
        );
        assert!(
            r.end() - r.start() < u64::from(window),
            "{r:?} is more than a window"
        );
        *sent_to = (*sent_to).max(*r.end());
    }
}

/// HTTP: the request head parser, the path check and the conditional and
/// range logic. A parsed head never claims more bytes than it was given; a
/// path that passes never leaves the root; a range is always inside the
/// file.
pub fn http(data: &[u8]) {
    use crate::files::http::conditional::{Conditions, Meta, Plan, plan};
    use crate::files::http::wire;
    let Ok(Some((head, used))) = wire::parse(data) else {
        return;
    };
    assert!(used <= data.len());
    if let Some(decoded) = crate::files::path::percent_decode(&head.path)
        && let Ok(parts) = crate::files::path::components(&decoded, "/", true)
    {
        for p in &parts {
            assert!(
                !p.is_empty() && p != "." && p != ".." && !p.contains('/') && !p.contains('\0'),
                "{:?} leaves the root through {p:?}",
                head.path
            );
        }
    }
    let meta = Meta::new(1_000_000, UNIX_EPOCH + Duration::from_secs(NOW));
    let c = Conditions {
        head: head.method == "HEAD",
        if_none_match: head.header("if-none-match"),
        if_modified_since: head.header("if-modified-since"),
        range: head.header("range"),
        if_range: head.header("if-range"),
    };
    if let Plan::Range { start, end } = plan(&c, &meta) {
        assert!(
            start <= end && end < meta.size,
            "range {start}-{end} of {}",
            meta.size
        );
    }
}

/// SNTP: a reply is 48 bytes, a server's (mode 4), and echoes the client's
/// transmit time.
pub fn sntp(data: &[u8]) {
    let at = UNIX_EPOCH + Duration::from_secs(NOW);
    if let Ok(r) = crate::time::sntp::reply(data, at, at, 2) {
        assert_eq!(r[0] & 7, 4);
        assert_eq!(r[24..32], data[40..48]);
    }
    let _ = SystemTime::now();
}

/// A phone's syslog datagram: any bytes give a line or nothing, never a
/// panic; the line's text is printable, within its bound, and survives the
/// JSON line it is stored as.
pub fn syslog(data: &[u8]) {
    if let Some(l) = crate::site::syslog::parse(data, NOW) {
        assert!(l.text.chars().count() <= crate::site::syslog::MAX_TEXT);
        assert!(!l.text.chars().any(char::is_control), "{:?}", l.text);
        assert!(!l.app.chars().any(char::is_control) && l.app.chars().count() <= 48);
        let stored = serde_json::to_string(&l).expect("a line encodes");
        assert!(!stored.contains('\n'));
        let back: crate::site::syslog::Line = serde_json::from_str(&stored).expect("and decodes");
        assert_eq!(back, l);
    }
}

/// The configuration file through `check` (names not resolved: the result
/// depends on the text alone). A file that loads prints a normalized form
/// that loads again to the same normalized form.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Config::parse("fuzz.toml", text) else {
        return;
    };
    let normal = c.to_normalized_toml();
    match Config::parse("normalized.toml", &normal) {
        Ok(again) => assert_eq!(again.to_normalized_toml(), normal),
        Err(e) => panic!("the normalized form does not load: {e}\n{normal}"),
    }
}

/// The phones file, checked against the fixture's zone.
pub fn phones(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut inventory = crate::inventory::Inventory::default();
    let _ = crate::config::parse_phones_file(
        "phones.toml",
        text,
        fixture().dns.as_ref(),
        &mut inventory,
    );
}

/// The CSV import: every row is either taken or refused with a reason.
pub fn csv(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = crate::inventory::csv::parse(&text) {
        let _ = crate::inventory::csv::report(&parsed);
    }
}

/// A harness: panics when a property is violated.
pub type Harness = fn(&[u8]);

/// The harnesses by name, as the corpus folders are named.
pub const TARGETS: &[(&str, Harness)] = &[
    ("dhcp", dhcp),
    ("dns", dns),
    ("tftp", tftp),
    ("http", http),
    ("sntp", sntp),
    ("config", config),
    ("phones", phones),
    ("csv", csv),
    ("syslog", syslog),
];
