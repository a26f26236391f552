//! The DHCP exchange logic: from a request, the interface it came in on and the
//! lease table, decide the reply, where it goes, and which lease records must be
//! on disk before it leaves. No sockets, no clock, no disk: the server around it
//! does those, which keeps every rule here testable byte for byte.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::classes;
use super::flood;
use super::options::{self as opt, OptionValue, RenderCtx, Template};
use super::packet::{self, Encoded, ReplyHeader, Request, encode_reply};
use crate::config::{Config, Host, Subnet, hosts_by_mac, reserved_ips};
use crate::leases::{Lease, LeaseState, LeaseTable};
use crate::units::{Ipv4Net, Mac};

/// The interface a request arrived on.
#[derive(Debug, Clone)]
pub struct Ingress {
    pub interface: String,
    /// The interface's IPv4 addresses.
    pub addrs: Vec<Ipv4Net>,
}

/// Where a reply goes (RFC 2131 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To the relay agent at giaddr, port 67.
    Relay(Ipv4Addr),
    /// To an address the client already has, port 68.
    Unicast(Ipv4Addr),
    /// To 255.255.255.255 port 68 on the ingress interface.
    Broadcast,
    /// To the address just assigned, at the client's hardware address (the
    /// server adds an ARP entry first, or broadcasts when it cannot).
    Hardware { ip: Ipv4Addr, mac: Mac },
}

#[derive(Debug)]
pub struct Reply {
    pub msg_type: u8,
    pub bytes: Vec<u8>,
    pub dest: Destination,
}

/// How notable an exchange is, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
}

/// How many addresses one client can hold in quarantine (declined) at once.
pub const DECLINES_PER_CLIENT: usize = 4;

/// What happened in one exchange: one structured log event.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: &'static str,
    pub mac: Mac,
    pub xid: u32,
    pub interface: String,
    pub vendor_class: Option<String>,
    pub user_class: Option<String>,
    pub classes: Vec<String>,
    pub reply: Option<&'static str>,
    pub ip: Option<Ipv4Addr>,
    pub sent: Vec<u8>,
    pub dropped: Vec<u8>,
    pub note: Option<String>,
    pub level: Level,
}

#[derive(Debug)]
pub struct Outcome {
    pub reply: Option<Reply>,
    /// Records to commit before the reply is sent.
    pub persist: Vec<Lease>,
    pub exchange: Exchange,
}

/// The DHCP server's state: configuration and lease table.
pub struct Engine {
    config: Arc<Config>,
    pub leases: LeaseTable,
    hosts: HashMap<Mac, usize>,
    reserved: HashSet<Ipv4Addr>,
    /// MACs of `[[dhcp.host]]` entries and inventory phones: never new.
    known: HashSet<Mac>,
    admission: flood::Admission,
    /// Warnings of dropped new clients and of exhausted pools.
    over_cap: flood::Quiet,
    exhausted: flood::Quiet,
}

/// MACs the configuration names: hosts and inventory phones.
fn known_macs(config: &Config) -> HashSet<Mac> {
    config
        .dhcp
        .hosts
        .iter()
        .map(|h| h.mac)
        .chain(config.phones.phones.iter().filter_map(|p| p.mac))
        .collect()
}

/// Per-request facts the reply is built from.
struct Client<'a> {
    req: &'a Request,
    subnet: &'a Subnet,
    server_id: Ipv4Addr,
    host: Option<&'a Host>,
    classes: Vec<&'a crate::config::Class>,
}

