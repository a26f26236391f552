//! Hostile input over the wire: crafted DHCP, DNS and TFTP packets sent at
//! the real server in network namespaces. Each must end in a drop (a debug
//! event, and a counter that moves) or the protocol's own error; the server
//! keeps serving, its log stays one JSON object per line, and its state
//! survives a restart.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{Lab, base_config, pattern};
use dialtone::demo::LAB_DNS;
use dialtone::dhcp::client::{ClientMessage, ParsedReply};
use dialtone::dhcp::packet::{ACK, DECLINE, DISCOVER, NAK, OFFER, RELEASE, REQUEST};
use dialtone::files::tftp::packet::rrq;
use dialtone::units::Mac;

const WAIT: Duration = Duration::from_secs(3);
const SERVER_ID: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);

fn mac(a: u8, b: u8) -> Mac {
    Mac([0x02, 0x66, 0x66, 0x00, a, b])
}

/// How much each counter grew from `before` to `after`.
fn grew(before: &HashMap<String, u64>, after: &HashMap<String, u64>, name: &str) -> u64 {
    let b = before.get(name).copied().unwrap_or(0);
    let a = *after
        .get(name)
        .unwrap_or_else(|| panic!("no counter {name}: {after:?}"));
    a - b
}

/// Every line of the server's log is one JSON object (nothing a client
/// sent broke a line or the quoting), and nothing panicked.
fn log_is_whole(lab: &Lab) -> String {
    let log = lab.log();
    for line in log.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "a log line that is not one JSON object: {line:?}"
        );
    }
    assert!(!log.contains("panicked"), "{log}");
    log
}

/// DISCOVER + REQUEST through the probe with `extra` options; the ACK.
fn lease(p: &common::Probe, m: Mac, xid: u32, extra: &[(u8, Vec<u8>)]) -> ParsedReply {
    let mut d = ClientMessage::new(DISCOVER, m, xid).broadcast();
    for (code, data) in extra {
        d = d.option(*code, data.clone());
    }
    p.send(&d);
    let offer = p.reply(xid, WAIT).expect("OFFER");
    assert_eq!(offer.msg_type(), Some(OFFER));
    let mut r = ClientMessage::new(REQUEST, m, xid + 1)
        .broadcast()
        .requested_ip(offer.yiaddr)
        .server_id(SERVER_ID);
    for (code, data) in extra {
        r = r.option(*code, data.clone());
    }
    p.send(&r);
    let ack = p.reply(xid + 1, WAIT).expect("ACK");
    assert_eq!(ack.msg_type(), Some(ACK));
    ack
}

fn lease_of(leases: &[serde_json::Value], ip: Ipv4Addr) -> &serde_json::Value {
    leases
        .iter()
        .find(|l| l["ip"] == ip.to_string().as_str())
        .unwrap_or_else(|| panic!("no lease for {ip}: {leases:?}"))
}

