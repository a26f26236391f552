//! Interaction SIP Station I and II (vendor class SIP100/SIP200, MAC
//! 00:26:fd): TFTP server and image (`sip100.img`, `sip200.img`), the
//! provisioning URL, then `config_files` and `<MAC>.cfg` (PHONES.md
//! section 2). It registers to its domain, found by SRV.

use super::{Family, Fetched, LabPhone, Maker, Profile, Registration, Source, Step, setting};
use crate::dhcp::options as opt;

/// Interactive Intelligence, as CIC's lists name it.
pub static ININ: Maker = Maker {
    name: "ININ",
    ouis: &[[0x00, 0x26, 0xfd]],
    all_ouis: true,
};

/// The server its configuration names, else its domain (option 15).
pub fn registration(f: &Fetched) -> Result<Registration, String> {
    let server = f
        .text_with(|t| setting(t, "sip_server").is_some())
        .and_then(|t| setting(&t, "sip_server").map(str::to_string));
    Ok(Registration {
        line: None,
        user: None,
        password: None,
        host: server.or(f.domain.clone()).unwrap_or_default(),
        port: 0,
    })
}

pub static FAMILY: Family = Family {
    name: "interaction-sip-station",
    title: "Interaction SIP Station",
    makers: &[&ININ],
    models: None,
    by_computer: false,
    profiles: &[Profile {
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
        lookups: &[],
    }],
    // CIC's lower-case names (PHONES.md section 2).
    images: &[("SIP100", "sip100.img"), ("SIP200", "sip200.img")],
    agents: &[],
    appliance_names: &[],
    generated: &[],
    // `+hh:mm`, as option 2 is shown everywhere.
    time_zone: crate::dhcp::options::utc_offset_text,
    lab: &[LabPhone {
        profile: "interaction-sip-station",
        label: "Interaction SIP Station (SIP100)",
        vlan: "voice",
        mac: [0x00, 0x26, 0xfd, 0x00, 0x04, 0x00],
        vendor_class: Some("SIP100"),
        user_class: None,
        requests: &[1, 3, 6, 15, 42, 2, 66, 67, 160],
        computer: None,
        part: None,
        agent: "dialtone-phone",
        steps: &[
            Step::Server(Source::Url(opt::PROVISIONING_URL)),
            Step::Firmware { requires_67: true },
            Step::Get {
                name: "config_files",
                optional: false,
            },
            Step::Get {
                name: "{MAC}.cfg",
                optional: false,
            },
            Step::Register {
                read: registration,
                srv: "_sip._udp",
            },
        ],
        class: "",
        line: None,
    }],
};
