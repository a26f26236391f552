//! DNS and SNTP in network namespaces, with real clients: dig (and kdig when
//! installed) for A, PTR, SRV with glue, TCP, truncation, REFUSED, lease names
//! and the switchover health flip; sntp for the time service.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Lab, base_config};
use dialtone::demo::LAB_DNS;
use dialtone::lab::{CallServer, Netns};

/// The demo's voice zone (the issue's CIC pair, checked over TCP every
/// second, and the time service), plus a Mitel pair checked with SIP OPTIONS
/// in ordered mode and a big pair for truncation.
fn dns_config() -> String {
    let mut extra = String::from(
        r#"
[[dns.host]]
name = "mx1"
ip = "10.250.1.161"
[[dns.host]]
name = "mx2"
ip = "10.250.1.162"

[[dns.switchover]]
name = "mitel"
members = ["mx1", "mx2"]
mode = "ordered"
services = [{ srv = "_sip._udp.mitel", port = 5060 }]
health = { check = "sip-options", interval = "1s" }
"#,
    );
    let mut big_members = Vec::new();
    for i in 1..=30 {
        extra.push_str(&format!(
            "[[dns.host]]\nname = \"big-call-server-number-{i:02}\"\nip = \"10.250.2.{i}\"\n"
        ));
        big_members.push(format!("\"big-call-server-number-{i:02}\""));
    }
    extra.push_str(&format!(
        "[[dns.switchover]]\nname = \"big\"\nmembers = [{}]\nservices = [{{ srv = \"_sip._udp.big\", port = 5060 }}]\n",
        big_members.join(", ")
    ));
    format!("{}{LAB_DNS}{extra}", base_config())
}

