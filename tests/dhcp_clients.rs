//! Real DHCP clients (udhcpc, dhclient, dhcpcd) against the real server, in
//! network namespaces with veth pairs. Needs root; CI runs as root.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use common::{Lab, base_config, hex_of, unhex};

fn in_net(ip: &str, prefix: &str) -> bool {
    ip.starts_with(prefix)
}

#[test]
fn udhcpc_phone_families_on_two_interfaces() {
    let mut lab = Lab::new("udhcpc");
    lab.write_config(&base_config());
    lab.start();

    // An Interaction SIP Station on the voice VLAN.
    let voice = lab.voice_if.clone();
    let env = lab.udhcpc(
        &voice,
        &[
            "-V", "SIP100", "-O", "66", "-O", "67", "-O", "160", "-O", "42", "-O", "2",
        ],
    );
    assert!(in_net(&env["ip"], "10.250.0."), "{env:?}");
    assert_eq!(env["serverid"], "10.250.0.1");
    assert_eq!(env["router"], "10.250.0.1");
    assert_eq!(env["dns"], "10.250.0.1");
    assert_eq!(env["domain"], "lab.voip");
    assert_eq!(env["tftp"], "10.250.0.1");
    assert_eq!(env["bootfile"], "sip100.img");
    assert_eq!(env["ntpsrv"], "10.250.0.1");
    assert_eq!(env["timezone"], (-18000i32 as u32).to_string());
    assert_eq!(unhex(&env["opt160"]), b"http://provision.lab.voip:8088");

    // A bricked AudioCodes phone on the native VLAN: model in option 77, asks for 66/67.
    let native = lab.native_if.clone();
    let model = format!("0x4d:{}", hex_of("450HD"));
    let env = lab.udhcpc(
        &native,
        &["-x", &model, "-O", "66", "-O", "67", "-O", "132"],
    );
    assert!(in_net(&env["ip"], "192.168.1."), "{env:?}");
    assert_eq!(env["serverid"], "192.168.1.1");
    assert_eq!(env["tftp"], "192.168.1.1");
    assert_eq!(env["bootfile"], "450HD.img");
    assert_eq!(env["siaddr"], "192.168.1.1");
    // Option 132 as ASCII "100" (busybox shows it as a 16-bit number of the first two bytes).
    assert_eq!(env["vlanid"], u16::from_be_bytes(*b"10").to_string());

    // The same phone without 66/67 in its request gets no recovery options.
    let env = lab.udhcpc(&native, &["-x", &model]);
    assert!(
        !env.contains_key("bootfile") && !env.contains_key("tftp"),
        "{env:?}"
    );

    // One structured event per exchange, with MAC, vendor class and options sent.
    let log = lab.log();
    let ack = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["reply"] == "ACK" && v["vendor_class"] == "SIP100")
        .expect("an ACK event for the SIP100 phone");
    assert_eq!(ack["interface"], "voice0");
    assert_eq!(ack["classes"], "iss");
    assert!(ack["options"].as_str().unwrap().contains("66,67"), "{ack}");

    // The lease table shows both phones with their interface and vendor class.
    let leases = lab.leases();
    assert!(leases.iter().any(|l| l["vendor_class"] == "SIP100"
        && l["interface"] == "voice0"
        && l["state"] == "bound"));
    assert!(
        leases
            .iter()
            .any(|l| l["user_class"] == "450HD" && l["interface"] == "native0")
    );
}

