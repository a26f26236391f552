//! `dialtone demo`: the main job on built-in defaults, safe on any machine.
//!
//! Builds a throwaway lab of network namespaces (an appliance with a native
//! and a voice VLAN interface, a phone side, and two call servers behind the
//! appliance), starts `dialtone serve` inside with the families
//! configuration (every built-in profile, an inventory, a files tree), boots
//! one emulated phone of each family (`lab::phone`: DHCP, DNS, time, files in
//! the family's order; a bricked AudioCodes recovered over TFTP), stops one
//! call server to show the switchover failover, prints a table, and removes
//! the lab, also on Ctrl-C or failure.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hickory_proto::rr::RecordType;

use crate::lab::phone::{self, Boot, Spec};
use crate::lab::{CallServer, Netns, clients, unique, veth};

/// The lab configuration the DHCP and DNS tests share: the example file's
/// scopes and spelled-out classes, on the lab's interface names.
pub const LAB_CONFIG: &str = include_str!("../config/lab/dhcp.toml");

/// The lab's voice zone: the CIC pair of PHONES.md section 4 (with the
/// Skype for Business lookup `_sipinternaltls._tcp`), checked over TCP every
/// second so a failover shows quickly, the SfB pool's name, and the time
/// service.
pub const LAB_DNS: &str = include_str!("../config/lab/dns.toml");

/// The demo's configuration without its zone: every family by its built-in
/// profile, files over TFTP and HTTP, and the inventory's phones.
/// `families_config` adds `LAB_DNS` and fills in `@STATE@` and `@TREE@`.
pub const FAMILIES_CONFIG: &str = include_str!("../config/lab/families.toml");

/// The demo's whole configuration, with its state folder and files tree:
/// `FAMILIES_CONFIG`, then a class per built-in profile the families' lab
/// phones use and the lab phones' inventory lines, then `LAB_DNS`.
pub fn families_config(state: &Path, tree: &Path) -> String {
    format!("{FAMILIES_CONFIG}{}{LAB_DNS}", lab_classes_and_phones())
        .replace("@STATE@", &state.display().to_string())
        .replace("@TREE@", &tree.display().to_string())
}

/// The credentials of the lab phones' lines (`demo-<extension>`), for the
/// call server stand-ins; realm `lab.voip`.
pub fn lab_registrar() -> crate::lab::sip::Registrar {
    crate::lab::sip::Registrar {
        users: crate::families::lab_phones()
            .filter_map(|(_, p)| p.line.as_ref())
            .map(|l| (l.extension.to_string(), format!("demo-{}", l.extension)))
            .collect(),
        realm: "lab.voip".into(),
        nonce: format!("{:x}", crate::now()),
    }
}

/// One class per profile of the lab phones, in the families' order (a
/// later class overrides an earlier one, so the recovery profile follows
/// the ordinary AudioCodes one), and each lab phone's inventory line.
pub fn lab_classes_and_phones() -> String {
    let mut classes = String::new();
    let mut phones = String::new();
    let mut done: Vec<&str> = Vec::new();
    for (family, p) in crate::families::lab_phones() {
        if !done.contains(&p.profile) {
            done.push(p.profile);
            let _ = writeln!(
                classes,
                "\n[[dhcp.class]]\nname = \"{0}\"\nprofile = \"{0}\"",
                p.profile
            );
            if !p.class.is_empty() {
                let _ = writeln!(classes, "{}", p.class);
            }
        }
        if let (Some(line), Some(maker)) = (&p.line, family.makers.first()) {
            let _ = writeln!(
                phones,
                "\n[[phone]]\nname = \"{}\"\nmac = \"{}\"\nmanufacturer = \"{}\"\nmodel = \"{}\"\n\
                 extension = \"{ext}\"\nsip_password = \"demo-{ext}\"\nlabel = \"{}\"\nregister = \"cic\"",
                line.name,
                crate::units::Mac(p.mac),
                maker.name,
                line.model,
                line.label,
                ext = line.extension,
            );
        }
    }
    classes + &phones
}

