//! DNS over UDP: one receive loop per interface that answers inline, with a
//! cache of encoded answers.
//!
//! hickory-server spawns a task per UDP query and decodes each into a full
//! message; phones ask the same few names over and over, so dialtone answers
//! UDP itself: a query of the usual shape (one question, no records but an
//! optional EDNS OPT) is looked up by its lowercased name, type, EDNS size and
//! the asking interface's address, and a cached answer is sent with the
//! query's ID, RD bit and question bytes (so the asker's letter case comes
//! back). Everything else, and every cache miss, goes through hickory-proto's
//! decoder and encoder (`respond`). Cached answers are dropped when the zone
//! changes (health, lease names) and after one second, so lease expiry shows.
//! TCP is `tcp.rs`, through the same `respond`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::reply::{Decision, EDNS_PAYLOAD, decide, forward, reply_edns};
use super::server::SharedZone;
use super::zone::Zone;
use crate::net::ifaces;

const CACHE_MAX: usize = 8192;
const CACHE_AGE: Duration = Duration::from_secs(1);
/// Queries forwarded upstream and waiting for the answer, per interface.
pub const FORWARDS_IN_FLIGHT: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The question name in wire form, lowercased.
    name: Vec<u8>,
    qtype: u16,
    qclass: u16,
    /// The answer size limit: 512 without EDNS.
    limit: u16,
    edns: bool,
    appliance: Option<Ipv4Addr>,
}

/// A query of the usual shape, read without decoding it into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quick {
    pub id: u16,
    /// End of the question section in the query.
    pub question_end: usize,
    pub key: Key,
}

fn u16_at(p: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]))
}

/// Reads a standard query with one question and at most an OPT record;
/// anything else returns None and takes the full decoder.
pub fn quick_parse(p: &[u8], appliance: Option<Ipv4Addr>) -> Option<Quick> {
    if p.len() < 17 {
        return None;
    }
    let flags = p[2];
    // QR = 0, opcode 0 (QUERY), TC = 0.
    if flags & 0x80 != 0 || (flags >> 3) & 0x0f != 0 || flags & 0x02 != 0 {
        return None;
    }
    let (qd, an, ns, ar) = (u16_at(p, 4)?, u16_at(p, 6)?, u16_at(p, 8)?, u16_at(p, 10)?);
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut i = 12;
    let mut name = Vec::with_capacity(32);
    loop {
        let len = usize::from(*p.get(i)?);
        if len == 0 {
            name.push(0);
            i += 1;
            break;
        }
        if len > 63 || name.len() + len + 1 > 255 {
            return None;
        }
        name.push(len as u8);
        name.extend(
            p.get(i + 1..i + 1 + len)?
                .iter()
                .map(u8::to_ascii_lowercase),
        );
        i += 1 + len;
    }
    let qtype = u16_at(p, i)?;
    let qclass = u16_at(p, i + 2)?;
    let question_end = i + 4;
    let (limit, edns) = if ar == 1 {
        // The OPT pseudo-record: root name, type 41, class = payload size.
        if p.get(question_end) != Some(&0) || u16_at(p, question_end + 1)? != 41 {
            return None;
        }
        let payload = u16_at(p, question_end + 3)?;
        // Extended RCODE and version must be 0.
        if p.get(question_end + 5) != Some(&0) || p.get(question_end + 6) != Some(&0) {
            return None;
        }
        let rdlen = usize::from(u16_at(p, question_end + 9)?);
        if question_end + 11 + rdlen != p.len() {
            return None;
        }
        (payload.clamp(512, EDNS_PAYLOAD), true)
    } else {
        if question_end != p.len() {
            return None;
        }
        (512, false)
    };
    Some(Quick {
        id: u16::from_be_bytes([p[0], p[1]]),
        question_end,
        key: Key {
            name,
            qtype,
            qclass,
            limit,
            edns,
            appliance,
        },
    })
}

