//! `dialtone serve`: DHCP, DNS (with switchover health checks), SNTP, TFTP and
//! HTTP in one process, on the configured interfaces. Every stored lease goes
//! through one hook to the DNS zone (host names) and to the file services
//! (which phone owns which address).

use std::sync::{Arc, RwLock};

use anyhow::Context;

use crate::config::Config;
use crate::daemon::notify::Notifier;
use crate::daemon::{reload, status};
use crate::dhcp::server::{Dhcp, LeaseHook};
use crate::dns::zone::Zone;
use crate::files::http::server::Http;
use crate::files::owners::LeaseOwners;
use crate::files::resolve::{Generator, Resolver};
use crate::files::tftp::server::Tftp;
use crate::files::transfers::{Counters, Live, Observer, counters_path};
use crate::inventory::generate::PhoneFiles;
use crate::inventory::seen::{Seen, seen_path};
use crate::leases::{Lease, LeaseState};
use crate::net::ready::Readiness;
use crate::units::Ipv4Net;

/// What a command built on `serve` adds to it (`dialtone recover`).
#[derive(Default)]
pub struct Extras {
    /// Files served beside the tree.
    pub generator: Option<Arc<dyn Generator>>,
    /// Told of every finished transfer.
    pub on_transfer: Option<Observer>,
    /// Told of every stored lease.
    pub on_lease: Option<LeaseHook>,
    /// Where TFTP transfers in progress are listed.
    pub live: Option<Arc<Live>>,
    /// The configuration file, named in the status line.
    pub source: Option<std::path::PathBuf>,
}

/// Runs every configured service until one fails or the future is dropped.
pub async fn run(config: Arc<Config>) -> anyhow::Result<()> {
    run_with(config, Extras::default()).await
}