/// Fills `root` with what the lab's phones fetch that dialtone does not
/// generate: firmware, the SIP Station's files, the Polycom application
/// and the soft phone's configuration.
pub fn families_tree(root: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(root)?;
    let image = |len: usize, seed: u8| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    std::fs::write(root.join("450HD_3.4.6.img"), image(3 << 20, 7))?;
    std::fs::write(root.join("sip100.img"), image(1 << 20, 11))?;
    std::fs::write(root.join("sip.ld"), image(512 << 10, 13))?;
    std::fs::write(root.join("config_files"), "[MACADDRESS].cfg\n")?;
    std::fs::write(
        root.join("0026FD000400.cfg"),
        "# Interaction SIP Station 00:26:fd:00:04:00\nsip_server=lab.voip\nline1=7504\n",
    )?;
    std::fs::write(
        root.join("PattyJ.lab.voip.i3sipcfg"),
        "<i3sipcfg><station>PattyJ</station><server>lab.voip</server></i3sipcfg>\n",
    )?;
    Ok(())
}

/// The lab: the appliance's namespace with `native0` 192.168.1.1/24,
/// `voice0` 10.250.0.1/24 and `calls0` 10.250.1.1/24; the phones' namespace
/// with `native` and `voice`; the call servers' namespace with 10.250.1.151
/// and .152 on `calls`.
pub struct Lab {
    pub app: Netns,
    pub phones: Netns,
    pub calls: Netns,
}

impl Lab {
    pub fn new(prefix: &str) -> anyhow::Result<Lab> {
        let app = Netns::create(&format!("{prefix}-appliance"))?;
        let phones = Netns::create(&format!("{prefix}-phones"))?;
        let calls = Netns::create(&format!("{prefix}-calls"))?;
        veth(&app, "native0", &phones, "native")?;
        veth(&app, "voice0", &phones, "voice")?;
        veth(&app, "calls0", &calls, "calls")?;
        app.addr("native0", "192.168.1.1/24")?;
        app.addr("voice0", "10.250.0.1/24")?;
        app.addr("calls0", "10.250.1.1/24")?;
        calls.addr("calls", "10.250.1.151/24")?;
        calls.addr("calls", "10.250.1.152/24")?;
        // The appliance routes between the phones and the call servers, as
        // the site's router would: REGISTER goes through it.
        let forward = app.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        if !forward.status.success() {
            anyhow::bail!(
                "cannot turn on forwarding in {}: {}",
                app.name(),
                String::from_utf8_lossy(&forward.stderr)
            );
        }
        calls.ip(&["route", "add", "default", "via", "10.250.1.1"])?;
        Ok(Lab { app, phones, calls })
    }

