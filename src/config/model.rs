//! The checked configuration: what `serve` and every service work from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::phone::Inventory;
use super::{Admin, Dns, Files, InventorySettings, Syslog, Time};
use crate::dhcp::options::{self as opt, AddrSpec, OptionValue};
use crate::units::{Ipv4Net, Ipv4Range, Mac};

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
    /// How many such clients a subnet admits at once before the rate
    /// applies: a power cut's site of phones without leases boots together.
    pub new_clients_burst: u32,
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

    /// The normalized configuration as TOML, as `dialtone check` prints it.
    pub fn to_normalized_toml(&self) -> String {
        super::render::normalized(self)
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

pub fn hosts_by_mac(hosts: &[Host]) -> HashMap<Mac, usize> {
    hosts.iter().enumerate().map(|(i, h)| (h.mac, i)).collect()
}

/// Addresses reserved for a host.
pub fn reserved_ips(hosts: &[Host]) -> HashSet<Ipv4Addr> {
    hosts.iter().filter_map(|h| h.ip).collect()
}
