//! What a reload (SIGHUP, `systemctl reload`) cannot apply. Everything else
//! is applied at once, keeping every lease, every offer in flight and every
//! running transfer: the services follow one live configuration (a watch
//! channel in `serve`), each reading it per request or restarting only the
//! place (interface and port) whose sockets change:
//! - `[dhcp]`: subnets, pools, classes, profiles, options, hosts, lease
//!   times and the rate limit, for the next packet;
//! - `[dns]`: records, switchover pairs (the members' health is kept), the
//!   lease names; a new port or upstream rebinds its sockets; the section
//!   added or removed starts or stops the service;
//! - `[time]`, `[files]` (a new tree, upload folder, limits, listeners),
//!   `[inventory]` and the phones file: new requests get the new services,
//!   transfers running keep the ones they started with;
//! - `[server] interfaces`: sockets opened on added interfaces, closed on
//!   removed ones.
//!
//! Not applied: `[server] state_dir` (the open lease database and the state
//! files stay where they are until a restart).

use crate::config::Config;

/// The parts of `next` that differ from `running` and that a reload does
/// not apply, named as in the configuration file.
pub fn not_applied(running: &Config, next: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if running.server.state_dir != next.server.state_dir {
        out.push("[server] state_dir");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[server]\ninterfaces = [\"eth0\"]\nstate_dir = \"/var/lib/dialtone\"\n";

    #[test]
    fn only_the_state_folder_waits_for_a_restart() {
        let a = Config::parse("t.toml", BASE).unwrap();
        let more = BASE.replace("[\"eth0\"]", "[\"eth0\", \"eth1\"]");
        let b = Config::parse("t.toml", &format!("{more}[files]\nroot = \"/srv/x\"\n")).unwrap();
        assert!(not_applied(&a, &b).is_empty());
        let c = Config::parse("t.toml", &BASE.replace("/var/lib/dialtone", "/tmp/x")).unwrap();
        assert_eq!(not_applied(&a, &c), vec!["[server] state_dir"]);
    }
}
