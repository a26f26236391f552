//! `dialtone explain`: what a phone would get from this configuration, without
//! touching the network. The DHCP answer comes from the same engine `serve`
//! runs (on an empty lease table), the DNS answers from the same zone, and the
//! files from the same resolver, so the explanation cannot drift from what the
//! server does. The lease table is the server's, read (not written) by the
//! caller when there is one, so a phone's sticky address shows.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};

use crate::config::{Class, Config, profiles};
use crate::dhcp::client::{ClientMessage, ParsedReply};
use crate::dhcp::engine::{Engine, Ingress};
use crate::dhcp::options::{self as opt, RenderCtx, Template};
use crate::dhcp::packet::{DISCOVER, Request, message_type_name};
use crate::dhcp::show::{decode, dns_wire_names};
use crate::dns::zone::Zone;
use crate::files::owners::Owners;
use crate::files::resolve::{Body, Miss, Resolver};
use crate::inventory::generate;
use crate::leases::table::LeaseTable;
use crate::units::{Ipv4Net, Mac};

/// What the phone says about itself.
#[derive(Debug, Clone)]
pub struct Phone {
    pub mac: Mac,
    pub vendor_class: Option<String>,
    pub user_class: Option<String>,
    /// Option 55.
    pub requests: Vec<u8>,
}

/// Option 55 when none is given: what the families in PHONES.md ask for.
pub const DEFAULT_REQUESTS: &[u8] = &[1, 3, 6, 15, 42, 2, 43, 66, 67, 120, 132, 150, 160];

/// Where the phone asks: the interface and the appliance's address on it.
#[derive(Debug, Clone)]
pub struct Place {
    pub interface: String,
    pub addr: Ipv4Net,
    /// Why this address (read from the interface, or assumed from a subnet).
    pub origin: String,
}

impl Place {
    /// The interface's address on this machine if it has one (read only),
    /// else an address in the first subnet (its router, or its first host).
    pub fn find(config: &Config, interface: Option<&str>) -> anyhow::Result<Place> {
        let interface = match interface {
            Some(i) => i.to_string(),
            None => config
                .server
                .interfaces
                .first()
                .cloned()
                .unwrap_or_default(),
        };
        if !interface.is_empty()
            && let Ok(addrs) = crate::net::ifaces::ipv4_addrs(&interface)
            && let Some(a) = addrs
                .iter()
                .find(|a| config.dhcp.subnets.iter().any(|s| s.net.contains(a.addr)))
        {
            return Ok(Place {
                origin: format!("{interface}'s address on this machine"),
                interface,
                addr: *a,
            });
        }
        let s = config.dhcp.subnets.first().ok_or_else(|| {
            anyhow::anyhow!("the configuration has no [[dhcp.subnet]], so no phone gets an answer")
        })?;
        let router = s.router().filter(|ip| s.net.contains(*ip));
        let ip = router.unwrap_or_else(|| Ipv4Addr::from(u32::from(s.net.network()) + 1));
        Ok(Place {
            origin: format!(
                "assumed: {} has no address in a configured subnet here, so the appliance is taken to be {ip} in {}",
                if interface.is_empty() {
                    "no interface"
                } else {
                    &interface
                },
                s.net
            ),
            interface,
            addr: Ipv4Net {
                addr: ip,
                prefix: s.net.prefix,
            },
        })
    }
}