impl Engine {
    pub fn new(config: Arc<Config>, leases: LeaseTable) -> Engine {
        let hosts = hosts_by_mac(&config.dhcp.hosts);
        let reserved = reserved_ips(&config.dhcp.hosts);
        Engine {
            known: known_macs(&config),
            config,
            leases,
            hosts,
            reserved,
            admission: flood::Admission::default(),
            over_cap: flood::Quiet::default(),
            exhausted: flood::Quiet::default(),
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Answers from now on with `config` (a reload). The lease table, with
    /// its offers in flight, stays as it is: an offered address is still
    /// held for its client, and a lease outside the new pools is kept until
    /// it expires, as Kea and dnsmasq do.
    pub fn set_config(&mut self, config: Arc<Config>) {
        self.hosts = hosts_by_mac(&config.dhcp.hosts);
        self.reserved = reserved_ips(&config.dhcp.hosts);
        self.known = known_macs(&config);
        self.config = config;
    }

    /// The system clock stepped by `seconds`: every lease and offer moves
    /// with it (see `clock`), and the flood windows start afresh. Returns
    /// the leases to write back.
    pub fn clock_stepped(&mut self, seconds: i64) -> Vec<Lease> {
        self.admission = flood::Admission::default();
        self.over_cap = flood::Quiet::default();
        self.exhausted = flood::Quiet::default();
        self.leases.shift(seconds)
    }

    /// Decides the answer to one request.
    pub fn handle(&mut self, req: &Request, ingress: &Ingress, now: u64) -> Outcome {
        let config = Arc::clone(&self.config);
        let mut ex = Exchange {
            request: packet::message_type_name(req.msg_type),
            mac: req.mac,
            xid: req.xid,
            interface: ingress.interface.clone(),
            vendor_class: req.vendor_class.clone(),
            user_class: req.user_class().map(str::to_string),
            classes: Vec::new(),
            reply: None,
            ip: None,
            sent: Vec::new(),
            dropped: Vec::new(),
            note: None,
            level: Level::Info,
        };
        let Some((subnet, server_id)) = select_subnet(&config, req, ingress) else {
            ex.level = Level::Debug;
            ex.note = Some(if req.giaddr.is_unspecified() {
                format!("no [[dhcp.subnet]] for interface {}", ingress.interface)
            } else {
                format!("no [[dhcp.subnet]] contains relay address {}", req.giaddr)
            });
            return Outcome {
                reply: None,
                persist: Vec::new(),
                exchange: ex,
            };
        };
        let host = self.hosts.get(&req.mac).map(|&i| &config.dhcp.hosts[i]);
        let client = Client {
            req,
            subnet,
            server_id,
            host,
            classes: classes::select(&config.dhcp.classes, req),
        };
        ex.classes = client.classes.iter().map(|c| c.name.clone()).collect();
        let mut out = Outcome {
            reply: None,
            persist: Vec::new(),
            exchange: ex,
        };
        if matches!(req.msg_type, packet::DISCOVER | packet::REQUEST)
            && !self.known.contains(&req.mac)
            && !self.leases.knows(req.mac)
            && !self.admission.admit(
                subnet.net.network(),
                config.dhcp.new_clients_per_second,
                config.dhcp.new_clients_burst,
                now,
            )
        {
            // A flood of new clients (random MACs) is bounded per subnet;
            // phones with a lease, an offer, a reservation or an inventory
            // entry are never held back by it.
            out.exchange.level = Level::Debug;
            if let Some(quiet) = self.over_cap.occur(subnet.net.network(), now) {
                out.exchange.level = Level::Warn;
                out.exchange.note = Some(format!(
                    "more than {} new clients at once, then {} a second, in {}: dropping the rest (a flood?); {quiet} dropped since the last warning",
                    config
                        .dhcp
                        .new_clients_burst
                        .max(config.dhcp.new_clients_per_second),
                    config.dhcp.new_clients_per_second,
                    subnet.net
                ));
            } else {
                out.exchange.note = Some("new client over new_clients_per_second".into());
            }
            return out;
        }
        match req.msg_type {
            packet::DISCOVER => self.discover(&client, now, &mut out),
            packet::REQUEST => self.request(&client, ingress, now, &mut out),
            packet::DECLINE => self.decline(&client, ingress, now, &mut out),
            packet::RELEASE => self.release(&client, now, &mut out),
            packet::INFORM => self.inform(&client, &mut out),
            packet::BOOTP => self.bootp(&client, &mut out),
            _ => {}
        }
        out
    }

    /// BOOTP (no option 53) is answered for reserved clients only, like
    /// dnsmasq without `bootp-dynamic`: the reserved address, options 66/67
    /// as siaddr and file, and the configured options in the vendor area. No
    /// lease is recorded; the reservation is the binding.
    fn bootp(&mut self, c: &Client<'_>, out: &mut Outcome) {
        match self.reservation(c) {
            Some(ip) => {
                out.exchange.ip = Some(ip);
                out.reply = Some(self.build(c, packet::BOOTP, ip, &mut out.exchange));
            }
            None => {
                out.exchange.level = Level::Debug;
                out.exchange.note = Some(
                    "BOOTP is answered only for [[dhcp.host]] reservations with an address".into(),
                );
            }
        }
    }

    /// The address reserved for this client in this subnet, if any.
    fn reservation(&self, c: &Client<'_>) -> Option<Ipv4Addr> {
        c.host
            .and_then(|h| h.ip)
            .filter(|ip| c.subnet.net.contains(*ip))
    }

    /// Whether the client may be given `ip` in its subnet now.
    fn allowed(&self, c: &Client<'_>, ip: Ipv4Addr, now: u64) -> bool {
        if !c.subnet.net.contains(ip) || !self.leases.available_for(ip, c.req.mac, now) {
            return false;
        }
        match self.reservation(c) {
            Some(r) => r == ip,
            None => c.subnet.in_pool(ip) && !self.reserved.contains(&ip),
        }
    }

    fn choose_address(&mut self, c: &Client<'_>, now: u64) -> Option<Ipv4Addr> {
        let mac = c.req.mac;
        if let Some(r) = self.reservation(c) {
            return self.leases.available_for(r, mac, now).then_some(r);
        }
        if let Some(ip) = self.leases.offer_of(mac, c.subnet, now)
            && self.allowed(c, ip, now)
        {
            return Some(ip);
        }
        let known: Vec<Ipv4Addr> = self
            .leases
            .leases_of(mac, c.subnet)
            .iter()
            .map(|l| l.ip)
            .collect();
        if let Some(ip) = known.into_iter().find(|ip| self.allowed(c, *ip, now)) {
            return Some(ip);
        }
        if let Some(ip) = c.req.option_ip(opt::REQUESTED_IP)
            && self.allowed(c, ip, now)
        {
            return Some(ip);
        }
        self.leases.allocate(c.subnet, mac, &self.reserved, now)
    }

    fn discover(&mut self, c: &Client<'_>, now: u64, out: &mut Outcome) {
        match self.choose_address(c, now) {
            Some(ip) => {
                let until = now + u64::from(self.config.dhcp.offer_time);
                self.leases.offer(ip, c.req.mac, until);
                out.reply = Some(self.build(c, packet::OFFER, ip, &mut out.exchange));
                out.exchange.ip = Some(ip);
            }
            None => {
                let (used, size) = self.leases.usage(c.subnet, now);
                out.exchange.level = Level::Warn;
                out.exchange.note = Some(match self.reservation(c) {
                    Some(r) => format!("reserved address {r} is held by another client"),
                    None => match self.exhausted.occur(c.subnet.net.network(), now) {
                        // Said once a minute, with the count in between.
                        Some(quiet) => format!(
                            "pool exhausted in {}: {used} of {size} addresses leased or quarantined; {quiet} more clients found it exhausted since the last warning",
                            c.subnet.net
                        ),
                        None => {
                            out.exchange.level = Level::Debug;
                            format!("pool exhausted in {}", c.subnet.net)
                        }
                    },
                });
            }
        }
    }

    fn request(&mut self, c: &Client<'_>, ingress: &Ingress, now: u64, out: &mut Outcome) {
        let req = c.req;
        let server_id = req.option_ip(opt::SERVER_ID);
        let requested = req.option_ip(opt::REQUESTED_IP);
        let (ip, state) = match (server_id, requested) {
            (Some(sid), _) => {
                if !is_ours(sid, ingress, c.server_id) {
                    self.leases.drop_offer(req.mac);
                    out.exchange.level = Level::Debug;
                    out.exchange.note = Some(format!("client chose server {sid}"));
                    return;
                }
                match requested.or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr)) {
                    Some(ip) => (ip, "selecting"),
                    None => {
                        out.exchange.level = Level::Debug;
                        out.exchange.note = Some("REQUEST without an address".into());
                        return;
                    }
                }
            }
            (None, Some(ip)) if req.ciaddr.is_unspecified() => (ip, "init-reboot"),
            (None, _) if !req.ciaddr.is_unspecified() => (req.ciaddr, "renewing"),
            (None, _) => {
                out.exchange.level = Level::Debug;
                out.exchange.note = Some("REQUEST without an address".into());
                return;
            }
        };
        out.exchange.ip = Some(ip);
        if self.allowed(c, ip, now) {
            let lease_time = self.lease_time(c);
            let lease = Lease {
                ip,
                mac: req.mac,
                hostname: req
                    .hostname()
                    .or_else(|| c.host.and_then(|h| h.hostname.clone())),
                vendor_class: req.vendor_class.clone(),
                user_class: req.user_class().map(str::to_string),
                interface: ingress.interface.clone(),
                state: LeaseState::Bound,
                expires: now + u64::from(lease_time),
            };
            self.leases.drop_offer(req.mac);
            self.leases.put(lease.clone());
            out.persist.push(lease);
            out.reply = Some(self.build(c, packet::ACK, ip, &mut out.exchange));
            out.exchange.note = Some(state.to_string());
            return;
        }
        // Not this client's to have. Known-bad requests are refused; an address
        // this server knows nothing about is refused only when authoritative.
        let ours =
            c.subnet.in_pool(ip) || self.reserved.contains(&ip) || self.leases.get(ip).is_some();
        if !c.subnet.net.contains(ip) || ours || self.config.dhcp.authoritative {
            let why = if !c.subnet.net.contains(ip) {
                format!("{ip} is not in {} ({state})", c.subnet.net)
            } else if let Some(r) = self.reservation(c).filter(|r| *r != ip) {
                format!("{ip} requested, {r} is reserved for this client ({state})")
            } else if !c.subnet.in_pool(ip) && self.reservation(c).is_none() {
                format!("{ip} is outside the pool ({state})")
            } else {
                format!("{ip} belongs to another client ({state})")
            };
            out.reply = Some(self.nak(c, &why, &mut out.exchange));
            out.exchange.note = Some(why);
        } else {
            out.exchange.level = Level::Debug;
            out.exchange.note = Some(format!("{ip} unknown, not authoritative ({state})"));
        }
    }

