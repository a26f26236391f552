//! The phone families dialtone knows, one file each, and everything derived
//! from their one list (`ALL`): the built-in profiles, the makers and their
//! OUIs, the files each family fetches in order, the configuration files
//! generated for it, the names `explain` says it looks up, and its emulated
//! lab phones with their boot steps.
//!
//! A family file holds data and pure functions only (how the family's own
//! configuration files are read back); the lab, the generator, `explain`
//! and the status page interpret it. Adding a family is one new file here,
//! one line in `ALL`, and its tests. The sources for each family are in
//! PHONES.md and `docs/phones.md`.

pub mod audiocodes;
pub mod cisco;
pub mod generic;
pub mod grandstream;
pub mod polycom;
pub mod sip_station;
pub mod softphone;
pub mod yealink;

use std::fmt;

use crate::units::Mac;

/// Every family, in the order `dialtone profiles` lists them.
pub static ALL: &[&Family] = &[
    &audiocodes::FAMILY,
    &polycom::FAMILY,
    &sip_station::FAMILY,
    &softphone::FAMILY,
    &yealink::FAMILY,
    &cisco::FAMILY,
    &grandstream::FAMILY,
    &generic::FAMILY,
];

/// A phone maker as CIC's lists and the phones file name it.
#[derive(Debug)]
pub struct Maker {
    pub name: &'static str,
    /// The OUIs (first three bytes of the MAC) its phones carry.
    pub ouis: &'static [[u8; 3]],
    /// Whether `ouis` lists every OUI its phones carry: then a MAC outside
    /// them is refused for this maker (the phones file, an import). Cisco
    /// has hundreds; its list is the common ones only.
    pub all_ouis: bool,
}

impl PartialEq for Maker {
    fn eq(&self, other: &Maker) -> bool {
        self.name == other.name
    }
}
impl Eq for Maker {}

impl fmt::Display for Maker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Maker {
    pub fn owns(&self, mac: Mac) -> bool {
        self.ouis.iter().any(|o| mac.0[..3] == o[..])
    }

    /// Whether `mac` may be one of its phones: one of its OUIs, or, when
    /// its list is not complete, a MAC that carries no other maker's OUI.
    pub fn may_own(&self, mac: Mac) -> bool {
        self.owns(mac) || (!self.all_ouis && maker_of(mac).is_none())
    }

    /// Its OUIs for a message: all of them, or the first three and how
    /// many more.
    pub fn ouis_text(&self) -> String {
        let shown: Vec<String> = self
            .ouis
            .iter()
            .take(if self.ouis.len() > 4 { 3 } else { 4 })
            .map(|o| format!("{:02x}:{:02x}:{:02x}", o[0], o[1], o[2]))
            .collect();
        match self.ouis.len() - shown.len() {
            0 => shown.join(" or "),
            more => format!("{} (or {more} more)", shown.join(", ")),
        }
    }
}

/// Every maker of every family, once, in family order.
pub fn makers() -> Vec<&'static Maker> {
    let mut out: Vec<&'static Maker> = Vec::new();
    for m in each_maker() {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// Every family's makers in family order, a maker shared by two families
/// twice: for lookups, which take the first that holds (no allocation; the
/// status page asks once per phone).
fn each_maker() -> impl Iterator<Item = &'static Maker> {
    ALL.iter().flat_map(|f| f.makers.iter().copied())
}

/// A maker by name, any case.
pub fn maker(name: &str) -> Option<&'static Maker> {
    each_maker().find(|m| m.name.eq_ignore_ascii_case(name.trim()))
}

/// The makers' names in alphabetical order, for error messages.
pub fn maker_names() -> String {
    let mut names: Vec<&str> = makers().iter().map(|m| m.name).collect();
    names.sort_by_key(|n| n.to_ascii_lowercase());
    names.join(", ")
}

/// The maker whose OUI `mac` carries.
pub fn maker_of(mac: Mac) -> Option<&'static Maker> {
    each_maker().find(|m| m.owns(mac))
}

