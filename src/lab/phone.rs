//! Emulated phones, one per family, booting as PHONES.md describes against a
//! running dialtone: DHCP with the family's identity and option 55, then DNS,
//! time, and the files in the family's order over the protocol it uses, on
//! real sockets inside the phones' namespace. `dialtone demo` and the
//! namespace tests drive them; what a phone does next is decided from what
//! it received (the options, the files), never from the configuration.

use std::net::{Ipv4Addr, SocketAddr};

use hickory_proto::rr::RecordType;

use super::Netns;
use super::clients::{self, Identity};
use super::sip;
use crate::dhcp::client::ParsedReply;
use crate::dhcp::options as opt;
use crate::families::{self, Family, LabPhone, Source, Step, Vars};
use crate::units::Mac;

/// One emulated phone: a family's lab phone (`families::LabPhone`).
#[derive(Debug, Clone)]
pub struct Spec {
    pub family: &'static Family,
    /// The profile name shown in the table.
    pub profile: &'static str,
    pub label: &'static str,
    /// Which of the lab's links it is on: "native" or "voice".
    pub vlan: &'static str,
    pub mac: Mac,
    pub vendor_class: Option<&'static str>,
    /// The model, sent in option 77 (RFC 3004 form).
    pub user_class: Option<&'static str>,
    pub requests: &'static [u8],
    /// A soft phone's own address (it asks with DHCPINFORM) and computer name.
    pub computer: Option<(Ipv4Addr, u8, &'static str)>,
    /// A Polycom phone's part number (its boot files are named by it).
    pub part: Option<&'static str>,
    agent: &'static str,
    pub steps: &'static [Step],
}

impl Spec {
    pub fn new(family: &'static Family, p: &'static LabPhone) -> Spec {
        Spec {
            family,
            profile: p.profile,
            label: p.label,
            vlan: p.vlan,
            mac: Mac(p.mac),
            vendor_class: p.vendor_class,
            user_class: p.user_class,
            requests: p.requests,
            computer: p
                .computer
                .map(|(ip, prefix, name)| (Ipv4Addr::from(ip), prefix, name)),
            part: p.part,
            agent: p.agent,
            steps: p.steps,
        }
    }

    fn identity(&self, requests: &[u8]) -> Identity {
        let mut options = Vec::new();
        if let Some(v) = self.vendor_class {
            options.push((opt::VENDOR_CLASS, v.as_bytes().to_vec()));
        }
        if let Some(u) = self.user_class {
            let mut b = vec![u.len() as u8];
            b.extend_from_slice(u.as_bytes());
            options.push((opt::USER_CLASS, b));
        }
        Identity {
            mac: self.mac,
            options,
            requests: requests.to_vec(),
        }
    }

    /// The model the phone would put in its file names.
    fn model(&self) -> Option<&'static str> {
        self.user_class.or(self.vendor_class)
    }

    /// What its file names are made from.
    fn vars(&self) -> Vars {
        Vars {
            mac: self.mac.bare(),
            model: self.model().unwrap_or("400HD").to_string(),
            part: self.part.unwrap_or("0000-00000-000").to_string(),
            computer: self.computer.map(|c| c.2).unwrap_or_default().to_string(),
        }
    }

    /// The User-Agent its HTTP requests carry, in its family's form (the
    /// model and firmware version, as AudioCodes and Polycom phones send).
    pub fn user_agent(&self) -> String {
        let model = self.user_class.or(self.vendor_class).unwrap_or("phone");
        self.agent
            .replace("{model}", model)
            .replace("{mac}", &self.mac.bare())
    }
}

/// A file the phone asked for.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub name: String,
    /// "http", "http range" or "tftp".
    pub via: &'static str,
    /// Bytes received, or why not.
    pub got: Result<usize, String>,
    /// The phone carries on without it (PHONES.md: optional files).
    pub optional: bool,
}

/// What one boot did.
#[derive(Debug, Clone)]
pub struct Boot {
    pub address: Option<Ipv4Addr>,
    /// The options of the answer, decoded, in wire order.
    pub options: Vec<(u8, Vec<u8>)>,
    /// DNS questions asked and their answers.
    pub dns: Vec<(String, Vec<String>)>,
    /// SNTP: stratum and offset in seconds.
    pub time: Option<(u8, f64)>,
    pub files: Vec<Fetched>,
    /// How the boot ended: what the phone would do next, or what stopped it.
    pub result: Result<String, String>,
}

