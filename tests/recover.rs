//! `dialtone recover` driven end to end in namespaces: a client that behaves
//! like a bricked AudioCodes phone (DISCOVER asking for 66 and 67 with its
//! model in option 77, then a TFTP read of option 67 from option 66), its
//! return with an ordinary DHCP request, and the interface put back as it
//! was on Ctrl-C and SIGTERM.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Lab, hex_of, pattern};
use dialtone::files::tftp::packet::rrq;

/// A lockstep TFTP read that stops acknowledging for 2.5 s after block 200
/// (the server sends that block again meanwhile; copies are ignored).
fn fetch_with_a_pause(server: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.send_to(&rrq(name, &[]), server)?;
    let (mut out, mut next, mut buf) = (Vec::new(), 1u16, [0u8; 600]);
    loop {
        let (n, tid) = s.recv_from(&mut buf)?;
        anyhow::ensure!(n >= 4 && buf[1] == 3, "not DATA: {:?}", &buf[..n.min(40)]);
        let block = u16::from_be_bytes([buf[2], buf[3]]);
        if block != next {
            continue;
        }
        out.extend_from_slice(&buf[4..n]);
        if block == 200 {
            std::thread::sleep(Duration::from_millis(2500));
        }
        s.send_to(&[0, 4, buf[2], buf[3]], tid)?;
        if n < 516 {
            return Ok(out);
        }
        next = next.wrapping_add(1);
    }
}

fn start(lab: &Lab, args: &[&str]) -> Child {
    lab.srv
        .command(BIN)
        .arg("recover")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(lab.dir.join("recover.out")).unwrap())
        .stderr(std::fs::File::create(lab.dir.join("recover.err")).unwrap())
        .spawn()
        .expect("dialtone recover")
}

fn output(lab: &Lab) -> String {
    let out = std::fs::read_to_string(lab.dir.join("recover.out")).unwrap_or_default();
    let err = std::fs::read_to_string(lab.dir.join("recover.err")).unwrap_or_default();
    format!("{out}\n-- stderr:\n{err}")
}

/// Waits until the output holds `text`.
fn wait_for(lab: &Lab, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if output(lab).contains(text) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no `{text}` in the output:\n{}", output(lab));
}

