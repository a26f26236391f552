//! The site's phones as the configuration and the phones file declare them:
//! the model `[[phone]]` is checked into (`phones.rs`), which the inventory
//! (import, generation, the phones seen) works on.

use crate::families::{Family, Maker};
use crate::units::Mac;

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
    pub manufacturer: Option<&'static Maker>,
    pub model: Option<String>,
    pub family: &'static Family,
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