    /// Starts `exe serve` in the appliance's namespace with the families
    /// configuration and tree under `dir`, and waits until every service
    /// listens; `check` may stop the wait (the demo's Ctrl-C).
    pub fn serve(
        &self,
        exe: &Path,
        dir: &Path,
        check: &dyn Fn(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<Server> {
        self.serve_with(exe, dir, "", check)
    }

    /// `serve`, with `extra` TOML (whole sections) after the families
    /// configuration.
    pub fn serve_with(
        &self,
        exe: &Path,
        dir: &Path,
        extra: &str,
        check: &dyn Fn(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(dir)?;
        let tree = dir.join("tree");
        families_tree(&tree)?;
        let config = dir.join("dialtone.toml");
        std::fs::write(
            &config,
            format!("{}\n{extra}", families_config(&dir.join("state"), &tree)),
        )?;
        let log = dir.join("dialtone.log");
        let child = self
            .app
            .command(&exe.display().to_string())
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start dialtone in the lab")?;
        let server = Server { child, log };
        let deadline = Instant::now() + Duration::from_secs(15);
        let started = || {
            let log = server.log();
            [
                "serving DHCP",
                "serving DNS",
                "serving SNTP",
                "serving TFTP",
            ]
            .iter()
            .all(|s| log.matches(s).count() >= 2)
                && log.contains("serving HTTP")
        };
        while !started() {
            check("start-up")?;
            if Instant::now() > deadline {
                bail!("dialtone did not start in the lab:\n{}", server.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// The two call servers' stand-ins, answering on the health check's port.
    /// The pair, each answering TCP and SIP on 8060 (`_sip._udp` of the
    /// lab's zone), and each a registrar that knows the lab phones' lines
    /// (`lab_registrar`).
    pub fn call_servers(&self) -> anyhow::Result<(CallServer, CallServer)> {
        let start =
            |ip| CallServer::with_registrar(&self.calls, ip, 8060, Some(8060), lab_registrar());
        Ok((
            start(Ipv4Addr::new(10, 250, 1, 151))?,
            start(Ipv4Addr::new(10, 250, 1, 152))?,
        ))
    }
}

pub fn run() -> anyhow::Result<()> {
    let interrupted = Arc::new(AtomicBool::new(false));
    // Ctrl-C: note it and let the guards below remove the lab on the way out.
    {
        let flag = Arc::clone(&interrupted);
        let _ = std::thread::Builder::new()
            .name("demo-signal".into())
            .spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(async {
                        let _ = tokio::signal::ctrl_c().await;
                    });
                    flag.store(true, Ordering::SeqCst);
                    eprintln!("\ninterrupted: removing the lab");
                }
            });
    }
    let check = |what: &str| -> anyhow::Result<()> {
        if interrupted.load(Ordering::SeqCst) {
            bail!("interrupted during {what}");
        }
        Ok(())
    };
    if which("ip").is_none() {
        bail!("`ip` is needed for the demo (apt-get install iproute2)");
    }
    let prefix = unique("demo");
    println!("building the lab: namespaces {prefix}-appliance, {prefix}-phones and {prefix}-calls");
    let lab = Lab::new(&prefix)?;
    let dir = std::env::temp_dir().join(&prefix);
    let _dir_guard = DirGuard(dir.clone());
    let (ic1, _ic2) = lab.call_servers()?;
    let exe = std::env::current_exe().context("cannot find the dialtone binary")?;
    let server = lab.serve(&exe, &dir, &check)?;
    println!(
        "dialtone is serving native0 (192.168.1.1/24) and voice0 (10.250.0.1/24, the voice VLAN):\n\
         DHCP, DNS (lab.voip, call servers vm40ic1/vm40ic2), SNTP, TFTP and HTTP :8088\n"
    );

    let mut rows: Vec<(String, Boot)> = Vec::new();
    let specs = phone::lab_phones();
    for spec in &specs {
        check("the phones' boot")?;
        let boot = phone::boot(&lab.phones, spec.vlan, spec);
        print!("{}", details(spec, &boot));
        rows.push((spec.profile.to_string(), boot));
    }

    // The switchover pair: a call server stops, the appliance notices, and a
    // phone booting now registers with its partner.
    check("the failover")?;
    println!("call server vm40ic1 (10.250.1.151) stops answering...");
    drop(ic1);
    lab.phones.addr("voice", "10.250.0.9/24")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        check("the failover")?;
        let a = lab.phones.run_in(|| {
            clients::ask(
                Ipv4Addr::new(10, 250, 0, 1),
                Ipv4Addr::new(10, 250, 0, 9),
                "provision.lab.voip",
                RecordType::A,
            )
        })?;
        if a == ["10.250.1.152"] {
            break;
        }
        if Instant::now() > deadline {
            bail!("the switchover pair did not fail over within 15 s");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = lab
        .phones
        .ip(&["addr", "del", "10.250.0.9/24", "dev", "voice"]);
    println!("the appliance noticed; provision.lab.voip now answers 10.250.1.152 only\n");
    if let Some(spec) = specs.iter().find(|s| s.profile == "generic-sip") {
        let boot = phone::boot(&lab.phones, spec.vlan, spec);
        print!("{}", details(spec, &boot));
        rows.push((format!("{} after failover", spec.profile), boot));
    }

    println!("{}", table(&rows));
    println!("removing the lab");
    let failed: Vec<&str> = rows
        .iter()
        .filter(|(_, b)| b.result.is_err())
        .map(|(f, _)| f.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} phone(s) did not boot: {}; server log:\n{}",
            failed.len(),
            failed.join(", "),
            server.log()
        );
    }
    Ok(())
}

/// Options shown in the table: everything but the lease's bookkeeping.
fn shown(code: u8) -> bool {
    !matches!(code, 1 | 3 | 6 | 15 | 51 | 53 | 54 | 58 | 59)
}

fn files_text(boot: &Boot) -> String {
    let list: Vec<String> = boot
        .files
        .iter()
        .map(|f| match &f.got {
            Ok(n) if f.via == "http range" => format!("{} (first {n} bytes)", f.name),
            Ok(n) => format!("{} ({n} bytes, {})", f.name, f.via),
            Err(e) if f.optional => format!("{} ({e}, optional)", f.name),
            Err(e) => format!("{} (FAILED: {e})", f.name),
        })
        .collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

/// One phone's boot, step by step.
pub fn details(spec: &Spec, boot: &Boot) -> String {
    let mut o = String::new();
    let address = boot
        .address
        .map(|a| a.to_string())
        .unwrap_or_else(|| "no address".into());
    let _ = writeln!(
        o,
        "{} ({}, {} VLAN, {}) -> {address}",
        spec.label, spec.profile, spec.vlan, spec.mac
    );
    let options: Vec<String> = boot
        .options
        .iter()
        .filter(|(c, _)| shown(*c))
        .map(|(c, b)| format!("{c}={}", crate::dhcp::show::decode(*c, b)))
        .collect();
    let _ = writeln!(o, "  options  {}", options.join("  "));
    for (q, a) in &boot.dns {
        let _ = writeln!(o, "  dns      {q} -> {}", a.join(", "));
    }
    if let Some((stratum, offset)) = boot.time {
        let _ = writeln!(
            o,
            "  time     SNTP stratum {stratum}, offset {offset:+.3} s"
        );
    }
    let _ = writeln!(o, "  files    {}", files_text(boot));
    match &boot.result {
        Ok(r) => {
            let _ = writeln!(o, "  result   ok: {r}\n");
        }
        Err(e) => {
            let _ = writeln!(o, "  result   FAILED: {e}\n");
        }
    }
    o
}

/// The summary: family, address, options received, files fetched, result.
pub fn table(rows: &[(String, Boot)]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<28} {:<15} {:<24} {:<40} RESULT",
        "FAMILY", "ADDRESS", "OPTIONS RECEIVED", "FILES FETCHED"
    );
    for (family, b) in rows {
        let address = b
            .address
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        let codes: Vec<String> = b
            .options
            .iter()
            .filter(|(c, _)| shown(*c))
            .map(|(c, _)| c.to_string())
            .collect();
        let fetched = b.files.iter().filter(|f| f.got.is_ok()).count();
        let missing = b.files.iter().filter(|f| f.got.is_err()).count();
        let files = match (fetched, missing) {
            (0, 0) => "none (DHCP, DNS and time only)".to_string(),
            (n, 0) => format!("{n} fetched"),
            (n, m) => format!("{n} fetched, {m} missing"),
        };
        let result = match &b.result {
            Ok(r) => format!("ok: {r}"),
            Err(e) => format!("FAILED: {e}"),
        };
        let _ = writeln!(
            o,
            "{family:<28} {address:<15} {:<24} {files:<40} {result}",
            codes.join(" ")
        );
    }
    o
}

/// `dialtone serve` running in the lab; stopped when dropped.
pub struct Server {
    child: std::process::Child,
    log: PathBuf,
}

impl Server {
    /// Its process id (`ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    })
}

struct DirGuard(std::path::PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_has_a_class_per_lab_profile_and_their_lines() {
        let text = families_config(Path::new("/tmp/state"), Path::new("/tmp/tree"));
        let c = crate::config::Config::parse("demo.toml", &text).expect("the demo's configuration");
        for (_, p) in crate::families::lab_phones() {
            assert!(
                c.dhcp
                    .classes
                    .iter()
                    .any(|k| k.profile.as_deref() == Some(p.profile)),
                "no class for {}",
                p.profile
            );
            if let Some(line) = &p.line {
                let phone = c.phones.by_mac(crate::units::Mac(p.mac)).expect("its line");
                assert_eq!(phone.extension.as_deref(), Some(line.extension));
                assert_eq!(phone.sip_password, Some(format!("demo-{}", line.extension)));
            }
        }
    }
}