/// What to do with one datagram.
#[derive(Debug)]
pub enum Outcome {
    Reply(Vec<u8>),
    /// Not ours and upstream servers are configured.
    Forward,
    Drop(&'static str),
}

/// How large an answer may be: over UDP, the client's EDNS size or 512
/// (cut with TC past it); over TCP, a whole message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The full answer to a query over UDP, through hickory-proto. Returns the
/// encoded reply and whether it may be cached.
pub fn respond(
    zone: &Zone,
    query: &[u8],
    appliance: Option<Ipv4Addr>,
    now: u64,
    forwarding: bool,
) -> (Outcome, bool) {
    respond_over(zone, query, appliance, now, forwarding, Transport::Udp)
}

/// The full answer to a query arriving over `transport`.
pub fn respond_over(
    zone: &Zone,
    query: &[u8],
    appliance: Option<Ipv4Addr>,
    now: u64,
    forwarding: bool,
    transport: Transport,
) -> (Outcome, bool) {
    let req = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => {
            // A header we can read gets FORMERR; anything shorter is dropped.
            if query.len() < 12 || query[2] & 0x80 != 0 {
                return (Outcome::Drop("malformed"), false);
            }
            let mut out = query[..12].to_vec();
            out[2] = 0x80 | (query[2] & 0x79); // QR, the query's opcode and RD
            out[3] = ResponseCode::FormErr.low();
            out[4..12].fill(0);
            return (Outcome::Reply(out), false);
        }
    };
    if req.metadata.message_type != MessageType::Query {
        return (Outcome::Drop("a response, not a query"), false);
    }
    let (meta, answer) = match decide(
        zone,
        &req.metadata,
        req.queries.len(),
        req.queries.first(),
        appliance,
        now,
        forwarding,
    ) {
        Decision::Forward => return (Outcome::Forward, false),
        Decision::Respond(meta, answer) => (meta, answer),
    };
    let mut out = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    out.metadata = meta;
    out.queries = req.queries;
    out.edns = req.edns.as_ref().map(reply_edns);
    let limit = match transport {
        Transport::Udp => out.edns.as_ref().map_or(512, Edns::max_payload),
        Transport::Tcp => u16::MAX,
    };
    let cacheable = answer.is_some();
    if let Some(a) = answer {
        out.answers = a.answers;
        out.authorities = a.authority;
        out.additionals = a.additionals;
    }
    let mut bytes = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut bytes);
    enc.set_max_size(limit);
    // An answer larger than the client takes (a switchover with many
    // members, a client without EDNS) is cut by the encoder, with TC set,
    // so the client asks again over TCP (RFC 2181 9).
    if out.emit(&mut enc).is_err() {
        return (Outcome::Drop("answer could not be encoded"), false);
    }
    (Outcome::Reply(bytes), cacheable)
}

/// Counts an answer going out and tells the status page who asked what.
pub fn answered(answer: &[u8], to: SocketAddr) {
    crate::stats::dns_answered(answer);
    if let std::net::IpAddr::V4(client) = to.ip()
        && crate::stats::listening()
        && crate::stats::dns_budget()
        && let Some((qtype, name)) = crate::stats::dns_question(answer)
    {
        let rcode = answer.get(3).map_or(0, |f| f & 0x0f);
        crate::stats::tell(|| crate::stats::Event::Dns {
            client,
            name,
            qtype,
            rcode,
        });
    }
}

/// Whether an encoded answer says FORMERR (for the counters).
pub fn is_formerr(answer: &[u8]) -> bool {
    answer.len() >= 4 && answer[3] & 0x0f == ResponseCode::FormErr.low()
}

/// SERVFAIL with the query's question, as a resolver whose upstream
/// servers are down answers. `query` has at least a header.
pub fn servfail(query: &[u8]) -> Vec<u8> {
    let mut out = query.to_vec();
    if out.len() >= 4 {
        out[2] = 0x80 | (query[2] & 0x79);
        out[3] = 0x80 | ResponseCode::ServFail.low();
    }
    out
}

struct Cached {
    bytes: Vec<u8>,
    generation: u64,
    at: Instant,
}

/// Per-interface answer cache.
#[derive(Default)]
pub struct Cache {
    map: HashMap<Key, Cached>,
}

impl Cache {
    /// Answers `query` from the cache or the zone.
    pub fn handle(
        &mut self,
        zone: &Zone,
        query: &[u8],
        appliance: Option<Ipv4Addr>,
        now: u64,
        forwarding: bool,
    ) -> Outcome {
        let quick = quick_parse(query, appliance);
        if let Some(q) = &quick
            && let Some(c) = self.map.get(&q.key)
            && c.generation == zone.generation()
            && c.at.elapsed() < CACHE_AGE
        {
            let mut out = c.bytes.clone();
            out[0..2].copy_from_slice(&q.id.to_be_bytes());
            out[2] = (out[2] & !0x01) | (query[2] & 0x01);
            out[12..q.question_end].copy_from_slice(&query[12..q.question_end]);
            return Outcome::Reply(out);
        }
        let (outcome, cacheable) = respond(zone, query, appliance, now, forwarding);
        if let (Some(q), Outcome::Reply(bytes), true) = (quick, &outcome, cacheable)
            && bytes.len() >= q.question_end
        {
            if self.map.len() >= CACHE_MAX {
                self.map.clear();
            }
            self.map.insert(
                q.key,
                Cached {
                    bytes: bytes.clone(),
                    generation: zone.generation(),
                    at: Instant::now(),
                },
            );
        }
        outcome
    }
}