/// One built-in profile: the class keys a `profile = "..."` stands for.
///
/// Written in the same TOML as a class, so it is read by the same code and
/// its errors are impossible to miss (a unit test loads them all). Three
/// kinds of keys:
/// - `match`: the rules (a table, or a list of tables of which any may
///   hold), used when the class gives no `match` of its own;
/// - `defaults.*`: option values used only where the configuration sets none
///   (globally, in the subnet, or in the class), so a provisioning URL set on
///   the voice VLAN's subnet wins over the profile's;
/// - `options.*`: values the family needs whatever else is configured (the
///   recovery image, the Skype for Business sub-options); the class's own
///   `options` still override them key by key.
///
/// `force` lists what is sent even when the phone's option 55 leaves it
/// out, and `only` limits what is sent at all (beyond the options every
/// reply carries).
#[derive(Debug)]
pub struct Profile {
    pub name: &'static str,
    /// One line for `dialtone profiles`.
    pub summary: &'static str,
    /// The files the family fetches, in order, as `dialtone profiles` and
    /// `dialtone explain` describe them.
    pub files: &'static [&'static str],
    /// The class keys the profile stands for.
    pub toml: &'static str,
    /// The names a phone of this profile looks up besides the hosts in its
    /// options, as (name, record type); `{domain}` is the phone's domain
    /// (option 15, else the zone).
    pub lookups: &'static [(&'static str, &'static str)],
}

/// A configuration file dialtone writes for each phone of a family.
#[derive(Debug)]
pub struct Generated {
    /// The name it is served under: `{MAC}` (upper-case hex) or `{mac}`
    /// (lower-case) between a prefix and a suffix, e.g. `{MAC}.cfg`.
    pub name: &'static str,
    /// The template's file name, in the templates folder of the tree (where
    /// a user's copy replaces the built-in one).
    pub template: &'static str,
    /// The built-in template (minijinja).
    pub text: &'static str,
    /// XML: values are escaped so a `"` or `&` in a password or name cannot
    /// break the attribute it sits in.
    pub xml: bool,
    /// Why the phone fetches it, when not by name at boot (`explain`).
    pub listed: Option<&'static str>,
}

impl Generated {
    /// The prefix and suffix around the MAC, and whether it is upper-case.
    pub fn parts(&self) -> (&'static str, &'static str, bool) {
        for (tag, upper) in [("{MAC}", true), ("{mac}", false)] {
            if let Some((pre, post)) = self.name.split_once(tag) {
                return (pre, post, upper);
            }
        }
        (self.name, "", false)
    }

    /// The served name for `mac`.
    pub fn file_name(&self, mac: Mac) -> String {
        let (pre, post, upper) = self.parts();
        let hex = mac.bare();
        let hex = if upper { hex.to_ascii_uppercase() } else { hex };
        format!("{pre}{hex}{post}")
    }

    /// Whether a name split around its MAC (`files::path::mac_in_name`) is
    /// this file; any case.
    pub fn is(&self, prefix: &str, suffix: &str) -> bool {
        let (pre, post, _) = self.parts();
        pre.eq_ignore_ascii_case(prefix) && post.eq_ignore_ascii_case(suffix)
    }
}

/// What the lab's emulated phone of a family does, step by step, deciding
/// each next step from what it received.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Where the files come from.
    Server(Source),
    /// Firmware as AudioCodes and ISS phones read it: the header to compare
    /// versions, then (a fresh phone has none) the whole image, named by
    /// option 67, else `{model}.img` (`required`: no option 67 stops it).
    Firmware { requires_67: bool },
    /// A file from the provisioning server. Names may hold `{mac}`,
    /// `{MAC}`, `{model}`, `{part}` and `{computer}`.
    Get { name: &'static str, optional: bool },
    /// The files the previous file lists, each required (Polycom's
    /// APP_FILE_PATH and CONFIG_FILES).
    Listed(fn(&str, &Vars) -> Vec<String>),
    /// A bricked phone: the whole image of option 67 over TFTP from option
    /// 66; then it asks DHCP again as an ordinary phone with these options,
    /// its model in option 60.
    Reflash { requests: &'static [u8] },
    /// The phone registers: `read` finds where and as whom in what it
    /// fetched; a port of 0 means the registrar is found by `srv` under the
    /// host.
    Register {
        read: fn(&Fetched) -> Result<Registration, String>,
        srv: &'static str,
    },
    /// As `Register`, but the phone only finds its registrar: the lab does
    /// not speak its registration (Skype for Business's TLS to the pool).
    Locate {
        read: fn(&Fetched) -> Result<Registration, String>,
        srv: &'static str,
    },
    /// Configured by its last file, no registration of its own to show.
    Configured,
}

/// Where a phone's files come from, as its DHCP answer says.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The URL in this option (160, or 66 for phones that take a URL
    /// there); a bare host or address in it means TFTP from that host.
    Url(u8),
    /// TFTP from the first address of this option (Cisco's 150).
    FirstAddress(u8),
}

