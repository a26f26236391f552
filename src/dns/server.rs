//! DNS on the served interfaces, one set of sockets per interface (bound to
//! the device, so the answer knows which of the appliance's addresses the
//! asker reaches): hickory-server for TCP, `udp.rs` for UDP, both answering
//! from the `Zone`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Message, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use socket2::{Domain, Protocol, Socket, Type};

use super::zone::{Rcode, Zone};
use crate::net::ifaces;
use crate::units::Ipv4Net;

use super::udp::EDNS_PAYLOAD;

pub type SharedZone = Arc<RwLock<Zone>>;

struct Handler {
    zone: SharedZone,
    interface: String,
    addrs: Mutex<(Instant, Vec<Ipv4Net>)>,
    upstream: Vec<SocketAddr>,
}

impl Handler {
    /// The appliance's address on this interface as seen from `client`: the
    /// one whose subnet holds the client, else the first.
    fn appliance_addr(&self, client: SocketAddr) -> Option<Ipv4Addr> {
        let mut cache = self.addrs.lock().ok()?;
        if cache.0.elapsed() > Duration::from_secs(5) || cache.1.is_empty() {
            if let Ok(a) = ifaces::ipv4_addrs(&self.interface) {
                cache.1 = a;
            }
            cache.0 = Instant::now();
        }
        let client = match client.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        };
        cache
            .1
            .iter()
            .find(|n| client.is_some_and(|c| n.contains(c)))
            .or(cache.1.first())
            .map(|n| n.addr)
    }

    /// Forwards the raw question to the upstream servers in turn.
    async fn forward(&self, raw: &[u8]) -> Option<Message> {
        for up in &self.upstream {
            let bind: SocketAddr = if up.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
                continue;
            };
            if sock.send_to(raw, up).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) if from == *up => {
                    if let Ok(m) = Message::from_vec(&buf[..n]) {
                        return Some(m);
                    }
                }
                _ => {
                    tracing::debug!(target: "dialtone::dns", upstream = %up, "upstream did not answer");
                }
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut edns_out = None;
        if let Some(e) = &request.edns {
            let mut out = Edns::new();
            out.set_max_payload(e.max_payload().clamp(512, EDNS_PAYLOAD));
            edns_out = Some(out);
        }
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns_out {
            builder.edns(e);
        }
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = !self.upstream.is_empty();
        let fail = |code: ResponseCode| {
            let mut m = meta;
            m.response_code = code;
            m
        };

        if request.metadata.op_code != OpCode::Query {
            let r = builder.build_no_records(fail(ResponseCode::NotImp));
            return send(&mut response_handle, r).await;
        }
        let queries = request.queries.queries();
        if queries.len() != 1 {
            let r = builder.build_no_records(fail(ResponseCode::FormErr));
            return send(&mut response_handle, r).await;
        }
        let q = &queries[0];
        let qname = q.original().name().clone();
        let qtype = q.query_type();
        if !matches!(q.query_class(), DNSClass::IN | DNSClass::ANY) {
            let r = builder.build_no_records(fail(ResponseCode::Refused));
            return send(&mut response_handle, r).await;
        }
        let appliance = self.appliance_addr(request.src());
        let answer = self
            .zone
            .read()
            .ok()
            .map(|z| z.answer(&qname, qtype, appliance, crate::now()));
        let Some(answer) = answer else {
            let r = builder.build_no_records(fail(ResponseCode::ServFail));
            return send(&mut response_handle, r).await;
        };
        tracing::debug!(target: "dialtone::dns", client = %request.src(), interface = %self.interface,
            name = %qname, qtype = %qtype, rcode = ?answer.rcode, answers = answer.answers.len(), "dns query");

        if answer.rcode == Rcode::Refused && !self.upstream.is_empty() {
            return match self.forward(request.as_slice()).await {
                Some(m) => {
                    let mut md = meta;
                    md.response_code = m.metadata.response_code;
                    md.recursion_available = true;
                    let r = builder.build(
                        md,
                        m.answers.iter(),
                        m.authorities.iter(),
                        std::iter::empty::<&Record>(),
                        m.additionals.iter(),
                    );
                    send(&mut response_handle, r).await
                }
                None => {
                    tracing::info!(target: "dialtone::dns", name = %qname, "no upstream server answered");
                    let r = builder.build_no_records(fail(ResponseCode::ServFail));
                    send(&mut response_handle, r).await
                }
            };
        }
        let mut md = meta;
        md.authoritative = answer.authoritative;
        md.response_code = match answer.rcode {
            Rcode::NoError => ResponseCode::NoError,
            Rcode::NxDomain => ResponseCode::NXDomain,
            Rcode::Refused => ResponseCode::Refused,
        };
        let r = builder.build(
            md,
            answer.answers.iter(),
            answer.authority.iter(),
            std::iter::empty::<&Record>(),
            answer.additionals.iter(),
        );
        send(&mut response_handle, r).await
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    let id = response.metadata().id;
    let op = response.metadata().op_code;
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(target: "dialtone::dns", error = %e, "cannot send the answer");
            let mut m = Metadata::new(id, hickory_server::proto::op::MessageType::Response, op);
            m.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_server::proto::op::Header {
                metadata: m,
                counts: Default::default(),
            })
        }
    }
}

fn udp_socket(interface: &str, port: u16) -> anyhow::Result<tokio::net::UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.set_nonblocking(true)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(tokio::net::UdpSocket::from_std(s.into())?)
}

fn tcp_listener(interface: &str, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    s.listen(128)?;
    Ok(tokio::net::TcpListener::from_std(s.into())?)
}

/// Serves DNS on every configured interface until the future is dropped.
pub async fn run(
    interfaces: Vec<String>,
    port: u16,
    upstream: Vec<SocketAddr>,
    zone: SharedZone,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for name in interfaces {
        let zone = Arc::clone(&zone);
        let upstream = upstream.clone();
        tasks.spawn(async move {
            ifaces::wait_until_exists(&name, "DNS").await;
            let handler = Handler {
                zone: Arc::clone(&zone),
                interface: name.clone(),
                addrs: Mutex::new((
                    Instant::now(),
                    ifaces::ipv4_addrs(&name).unwrap_or_default(),
                )),
                upstream: upstream.clone(),
            };
            let mut server = Server::new(handler);
            let udp = udp_socket(&name, port)
                .with_context(|| format!("cannot listen for DNS on {name} UDP port {port}"))?;
            server.register_listener(
                tcp_listener(&name, port)
                    .with_context(|| format!("cannot listen for DNS on {name} TCP port {port}"))?,
                Duration::from_secs(5),
                64 << 10,
            );
            tracing::info!(target: "dialtone::dns", interface = %name, port, "serving DNS");
            let tcp = async move {
                server
                    .block_until_done()
                    .await
                    .map_err(|e| anyhow::anyhow!("DNS over TCP stopped: {e}"))
            };
            tokio::try_join!(tcp, super::udp::serve(udp, name, zone, upstream)).map(|_| ())
        });
    }
    match tasks.join_next().await {
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}
