//! Warnings `dialtone check` gives about a configuration that loads but
//! will not do what its author likely means on this machine. Pure: the
//! interfaces' addresses are passed in (None: no such interface).

use super::Config;
use crate::units::Ipv4Net;

/// One warning per served interface that does not exist here, or whose
/// addresses all lie outside every configured subnet (its phones would get
/// no lease: dialtone picks the subnet by the address of the interface a
/// request came in on, unless a relay names another).
pub fn interfaces(config: &Config, addrs: impl Fn(&str) -> Option<Vec<Ipv4Net>>) -> Vec<String> {
    let mut out = Vec::new();
    if config.dhcp.subnets.is_empty() {
        return out;
    }
    for name in &config.server.interfaces {
        match addrs(name) {
            None => out.push(format!(
                "server.interfaces: {name} does not exist on this machine (dialtone waits for it)"
            )),
            Some(list) if list.is_empty() => out.push(format!(
                "server.interfaces: {name} has no IPv4 address; give it one inside a configured subnet"
            )),
            Some(list) => {
                let inside = list
                    .iter()
                    .any(|a| config.dhcp.subnets.iter().any(|s| s.net.contains(a.addr)));
                if !inside {
                    let have: Vec<String> = list.iter().map(|a| a.to_string()).collect();
                    let subnets: Vec<String> =
                        config.dhcp.subnets.iter().map(|s| s.net.to_string()).collect();
                    out.push(format!(
                        "server.interfaces: {name} has no address inside a configured subnet (it has {}; subnets: {}): its phones get no lease unless a relay forwards them",
                        have.join(", "),
                        subnets.join(", ")
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_of_missing_interfaces_and_addresses_outside_every_subnet() {
        let c = Config::parse(
            "t.toml",
            "[server]\ninterfaces = [\"eth0\", \"eth0.100\", \"eth1\", \"eth2\"]\n[[dhcp.subnet]]\ncidr = \"10.250.0.0/24\"\npool = [\"10.250.0.10-10.250.0.20\"]\n",
        )
        .unwrap();
        let net = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let w = interfaces(&c, |name| match name {
            "eth0" => Some(vec![net("192.168.1.1/24")]),
            "eth0.100" => Some(vec![net("10.250.0.1/24")]),
            "eth1" => Some(vec![]),
            _ => None,
        });
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("eth0 has no address inside a configured subnet (it has 192.168.1.1/24; subnets: 10.250.0.0/24)"), "{}", w[0]);
        assert!(w[1].contains("eth1 has no IPv4 address"), "{}", w[1]);
        assert!(w[2].contains("eth2 does not exist"), "{}", w[2]);
    }
}
