//! TFTP on the served interfaces: port 69 bound to each interface, and one
//! task per transfer on its own socket, bound to the address the request was
//! sent to and connected to the client, driven by `Window`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::packet::{self, Limits, Mode, Packet, Request};
use super::window::{Resend, Step, Window, wire_number};
use super::{pace, upload};
use crate::config::Files;
use crate::files::resolve::{Body, Client, Found, Miss, Resolver, read_chunk};
use crate::files::transfers::{Counters, InFlight, Live, Outcome, Transfer};
use crate::net::{ifaces, sockets};

/// Netascii files are converted in memory; bigger ones are refused.
const NETASCII_MAX: u64 = 16 << 20;
/// File reads for octet transfers, in chunks of this size.
const READ_CHUNK: usize = 1 << 20;

pub struct Tftp {
    pub resolver: Arc<Resolver>,
    pub counters: Arc<Counters>,
    /// Transfers in progress with the bytes acknowledged so far.
    pub live: Arc<Live>,
    pub config: Files,
    slots: Arc<Semaphore>,
}

impl Tftp {
    pub fn new(
        config: Files,
        resolver: Arc<Resolver>,
        counters: Arc<Counters>,
        live: Arc<Live>,
    ) -> Tftp {
        Tftp {
            live,
            slots: Arc::new(Semaphore::new(config.max_transfers)),
            resolver,
            counters,
            config,
        }
    }
}

impl Tftp {
    /// Negotiates `req`'s options for `size` bytes and notes the result in
    /// the transfer's event.
    pub(super) fn negotiate(
        &self,
        req: &Request,
        size: u64,
        record: &mut Transfer,
    ) -> packet::Negotiated {
        let limits = Limits {
            max_window: self.config.max_window,
            default_timeout: self.config.tftp_timeout,
        };
        let n = packet::negotiate(&req.options, size, limits);
        record.detail = format!(
            "mode {} blksize {} window {}",
            req.mode.as_str(),
            n.blksize,
            n.window
        );
        n
    }

    /// Reports a request refused before a transfer began.
    fn refused(
        &self,
        protocol: &'static str,
        from: SocketAddrV4,
        req: &Request,
        outcome: Outcome,
        detail: String,
    ) {
        let client = self.resolver.client(*from.ip());
        let mut record = Transfer::begin(protocol, &client, &req.filename);
        record.outcome = outcome;
        record.detail = detail;
        self.counters.finish(&record);
    }
}

/// Begins a transfer's event and opens its own socket; when the socket
/// cannot be opened, the event says why and `None` is returned.
pub(super) fn begin(
    tftp: &Tftp,
    protocol: &'static str,
    interface: &str,
    req: &Request,
    from: SocketAddrV4,
    local: Ipv4Addr,
) -> Option<(Client, Transfer, UdpSocket)> {
    let client = tftp.resolver.client(*from.ip());
    let mut record = Transfer::begin(protocol, &client, &req.filename);
    record.detail = format!("mode {}", req.mode.as_str());
    match transfer_socket(interface, local, from) {
        Ok(sock) => Some((client, record, sock)),
        Err(e) => {
            record.detail = format!("cannot open a transfer socket on {local}: {e}");
            tftp.counters.finish(&record);
            None
        }
    }
}

/// Serves TFTP on every interface until dropped.
pub async fn run(interfaces: Vec<String>, tftp: Arc<Tftp>) -> anyhow::Result<()> {
    ifaces::serve_each(interfaces, "TFTP", move |name| {
        serve_interface(name, Arc::clone(&tftp))
    })
    .await
}

/// Receives a datagram with the address it was sent to (IP_PKTINFO).
async fn recv_with_destination(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddrV4, Option<Ipv4Addr>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg};
    sock.async_io(Interest::READABLE, || {
        let mut cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrIn>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let from = msg
            .address
            .map(|a| SocketAddrV4::new(a.ip(), a.port()))
            .ok_or_else(|| io::Error::other("datagram without a source address"))?;
        let mut to = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                    to = Some(Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr)));
                }
            }
        }
        Ok((msg.bytes, from, to))
    })
    .await
}

