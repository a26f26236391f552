use super::*;
use crate::dhcp::options::{self as opt, AddrSpec, OptionValue};
use std::net::Ipv4Addr;

const EXAMPLE: &str = include_str!("../../config/dialtone.toml");

fn err(text: &str) -> ConfigError {
    match Config::parse("t.toml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn example_loads_and_normalizes() {
    let c = Config::parse("dialtone.toml", EXAMPLE).expect("example config is valid");
    assert_eq!(c.server.interfaces, vec!["eth0", "eth0.100"]);
    assert_eq!(c.dhcp.lease_time, 3600);
    assert_eq!(c.dhcp.subnets.len(), 2);
    let native = &c.dhcp.subnets[0];
    assert_eq!(
        native.options[&opt::VLAN_ID],
        OptionValue::Bytes(b"100".to_vec())
    );
    assert_eq!(
        native.options[&opt::SUBNET_MASK],
        OptionValue::Bytes(vec![255, 255, 255, 0])
    );
    let voice = &c.dhcp.subnets[1];
    assert_eq!(
        voice.options[&opt::TIME_OFFSET],
        OptionValue::Bytes(vec![0xff, 0xff, 0xb9, 0xb0])
    );
    assert_eq!(
        voice.options[&opt::NTP_SERVERS],
        OptionValue::Addrs(vec![AddrSpec::SelfAddr])
    );
    assert_eq!(c.dhcp.classes.len(), 3);
    assert_eq!(c.dhcp.classes[1].force, vec![66, 67]);
    assert_eq!(c.dhcp.classes[1].matchers[0].requests, vec![66, 67]);
    assert_eq!(c.dhcp.hosts[0].ip, Some(Ipv4Addr::new(10, 250, 0, 20)));
    // The normalized form is itself a valid configuration with the same meaning.
    let text = c.to_normalized_toml();
    let again = Config::parse("normalized", &text).expect("normalized output parses");
    assert_eq!(again.to_normalized_toml(), text);
    let shown = |s: &OptionSet| {
        s.iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(shown(&again.dhcp.subnets[1].options), shown(&voice.options));
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = err("[server]\ninterfaces = [\"eth0\"]\n\n[dhcp]\nleese_time = \"1h\"\n");
    assert_eq!(e.file, "t.toml");
    assert_eq!(e.line, 5);
    assert!(e.key.contains("dhcp"), "{e}");
    assert!(e.message.contains("leese_time"), "{e}");
}

#[test]
fn bad_values_are_located() {
    let e = err("[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.1.5-10.0.1.9\"]\n");
    assert_eq!((e.line, e.key.as_str()), (3, "dhcp.subnet[0].pool[0]"));
    assert!(e.message.contains("not inside"), "{e}");

    let e = err("[[dhcp.subnet]]\ncidr = \"10.0.0.1/24\"\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("host bits"), "{e}");

    let e = err("[dhcp]\nlease_time = \"1 fortnight\"\n");
    assert_eq!((e.line, e.key.as_str()), (2, "dhcp.lease_time"));

    let e = err("[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\noptions.vlan_id = 5000\n");
    assert_eq!(
        (e.line, e.key.as_str()),
        (3, "dhcp.subnet[0].options.vlan_id")
    );

    let e = err("[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\noptions.vlan_id = \"x\"\n");
    assert!(e.message.contains("VLAN ID"), "{e}");

    let e = err("[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\noptions.raw.53 = \"hex:01\"\n");
    assert!(e.message.contains("managed by dialtone"), "{e}");

    let e = err("[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\noptions.raw.224 = \"0a0b\"\n");
    assert!(e.message.contains("no type"), "{e}");

    let e = err("[[dhcp.host]]\nmac = \"00:90:8f:12:34\"\n");
    assert_eq!((e.line, e.key.as_str()), (2, "dhcp.host[0].mac"));

    let e = err("[[dhcp.host]]\nmac = \"00:90:8f:12:34:56\"\nip = \"10.9.9.9\"\n");
    assert!(e.message.contains("not inside any"), "{e}");

    let e = err("[[dhcp.class]]\nname = \"x\"\nmatch.requests = [300]\n");
    assert_eq!(e.key, "dhcp.class[0].match.requests[0]");

    let e = err("[[dhcp.class]]\nname = \"x\"\noptions.sip_servers = [\"1.2.3.4\", \"a.b\"]\n");
    assert!(e.message.contains("mixes"), "{e}");

    let e = err("[[dhcp.class]]\nname = \"x\"\noptions.bootfile = \"{modle}.img\"\n");
    assert!(e.message.contains("placeholder"), "{e}");

    let e = err("[dhcp\n");
    assert_eq!(e.line, 1);
}

#[test]
fn overlapping_subnets_and_duplicates() {
    let e =
        err("[[dhcp.subnet]]\ncidr = \"10.0.0.0/16\"\n[[dhcp.subnet]]\ncidr = \"10.0.5.0/24\"\n");
    assert!(e.message.contains("overlaps"), "{e}");
    let e = err("[[dhcp.class]]\nname = \"a\"\n[[dhcp.class]]\nname = \"a\"\n");
    assert!(e.message.contains("twice"), "{e}");
    let e = err("[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.0-10.0.0.9\"]\n");
    assert!(e.message.contains("network or broadcast"), "{e}");
}

#[test]
fn raw_and_typed_options() {
    let c = Config::parse(
        "t",
        "[dhcp]\noptions.raw.224 = \"hex:0a0b\"\noptions.raw.225 = \"text:{mac}\"\noptions.raw.226 = \"ip:10.0.0.1,self\"\noptions.vlan_id = { value = 100, encoding = \"u16\" }\n",
    )
    .unwrap();
    assert_eq!(c.dhcp.options[&224], OptionValue::Bytes(vec![10, 11]));
    assert_eq!(
        c.dhcp.options[&226],
        OptionValue::Addrs(vec![
            AddrSpec::Ip(Ipv4Addr::new(10, 0, 0, 1)),
            AddrSpec::SelfAddr
        ])
    );
    assert_eq!(
        c.dhcp.options[&opt::VLAN_ID],
        OptionValue::Bytes(vec![0, 100])
    );
}

const DNS_BASE: &str = r#"
[dns]
zone = "lab.voip"
[[dns.host]]
name = "vm40ic1"
ip = "10.250.1.151"
[[dns.host]]
name = "vm40ic2"
ip = "10.250.1.152"
"#;

#[test]
fn dns_example_loads() {
    let c = Config::parse("dialtone.toml", EXAMPLE).unwrap();
    let d = c.dns.as_ref().expect("[dns] section");
    assert_eq!(d.zone, "lab.voip");
    assert_eq!(d.ttl, 60);
    assert!(d.leases && d.upstream.is_empty());
    assert_eq!(d.hosts.len(), 2);
    let sw = &d.switchovers[0];
    assert_eq!(sw.members, vec!["vm40ic1", "vm40ic2"]);
    assert_eq!(sw.mode, SwitchoverMode::Equal);
    assert_eq!(sw.provision_name.as_deref(), Some("provision"));
    assert_eq!(sw.services.len(), 3);
    let h = sw.health.unwrap();
    assert_eq!(
        (h.check, h.interval, h.port),
        (HealthCheck::SipOptions, 5, 8060)
    );
    assert!(c.time.serve);
    assert_eq!(c.time.stratum, 10);
}

#[test]
fn dns_errors_name_the_key() {
    let cases = [
        (
            "[[dns.switchover]]\nname = \"cic\"\nmembers = [\"vm40ic1\", \"vm40ic9\"]\n",
            "dns.switchover[0].members[1]",
            "no [[dns.host]] record",
        ),
        (
            "[[dns.switchover]]\nname = \"cic\"\nmembers = [\"vm40ic1\"]\nprovision_name = \"vm40ic2\"\n",
            "dns.switchover[0].provision_name",
            "clashes",
        ),
        (
            "[[dns.switchover]]\nname = \"cic\"\nmembers = [\"vm40ic1\"]\nservices = [{ srv = \"_sip._udp\" }]\n",
            "dns.switchover[0].services[0]",
            "missing port",
        ),
        (
            "[[dns.switchover]]\nname = \"cic\"\nmembers = [\"vm40ic1\"]\nservices = [{ srv = \"sip._udp\", port = 5060 }]\n",
            "dns.switchover[0].services[0].srv",
            "starting with `_`",
        ),
        (
            "[[dns.switchover]]\nname = \"cic\"\nmembers = [\"vm40ic1\"]\nmode = \"roundrobin\"\n",
            "dns.switchover[0].mode",
            "expected \"equal\" or \"ordered\"",
        ),
        (
            "[[dns.switchover]]\nname = \"cic\"\nmembers = [\"vm40ic1\"]\nservices = [{ srv = \"_sip._tcp\", port = 5060 }]\nhealth = { check = \"sip-options\" }\n",
            "dns.switchover[0].health.check",
            "_udp",
        ),
    ];
    for (extra, key, needle) in cases {
        let e = err(&format!("{DNS_BASE}{extra}"));
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(needle), "{e}");
        assert!(e.line > 1, "{e}");
    }
    let e = err("[dns]\nttl = 5\n");
    assert_eq!(e.key, "dns.zone");
    let e = err("[dns]\nzone = \"lab.voip\"\nupstream = [\"nonsense\"]\n");
    assert_eq!(e.key, "dns.upstream[0]");
    let e = err("[time]\nstratum = 16\n");
    assert_eq!(e.key, "time.stratum");
    let e = err("[dns]\nzone = \"lab.voip\"\nbogus = 1\n");
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn option_host_names_defined_in_dns_come_from_the_config() {
    // None of these names exists for the system resolver; the [dns] section
    // gives them addresses, in any case and with or without the zone.
    let text = format!(
        "{}\n[[dhcp.host]]\nmac = \"00:90:8f:00:00:01\"\noptions.ntp_servers = [\"VM40IC2.lab.voip.\", \"provision\", \"dialtone\", \"vm40ic1\"]\n",
        include_str!("../../config/lab/dhcp.toml").replace("@STATE@", "/tmp/x")
    ) + include_str!("../../config/lab/dns.toml");
    let c = Config::parse("t.toml", &text).expect("valid");
    let host = c.dhcp.hosts.last().expect("the host");
    let (a, b) = (
        Ipv4Addr::new(10, 250, 1, 151),
        Ipv4Addr::new(10, 250, 1, 152),
    );
    assert_eq!(
        host.options[&opt::NTP_SERVERS],
        OptionValue::Addrs(vec![
            AddrSpec::Ip(b),
            AddrSpec::Ip(a),
            AddrSpec::Ip(b),
            AddrSpec::SelfAddr,
            AddrSpec::Ip(a),
        ])
    );
    // Without [dns] the same name goes to the lookup given, never to the
    // host's resolver unless asked.
    let without_dns = text.split("\n[dns]").next().unwrap_or_default();
    let e = err(without_dns);
    assert!(
        e.to_string()
            .contains("`VM40IC2.lab.voip.` is not defined in [dns] (names are not resolved here)"),
        "{e}"
    );
    let table = super::lookup::Table(vec![
        ("vm40ic2.lab.voip".into(), vec![b]),
        ("provision".into(), vec![a, b]),
        ("dialtone".into(), vec![a]),
        ("vm40ic1".into(), vec![a]),
    ]);
    let c = Config::parse_with("t.toml", without_dns, &table).expect("resolved by the table");
    let host = c.dhcp.hosts.last().expect("the host");
    assert_eq!(
        host.options[&opt::NTP_SERVERS],
        OptionValue::Addrs(vec![
            AddrSpec::Ip(b),
            AddrSpec::Ip(a),
            AddrSpec::Ip(b),
            AddrSpec::Ip(a),
            AddrSpec::Ip(a),
        ])
    );
    let e = Config::parse_with(
        "t.toml",
        &without_dns.replace("\"vm40ic1\"", "\"vm40ic3\""),
        &table,
    )
    .expect_err("not in the table");
    assert!(
        e.to_string().contains("`vm40ic3` is not in the table"),
        "{e}"
    );
}

#[test]
fn files_section_loads_and_reports_errors() {
    let base = include_str!("../../config/lab/dhcp.toml").replace("@STATE@", "/tmp/x");
    let c = Config::parse(
        "t.toml",
        &format!("{base}\n[files]\nroot = \"/srv/dialtone\"\ntftp = true\nhttp = [\"0.0.0.0:80\", \":8088\"]\nprivate = [\"*.cfg\"]\n"),
    )
    .expect("valid");
    let f = c.files.as_ref().expect("files");
    assert_eq!(f.http.len(), 2);
    assert_eq!(f.http[1].port(), 8088);
    assert_eq!(f.max_window, 64);
    let again = Config::parse("n.toml", &c.to_normalized_toml()).expect("normalized is valid");
    assert_eq!(
        again.files.map(|f| f.http),
        Some(c.files.clone().map(|f| f.http).unwrap_or_default())
    );
    let e = err(&format!("{base}\n[files]\nhttp = [\"0.0.0.0\"]\n"));
    assert_eq!(e.key, "files.http[0]", "{e}");
    assert!(
        e.to_string().contains("expected an IPv4 address and port"),
        "{e}"
    );
    let e = err(&format!("{base}\n[files]\nroot = \"srv\"\n"));
    assert_eq!(e.key, "files.root");
    let e = err(&format!("{base}\n[files]\nmax_window = 0\n"));
    assert_eq!(e.key, "files.max_window");
    let e = err(&format!("{base}\n[files]\ntftp_timeout = \"300s\"\n"));
    assert_eq!(e.key, "files.tftp_timeout");
    let e = err(&format!("{base}\n[files]\nuploads = \"/tmp\"\n"));
    assert!(e.to_string().contains("uploads"), "{e}");
    assert!(e.line > 1, "{e}");
    // The upload folder: absolute, apart from the served tree; its limit.
    let c = Config::parse(
        "t.toml",
        &format!("{base}\n[files]\nroot = \"/srv/dialtone\"\nupload = \"/var/lib/dialtone/uploads\"\nupload_max = \"2M\"\n"),
    )
    .expect("valid");
    let f = c.files.as_ref().expect("files");
    assert_eq!(
        f.upload.as_deref(),
        Some(std::path::Path::new("/var/lib/dialtone/uploads"))
    );
    assert_eq!(f.upload_max, 2 << 20);
    let again = Config::parse("n.toml", &c.to_normalized_toml()).expect("normalized is valid");
    let g = again.files.expect("files");
    assert_eq!((g.upload, g.upload_max), (f.upload.clone(), f.upload_max));
    assert_eq!(
        Config::parse("t.toml", &format!("{base}\n[files]\n"))
            .expect("valid")
            .files
            .map(|f| f.upload),
        Some(None)
    );
    for (bad, why) in [
        ("upload = \"uploads\"", "absolute"),
        ("upload = \"/srv/dialtone/logs\"", "outside files.root"),
        ("upload = \"/srv\"", "outside files.root"),
        ("upload_max = \"lots\"", "not a size"),
        ("upload_max = 0", "above 0"),
        ("upload_max = -5", "expected a size"),
    ] {
        let e = err(&format!(
            "{base}\n[files]\nroot = \"/srv/dialtone\"\n{bad}\n"
        ));
        assert!(e.key.starts_with("files.upload"), "{bad}: {e}");
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
}

#[test]
fn every_builtin_profile_loads() {
    for (_, p) in crate::families::profiles() {
        let needs_match = p.name == "generic-sip";
        let text = format!(
            "[[dhcp.class]]\nname = \"c\"\nprofile = \"{}\"\n{}",
            p.name,
            if needs_match {
                "match.mac = \"00:11:22:*\"\n"
            } else {
                ""
            }
        );
        let c = Config::parse("t.toml", &text).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let k = &c.dhcp.classes[0];
        assert_eq!(k.profile.as_deref(), Some(p.name));
        assert!(!k.matchers.is_empty(), "{}", p.name);
        assert!(!k.force.is_empty() || !k.options.is_empty(), "{}", p.name);
        // The normalized form is valid configuration again.
        Config::parse("normalized", &c.to_normalized_toml())
            .unwrap_or_else(|e| panic!("{}: normalized form: {e}", p.name));
    }
}

#[test]
fn profiles_are_overridden_key_by_key_and_errors_are_located() {
    let text = r#"
[dhcp.images]
"450hd" = "450HD_3.4.6.img"

[[dhcp.class]]
name = "sfb"
profile = "audiocodes-sfb"
options.vendor_specific = { 3 = "sfb.lab.voip" }
options.bootfile = "fixed.img"
force = [160]
"#;
    let c = Config::parse("t.toml", text).unwrap();
    let k = &c.dhcp.classes[0];
    // Sub-option 3 added to the profile's 1, 2, 4 and 5.
    let OptionValue::Bytes(b) = &k.options[&opt::VENDOR_SPECIFIC] else {
        panic!("option 43 is bytes")
    };
    let subs: Vec<u8> = opt::decode_vendor_tlv(b)
        .unwrap()
        .iter()
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(subs, vec![1, 2, 3, 4, 5]);
    assert_eq!(k.options[&opt::BOOTFILE].to_string(), "text:fixed.img");
    assert_eq!(k.defaults[&opt::BOOTFILE].to_string(), "text:{image}");
    assert_eq!(k.force, vec![160]);
    assert_eq!(c.dhcp.images["450HD"], "450HD_3.4.6.img");
    assert_eq!(c.dhcp.images["SIP100"], "sip100.img");

    // Own match rules replace the profile's; a list means any of them.
    let c = Config::parse(
        "t.toml",
        "[[dhcp.class]]\nname = \"p\"\nprofile = \"polycom\"\nmatch = [{ mac = \"00:04:f2:*\" }, { message = \"INFORM\" }]\n",
    )
    .unwrap();
    assert_eq!(c.dhcp.classes[0].matchers.len(), 2);
    assert_eq!(c.dhcp.classes[0].matchers[1].message, Some(8));

    let e = err("[[dhcp.class]]\nname = \"x\"\nprofile = \"nortel\"\n");
    assert_eq!((e.line, e.key.as_str()), (3, "dhcp.class[0].profile"));
    assert!(e.message.contains("audiocodes"), "{e}");
    let e = err("[[dhcp.class]]\nname = \"x\"\nprofile = \"generic-sip\"\n");
    assert_eq!(e.key, "dhcp.class[0].match");
    let e = err(
        "[[dhcp.class]]\nname = \"x\"\nmatch = [{ mac = \"00:04\" }, { message = \"offer\" }]\n",
    );
    assert_eq!(
        (e.line, e.key.as_str()),
        (3, "dhcp.class[0].match[1].message")
    );
    let e = err("[[dhcp.class]]\nname = \"x\"\nmatch = [{ vendor = \"a\" }]\n");
    assert_eq!(e.line, 3, "{e}");
    let e = err("[[dhcp.class]]\nname = \"x\"\nmatch = []\n");
    assert_eq!(e.key, "dhcp.class[0].match");
    let e = err("[[dhcp.class]]\nname = \"x\"\nonly = [0]\n");
    assert_eq!(e.key, "dhcp.class[0].only[0]");
    let e = err("[dhcp.images]\n\"450HD\" = \"\"\n");
    assert_eq!((e.line, e.key.as_str()), (2, "dhcp.images.450HD"));
}

#[test]
fn phones_are_checked_with_their_line() {
    let base = "[dns]\nzone = \"lab.voip\"\n[[dns.host]]\nname = \"a\"\nip = \"10.0.0.1\"\n[[dns.host]]\nname = \"b\"\nip = \"10.0.0.2\"\n[[dns.switchover]]\nname = \"cic\"\nmembers = [\"a\", \"b\"]\n";
    let ok = format!(
        "{base}[[phone]]\nmac = \"00908f123456\"\nextension = \"7502\"\nsip_password = \"x\"\nregister = \"cic\"\n\n[[phone]]\nname = \"lobby\"\nmanufacturer = \"POLYCOM\"\nmodel = \"IP330\"\nregister = \"pbx.example:5080\"\n"
    );
    let c = Config::parse("t.toml", &ok).unwrap();
    let p = &c.phones.phones;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].family, &crate::families::audiocodes::FAMILY);
    assert_eq!(p[0].origin, "t.toml:13");
    assert_eq!(
        p[0].register,
        Some(super::phone::Register::Switchover("cic".into()))
    );
    assert_eq!(p[1].family, &crate::families::polycom::FAMILY);
    assert_eq!(
        p[1].register,
        Some(super::phone::Register::Address {
            host: "pbx.example".into(),
            port: Some(5080)
        })
    );
    let cases = [
        (
            "mac = \"0090.8f12.345\"\n",
            "phone[0].mac",
            "not a MAC address",
        ),
        (
            "mac = \"00908f123456\"\nmanufacturer = \"Polycom\"\n",
            "phone[0].mac",
            "00:90:8f:12:34:56 is not a Polycom address (Polycom MACs start with 00:04:f2 or 64:16:7f)",
        ),
        (
            "manufacturer = \"Snom\"\n",
            "phone[0].manufacturer",
            "expected one of AudioCodes, Cisco, Genesys, Grandstream, ININ, Polycom, Yealink",
        ),
        (
            "profile = \"nokia\"\n",
            "phone[0].profile",
            "expected a built-in profile",
        ),
        (
            "name = \"x\"\nsip_password = \"p\"\n",
            "phone[0].sip_password",
            "needs the extension",
        ),
        (
            "extension = \"1\"\nsip_password = \"p\\nvoip/x=1\"\n",
            "phone[0].sip_password",
            "control characters",
        ),
        (
            "register = \"not a host\"\n",
            "phone[0].register",
            "expected a [[dns.switchover]] name",
        ),
        (
            "register = \"pbx:0\"\n",
            "phone[0].register",
            "port from 1 to 65535",
        ),
        ("color = \"red\"\n", "phone[0].color", "unknown field"),
    ];
    for (table, key, message) in cases {
        let text = format!("{base}[[phone]]\n{table}");
        let e = Config::parse("t.toml", &text).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(message), "{e}");
        assert!(e.line >= 12, "{e}");
    }
    let dup = format!(
        "{base}[[phone]]\nmac = \"00908f123456\"\n[[phone]]\nmac = \"00:90:8F:12:34:56\"\n"
    );
    let e = Config::parse("t.toml", &dup).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("phone[1].mac", 15), "{e}");
    assert!(
        e.message
            .contains("already the phone declared at t.toml:13"),
        "{e}"
    );
}

