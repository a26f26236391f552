//! `dialtone demo`: the main job on built-in defaults, safe on any machine.
//!
//! Builds a throwaway lab of network namespaces (an appliance with a native and
//! a voice VLAN interface, and a phone side), starts `dialtone serve` inside
//! with a built-in lab configuration, boots a few phones with the real `udhcpc`
//! client (different vendor and user classes, one in recovery mode), prints what
//! each received, and removes the lab, also on Ctrl-C or failure.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::lab::{Netns, unique, veth};

/// The lab configuration: the example file's scopes and classes, on the lab's
/// interface names.
pub const LAB_CONFIG: &str = r#"
[server]
state_dir = "@STATE@"
interfaces = ["native0", "voice0"]

[dhcp]
lease_time = "1h"

[[dhcp.subnet]]                      # native VLAN
cidr = "192.168.1.0/24"
pool = ["192.168.1.100-192.168.1.199"]
router = "192.168.1.1"
dns = ["self"]
domain = "lab.voip"
options.vlan_id = 100

[[dhcp.subnet]]                      # voice VLAN
cidr = "10.250.0.0/24"
pool = ["10.250.0.100-10.250.0.250"]
router = "10.250.0.1"
dns = ["self"]
domain = "lab.voip"
options.ntp_servers = ["self"]
options.time_offset = "-05:00"
options.provisioning_url = "http://provision.lab.voip:8088"

[[dhcp.class]]
name = "iss"
match.vendor_class = "SIP1*"
options.tftp_server = "self"
options.bootfile = "sip100.img"

[[dhcp.class]]
name = "audiocodes-recovery"
match.user_class = "*HD"
match.requests = [66, 67]
options.tftp_server = "self"
options.bootfile = "{user_class}.img"
force = [66, 67]

[[dhcp.class]]
name = "skype-for-business"
match.vendor_class = "MS-UC-Client"
options.vendor_specific = { 1 = "MS-UC-Client", 2 = "https", 3 = "sfb.lab.voip", 4 = "443", 5 = "/CertProv/CertProvisioningService.svc" }
options.sip_servers = ["sfb.lab.voip"]
"#;

/// The demo's voice zone: the CIC pair of PHONES.md section 4, checked over
/// TCP every second so a failover shows quickly, and the time service.
pub const LAB_DNS: &str = r#"
[dns]
zone = "lab.voip"
ttl = "60s"

[[dns.host]]
name = "vm40ic1"
ip = "10.250.1.151"
[[dns.host]]
name = "vm40ic2"
ip = "10.250.1.152"

[[dns.switchover]]
name = "cic"
members = ["vm40ic1", "vm40ic2"]
mode = "equal"
provision_name = "provision"
services = [
  { srv = "_sip._udp", port = 8060 },
  { srv = "_sip._tcp", port = 8060 },
  { srv = "_sips._tcp", port = 8061 },
]
health = { check = "tcp", interval = "1s" }

[time]
serve = true
"#;

