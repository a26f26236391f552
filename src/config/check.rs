//! Checking the file as written (`raw.rs`) into the model (`model.rs`):
//! every value, with its file, line, column and key on error.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::model::*;
use super::phone::Inventory;
use super::raw::*;
use super::{ConfigError, Dns, Lookup, lookup, profiles};
use crate::dhcp::options::{
    self as opt, AddrSpec, OptionValue, Template, VlanEncoding, raw_value, typed_bytes,
};
use crate::units::{Ipv4Net, Ipv4Range, Mac, parse_duration};

pub(super) struct Cx<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    /// Names the `[dns]` section defines (lowercase, relative and with the
    /// zone): DHCP options that name them get their addresses from the
    /// configuration, not from the system resolver (which on a bare
    /// appliance may know nothing, or dialtone itself).
    pub(super) local: HashMap<String, Vec<AddrSpec>>,
    /// Where names `[dns]` does not define get their addresses.
    pub(super) names: &'a dyn Lookup,
}

/// The names `[dns]` gives addresses to, as DHCP options resolve them.
pub(super) fn local_names(dns: &Dns) -> HashMap<String, Vec<AddrSpec>> {
    let mut out: HashMap<String, Vec<AddrSpec>> = HashMap::new();
    let mut add = |name: &str, addrs: Vec<AddrSpec>| {
        out.insert(format!("{name}.{}", dns.zone), addrs.clone());
        out.insert(name.to_string(), addrs);
    };
    for h in &dns.hosts {
        add(&h.name, vec![AddrSpec::Ip(h.ip)]);
    }
    for sw in &dns.switchovers {
        if let Some(p) = &sw.provision_name {
            let ips = sw
                .members
                .iter()
                .filter_map(|m| dns.hosts.iter().find(|h| &h.name == m))
                .map(|h| AddrSpec::Ip(h.ip))
                .collect();
            add(p, ips);
        }
    }
    add(&dns.self_name, vec![AddrSpec::SelfAddr]);
    for name in crate::families::appliance_names() {
        add(&name, vec![AddrSpec::SelfAddr]);
    }
    out
}

