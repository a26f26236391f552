//! The phone families dialtone knows: built-in profiles a class names with
//! `profile = "..."` instead of spelling out its match rules and options.
//!
//! Each profile is written in the same TOML as a class, so it is read by the
//! same code and its errors are impossible to miss (a unit test loads them
//! all). Three kinds of keys:
//! - `match`: the rules (a table, or a list of tables of which any may hold),
//!   used when the class gives no `match` of its own;
//! - `defaults.*`: option values used only where the configuration sets none
//!   (globally, in the subnet, or in the class), so a provisioning URL set on
//!   the voice VLAN's subnet wins over the profile's;
//! - `options.*`: values the family needs whatever else is configured (the
//!   recovery image, the Skype for Business sub-options); the class's own
//!   `options` still override them key by key.
//!
//! `force` lists what is sent even when the phone's option 55 leaves it out,
//! and `only` limits what is sent at all (beyond the options every reply
//! carries). The sources for each family are in PHONES.md.

/// One built-in profile.
pub struct Profile {
    pub name: &'static str,
    /// One line for `dialtone profiles`.
    pub summary: &'static str,
    /// The files the family fetches, in order, as `dialtone profiles` and
    /// `dialtone explain` describe them.
    pub files: &'static [&'static str],
    /// The class keys the profile stands for.
    pub toml: &'static str,
}

pub const PROFILES: &[Profile] = &[
    Profile {
        name: "audiocodes",
        summary: "AudioCodes/Genesys 400HD series (405, 420HD-450HD, C450HD, RX50): model in option 60 or 77; \
                  provisioning URL, time, NTP, VLAN on the native VLAN; TFTP server and image per model when asked",
        files: &[
            "{image} (firmware, read in part to compare versions)",
            "{MAC}.cfg",
            "{model}.cfg",
        ],
        // The model is in option 60 and in option 77 (PHONES.md section 2).
        toml: r#"
match = [
    { user_class = "4??HD" }, { vendor_class = "4??HD" },
    { user_class = "C4??HD" }, { vendor_class = "C4??HD" },
    { user_class = "405" }, { vendor_class = "405" },
    { user_class = "RX50" }, { vendor_class = "RX50" },
]
force = [160, 2, 42, 132]
defaults.provisioning_url = "{http}/"
defaults.ntp_servers = ["self"]
defaults.tftp_server = "self"
defaults.bootfile = "{image}"
"#,
    },
    Profile {
        name: "audiocodes-sfb",
        summary: "AudioCodes 400HD in Skype for Business mode (vendor class MS-UC-Client): the audiocodes options plus \
                  option 43 sub-options 1-5 (set 3, the web server's name) and 120 (set sip_servers)",
        files: &[
            "{image} (firmware, read in part to compare versions)",
            "{MAC}.cfg",
            "{model}.cfg",
        ],
        toml: r#"
match.vendor_class = "MS-UC-Client"
force = [160, 2, 42, 43, 120, 132]
defaults.provisioning_url = "{http}/"
defaults.ntp_servers = ["self"]
defaults.tftp_server = "self"
defaults.bootfile = "{image}"
options.vendor_specific = { 1 = "MS-UC-Client", 2 = "https", 4 = "443", 5 = "/CertProv/CertProvisioningService.svc" }
"#,
    },
    Profile {
        name: "polycom",
        summary: "Polycom SoundPoint/VVX (MAC 00:04:f2 or 64:16:7f, vendor class Polycom*): provisioning URL in 160 \
                  (not 66), time offset and NTP",
        files: &[
            "<part>.bootrom.ld",
            "{mac}.cfg",
            "<part>.sip.ld",
            "the files {mac}.cfg lists in CONFIG_FILES",
        ],
        toml: r#"
match = [{ mac = "0004f2*" }, { mac = "64167f*" }, { vendor_class = "Polycom*" }]
force = [160, 2, 42]
defaults.provisioning_url = "{http}/"
defaults.ntp_servers = ["self"]
"#,
    },
    Profile {
        name: "interaction-sip-station",
        summary: "Interaction SIP Station I/II (vendor class SIP100/SIP200, MAC 00:26:fd): TFTP server and image \
                  (sip100.img, sip200.img), provisioning URL, VLAN on the native VLAN, time",
        files: &[
            "{image} (firmware, read in part to compare versions)",
            "config_files",
            "{MAC}.cfg",
        ],
        toml: r#"
match = [{ vendor_class = "SIP?00" }, { mac = "0026fd*" }]
force = [66, 67, 160, 132, 2, 42]
defaults.provisioning_url = "{http}/"
defaults.ntp_servers = ["self"]
defaults.tftp_server = "self"
defaults.bootfile = "{image}"
"#,
    },
    Profile {
        name: "softphone",
        summary: "SIP Soft Phone: asks with DHCPINFORM, and option 160 is all it needs",
        files: &["<computer name>.i3sipcfg"],
        toml: r#"
match.message = "inform"
force = [160]
defaults.provisioning_url = "{http}/"
"#,
    },
    Profile {
        name: "recovery",
        summary: "A client asking for 66 and 67 in option 55 (a bricked AudioCodes phone) gets this appliance as TFTP \
                  server and its model's image at once, whatever else is configured",
        files: &["{image} (over TFTP, the whole image)"],
        toml: r#"
match.requests = [66, 67]
force = [66, 67]
options.tftp_server = "self"
options.bootfile = "{image}"
"#,
    },
    Profile {
        name: "generic-sip",
        summary: "Third-party SIP phones (ClearOne, Spectralink, phones on CallManager or ShoreTel): mask, router, DNS, \
                  domain, NTP and time offset only; give the class a match (e.g. match.mac)",
        files: &[],
        toml: r#"
force = [1, 3, 6, 15, 42, 2]
only = [1, 3, 6, 15, 42, 2]
defaults.ntp_servers = ["self"]
"#,
    },
];

