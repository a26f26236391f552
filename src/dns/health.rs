//! Health checks of switchover members: a SIP OPTIONS request over UDP (any
//! SIP response means the server is up) or a TCP connection. Each result goes
//! into the zone; each change of state is logged.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::server::SharedZone;
use crate::config::{Dns, HealthCheck};

/// A SIP OPTIONS request as a call server expects it (RFC 3261 8.1.1).
pub fn sip_options(target: Ipv4Addr, port: u16, local: SocketAddr, seq: u32) -> String {
    let tag = format!("{:08x}", seq.wrapping_mul(2_654_435_761));
    format!(
        "OPTIONS sip:{target}:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-dialtone-{tag}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:dialtone@{ip}>;tag={tag}\r\n\
         To: <sip:{target}:{port}>\r\n\
         Call-ID: dialtone-health-{tag}@{ip}\r\n\
         CSeq: {seq} OPTIONS\r\n\
         User-Agent: dialtone\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        ip = local.ip(),
    )
}

async fn check_sip(ip: Ipv4Addr, port: u16, timeout: Duration, seq: u32) -> bool {
    let Ok(sock) = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
        return false;
    };
    if sock.connect((ip, port)).await.is_err() {
        return false;
    }
    let Ok(local) = sock.local_addr() else {
        return false;
    };
    if sock
        .send(sip_options(ip, port, local, seq).as_bytes())
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = vec![0u8; 2048];
    matches!(
        tokio::time::timeout(timeout, sock.recv(&mut buf)).await,
        Ok(Ok(n)) if buf[..n].starts_with(b"SIP/2.0 ")
    )
}

async fn check_tcp(ip: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port))).await,
        Ok(Ok(_))
    )
}

/// Runs the checks of every switchover that has them, until dropped.
pub async fn run(dns: Arc<Dns>, zone: SharedZone) {
    let mut tasks = tokio::task::JoinSet::new();
    for (pair, sw) in dns.switchovers.iter().enumerate() {
        let Some(health) = sw.health else { continue };
        for (member, name) in sw.members.iter().enumerate() {
            let Some(ip) = dns.hosts.iter().find(|h| &h.name == name).map(|h| h.ip) else {
                continue;
            };
            let zone = Arc::clone(&zone);
            let sw_name = sw.name.clone();
            let name = name.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(u64::from(health.interval)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let timeout = Duration::from_secs(u64::from(health.timeout));
                let mut seq: u32 = 1;
                loop {
                    tick.tick().await;
                    let up = match health.check {
                        HealthCheck::SipOptions => check_sip(ip, health.port, timeout, seq).await,
                        HealthCheck::Tcp => check_tcp(ip, health.port, timeout).await,
                    };
                    seq = seq.wrapping_add(1);
                    let changed = zone
                        .write()
                        .map(|mut z| z.set_health(pair, member, up))
                        .unwrap_or(false);
                    if changed {
                        crate::stats::health_changed(&sw_name, &name, crate::now());
                        let check = health.check.as_str();
                        if up {
                            tracing::info!(target: "dialtone::dns", switchover = %sw_name, member = %name, %ip, port = health.port, check, "call server is answering again; back in the answers");
                        } else {
                            tracing::warn!(target: "dialtone::dns", switchover = %sw_name, member = %name, %ip, port = health.port, check, "call server is not answering; phones are steered to its partner");
                        }
                    }
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    std::future::pending::<()>().await;
}