/// Answers DNS over UDP on one interface until dropped.
pub async fn serve(
    socket: tokio::net::UdpSocket,
    interface: String,
    zone: SharedZone,
    upstream: Vec<SocketAddr>,
) -> anyhow::Result<()> {
    let socket = std::sync::Arc::new(socket);
    let mut cache = Cache::default();
    let mut buf = vec![0u8; 4096];
    let mut addrs = ifaces::Addrs::new(&interface);
    let forwarding = !upstream.is_empty();
    let forwards = std::sync::Arc::new(tokio::sync::Semaphore::new(FORWARDS_IN_FLIGHT));
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: "dialtone::dns", interface = %interface, error = %e, "receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let appliance = addrs.facing(from.ip());
        let query = &buf[..n];
        let outcome = match zone.read() {
            Ok(z) => cache.handle(&z, query, appliance, crate::now(), forwarding),
            Err(_) => anyhow::bail!("DNS zone lock poisoned"),
        };
        match outcome {
            Outcome::Reply(bytes) => {
                if is_formerr(&bytes) {
                    crate::counters::bump(crate::counters::Counter::DnsFormErr);
                }
                answered(&bytes, from);
                if let Err(e) = socket.send_to(&bytes, from).await {
                    tracing::debug!(target: "dialtone::dns", client = %from, error = %e, "send failed");
                }
            }
            Outcome::Forward => {
                // Each forwarded query waits for its upstream answer in a
                // task of its own; a flood of outside names holds at most
                // this many, and the rest are dropped (the client asks
                // again).
                let Ok(permit) = std::sync::Arc::clone(&forwards).try_acquire_owned() else {
                    crate::counters::bump(crate::counters::Counter::DnsDropped);
                    tracing::debug!(target: "dialtone::dns", client = %from, in_flight = FORWARDS_IN_FLIGHT, "dns query not forwarded: too many waiting for upstream");
                    continue;
                };
                let query = query.to_vec();
                let upstream = upstream.clone();
                let socket = std::sync::Arc::clone(&socket);
                tokio::spawn(async move {
                    let _permit = permit;
                    match forward(&query, &upstream).await {
                        Some(answer) => {
                            answered(&answer, from);
                            let _ = socket.send_to(&answer, from).await;
                        }
                        None => {
                            let fail = servfail(&query);
                            answered(&fail, from);
                            let _ = socket.send_to(&fail, from).await;
                            tracing::info!(target: "dialtone::dns", client = %from, "no upstream server answered");
                        }
                    }
                });
            }
            Outcome::Drop(why) => {
                crate::counters::bump(crate::counters::Counter::DnsDropped);
                tracing::debug!(target: "dialtone::dns", client = %from, interface = %interface, reason = why, "dns packet dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use hickory_proto::op::{OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};

    fn zone() -> Zone {
        let c = Config::parse(
            "t.toml",
            "[dns]\nzone = \"lab.voip\"\n[[dns.host]]\nname = \"vm40ic1\"\nip = \"10.250.1.151\"\n",
        )
        .unwrap();
        Zone::new(c.dns.as_ref().unwrap(), &[], false)
    }

    fn query(id: u16, name: &str, edns: bool) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn quick_parse_reads_the_usual_shape_only() {
        let q = quick_parse(&query(7, "VM40ic1.lab.voip.", false), None).unwrap();
        assert_eq!(q.id, 7);
        assert_eq!(q.key.name, b"\x07vm40ic1\x03lab\x04voip\x00".to_vec());
        assert_eq!((q.key.qtype, q.key.limit, q.key.edns), (1, 512, false));
        let e = quick_parse(&query(8, "vm40ic1.lab.voip.", true), None).unwrap();
        assert_eq!((e.key.limit, e.key.edns), (EDNS_PAYLOAD, true));
        // A response, trailing bytes, a truncated name: the full decoder decides.
        let mut resp = query(9, "a.lab.voip.", false);
        resp[2] |= 0x80;
        assert!(quick_parse(&resp, None).is_none());
        let mut long = query(9, "a.lab.voip.", false);
        long.push(0);
        assert!(quick_parse(&long, None).is_none());
        assert!(quick_parse(&query(9, "a.lab.voip.", false)[..15], None).is_none());
    }

    #[test]
    fn cached_answers_carry_the_new_id_and_case() {
        let z = zone();
        let mut cache = Cache::default();
        let first = match cache.handle(&z, &query(1, "vm40ic1.lab.voip.", false), None, 0, false) {
            Outcome::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(first.answers.len(), 1);
        let q2 = query(0xbeef, "VM40IC1.Lab.Voip.", false);
        let second = match cache.handle(&z, &q2, None, 0, false) {
            Outcome::Reply(b) => b,
            other => panic!("{other:?}"),
        };
        let m = Message::from_vec(&second).unwrap();
        assert_eq!(m.metadata.id, 0xbeef);
        assert!(m.metadata.recursion_desired);
        assert!(m.metadata.authoritative);
        assert_eq!(m.queries[0].name().to_ascii(), "VM40IC1.Lab.Voip.");
        assert_eq!(m.answers.len(), 1);
        assert_eq!(cache.map.len(), 1, "served from the cache");
    }

    #[test]
    fn an_answer_over_the_clients_size_is_sent_truncated() {
        let mut cfg = String::from("[dns]\nzone = \"lab.voip\"\n");
        for n in 1..=20 {
            cfg.push_str(&format!(
                "[[dns.host]]\nname = \"cic-member-{n}\"\nip = \"10.250.1.{n}\"\n"
            ));
        }
        let members: Vec<String> = (1..=20).map(|n| format!("\"cic-member-{n}\"")).collect();
        cfg.push_str(&format!(
            "[[dns.switchover]]\nname = \"cic\"\nmembers = [{}]\nservices = [{{ srv = \"_sip._udp\", port = 5060 }}]\n",
            members.join(", ")
        ));
        let c = Config::parse("t.toml", &cfg).unwrap();
        let z = Zone::new(c.dns.as_ref().unwrap(), &[], false);
        let srv = |edns: bool| {
            let mut m = Message::new(3, MessageType::Query, OpCode::Query);
            m.add_query(Query::query(
                Name::from_ascii("_sip._udp.lab.voip.").unwrap(),
                RecordType::SRV,
            ));
            if edns {
                let mut e = Edns::new();
                e.set_max_payload(4096);
                m.set_edns(e);
            }
            m.to_vec().unwrap()
        };
        // Without EDNS: 512 bytes at most, so what fits, with TC.
        let Outcome::Reply(b) = respond(&z, &srv(false), None, 0, false).0 else {
            panic!("no reply");
        };
        let m = Message::from_vec(&b).unwrap();
        assert!(b.len() <= 512, "{}", b.len());
        assert!(m.metadata.truncation);
        assert!(m.answers.len() < 20, "{}", m.answers.len());
        assert_eq!(m.queries.len(), 1);
        // With EDNS (up to 1232 bytes) the whole answer fits.
        let Outcome::Reply(b) = respond(&z, &srv(true), None, 0, false).0 else {
            panic!("no reply");
        };
        let m = Message::from_vec(&b).unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 20);
    }

    #[test]
    fn garbage_gets_formerr_or_is_dropped() {
        let z = zone();
        let mut cache = Cache::default();
        assert!(matches!(
            cache.handle(&z, &[1, 2, 3], None, 0, false),
            Outcome::Drop(_)
        ));
        let mut bad = query(5, "vm40ic1.lab.voip.", false);
        bad.truncate(20);
        match cache.handle(&z, &bad, None, 0, false) {
            Outcome::Reply(b) => {
                assert_eq!(&b[..2], &[0, 5]);
                assert_eq!(b[3] & 0x0f, 1, "FORMERR");
            }
            other => panic!("{other:?}"),
        }
        // Outside the zone: REFUSED, or forwarded when upstream is set.
        let outside = query(6, "example.com.", false);
        assert!(matches!(
            cache.handle(&z, &outside, None, 0, true),
            Outcome::Forward
        ));
        match cache.handle(&z, &outside, None, 0, false) {
            Outcome::Reply(b) => assert_eq!(b[3] & 0x0f, 5, "REFUSED"),
            other => panic!("{other:?}"),
        }
    }
}