#[test]
fn dhclient_gets_a_unicast_reply_and_options() {
    // dhclient sets no broadcast flag: the OFFER and ACK go unicast to the new
    // address at the phone's MAC (the server adds the ARP entry).
    let mut lab = Lab::new("dhclient");
    lab.write_config(&base_config());
    lab.start();
    let dir = lab.dir.clone();
    let conf = dir.join("dhclient.conf");
    std::fs::write(
        &conf,
        "option provisioning-url code 160 = text;\nsend vendor-class-identifier \"Polycom-VVX\";\nrequest subnet-mask, routers, domain-name-servers, domain-name, ntp-servers, time-offset, provisioning-url;\n",
    )
    .unwrap();
    let lease_file = dir.join("dhclient.leases");
    let pid_file = dir.join("dhclient.pid");
    let voice = lab.voice_if.clone();
    let out = lab
        .cli
        .run(
            "timeout",
            &[
                "30",
                "dhclient",
                "-1",
                "-v",
                "-cf",
                &conf.display().to_string(),
                "-lf",
                &lease_file.display().to_string(),
                "-pf",
                &pid_file.display().to_string(),
                &voice,
            ],
        )
        .unwrap();
    let text = std::fs::read_to_string(&lease_file).unwrap_or_default();
    assert!(
        out.status.success(),
        "dhclient failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.log()
    );
    assert!(text.contains("fixed-address 10.250.0."), "{text}");
    assert!(
        text.contains("option provisioning-url \"http://10.250.0.1/polycom\""),
        "{text}"
    );
    assert!(text.contains("option ntp-servers 10.250.0.1"), "{text}");
    assert!(text.contains("option time-offset -18000"), "{text}");
    let log = lab.log();
    assert!(log.contains("\"vendor_class\":\"Polycom-VVX\""), "{log}");
    let _ = lab
        .cli
        .run("dhclient", &["-x", "-pf", &pid_file.display().to_string()]);
}

#[test]
fn dhcpcd_gets_an_address_and_options() {
    let mut lab = Lab::new("dhcpcd");
    lab.write_config(&base_config());
    lab.start();
    let voice = lab.voice_if.clone();
    // -T: test mode, prints the lease's variables and configures nothing.
    // dhcpcd's privilege-separation helpers outlive it, so its output goes to a
    // file (not a pipe that would stay open) and the namespace is swept after.
    let out_file = lab.dir.join("dhcpcd.out");
    let cmd = format!(
        "timeout 30 dhcpcd -T -4 -t 20 -i SIP100 -o ntp_servers -o tftp_server_name -o bootfile_name {voice} > {} 2>&1",
        out_file.display()
    );
    let _ = lab.cli.run("sh", &["-c", &cmd]).unwrap();
    lab.cli.kill_all();
    let text = std::fs::read_to_string(&out_file).unwrap_or_default();
    let env: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('\'').to_string(),
            )
        })
        .collect();
    assert!(
        env.get("new_ip_address")
            .is_some_and(|ip| ip.starts_with("10.250.0.")),
        "dhcpcd output:\n{text}\nserver:\n{}",
        lab.log()
    );
    assert_eq!(
        env.get("new_bootfile_name").map(String::as_str),
        Some("sip100.img"),
        "{text}"
    );
    assert_eq!(
        env.get("new_ntp_servers").map(String::as_str),
        Some("10.250.0.1"),
        "{text}"
    );
}

#[test]
fn restart_keeps_leases_and_sticky_addresses() {
    let mut lab = Lab::new("restart");
    lab.write_config(&base_config());
    lab.start();
    let voice = lab.voice_if.clone();
    let first = lab.udhcpc(&voice, &["-V", "SIP100"]);
    let ip = first["ip"].clone();
    lab.stop();
    lab.start();
    assert!(lab.log().contains("\"records\":1"), "{}", lab.log());
    // Ask without hinting the old address: the server remembers it.
    let second = lab.udhcpc(&voice, &["-V", "SIP100"]);
    assert_eq!(second["ip"], ip);
    let leases = lab.leases();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0]["ip"], ip.as_str());
    let _ = Ipv4Addr::LOCALHOST;
}

/// A served interface that appears after start (a VLAN sub-interface brought
/// up later) is waited for, like dnsmasq's bind-dynamic, then served.
#[test]
fn interface_created_after_start_is_served() {
    let mut lab = Lab::new("late");
    let cfg = format!(
        "{}\n[[dhcp.subnet]]\ncidr = \"10.251.0.0/24\"\npool = [\"10.251.0.100-10.251.0.150\"]\nrouter = \"10.251.0.1\"\n",
        base_config()
    )
    .replace(
        "interfaces = [\"native0\", \"voice0\"]",
        "interfaces = [\"native0\", \"voice0\", \"late0\"]",
    );
    assert!(cfg.contains("\"late0\""));
    lab.write_config(&cfg);
    let srv = lab.srv.name().to_string();
    let cli = lab.cli.name().to_string();
    let cli_if = format!("late{}", std::process::id() % 1000);
    let peer = cli_if.clone();
    // The interface comes up 1.5 s after the server starts.
    let maker = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let run = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {args:?}");
        };
        run(&[
            "link", "add", "late0", "netns", &srv, "type", "veth", "peer", "name", &peer, "netns",
            &cli,
        ]);
        run(&["-n", &srv, "addr", "add", "10.251.0.1/24", "dev", "late0"]);
        run(&["-n", &srv, "link", "set", "late0", "up"]);
        run(&["-n", &cli, "link", "set", &peer, "up"]);
    });
    lab.start();
    maker.join().unwrap();
    let log = lab.log();
    assert!(log.contains("interface does not exist yet"), "{log}");
    let env = lab.udhcpc(&cli_if, &[]);
    let ip: Ipv4Addr = env
        .get("ip")
        .expect("a lease on the late interface")
        .parse()
        .unwrap();
    assert!(ip.octets()[..3] == [10, 251, 0], "{ip}");
    lab.stop();
}

