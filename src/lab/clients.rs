//! The clients an emulated phone speaks with: one exchange each, on real
//! sockets. Each runs on the calling thread, so call them from a thread
//! inside the phones' namespace (`Netns::run_in`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::dhcp::client::{ClientMessage, ParsedReply};
use crate::dhcp::options as opt;
use crate::units::Mac;

const DHCPDISCOVER: u8 = 1;
const DHCPOFFER: u8 = 2;
const DHCPREQUEST: u8 = 3;
const DHCPACK: u8 = 5;
const DHCPNAK: u8 = 6;
const DHCPINFORM: u8 = 8;

/// Who a phone says it is in its DHCP messages, and what it asks for.
#[derive(Debug, Clone)]
pub struct Identity {
    pub mac: Mac,
    /// Options sent as they are (60, 77, ...).
    pub options: Vec<(u8, Vec<u8>)>,
    /// Option 55.
    pub requests: Vec<u8>,
}

impl Identity {
    fn message(&self, msg_type: u8, xid: u32) -> ClientMessage {
        let mut m = ClientMessage::new(msg_type, self.mac, xid).requests(&self.requests);
        for (code, data) in &self.options {
            m = m.option(*code, data.clone());
        }
        m
    }
}

fn dhcp_socket(interface: &str, addr: Ipv4Addr) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.bind(&SocketAddr::from((addr, 68)).into())
        .context("cannot bind the DHCP client port 68")?;
    let sock: UdpSocket = s.into();
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(sock)
}

/// Sends `m` up to three times and returns the first reply with its xid and
/// one of the `wanted` message types.
fn exchange(
    sock: &UdpSocket,
    m: &ClientMessage,
    to: SocketAddr,
    wanted: &[u8],
) -> anyhow::Result<ParsedReply> {
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        sock.send_to(&m.encode(), to)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let Ok(n) = sock.recv(&mut buf) else {
                continue;
            };
            if let Some(r) = ParsedReply::parse(&buf[..n])
                && r.xid == m.xid
                && r.msg_type().is_some_and(|t| wanted.contains(&t))
            {
                return Ok(r);
            }
        }
    }
    bail!("no answer to DHCP message type {}", m.msg_type)
}

fn xid() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0x1234_5678)
}

/// A lease as a phone without an address gets it: DISCOVER, OFFER,
/// REQUEST, ACK, broadcast on `interface`. Returns the ACK.
pub fn lease(interface: &str, who: &Identity) -> anyhow::Result<ParsedReply> {
    let sock = dhcp_socket(interface, Ipv4Addr::UNSPECIFIED)?;
    let to = SocketAddr::from((Ipv4Addr::BROADCAST, 67));
    let xid = xid();
    let offer = exchange(
        &sock,
        &who.message(DHCPDISCOVER, xid).broadcast(),
        to,
        &[DHCPOFFER],
    )?;
    let server = offer
        .get(opt::SERVER_ID)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(Ipv4Addr::from)
        .context("an offer without a server identifier")?;
    let request = who
        .message(DHCPREQUEST, xid)
        .broadcast()
        .requested_ip(offer.yiaddr)
        .server_id(server);
    let ack = exchange(&sock, &request, to, &[DHCPACK, DHCPNAK])?;
    if ack.msg_type() == Some(DHCPNAK) {
        bail!("the server refused the request (DHCPNAK)");
    }
    Ok(ack)
}

/// DHCPINFORM from a host that has its address already (`address`, on
/// `interface`), sent to `server`: the options without a lease.
pub fn inform(
    interface: &str,
    address: Ipv4Addr,
    server: Ipv4Addr,
    who: &Identity,
) -> anyhow::Result<ParsedReply> {
    let sock = dhcp_socket(interface, address)?;
    let m = who.message(DHCPINFORM, xid()).ciaddr(address);
    exchange(&sock, &m, SocketAddr::from((server, 67)), &[DHCPACK])
}

/// One DNS question over UDP from `from`; the answers as text, sorted
/// (`A`: the address; `SRV`: "priority weight port target"), or the
/// response code when there are none.
pub fn ask(
    server: Ipv4Addr,
    from: Ipv4Addr,
    name: &str,
    qtype: RecordType,
) -> anyhow::Result<Vec<String>> {
    let qname = Name::from_ascii(name).with_context(|| format!("`{name}` is not a DNS name"))?;
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(qname, qtype));
    let sock = UdpSocket::bind((from, 0))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    sock.send_to(&m.to_vec()?, (server, 53))?;
    let mut buf = [0u8; 1500];
    let n = sock
        .recv(&mut buf)
        .with_context(|| format!("no DNS answer from {server}"))?;
    let r = Message::from_vec(&buf[..n])?;
    let mut out: Vec<String> = r
        .answers
        .iter()
        .map(|rec| match &rec.data {
            RData::A(a) => a.0.to_string(),
            RData::SRV(s) => format!("{} {} {} {}", s.priority, s.weight, s.port, s.target),
            other => other.to_string(),
        })
        .collect();
    out.sort();
    if out.is_empty() {
        out.push(r.metadata.response_code.to_string());
    }
    Ok(out)
}