struct Phone {
    label: &'static str,
    vlan: &'static str,
    mac: &'static str,
    /// udhcpc arguments saying who the phone is (`-V` vendor class, `-x`
    /// user class).
    identity: Vec<String>,
    /// The options it asks for in option 55 (udhcpc `-O`).
    requests: &'static [u8],
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
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
    for tool in ["ip", "udhcpc"] {
        if which(tool).is_none() {
            bail!("`{tool}` is needed for the demo (apt-get install iproute2 udhcpc)");
        }
    }
    let prefix = unique("demo");
    println!("building the lab: namespaces {prefix}-appliance and {prefix}-phones");
    let app = Netns::create(&format!("{prefix}-appliance"))?;
    let phones = Netns::create(&format!("{prefix}-phones"))?;
    veth(&app, "native0", &phones, "native")?;
    veth(&app, "voice0", &phones, "voice")?;
    app.addr("native0", "192.168.1.1/24")?;
    app.addr("voice0", "10.250.0.1/24")?;
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir)?;
    let _dir_guard = DirGuard(dir.clone());
    let cfg_path = dir.join("dialtone.toml");
    std::fs::write(
        &cfg_path,
        format!("{LAB_CONFIG}{LAB_DNS}")
            .replace("@STATE@", &dir.join("state").display().to_string()),
    )?;
    let log_path = dir.join("dialtone.log");
    let exe = std::env::current_exe().context("cannot find the dialtone binary")?;
    let _server = app
        .command(&exe.display().to_string())
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()
        .context("cannot start dialtone in the lab")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let started = || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        ["serving DHCP", "serving DNS", "serving SNTP"]
            .iter()
            .all(|s| log.matches(s).count() >= 2)
    };
    while !started() {
        check("start-up")?;
        if Instant::now() > deadline {
            bail!(
                "dialtone did not start in the lab:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "dialtone is serving native0 (192.168.1.1/24) and voice0 (10.250.0.1/24, the voice VLAN)\n"
    );

    let lab_phones = [
        Phone {
            label: "Interaction SIP Station (SIP100)",
            vlan: "voice",
            mac: "00:26:fd:00:01:00",
            identity: vec!["-V".into(), "SIP100".into()],
            requests: &[66, 67, 160, 42, 2],
        },
        Phone {
            label: "Polycom VVX",
            vlan: "voice",
            mac: "00:04:f2:00:02:00",
            identity: vec!["-V".into(), "Polycom-VVX".into()],
            requests: &[160, 42, 2],
        },
        Phone {
            label: "AudioCodes 450HD, bricked (recovery)",
            vlan: "native",
            mac: "00:90:8f:00:03:00",
            identity: vec!["-x".into(), format!("0x4d:{}", hex("450HD"))],
            requests: &[66, 67, 132],
        },
        Phone {
            label: "AudioCodes 450HD, Skype for Business",
            vlan: "voice",
            mac: "00:90:8f:00:04:00",
            identity: vec!["-V".into(), "MS-UC-Client".into()],
            requests: &[43, 120],
        },
    ];
    let script = dir.join("phone.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && env > \"$DT_OUT\"\nexit 0\n",
    )?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;

    let mut rows = Vec::new();
    for (i, ph) in lab_phones.iter().enumerate() {
        check("the phone boots")?;
        phones.ip(&["link", "set", ph.vlan, "address", ph.mac])?;
        let out_file = dir.join(format!("phone{i}.env"));
        let mut args: Vec<String> = ["-i", ph.vlan, "-n", "-q", "-f", "-t", "4", "-T", "1", "-s"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(script.display().to_string());
        args.extend(ph.identity.iter().cloned());
        for code in ph.requests {
            args.extend(["-O".to_string(), code.to_string()]);
        }
        let _ = phones
            .command("udhcpc")
            .args(&args)
            .env("DT_OUT", &out_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let env: HashMap<String, String> = std::fs::read_to_string(&out_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        rows.push((ph, env));
    }

    println!(
        "{:<38} {:<7} {:<17} {:<15} RECEIVED",
        "PHONE", "VLAN", "MAC", "ADDRESS"
    );
    let mut failures = 0;
    for (ph, env) in &rows {
        let ip = env.get("ip").cloned().unwrap_or_else(|| {
            failures += 1;
            "(no lease)".into()
        });
        let mut got = Vec::new();
        let text = |k: &str| {
            env.get(k)
                .map(|v| String::from_utf8_lossy(&unhex(v)).to_string())
        };
        if let Some(v) = env.get("tftp") {
            got.push(format!("66={v}"));
        }
        if let Some(v) = env.get("bootfile") {
            got.push(format!("67={v}"));
        }
        if let Some(v) = text("opt160") {
            got.push(format!("160={v}"));
        }
        if let Some(v) = env.get("ntpsrv") {
            got.push(format!("42={v}"));
        }
        if let Some(v) = env.get("timezone") {
            got.push(format!(
                "2={}",
                v.parse::<u32>().map(|n| n as i32).unwrap_or(0)
            ));
        }
        // busybox shows option 132 as the 16-bit number of its first two bytes.
        if let Some(v) = env.get("vlanid") {
            let b = v.parse::<u16>().unwrap_or(0).to_be_bytes();
            got.push(format!("132 starts {:?}", String::from_utf8_lossy(&b)));
        }
        if let Some(v) = env.get("opt43") {
            got.push(format!("43=<{} bytes of sub-options>", v.len() / 2));
        }
        if let Some(v) = env.get("sipsrv") {
            got.push(format!("120={v}"));
        } else if let Some(v) = env.get("opt120") {
            got.push(format!("120=hex:{v}"));
        }
        println!(
            "{:<38} {:<7} {:<17} {:<15} {}",
            ph.label,
            ph.vlan,
            ph.mac,
            ip,
            got.join("  ")
        );
    }
    println!(
        "\nlease database: {}",
        dir.join("state/leases.sqlite").display()
    );
    check("DNS")?;
    println!();
    lab_dns::show(&app, &phones, &check)?;
    println!("removing the lab");
    if failures > 0 {
        bail!(
            "{failures} phone(s) got no lease; server log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }
    Ok(())
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
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

/// The second half of the demo: a phone resolves its provisioning host and
/// call servers, a call server stops, and the answers follow.
mod lab_dns {
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant, SystemTime};

    use anyhow::{Context, bail};
    use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
    use hickory_server::proto::rr::{Name, RData, RecordType};

    use crate::lab::{CallServer, Netns};

    const APPLIANCE: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);

    /// Asks the appliance one question from the phones' side, as a phone would.
    fn ask(ns: &Netns, name: &str, qtype: RecordType) -> anyhow::Result<Vec<String>> {
        let name = Name::from_ascii(name)?;
        ns.run_in(move || {
            let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
            m.metadata.recursion_desired = true;
            m.add_query(Query::query(name, qtype));
            let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            sock.set_read_timeout(Some(Duration::from_secs(2)))?;
            sock.send_to(&m.to_vec()?, (APPLIANCE, 53))?;
            let mut buf = [0u8; 1500];
            let n = sock
                .recv(&mut buf)
                .context("no DNS answer from the appliance")?;
            let r = Message::from_vec(&buf[..n])?;
            let mut out: Vec<String> = r
                .answers
                .iter()
                .map(|rec| match &rec.data {
                    RData::A(a) => a.0.to_string(),
                    RData::SRV(s) => format!("{} {} {} {}", s.priority, s.weight, s.port, s.target),
                    other => other.to_string(),
                })
                .collect();
            out.sort();
            Ok(out)
        })
    }

    /// The appliance's clock as SNTP reports it, minus ours.
    fn sntp_offset(ns: &Netns) -> anyhow::Result<(u8, f64)> {
        ns.run_in(|| {
            let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            sock.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut req = [0u8; 48];
            req[0] = (4 << 3) | 3;
            let sent = SystemTime::now();
            req[40..48].copy_from_slice(&crate::time::sntp::ntp_timestamp(sent).to_be_bytes());
            sock.send_to(&req, (APPLIANCE, 123))?;
            let mut buf = [0u8; 68];
            let n = sock
                .recv(&mut buf)
                .context("no SNTP answer from the appliance")?;
            if n < 48 || buf[0] & 7 != 4 {
                bail!("not an SNTP server reply");
            }
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&buf[40..48]);
            let theirs = crate::time::sntp::unix_time(u64::from_be_bytes(ts), sent);
            let ours = SystemTime::now();
            let offset = match theirs.duration_since(ours) {
                Ok(d) => d.as_secs_f64(),
                Err(e) => -e.duration().as_secs_f64(),
            };
            Ok((buf[1], offset))
        })
    }

    pub fn show(
        app: &Netns,
        phones: &Netns,
        check: &dyn Fn(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        // The phones' side of the voice VLAN, and the two call servers behind it.
        phones.addr("voice", "10.250.0.9/24")?;
        phones.addr("voice", "10.250.1.151/24")?;
        phones.addr("voice", "10.250.1.152/24")?;
        app.ip(&["route", "add", "10.250.1.0/24", "dev", "voice0"])?;
        let ic1 = CallServer::start(phones, Ipv4Addr::new(10, 250, 1, 151), 8060, None)?;
        let _ic2 = CallServer::start(phones, Ipv4Addr::new(10, 250, 1, 152), 8060, None)?;

        println!("a phone on the voice VLAN asks the appliance (10.250.0.1):");
        let show = |name: &str, t: RecordType| -> anyhow::Result<Vec<String>> {
            let a = ask(phones, name, t)?;
            println!("  {:<26} {:<4} -> {}", name, t.to_string(), a.join(", "));
            Ok(a)
        };
        show("provision.lab.voip", RecordType::A)?;
        show("ProvisioningServer", RecordType::A)?;
        show("_sip._tcp.lab.voip", RecordType::SRV)?;
        let (stratum, offset) = sntp_offset(phones)?;
        println!(
            "  {:<26} {:<4} -> stratum {stratum}, offset {offset:+.3} s",
            "10.250.0.1:123", "SNTP"
        );

        println!("\ncall server vm40ic1 (10.250.1.151) stops answering...");
        drop(ic1);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            check("the failover")?;
            if ask(phones, "provision.lab.voip", RecordType::A)? == ["10.250.1.152"] {
                break;
            }
            if Instant::now() > deadline {
                bail!("the switchover pair did not fail over within 15 s");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        println!("the appliance noticed; phones are steered to its partner:");
        show("provision.lab.voip", RecordType::A)?;
        show("_sip._tcp.lab.voip", RecordType::SRV)?;
        Ok(())
    }
}
