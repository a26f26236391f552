//! AudioCodes and Genesys 400HD series (405, 420HD-450HD, C450HD, RX50):
//! the model in option 60 and in option 77 (PHONES.md section 2); firmware
//! read in part to compare versions, then `<MAC>.cfg` and `<model>.cfg`
//! over HTTP. Also its Skype for Business mode, and the bricked phone that
//! asks for 66 and 67 and takes its image over TFTP.

use super::{
    Family, Fetched, Generated, LabLine, LabPhone, Maker, Profile, Registration, Source, Step,
    setting,
};
use crate::dhcp::options as opt;

pub static AUDIOCODES: Maker = Maker {
    name: "AudioCodes",
    ouis: &[[0x00, 0x90, 0x8f]],
    all_ouis: true,
};

/// Genesys sells the same phones under its name, with AudioCodes' OUI.
pub static GENESYS: Maker = Maker {
    name: "Genesys",
    ouis: &[[0x00, 0x90, 0x8f]],
    all_ouis: true,
};

const FILES: &[&str] = &[
    "{image} (firmware, read in part to compare versions)",
    "{MAC}.cfg",
    "{model}.cfg",
];

/// What a 400HD phone does after its DHCP answer.
const BOOT: &[Step] = &[
    Step::Server(Source::Url(opt::PROVISIONING_URL)),
    Step::Firmware { requires_67: false },
    Step::Get {
        name: "{MAC}.cfg",
        optional: false,
    },
    Step::Get {
        name: "{model}.cfg",
        optional: true,
    },
    Step::Register {
        read: registration,
        srv: "_sip._udp",
    },
];

/// In Skype for Business mode it registers with the pool named in options
/// 43 and 120, found by SRV, over TLS with the pool's own authentication:
/// the lab phone finds the pool and stops there.
const BOOT_SFB: &[Step] = &[
    Step::Server(Source::Url(opt::PROVISIONING_URL)),
    Step::Firmware { requires_67: false },
    Step::Get {
        name: "{MAC}.cfg",
        optional: false,
    },
    Step::Get {
        name: "{model}.cfg",
        optional: true,
    },
    Step::Locate {
        read: registration_by_srv,
        srv: "_sipinternaltls._tcp",
    },
];

