//! Cisco IP phones on enterprise (CUCM-style) SIP firmware: 78xx/88xx,
//! 794x/796x/797x and 89xx/99xx loads that register to a third-party SIP
//! server. Option 150 lists the TFTP servers (binary addresses) and 66
//! names one; the phone asks for its trust lists (`CTLSEP<MAC>.tlv`,
//! `ITLSEP<MAC>.tlv`, optional), then `SEP<MAC>.cnf.xml` (upper-case MAC),
//! falling back to `XMLDefault.cnf.xml`, over TFTP. Not served here:
//! Multiplatform firmware (MPP/3PCC, `$PSN.xml`) and SPA, the 7940/7960's
//! `SIP<MAC>.cnf` and SCCP loads (docs/phones.md, "Cisco").

use super::{
    Family, Fetched, Generated, LabLine, LabPhone, Maker, Profile, Registration, Source, Step,
    element,
};
use crate::dhcp::options as opt;

/// Cisco has hundreds of OUIs, on switches and routers too: a Cisco MAC
/// tells the inventory the maker, never a DHCP class a phone.
pub static CISCO: Maker = Maker {
    name: "Cisco",
    ouis: &[
        [0x00, 0x03, 0x6b],
        [0x00, 0x00, 0x0c],
        [0x00, 0x01, 0x42],
        [0x00, 0x01, 0x43],
        [0x00, 0x01, 0x63],
        [0x00, 0x01, 0x64],
        [0x00, 0x01, 0x96],
        [0x00, 0x01, 0x97],
        [0x00, 0x01, 0xc7],
        [0x00, 0x01, 0xc9],
        [0x00, 0x0f, 0x23],
        [0x00, 0x13, 0xc4],
        [0x00, 0x16, 0xc8],
        [0x00, 0x18, 0x18],
        [0x00, 0x17, 0x5a],
        [0x00, 0x17, 0x95],
        [0x00, 0x1a, 0x2f],
        [0x00, 0x1c, 0x58],
        [0x00, 0x1d, 0xa2],
        [0x00, 0x21, 0x55],
        [0x00, 0x0e, 0x84],
        [0x00, 0x0e, 0x38],
        [0x00, 0x07, 0x0e],
        [0x00, 0x1b, 0xd4],
        [0x00, 0x19, 0x30],
        [0x00, 0x19, 0xaa],
        [0x00, 0x1d, 0x45],
        [0x00, 0x1e, 0xf7],
        [0x00, 0x18, 0x73],
        [0x00, 0x21, 0xa0],
        [0x00, 0x56, 0x2b],
        [0x1c, 0xdf, 0x0f],
        [0x30, 0xe4, 0xdb],
        [0x38, 0xed, 0x18],
        [0x58, 0xbf, 0xea],
        [0x64, 0x9e, 0xf3],
        [0x54, 0x75, 0xd0],
        [0x68, 0xef, 0xbd],
        [0xa4, 0x4c, 0x11],
        [0xb4, 0xa8, 0xb9],
        [0xc4, 0x64, 0x13],
        [0xc8, 0x9c, 0x1d],
        [0xd0, 0xd0, 0xfd],
        [0xe0, 0x5f, 0xb9],
    ],
    all_ouis: false,
};

/// `<timeZone>`: the Windows-style name Cisco's loads know for the whole
/// hour nearest the offset; daylight saving follows the name.
pub fn time_zone(seconds: i32) -> String {
    if seconds == 19_800 {
        return "India Standard Time".into();
    }
    let hours = (f64::from(seconds) / 3600.0).round() as i32;
    match hours {
        ..=-12 => "Dateline Standard Time",
        -11 => "Samoa Standard Time",
        -10 => "Hawaiian Standard Time",
        -9 => "Alaskan Standard/Daylight Time",
        -8 => "Pacific Standard/Daylight Time",
        -7 => "Mountain Standard/Daylight Time",
        -6 => "Central Standard/Daylight Time",
        -5 => "Eastern Standard/Daylight Time",
        -4 => "Atlantic Standard/Daylight Time",
        -3 => "SA Eastern Standard Time",
        -2 => "Mid-Atlantic Standard/Daylight Time",
        -1 => "Azores Standard/Daylight Time",
        0 => "GMT Standard/Daylight Time",
        1 => "W. Europe Standard/Daylight Time",
        2 => "GTB Standard/Daylight Time",
        3 => "Russian Standard/Daylight Time",
        4 => "Arabian Standard Time",
        5 => "West Asia Standard Time",
        6 => "Central Asia Standard Time",
        7 => "SE Asia Standard Time",
        8 => "China Standard/Daylight Time",
        9 => "Tokyo Standard Time",
        10 => "AUS Eastern Standard/Daylight Time",
        11 => "Central Pacific Standard Time",
        _ => "New Zealand Standard/Daylight Time",
    }
    .into()
}

