//! `dialtone serve` as a system daemon, against the real binary in network
//! namespaces: the sd_notify(3) protocol as systemd speaks it (a datagram
//! socket named by NOTIFY_SOCKET: READY=1 only once every socket is bound,
//! STATUS= saying what is served or why it waits, WATCHDOG=1), `--user`
//! dropping root but keeping exactly the capabilities the servers need, and
//! journal-style lines when stderr is the journal's stream.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Lab, base_config};
use dialtone::dhcp::client::ClientMessage;
use dialtone::dhcp::packet::{DISCOVER, OFFER};
use dialtone::units::Mac;

/// The service manager's end: a datagram socket the server is told of.
struct Manager {
    sock: UnixDatagram,
    path: std::path::PathBuf,
}

impl Manager {
    fn new(lab: &Lab) -> Manager {
        let path = lab.dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).expect("notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Manager { sock, path }
    }

    fn env(&self) -> (&'static str, String) {
        ("NOTIFY_SOCKET", self.path.display().to_string())
    }

    /// Messages until one contains `want`, within `limit`; all of them.
    fn until(&self, want: &str, limit: Duration) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = m.contains(want);
                got.push(m);
                if hit {
                    return Ok(got);
                }
            }
        }
        Err(got)
    }
}

fn status_of(messages: &[String]) -> String {
    messages
        .iter()
        .rev()
        .flat_map(|m| m.lines())
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_default()
        .to_string()
}

fn discover(lab: &Lab, mac: Mac, xid: u32) -> bool {
    let voice = lab.voice_if.clone();
    let p = lab.probe(&voice);
    p.send(
        &ClientMessage::new(DISCOVER, mac, xid)
            .broadcast()
            .requests(&[1, 3]),
    );
    p.reply(xid, Duration::from_secs(2))
        .is_some_and(|r| r.msg_type() == Some(OFFER))
}

#[test]
fn ready_only_once_every_socket_is_bound_with_a_status_line() {
    let mut lab = Lab::new("svc-ready");
    let root = lab.dir.join("files");
    std::fs::create_dir_all(&root).unwrap();
    let all = format!(
        "{}\n[dns]\nzone = \"lab.voip\"\n\n[time]\nserve = true\n\n[files]\nroot = \"{}\"\nhttp = [\":80\"]\n",
        base_config(),
        root.display()
    );
    lab.write_config(&all.replace(
        "interfaces = [\"native0\", \"voice0\"]",
        "interfaces = [\"native0\", \"voice0\", \"late0\"]",
    ));
    let manager = Manager::new(&lab);
    lab.spawn(
        &[],
        &[manager.env(), ("WATCHDOG_USEC", "1000000".to_string())],
    );
    // late0 does not exist: no READY, and the status says why.
    let before = manager
        .until("late0 does not exist yet", Duration::from_secs(10))
        .unwrap_or_else(|m| panic!("no waiting status: {m:?}\n{}", lab.log()));
    assert!(!before.iter().any(|m| m.contains("READY=1")), "{before:?}");
    let waiting = status_of(&before);
    assert!(waiting.contains("waiting: "), "{waiting}");
    // The watchdog is pinged while DHCP and the lease writer answer.
    manager
        .until("WATCHDOG=1", Duration::from_secs(3))
        .unwrap_or_else(|m| panic!("no watchdog ping: {m:?}"));
    // The interface appears: every socket binds, then READY=1 comes.
    dialtone::lab::veth(&lab.srv, "late0", &lab.cli, &format!("l{}", lab.voice_if)).unwrap();
    let after = manager
        .until("READY=1", Duration::from_secs(15))
        .unwrap_or_else(|m| panic!("no READY: {m:?}\n{}", lab.log()));
    // At READY the sockets answer at once.
    assert!(
        discover(&lab, Mac([2, 0, 0, 0, 0, 1]), 0x5e1f),
        "READY before DHCP answers"
    );
    let status = status_of(&after);
    assert_eq!(
        status, "DHCP on late0, native0, voice0; 0 leases; DNS lab.voip; SNTP; TFTP, HTTP :80",
        "{after:?}"
    );
    // A lease moves the count in the status line (updated at least every 10 s).
    let _ = lab.udhcpc(&lab.voice_if.clone(), &[]);
    let counted = manager
        .until("1 lease;", Duration::from_secs(15))
        .unwrap_or_else(|m| panic!("lease count not updated: {m:?}"));
    assert!(status_of(&counted).starts_with("DHCP on late0, native0, voice0; 1 lease;"));
    lab.stop();
}

