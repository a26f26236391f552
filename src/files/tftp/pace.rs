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
//!   waited for by sleeping, and probed again now and then (`Payoff`).
//! - `before_park`: while two or more transfers run, a runtime thread with
//!   nothing to do stays awake for `PARK_SPIN` before it sleeps, so ACKs
//!   arriving in that time are picked up without waking it. Without this,
//!   100 lockstep clients cost their core twice the interrupts they cost
//!   with dnsmasq (which is never idle long enough to sleep). The spin
//!   ends as soon as a mux's socket has a datagram (`Watch`). It pays when
//!   it ended so, or when other work was waiting as it ended (the thread
//!   was back within `PAID_WITHIN`); each thread keeps score (`Payoff`).
//! - `LazyTimer`: one timer per transfer, armed once and moved only when it
//!   fires early, instead of a timer armed and cancelled around every
//!   block's wait (each of which takes the runtime's timer lock).
//!
//! The first two keep score the same way (`Payoff`): when fewer than half
//! of a round of polls or spins paid (clients answering at a phone's pace,
//! not a lab host's), the next waits sleep at once, for longer each round
//! that does not pay, and are then tried again. 8 clients answering 500 us
//! after each block (`bench/files.sh`) cost dialtone 9.2-9.6 ms of CPU per
//! MiB against dnsmasq's 6.8-7.3 while every park spun, and 6.3-7.9
//! against 6.8-7.9 with the score kept and the spin ending at the first
//! ACK.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
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

/// A thread back from its park this soon after a spin found work waiting
/// as the spin ended: the spin saved it a sleep and a wake-up. Measured
/// here with 100 lockstep clients (spins run to their end then): 99 % of
/// spins were followed by an unpark within 2 us, and the rest by one after
/// 10 us or more (a real sleep).
const PAID_WITHIN: Duration = Duration::from_micros(10);

/// The runtime's `on_thread_park` hook: stay awake briefly while several
/// transfers run, if staying awake has been paying on this thread. The
/// spin ends as soon as a watched socket (`Watch`) has a datagram: spun to
/// its end regardless, it kept ACKs that had come waiting for the rest of
/// it, and with 100 clients that was most of the spin.
pub fn before_park() {
    if RUNNING.load(Ordering::Relaxed) < 2 {
        return;
    }
    let mut spin = PARK.get();
    if spin.policy.try_now() {
        let (fds, n) = watched();
        let start = Instant::now();
        loop {
            if crate::sys::ready::any_readable(&fds[..n]) {
                // Paid: the park that follows finds the datagram at once.
                spin.policy.paid(true);
                break;
            }
            if start.elapsed() >= PARK_SPIN {
                // Judged when the thread is back: other work (a chunk
                // read, a new request) may have come meanwhile.
                spin.ended = Some(Instant::now());
                break;
            }
            std::hint::spin_loop();
        }
    }
    PARK.set(spin);
}

/// The runtime's `on_thread_unpark` hook: whether a spin that saw no
/// datagram paid all the same.
pub fn after_unpark() {
    let mut spin = PARK.get();
    if let Some(ended) = spin.ended.take() {
        spin.policy.paid(ended.elapsed() <= PAID_WITHIN);
        PARK.set(spin);
    }
}

/// The sockets a spin watches: the TFTP muxes' (`-1`: a free slot).
static WATCHED: [AtomicI32; crate::sys::ready::MAX] =
    [const { AtomicI32::new(-1) }; crate::sys::ready::MAX];

/// The watched descriptors now, and how many.
fn watched() -> ([RawFd; crate::sys::ready::MAX], usize) {
    let mut fds = [-1; crate::sys::ready::MAX];
    let mut n = 0;
    for slot in &WATCHED {
        let fd = slot.load(Ordering::Relaxed);
        if fd >= 0 {
            fds[n] = fd;
            n += 1;
        }
    }
    (fds, n)
}