/// The values a lab phone's file names are made from.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// Twelve lower-case hex digits.
    pub mac: String,
    pub model: String,
    pub part: String,
    pub computer: String,
}

impl Vars {
    /// `name` with its placeholders filled in.
    pub fn fill(&self, name: &str) -> String {
        name.replace("{MAC}", &self.mac.to_ascii_uppercase())
            .replace("{mac}", &self.mac)
            .replace("{model}", &self.model)
            .replace("{part}", &self.part)
            .replace("{computer}", &self.computer)
    }
}

/// What a lab phone had received when it comes to register: its files, in
/// order, and its DHCP answer's domain.
#[derive(Debug, Default)]
pub struct Fetched {
    pub files: Vec<(String, Vec<u8>)>,
    /// Option 15.
    pub domain: Option<String>,
}

impl Fetched {
    /// The newest file whose text `holds` accepts.
    pub fn text_with(&self, holds: impl Fn(&str) -> bool) -> Option<String> {
        self.files.iter().rev().find_map(|(_, b)| {
            let t = String::from_utf8_lossy(b);
            holds(&t).then(|| t.into_owned())
        })
    }
}

/// Where and as whom a phone registers, as its files say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The line's number (extension), if the files name one.
    pub line: Option<String>,
    /// The SIP authentication name and password.
    pub user: Option<String>,
    pub password: Option<String>,
    /// A host name or address.
    pub host: String,
    /// 0: found by SRV.
    pub port: u16,
}

/// One emulated phone of a family for the lab and the demo.
#[derive(Debug)]
pub struct LabPhone {
    /// The built-in profile its class uses in the demo.
    pub profile: &'static str,
    pub label: &'static str,
    /// Which of the lab's links it is on: "native" or "voice".
    pub vlan: &'static str,
    pub mac: [u8; 6],
    pub vendor_class: Option<&'static str>,
    /// The model, sent in option 77 (RFC 3004 form).
    pub user_class: Option<&'static str>,
    pub requests: &'static [u8],
    /// A soft phone's own address, prefix and computer name (it asks with
    /// DHCPINFORM).
    pub computer: Option<([u8; 4], u8, &'static str)>,
    /// A Polycom phone's part number (its boot files are named by it).
    pub part: Option<&'static str>,
    /// Its HTTP User-Agent; `{model}` and `{mac}` are filled in.
    pub agent: &'static str,
    pub steps: &'static [Step],
    /// What the demo's class for its profile adds to `profile = ...`
    /// (class TOML lines), e.g. a match rule the profile leaves to the site.
    pub class: &'static str,
    /// Its line in the demo's inventory, if it has one.
    pub line: Option<LabLine>,
}

/// A lab phone's line in the demo's inventory: the SIP password is
/// `demo-<extension>` and it registers with the lab's call server pair.
#[derive(Debug)]
pub struct LabLine {
    pub name: &'static str,
    pub model: &'static str,
    pub extension: &'static str,
    pub label: &'static str,
}

/// Everything dialtone knows about one phone family.
#[derive(Debug)]
pub struct Family {
    /// As configurations, the phones file and the status page name it.
    pub name: &'static str,
    /// In a technician's words.
    pub title: &'static str,
    pub makers: &'static [&'static Maker],
    /// Among the families of a maker, the models this one takes (a glob);
    /// `None`: any.
    pub models: Option<&'static str>,
    /// Known by its computer's name rather than a MAC.
    pub by_computer: bool,
    pub profiles: &'static [Profile],
    /// Image names per model its documents give (`{image}`).
    pub images: &'static [(&'static str, &'static str)],
    /// What its HTTP User-Agent holds, any case.
    pub agents: &'static [&'static str],
    /// Names the voice zone answers with the appliance's own address
    /// because the family looks them up bare.
    pub appliance_names: &'static [&'static str],
    /// The configuration files dialtone writes for its phones; a phone of a
    /// family with some that is not in the inventory gets provisional ones.
    pub generated: &'static [Generated],
    /// How its files write the UTC offset of the phone's subnet (option 2,
    /// in seconds), as the templates' `time_zone`.
    pub time_zone: fn(i32) -> String,
    pub lab: &'static [LabPhone],
}