/// `run`, with what another command adds.
pub async fn run_with(config: Arc<Config>, extras: Extras) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut hook: Option<LeaseHook> = None;
    let ready = Readiness::new();
    let interfaces = config.server.interfaces.clone();
    // Every place each service will serve, expected before any binds, so
    // readiness is not declared while a service has not started yet.
    let expect = |service: &'static str| {
        for i in &interfaces {
            ready.waiting(service, i, "starting");
        }
    };
    expect("DHCP");
    // Phones seen, from every stored lease and every transfer.
    let seen_file = seen_path(&config.server.state_dir);
    let seen =
        Arc::new(Seen::load(&seen_file).map_err(anyhow::Error::msg).context(
            "the phones seen before cannot be read (move the file away to start afresh)",
        )?);
    let mut shared_zone = None;
    if let Some(dns) = &config.dns {
        let subnets: Vec<Ipv4Net> = config.dhcp.subnets.iter().map(|s| s.net).collect();
        let zone = Arc::new(RwLock::new(Zone::new(dns, &subnets, config.time.serve)));
        shared_zone = Some(Arc::clone(&zone));
        if dns.leases {
            let z = Arc::clone(&zone);
            hook = Some(Arc::new(move |l: &Lease| {
                if let Ok(mut z) = z.write() {
                    let name = (l.state == LeaseState::Bound)
                        .then_some(l.hostname.as_deref())
                        .flatten();
                    z.set_lease_name(l.ip, name, l.expires);
                }
            }));
        }
        expect("DNS");
        tasks.spawn(crate::dns::server::run(
            config.server.interfaces.clone(),
            dns.port,
            dns.upstream.clone(),
            Arc::clone(&zone),
            Arc::clone(&ready),
        ));
    }
    if config.time.serve {
        expect("SNTP");
        tasks.spawn(crate::time::sntp::run(
            config.server.interfaces.clone(),
            config.time.port,
            config.time.stratum,
            Arc::clone(&ready),
        ));
    }
    if let Some(files) = &config.files {
        let owners = Arc::new(LeaseOwners::new(&config));
        let resolver = Resolver::new(files, owners.clone()).with_context(|| {
            format!(
                "[files] root {}: cannot read the tree to serve",
                files.root.display()
            )
        })?;
        if let Some(dir) = &files.upload {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "[files] upload {}: cannot make the upload folder",
                    dir.display()
                )
            })?;
        }
        let resolver = match PhoneFiles::new(Arc::clone(&config)) {
            Some(g) => resolver.with_generator(Arc::new(g.with_seen(Arc::clone(&seen)))),
            None => resolver,
        };
        let resolver = match &extras.generator {
            Some(g) => resolver.with_generator(Arc::clone(g)),
            None => resolver,
        };
        let resolver = Arc::new(resolver);
        let s = Arc::clone(&seen);
        let also = extras.on_transfer;
        let counters = Arc::new(Counters::with_observer(Box::new(move |t| {
            s.transfer(t, crate::now());
            if let Some(o) = &also {
                o(t);
            }
        })));
        let dns_hook = hook.take();
        hook = Some(Arc::new(move |l: &Lease| {
            owners.update(l);
            if let Some(h) = &dns_hook {
                h(l);
            }
        }));
        if files.tftp {
            let tftp = Arc::new(Tftp::new(
                files.clone(),
                Arc::clone(&resolver),
                Arc::clone(&counters),
                extras.live.clone().unwrap_or_default(),
            ));
            expect("TFTP");
            tasks.spawn(crate::files::tftp::server::run(
                config.server.interfaces.clone(),
                tftp,
                Arc::clone(&ready),
            ));
        }
        if !files.http.is_empty() {
            let http = Arc::new(Http {
                resolver: Arc::clone(&resolver),
                counters: Arc::clone(&counters),
            });
            for addr in &files.http {
                if addr.ip().is_unspecified() {
                    expect("HTTP");
                } else {
                    ready.waiting("HTTP", &addr.to_string(), "starting");
                }
            }
            tasks.spawn(crate::files::http::server::run(
                files.http.clone(),
                config.server.interfaces.clone(),
                http,
                Arc::clone(&ready),
            ));
        }
        let path = counters_path(&config.server.state_dir);
        tasks.spawn(save_every_5s(SaveOnDrop {
            what: "the file counters",
            path,
            save: Box::new(move |p| counters.save_if_changed(p)),
        }));
    }
    let s = Arc::clone(&seen);
    let before = hook.take();
    let also = extras.on_lease;
    hook = Some(Arc::new(move |l: &Lease| {
        s.lease(l, crate::now());
        if let Some(h) = &before {
            h(l);
        }
        if let Some(h) = &also {
            h(l);
        }
    }));
    tasks.spawn(save_every_5s(SaveOnDrop {
        what: "the phones seen",
        path: seen_file,
        save: Box::new(move |p| seen.save_if_changed(p)),
    }));
    let dhcp = Arc::new(Dhcp::open(Arc::clone(&config), hook)?);
    if interfaces.is_empty() {
        tracing::warn!(target: "dialtone", "no interfaces configured: dialtone serves nothing until [server] interfaces names them");
    } else {
        let d = Arc::clone(&dhcp);
        let r = Arc::clone(&ready);
        tasks.spawn(async move { d.serve(interfaces, r).await });
    }
    let reloads = extras.source.is_some();
    let source = extras
        .source
        .unwrap_or_else(|| std::path::PathBuf::from("the configuration file"));
    let live = Arc::new(Running {
        config: RwLock::new(Arc::clone(&config)),
        note: RwLock::new(None),
        changed: tokio::sync::Notify::new(),
    });
    tasks.spawn(tell_the_manager(
        Arc::clone(&live),
        source.clone(),
        ready,
        Arc::clone(&dhcp),
    ));
    tasks.spawn(health_and_reloads(
        live,
        reloads.then_some(source),
        dhcp,
        shared_zone,
    ));
    crate::first_exit(&mut tasks).await
}

/// The configuration being served and what the last reload left to say.
struct Running {
    config: RwLock<Arc<Config>>,
    /// Why the last reload was refused, or what it did not apply yet.
    note: RwLock<Option<String>>,
    /// Woken after every reload.
    changed: tokio::sync::Notify,
}

impl Running {
    fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
    }

    fn note(&self) -> Option<String> {
        self.note.read().ok().and_then(|n| n.clone())
    }
}

/// Aborts a spawned task when dropped.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_health(config: &Config, zone: &Option<crate::dns::server::SharedZone>) -> Option<Abort> {
    let (dns, zone) = (config.dns.as_ref()?, zone.as_ref()?);
    let (dns, zone) = (Arc::new(dns.clone()), Arc::clone(zone));
    Some(Abort(tokio::spawn(crate::dns::health::run(dns, zone))))
}