/// A socket watched by the spin before a park while this lives; its owner
/// keeps the socket open at least as long. With every slot taken (more
/// local addresses serving TFTP at once than `sys::ready::MAX`), the socket
/// is not watched and a spin that misses it is judged by the time the
/// thread takes to come back.
pub struct Watch(Option<usize>);

impl Watch {
    pub fn new(fd: &impl AsRawFd) -> Watch {
        let fd = fd.as_raw_fd();
        let slot = WATCHED.iter().position(|s| {
            s.compare_exchange(-1, fd, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        });
        Watch(slot)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            WATCHED[i].store(-1, Ordering::Relaxed);
        }
    }
}

thread_local! {
    static PARK: std::cell::Cell<ThreadSpin> = const {
        std::cell::Cell::new(ThreadSpin { policy: Payoff::new(), ended: None })
    };
}

/// One runtime thread's spinning: its score, and when its last spin ended.
#[derive(Clone, Copy)]
struct ThreadSpin {
    policy: Payoff,
    ended: Option<Instant>,
}

/// Tries (polls or spins) judged together: a round that paid less than
/// half the time is followed by waits that sleep at once.
const ROUND: u8 = 16;
/// Waits that sleep at once after the first round that did not pay;
/// doubled for each such round after it (up to `SKIP_MAX`), back to this
/// after one that paid. A client that never answers in time thus costs 16
/// tries per 1,040 waits at the longest.
const SKIP_MIN: u32 = 64;
const SKIP_MAX: u32 = 1024;

/// Whether to try staying awake (poll for an ACK, spin before a park) for
/// the next wait, from how such tries paid: no clock, no I/O; its callers
/// tell it each outcome.
#[derive(Clone, Copy, Debug)]
struct Payoff {
    /// Tries so far in this round, and those that paid.
    tried: u8,
    paid: u8,
    /// Waits left that sleep at once, and how many the next round that
    /// does not pay will skip.
    skip: u32,
    next_skip: u32,
}

impl Default for Payoff {
    fn default() -> Payoff {
        Payoff::new()
    }
}

impl Payoff {
    /// `const`: the runtime threads' scores start in a `thread_local!`.
    const fn new() -> Payoff {
        Payoff {
            tried: 0,
            paid: 0,
            skip: 0,
            next_skip: SKIP_MIN,
        }
    }