impl PartialEq for Family {
    fn eq(&self, other: &Family) -> bool {
        self.name == other.name
    }
}
impl Eq for Family {}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Family {
    /// The generated file a name split around its MAC is, if any.
    pub fn generated_file(&self, prefix: &str, suffix: &str) -> Option<&'static Generated> {
        self.generated.iter().find(|g| g.is(prefix, suffix))
    }
}

/// A family by name.
pub fn named(name: &str) -> Option<&'static Family> {
    ALL.iter().copied().find(|f| f.name == name)
}

/// The family for anything unknown: a third-party SIP phone.
pub fn generic() -> &'static Family {
    &generic::FAMILY
}

/// The family of a phone known by its computer's name.
pub fn by_computer() -> &'static Family {
    ALL.iter()
        .copied()
        .find(|f| f.by_computer)
        .unwrap_or(&generic::FAMILY)
}

/// The family a maker and model mean (CIC's lists: ININ's "Soft Phone" is
/// the soft phone, any other ININ model a SIP Station).
pub fn of_model(maker: &Maker, model: &str) -> &'static Family {
    let mine = || ALL.iter().copied().filter(|f| f.makers.contains(&maker));
    // A family whose model rule holds comes before one that takes any model.
    mine()
        .find(|f| {
            f.models
                .is_some_and(|g| crate::glob::matches(g, model.trim().as_bytes()))
        })
        .or_else(|| mine().find(|f| f.models.is_none()))
        .unwrap_or(&generic::FAMILY)
}

/// The family of a phone known only by its MAC (its OUI's maker) and the
/// model it gave, if any.
pub fn of_mac(mac: Mac, model: Option<&str>) -> Option<&'static Family> {
    maker_of(mac).map(|m| of_model(m, model.unwrap_or("")))
}

/// The family whose User-Agent `agent` carries.
pub fn of_agent(agent: &str) -> Option<&'static Family> {
    let lower = agent.to_ascii_lowercase();
    ALL.iter().copied().find(|f| {
        f.agents
            .iter()
            .any(|a| lower.contains(&a.to_ascii_lowercase()))
    })
}

/// The names every family looks up for the appliance, lower-case.
pub fn appliance_names() -> impl Iterator<Item = String> {
    ALL.iter()
        .flat_map(|f| f.appliance_names.iter())
        .map(|n| n.to_ascii_lowercase())
}

/// Every built-in profile, with its family.
pub fn profiles() -> impl Iterator<Item = (&'static Family, &'static Profile)> {
    ALL.iter()
        .copied()
        .flat_map(|f| f.profiles.iter().map(move |p| (f, p)))
}

/// A built-in profile by name, any case.
pub fn profile(name: &str) -> Option<&'static Profile> {
    profiles()
        .map(|(_, p)| p)
        .find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The family of a built-in profile.
pub fn of_profile(name: &str) -> Option<&'static Family> {
    profiles()
        .find(|(_, p)| p.name.eq_ignore_ascii_case(name))
        .map(|(f, _)| f)
}

/// The profiles' names, for error messages.
pub fn profile_names() -> String {
    profiles()
        .map(|(_, p)| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Image names per model from every family (`[dhcp.images]` overrides).
pub fn images() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    ALL.iter().flat_map(|f| f.images.iter())
}

/// Every lab phone, with its family.
pub fn lab_phones() -> impl Iterator<Item = (&'static Family, &'static LabPhone)> {
    ALL.iter()
        .copied()
        .flat_map(|f| f.lab.iter().map(move |p| (f, p)))
}

/// `key=value` from a configuration of `key=value` lines.
pub fn setting<'a>(cfg: &'a str, key: &str) -> Option<&'a str> {
    cfg.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

/// The text of the first element `<name>...</name>` in an XML file, with
/// the five XML entities decoded.
pub fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let at = xml.find(&open)? + open.len();
    let end = xml[at..].find(&format!("</{name}>"))?;
    Some(unescape(&xml[at..at + end]))
}

/// XML's five named entities and numeric character references decoded
/// (minijinja's escaping writes `/` as `&#x2f;`).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..end];
        let c = match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => name
                .strip_prefix("#x")
                .or_else(|| name.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The attribute `name="..."` in an XML file.
pub fn attribute<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let at = xml.find(&key)? + key.len();
    let end = xml[at..].find('"')?;
    Some(&xml[at..at + end])
}

#[cfg(test)]
mod tests;
