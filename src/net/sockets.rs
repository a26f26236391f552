//! Sockets bound to one interface (SO_BINDTODEVICE), so each reply leaves by
//! the interface its request came in on: the pattern every service uses.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

fn bound(interface: &str, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, kind, Some(protocol))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A UDP socket on `0.0.0.0:port` bound to `interface`; `configure` sets any
/// further options before the bind.
pub fn udp(
    interface: &str,
    port: u16,
    configure: impl FnOnce(&Socket) -> io::Result<()>,
) -> io::Result<tokio::net::UdpSocket> {
    let s = bound(interface, Type::DGRAM, Protocol::UDP)?;
    configure(&s)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    tokio::net::UdpSocket::from_std(s.into())
}

/// A TCP listener on `0.0.0.0:port` bound to `interface`.
pub fn tcp_listener(interface: &str, port: u16) -> io::Result<tokio::net::TcpListener> {
    let s = bound(interface, Type::STREAM, Protocol::TCP)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    s.listen(128)?;
    tokio::net::TcpListener::from_std(s.into())
}

/// Raises the receive (and send) buffers to `bytes`: forced past
/// net.core.rmem_max/wmem_max as root, otherwise as far as the kernel allows.
/// A burst of phones booting together must not overflow the queue.
pub fn large_buffers(s: &Socket, bytes: usize, send_too: bool) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(s, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = s.set_recv_buffer_size(bytes);
    }
    if send_too && setsockopt(s, sockopt::SndBufForce, &bytes).is_err() {
        let _ = s.set_send_buffer_size(bytes);
    }
}