/// The explanation, section by section. `leases` is the lease table the
/// answer is decided against (the server's, read by the caller, or empty),
/// and `leases_origin` says which.
pub fn explain(
    config: Arc<Config>,
    phone: &Phone,
    place: &Place,
    leases: LeaseTable,
    leases_origin: &str,
    now: u64,
) -> String {
    let mut o = String::new();
    let mut msg = ClientMessage::new(DISCOVER, phone.mac, 0x0d1a_1701).requests(&phone.requests);
    if let Some(v) = &phone.vendor_class {
        msg = msg.vendor_class(v);
    }
    if let Some(u) = &phone.user_class {
        msg = msg.user_class_raw(u);
    }
    let _ = writeln!(
        o,
        "Phone {} (vendor class {}, user class {}), option 55 [{}]",
        phone.mac,
        phone.vendor_class.as_deref().unwrap_or("none"),
        phone.user_class.as_deref().unwrap_or("none"),
        codes(&phone.requests)
    );
    let _ = writeln!(
        o,
        "asking on {} where dialtone is {} ({})",
        if place.interface.is_empty() {
            "(no interface)"
        } else {
            &place.interface
        },
        place.addr.addr,
        place.origin
    );
    let _ = writeln!(o, "leases: {leases_origin}");
    let req = match Request::parse(&msg.encode()) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(o, "\nthe request cannot be built: {e}");
            return o;
        }
    };

    // Classes.
    let _ = writeln!(o, "\n== Classes");
    let matched = crate::dhcp::classes::select(&config.dhcp.classes, &req);
    for class in &matched {
        if let Some(rule) = why(class, &req) {
            let _ = writeln!(
                o,
                "  {}{}: {}",
                class.name,
                class
                    .profile
                    .as_ref()
                    .map(|p| format!(" (profile {p})"))
                    .unwrap_or_default(),
                rule
            );
        }
    }
    if matched.is_empty() {
        let _ = writeln!(
            o,
            "  none: the phone gets the subnet's and the global options only"
        );
    }
    // The profiles of the matched classes, in class order.
    let profiles: Vec<&str> = matched
        .iter()
        .filter_map(|k| k.profile.as_deref())
        .collect();

    // The DHCP answer.
    let mut engine = Engine::new(config.clone(), leases);
    let ingress = Ingress {
        interface: place.interface.clone(),
        addrs: vec![place.addr],
    };
    let out = engine.handle(&req, &ingress, now);
    let _ = writeln!(o, "\n== DHCP");
    let Some(reply) = out.reply.as_ref() else {
        let _ = writeln!(
            o,
            "  no answer: {}",
            out.exchange
                .note
                .as_deref()
                .unwrap_or("no subnet serves this interface")
        );
        return o;
    };
    let Some(parsed) = ParsedReply::parse(&reply.bytes) else {
        let _ = writeln!(
            o,
            "  the reply could not be decoded (a bug; please report it)"
        );
        return o;
    };
    let _ = writeln!(
        o,
        "  {} {} ({} bytes){}{}",
        message_type_name(parsed.msg_type().unwrap_or(0)),
        parsed.yiaddr,
        reply.bytes.len(),
        if parsed.file.is_empty() {
            String::new()
        } else {
            format!(
                ", boot file field {}",
                String::from_utf8_lossy(&parsed.file)
            )
        },
        if parsed.siaddr.is_unspecified() {
            String::new()
        } else {
            format!(", next server (siaddr) {}", parsed.siaddr)
        }
    );
    for (code, data) in &parsed.options {
        let value = decode(*code, data);
        let name = opt::name(*code);
        if value.len() > 40 {
            let _ = writeln!(o, "  {code:>3} {name:<16} {value}\n{:>22}{}", "", hex(data));
        } else {
            let _ = writeln!(o, "  {code:>3} {name:<16} {value:<40} {}", hex(data));
        }
    }
    if !out.exchange.dropped.is_empty() {
        let _ = writeln!(o, "  left out for size: {}", codes(&out.exchange.dropped));
    }
    if let Some(n) = &out.exchange.note {
        let _ = writeln!(o, "  note: {n}");
    }

    // DNS.
    let _ = writeln!(o, "\n== DNS");
    let names = dns_names(&config, &parsed, &profiles);
    match &config.dns {
        None if names.is_empty() => {
            let _ = writeln!(o, "  no names to look up");
        }
        None => {
            for (name, _) in &names {
                let _ = writeln!(
                    o,
                    "  {name}: this configuration has no [dns]; the phone must find it elsewhere"
                );
            }
        }
        Some(dns) => {
            let subnets: Vec<Ipv4Net> = config.dhcp.subnets.iter().map(|s| s.net).collect();
            let zone = Zone::new(dns, &subnets, config.time.serve);
            if names.is_empty() {
                let _ = writeln!(o, "  no names to look up");
            }
            for (name, qtype) in &names {
                let _ = writeln!(
                    o,
                    "  {name} {qtype}: {}",
                    lookup(&zone, name, *qtype, place.addr.addr, now)
                );
            }
        }
    }

    // Files.
    let _ = writeln!(o, "\n== Files");
    files(&mut o, &config, phone, &req, &parsed, &profiles, place);
    o
}

