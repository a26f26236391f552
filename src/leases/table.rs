//! The lease table in memory: who holds which address, offers in flight, and
//! address allocation. No I/O: the store persists what this decides.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::config::Subnet;
use crate::units::Mac;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Acknowledged to the client; valid until `expires`.
    Bound,
    /// Given back by the client; the address stays associated (sticky) until reused.
    Released,
    /// The client found the address in use; quarantined until `expires`.
    Declined,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Bound => "bound",
            LeaseState::Released => "released",
            LeaseState::Declined => "declined",
        }
    }
    pub fn parse(s: &str) -> Option<LeaseState> {
        match s {
            "bound" => Some(LeaseState::Bound),
            "released" => Some(LeaseState::Released),
            "declined" => Some(LeaseState::Declined),
            _ => None,
        }
    }
}

/// One address's record, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub hostname: Option<String>,
    pub vendor_class: Option<String>,
    pub user_class: Option<String>,
    pub interface: String,
    pub state: LeaseState,
    /// Unix seconds.
    pub expires: u64,
}

impl Lease {
    pub fn active(&self, now: u64) -> bool {
        self.state == LeaseState::Bound && self.expires > now
    }
    /// Declined and still held out of the pool at `now`.
    pub fn quarantined(&self, now: u64) -> bool {
        self.state == LeaseState::Declined && self.expires > now
    }
}

#[derive(Debug, Clone, Copy)]
struct Offer {
    mac: Mac,
    until: u64,
}

/// All leases and offers.
#[derive(Debug, Default)]
pub struct LeaseTable {
    by_ip: HashMap<Ipv4Addr, Lease>,
    by_mac: HashMap<Mac, Vec<Ipv4Addr>>,
    offers: HashMap<Ipv4Addr, Offer>,
    /// The one address offered to each MAC (the index of `offers` by MAC).
    offered_to: HashMap<Mac, Ipv4Addr>,
    /// Next address to try in each subnet's pools, by network address.
    cursors: HashMap<Ipv4Addr, u64>,
}

