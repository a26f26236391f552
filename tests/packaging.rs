//! The Debian package and its unit, as an installer gets them: the .deb
//! built by `images/deb.sh` holds what docs/packaging.md lists, lintian finds
//! no error in it and no warning that docs/packaging.md does not explain,
//! the unit's hardening keeps `systemd-analyze security` at 2.5 or below,
//! and the unit's capabilities are the ones the code keeps with `--user`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The package, built once for every test of this file.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        run(Command::new("bash").arg(Path::new(ROOT).join("images/deb.sh")));
        let dir = Path::new(ROOT).join("target/debian");
        let version = env!("CARGO_PKG_VERSION");
        let deb = dir.join(format!("dialtone_{version}-1_amd64.deb"));
        assert!(deb.exists(), "{} not built", deb.display());
        deb
    })
}

fn unit() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("systemd/dialtone.service")).unwrap()
}

#[test]
fn the_package_installs_the_binary_config_unit_user_and_docs() {
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(deb()));
    for path in [
        "./usr/sbin/dialtone",
        "./etc/dialtone/dialtone.toml",
        "./usr/share/doc/dialtone/examples/dialtone.toml",
        "./usr/lib/systemd/system/dialtone.service",
        "./usr/lib/sysusers.d/dialtone.conf",
        "./usr/lib/tmpfiles.d/dialtone.conf",
        "./usr/share/man/man1/dialtone.1.gz",
        "./usr/share/man/man1/dialtone-serve.1.gz",
        "./usr/share/bash-completion/completions/dialtone",
        "./usr/share/zsh/vendor-completions/_dialtone",
        "./usr/share/doc/dialtone/copyright",
        "./usr/share/doc/dialtone/changelog.Debian.gz",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{listing}"
        );
    }
    // Nothing under /srv (Debian Policy 9.1.1): the tree is made at install.
    assert!(!listing.contains("./srv/"), "{listing}");
    let name = run(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(deb())
        .arg("Package"));
    assert_eq!(name.trim(), "dialtone");
    let ctl = tempdir("ctl");
    run(Command::new("dpkg-deb").arg("-e").arg(deb()).arg(&ctl));
    let conf = std::fs::read_to_string(ctl.join("conffiles")).unwrap();
    assert_eq!(conf.trim(), "/etc/dialtone/dialtone.toml");
    // The maintainer scripts make the user before the unit starts.
    let postinst = std::fs::read_to_string(ctl.join("postinst")).unwrap();
    let user = postinst
        .find("systemd-sysusers")
        .expect("sysusers in postinst");
    let start = postinst
        .find("deb-systemd-invoke")
        .expect("start in postinst");
    assert!(user < start, "{postinst}");
    assert!(postinst.contains("deb-systemd-helper enable dialtone.service"));
    let _ = std::fs::remove_dir_all(ctl);
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dialtone-pkg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_default_configuration_passes_check_and_serves_nothing() {
    let bin = env!("CARGO_BIN_EXE_dialtone");
    let conf = Path::new(ROOT).join("config/appliance.toml");
    run(Command::new(bin)
        .args(["check", "--quiet", "--config"])
        .arg(&conf));
    let text = run(Command::new(bin).args(["check", "--config"]).arg(&conf));
    assert!(
        !text.contains("interfaces ="),
        "names no interface:\n{text}"
    );
}

#[test]
fn lintian_finds_no_error_and_only_explained_warnings() {
    let out = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(deb())
        .output()
        .expect("lintian (Debian package lintian; tests/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.lines().any(|l| l.starts_with("E:")),
        "lintian errors:\n{text}"
    );
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/packaging.md")).unwrap();
    for l in text.lines().filter(|l| l.starts_with("W:")) {
        let tag = l.split_whitespace().nth(2).unwrap_or_default();
        assert!(
            doc.contains(&format!("`{tag}`")),
            "lintian warning {tag} is not explained in docs/packaging.md:\n{l}"
        );
    }
}

#[test]
fn systemd_analyze_security_rates_the_unit_ok() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(Path::new(ROOT).join("systemd/dialtone.service"))
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level for dialtone.service"))
        .unwrap_or_else(|| panic!("{text}"));
    let figure = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{line}"));
    let level: f64 = figure.parse().unwrap_or_else(|_| panic!("{line}"));
    assert!(level <= 2.5, "{line}");
    let recorded = std::fs::read_to_string(Path::new(ROOT).join("docs/packaging.md")).unwrap();
    assert!(
        recorded.contains(&format!("**{figure} OK**")),
        "docs/packaging.md does not record {figure}"
    );
}

#[test]
fn the_unit_grants_exactly_the_capabilities_the_code_keeps() {
    let unit = unit();
    let mut keep: Vec<String> = dialtone::daemon::privileges::NEEDED
        .iter()
        .map(|c| c.to_string())
        .collect();
    keep.sort();
    for key in ["AmbientCapabilities=", "CapabilityBoundingSet="] {
        let line = unit
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}"));
        let mut caps: Vec<String> = line.split_whitespace().map(String::from).collect();
        caps.sort();
        assert_eq!(caps, keep, "{key}");
    }
    for want in [
        "Type=notify",
        "User=_dialtone",
        "StateDirectory=dialtone",
        "WatchdogSec=",
        "ExecReload=/usr/sbin/dialtone check --quiet",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(want), "unit lacks {want}");
    }
    let users = std::fs::read_to_string(Path::new(ROOT).join("systemd/dialtone.sysusers")).unwrap();
    assert!(users.lines().any(|l| l.starts_with("u _dialtone ")));
}
