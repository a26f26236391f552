//! The DHCP server on its sockets: one UDP socket per served interface (bound
//! to the device, so each reply leaves by the interface its request came in
//! on), the exchange logic behind a lock, and the lease writer in front of
//! every ACK.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::net::UdpSocket;

use super::clock::StepWatch;
use super::engine::{Destination, Engine, Exchange, Ingress, Level, Outcome};
use super::packet::Request;
use super::ratelimit::{RateLimiter, Verdict};
use crate::config::Config;
use crate::leases::store::{Store, Writer};
use crate::leases::{Lease, LeaseTable};
use tokio::sync::watch;

use crate::net::places::{self, Place};
use crate::net::ready::{Readiness, Report};
use crate::net::{ifaces, sockets};
use crate::sys::arp;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// Called with every lease record once it is on disk (and with every
/// restored lease at start): the DNS zone follows lease host names this way.
pub type LeaseHook = Arc<dyn Fn(&Lease) + Send + Sync>;

struct Shared {
    hook: Option<LeaseHook>,
    engine: Mutex<Engine>,
    limiter: Mutex<RateLimiter>,
    writer: Writer,
    started: Instant,
    /// The last look at the clocks, to tell a step of the system clock.
    clock: Mutex<StepWatch>,
    /// The live configuration (set when serving starts): each request is
    /// decided with the newest, so an answer after a reload's READY=1 is
    /// always the reloaded one.
    live: std::sync::OnceLock<watch::Receiver<Arc<Config>>>,
    /// The table as the status page last asked for it, refreshed by
    /// housekeeping (once a second while someone asks) so that readers
    /// never take the lock requests wait on.
    published: std::sync::RwLock<Arc<Published>>,
    /// When the table was last asked for (seconds since `started`, +1).
    wanted: std::sync::atomic::AtomicU64,
}

/// A copy of the lease table for readers outside the exchange path.
#[derive(Debug, Default)]
pub struct Published {
    /// Unix seconds when it was taken; 0: never.
    pub at: u64,
    pub leases: Vec<Lease>,
    /// (address, MAC, held until) of every live offer.
    pub offers: Vec<(Ipv4Addr, crate::units::Mac, u64)>,
}

/// The wall clock (unix milliseconds) and the monotonic one (milliseconds
/// since `epoch`), read together.
fn readings(epoch: Instant) -> (i64, u64) {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mono = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    (wall, mono)
}

/// Looks for a step of the system clock since the last look; after one,
/// every lease and offer is moved by it (each keeps the time it had left)
/// and the leases are written back. Called before each request is decided
/// and every second.
fn watch_clock(shared: &Shared) {
    let (wall, mono) = readings(shared.started);
    let step = match shared.clock.lock() {
        Ok(mut w) => w.observe(wall, mono),
        Err(_) => None,
    };
    let Some(seconds) = step else {
        return;
    };
    let leases = match shared.engine.lock() {
        Ok(mut e) => e.clock_stepped(seconds),
        Err(_) => return,
    };
    tracing::warn!(target: "dialtone::dhcp", seconds, leases = leases.len(), "the system clock stepped: every lease and offer moved with it, keeping the time it had left");
    let hook = shared.hook.clone();
    shared.writer.persist_then(leases.clone(), move |stored| match stored {
        Ok(()) => {
            if let Some(h) = hook {
                leases.iter().for_each(|l| h(l));
            }
        }
        Err(e) => {
            tracing::error!(target: "dialtone::dhcp", error = %e, "leases moved with the clock could not be written; they are moved again at the next start only if the clock steps again")
        }
    });
}

/// Where DHCP listens under `config`: port 67 of each served interface.
pub fn places(config: &Config) -> Vec<Place> {
    config
        .server
        .interfaces
        .iter()
        .map(|i| Place::on(i, ""))
        .collect()
}

/// The DHCP server: the exchange logic with its lease table, and the lease
/// writer. Opened first (the lease store is open once `open` returns), then
/// served on the interfaces.
pub struct Dhcp {
    shared: Arc<Shared>,
}

