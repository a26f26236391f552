//! The IPv4 addresses of the interfaces dialtone serves.

use nix::ifaddrs::getifaddrs;

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
pub async fn wait_until_exists(interface: &str, service: &str) {
    if exists(interface) {
        return;
    }
    tracing::warn!(target: "dialtone", interface, service, "interface does not exist yet; the service starts on it when it appears");
    while !exists(interface) {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tracing::info!(target: "dialtone", interface, service, "interface appeared");
}
