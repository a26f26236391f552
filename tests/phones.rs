//! Every family's boot, end to end, against the real `dialtone serve` in
//! network namespaces: the emulated phones of `lab::phone` (DHCP with the
//! family's identity and option 55, DNS, SNTP, the files in the family's
//! order), checked byte by byte, and cross-checked with real clients (dig,
//! sntp, curl, tftp-hpa). Each test builds its own lab and removes it.

use std::net::Ipv4Addr;
use std::process::Output;

use dialtone::demo::{Lab, Server};
use dialtone::lab::phone::{self, Boot, Spec};
use dialtone::lab::unique;

const BIN: &str = env!("CARGO_BIN_EXE_dialtone");

struct Running {
    // Field order is drop order: the server stops before the lab goes.
    server: Server,
    lab: Lab,
    dir: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("server log:\n{}", self.server.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(
    tag: &str,
) -> (
    Running,
    (dialtone::lab::CallServer, dialtone::lab::CallServer),
) {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test builds network namespaces and must run as root (CI does)"
    );
    let prefix = unique(tag);
    let lab = Lab::new(&prefix).expect("lab");
    let calls = lab.call_servers().expect("call servers");
    let dir = std::env::temp_dir().join(&prefix);
    let server = lab
        .serve(std::path::Path::new(BIN), &dir, &|_| Ok(()))
        .expect("dialtone serving");
    (Running { server, lab, dir }, calls)
}

fn spec(profile: &str) -> Spec {
    phone::lab_phones()
        .into_iter()
        .find(|s| s.profile == profile)
        .expect("a lab phone of this profile")
}

fn option(boot: &Boot, code: u8) -> Option<&[u8]> {
    boot.options
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, d)| d.as_slice())
}

fn codes(boot: &Boot) -> Vec<u8> {
    boot.options.iter().map(|(c, _)| *c).collect()
}

/// The files fetched, as "name via bytes" (or the error).
fn files(boot: &Boot) -> Vec<String> {
    boot.files
        .iter()
        .map(|f| match &f.got {
            Ok(n) => format!("{} {} {n}", f.name, f.via),
            Err(e) => format!("{} {} {e}", f.name, f.via),
        })
        .collect()
}

fn ok(boot: &Boot) -> &str {
    match &boot.result {
        Ok(r) => r,
        Err(e) => panic!("the boot failed: {e}\n{boot:#?}"),
    }
}

fn run(r: &Running, program: &str, args: &[&str]) -> Output {
    r.lab.phones.run(program, args).expect(program)
}

/// The server's log once it holds `what` (events are written in batches),
/// or as it is after 5 s.
fn log_with(r: &Running, what: &dyn Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = r.server.log();
        if what(&log) || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The server's file events for `mac`, in order: "protocol file outcome";
/// waits for `n` of them.
fn fetched_by(r: &Running, mac: &str, n: usize) -> Vec<String> {
    let tag = format!("\"mac\":\"{mac}\"");
    let event = |l: &str| l.contains("\"file transfer\"") && l.contains(&tag);
    log_with(r, &|log| log.lines().filter(|l| event(l)).count() >= n)
        .lines()
        .filter(|l| event(l))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(format!(
                "{} {} {}",
                v["protocol"].as_str()?,
                v["requested"].as_str()?,
                v["outcome"].as_str()?
            ))
        })
        .collect()
}

const OFFSET: [u8; 4] = (-18000i32).to_be_bytes();
const APPLIANCE: [u8; 4] = [10, 250, 0, 1];

