//! `dialtone serve`: DHCP, DNS (with switchover health checks) and SNTP in one
//! process, on the configured interfaces. DHCP host names reach the DNS zone
//! through the lease hook.

use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::dhcp::server::LeaseHook;
use crate::dns::zone::Zone;
use crate::leases::{Lease, LeaseState};
use crate::units::Ipv4Net;

/// Runs every configured service until one fails or the future is dropped.
pub async fn run(config: Arc<Config>) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut hook: Option<LeaseHook> = None;
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
    tasks.spawn(crate::dhcp::server::run(Arc::clone(&config), hook));
    match tasks.join_next().await {
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}