impl Boot {
    fn new() -> Boot {
        Boot {
            address: None,
            options: Vec::new(),
            dns: Vec::new(),
            time: None,
            files: Vec::new(),
            result: Err("did not start".into()),
        }
    }
}

/// The lab's phones: every family's, in family order. Their MACs carry
/// their makers' OUIs.
pub fn lab_phones() -> Vec<Spec> {
    families::lab_phones()
        .map(|(f, p)| Spec::new(f, p))
        .collect()
}

/// The text of option `code` in `reply`.
/// Option `code` as text; a C string's terminating NUL (dnsmasq ends its
/// string options with one) is not part of it, as phones read it.
pub fn text(reply: &ParsedReply, code: u8) -> Option<String> {
    reply.get(code).map(|b| {
        String::from_utf8_lossy(b)
            .trim_end_matches('\0')
            .to_string()
    })
}

/// The first address of option `code`.
pub fn first_addr(reply: &ParsedReply, code: u8) -> Option<Ipv4Addr> {
    reply
        .get(code)
        .and_then(|b| b.get(..4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(Ipv4Addr::from)
}

/// The registrar an SRV lookup names: the target and port of the best
/// priority, from answers as `clients::ask` gives them ("priority weight
/// port target").
pub fn best_srv(answers: &[String]) -> Option<(String, u16)> {
    answers
        .iter()
        .filter_map(|a| {
            let f: Vec<&str> = a.split_whitespace().collect();
            let prio: u16 = f.first()?.parse().ok()?;
            let port: u16 = f.get(2)?.parse().ok()?;
            Some((prio, f.get(3)?.trim_end_matches('.').to_string(), port))
        })
        .min()
        .map(|(_, host, port)| (host, port))
}

/// A provisioning URL split into scheme, host, port and path (ending in `/`).
pub fn split_url(url: &str) -> Option<(&str, &str, u16, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        "tftp" => 69,
        _ => return None,
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, default),
    };
    let mut path = path.to_string();
    if !path.ends_with('/') {
        path.push('/');
    }
    Some((scheme, host, port, path))
}

/// Where a phone fetches its files: an HTTP server (address, port and the
/// path its names go under), or a TFTP server.
#[derive(Debug, Clone)]
enum Base {
    Http(Ipv4Addr, u16, String),
    Tftp(Ipv4Addr),
}

/// Everything a boot needs from the phones' side, on one thread in the
/// namespace.
struct Phone<'a> {
    spec: &'a Spec,
    interface: String,
    ip: Ipv4Addr,
    dns: Option<Ipv4Addr>,
    boot: Boot,
}

