//! Third-party SIP phones (ClearOne, Spectralink, phones on CallManager or
//! ShoreTel) with provisioning of their own: dialtone gives them mask,
//! router, DNS, domain, NTP and time offset only, and they register to
//! their domain, found by SRV.

use super::{Family, Fetched, LabPhone, Profile, Registration, Step};

/// The domain of option 15.
pub fn registration(f: &Fetched) -> Result<Registration, String> {
    Ok(Registration {
        line: None,
        user: None,
        password: None,
        host: f.domain.clone().ok_or("no option 15")?,
        port: 0,
    })
}

pub static FAMILY: Family = Family {
    name: "generic-sip",
    title: "SIP phone",
    makers: &[],
    models: None,
    by_computer: false,
    profiles: &[Profile {
        name: "generic-sip",
        summary: "Third-party SIP phones (ClearOne, Spectralink, phones on CallManager or ShoreTel): mask, router, DNS, \
                  domain, NTP and time offset only; give the class a match (e.g. match.mac)",
        files: &[],
        toml: r#"
force = [1, 3, 6, 15, 42, 2]
only = [1, 3, 6, 15, 42, 2]
defaults.ntp_servers = ["self"]
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
        profile: "generic-sip",
        label: "Spectralink Versity",
        vlan: "voice",
        mac: [0x00, 0x90, 0x7a, 0x00, 0x07, 0x00],
        vendor_class: Some("Spectralink"),
        user_class: None,
        requests: &[1, 3, 6, 15, 42, 2, 66, 160],
        computer: None,
        part: None,
        agent: "dialtone-phone",
        steps: &[Step::Register {
            read: registration,
            srv: "_sip._udp",
        }],
        class: r#"match.mac = "00907a*""#,
        line: None,
    }],
};
