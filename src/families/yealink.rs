//! Yealink T4x/T5x desk phones and W-series DECT bases: option 66 with the
//! provisioning URL (a bare host there means TFTP), 43 and 160 when the
//! site sets them. Firmware 81 and later ask for `<mac>.boot`, then
//! `y000000000000.boot`; without boot files they fall back to the common
//! file (`y000000000000.cfg` or the model's `y0000000000XX.cfg`) and then
//! `<mac>.cfg` (lower-case hex), each fetched whatever the other's answer.
//! Sources and decisions: docs/phones.md, "Yealink".

use super::{
    Family, Fetched, Generated, LabLine, LabPhone, Maker, Profile, Registration, Source, Step,
    setting,
};
use crate::dhcp::options as opt;

pub static YEALINK: Maker = Maker {
    name: "Yealink",
    ouis: &[
        [0x00, 0x15, 0x65],
        [0x80, 0x5e, 0xc0],
        [0x80, 0x5e, 0x0c],
        [0x24, 0x9a, 0xd8],
        [0xe4, 0x34, 0xd7],
        [0x34, 0x97, 0xd7],
        [0x44, 0xdb, 0xd2],
        [0x64, 0x4f, 0x56],
        [0xb0, 0x61, 0xa9],
        [0xc4, 0xfc, 0x22],
        [0xec, 0x1d, 0xa9],
        [0xf0, 0x16, 0x53],
    ],
    all_ouis: false,
};

/// The common file of a model, `y0000000000XX.cfg` (the code is the
/// firmware's first number), for `dialtone explain` and the lab.
pub const MODEL_CODES: &[(&str, u16)] = &[
    ("T20P", 7),
    ("T22P", 5),
    ("T26P", 4),
    ("T28P", 0),
    ("T41P", 36),
    ("T42G", 29),
    ("T46G", 28),
    ("T48G", 35),
    ("T41S", 68),
    ("T42S", 67),
    ("T46S", 66),
    ("T48S", 65),
    ("T53W", 95),
    ("T54W", 96),
    ("T57W", 97),
    ("W52P", 25),
    ("W56P", 25),
    ("W60B", 77),
];

/// `local_time.time_zone`: a signed hour offset, `+h` or `+h:mm`.
pub fn time_zone(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let m = seconds.unsigned_abs() / 60;
    match m % 60 {
        0 => format!("{sign}{}", m / 60),
        rest => format!("{sign}{}:{rest:02}", m / 60),
    }
}

/// Where `<mac>.cfg` says account 1 registers.
pub fn registration(f: &Fetched) -> Result<Registration, String> {
    let cfg = f
        .text_with(|t| setting(t, "account.1.enable").is_some())
        .ok_or("no configuration")?;
    if setting(&cfg, "account.1.enable") != Some("1") {
        return Err("account 1 is not enabled".into());
    }
    let host = setting(&cfg, "account.1.sip_server.1.address")
        .ok_or("its configuration names no SIP server")?
        .to_string();
    Ok(Registration {
        line: setting(&cfg, "account.1.user_name").map(str::to_string),
        user: setting(&cfg, "account.1.auth_name").map(str::to_string),
        password: setting(&cfg, "account.1.password").map(str::to_string),
        host,
        port: setting(&cfg, "account.1.sip_server.1.port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(5060),
    })
}

pub static FAMILY: Family = Family {
    name: "yealink",
    title: "Yealink",
    makers: &[&YEALINK],
    models: None,
    by_computer: false,
    profiles: &[Profile {
        name: "yealink",
        summary: "Yealink T4x/T5x and W-series (vendor class yealink, or a Yealink MAC): provisioning URL in option 66 \
                  (43 and 160 when the configuration sets them), time offset and NTP",
        files: &[
            "{mac}.boot (optional)",
            "y000000000000.boot (optional)",
            "y0000000000<XX>.cfg (the model's common file; optional)",
            "{mac}.cfg",
        ],
        // Option 60 is `yealink` by default; the MAC catches phones set
        // otherwise.
        toml: r#"
match = [
    { vendor_class = "yealink*" },
    { mac = "001565*" }, { mac = "805ec0*" }, { mac = "805e0c*" }, { mac = "249ad8*" },
    { mac = "e434d7*" }, { mac = "3497d7*" }, { mac = "44dbd2*" }, { mac = "644f56*" },
    { mac = "b061a9*" }, { mac = "c4fc22*" }, { mac = "ec1da9*" }, { mac = "f01653*" },
]
force = [66, 43, 160, 2, 42]
defaults.tftp_server = "{http}/"
defaults.ntp_servers = ["self"]
"#,
        lookups: &[],
    }],
    images: &[],
    agents: &["Yealink"],
    appliance_names: &[],
    generated: &[Generated {
        name: "{mac}.cfg",
        template: "yealink.cfg",
        text: include_str!("templates/yealink.cfg"),
        xml: false,
        listed: None,
    }],
    time_zone,
    lab: &[LabPhone {
        profile: "yealink",
        label: "Yealink SIP-T46S",
        vlan: "voice",
        mac: [0x80, 0x5e, 0xc0, 0x00, 0x08, 0x00],
        vendor_class: Some("yealink"),
        user_class: None,
        requests: &[1, 3, 6, 15, 42, 2, 43, 66, 132, 160],
        computer: None,
        part: None,
        agent: "Yealink SIP-T46S 66.86.0.15 {mac}",
        steps: &[
            Step::Server(Source::Url(opt::TFTP_SERVER)),
            Step::Get {
                name: "{mac}.boot",
                optional: true,
            },
            Step::Get {
                name: "y000000000000.boot",
                optional: true,
            },
            Step::Get {
                name: "y000000000066.cfg",
                optional: true,
            },
            Step::Get {
                name: "{mac}.cfg",
                optional: false,
            },
            Step::Register {
                read: registration,
                srv: "_sip._udp",
            },
        ],
        class: "",
        line: Some(LabLine {
            name: "Desk",
            model: "T46S",
            extension: "7505",
            label: "Desk",
        }),
    }],
};
