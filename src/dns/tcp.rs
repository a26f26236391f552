//! DNS over TCP on one interface (RFC 7766): queries answered in order on
//! each connection, through the same `respond` as UDP but never cut to a
//! datagram's size.
//!
//! Bounded for what the phone VLAN can send: at most `PER_SOURCE`
//! connections from one address and `MAX_OPEN` in all per interface (more
//! are closed at once), a whole query within `IDLE` of the connection's
//! start or its last answer (a client that sends half a length prefix and
//! stalls is closed then), and one query of at most 64 KiB buffered per
//! connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::reply::forward;
use super::server::SharedZone;
use super::udp::{Outcome, Transport, is_formerr, respond_over, servfail};
use crate::counters::{Counter, bump};
use crate::net::ifaces;
use crate::net::sources::Sources;

/// Connections at once from one address.
pub const PER_SOURCE: usize = 8;
/// Connections at once on one interface.
pub const MAX_OPEN: usize = 256;
/// How long a connection may take to send a whole query.
pub const IDLE: Duration = Duration::from_secs(5);

/// What one connection needs to answer.
struct Answerer {
    interface: String,
    zone: SharedZone,
    upstream: Vec<SocketAddr>,
    addrs: Mutex<ifaces::Addrs>,
}

/// Accepts DNS connections on `listener` until dropped.
pub async fn serve(
    listener: TcpListener,
    interface: String,
    zone: SharedZone,
    upstream: Vec<SocketAddr>,
) -> anyhow::Result<()> {
    let sources = Arc::new(Sources::default());
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    let answerer = Arc::new(Answerer {
        addrs: Mutex::new(ifaces::Addrs::new(&interface)),
        interface,
        zone,
        upstream,
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: "dialtone::dns", interface = %answerer.interface, error = %e, "DNS TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match sources.take(peer.ip(), PER_SOURCE) {
            Ok(slot) => slot,
            Err(first) => {
                bump(Counter::DnsTcpRefused);
                if first {
                    tracing::warn!(target: "dialtone::dns", client = %peer.ip(), interface = %answerer.interface, open = PER_SOURCE, "too many DNS TCP connections from one address: further ones are closed until some end");
                } else {
                    tracing::debug!(target: "dialtone::dns", client = %peer, "DNS TCP connection over the per-source cap; closed");
                }
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            bump(Counter::DnsTcpRefused);
            tracing::debug!(target: "dialtone::dns", client = %peer, open = MAX_OPEN, "DNS TCP connections at their limit; closed");
            continue;
        };
        let answerer = Arc::clone(&answerer);
        tokio::spawn(async move {
            let _held = (slot, permit);
            answerer.connection(stream, peer).await;
        });
    }
}

/// Why reading a query stopped.
enum Read {
    Query(Vec<u8>),
    /// The client closed between queries, or sent nothing in time.
    Quiet,
    /// The client stopped inside a query.
    Stalled,
    Failed(std::io::Error),
    /// A length under a DNS header's 12 bytes.
    Short(usize),
}

/// Reads one length-prefixed query, all of it within `IDLE`.
async fn read_query(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Read {
    buf.clear();
    let deadline = tokio::time::Instant::now() + IDLE;
    loop {
        let want = match buf.get(..2) {
            Some(&[a, b]) => 2 + usize::from(u16::from_be_bytes([a, b])),
            _ => 2,
        };
        if buf.len() >= 2 && want - 2 < 12 {
            return Read::Short(want - 2);
        }
        if buf.len() >= want {
            return Read::Query(buf.split_off(2));
        }
        let before = buf.len();
        buf.resize(want, 0);
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buf[before..])).await;
        match read {
            Err(_) => {
                buf.truncate(before);
                return if before == 0 {
                    Read::Quiet
                } else {
                    Read::Stalled
                };
            }
            Ok(Ok(0)) => {
                buf.truncate(before);
                return if before == 0 {
                    Read::Quiet
                } else {
                    Read::Stalled
                };
            }
            Ok(Ok(n)) => buf.truncate(before + n),
            Ok(Err(e)) => return Read::Failed(e),
        }
    }
}

impl Answerer {
    /// Answers the queries of one connection in order until it closes,
    /// stalls or sends something that is not a query.
    async fn connection(&self, mut stream: TcpStream, peer: SocketAddr) {
        let mut buf = Vec::with_capacity(514);
        loop {
            let query = match read_query(&mut stream, &mut buf).await {
                Read::Query(q) => q,
                Read::Quiet => return,
                Read::Stalled => {
                    bump(Counter::DnsTcpRefused);
                    tracing::debug!(target: "dialtone::dns", client = %peer, seconds = IDLE.as_secs(), "DNS TCP query not complete in time; closed");
                    return;
                }
                Read::Short(len) => {
                    bump(Counter::DnsDropped);
                    tracing::debug!(target: "dialtone::dns", client = %peer, len, "DNS TCP message shorter than a header; closed");
                    return;
                }
                Read::Failed(e) => {
                    tracing::debug!(target: "dialtone::dns", client = %peer, error = %e, "DNS TCP connection failed");
                    return;
                }
            };
            let Some(answer) = self.answer(&query, peer).await else {
                return;
            };
            let Ok(len) = u16::try_from(answer.len()) else {
                return;
            };
            let mut out = Vec::with_capacity(2 + answer.len());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&answer);
            if let Err(e) = stream.write_all(&out).await {
                tracing::debug!(target: "dialtone::dns", client = %peer, error = %e, "cannot send the DNS TCP answer");
                return;
            }
        }
    }

    /// The answer to one query, or None to close the connection.
    async fn answer(&self, query: &[u8], peer: SocketAddr) -> Option<Vec<u8>> {
        let appliance: Option<Ipv4Addr> =
            self.addrs.lock().ok().and_then(|mut a| a.facing(peer.ip()));
        let forwarding = !self.upstream.is_empty();
        let outcome = match self.zone.read() {
            Ok(z) => {
                respond_over(
                    &z,
                    query,
                    appliance,
                    crate::now(),
                    forwarding,
                    Transport::Tcp,
                )
                .0
            }
            Err(_) => return None,
        };
        let bytes = match outcome {
            Outcome::Reply(bytes) => {
                if is_formerr(&bytes) {
                    bump(Counter::DnsFormErr);
                }
                tracing::debug!(target: "dialtone::dns", client = %peer, interface = %self.interface, bytes = bytes.len(), "dns query over tcp");
                bytes
            }
            Outcome::Forward => match forward(query, &self.upstream).await {
                Some(answer) => answer,
                None => {
                    tracing::info!(target: "dialtone::dns", client = %peer, "no upstream server answered");
                    servfail(query)
                }
            },
            Outcome::Drop(why) => {
                bump(Counter::DnsDropped);
                tracing::debug!(target: "dialtone::dns", client = %peer, interface = %self.interface, reason = why, "dns packet over tcp dropped; connection closed");
                return None;
            }
        };
        super::udp::answered(&bytes, peer);
        Some(bytes)
    }
}