/// Where `<MAC>.cfg` says the line registers.
pub fn registration(f: &Fetched) -> Result<Registration, String> {
    let cfg = f
        .text_with(|t| setting(t, "voip/line/0/enabled").is_some())
        .ok_or("no configuration")?;
    let host = setting(&cfg, "voip/signalling/sip/proxy_address")
        .ok_or("its configuration names no proxy")?
        .to_string();
    let port = setting(&cfg, "voip/signalling/sip/proxy_port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(5060);
    Ok(Registration {
        line: Some(setting(&cfg, "voip/line/0/id").unwrap_or("-").to_string()),
        user: setting(&cfg, "voip/line/0/auth_name").map(str::to_string),
        password: setting(&cfg, "voip/line/0/auth_password").map(str::to_string),
        host,
        port,
    })
}

fn registration_by_srv(f: &Fetched) -> Result<Registration, String> {
    registration(f).map(|r| Registration { port: 0, ..r })
}

pub static FAMILY: Family = Family {
    name: "audiocodes",
    title: "AudioCodes 400HD",
    makers: &[&AUDIOCODES, &GENESYS],
    models: None,
    by_computer: false,
    profiles: &[
        Profile {
            name: "audiocodes",
            summary: "AudioCodes/Genesys 400HD series (405, 420HD-450HD, C450HD, RX50): model in option 60 or 77; \
                      provisioning URL, time, NTP, VLAN on the native VLAN; TFTP server and image per model when asked",
            files: FILES,
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
            lookups: &[("ProvisioningServer", "A")],
        },
        Profile {
            name: "audiocodes-sfb",
            summary: "AudioCodes 400HD in Skype for Business mode (vendor class MS-UC-Client): the audiocodes options plus \
                      option 43 sub-options 1-5 (set 3, the web server's name) and 120 (set sip_servers)",
            files: FILES,
            toml: r#"
match.vendor_class = "MS-UC-Client"
force = [160, 2, 42, 43, 120, 132]
defaults.provisioning_url = "{http}/"
defaults.ntp_servers = ["self"]
defaults.tftp_server = "self"
defaults.bootfile = "{image}"
options.vendor_specific = { 1 = "MS-UC-Client", 2 = "https", 4 = "443", 5 = "/CertProv/CertProvisioningService.svc" }
"#,
            lookups: &[
                ("ProvisioningServer", "A"),
                ("_sipinternaltls._tcp.{domain}", "SRV"),
                ("_sipinternal._tcp.{domain}", "SRV"),
                ("_sip._tls.{domain}", "SRV"),
                ("_sip._tcp.{domain}", "SRV"),
                ("_ntp._udp.{domain}", "SRV"),
            ],
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
            lookups: &[],
        },
    ],
    // `<model>.img` for the 400HD series, which `{image}` falls back to anyway.
    images: &[
        ("405", "405.img"),
        ("405HD", "405hd.img"),
        ("420HD", "420hd.img"),
        ("430HD", "430hd.img"),
        ("440HD", "440hd.img"),
    ],
    agents: &["AUDC-IPPhone"],
    // The bare name of its static DNS method (PHONES.md section 4).
    appliance_names: &["ProvisioningServer"],
    generated: &[Generated {
        name: "{MAC}.cfg",
        template: "audiocodes.cfg",
        text: include_str!("templates/audiocodes.cfg"),
        xml: false,
        listed: None,
    }],
    lab: &[
        LabPhone {
            profile: "audiocodes",
            label: "AudioCodes 450HD",
            vlan: "voice",
            mac: [0x00, 0x90, 0x8f, 0x00, 0x01, 0x00],
            vendor_class: Some("450HD"),
            user_class: Some("450HD"),
            requests: &[1, 3, 6, 15, 42, 2, 66, 67, 160],
            computer: None,
            part: None,
            agent: "AUDC-IPPhone-{model}_UC_3.4.6.700/1.0",
            steps: BOOT,
            class: "",
            line: Some(LabLine {
                name: "Agent450HD",
                model: "450HD",
                extension: "7501",
                label: "Agent 1",
            }),
        },
        LabPhone {
            profile: "audiocodes-sfb",
            label: "AudioCodes 450HD, Skype for Business",
            vlan: "voice",
            mac: [0x00, 0x90, 0x8f, 0x00, 0x02, 0x00],
            vendor_class: Some("MS-UC-Client"),
            user_class: Some("450HD"),
            requests: &[1, 3, 6, 15, 42, 2, 43, 66, 67, 120, 160],
            computer: None,
            part: None,
            agent: "AUDC-IPPhone-{model}_UC_3.4.6.700/1.0",
            steps: BOOT_SFB,
            class: r#"options.vendor_specific = { 3 = "sfb.lab.voip" }
options.sip_servers = ["sfb.lab.voip"]"#,
            line: Some(LabLine {
                name: "AgentSfB",
                model: "450HD",
                extension: "7502",
                label: "Agent 2",
            }),
        },
        LabPhone {
            profile: "recovery",
            label: "AudioCodes 450HD, bricked",
            vlan: "native",
            mac: [0x00, 0x90, 0x8f, 0x00, 0x06, 0x00],
            vendor_class: None,
            user_class: Some("450HD"),
            requests: &[1, 3, 66, 67],
            computer: None,
            part: None,
            agent: "AUDC-IPPhone-{model}_UC_3.4.6.700/1.0",
            // Flashed, it comes back with its model in option 60 and asks
            // for the options of a working phone; on the native VLAN, 132
            // sends it on.
            steps: &[Step::Reflash {
                requests: &[1, 3, 6, 15, 42, 2, 132, 160],
            }],
            class: "",
            line: None,
        },
    ],
    // `+hh:mm`, as option 2 is shown everywhere.
    time_zone: crate::dhcp::options::utc_offset_text,
};
