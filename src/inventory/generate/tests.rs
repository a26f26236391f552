use std::fs;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::*;
use crate::files::owners::Owners;
use crate::files::resolve::{Body, Miss, Resolver};
use crate::units::Mac;

const AC: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 20);
const POLY: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 21);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 22);
const NEW_POLY: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 23);
const LAPTOP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 24);
const YEA: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 25);
const CISCO: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 26);
const GS: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 27);
const NEW_YEA: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 28);

struct Leases;

impl Owners for Leases {
    fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
        match ip {
            AC => "00:90:8f:12:34:56".parse().ok(),
            POLY => "00:04:f2:04:f6:a9".parse().ok(),
            OTHER => "00:90:8f:00:00:99".parse().ok(),
            NEW_POLY => "64:16:7f:00:00:42".parse().ok(),
            LAPTOP => "52:54:00:00:00:24".parse().ok(),
            YEA => "80:5e:c0:00:00:05".parse().ok(),
            CISCO => "30:e4:db:00:00:07".parse().ok(),
            GS => "00:0b:82:00:00:06".parse().ok(),
            NEW_YEA => "00:15:65:00:00:42".parse().ok(),
            _ => None,
        }
    }
}

fn setup(name: &str) -> (std::path::PathBuf, Resolver) {
    let (dir, r, _) = setup_seen(name);
    (dir, r)
}

fn setup_seen(name: &str) -> (std::path::PathBuf, Resolver, Arc<Seen>) {
    setup_edited(name, &|t| t)
}