impl Dhcp {
    /// Opens the lease database and restores the leases; `hook` is told of
    /// every active one.
    pub fn open(config: Arc<Config>, hook: Option<LeaseHook>) -> anyhow::Result<Dhcp> {
        let path = config.leases_path();
        let store = Store::open(&path)?;
        let leases = store.load()?;
        let now = crate::now();
        let active = leases.iter().filter(|l| l.active(now)).count();
        tracing::info!(target: "dialtone::dhcp", path = %path.display(), records = leases.len(), active, "leases restored");
        if let Some(h) = &hook {
            for l in leases.iter().filter(|l| l.active(now)) {
                h(l);
            }
        }
        let writer = Writer::spawn(store);
        let started = Instant::now();
        let (wall, mono) = readings(started);
        Ok(Dhcp {
            shared: Arc::new(Shared {
                hook,
                limiter: Mutex::new(RateLimiter::new(config.dhcp.rate_limit)),
                engine: Mutex::new(Engine::new(config, LeaseTable::from_leases(leases))),
                writer,
                started,
                clock: Mutex::new(StepWatch::new(wall, mono)),
                live: std::sync::OnceLock::new(),
                published: std::sync::RwLock::default(),
                wanted: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// Serves `interfaces` until the future is dropped.
    /// Answers with each new configuration as it comes (a reload): the
    /// lease table, with its offers, stays.
    pub async fn serve(
        &self,
        live: watch::Receiver<Arc<Config>>,
        ready: Arc<Readiness>,
    ) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let _ = self.shared.live.set(live.clone());
        let serving = Arc::clone(&self.shared);
        tasks.spawn(places::serve(
            live.clone(),
            "DHCP",
            ready,
            |c| places(c),
            move |place, report| serve_interface(Arc::clone(&serving), place.label, report),
        ));
        // The engine takes the newest configuration per request (see
        // `serve_interface`); the rate limiter is told here.
        let shared = Arc::clone(&self.shared);
        let mut follow = live;
        tasks.spawn(async move {
            while follow.changed().await.is_ok() {
                let rate = follow.borrow_and_update().dhcp.rate_limit;
                if let Ok(mut l) = shared.limiter.lock() {
                    l.set_rate(rate);
                }
            }
            std::future::pending().await
        });
        tasks.spawn(housekeeping(Arc::clone(&self.shared)));
        crate::first_exit(&mut tasks).await
    }

    /// The leases active now (a reload that adds a zone gives it their
    /// host names).
    pub fn active(&self) -> Vec<Lease> {
        let now = crate::now();
        self.shared
            .engine
            .lock()
            .map(|e| e.leases.all().filter(|l| l.active(now)).cloned().collect())
            .unwrap_or_default()
    }

    /// The lease table as copied at most about a second ago, without
    /// waiting on the exchange path: housekeeping copies it once a second
    /// while it is asked for (the first call after a quiet spell gets the
    /// last copy, perhaps empty, and wakes the copying).
    pub fn published(&self) -> Arc<Published> {
        let since = self.shared.started.elapsed().as_secs() + 1;
        self.shared
            .wanted
            .store(since, std::sync::atomic::Ordering::Relaxed);
        self.shared
            .published
            .read()
            .map(|p| Arc::clone(&p))
            .unwrap_or_default()
    }

    /// Addresses leased now.
    pub fn active_leases(&self) -> usize {
        let now = crate::now();
        self.shared
            .engine
            .lock()
            .map(|e| e.leases.active_count(now))
            .unwrap_or(0)
    }

    /// Whether the exchange logic and the lease writer both answer within
    /// `within`: the watchdog's question. The writer is asked to commit
    /// nothing, which goes through its queue and its thread like a lease.
    pub async fn alive(&self, within: Duration) -> bool {
        let shared = Arc::clone(&self.shared);
        let engine = tokio::task::spawn_blocking(move || shared.engine.lock().is_ok());
        let writer = self.shared.writer.persist(Vec::new());
        let both = async { matches!(engine.await, Ok(true)) && writer.await.is_ok() };
        tokio::time::timeout(within, both).await.unwrap_or(false)
    }
}

fn bind(interface: &str) -> std::io::Result<UdpSocket> {
    sockets::udp(interface, SERVER_PORT, |s| {
        s.set_broadcast(true)?;
        // Forced as root, so the rate limiter sees a flooding phone before
        // the kernel queue overflows; the lease writer sends bursts of ACKs.
        sockets::large_buffers(s, 4 << 20, true);
        Ok(())
    })
}

async fn housekeeping(shared: Arc<Shared>) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for n in 0u64.. {
        tick.tick().await;
        watch_clock(&shared);
        publish(&shared);
        if n % 10 == 0
            && let Ok(mut e) = shared.engine.lock()
        {
            e.leases.expire_offers(crate::now());
        }
    }
    Ok(())
}

/// Copies the table for the status page while it is asked for (within
/// the last 30 s).
fn publish(shared: &Shared) {
    let wanted = shared.wanted.load(std::sync::atomic::Ordering::Relaxed);
    let now = shared.started.elapsed().as_secs() + 1;
    if wanted == 0 || now.saturating_sub(wanted) > 30 {
        return;
    }
    let Ok((leases, offers)) = shared.engine.lock().map(|e| e.leases.snapshot()) else {
        return;
    };
    if let Ok(mut p) = shared.published.write() {
        *p = Arc::new(Published {
            at: crate::now(),
            leases,
            offers,
        });
    }
}

/// DHCP on one interface, until dropped.
async fn serve_interface(shared: Arc<Shared>, name: String, report: Report) -> anyhow::Result<()> {
    let socket =
        bind(&name).with_context(|| format!("cannot listen for DHCP on {name} port 67"))?;
    report.bound();
    let mut addrs = ifaces::Addrs::new(&name);
    let mut ingress = Ingress {
        interface: name.clone(),
        addrs: addrs.current().to_vec(),
    };
    if ingress.addrs.is_empty() {
        tracing::warn!(target: "dialtone::dhcp", interface = %name, "interface has no IPv4 address yet; requests are dropped until it has one");
    }
    tracing::info!(target: "dialtone::dhcp", interface = %name, addresses = ?ingress.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(), "serving DHCP");
    let sender: Arc<std::net::UdpSocket> = Arc::new(
        socket2::SockRef::from(&socket)
            .try_clone()
            .with_context(|| format!("cannot duplicate the DHCP socket of {name}"))?
            .into(),
    );
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: "dialtone::dhcp", interface = %name, error = %e, "receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let req = match Request::parse(&buf[..len]) {
            Ok(r) => r,
            Err(e) => {
                crate::counters::bump(crate::counters::Counter::DhcpParseFailed);
                tracing::debug!(target: "dialtone::dhcp", interface = %name, %from, len, reason = %e, "dropped packet");
                continue;
            }
        };
        let now_ms = shared.started.elapsed().as_millis() as u64;
        let verdict = shared
            .limiter
            .lock()
            .map(|mut l| l.check(req.mac, now_ms))
            .unwrap_or(Verdict::Pass);
        if let Verdict::Drop { first } = verdict {
            crate::counters::bump(crate::counters::Counter::DhcpRateLimited);
            if first {
                tracing::warn!(target: "dialtone::dhcp", mac = %req.mac, interface = %name, "client is flooding; dropping its packets above the rate limit");
            } else {
                tracing::debug!(target: "dialtone::dhcp", mac = %req.mac, interface = %name, "rate limited");
            }
            continue;
        }
        // Interface addresses can change under a running server.
        let current = addrs.current();
        if current != ingress.addrs.as_slice() {
            ingress.addrs = current.to_vec();
        }
        watch_clock(&shared);
        let newest = shared.live.get().map(|l| Arc::clone(&l.borrow()));
        let outcome = match shared.engine.lock() {
            Ok(mut e) => {
                if let Some(next) = newest
                    && !Arc::ptr_eq(e.config(), &next)
                {
                    e.set_config(next);
                }
                e.handle(&req, &ingress, crate::now())
            }
            Err(_) => bail!("DHCP state lock poisoned"),
        };
        let Outcome {
            reply,
            persist,
            exchange,
        } = outcome;
        count(reply.as_ref(), &persist, &exchange);
        if persist.is_empty() {
            log_exchange(&exchange);
            record(&exchange);
            if let Some(r) = reply {
                let to = destination(&socket, &name, r.dest);
                if let Err(e) = socket.send_to(&r.bytes, to).await {
                    tracing::warn!(target: "dialtone::dhcp", %to, interface = %name, error = %e, "send failed");
                }
            }
        } else {
            // The reply waits for its lease to be on disk; other packets do
            // not. The lease writer sends it right after the commit, from its
            // own thread, through a second handle on this socket.
            let name = name.clone();
            let sender = sender.clone();
            let hook = shared.hook.clone().map(|h| (h, persist.clone()));
            shared.writer.persist_then(persist, move |stored| match stored {
                Ok(()) => {
                    if let Some((h, leases)) = hook {
                        leases.iter().for_each(|l| h(l));
                    }
                    log_exchange(&exchange);
                    record(&exchange);
                    if let Some(r) = reply {
                        send_blocking(&sender, &name, r.dest, &r.bytes);
                    }
                }
                Err(e) => {
                    tracing::error!(target: "dialtone::dhcp", mac = %exchange.mac, error = %e, "lease not stored; reply withheld");
                }
            });
        }
    }
}

/// Counts an exchange that was refused (NAK) or not answered at all.
fn count(reply: Option<&super::engine::Reply>, persist: &[Lease], exchange: &Exchange) {
    use crate::counters::{Counter, bump};
    crate::stats::dhcp_received(exchange.request);
    if exchange.reply == Some("NAK") {
        bump(Counter::DhcpNak);
    } else if reply.is_none() && persist.is_empty() {
        bump(Counter::DhcpIgnored);
    }
}

/// Where a reply goes on the wire. For a client without an address yet that
/// did not ask for broadcast, an ARP entry is added first so the unicast can
/// leave; if that fails, the reply is broadcast.
fn destination(socket: &impl AsRawFd, interface: &str, dest: Destination) -> SocketAddrV4 {
    let broadcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT);
    match dest {
        Destination::Relay(ip) => SocketAddrV4::new(ip, SERVER_PORT),
        Destination::Unicast(ip) => SocketAddrV4::new(ip, CLIENT_PORT),
        Destination::Broadcast => broadcast,
        Destination::Hardware { ip, mac } => match arp::set_entry(socket, interface, ip, mac) {
            Ok(()) => SocketAddrV4::new(ip, CLIENT_PORT),
            Err(e) => {
                tracing::debug!(target: "dialtone::dhcp", %ip, %mac, error = %e, "cannot add ARP entry; broadcasting");
                broadcast
            }
        },
    }
}

