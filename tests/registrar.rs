//! The phones register with a real SIP registrar: Kamailio from Debian's
//! archive, with its auth and registrar modules and a credential store
//! written from dialtone's phones, checks the digest answers the emulated
//! phones compute from the files dialtone generated for them. sipsak, a
//! second SIP client, confirms the registrar refuses a wrong password. The
//! lab is the demo's; each test removes its namespaces and files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dialtone::demo::{Lab, Server};
use dialtone::lab::phone::{self, Boot};
use dialtone::lab::{CallServer, unique};

const BIN: &str = env!("CARGO_BIN_EXE_dialtone");
const REGISTRAR: &str = "10.250.1.151:8060";

/// Kamailio in the call servers' namespace, stopped on drop.
struct Kamailio {
    child: Child,
    dir: PathBuf,
}

impl Kamailio {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    /// `kamcmd` on its control socket.
    fn kamcmd(&self, args: &[&str]) -> String {
        let sock = format!("unix:{}", self.dir.join("kamailio_ctl").display());
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(&sock)
            .args(args)
            .output()
            .expect("kamcmd");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A value for Kamailio's configuration language (a double-quoted string).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Starts Kamailio on `REGISTRAR` with realm `lab.voip` and the users of
/// `config` (dialtone's configuration text: its phones with an extension
/// and a SIP password), and waits until it is ready.
fn kamailio(lab: &Lab, dir: &Path, config: &str) -> Kamailio {
    std::fs::create_dir_all(dir).unwrap();
    let c = dialtone::config::Config::parse("dialtone.toml", config).expect("the lab's config");
    let mut users = String::new();
    for p in &c.phones.phones {
        if let (Some(user), Some(pw)) = (p.user(), p.sip_password.as_deref()) {
            users.push_str(&format!("$sht(users=>{user}) = {};\n", quoted(pw)));
        }
    }
    assert!(users.contains("users=>7501"), "{users}");
    std::fs::write(dir.join("users.cfg"), users).unwrap();
    let cfg = include_str!("fixtures/kamailio.cfg")
        .replace("@RUNDIR@", &dir.display().to_string())
        .replace("@ADDR@", REGISTRAR)
        .replace("@REALM@", "lab.voip");
    std::fs::write(dir.join("kamailio.cfg"), cfg).unwrap();
    let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
    let d = dir.display().to_string();
    let child = lab
        .calls
        .command("kamailio")
        .args(["-DD", "-E", "-f", &format!("{d}/kamailio.cfg")])
        .args(["-P", &format!("{d}/kamailio.pid"), "-Y", &d, "-w", &d])
        .args(["-m", "16", "-M", "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("kamailio (apt-get install kamailio)");
    let mut k = Kamailio {
        child,
        dir: dir.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !k.log().contains("KAMAILIO-READY") {
        if let Ok(Some(status)) = k.child.try_wait() {
            panic!("kamailio exited ({status}):\n{}", k.log());
        }
        assert!(
            Instant::now() < deadline,
            "kamailio not ready in 15 s:\n{}",
            k.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    k
}

struct Running {
    // Field order is drop order: dialtone, the registrars, then the lab.
    server: Server,
    kamailio: Kamailio,
    _stand_in: CallServer,
    lab: Lab,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("server log:\n{}", self.server.log());
            eprintln!("kamailio log:\n{}", self.kamailio.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ok(boot: &Boot) -> &str {
    match &boot.result {
        Ok(r) => r,
        Err(e) => panic!("the boot failed: {e}\n{boot:#?}"),
    }
}

#[test]
fn phones_of_every_family_with_a_line_register_with_kamailio() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test builds network namespaces and must run as root (CI does)"
    );
    let prefix = unique("kam");
    let lab = Lab::new(&prefix).expect("lab");
    let dir = std::env::temp_dir().join(&prefix);
    // The configuration dialtone serves; its phones are the registrar's users.
    let config = dialtone::demo::families_config(&dir.join("state"), &dir.join("tree"));
    let kamailio = kamailio(&lab, &dir.join("kamailio"), &config);
    // The pair's other member is the stand-in; the phones pick vm40ic1.
    let stand_in = CallServer::with_registrar(
        &lab.calls,
        std::net::Ipv4Addr::new(10, 250, 1, 152),
        8060,
        Some(8060),
        dialtone::demo::lab_registrar(),
    )
    .expect("stand-in");
    let server = lab
        .serve(Path::new(BIN), &dir, &|_| Ok(()))
        .expect("dialtone serving");
    let r = Running {
        server,
        kamailio,
        _stand_in: stand_in,
        lab,
        dir,
    };

    let mut registered = Vec::new();
    for spec in phone::lab_phones() {
        let Some(line) = phone_line(&spec) else {
            continue;
        };
        if spec.profile == "audiocodes-sfb" {
            // Skype for Business registers over TLS with its pool.
            continue;
        }
        let boot = phone::boot(&r.lab.phones, spec.vlan, &spec);
        assert_eq!(
            ok(&boot),
            format!("registered {line} at vm40ic1.lab.voip:8060: 200 OK"),
            "{}",
            spec.label
        );
        registered.push((line, boot.address.expect("an address")));
    }
    assert_eq!(
        registered
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>(),
        ["7501", "7503", "7505", "7507", "7506"]
    );
    // The registrar holds each line at the phone's own address.
    for (line, ip) in &registered {
        let found = r
            .kamailio
            .kamcmd(&["ul.lookup", "location", &format!("s:{line}")]);
        assert!(found.contains(&format!("AoR: {line}")), "{found}");
        assert!(
            found.contains(&format!("Address: sip:{line}@{ip}:")),
            "{found}"
        );
    }
    let log = r.kamailio.log();
    assert_eq!(log.matches("REG-CHALLENGE").count(), 5, "{log}");
    assert_eq!(log.matches("REG-OK").count(), 5, "{log}");
    assert!(!log.contains("REG-AUTH-FAILED"), "{log}");

    // sipsak, from another address: the password from the phones file
    // registers, a wrong one is refused.
    r.lab.phones.addr("voice", "10.250.0.9/24").unwrap();
    r.lab
        .phones
        .ip(&["route", "replace", "default", "via", "10.250.0.1"])
        .unwrap();
    // Over UDP, as the phones register; each run on its own port.
    let sipsak = |password: &str, port: &str| {
        r.lab
            .phones
            .run(
                "sipsak",
                &[
                    "-U",
                    "-E",
                    "udp",
                    "-i",
                    "-S",
                    "-H",
                    "10.250.0.9",
                    "-l",
                    port,
                    "-C",
                    &format!("sip:7502@10.250.0.9:{port}"),
                    "-s",
                    "sip:7502@lab.voip",
                    "-p",
                    REGISTRAR,
                    "-u",
                    "7502",
                    "-a",
                    password,
                    "-x",
                    "60",
                ],
            )
            .expect("sipsak (apt-get install sipsak)")
    };
    let good = sipsak("demo-7502", "5070");
    assert!(
        good.status.success(),
        "{}{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    let bad = sipsak("not-the-password", "5072");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    let ss = r.lab.phones.run("ss", &["-tanup"]).unwrap();
    assert!(
        !bad.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&ss.stdout)
    );
    let log = r.kamailio.log();
    assert!(
        log.contains("REG-AUTH-FAILED authuser=7502"),
        "{said}\n{}\n{log}",
        String::from_utf8_lossy(&ss.stdout)
    );
}

/// The extension of a lab phone's inventory line.
fn phone_line(spec: &phone::Spec) -> Option<String> {
    dialtone::families::lab_phones()
        .find(|(_, p)| p.label == spec.label)
        .and_then(|(_, p)| p.line.as_ref())
        .map(|l| l.extension.to_string())
}
