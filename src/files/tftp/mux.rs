//! One socket for many reads. Every read answered from one local address
//! goes out through one transfer socket (its port is the server's TID for
//! each of them), driven by one task that tells the transfers apart by the
//! client's address and port. The task takes every ACK waiting with one
//! `recvmmsg` and sends every block due with one `sendmmsg`; the blocks of
//! a window to one client go as one message that the kernel cuts into
//! datagrams (UDP GSO, see `Plan`).
//!
//! Why: a lockstep transfer is one block and one ACK per round trip, and on
//! a fast link the server's cost per block is system calls and task
//! wake-ups, not bytes. With a socket and a task per transfer, 100 lockstep
//! clients cost dialtone a task wake-up and three system calls per block;
//! here, a batch of ACKs from many clients costs one wake-up and two calls.
//! (docs/benchmarks.md, "The lockstep row", has the measurements.)
//!
//! Each transfer's state is its `Window` (which blocks to send, no I/O) and
//! its `Source` (the file, read ahead in large chunks off the runtime);
//! this module moves datagrams between them and the socket, keeps each
//! transfer's deadline, and reports each transfer once when it ends.
//! Uploads keep a socket of their own (upload.rs).

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::pace;
use super::packet::{self, Mode, Packet};
use super::server::Tftp;
use super::window::{Resend, Step, Window, wire_number};
use crate::files::resolve::{Body, Found, Stamp, fill_at, read_chunk};
use crate::files::transfers::{Outcome, Tracked, Transfer};

/// Datagrams taken per receive call, and at most sent per send call.
const BATCH: usize = 64;
/// Room for one datagram from a client: an ACK, or an ERROR and its text.
const DATAGRAM: usize = 1024;
/// File reads for octet transfers, in chunks of this size.
const READ_CHUNK: usize = 1 << 20;
/// The longest the task runs before letting the runtime's other tasks
/// run. Without it, on one core, 100 windowed transfers kept new requests
/// waiting over a second, past their clients' timeouts. Checked on every
/// pass of the loop, so a lone client polled for yields too, rather than
/// only when its poll happens to time out.
const YIELD_AFTER: Duration = Duration::from_micros(500);
/// Netascii files are converted in memory; bigger ones are refused.
const NETASCII_MAX: u64 = 16 << 20;

/// The transfer socket of one local address and the task behind it.
pub(super) struct Mux {
    tftp: Arc<Tftp>,
    sock: Arc<UdpSocket>,
    add: mpsc::UnboundedSender<Read>,
}

impl Mux {
    /// Opens the shared socket on `local` (bound to `interface`) and starts
    /// its task.
    pub fn open(tftp: Arc<Tftp>, interface: &str, local: Ipv4Addr) -> io::Result<Mux> {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.bind_device(Some(interface.as_bytes()))?;
        s.set_nonblocking(true)?;
        // Room for a burst of ACKs from every client at once.
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&SocketAddr::from((local, 0)).into())?;
        // ICMP errors (a client's port closed) queued for `closed_ports`:
        // an unconnected socket hears of them only this way.
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Ipv4RecvErr, &true)
            .map_err(io::Error::from)?;
        let sock = Arc::new(UdpSocket::from_std(s.into())?);
        let (add, reads) = mpsc::unbounded_channel();
        let task = Task::new(Arc::clone(&tftp), Arc::clone(&sock), segment_max(interface));
        tokio::spawn(task.run(reads));
        Ok(Mux { tftp, sock, add })
    }

    /// The shared socket, for answers sent before a transfer begins (an
    /// ERROR for a missing file).
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Hands a read over to the task.
    pub fn start(&self, read: Read) {
        if let Err(mpsc::error::SendError(read)) = self.add.send(read) {
            // The task is gone only when the server is stopping.
            let mut record = read.record;
            record.detail = "the server is stopping".into();
            self.tftp.counters.finish(&record);
        }
    }
}

/// The largest UDP payload `interface` carries in one unfragmented IPv4
/// packet (its MTU less 28 bytes of headers); 0 when it cannot be read.
fn segment_max(interface: &str) -> usize {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/mtu"))
        .ok()
        .and_then(|m| m.trim().parse::<usize>().ok())
        .map_or(0, |mtu| mtu.saturating_sub(28))
}

