//! The configuration file exactly as written: serde structures that reject
//! unknown keys and keep the position of every value that is checked later.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub dhcp: RawDhcp,
    pub dns: Option<Spanned<RawDns>>,
    pub time: Option<Spanned<RawTime>>,
    pub files: Option<Spanned<RawFiles>>,
    pub inventory: Option<Spanned<RawInventory>>,
    pub admin: Option<Spanned<RawAdmin>>,
    pub syslog: Option<Spanned<RawSyslog>>,
    #[serde(default)]
    pub phone: Vec<RawPhone>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub phone_network: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyslog {
    pub serve: Option<bool>,
    pub port: Option<Spanned<i64>>,
    pub lines_per_phone: Option<Spanned<i64>>,
}

/// A phones file (`phones.toml`): `[[phone]]` tables only.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPhonesFile {
    #[serde(default)]
    pub phone: Vec<RawPhone>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    pub file: Option<Spanned<String>>,
    pub templates: Option<Spanned<String>>,
    pub syslog: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhone {
    pub mac: Option<Spanned<String>>,
    pub computer: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub manufacturer: Option<Spanned<String>>,
    pub model: Option<Spanned<String>>,
    pub profile: Option<Spanned<String>>,
    pub extension: Option<Spanned<String>>,
    pub sip_user: Option<Spanned<String>>,
    pub sip_password: Option<Spanned<String>>,
    pub label: Option<Spanned<String>>,
    pub register: Option<Spanned<String>>,
    pub proxy_group: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub state_dir: Option<Spanned<String>>,
    pub interfaces: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDhcp {
    pub lease_time: Option<Spanned<RawDuration>>,
    pub offer_time: Option<Spanned<RawDuration>>,
    pub decline_time: Option<Spanned<RawDuration>>,
    pub authoritative: Option<bool>,
    /// Packets per second accepted from one MAC before it is rate limited.
    pub rate_limit: Option<Spanned<i64>>,
    /// New clients admitted per subnet per second; 0 for no limit.
    pub new_clients_per_second: Option<Spanned<i64>>,
    /// New clients admitted per subnet at once, before the rate applies.
    pub new_clients_burst: Option<Spanned<i64>>,
    /// siaddr (the BOOTP next server): an IPv4 address or "self".
    pub next_server: Option<Spanned<String>>,
    #[serde(default)]
    pub options: RawOptions,
    #[serde(default)]
    pub subnet: Vec<RawSubnet>,
    #[serde(default)]
    pub class: Vec<RawClass>,
    #[serde(default)]
    pub host: Vec<RawHost>,
    /// Firmware image per model, for `{image}`.
    pub images: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    Seconds(i64),
    Text(String),
}

/// A size: a number of bytes or text such as `"16M"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubnet {
    pub cidr: Spanned<String>,
    #[serde(default)]
    pub pool: Vec<Spanned<String>>,
    pub router: Option<Spanned<String>>,
    #[serde(default)]
    pub dns: Vec<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub lease_time: Option<Spanned<RawDuration>>,
    /// siaddr (the BOOTP next server): an IPv4 address or "self".
    pub next_server: Option<Spanned<String>>,
    #[serde(default)]
    pub options: RawOptions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClass {
    pub name: Spanned<String>,
    /// A built-in profile whose keys this class starts from.
    pub profile: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub matcher: Option<RawMatches>,
    /// siaddr (the BOOTP next server): an IPv4 address or "self".
    pub next_server: Option<Spanned<String>>,
    #[serde(default)]
    pub options: RawOptions,
    pub force: Option<Vec<Spanned<i64>>>,
    pub only: Option<Vec<Spanned<i64>>>,
}

/// A built-in profile: the keys of a class, and defaults below the subnet's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    #[serde(rename = "match")]
    pub matcher: Option<RawMatches>,
    #[serde(default)]
    pub defaults: RawOptions,
    #[serde(default)]
    pub options: RawOptions,
    pub force: Option<Vec<Spanned<i64>>>,
    pub only: Option<Vec<Spanned<i64>>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub vendor_class: Option<Spanned<String>>,
    pub user_class: Option<Spanned<String>>,
    #[serde(default)]
    pub requests: Vec<Spanned<i64>>,
    pub mac: Option<Spanned<String>>,
    /// The DHCP message type, e.g. "inform".
    pub message: Option<Spanned<String>>,
}