/// Sends `signal` and waits for the process to end; its exit status.
fn stop(child: &mut Child, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "recover did not stop on {signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn addresses(lab: &Lab, iface: &str) -> String {
    let o = lab
        .srv
        .ip(&["-4", "-o", "addr", "show", "dev", iface])
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn link_up(lab: &Lab, iface: &str) -> bool {
    let o = lab.srv.ip(&["-o", "link", "show", "dev", iface]).unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.split('<').nth(1).is_some_and(|f| {
        f.split('>')
            .next()
            .unwrap_or("")
            .split(',')
            .any(|x| x == "UP")
    })
}

#[test]
fn a_bricked_phone_gets_its_image_and_comes_back_and_the_interface_is_put_back() {
    let lab = Lab::new("recover");
    // A bare cable: the server's side has no address and is down.
    lab.srv.ip(&["addr", "flush", "dev", "native0"]).unwrap();
    lab.srv.ip(&["link", "set", "native0", "down"]).unwrap();
    let image = lab.dir.join("450HD_3.4.6.img");
    let bytes = pattern(3 << 20, 1);
    std::fs::write(&image, &bytes).unwrap();
    let spec = format!("450HD={}", image.display());
    let mut child = start(&lab, &["--interface", "native0", "--image", &spec]);
    wait_for(&lab, "waiting for phones");
    assert!(
        addresses(&lab, "native0").contains("192.168.1.1/24"),
        "{}",
        output(&lab)
    );
    assert!(link_up(&lab, "native0"));

    // The bricked phone: DISCOVER asking for 66 and 67, model in option 77.
    let model = format!("0x4d:{}", hex_of("450HD"));
    let env = lab.udhcpc(&lab.native_if, &["-O", "66", "-O", "67", "-x", &model]);
    let ip = env.get("ip").cloned().unwrap_or_default();
    let last: u8 = ip
        .rsplit('.')
        .next()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    assert!(
        ip.starts_with("192.168.1.") && (2..=6).contains(&last),
        "{env:?}"
    );
    assert_eq!(
        env.get("tftp").map(String::as_str),
        Some("192.168.1.1"),
        "{env:?}"
    );
    assert_eq!(
        env.get("bootfile").map(String::as_str),
        Some("450HD_3.4.6.img"),
        "{env:?}"
    );
    wait_for(&lab, &format!("got {ip}"));
    lab.cli.addr(&lab.native_if, &format!("{ip}/24")).unwrap();

    // TFTP read of option 67 from option 66, as the phone does it (plain
    // RFC 1350), pausing part way so progress is printed meanwhile.
    let name = env["bootfile"].clone();
    let got = lab
        .cli
        .run_in(move || fetch_with_a_pause("192.168.1.1:69", &name))
        .unwrap();
    assert!(
        got == bytes,
        "the image arrived changed ({} bytes)",
        got.len()
    );
    wait_for(&lab, "sent in full");

    // Flashed, the phone restarts and asks again as it normally does.
    let env = lab.udhcpc(&lab.native_if, &["-x", &model, "-V", "AUDC-IPPhone/3.4.6"]);
    assert!(env.contains_key("ip"), "no lease after the restart");
    wait_for(&lab, "is back");

    let status = stop(&mut child, nix::sys::signal::Signal::SIGINT);
    let text = output(&lab);
    assert!(status.success(), "{status}\n{text}");
    let mac = {
        let o = lab
            .cli
            .ip(&["-o", "link", "show", "dev", &lab.native_if])
            .unwrap();
        let t = String::from_utf8_lossy(&o.stdout).into_owned();
        t.split("link/ether ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("")
            .to_string()
    };
    for want in [
        "server 192.168.1.1/24 (added; removed on exit)",
        "addresses 192.168.1.2-192.168.1.6",
        &format!("{mac}  450HD    got {ip}  image 450HD_3.4.6.img"),
        "of 3.1 MB (",
        "MB/s",
        "image 450HD_3.4.6.img sent in full (3.1 MB",
        "is back: asked for an address again after its image",
        "AUDC-IPPhone/3.4.6",
        &format!("recovered 1 phone(s) {mac}"),
        "removed 192.168.1.1/24 from native0",
        "set native0 down again",
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
    // Put back as it was: no address, link down; no state left behind.
    assert_eq!(addresses(&lab, "native0").trim(), "", "{text}");
    assert!(!link_up(&lab, "native0"));
    let leftover = std::env::temp_dir().join(format!("dialtone-recover-{}", child.id()));
    assert!(
        !Path::new(&leftover).exists(),
        "{} left behind",
        leftover.display()
    );
}

#[test]
fn recover_uses_an_address_the_interface_has_and_keeps_it() {
    let lab = Lab::new("recoverkeep");
    lab.srv.ip(&["addr", "flush", "dev", "native0"]).unwrap();
    lab.srv.addr("native0", "10.9.0.1/24").unwrap();
    let image = lab.dir.join("420HD.img");
    std::fs::write(&image, pattern(1000, 2)).unwrap();
    let spec = format!("420HD={}", image.display());
    let mut child = start(&lab, &["--interface", "native0", "--image", &spec]);
    wait_for(&lab, "waiting for phones");
    let model = format!("0x4d:{}", hex_of("445HD"));
    let env = lab.udhcpc(&lab.native_if, &["-O", "66", "-O", "67", "-x", &model]);
    assert!(
        env.get("ip").is_some_and(|ip| ip.starts_with("10.9.0.")),
        "{env:?}"
    );
    assert_eq!(
        env.get("tftp").map(String::as_str),
        Some("10.9.0.1"),
        "{env:?}"
    );
    wait_for(&lab, "no image was given for model 445HD");
    let status = stop(&mut child, nix::sys::signal::Signal::SIGTERM);
    let text = output(&lab);
    assert!(status.success(), "{status}\n{text}");
    assert!(
        text.contains("server 10.9.0.1/24 (the interface's own)"),
        "{text}"
    );
    assert!(text.contains("recovered 0 phone(s)"), "{text}");
    assert!(
        addresses(&lab, "native0").contains("10.9.0.1/24"),
        "the address was removed"
    );
    assert!(link_up(&lab, "native0"));
    let leftover = std::env::temp_dir().join(format!("dialtone-recover-{}", child.id()));
    assert!(!leftover.exists(), "{} left behind", leftover.display());

    // Wrong input is a clear error, and the interface is untouched.
    let o = lab
        .srv
        .run(
            BIN,
            &["recover", "--interface", "nosuch0", "--image", &spec],
        )
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("there is no interface nosuch0"));
    let o = lab
        .srv
        .run(
            BIN,
            &[
                "recover",
                "--interface",
                "native0",
                "--image",
                "450HD=/nonexistent.img",
            ],
        )
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.img"));
}
