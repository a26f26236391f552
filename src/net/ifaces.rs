//! The IPv4 addresses of the interfaces dialtone serves.

use nix::ifaddrs::getifaddrs;

use super::ready::Report;

use crate::units::Ipv4Net;

/// The interface's IPv4 addresses with their prefix lengths, in the kernel's order.
pub fn ipv4_addrs(interface: &str) -> std::io::Result<Vec<Ipv4Net>> {
    let mut out = Vec::new();
    for ifa in getifaddrs().map_err(std::io::Error::from)? {
        if ifa.interface_name != interface {
            continue;
        }
        let Some(addr) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        let prefix = ifa
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in())
            .map(|m| u32::from(m.ip()).count_ones() as u8)
            .unwrap_or(32);
        out.push(Ipv4Net {
            addr: addr.ip(),
            prefix,
        });
    }
    Ok(out)
}

/// Whether an interface of that name exists (with or without addresses).
pub fn exists(interface: &str) -> bool {
    nix::net::if_::if_nametoindex(interface).is_ok()
}

/// Returns once the interface exists. A served interface that is missing at
/// start (a VLAN sub-interface or USB adapter that comes up later) is waited
/// for, like dnsmasq's bind-dynamic, with one warning; `service` names what
/// starts on it.
pub async fn wait_until_exists(interface: &str, service: &str, report: &Report) {
    if exists(interface) {
        return;
    }
    report.waiting(format!("{interface} does not exist yet"));
    tracing::warn!(target: "dialtone", interface, service, "interface does not exist yet; the service starts on it when it appears");
    while !exists(interface) {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tracing::info!(target: "dialtone", interface, service, "interface appeared");
}

/// The kernel's index of the interface, if it exists. A deleted and
/// re-created interface gets a new index.
pub fn index(interface: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(interface).ok()
}

/// Runs a service on one interface for as long as the process runs, through
/// the interface's disappearances. `start` binds the service's sockets and
/// serves; it is started when the interface exists, dropped (closing its
/// sockets, which stay tied to the old device) when the interface goes away or
/// is re-created, and started again when it is back, like dnsmasq's
/// bind-dynamic. An error from `start` ends the service unless the interface
/// changed under it (it went away while the sockets were being bound).
pub async fn follow<F, Fut>(
    interface: &str,
    service: &str,
    report: &Report,
    mut start: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    loop {
        wait_until_exists(interface, service, report).await;
        let Some(idx) = index(interface) else {
            continue;
        };
        let gone = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if index(interface) != Some(idx) {
                    return;
                }
            }
        };
        tokio::select! {
            r = start() => match r {
                Err(e) if index(interface) != Some(idx) => {
                    tracing::warn!(target: "dialtone", interface, service, error = %e, "interface went away while starting; waiting for it");
                }
                r => return r,
            },
            () = gone => {
                report.waiting(format!("{interface} went away"));
                tracing::warn!(target: "dialtone", interface, service, "interface went away; the service stops on it and starts again when it is back");
            }
        }
    }
}

/// An interface's addresses as a server sees them: read at start and again
/// at most every 5 s (they can change under a running server), or at once
/// while there are none.
#[derive(Debug)]
pub struct Addrs {
    interface: String,
    addrs: Vec<Ipv4Net>,
    read: std::time::Instant,
}

impl Addrs {
    pub fn new(interface: &str) -> Addrs {
        Addrs {
            interface: interface.to_string(),
            addrs: ipv4_addrs(interface).unwrap_or_default(),
            read: std::time::Instant::now(),
        }
    }

    pub fn current(&mut self) -> &[Ipv4Net] {
        if self.addrs.is_empty() || self.read.elapsed() > std::time::Duration::from_secs(5) {
            if let Ok(a) = ipv4_addrs(&self.interface) {
                self.addrs = a;
            }
            self.read = std::time::Instant::now();
        }
        &self.addrs
    }

    /// The address `client` reaches: the one whose subnet holds it, else the first.
    pub fn facing(&mut self, client: std::net::IpAddr) -> Option<std::net::Ipv4Addr> {
        let client = match client {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        };
        let addrs = self.current();
        addrs
            .iter()
            .find(|n| client.is_some_and(|c| n.contains(c)))
            .or(addrs.first())
            .map(|n| n.addr)
    }
}