/// `match = { ... }` (every condition must hold) or `match = [{ ... }, ...]`
/// (any one of the tables). Read by hand rather than with `untagged`, which
/// would lose the positions of the values inside.
#[derive(Debug)]
pub struct RawMatches(pub Vec<RawMatch>);

impl<'de> Deserialize<'de> for RawMatches {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawMatches;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table of match rules, or a list of such tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawMatches, A::Error> {
                RawMatch::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|m| RawMatches(vec![m]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<RawMatches, A::Error> {
                Vec::<RawMatch>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(RawMatches)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub mac: Spanned<String>,
    pub ip: Option<Spanned<String>>,
    pub hostname: Option<Spanned<String>>,
    /// siaddr (the BOOTP next server): an IPv4 address or "self".
    pub next_server: Option<Spanned<String>>,
    #[serde(default)]
    pub options: RawOptions,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawOptions {
    pub vlan_id: Option<Spanned<RawVlan>>,
    pub ntp_servers: Option<Spanned<Vec<String>>>,
    pub time_servers: Option<Spanned<Vec<String>>>,
    pub time_offset: Option<Spanned<RawOffset>>,
    pub provisioning_url: Option<Spanned<String>>,
    pub tftp_server: Option<Spanned<String>>,
    /// Option 150 (Cisco): one or more TFTP servers' addresses.
    pub tftp_servers: Option<Spanned<Vec<String>>>,
    pub bootfile: Option<Spanned<String>>,
    pub vendor_specific: Option<Spanned<BTreeMap<String, RawScalar>>>,
    pub sip_servers: Option<Spanned<Vec<String>>>,
    pub raw: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawVlan {
    Id(i64),
    Typed { value: i64, encoding: String },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawOffset {
    Seconds(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawScalar {
    Int(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub zone: Option<Spanned<String>>,
    pub ttl: Option<Spanned<RawDuration>>,
    #[serde(default)]
    pub upstream: Vec<Spanned<String>>,
    pub leases: Option<bool>,
    pub port: Option<Spanned<i64>>,
    /// The appliance's own name in the zone (target of the `_ntp._udp` SRV).
    pub self_name: Option<Spanned<String>>,
    #[serde(default)]
    pub host: Vec<RawDnsHost>,
    #[serde(default)]
    pub switchover: Vec<RawSwitchover>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsHost {
    pub name: Spanned<String>,
    pub ip: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitchover {
    pub name: Spanned<String>,
    pub members: Spanned<Vec<Spanned<String>>>,
    pub mode: Option<Spanned<String>>,
    pub provision_name: Option<Spanned<String>>,
    #[serde(default)]
    pub services: Vec<Spanned<RawService>>,
    pub health: Option<Spanned<RawHealth>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub srv: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub check: Spanned<String>,
    pub interval: Option<Spanned<RawDuration>>,
    pub timeout: Option<Spanned<RawDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTime {
    pub serve: Option<bool>,
    pub stratum: Option<Spanned<i64>>,
    pub port: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFiles {
    pub root: Option<Spanned<String>>,
    pub tftp: Option<bool>,
    pub tftp_port: Option<Spanned<i64>>,
    pub http: Option<Spanned<Vec<Spanned<String>>>>,
    pub private: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_transfers: Option<Spanned<i64>>,
    pub max_window: Option<Spanned<i64>>,
    pub tftp_timeout: Option<Spanned<RawDuration>>,
    pub tftp_retries: Option<Spanned<i64>>,
    pub upload: Option<Spanned<String>>,
    pub upload_max: Option<Spanned<RawSize>>,
    pub http_head_timeout: Option<Spanned<RawDuration>>,
    pub http_per_source: Option<Spanned<i64>>,
}