async fn serve_interface(name: String, tftp: Arc<Tftp>) -> anyhow::Result<()> {
    let name = name.as_str();
    let port = tftp.config.tftp_port;
    let sock = sockets::udp(name, port, |s| {
        nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
            .map_err(io::Error::from)?;
        sockets::large_buffers(s, 1 << 20, false);
        Ok(())
    })
    .with_context(|| format!("cannot listen for TFTP on {name} UDP port {port}"))?;
    tracing::info!(target: "dialtone::files", interface = %name, port, root = %tftp.config.root.display(), "serving TFTP");
    let mut addrs = ifaces::Addrs::new(name);
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from, to) = match recv_with_destination(&sock, &mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: "dialtone::files", interface = %name, error = %e, "TFTP receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Answer from the address the request was sent to; for a broadcast
        // request, from the interface's address facing the client.
        let local = to
            .filter(|a| !a.is_broadcast() && !a.is_unspecified() && !a.is_multicast())
            .or_else(|| addrs.facing((*from.ip()).into()));
        let Some(local) = local else {
            tracing::debug!(target: "dialtone::files", interface = %name, %from, "TFTP request dropped: the interface has no address");
            continue;
        };
        match packet::parse(&buf[..n]) {
            Ok(Packet::Read(req)) => start(&tftp, &sock, name, req, Kind::Read, from, local).await,
            Ok(Packet::Write(req)) => match &tftp.config.upload {
                Some(folder) => {
                    let kind = Kind::Upload(folder.clone());
                    start(&tftp, &sock, name, req, kind, from, local).await
                }
                None => {
                    // Refused here, without taking a transfer slot.
                    let _ = sock
                        .send_to(
                            &packet::error(packet::ERR_ACCESS, "writes are not accepted"),
                            from,
                        )
                        .await;
                    let why = "no upload folder is configured".to_string();
                    tftp.refused("tftp-upload", from, &req, Outcome::Refused, why);
                }
            },
            Ok(_) => {
                tracing::debug!(target: "dialtone::files", client = %from, "TFTP packet on port {port} that is not a request; dropped");
            }
            Err(e) => {
                tracing::debug!(target: "dialtone::files", client = %from, reason = %e, "malformed TFTP request");
                let _ = sock
                    .send_to(&packet::error(packet::ERR_ILLEGAL, &e.to_string()), from)
                    .await;
            }
        }
    }
}

/// What a request asks for.
enum Kind {
    Read,
    /// A write, into this folder.
    Upload(PathBuf),
}

/// Starts a transfer in its own task, or refuses it when the transfer
/// limit is reached.
async fn start(
    tftp: &Arc<Tftp>,
    sock: &UdpSocket,
    interface: &str,
    req: Request,
    kind: Kind,
    from: SocketAddrV4,
    local: Ipv4Addr,
) {
    let Ok(permit) = Arc::clone(&tftp.slots).try_acquire_owned() else {
        let msg = format!(
            "too many transfers at once ({}); try again",
            tftp.config.max_transfers
        );
        let _ = sock
            .send_to(&packet::error(packet::ERR_UNDEFINED, &msg), from)
            .await;
        let protocol = match kind {
            Kind::Read => "tftp",
            Kind::Upload(_) => "tftp-upload",
        };
        tftp.refused(protocol, from, &req, Outcome::Busy, msg);
        return;
    };
    let tftp = Arc::clone(tftp);
    let interface = interface.to_string();
    tokio::spawn(async move {
        match kind {
            Kind::Read => {
                let _running = pace::Running::start();
                transfer(&tftp, &interface, req, from, local).await;
            }
            Kind::Upload(folder) => {
                upload::receive(&tftp, &folder, &interface, req, from, local).await;
            }
        }
        drop(permit);
    });
}

/// The transfer's own socket: bound to the address the request was sent to
/// (so replies come from where the client sent) and to the interface,
/// connected to the client.
fn transfer_socket(
    interface: &str,
    local: Ipv4Addr,
    client: SocketAddrV4,
) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((local, 0)).into())?;
    s.connect(&SocketAddr::V4(client).into())?;
    UdpSocket::from_std(s.into())
}

/// The bytes of a transfer: a file read ahead in large chunks off the
/// runtime, or (generated files, netascii) bytes in memory.
struct Source {
    file: Option<Arc<std::fs::File>>,
    size: u64,
    /// Bytes `chunk_at..` of the transfer (all of them when in memory).
    chunk: Bytes,
    chunk_at: u64,
}

impl Source {
    async fn new(found: Found, mode: Mode) -> io::Result<Source> {
        let bytes = match (found.body, mode) {
            (Body::File(f), Mode::Octet) => {
                return Ok(Source {
                    file: Some(Arc::new(f)),
                    size: found.size,
                    chunk: Bytes::new(),
                    chunk_at: 0,
                });
            }
            (Body::Bytes(b), _) => b,
            (Body::File(_), Mode::Netascii) if found.size > NETASCII_MAX => {
                return Err(io::Error::other(format!(
                    "netascii transfers are limited to {} MiB; ask in octet mode",
                    NETASCII_MAX >> 20
                )));
            }
            (Body::File(f), Mode::Netascii) => {
                Bytes::from(read_chunk(Arc::new(f), 0, found.size as usize).await?)
            }
        };
        let chunk = match mode {
            Mode::Octet => bytes,
            Mode::Netascii => Bytes::from(packet::to_netascii(&bytes)),
        };
        Ok(Source {
            file: None,
            size: chunk.len() as u64,
            chunk,
            chunk_at: 0,
        })
    }

    /// Bytes `at..at+len` (shorter at the end of the file).
    async fn read(&mut self, at: u64, len: usize) -> io::Result<Bytes> {
        let end = (at + len as u64).min(self.size);
        if at >= end {
            return Ok(Bytes::new());
        }
        let cached = self.chunk_at <= at && end <= self.chunk_at + self.chunk.len() as u64;
        if let (false, Some(f)) = (cached, &self.file) {
            self.chunk = Bytes::from(read_chunk(Arc::clone(f), at, READ_CHUNK.max(len)).await?);
            self.chunk_at = at;
        }
        let from = (at - self.chunk_at) as usize;
        let to = ((end - self.chunk_at) as usize).min(self.chunk.len());
        if from > to {
            return Err(io::Error::other("the file shrank during the transfer"));
        }
        Ok(self.chunk.slice(from..to))
    }
}

