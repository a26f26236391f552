//! What a reload (SIGHUP, `systemctl reload`) applies at once and what it
//! does not apply yet. Applied without a restart, keeping every lease, every
//! offer in flight and every running transfer: the `[dhcp]` section
//! (subnets, pools, classes, profiles, options, hosts, lease times) and the
//! DNS records and switchover pairs of `[dns]`.
//!
//! NOT YET applied by a reload (issue 16 is open for it): the interfaces,
//! ports and upstream servers (sockets to open or close), `[time]`,
//! `[files]`, `[inventory]` and the phones file (the file services' view),
//! and the DHCP rate limit. A reload that changes them says so in the log
//! and the status line; `systemctl restart dialtone` applies them (leases
//! are on disk, so nothing is lost but the transfers running then).

use crate::config::Config;

/// The parts of `next` that differ from `running` and that a reload does
/// not apply yet, named as in the configuration file.
pub fn not_applied(running: &Config, next: &Config) -> Vec<&'static str> {
    fn differ<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let mut out = Vec::new();
    if running.server.interfaces != next.server.interfaces {
        out.push("[server] interfaces");
    }
    if running.server.state_dir != next.server.state_dir {
        out.push("[server] state_dir");
    }
    if running.dhcp.rate_limit != next.dhcp.rate_limit {
        out.push("[dhcp] rate_limit");
    }
    match (&running.dns, &next.dns) {
        (Some(a), Some(b)) => {
            if a.port != b.port || a.upstream != b.upstream {
                out.push("[dns] port or upstream");
            }
            if a.leases != b.leases {
                out.push("[dns] leases");
            }
        }
        (None, None) => {}
        _ => out.push("[dns] (added or removed)"),
    }
    if differ(&running.time, &next.time) {
        out.push("[time]");
    }
    if differ(&running.files, &next.files) {
        out.push("[files]");
    }
    if differ(&running.inventory, &next.inventory) || differ(&running.phones, &next.phones) {
        out.push("[inventory] and the phones");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
interfaces = ["eth0"]
[[dhcp.subnet]]
cidr = "10.0.0.0/24"
pool = ["10.0.0.10-10.0.0.20"]
router = "10.0.0.1"
[dns]
zone = "lab.voip"
[[dns.host]]
name = "pbx1"
ip = "10.0.0.5"
"#;

    fn parse(t: &str) -> Config {
        Config::parse("t.toml", t).unwrap()
    }

    #[test]
    fn options_and_records_apply_sockets_do_not_yet() {
        let a = parse(BASE);
        assert!(not_applied(&a, &a).is_empty());
        let options = parse(
            &BASE
                .replace("10.0.0.1\"", "10.0.0.2\"")
                .replace("10.0.0.5", "10.0.0.6"),
        );
        assert!(not_applied(&a, &options).is_empty());
        let ifaces = parse(&BASE.replace("[\"eth0\"]", "[\"eth0\", \"eth1\"]"));
        assert_eq!(not_applied(&a, &ifaces), vec!["[server] interfaces"]);
        let files = parse(&format!("{BASE}\n[files]\nroot = \"/srv/x\"\n"));
        assert_eq!(not_applied(&a, &files), vec!["[files]"]);
    }
}