/// Image names the families' documents give per model (PHONES.md section 2:
/// CIC's lower-case names, and `<model>.img` for the 400HD series, which
/// `{image}` falls back to anyway). `[dhcp.images]` overrides them.
pub const IMAGES: &[(&str, &str)] = &[
    ("SIP100", "sip100.img"),
    ("SIP200", "sip200.img"),
    ("405", "405.img"),
    ("405HD", "405hd.img"),
    ("420HD", "420hd.img"),
    ("430HD", "430hd.img"),
    ("440HD", "440hd.img"),
];

pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The names, for error messages.
pub fn names() -> String {
    PROFILES
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `dialtone profiles` prints: each profile with its match rules, what
/// it sends and the files its phones fetch.
pub fn describe() -> Result<String, super::ConfigError> {
    use std::fmt::Write;
    let mut o = String::new();
    for p in PROFILES {
        let k = super::load_profile(p)?;
        let _ = writeln!(o, "{}\n  {}", p.name, p.summary);
        let rules: Vec<String> = k.matchers.iter().map(super::render::match_table).collect();
        let _ = match rules.len() {
            0 => writeln!(o, "  match:    none built in: the class must give one"),
            1 => writeln!(o, "  match:    {}", rules[0]),
            _ => writeln!(o, "  match:    any of {}", rules.join(", ")),
        };
        let mut codes: Vec<u8> = Vec::new();
        for c in k
            .force
            .iter()
            .chain(k.options.keys())
            .chain(k.defaults.keys())
        {
            if !codes.contains(c) {
                codes.push(*c);
            }
        }
        for code in codes {
            let how = if k.force.contains(&code) {
                "always"
            } else {
                "if asked"
            };
            let shown = |v: &crate::dhcp::options::OptionValue| match v {
                crate::dhcp::options::OptionValue::Bytes(b) => crate::explain::decode(code, b),
                crate::dhcp::options::OptionValue::Text(t) => format!("\"{t}\""),
                other => other.to_string(),
            };
            let value = match (k.options.get(&code), k.defaults.get(&code)) {
                (Some(v), _) => shown(v),
                (None, Some(v)) => format!("{} unless the configuration sets it", shown(v)),
                (None, None) => "from the configuration (not sent if it sets none)".into(),
            };
            let _ = writeln!(
                o,
                "  {code:>3} {:<18} {how:<9} {value}",
                crate::dhcp::options::name(code)
            );
        }
        if let Some(only) = &k.only {
            let _ = writeln!(o, "  nothing else is sent (only {only:?})");
        }
        if !p.files.is_empty() {
            let _ = writeln!(o, "  files:    {}", p.files.join(", then "));
        }
        o.push('\n');
    }
    Ok(o)
}