#[test]
fn audiocodes_phones_boot_over_http_and_their_files_stay_private() {
    let (r, _calls) = start("ph-ac");
    let ac = spec("audiocodes");
    let boot = phone::boot(&r.lab.phones, "voice", &ac);
    assert_eq!(
        ok(&boot),
        "registered 7501 at vm40ic1.lab.voip:8060: 200 OK"
    );
    assert_eq!(boot.address, Some(Ipv4Addr::new(10, 250, 0, 100)));
    assert_eq!(
        codes(&boot),
        [53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 2, 66, 67, 160]
    );
    assert_eq!(option(&boot, 2), Some(&OFFSET[..]));
    assert_eq!(option(&boot, 42), Some(&APPLIANCE[..]));
    assert_eq!(option(&boot, 66), Some(&b"10.250.0.1"[..]));
    assert_eq!(option(&boot, 67), Some(&b"450HD_3.4.6.img"[..]));
    assert_eq!(option(&boot, 160), Some(&b"http://10.250.0.1:8088/"[..]));
    let (stratum, offset) = boot.time.expect("SNTP answered");
    assert_eq!(stratum, 10);
    assert!(offset.abs() < 1.0, "{offset}");
    assert_eq!(
        files(&boot),
        [
            "450HD_3.4.6.img http range 1024",
            "450HD_3.4.6.img http 3145728",
            "00908F000100.cfg http 616",
            "450HD.cfg http HTTP 404",
        ]
    );
    assert_eq!(
        fetched_by(&r, "00:90:8f:00:01:00", 4),
        [
            "http /450HD_3.4.6.img partial",
            "http /450HD_3.4.6.img complete",
            "http /00908F000100.cfg complete",
            "http /450HD.cfg not found",
        ]
    );

    // Skype for Business mode: 43's sub-options and 120, byte for byte.
    let sfb = spec("audiocodes-sfb");
    let boot = phone::boot(&r.lab.phones, "voice", &sfb);
    assert_eq!(ok(&boot), "registers line 7502 at vm40ic1.lab.voip:5061");
    let mut tlv = Vec::new();
    for (code, value) in [
        (1u8, "MS-UC-Client"),
        (2, "https"),
        (3, "sfb.lab.voip"),
        (4, "443"),
        (5, "/CertProv/CertProvisioningService.svc"),
    ] {
        tlv.push(code);
        tlv.push(value.len() as u8);
        tlv.extend_from_slice(value.as_bytes());
    }
    assert_eq!(option(&boot, 43), Some(tlv.as_slice()));
    assert_eq!(
        option(&boot, 120),
        Some(&b"\x00\x03sfb\x03lab\x04voip\x00"[..])
    );
    assert_eq!(
        boot.dns,
        [(
            "_sipinternaltls._tcp.lab.voip SRV".to_string(),
            vec![
                "0 0 5061 vm40ic1.lab.voip.".to_string(),
                "0 0 5061 vm40ic2.lab.voip.".to_string()
            ]
        )]
    );

    // The generated configuration holds the SIP password: curl from an
    // address with no lease gets not-found; from the phone's own address
    // (its lease) it gets the file.
    r.lab.phones.addr("voice", "10.250.0.9/24").unwrap();
    let url = "http://10.250.0.1:8088/00908F000200.cfg";
    assert_eq!(http_code(&r, "10.250.0.9", url), "404");
    r.lab
        .phones
        .ip(&["link", "set", "voice", "address", "00:90:8f:00:02:00"])
        .unwrap();
    r.lab.phones.addr("voice", "10.250.0.101/24").unwrap();
    let own = run(&r, "curl", &["-sf", "--interface", "10.250.0.101", url]);
    let text = String::from_utf8_lossy(&own.stdout);
    assert!(
        text.contains("voip/line/0/auth_password=demo-7502"),
        "{text}"
    );
    assert!(
        text.contains("voip/signalling/sip/proxy_address=lab.voip"),
        "{text}"
    );
}

#[test]
fn polycom_and_sip_station_fetch_their_files_in_order() {
    let (r, _calls) = start("ph-poly");
    let boot = phone::boot(&r.lab.phones, "voice", &spec("polycom"));
    assert_eq!(
        ok(&boot),
        "registered 7503 at vm40ic1.lab.voip:8060: 200 OK"
    );
    // Polycom gets 160, not 66, and never a boot file.
    assert_eq!(codes(&boot), [53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 2, 160]);
    assert_eq!(
        fetched_by(&r, "00:04:f2:00:03:00", 4),
        [
            "http /3111-48450-001.bootrom.ld not found",
            "http /0004f2000300.cfg complete",
            "http /sip.ld complete",
            "http /0004f2000300-registration.cfg complete",
        ]
    );

    let boot = phone::boot(&r.lab.phones, "voice", &spec("interaction-sip-station"));
    assert_eq!(ok(&boot), "registered at vm40ic1.lab.voip:8060: 200 OK");
    assert_eq!(option(&boot, 67), Some(&b"sip100.img"[..]));
    assert_eq!(option(&boot, 66), Some(&b"10.250.0.1"[..]));
    assert_eq!(
        fetched_by(&r, "00:26:fd:00:04:00", 4),
        [
            "http /sip100.img partial",
            "http /sip100.img complete",
            "http /config_files complete",
            "http /0026FD000400.cfg complete",
        ]
    );
    // The same names from real clients: dig for the call servers' SRV, sntp
    // for the time, curl for a range of the image.
    r.lab.phones.addr("voice", "10.250.0.9/24").unwrap();
    let dig = run(
        &r,
        "dig",
        &["@10.250.0.1", "+short", "_sip._udp.lab.voip", "SRV"],
    );
    let mut srv: Vec<String> = String::from_utf8_lossy(&dig.stdout)
        .lines()
        .map(String::from)
        .collect();
    srv.sort();
    assert_eq!(
        srv,
        ["0 0 8060 vm40ic1.lab.voip.", "0 0 8060 vm40ic2.lab.voip."]
    );
    let sntp = run(&r, "sntp", &["-t", "2", "10.250.0.1"]);
    let said = String::from_utf8_lossy(&sntp.stdout);
    assert!(
        said.contains("10.250.0.1") && said.contains("s10"),
        "{said}{}",
        String::from_utf8_lossy(&sntp.stderr)
    );
    let range = run(
        &r,
        "curl",
        &[
            "-sf",
            "-r",
            "0-9",
            "http://10.250.0.1:8088/sip100.img",
            "-o",
            "-",
        ],
    );
    assert_eq!(range.stdout.len(), 10);
}

