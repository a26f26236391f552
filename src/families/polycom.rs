//! Polycom SoundPoint/VVX: the provisioning URL in option 160 (not 66),
//! then `<part>.bootrom.ld`, `<mac>.cfg` (the master file), the application
//! it names and the files in its CONFIG_FILES (PHONES.md section 2).

use super::{
    Family, Fetched, Generated, LabLine, LabPhone, Maker, Profile, Registration, Source, Step,
    Vars, attribute, unescape,
};
use crate::dhcp::options as opt;

pub static POLYCOM: Maker = Maker {
    name: "Polycom",
    ouis: &[[0x00, 0x04, 0xf2], [0x64, 0x16, 0x7f]],
    all_ouis: true,
};

/// The application and the files the master file lists.
pub fn listed(master: &str, v: &Vars) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(app) = attribute(master, "APP_FILE_PATH").filter(|a| !a.is_empty()) {
        out.push(app.replace("[PHONE_PART_NUMBER]", &v.part));
    }
    out.extend(
        attribute(master, "CONFIG_FILES")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| n.replace("[MACADDRESS]", &v.mac)),
    );
    out
}

/// Where the CONFIG_FILES entry holding `reg.1.address` says line 1
/// registers.
pub fn registration(f: &Fetched) -> Result<Registration, String> {
    let reg = f
        .text_with(|t| attribute(t, "reg.1.address").is_some())
        .ok_or("no CONFIG_FILES entry holds a registration")?;
    let host = attribute(&reg, "reg.1.server.1.address")
        .ok_or("its registration names no server")?
        .to_string();
    Ok(Registration {
        line: Some(attribute(&reg, "reg.1.address").unwrap_or("-").to_string()),
        user: attribute(&reg, "reg.1.auth.userId").map(unescape),
        password: attribute(&reg, "reg.1.auth.password").map(unescape),
        host,
        port: attribute(&reg, "reg.1.server.1.port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(5060),
    })
}

pub static FAMILY: Family = Family {
    name: "polycom",
    title: "Polycom VVX",
    makers: &[&POLYCOM],
    models: None,
    by_computer: false,
    profiles: &[Profile {
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
        lookups: &[],
    }],
    images: &[],
    agents: &["PolycomVVX", "PolycomSoundPoint"],
    appliance_names: &[],
    generated: &[
        Generated {
            name: "{mac}.cfg",
            template: "polycom.cfg",
            text: include_str!("templates/polycom.cfg"),
            xml: true,
            listed: None,
        },
        Generated {
            name: "{mac}-registration.cfg",
            template: "polycom-registration.cfg",
            text: include_str!("templates/polycom-registration.cfg"),
            xml: true,
            listed: Some("listed in CONFIG_FILES"),
        },
    ],
    // `+hh:mm`, as option 2 is shown everywhere.
    time_zone: crate::dhcp::options::utc_offset_text,
    lab: &[LabPhone {
        profile: "polycom",
        label: "Polycom VVX 411",
        vlan: "voice",
        mac: [0x00, 0x04, 0xf2, 0x00, 0x03, 0x00],
        vendor_class: Some("Polycom-VVX411"),
        user_class: None,
        requests: &[1, 3, 6, 15, 42, 2, 66, 160],
        computer: None,
        part: Some("3111-48450-001"),
        agent: "FileTransport PolycomVVX-{model}-UA/6.4.3.5018 (SN:{mac})",
        steps: &[
            Step::Server(Source::Url(opt::PROVISIONING_URL)),
            Step::Get {
                name: "{part}.bootrom.ld",
                optional: true,
            },
            Step::Get {
                name: "{mac}.cfg",
                optional: false,
            },
            Step::Listed(listed),
            Step::Register {
                read: registration,
                srv: "_sip._udp",
            },
        ],
        class: "",
        line: Some(LabLine {
            name: "Lobby",
            model: "VVX411",
            extension: "7503",
            label: "Lobby",
        }),
    }],
};
