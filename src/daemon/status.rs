//! The one-line status `dialtone serve` gives the service manager
//! (`STATUS=`, shown by `systemctl status`): what is served where, how many
//! leases, and what waits and why. Built from the configuration and the
//! services' reports, nothing else, so it is tested as text.

use std::fmt::Write;
use std::path::Path;

use crate::config::Config;
use crate::net::ready::Slot;

/// The status line for `config` (read from `source`) with the services'
/// places as `slots` and `leases` addresses leased.
pub fn line(
    config: &Config,
    source: &Path,
    slots: &[(&'static str, String, Slot)],
    leases: usize,
) -> String {
    if config.server.interfaces.is_empty() {
        return format!(
            "no interfaces configured: edit {}, then reload",
            source.display()
        );
    }
    let bound = |svc: &str| -> Vec<&str> {
        slots
            .iter()
            .filter(|(s, _, slot)| *s == svc && *slot == Slot::Bound)
            .map(|(_, p, _)| p.as_str())
            .collect()
    };
    let mut parts = Vec::new();
    let dhcp = bound("DHCP");
    if dhcp.is_empty() {
        parts.push("DHCP on no interface yet".to_string());
    } else {
        parts.push(format!("DHCP on {}", dhcp.join(", ")));
    }
    parts.push(format!(
        "{leases} lease{}",
        if leases == 1 { "" } else { "s" }
    ));
    if let Some(dns) = &config.dns
        && !bound("DNS").is_empty()
    {
        parts.push(format!("DNS {}", dns.zone));
    }
    if config.time.serve && !bound("SNTP").is_empty() {
        parts.push("SNTP".to_string());
    }
    if let Some(files) = &config.files {
        let mut f = Vec::new();
        if files.tftp && !bound("TFTP").is_empty() {
            f.push("TFTP".to_string());
        }
        if !bound("HTTP").is_empty() {
            let mut ports: Vec<String> = files
                .http
                .iter()
                .map(|a| {
                    if a.ip().is_unspecified() {
                        format!(":{}", a.port())
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            ports.dedup();
            f.push(format!("HTTP {}", ports.join(" ")));
        }
        if !f.is_empty() {
            parts.push(f.join(", "));
        }
    }
    let mut out = parts.join("; ");
    let waiting: Vec<String> = slots
        .iter()
        .filter_map(|(svc, place, slot)| match slot {
            Slot::Waiting(why) => Some(format!("{svc} on {place} ({why})")),
            Slot::Bound => None,
        })
        .collect();
    if !waiting.is_empty() {
        let _ = write!(out, "; waiting: {}", waiting.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[server]
interfaces = ["eth0", "eth0.100"]
[[dhcp.subnet]]
cidr = "10.0.0.0/24"
pool = ["10.0.0.10-10.0.0.20"]
[dns]
zone = "lab.voip"
[time]
serve = true
[files]
root = "/srv/dialtone"
tftp = true
http = [":80"]
"#;

    fn slots(list: &[(&'static str, &str, Slot)]) -> Vec<(&'static str, String, Slot)> {
        list.iter()
            .map(|(s, p, slot)| (*s, p.to_string(), slot.clone()))
            .collect()
    }

    #[test]
    fn says_what_is_served_and_what_waits() {
        let c = Config::parse("t.toml", CONFIG).unwrap();
        let path = Path::new("/etc/dialtone/dialtone.toml");
        let all = [
            ("DHCP", "eth0", Slot::Bound),
            ("DHCP", "eth0.100", Slot::Bound),
            ("DNS", "eth0", Slot::Bound),
            ("SNTP", "eth0", Slot::Bound),
            ("TFTP", "eth0", Slot::Bound),
            ("HTTP", "eth0", Slot::Bound),
        ];
        assert_eq!(
            line(&c, path, &slots(&all), 42),
            "DHCP on eth0, eth0.100; 42 leases; DNS lab.voip; SNTP; TFTP, HTTP :80"
        );
        let waiting = [
            ("DHCP", "eth0", Slot::Bound),
            (
                "DHCP",
                "eth0.100",
                Slot::Waiting("eth0.100 does not exist yet".into()),
            ),
        ];
        assert_eq!(
            line(&c, path, &slots(&waiting), 1),
            "DHCP on eth0; 1 lease; waiting: DHCP on eth0.100 (eth0.100 does not exist yet)"
        );
    }

    #[test]
    fn no_interfaces_says_where_to_name_them() {
        let c = Config::parse("t.toml", "[server]\nstate_dir = \"/var/lib/dialtone\"\n").unwrap();
        assert_eq!(
            line(&c, Path::new("/etc/dialtone/dialtone.toml"), &[], 0),
            "no interfaces configured: edit /etc/dialtone/dialtone.toml, then reload"
        );
    }
}
