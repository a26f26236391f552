//! The phone inventory: which phones the site has (MAC, model, extension,
//! SIP credentials, where they register), the families they belong to, CSV
//! import from CIC's lists, and the per-phone configuration files generated
//! for them.

pub mod csv;
pub mod file;
pub mod generate;
pub mod seen;

use std::fmt;

use crate::units::Mac;

/// A phone maker as CIC's lists name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manufacturer {
    AudioCodes,
    Genesys,
    Inin,
    Polycom,
}

impl Manufacturer {
    pub const ALL: [Manufacturer; 4] = [
        Manufacturer::AudioCodes,
        Manufacturer::Genesys,
        Manufacturer::Inin,
        Manufacturer::Polycom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Manufacturer::AudioCodes => "AudioCodes",
            Manufacturer::Genesys => "Genesys",
            Manufacturer::Inin => "ININ",
            Manufacturer::Polycom => "Polycom",
        }
    }

    /// Case-insensitive.
    pub fn parse(s: &str) -> Option<Manufacturer> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The OUIs (first three bytes of the MAC) its phones carry.
    pub fn ouis(self) -> &'static [[u8; 3]] {
        match self {
            Manufacturer::AudioCodes | Manufacturer::Genesys => &[[0x00, 0x90, 0x8f]],
            Manufacturer::Inin => &[[0x00, 0x26, 0xfd]],
            Manufacturer::Polycom => &[[0x00, 0x04, 0xf2], [0x64, 0x16, 0x7f]],
        }
    }

    pub fn owns(self, mac: Mac) -> bool {
        self.ouis().iter().any(|o| mac.0[..3] == o[..])
    }

    /// The maker whose OUI `mac` carries.
    pub fn of(mac: Mac) -> Option<Manufacturer> {
        [
            Manufacturer::AudioCodes,
            Manufacturer::Inin,
            Manufacturer::Polycom,
        ]
        .into_iter()
        .find(|m| m.owns(mac))
    }

    pub fn ouis_text(self) -> String {
        self.ouis()
            .iter()
            .map(|o| format!("{:02x}:{:02x}:{:02x}", o[0], o[1], o[2]))
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

impl fmt::Display for Manufacturer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a phone boots and which configuration files dialtone writes for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// AudioCodes and Genesys 4xxHD: `<MAC>.cfg`, `key=value` lines.
    AudioCodes,
    /// Polycom SoundPoint/VVX: `<mac>.cfg` listing its CONFIG_FILES, and
    /// `<mac>-registration.cfg` with the line's registration.
    Polycom,
    /// Interaction SIP Station I and II.
    Iss,
    /// CIC's SIP Soft Phone, known by its computer name.
    SoftPhone,
    /// Anything else: a third-party SIP phone with its own provisioning.
    Generic,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::AudioCodes => "audiocodes",
            Family::Polycom => "polycom",
            Family::Iss => "interaction-sip-station",
            Family::SoftPhone => "softphone",
            Family::Generic => "generic-sip",
        }
    }

    /// The family of a built-in profile.
    pub fn of_profile(profile: &str) -> Option<Family> {
        Some(match profile {
            "audiocodes" | "audiocodes-sfb" | "recovery" => Family::AudioCodes,
            "polycom" => Family::Polycom,
            "interaction-sip-station" => Family::Iss,
            "softphone" => Family::SoftPhone,
            "generic-sip" => Family::Generic,
            _ => return None,
        })
    }

    /// The family of a phone known only by its MAC (the OUI's maker) and
    /// the model it gave, if any.
    pub fn of_mac(mac: Mac, model: Option<&str>) -> Option<Family> {
        Manufacturer::of(mac).map(|m| Family::of_model(m, model.unwrap_or("")))
    }

    /// The family CIC's lists mean by a manufacturer and model.
    pub fn of_model(maker: Manufacturer, model: &str) -> Family {
        match maker {
            Manufacturer::AudioCodes | Manufacturer::Genesys => Family::AudioCodes,
            Manufacturer::Polycom => Family::Polycom,
            Manufacturer::Inin if model.trim().eq_ignore_ascii_case("soft phone") => {
                Family::SoftPhone
            }
            Manufacturer::Inin => Family::Iss,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a phone registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Register {
    /// A `[[dns.switchover]]` pair by name: the phone registers to the zone's
    /// SIP domain and finds the members by SRV, so it follows a failover.
    Switchover(String),
    /// A host name or address, optionally with a port.
    Address { host: String, port: Option<u16> },
}

/// One phone of the site.
#[derive(Debug, Clone)]
pub struct Phone {
    /// Where it was declared (`file:line`), for messages.
    pub origin: String,
    pub name: Option<String>,
    pub mac: Option<Mac>,
    /// A soft phone's full computer name, in place of a MAC.
    pub computer: Option<String>,
    pub manufacturer: Option<Manufacturer>,
    pub model: Option<String>,
    pub family: Family,
    pub extension: Option<String>,
    /// The SIP authentication name (defaults to the extension).
    pub sip_user: Option<String>,
    pub sip_password: Option<String>,
    pub label: Option<String>,
    pub register: Option<Register>,
    /// CIC's registration (proxy) group, kept from an import.
    pub proxy_group: Option<String>,
}

impl Phone {
    /// The SIP authentication name: `sip_user`, else the extension.
    pub fn user(&self) -> Option<&str> {
        self.sip_user.as_deref().or(self.extension.as_deref())
    }
}

/// The phones of the site, found by MAC.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub phones: Vec<Phone>,
}

impl Inventory {
    pub fn by_mac(&self, mac: Mac) -> Option<&Phone> {
        self.phones.iter().find(|p| p.mac == Some(mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makers_and_their_ouis() {
        let mac = |s: &str| s.parse::<Mac>().unwrap();
        assert_eq!(
            Manufacturer::parse("audiocodes"),
            Some(Manufacturer::AudioCodes)
        );
        assert_eq!(Manufacturer::parse(" ININ "), Some(Manufacturer::Inin));
        assert_eq!(Manufacturer::parse("Cisco"), None);
        assert!(Manufacturer::Polycom.owns(mac("64:16:7f:00:00:01")));
        assert!(Manufacturer::Genesys.owns(mac("00908f123456")));
        assert!(!Manufacturer::Inin.owns(mac("00908f5635bb")));
        assert_eq!(
            Manufacturer::of(mac("0026fd0095fd")),
            Some(Manufacturer::Inin)
        );
        assert_eq!(Manufacturer::Polycom.ouis_text(), "00:04:f2 or 64:16:7f");
        assert_eq!(
            Family::of_model(Manufacturer::Inin, "soft phone"),
            Family::SoftPhone
        );
        assert_eq!(
            Family::of_model(Manufacturer::Inin, "Interaction SIP Station II"),
            Family::Iss
        );
    }
}
