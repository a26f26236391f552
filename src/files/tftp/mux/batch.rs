//! The mux's system calls: every ACK waiting taken with one `recvmmsg`,
//! every datagram due sent with one `sendmmsg` (a window as one message cut
//! by the kernel), a closed client port read from the socket's error queue.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddrV4;
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg};
use tokio::net::UdpSocket;

use super::plan::{Out, Plan};
use super::{BATCH, DATAGRAM};

/// The largest UDP payload `interface` carries in one unfragmented IPv4
/// packet (its MTU less 28 bytes of headers); 0 when it cannot be read.
pub(super) fn segment_max(interface: &str) -> usize {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/mtu"))
        .ok()
        .and_then(|m| m.trim().parse::<usize>().ok())
        .map_or(0, |mtu| mtu.saturating_sub(28))
}

/// Whether a send failed because the message was to be cut into
/// datagrams (UDP GSO) where that cannot be done.
pub(super) fn cutting_refused(e: &io::Error) -> bool {
    [
        libc::EINVAL,
        libc::EIO,
        libc::EMSGSIZE,
        libc::EOPNOTSUPP,
        libc::ENOPROTOOPT,
    ]
    .contains(&e.raw_os_error().unwrap_or(0))
}

/// Takes the datagrams waiting (up to `BATCH`) into `inbox`, one per
/// `DATAGRAM` bytes, their lengths and senders into `got`.
/// The message headers are built for each call: they hold raw pointers,
/// so they cannot live in the task across its awaits (a spawned task must
/// be `Send`); one allocation per batch, against a system call per batch.
pub(super) fn recv_batch(
    sock: &UdpSocket,
    inbox: &mut [u8],
    got: &mut Vec<(usize, SocketAddrV4)>,
) -> io::Result<usize> {
    got.clear();
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut slices: Vec<[IoSliceMut; 1]> = inbox
        .chunks_mut(DATAGRAM)
        .map(|c| [IoSliceMut::new(c)])
        .collect();
    let received = recvmmsg(
        sock.as_raw_fd(),
        &mut headers,
        slices.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    for m in received {
        if let Some(a) = m.address {
            got.push((m.bytes.min(DATAGRAM), SocketAddrV4::new(a.ip(), a.port())));
        }
    }
    Ok(got.len())
}

/// The client of the next "port unreachable" in the socket's error queue;
/// `None` once the queue is empty. Other errors in the queue are passed
/// over: the transfer resends, or times out.
pub(super) fn next_closed_port(sock: &UdpSocket) -> Option<SocketAddrV4> {
    use nix::sys::socket::{ControlMessageOwned, recvmsg};
    loop {
        let mut buf = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in);
        let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
        let msg = recvmsg::<SockaddrIn>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags).ok()?;
        // The address of an error-queue message is where the datagram
        // that met the error was going.
        let to = msg.address.map(|a| SocketAddrV4::new(a.ip(), a.port()));
        let refused = msg.cmsgs().ok().into_iter().flatten().any(|c| {
            matches!(c, ControlMessageOwned::Ipv4RecvErr(e, _) if e.ee_errno == libc::ECONNREFUSED as u32)
        });
        if let (true, Some(to)) = (refused, to) {
            return Some(to);
        }
    }
}

/// Takes one waiting datagram, as `recv_batch` would; for the lone
/// client's poll, which tries many times and mostly finds nothing.
pub(super) fn recv_one(
    sock: &UdpSocket,
    inbox: &mut [u8],
    got: &mut Vec<(usize, SocketAddrV4)>,
) -> io::Result<usize> {
    use nix::sys::socket::recvfrom;
    got.clear();
    let (n, from) = recvfrom::<SockaddrIn>(sock.as_raw_fd(), &mut inbox[..DATAGRAM])
        .map_err(io::Error::from)?;
    if let Some(a) = from {
        got.push((n.min(DATAGRAM), SocketAddrV4::new(a.ip(), a.port())));
    }
    Ok(got.len())
}

/// Sends the front of `out` with one call, as `Plan` groups it; returns how
/// many queued datagrams went.
pub(super) fn send_batch(sock: &UdpSocket, out: &[Out], segment_max: usize) -> io::Result<usize> {
    use nix::sys::socket::ControlMessage;
    let plan = Plan::new(out, segment_max);
    let parts: Vec<IoSlice> = out[..plan.carried(plan.messages.len())]
        .iter()
        .flat_map(|o| [IoSlice::new(&o.head[..o.head_len]), IoSlice::new(&o.body)])
        .collect();
    let iovs: Vec<&[IoSlice]> = plan
        .messages
        .iter()
        .map(|r| &parts[2 * r.start..2 * r.end])
        .collect();
    let addrs: Vec<Option<SockaddrIn>> = plan
        .messages
        .iter()
        .map(|r| Some(SockaddrIn::from(out[r.start].to)))
        .collect();
    let segment = plan.segment.map(|s| s as u16);
    let cmsgs: Vec<ControlMessage> = segment
        .as_ref()
        .map(ControlMessage::UdpGsoSegments)
        .into_iter()
        .collect();
    let space = segment.map(|_| nix::cmsg_space!(u16));
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(iovs.len(), space);
    let sent = sendmmsg(
        sock.as_raw_fd(),
        &mut headers,
        &iovs,
        addrs,
        cmsgs,
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(|errno| {
        let e = io::Error::from(errno);
        let cut = plan.messages.first().is_some_and(|r| r.len() > 1);
        if cut && cutting_refused(&e) {
            io::Error::other(CutRefused(e))
        } else {
            e
        }
    })?;
    Ok(plan.carried(sent.count()))
}

/// The kernel would not cut a message into datagrams (UDP GSO): the
/// interface cannot, or its MTU has dropped below a block.
#[derive(Debug, thiserror::Error)]
#[error("a window could not be sent as one message: {0}")]
pub(super) struct CutRefused(io::Error);