/// A read ready to start: the file found, the options negotiated.
pub(super) struct Read {
    pub client: SocketAddrV4,
    /// When the request reached port 69.
    pub received: Instant,
    pub source: Source,
    pub window: Window,
    pub oack: Option<Bytes>,
    pub blksize: u16,
    pub timeout: Duration,
    pub record: Transfer,
    pub tracked: Tracked,
    /// The transfer's slot under the limit, and its place in the count of
    /// running transfers; both held until it ends.
    pub _hold: super::server::Hold,
}

/// The bytes of a read: a file read ahead in large chunks off the runtime,
/// or (generated files, netascii) bytes in memory.
pub(super) struct Source {
    file: Option<Arc<std::fs::File>>,
    /// The file as it was when the transfer began: every chunk is checked
    /// against it before and after it is read, so a file written in place
    /// meanwhile ends the transfer with an ERROR, never a mix.
    stamp: Option<Stamp>,
    pub size: u64,
    /// Bytes `chunk_at..` of the transfer (all of them when in memory).
    chunk: Bytes,
    chunk_at: u64,
}

/// Where a block's bytes are.
#[derive(Debug, PartialEq)]
enum Slice {
    Ready(Bytes),
    /// Read the chunk starting here first.
    Load(u64),
    /// A chunk read from here came back short: the file shrank.
    Shrank,
}

