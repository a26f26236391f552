//! tftpload: many TFTP reads at once from one thread, the TFTP counterpart
//! of Kea's perfdhcp for bench/files.sh. A hundred atftp processes keep the
//! clients' core fully busy, so a row timed with them measures the clients;
//! this tool drives every transfer from one epoll loop (one receive and at
//! most one send per block), so the time is the server's.
//!
//! Usage: tftpload SERVER FILE CLIENTS BLKSIZE WINDOWSIZE SIZE
//! Prints the seconds until the last transfer finished; exits 1 when any
//! transfer failed or did not bring SIZE bytes. Checks lengths, not bytes:
//! the benchmark's byte-for-byte checks are done with atftp.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dialtone::files::tftp::packet::{ack, oack_value, rrq};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

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

    /// One datagram from the server.
    fn on_packet(&mut self, p: &[u8], from: SocketAddr, blksize: usize) {
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
                self.send(ack(0), from);
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
                    self.send(ack(num), from);
                }
                self.done = last;
            }
            3 if !self.reacked => {
                // Out of order: acknowledge the last block in order, once.
                self.reacked = true;
                self.since_ack = 0;
                self.send(ack(self.next.wrapping_sub(1)), from);
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        eprintln!("usage: tftpload SERVER FILE CLIENTS BLKSIZE WINDOWSIZE SIZE");
        ExitCode::from(2)
    };
    let [server, file, clients, blksize, window, size] = args.as_slice() else {
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
    match run(server, file, clients, blksize, window.max(1), size) {
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
) -> std::io::Result<ExitCode> {
    let epoll = Epoll::new(EpollCreateFlags::empty())?;
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
    let mut events = vec![EpollEvent::empty(); clients.max(1)];
    let mut buf = vec![0u8; usize::from(blksize) + 5];
    let mut open = clients;
    let mut last_check = Instant::now();
    while open > 0 {
        let n = epoll.wait(&mut events, 100u16)?;
        for ev in &events[..n] {
            let Some(f) = flows.get_mut(ev.data() as usize) else {
                continue;
            };
            while let Ok((len, from)) = f.sock.recv_from(&mut buf) {
                let was_open = !f.done && f.failed.is_none();
                f.on_packet(&buf[..len], from, usize::from(blksize));
                if was_open && (f.done || f.failed.is_some()) {
                    open -= 1;
                }
            }
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
