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
