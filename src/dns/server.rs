//! DNS on the served interfaces, one set of sockets per interface (bound to
//! the device, so the answer knows which of the appliance's addresses the
//! asker reaches): hickory-server for TCP, `udp.rs` for UDP, both answering
//! from the `Zone`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Message, Metadata, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::reply::{Decision, decide, forward, reply_edns};
use super::zone::Zone;
use tokio::sync::watch;

use crate::config::Config;
use crate::net::places::{self, Place};
use crate::net::ready::{Readiness, Report};
use crate::net::{ifaces, sockets};

pub type SharedZone = Arc<RwLock<Zone>>;

struct Handler {
    zone: SharedZone,
    interface: String,
    addrs: Mutex<ifaces::Addrs>,
    upstream: Vec<SocketAddr>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let edns_out = request.edns.as_ref().map(reply_edns);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &edns_out {
            builder.edns(e);
        }
        let appliance = self
            .addrs
            .lock()
            .ok()
            .and_then(|mut a| a.facing(request.src().ip()));
        let queries = request.queries.queries();
        let first = queries.first().map(|q| q.original());
        let decision = self.zone.read().ok().map(|z| {
            decide(
                &z,
                &request.metadata,
                queries.len(),
                first,
                appliance,
                crate::now(),
                !self.upstream.is_empty(),
            )
        });
        let servfail = || {
            let mut m = Metadata::response_from_request(&request.metadata);
            m.response_code = ResponseCode::ServFail;
            m
        };
        match decision {
            None => {
                let r = builder.build_no_records(servfail());
                send(&mut response_handle, r).await
            }
            Some(Decision::Forward) => {
                let answer = forward(request.as_slice(), &self.upstream)
                    .await
                    .and_then(|b| Message::from_vec(&b).ok());
                match answer {
                    Some(m) => {
                        let mut md = Metadata::response_from_request(&request.metadata);
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
                        tracing::info!(target: "dialtone::dns", client = %request.src(), "no upstream server answered");
                        let r = builder.build_no_records(servfail());
                        send(&mut response_handle, r).await
                    }
                }
            }
            Some(Decision::Respond(meta, None)) => {
                let r = builder.build_no_records(meta);
                send(&mut response_handle, r).await
            }
            Some(Decision::Respond(meta, Some(answer))) => {
                tracing::debug!(target: "dialtone::dns", client = %request.src(), interface = %self.interface,
                    name = ?first.map(|q| q.name()), rcode = ?answer.rcode, answers = answer.answers.len(), "dns query over tcp");
                let r = builder.build(
                    meta,
                    answer.answers.iter(),
                    answer.authority.iter(),
                    std::iter::empty::<&Record>(),
                    answer.additionals.iter(),
                );
                send(&mut response_handle, r).await
            }
        }
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

/// Where DNS listens under `config`: its port on each served interface,
/// when there is a `[dns]` section.
pub fn places(config: &Config) -> Vec<Place> {
    match &config.dns {
        Some(d) => config
            .server
            .interfaces
            .iter()
            .map(|i| Place::on(i, format!("{} {:?}", d.port, d.upstream)))
            .collect(),
        None => Vec::new(),
    }
}

/// Serves DNS on the served interfaces of the live configuration while it
/// has a `[dns]` section, until the future is dropped. `zone` holds the
/// zone whenever there is one (set before the configuration that needs it);
/// the port and upstream servers are socket settings (a change restarts the
/// interface's sockets), the records are read from the zone per query.
pub async fn run(
    live: watch::Receiver<Arc<Config>>,
    zone: watch::Receiver<Option<SharedZone>>,
    ready: Arc<Readiness>,
) -> anyhow::Result<()> {
    let config = live.clone();
    places::serve(
        live,
        "DNS",
        ready,
        |c| places(c),
        move |place, report| {
            let dns = config.borrow().dns.clone();
            let zone = zone.borrow().clone();
            let name = place.label;
            async move {
                let (Some(dns), Some(zone)) = (dns, zone) else {
                    return std::future::pending().await;
                };
                serve_interface(name, dns.port, zone, dns.upstream, report).await
            }
        },
    )
    .await
}

/// DNS over UDP and TCP on one interface, until dropped.
async fn serve_interface(
    name: String,
    port: u16,
    zone: SharedZone,
    upstream: Vec<SocketAddr>,
    report: Report,
) -> anyhow::Result<()> {
    let handler = Handler {
        zone: Arc::clone(&zone),
        interface: name.clone(),
        addrs: Mutex::new(ifaces::Addrs::new(&name)),
        upstream: upstream.clone(),
    };
    let mut server = Server::new(handler);
    let udp = sockets::udp(&name, port, |s| {
        sockets::large_buffers(s, 4 << 20, false);
        Ok(())
    })
    .with_context(|| format!("cannot listen for DNS on {name} UDP port {port}"))?;
    server.register_listener(
        sockets::tcp_listener(&name, port)
            .with_context(|| format!("cannot listen for DNS on {name} TCP port {port}"))?,
        Duration::from_secs(5),
        64 << 10,
    );
    report.bound();
    tracing::info!(target: "dialtone::dns", interface = %name, port, "serving DNS");
    let tcp = async move {
        server
            .block_until_done()
            .await
            .map_err(|e| anyhow::anyhow!("DNS over TCP stopped: {e}"))
    };
    tokio::try_join!(tcp, super::udp::serve(udp, name, zone, upstream)).map(|_| ())
}