fn setup_edited(
    name: &str,
    edit: &dyn Fn(String) -> String,
) -> (std::path::PathBuf, Resolver, Arc<Seen>) {
    let dir = std::env::temp_dir().join(format!("dialtone-gen-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let text = format!(
        r#"
[server]
interfaces = ["dt-gen-none0"]

[dhcp]
[[dhcp.subnet]]
cidr = "192.168.1.0/24"
router = "192.168.1.1"
options.vlan_id = 100

[[dhcp.subnet]]
cidr = "10.250.0.0/24"
router = "10.250.0.1"
options.time_offset = "-05:00"

{dns}
[files]
root = "{root}"

[inventory]
syslog = "10.250.0.1"

[[phone]]
name = "Agent420HD"
mac = "00908F123456"
manufacturer = "audiocodes"
model = "420HD"
extension = "7502"
sip_password = "s3cret"
register = "CIC"

[[phone]]
name = "PolycomAgent2"
mac = "00:04:f2:04:f6:a9"
model = "IP601"
extension = "7202"
sip_password = "a\"b&c"
label = "Line1"
register = "10.250.1.151:8060"

[[phone]]
name = "Desk"
mac = "80:5e:c0:00:00:05"
manufacturer = "Yealink"
model = "T46S"
extension = "7505"
sip_password = "y&<pw"
register = "cic"

[[phone]]
name = "Warehouse"
mac = "30e4db000007"
manufacturer = "Cisco"
model = "CP-8841"
extension = "7507"
sip_user = "wh7507"
sip_password = "c<\"pw"
label = "Dock & Yard"
register = "cic"

[[phone]]
name = "Reception"
mac = "00:0b:82:00:00:06"
manufacturer = "Grandstream"
model = "GXP2160"
extension = "7506"
sip_password = "g&pw"
register = "10.250.1.151:8060"
"#,
        root = dir.display(),
        dns = include_str!("../../../config/lab/dns.toml"),
    );
    let text = edit(text);
    let config = Arc::new(crate::config::Config::parse("gen.toml", &text).unwrap());
    let files = config.files.clone().unwrap();
    let seen = Arc::new(Seen::default());
    let r = Resolver::new(&files, Arc::new(Leases))
        .unwrap()
        .with_generator(Arc::new(
            PhoneFiles::new(config)
                .unwrap()
                .with_seen(Arc::clone(&seen)),
        ));
    (dir, r, seen)
}

fn text(r: Result<crate::files::resolve::Found, Miss>) -> String {
    match r {
        Ok(f) => match f.body {
            Body::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
            Body::File(mut file) => {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut file, &mut s).unwrap();
                format!("static:{s}")
            }
        },
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn audiocodes_phones_get_their_key_value_file_and_nobody_else_does() {
    let (dir, r) = setup("ac");
    let me = r.client(AC);
    let cfg = text(r.resolve("00908f123456.cfg", &me, true));
    let lines: Vec<&str> = cfg.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "voip/line/0/enabled=1",
            "voip/line/0/id=7502",
            "voip/line/0/description=7502",
            "voip/line/0/auth_name=7502",
            "voip/line/0/auth_password=s3cret",
            "voip/signalling/sip/use_proxy=1",
            "voip/signalling/sip/proxy_address=lab.voip",
            "voip/signalling/sip/proxy_port=0",
            "system/ntp/enabled=1",
            "system/ntp/primary_server_address=10.250.0.1",
            "system/ntp/gmt_offset=-05:00",
            "network/lan/vlan/mode=MANUAL",
            "network/lan/vlan/id=100",
            "system/syslog/mode=NETWORK",
            "system/syslog/server_address=10.250.0.1",
        ],
        "{cfg}"
    );
    assert!(
        cfg.starts_with("# 00908F123456.cfg for Agent420HD (420HD)"),
        "{cfg}"
    );
    // Any spelling of the name, and the static DNS method's model folder.
    assert_eq!(text(r.resolve("00908F123456.cfg", &me, false)), cfg);
    assert_eq!(
        text(r.resolve("420HD/00-90-8f-12-34-56.cfg", &me, true)),
        cfg
    );
    // Another phone, or an address without a lease: refused, as private.
    for ip in [OTHER, Ipv4Addr::new(10, 250, 0, 99)] {
        let c = r.client(ip);
        assert!(
            matches!(r.resolve("00908f123456.cfg", &c, true), Err(Miss::Private { owner, .. }) if owner == "00:90:8f:12:34:56".parse::<Mac>().unwrap()),
            "{ip}"
        );
    }
    // Only the family's files are generated.
    assert!(matches!(
        r.resolve("00908f123456-registration.cfg", &me, true),
        Err(Miss::NotFound)
    ));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn polycom_phones_get_their_master_and_registration_files_escaped() {
    let (dir, r) = setup("poly");
    let me = r.client(POLY);
    let master = text(r.resolve("0004F204F6A9.cfg", &me, true));
    assert!(
        master.contains(r#"CONFIG_FILES="0004f204f6a9-registration.cfg""#),
        "{master}"
    );
    let reg = text(r.resolve("0004f204f6a9-registration.cfg", &me, true));
    assert!(
        reg.contains(r#"reg.1.address="7202" reg.1.label="Line1" reg.1.displayName="PolycomAgent2" reg.1.auth.userId="7202" reg.1.auth.password="a&quot;b&amp;c" reg.1.server.1.address="10.250.1.151" reg.1.server.1.port="8060""#),
        "{reg}"
    );
    assert!(reg.contains(r#"tcpIpApp.sntp.gmtOffset="-18000""#), "{reg}");
    assert!(matches!(
        r.resolve("0004f204f6a9-registration.cfg", &r.client(AC), true),
        Err(Miss::Private { .. })
    ));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn the_tree_wins_over_templates_and_templates_over_built_ins() {
    let (dir, r) = setup("tree");
    let me = r.client(AC);
    fs::create_dir_all(dir.join("templates")).unwrap();
    fs::write(
        dir.join("templates/audiocodes.cfg"),
        "line={{ phone.extension }} from {{ template }}\n",
    )
    .unwrap();
    let cfg = text(r.resolve("00908f123456.cfg", &me, true));
    assert_eq!(
        cfg,
        format!(
            "line=7502 from {}\n",
            dir.join("templates/audiocodes.cfg").display()
        )
    );
    // A broken template is an error for that file, not a crash.
    fs::write(dir.join("templates/audiocodes.cfg"), "{{ phone.nope }}").unwrap();
    assert!(matches!(
        r.resolve("00908f123456.cfg", &me, true),
        Err(Miss::Io(_))
    ));
    fs::write(dir.join("templates/audiocodes.cfg"), "{% if %}").unwrap();
    assert!(matches!(
        r.resolve("00908f123456.cfg", &me, true),
        Err(Miss::Io(_))
    ));
    // A static file of that name wins, and stays private.
    fs::write(dir.join("00908F123456.cfg"), "by hand").unwrap();
    assert_eq!(
        text(r.resolve("00908f123456.cfg", &me, true)),
        "static:by hand"
    );
    assert!(matches!(
        r.resolve("00908f123456.cfg", &r.client(OTHER), true),
        Err(Miss::Private { .. })
    ));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn phones_not_in_the_inventory_get_a_provisional_configuration() {
    let (dir, r, seen) = setup_seen("provisional");
    let other: Mac = "00:90:8f:00:00:99".parse().unwrap();
    // The model comes from the phone's lease (option 77).
    seen.lease(
        &crate::leases::Lease {
            ip: OTHER,
            mac: other,
            hostname: None,
            vendor_class: None,
            user_class: Some("440HD".into()),
            interface: "voice0".into(),
            state: crate::leases::LeaseState::Bound,
            expires: u64::MAX,
        },
        1,
    );
    let me = r.client(OTHER);
    let cfg = text(r.resolve("00908F000099.cfg", &me, true));
    assert!(
        cfg.starts_with(
            "# 00908F000099.cfg for 00908F000099 (440HD), generated by dialtone:\n# provisional"
        ),
        "{cfg}"
    );
    let lines: Vec<&str> = cfg.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "voip/line/0/enabled=0",
            "voip/line/0/description=Setup",
            "system/ntp/enabled=1",
            "system/ntp/primary_server_address=10.250.0.1",
            "system/ntp/gmt_offset=-05:00",
            "network/lan/vlan/mode=MANUAL",
            "network/lan/vlan/id=100",
            "system/syslog/mode=NETWORK",
            "system/syslog/server_address=10.250.0.1",
        ],
        "{cfg}"
    );
    assert!(seen.snapshot()[&other].provisional);
    // Still the phone's own: another client gets nothing.
    assert!(matches!(
        r.resolve("00908F000099.cfg", &r.client(AC), true),
        Err(Miss::Private { .. })
    ));

    // A Polycom (by its OUI) without a model: the file list and a
    // registration file with the Setup line and no credentials.
    let poly = r.client(NEW_POLY);
    let main = text(r.resolve("64167f000042.cfg", &poly, true));
    assert!(
        main.contains(r#"CONFIG_FILES="64167f000042-registration.cfg""#),
        "{main}"
    );
    let reg = text(r.resolve("64167f000042-registration.cfg", &poly, true));
    assert!(
        reg.contains(r#"<reg reg.1.address="" reg.1.label="Setup"/>"#) && !reg.contains("auth"),
        "{reg}"
    );
    assert!(seen.snapshot()[&"64:16:7f:00:00:42".parse::<Mac>().unwrap()].provisional);

    // A MAC of no phone maker: nothing is made up for it.
    let laptop = r.client(LAPTOP);
    assert!(matches!(
        r.resolve("525400000024.cfg", &laptop, true),
        Err(Miss::NotFound)
    ));
    assert!(seen.snapshot().len() == 2);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn syslog_goes_to_the_appliance_by_default_and_off_means_local() {
    // No `[inventory] syslog`: the appliance facing the phone (here the
    // subnet's router, the interface being absent), for both families.
    let (dir, r, _) = setup_edited("syslog-default", &|t| {
        t.replace("syslog = \"10.250.0.1\"\n", "")
    });
    let cfg = text(r.resolve("00908f123456.cfg", &r.client(AC), true));
    assert!(
        cfg.contains("system/syslog/mode=NETWORK\nsystem/syslog/server_address=10.250.0.1"),
        "{cfg}"
    );
    let reg = text(r.resolve("0004f204f6a9-registration.cfg", &r.client(POLY), true));
    assert!(
        reg.contains("device.syslog.serverName=\"10.250.0.1\""),
        "{reg}"
    );
    fs::remove_dir_all(dir).unwrap();
    let (dir, r, _) = setup_edited("syslog-off", &|t| {
        t.replace("syslog = \"10.250.0.1\"", "syslog = \"off\"")
    });
    let cfg = text(r.resolve("00908f123456.cfg", &r.client(AC), true));
    assert!(cfg.contains("system/syslog/mode=LOCAL"), "{cfg}");
    let reg = text(r.resolve("0004f204f6a9-registration.cfg", &r.client(POLY), true));
    assert!(!reg.contains("syslog"), "{reg}");
    fs::remove_dir_all(dir).unwrap();
    // And with the receiver off, no default either.
    let (dir, r, _) = setup_edited("syslog-unserved", &|t| {
        t.replace("syslog = \"10.250.0.1\"\n", "") + "\n[syslog]\nserve = false\n"
    });
    let cfg = text(r.resolve("00908f123456.cfg", &r.client(AC), true));
    assert!(cfg.contains("system/syslog/mode=LOCAL"), "{cfg}");
    fs::remove_dir_all(dir).unwrap();
}

/// The generated file of `name` for the phone at `ip`, as its lines
/// without comments.
fn lines_of(r: &Resolver, name: &str, ip: Ipv4Addr) -> Vec<String> {
    text(r.resolve(name, &r.client(ip), true))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("<!--"))
        .map(str::to_string)
        .collect()
}

#[test]
fn yealink_phones_get_their_account_file_and_nobody_else_does() {
    let (dir, r) = setup("yealink");
    let cfg = text(r.resolve("805ec0000005.cfg", &r.client(YEA), true));
    assert!(cfg.starts_with("#!version:1.0.0.1\n"), "{cfg}");
    assert_eq!(
        lines_of(&r, "805ec0000005.cfg", YEA),
        [
            "account.1.enable = 1",
            "account.1.label = 7505",
            "account.1.display_name = Desk",
            "account.1.auth_name = 7505",
            "account.1.user_name = 7505",
            "account.1.password = y&<pw",
            "account.1.sip_server.1.address = lab.voip",
            "account.1.sip_server.1.port = 0",
            "account.1.sip_server.1.transport_type = 3",
            "local_time.ntp_server1 = 10.250.0.1",
            "local_time.time_zone = -5",
            "network.vlan.internet_port_enable = 1",
            "network.vlan.internet_port_vid = 100",
            "static.network.vlan.internet_port_enable = 1",
            "static.network.vlan.internet_port_vid = 100",
        ]
    );
    // Upper-case spelling of the name finds it too; another address does not.
    assert!(text(r.resolve("805EC0000005.cfg", &r.client(YEA), true)).contains("y&<pw"));
    let e = text(r.resolve("805ec0000005.cfg", &r.client(GS), true));
    assert!(e.starts_with("Private"), "{e}");
    // A Yealink not in the inventory gets a provisional file: no account.
    assert_eq!(
        lines_of(&r, "001565000042.cfg", NEW_YEA),
        [
            "account.1.enable = 0",
            "account.1.label = Setup",
            "local_time.ntp_server1 = 10.250.0.1",
            "local_time.time_zone = -5",
            "network.vlan.internet_port_enable = 1",
            "network.vlan.internet_port_vid = 100",
            "static.network.vlan.internet_port_enable = 1",
            "static.network.vlan.internet_port_vid = 100",
        ]
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn cisco_phones_get_their_sep_file_with_the_pair_as_call_managers() {
    let (dir, r) = setup("cisco");
    let xml = text(r.resolve("SEP30E4DB000007.cnf.xml", &r.client(CISCO), false));
    let el = |name: &str| crate::families::element(&xml, name);
    assert_eq!(el("deviceProtocol").as_deref(), Some("SIP"));
    assert_eq!(
        el("timeZone").as_deref(),
        Some("Eastern Standard/Daylight Time")
    );
    assert_eq!(el("registerWithProxy").as_deref(), Some("true"));
    assert_eq!(el("phoneLabel").as_deref(), Some("Dock & Yard"));
    // The switchover pair: both members, in order, on the SIP service's port.
    assert!(
        xml.contains("<member priority=\"0\"><callManager><ports><ethernetPhonePort>2000</ethernetPhonePort><sipPort>8060</sipPort><securedSipPort>5061</securedSipPort></ports><processNodeName>vm40ic1.lab.voip</processNodeName>"),
        "{xml}"
    );
    assert!(
        xml.contains("<member priority=\"1\">")
            && xml.contains("<processNodeName>vm40ic2.lab.voip</processNodeName>"),
        "{xml}"
    );
    let line = xml
        .split_once("<sipLines>")
        .map(|(_, l)| l)
        .unwrap_or_default();
    let le = |name: &str| crate::families::element(line, name);
    assert_eq!(le("featureID").as_deref(), Some("9"));
    assert_eq!(le("proxy").as_deref(), Some("USECALLMANAGER"));
    assert_eq!(le("name").as_deref(), Some("7507"));
    assert_eq!(le("displayName").as_deref(), Some("Warehouse"));
    assert_eq!(le("authName").as_deref(), Some("wh7507"));
    // Escaped in the file, the password itself once read back.
    assert!(
        xml.contains("<authPassword>c&lt;&quot;pw</authPassword>"),
        "{xml}"
    );
    assert_eq!(le("authPassword").as_deref(), Some("c<\"pw"));
    let got = crate::families::Fetched {
        files: vec![("SEP30E4DB000007.cnf.xml".into(), xml.clone().into_bytes())],
        domain: None,
    };
    let reg = crate::families::cisco::registration(&got).expect("a registration");
    assert_eq!((reg.host.as_str(), reg.port), ("vm40ic1.lab.voip", 8060));
    assert_eq!(reg.password.as_deref(), Some("c<\"pw"));
    // Only to its phone, over TFTP (no HTTP flag) as over HTTP.
    let e = text(r.resolve("SEP30E4DB000007.cnf.xml", &r.client(YEA), false));
    assert!(e.starts_with("Private"), "{e}");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn grandstream_phones_get_their_p_values() {
    let (dir, r) = setup("grandstream");
    let xml = text(r.resolve("cfg000b82000006.xml", &r.client(GS), true));
    let p = |n: &str| crate::families::element(&xml, n);
    assert_eq!(p("mac").as_deref(), Some("000b82000006"));
    for (key, want) in [
        ("P271", "1"),
        ("P270", "7506"),
        ("P3", "Reception"),
        ("P35", "7506"),
        ("P36", "7506"),
        ("P34", "g&pw"),
        ("P47", "10.250.1.151:8060"),
        ("P30", "10.250.0.1"),
        ("P144", "1"),
        ("P64", "auto"),
        ("P143", "1"),
        ("P51", "100"),
    ] {
        assert_eq!(p(key).as_deref(), Some(want), "{key} in {xml}");
    }
    assert!(xml.contains("<P34>g&amp;pw</P34>"), "{xml}");
    // P103 (DNS SRV) only for a switchover pair.
    assert_eq!(p("P103"), None);
    let e = text(r.resolve("cfg000b82000006.xml", &r.client(CISCO), true));
    assert!(e.starts_with("Private"), "{e}");
    // The binary `cfg<mac>` of older firmware: not generated, a plain miss.
    let e = text(r.resolve("cfg000b82000006", &r.client(GS), false));
    assert_eq!(e, "NotFound");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn xml_comments_hold_no_value_that_could_end_them() {
    // A name with `--` would end an XML comment early and break the file.
    let (dir, r, _) = setup_edited("xmlcomment", &|t| {
        t.replace("name = \"Warehouse\"", "name = \"Dock--Yard\"")
            .replace("model = \"CP-8841\"", "model = \"CP--8841\"")
    });
    let xml = text(r.resolve("SEP30E4DB000007.cnf.xml", &r.client(CISCO), false));
    let comment = xml
        .split("<!--")
        .nth(1)
        .and_then(|c| c.split("-->").next())
        .unwrap_or_default();
    assert!(!comment.contains("--"), "{comment}");
    assert!(
        xml.contains("<displayName>Dock--Yard</displayName>"),
        "{xml}"
    );
    let _ = fs::remove_dir_all(dir);
}