impl LeaseTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the table from stored records.
    pub fn from_leases(leases: impl IntoIterator<Item = Lease>) -> Self {
        let mut t = Self::new();
        for l in leases {
            t.put(l);
        }
        t
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Addresses bound to a client and not expired at `now`.
    pub fn active_count(&self, now: u64) -> usize {
        self.by_ip.values().filter(|l| l.active(now)).count()
    }

    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip)
    }

    pub fn all(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }

    /// Records an address's lease, replacing whatever it held.
    pub fn put(&mut self, lease: Lease) {
        // An address taken back from what held it before: a declined one
        // whose quarantine ended, or another client's expired lease (the
        // allocator gives out nothing else), as Kea counts them.
        if lease.state == LeaseState::Bound
            && let Some(old) = self.by_ip.get(&lease.ip)
        {
            if old.state == LeaseState::Declined {
                crate::stats::reclaimed(true);
            } else if old.mac != lease.mac {
                crate::stats::reclaimed(false);
            }
        }
        if let Some(old) = self.by_ip.get(&lease.ip)
            && old.mac != lease.mac
            && let Some(list) = self.by_mac.get_mut(&old.mac)
        {
            list.retain(|ip| *ip != lease.ip);
        }
        let list = self.by_mac.entry(lease.mac).or_default();
        if !list.contains(&lease.ip) {
            list.push(lease.ip);
        }
        if let Some(o) = self.offers.remove(&lease.ip) {
            self.offered_to.remove(&o.mac);
        }
        self.by_ip.insert(lease.ip, lease);
    }

    /// The MAC's records inside `subnet`, most recently expiring first.
    pub fn leases_of(&self, mac: Mac, subnet: &Subnet) -> Vec<&Lease> {
        let mut v: Vec<&Lease> = self
            .by_mac
            .get(&mac)
            .into_iter()
            .flatten()
            .filter_map(|ip| self.by_ip.get(ip))
            .filter(|l| subnet.net.contains(l.ip))
            .collect();
        v.sort_by_key(|l| std::cmp::Reverse(l.expires));
        v
    }

    /// The address currently offered to `mac` in `subnet`, if the offer stands.
    pub fn offer_of(&self, mac: Mac, subnet: &Subnet, now: u64) -> Option<Ipv4Addr> {
        let ip = *self.offered_to.get(&mac)?;
        let o = self.offers.get(&ip)?;
        (o.mac == mac && o.until > now && subnet.net.contains(ip)).then_some(ip)
    }

    /// Holds `ip` for `mac` until `until`.
    pub fn offer(&mut self, ip: Ipv4Addr, mac: Mac, until: u64) {
        self.drop_offer(mac);
        if let Some(previous) = self.offers.insert(ip, Offer { mac, until }) {
            self.offered_to.remove(&previous.mac);
        }
        self.offered_to.insert(mac, ip);
    }

    pub fn drop_offer(&mut self, mac: Mac) {
        if let Some(ip) = self.offered_to.remove(&mac)
            && self.offers.get(&ip).is_some_and(|o| o.mac == mac)
        {
            self.offers.remove(&ip);
        }
    }

    /// Forgets offers that ran out (called now and then, not per packet).
    pub fn expire_offers(&mut self, now: u64) {
        let offered_to = &mut self.offered_to;
        self.offers.retain(|_, o| {
            let keep = o.until > now;
            if !keep {
                offered_to.remove(&o.mac);
            }
            keep
        });
    }

    /// Whether `mac` may have `ip` now: no other client holds or was offered it,
    /// and it is not quarantined. Reservations are checked by the caller.
    pub fn available_for(&self, ip: Ipv4Addr, mac: Mac, now: u64) -> bool {
        if let Some(l) = self.by_ip.get(&ip) {
            if l.quarantined(now) {
                return false;
            }
            if l.mac != mac && l.active(now) {
                return false;
            }
        }
        if let Some(o) = self.offers.get(&ip)
            && o.mac != mac
            && o.until > now
        {
            return false;
        }
        true
    }

    /// Picks a free pool address for a new client: first one never used (from a
    /// rotating cursor), else the one whose lease ended longest ago.
    pub fn allocate(
        &mut self,
        subnet: &Subnet,
        mac: Mac,
        reserved: &HashSet<Ipv4Addr>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        let total: u64 = subnet.pools.iter().map(|p| p.size()).sum();
        if total == 0 {
            return None;
        }
        let key = subnet.net.network();
        let start = self.cursors.get(&key).copied().unwrap_or(0) % total;
        for step in 0..total {
            let idx = (start + step) % total;
            let ip = nth_pool_address(subnet, idx);
            if self.by_ip.contains_key(&ip) || reserved.contains(&ip) {
                continue;
            }
            if let Some(o) = self.offers.get(&ip)
                && o.until > now
            {
                continue;
            }
            self.cursors.insert(key, idx + 1);
            return Some(ip);
        }
        // Every address has been used once: reuse the longest-expired one.
        let expired = self
            .by_ip
            .values()
            .filter(|l| subnet.in_pool(l.ip) && !reserved.contains(&l.ip))
            .filter(|l| !l.active(now) && !l.quarantined(now))
            .filter(|l| self.available_for(l.ip, mac, now))
            .min_by_key(|l| (l.expires, u32::from(l.ip)))
            .map(|l| l.ip);
        if expired.is_some() {
            return expired;
        }
        // Every address is leased or offered. An offer is not a lease: the
        // oldest offer to another client goes to this one (its client's
        // REQUEST will be refused and it starts over), so a flood of
        // DISCOVERs from made-up MACs cannot hold the pool against a phone.
        self.offers
            .iter()
            .filter(|(ip, o)| o.mac != mac && subnet.in_pool(**ip) && !reserved.contains(ip))
            .filter(|(ip, _)| {
                self.by_ip
                    .get(ip)
                    .is_none_or(|l| !l.active(now) && !l.quarantined(now))
            })
            .min_by_key(|(ip, o)| (o.until, u32::from(**ip)))
            .map(|(ip, _)| *ip)
    }

    /// Whether the table has any record of `mac`: a lease (of any state) or
    /// an offer.
    pub fn knows(&self, mac: Mac) -> bool {
        self.by_mac.get(&mac).is_some_and(|l| !l.is_empty()) || self.offered_to.contains_key(&mac)
    }

    /// Moves every lease's expiry and every offer by `seconds` (the system
    /// clock stepped by that much), so each keeps the time it had left.
    /// Returns the leases to write back.
    pub fn shift(&mut self, seconds: i64) -> Vec<Lease> {
        let by = |t: u64| {
            u64::try_from(i64::try_from(t).unwrap_or(i64::MAX).saturating_add(seconds)).unwrap_or(0)
        };
        for o in self.offers.values_mut() {
            o.until = by(o.until);
        }
        self.by_ip
            .values_mut()
            .map(|l| {
                l.expires = by(l.expires);
                l.clone()
            })
            .collect()
    }

    /// Every record and every live offer (address, MAC, held until), for
    /// the status page.
    pub fn snapshot(&self) -> (Vec<Lease>, Vec<(Ipv4Addr, Mac, u64)>) {
        (
            self.by_ip.values().cloned().collect(),
            self.offers
                .iter()
                .map(|(ip, o)| (*ip, o.mac, o.until))
                .collect(),
        )
    }

    /// Counts of active leases and pool size for a subnet, for logs.
    pub fn usage(&self, subnet: &Subnet, now: u64) -> (usize, u64) {
        let used = self
            .by_ip
            .values()
            .filter(|l| subnet.in_pool(l.ip) && (l.active(now) || l.quarantined(now)))
            .count();
        (used, subnet.pools.iter().map(|p| p.size()).sum())
    }
}

