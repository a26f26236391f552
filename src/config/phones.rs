//! Checking the phone inventory: `[inventory]`, `[[phone]]` tables in the
//! configuration file and in the phones file beside it.

use std::path::PathBuf;

use toml::Spanned;

use super::phone::{Inventory, Phone, Register};
use super::raw::{RawInventory, RawPhone, RawPhonesFile};
use super::{ConfigError, Cx, Dns, profiles};
use crate::families;
use crate::units::Mac;

/// Where the inventory lives and what generated files need beyond it.
#[derive(Debug, Clone, Default)]
pub struct InventorySettings {
    /// The phones file as configured (relative to the configuration file's
    /// folder). Without it, `phones.toml` beside the configuration file is
    /// read when it exists.
    pub file: Option<PathBuf>,
    /// The folder under `[files] root` whose templates override the built-in
    /// ones.
    pub templates: String,
    /// A syslog server for generated configurations; none: logging off.
    pub syslog: Option<String>,
}

impl Cx<'_> {
    pub(super) fn inventory(
        &self,
        raw: Option<Spanned<RawInventory>>,
    ) -> Result<InventorySettings, ConfigError> {
        let mut s = InventorySettings {
            templates: "templates".into(),
            ..InventorySettings::default()
        };
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return Ok(s);
        };
        if let Some(f) = raw.file {
            if f.get_ref().trim().is_empty() {
                return Err(self.err(&f, "inventory.file", "expected a file path"));
            }
            s.file = Some(PathBuf::from(f.into_inner()));
        }
        if let Some(t) = raw.templates {
            let text = t.get_ref().trim().trim_matches('/');
            if text.is_empty() || text.split('/').any(|c| c == ".." || c == ".") {
                return Err(self.err(
                    &t,
                    "inventory.templates",
                    "expected a folder inside [files] root, e.g. \"templates\"",
                ));
            }
            s.templates = text.to_string();
        }
        if let Some(l) = raw.syslog {
            let text = l.get_ref().trim();
            if text.is_empty() || text.contains(char::is_whitespace) {
                return Err(self.err(
                    &l,
                    "inventory.syslog",
                    "expected a host name or address, e.g. \"10.250.0.1\"",
                ));
            }
            s.syslog = Some(text.to_string());
        }
        Ok(s)
    }

    /// Checks `[[phone]]` tables, adding them to `into`: MACs must be
    /// unique across the configuration and the phones file.
    pub(super) fn phones(
        &self,
        raw: Vec<RawPhone>,
        dns: Option<&Dns>,
        into: &mut Inventory,
    ) -> Result<(), ConfigError> {
        for (i, r) in raw.into_iter().enumerate() {
            let mac_span = r.mac.as_ref().map(|m| m.span()).unwrap_or_default();
            let phone = self.phone(r, i, dns)?;
            if let Some(mac) = phone.mac
                && let Some(other) = into.by_mac(mac)
            {
                return Err(self.at(
                    mac_span,
                    &format!("phone[{i}].mac"),
                    format!("{mac} is already the phone declared at {}", other.origin),
                ));
            }
            into.phones.push(phone);
        }
        Ok(())
    }

    fn phone(&self, r: RawPhone, i: usize, dns: Option<&Dns>) -> Result<Phone, ConfigError> {
        let key = |k: &str| format!("phone[{i}].{k}");
        let first = [
            &r.mac,
            &r.computer,
            &r.name,
            &r.extension,
            &r.model,
            &r.manufacturer,
            &r.profile,
        ]
        .into_iter()
        .flatten()
        .next()
        .map_or(0, |s| s.span().start);
        let origin = {
            let e = self.at(first..first, "", "");
            format!("{}:{}", e.file, e.line)
        };
        // Values end up in configuration files line by line: no control
        // characters (a newline in a password would add a line).
        for (k, v) in [
            ("mac", &r.mac),
            ("computer", &r.computer),
            ("name", &r.name),
            ("manufacturer", &r.manufacturer),
            ("model", &r.model),
            ("profile", &r.profile),
            ("extension", &r.extension),
            ("sip_user", &r.sip_user),
            ("sip_password", &r.sip_password),
            ("label", &r.label),
            ("register", &r.register),
            ("proxy_group", &r.proxy_group),
        ] {
            if let Some(v) = v
                && v.get_ref().chars().any(char::is_control)
            {
                return Err(self.err(
                    v,
                    &key(k),
                    "control characters (such as a line break) are not allowed",
                ));
            }
        }
        let text = |s: &Option<Spanned<String>>| {
            s.as_ref()
                .map(|v| v.get_ref().trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mac = match &r.mac {
            Some(m) => Some(
                m.get_ref()
                    .parse::<Mac>()
                    .map_err(|e| self.err(m, &key("mac"), e))?,
            ),
            None => None,
        };
        let manufacturer = match &r.manufacturer {
            Some(m) => Some(families::maker(m.get_ref()).ok_or_else(|| {
                self.err(
                    m,
                    &key("manufacturer"),
                    format!("expected one of {}", families::maker_names()),
                )
            })?),
            None => None,
        };
        if let (Some(mac), Some(maker), Some(m)) = (mac, manufacturer, &r.mac)
            && !maker.may_own(mac)
        {
            return Err(self.err(
                m,
                &key("mac"),
                format!(
                    "{mac} is not a {maker} address ({maker} MACs start with {})",
                    maker.ouis_text()
                ),
            ));
        }
        let model = text(&r.model);
        let family = match &r.profile {
            Some(p) => {
                let name = p.get_ref().trim();
                if profiles::find(name).is_none() {
                    return Err(self.err(
                        p,
                        &key("profile"),
                        format!("expected a built-in profile: {}", profiles::names()),
                    ));
                }
                families::of_profile(name).unwrap_or(families::generic())
            }
            None => match (manufacturer, mac.and_then(families::maker_of)) {
                (Some(maker), _) | (None, Some(maker)) => {
                    families::of_model(maker, model.as_deref().unwrap_or(""))
                }
                (None, None) if r.computer.is_some() => families::by_computer(),
                (None, None) => families::generic(),
            },
        };
        let register = match &r.register {
            Some(t) => Some(self.register(t, &key("register"), dns)?),
            None => None,
        };
        let extension = text(&r.extension);
        let sip_user = text(&r.sip_user);
        if let Some(p) = &r.sip_password
            && extension.is_none()
            && sip_user.is_none()
        {
            return Err(self.err(
                p,
                &key("sip_password"),
                "a password needs the extension or sip_user it belongs to",
            ));
        }
        Ok(Phone {
            origin,
            name: text(&r.name),
            mac,
            computer: text(&r.computer),
            manufacturer,
            model,
            family,
            extension,
            sip_user,
            sip_password: r.sip_password.map(Spanned::into_inner),
            label: text(&r.label),
            register,
            proxy_group: text(&r.proxy_group),
        })
    }

    fn register(
        &self,
        t: &Spanned<String>,
        key: &str,
        dns: Option<&Dns>,
    ) -> Result<Register, ConfigError> {
        let text = t.get_ref().trim();
        if let Some(s) = dns
            .into_iter()
            .flat_map(|d| &d.switchovers)
            .find(|s| s.name.eq_ignore_ascii_case(text))
        {
            return Ok(Register::Switchover(s.name.clone()));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h, Some(p)),
                _ => {
                    return Err(self.err(t, key, "expected host:port with a port from 1 to 65535"));
                }
            },
            None => (text, None),
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !valid {
            return Err(self.err(
                t,
                key,
                "expected a [[dns.switchover]] name, or a host name or address (with :port if not 5060)",
            ));
        }
        Ok(Register::Address {
            host: host.to_string(),
            port,
        })
    }
}

/// Checks a phones file: `[[phone]]` tables only. `file` names it in errors.
pub fn parse_phones_file(
    file: &str,
    text: &str,
    dns: Option<&Dns>,
    into: &mut Inventory,
) -> Result<(), ConfigError> {
    let cx = Cx {
        file,
        text,
        local: Default::default(),
        names: &super::lookup::Offline,
    };
    let de = toml::de::Deserializer::parse(text).map_err(|e| cx.toml_error("", &e))?;
    let raw: RawPhonesFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        cx.toml_error(&path, e.inner())
    })?;
    cx.phones(raw.phone, dns, into)
}
