//! The command line: `check` on good and bad files, `profiles`, `explain`,
//! `demo` end to end.

use std::ffi::OsStr;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dialtone");

/// What one run of the binary did.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn dialtone<A: AsRef<OsStr>>(args: &[A]) -> Ran {
    let out = Command::new(BIN).args(args).output().unwrap();
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn check_accepts_the_example_and_prints_it_normalized() {
    let out = dialtone(&[
        "check",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/dialtone.toml"),
    ]);
    assert!(out.ok, "{}", out.stderr);
    let text = out.stdout;
    assert!(text.contains("lease_time = 3600"), "{text}");
    assert!(text.contains("options.raw.132 = \"text:100\""), "{text}");
}

#[test]
fn check_names_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("dialtone-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[server]\ninterfaces = [\"eth0\"]\n\n[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.1.1-10.0.1.9\"]\n").unwrap();
    let out = dialtone(&[OsStr::new("check"), OsStr::new("--config"), f.as_os_str()]);
    assert!(!out.ok);
    let err = out.stderr;
    assert!(err.contains(&format!("{}:6:", f.display())), "{err}");
    assert!(err.contains("dhcp.subnet[0].pool[0]"), "{err}");
    let out = dialtone(&["check", "--config", "/nonexistent/dialtone.toml"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_offline_asks_no_resolver_and_compares_no_interfaces() {
    let dir = std::env::temp_dir().join(format!("dialtone-cli-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("names.toml");
    // `localhost` is known to the system resolver (/etc/hosts), not to [dns];
    // `nosuch0` is not an interface of this machine.
    std::fs::write(
        &f,
        "[server]\ninterfaces = [\"nosuch0\"]\n\n[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\n\
         pool = [\"10.0.0.10-10.0.0.20\"]\noptions.ntp_servers = [\"localhost\"]\n",
    )
    .unwrap();
    let online = dialtone(&[OsStr::new("check"), OsStr::new("--config"), f.as_os_str()]);
    assert!(online.ok, "{}", online.stderr);
    assert!(online.stdout.contains("127.0.0.1"), "{}", online.stdout);
    assert!(online.stderr.contains("nosuch0"), "{}", online.stderr);
    let offline = dialtone(&[
        OsStr::new("check"),
        OsStr::new("--offline"),
        OsStr::new("--config"),
        f.as_os_str(),
    ]);
    assert!(!offline.ok);
    assert!(
        offline.stderr.contains(&format!(
            "{}:7:23: dhcp.subnet[0].options.ntp_servers: `localhost` is not defined in [dns] (names are not resolved here)",
            f.display()
        )),
        "{}",
        offline.stderr
    );
    assert!(!offline.stderr.contains("nosuch0"), "{}", offline.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn profiles_lists_every_family() {
    let out = dialtone(&["profiles"]);
    assert!(out.ok);
    let text = out.stdout;
    for name in [
        "audiocodes",
        "audiocodes-sfb",
        "polycom",
        "interaction-sip-station",
        "softphone",
        "recovery",
        "yealink",
        "cisco",
        "grandstream",
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
    assert!(
        text.contains(
            "  150 tftp_servers       always    ip:self unless the configuration sets it"
        ),
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
    let c = config.to_str().unwrap();
    let explain = |extra: &[&str]| {
        let out = dialtone(&[&["explain", "--config", c], extra].concat());
        assert!(out.ok, "{}", out.stderr);
        out.stdout
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
    // The BOOTP header names the model's image and this appliance as the
    // next server even though 66 and 67 were not asked for.
    assert!(
        text.contains("OFFER 10.250.0.100 (333 bytes), boot file field 450HD_3.4.6.img, next server (siaddr) 10.250.0.1"),
        "{text}"
    );
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
    // This phone is in neither the tree nor the inventory: an AudioCodes
    // MAC gets a provisional configuration.
    assert!(
        text.contains("00:90:8f:12:34:57 is not in the inventory: its configuration files are provisional (line \"Setup\", no registration)"),
        "{text}"
    );
    assert!(
        text.contains(
            "00908F123457.cfg: generated for this phone as a provisional configuration ("
        ),
        "{text}"
    );

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
    let out = dialtone(&["explain", "--config", c, "--mac", "00:90:8f"]);
    assert!(!out.ok);
    assert!(out.stderr.contains("--mac"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_boots_one_phone_of_each_family_and_cleans_up() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the demo builds namespaces: run as root (CI does)"
    );
    let out = dialtone(&["demo"]);
    let text = out.stdout;
    assert!(out.ok, "{text}\n{}", out.stderr);
    // The table: one row per family, every boot ending well, in the order
    // the phones boot (the voice pool hands out .100 onwards).
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("FAMILY"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    // Rows in the families' order (`families::ALL`), each family's lab
    // phones in turn.
    let expected = [
        (
            "audiocodes ",
            "10.250.0.100",
            "42 2 66 67 160",
            "3 fetched, 1 missing",
            "ok: registered 7501 at vm40ic1.lab.voip:8060: 200 OK",
        ),
        (
            "audiocodes-sfb ",
            "10.250.0.101",
            "42 2 43 66 67 120 160",
            "3 fetched, 1 missing",
            "ok: registers line 7502 at vm40ic1.lab.voip:5061",
        ),
        (
            "recovery ",
            "192.168.1.100",
            "66 67 160 42 132",
            "1 fetched",
            "ok: flashed 3145728 bytes, back at 192.168.1.100; option 132 moves it to VLAN 100",
        ),
        (
            "polycom ",
            "10.250.0.102",
            "42 2 160",
            "3 fetched, 1 missing",
            "ok: registered 7503 at vm40ic1.lab.voip:8060: 200 OK",
        ),
        (
            "interaction-sip-station ",
            "10.250.0.103",
            "42 2 66 67 160",
            "4 fetched",
            "ok: registered at vm40ic1.lab.voip:8060: 200 OK",
        ),
        (
            "softphone ",
            "10.250.0.60",
            "160",
            "1 fetched",
            "ok: configured (72 bytes)",
        ),
        (
            "yealink ",
            "10.250.0.104",
            "42 2 66",
            "1 fetched, 3 missing",
            "ok: registered 7505 at vm40ic1.lab.voip:8060: 200 OK",
        ),
        (
            "cisco ",
            "10.250.0.105",
            "42 2 66 150",
            "1 fetched, 2 missing",
            "ok: registered 7507 at vm40ic1.lab.voip:8060: 200 OK",
        ),
        (
            "grandstream ",
            "10.250.0.106",
            "42 2 66",
            "1 fetched, 1 missing",
            "ok: registered 7506 at vm40ic1.lab.voip:8060: 200 OK",
        ),
        (
            "generic-sip ",
            "10.250.0.107",
            "42 2",
            "none (DHCP, DNS and time only)",
            "ok: registered at vm40ic1.lab.voip:8060: 200 OK",
        ),
        (
            "generic-sip after failover ",
            "10.250.0.107",
            "42 2",
            "none",
            "ok: registered at vm40ic2.lab.voip:8060: 200 OK",
        ),
    ];
    assert_eq!(table.len(), expected.len(), "{text}");
    for (row, (family, address, options, files, result)) in table.iter().zip(expected) {
        let fields: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        assert!(row.starts_with(family), "{row}\n{text}");
        assert_eq!(fields.get(1), Some(&address), "{row}");
        assert_eq!(fields.get(2), Some(&options), "{row}");
        assert!(fields.get(3).is_some_and(|f| f.starts_with(files)), "{row}");
        assert!(row.ends_with(result), "{row}");
    }
    // The details: what the phones were told and what they fetched.
    for line in [
        "  options  42=10.250.0.1  2=-18000 s (UTC-05:00)  43=1=\"MS-UC-Client\" 2=\"https\" 3=\"sfb.lab.voip\" 4=\"443\" 5=\"/CertProv/CertProvisioningService.svc\"",
        "  files    450HD_3.4.6.img (first 1024 bytes), 450HD_3.4.6.img (3145728 bytes, http), 00908F000100.cfg (",
        "  files    3111-48450-001.bootrom.ld (HTTP 404, optional), 0004f2000300.cfg (",
        "  files    450HD_3.4.6.img (3145728 bytes, tftp)",
        "  dns      _sip._udp.lab.voip SRV -> 0 0 8060 vm40ic1.lab.voip., 0 0 8060 vm40ic2.lab.voip.",
        "  dns      _sip._udp.lab.voip SRV -> 0 0 8060 vm40ic2.lab.voip., 10 0 8060 vm40ic1.lab.voip.",
        "  time     SNTP stratum 10, offset ",
        "the appliance noticed; provision.lab.voip now answers 10.250.1.152 only",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
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

#[test]
fn import_reports_bad_rows_keeps_good_ones_and_explain_sees_generated_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("dialtone-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("files");
    std::fs::create_dir_all(&root).unwrap();
    let config = dir.join("dialtone.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
state_dir = "{state}"
interfaces = ["dtimport0"]

[[dhcp.subnet]]
cidr = "10.250.0.0/24"
pool = ["10.250.0.100-10.250.0.250"]
router = "10.250.0.1"

[[dhcp.class]]
name = "ac"
profile = "audiocodes"

[[dhcp.class]]
name = "poly"
profile = "polycom"

[files]
root = "{root}"
"#,
            state = dir.join("state").display(),
            root = root.display()
        ),
    )
    .unwrap();
    // CIC's sample list (001 L1611-1619).
    let list = dir.join("list.csv");
    std::fs::write(
        &list,
        "Name,Type,Manufacturer,Model,Proxy Group,Extension,Identification Address,Label,Address\r\n\
         PolycomLobby2,Stand-alone Phone,Polycom,IP330,,7102,,Lobby,\r\n\
         PolycomAgent2,workstation,Polycom,IP601,,7202,,Line1,0004F204F6A9\r\n\
         AgentSSP-PC2,workstation,ININ,Soft Phone,Remote Agent SSP - TLS,7302,7302,,\r\n\
         AgentISS1,Stand-alone Phone,ININ,Interaction SIP Station,Remote Agent ISS - TCP,7402,7402,,0026DF00020\r\n\
         Agent420HD,Stand-alone Phone,AudioCodes,420HD,,7502,7502,,00908F123456\r\n\
         AgentISS2,Stand-alone Phone,ININ,Interaction SIP Station II,Remote Agent ISS - TCP,7602,7602,Line2,00908F5635BB\r\n",
    )
    .unwrap();
    let (c, l) = (config.to_str().unwrap(), list.to_str().unwrap());
    let Ran {
        ok,
        stdout: out,
        stderr: err,
    } = dialtone(&["import", l, "--config", c]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("list.csv:line 5 (AgentISS1): refused: short MAC `0026DF00020`: 11 hex digits, expected 12"), "{out}");
    assert!(
        out.contains("list.csv:line 7 (AgentISS2): refused: wrong OUI for ININ"),
        "{out}"
    );
    assert!(
        out.contains("4 rows imported (4 new, 0 updated), 2 refused; 4 phones in"),
        "{out}"
    );
    let phones = dir.join("phones.toml");
    assert_eq!(
        std::fs::metadata(&phones).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Imported again: the same phones, updated, passwords kept.
    let before = std::fs::read_to_string(&phones).unwrap();
    let Ran {
        ok, stdout: out, ..
    } = dialtone(&["import", l, "--config", c]);
    assert!(ok && out.contains("(0 new, 4 updated)"), "{out}");
    assert_eq!(std::fs::read_to_string(&phones).unwrap(), before);
    // serve would load it: check lists the phones.
    let Ran {
        ok,
        stdout: out,
        stderr: err,
    } = dialtone(&["check", "--config", c]);
    assert!(ok, "{err}");
    assert!(
        out.contains("#   00:90:8f:12:34:56 Agent420HD (audiocodes) extension 7502 from"),
        "{out}"
    );
    // explain finds the generated, private configuration of an imported phone.
    let Ran {
        ok,
        stdout: out,
        stderr: err,
    } = dialtone(&[
        "explain",
        "--config",
        c,
        "--mac",
        "00:04:f2:04:f6:a9",
        "--vendor-class",
        "Polycom-VVX",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("0004f204f6a9.cfg: generated for this phone from the inventory"),
        "{out}"
    );
    assert!(
        out.contains("0004f204f6a9-registration.cfg (listed in CONFIG_FILES): generated"),
        "{out}"
    );
    // A broken list fails as a whole and writes nothing.
    std::fs::write(&list, "Name,Model\nx,y\n").unwrap();
    let Ran {
        ok, stderr: err, ..
    } = dialtone(&["import", l, "--config", c]);
    assert!(
        !ok && err.contains("the header has no `Type` column"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&phones).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}