/// One read request from start to end, with its event.
async fn transfer(tftp: &Tftp, interface: &str, req: Request, from: SocketAddrV4, local: Ipv4Addr) {
    let Some((client, mut record, sock)) = begin(tftp, "tftp", interface, &req, from, local) else {
        return;
    };
    let found = match tftp
        .resolver
        .resolve_async(&req.filename, client, false)
        .await
    {
        Ok(f) => f,
        Err(miss) => {
            let error = match miss {
                Miss::NotFound | Miss::Private { .. } => {
                    packet::error(packet::ERR_NOT_FOUND, "File not found")
                }
                Miss::Refused(_) | Miss::Io(_) => {
                    packet::error(packet::ERR_ACCESS, "Access violation")
                }
            };
            let _ = sock.send(&error).await;
            record.missed(&miss);
            tftp.counters.finish(&record);
            return;
        }
    };
    record.file = Some(found.path.clone());
    let mut source = match Source::new(found, req.mode).await {
        Ok(s) => s,
        Err(e) => {
            let _ = sock
                .send(&packet::error(packet::ERR_UNDEFINED, &e.to_string()))
                .await;
            record.detail = e.to_string();
            tftp.counters.finish(&record);
            return;
        }
    };
    let n = tftp.negotiate(&req, source.size, &mut record);
    record.total = Some(source.size);
    let oack = (!n.oack.is_empty()).then(|| packet::oack(&n.oack));
    let mut window = Window::new(source.size, n.blksize, n.window, oack.is_some());
    let tracked = tftp.live.track(&record, source.size);
    let outcome = drive(
        &sock,
        &mut source,
        &mut window,
        oack.as_deref(),
        &n,
        tftp,
        &tracked.progress,
    )
    .await;
    record.outcome = outcome;
    record.sent = tracked.progress.sent();
    drop(tracked);
    tftp.counters.finish(&record);
}

/// Sends the file (after the OACK, if any) and returns how it ended; the
/// bytes acknowledged are kept in `progress` as they come.
async fn drive(
    sock: &UdpSocket,
    source: &mut Source,
    window: &mut Window,
    oack: Option<&[u8]>,
    n: &packet::Negotiated,
    tftp: &Tftp,
    progress: &InFlight,
) -> Outcome {
    let (blksize, timeout, retries) = (n.blksize, n.timeout, tftp.config.tftp_retries);
    let mut ack_poll = pace::AckPoll::default();
    let mut timer = pace::LazyTimer::new(timeout);
    let mut out = Vec::with_capacity(usize::from(blksize) + 4);
    let mut inbuf = vec![0u8; 1024];
    if let Some(o) = oack
        && sock.send(o).await.is_err()
    {
        return Outcome::Failed;
    }
    let mut step = window.start();
    loop {
        if let Step::Send(range) = &step {
            for idx in range.clone() {
                let at = (idx - 1) * u64::from(blksize);
                let payload = match source.read(at, usize::from(blksize)).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = sock
                            .send(&packet::error(packet::ERR_UNDEFINED, &e.to_string()))
                            .await;
                        return Outcome::Failed;
                    }
                };
                packet::data(wire_number(idx), &payload, &mut out);
                ack_poll.sent();
                if let Err(e) = sock.send(&out).await {
                    // The client's port is gone (ICMP unreachable): it gave up.
                    tracing::debug!(target: "dialtone::files", error = %e, "TFTP send failed");
                    return Outcome::AbortedByClient;
                }
            }
        }
        if step == Step::Done {
            return Outcome::Complete;
        }
        // Wait for an ACK that moves the transfer, until the deadline.
        let deadline = Instant::now() + timeout;
        step = loop {
            let got = match ack_poll.wait(sock, &mut inbuf) {
                Some(r) => Ok(r),
                None => timer.recv(sock, &mut inbuf, deadline).await,
            };
            ack_poll.acked();
            match got {
                Err(_) => match window.on_timeout(retries) {
                    None => return Outcome::Timeout,
                    Some(Resend::OptionAck) => {
                        if let Some(o) = oack {
                            let _ = sock.send(o).await;
                        }
                        break Step::Ignore;
                    }
                    Some(Resend::Blocks(r)) => break Step::Send(r),
                },
                Ok(Err(e)) => {
                    tracing::debug!(target: "dialtone::files", error = %e, "TFTP receive failed");
                    return Outcome::AbortedByClient;
                }
                Ok(Ok(n)) => match packet::parse(&inbuf[..n]) {
                    Ok(Packet::Ack(b)) => match window.on_ack(b) {
                        Step::Ignore => continue,
                        s => {
                            progress
                                .set_sent((window.acked() * u64::from(blksize)).min(source.size));
                            break s;
                        }
                    },
                    Ok(Packet::Error { .. }) => return Outcome::AbortedByClient,
                    _ => continue,
                },
            }
        };
    }
}
