//! tftpfloor: the floor for one lockstep TFTP read on a link, for
//! bench/lockstep.sh. A minimal server with nothing a real one needs (no
//! runtime, no lookups, no events, no limits, one transfer at a time, the
//! file in memory): a request on port 69, a socket connected to the client,
//! then block, ACK, block... Two ways to wait for each ACK:
//!
//! - `block`: a blocking receive (the thread sleeps and the ACK wakes it),
//!   as dnsmasq, tftpd-hpa and atftpd wait;
//! - `spin`: a non-blocking receive tried in a loop (the thread never
//!   sleeps), the fastest any server can notice an ACK, at a whole core's
//!   cost.
//!
//! Usage: tftpfloor ADDRESS DIR block|spin
//! Serves the files of DIR (read whole when asked) until killed; honours
//! blksize.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dialtone::files::tftp::packet::{self, Packet};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(dir), Some(mode)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: tftpfloor ADDRESS DIR block|spin");
        return ExitCode::FAILURE;
    };
    let spin = mode == "spin";
    match serve(addr, std::path::Path::new(dir), spin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tftpfloor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: &str, dir: &std::path::Path, spin: bool) -> std::io::Result<()> {
    let listen = UdpSocket::bind((addr, 69))?;
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, client) = listen.recv_from(&mut buf)?;
        let Ok(Packet::Read(req)) = packet::parse(&buf[..n]) else {
            continue;
        };
        let Ok(body) = std::fs::read(dir.join(req.filename.trim_start_matches('/'))) else {
            let _ = listen.send_to(&packet::error(1, "file not found"), client);
            continue;
        };
        let blksize = req
            .options
            .iter()
            .find(|(k, _)| k == "blksize")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .map(|b| b.clamp(8, 65464));
        if let Err(e) = transfer(addr, client, &body, blksize, spin) {
            eprintln!("tftpfloor: transfer to {client}: {e}");
        }
    }
}

/// Waits for the ACK of `block`; false when a second passed without it.
fn acked(sock: &UdpSocket, block: u16, spin: bool, buf: &mut [u8]) -> std::io::Result<bool> {
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        match sock.recv(buf) {
            Ok(n) => {
                if let Ok(Packet::Ack(b)) = packet::parse(&buf[..n])
                    && b == block
                {
                    return Ok(true);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !spin || Instant::now() > until {
                    return Ok(false);
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e),
        }
    }
}

fn transfer(
    addr: &str,
    client: SocketAddr,
    body: &[u8],
    blksize: Option<usize>,
    spin: bool,
) -> std::io::Result<()> {
    let sock = UdpSocket::bind((addr, 0))?;
    sock.connect(client)?;
    if spin {
        sock.set_nonblocking(true)?;
    } else {
        sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    }
    let mut buf = vec![0u8; 2048];
    let size = blksize.unwrap_or(512);
    if let Some(b) = blksize {
        let oack = packet::oack(&[("blksize", b.to_string())]);
        let mut tries = 0;
        while {
            sock.send(&oack)?;
            !acked(&sock, 0, spin, &mut buf)?
        } {
            tries += 1;
            if tries > 5 {
                return Ok(());
            }
        }
    }
    let mut out = Vec::with_capacity(size + 4);
    let mut block: u16 = 1;
    let mut at = 0;
    loop {
        let end = (at + size).min(body.len());
        packet::data(block, &body[at..end], &mut out);
        let mut tries = 0;
        while {
            sock.send(&out)?;
            !acked(&sock, block, spin, &mut buf)?
        } {
            tries += 1;
            if tries > 5 {
                return Ok(());
            }
        }
        if end - at < size {
            return Ok(());
        }
        at = end;
        block = block.wrapping_add(1);
    }
}
