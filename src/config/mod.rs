//! The configuration: loading a TOML file, checking every value, and the
//! normalized form the rest of dialtone works from.
//!
//! Every error names the file, the line and column, the key and what was expected.

pub mod admin;
mod dns;
mod files;
pub mod phone;
mod phones;
pub mod profiles;
mod raw;
mod render;
pub mod warnings;

pub use admin::{Admin, Syslog};
pub use dns::{Dns, DnsHost, Health, HealthCheck, Service, Switchover, SwitchoverMode, Time};
pub use files::Files;
pub use phones::{InventorySettings, parse_phones_file};
pub use render::match_table;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::ops::Range;
use std::path::{Path, PathBuf};

use thiserror::Error;
use toml::Spanned;

use crate::dhcp::options::{self as opt, AddrSpec, OptionValue, Template, VlanEncoding};
use crate::inventory::Inventory;
use crate::units::{Ipv4Net, Ipv4Range, Mac, parse_duration};
use raw::*;

/// A configuration error, located in the file.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{file}:{line}:{column}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

/// Errors while reading the configuration file from disk.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: cannot read the phones file ([inventory] file): {source}")]
    ReadPhones {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// A MAC glob in the bare lowercase hex form classes match against: `:`, `-`
/// and `.` separators are dropped, so `00:90:8F:*`, `00-90-8f-*`, `0090.8f*`
/// and `00908f*` all mean the same prefix. None if anything else remains.
pub fn mac_glob(pattern: &str) -> Option<String> {
    let g: String = pattern
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (!g.is_empty()
        && g.chars()
            .all(|c| c.is_ascii_hexdigit() || c == '*' || c == '?'))
    .then_some(g)
}

/// The options a subnet, class, host or the global section adds, by option code.
pub type OptionSet = BTreeMap<u8, OptionValue>;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub dhcp: Dhcp,
    /// Present when the file has a `[dns]` section.
    pub dns: Option<Dns>,
    pub time: Time,
    /// Present when the file has a `[files]` section.
    pub files: Option<Files>,
    pub inventory: InventorySettings,
    /// `[[phone]]` tables of the configuration file and of the phones file.
    pub phones: Inventory,
    pub admin: Admin,
    pub syslog: Syslog,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub state_dir: PathBuf,
    pub interfaces: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Dhcp {
    pub lease_time: u32,
    /// How long an offered address is held for the client it was offered to.
    pub offer_time: u32,
    /// How long a declined address stays out of the pool.
    pub decline_time: u32,
    /// NAK requests for addresses this server does not know, like Kea and
    /// dnsmasq's `dhcp-authoritative`.
    pub authoritative: bool,
    /// Packets per second accepted from one MAC; the rest are dropped.
    pub rate_limit: u32,
    /// DISCOVERs and REQUESTs from clients this server has no record of
    /// (no lease, offer, reservation or inventory entry) admitted per subnet
    /// per second; the rest are dropped. 0: no limit.
    pub new_clients_per_second: u32,
    /// siaddr, the BOOTP "next server" a loader fetches `file` from, when
    /// set here (the host's, then the last matching class's, the subnet's,
    /// the global one win in that order).
    pub next_server: Option<AddrSpec>,
    pub options: OptionSet,
    pub subnets: Vec<Subnet>,
    pub classes: Vec<Class>,
    pub hosts: Vec<Host>,
    /// Firmware image per model (upper case) for `{image}`: the families'
    /// documented names, overridden by `[dhcp.images]`.
    pub images: opt::Images,
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub net: Ipv4Net,
    pub pools: Vec<Ipv4Range>,
    pub lease_time: Option<u32>,
    /// siaddr, the BOOTP "next server" a loader fetches `file` from, when
    /// set here (the host's, then the last matching class's, the subnet's,
    /// the global one win in that order).
    pub next_server: Option<AddrSpec>,
    /// Options of this subnet, including 1 (mask), 3 (router), 6 (dns) and 15 (domain).
    pub options: OptionSet,
}

impl Subnet {
    pub fn in_pool(&self, ip: Ipv4Addr) -> bool {
        self.pools.iter().any(|p| p.contains(ip))
    }

    /// The first configured router (option 3) given as an address, not
    /// `self`.
    pub fn router(&self) -> Option<Ipv4Addr> {
        match self.options.get(&opt::ROUTER)? {
            OptionValue::Addrs(list) => list.iter().find_map(|a| match a {
                AddrSpec::Ip(ip) => Some(*ip),
                AddrSpec::SelfAddr => None,
            }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Class {
    pub name: String,
    /// The built-in profile the class starts from.
    pub profile: Option<String>,
    /// The class applies when any of these holds.
    pub matchers: Vec<Match>,
    /// Values used only where nothing else (global, subnet, class) sets the
    /// option: a profile's defaults.
    pub defaults: OptionSet,
    pub options: OptionSet,
    /// siaddr, the BOOTP "next server" a loader fetches `file` from, when
    /// set here (the host's, then the last matching class's, the subnet's,
    /// the global one win in that order).
    pub next_server: Option<AddrSpec>,
    pub force: Vec<u8>,
    /// When set, the only options sent beyond those every reply carries.
    pub only: Option<Vec<u8>>,
}

/// What a client must say about itself for a class to apply; every condition given
/// must hold.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// The DHCP message type (e.g. 8 for INFORM).
    pub message: Option<u8>,
    /// Glob over option 60, case-insensitive.
    pub vendor_class: Option<String>,
    /// Glob over option 77 (any RFC 3004 instance, or the raw value).
    pub user_class: Option<String>,
    /// Option codes that option 55 must all contain.
    pub requests: Vec<u8>,
    /// Glob over the MAC as bare lowercase hex (`00908f123456`); see `mac_glob`.
    pub mac: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub mac: Mac,
    pub ip: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    /// siaddr, the BOOTP "next server" a loader fetches `file` from, when
    /// set here (the host's, then the last matching class's, the subnet's,
    /// the global one win in that order).
    pub next_server: Option<AddrSpec>,
    pub options: OptionSet,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&path.display().to_string(), &text)?;
        let phones = config.phones_path(path);
        match std::fs::read_to_string(&phones) {
            Ok(text) => phones::parse_phones_file(
                &phones.display().to_string(),
                &text,
                config.dns.as_ref(),
                &mut config.phones,
            )?,
            // Only a phones file that was named must exist.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && config.inventory.file.is_none() => {}
            Err(source) => {
                return Err(LoadError::ReadPhones {
                    path: phones.display().to_string(),
                    source,
                });
            }
        }
        Ok(config)
    }

    /// The phones file of the configuration file at `config_path`:
    /// `[inventory] file` (relative to the configuration file's folder), else
    /// `phones.toml` beside it.
    pub fn phones_path(&self, config_path: &Path) -> PathBuf {
        let dir = config_path.parent().unwrap_or(Path::new("."));
        match &self.inventory.file {
            Some(f) => dir.join(f),
            None => dir.join("phones.toml"),
        }
    }

    /// Checks configuration text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(file, text, true)
    }

    /// As `parse`, but a host name `[dns]` does not define is an error
    /// rather than a question to the system resolver: the result depends
    /// on the text alone (for fuzzing, and checks that must not touch the
    /// network).
    pub fn parse_offline(file: &str, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(file, text, false)
    }

    fn parse_with(file: &str, text: &str, resolve: bool) -> Result<Config, ConfigError> {
        let mut cx = Cx {
            file,
            text,
            local: HashMap::new(),
            resolve,
        };
        let de = toml::de::Deserializer::parse(text).map_err(|e| cx.toml_error("", &e))?;
        let mut raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            cx.toml_error(&path, e.inner())
        })?;
        // [dns] first: DHCP options may name its hosts.
        let dns = match raw.dns.take() {
            Some(d) => Some(cx.dns(d)?),
            None => None,
        };
        if let Some(d) = &dns {
            cx.local = local_names(d);
        }
        cx.build(raw, dns)
    }

    /// The normalized configuration as TOML, as `dialtone check` prints it.
    pub fn to_normalized_toml(&self) -> String {
        render::normalized(self)
    }

    /// The port `{http}` puts in URLs: the first HTTP listener's, if dialtone
    /// serves HTTP.
    pub fn http_port(&self) -> Option<u16> {
        self.files
            .as_ref()
            .and_then(|f| f.http.first())
            .map(|a| a.port())
    }

    pub fn leases_path(&self) -> PathBuf {
        self.server.state_dir.join("leases.sqlite")
    }
}