    fn decline(&mut self, c: &Client<'_>, ingress: &Ingress, now: u64, out: &mut Outcome) {
        let req = c.req;
        if let Some(sid) = req.option_ip(opt::SERVER_ID)
            && !is_ours(sid, ingress, c.server_id)
        {
            out.exchange.level = Level::Debug;
            out.exchange.note = Some(format!("DECLINE for server {sid}"));
            return;
        }
        let Some(ip) = req.option_ip(opt::REQUESTED_IP) else {
            out.exchange.level = Level::Debug;
            out.exchange.note = Some("DECLINE without option 50".into());
            return;
        };
        out.exchange.ip = Some(ip);
        let held = self.leases.get(ip).is_some_and(|l| l.mac == req.mac);
        if !held || !c.subnet.net.contains(ip) {
            out.exchange.level = Level::Debug;
            out.exchange.note = Some(format!("DECLINE of {ip}, which this client does not hold"));
            return;
        }
        // One client cannot quarantine more than a few addresses at once:
        // a DECLINE storm (a broken phone, or a script taking leases and
        // declining them) would otherwise empty the pool for decline_time.
        // Past the bound, the address goes back to the pool instead.
        let quarantined = self
            .leases
            .leases_of(req.mac, c.subnet)
            .iter()
            .filter(|l| l.quarantined(now))
            .count();
        let over = quarantined >= DECLINES_PER_CLIENT;
        let lease = Lease {
            ip,
            mac: req.mac,
            hostname: None,
            vendor_class: req.vendor_class.clone(),
            user_class: req.user_class().map(str::to_string),
            interface: ingress.interface.clone(),
            state: if over {
                LeaseState::Released
            } else {
                LeaseState::Declined
            },
            expires: if over {
                now
            } else {
                now + u64::from(self.config.dhcp.decline_time)
            },
        };
        self.leases.drop_offer(req.mac);
        self.leases.put(lease.clone());
        out.persist.push(lease);
        out.exchange.level = Level::Warn;
        out.exchange.note = Some(if over {
            format!(
                "{ip} declined, but this client already holds {quarantined} addresses in quarantine: {ip} goes back to the pool instead (a DECLINE storm?)"
            )
        } else {
            format!(
                "{ip} is in use by another device; quarantined for {}s",
                self.config.dhcp.decline_time
            )
        });
    }

