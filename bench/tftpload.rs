//! tftpload: many TFTP reads at once from one thread, the TFTP counterpart
//! of Kea's perfdhcp for bench/files.sh. A hundred atftp processes keep the
//! clients' core fully busy, so a row timed with them measures the clients;
//! this tool drives every transfer from one epoll loop (one receive and at
//! most one send per block), so the time is the server's.
//!
//! Usage: tftpload SERVER FILE CLIENTS BLKSIZE WINDOWSIZE SIZE [ACK_DELAY_US]
//! Prints the seconds until the last transfer finished; exits 1 when any
//! transfer failed or did not bring SIZE bytes. Checks lengths, not bytes:
//! the benchmark's byte-for-byte checks are done with atftp.
//!
//! ACK_DELAY_US makes every client a slow one: each acknowledgement leaves
//! that many microseconds after its block arrived (a phone's TFTP stack
//! answering at its own pace), timed with a timerfd, so the tool sleeps
//! rather than spins while it waits.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dialtone::files::tftp::packet::{ack, oack_value, rrq};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// The epoll key of the acknowledgement timer.
const TIMER: u64 = u64::MAX;

/// A transfer silent this long sends its last message again.
const RESEND_AFTER: Duration = Duration::from_secs(1);
const GIVE_UP_AFTER: u32 = 10;

struct Flow {
    sock: UdpSocket,
    /// The server's transfer address, once it has answered.
    tid: Option<SocketAddr>,
    /// The next block expected, as a wire number.
    next: u16,
    since_ack: u16,
    /// Blocks per acknowledgement, as granted: 1 until an OACK says more.
    window: u16,
    bytes: u64,
    /// What to send again after a silence: the request, then the last ACK.
    last: Vec<u8>,
    heard: Instant,
    resends: u32,
    reacked: bool,
    done: bool,
    failed: Option<String>,
}

fn request(file: &str, blksize: u16, window: u16) -> Vec<u8> {
    let (blksize, window) = (blksize.to_string(), window.to_string());
    let mut options = Vec::new();
    if blksize != "512" {
        options.push(("blksize", blksize.as_str()));
    }
    if window != "1" {
        options.push(("windowsize", window.as_str()));
    }
    rrq(file, &options)
}

