//! The command line: `check` on good and bad files, `profiles`, `explain`,
//! `demo` end to end.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dialtone");

#[test]
fn check_accepts_the_example_and_prints_it_normalized() {
    let out = Command::new(BIN)
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/dialtone.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lease_time = 3600"), "{text}");
    assert!(text.contains("options.raw.132 = \"text:100\""), "{text}");
}

#[test]
fn check_names_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("dialtone-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[server]\ninterfaces = [\"eth0\"]\n\n[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.1.1-10.0.1.9\"]\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:6:", f.display())), "{err}");
    assert!(err.contains("dhcp.subnet[0].pool[0]"), "{err}");
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/dialtone.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn profiles_lists_every_family() {
    let out = Command::new(BIN).arg("profiles").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "audiocodes",
        "audiocodes-sfb",
        "polycom",
        "interaction-sip-station",
        "softphone",
        "recovery",
        "generic-sip",
    ] {
        assert!(
            text.contains(&format!("\n{name}\n")) || text.starts_with(&format!("{name}\n")),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains("5=\"/CertProv/CertProvisioningService.svc\""),
        "{text}"
    );
}

/// A whole boot explained: classes and why, the answer byte by byte, DNS
/// answers from the zone, and files from the tree (static, missing, private).
#[test]
fn explain_shows_the_whole_boot_without_the_network() {
    let dir = std::env::temp_dir().join(format!("dialtone-explain-{}", std::process::id()));
    let root = dir.join("files");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("450HD_3.4.6.img"), b"image").unwrap();
    std::fs::write(
        root.join("00908f123456.cfg"),
        b"voip/line/0/auth_name=1234\n",
    )
    .unwrap();
    let config = dir.join("dialtone.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
state_dir = "{state}"
interfaces = ["dtexplain0"]

[dhcp]
options.time_offset = "-05:00"

[dhcp.images]
"450HD" = "450HD_3.4.6.img"

[[dhcp.subnet]]
cidr = "10.250.0.0/24"
pool = ["10.250.0.100-10.250.0.250"]
router = "10.250.0.1"
dns = ["self"]
domain = "lab.voip"

[[dhcp.class]]
name = "ac"
profile = "audiocodes"

[[dhcp.class]]
name = "sfb"
profile = "audiocodes-sfb"
options.vendor_specific = {{ 3 = "sfb.lab.voip" }}
options.sip_servers = ["sfb.lab.voip"]

[dns]
zone = "lab.voip"

[[dns.host]]
name = "sfb"
ip = "10.250.1.160"

[files]
root = "{root}"
http = ["0.0.0.0:8088"]
"#,
            state = dir.join("state").display(),
            root = root.display()
        ),
    )
    .unwrap();
    let explain = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["explain", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let text = explain(&[
        "--mac",
        "00:90:8f:12:34:56",
        "--user-class",
        "450HD",
        "--requests",
        "1,3,6,15",
    ]);
    assert!(
        text.contains("assumed: dtexplain0 has no address"),
        "{text}"
    );
    assert!(
        text.contains("ac (profile audiocodes): matched { user_class = \"4??HD\" }"),
        "{text}"
    );
    assert!(!text.contains("sfb (profile"), "{text}");
    assert!(text.contains("OFFER 10.250.0.100"), "{text}");
    assert!(
        text.contains("160 provisioning_url \"http://10.250.0.1:8088/\""),
        "{text}"
    );
    assert!(text.contains("ff ff b9 b0"), "{text}");
    assert!(text.contains("ProvisioningServer A: 10.250.0.1"), "{text}");
    assert!(text.contains("1. 450HD_3.4.6.img (firmware, read in part to compare versions): static file 450HD_3.4.6.img (5 bytes)"), "{text}");
    assert!(
        text.contains("2. 00908F123456.cfg: static file 00908f123456.cfg"),
        "{text}"
    );
    assert!(text.contains("3. 450HD.cfg: missing"), "{text}");

    // Skype for Business: option 43 decoded, option 120's name resolved.
    let text = explain(&[
        "--mac",
        "00:90:8f:12:34:57",
        "--user-class",
        "450HD",
        "--vendor-class",
        "MS-UC-Client",
    ]);
    assert!(
        text.contains("sfb (profile audiocodes-sfb): matched { vendor_class = \"MS-UC-Client\" }"),
        "{text}"
    );
    assert!(text.contains("3=\"sfb.lab.voip\""), "{text}");
    assert!(text.contains("sfb.lab.voip A: 10.250.1.160"), "{text}");
    // This phone has no per-phone file in the tree.
    assert!(text.contains("00908F123457.cfg: missing"), "{text}");

    assert!(text.contains("leases: none"), "{text}");

    // With the server's lease database, a known phone is shown its own
    // (sticky) address, not the first free one.
    {
        use dialtone::leases::store::Store;
        use dialtone::leases::table::{Lease, LeaseState};
        let mut store = Store::open(&dir.join("state").join("leases.sqlite")).unwrap();
        let sticky = Lease {
            ip: "10.250.0.150".parse().unwrap(),
            mac: "00:90:8f:12:34:56".parse().unwrap(),
            hostname: None,
            vendor_class: None,
            user_class: Some("450HD".into()),
            interface: "voice0".into(),
            state: LeaseState::Bound,
            expires: dialtone::now() + 3600,
        };
        store.write([&sticky]).unwrap();
    }
    let text = explain(&["--mac", "00:90:8f:12:34:56", "--user-class", "450HD"]);
    assert!(text.contains("leases: 1 leases read from"), "{text}");
    assert!(text.contains("OFFER 10.250.0.150"), "{text}");

    // A bad MAC is refused before anything runs.
    let out = Command::new(BIN)
        .args(["explain", "--config"])
        .arg(&config)
        .args(["--mac", "00:90:8f"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mac"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_boots_every_lab_phone_and_cleans_up() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the demo builds namespaces: run as root (CI does)"
    );
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("67=sip100.img"), "{text}");
    // DNS and time from the phones' side, then the failover.
    assert!(
        text.contains("provision.lab.voip         A    -> 10.250.1.151, 10.250.1.152"),
        "{text}"
    );
    assert!(
        text.contains("_sip._tcp.lab.voip         SRV  -> 0 0 8060 vm40ic1.lab.voip., 0 0 8060 vm40ic2.lab.voip."),
        "{text}"
    );
    assert!(
        text.contains("ProvisioningServer         A    -> 10.250.0.1"),
        "{text}"
    );
    assert!(text.contains("stratum 10"), "{text}");
    assert!(
        text.contains("_sip._tcp.lab.voip         SRV  -> 0 0 8060 vm40ic2.lab.voip., 10 0 8060 vm40ic1.lab.voip."),
        "{text}"
    );
    assert!(text.contains("67=450HD.img"), "{text}");
    assert!(text.contains("43=<79 bytes"), "{text}");
    let prefix = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(4)
        .unwrap_or("")
        .trim_end_matches("-appliance")
        .to_string();
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!prefix.is_empty());
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&prefix),
        "lab left behind"
    );
}
