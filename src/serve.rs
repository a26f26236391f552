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
use crate::dns::server::SharedZone;
use crate::dns::zone::Zone;
use crate::files::Services;
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
use tokio::sync::watch;

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
    let ready = Readiness::new();
    expect(&ready, &config);
    // Phones seen, from every stored lease and every transfer.
    let seen_file = seen_path(&config.server.state_dir);
    let seen =
        Arc::new(Seen::load(&seen_file).map_err(anyhow::Error::msg).context(
            "the phones seen before cannot be read (move the file away to start afresh)",
        )?);
    let (live_tx, live) = watch::channel(Arc::clone(&config));
    let (zone_tx, zone) = watch::channel(config.dns.as_ref().map(|d| new_zone(d, &config)));
    let s = Arc::clone(&seen);
    let also = extras.on_transfer;
    // The status page's sources: what each phone did lately (collected
    // only while the admin listener is configured), transfers by family.
    let activity = if config.admin.listen.is_some() {
        crate::site::activity::Activity::start()
    } else {
        Arc::default()
    };
    let transfer_counts = Arc::new(crate::site::TransferCounts::default());
    let (a, tc, l) = (
        Arc::clone(&activity),
        Arc::clone(&transfer_counts),
        live.clone(),
    );
    let counters = Arc::new(Counters::with_observer(Box::new(move |t| {
        s.transfer(t, crate::now());
        a.transfer_finished(t);
        tc.count(t, family_of(&l.borrow(), &s, t.mac));
        if let Some(o) = &also {
            o(t);
        }
    })));
    let parts = FileParts {
        owners: Arc::new(LeaseOwners::new(&config)),
        seen: Arc::clone(&seen),
        counters: Arc::clone(&counters),
        generator: extras.generator,
        live: extras.live.unwrap_or_default(),
        sweep: Arc::default(),
    };
    let transfers_live = Arc::clone(&parts.live);
    let owners = Arc::clone(&parts.owners);
    let (files_tx, files) = watch::channel(parts.build(&config)?);
    let hook = lease_hook(live.clone(), zone.clone(), &parts, extras.on_lease);
    let dhcp = Arc::new(Dhcp::open(Arc::clone(&config), Some(hook))?);
    if config.server.interfaces.is_empty() {
        tracing::warn!(target: "dialtone", "no interfaces configured: dialtone serves nothing until [server] interfaces names them");
    }
    let (d, r, l) = (Arc::clone(&dhcp), Arc::clone(&ready), live.clone());
    tasks.spawn(async move { d.serve(l, r).await });
    tasks.spawn(crate::dns::server::run(
        live.clone(),
        zone.clone(),
        Arc::clone(&ready),
    ));
    tasks.spawn(crate::time::sntp::run(live.clone(), Arc::clone(&ready)));
    tasks.spawn(crate::files::tftp::server::run(
        live.clone(),
        files.clone(),
        Arc::clone(&ready),
    ));
    tasks.spawn(crate::files::http::server::run(
        live.clone(),
        files,
        Arc::clone(&ready),
    ));
    tasks.spawn(save_every_5s(SaveOnDrop::new(
        "the file counters",
        counters_path(&config.server.state_dir),
        Box::new(move |p| counters.save_if_changed(p)),
    )));
    let seen_for_site = Arc::clone(&seen);
    tasks.spawn(save_every_5s(SaveOnDrop::new(
        "the phones seen",
        seen_file,
        Box::new(move |p| seen.save_if_changed(p)),
    )));
    let logs = Arc::new(crate::site::syslog::Logs::new(
        &config.server.state_dir,
        config.syslog.lines_per_phone,
    ));
    tasks.spawn(crate::site::syslog::run(
        live.clone(),
        Arc::clone(&ready),
        Arc::clone(&logs),
        owners,
    ));
    let service = Arc::new(crate::site::Service {
        source: extras.source.clone(),
        started: crate::now(),
        ..crate::site::Service::default()
    });
    service
        .loaded_at
        .store(crate::now(), std::sync::atomic::Ordering::Relaxed);
    let site = Arc::new(crate::site::Site {
        live: live.clone(),
        seen: Arc::clone(&seen_for_site),
        dhcp: Arc::clone(&dhcp),
        activity,
        transfers: transfers_live,
        zone: zone.clone(),
        ready: Arc::clone(&ready),
        logs,
        service: Arc::clone(&service),
        counts: transfer_counts,
    });
    tasks.spawn(crate::admin::run(site, live.clone()));
    let reloads = extras.source.is_some();
    let source = extras
        .source
        .unwrap_or_else(|| std::path::PathBuf::from("the configuration file"));
    let running = Arc::new(Running {
        live: live.clone(),
        note: RwLock::new(None),
        changed: tokio::sync::Notify::new(),
    });
    tasks.spawn(tell_the_manager(
        Arc::clone(&running),
        source.clone(),
        Arc::clone(&ready),
        Arc::clone(&dhcp),
    ));
    let reloader = Reloader {
        service,
        running,
        source: reloads.then_some(source),
        live: live_tx,
        zone: zone_tx,
        files: files_tx,
        parts,
        dhcp,
        ready,
    };
    tasks.spawn(reloader.run());
    tasks.spawn(counters_on_usr1());
    crate::first_exit(&mut tasks).await
}

