//! What both transports decide for a query before encoding it: the response
//! header and the zone's answer, or "forward it"; and the forwarding itself.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::DNSClass;

use super::zone::{Answer, Rcode, Zone};

/// The largest UDP answer sent to an EDNS client (DNS flag day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;

/// The OPT record of a reply to a query that carried `asked`.
pub fn reply_edns(asked: &Edns) -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(asked.max_payload().clamp(512, EDNS_PAYLOAD));
    e
}

pub enum Decision {
    /// Not ours, and upstream servers are configured.
    Forward,
    /// The response header, and the zone's answer when there is one (none
    /// for NOTIMP, FORMERR and non-IN classes).
    Respond(Metadata, Option<Answer>),
}

/// Decides the reply to a query with header `request` and `count` questions,
/// the first being `first`.
pub fn decide(
    zone: &Zone,
    request: &Metadata,
    count: usize,
    first: Option<&Query>,
    appliance: Option<Ipv4Addr>,
    now: u64,
    forwarding: bool,
) -> Decision {
    let mut meta = Metadata::response_from_request(request);
    meta.recursion_available = forwarding;
    let q = match first {
        _ if request.op_code != OpCode::Query => {
            meta.response_code = ResponseCode::NotImp;
            return Decision::Respond(meta, None);
        }
        Some(q) if count == 1 => q,
        _ => {
            meta.response_code = ResponseCode::FormErr;
            return Decision::Respond(meta, None);
        }
    };
    if !matches!(q.query_class(), DNSClass::IN | DNSClass::ANY) {
        meta.response_code = ResponseCode::Refused;
        return Decision::Respond(meta, None);
    }
    let a = zone.answer(q.name(), q.query_type(), appliance, now);
    if a.rcode == Rcode::Refused && forwarding {
        return Decision::Forward;
    }
    meta.authoritative = a.authoritative;
    meta.response_code = match a.rcode {
        Rcode::NoError => ResponseCode::NoError,
        Rcode::NxDomain => ResponseCode::NXDomain,
        Rcode::Refused => ResponseCode::Refused,
    };
    Decision::Respond(meta, Some(a))
}

/// Forwards a query to the upstream servers in turn and returns the first
/// answer with the query's ID.
pub async fn forward(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstream {
        let bind: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.send_to(query, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) if from == *up && n >= 12 && buf[..2] == query[..2] => {
                buf.truncate(n);
                return Some(buf);
            }
            _ => {
                tracing::debug!(target: "dialtone::dns", upstream = %up, "upstream did not answer")
            }
        }
    }
    None
}