/// Runs the switchover health checks and, when `source` is given, reloads
/// it on every SIGHUP: a file that does not load is refused (the running
/// configuration keeps serving, the error is logged with its file, line and
/// key and shown in the status line); a good one is applied to the DHCP
/// server and the zone at once (`daemon::reload` says what else waits for
/// a restart).
async fn health_and_reloads(
    live: Arc<Running>,
    source: Option<std::path::PathBuf>,
    dhcp: Arc<Dhcp>,
    zone: Option<crate::dns::server::SharedZone>,
) -> anyhow::Result<()> {
    let mut health = spawn_health(&live.config(), &zone);
    let Some(source) = source else {
        std::future::pending::<()>().await;
        return Ok(());
    };
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let notifier = Notifier;
    while hup.recv().await.is_some() {
        notifier.reloading();
        let running = live.config();
        let note = match Config::load(&source) {
            Err(e) => {
                tracing::error!(target: "dialtone", error = %e, "reload refused; the running configuration keeps serving");
                Some(format!(
                    "reload refused ({e}); serving the previous configuration"
                ))
            }
            Ok(next) => {
                let next = Arc::new(next);
                let waiting = reload::not_applied(&running, &next);
                dhcp.set_config(Arc::clone(&next));
                if let (Some(z), Some(dns)) = (&zone, &next.dns) {
                    let subnets: Vec<Ipv4Net> = next.dhcp.subnets.iter().map(|s| s.net).collect();
                    if let Ok(mut z) = z.write() {
                        z.reconfigure(dns, &subnets, next.time.serve);
                    }
                }
                drop(health.take());
                health = spawn_health(&next, &zone);
                if let Ok(mut c) = live.config.write() {
                    *c = Arc::clone(&next);
                }
                if waiting.is_empty() {
                    tracing::info!(target: "dialtone", path = %source.display(), "configuration reloaded");
                    None
                } else {
                    let list = waiting.join(", ");
                    tracing::warn!(target: "dialtone", path = %source.display(), not_applied = %list, "configuration reloaded; these changes take effect at the next restart");
                    Some(format!(
                        "reloaded; {list} changed: applied at the next restart"
                    ))
                }
            }
        };
        if let Ok(mut n) = live.note.write() {
            *n = note;
        }
        live.changed.notify_one();
    }
    Ok(())
}

/// Keeps the service manager informed: `READY=1` once every expected place
/// is bound (the lease store is open before any DHCP socket is), `STATUS=`
/// on every change and every 10 s (the lease count moves), and `WATCHDOG=1`
/// while the DHCP server and the lease writer answer.
async fn tell_the_manager(
    live: Arc<Running>,
    source: std::path::PathBuf,
    ready: Arc<Readiness>,
    dhcp: Arc<Dhcp>,
) -> anyhow::Result<()> {
    let notifier = Notifier;
    let mut changes = ready.subscribe();
    let mut announced = false;
    let mut last = String::new();
    let watchdog = notifier.watchdog_interval();
    let period = watchdog
        .map(|w| (w / 2).min(std::time::Duration::from_secs(10)))
        .unwrap_or(std::time::Duration::from_secs(10));
    let mut tick = tokio::time::interval(period);
    loop {
        let mut line = status::line(
            &live.config(),
            &source,
            &ready.snapshot(),
            dhcp.active_leases(),
        );
        if let Some(note) = live.note() {
            line = format!("{line}; {note}");
        }
        if !announced && ready.all_bound() {
            notifier.ready(&line);
            tracing::info!(target: "dialtone", status = %line, "ready");
            announced = true;
        } else if line != last {
            notifier.status(&line);
        }
        last = line;
        tokio::select! {
            () = live.changed.notified() => {
                // A reload ended: tell systemd it is over.
                if announced {
                    notifier.ready(&status::line(&live.config(), &source, &ready.snapshot(), dhcp.active_leases()));
                    last.clear();
                }
            }
            r = changes.changed() => {
                if r.is_err() {
                    return Ok(());
                }
            }
            _ = tick.tick() => {
                if let Some(w) = watchdog {
                    if dhcp.alive(w / 2).await {
                        notifier.watchdog();
                    } else {
                        tracing::error!(target: "dialtone", "the DHCP server or the lease writer does not answer; the service manager's watchdog will restart dialtone");
                    }
                }
            }
        }
    }
}

/// Saves every 5 s while there are changes, and once more on the way out.
async fn save_every_5s(saver: SaveOnDrop) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        saver.save();
    }
}

/// Writes some state to a file if it changed.
type Save = Box<dyn Fn(&std::path::Path) -> std::io::Result<()> + Send + Sync>;

/// State written to a file in the state directory.
struct SaveOnDrop {
    what: &'static str,
    path: std::path::PathBuf,
    save: Save,
}

impl SaveOnDrop {
    fn save(&self) {
        if let Err(e) = (self.save)(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write {}", self.what);
        }
    }
}

impl Drop for SaveOnDrop {
    fn drop(&mut self) {
        self.save();
    }
}
