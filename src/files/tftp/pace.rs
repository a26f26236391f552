//! Keeping lockstep TFTP fast on a fast network. A lockstep transfer is a
//! ping-pong of one block and one ACK; when the client answers within
//! microseconds (a lab host, a veth pair), most of each round is spent
//! putting the server to sleep and waking it, and each wake-up of a thread
//! on an idle core costs the waking core an inter-processor interrupt.
//! Three measures, the first two spending CPU only while transfers run:
//!
//! - `AckPoll`: a transfer that has the server to itself polls its socket
//!   for the next ACK for up to `ACK_POLL` instead of sleeping, while its
//!   ACKs come within that. A slower client (any phone on a real cable) is
//!   waited for by sleeping, probed again after `PROBE_EVERY` waits.
//! - `before_park`: while two or more transfers run, a runtime thread with
//!   nothing to do stays awake for `PARK_SPIN` before it sleeps, so ACKs
//!   arriving in that time are picked up without waking it. Without this,
//!   100 lockstep clients cost their core twice the interrupts they cost
//!   with dnsmasq (which is never idle long enough to sleep).
//! - `LazyTimer`: one timer per transfer, armed once and moved only when it
//!   fires early, instead of a timer armed and cancelled around every
//!   block's wait (each of which takes the runtime's timer lock).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::pin::Pin;

use tokio::net::UdpSocket;
use tokio::time::Sleep;

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