    /// Whether to try for this wait.
    fn try_now(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// How the last try went.
    fn paid(&mut self, paid: bool) {
        self.tried += 1;
        self.paid += u8::from(paid);
        if self.tried < ROUND {
            return;
        }
        if self.paid * 2 < self.tried {
            self.skip = self.next_skip;
            self.next_skip = (self.next_skip * 2).min(SKIP_MAX);
        } else {
            self.next_skip = SKIP_MIN;
        }
        self.tried = 0;
        self.paid = 0;
    }
}

/// Polling for the ACK of a transfer that has the server to itself. A
/// client whose ACKs mostly come within `ACK_POLL` is polled for on every
/// block; for one slower than that, fewer than half of a round of 16 polls
/// find anything, and the waits after it sleep at once (`Payoff`): a phone
/// answering at its own pace costs under a microsecond of polling per
/// block. The task starts afresh for each new transfer. A lone fast client
/// is thus polled for to the end, through the late ACKs of a client core
/// slow to wake; judged by the round trip it measured while sleeping
/// (which includes the wake-up), one late ACK once stopped the polling for
/// good (a lone 64 MiB read took 2.3 s against the link's 1.2 s), and
/// judged by two misses in a row, for the next 64 blocks (1.11-1.52 s).
#[derive(Default)]
pub struct AckPoll {
    payoff: Payoff,
}

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
        if running > 1 || !self.payoff.try_now() {
            return None;
        }
        let start = Instant::now();
        loop {
            if let Some(got) = attempt() {
                self.payoff.paid(true);
                return Some(got);
            }
            if start.elapsed() > ACK_POLL {
                self.payoff.paid(false);
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
        let ack = async |n: u8| {
            client.send(&[0, 4, 0, n]).await.unwrap();
            std::thread::sleep(Duration::from_millis(2));
        };
        // Nothing comes: polling gives up after ACK_POLL.
        let t = Instant::now();
        assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_none());
        assert!(t.elapsed() >= ACK_POLL);
        // An ACK waiting in the socket is taken without the reactor, but
        // only by a lone transfer: with two running, it waits by sleeping.
        ack(1).await;
        assert!(poll.wait_among(2, attempt(&server, &mut buf)).is_none());
        assert!(matches!(
            poll.wait_among(1, attempt(&server, &mut buf)),
            Some(Ok(4))
        ));
        // Misses mixed with hits, half of a round paying (a fast client
        // whose core is sometimes slow to wake): polling goes on.
        for n in 0..3 * ROUND {
            if n % 2 == 0 {
                ack(n).await;
                assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_some());
            } else {
                assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_none());
            }
        }
        // A slow client: a round of polls finds nothing but one ACK (the
        // round's first two polls were the last two above), then the next
        // SKIP_MIN waits sleep at once, leaving the datagram for the reactor.
        for _ in 2..ROUND {
            assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_none());
        }
        ack(1).await;
        for _ in 0..SKIP_MIN {
            assert!(poll.wait_among(1, attempt(&server, &mut buf)).is_none());
        }
        // Then polls again: the ACK waiting is taken.
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

    /// Waits until a try is called for, counting those without.
    fn waits_until_try(p: &mut Payoff) -> u32 {
        let mut skipped = 0;
        while !p.try_now() {
            skipped += 1;
            assert!(skipped <= SKIP_MAX, "never tries again");
        }
        skipped
    }

    #[test]
    fn staying_awake_stops_while_it_does_not_pay() {
        let mut p = Payoff::new();
        // Tries that pay (lab clients answering in microseconds): every
        // wait tries.
        for _ in 0..10 * u32::from(ROUND) {
            assert!(p.try_now());
            p.paid(true);
        }
        // Half paying is enough to go on.
        for i in 0..u32::from(ROUND) {
            assert!(p.try_now());
            p.paid(i % 2 == 0);
        }
        assert!(p.try_now());
        // A round with fewer than half paying (phones answering in a
        // millisecond): the next SKIP_MIN waits do not try, and each
        // round after that does not pay doubles that, up to SKIP_MAX.
        let mut rounds = Vec::new();
        for _ in 0..7 {
            for i in 0..ROUND {
                if i > 0 {
                    assert_eq!(waits_until_try(&mut p), 0, "within a round");
                }
                p.paid(i < ROUND / 2 - 1);
            }
            rounds.push(waits_until_try(&mut p));
        }
        assert_eq!(rounds, [64, 128, 256, 512, 1024, 1024, 1024]);
        // A round that pays again brings tries back at once, and a later
        // round that does not starts from the shortest skip again.
        for _ in 0..ROUND {
            p.paid(true);
            assert_eq!(waits_until_try(&mut p), 0);
        }
        for _ in 0..ROUND {
            p.paid(false);
        }
        assert_eq!(waits_until_try(&mut p), SKIP_MIN);
    }

    #[test]
    fn a_spin_ends_as_soon_as_a_watched_socket_has_a_datagram() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let has = |fd| {
            let (fds, n) = watched();
            fds[..n].contains(&fd)
        };
        let watch = Watch::new(&b);
        assert!(has(b.as_raw_fd()));
        let _running = (Running::start(), Running::start());
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        while !crate::sys::ready::any_readable(&[b.as_raw_fd()]) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // This test's thread has its own score, fresh: it spins, sees the
        // datagram, and counts the spin as paid without waiting for the
        // unpark.
        before_park();
        let spin = PARK.get();
        assert!(spin.ended.is_none(), "ended by the datagram, not by time");
        assert_eq!((spin.policy.tried, spin.policy.paid), (1, 1));
        drop(watch);
        assert!(!has(b.as_raw_fd()));
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