/// Where `SEP<MAC>.cnf.xml` says line 1 registers: its proxy, or with
/// `USECALLMANAGER` the first call manager of the group (the others are
/// its fallbacks, in priority order).
pub fn registration(f: &Fetched) -> Result<Registration, String> {
    let cfg = f
        .text_with(|t| t.contains("<sipLines>"))
        .ok_or("no configuration")?;
    // Line 1's own elements (`<name>` is also the NTP server's).
    let line = cfg
        .split_once("<sipLines>")
        .map(|(_, l)| l)
        .unwrap_or_default();
    if element(&cfg, "registerWithProxy").as_deref() != Some("true") {
        return Err("it does not register (registerWithProxy)".into());
    }
    let proxy = element(line, "proxy").ok_or("its line names no proxy")?;
    let (host, port) = if proxy == "USECALLMANAGER" {
        let host = element(&cfg, "processNodeName").ok_or("its call manager group is empty")?;
        let port = element(&cfg, "sipPort").and_then(|p| p.parse().ok());
        (host, port.unwrap_or(5060))
    } else {
        let port = element(line, "port").and_then(|p| p.parse().ok());
        (proxy, port.unwrap_or(5060))
    };
    Ok(Registration {
        line: element(line, "name"),
        user: element(line, "authName"),
        password: element(line, "authPassword"),
        host,
        port,
    })
}

pub static FAMILY: Family = Family {
    name: "cisco",
    title: "Cisco (enterprise SIP)",
    makers: &[&CISCO],
    models: None,
    by_computer: false,
    profiles: &[Profile {
        name: "cisco",
        summary: "Cisco IP phones on enterprise SIP firmware (vendor class \"Cisco Systems, Inc. IP Phone ...\"): \
                  TFTP servers in option 150 and 66, time offset and NTP; files over TFTP only",
        files: &[
            "CTLSEP{MAC}.tlv (trust list; optional)",
            "ITLSEP{MAC}.tlv (trust list; optional)",
            "SEP{MAC}.cnf.xml (else XMLDefault.cnf.xml)",
        ],
        // Matched by option 60 alone: Cisco's OUIs are on its routers and
        // switches as well.
        toml: r#"
match = [
    { vendor_class = "Cisco Systems, Inc. IP Phone*" },
    { vendor_class = "Cisco Systems Inc. Wireless Phone*" },
]
force = [150, 66, 2, 42]
defaults.tftp_servers = ["self"]
defaults.tftp_server = "self"
defaults.ntp_servers = ["self"]
"#,
        lookups: &[],
    }],
    images: &[],
    agents: &["Cisco-CP"],
    appliance_names: &[],
    generated: &[Generated {
        name: "SEP{MAC}.cnf.xml",
        template: "cisco.cnf.xml",
        text: include_str!("templates/cisco.cnf.xml"),
        xml: true,
        listed: None,
    }],
    time_zone,
    lab: &[LabPhone {
        profile: "cisco",
        label: "Cisco IP Phone 8841 (enterprise SIP)",
        vlan: "voice",
        mac: [0x30, 0xe4, 0xdb, 0x00, 0x0a, 0x00],
        vendor_class: Some("Cisco Systems, Inc. IP Phone CP-8841"),
        user_class: None,
        requests: &[1, 3, 6, 15, 42, 2, 66, 150],
        computer: None,
        part: None,
        agent: "Cisco-CP8841/12.8.1",
        steps: &[
            Step::Server(Source::FirstAddress(opt::TFTP_SERVERS)),
            Step::Get {
                name: "CTLSEP{MAC}.tlv",
                optional: true,
            },
            Step::Get {
                name: "ITLSEP{MAC}.tlv",
                optional: true,
            },
            Step::Get {
                name: "SEP{MAC}.cnf.xml",
                optional: false,
            },
            Step::Register {
                read: registration,
                srv: "_sip._udp",
            },
        ],
        class: "",
        line: Some(LabLine {
            name: "Warehouse",
            model: "CP-8841",
            extension: "7507",
            label: "Warehouse",
        }),
    }],
};
