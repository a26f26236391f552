//! Per-phone configuration files generated from the inventory, as each
//! family declares them (`families`: e.g. AudioCodes `<MAC>.cfg` of
//! `key=value` lines, Polycom `<mac>.cfg` listing its CONFIG_FILES with
//! `<mac>-registration.cfg`).
//!
//! The templates are minijinja; a file of the same name in the templates
//! folder of the files tree (`[inventory] templates`, default `templates/`)
//! replaces the built-in one, so users edit them where the phones' files
//! are. A static file of the generated name in the tree wins over the
//! template (the resolver asks generators only for names it did not find).
//! Generated files carry SIP passwords: each goes only to its own phone.
//!
//! A phone that is not in the inventory but whose family is known (by its
//! MAC's OUI, and the model from its lease) gets a provisional
//! configuration from the same templates, with `phone.provisional` set: a
//! line labelled "Setup" and no registration, like CIC's provisional
//! station. It is recorded as such for `dialtone phones`.

use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use super::seen::Seen;
use super::{Phone, Register};
use crate::config::Config;
use crate::dhcp::options::{self as opt, OptionValue};
use crate::files::path::mac_in_name;
use crate::files::resolve::{Body, Client, Found, Generator, Miss};
use crate::net::ifaces;
use crate::units::Mac;

/// The line label of a provisional configuration.
pub const PROVISIONAL_LABEL: &str = "Setup";
/// The `origin` of a provisional phone (one not declared anywhere).
pub const PROVISIONAL: &str = "provisional";

/// A generated file of a family (`families::Generated`): its name, template
/// and escaping.
pub use crate::families::Generated as Kind;

/// Every built-in template, by name.
pub fn built_in() -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::families::ALL
        .iter()
        .flat_map(|f| f.generated.iter())
        .map(|g| (g.template, g.text))
}

/// The name a phone's generated file of `kind` is served under.
pub fn file_name(phone: &Phone, kind: &Kind) -> Option<String> {
    Some(kind.file_name(phone.mac?))
}

/// The generator the file services ask after the tree.
pub struct PhoneFiles {
    config: Arc<Config>,
    templates: PathBuf,
    started: SystemTime,
    /// Phones seen: models of unknown phones, and where provisional
    /// configurations are recorded.
    seen: Arc<Seen>,
}

/// A phone not in the inventory, as far as its MAC and model tell: `None`
/// unless dialtone writes configurations for its family.
pub fn provisional(mac: Mac, model: Option<String>) -> Option<Phone> {
    let family = crate::families::of_mac(mac, model.as_deref())?;
    if family.generated.is_empty() {
        return None;
    }
    Some(Phone {
        origin: PROVISIONAL.into(),
        name: None,
        mac: Some(mac),
        computer: None,
        manufacturer: crate::families::maker_of(mac),
        model,
        family,
        extension: None,
        sip_user: None,
        sip_password: None,
        label: Some(PROVISIONAL_LABEL.into()),
        register: None,
        proxy_group: None,
    })
}

impl PhoneFiles {
    /// `None` without a `[files]` section (nothing is served then).
    pub fn new(config: Arc<Config>) -> Option<PhoneFiles> {
        let files = config.files.as_ref()?;
        let templates = files.root.join(&config.inventory.templates);
        Some(PhoneFiles {
            config,
            templates,
            started: SystemTime::now(),
            seen: Arc::new(Seen::default()),
        })
    }

    /// Uses (and records provisional configurations in) `seen`.
    pub fn with_seen(mut self, seen: Arc<Seen>) -> PhoneFiles {
        self.seen = seen;
        self
    }

