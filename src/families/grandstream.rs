//! Grandstream GXP/GRP desk phones and HT adapters: option 66 (a URL, or a
//! bare host for TFTP) and 43 when the site sets it. The phone asks for the
//! binary `cfg<mac>` first (older firmware; `cfg<mac>.bin` on newer), then
//! `cfg<mac>.xml`, and only when that fails `cfg<model>.xml` and `cfg.xml`
//! (lower-case hex MAC). Sources and decisions: docs/phones.md,
//! "Grandstream".

use super::{
    Family, Fetched, Generated, LabLine, LabPhone, Maker, Profile, Registration, Source, Step,
    element,
};
use crate::dhcp::options as opt;

pub static GRANDSTREAM: Maker = Maker {
    name: "Grandstream",
    ouis: &[[0x00, 0x0b, 0x82], [0xc0, 0x74, 0xad], [0xec, 0x74, 0xd7]],
    all_ouis: false,
};

/// P64 is `auto` and P143 lets DHCP option 2 (the subnet's offset, which
/// dialtone sends) set the time zone (docs/phones.md, Decision).
pub fn time_zone(_: i32) -> String {
    "auto".into()
}

/// Where `cfg<mac>.xml` says account 1 registers: P47 `host[:port]`, by
/// SRV when P103 is 1 and no port is given.
pub fn registration(f: &Fetched) -> Result<Registration, String> {
    let cfg = f
        .text_with(|t| t.contains("<gs_provision"))
        .ok_or("no configuration")?;
    if element(&cfg, "P271").as_deref() != Some("1") {
        return Err("account 1 is not active (P271)".into());
    }
    let server = element(&cfg, "P47").ok_or("its configuration names no SIP server (P47)")?;
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse().map_err(|_| format!("P47 `{server}`"))?,
        ),
        None if element(&cfg, "P103").as_deref() == Some("1") => (server, 0),
        None => (server, 5060),
    };
    Ok(Registration {
        line: element(&cfg, "P35"),
        user: element(&cfg, "P36"),
        password: element(&cfg, "P34"),
        host,
        port,
    })
}

pub static FAMILY: Family = Family {
    name: "grandstream",
    title: "Grandstream",
    makers: &[&GRANDSTREAM],
    models: None,
    by_computer: false,
    profiles: &[Profile {
        name: "grandstream",
        summary: "Grandstream GXP/GRP/HT (vendor class Grandstream*, or a Grandstream MAC): provisioning URL in \
                  option 66 (43 when the configuration sets it), time offset and NTP",
        files: &[
            "cfg{mac} (binary, older firmware; optional)",
            "cfg{mac}.xml",
            "cfg<model>.xml (only when cfg{mac}.xml fails)",
            "cfg.xml (only when cfg{mac}.xml fails)",
        ],
        toml: r#"
match = [{ vendor_class = "Grandstream*" }, { mac = "000b82*" }, { mac = "c074ad*" }, { mac = "ec74d7*" }]
force = [66, 43, 2, 42]
defaults.tftp_server = "{http}/"
defaults.ntp_servers = ["self"]
"#,
        lookups: &[],
    }],
    images: &[],
    agents: &["Grandstream"],
    appliance_names: &[],
    generated: &[Generated {
        name: "cfg{mac}.xml",
        template: "grandstream.xml",
        text: include_str!("templates/grandstream.xml"),
        xml: true,
        listed: None,
    }],
    time_zone,
    lab: &[LabPhone {
        profile: "grandstream",
        label: "Grandstream GXP2160",
        vlan: "voice",
        mac: [0x00, 0x0b, 0x82, 0x00, 0x09, 0x00],
        vendor_class: Some("Grandstream GXP2160"),
        user_class: None,
        requests: &[1, 3, 6, 15, 42, 2, 43, 66],
        computer: None,
        part: None,
        agent: "Grandstream Model HW GXP2160 SW 1.0.11.3 DevId {mac}",
        steps: &[
            Step::Server(Source::Url(opt::TFTP_SERVER)),
            Step::Get {
                name: "cfg{mac}",
                optional: true,
            },
            Step::Get {
                name: "cfg{mac}.xml",
                optional: false,
            },
            Step::Register {
                read: registration,
                srv: "_sip._udp",
            },
        ],
        class: "",
        line: Some(LabLine {
            name: "Reception",
            model: "GXP2160",
            extension: "7506",
            label: "Reception",
        }),
    }],
};