    fn release(&mut self, c: &Client<'_>, now: u64, out: &mut Outcome) {
        let req = c.req;
        let ip = req.ciaddr;
        out.exchange.ip = Some(ip);
        match self.leases.get(ip) {
            Some(l) if l.mac == req.mac && l.state == LeaseState::Bound => {
                let mut l = l.clone();
                l.state = LeaseState::Released;
                l.expires = now;
                self.leases.put(l.clone());
                out.persist.push(l);
                out.exchange.note = Some("released".into());
            }
            _ => {
                out.exchange.level = Level::Debug;
                out.exchange.note =
                    Some(format!("RELEASE of {ip}, which this client does not hold"));
            }
        }
    }

    fn inform(&mut self, c: &Client<'_>, out: &mut Outcome) {
        out.exchange.ip = (!c.req.ciaddr.is_unspecified()).then_some(c.req.ciaddr);
        out.reply = Some(self.build(c, packet::ACK, Ipv4Addr::UNSPECIFIED, &mut out.exchange));
    }

    fn lease_time(&self, c: &Client<'_>) -> u32 {
        c.subnet.lease_time.unwrap_or(self.config.dhcp.lease_time)
    }

    /// All options that apply to this client: the profiles' defaults, then
    /// global, subnet, classes in order, then the host's own.
    fn merged<'s>(
        &'s self,
        c: &Client<'s>,
        hostname: &'s Option<OptionValue>,
    ) -> (BTreeMap<u8, &'s OptionValue>, Vec<u8>) {
        let mut set: BTreeMap<u8, &OptionValue> = BTreeMap::new();
        for class in &c.classes {
            set.extend(class.defaults.iter().map(|(k, v)| (*k, v)));
        }
        set.extend(self.config.dhcp.options.iter().map(|(k, v)| (*k, v)));
        set.extend(c.subnet.options.iter().map(|(k, v)| (*k, v)));
        let mut force = Vec::new();
        for class in &c.classes {
            set.extend(class.options.iter().map(|(k, v)| (*k, v)));
            force.extend(class.force.iter().copied());
        }
        if let Some(name) = hostname {
            set.insert(opt::HOSTNAME, name);
        }
        if let Some(h) = c.host {
            set.extend(h.options.iter().map(|(k, v)| (*k, v)));
        }
        (set, force)
    }

    fn build(&self, c: &Client<'_>, msg_type: u8, yiaddr: Ipv4Addr, ex: &mut Exchange) -> Reply {
        let req = c.req;
        let hostname = c
            .host
            .and_then(|h| h.hostname.clone())
            .map(|name| OptionValue::Text(Template(vec![opt::Piece::Literal(name)])));
        let (set, force) = self.merged(c, &hostname);
        let ctx = RenderCtx {
            server: c.server_id,
            mac: req.mac,
            vendor_class: req.vendor_class.as_deref(),
            user_class: req.user_class(),
            images: &self.config.dhcp.images,
            http_port: self.config.http_port(),
        };
        let bootp = msg_type == packet::BOOTP;
        let mut mandatory: Vec<(u8, Vec<u8>)> = if bootp {
            Vec::new()
        } else {
            vec![
                (opt::MESSAGE_TYPE, vec![msg_type]),
                (opt::SERVER_ID, c.server_id.octets().to_vec()),
            ]
        };
        if !bootp && req.msg_type != packet::INFORM {
            let t = self.lease_time(c);
            mandatory.push((opt::LEASE_TIME, t.to_be_bytes().to_vec()));
            mandatory.push((opt::RENEWAL_TIME, (t / 2).to_be_bytes().to_vec()));
            mandatory.push((opt::REBINDING_TIME, (t / 8 * 7).to_be_bytes().to_vec()));
        }
        let mut missing = Vec::new();
        for code in [opt::SUBNET_MASK, opt::ROUTER] {
            if let Some(v) = set.get(&code).and_then(|v| v.render(&ctx)) {
                mandatory.push((code, v));
            }
        }
        let mut optional: Vec<(u8, Vec<u8>)> = Vec::new();
        // A BOOTP client has no option 55: it gets every configured option.
        let mut wanted: Vec<u8> = if bootp {
            set.keys().copied().collect()
        } else {
            req.param_list.clone()
        };
        // The last class that limits what is sent decides (later classes
        // override earlier ones).
        if let Some(only) = c.classes.iter().rev().find_map(|k| k.only.as_ref()) {
            wanted.retain(|code| only.contains(code));
        }
        for &code in wanted.iter().chain(force.iter()) {
            if mandatory
                .iter()
                .chain(optional.iter())
                .any(|(c, _)| *c == code)
            {
                continue;
            }
            if let Some(v) = set.get(&code) {
                match v.render(&ctx) {
                    Some(bytes) => optional.push((code, bytes)),
                    None => missing.push(code),
                }
            }
        }
        let (file, siaddr) = self.boot_header(c, &set, &ctx);
        let mut last = Vec::new();
        if let Some(id) = req.option(opt::CLIENT_ID) {
            mandatory.push((opt::CLIENT_ID, id.to_vec()));
        }
        if let Some(info) = req.option(opt::RELAY_AGENT_INFO)
            && !req.giaddr.is_unspecified()
        {
            last.push((opt::RELAY_AGENT_INFO, info.to_vec()));
        }
        let hdr = ReplyHeader {
            xid: req.xid,
            flags: req.flags,
            ciaddr: if msg_type == packet::ACK {
                req.ciaddr
            } else {
                Ipv4Addr::UNSPECIFIED
            },
            yiaddr,
            siaddr,
            giaddr: req.giaddr,
            chaddr: req.chaddr,
            file,
        };
        let Encoded {
            bytes,
            sent,
            dropped,
            ..
        } = encode_reply(&hdr, &mandatory, &optional, &last, req.max_reply());
        ex.reply = Some(packet::message_type_name(msg_type));
        ex.sent = sent;
        ex.dropped = dropped;
        if !missing.is_empty() {
            ex.note = Some(format!(
                "options {missing:?} left out: a placeholder has no value for this client"
            ));
        }
        if !ex.dropped.is_empty() {
            ex.level = Level::Warn;
        }
        Reply {
            msg_type,
            bytes,
            dest: destination(req, msg_type, yiaddr),
        }
    }

    /// The BOOTP header's `file` and `siaddr`, which loaders that read only
    /// the header (PXE ROMs, embedded bootloaders) fetch from whether or not
    /// they asked for options 66 and 67. `file` is the configured boot file
    /// (option 67). `siaddr` is the configured `next_server` (host, last
    /// class, subnet, global), else option 66's value when it is an address,
    /// else this appliance's address when it serves TFTP and a boot file goes
    /// out, else 0.0.0.0.
    fn boot_header(
        &self,
        c: &Client<'_>,
        set: &BTreeMap<u8, &OptionValue>,
        ctx: &RenderCtx<'_>,
    ) -> (Option<Vec<u8>>, Ipv4Addr) {
        let file = set
            .get(&opt::BOOTFILE)
            .and_then(|v| v.render(ctx))
            .filter(|d| !d.is_empty() && d.len() < 128);
        let configured = c
            .host
            .and_then(|h| h.next_server)
            .or_else(|| c.classes.iter().rev().find_map(|k| k.next_server))
            .or(c.subnet.next_server)
            .or(self.config.dhcp.next_server)
            .map(|a| a.resolve(c.server_id));
        let tftp_option = || {
            let d = set.get(&opt::TFTP_SERVER)?.render(ctx)?;
            std::str::from_utf8(&d)
                .ok()?
                .trim()
                .parse::<Ipv4Addr>()
                .ok()
        };
        let serves_tftp = self.config.files.as_ref().is_some_and(|f| f.tftp);
        let siaddr = configured
            .or_else(tftp_option)
            .or_else(|| (file.is_some() && serves_tftp).then_some(c.server_id))
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        (file, siaddr)
    }

    fn nak(&self, c: &Client<'_>, why: &str, ex: &mut Exchange) -> Reply {
        let req = c.req;
        let mut mandatory = vec![
            (opt::MESSAGE_TYPE, vec![packet::NAK]),
            (opt::SERVER_ID, c.server_id.octets().to_vec()),
        ];
        // The reason is for people reading captures: it gives way when the
        // client's size leaves no room for it (a long client identifier).
        let message = [(
            opt::MESSAGE,
            why.as_bytes()
                .iter()
                .take(200)
                .copied()
                .collect::<Vec<u8>>(),
        )];
        if let Some(id) = req.option(opt::CLIENT_ID) {
            mandatory.push((opt::CLIENT_ID, id.to_vec()));
        }
        let mut last = Vec::new();
        if let Some(info) = req.option(opt::RELAY_AGENT_INFO)
            && !req.giaddr.is_unspecified()
        {
            last.push((opt::RELAY_AGENT_INFO, info.to_vec()));
        }
        let mut flags = req.flags;
        if !req.giaddr.is_unspecified() {
            // The relay must broadcast a NAK to the client (RFC 2131 4.3.2).
            flags |= packet::BROADCAST_FLAG;
        }
        let hdr = ReplyHeader {
            xid: req.xid,
            flags,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: req.giaddr,
            chaddr: req.chaddr,
            file: None,
        };
        let e = encode_reply(&hdr, &mandatory, &message, &last, req.max_reply());
        ex.reply = Some("NAK");
        ex.sent = e.sent;
        ex.level = Level::Info;
        Reply {
            msg_type: packet::NAK,
            bytes: e.bytes,
            dest: destination(req, packet::NAK, Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// The subnet a request belongs to and the server identifier to answer with.
fn select_subnet<'c>(
    config: &'c Config,
    req: &Request,
    ingress: &Ingress,
) -> Option<(&'c Subnet, Ipv4Addr)> {
    let own = ingress.addrs.first()?.addr;
    if !req.giaddr.is_unspecified() {
        let s = config
            .dhcp
            .subnets
            .iter()
            .find(|s| s.net.contains(req.giaddr))?;
        return Some((s, own));
    }
    ingress.addrs.iter().find_map(|a| {
        config
            .dhcp
            .subnets
            .iter()
            .find(|s| s.net.contains(a.addr))
            .map(|s| (s, a.addr))
    })
}

/// Whether a server identifier names this server.
fn is_ours(sid: Ipv4Addr, ingress: &Ingress, server_id: Ipv4Addr) -> bool {
    sid == server_id || ingress.addrs.iter().any(|a| a.addr == sid)
}

/// RFC 2131 section 4.1: where a reply of this type to this request goes.
pub fn destination(req: &Request, msg_type: u8, yiaddr: Ipv4Addr) -> Destination {
    if req.msg_type == packet::INFORM && !req.ciaddr.is_unspecified() {
        return Destination::Unicast(req.ciaddr);
    }
    if !req.giaddr.is_unspecified() {
        return Destination::Relay(req.giaddr);
    }
    if msg_type == packet::NAK {
        return Destination::Broadcast;
    }
    if !req.ciaddr.is_unspecified() {
        return Destination::Unicast(req.ciaddr);
    }
    if req.broadcast_flag() || yiaddr.is_unspecified() {
        return Destination::Broadcast;
    }
    Destination::Hardware {
        ip: yiaddr,
        mac: req.mac,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod profile_tests;