#[test]
fn softphone_informs_and_third_party_phone_follows_the_failover() {
    let (r, calls) = start("ph-soft");
    let boot = phone::boot(&r.lab.phones, "voice", &spec("softphone"));
    assert_eq!(ok(&boot), "configured (72 bytes)");
    // DHCPINFORM: no lease, no lease time; 160 is all it asked for.
    assert_eq!(codes(&boot), [53, 54, 1, 3, 6, 15, 160]);
    assert_eq!(boot.address, Some(Ipv4Addr::new(10, 250, 0, 60)));
    let inform = "\"request\":\"INFORM\",\"reply\":\"ACK\"";
    assert!(log_with(&r, &|log| log.contains(inform)).contains(inform));

    let third = spec("generic-sip");
    let boot = phone::boot(&r.lab.phones, "voice", &third);
    assert_eq!(ok(&boot), "registered at vm40ic1.lab.voip:8060: 200 OK");
    // Only 1, 3, 6, 15, 42 and 2, though it asked for 66 and 160 too.
    assert_eq!(codes(&boot), [53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 2]);
    assert!(boot.files.is_empty());
    let (ic1, _ic2) = calls;
    drop(ic1);
    // Until the appliance notices, the phone may still be sent to the
    // stopped server, and its REGISTER goes unanswered.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let boot = loop {
        let boot = phone::boot(&r.lab.phones, "voice", &third);
        let moved = boot.result.as_deref().is_ok_and(|r| r.contains("vm40ic2"));
        if moved || std::time::Instant::now() > deadline {
            break boot;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(ok(&boot), "registered at vm40ic2.lab.voip:8060: 200 OK");
    // The same phone again: the same lease.
    assert_eq!(boot.address, Some(Ipv4Addr::new(10, 250, 0, 100)));
}

#[test]
fn bricked_phone_is_recovered_over_tftp_and_sent_to_the_voice_vlan() {
    let (r, _calls) = start("ph-rec");
    let boot = phone::boot(&r.lab.phones, "native", &spec("recovery"));
    assert_eq!(
        ok(&boot),
        "flashed 3145728 bytes, back at 192.168.1.100; option 132 moves it to VLAN 100"
    );
    assert_eq!(option(&boot, 66), Some(&b"192.168.1.1"[..]));
    assert_eq!(option(&boot, 67), Some(&b"450HD_3.4.6.img"[..]));
    assert_eq!(
        fetched_by(&r, "00:90:8f:00:06:00", 1),
        ["tftp 450HD_3.4.6.img complete"]
    );
    // Byte for byte against tftp-hpa fetching the same image.
    r.lab.phones.addr("native", "192.168.1.9/24").unwrap();
    let got = tftp_get(&r, "192.168.1.1", "450HD_3.4.6.img").expect("tftp-hpa's copy");
    let want = std::fs::read(r.dir.join("tree/450HD_3.4.6.img")).unwrap();
    assert_eq!(got, want);
}

/// The HTTP status curl gets for `url` from the phones' address `from`.
fn http_code(r: &Running, from: &str, url: &str) -> String {
    let out = run(
        r,
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--interface",
            from,
            url,
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `name` over TFTP from `server` with tftp-hpa, from whatever address the
/// phones' link to it has: the bytes, or what the client printed.
fn tftp_get(r: &Running, server: &str, name: &str) -> Result<Vec<u8>, String> {
    let out = r.dir.join(format!("tftp-{}", name.replace('/', "_")));
    let got = run(
        r,
        "tftp",
        &[
            server,
            "-m",
            "binary",
            "-c",
            "get",
            name,
            &out.display().to_string(),
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&got.stdout),
        String::from_utf8_lossy(&got.stderr)
    );
    match std::fs::read(&out) {
        Ok(b) if got.status.success() && !text.contains("Error") => Ok(b),
        _ => Err(text),
    }
}

#[test]
fn yealink_cisco_and_grandstream_boot_in_their_order_and_their_files_stay_private() {
    let (r, _calls) = start("ph-new");
    // Yealink: its URL in 66, the boot files and the model's common file
    // missing, then its own file, over HTTP.
    let boot = phone::boot(&r.lab.phones, "voice", &spec("yealink"));
    assert_eq!(
        ok(&boot),
        "registered 7505 at vm40ic1.lab.voip:8060: 200 OK"
    );
    assert_eq!(codes(&boot), [53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 2, 66]);
    assert_eq!(option(&boot, 66), Some(&b"http://10.250.0.1:8088/"[..]));
    assert_eq!(option(&boot, 2), Some(&OFFSET[..]));
    assert_eq!(
        fetched_by(&r, "80:5e:c0:00:08:00", 4),
        [
            "http /805ec0000800.boot not found",
            "http /y000000000000.boot not found",
            "http /y000000000066.cfg not found",
            "http /805ec0000800.cfg complete",
        ]
    );
    assert!(
        boot.dns.iter().any(|(q, _)| q == "_sip._udp.lab.voip SRV"),
        "{:?}",
        boot.dns
    );

    // Cisco enterprise: 150 as a binary address, then TFTP only: the
    // trust lists missing, then its SEP file.
    let boot = phone::boot(&r.lab.phones, "voice", &spec("cisco"));
    assert_eq!(
        ok(&boot),
        "registered 7507 at vm40ic1.lab.voip:8060: 200 OK"
    );
    assert_eq!(
        codes(&boot),
        [53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 2, 66, 150]
    );
    assert_eq!(option(&boot, 150), Some(&APPLIANCE[..]));
    assert_eq!(option(&boot, 66), Some(&b"10.250.0.1"[..]));
    assert_eq!(
        fetched_by(&r, "30:e4:db:00:0a:00", 3),
        [
            "tftp CTLSEP30E4DB000A00.tlv not found",
            "tftp ITLSEP30E4DB000A00.tlv not found",
            "tftp SEP30E4DB000A00.cnf.xml complete",
        ]
    );

    // Grandstream: the binary file of older firmware is a quick miss, then
    // its XML.
    let boot = phone::boot(&r.lab.phones, "voice", &spec("grandstream"));
    assert_eq!(
        ok(&boot),
        "registered 7506 at vm40ic1.lab.voip:8060: 200 OK"
    );
    assert_eq!(codes(&boot), [53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 2, 66]);
    assert_eq!(
        fetched_by(&r, "00:0b:82:00:09:00", 2),
        [
            "http /cfg000b82000900 not found",
            "http /cfg000b82000900.xml complete",
        ]
    );

    // Their files hold SIP passwords: from an address with no lease, the
    // HTTP ones are not found and the TFTP one is refused.
    r.lab.phones.addr("voice", "10.250.0.9/24").unwrap();
    for name in ["805ec0000800.cfg", "cfg000b82000900.xml"] {
        let url = format!("http://10.250.0.1:8088/{name}");
        assert_eq!(http_code(&r, "10.250.0.9", &url), "404", "{name}");
    }
    let refused = tftp_get(&r, "10.250.0.1", "SEP30E4DB000A00.cnf.xml");
    assert!(refused.is_err(), "{refused:?}");
    // From the Cisco phone's own address (its lease), tftp-hpa gets it.
    r.lab
        .phones
        .ip(&["addr", "del", "10.250.0.9/24", "dev", "voice"])
        .unwrap();
    r.lab
        .phones
        .ip(&["link", "set", "voice", "address", "30:e4:db:00:0a:00"])
        .unwrap();
    r.lab.phones.addr("voice", "10.250.0.101/24").unwrap();
    let own = tftp_get(&r, "10.250.0.1", "SEP30E4DB000A00.cnf.xml").expect("its own file");
    let text = String::from_utf8_lossy(&own);
    assert!(
        text.contains("<authPassword>demo-7507</authPassword>"),
        "{text}"
    );
}