/// How many TFTP transfers run now.
pub fn running() -> usize {
    RUNNING.load(Ordering::Relaxed)
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

/// Polling for the ACK of a transfer that has the server to itself. A client
/// whose ACKs come within `ACK_POLL` is polled for on every block; one
/// slower than that misses two polls in a row and is then waited for by
/// sleeping through the next `PROBE_EVERY` waits (about one wait a block),
/// then probed with two polls again: about 1.5 us of polling per block for
/// a phone answering at its own pace. The task starts afresh for each new
/// transfer. The probe is
/// what brings a fast client back: a round trip measured while sleeping
/// includes the wake-up, so a transfer that judged by it once stopped
/// polling for good after one late ACK (a lone 64 MiB read took 2.3 s
/// against the link's 1.2 s).
#[derive(Default)]
pub struct AckPoll {
    /// Polls in a row that ended with nothing.
    missed: u32,
    /// Waits left to sleep through before the next poll.
    skip: u32,
}

/// Waits slept through after two polls in a row found nothing.
const PROBE_EVERY: u32 = 64;

impl AckPoll {
    /// What `attempt` brings while polling, or `None` to wait by sleeping.
    /// `attempt` tries the socket directly: tokio's readiness is what its
    /// reactor last saw, which polling never refreshes.
    pub fn wait<T>(&mut self, attempt: impl FnMut() -> Option<T>) -> Option<T> {
        self.wait_among(RUNNING.load(Ordering::Relaxed), attempt)
    }

    /// `wait`, with `running` transfers in the process (the tests give the
    /// count: the process-wide one moves with the other tests' transfers).
    fn wait_among<T>(
        &mut self,
        running: usize,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        if running > 1 {
            return None;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        let start = Instant::now();
        loop {
            if let Some(got) = attempt() {
                self.missed = 0;
                return Some(got);
            }
            if start.elapsed() > ACK_POLL {
                self.missed += 1;
                if self.missed >= 2 {
                    self.missed = 0;
                    self.skip = PROBE_EVERY;
                }
                return None;
            }
            std::hint::spin_loop();
        }
    }
}

/// A wait that reached its deadline with nothing received.
#[derive(Debug, PartialEq, Eq)]
pub struct TimedOut;

/// A transfer's one timer for its waits. Each wait has its own deadline,
/// a timeout after the wait began; deadlines only move later. The timer
/// stays armed at an earlier deadline, and when it fires before the
/// current wait's deadline it is moved there, once, and waited on again.
/// A transfer moving many blocks per timeout thus touches the runtime's
/// timer about once per timeout, not twice per block.
pub struct LazyTimer {
    sleep: Pin<Box<Sleep>>,
}

impl LazyTimer {
    pub fn new(timeout: Duration) -> LazyTimer {
        LazyTimer {
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// Receives one datagram from `sock`, or `TimedOut` once `deadline`
    /// has passed.
    pub async fn recv(
        &mut self,
        sock: &UdpSocket,
        buf: &mut [u8],
        deadline: tokio::time::Instant,
    ) -> Result<io::Result<usize>, TimedOut> {
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        loop {
            tokio::select! {
                biased;
                got = sock.recv(buf) => return Ok(got),
                () = self.sleep.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(TimedOut);
                    }
                    self.sleep.as_mut().reset(deadline);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One receive straight from the socket, as the mux polls.
    fn attempt<'a>(
        sock: &'a UdpSocket,
        buf: &'a mut [u8],
    ) -> impl FnMut() -> Option<io::Result<usize>> + 'a {
        use nix::sys::socket::{MsgFlags, recv};
        use std::os::fd::AsRawFd;
        move || match recv(sock.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Err(nix::errno::Errno::EAGAIN) => None,
            r => Some(r.map_err(io::Error::from)),
        }
    }

    #[tokio::test]
    async fn polls_only_for_a_fast_lone_client() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(server.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 16];
        let mut poll = AckPoll::default();
        // Nothing comes: polling gives up after ACK_POLL.
        let t = Instant::now();
        assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_none());
        assert!(t.elapsed() >= ACK_POLL);
        // An ACK waiting in the socket is taken without the reactor, but
        // only by a lone transfer: with two running, it waits by sleeping.
        client.send(b"\x00\x04\x00\x01").await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(poll.wait_among(2, attempt(&server, &mut buf)).is_none());
        assert!(matches!(
            poll.wait_among(1, attempt(&server, &mut buf)),
            Some(Ok(4))
        ));
        // A slow client: two polls in a row find nothing, then the next
        // PROBE_EVERY waits sleep at once, leaving the datagram for them.
        assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_none());
        assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_none());
        client.send(b"\x00\x04\x00\x02").await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        for _ in 0..PROBE_EVERY {
            assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_none());
        }
        // Then one probe: the ACK waiting is taken, and polling goes on.
        assert!(matches!(
            poll.wait_among(1, attempt(&server, &mut buf)),
            Some(Ok(4))
        ));
        // One miss alone does not stop it.
        assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_none());
        client.send(b"\x00\x04\x00\x03").await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(
            poll.wait_among(1, attempt(&server, &mut buf)),
            Some(Ok(4))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn the_lazy_timer_keeps_each_waits_own_deadline() {
        use tokio::time::Instant;
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(server.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 16];
        let second = Duration::from_secs(1);
        let mut timer = LazyTimer::new(second);
        // A wait with nothing coming ends at its deadline, not before.
        let t = Instant::now();
        let got = timer.recv(&server, &mut buf, t + second).await;
        assert_eq!(got.err(), Some(TimedOut));
        assert_eq!(t.elapsed(), second);
        // The timer, armed for an earlier deadline, fires early and is
        // moved to the later one: the wait still lasts its full timeout.
        tokio::time::advance(Duration::from_millis(300)).await;
        let t = Instant::now();
        let got = timer.recv(&server, &mut buf, t + second).await;
        assert_eq!(got.err(), Some(TimedOut));
        assert_eq!(t.elapsed(), second);
        // A datagram ends the wait at once, and a timer still armed for a
        // later time is pulled in to a shorter deadline.
        client.send(b"\x00\x04\x00\x01").await.unwrap();
        let got = timer.recv(&server, &mut buf, Instant::now() + second).await;
        assert!(matches!(got, Ok(Ok(4))));
        let t = Instant::now();
        let short = Duration::from_millis(100);
        assert_eq!(
            timer.recv(&server, &mut buf, t + short).await.err(),
            Some(TimedOut)
        );
        assert_eq!(t.elapsed(), short);
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