/// Logs the counters of dropped and refused input on every SIGUSR1
/// (`systemctl kill -s USR1 dialtone`), as dnsmasq logs its statistics.
async fn counters_on_usr1() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut usr1 = signal(SignalKind::user_defined1()).context("cannot listen for SIGUSR1")?;
    while usr1.recv().await.is_some() {
        crate::counters::log();
    }
    Ok(())
}

/// Every place each service will serve, expected before any binds, so
/// readiness is not declared while a service has not started yet.
fn expect(ready: &Readiness, config: &Config) {
    for (service, list) in places(config) {
        for p in list {
            ready.waiting(service, &p.label, "starting");
        }
    }
}

/// The places `next` adds to `running`'s, expected as at start.
fn expect_new(ready: &Readiness, running: &Config, next: &Config) {
    for ((service, old), (_, new)) in places(running).into_iter().zip(places(next)) {
        for p in new.iter().filter(|p| !old.contains(p)) {
            ready.waiting(service, &p.label, "starting");
        }
    }
}

/// Every service's places under `config`.
fn places(config: &Config) -> [(&'static str, Vec<crate::net::places::Place>); 6] {
    [
        ("DHCP", crate::dhcp::server::places(config)),
        ("DNS", crate::dns::server::places(config)),
        ("SNTP", crate::time::sntp::places(config)),
        ("TFTP", crate::files::tftp::server::places(config)),
        ("HTTP", crate::files::http::server::listeners(config)),
        ("syslog", crate::site::syslog::places(config)),
    ]
}

/// A transfer's phone family (`unknown` without a MAC or a family).
fn family_of(config: &Config, seen: &Seen, mac: Option<crate::units::Mac>) -> &'static str {
    mac.and_then(|m| {
        crate::inventory::seen::family(m, config.phones.by_mac(m), seen.model(m).as_deref())
    })
    .map_or("unknown", |f| f.name)
}

fn new_zone(dns: &crate::config::Dns, config: &Config) -> SharedZone {
    let subnets: Vec<Ipv4Net> = config.dhcp.subnets.iter().map(|s| s.net).collect();
    Arc::new(RwLock::new(Zone::new(dns, &subnets, config.time.serve)))
}

/// Every stored lease (and every restored one) goes to the zone's host
/// names (when `[dns] leases` is on in the live configuration), the file
/// owners, the phones seen, and what the command added.
fn lease_hook(
    live: watch::Receiver<Arc<Config>>,
    zone: watch::Receiver<Option<SharedZone>>,
    parts: &FileParts,
    also: Option<LeaseHook>,
) -> LeaseHook {
    let owners = Arc::clone(&parts.owners);
    let seen = Arc::clone(&parts.seen);
    Arc::new(move |l: &Lease| {
        let names = live.borrow().dns.as_ref().is_some_and(|d| d.leases);
        let current = zone.borrow().clone();
        if names && let Some(z) = current {
            set_lease_name(&z, l);
        }
        owners.update(l);
        seen.lease(l, crate::now());
        if let Some(h) = &also {
            h(l);
        }
    })
}

fn set_lease_name(zone: &SharedZone, l: &Lease) {
    if let Ok(mut z) = zone.write() {
        let name = (l.state == LeaseState::Bound)
            .then_some(l.hostname.as_deref())
            .flatten();
        z.set_lease_name(l.ip, name, l.expires);
    }
}