/// The windowsize an OACK grants (1 when it names none).
fn granted_window(oack: &[u8]) -> u16 {
    oack_value(oack, "windowsize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

impl Flow {
    fn send(&mut self, packet: Vec<u8>, server: SocketAddr) {
        let to = self.tid.unwrap_or(server);
        if let Err(e) = self.sock.send_to(&packet, to) {
            self.failed = Some(format!("send: {e}"));
        }
        self.last = packet;
    }

    /// An acknowledgement: sent now, or queued to leave after the delay.
    fn answer(&mut self, packet: Vec<u8>, from: SocketAddr, delayed: Option<&mut Delayed>) {
        match delayed {
            Some(d) => {
                self.last = packet.clone();
                d.queue
                    .push_back((Instant::now() + d.delay, d.current, packet));
            }
            None => self.send(packet, from),
        }
    }

    /// One datagram from the server.
    fn on_packet(
        &mut self,
        p: &[u8],
        from: SocketAddr,
        blksize: usize,
        delayed: Option<&mut Delayed>,
    ) {
        if p.len() < 4 || self.done {
            return;
        }
        if self.tid.is_none() {
            self.tid = Some(from);
        }
        if Some(from) != self.tid {
            return;
        }
        self.heard = Instant::now();
        self.resends = 0;
        let op = u16::from_be_bytes([p[0], p[1]]);
        let num = u16::from_be_bytes([p[2], p[3]]);
        match op {
            // OACK: the window granted (a server without RFC 7440 leaves
            // it out, and sends lockstep).
            6 => {
                self.window = granted_window(p);
                self.answer(ack(0), from, delayed);
            }
            3 if num == self.next => {
                let len = p.len() - 4;
                self.bytes += len as u64;
                self.next = self.next.wrapping_add(1);
                self.since_ack += 1;
                self.reacked = false;
                let last = len < blksize;
                if last || self.since_ack >= self.window {
                    self.since_ack = 0;
                    self.answer(ack(num), from, delayed);
                }
                self.done = last;
            }
            3 if !self.reacked => {
                // Out of order: acknowledge the last block in order, once.
                self.reacked = true;
                self.since_ack = 0;
                let again = ack(self.next.wrapping_sub(1));
                self.answer(again, from, delayed);
            }
            3 => {}
            5 => {
                self.failed = Some(format!(
                    "server error: {}",
                    String::from_utf8_lossy(&p[4..]).trim_end_matches('\0')
                ))
            }
            _ => {}
        }
    }
}

/// Acknowledgements waiting for their time, in the order they are due
/// (the delay is the same for all).
struct Delayed {
    delay: Duration,
    queue: VecDeque<(Instant, usize, Vec<u8>)>,
    timer: TimerFd,
    /// The flow whose datagram is being handled.
    current: usize,
}

impl Delayed {
    /// Sends what is due and arms the timer for the next.
    fn flush(&mut self, flows: &mut [Flow], server: SocketAddr) -> std::io::Result<()> {
        let now = Instant::now();
        while self.queue.front().is_some_and(|(due, _, _)| *due <= now) {
            if let Some((_, i, packet)) = self.queue.pop_front()
                && let Some(f) = flows.get_mut(i)
                && !f.done_sending()
            {
                f.send(packet, server);
            }
        }
        match self.queue.front() {
            Some((due, _, _)) => {
                let wait = due
                    .saturating_duration_since(now)
                    .max(Duration::from_micros(1));
                self.timer
                    .set(
                        Expiration::OneShot(TimeSpec::from_duration(wait)),
                        TimerSetTimeFlags::empty(),
                    )
                    .map_err(std::io::Error::from)
            }
            None => Ok(()),
        }
    }
}

impl Flow {
    /// Whether nothing more is to be sent (failed; a finished transfer
    /// still sends its last acknowledgement).
    fn done_sending(&self) -> bool {
        self.failed.is_some()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        eprintln!("usage: tftpload SERVER FILE CLIENTS BLKSIZE WINDOWSIZE SIZE [ACK_DELAY_US]");
        ExitCode::from(2)
    };
    let (fixed, delay) = match args.len() {
        6 => (&args[..], "0"),
        7 => (&args[..6], args[6].as_str()),
        _ => return usage(),
    };
    let [server, file, clients, blksize, window, size] = fixed else {
        return usage();
    };
    let Ok(delay) = delay.parse::<u64>() else {
        return usage();
    };
    let (Ok(server), Ok(clients), Ok(blksize), Ok(window), Ok(size)) = (
        format!("{server}:69").parse::<SocketAddr>(),
        clients.parse::<usize>(),
        blksize.parse::<u16>(),
        window.parse::<u16>(),
        size.parse::<u64>(),
    ) else {
        return usage();
    };
    let delay = (delay > 0).then(|| Duration::from_micros(delay));
    match run(server, file, clients, blksize, window.max(1), size, delay) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tftpload: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(
    server: SocketAddr,
    file: &str,
    clients: usize,
    blksize: u16,
    window: u16,
    size: u64,
    delay: Option<Duration>,
) -> std::io::Result<ExitCode> {
    let epoll = Epoll::new(EpollCreateFlags::empty())?;
    let mut delayed = match delay {
        Some(delay) => {
            let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK)
                .map_err(std::io::Error::from)?;
            epoll.add(timer.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, TIMER))?;
            Some(Delayed {
                delay,
                queue: VecDeque::new(),
                timer,
                current: 0,
            })
        }
        None => None,
    };
    let started = Instant::now();
    let mut flows = Vec::with_capacity(clients);
    for i in 0..clients {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.set_nonblocking(true)?;
        epoll.add(sock.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, i as u64))?;
        let mut f = Flow {
            sock,
            tid: None,
            next: 1,
            since_ack: 0,
            window: 1,
            bytes: 0,
            last: Vec::new(),
            heard: Instant::now(),
            resends: 0,
            reacked: false,
            done: false,
            failed: None,
        };
        f.send(request(file, blksize, window), server);
        flows.push(f);
    }
    let mut events = vec![EpollEvent::empty(); clients + 1];
    let mut buf = vec![0u8; usize::from(blksize) + 5];
    let mut open = clients;
    let mut last_check = Instant::now();
    while open > 0 {
        let n = epoll.wait(&mut events, 100u16)?;
        let mut queued = false;
        for ev in &events[..n] {
            if ev.data() == TIMER {
                continue;
            }
            let i = ev.data() as usize;
            let Some(f) = flows.get_mut(i) else {
                continue;
            };
            if let Some(d) = delayed.as_mut() {
                d.current = i;
            }
            while let Ok((len, from)) = f.sock.recv_from(&mut buf) {
                let was_open = !f.done && f.failed.is_none();
                f.on_packet(&buf[..len], from, usize::from(blksize), delayed.as_mut());
                queued |= delayed.is_some();
                if was_open && (f.done || f.failed.is_some()) {
                    open -= 1;
                }
            }
        }
        if let Some(d) = delayed.as_mut()
            && (queued || n > 0)
        {
            // Drain the timer's count (non-blocking), then send what is due.
            let _ = d.timer.wait();
            d.flush(&mut flows, server)?;
        }
        if last_check.elapsed() >= Duration::from_millis(100) {
            last_check = Instant::now();
            for f in flows.iter_mut().filter(|f| !f.done && f.failed.is_none()) {
                if f.heard.elapsed() < RESEND_AFTER {
                    continue;
                }
                f.resends += 1;
                f.heard = Instant::now();
                if f.resends > GIVE_UP_AFTER {
                    f.failed = Some("timed out".into());
                    open -= 1;
                } else {
                    let again = f.last.clone();
                    f.send(again, server);
                }
            }
        }
    }
    // The last acknowledgements still waiting for their time.
    if let Some(d) = delayed.as_mut() {
        while let Some(&(due, _, _)) = d.queue.back() {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            d.flush(&mut flows, server)?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut bad = 0;
    for (i, f) in flows.iter().enumerate() {
        let why = match &f.failed {
            Some(why) => why.clone(),
            None if f.bytes != size => format!("{} bytes, expected {size}", f.bytes),
            None => continue,
        };
        bad += 1;
        eprintln!("tftpload: transfer {i}: {why}");
    }
    println!("{secs:.2}");
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