impl Phone<'_> {
    fn ask(&mut self, name: &str, qtype: RecordType) -> Vec<String> {
        let Some(server) = self.dns else {
            return Vec::new();
        };
        let answers = clients::ask(server, self.ip, name, qtype)
            .unwrap_or_else(|e| vec![format!("no answer: {e}")]);
        self.boot
            .dns
            .push((format!("{name} {qtype}"), answers.clone()));
        answers
    }

    /// An address for `host`: itself, or its first A record.
    fn resolve(&mut self, host: &str) -> Option<Ipv4Addr> {
        if let Ok(ip) = host.parse() {
            return Some(ip);
        }
        self.ask(host, RecordType::A)
            .first()
            .and_then(|a| a.parse().ok())
    }

    /// The call server the phone registers with: the SRV target for a SIP
    /// domain (port 0), else the host itself.
    fn registrar(&mut self, host: &str, port: u16, srv: &str) -> Result<String, String> {
        if port != 0 {
            return Ok(format!("{host}:{port}"));
        }
        let answers = self.ask(&format!("{srv}.{host}"), RecordType::SRV);
        best_srv(&answers)
            .map(|(target, port)| format!("{target}:{port}"))
            .ok_or_else(|| format!("no SRV record for {srv}.{host}"))
    }

    /// `name` from `base`, recorded; its bytes, or `None` (the reason is
    /// in the record).
    fn get(&mut self, base: &Base, name: &str, optional: bool) -> Option<Vec<u8>> {
        match base {
            Base::Http(ip, port, path) => self.http_part(*ip, *port, path, name, optional, None),
            Base::Tftp(server) => {
                let got = clients::tftp_get(*server, self.ip, name);
                self.boot.files.push(Fetched {
                    name: name.to_string(),
                    via: "tftp",
                    got: got.as_ref().map(Vec::len).map_err(|e| e.to_string()),
                    optional,
                });
                got.ok()
            }
        }
    }

    fn http_part(
        &mut self,
        ip: Ipv4Addr,
        port: u16,
        dir: &str,
        name: &str,
        optional: bool,
        range: Option<u64>,
    ) -> Option<Vec<u8>> {
        let path = format!("{dir}{name}");
        let (body, got) =
            match clients::http_get(ip, port, self.ip, &path, range, &self.spec.user_agent()) {
                Ok(r) if r.status == 200 || r.status == 206 => {
                    let n = r.body.len();
                    (Some(r.body), Ok(n))
                }
                Ok(r) => (None, Err(format!("HTTP {}", r.status))),
                Err(e) => (None, Err(e.to_string())),
            };
        self.boot.files.push(Fetched {
            name: name.to_string(),
            via: if range.is_some() {
                "http range"
            } else {
                "http"
            },
            got,
            optional,
        });
        body
    }

    /// Where the files come from, as the DHCP answer says.
    fn server(&mut self, reply: &ParsedReply, source: Source) -> Result<Base, String> {
        match source {
            Source::Url(code) => {
                let url = text(reply, code).ok_or_else(|| format!("no option {code}"))?;
                if !url.contains("://") {
                    // A bare host or address: TFTP from it.
                    let host = url.trim().to_string();
                    let ip = self
                        .resolve(&host)
                        .ok_or_else(|| format!("cannot resolve {host}"))?;
                    return Ok(Base::Tftp(ip));
                }
                let (scheme, host, port, path) =
                    split_url(&url).ok_or_else(|| format!("option {code} `{url}` is not a URL"))?;
                let tftp = scheme == "tftp";
                let host = host.to_string();
                let ip = self
                    .resolve(&host)
                    .ok_or_else(|| format!("cannot resolve {host}"))?;
                Ok(if tftp {
                    Base::Tftp(ip)
                } else {
                    Base::Http(ip, port, path)
                })
            }
            Source::FirstAddress(code) => first_addr(reply, code)
                .map(Base::Tftp)
                .ok_or_else(|| format!("no option {code}")),
        }
    }

    fn time(&mut self, reply: &ParsedReply) {
        if let Some(ntp) =
            first_addr(reply, opt::NTP_SERVERS).or(first_addr(reply, opt::TIME_SERVERS))
        {
            self.boot.time = clients::sntp(ntp, self.ip).ok();
        }
    }

    /// A REGISTER to `target` (`host:port`) as `r` says, answering the
    /// registrar's digest challenge with the line's credentials.
    fn register(&mut self, r: &families::Registration, target: &str) -> Result<String, String> {
        let (host, port) = target
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("registrar `{target}` has no port"))?;
        let ip = self
            .resolve(&host)
            .ok_or_else(|| format!("cannot resolve {host}"))?;
        let mac = self.spec.mac.bare();
        let user = r.line.as_deref().unwrap_or(&mac);
        let account = sip::Account {
            user,
            domain: &r.host,
            auth: r
                .password
                .as_deref()
                .map(|p| (r.user.as_deref().unwrap_or(user), p)),
        };
        let who = r.line.as_ref().map(|l| format!("{l} ")).unwrap_or_default();
        match sip::register(self.ip, SocketAddr::from((ip, port)), &account) {
            Ok(answer) => Ok(format!("registered {who}at {target}: {answer}")),
            Err(why) => Err(format!("REGISTER {who}at {target}: {why}")),
        }
    }

    /// Firmware as AudioCodes and ISS phones read it: the header to compare
    /// versions, then (a fresh phone has none) the whole image.
    fn firmware(&mut self, base: &Base, image: &str) -> Result<(), String> {
        if let Base::Http(ip, port, dir) = base {
            self.http_part(*ip, *port, dir, image, false, Some(1024))
                .ok_or_else(|| format!("no firmware {image}"))?;
        }
        self.get(base, image, false)
            .ok_or_else(|| format!("no firmware {image}"))?;
        Ok(())
    }

    /// The family's steps after the DHCP answer, each decided from what the
    /// phone received so far.
    fn run(&mut self, reply: &ParsedReply) -> Result<String, String> {
        let vars = self.spec.vars();
        let mut base: Option<Base> = None;
        let mut got = families::Fetched {
            files: Vec::new(),
            domain: text(reply, opt::DOMAIN_NAME),
        };
        let mut result = Err("its boot has no last step".to_string());
        for step in self.spec.steps {
            let server =
                |base: &Option<Base>| base.clone().ok_or("no provisioning server".to_string());
            match *step {
                Step::Server(source) => base = Some(self.server(reply, source)?),
                Step::Firmware { requires_67 } => {
                    let base = server(&base)?;
                    let image = match text(reply, opt::BOOTFILE) {
                        Some(i) => i,
                        None if requires_67 => return Err("no option 67".into()),
                        None => format!("{}.img", vars.model),
                    };
                    self.firmware(&base, &image)?;
                }
                Step::Get { name, optional } => {
                    let base = server(&base)?;
                    let name = vars.fill(name);
                    match self.get(&base, &name, optional) {
                        Some(body) => got.files.push((name, body)),
                        None if optional => {}
                        None => return Err(format!("no {name}")),
                    }
                }
                Step::Listed(list) => {
                    let base = server(&base)?;
                    let last = got
                        .files
                        .last()
                        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                    for name in list(&last, &vars) {
                        let body = self
                            .get(&base, &name, false)
                            .ok_or_else(|| format!("no {name}"))?;
                        got.files.push((name, body));
                    }
                }
                Step::Reflash { requests } => result = recovered(self, reply, requests),
                Step::Register { read, srv } | Step::Locate { read, srv } => {
                    let r = read(&got)?;
                    let target = self.registrar(&r.host, r.port, srv)?;
                    result = match (step, r.line.as_deref()) {
                        (Step::Register { .. }, _) => self.register(&r, &target),
                        (_, Some(line)) => Ok(format!("registers line {line} at {target}")),
                        (_, None) => Ok(format!("registers at {target}")),
                    };
                }
                Step::Configured => {
                    let n = got.files.last().map_or(0, |(_, b)| b.len());
                    result = Ok(format!("configured ({n} bytes)"));
                }
            }
        }
        result
    }
}