/// An interface deleted and re-created under a running server (a USB adapter
/// replugged, a VLAN sub-interface recreated) is served again: DHCP, DNS and
/// SNTP drop their sockets tied to the old device and bind anew.
#[test]
fn interface_recreated_under_the_server_is_served_again() {
    let mut lab = Lab::new("replug");
    lab.write_config(&format!("{}{}", base_config(), dialtone::demo::LAB_DNS));
    lab.start();
    let first = lab.udhcpc(&lab.voice_if.clone(), &[]);
    assert!(first.contains_key("ip"), "{first:?}");
    lab.srv.ip(&["link", "del", "voice0"]).unwrap();
    // Wait until the server has noticed before the interface comes back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !lab.log().contains("interface went away") {
        assert!(std::time::Instant::now() < deadline, "{}", lab.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    dialtone::lab::veth(&lab.srv, "voice0", &lab.cli, &lab.voice_if).unwrap();
    lab.srv.addr("voice0", "10.250.0.1/24").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ["serving DHCP", "serving DNS", "serving SNTP"]
        .iter()
        .any(|s| lab.log().matches(s).count() < 3)
    {
        assert!(std::time::Instant::now() < deadline, "{}", lab.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let env = lab.udhcpc(&lab.voice_if.clone(), &[]);
    let ip: Ipv4Addr = env
        .get("ip")
        .expect("a lease after the interface came back")
        .parse()
        .unwrap();
    assert!(ip.octets()[..3] == [10, 250, 0], "{ip}");
    // DNS is back on the new device too.
    lab.cli.addr(&lab.voice_if, "10.250.0.50/24").unwrap();
    let dig = lab
        .cli
        .run(
            "dig",
            &[
                "@10.250.0.1",
                "+short",
                "+time=2",
                "+tries=2",
                "vm40ic1.lab.voip",
                "A",
            ],
        )
        .unwrap();
    let out = String::from_utf8_lossy(&dig.stdout);
    assert!(out.contains("10.250.1.151"), "dig: {out}");
    lab.stop();
}

/// Classes written as profiles only, against the running server: what udhcpc
/// receives is what each family's profile sends, with defaults from the
/// appliance itself (its HTTP server for 160, itself for NTP).
#[test]
fn profiles_answer_real_clients() {
    let mut lab = Lab::new("profiles");
    let root = lab.dir.join("files");
    std::fs::create_dir_all(&root).unwrap();
    lab.write_config(&format!(
        r#"
[server]
state_dir = "@STATE@"
interfaces = ["native0", "voice0"]

[dhcp]
options.time_offset = "-05:00"

[dhcp.images]
"450HD" = "450HD_3.4.6.img"

[[dhcp.subnet]]
cidr = "192.168.1.0/24"
pool = ["192.168.1.100-192.168.1.199"]
router = "192.168.1.1"
dns = ["self"]
domain = "lab.voip"
options.vlan_id = 100

[[dhcp.subnet]]
cidr = "10.250.0.0/24"
pool = ["10.250.0.100-10.250.0.250"]
router = "10.250.0.1"
dns = ["self"]
domain = "lab.voip"

[[dhcp.class]]
name = "audiocodes"
profile = "audiocodes"

[[dhcp.class]]
name = "phones"
profile = "generic-sip"
match.vendor_class = "ClearOne*"

[[dhcp.class]]
name = "bricked"
profile = "recovery"

[files]
root = "{}"
tftp = false
http = ["0.0.0.0:8088"]
"#,
        root.display()
    ));
    lab.start();

    // An AudioCodes phone on the voice VLAN that asks for none of 160, 2, 42.
    let voice = lab.voice_if.clone();
    let env = lab.udhcpc(&voice, &["-V", "450HD", "-O", "15"]);
    assert_eq!(env["serverid"], "10.250.0.1", "{env:?}");
    assert_eq!(unhex(&env["opt160"]), b"http://10.250.0.1:8088/", "{env:?}");
    assert_eq!(env["ntpsrv"], "10.250.0.1");
    assert_eq!(env["timezone"], (-18000i32 as u32).to_string());
    assert!(
        !env.contains_key("tftp") && !env.contains_key("vlanid"),
        "{env:?}"
    );

    // The same model bricked on the native VLAN: 66/67 by model, 132 too.
    let native = lab.native_if.clone();
    let model = format!("0x4d:{}", hex_of("450HD"));
    let env = lab.udhcpc(&native, &["-x", &model, "-O", "66", "-O", "67"]);
    assert_eq!(env["tftp"], "192.168.1.1", "{env:?}");
    assert_eq!(env["bootfile"], "450HD_3.4.6.img");
    assert_eq!(env["vlanid"], u16::from_be_bytes(*b"10").to_string());

    // A third-party phone asking for more than it may have.
    let env = lab.udhcpc(
        &native,
        &["-V", "ClearOne-CP2", "-O", "66", "-O", "160", "-O", "12"],
    );
    assert!(
        !env.contains_key("tftp") && !env.contains_key("opt160") && !env.contains_key("hostname"),
        "{env:?}"
    );
    assert_eq!(env["ntpsrv"], "192.168.1.1");
    assert_eq!(env["domain"], "lab.voip");

    let log = lab.log();
    assert!(log.contains("\"classes\":\"audiocodes,bricked\""), "{log}");
}

/// A loader that reads only the BOOTP header (PXE ROMs, embedded
/// bootloaders): it asks for 1, 3, 6, 12 and 17, never for 66 or 67, then
/// fetches `file` from `siaddr` over TFTP. siaddr must be this appliance,
/// which serves TFTP and sends a boot file.
#[test]
fn a_loader_asking_for_neither_66_nor_67_fetches_file_from_siaddr() {
    let mut lab = Lab::new("bootp");
    let root = lab.dir.join("files");
    std::fs::create_dir_all(&root).unwrap();
    let image = common::pattern(70_001, 7);
    std::fs::write(root.join("loader.bin"), &image).unwrap();
    lab.write_config(&format!(
        "[server]\nstate_dir = \"@STATE@\"\ninterfaces = [\"voice0\"]\n\
         [[dhcp.subnet]]\ncidr = \"10.250.0.0/24\"\npool = [\"10.250.0.100-10.250.0.150\"]\nrouter = \"10.250.0.1\"\n\
         options.bootfile = \"loader.bin\"\n\
         [files]\nroot = \"{}\"\ntftp = true\n",
        root.display()
    ));
    lab.start();
    let voice = lab.voice_if.clone();
    let env = lab.udhcpc(
        &voice,
        &[
            "-o", "-O", "1", "-O", "3", "-O", "6", "-O", "12", "-O", "17",
        ],
    );
    assert_eq!(
        env.get("siaddr").map(String::as_str),
        Some("10.250.0.1"),
        "{env:?}"
    );
    assert_eq!(
        env.get("boot_file").map(String::as_str),
        Some("loader.bin"),
        "{env:?}"
    );
    assert!(
        !env.contains_key("tftp") && !env.contains_key("bootfile"),
        "{env:?}"
    );
    // sname is left empty: udhcpc exports it only when it holds a name.
    assert!(!env.contains_key("sname"), "{env:?}");
    // The loader takes its address and fetches the file named in the header.
    let prefix = format!("{}/24", env["ip"]);
    let out = lab
        .cli
        .run("ip", &["addr", "add", &prefix, "dev", &voice])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = lab.dir.join("got.bin");
    let out = lab
        .cli
        .run(
            "timeout",
            &[
                "20",
                "tftp",
                "-m",
                "binary",
                &env["siaddr"],
                "-c",
                "get",
                &env["boot_file"],
                &got.display().to_string(),
            ],
        )
        .unwrap();
    assert_eq!(
        std::fs::read(&got).ok().as_deref(),
        Some(&image[..]),
        "tftp: {out:?}\n{}",
        lab.log()
    );
}
