//! CIC's SIP Soft Phone: a PC known by its computer name. It asks with
//! DHCPINFORM, and option 160 is all it needs; then it fetches
//! `<computer name>.i3sipcfg`.

use super::sip_station::ININ;
use super::{Family, LabPhone, Profile, Source, Step};
use crate::dhcp::options as opt;

pub static FAMILY: Family = Family {
    name: "softphone",
    title: "SIP Soft Phone",
    makers: &[&ININ],
    // CIC's lists call it model "Soft Phone", maker ININ.
    models: Some("soft phone"),
    by_computer: true,
    profiles: &[Profile {
        name: "softphone",
        summary: "SIP Soft Phone: asks with DHCPINFORM, and option 160 is all it needs",
        files: &["<computer name>.i3sipcfg"],
        toml: r#"
match.message = "inform"
force = [160]
defaults.provisioning_url = "{http}/"
"#,
        lookups: &[],
    }],
    images: &[],
    agents: &[],
    appliance_names: &[],
    generated: &[],
    // `+hh:mm`, as option 2 is shown everywhere.
    time_zone: crate::dhcp::options::utc_offset_text,
    lab: &[LabPhone {
        profile: "softphone",
        label: "SIP Soft Phone (PattyJ.lab.voip)",
        vlan: "voice",
        mac: [0x02, 0x00, 0x00, 0x00, 0x05, 0x00],
        vendor_class: Some("MSFT 5.0"),
        user_class: None,
        requests: &[1, 3, 6, 15, 160],
        computer: Some(([10, 250, 0, 60], 24, "PattyJ.lab.voip")),
        part: None,
        agent: "dialtone-phone",
        steps: &[
            Step::Server(Source::Url(opt::PROVISIONING_URL)),
            Step::Get {
                name: "{computer}.i3sipcfg",
                optional: false,
            },
            Step::Configured,
        ],
        class: "",
        line: None,
    }],
};
