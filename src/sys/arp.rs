//! Adding an ARP entry so a reply can be unicast to a client that has no
//! address yet (RFC 2131 4.1: "to the client's hardware address and yiaddr").
//!
//! The kernel's SIOCSARP ioctl has no safe wrapper in nix or socket2. The request structure is zero-initialised,
//! filled with plain values, and passed by pointer to a single ioctl call on a
//! socket we own; nothing is retained after the call returns.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use crate::units::Mac;

const ATF_COM: libc::c_int = 0x02;

/// Tells the kernel that `ip` is at `mac` on `interface`, so a unicast to `ip`
/// leaves without an ARP exchange the client could not answer yet.
pub fn set_entry(
    socket: &impl AsRawFd,
    interface: &str,
    ip: Ipv4Addr,
    mac: Mac,
) -> std::io::Result<()> {
    if interface.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // SAFETY: arpreq is a plain C struct of integers and byte arrays, for which
    // all-zero bytes are a valid value.
    let mut req: libc::arpreq = unsafe { std::mem::zeroed() };

    let mut pa: libc::sockaddr_in = sockaddr_in_zeroed();
    pa.sin_family = libc::AF_INET as libc::sa_family_t;
    pa.sin_addr.s_addr = u32::from(ip).to_be();
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux (16 bytes);
    // copying the bytes is how the C API expects arp_pa to be filled.
    req.arp_pa = unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(pa) };

    req.arp_ha.sa_family = libc::ARPHRD_ETHER;
    for (dst, src) in req.arp_ha.sa_data.iter_mut().zip(mac.0.iter()) {
        *dst = *src as libc::c_char;
    }
    req.arp_flags = ATF_COM;
    for (dst, src) in req.arp_dev.iter_mut().zip(interface.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: the descriptor is a live socket owned by the caller, and `req` is
    // a fully initialised arpreq that outlives the call.
    let rc = unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCSARP,
            &req as *const libc::arpreq,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn sockaddr_in_zeroed() -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: 0,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    }
}