impl Cx<'_> {
    pub(super) fn at(
        &self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError {
            file: self.file.to_string(),
            line,
            column,
            key: if key.is_empty() {
                "(file)".into()
            } else {
                key.to_string()
            },
            message: message.into(),
        }
    }

    pub(super) fn toml_error(&self, path: &str, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        // Spanned values add a private segment to the path; it means nothing to a user.
        let cleaned: Vec<&str> = path
            .split('.')
            .filter(|seg| !seg.starts_with("$__") && !seg.is_empty())
            .collect();
        let joined = cleaned.join(".");
        let key = joined.as_str();
        let msg = e.message().trim().to_string();
        let msg = if msg.contains("did not match any variant") {
            expectation(key).to_string()
        } else {
            msg
        };
        self.at(span, key, msg)
    }

    pub(super) fn err<T>(
        &self,
        s: &Spanned<T>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        self.at(s.span(), key, message)
    }

    pub(super) fn build(&self, raw: RawConfig, dns: Option<Dns>) -> Result<Config, ConfigError> {
        let server = self.server(raw.server)?;
        let dhcp = self.dhcp(raw.dhcp)?;
        let time = self.time(raw.time)?;
        let files = raw.files.map(|f| self.files(f)).transpose()?;
        let inventory = self.inventory(raw.inventory)?;
        let admin = self.admin(raw.admin, &dhcp)?;
        let syslog = self.syslog(raw.syslog)?;
        let mut phones = Inventory::default();
        self.phones(raw.phone, dns.as_ref(), &mut phones)?;
        Ok(Config {
            admin,
            syslog,
            server,
            dhcp,
            dns,
            time,
            files,
            inventory,
            phones,
        })
    }

    pub(super) fn server(&self, raw: RawServer) -> Result<Server, ConfigError> {
        let state_dir = match raw.state_dir {
            Some(s) if s.get_ref().trim().is_empty() => {
                return Err(self.err(&s, "server.state_dir", "expected a directory path"));
            }
            Some(s) => PathBuf::from(s.into_inner()),
            None => PathBuf::from("/var/lib/dialtone"),
        };
        let mut interfaces = Vec::new();
        if let Some(list) = raw.interfaces {
            if list.get_ref().is_empty() {
                return Err(self.err(
                    &list,
                    "server.interfaces",
                    "expected at least one interface name, e.g. [\"eth0\"]",
                ));
            }
            for (i, name) in list.into_inner().into_iter().enumerate() {
                let key = format!("server.interfaces[{i}]");
                let n = name.get_ref();
                if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', '\0']) {
                    return Err(self.err(
                        &name,
                        &key,
                        format!("`{n}` is not an interface name (1-15 characters, no spaces or /)"),
                    ));
                }
                if interfaces.contains(n) {
                    return Err(self.err(&name, &key, format!("interface `{n}` is listed twice")));
                }
                interfaces.push(name.into_inner());
            }
        }
        Ok(Server {
            state_dir,
            interfaces,
        })
    }

    pub(super) fn duration(&self, d: &Spanned<RawDuration>, key: &str) -> Result<u32, ConfigError> {
        let secs = match d.get_ref() {
            RawDuration::Seconds(n) => u32::try_from(*n)
                .map_err(|_| self.err(d, key, "expected a positive number of seconds"))?,
            RawDuration::Text(t) => parse_duration(t).map_err(|m| self.err(d, key, m))?,
        };
        if secs == 0 {
            return Err(self.err(d, key, "expected a duration longer than 0"));
        }
        Ok(secs)
    }

    pub(super) fn dhcp(&self, raw: RawDhcp) -> Result<Dhcp, ConfigError> {
        let dur = |d: &Option<Spanned<RawDuration>>, key: &str, default: u32| match d {
            Some(d) => self.duration(d, key),
            None => Ok(default),
        };
        let lease_time = dur(&raw.lease_time, "dhcp.lease_time", 3600)?;
        let offer_time = dur(&raw.offer_time, "dhcp.offer_time", 30)?;
        let decline_time = dur(&raw.decline_time, "dhcp.decline_time", 600)?;
        let rate_limit = match &raw.rate_limit {
            Some(r) => u32::try_from(*r.get_ref())
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    self.err(
                        r,
                        "dhcp.rate_limit",
                        "expected packets per second, 1 or more",
                    )
                })?,
            None => 20,
        };
        let new_clients_per_second = match &raw.new_clients_per_second {
            Some(r) => u32::try_from(*r.get_ref()).map_err(|_| {
                self.err(
                    r,
                    "dhcp.new_clients_per_second",
                    "expected new clients per second, or 0 for no limit",
                )
            })?,
            None => 200,
        };
        let new_clients_burst = match &raw.new_clients_burst {
            Some(r) => u32::try_from(*r.get_ref()).map_err(|_| {
                self.err(
                    r,
                    "dhcp.new_clients_burst",
                    "expected a number of new clients, 0 or more",
                )
            })?,
            None => 2000,
        };
        let options = self.options(raw.options, "dhcp.options")?;
        let next_server = self.next_server(&raw.next_server, "dhcp.next_server")?;

        let mut subnets: Vec<Subnet> = Vec::new();
        for (i, s) in raw.subnet.into_iter().enumerate() {
            let key = format!("dhcp.subnet[{i}]");
            let subnet = self.subnet(s, &key, &subnets)?;
            subnets.push(subnet);
        }

        let mut classes: Vec<Class> = Vec::new();
        for (i, c) in raw.class.into_iter().enumerate() {
            let key = format!("dhcp.class[{i}]");
            if classes.iter().any(|k| &k.name == c.name.get_ref()) {
                return Err(self.err(
                    &c.name,
                    &format!("{key}.name"),
                    format!("class `{}` is defined twice", c.name.get_ref()),
                ));
            }
            classes.push(self.class(c, &key)?);
        }

        let mut hosts: Vec<Host> = Vec::new();
        for (i, h) in raw.host.into_iter().enumerate() {
            let key = format!("dhcp.host[{i}]");
            hosts.push(self.host(h, &key, &subnets, &hosts)?);
        }

        let mut images: opt::Images = crate::families::images()
            .map(|(m, f)| (m.to_string(), f.to_string()))
            .collect();
        for (model, file) in raw.images.iter().flatten() {
            let k = format!("dhcp.images.{model}");
            if model.trim().is_empty() {
                return Err(self.err(file, "dhcp.images", "expected a model name as the key"));
            }
            if file.get_ref().trim().is_empty() {
                return Err(self.err(file, &k, "expected an image file name"));
            }
            images.insert(
                model.trim().to_ascii_uppercase(),
                file.get_ref().trim().to_string(),
            );
        }

        Ok(Dhcp {
            lease_time,
            offer_time,
            decline_time,
            authoritative: raw.authoritative.unwrap_or(true),
            rate_limit,
            new_clients_per_second,
            new_clients_burst,
            next_server,
            options,
            subnets,
            classes,
            hosts,
            images,
        })
    }

    pub(super) fn subnet(
        &self,
        s: RawSubnet,
        key: &str,
        earlier: &[Subnet],
    ) -> Result<Subnet, ConfigError> {
        let net: Ipv4Net = s
            .cidr
            .get_ref()
            .parse()
            .map_err(|m: String| self.err(&s.cidr, &format!("{key}.cidr"), m))?;
        if net.addr != net.network() {
            return Err(self.err(
                &s.cidr,
                &format!("{key}.cidr"),
                format!(
                    "host bits are set; the network is {}/{}",
                    net.network(),
                    net.prefix
                ),
            ));
        }
        if let Some(other) = earlier
            .iter()
            .find(|o| o.net.contains(net.network()) || net.contains(o.net.network()))
        {
            return Err(self.err(
                &s.cidr,
                &format!("{key}.cidr"),
                format!("overlaps subnet {}", other.net),
            ));
        }
        let mut pools: Vec<Ipv4Range> = Vec::new();
        for (j, p) in s.pool.iter().enumerate() {
            let pkey = format!("{key}.pool[{j}]");
            let r: Ipv4Range = p
                .get_ref()
                .parse()
                .map_err(|m: String| self.err(p, &pkey, m))?;
            if !net.contains(r.first) || !net.contains(r.last) {
                return Err(self.err(p, &pkey, format!("range {r} is not inside {net}")));
            }
            if net.prefix < 31 && (r.contains(net.network()) || r.contains(net.broadcast())) {
                return Err(self.err(
                    p,
                    &pkey,
                    format!("range {r} includes the network or broadcast address of {net}"),
                ));
            }
            if let Some(o) = pools
                .iter()
                .find(|o| o.contains(r.first) || r.contains(o.first))
            {
                return Err(self.err(p, &pkey, format!("range {r} overlaps range {o}")));
            }
            pools.push(r);
        }
        let lease_time = match &s.lease_time {
            Some(d) => Some(self.duration(d, &format!("{key}.lease_time"))?),
            None => None,
        };
        let mut options = self.options(s.options, &format!("{key}.options"))?;
        options.insert(
            opt::SUBNET_MASK,
            OptionValue::Bytes(net.mask().octets().to_vec()),
        );
        if let Some(r) = &s.router {
            let a = self.addr_spec(r.get_ref(), r, &format!("{key}.router"))?;
            options.insert(opt::ROUTER, OptionValue::Addrs(vec![a]));
        }
        if !s.dns.is_empty() {
            let mut list = Vec::new();
            for (j, d) in s.dns.iter().enumerate() {
                list.extend(self.addr_or_name(d.get_ref(), d, &format!("{key}.dns[{j}]"))?);
            }
            options.insert(opt::DNS_SERVERS, OptionValue::Addrs(list));
        }
        if let Some(d) = &s.domain {
            let dkey = format!("{key}.domain");
            opt::encode_dns_name(d.get_ref()).map_err(|m| self.err(d, &dkey, m))?;
            options.insert(
                opt::DOMAIN_NAME,
                OptionValue::Bytes(d.get_ref().clone().into_bytes()),
            );
        }
        Ok(Subnet {
            net,
            pools,
            lease_time,
            next_server: self.next_server(&s.next_server, &format!("{key}.next_server"))?,
            options,
        })
    }

    pub(super) fn class(&self, c: RawClass, key: &str) -> Result<Class, ConfigError> {
        let name = c.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(&c.name, &format!("{key}.name"), "expected a class name"));
        }
        let mut class = Class {
            name,
            profile: None,
            matchers: vec![Match::default()],
            defaults: OptionSet::new(),
            options: OptionSet::new(),
            next_server: self.next_server(&c.next_server, &format!("{key}.next_server"))?,
            force: Vec::new(),
            only: None,
        };
        let mut needs_match = false;
        if let Some(p) = &c.profile {
            let profile = profiles::find(p.get_ref()).ok_or_else(|| {
                self.err(
                    p,
                    &format!("{key}.profile"),
                    format!(
                        "unknown profile `{}` (expected one of: {}; `dialtone profiles` lists them)",
                        p.get_ref(),
                        profiles::names()
                    ),
                )
            })?;
            let base = load_profile(profile)?;
            needs_match = base.matchers.is_empty();
            class.profile = Some(profile.name.to_string());
            class.matchers = base.matchers;
            class.defaults = base.defaults;
            class.options = base.options;
            class.force = base.force;
            class.only = base.only;
        }
        match c.matcher {
            Some(m) => class.matchers = self.matches(m, &format!("{key}.match"))?,
            None if needs_match => {
                return Err(self.err(
                    &c.name,
                    &format!("{key}.match"),
                    format!(
                        "profile `{}` has no match rules of its own: give the class a `match`, e.g. match.mac = \"00:04:f2:*\"",
                        class.profile.as_deref().unwrap_or_default()
                    ),
                ));
            }
            None => {}
        }
        let own = self.options(c.options, &format!("{key}.options"))?;
        merge_options(&mut class.options, own);
        if let Some(f) = &c.force {
            class.force = self.codes(f, &format!("{key}.force"))?;
        }
        if let Some(o) = &c.only {
            class.only = Some(self.codes(o, &format!("{key}.only"))?);
        }
        Ok(class)
    }

    pub(super) fn codes(&self, list: &[Spanned<i64>], key: &str) -> Result<Vec<u8>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(j, r)| self.option_code(r, &format!("{key}[{j}]")))
            .collect()
    }

    pub(super) fn matches(&self, m: RawMatches, key: &str) -> Result<Vec<Match>, ConfigError> {
        if m.0.is_empty() {
            return Err(self.at(
                0..0,
                key,
                "expected a table of match rules or a non-empty list of them",
            ));
        }
        let many = m.0.len() > 1;
        m.0.into_iter()
            .enumerate()
            .map(|(i, one)| {
                let k = if many {
                    format!("{key}[{i}]")
                } else {
                    key.to_string()
                };
                self.one_match(one, &k)
            })
            .collect()
    }

    pub(super) fn one_match(&self, m: RawMatch, key: &str) -> Result<Match, ConfigError> {
        let glob = |g: &Option<Spanned<String>>, k: &str| -> Result<Option<String>, ConfigError> {
            match g {
                Some(s) if s.get_ref().is_empty() => {
                    Err(self.err(s, &format!("{key}.{k}"), "expected a non-empty pattern"))
                }
                Some(s) => Ok(Some(s.get_ref().clone())),
                None => Ok(None),
            }
        };
        let message = match &m.message {
            Some(s) => Some(
                crate::dhcp::packet::message_type_code(s.get_ref()).ok_or_else(|| {
                    self.err(
                        s,
                        &format!("{key}.message"),
                        "expected a DHCP message type: discover, request, decline, release or inform",
                    )
                })?,
            ),
            None => None,
        };
        Ok(Match {
            message,
            vendor_class: glob(&m.vendor_class, "vendor_class")?,
            user_class: glob(&m.user_class, "user_class")?,
            requests: self.codes(&m.requests, &format!("{key}.requests"))?,
            mac: match (&m.mac, glob(&m.mac, "mac")?) {
                (Some(at), Some(g)) => Some(mac_glob(&g).ok_or_else(|| {
                    self.err(
                        at,
                        &format!("{key}.mac"),
                        format!(
                            "`{g}` is not a MAC glob: hex digits with `*` and `?`, separators optional, e.g. \"00:90:8f:*\""
                        ),
                    )
                })?),
                _ => None,
            },
        })
    }

    pub(super) fn option_code(&self, r: &Spanned<i64>, key: &str) -> Result<u8, ConfigError> {
        u8::try_from(*r.get_ref())
            .ok()
            .filter(|c| (1..=254).contains(c))
            .ok_or_else(|| self.err(r, key, "expected a DHCP option code 1-254"))
    }

    pub(super) fn host(
        &self,
        h: RawHost,
        key: &str,
        subnets: &[Subnet],
        earlier: &[Host],
    ) -> Result<Host, ConfigError> {
        let mac: Mac = h
            .mac
            .get_ref()
            .parse()
            .map_err(|m: String| self.err(&h.mac, &format!("{key}.mac"), m))?;
        if earlier.iter().any(|o| o.mac == mac) {
            return Err(self.err(
                &h.mac,
                &format!("{key}.mac"),
                format!("host {mac} is defined twice"),
            ));
        }
        let ip = match &h.ip {
            Some(s) => {
                let ikey = format!("{key}.ip");
                let ip: Ipv4Addr = s.get_ref().parse().map_err(|_| {
                    self.err(
                        s,
                        &ikey,
                        format!("`{}` is not an IPv4 address", s.get_ref()),
                    )
                })?;
                let Some(subnet) = subnets.iter().find(|n| n.net.contains(ip)) else {
                    return Err(self.err(
                        s,
                        &ikey,
                        format!("{ip} is not inside any [[dhcp.subnet]]"),
                    ));
                };
                if ip == subnet.net.network() || ip == subnet.net.broadcast() {
                    return Err(self.err(
                        s,
                        &ikey,
                        format!("{ip} is the network or broadcast address of {}", subnet.net),
                    ));
                }
                if let Some(o) = earlier.iter().find(|o| o.ip == Some(ip)) {
                    return Err(self.err(
                        s,
                        &ikey,
                        format!("{ip} is already reserved for {}", o.mac),
                    ));
                }
                Some(ip)
            }
            None => None,
        };
        let hostname = match &h.hostname {
            Some(s) => {
                let n = s.get_ref();
                let ok = !n.is_empty()
                    && n.len() <= 63
                    && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !n.starts_with('-');
                if !ok {
                    return Err(self.err(
                        s,
                        &format!("{key}.hostname"),
                        format!("`{n}` is not a host name (letters, digits and -, at most 63)"),
                    ));
                }
                Some(n.clone())
            }
            None => None,
        };
        Ok(Host {
            mac,
            ip,
            hostname,
            next_server: self.next_server(&h.next_server, &format!("{key}.next_server"))?,
            options: self.options(h.options, &format!("{key}.options"))?,
        })
    }

    /// `next_server`: an IPv4 address or `self` (no host names: siaddr is an
    /// address, and Kea's `next-server` takes none either).
    pub(super) fn next_server(
        &self,
        s: &Option<Spanned<String>>,
        key: &str,
    ) -> Result<Option<AddrSpec>, ConfigError> {
        s.as_ref()
            .map(|s| self.addr_spec(s.get_ref(), s, key))
            .transpose()
    }

    pub(super) fn addr_spec<T>(
        &self,
        s: &str,
        at: &Spanned<T>,
        key: &str,
    ) -> Result<AddrSpec, ConfigError> {
        if s == "self" {
            return Ok(AddrSpec::SelfAddr);
        }
        s.parse()
            .map(AddrSpec::Ip)
            .map_err(|_| self.err(at, key, format!("`{s}` is not an IPv4 address or \"self\"")))
    }

    /// An address, `self`, or a host name resolved now (to all its IPv4 addresses).
    pub(super) fn addr_or_name<T>(
        &self,
        s: &str,
        at: &Spanned<T>,
        key: &str,
    ) -> Result<Vec<AddrSpec>, ConfigError> {
        if let Ok(a) = self.addr_spec(s, at, key) {
            return Ok(vec![a]);
        }
        if opt::encode_dns_name(s).is_err() {
            return Err(self.err(
                at,
                key,
                format!("`{s}` is not an IPv4 address, host name or \"self\""),
            ));
        }
        let lower = s.trim_end_matches('.').to_ascii_lowercase();
        if let Some(addrs) = self.local.get(&lower) {
            return Ok(addrs.clone());
        }
        let found = self
            .names
            .ipv4(s)
            .map_err(|e| self.err(at, key, format!("`{s}` {e}")))?;
        if found.is_empty() {
            return Err(self.err(at, key, format!("`{s}` has no IPv4 address")));
        }
        Ok(found.into_iter().map(AddrSpec::Ip).collect())
    }

    pub(super) fn addr_list(
        &self,
        list: &Spanned<Vec<String>>,
        key: &str,
    ) -> Result<OptionValue, ConfigError> {
        if list.get_ref().is_empty() {
            return Err(self.err(list, key, "expected at least one address"));
        }
        let mut out = Vec::new();
        for s in list.get_ref() {
            out.extend(self.addr_or_name(s, list, key)?);
        }
        Ok(OptionValue::Addrs(out))
    }

    pub(super) fn text(&self, s: &Spanned<String>, key: &str) -> Result<OptionValue, ConfigError> {
        if s.get_ref().is_empty() {
            return Err(self.err(s, key, "expected a non-empty value"));
        }
        Template::parse(s.get_ref())
            .map(OptionValue::Text)
            .map_err(|m| self.err(s, key, m))
    }

    pub(super) fn options(&self, o: RawOptions, key: &str) -> Result<OptionSet, ConfigError> {
        let mut out = OptionSet::new();
        if let Some(v) = &o.vlan_id {
            let k = format!("{key}.vlan_id");
            let (id, enc) = match v.get_ref() {
                RawVlan::Id(n) => (*n, VlanEncoding::Text),
                RawVlan::Typed { value, encoding } => {
                    let enc = match encoding.as_str() {
                        "text" => VlanEncoding::Text,
                        "u16" => VlanEncoding::U16,
                        "u32" => VlanEncoding::U32,
                        other => {
                            return Err(self.err(v, &k, format!(
                                "unknown encoding `{other}` (expected \"text\", \"u16\" or \"u32\")"
                            )));
                        }
                    };
                    (*value, enc)
                }
            };
            let id = u16::try_from(id)
                .ok()
                .filter(|n| (1..=4094).contains(n))
                .ok_or_else(|| self.err(v, &k, "expected a VLAN ID 1-4094"))?;
            out.insert(opt::VLAN_ID, OptionValue::Bytes(opt::encode_vlan(id, enc)));
        }
        if let Some(v) = &o.time_servers {
            out.insert(
                opt::TIME_SERVERS,
                self.addr_list(v, &format!("{key}.time_servers"))?,
            );
        }
        if let Some(v) = &o.ntp_servers {
            out.insert(
                opt::NTP_SERVERS,
                self.addr_list(v, &format!("{key}.ntp_servers"))?,
            );
        }
        if let Some(v) = &o.time_offset {
            let k = format!("{key}.time_offset");
            let secs = match v.get_ref() {
                RawOffset::Seconds(n) => i32::try_from(*n)
                    .ok()
                    .filter(|n| n.abs() <= 14 * 3600)
                    .ok_or_else(|| self.err(v, &k, "expected seconds within +-14 hours"))?,
                RawOffset::Text(t) => opt::parse_time_offset(t).map_err(|m| self.err(v, &k, m))?,
            };
            out.insert(
                opt::TIME_OFFSET,
                OptionValue::Bytes(opt::encode_time_offset(secs)),
            );
        }
        if let Some(v) = &o.provisioning_url {
            out.insert(
                opt::PROVISIONING_URL,
                self.text(v, &format!("{key}.provisioning_url"))?,
            );
        }
        if let Some(v) = &o.tftp_server {
            out.insert(
                opt::TFTP_SERVER,
                self.text(v, &format!("{key}.tftp_server"))?,
            );
        }
        if let Some(v) = &o.tftp_servers {
            out.insert(
                opt::TFTP_SERVERS,
                self.addr_list(v, &format!("{key}.tftp_servers"))?,
            );
        }
        if let Some(v) = &o.bootfile {
            let k = format!("{key}.bootfile");
            if v.get_ref().len() > 127 {
                return Err(self.err(
                    v,
                    &k,
                    "a boot file name must fit the 128-byte BOOTP file field",
                ));
            }
            out.insert(opt::BOOTFILE, self.text(v, &k)?);
        }
        if let Some(v) = &o.vendor_specific {
            let k = format!("{key}.vendor_specific");
            let mut subs = Vec::new();
            for (code, value) in v.get_ref() {
                let c: u8 = code
                    .parse()
                    .ok()
                    .filter(|c| (1..=254).contains(c))
                    .ok_or_else(|| {
                        self.err(v, &k, format!("`{code}` is not a sub-option number 1-254"))
                    })?;
                let bytes = match value {
                    RawScalar::Int(n) => n.to_string().into_bytes(),
                    RawScalar::Text(t) => {
                        typed_bytes(t).map_err(|m| self.err(v, &format!("{k}.{code}"), m))?
                    }
                };
                subs.push((c, bytes));
            }
            let enc = opt::encode_vendor_tlv(&subs).map_err(|m| self.err(v, &k, m))?;
            out.insert(opt::VENDOR_SPECIFIC, OptionValue::Bytes(enc));
        }
        if let Some(v) = &o.sip_servers {
            let enc = opt::encode_sip_servers(v.get_ref())
                .map_err(|m| self.err(v, &format!("{key}.sip_servers"), m))?;
            out.insert(opt::SIP_SERVERS, OptionValue::Bytes(enc));
        }
        if let Some(raw) = &o.raw {
            for (code, value) in raw {
                let k = format!("{key}.raw.{code}");
                let c: u8 = code
                    .parse()
                    .ok()
                    .filter(|c| (1..=254).contains(c))
                    .ok_or_else(|| {
                        self.err(value, &k, format!("`{code}` is not an option code 1-254"))
                    })?;
                if RESERVED.contains(&c) {
                    return Err(self.err(
                        value,
                        &k,
                        format!("option {c} is managed by dialtone itself and cannot be set"),
                    ));
                }
                let v = raw_value(value.get_ref()).map_err(|m| self.err(value, &k, m))?;
                out.insert(c, v);
            }
        }
        Ok(out)
    }
}