/// The first match rule of `class` that holds, as text.
fn why(class: &Class, req: &Request) -> Option<String> {
    class
        .matchers
        .iter()
        .find(|m| crate::dhcp::classes::matches(m, req))
        .map(|m| match crate::config::match_table(m).as_str() {
            "{  }" => "no match rules: every client".to_string(),
            t => format!("matched {t}"),
        })
}

fn codes(c: &[u8]) -> String {
    c.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The names the phone will look up: hosts in its options, and the names its
/// family asks for (PHONES.md section 4).
fn dns_names(config: &Config, reply: &ParsedReply, profiles: &[&str]) -> Vec<(String, RecordType)> {
    let mut out: Vec<(String, RecordType)> = Vec::new();
    let mut add = |name: String, t: RecordType| {
        if !name.is_empty()
            && name.parse::<Ipv4Addr>().is_err()
            && !out
                .iter()
                .any(|(n, q)| n.eq_ignore_ascii_case(&name) && *q == t)
        {
            out.push((name, t));
        }
    };
    if let Some(url) = reply.get(opt::PROVISIONING_URL) {
        add(url_host(&String::from_utf8_lossy(url)), RecordType::A);
    }
    if let Some(h) = reply.get(opt::TFTP_SERVER) {
        // A host, or a URL (Yealink and Grandstream take one in 66).
        add(url_host(&String::from_utf8_lossy(h)), RecordType::A);
    }
    if let Some((0, names)) = reply.get(opt::SIP_SERVERS).and_then(|b| b.split_first()) {
        for n in dns_wire_names(names) {
            add(n, RecordType::A);
        }
    }
    let domain = reply
        .get(opt::DOMAIN_NAME)
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .or_else(|| config.dns.as_ref().map(|d| d.zone.clone()));
    if let Some(domain) = domain {
        // The names each matched profile's family looks up.
        for p in profiles.iter().filter_map(|p| profiles::find(p)) {
            for (name, t) in p.lookups {
                let t = if *t == "SRV" {
                    RecordType::SRV
                } else {
                    RecordType::A
                };
                add(name.replace("{domain}", &domain), t);
            }
        }
        // The call servers' SRV sets, as a phone registering by domain finds them.
        if let Some(dns) = &config.dns
            && !profiles.is_empty()
        {
            for sw in &dns.switchovers {
                for svc in &sw.services {
                    add(format!("{}.{}", svc.srv, dns.zone), RecordType::SRV);
                }
            }
        }
    }
    out
}

fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split(['/', ';']).next().unwrap_or("");
    host_port
        .rsplit_once(':')
        .map_or(host_port, |(h, _)| h)
        .to_string()
}

fn lookup(zone: &Zone, name: &str, qtype: RecordType, appliance: Ipv4Addr, now: u64) -> String {
    let Ok(qname) = Name::from_ascii(name) else {
        return "not a valid name".into();
    };
    let a = zone.answer(&qname, qtype, Some(appliance), now);
    if a.answers.is_empty() {
        return match a.rcode {
            crate::dns::zone::Rcode::NxDomain => "no such name (NXDOMAIN)".into(),
            crate::dns::zone::Rcode::Refused => {
                "not in dialtone's zone: forwarded upstream when [dns] upstream is set".into()
            }
            crate::dns::zone::Rcode::NoError => "no records of this type".into(),
        };
    }
    a.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(ip) => ip.to_string(),
            RData::SRV(s) => format!("{} {} {} {}", s.priority, s.weight, s.port, s.target),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Lease and reservation owners as the explained phone would be seen: it
/// holds the address it was offered.
struct Offered(Ipv4Addr, Mac);

impl Owners for Offered {
    fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
        (ip == self.0).then_some(self.1)
    }
}

