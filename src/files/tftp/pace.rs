//! Keeping lockstep TFTP fast on a fast network. A lockstep transfer is a
//! ping-pong of one block and one ACK; when the client answers within
//! microseconds (a lab host, a veth pair), most of each round is spent
//! putting the server to sleep and waking it, and each wake-up of a thread
//! on an idle core costs the waking core an inter-processor interrupt.
//! Two measures, both spending CPU only while transfers run:
//!
//! - `AckPoll`: a transfer that has the server to itself polls its socket
//!   for the next ACK for up to `ACK_POLL` when its measured round trip is
//!   shorter than that, instead of sleeping. A slower client (any phone on
//!   a real cable) is never polled for.
//! - `before_park`: while two or more transfers run, a runtime thread with
//!   nothing to do stays awake for `PARK_SPIN` before it sleeps, so ACKs
//!   arriving in that time are picked up without waking it. Without this,
//!   100 lockstep clients cost their core twice the interrupts they cost
//!   with dnsmasq (which is never idle long enough to sleep).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

const ACK_POLL: Duration = Duration::from_micros(50);
const PARK_SPIN: Duration = Duration::from_micros(25);

/// TFTP transfers running in this process.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Counts one transfer while it lives.
pub struct Running(());

impl Running {
    pub fn start() -> Running {
        RUNNING.fetch_add(1, Ordering::Relaxed);
        Running(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The runtime's `on_thread_park` hook: stay awake briefly while several
/// transfers run.
pub fn before_park() {
    if RUNNING.load(Ordering::Relaxed) < 2 {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < PARK_SPIN {
        std::hint::spin_loop();
    }
}

/// Polling for the ACK of a transfer that has the server to itself; the
/// round trip is measured as the transfer goes.
#[derive(Default)]
pub struct AckPoll {
    /// Smoothed round trip, in nanoseconds (0: not measured yet).
    rtt_ns: u64,
    sent_at: Option<Instant>,
}

impl AckPoll {
    pub fn sent(&mut self) {
        self.sent_at = Some(Instant::now());
    }

    /// A datagram received while polling, or `None` to wait by sleeping.
    pub fn wait(&mut self, sock: &UdpSocket, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let lone = RUNNING.load(Ordering::Relaxed) <= 1;
        if !lone || self.rtt_ns > ACK_POLL.as_nanos() as u64 {
            return None;
        }
        let start = Instant::now();
        loop {
            // Straight to the socket: tokio's `try_recv` trusts the
            // readiness its reactor last saw, which polling never refreshes.
            use nix::sys::socket::{MsgFlags, recv};
            match recv(sock.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Err(nix::errno::Errno::EAGAIN) => {}
                r => return Some(r.map_err(io::Error::from)),
            }
            if start.elapsed() > ACK_POLL {
                return None;
            }
            std::hint::spin_loop();
        }
    }

    /// Something came back: update the round trip.
    pub fn acked(&mut self) {
        if let Some(t) = self.sent_at.take() {
            let ns = t.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
            self.rtt_ns = if self.rtt_ns == 0 {
                ns
            } else {
                (self.rtt_ns * 7 + ns) / 8
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn polls_only_for_a_fast_lone_client() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(server.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 16];
        let mut poll = AckPoll::default();
        // Nothing comes: polling gives up after ACK_POLL.
        let t = Instant::now();
        assert!(poll.wait(&server, &mut buf).is_none());
        assert!(t.elapsed() >= ACK_POLL);
        // An ACK waiting in the socket is taken without the reactor.
        poll.sent();
        client.send(b"\x00\x04\x00\x01").await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(poll.wait(&server, &mut buf), Some(Ok(4))));
        // That round trip (5 ms) is too slow to poll for: sleep instead.
        poll.acked();
        assert!(poll.rtt_ns > ACK_POLL.as_nanos() as u64);
        client.send(b"\x00\x04\x00\x02").await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(poll.wait(&server, &mut buf).is_none());
        // The datagram is still there for the sleeping wait.
        assert_eq!(server.recv(&mut buf).await.unwrap(), 4);
    }

    #[test]
    fn transfers_are_counted_while_they_live() {
        let before = RUNNING.load(Ordering::Relaxed);
        let a = Running::start();
        let b = Running::start();
        assert!(RUNNING.load(Ordering::Relaxed) >= before + 2);
        drop((a, b));
    }
}