/// What the file services are built from besides the configuration: kept
/// across reloads (the owners follow the leases, the counters and the
/// phones seen carry on).
struct FileParts {
    owners: Arc<LeaseOwners>,
    seen: Arc<Seen>,
    counters: Arc<Counters>,
    generator: Option<Arc<dyn Generator>>,
    live: Arc<Live>,
    /// Misses on MAC-named files per source, for TFTP and HTTP alike.
    sweep: Arc<crate::files::resolve::Sweep>,
}

impl FileParts {
    /// The file services of `config`, or None without `[files]`; an error
    /// when the tree cannot be read or the upload folder cannot be made.
    fn build(&self, config: &Arc<Config>) -> anyhow::Result<Option<Services>> {
        let Some(files) = &config.files else {
            return Ok(None);
        };
        let resolver = Resolver::new(files, self.owners.clone())
            .with_context(|| {
                format!(
                    "[files] root {}: cannot read the tree to serve",
                    files.root.display()
                )
            })?
            .with_sweep_guard(Arc::clone(&self.sweep));
        if let Some(dir) = &files.upload {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "[files] upload {}: cannot make the upload folder",
                    dir.display()
                )
            })?;
        }
        let resolver = match PhoneFiles::new(Arc::clone(config)) {
            Some(g) => resolver.with_generator(Arc::new(g.with_seen(Arc::clone(&self.seen)))),
            None => resolver,
        };
        let resolver = match &self.generator {
            Some(g) => resolver.with_generator(Arc::clone(g)),
            None => resolver,
        };
        let resolver = Arc::new(resolver);
        Ok(Some(Services {
            tftp: Arc::new(Tftp::new(
                files.clone(),
                Arc::clone(&resolver),
                Arc::clone(&self.counters),
                Arc::clone(&self.live),
            )),
            http: Arc::new(Http {
                resolver,
                counters: Arc::clone(&self.counters),
                head_timeout: files.http_head_timeout,
                per_source: files.http_per_source,
                live: Arc::clone(&self.live),
                upload: files.upload.clone().map(|u| (u, files.upload_max)),
            }),
        }))
    }
}

/// The configuration being served and what the last reload left to say.
struct Running {
    live: watch::Receiver<Arc<Config>>,
    /// Why the last reload was refused, or what it did not apply.
    note: RwLock<Option<String>>,
    /// Woken after every reload.
    changed: tokio::sync::Notify,
}