/// One SNTP question from `from`: the server's stratum and its clock minus
/// ours, in seconds.
pub fn sntp(server: Ipv4Addr, from: Ipv4Addr) -> anyhow::Result<(u8, f64)> {
    let sock = UdpSocket::bind((from, 0))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = [0u8; 48];
    req[0] = (4 << 3) | 3;
    let sent = SystemTime::now();
    req[40..48].copy_from_slice(&crate::time::sntp::ntp_timestamp(sent).to_be_bytes());
    sock.send_to(&req, (server, 123))?;
    let mut buf = [0u8; 68];
    let n = sock
        .recv(&mut buf)
        .with_context(|| format!("no SNTP answer from {server}"))?;
    if n < 48 || buf[0] & 7 != 4 {
        bail!("not an SNTP server reply");
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&buf[40..48]);
    let theirs = crate::time::sntp::unix_time(u64::from_be_bytes(ts), sent);
    let ours = SystemTime::now();
    let offset = match theirs.duration_since(ours) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    Ok((buf[1], offset))
}

/// An HTTP answer: status and body.
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One HTTP/1.1 GET of `path` from `server:port`, from `from`; `range`
/// asks for the first bytes only (`Range: bytes=0-N`).
pub fn http_get(
    server: Ipv4Addr,
    port: u16,
    from: Ipv4Addr,
    path: &str,
    range: Option<u64>,
    agent: &str,
) -> anyhow::Result<Http> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((from, 0)).into())?;
    sock.connect_timeout(
        &SocketAddr::from((server, port)).into(),
        Duration::from_secs(2),
    )
    .with_context(|| format!("cannot connect to {server}:{port}"))?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let range = range
        .map(|n| format!("Range: bytes=0-{}\r\n", n.saturating_sub(1)))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {server}:{port}\r\nUser-Agent: {agent}\r\n{range}Connection: close\r\n\r\n"
    )?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let head_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("an HTTP answer without a header end")?;
    let head = String::from_utf8_lossy(&all[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an HTTP answer without a status")?;
    Ok(Http {
        status,
        body: all[head_end + 4..].to_vec(),
    })
}

/// One TFTP read (octet, blksize 1468, lockstep) of `name` from `server`,
/// from `from`: the file, or the server's error.
pub fn tftp_get(server: Ipv4Addr, from: Ipv4Addr, name: &str) -> anyhow::Result<Vec<u8>> {
    use crate::files::tftp::packet::{self, Packet};
    let sock = UdpSocket::bind((from, 0))?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    let rrq = packet::rrq(name, &[("blksize", "1468")]);
    let mut blksize = 512;
    let mut out = Vec::new();
    let mut expect: u16 = 1;
    let mut peer = None;
    let mut last_sent = rrq.clone();
    let mut to = SocketAddr::from((server, 69));
    let mut buf = vec![0u8; 65536];
    let mut quiet = 0;
    sock.send_to(&rrq, to)?;
    loop {
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => {
                quiet += 1;
                if quiet > 5 {
                    bail!("the TFTP server stopped answering");
                }
                sock.send_to(&last_sent, to)?;
                continue;
            }
        };
        if peer.is_some_and(|p| p != src) {
            continue;
        }
        quiet = 0;
        peer = Some(src);
        to = src;
        match packet::parse(&buf[..n]) {
            Ok(Packet::OptionAck) => {
                blksize = packet::oack_value(&buf[..n], "blksize")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(512);
                last_sent = packet::ack(0);
            }
            Ok(Packet::Data { block, data }) => {
                if block == expect {
                    out.extend_from_slice(data);
                    expect = expect.wrapping_add(1);
                    last_sent = packet::ack(block);
                    if data.len() < blksize {
                        sock.send_to(&last_sent, to)?;
                        return Ok(out);
                    }
                }
            }
            Ok(Packet::Error { code, message }) => bail!("TFTP error {code}: {message}"),
            _ => continue,
        }
        sock.send_to(&last_sent, to)?;
    }
}