#[test]
fn hostile_dhcp_packets_are_dropped_counted_and_leave_the_state_whole() {
    let mut lab = Lab::new("hdhcp");
    lab.write_config(&base_config());
    lab.start();
    let voice = lab.voice_if.clone();
    let p = lab.probe(&voice);
    let before = lab.counters();

    // Ten packets that are not readable DHCP requests.
    let discover = || {
        ClientMessage::new(DISCOVER, mac(1, 1), 1)
            .broadcast()
            .encode()
    };
    let mut bad: Vec<(&str, Vec<u8>)> = Vec::new();
    for len in [0usize, 3, 100, 239] {
        let mut b = discover();
        b.truncate(len);
        bad.push(("short", b));
    }
    let mut b = discover();
    b[2] = 17; // hlen over 16
    bad.push(("hlen", b));
    let mut b = discover();
    b[0] = 2; // a BOOTREPLY
    bad.push(("reply", b));
    let mut b = discover();
    b.truncate(243);
    b.extend_from_slice(&[12, 200, b'x', b'y']); // runs past the end
    bad.push(("runaway", b));
    let mut b = ClientMessage::new(DISCOVER, mac(1, 1), 1)
        .broadcast()
        .option(52, vec![3])
        .encode();
    b[44..56].copy_from_slice(b"pxelinux.0\0\0"); // option 52 over a file name
    bad.push(("overload", b));
    bad.push((
        "client-id",
        ClientMessage::new(DISCOVER, mac(1, 1), 1)
            .option(61, vec![7u8; 300])
            .encode(),
    ));
    let mut b = discover();
    b.truncate(243);
    b.extend_from_slice(&[53, 1, 1, 53, 1, 3, 255]); // two message types
    bad.push(("two-types", b));
    for (_, b) in &bad {
        p.send_raw(b.clone());
    }
    assert!(
        p.drain(Duration::from_millis(600)).is_empty(),
        "an unreadable packet was answered"
    );

    // A packet without END is read to its last byte (as Kea and dnsmasq
    // do) and answered.
    let mut b = ClientMessage::new(DISCOVER, mac(1, 2), 20)
        .broadcast()
        .requests(&[1, 3])
        .encode();
    let end = b.iter().rposition(|&x| x == 255).unwrap();
    b.truncate(end);
    p.send_raw(b);
    let r = p.reply(20, WAIT).expect("an OFFER without END");
    assert_eq!(r.msg_type(), Some(OFFER));

    // A bad magic cookie from an unknown client: BOOTP, which is answered
    // for reservations only: ignored.
    let mut b = ClientMessage::new(DISCOVER, mac(1, 3), 30).encode();
    b[236] = 0;
    p.send_raw(b);
    assert!(p.reply(30, Duration::from_millis(600)).is_none());

    // The same option repeated is concatenated (RFC 3396): two halves of
    // a host name make one.
    let ack = lease(
        &p,
        mac(1, 4),
        40,
        &[(12, b"desk".to_vec()), (12, b"phone".to_vec())],
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lease_of(&lab.leases(), ack.yiaddr)["hostname"], "deskphone");

    // A 255-byte host name, vendor class and client id full of NUL,
    // newlines, quotes and bytes that are not UTF-8.
    let nasty: Vec<u8> = (0..255u32)
        .map(|i| [0u8, b'\n', b'"', 0xff, 0xc3, b'\\', b'a', b'{'][(i % 8) as usize])
        .collect();
    let hostile = lease(
        &p,
        mac(1, 5),
        50,
        &[
            (12, nasty.clone()),
            (60, nasty.clone()),
            (61, nasty.clone()),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let leases = lab.leases();
    let stored = lease_of(&leases, hostile.yiaddr);
    let host = stored["hostname"].as_str().unwrap_or("");
    assert!(
        host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "a host name stored unclean: {host:?}"
    );
    let vendor = stored["vendor_class"].as_str().expect("vendor class kept");
    assert!(
        vendor.chars().all(|c| (' '..='~').contains(&c)),
        "a vendor class stored with control bytes: {vendor:?}"
    );

    // A unicast REQUEST for no subnet this server has (from a relay it does
    // not know, and renewing an address of another network): no answer
    // that hands out anything, no crash.
    p.send(
        &ClientMessage::new(REQUEST, mac(1, 6), 60)
            .giaddr(Ipv4Addr::new(10, 77, 0, 1))
            .requested_ip(Ipv4Addr::new(10, 77, 0, 5)),
    );
    assert!(p.reply(60, Duration::from_millis(600)).is_none());
    lab.cli.addr(&voice, "10.250.0.9/24").unwrap();
    p.send_to(
        &ClientMessage::new(REQUEST, mac(1, 6), 61).ciaddr(Ipv4Addr::new(10, 77, 0, 5)),
        SocketAddr::from((SERVER_ID, 67)),
    );
    if let Some(r) = p.reply(61, Duration::from_millis(800)) {
        assert_eq!(r.msg_type(), Some(NAK), "only a NAK may answer it");
    }

    // A DECLINE storm from one MAC: at most four addresses in quarantine.
    for round in 0..8u32 {
        let ack = lease(&p, mac(1, 7), 100 + 10 * round, &[]);
        p.send(
            &ClientMessage::new(DECLINE, mac(1, 7), 105 + 10 * round)
                .requested_ip(ack.yiaddr)
                .server_id(SERVER_ID),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let leases = lab.leases();
    let declined = leases
        .iter()
        .filter(|l| l["mac"] == mac(1, 7).to_string().as_str() && l["state"] == "declined")
        .count();
    assert_eq!(declined, 4, "{leases:?}");

    // RELEASE of another client's lease changes nothing.
    let victim = lease(&p, mac(1, 8), 200, &[]);
    p.send(
        &ClientMessage::new(RELEASE, mac(1, 9), 210)
            .ciaddr(victim.yiaddr)
            .server_id(SERVER_ID),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lease_of(&lab.leases(), victim.yiaddr)["state"], "bound");

    let after = lab.counters();
    assert!(
        grew(&before, &after, "dhcp_parse_failed") >= bad.len() as u64,
        "{after:?}"
    );
    // The BOOTP request, the unknown relay, the unhonoured RELEASE.
    assert!(grew(&before, &after, "dhcp_ignored") >= 3, "{after:?}");
    let log = log_is_whole(&lab);
    for reason in [
        "shorter than a DHCP message",
        "is not Ethernet",
        "not a BOOTREQUEST",
        "option 12 runs past the end of the packet",
        "runs past the end of the sname field",
        "client identifier of 300 bytes",
        "message type 0 is not one a client sends",
    ] {
        assert!(log.contains(reason), "no drop logged for {reason:?}");
    }
    assert!(log.contains("goes back to the pool instead"), "{log}");

    // The database holding all of this opens again: the server restarts
    // with every lease, and the hostile client renews its address.
    lab.stop();
    lab.start();
    p.send(
        &ClientMessage::new(REQUEST, mac(1, 5), 300)
            .broadcast()
            .requested_ip(hostile.yiaddr)
            .option(61, nasty),
    );
    let r = p.reply(300, WAIT).expect("the renewal after a restart");
    assert_eq!((r.msg_type(), r.yiaddr), (Some(ACK), hostile.yiaddr));
    assert_eq!(lease_of(&lab.leases(), victim.yiaddr)["state"], "bound");
    log_is_whole(&lab);
    lab.stop();
}

/// A UDP DNS client in the phone namespace at 10.250.0.9.
fn dns_socket(lab: &Lab) -> UdpSocket {
    lab.cli
        .run_in(|| {
            let s = UdpSocket::bind(("10.250.0.9", 0))?;
            s.set_read_timeout(Some(Duration::from_millis(700)))?;
            Ok(s)
        })
        .unwrap()
}

/// A query header: `id`, flags 0x0100 (RD), the given counts.
fn header(id: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend_from_slice(&[1, 0]);
    for c in [qd, an, ns, ar] {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

fn qname(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = header(id, 1, 0, 0, 0);
    q.extend(qname(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

const OPT: [u8; 11] = [0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0];

fn ask(s: &UdpSocket, q: &[u8]) -> Option<Vec<u8>> {
    s.send_to(q, ("10.250.0.1", 53)).unwrap();
    let mut buf = [0u8; 4096];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

fn rcode(answer: &[u8]) -> u8 {
    answer[3] & 0x0f
}

#[test]
fn hostile_dns_queries_get_formerr_or_nothing_and_tcp_is_bounded() {
    let mut lab = Lab::new("hdns");
    let voice = lab.voice_if.clone();
    lab.cli.addr(&voice, "10.250.0.9/24").unwrap();
    lab.write_config(&format!("{}{LAB_DNS}", base_config()));
    lab.start();
    let s = dns_socket(&lab);
    let before = lab.counters();

    // A compression pointer to itself.
    let mut looped = header(0x0101, 1, 0, 0, 0);
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    // Two pointers to each other.
    let mut ping_pong = header(0x0102, 1, 0, 0, 0);
    ping_pong.extend_from_slice(&[1, b'a', 0xc0, 17, 0xc0, 12, 0, 1, 0, 1]);
    // A label of 64 bytes (its length byte is a reserved label type).
    let mut long_label = header(0x0103, 1, 0, 0, 0);
    long_label.push(64);
    long_label.extend(vec![b'a'; 64]);
    long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
    // A name of 320 bytes in five labels of 63.
    let mut long_name = header(0x0104, 1, 0, 0, 0);
    for _ in 0..5 {
        long_name.push(63);
        long_name.extend(vec![b'b'; 63]);
    }
    long_name.extend_from_slice(&[0, 0, 1, 0, 1]);
    // Five questions announced, one sent.
    let mut counts = query(0x0105, "vm40ic1.lab.voip", 1);
    counts[5] = 5;
    // Two OPT records.
    let mut two_opt = query(0x0106, "vm40ic1.lab.voip", 1);
    two_opt[11] = 2;
    two_opt.extend_from_slice(&OPT);
    two_opt.extend_from_slice(&OPT);
    for (what, q) in [
        ("a pointer loop", &looped),
        ("pointers to each other", &ping_pong),
        ("a 64-byte label", &long_label),
        ("a 320-byte name", &long_name),
        ("counts past the data", &counts),
        ("two OPT records", &two_opt),
    ] {
        let a = ask(&s, q).unwrap_or_else(|| panic!("no answer to {what}"));
        assert_eq!(&a[..2], &q[..2], "{what}: the query's ID");
        assert_eq!(rcode(&a), 1, "{what}: FORMERR expected, got {a:?}");
        assert!(a.len() <= 512, "{what}");
    }

    // A response (QR=1) is dropped: never answered, never a loop between
    // two servers.
    let mut response = query(0x0107, "vm40ic1.lab.voip", 1);
    response[2] |= 0x80;
    assert!(ask(&s, &response).is_none(), "a response was answered");
    // Three bytes: nothing to answer.
    assert!(ask(&s, &[1, 2, 3]).is_none());

    // A query of 900 bytes without EDNS (padded by an additional record):
    // answered, and the answer within 512 bytes.
    let mut big = query(0x0108, "vm40ic1.lab.voip", 1);
    big[11] = 1;
    big.extend_from_slice(&[0, 0, 16, 0, 1, 0, 0, 0, 0]);
    let txt = pattern(800, 3);
    big.extend_from_slice(&((txt.len() + 4) as u16).to_be_bytes());
    big.extend_from_slice(&[255]);
    big.extend_from_slice(&txt[..255]);
    big.extend_from_slice(&[255]);
    big.extend_from_slice(&txt[255..510]);
    big.extend_from_slice(&[255]);
    big.extend_from_slice(&txt[510..765]);
    big.extend_from_slice(&[35]);
    big.extend_from_slice(&txt[765..800]);
    assert!(big.len() > 512);
    let a = ask(&s, &big).expect("an answer to a long query");
    assert!(a.len() <= 512, "{} bytes", a.len());
    assert!(rcode(&a) == 0 || rcode(&a) == 1, "{a:?}");

    // ANY gets one RRset (RFC 8482): the apex's SOA, not its NS too.
    let a = ask(&s, &query(0x0109, "lab.voip", 255)).expect("ANY answered");
    assert_eq!(rcode(&a), 0);
    assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer record");

    // Still serving.
    let a = ask(&s, &query(0x010a, "vm40ic1.lab.voip", 1)).expect("an answer");
    assert_eq!(rcode(&a), 0);
    assert_eq!(&a[a.len() - 4..], &[10, 250, 1, 151]);

    // TCP: a client that sends half a length prefix and stalls is closed
    // at the deadline; one address holds at most 8 connections, and
    // another address is served meanwhile.
    let stalled: Vec<TcpStream> = lab
        .cli
        .run_in(|| {
            let mut v = Vec::new();
            for _ in 0..12 {
                let mut c = TcpStream::connect(("10.250.0.1", 53))?;
                c.write_all(&[0])?;
                c.set_read_timeout(Some(Duration::from_secs(8)))?;
                v.push(c);
            }
            Ok(v)
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    lab.cli.addr(&voice, "10.250.0.10/24").unwrap();
    let other = lab
        .cli
        .run_in(|| {
            let local = std::net::SocketAddr::from(([10, 250, 0, 10], 0));
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            sock.bind(&local.into())?;
            sock.connect(&SocketAddr::from(([10, 250, 0, 1], 53)).into())?;
            let mut c: TcpStream = sock.into();
            c.set_read_timeout(Some(Duration::from_secs(3)))?;
            let q = query(0x0201, "vm40ic2.lab.voip", 1);
            c.write_all(&(q.len() as u16).to_be_bytes())?;
            c.write_all(&q)?;
            let mut len = [0u8; 2];
            c.read_exact(&mut len)?;
            let mut a = vec![0u8; usize::from(u16::from_be_bytes(len))];
            c.read_exact(&mut a)?;
            Ok(a)
        })
        .unwrap();
    assert_eq!(&other[..2], &[0x02, 0x01]);
    assert_eq!(&other[other.len() - 4..], &[10, 250, 1, 152]);
    // The 9th to 12th connections were closed at once; the first 8 at the
    // deadline (5 s).
    let started = Instant::now();
    let mut closed_at = Vec::new();
    for mut c in stalled {
        let mut buf = [0u8; 16];
        let r = c.read(&mut buf);
        assert!(
            matches!(r, Ok(0)) || r.is_err(),
            "a stalled connection got {r:?}"
        );
        closed_at.push(started.elapsed());
    }
    assert!(
        closed_at.iter().all(|t| *t < Duration::from_secs(7)),
        "{closed_at:?}"
    );

    let after = lab.counters();
    assert!(grew(&before, &after, "dns_formerr") >= 6, "{after:?}");
    assert!(grew(&before, &after, "dns_dropped") >= 2, "{after:?}");
    // Four over the cap, eight stalled.
    assert!(grew(&before, &after, "dns_tcp_refused") >= 12, "{after:?}");
    let log = log_is_whole(&lab);
    assert_eq!(
        log.matches("too many DNS TCP connections from one address")
            .count(),
        1,
        "one warning per burst"
    );
    lab.stop();
}

const TFTP: &str = "192.168.1.1:69";

fn tftp_socket(lab: &Lab) -> UdpSocket {
    lab.cli
        .run_in(|| {
            let s = UdpSocket::bind("192.168.1.50:0")?;
            s.set_read_timeout(Some(Duration::from_millis(700)))?;
            Ok(s)
        })
        .unwrap()
}

/// Sends `packet` to port 69; the answer, if any.
fn tftp_ask(s: &UdpSocket, packet: &[u8]) -> Option<(Vec<u8>, SocketAddr)> {
    s.send_to(packet, TFTP).unwrap();
    let mut buf = [0u8; 2048];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, from)| (buf[..n].to_vec(), from))
}

fn error_code(p: &[u8]) -> Option<u16> {
    (p.len() >= 4 && p[..2] == [0, 5]).then(|| u16::from_be_bytes([p[2], p[3]]))
}

#[test]
fn hostile_tftp_packets_get_errors_or_nothing_and_transfers_go_on() {
    let mut lab = Lab::new("htftp");
    let root = lab.dir.join("tree");
    std::fs::create_dir_all(&root).unwrap();
    let image = pattern(20_000, 5);
    std::fs::write(root.join("fw.img"), &image).unwrap();
    std::fs::write(lab.dir.join("secret.txt"), b"outside").unwrap();
    std::os::unix::fs::symlink(lab.dir.join("secret.txt"), root.join("out.img")).unwrap();
    lab.write_config(&format!(
        "{}\n[files]\nroot = \"{}\"\nhttp = [\"0.0.0.0:8088\"]\n",
        base_config(),
        root.display()
    ));
    let native = lab.native_if.clone();
    lab.cli.addr(&native, "192.168.1.50/24").unwrap();
    lab.start();
    let s = tftp_socket(&lab);
    let before = lab.counters();

    // Packets under 4 bytes, and an ERROR with no message, to port 69:
    // never a transfer.
    for p in [
        &[][..],
        &[0][..],
        &[0, 1][..],
        &[0, 1, 0][..],
        &[0, 5, 0, 0][..],
    ] {
        if let Some((a, _)) = tftp_ask(&s, p) {
            assert_eq!(error_code(&a), Some(4), "{p:?} got {a:?}");
        }
    }
    // A request without its final NUL, options without theirs, an option
    // without a value.
    let mut no_nul = rrq("fw.img", &[]);
    no_nul.pop();
    let mut opt_no_nul = rrq("fw.img", &[("blksize", "1024")]);
    opt_no_nul.pop();
    let mut no_value = rrq("fw.img", &[]);
    no_value.extend_from_slice(b"blksize\0");
    // A name over 512 bytes, and names with NUL, %2e%2e and a symlink out
    // of the root.
    let long = rrq(&"a".repeat(600), &[]);
    // A mode that is a path, then a stray word.
    let odd_mode = b"\x00\x01fw.img\x00../secret.txt\x00octet\x00".to_vec();
    let dots = rrq("%2e%2e/secret.txt", &[]);
    let link = rrq("out.img", &[]);
    let up = rrq("../secret.txt", &[]);
    for (what, p, want) in [
        ("no final NUL", no_nul, &[4u16][..]),
        ("an option without NUL", opt_no_nul, &[4, 8][..]),
        ("an option without a value", no_value, &[4, 8][..]),
        ("a 600-byte name", long, &[1, 2, 4][..]),
        ("a mode that is a path", odd_mode, &[4][..]),
        ("%2e%2e", dots, &[1, 2][..]),
        ("a symlink out of the root", link, &[2][..]),
        ("..", up, &[2][..]),
    ] {
        let (a, _) = tftp_ask(&s, &p).unwrap_or_else(|| panic!("{what}: no answer"));
        let code = error_code(&a).unwrap_or_else(|| panic!("{what}: not an ERROR: {a:?}"));
        assert!(want.contains(&code), "{what}: ERROR {code}");
    }
    for _ in 0..3 {
        let mut a = [0u8; 64];
        assert!(
            s.recv_from(&mut a).is_err(),
            "a refusal sent a second packet"
        );
    }

    // Options out of range are clamped, or left out of the OACK; 300
    // options, repeated ones, count once each.
    let mut options: Vec<(String, String)> = vec![
        ("blksize".into(), "99999".into()),
        ("timeout".into(), "0".into()),
        ("windowsize".into(), "70000".into()),
        ("blksize".into(), "8".into()),
    ];
    for i in 0..300 {
        options.push((format!("x-{i}"), "1".into()));
    }
    let refs: Vec<(&str, &str)> = options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut req = rrq("fw.img", &refs);
    req.truncate(req.len().min(1400));
    if req.last() != Some(&0) {
        req.push(0);
    }
    let (a, tid) = tftp_ask(&s, &req).expect("an answer to 300 options");
    match error_code(&a) {
        Some(code) => assert!(code == 8 || code == 4, "ERROR {code}"),
        None => {
            assert_eq!(&a[..2], &[0, 6], "an OACK: {a:?}");
            let oack = String::from_utf8_lossy(&a[2..]).to_string();
            let fields: Vec<&str> = oack.split('\0').filter(|f| !f.is_empty()).collect();
            let blk = fields
                .iter()
                .position(|f| *f == "blksize")
                .map(|i| fields[i + 1].parse::<u32>().unwrap());
            if let Some(b) = blk {
                assert!((8..=65464).contains(&b), "blksize {b}");
            }
            assert!(
                fields.iter().filter(|f| **f == "blksize").count() <= 1,
                "{oack}"
            );
            assert!(!fields.iter().any(|f| f.starts_with("x-")), "{oack}");
            if let Some(i) = fields.iter().position(|f| *f == "timeout") {
                assert_ne!(fields[i + 1], "0", "timeout 0 accepted: {oack}");
            }
            let mut abort = vec![0, 5, 0, 8];
            abort.extend_from_slice(b"enough\0");
            s.send_to(&abort, tid).unwrap();
        }
    }

    // A transfer in progress; a stranger's packets to its port get ERROR
    // 5, sent to the stranger alone; an ACK storm of duplicates sends no
    // block twice; the transfer ends byte-exact.
    let c = tftp_socket(&lab);
    c.send_to(&rrq("fw.img", &[]), TFTP).unwrap();
    let mut buf = [0u8; 1024];
    let (n, tid) = c.recv_from(&mut buf).expect("block 1");
    assert_eq!(&buf[..4], &[0, 3, 0, 1]);
    let mut got = buf[4..n].to_vec();
    let stranger = tftp_socket(&lab);
    for p in [&[0, 4, 0, 1][..], &[0, 3, 0, 1, 9, 9][..], &[0, 1][..]] {
        stranger.send_to(p, tid).unwrap();
        let (n, from) = stranger.recv_from(&mut buf).expect("ERROR 5");
        assert_eq!((error_code(&buf[..n]), from), (Some(5), tid));
    }
    let mut block = 1u16;
    loop {
        for _ in 0..20 {
            c.send_to(&[0, 4, (block >> 8) as u8, block as u8], tid)
                .unwrap();
        }
        let (n, _) = c.recv_from(&mut buf).expect("the next block");
        assert_eq!(&buf[..2], &[0, 3]);
        let b = u16::from_be_bytes([buf[2], buf[3]]);
        assert_eq!(b, block + 1, "a block not asked for");
        got.extend_from_slice(&buf[4..n]);
        block = b;
        if n < 516 {
            c.send_to(&[0, 4, (block >> 8) as u8, block as u8], tid)
                .unwrap();
            break;
        }
    }
    assert_eq!(got, image);
    // No duplicate of any block came meanwhile.
    assert!(c.recv_from(&mut buf).is_err(), "a block came twice");

    let after = lab.counters();
    assert!(grew(&before, &after, "tftp_dropped") >= 5, "{after:?}");
    assert!(grew(&before, &after, "tftp_refused") >= 4, "{after:?}");
    assert!(grew(&before, &after, "tftp_wrong_tid") >= 3, "{after:?}");
    let log = log_is_whole(&lab);
    assert!(!log.contains("outside"), "{log}");
    lab.stop();
}