/// Sends from the lease writer's thread. The socket is non-blocking (it is
/// shared with the runtime); a full send buffer is retried briefly, then the
/// reply is dropped and logged (the client retransmits its request).
fn send_blocking(socket: &std::net::UdpSocket, interface: &str, dest: Destination, bytes: &[u8]) {
    let to = destination(socket, interface, dest);
    for _ in 0..50 {
        match socket.send_to(bytes, to) {
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => {
                tracing::warn!(target: "dialtone::dhcp", %to, interface, error = %e, "send failed");
                return;
            }
        }
    }
    tracing::warn!(target: "dialtone::dhcp", %to, interface, "send buffer full for 10 ms; reply dropped");
}

/// Counts the reply sent and tells the status page of the exchange.
fn record(ex: &Exchange) {
    if let Some(r) = ex.reply {
        crate::stats::dhcp_sent(r);
    }
    crate::stats::tell(|| {
        crate::stats::Event::Dhcp(crate::stats::DhcpSeen {
            mac: ex.mac,
            request: ex.request,
            reply: ex.reply,
            ip: ex.ip,
            interface: ex.interface.clone(),
            vendor_class: ex.vendor_class.clone(),
            classes: ex.classes.clone(),
            options: ex.sent.clone(),
            note: ex.note.clone(),
        })
    });
}

fn codes(c: &[u8]) -> String {
    c.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

/// One structured event per exchange.
pub fn log_exchange(ex: &Exchange) {
    let ip = ex.ip.map(|i| i.to_string()).unwrap_or_default();
    let classes = ex.classes.join(",");
    let sent = codes(&ex.sent);
    let dropped = codes(&ex.dropped);
    let note = ex.note.as_deref().unwrap_or("");
    let vendor_class = ex.vendor_class.as_deref().unwrap_or("");
    let user_class = ex.user_class.as_deref().unwrap_or("");
    let reply = ex.reply.unwrap_or("-");
    macro_rules! ev {
        ($lvl:expr) => {
            tracing::event!(target: "dialtone::dhcp", $lvl,
                request = ex.request, reply, mac = %ex.mac, ip, interface = %ex.interface,
                vendor_class, user_class, classes, options = sent, dropped_options = dropped,
                xid = format_args!("{:#010x}", ex.xid), note, "dhcp exchange")
        };
    }
    match ex.level {
        Level::Debug => ev!(tracing::Level::DEBUG),
        Level::Info => ev!(tracing::Level::INFO),
        Level::Warn => ev!(tracing::Level::WARN),
    }
}