struct Cx<'a> {
    file: &'a str,
    text: &'a str,
    /// Names the `[dns]` section defines (lowercase, relative and with the
    /// zone): DHCP options that name them get their addresses from the
    /// configuration, not from the system resolver (which on a bare
    /// appliance may know nothing, or dialtone itself).
    local: HashMap<String, Vec<AddrSpec>>,
    /// Whether names `[dns]` does not define go to the system resolver;
    /// when not, such a name is an error (`Config::parse_offline`).
    resolve: bool,
}

/// The names `[dns]` gives addresses to, as DHCP options resolve them.
fn local_names(dns: &Dns) -> HashMap<String, Vec<AddrSpec>> {
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
    add(
        crate::dns::zone::PROVISIONING_SERVER,
        vec![AddrSpec::SelfAddr],
    );
    out
}

impl Cx<'_> {
    fn at(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
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

    fn toml_error(&self, path: &str, e: &toml::de::Error) -> ConfigError {
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

    fn err<T>(&self, s: &Spanned<T>, key: &str, message: impl Into<String>) -> ConfigError {
        self.at(s.span(), key, message)
    }

    fn build(&self, raw: RawConfig, dns: Option<Dns>) -> Result<Config, ConfigError> {
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

    fn server(&self, raw: RawServer) -> Result<Server, ConfigError> {
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

    fn duration(&self, d: &Spanned<RawDuration>, key: &str) -> Result<u32, ConfigError> {
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

    fn dhcp(&self, raw: RawDhcp) -> Result<Dhcp, ConfigError> {
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
            next_server,
            options,
            subnets,
            classes,
            hosts,
            images,
        })
    }

    fn subnet(&self, s: RawSubnet, key: &str, earlier: &[Subnet]) -> Result<Subnet, ConfigError> {
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

    fn class(&self, c: RawClass, key: &str) -> Result<Class, ConfigError> {
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

    fn codes(&self, list: &[Spanned<i64>], key: &str) -> Result<Vec<u8>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(j, r)| self.option_code(r, &format!("{key}[{j}]")))
            .collect()
    }

    fn matches(&self, m: RawMatches, key: &str) -> Result<Vec<Match>, ConfigError> {
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

    fn one_match(&self, m: RawMatch, key: &str) -> Result<Match, ConfigError> {
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

    fn option_code(&self, r: &Spanned<i64>, key: &str) -> Result<u8, ConfigError> {
        u8::try_from(*r.get_ref())
            .ok()
            .filter(|c| (1..=254).contains(c))
            .ok_or_else(|| self.err(r, key, "expected a DHCP option code 1-254"))
    }

    fn host(
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
    fn next_server(
        &self,
        s: &Option<Spanned<String>>,
        key: &str,
    ) -> Result<Option<AddrSpec>, ConfigError> {
        s.as_ref()
            .map(|s| self.addr_spec(s.get_ref(), s, key))
            .transpose()
    }

    fn addr_spec<T>(&self, s: &str, at: &Spanned<T>, key: &str) -> Result<AddrSpec, ConfigError> {
        if s == "self" {
            return Ok(AddrSpec::SelfAddr);
        }
        s.parse()
            .map(AddrSpec::Ip)
            .map_err(|_| self.err(at, key, format!("`{s}` is not an IPv4 address or \"self\"")))
    }

    /// An address, `self`, or a host name resolved now (to all its IPv4 addresses).
    fn addr_or_name<T>(
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
        if !self.resolve {
            return Err(self.err(
                at,
                key,
                format!("`{s}` is not defined in [dns] (names are not resolved here)"),
            ));
        }
        let resolved: Vec<AddrSpec> = (s, 0u16)
            .to_socket_addrs()
            .map_err(|e| self.err(at, key, format!("cannot resolve `{s}`: {e}")))?
            .filter_map(|a| match a.ip() {
                IpAddr::V4(v4) => Some(AddrSpec::Ip(v4)),
                IpAddr::V6(_) => None,
            })
            .collect();
        if resolved.is_empty() {
            return Err(self.err(at, key, format!("`{s}` has no IPv4 address")));
        }
        Ok(resolved)
    }

    fn addr_list(
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

    fn text(&self, s: &Spanned<String>, key: &str) -> Result<OptionValue, ConfigError> {
        if s.get_ref().is_empty() {
            return Err(self.err(s, key, "expected a non-empty value"));
        }
        Template::parse(s.get_ref())
            .map(OptionValue::Text)
            .map_err(|m| self.err(s, key, m))
    }

    fn options(&self, o: RawOptions, key: &str) -> Result<OptionSet, ConfigError> {
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

/// `hex:0a0b`, `text:...`, or plain text.
fn typed_bytes(s: &str) -> Result<Vec<u8>, String> {
    if let Some(h) = s.strip_prefix("hex:") {
        opt::parse_hex(h)
    } else if let Some(t) = s.strip_prefix("text:") {
        Ok(t.as_bytes().to_vec())
    } else {
        Ok(s.as_bytes().to_vec())
    }
}

/// A raw option: `hex:0a0b`, `text:...` (placeholders allowed) or `ip:a,b,self`.
fn raw_value(s: &str) -> Result<OptionValue, String> {
    if let Some(h) = s.strip_prefix("hex:") {
        return opt::parse_hex(h).map(OptionValue::Bytes);
    }
    if let Some(t) = s.strip_prefix("text:") {
        return Template::parse(t).map(OptionValue::Text);
    }
    if let Some(list) = s.strip_prefix("ip:") {
        let mut out = Vec::new();
        for a in list.split(',') {
            let a = a.trim();
            if a == "self" {
                out.push(AddrSpec::SelfAddr);
            } else {
                out.push(AddrSpec::Ip(a.parse().map_err(|_| {
                    format!("`{a}` is not an IPv4 address or \"self\"")
                })?));
            }
        }
        return Ok(OptionValue::Addrs(out));
    }
    Err(format!(
        "`{s}` has no type (expected \"hex:0a0b\", \"text:...\" or \"ip:10.0.0.1,self\")"
    ))
}

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

/// Hosts configured for a MAC, by MAC.
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
        resolve: false,
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

pub fn hosts_by_mac(hosts: &[Host]) -> HashMap<Mac, usize> {
    hosts.iter().enumerate().map(|(i, h)| (h.mac, i)).collect()
}

/// Addresses reserved for a host.
pub fn reserved_ips(hosts: &[Host]) -> HashSet<Ipv4Addr> {
    hosts.iter().filter_map(|h| h.ip).collect()
}

#[cfg(test)]
mod tests;