/// Boots `spec` on `interface` in `ns` (the phones' namespace) and reports
/// what happened; the phone's address is removed again at the end.
pub fn boot(ns: &Netns, interface: &str, spec: &Spec) -> Boot {
    let mut boot = Boot::new();
    if let Err(e) = ns.ip(&["link", "set", interface, "address", &spec.mac.to_string()]) {
        boot.result = Err(format!("cannot set the MAC: {e}"));
        return boot;
    }
    let reply = match dhcp(ns, interface, spec) {
        Ok(r) => r,
        Err(e) => {
            boot.result = Err(format!("DHCP: {e}"));
            return boot;
        }
    };
    let (ip, prefix) = match spec.computer {
        Some((ip, prefix, _)) => (ip, prefix),
        None => {
            let prefix = reply
                .get(opt::SUBNET_MASK)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(|m| u32::from_be_bytes(m).count_ones() as u8)
                .unwrap_or(24);
            (reply.yiaddr, prefix)
        }
    };
    boot.address = Some(ip);
    boot.options = reply.options.clone();
    let cidr = format!("{ip}/{prefix}");
    if spec.computer.is_none()
        && let Err(e) = ns.ip(&["addr", "add", &cidr, "dev", interface])
    {
        boot.result = Err(format!("cannot take the address {cidr}: {e}"));
        return boot;
    }
    // Its router (option 3) is its way to the call servers, as on a real
    // phone; the route goes with the address at the end.
    let route = first_addr(&reply, opt::ROUTER)
        .map(|r| r.to_string())
        .filter(|r| {
            ns.ip(&["route", "replace", "default", "via", r, "dev", interface])
                .is_ok()
        });
    let spec_owned = spec.clone();
    let iface = interface.to_string();
    let so_far = boot.clone();
    let ran = ns.run_in(move || {
        let spec = &spec_owned;
        let mut phone = Phone {
            spec,
            interface: iface,
            ip,
            dns: first_addr(&reply, opt::DNS_SERVERS),
            boot: so_far,
        };
        phone.time(&reply);
        phone.boot.result = phone.run(&reply);
        Ok(phone.boot)
    });
    match ran {
        Ok(b) => boot = b,
        Err(e) => boot.result = Err(e.to_string()),
    }
    if let Some(r) = &route {
        let _ = ns.ip(&["route", "del", "default", "via", r, "dev", interface]);
    }
    if spec.computer.is_none() {
        let _ = ns.ip(&["addr", "del", &cidr, "dev", interface]);
    }
    boot
}

