//! The voice zone in memory and the answer to one question, without I/O.
//!
//! `Zone::answer` decides from the question, the zone's state (hosts, lease
//! names, switchover health) and the appliance's address on the asking
//! interface. The server turns the `Answer` into a DNS message.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_proto::rr::rdata::{A, NS, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::{Dns, SwitchoverMode};
use crate::units::Ipv4Net;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    NxDomain,
    Refused,
}

/// What to send back for one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub rcode: Rcode,
    /// Whether dialtone is authoritative for the name (AA bit).
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Answer {
    fn refused() -> Answer {
        Answer {
            rcode: Rcode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// What a name in the zone holds.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Apex,
    /// The appliance itself (its own name and the names families look up
    /// for it, such as AudioCodes' `ProvisioningServer`).
    Appliance,
    Host(Vec<Ipv4Addr>),
    /// A switchover's provision name: one A per healthy member.
    Provision(usize),
    /// A switchover service: SRV per member on this port.
    Service(usize, u16),
    /// `_ntp._udp`: SRV to the appliance.
    Ntp,
    /// A name that exists only because names below it do (`_udp.lab.voip`).
    Empty,
}

#[derive(Debug, Clone)]
struct Pair {
    /// Member host names (relative) and their addresses.
    members: Vec<(String, Vec<Ipv4Addr>)>,
    mode: SwitchoverMode,
    up: Vec<bool>,
}

#[derive(Debug, Clone)]
pub struct Zone {
    origin: String,
    origin_name: Name,
    ttl: u32,
    self_name: String,
    nodes: HashMap<String, Node>,
    /// Static PTR records.
    ptr: HashMap<Ipv4Addr, String>,
    /// DHCP lease names: relative name -> address and lease end, and back.
    lease_a: HashMap<String, (Ipv4Addr, u64)>,
    lease_ptr: HashMap<Ipv4Addr, String>,
    pairs: Vec<Pair>,
    /// `.` + origin, what names in the zone end with.
    suffix: String,
    /// Names of the reverse zones answered authoritatively (octet
    /// boundaries, most specific first), e.g. `0.250.10.in-addr.arpa`.
    reverse: Vec<String>,
    serial: u32,
    /// Bumped on every change, so cached answers can tell they are stale.
    generation: u64,
}

fn name(s: &str) -> Name {
    // Names here come from the checked configuration or are built from
    // checked labels, so they always parse; root is a harmless fallback.
    Name::from_ascii(s).unwrap_or_else(|_| Name::root())
}

/// The reverse zone (on an octet boundary, /8 at the widest) that holds `net`.
fn reverse_zone(net: &Ipv4Net) -> Ipv4Net {
    let prefix = (net.prefix / 8 * 8).max(8);
    let mask = u32::MAX << (32 - u32::from(prefix));
    Ipv4Net {
        addr: Ipv4Addr::from(u32::from(net.addr) & mask),
        prefix,
    }
}

fn reverse_name(net: &Ipv4Net) -> String {
    let o = net.network().octets();
    let n = usize::from(net.prefix / 8);
    let mut labels: Vec<String> = o[..n].iter().rev().map(u8::to_string).collect();
    labels.push("in-addr.arpa".into());
    labels.join(".")
}

/// The address a name under in-addr.arpa stands for, if it names one host.
fn parse_arpa(q: &str) -> Option<Ipv4Addr> {
    let rest = q.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<&str> = rest.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut o = [0u8; 4];
    for (i, p) in parts.iter().rev().enumerate() {
        o[i] = p.parse().ok()?;
    }
    Some(Ipv4Addr::from(o))
}

impl Zone {
    /// Builds the zone from the `[dns]` section, the DHCP subnets (their
    /// reverse zones) and whether the time service runs (`_ntp._udp`).
    pub fn new(dns: &Dns, subnets: &[Ipv4Net], serve_time: bool) -> Zone {
        let mut nodes: HashMap<String, Node> = HashMap::new();
        let mut ptr = HashMap::new();
        nodes.insert(String::new(), Node::Apex);
        nodes.insert(dns.self_name.clone(), Node::Appliance);
        for name in crate::families::appliance_names() {
            nodes.insert(name, Node::Appliance);
        }
        for h in &dns.hosts {
            if let Node::Host(ips) = nodes
                .entry(h.name.clone())
                .or_insert(Node::Host(Vec::new()))
            {
                ips.push(h.ip);
            }
            ptr.entry(h.ip).or_insert_with(|| h.name.clone());
        }
        let mut pairs = Vec::new();
        for (i, sw) in dns.switchovers.iter().enumerate() {
            let members = sw
                .members
                .iter()
                .map(|m| {
                    let ips = dns
                        .hosts
                        .iter()
                        .filter(|h| &h.name == m)
                        .map(|h| h.ip)
                        .collect();
                    (m.clone(), ips)
                })
                .collect();
            pairs.push(Pair {
                members,
                mode: sw.mode,
                up: vec![true; sw.members.len()],
            });
            if let Some(p) = &sw.provision_name {
                nodes.insert(p.clone(), Node::Provision(i));
            }
            for svc in &sw.services {
                nodes.insert(svc.srv.clone(), Node::Service(i, svc.port));
            }
        }
        if serve_time {
            nodes.insert("_ntp._udp".into(), Node::Ntp);
        }
        // Empty non-terminals: every proper suffix of a name that exists.
        let names: Vec<String> = nodes.keys().cloned().collect();
        for n in names {
            let mut rest = n.as_str();
            while let Some((_, tail)) = rest.split_once('.') {
                nodes.entry(tail.to_string()).or_insert(Node::Empty);
                rest = tail;
            }
        }
        let mut reverse: Vec<Ipv4Net> = subnets.iter().map(reverse_zone).collect();
        for h in &dns.hosts {
            let z = reverse_zone(&Ipv4Net {
                addr: h.ip,
                prefix: 24,
            });
            if !reverse.iter().any(|r| r.contains(h.ip)) {
                reverse.push(z);
            }
        }
        reverse.sort_by_key(|n| std::cmp::Reverse(n.prefix));
        reverse.dedup();
        let reverse: Vec<String> = reverse.iter().map(reverse_name).collect();
        Zone {
            origin: dns.zone.clone(),
            suffix: format!(".{}", dns.zone),
            origin_name: name(&format!("{}.", dns.zone)),
            ttl: dns.ttl,
            self_name: dns.self_name.clone(),
            nodes,
            ptr,
            lease_a: HashMap::new(),
            lease_ptr: HashMap::new(),
            pairs,
            reverse,
            generation: 0,
            serial: u32::try_from(crate::now() % u64::from(u32::MAX)).unwrap_or(1),
        }
    }

    /// The zone of a reloaded `[dns]` section, keeping what the running
    /// server learnt: the lease host names, and the health of each member
    /// still in the same pair (matched by its host name). Cached answers
    /// are dropped (the generation moves) and the SOA serial goes up.
    pub fn reconfigure(&mut self, dns: &Dns, subnets: &[Ipv4Net], serve_time: bool) {
        let mut next = Zone::new(dns, subnets, serve_time);
        for (pair, old) in next.pairs.iter_mut().zip(&self.pairs) {
            for (i, (name, _)) in pair.members.iter().enumerate() {
                if let Some(j) = old.members.iter().position(|(n, _)| n == name) {
                    pair.up[i] = old.up[j];
                }
            }
        }
        next.lease_a = std::mem::take(&mut self.lease_a);
        next.lease_ptr = std::mem::take(&mut self.lease_ptr);
        next.generation = self.generation + 1;
        next.serial = self.serial.wrapping_add(1);
        *self = next;
    }

    /// Records a member's health; returns true when it changed.
    pub fn set_health(&mut self, pair: usize, member: usize, up: bool) -> bool {
        let Some(slot) = self.pairs.get_mut(pair).and_then(|p| p.up.get_mut(member)) else {
            return false;
        };
        let changed = *slot != up;
        *slot = up;
        if changed {
            self.serial = self.serial.wrapping_add(1);
            self.generation += 1;
        }
        changed
    }

    /// Each switchover's members (relative name, addresses, up), in the
    /// order of `[[dns.switchover]]`.
    pub fn members(&self) -> Vec<Vec<(String, Vec<Ipv4Addr>, bool)>> {
        self.pairs
            .iter()
            .map(|p| {
                p.members
                    .iter()
                    .zip(&p.up)
                    .map(|((n, a), up)| (n.clone(), a.clone(), *up))
                    .collect()
            })
            .collect()
    }

    /// Changes with every update of health or lease names.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Gives a DHCP client's host name an A and a PTR record; `None` removes
    /// the records of `ip`. Names that belong to static records are left
    /// alone, like dnsmasq (configured names win over lease names).
    pub fn set_lease_name(&mut self, ip: Ipv4Addr, hostname: Option<&str>, expires: u64) {
        self.generation += 1;
        if let Some(old) = self.lease_ptr.remove(&ip)
            && self.lease_a.get(&old).is_some_and(|(a, _)| *a == ip)
        {
            self.lease_a.remove(&old);
        }
        let Some(h) = hostname else { return };
        let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        let h = h
            .strip_suffix(self.suffix.as_str())
            .unwrap_or(&h)
            .to_string();
        let valid = !h.is_empty()
            && !h.contains('.')
            && h.len() <= 63
            && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid || self.nodes.contains_key(&h) {
            return;
        }
        // A name moves with its newest lease.
        if let Some((prev, _)) = self.lease_a.insert(h.clone(), (ip, expires))
            && prev != ip
        {
            self.lease_ptr.remove(&prev);
        }
        self.lease_ptr.insert(ip, h);
    }

    fn fqdn(&self, rel: &str) -> Name {
        if rel.is_empty() {
            self.origin_name.clone()
        } else {
            name(&format!("{rel}.{}.", self.origin))
        }
    }

    fn soa(&self, apex: Name) -> Record {
        let mname = self.fqdn(&self.self_name);
        let rname = name(&format!("hostmaster.{}.", self.origin));
        Record::from_rdata(
            apex,
            self.ttl,
            RData::SOA(SOA::new(
                mname,
                rname,
                self.serial,
                3600,
                600,
                86400,
                self.ttl,
            )),
        )
    }

    fn a(&self, owner: &Name, ip: Ipv4Addr) -> Record {
        Record::from_rdata(owner.clone(), self.ttl, RData::A(A(ip)))
    }

    /// Healthy members of a pair, or all of them when none is healthy (never
    /// an empty answer).
    fn healthy(&self, pair: &Pair) -> Vec<usize> {
        let up: Vec<usize> = (0..pair.members.len()).filter(|i| pair.up[*i]).collect();
        if up.is_empty() {
            (0..pair.members.len()).collect()
        } else {
            up
        }
    }

    fn srv_records(&self, owner: &Name, pair: &Pair, port: u16) -> (Vec<Record>, Vec<Record>) {
        let healthy = self.healthy(pair);
        let order: Vec<usize> = healthy
            .iter()
            .copied()
            .chain((0..pair.members.len()).filter(|i| !healthy.contains(i)))
            .collect();
        let mut answers = Vec::new();
        let mut extra = Vec::new();
        for (pos, i) in order.iter().enumerate() {
            let (member, ips) = &pair.members[*i];
            let priority = match pair.mode {
                SwitchoverMode::Equal if healthy.contains(i) => 0,
                SwitchoverMode::Equal => 10,
                SwitchoverMode::Ordered => u16::try_from(pos + 1)
                    .unwrap_or(u16::MAX)
                    .saturating_mul(10),
            };
            let target = self.fqdn(member);
            answers.push(Record::from_rdata(
                owner.clone(),
                self.ttl,
                RData::SRV(SRV::new(priority, 0, port, target.clone())),
            ));
            for ip in ips {
                extra.push(self.a(&target, *ip));
            }
        }
        (answers, extra)
    }

    /// The lease name `rel` if its lease is still running at `now`.
    fn lease_name(&self, rel: &str, now: u64) -> Option<Ipv4Addr> {
        self.lease_a
            .get(rel)
            .filter(|(_, expires)| *expires > now)
            .map(|(ip, _)| *ip)
    }

    /// The answer to `qname`/`qtype` at `now` (unix seconds); `appliance` is
    /// dialtone's address on the interface the question came in on.
    pub fn answer(
        &self,
        qname: &Name,
        qtype: RecordType,
        appliance: Option<Ipv4Addr>,
        now: u64,
    ) -> Answer {
        let lower = qname.to_ascii().to_ascii_lowercase();
        let q = lower.trim_end_matches('.');
        if q.ends_with(".in-addr.arpa") || q == "in-addr.arpa" {
            return self.answer_reverse(qname, q, qtype, now);
        }
        let rel: &str = if q == self.origin {
            ""
        } else if let Some(r) = q.strip_suffix(self.suffix.as_str()) {
            r
        } else if !q.contains('.') && !q.is_empty() {
            // A bare name (no domain): the appliance's names, hosts and
            // lease names answer as if the zone were appended, like a
            // dnsmasq with expand-hosts. Anything else is not ours.
            if !self.nodes.contains_key(q) && self.lease_name(q, now).is_none()
                || q.starts_with('_')
            {
                return Answer::refused();
            }
            q
        } else {
            return Answer::refused();
        };
        let owner = qname.clone();
        let mut out = Answer {
            rcode: Rcode::NoError,
            authoritative: true,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        };
        let wants = |t: RecordType| qtype == t || qtype == RecordType::ANY;
        match self.nodes.get(rel) {
            Some(Node::Apex) => {
                if wants(RecordType::SOA) {
                    out.answers.push(self.soa(owner.clone()));
                }
                if wants(RecordType::NS) {
                    let ns = self.fqdn(&self.self_name);
                    out.answers.push(Record::from_rdata(
                        owner.clone(),
                        self.ttl,
                        RData::NS(NS(ns.clone())),
                    ));
                    if let Some(ip) = appliance {
                        out.additionals.push(self.a(&ns, ip));
                    }
                }
            }
            Some(Node::Appliance) => {
                if wants(RecordType::A)
                    && let Some(ip) = appliance
                {
                    out.answers.push(self.a(&owner, ip));
                }
            }
            Some(Node::Host(ips)) => {
                if wants(RecordType::A) {
                    out.answers.extend(ips.iter().map(|ip| self.a(&owner, *ip)));
                }
            }
            Some(Node::Provision(i)) => {
                if wants(RecordType::A)
                    && let Some(pair) = self.pairs.get(*i)
                {
                    for m in self.healthy(pair) {
                        for ip in &pair.members[m].1 {
                            out.answers.push(self.a(&owner, *ip));
                        }
                    }
                }
            }
            Some(Node::Service(i, port)) => {
                if wants(RecordType::SRV)
                    && let Some(pair) = self.pairs.get(*i)
                {
                    let (a, extra) = self.srv_records(&owner, pair, *port);
                    out.answers = a;
                    out.additionals = extra;
                }
            }
            Some(Node::Ntp) => {
                if wants(RecordType::SRV) {
                    let target = self.fqdn(&self.self_name);
                    out.answers.push(Record::from_rdata(
                        owner.clone(),
                        self.ttl,
                        RData::SRV(SRV::new(0, 0, 123, target.clone())),
                    ));
                    if let Some(ip) = appliance {
                        out.additionals.push(self.a(&target, ip));
                    }
                }
            }
            Some(Node::Empty) => {}
            None => match self.lease_name(rel, now) {
                Some(ip) => {
                    if wants(RecordType::A) {
                        out.answers.push(self.a(&owner, ip));
                    }
                }
                None => out.rcode = Rcode::NxDomain,
            },
        }
        // ANY gets one RRset, not everything the name has (RFC 8482): the
        // query is a favourite of amplification, and no phone needs it.
        if qtype == RecordType::ANY
            && let Some(first) = out.answers.first().map(Record::record_type)
            && out.answers.iter().any(|r| r.record_type() != first)
        {
            out.answers.retain(|r| r.record_type() == first);
            out.additionals.clear();
        }
        if out.answers.is_empty() {
            out.authority.push(self.soa(self.origin_name.clone()));
        }
        out
    }

    fn answer_reverse(&self, qname: &Name, q: &str, qtype: RecordType, now: u64) -> Answer {
        let Some(zone) = self.reverse.iter().find(|zn| {
            q == zn.as_str()
                || q.strip_suffix(zn.as_str())
                    .is_some_and(|p| p.ends_with('.'))
        }) else {
            return Answer::refused();
        };
        let apex = name(&format!("{zone}."));
        let mut out = Answer {
            rcode: Rcode::NoError,
            authoritative: true,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        };
        let target = parse_arpa(q).and_then(|ip| {
            self.ptr
                .get(&ip)
                .or_else(|| {
                    self.lease_ptr
                        .get(&ip)
                        .filter(|n| self.lease_name(n, now) == Some(ip))
                })
                .map(|n| self.fqdn(n))
        });
        let is_apex = q == zone.as_str();
        match target {
            Some(t) => {
                if qtype == RecordType::PTR || qtype == RecordType::ANY {
                    out.answers.push(Record::from_rdata(
                        qname.clone(),
                        self.ttl,
                        RData::PTR(PTR(t)),
                    ));
                }
            }
            None if is_apex => {
                if qtype == RecordType::SOA || qtype == RecordType::ANY {
                    out.answers.push(self.soa(apex.clone()));
                }
            }
            None => {
                // Inside a reverse zone: a name that is a prefix of host
                // addresses exists (empty); a host address without a record
                // does not.
                let exists = parse_arpa(q).is_none() && q.ends_with(zone.as_str());
                if !exists {
                    out.rcode = Rcode::NxDomain;
                }
            }
        }
        if out.answers.is_empty() {
            out.authority.push(self.soa(apex));
        }
        out
    }
}

#[cfg(test)]
mod tests;
