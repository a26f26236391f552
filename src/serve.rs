//! `dialtone serve`: DHCP, DNS (with switchover health checks), SNTP, TFTP and
//! HTTP in one process, on the configured interfaces. Every stored lease goes
//! through one hook to the DNS zone (host names) and to the file services
//! (which phone owns which address).

use std::sync::{Arc, RwLock};

use anyhow::Context;

use crate::config::Config;
use crate::daemon::notify::Notifier;
use crate::daemon::status;
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
    if let Some(dns) = &config.dns {
        let subnets: Vec<Ipv4Net> = config.dhcp.subnets.iter().map(|s| s.net).collect();
        let zone = Arc::new(RwLock::new(Zone::new(dns, &subnets, config.time.serve)));
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
        let dns = Arc::new(dns.clone());
        tasks.spawn(async move {
            crate::dns::health::run(dns, zone).await;
            Ok(())
        });
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
    let source = extras
        .source
        .unwrap_or_else(|| std::path::PathBuf::from("the configuration file"));
    tasks.spawn(tell_the_manager(config, source, ready, dhcp));
    crate::first_exit(&mut tasks).await
}

/// Keeps the service manager informed: `READY=1` once every expected place
/// is bound (the lease store is open before any DHCP socket is), `STATUS=`
/// on every change and every 10 s (the lease count moves), and `WATCHDOG=1`
/// while the DHCP server and the lease writer answer.
async fn tell_the_manager(
    config: Arc<Config>,
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
        let line = status::line(&config, &source, &ready.snapshot(), dhcp.active_leases());
        if !announced && ready.all_bound() {
            notifier.ready(&line);
            tracing::info!(target: "dialtone", status = %line, "ready");
            announced = true;
        } else if line != last {
            notifier.status(&line);
        }
        last = line;
        tokio::select! {
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