fn dhcp(ns: &Netns, interface: &str, spec: &Spec) -> anyhow::Result<ParsedReply> {
    let who = spec.identity(spec.requests);
    let iface = interface.to_string();
    match spec.computer {
        Some((ip, prefix, _)) => {
            // A PC has its address before it asks (DHCPINFORM).
            let cidr = format!("{ip}/{prefix}");
            let _ = ns.ip(&["addr", "add", &cidr, "dev", interface]);
            ns.run_in(move || clients::inform(&iface, ip, Ipv4Addr::BROADCAST, &who))
        }
        None => ns.run_in(move || clients::lease(&iface, &who)),
    }
}

/// A bricked phone: the image from option 67 over TFTP from option 66,
/// whole; then it reboots and asks again as an ordinary phone would.
fn recovered(phone: &mut Phone, reply: &ParsedReply, requests: &[u8]) -> Result<String, String> {
    let server = text(reply, opt::TFTP_SERVER).ok_or("no option 66")?;
    let server: Ipv4Addr = server
        .parse()
        .map_err(|_| format!("option 66 `{server}` is not an address"))?;
    let image = text(reply, opt::BOOTFILE).ok_or("no option 67")?;
    let got = clients::tftp_get(server, phone.ip, &image);
    let size = got.as_ref().map(Vec::len).map_err(|e| e.to_string());
    phone.boot.files.push(Fetched {
        name: image.clone(),
        via: "tftp",
        got: size.clone(),
        optional: false,
    });
    let size = size?;
    // Flashed: it comes back with its model in option 60 and asks for the
    // options of a working phone; on the native VLAN, 132 sends it on.
    let mut again = phone.spec.clone();
    again.vendor_class = phone.spec.user_class;
    let who = again.identity(requests);
    let back =
        clients::lease(&phone.interface, &who).map_err(|e| format!("after the image: {e}"))?;
    let vlan = text(&back, opt::VLAN_ID)
        .map(|v| format!("; option 132 moves it to VLAN {v}"))
        .unwrap_or_default();
    Ok(format!(
        "flashed {size} bytes, back at {}{vlan}",
        back.yiaddr
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioning_urls_split_with_default_ports() {
        assert_eq!(
            split_url("http://10.250.0.1:8088/"),
            Some(("http", "10.250.0.1", 8088, "/".to_string()))
        );
        assert_eq!(
            split_url("http://provision.lab.voip/phones"),
            Some(("http", "provision.lab.voip", 80, "/phones/".to_string()))
        );
        assert_eq!(
            split_url("tftp://10.0.0.1"),
            Some(("tftp", "10.0.0.1", 69, "/".to_string()))
        );
        assert_eq!(split_url("ftp://x/"), None);
        assert_eq!(split_url("http://x:port/"), None);
        assert_eq!(split_url("no scheme"), None);
    }

    #[test]
    fn lab_phones_send_their_identity() {
        let phones = lab_phones();
        assert_eq!(
            phones.len(),
            families::ALL.iter().map(|f| f.lab.len()).sum::<usize>()
        );
        // A model in option 77 goes in RFC 3004's length-prefixed form.
        let bricked = phones.iter().find(|p| p.profile == "recovery");
        let who = bricked.map(|p| p.identity(p.requests));
        let options = who.map(|w| w.options).unwrap_or_default();
        assert_eq!(options, [(77, b"\x05450HD".to_vec())]);
        let poly = phones.iter().find(|p| p.profile == "polycom");
        assert_eq!(
            poly.map(Spec::user_agent).as_deref(),
            Some("FileTransport PolycomVVX-Polycom-VVX411-UA/6.4.3.5018 (SN:0004f2000300)")
        );
    }
}