#[test]
fn the_admin_listener_needs_credentials_off_loopback_and_consent_on_a_phone_network() {
    let base = "[server]\ninterfaces = [\"eth0\"]\n\n[[dhcp.subnet]]\ncidr = \"10.250.0.0/24\"\npool = [\"10.250.0.100-10.250.0.199\"]\n\n";
    let c = Config::parse("t.toml", base).unwrap();
    assert_eq!(c.admin.listen, Some(super::admin::DEFAULT_ADMIN));
    assert!(!c.admin.needs_credentials());
    let e = err(&format!("{base}[admin]\nlisten = \"192.168.9.1:8080\"\n"));
    assert_eq!((e.key.as_str(), e.line), ("admin.listen", 9));
    assert!(e.message.contains("password_file"), "{e}");
    let e = err(&format!(
        "{base}[admin]\nlisten = \"10.250.0.1:8080\"\ntoken_file = \"/etc/dialtone/token\"\n"
    ));
    assert!(e.message.contains("phone network"), "{e}");
    let e = err(&format!(
        "{base}[admin]\nlisten = \"0.0.0.0:8080\"\ntoken_file = \"/etc/dialtone/token\"\n"
    ));
    assert!(e.message.contains("phone network"), "{e}");
    let c = Config::parse(
        "t.toml",
        &format!(
            "{base}[admin]\nlisten = \"0.0.0.0:8080\"\ntoken_file = \"/t\"\nphone_network = true\n"
        ),
    )
    .unwrap();
    assert_eq!(super::admin::warnings(&c.admin).len(), 1);
    let c = Config::parse(
        "t.toml",
        &format!("{base}[admin]\nlisten = \"192.168.9.1:8080\"\npassword_file = \"/etc/dialtone/admin-password\"\n"),
    )
    .unwrap();
    assert!(c.admin.needs_credentials() && super::admin::warnings(&c.admin).is_empty());
    let c = Config::parse("t.toml", &format!("{base}[admin]\nlisten = \"off\"\n")).unwrap();
    assert_eq!(c.admin.listen, None);
    for bad in ["\"8080\"", "\"[::1]:8080\"", "\"127.0.0.1:0\""] {
        let e = err(&format!("{base}[admin]\nlisten = {bad}\n"));
        assert_eq!(e.key, "admin.listen", "{bad}: {e}");
    }
    // The normalized configuration names the files, and parses again.
    let text = c.to_normalized_toml();
    assert!(text.contains("listen = \"off\""));
    Config::parse("again.toml", &text).unwrap();
}

#[test]
fn syslog_settings_are_checked() {
    let base = "[server]\ninterfaces = [\"eth0\"]\n\n";
    let c = Config::parse("t.toml", base).unwrap();
    assert!(c.syslog.serve && c.syslog.port == 514 && c.syslog.lines_per_phone == 2_000);
    let e = err(&format!("{base}[syslog]\nlines_per_phone = 5\n"));
    assert_eq!(e.key, "syslog.lines_per_phone");
    let e = err(&format!("{base}[syslog]\nport = 70000\n"));
    assert_eq!(e.key, "syslog.port");
    let c = Config::parse("t.toml", &format!("{base}[syslog]\nserve = false\n")).unwrap();
    assert!(!c.syslog.serve);
}
