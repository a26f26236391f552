//! `dialtone serve`: DHCP, DNS (with switchover health checks), SNTP, TFTP and
//! HTTP in one process, on the configured interfaces. Every stored lease goes
//! through one hook to the DNS zone (host names) and to the file services
//! (which phone owns which address).

use std::sync::{Arc, RwLock};

use anyhow::Context;

use crate::config::Config;
use crate::dhcp::server::LeaseHook;
use crate::dns::zone::Zone;
use crate::files::http::server::Http;
use crate::files::owners::LeaseOwners;
use crate::files::resolve::{Generator, Resolver};
use crate::files::tftp::server::Tftp;
use crate::files::transfers::{Counters, Live, Observer, counters_path};
use crate::inventory::generate::PhoneFiles;
use crate::inventory::seen::{Seen, seen_path};
use crate::leases::{Lease, LeaseState};
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
}

/// Runs every configured service until one fails or the future is dropped.
pub async fn run(config: Arc<Config>) -> anyhow::Result<()> {
    run_with(config, Extras::default()).await
}

/// `run`, with what another command adds.
pub async fn run_with(config: Arc<Config>, extras: Extras) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut hook: Option<LeaseHook> = None;
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
        tasks.spawn(crate::dns::server::run(
            config.server.interfaces.clone(),
            dns.port,
            dns.upstream.clone(),
            Arc::clone(&zone),
        ));
        let dns = Arc::new(dns.clone());
        tasks.spawn(async move {
            crate::dns::health::run(dns, zone).await;
            Ok(())
        });
    }
    if config.time.serve {
        tasks.spawn(crate::time::sntp::run(
            config.server.interfaces.clone(),
            config.time.port,
            config.time.stratum,
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
            tasks.spawn(crate::files::tftp::server::run(
                config.server.interfaces.clone(),
                tftp,
            ));
        }
        if !files.http.is_empty() {
            let http = Arc::new(Http {
                resolver: Arc::clone(&resolver),
                counters: Arc::clone(&counters),
            });
            tasks.spawn(crate::files::http::server::run(
                files.http.clone(),
                config.server.interfaces.clone(),
                http,
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
    tasks.spawn(crate::dhcp::server::run(Arc::clone(&config), hook));
    crate::first_exit(&mut tasks).await
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
