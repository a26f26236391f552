//! Which phone owns an address: its current DHCP lease or its reservation.
//! Private per-phone files go only to the MAC found here.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::RwLock;

use crate::config::Config;
use crate::leases::Lease;
use crate::units::Mac;

/// The address-to-MAC view the file services ask.
pub trait Owners: Send + Sync {
    fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac>;
}

/// Fed by the DHCP server's lease hook (every lease once on disk, and every
/// restored lease at start) and by the configured reservations.
#[derive(Debug, Default)]
pub struct LeaseOwners {
    leases: RwLock<HashMap<Ipv4Addr, (Mac, u64)>>,
    reserved: RwLock<HashMap<Ipv4Addr, Mac>>,
}

fn reservations(config: &Config) -> HashMap<Ipv4Addr, Mac> {
    config
        .dhcp
        .hosts
        .iter()
        .filter_map(|h| h.ip.map(|ip| (ip, h.mac)))
        .collect()
}

impl LeaseOwners {
    pub fn new(config: &Config) -> LeaseOwners {
        LeaseOwners {
            leases: RwLock::default(),
            reserved: RwLock::new(reservations(config)),
        }
    }

    /// The reservations of a reloaded configuration; leases stay.
    pub fn set_reserved(&self, config: &Config) {
        if let Ok(mut r) = self.reserved.write() {
            *r = reservations(config);
        }
    }

    /// Records a lease as stored: a bound lease maps its address to its MAC
    /// until it expires; a released or declined one removes the mapping.
    pub fn update(&self, lease: &Lease) {
        if let Ok(mut m) = self.leases.write() {
            if lease.active(crate::now()) {
                m.insert(lease.ip, (lease.mac, lease.expires));
            } else if m.get(&lease.ip).is_some_and(|(mac, _)| *mac == lease.mac) {
                m.remove(&lease.ip);
            }
        }
    }
}

impl Owners for LeaseOwners {
    fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
        let now = crate::now();
        let leased = self.leases.read().ok().and_then(|m| {
            m.get(&ip)
                .filter(|(_, exp)| *exp > now)
                .map(|(mac, _)| *mac)
        });
        leased.or_else(|| self.reserved.read().ok()?.get(&ip).copied())
    }
}