impl Running {
    fn config(&self) -> Arc<Config> {
        Arc::clone(&self.live.borrow())
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

/// Applies reloads: one live configuration (a watch channel) that every
/// service follows, with the zone and the file services built for it.
struct Reloader {
    service: Arc<crate::site::Service>,
    running: Arc<Running>,
    /// The file to reload on SIGHUP (None: no reloads, as for `recover`).
    source: Option<std::path::PathBuf>,
    live: watch::Sender<Arc<Config>>,
    zone: watch::Sender<Option<SharedZone>>,
    files: watch::Sender<Option<Services>>,
    parts: FileParts,
    dhcp: Arc<Dhcp>,
    ready: Arc<Readiness>,
}

impl Reloader {
    fn spawn_health(&self, config: &Config) -> Option<Abort> {
        let dns = Arc::new(config.dns.clone()?);
        let zone = self.zone.borrow().clone()?;
        Some(Abort(tokio::spawn(crate::dns::health::run(dns, zone))))
    }

    /// Runs the switchover health checks and, when there is a file to
    /// reload, reloads it on every SIGHUP: a file that does not load (or
    /// whose files tree cannot be read) is refused, the running
    /// configuration keeps serving and the error (file, line, key) is logged
    /// and shown in the status line; a good one becomes the live
    /// configuration at once.
    async fn run(self) -> anyhow::Result<()> {
        let mut health = self.spawn_health(&self.running.config());
        let Some(source) = self.source.clone() else {
            std::future::pending::<()>().await;
            return Ok(());
        };
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        let notifier = Notifier;
        while hup.recv().await.is_some() {
            notifier.reloading();
            let note = match self.apply(&source) {
                Err(e) => {
                    let e = format!("{e:#}");
                    tracing::error!(target: "dialtone", error = %e, "reload refused; the running configuration keeps serving");
                    self.service.refused(format!(
                        "{} UTC: refused: {e}",
                        crate::units::utc(crate::now())
                    ));
                    Some(format!(
                        "reload refused ({e}); serving the previous configuration"
                    ))
                }
                Ok(not_applied) => {
                    drop(health.take());
                    health = self.spawn_health(&self.running.config());
                    self.service.reloaded(if not_applied.is_empty() {
                        format!("{} UTC: reloaded", crate::units::utc(crate::now()))
                    } else {
                        format!(
                            "{} UTC: reloaded; {} wait for a restart",
                            crate::units::utc(crate::now()),
                            not_applied.join(", ")
                        )
                    });
                    if not_applied.is_empty() {
                        tracing::info!(target: "dialtone", path = %source.display(), "configuration reloaded");
                        None
                    } else {
                        let list = not_applied.join(", ");
                        tracing::warn!(target: "dialtone", path = %source.display(), not_applied = %list, "configuration reloaded; these changes take effect at the next restart");
                        Some(format!(
                            "reloaded; {list} changed: applied at the next restart"
                        ))
                    }
                }
            };
            if let Ok(mut n) = self.running.note.write() {
                *n = note;
            }
            self.running.changed.notify_one();
        }
        Ok(())
    }

    /// Loads `source` and makes it the live configuration; what it could
    /// not apply. Nothing changes when it fails.
    fn apply(&self, source: &std::path::Path) -> anyhow::Result<Vec<&'static str>> {
        let next = Arc::new(Config::load(source)?);
        let running = self.running.config();
        let services = self.parts.build(&next)?;
        let not_applied = reload::not_applied(&running, &next);
        // The zone first: the DNS places the new configuration brings find it.
        // (The zone is cloned out first: a borrow held across the match
        // would block the send inside it.)
        let current = self.zone.borrow().clone();
        match (&next.dns, current) {
            (Some(dns), Some(zone)) => {
                let subnets: Vec<Ipv4Net> = next.dhcp.subnets.iter().map(|s| s.net).collect();
                if let Ok(mut z) = zone.write() {
                    z.reconfigure(dns, &subnets, next.time.serve);
                }
            }
            (Some(dns), None) => {
                let zone = new_zone(dns, &next);
                if dns.leases {
                    self.dhcp
                        .active()
                        .iter()
                        .for_each(|l| set_lease_name(&zone, l));
                }
                self.zone.send_replace(Some(zone));
            }
            (None, _) => {
                self.zone.send_replace(None);
            }
        }
        self.parts.owners.set_reserved(&next);
        self.files.send_replace(services);
        // Places the new configuration brings are expected before any binds.
        expect_new(&self.ready, &running, &next);
        self.live.send_replace(next);
        Ok(not_applied)
    }
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
        // Whether every place is bound, before the snapshot the line is made
        // of: a place bound in between shows in the line, never the other
        // way round (READY=1 with a line still waiting for it).
        let bound = ready.all_bound();
        let mut line = status::line(
            &live.config(),
            &source,
            &ready.snapshot(),
            dhcp.active_leases(),
        );
        if let Some(note) = live.note() {
            line = format!("{line}; {note}");
        }
        if !announced && bound {
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
    /// While saves fail (a full or read-only disk): when the last warning
    /// went out. One a minute, then one line when a save succeeds again.
    failing: std::sync::Mutex<Option<std::time::Instant>>,
}

impl SaveOnDrop {
    fn new(what: &'static str, path: std::path::PathBuf, save: Save) -> SaveOnDrop {
        SaveOnDrop {
            what,
            path,
            save,
            failing: std::sync::Mutex::new(None),
        }
    }

    fn save(&self) {
        let result = (self.save)(&self.path);
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        match result {
            Err(e) => {
                if failing.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(60)) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot write {}; kept in memory and tried again every 5 s", self.what);
                    *failing = Some(std::time::Instant::now());
                }
            }
            Ok(()) => {
                if failing.take().is_some() {
                    tracing::info!(path = %self.path.display(), "{} written again", self.what);
                }
            }
        }
    }
}

impl Drop for SaveOnDrop {
    fn drop(&mut self) {
        self.save();
    }
}
