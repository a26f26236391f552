//! The command line: `check` on good and bad files, `demo` end to end.

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