fn dig(lab: &Lab, args: &[&str]) -> String {
    let mut all = vec!["@10.250.0.1", "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    let out = lab.cli.run("dig", &all).expect("dig runs");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn short(lab: &Lab, args: &[&str]) -> Vec<String> {
    let mut a = vec!["+short"];
    a.extend_from_slice(args);
    let mut v: Vec<String> = dig(lab, &a).lines().map(str::to_string).collect();
    v.sort();
    v
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn dns_answers_switchover_pairs_and_lease_names() {
    let mut lab = Lab::new("dns");
    let voice = lab.voice_if.clone();
    // The call servers live behind the voice VLAN.
    for ip in [
        "10.250.1.151/24",
        "10.250.1.152/24",
        "10.250.1.161/24",
        "10.250.1.162/24",
    ] {
        lab.cli.addr(&voice, ip).unwrap();
    }
    lab.cli.addr(&voice, "10.250.0.9/24").unwrap();
    lab.srv
        .ip(&["route", "add", "10.250.1.0/24", "dev", "voice0"])
        .unwrap();
    let ic1 =
        CallServer::start(&lab.cli, Ipv4Addr::new(10, 250, 1, 151), 8060, Some(18060)).unwrap();
    let _ic2 =
        CallServer::start(&lab.cli, Ipv4Addr::new(10, 250, 1, 152), 8060, Some(18060)).unwrap();
    let mx1 =
        CallServer::start(&lab.cli, Ipv4Addr::new(10, 250, 1, 161), 15060, Some(5060)).unwrap();
    let _mx2 =
        CallServer::start(&lab.cli, Ipv4Addr::new(10, 250, 1, 162), 15060, Some(5060)).unwrap();
    lab.write_config(&dns_config());
    lab.start();

    // A, with the provision name holding both members.
    assert_eq!(short(&lab, &["vm40ic1.lab.voip"]), vec!["10.250.1.151"]);
    assert_eq!(
        short(&lab, &["provision.lab.voip"]),
        vec!["10.250.1.151", "10.250.1.152"]
    );
    // ProvisioningServer resolves to the appliance on the asking interface.
    assert_eq!(short(&lab, &["ProvisioningServer"]), vec!["10.250.0.1"]);
    // PTR for hosts, none for the provision name.
    assert_eq!(
        short(&lab, &["-x", "10.250.1.151"]),
        vec!["vm40ic1.lab.voip."]
    );
    // SRV with the targets' A records in the additional section (seed 001).
    let srv = dig(
        &lab,
        &[
            "_sip._tcp.lab.voip",
            "SRV",
            "+noall",
            "+answer",
            "+additional",
        ],
    );
    assert!(srv.contains("0 0 8060 vm40ic1.lab.voip."), "{srv}");
    assert!(srv.contains("0 0 8060 vm40ic2.lab.voip."), "{srv}");
    assert!(
        srv.contains("vm40ic1.lab.voip.\t60\tIN\tA\t10.250.1.151"),
        "{srv}"
    );
    assert!(
        srv.contains("vm40ic2.lab.voip.\t60\tIN\tA\t10.250.1.152"),
        "{srv}"
    );
    let full = dig(&lab, &["_sip._udp.lab.voip", "SRV"]);
    assert!(
        full.contains("flags: qr aa rd;"),
        "authoritative, no recursion: {full}"
    );
    // The same over TCP.
    let tcp = dig(&lab, &["+tcp", "_sips._tcp.lab.voip", "SRV", "+short"]);
    assert!(tcp.contains("0 0 8061 vm40ic1.lab.voip."), "{tcp}");
    // _ntp._udp points at the appliance.
    let ntp = dig(
        &lab,
        &[
            "_ntp._udp.lab.voip",
            "SRV",
            "+noall",
            "+answer",
            "+additional",
        ],
    );
    assert!(ntp.contains("0 0 123 dialtone.lab.voip."), "{ntp}");
    assert!(ntp.contains("10.250.0.1"), "{ntp}");
    // NXDOMAIN, NODATA, REFUSED.
    assert!(dig(&lab, &["nosuch.lab.voip"]).contains("status: NXDOMAIN"));
    let nodata = dig(&lab, &["vm40ic1.lab.voip", "AAAA"]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
    assert!(dig(&lab, &["example.com"]).contains("status: REFUSED"));

    // A big answer without EDNS: truncated over UDP, whole over TCP.
    let udp = dig(
        &lab,
        &["+noedns", "+ignore", "_sip._udp.big.lab.voip", "SRV"],
    );
    assert!(udp.contains(" tc"), "TC set: {udp}");
    let whole = dig(&lab, &["+tcp", "+short", "_sip._udp.big.lab.voip", "SRV"]);
    assert_eq!(whole.lines().count(), 30, "{whole}");

    // kdig, when installed, agrees.
    if lab
        .cli
        .run("kdig", &["-V"])
        .is_ok_and(|o| o.status.success())
    {
        let k = lab
            .cli
            .run(
                "kdig",
                &["@10.250.0.1", "+short", "_sip._udp.lab.voip", "SRV"],
            )
            .unwrap();
        let text = String::from_utf8_lossy(&k.stdout).to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    // A phone's DHCP host name appears in the zone, with its PTR.
    let env = lab.udhcpc(&voice, &["-x", "hostname:phone42"]);
    let ip = env.get("ip").cloned().expect("a lease");
    assert_eq!(short(&lab, &["phone42.lab.voip"]), vec![ip.clone()]);
    assert_eq!(short(&lab, &["-x", &ip]), vec!["phone42.lab.voip."]);

    // Health flip (TCP check): vm40ic1 stops, provision shrinks to its
    // partner and the SRV puts it behind; it comes back when it answers.
    drop(ic1);
    wait_for("vm40ic1 left out", || {
        short(&lab, &["provision.lab.voip"]) == vec!["10.250.1.152"]
    });
    let srv = short(&lab, &["_sip._tcp.lab.voip", "SRV"]);
    assert_eq!(
        srv,
        vec!["0 0 8060 vm40ic2.lab.voip.", "10 0 8060 vm40ic1.lab.voip."]
    );
    let _ic1 =
        CallServer::start(&lab.cli, Ipv4Addr::new(10, 250, 1, 151), 8060, Some(18060)).unwrap();
    wait_for("vm40ic1 back", || {
        short(&lab, &["provision.lab.voip"]).len() == 2
    });

    // Ordered pair with SIP OPTIONS: mx1 first, then mx2 once mx1 is silent.
    let first = || {
        dig(&lab, &["+short", "_sip._udp.mitel.lab.voip", "SRV"])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(first(), "10 0 5060 mx1.lab.voip.");
    drop(mx1);
    wait_for("mx2 preferred", || first() == "10 0 5060 mx2.lab.voip.");
    let log = lab.log();
    assert!(log.contains("call server is not answering"), "{log}");
    assert!(log.contains("call server is answering again"), "{log}");
    lab.stop();
}

#[test]
fn sntp_client_gets_the_time() {
    let mut lab = Lab::new("sntp");
    let voice = lab.voice_if.clone();
    lab.cli.addr(&voice, "10.250.0.9/24").unwrap();
    lab.write_config(&dns_config());
    lab.start();
    let out = lab
        .cli
        .run("sntp", &["-t", "3", "10.250.0.1"])
        .expect("sntp runs (Debian package sntp)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // sntp prints the offset, the server and its stratum: "10.250.0.1 s10".
    assert!(text.contains("10.250.0.1 s10"), "{text}");
    let offset: f64 = text
        .lines()
        .find(|l| l.contains("10.250.0.1 s10"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|o| o.parse().ok())
        .unwrap_or(99.0);
    assert!(offset.abs() < 1.0, "same clock, offset {offset}: {text}");
    lab.stop();
}

/// An upstream resolver stand-in: answers every A question with 192.0.2.7.
fn upstream(ns: &Netns, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<anyhow::Result<()>> {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let t = ns.spawn_thread(move || {
        let sock = UdpSocket::bind(("10.250.0.9", 5353))?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        ready_tx.send(())?;
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.metadata.recursion_available = true;
            r.queries = q.queries.clone();
            if let Some(question) = q.queries.first() {
                r.answers.push(Record::from_rdata(
                    question.name().clone(),
                    30,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
                ));
            }
            let _ = sock.send_to(&r.to_vec()?, from);
        }
        Ok(())
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    t
}

#[test]
fn forwards_outside_names_and_survives_malformed_queries() {
    let mut lab = Lab::new("dnsfwd");
    let voice = lab.voice_if.clone();
    lab.cli.addr(&voice, "10.250.0.9/24").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let up = upstream(&lab.cli, Arc::clone(&stop));
    let cfg = dns_config().replace("[dns]\n", "[dns]\nupstream = [\"10.250.0.9:5353\"]\n");
    assert!(cfg.contains("upstream = [\"10.250.0.9:5353\"]"));
    lab.write_config(&cfg);
    lab.start();

    // Outside names go upstream; the zone's own names stay ours.
    let fwd = dig(&lab, &["www.example.com"]);
    assert!(fwd.contains("192.0.2.7"), "{fwd}");
    assert!(
        fwd.contains(" ra"),
        "recursion available when forwarding: {fwd}"
    );
    assert_eq!(short(&lab, &["vm40ic1.lab.voip"]), vec!["10.250.1.151"]);
    let tcp = dig(&lab, &["+tcp", "+short", "www.example.org"]);
    assert_eq!(tcp.trim(), "192.0.2.7");

    // Malformed datagrams: a readable header gets FORMERR, scraps nothing.
    let replies = lab
        .cli
        .run_in(|| {
            let s = UdpSocket::bind(("10.250.0.9", 0))?;
            s.set_read_timeout(Some(Duration::from_millis(500)))?;
            let mut got = Vec::new();
            for pkt in [
                vec![1u8, 2, 3],
                // ID 0x1234, one question, then the name runs off the end.
                vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'a'],
                // A label pointing into itself.
                vec![
                    0x12, 0x35, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
                ],
            ] {
                s.send_to(&pkt, ("10.250.0.1", 53))?;
                let mut buf = [0u8; 512];
                got.push(s.recv(&mut buf).ok().map(|n| buf[..n].to_vec()));
            }
            Ok(got)
        })
        .unwrap();
    assert!(replies[0].is_none(), "three bytes get no answer");
    let formerr = replies[1].as_ref().expect("FORMERR for a broken question");
    assert_eq!(&formerr[..2], &[0x12, 0x34]);
    assert_eq!(formerr[3] & 0x0f, 1, "FORMERR");
    let looped = replies[2].as_ref().expect("an answer to a looping name");
    assert_eq!(looped[3] & 0x0f, 1, "FORMERR");
    // Still serving.
    assert_eq!(short(&lab, &["vm40ic2.lab.voip"]), vec!["10.250.1.152"]);

    // Upstream gone: SERVFAIL, not silence.
    stop.store(true, Ordering::Relaxed);
    up.join().unwrap().unwrap();
    let dead = dig(&lab, &["+time=4", "lost.example.net"]);
    assert!(dead.contains("status: SERVFAIL"), "{dead}");
    lab.stop();
}
