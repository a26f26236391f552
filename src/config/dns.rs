//! Checking the `[dns]` and `[time]` sections.

use std::net::{Ipv4Addr, SocketAddr};

use toml::Spanned;

use super::raw::{RawDns, RawSwitchover, RawTime};
use super::{ConfigError, Cx};

/// The voice zone and the records dialtone answers for.
#[derive(Debug, Clone)]
pub struct Dns {
    /// Lowercase, without the trailing dot, e.g. `lab.voip`.
    pub zone: String,
    pub ttl: u32,
    /// Servers queries outside our zones are forwarded to; empty: REFUSED.
    pub upstream: Vec<SocketAddr>,
    /// DHCP host names get A and PTR records.
    pub leases: bool,
    pub port: u16,
    /// The appliance's own name in the zone (lowercase, relative).
    pub self_name: String,
    pub hosts: Vec<DnsHost>,
    pub switchovers: Vec<Switchover>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHost {
    /// Relative to the zone, lowercase.
    pub name: String,
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchoverMode {
    /// Every member priority 0 weight 0 (CIC).
    Equal,
    /// The first member preferred, the next behind it (Mitel, Spectralink).
    Ordered,
}

impl SwitchoverMode {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchoverMode::Equal => "equal",
            SwitchoverMode::Ordered => "ordered",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Switchover {
    pub name: String,
    /// Host names (relative, lowercase), each with a `[[dns.host]]` record.
    pub members: Vec<String>,
    pub mode: SwitchoverMode,
    /// One A record per healthy member, no PTR.
    pub provision_name: Option<String>,
    pub services: Vec<Service>,
    pub health: Option<Health>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// E.g. `_sip._udp`, lowercase.
    pub srv: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    /// A SIP OPTIONS request over UDP; any SIP response counts as up.
    SipOptions,
    /// A TCP connection that is accepted.
    Tcp,
}

impl HealthCheck {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheck::SipOptions => "sip-options",
            HealthCheck::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub check: HealthCheck,
    pub interval: u32,
    pub timeout: u32,
    /// The port checked on every member: the first `_udp` service for
    /// SIP OPTIONS, the first `_tcp` service for TCP.
    pub port: u16,
}

/// The SNTP service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Time {
    pub serve: bool,
    /// Stratum announced in replies.
    pub stratum: u8,
    pub port: u16,
}

impl Default for Time {
    fn default() -> Self {
        Time {
            serve: false,
            stratum: 10,
            port: 123,
        }
    }
}

/// Whether `label` may be a DNS label here: letters, digits, `-`, and `_`
/// (service labels), 1-63 characters.
fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(valid_label)
}

impl Cx<'_> {
    pub(super) fn port(&self, p: &Spanned<i64>, key: &str) -> Result<u16, ConfigError> {
        u16::try_from(*p.get_ref())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| self.err(p, key, "expected a port number, 1-65535"))
    }

    /// A name relative to the zone (a trailing dot makes it absolute; it must
    /// then lie inside the zone).
    fn relative_name(
        &self,
        s: &Spanned<String>,
        key: &str,
        zone: &str,
    ) -> Result<String, ConfigError> {
        let raw = s.get_ref().trim().to_ascii_lowercase();
        let name = match raw.strip_suffix('.') {
            Some(abs) => match abs.strip_suffix(&format!(".{zone}")) {
                Some(rel) => rel.to_string(),
                None => {
                    return Err(self.err(
                        s,
                        key,
                        format!(
                            "`{raw}` is outside the zone {zone}; write it relative to the zone"
                        ),
                    ));
                }
            },
            None => raw,
        };
        if !valid_name(&name) {
            return Err(self.err(
                s,
                key,
                format!(
                    "`{name}` is not a host name (labels of letters, digits and -, up to 63 characters)"
                ),
            ));
        }
        Ok(name)
    }

    pub(super) fn dns(&self, raw: Spanned<RawDns>) -> Result<Dns, ConfigError> {
        let span = raw.span();
        let raw = raw.into_inner();
        let zone = match &raw.zone {
            Some(z) => {
                let name = z
                    .get_ref()
                    .trim()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                if !valid_name(&name) {
                    return Err(self.err(
                        z,
                        "dns.zone",
                        format!("`{name}` is not a domain name, e.g. \"lab.voip\""),
                    ));
                }
                name
            }
            None => {
                return Err(self.at(
                    span,
                    "dns.zone",
                    "missing: the voice zone dialtone answers for, e.g. zone = \"lab.voip\"",
                ));
            }
        };
        let ttl = match &raw.ttl {
            Some(t) => self.duration(t, "dns.ttl")?,
            None => 60,
        };
        let mut upstream = Vec::new();
        for (i, u) in raw.upstream.iter().enumerate() {
            let key = format!("dns.upstream[{i}]");
            let text = u.get_ref().trim();
            let addr = text
                .parse::<SocketAddr>()
                .or_else(|_| text.parse::<Ipv4Addr>().map(|ip| SocketAddr::from((ip, 53))))
                .map_err(|_| {
                    self.err(
                        u,
                        &key,
                        format!("`{text}` is not an address, e.g. \"192.168.1.254\" or \"192.168.1.254:53\""),
                    )
                })?;
            upstream.push(addr);
        }
        let port = match &raw.port {
            Some(p) => self.port(p, "dns.port")?,
            None => 53,
        };
        let self_name = match &raw.self_name {
            Some(s) => self.relative_name(s, "dns.self_name", &zone)?,
            None => "dialtone".to_string(),
        };

        let mut hosts: Vec<DnsHost> = Vec::new();
        for (i, h) in raw.host.iter().enumerate() {
            let key = format!("dns.host[{i}]");
            let name = self.relative_name(&h.name, &format!("{key}.name"), &zone)?;
            let ip: Ipv4Addr = h.ip.get_ref().trim().parse().map_err(|_| {
                self.err(
                    &h.ip,
                    &format!("{key}.ip"),
                    format!("`{}` is not an IPv4 address", h.ip.get_ref()),
                )
            })?;
            if hosts.iter().any(|o| o.name == name && o.ip == ip) {
                return Err(self.err(
                    &h.name,
                    &format!("{key}.name"),
                    format!("host `{name}` with {ip} is listed twice"),
                ));
            }
            if name == self_name || name.eq_ignore_ascii_case("provisioningserver") {
                return Err(self.err(
                    &h.name,
                    &format!("{key}.name"),
                    format!("`{name}` is the appliance's own name; choose another"),
                ));
            }
            hosts.push(DnsHost { name, ip });
        }

        let mut switchovers: Vec<Switchover> = Vec::new();
        for (i, s) in raw.switchover.iter().enumerate() {
            let key = format!("dns.switchover[{i}]");
            let sw = self.switchover(s, &key, &zone, &hosts, &self_name)?;
            if switchovers.iter().any(|o| o.name == sw.name) {
                return Err(self.err(
                    &s.name,
                    &format!("{key}.name"),
                    format!("switchover `{}` is defined twice", sw.name),
                ));
            }
            if let Some(p) = &sw.provision_name
                && switchovers
                    .iter()
                    .any(|o| o.provision_name.as_deref() == Some(p))
            {
                return Err(self.err(
                    s.provision_name.as_ref().unwrap_or(&s.name),
                    &format!("{key}.provision_name"),
                    format!("`{p}` is already another switchover's provision name"),
                ));
            }
            for svc in &sw.services {
                if switchovers
                    .iter()
                    .any(|o| o.services.iter().any(|x| x.srv == svc.srv))
                {
                    return Err(self.err(
                        &s.name,
                        &format!("{key}.services"),
                        format!(
                            "{}.{zone} already belongs to another switchover; one SRV name has one set of servers",
                            svc.srv
                        ),
                    ));
                }
            }
            switchovers.push(sw);
        }

        Ok(Dns {
            zone,
            ttl,
            upstream,
            leases: raw.leases.unwrap_or(true),
            port,
            self_name,
            hosts,
            switchovers,
        })
    }

    fn switchover(
        &self,
        s: &RawSwitchover,
        key: &str,
        zone: &str,
        hosts: &[DnsHost],
        self_name: &str,
    ) -> Result<Switchover, ConfigError> {
        let name = s.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(self.err(&s.name, &format!("{key}.name"), "expected a name"));
        }
        let mut members: Vec<String> = Vec::new();
        if s.members.get_ref().is_empty() {
            return Err(self.err(
                &s.members,
                &format!("{key}.members"),
                "expected the host names of the call servers, e.g. [\"vm40ic1\", \"vm40ic2\"]",
            ));
        }
        for (j, m) in s.members.get_ref().iter().enumerate() {
            let mkey = format!("{key}.members[{j}]");
            let member = self.relative_name(m, &mkey, zone)?;
            if !hosts.iter().any(|h| h.name == member) {
                return Err(self.err(
                    m,
                    &mkey,
                    format!("`{member}` has no [[dns.host]] record; add one with its address"),
                ));
            }
            if members.contains(&member) {
                return Err(self.err(m, &mkey, format!("`{member}` is listed twice")));
            }
            members.push(member);
        }
        let mode = match &s.mode {
            None => SwitchoverMode::Equal,
            Some(m) => match m.get_ref().to_ascii_lowercase().as_str() {
                "equal" => SwitchoverMode::Equal,
                "ordered" => SwitchoverMode::Ordered,
                other => {
                    return Err(self.err(
                        m,
                        &format!("{key}.mode"),
                        format!("`{other}`: expected \"equal\" or \"ordered\""),
                    ));
                }
            },
        };
        let provision_name = match &s.provision_name {
            None => None,
            Some(p) => {
                let pkey = format!("{key}.provision_name");
                let p_name = self.relative_name(p, &pkey, zone)?;
                if hosts.iter().any(|h| h.name == p_name) {
                    return Err(self.err(
                        p,
                        &pkey,
                        format!(
                            "`{p_name}` clashes with a [[dns.host]] of that name; the provision name must be its own"
                        ),
                    ));
                }
                if p_name == self_name || p_name == "provisioningserver" {
                    return Err(self.err(
                        p,
                        &pkey,
                        format!("`{p_name}` is the appliance's own name; choose another"),
                    ));
                }
                Some(p_name)
            }
        };
        let mut services: Vec<Service> = Vec::new();
        for (j, svc) in s.services.iter().enumerate() {
            let skey = format!("{key}.services[{j}]");
            let v = svc.get_ref();
            let srv = match &v.srv {
                Some(srv) => {
                    let text = srv.get_ref().trim().to_ascii_lowercase();
                    let text = text.strip_suffix(&format!(".{zone}")).unwrap_or(&text);
                    let labels: Vec<&str> = text.split('.').collect();
                    if labels.len() < 2
                        || !labels[..2]
                            .iter()
                            .all(|l| l.starts_with('_') && l.len() > 1)
                        || !valid_name(text)
                    {
                        return Err(self.err(
                            srv,
                            &format!("{skey}.srv"),
                            format!(
                                "`{text}`: an SRV name is `_service._proto`, both labels starting with `_`, e.g. \"_sip._udp\""
                            ),
                        ));
                    }
                    text.to_string()
                }
                None => {
                    return Err(self.err(
                        svc,
                        &skey,
                        "missing srv: the service name, e.g. srv = \"_sip._udp\"",
                    ));
                }
            };
            let port = match &v.port {
                Some(p) => self.port(p, &format!("{skey}.port"))?,
                None => {
                    return Err(self.err(
                        svc,
                        &skey,
                        format!(
                            "missing port: the port of {srv} on the call servers, e.g. port = 5060"
                        ),
                    ));
                }
            };
            if services.iter().any(|o| o.srv == srv) {
                return Err(self.err(svc, &skey, format!("{srv} is listed twice")));
            }
            services.push(Service { srv, port });
        }
        let health = match &s.health {
            None => None,
            Some(h) => {
                let hkey = format!("{key}.health");
                let raw = h.get_ref();
                let check = match raw.check.get_ref().to_ascii_lowercase().as_str() {
                    "sip-options" => HealthCheck::SipOptions,
                    "tcp" => HealthCheck::Tcp,
                    other => {
                        return Err(self.err(
                            &raw.check,
                            &format!("{hkey}.check"),
                            format!("`{other}`: expected \"sip-options\" or \"tcp\""),
                        ));
                    }
                };
                let interval = match &raw.interval {
                    Some(d) => self.duration(d, &format!("{hkey}.interval"))?,
                    None => 5,
                };
                let timeout = match &raw.timeout {
                    Some(d) => self.duration(d, &format!("{hkey}.timeout"))?,
                    None => interval.clamp(1, 2),
                };
                let proto = match check {
                    HealthCheck::SipOptions => "_udp",
                    HealthCheck::Tcp => "_tcp",
                };
                let port = services
                    .iter()
                    .find(|svc| svc.srv.split('.').nth(1) == Some(proto))
                    .map(|svc| svc.port)
                    .ok_or_else(|| {
                        self.err(
                            &raw.check,
                            &format!("{hkey}.check"),
                            format!(
                                "this check needs a {proto} service (e.g. \"_sip.{proto}\") to know which port to check"
                            ),
                        )
                    })?;
                Some(Health {
                    check,
                    interval,
                    timeout,
                    port,
                })
            }
        };
        Ok(Switchover {
            name,
            members,
            mode,
            provision_name,
            services,
            health,
        })
    }

    pub(super) fn time(&self, raw: Option<Spanned<RawTime>>) -> Result<Time, ConfigError> {
        let mut t = Time::default();
        let Some(raw) = raw else {
            return Ok(t);
        };
        let raw = raw.into_inner();
        t.serve = raw.serve.unwrap_or(true);
        if let Some(s) = &raw.stratum {
            t.stratum = u8::try_from(*s.get_ref())
                .ok()
                .filter(|n| (1..=15).contains(n))
                .ok_or_else(|| self.err(s, "time.stratum", "expected a stratum, 1-15"))?;
        }
        if let Some(p) = &raw.port {
            t.port = self.port(p, "time.port")?;
        }
        Ok(t)
    }
}