#[test]
fn with_no_interfaces_it_is_ready_serves_nothing_and_says_so() {
    let mut lab = Lab::new("svc-none");
    lab.write_config("[server]\nstate_dir = \"@STATE@\"\n\n[dhcp]\nlease_time = \"1h\"\n");
    let manager = Manager::new(&lab);
    let pid = lab.spawn(&[], &[manager.env()]);
    let got = manager
        .until("READY=1", Duration::from_secs(10))
        .unwrap_or_else(|m| panic!("no READY: {m:?}\n{}", lab.log()));
    let want = format!(
        "no interfaces configured: edit {}, then reload",
        lab.config_path().display()
    );
    assert_eq!(status_of(&got), want);
    // Nothing listens on the DHCP port, and the lease store was opened.
    assert!(!discover(&lab, Mac([2, 0, 0, 0, 0, 2]), 0x5e20));
    assert!(lab.state_dir().join("leases.sqlite").exists());
    assert!(lab.exited().is_none(), "it keeps running:\n{}", lab.log());
    // The installer names the interfaces and reloads: DHCP starts.
    lab.write_config(&base_config());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    manager
        .until(
            "STATUS=DHCP on native0, voice0; 0 leases",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|m| panic!("not served after naming them: {m:?}\n{}", lab.log()));
    assert!(discover(&lab, Mac([2, 0, 0, 0, 0, 3]), 0x5e21));
    lab.stop();
}

