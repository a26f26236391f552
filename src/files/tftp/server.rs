//! TFTP on the served interfaces: port 69 bound to each interface. Reads
//! go out through one socket per local address, shared by every read sent
//! there and driven by one task (mux.rs); an upload has a socket of its
//! own, bound to the address the request was sent to and connected to the
//! client (upload.rs).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::mux::{Mux, Read, Source};
use super::packet::{self, Limits, Packet, Request};
use super::window::Window;
use super::{pace, upload};
use crate::config::Files;
use crate::files::resolve::{Client, Miss, Resolver};
use crate::files::transfers::{Counters, Live, Outcome, Transfer};
use crate::net::{ifaces, sockets};

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

/// The event of a transfer just asked for, with its client.
fn record(
    tftp: &Tftp,
    protocol: &'static str,
    req: &Request,
    from: SocketAddrV4,
) -> (Client, Transfer) {
    let client = tftp.resolver.client(*from.ip());
    let mut record = Transfer::begin(protocol, &client, &req.filename);
    record.detail = format!("mode {}", req.mode.as_str());
    (client, record)
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
    let (client, mut record) = record(tftp, protocol, req, from);
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
pub async fn run(
    live: tokio::sync::watch::Receiver<Arc<crate::config::Config>>,
    services: crate::files::LiveServices,
    ready: Arc<crate::net::ready::Readiness>,
) -> anyhow::Result<()> {
    crate::net::places::serve(
        live,
        "TFTP",
        ready,
        |c| places(c),
        move |place, report| {
            let port = place_port(&place);
            serve_interface(place.label, port, services.clone(), report)
        },
    )
    .await
}

/// Where TFTP listens under `config`: port 69 (or `tftp_port`) of each
/// served interface, when `[files]` serves TFTP.
pub fn places(config: &crate::config::Config) -> Vec<crate::net::places::Place> {
    match &config.files {
        Some(f) if f.tftp => config
            .server
            .interfaces
            .iter()
            .map(|i| crate::net::places::Place::on(i, f.tftp_port.to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

fn place_port(place: &crate::net::places::Place) -> u16 {
    place.settings.parse().unwrap_or(69)
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

async fn serve_interface(
    name: String,
    port: u16,
    services: crate::files::LiveServices,
    report: crate::net::ready::Report,
) -> anyhow::Result<()> {
    let name = name.as_str();
    let Some(mut tftp) = services.borrow().as_ref().map(|s| Arc::clone(&s.tftp)) else {
        return std::future::pending().await;
    };
    let sock = sockets::udp(name, port, |s| {
        nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
            .map_err(io::Error::from)?;
        sockets::large_buffers(s, 1 << 20, false);
        Ok(())
    })
    .with_context(|| format!("cannot listen for TFTP on {name} UDP port {port}"))?;
    report.bound();
    tracing::info!(target: "dialtone::files", interface = %name, port, root = %tftp.config.root.display(), "serving TFTP");
    let mut addrs = ifaces::Addrs::new(name);
    // The reads' shared sockets, one per local address, opened at the
    // first read sent to it.
    let mut muxes = HashMap::new();
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
        let received = tokio::time::Instant::now();
        // The services of the live configuration: after a reload, new
        // requests get the new ones (and new transfer sockets); transfers
        // already running keep theirs.
        if let Some(now) = services.borrow().as_ref().map(|s| Arc::clone(&s.tftp))
            && !Arc::ptr_eq(&now, &tftp)
        {
            tftp = now;
            muxes.clear();
        }
        match packet::parse(&buf[..n]) {
            Ok(Packet::Read(req)) => {
                let kind = Kind::Read { received };
                start(&tftp, &sock, &mut muxes, name, req, kind, from, local).await
            }
            Ok(Packet::Write(req)) => match &tftp.config.upload {
                Some(folder) => {
                    let kind = Kind::Upload(folder.clone());
                    start(&tftp, &sock, &mut muxes, name, req, kind, from, local).await
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
                crate::counters::bump(crate::counters::Counter::TftpDropped);
                tracing::debug!(target: "dialtone::files", client = %from, "TFTP packet on port {port} that is not a request; dropped");
            }
            Err(e) => {
                crate::counters::bump(crate::counters::Counter::TftpDropped);
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
    /// A read, its request received at this time.
    Read { received: tokio::time::Instant },
    /// A write, into this folder.
    Upload(PathBuf),
}

/// A transfer's slot under the limit and its place in the count of
/// running transfers, both held until it ends.
pub(super) type Hold = (OwnedSemaphorePermit, pace::Running);

/// Starts a transfer (a read through the mux of its local address, an
/// upload in its own task), or refuses it when the transfer limit is
/// reached.
#[allow(clippy::too_many_arguments)]
async fn start(
    tftp: &Arc<Tftp>,
    sock: &UdpSocket,
    muxes: &mut HashMap<Ipv4Addr, Arc<Mux>>,
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
            Kind::Read { .. } => "tftp",
            Kind::Upload(_) => "tftp-upload",
        };
        tftp.refused(protocol, from, &req, Outcome::Busy, msg);
        return;
    };
    let tftp = Arc::clone(tftp);
    match kind {
        Kind::Read { received } => {
            let mux = match muxes.entry(local) {
                Entry::Occupied(e) => Arc::clone(e.get()),
                Entry::Vacant(e) => match Mux::open(Arc::clone(&tftp), interface, local) {
                    Ok(m) => Arc::clone(e.insert(Arc::new(m))),
                    Err(err) => {
                        let why = format!("cannot open a transfer socket on {local}: {err}");
                        tftp.refused("tftp", from, &req, Outcome::Failed, why);
                        return;
                    }
                },
            };
            let hold = (permit, pace::Running::start());
            tokio::spawn(transfer(tftp, mux, req, from, received, hold));
        }
        Kind::Upload(folder) => {
            let interface = interface.to_string();
            tokio::spawn(async move {
                upload::receive(&tftp, &folder, &interface, req, from, local).await;
                drop(permit);
            });
        }
    }
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

/// One read request: the file found and the options negotiated, then
/// handed to the mux that sends it.
async fn transfer(
    tftp: Arc<Tftp>,
    mux: Arc<Mux>,
    req: Request,
    from: SocketAddrV4,
    received: tokio::time::Instant,
    hold: Hold,
) {
    let (client, mut record) = record(&tftp, "tftp", &req, from);
    let found = match tftp
        .resolver
        .resolve_async(&req.filename, client, false)
        .await
    {
        Ok(f) => f,
        Err(miss) => {
            let error = match miss {
                Miss::NotFound | Miss::Private { .. } => {
                    Some(packet::error(packet::ERR_NOT_FOUND, "File not found"))
                }
                Miss::Refused(_) | Miss::Io(_) => {
                    Some(packet::error(packet::ERR_ACCESS, "Access violation"))
                }
                // A MAC sweep: no answer at all, so each guess costs the
                // scanner its whole timeout.
                Miss::Slowed => None,
            };
            if let Some(error) = error {
                let _ = mux.socket().send_to(&error, from).await;
            }
            record.missed(&miss);
            tftp.counters.finish(&record);
            return;
        }
    };
    record.file = Some(found.path.clone());
    let source = match Source::new(found, req.mode).await {
        Ok(s) => s,
        Err(e) => {
            let error = packet::error(packet::ERR_UNDEFINED, &e.to_string());
            let _ = mux.socket().send_to(&error, from).await;
            record.detail = e.to_string();
            tftp.counters.finish(&record);
            return;
        }
    };
    let n = tftp.negotiate(&req, source.size, &mut record);
    record.total = Some(source.size);
    let oack = (!n.oack.is_empty()).then(|| Bytes::from(packet::oack(&n.oack)));
    let window = Window::new(source.size, n.blksize, n.window, oack.is_some());
    let tracked = tftp.live.track(&record, source.size);
    mux.start(Read {
        client: from,
        received,
        source,
        window,
        oack,
        blksize: n.blksize,
        timeout: n.timeout,
        record,
        tracked,
        _hold: hold,
    });
}
