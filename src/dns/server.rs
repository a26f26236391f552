//! DNS on the served interfaces, one set of sockets per interface (bound to
//! the device, so the answer knows which of the appliance's addresses the
//! asker reaches): `udp.rs` for UDP, `tcp.rs` for TCP, both answering from
//! the `Zone`.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use tokio::sync::watch;

use super::zone::Zone;
use crate::config::Config;
use crate::net::places::{self, Place};
use crate::net::ready::{Readiness, Report};
use crate::net::sockets;

pub type SharedZone = Arc<RwLock<Zone>>;

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
    let udp = sockets::udp(&name, port, |s| {
        sockets::large_buffers(s, 4 << 20, false);
        Ok(())
    })
    .with_context(|| format!("cannot listen for DNS on {name} UDP port {port}"))?;
    let tcp = sockets::tcp_listener(&name, port)
        .with_context(|| format!("cannot listen for DNS on {name} TCP port {port}"))?;
    report.bound();
    tracing::info!(target: "dialtone::dns", interface = %name, port, "serving DNS");
    let tcp = super::tcp::serve(tcp, name.clone(), Arc::clone(&zone), upstream.clone());
    tokio::try_join!(tcp, super::udp::serve(udp, name, zone, upstream)).map(|_| ())
}