fn nth_pool_address(subnet: &Subnet, mut idx: u64) -> Ipv4Addr {
    for p in &subnet.pools {
        if idx < p.size() {
            // idx < p.size() <= 2^32, so the sum stays within u32.
            return Ipv4Addr::from(u32::from(p.first).wrapping_add(idx as u32));
        }
        idx -= p.size();
    }
    subnet.pools[0].first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn subnet() -> Subnet {
        let c = Config::parse(
            "t",
            "[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.12\"]\n",
        )
        .unwrap();
        c.dhcp.subnets[0].clone()
    }

    fn mac(n: u8) -> Mac {
        Mac([0, 0x90, 0x8f, 0, 0, n])
    }

    fn bound(ip: Ipv4Addr, m: Mac, expires: u64) -> Lease {
        Lease {
            ip,
            mac: m,
            hostname: None,
            vendor_class: None,
            user_class: None,
            interface: "eth0".into(),
            state: LeaseState::Bound,
            expires,
        }
    }

    #[test]
    fn allocates_each_address_once_then_reuses_expired() {
        let s = subnet();
        let mut t = LeaseTable::new();
        let none = HashSet::new();
        let mut got = Vec::new();
        for n in 0..3 {
            let ip = t.allocate(&s, mac(n), &none, 100).unwrap();
            t.put(bound(ip, mac(n), 200 + u64::from(n)));
            got.push(ip);
        }
        got.sort();
        assert_eq!(
            got,
            vec![
                Ipv4Addr::new(10, 0, 0, 10),
                Ipv4Addr::new(10, 0, 0, 11),
                Ipv4Addr::new(10, 0, 0, 12)
            ]
        );
        assert_eq!(t.allocate(&s, mac(9), &none, 150), None, "pool exhausted");
        // At 201 the first lease (expires 200) has ended: it is reused.
        let ip = t.allocate(&s, mac(9), &none, 201).unwrap();
        assert_eq!(t.get(ip).unwrap().mac, mac(0));
        let (before, _) = crate::stats::reclaims();
        t.put(bound(ip, mac(9), 900));
        assert!(
            t.leases_of(mac(0), &s).is_empty(),
            "old owner forgets the address"
        );
        assert!(crate::stats::reclaims().0 > before, "counted as reclaimed");
    }

    #[test]
    fn offers_and_reservations_block_others() {
        let s = subnet();
        let mut t = LeaseTable::new();
        let reserved: HashSet<Ipv4Addr> = [Ipv4Addr::new(10, 0, 0, 10)].into();
        let ip = t.allocate(&s, mac(1), &reserved, 0).unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 0, 0, 11));
        t.offer(ip, mac(1), 30);
        assert!(!t.available_for(ip, mac(2), 10));
        assert!(t.available_for(ip, mac(1), 10));
        assert!(t.available_for(ip, mac(2), 31), "offer lapsed");
        assert_eq!(
            t.allocate(&s, mac(2), &reserved, 10),
            Some(Ipv4Addr::new(10, 0, 0, 12))
        );
    }

    #[test]
    fn declined_is_quarantined() {
        let s = subnet();
        let mut t = LeaseTable::new();
        let mut l = bound(Ipv4Addr::new(10, 0, 0, 10), mac(1), 600);
        l.state = LeaseState::Declined;
        t.put(l);
        assert!(!t.available_for(Ipv4Addr::new(10, 0, 0, 10), mac(1), 100));
        assert!(t.available_for(Ipv4Addr::new(10, 0, 0, 10), mac(2), 601));
        assert_eq!(t.usage(&s, 100), (1, 3));
        let (_, before) = crate::stats::reclaims();
        t.put(bound(Ipv4Addr::new(10, 0, 0, 10), mac(2), 900));
        assert!(
            crate::stats::reclaims().1 > before,
            "a declined address reclaimed"
        );
    }
}