    /// The inventory's phone with this MAC, else a provisional one.
    pub fn phone(&self, mac: Mac) -> Option<Cow<'_, Phone>> {
        match self.config.phones.by_mac(mac) {
            Some(p) => Some(Cow::Borrowed(p)),
            None => provisional(mac, self.seen.model(mac)).map(Cow::Owned),
        }
    }

    /// The template text: the tree's, else the built-in one.
    fn template(&self, name: &str) -> (String, String) {
        let path = self.templates.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => (t, path.display().to_string()),
            Err(_) => (
                built_in()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t.to_string())
                    .unwrap_or_default(),
                format!("built-in {name}"),
            ),
        }
    }

    /// Renders `kind` for `phone` asked by `client_ip`.
    pub fn render(
        &self,
        phone: &Phone,
        kind: &Kind,
        client_ip: Ipv4Addr,
    ) -> Result<String, String> {
        let (text, source) = self.template(kind.template);
        let ctx = Context::new(&self.config, phone, client_ip, &source);
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // A configuration file ends with its last line's newline.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        // XML files: values are escaped so a `"` or `&` in a password or
        // name cannot break the attribute it sits in.
        let xml = kind.xml;
        env.set_auto_escape_callback(move |_| {
            if xml {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        env.add_template("t", &text)
            .and_then(|()| env.get_template("t")?.render(minijinja::value::Serde(&ctx)))
            .map_err(|e| format!("{source}: {e:#}"))
    }
}

impl Generator for PhoneFiles {
    fn generate(&self, path: &[String], client: &Client) -> Option<Result<Found, Miss>> {
        // `<MAC>.cfg`, or `<MODEL>/<MAC>.cfg` (AudioCodes' static DNS method).
        let (base, dirs) = path.split_last()?;
        if dirs.len() > 1 {
            return None;
        }
        let (prefix, mac, suffix) = mac_in_name(base)?;
        let phone = self.phone(mac)?;
        let kind = phone.family.generated_file(&prefix, &suffix)?;
        let rel = path.join("/");
        if client.mac != Some(mac) {
            return Some(Err(Miss::Private {
                path: rel,
                owner: mac,
            }));
        }
        Some(match self.render(&phone, kind, client.ip) {
            Ok(text) => Ok({
                if matches!(phone, Cow::Owned(_)) {
                    self.seen.provisional(mac, crate::now());
                }
                Found {
                    path: rel,
                    size: text.len() as u64,
                    body: Body::Bytes(Bytes::from(text)),
                    modified: self.started,
                }
            }),
            Err(e) => {
                tracing::warn!(target: "dialtone::files", %mac, file = %rel, error = %e, "cannot render the phone's configuration");
                Err(Miss::Io(std::io::Error::other(e)))
            }
        })
    }
}

/// What a template sees.
#[derive(Debug, Serialize)]
struct Context {
    phone: PhoneCtx,
    /// Where the phone registers; none: the template leaves it out.
    registrar: Option<Registrar>,
    /// The appliance's address facing the phone (its NTP server).
    appliance: Option<String>,
    /// Option 2 of the phone's subnet as `+hh:mm`.
    time_offset: Option<String>,
    /// Option 2 in seconds.
    time_offset_seconds: Option<i32>,
    /// Option 2 as the phone's family writes a time zone.
    time_zone: Option<String>,
    /// The voice VLAN (option 132 of any subnet).
    vlan_id: Option<u16>,
    syslog: Option<String>,
    /// The SIP domain of the zone (`[dns] zone`).
    domain: Option<String>,
    /// The template the file came from.
    template: String,
}

#[derive(Debug, Serialize)]
struct PhoneCtx {
    name: String,
    /// Twelve lower-case hex digits.
    mac: String,
    #[serde(rename = "MAC")]
    mac_upper: String,
    model: String,
    extension: String,
    user: String,
    password: String,
    /// The line's label: the inventory's, else the extension, else the name.
    label: String,
    /// The phone's family, e.g. `audiocodes`.
    family: &'static str,
    /// Not in the inventory: a provisional configuration, no registration.
    provisional: bool,
}

#[derive(Debug, Serialize)]
struct Registrar {
    /// A host name or address.
    host: String,
    /// 0 for a switchover pair: the phone finds the members by SRV.
    port: u16,
    /// The members' names, in order (a switchover pair).
    members: Vec<String>,
    /// The members' SIP port: the pair's `_sip._udp` service, else its
    /// first service, else 5060 (for phones that list the members
    /// themselves rather than ask SRV).
    member_port: u16,
}

impl Context {
    fn new(config: &Config, phone: &Phone, client: Ipv4Addr, source: &str) -> Context {
        let zone = config.dns.as_ref().map(|d| d.zone.clone());
        let registrar = phone.register.as_ref().map(|r| match r {
            Register::Switchover(name) => {
                let pair = config
                    .dns
                    .iter()
                    .flat_map(|d| &d.switchovers)
                    .find(|s| &s.name == name);
                let members = pair
                    .map(|s| {
                        s.members
                            .iter()
                            .map(|m| match &zone {
                                Some(z) => format!("{m}.{z}"),
                                None => m.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let member_port = pair
                    .and_then(|s| {
                        s.services
                            .iter()
                            .find(|v| v.srv == "_sip._udp")
                            .or(s.services.first())
                    })
                    .map_or(5060, |v| v.port);
                Registrar {
                    host: zone.clone().unwrap_or_else(|| name.clone()),
                    port: 0,
                    members,
                    member_port,
                }
            }
            Register::Address { host, port } => Registrar {
                host: host.clone(),
                port: port.unwrap_or(5060),
                members: Vec::new(),
                member_port: port.unwrap_or(5060),
            },
        });
        let subnet = config.dhcp.subnets.iter().find(|s| s.net.contains(client));
        let offset = subnet
            .and_then(|s| s.options.get(&opt::TIME_OFFSET))
            .or_else(|| config.dhcp.options.get(&opt::TIME_OFFSET))
            .and_then(|v| match v {
                OptionValue::Bytes(b) => <[u8; 4]>::try_from(b.as_slice())
                    .ok()
                    .map(i32::from_be_bytes),
                _ => None,
            });
        let vlan_id = config
            .dhcp
            .subnets
            .iter()
            .filter_map(|s| s.options.get(&opt::VLAN_ID))
            .chain(config.dhcp.options.get(&opt::VLAN_ID))
            .find_map(|v| match v {
                OptionValue::Bytes(b) => decode_vlan(b),
                _ => None,
            });
        Context {
            phone: PhoneCtx {
                name: phone.name.clone().unwrap_or_default(),
                mac: phone.mac.map(|m| m.bare()).unwrap_or_default(),
                mac_upper: phone
                    .mac
                    .map(|m| m.bare().to_ascii_uppercase())
                    .unwrap_or_default(),
                model: phone.model.clone().unwrap_or_default(),
                extension: phone.extension.clone().unwrap_or_default(),
                password: phone.sip_password.clone().unwrap_or_default(),
                label: phone
                    .label
                    .clone()
                    .or_else(|| phone.extension.clone())
                    .or_else(|| phone.name.clone())
                    .unwrap_or_default(),
                user: phone.user().unwrap_or_default().to_string(),
                family: phone.family.name,
                provisional: phone.origin == PROVISIONAL,
            },
            registrar,
            appliance: appliance_facing(config, client).map(|a| a.to_string()),
            time_offset: offset.map(opt::utc_offset_text),
            time_offset_seconds: offset,
            time_zone: offset.map(phone.family.time_zone),
            vlan_id,
            // `[inventory] syslog`, else the appliance itself while it
            // receives the phones' logs; "off": the phone logs locally.
            syslog: match config.inventory.syslog.as_deref() {
                Some("off") => None,
                Some(s) => Some(s.to_string()),
                None if config.syslog.serve => {
                    appliance_facing(config, client).map(|a| a.to_string())
                }
                None => None,
            },
            domain: zone,
            template: source.to_string(),
        }
    }
}

/// Option 132 as configured: ASCII digits, or a 16- or 32-bit number.
fn decode_vlan(b: &[u8]) -> Option<u16> {
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(b).ok()?.parse().ok();
    }
    match b.len() {
        2 => Some(u16::from_be_bytes([b[0], b[1]])),
        4 => u16::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok(),
        _ => None,
    }
}

/// The appliance's address on the served interface whose network holds
/// `client`; else the router of the client's subnet (the usual place of
/// the appliance on a small site).
fn appliance_facing(config: &Config, client: Ipv4Addr) -> Option<Ipv4Addr> {
    let on_interface = config.server.interfaces.iter().find_map(|i| {
        ifaces::ipv4_addrs(i)
            .ok()?
            .into_iter()
            .find(|n| n.contains(client))
            .map(|n| n.addr)
    });
    on_interface.or_else(|| {
        config
            .dhcp
            .subnets
            .iter()
            .find(|s| s.net.contains(client))?
            .router()
    })
}

#[cfg(test)]
mod tests;