/// One `Name:\t...` line of /proc/PID/status.
fn proc_status(pid: u32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn user_drops_root_and_keeps_only_bind_and_net_admin() {
    let mut lab = Lab::new("svc-user");
    lab.write_config(&base_config());
    let pid = lab.spawn(&["--user", "nobody"], &[]);
    lab.wait_started();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let uid = nobody.uid.as_raw().to_string();
    let gid = nobody.gid.as_raw().to_string();
    // Real, effective, saved and filesystem ids are all nobody's.
    assert_eq!(
        proc_status(pid, "Uid"),
        format!("{uid}\t{uid}\t{uid}\t{uid}")
    );
    assert_eq!(
        proc_status(pid, "Gid"),
        format!("{gid}\t{gid}\t{gid}\t{gid}")
    );
    assert_eq!(proc_status(pid, "Groups"), gid);
    // CAP_NET_BIND_SERVICE (10) and CAP_NET_ADMIN (12): 0x1400, and nothing
    // else in any set; the bounding set is cut to the same two.
    for (set, want) in [
        ("CapInh", "0000000000000000"),
        ("CapPrm", "0000000000001400"),
        ("CapEff", "0000000000001400"),
        ("CapBnd", "0000000000001400"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert_eq!(proc_status(pid, set), want, "{set}");
    }
    // Every service still works: a lease through udhcpc (DHCP on port 67),
    // its record written by the unprivileged lease writer.
    let voice = lab.voice_if.clone();
    let got = lab.udhcpc(&voice, &[]);
    assert!(got.contains_key("ip"), "no lease as nobody:\n{}", lab.log());
    use std::os::unix::fs::MetadataExt;
    let db = std::fs::metadata(lab.state_dir().join("leases.sqlite")).unwrap();
    assert_eq!(db.uid(), nobody.uid.as_raw());
    assert!(lab.leases().iter().any(|l| l["ip"] == got["ip"].as_str()));
    // The reply was unicast through the ARP entry (CAP_NET_ADMIN), not
    // broadcast because adding it failed.
    let log = lab.log();
    assert!(log.contains("\"reply\":\"ACK\""), "{log}");
    assert!(!log.contains("cannot add ARP entry"), "{log}");
    lab.stop();
}

#[test]
fn user_needs_root_and_a_real_user() {
    let lab = Lab::new("svc-user-bad");
    lab.write_config(&base_config());
    let out = lab
        .srv
        .command(common::BIN)
        .args(["serve", "--config"])
        .arg(lab.config_path())
        .args(["--user", "no-such-user-here"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--user no-such-user-here: no such user"),
        "{err}"
    );
}

#[test]
fn lines_for_the_journal_carry_priorities_and_no_timestamps() {
    use std::os::unix::fs::MetadataExt;
    let lab = Lab::new("svc-journal");
    lab.write_config("[server]\nstate_dir = \"@STATE@\"\n");
    let log_path = lab.dir.join("journal.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let mut child = lab
        .srv
        .command(common::BIN)
        .args(["serve", "--config"])
        .arg(lab.config_path())
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline && !text.contains("no interfaces configured") {
        std::thread::sleep(Duration::from_millis(100));
        text = std::fs::read_to_string(&log_path).unwrap_or_default();
    }
    let _ = child.kill();
    let _ = child.wait();
    let warn = text
        .lines()
        .find(|l| l.contains("no interfaces configured"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(warn.starts_with("<4> WARN dialtone:"), "{warn}");
    assert!(
        text.lines().all(|l| l.starts_with('<')),
        "every line has a priority and no timestamp:\n{text}"
    );
}

/// Option 160 as the voice VLAN's DHCP answers it now.
fn option_160(lab: &Lab, xid: u32) -> Option<String> {
    let voice = lab.voice_if.clone();
    let p = lab.probe(&voice);
    p.send(
        &ClientMessage::new(DISCOVER, Mac([2, 0, 0, 0, 1, (xid & 0xff) as u8]), xid)
            .broadcast()
            .requests(&[1, 3, 160]),
    );
    let r = p.reply(xid, Duration::from_secs(2))?;
    r.get(160).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn dig_a(lab: &Lab, name: &str) -> String {
    let out = lab
        .cli
        .command("dig")
        .args(["@10.250.0.1", "+short", "+time=2", "+tries=2", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn sighup_applies_options_and_records_keeps_transfers_and_refuses_a_bad_file() {
    let mut lab = Lab::new("svc-reload");
    let root = lab.dir.join("files");
    std::fs::create_dir_all(&root).unwrap();
    let firmware = common::pattern(64 << 20, 7);
    std::fs::write(root.join("firmware.img"), &firmware).unwrap();
    let config = format!(
        "{}\n[dns]\nzone = \"lab.voip\"\n[[dns.host]]\nname = \"pbx1\"\nip = \"10.250.0.5\"\n\n[files]\nroot = \"{}\"\ntftp = false\nhttp = [\":80\"]\n",
        base_config(),
        root.display()
    );
    lab.write_config(&config);
    let manager = Manager::new(&lab);
    let pid = lab.spawn(&[], &[manager.env()]);
    manager
        .until("READY=1", Duration::from_secs(15))
        .unwrap_or_else(|m| panic!("no READY: {m:?}\n{}", lab.log()));
    let voice = lab.voice_if.clone();
    lab.cli.addr(&voice, "10.250.0.60/24").unwrap();
    assert_eq!(
        option_160(&lab, 0x7001).as_deref(),
        Some("http://provision.lab.voip:8088")
    );
    assert_eq!(dig_a(&lab, "pbx1.lab.voip"), "10.250.0.5");

    // A download held back by its reader (a pipe that is not read for 3 s:
    // the socket buffers fill and the server's sendfile waits) runs across
    // both reloads.
    let got = lab.dir.join("got.img");
    let mut curl = lab
        .cli
        .command("bash")
        .args(["-o", "pipefail", "-c"])
        .arg(format!(
            "curl -sS --fail http://10.250.0.1/firmware.img | (sleep 3; cat > {})",
            got.display()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));

    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    // Options, a record, an interface added and SNTP turned on.
    dialtone::lab::veth(&lab.srv, "late0", &lab.cli, &format!("l{}", lab.voice_if)).unwrap();
    let changed = config
        .replace("provision.lab.voip:8088", "provision.lab.voip:9099")
        .replace("10.250.0.5", "10.250.0.6")
        .replace(
            "interfaces = [\"native0\", \"voice0\"]",
            "interfaces = [\"native0\", \"voice0\", \"late0\"]",
        )
        .replace("\n[files]", "\n[time]\nserve = true\n\n[files]");
    lab.write_config(&changed);
    hup();
    let reloaded = manager
        .until("READY=1", Duration::from_secs(10))
        .unwrap_or_else(|m| panic!("no READY after reload: {m:?}\n{}", lab.log()));
    assert!(
        reloaded.iter().any(|m| m.contains("RELOADING=1")),
        "{reloaded:?}"
    );
    assert_eq!(
        option_160(&lab, 0x7002).as_deref(),
        Some("http://provision.lab.voip:9099")
    );
    assert_eq!(dig_a(&lab, "pbx1.lab.voip"), "10.250.0.6");
    let serving = manager
        .until("DHCP on late0, native0, voice0", Duration::from_secs(10))
        .unwrap_or_else(|m| panic!("late0 not served after the reload: {m:?}\n{}", lab.log()));
    let status = status_of(&serving);
    assert!(status.contains("SNTP"), "{status}");
    let sntp = lab
        .cli
        .command("sntp")
        .args(["-t", "2", "10.250.0.1"])
        .output()
        .unwrap();
    assert!(sntp.status.success(), "SNTP after the reload: {sntp:?}");
    let early = curl.try_wait().unwrap();
    let have = std::fs::metadata(&got).map(|m| m.len()).unwrap_or(0);
    assert!(
        early.is_none(),
        "the download must still run after the reload: {early:?}, {have} bytes"
    );

    // A broken file is refused: the old answers go on, the status says why.
    lab.write_config(&config.replace("[dns]\nzone", "[dns]\nzoen"));
    hup();
    let refused = manager
        .until("reload refused", Duration::from_secs(10))
        .unwrap_or_else(|m| panic!("no refusal in the status: {m:?}\n{}", lab.log()));
    let status = status_of(&refused);
    let file = lab.config_path().display().to_string();
    assert!(status.contains(&format!("{file}:")), "{status}");
    assert!(status.contains("zoen"), "{status}");
    assert_eq!(
        option_160(&lab, 0x7003).as_deref(),
        Some("http://provision.lab.voip:9099")
    );
    assert_eq!(dig_a(&lab, "pbx1.lab.voip"), "10.250.0.6");
    assert!(lab.log().contains("reload refused"));

    // An interface removed: its sockets close, the others keep serving.
    lab.write_config(&changed.replace("\"native0\", ", ""));
    hup();
    manager
        .until("STATUS=DHCP on late0, voice0;", Duration::from_secs(10))
        .unwrap_or_else(|m| panic!("native0 still served: {m:?}\n{}", lab.log()));
    let native = lab.native_if.clone();
    let p = lab.probe(&native);
    p.send(
        &ClientMessage::new(DISCOVER, Mac([2, 0, 0, 0, 2, 1]), 0x7004)
            .broadcast()
            .requests(&[1, 3]),
    );
    assert!(
        p.reply(0x7004, Duration::from_secs(2)).is_none(),
        "native0 answered"
    );
    assert!(option_160(&lab, 0x7005).is_some(), "voice0 still answers");

    let done = curl.wait().unwrap();
    assert!(done.success(), "download failed across reloads");
    assert_eq!(std::fs::read(&got).unwrap(), firmware, "byte-exact");
    assert!(lab.exited().is_none());
    lab.stop();
}

#[test]
fn check_warns_of_a_served_interface_without_an_address_in_a_subnet() {
    let lab = Lab::new("svc-check");
    lab.write_config(&base_config().replace(
        "interfaces = [\"native0\", \"voice0\"]",
        "interfaces = [\"native0\", \"voice0\", \"ghost0\"]",
    ));
    let check = || {
        let out = lab
            .srv
            .command(common::BIN)
            .args(["check", "--quiet", "--config"])
            .arg(lab.config_path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "warnings do not fail the check: {out:?}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = check();
    assert_eq!(first.lines().count(), 1, "{first}");
    assert!(
        first.contains("warning: server.interfaces: ghost0 does not exist"),
        "{first}"
    );
    lab.srv.ip(&["addr", "flush", "dev", "native0"]).unwrap();
    lab.srv.addr("native0", "172.16.9.1/24").unwrap();
    let second = check();
    assert!(
        second.contains("native0 has no address inside a configured subnet (it has 172.16.9.1/24"),
        "{second}"
    );
    assert!(!second.contains("voice0"), "{second}");
}

/// The system calls the unit's `SystemCallFilter=` lines allow, resolved as
/// systemd does: the first (an allow list) sets the filter, a `~` line
/// takes its calls away, a later allow line adds its calls back. Groups are
/// expanded from `systemd-analyze syscall-filter` of this systemd.
fn allowed_by_the_unit() -> std::collections::BTreeSet<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let out = std::process::Command::new("systemd-analyze")
        .args(["syscall-filter", "--no-pager"])
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if line.starts_with('@') {
            let name = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            groups.insert(name.clone(), Vec::new());
            current = Some(name);
        } else if let Some(g) = &current {
            let item = line.trim();
            if !item.is_empty() && !item.starts_with('#') {
                groups
                    .get_mut(g)
                    .unwrap()
                    .push(item.split_whitespace().next().unwrap().to_string());
            }
        }
    }
    fn expand(name: &str, groups: &BTreeMap<String, Vec<String>>, out: &mut BTreeSet<String>) {
        match groups.get(name) {
            Some(items) => items.iter().for_each(|i| expand(i, groups, out)),
            None if !name.starts_with('@') => {
                out.insert(name.to_string());
            }
            None => panic!("unknown syscall group {name}"),
        }
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/dialtone.service"
    ))
    .unwrap();
    let mut allowed = BTreeSet::new();
    for line in unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (deny, list) = match line.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let mut calls = BTreeSet::new();
        for item in list.split_whitespace() {
            expand(item, &groups, &mut calls);
        }
        if deny {
            allowed.retain(|c| !calls.contains(c));
        } else {
            allowed.extend(calls);
        }
    }
    assert!(!allowed.is_empty(), "no SystemCallFilter= in the unit");
    allowed
}

#[test]
fn every_system_call_dialtone_makes_is_allowed_by_the_unit() {
    let lab = Lab::new("svc-seccomp");
    let root = lab.dir.join("files");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("fw.img"), common::pattern(1 << 20, 3)).unwrap();
    let config = format!(
        "{}\n[dns]\nzone = \"lab.voip\"\n[[dns.host]]\nname = \"pbx1\"\nip = \"10.250.0.5\"\n\n[time]\nserve = true\n\n[files]\nroot = \"{}\"\nhttp = [\":80\"]\n",
        base_config(),
        root.display()
    );
    lab.write_config(&config);
    let trace = lab.dir.join("strace.txt");
    // strace runs dialtone in the server namespace, following every thread.
    let log = std::fs::File::create(lab.dir.join("traced.log")).unwrap();
    let mut traced = lab
        .srv
        .command("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(common::BIN)
        .args(["serve", "--user", "nobody", "--config"])
        .arg(lab.config_path())
        .stderr(log)
        .spawn()
        .expect("strace (tests/run.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(lab.dir.join("traced.log"))
        .unwrap_or_default()
        .contains("ready")
    {
        assert!(
            Instant::now() < deadline,
            "dialtone did not get ready under strace"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every service once, and a reload.
    let voice = lab.voice_if.clone();
    let lease = lab.udhcpc(&voice, &[]);
    assert!(lease.contains_key("ip"));
    lab.cli.addr(&voice, "10.250.0.61/24").unwrap();
    assert_eq!(dig_a(&lab, "pbx1.lab.voip"), "10.250.0.5");
    let ok =
        |c: &mut std::process::Command| c.output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok(lab.cli.command("sntp").args(["-t", "2", "10.250.0.1"])));
    let got = lab.dir.join("fw.http");
    assert!(ok(lab
        .cli
        .command("curl")
        .args(["-sS", "--fail", "-o"])
        .arg(&got)
        .arg("http://10.250.0.1/fw.img")));
    let got = lab.dir.join("fw.tftp");
    assert!(ok(lab
        .cli
        .command("busybox")
        .args(["tftp", "-g", "-r", "fw.img", "-l"])
        .arg(&got)
        .arg("10.250.0.1")));
    let pid = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse::<i32>().ok())
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = traced.wait();
    let text = std::fs::read_to_string(&trace).unwrap();
    // The calls after the exec of dialtone itself (before it, strace's and
    // the loader's own are the same under systemd, which filters from exec).
    let after_exec = text
        .lines()
        .skip_while(|l| !l.contains("execve(\"") || !l.contains(common::BIN))
        .skip(1);
    // Under systemd the unit switches the user; `--user` is run here so
    // that the rest is what an unprivileged dialtone does (SQLite, for one,
    // chowns its journal only as root). The switch makes these calls, up to
    // its last capset, which the unit's process never makes.
    let lines: Vec<&str> = after_exec.collect();
    let dropped = lines
        .iter()
        .rposition(|l| l.contains(" capset("))
        .expect("the switch to nobody");
    let switch = [
        "setgroups",
        "setgid",
        "setuid",
        "setresgid",
        "setresuid",
        "capset",
        "capget",
        "chown",
    ];
    let mut made = std::collections::BTreeSet::new();
    for (i, l) in lines.into_iter().enumerate() {
        let rest = l.split_once(' ').map(|(_, r)| r.trim_start()).unwrap_or(l);
        if let Some((name, _)) = rest.split_once('(')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && (i > dropped || !switch.contains(&name))
        {
            made.insert(name.to_string());
        }
    }
    assert!(
        made.contains("sendmmsg") || made.contains("sendmsg"),
        "{made:?}"
    );
    let allowed = allowed_by_the_unit();
    let denied: Vec<&String> = made.iter().filter(|c| !allowed.contains(*c)).collect();
    assert!(
        denied.is_empty(),
        "dialtone makes system calls its unit's SystemCallFilter= denies: {denied:?}"
    );
}