/// Options the server decides itself.
const RESERVED: &[u8] = &[
    opt::LEASE_TIME,
    opt::OVERLOAD,
    opt::MESSAGE_TYPE,
    opt::SERVER_ID,
    opt::PARAM_LIST,
    opt::MAX_MESSAGE_SIZE,
    opt::RENEWAL_TIME,
    opt::REBINDING_TIME,
    opt::RELAY_AGENT_INFO,
];

/// What a key expects, for values that match none of the forms it accepts.
fn expectation(key: &str) -> &'static str {
    let last = key.rsplit('.').next().unwrap_or(key);
    match last {
        "vlan_id" => {
            "expected a VLAN ID (100) or { value = 100, encoding = \"text\" | \"u16\" | \"u32\" }"
        }
        "time_offset" => "expected a time offset such as \"-05:00\" or signed seconds (-18000)",
        "lease_time" | "offer_time" | "decline_time" => {
            "expected a duration such as \"1h\", \"30m\" or seconds"
        }
        _ => "expected a string or a number",
    }
}

/// A built-in profile as the class it stands for (unnamed): what a class
/// naming it starts from, and what `dialtone profiles` and `dialtone explain`
/// show. Its text is part of dialtone, so an error here is a bug; it is
/// reported like any other, against the profile's own text.
pub fn load_profile(p: &profiles::Profile) -> Result<Class, ConfigError> {
    let file = format!("built-in profile `{}`", p.name);
    let cx = Cx {
        file: &file,
        text: p.toml,
        local: HashMap::new(),
        names: &lookup::Offline,
    };
    let de = toml::de::Deserializer::parse(p.toml).map_err(|e| cx.toml_error("", &e))?;
    let raw: RawProfile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        cx.toml_error(&path, e.inner())
    })?;
    Ok(Class {
        name: String::new(),
        profile: Some(p.name.to_string()),
        matchers: match raw.matcher {
            Some(m) => cx.matches(m, "match")?,
            None => Vec::new(),
        },
        defaults: cx.options(raw.defaults, "defaults")?,
        options: cx.options(raw.options, "options")?,
        next_server: None,
        force: match &raw.force {
            Some(f) => cx.codes(f, "force")?,
            None => Vec::new(),
        },
        only: raw.only.as_ref().map(|o| cx.codes(o, "only")).transpose()?,
    })
}

/// Adds `over` to `set`, option by option; option 43's sub-options are merged
/// one by one, so a class can set the web server sub-option of a profile
/// without repeating the others.
fn merge_options(set: &mut OptionSet, over: OptionSet) {
    for (code, value) in over {
        let merged = match (set.get(&code), &value) {
            (Some(OptionValue::Bytes(base)), OptionValue::Bytes(new))
                if code == opt::VENDOR_SPECIFIC =>
            {
                opt::merge_suboptions(base, new).map(OptionValue::Bytes)
            }
            _ => None,
        };
        set.insert(code, merged.unwrap_or(value));
    }
}