impl Source {
    pub async fn new(found: Found, mode: Mode) -> io::Result<Source> {
        let bytes = match (found.body, mode) {
            (Body::File(f), Mode::Octet) => {
                return Ok(Source {
                    stamp: Some(Stamp::of(&f)?),
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
        Ok(Source::in_memory(match mode {
            Mode::Octet => bytes,
            Mode::Netascii => Bytes::from(packet::to_netascii(&bytes)),
        }))
    }

    fn in_memory(bytes: Bytes) -> Source {
        Source {
            file: None,
            stamp: None,
            size: bytes.len() as u64,
            chunk: bytes,
            chunk_at: 0,
        }
    }

    /// Bytes `at..at+len` (shorter at the end of the file).
    fn slice(&self, at: u64, len: usize) -> Slice {
        let end = (at + len as u64).min(self.size);
        if at >= end {
            return Slice::Ready(Bytes::new());
        }
        let chunk_end = self.chunk_at + self.chunk.len() as u64;
        if self.chunk_at <= at && end <= chunk_end {
            let from = (at - self.chunk_at) as usize;
            return Slice::Ready(self.chunk.slice(from..(end - self.chunk_at) as usize));
        }
        match &self.file {
            // In memory, every byte is there: a range past them cannot be.
            None => Slice::Shrank,
            Some(_) if self.chunk_at == at && !self.chunk.is_empty() => Slice::Shrank,
            Some(_) => Slice::Load(at),
        }
    }

    /// Reads the chunk at `at` off the runtime and posts it to `done`,
    /// reusing the current chunk's memory when nothing else holds it.
    fn load(&mut self, at: u64, want: usize, done: mpsc::UnboundedSender<Loaded>, key: Key) {
        let (Some(file), Some(stamp)) = (self.file.clone(), self.stamp) else {
            return;
        };
        let old = std::mem::take(&mut self.chunk);
        let mut buf = old.try_into_mut().unwrap_or_else(|_| BytesMut::new());
        tokio::task::spawn_blocking(move || {
            buf.resize(want, 0);
            let result = stamp
                .check(&file)
                .and_then(|()| fill_at(&file, &mut buf, at))
                .and_then(|n| stamp.check(&file).map(|()| n));
            buf.truncate(*result.as_ref().unwrap_or(&0));
            let _ = done.send(Loaded {
                key,
                at,
                result: result.map(|_| buf.freeze()),
            });
        });
    }
}

/// A transfer's key: its client, and a serial number that tells a new
/// transfer from an old one from the same port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    client: SocketAddrV4,
    serial: u64,
}

/// A chunk read finished.
struct Loaded {
    key: Key,
    at: u64,
    result: io::Result<Bytes>,
}

/// One datagram to send.
struct Out {
    to: SocketAddrV4,
    /// The DATA header (empty for an OACK or ERROR, whose bytes are all in
    /// `body`).
    head: [u8; 4],
    head_len: usize,
    body: Bytes,
}

impl Out {
    fn whole(to: SocketAddrV4, body: Bytes) -> Out {
        Out {
            to,
            head: [0; 4],
            head_len: 0,
            body,
        }
    }
}

/// A read in progress.
struct Flow {
    serial: u64,
    /// When its first answer was queued.
    started: Instant,
    read: Read,
    deadline: Instant,
    /// Blocks to send once the chunk being read arrives; `Some` exactly
    /// while a chunk read is under way.
    waiting: Option<RangeInclusive<u64>>,
}

/// What ended the task's wait.
enum Wake {
    Read(Option<Box<Read>>),
    Loaded(Loaded),
    Socket(io::Result<tokio::io::Ready>),
    Timer,
}

/// How a transfer ended, and why (for its event).
type End = (Outcome, Option<String>);

/// What the task sends, and what sending needs: the queue of datagrams,
/// the way back for chunk reads, the lone client's round trip.
struct Outbox {
    out: Vec<Out>,
    loaded_tx: mpsc::UnboundedSender<Loaded>,
    ack_poll: pace::AckPoll,
}

impl Outbox {
    /// Queues blocks `range` of `flow`, or as many as are read so far and
    /// starts reading the rest.
    fn send(&mut self, flow: &mut Flow, range: RangeInclusive<u64>) -> Option<End> {
        let blksize = flow.read.blksize;
        let (first, last) = (*range.start(), *range.end());
        for idx in first..=last {
            let at = (idx - 1) * u64::from(blksize);
            match flow.read.source.slice(at, usize::from(blksize)) {
                Slice::Ready(body) => {
                    let n = wire_number(idx).to_be_bytes();
                    self.out.push(Out {
                        to: flow.read.client,
                        head: [0, 3, n[0], n[1]],
                        head_len: 4,
                        body,
                    });
                }
                Slice::Load(from) => {
                    let under_way = flow.waiting.replace(idx..=last).is_some();
                    if !under_way {
                        let key = Key {
                            client: flow.read.client,
                            serial: flow.serial,
                        };
                        let want = READ_CHUNK.max(usize::from(blksize));
                        let done = self.loaded_tx.clone();
                        flow.read.source.load(from, want, done, key);
                    }
                    break;
                }
                Slice::Shrank => {
                    let why = "the file shrank during the transfer";
                    let error = packet::error(packet::ERR_UNDEFINED, why);
                    self.out
                        .push(Out::whole(flow.read.client, Bytes::from(error)));
                    return Some((Outcome::Failed, Some(why.into())));
                }
            }
        }
        flow.deadline = Instant::now() + flow.read.timeout;
        self.ack_poll.sent();
        None
    }
}

struct Task {
    tftp: Arc<Tftp>,
    sock: Arc<UdpSocket>,
    flows: HashMap<SocketAddrV4, Flow>,
    serial: u64,
    outbox: Outbox,
    loaded_rx: mpsc::UnboundedReceiver<Loaded>,
    /// No flow's deadline is before this.
    next_check: Instant,
    timer: Pin<Box<Sleep>>,
    inbox: Vec<u8>,
    got: Vec<(usize, SocketAddrV4)>,
    /// The largest datagram sent as a segment of a longer message (UDP
    /// GSO): what the interface carries unfragmented; 0 for none.
    segment_max: usize,
}

impl Task {
    fn new(tftp: Arc<Tftp>, sock: Arc<UdpSocket>, segment_max: usize) -> Task {
        let (loaded_tx, loaded_rx) = mpsc::unbounded_channel();
        let far = Instant::now() + Duration::from_secs(3600);
        Task {
            tftp,
            sock,
            flows: HashMap::new(),
            serial: 0,
            outbox: Outbox {
                out: Vec::new(),
                loaded_tx,
                ack_poll: pace::AckPoll::default(),
            },
            loaded_rx,
            next_check: far,
            timer: Box::pin(tokio::time::sleep_until(far)),
            inbox: vec![0; BATCH * DATAGRAM],
            got: Vec::with_capacity(BATCH),
            segment_max,
        }
    }

    async fn run(mut self, mut reads: mpsc::UnboundedReceiver<Read>) {
        let mut open = true;
        let mut slice_start = Instant::now();
        loop {
            // However busy the transfers keep this task (many windows, or
            // a lone client polled for), the runtime's other tasks (new
            // requests, their file lookups) run at least this often.
            if slice_start.elapsed() >= YIELD_AFTER {
                tokio::task::yield_now().await;
                slice_start = Instant::now();
            }
            let mut busy = false;
            while let Ok(read) = reads.try_recv() {
                self.add(read);
                busy = true;
            }
            while let Ok(l) = self.loaded_rx.try_recv() {
                self.loaded(l);
                busy = true;
            }
            match self.sock.try_io(Interest::READABLE, || {
                recv_batch(&self.sock, &mut self.inbox, &mut self.got)
            }) {
                Ok(_) => {
                    self.outbox.ack_poll.acked();
                    self.datagrams();
                    busy = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    // An ICMP error is reported once by the next receive;
                    // the queue says which client it was for.
                    tracing::debug!(target: "dialtone::files", error = %e, "TFTP receive failed");
                    self.closed_ports();
                }
            }
            let now = Instant::now();
            if now >= self.next_check {
                self.expire(now);
            }
            self.flush().await;
            if !open && self.flows.is_empty() {
                return;
            }
            if busy {
                continue;
            }
            // A lone client answering within microseconds is polled for,
            // instead of sleeping between its ACKs.
            if self.flows.len() == 1 {
                let (sock, inbox, got) = (&self.sock, &mut self.inbox, &mut self.got);
                let polled = self
                    .outbox
                    .ack_poll
                    .wait(|| match recv_one(sock, inbox, got) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                        r => Some(r),
                    });
                if let Some(r) = polled {
                    self.outbox.ack_poll.acked();
                    match r {
                        Ok(_) => self.datagrams(),
                        // An ICMP error, as for a batch receive.
                        Err(_) => self.closed_ports(),
                    }
                    continue;
                }
            }
            if self.timer.deadline() != self.next_check {
                self.timer.as_mut().reset(self.next_check);
            }
            let wake = tokio::select! {
                read = reads.recv(), if open => Wake::Read(read.map(Box::new)),
                Some(l) = self.loaded_rx.recv() => Wake::Loaded(l),
                r = self.sock.ready(Interest::READABLE | Interest::ERROR) => Wake::Socket(r),
                () = self.timer.as_mut() => Wake::Timer,
            };
            slice_start = Instant::now();
            match wake {
                Wake::Read(Some(read)) => self.add(*read),
                Wake::Read(None) => open = false,
                Wake::Loaded(l) => self.loaded(l),
                Wake::Socket(Ok(ready)) if ready.is_error() => {
                    self.closed_ports();
                    // Cleared only now: an error queued meanwhile wakes
                    // again, or is reported by the next receive.
                    let _ = self.sock.try_io(Interest::ERROR, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                }
                Wake::Socket(Err(e)) => {
                    tracing::warn!(target: "dialtone::files", error = %e, "TFTP transfer socket failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Wake::Socket(Ok(_)) | Wake::Timer => {}
            }
        }
    }

    /// Starts a read; a repeated request from a client whose transfer has
    /// not moved yet is the same request sent again, and is dropped.
    fn add(&mut self, read: Read) {
        let client = read.client;
        if let Some(old) = self.flows.get(&client) {
            // The same request again: received before this transfer sent
            // its first answer (the client had heard nothing yet, however
            // long the lookup took), or before anything was acknowledged.
            let repeated = read.received <= old.started || old.read.window.acked() == 0;
            if repeated && old.read.record.requested == read.record.requested {
                tracing::debug!(target: "dialtone::files", %client, file = %read.record.requested, "repeated TFTP request; the transfer already answering it goes on");
                return;
            }
            let detail = "the client sent a new request from the same port".to_string();
            self.finish(client, (Outcome::AbortedByClient, Some(detail)));
        }
        self.serial += 1;
        let mut flow = Flow {
            serial: self.serial,
            started: Instant::now(),
            deadline: Instant::now() + read.timeout,
            read,
            waiting: None,
        };
        let end = match flow.read.oack.clone() {
            Some(oack) => {
                self.outbox.out.push(Out::whole(client, oack));
                None
            }
            None => match flow.read.window.start() {
                Step::Send(r) => self.outbox.send(&mut flow, r),
                _ => None,
            },
        };
        self.next_check = self.next_check.min(flow.deadline);
        self.flows.insert(client, flow);
        if let Some(end) = end {
            self.finish(client, end);
        }
    }

    /// A chunk read finished.
    fn loaded(&mut self, l: Loaded) {
        let Some(flow) = self.flows.get_mut(&l.key.client) else {
            return;
        };
        if flow.serial != l.key.serial {
            return;
        }
        let waiting = flow.waiting.take();
        let end = match l.result {
            Ok(chunk) => {
                flow.read.source.chunk = chunk;
                flow.read.source.chunk_at = l.at;
                waiting.and_then(|r| self.outbox.send(flow, r))
            }
            Err(e) => {
                let error = packet::error(packet::ERR_UNDEFINED, &e.to_string());
                self.outbox
                    .out
                    .push(Out::whole(l.key.client, Bytes::from(error)));
                Some((Outcome::Failed, Some(e.to_string())))
            }
        };
        self.next_check = self.next_check.min(flow.deadline);
        if let Some(end) = end {
            self.finish(l.key.client, end);
        }
    }

    /// The datagrams `recv_batch` took.
    fn datagrams(&mut self) {
        let got = std::mem::take(&mut self.got);
        for (i, &(len, from)) in got.iter().enumerate() {
            let at = i * DATAGRAM;
            let parsed = packet::parse(&self.inbox[at..at + len]);
            // From an address no transfer of this socket belongs to: ERROR
            // 5 to that address only, the transfers untouched (RFC 1350
            // 4). An ERROR is never answered with one.
            if !self.flows.contains_key(&from) {
                crate::counters::bump(crate::counters::Counter::TftpWrongTid);
                tracing::debug!(target: "dialtone::files", client = %from, "TFTP datagram for no transfer in progress; answered ERROR 5");
                if !matches!(parsed, Ok(Packet::Error { .. })) {
                    let e = packet::error(packet::ERR_UNKNOWN_TID, "unknown transfer ID");
                    self.outbox.out.push(Out::whole(from, e.into()));
                }
                continue;
            }
            let end = match parsed {
                Ok(Packet::Ack(block)) => self.ack(from, block),
                Ok(Packet::Error { .. }) => Some((Outcome::AbortedByClient, None)),
                _ => None,
            };
            if let Some(end) = end {
                self.finish(from, end);
            }
        }
        self.got = got;
        self.got.clear();
    }

    fn ack(&mut self, from: SocketAddrV4, block: u16) -> Option<End> {
        let flow = self.flows.get_mut(&from)?;
        let step = flow.read.window.on_ack(block);
        if step != Step::Ignore {
            let acked = flow.read.window.acked() * u64::from(flow.read.blksize);
            let progress = &flow.read.tracked.progress;
            progress.set_sent(acked.min(flow.read.source.size));
        }
        match step {
            Step::Ignore => None,
            Step::Done => Some((Outcome::Complete, None)),
            Step::Send(r) => self.outbox.send(flow, r),
        }
    }

    /// Resends for every transfer whose deadline has passed, or ends it
    /// when its retries are spent.
    fn expire(&mut self, now: Instant) {
        let retries = self.tftp.config.tftp_retries;
        let mut ended = Vec::new();
        for (&client, flow) in self.flows.iter_mut().filter(|(_, f)| f.deadline <= now) {
            let end = match flow.read.window.on_timeout(retries) {
                None => Some((Outcome::Timeout, None)),
                Some(Resend::OptionAck) => {
                    if let Some(o) = flow.read.oack.clone() {
                        self.outbox.out.push(Out::whole(client, o));
                    }
                    flow.deadline = now + flow.read.timeout;
                    None
                }
                Some(Resend::Blocks(r)) => self.outbox.send(flow, r),
            };
            ended.extend(end.map(|e| (client, e)));
        }
        for (client, end) in ended {
            self.finish(client, end);
        }
        self.next_check = self
            .flows
            .values()
            .map(|f| f.deadline)
            .min()
            .unwrap_or(now + Duration::from_secs(3600));
    }

    /// Ends `client`'s transfer and reports it.
    fn finish(&mut self, client: SocketAddrV4, (outcome, detail): End) {
        let Some(flow) = self.flows.remove(&client) else {
            return;
        };
        let Read {
            mut record,
            tracked,
            ..
        } = flow.read;
        record.outcome = outcome;
        if let Some(d) = detail {
            record.detail = format!("{}; {d}", record.detail);
        }
        record.sent = tracked.progress.sent();
        drop(tracked);
        self.tftp.counters.finish(&record);
    }

    /// Ends the transfers whose client's port is closed (ICMP port
    /// unreachable in the socket's error queue): the client has gone.
    fn closed_ports(&mut self) {
        while let Some(client) = next_closed_port(&self.sock) {
            if self.flows.contains_key(&client) {
                let why = "the client's port is closed".to_string();
                self.finish(client, (Outcome::AbortedByClient, Some(why)));
            }
        }
    }

    /// Sends everything queued; waits while the socket's buffer is full.
    async fn flush(&mut self) {
        while !self.outbox.out.is_empty() {
            let sent = self.sock.try_io(Interest::WRITABLE, || {
                send_batch(&self.sock, &self.outbox.out, self.segment_max)
            });
            match sent {
                Ok(k) => {
                    self.outbox.out.drain(..k.max(1));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.sock.writable().await {
                        tracing::warn!(target: "dialtone::files", error = %e, "TFTP transfer socket failed");
                        self.outbox.out.clear();
                    }
                }
                Err(e) if e.get_ref().is_some_and(|i| i.is::<CutRefused>()) => {
                    // The kernel or the interface cannot cut messages
                    // into datagrams: every datagram goes on its own.
                    tracing::info!(target: "dialtone::files", error = %e, "TFTP windows are sent a datagram at a time on this interface");
                    self.segment_max = 0;
                }
                Err(e) => {
                    // The first datagram could not go (no route to its
                    // client, say): it counts as lost, and its transfer
                    // resends or times out.
                    tracing::debug!(target: "dialtone::files", client = %self.outbox.out[0].to, error = %e, "TFTP send failed");
                    self.outbox.out.remove(0);
                }
            }
        }
    }
}

/// Whether a send failed because the message was to be cut into
/// datagrams (UDP GSO) where that cannot be done.
fn cutting_refused(e: &io::Error) -> bool {
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
fn recv_batch(
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
fn next_closed_port(sock: &UdpSocket) -> Option<SocketAddrV4> {
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
fn recv_one(
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

/// The most datagrams the kernel cuts one message into (UDP_MAX_SEGMENTS).
const MAX_SEGMENTS: usize = 128;
/// The most bytes one UDP message carries.
const MAX_MESSAGE: usize = 65_507;

/// How one send call carries the front of the queue: each message is a run
/// of queued datagrams; a run of more than one (consecutive blocks to one
/// client, all of one size but the last) goes as one message that the
/// kernel cuts into datagrams of `segment` bytes (UDP GSO), so a window
/// crosses the stack once instead of once per block.
#[derive(Debug)]
struct Plan {
    messages: Vec<std::ops::Range<usize>>,
    segment: Option<usize>,
}

impl Plan {
    /// Plans at most `BATCH` messages from `out`; runs only when
    /// `segment_max` (the largest datagram the interface carries whole; 0
    /// when the kernel cannot cut messages) allows.
    fn new(out: &[Out], segment_max: usize) -> Plan {
        let mut plan = Plan {
            messages: Vec::new(),
            segment: None,
        };
        // The longest lone datagram so far: one cut into segments shorter
        // than itself would arrive in pieces.
        let mut longest_single = 0;
        let mut i = 0;
        while i < out.len() && plan.messages.len() < BATCH {
            let first = &out[i];
            let size = first.len();
            let mut j = i + 1;
            if first.head_len == 4 && size <= segment_max {
                let most = MAX_SEGMENTS.min(MAX_MESSAGE / size.max(1));
                while j < out.len()
                    && j - i < most
                    && out[j].to == first.to
                    && out[j].head_len == 4
                    && out[j - 1].len() == size
                    && out[j].len() <= size
                {
                    j += 1;
                }
            }
            if j - i > 1 {
                match plan.segment {
                    None if longest_single <= size => plan.segment = Some(size),
                    Some(s) if s == size => {}
                    // Another segment size: the next call.
                    _ => break,
                }
            } else {
                if plan.segment.is_some_and(|s| size > s) {
                    break;
                }
                longest_single = longest_single.max(size);
            }
            plan.messages.push(i..j);
            i = j;
        }
        plan
    }

    /// How many queued datagrams the first `sent` messages carry.
    fn carried(&self, sent: usize) -> usize {
        self.messages[..sent].last().map_or(0, |r| r.end)
    }
}

impl Out {
    fn len(&self) -> usize {
        self.head_len + self.body.len()
    }
}

/// Sends the front of `out` with one call, as `Plan` groups it; returns how
/// many queued datagrams went.
fn send_batch(sock: &UdpSocket, out: &[Out], segment_max: usize) -> io::Result<usize> {
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
struct CutRefused(io::Error);

#[cfg(test)]
mod tests {
    use super::*;

    /// A source reading `bytes` from a file, and the file's path.
    fn file_source(bytes: &[u8], tag: &str) -> (Source, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("dialtone-mux-{tag}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let s = Source {
            stamp: Some(Stamp::of(&f).unwrap()),
            file: Some(Arc::new(f)),
            size: bytes.len() as u64,
            chunk: Bytes::new(),
            chunk_at: 0,
        };
        (s, path)
    }

    #[test]
    fn in_memory_sources_slice_without_loading() {
        let s = Source::in_memory(Bytes::from_static(b"0123456789"));
        assert_eq!(s.slice(0, 4), Slice::Ready(Bytes::from_static(b"0123")));
        assert_eq!(s.slice(8, 4), Slice::Ready(Bytes::from_static(b"89")));
        // The empty last block of a size that is a multiple of blksize.
        assert_eq!(s.slice(10, 4), Slice::Ready(Bytes::new()));
    }

    #[tokio::test]
    async fn file_sources_load_chunks_and_notice_a_shrunk_file() {
        let (mut s, path) = file_source(b"abcdefghij", "chunks");
        assert_eq!(s.slice(4, 4), Slice::Load(4));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let key = Key {
            client: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1),
            serial: 1,
        };
        s.load(4, 6, tx.clone(), key);
        let l = rx.recv().await.unwrap();
        assert_eq!((l.key, l.at), (key, 4));
        s.chunk = l.result.unwrap();
        s.chunk_at = l.at;
        assert_eq!(s.slice(4, 4), Slice::Ready(Bytes::from_static(b"efgh")));
        assert_eq!(s.slice(8, 4), Slice::Ready(Bytes::from_static(b"ij")));
        assert_eq!(s.slice(0, 4), Slice::Load(0));
        // A file that was 12 bytes when the transfer began and is 10 now:
        // the chunk read from 8 brings 2 bytes where 4 were due.
        s.size = 12;
        s.load(8, 6, tx, key);
        let l = rx.recv().await.unwrap();
        s.chunk = l.result.unwrap();
        s.chunk_at = l.at;
        assert_eq!(s.slice(8, 4), Slice::Shrank);
        std::fs::remove_file(path).unwrap();
    }

    #[tokio::test]
    async fn a_file_written_in_place_during_a_transfer_fails_its_next_chunk() {
        let (mut s, path) = file_source(b"abcdefghij", "inplace");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let key = Key {
            client: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1),
            serial: 1,
        };
        s.load(0, 4, tx.clone(), key);
        assert!(rx.recv().await.unwrap().result.is_ok());
        // The same size, other bytes, written into the same file.
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::write(&path, b"ABCDEFGHIJ").unwrap();
        s.load(4, 6, tx, key);
        let err = rx.recv().await.unwrap().result.unwrap_err();
        assert_eq!(err.to_string(), crate::files::resolve::CHANGED);
        std::fs::remove_file(path).unwrap();
    }

    /// A task on a loopback socket, and the outcomes of the transfers it
    /// has ended (with their details).
    async fn task() -> (Task, Arc<std::sync::Mutex<Vec<(Outcome, String)>>>) {
        struct Nobody;
        impl crate::files::owners::Owners for Nobody {
            fn mac_of(&self, _: Ipv4Addr) -> Option<crate::units::Mac> {
                None
            }
        }
        let files = crate::config::Files {
            root: std::env::temp_dir(),
            ..Default::default()
        };
        let resolver =
            Arc::new(crate::files::resolve::Resolver::new(&files, Arc::new(Nobody)).unwrap());
        let ended = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&ended);
        let counters = Arc::new(crate::files::transfers::Counters::with_observer(Box::new(
            move |t| seen.lock().unwrap().push((t.outcome, t.detail.clone())),
        )));
        let tftp = Arc::new(Tftp::new(files, resolver, counters, Arc::default()));
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        (Task::new(tftp, sock, 0), ended)
    }

    /// A lockstep read of ten 4-byte blocks from `client`, its request
    /// received at `received`.
    fn read(task: &Task, client: SocketAddrV4, received: Instant) -> Read {
        let c = crate::files::resolve::Client {
            ip: *client.ip(),
            mac: None,
        };
        let record = Transfer::begin("tftp", &c, "image.img");
        let tracked = task.tftp.live.track(&record, 40);
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        Read {
            client,
            received,
            source: Source::in_memory(Bytes::from(vec![7u8; 40])),
            window: Window::new(40, 4, 1, false),
            oack: None,
            blksize: 4,
            timeout: Duration::from_secs(1),
            record,
            tracked,
            _hold: (permit, pace::Running::start()),
        }
    }

    #[tokio::test]
    async fn a_late_copy_of_a_request_does_not_restart_its_transfer() {
        let (mut task, ended) = task().await;
        let client = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000);
        // The client sent its request twice before hearing anything; the
        // copy reaches the task only after the transfer has moved (its
        // file lookup was slow), and is dropped.
        let first = Instant::now() - Duration::from_millis(10);
        let copy = Instant::now() - Duration::from_millis(5);
        task.add(read(&task, client, first));
        assert!(task.ack(client, 1).is_none());
        assert!(task.ack(client, 2).is_none());
        task.add(read(&task, client, copy));
        assert_eq!(task.flows[&client].serial, 1);
        assert_eq!(task.flows[&client].read.window.acked(), 2);
        assert!(ended.lock().unwrap().is_empty());

        // A request received after the transfer answered is the client
        // starting again: the old transfer ends, a new one begins.
        tokio::time::sleep(Duration::from_millis(2)).await;
        task.add(read(&task, client, Instant::now()));
        assert_eq!(task.flows[&client].serial, 2);
        assert_eq!(task.flows[&client].read.window.acked(), 0);
        let ended = ended.lock().unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0, Outcome::AbortedByClient);
        assert!(
            ended[0].1.contains("new request from the same port"),
            "{}",
            ended[0].1
        );
    }

    /// A queued block of `len` bytes of data to port `port`.
    fn block(port: u16, len: usize) -> Out {
        Out {
            to: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            head: [0, 3, 0, 1],
            head_len: 4,
            body: Bytes::from(vec![0; len]),
        }
    }

    fn whole(port: u16, len: usize) -> Out {
        Out::whole(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            Bytes::from(vec![0; len]),
        )
    }

    /// Each message's first and last-plus-one queued datagram.
    fn bounds(plan: &Plan) -> Vec<(usize, usize)> {
        plan.messages.iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn a_window_goes_as_one_message_cut_into_its_blocks() {
        // Two clients' windows, each ending with a short last block, and an
        // OACK between them: three messages, cut at 516 bytes.
        let mut out: Vec<Out> = (0..3).map(|_| block(1, 512)).collect();
        out.push(block(1, 100));
        out.push(whole(3, 30));
        out.extend((0..4).map(|_| block(2, 512)));
        let plan = Plan::new(&out, 1472);
        assert_eq!(bounds(&plan), [(0, 4), (4, 5), (5, 9)]);
        assert_eq!(plan.segment, Some(516));
        assert_eq!(plan.carried(2), 5);
        // A short block ends a run: the next block to that client starts
        // a new message.
        let out = vec![block(1, 512), block(1, 10), block(1, 512), block(1, 512)];
        assert_eq!(bounds(&Plan::new(&out, 1472)), [(0, 2), (2, 4)]);
    }

    #[test]
    fn messages_cut_at_other_sizes_wait_for_the_next_call() {
        // Another client's windows of 1468-byte blocks need another
        // segment size; so does a lone datagram longer than the segment.
        let out = vec![block(1, 512), block(1, 512), block(2, 1468), block(2, 1468)];
        let plan = Plan::new(&out, 1472);
        assert_eq!((bounds(&plan), plan.segment), (vec![(0, 2)], Some(516)));
        let out = vec![block(1, 512), block(1, 512), whole(2, 600)];
        assert_eq!(bounds(&Plan::new(&out, 1472)), [(0, 2)]);
        // A lone datagram longer than a later window's blocks goes first,
        // on its own call.
        let out = vec![whole(2, 600), block(1, 512), block(1, 512)];
        let plan = Plan::new(&out, 1472);
        assert_eq!((bounds(&plan), plan.segment), (vec![(0, 1)], None));
    }

    #[test]
    fn blocks_too_long_for_the_interface_or_many_go_one_by_one_or_capped() {
        // Blocks longer than the interface carries whole, or no cutting.
        let out = vec![block(1, 8192), block(1, 8192)];
        let plan = Plan::new(&out, 1472);
        assert_eq!((bounds(&plan), plan.segment), (vec![(0, 1), (1, 2)], None));
        let out = vec![block(1, 512), block(1, 512)];
        assert_eq!(bounds(&Plan::new(&out, 0)), [(0, 1), (1, 2)]);
        // One message holds at most 64 KiB: 44 blocks of 1472 bytes.
        let out: Vec<Out> = (0..64).map(|_| block(1, 1468)).collect();
        assert_eq!(bounds(&Plan::new(&out, 1472)), [(0, 44), (44, 64)]);
        // At most BATCH messages per call.
        let out: Vec<Out> = (0..100).map(|p| block(p, 512)).collect();
        assert_eq!(Plan::new(&out, 1472).messages.len(), BATCH);
    }
}
