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
//! its `Source` (`source.rs`: the file, read ahead in large chunks off the
//! runtime); this module's task moves datagrams between them and the
//! socket, keeps each transfer's deadline, and reports each transfer once
//! when it ends. `batch.rs` holds the batched system calls, `plan.rs` the
//! pure grouping of a send into messages. Uploads keep a socket of their
//! own (upload.rs).

mod batch;
mod plan;
mod source;

pub(super) use source::Source;

use batch::{CutRefused, next_closed_port, recv_batch, recv_one, segment_max, send_batch};
use plan::Out;
use source::Slice;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::pace;
use super::packet::{self, Packet};
use super::server::Tftp;
use super::window::{Resend, Step, Window, wire_number};
use crate::files::transfers::{Outcome, Tracked, Transfer};

/// Datagrams taken per receive call, and at most sent per send call.
const BATCH: usize = 64;
/// Room for one datagram from a client: an ACK, or an ERROR and its text.
const DATAGRAM: usize = 1024;
/// File reads for octet transfers, in chunks of this size at most...
const READ_CHUNK: usize = 1 << 20;
/// ... and this small at least: together the transfers running hold about
/// twice `READ_BUDGET` (a chunk being sent, the next being read). A power
/// cut's 200 recoveries at once held 1 MiB each, 250 MiB resident in all,
/// when every chunk was `READ_CHUNK`.
const READ_CHUNK_MIN: usize = 64 << 10;
const READ_BUDGET: usize = 16 << 20;

/// The read-ahead of one transfer while `running` transfers run.
fn read_chunk_for(running: usize) -> usize {
    (READ_BUDGET / running.max(1)).clamp(READ_CHUNK_MIN, READ_CHUNK)
}
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
/// the way back for chunk reads, and whether a lone client is polled for.
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
                        let want = read_chunk_for(pace::running()).max(usize::from(blksize));
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
        None
    }
}

struct Task {
    /// The socket, watched by the runtime threads' spins while the task
    /// lives (declared first: let go before the socket is closed).
    _watch: pace::Watch,
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
            _watch: pace::Watch::new(&*sock),
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
            // instead of sleeping between its ACKs; not while its next
            // chunk is being read (no block is out, so no ACK can come).
            if self.flows.len() == 1 && self.flows.values().all(|f| f.waiting.is_none()) {
                let (sock, inbox, got) = (&self.sock, &mut self.inbox, &mut self.got);
                let polled = self
                    .outbox
                    .ack_poll
                    .wait(|| match recv_one(sock, inbox, got) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                        r => Some(r),
                    });
                if let Some(r) = polled {
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
        // A new client: whether it is polled for is learnt afresh.
        self.outbox.ack_poll = pace::AckPoll::default();
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
                flow.read.source.loaded(l.at, chunk);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_shrinks_as_transfers_add_up() {
        assert_eq!(read_chunk_for(0), READ_CHUNK);
        assert_eq!(read_chunk_for(1), READ_CHUNK);
        assert_eq!(read_chunk_for(16), READ_CHUNK);
        assert_eq!(read_chunk_for(64), 256 << 10);
        // The server's cap on transfers (200 by default) holds about the
        // budget, never more.
        assert!(200 * read_chunk_for(200) <= READ_BUDGET);
        assert_eq!(read_chunk_for(100_000), READ_CHUNK_MIN);
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
}