fn files(
    o: &mut String,
    config: &Arc<Config>,
    phone: &Phone,
    req: &Request,
    reply: &ParsedReply,
    matched_profiles: &[&str],
    place: &Place,
) {
    // The last profile decides the file sequence, as later classes override
    // earlier ones.
    let profile = matched_profiles.last().and_then(|p| profiles::find(p));
    let mut wanted: Vec<(String, String)> = Vec::new();
    if let Some(boot) = reply.get(opt::BOOTFILE) {
        wanted.push((
            String::from_utf8_lossy(boot).into_owned(),
            "option 67".into(),
        ));
    }
    let ctx = RenderCtx {
        server: place.addr.addr,
        mac: phone.mac,
        vendor_class: req.vendor_class.as_deref(),
        user_class: req.user_class(),
        images: &config.dhcp.images,
        http_port: config.http_port(),
    };
    if let Some(p) = profile {
        for entry in p.files {
            let (name, note) = entry.split_once(" (").unwrap_or((entry, ""));
            let note = note.trim_end_matches(')');
            let rendered = Template::parse(name).ok().and_then(|t| t.render(&ctx));
            match rendered {
                Some(n) if !n.contains(['<', ' ']) => {
                    if !wanted.iter().any(|(w, _)| w.eq_ignore_ascii_case(&n)) {
                        wanted.push((n, note.to_string()));
                    }
                }
                _ => wanted.push((entry.to_string(), "named by the phone".into())),
            }
        }
    }
    if wanted.is_empty() {
        let _ = writeln!(
            o,
            "  none known: no boot file in the answer and no profile with a file sequence"
        );
        return;
    }
    let Some(files) = &config.files else {
        for (name, _) in &wanted {
            let _ = writeln!(
                o,
                "  {name}: this configuration has no [files]; the phone must find it elsewhere"
            );
        }
        return;
    };
    // What the phone told the server, as `serve` would have recorded it
    // from its lease: the model of a phone not in the inventory.
    let seen = Arc::new(crate::inventory::seen::Seen::default());
    seen.lease(
        &crate::leases::Lease {
            ip: reply.yiaddr,
            mac: phone.mac,
            hostname: None,
            vendor_class: phone.vendor_class.clone(),
            user_class: phone.user_class.clone(),
            interface: String::new(),
            state: crate::leases::LeaseState::Bound,
            expires: 0,
        },
        0,
    );
    let generator =
        generate::PhoneFiles::new(Arc::clone(config)).map(|g| g.with_seen(Arc::clone(&seen)));
    let mut provisional = false;
    if let Some(p) = generator.as_ref().and_then(|g| g.phone(phone.mac)) {
        provisional = p.origin == generate::PROVISIONAL;
        for g in p.family.generated {
            if let (Some(why), Some(name)) = (g.listed, generate::file_name(&p, g)) {
                wanted.push((name, why.into()));
            }
        }
        if provisional {
            let _ = writeln!(
                o,
                "  {} is not in the inventory: its configuration files are provisional (line \"{}\", no registration)",
                phone.mac,
                generate::PROVISIONAL_LABEL
            );
        }
    }
    let resolver = match Resolver::new(files, Arc::new(Offered(reply.yiaddr, phone.mac))) {
        Ok(r) => Some(match generator {
            Some(g) => r.with_generator(Arc::new(g)),
            None => r,
        }),
        Err(e) => {
            let _ = writeln!(
                o,
                "  the files root {} cannot be read here ({e}); showing names only",
                files.root.display()
            );
            None
        }
    };
    let client = crate::files::resolve::Client {
        ip: reply.yiaddr,
        mac: Some(phone.mac),
    };
    for (i, (name, note)) in wanted.iter().enumerate() {
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({note})")
        };
        let source = match (&resolver, name.contains(['<', ' '])) {
            (_, true) => String::new(),
            (None, false) => ": not checked".into(),
            (Some(r), false) => match r.resolve(name, &client, true) {
                Ok(f) => match f.body {
                    Body::File(_) => format!(": static file {} ({} bytes)", f.path, f.size),
                    Body::Bytes(_) => format!(
                        ": generated for this phone {} ({} bytes, private)",
                        if provisional {
                            "as a provisional configuration"
                        } else {
                            "from the inventory"
                        },
                        f.size
                    ),
                },
                Err(Miss::NotFound) => ": missing (HTTP 404, TFTP error 1)".into(),
                Err(Miss::Refused(why)) => format!(": refused ({why})"),
                Err(Miss::Private { owner, .. }) => {
                    format!(": private file of {owner}, refused to this phone")
                }
                Err(Miss::Io(e)) => format!(": cannot be read ({e})"),
                // explain's resolver has no sweep guard.
                Err(Miss::Slowed) => ": refused (too many misses from this address)".into(),
            },
        };
        let _ = writeln!(o, "  {}. {name}{note}{source}", i + 1);
    }
}
