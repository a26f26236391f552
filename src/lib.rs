//! dialtone: a network boot appliance for IP phones.
//!
//! The library holds everything the `dialtone` binary runs: the configuration,
//! the DHCP protocol logic (pure, no I/O), the lease store, and the servers
//! that put them on sockets.

pub mod admin;
pub mod config;
pub mod counters;
pub mod dhcp;
pub mod glob;
pub mod leases;
pub mod stats;
pub mod units;

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The runtime `serve` and `recover` run on: one thread per core, each
/// kept awake briefly between TFTP acknowledgements while several transfers
/// run and that pays (`files::tftp::pace`).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(files::tftp::pace::before_park)
        .on_thread_unpark(files::tftp::pace::after_unpark)
        .build()
        .context("cannot start the runtime")
}

/// Waits for Ctrl-C or SIGTERM; says which came.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        () = term => "SIGTERM",
    }
}

/// Waits for the first of a service's tasks to end: its error (a panic
/// becomes one), or Ok. The services run until dropped, so any end is news.
pub async fn first_exit(
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    match tasks.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(e.into()),
        None => Ok(()),
    }
}
pub mod daemon;
pub mod demo;
pub mod dns;
pub mod explain;
pub mod families;
pub mod files;
pub mod fuzz;
pub mod inventory;
pub mod lab;
pub mod logline;
pub mod net;
pub mod recover;
pub mod serve;
pub mod site;
pub mod statefile;
pub mod sys;
pub mod time;
