//! Every built-in profile's DHCP answer, byte by byte.

use super::tests::{native, voice};
use super::*;
use crate::dhcp::client::{ClientMessage, ParsedReply};
use crate::dhcp::packet::{DISCOVER, INFORM};

const NOW: u64 = 1_000_000;

/// One class per profile; recovery last, so it wins where it applies.
const CONFIG: &str = r#"
[server]
interfaces = ["eth0", "eth0.100"]

[dhcp]
lease_time = "1h"
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
name = "sfb"
profile = "audiocodes-sfb"
options.vendor_specific = { 3 = "sfb.lab.voip", 10 = 100 }
options.sip_servers = ["sfb.lab.voip"]

[[dhcp.class]]
name = "polycom"
profile = "polycom"

[[dhcp.class]]
name = "iss"
profile = "interaction-sip-station"

[[dhcp.class]]
name = "softphone"
profile = "softphone"

[[dhcp.class]]
name = "yealink"
profile = "yealink"

[[dhcp.class]]
name = "cisco"
profile = "cisco"

[[dhcp.class]]
name = "grandstream"
profile = "grandstream"

[[dhcp.class]]
name = "spectralink"
profile = "generic-sip"
match.mac = "00:90:7a:*"

[[dhcp.class]]
name = "recovery"
profile = "recovery"

[files]
root = "/srv/dialtone"
http = ["0.0.0.0:8088"]
"#;

fn engine(text: &str) -> Engine {
    let c = Config::parse("profiles.toml", text).unwrap();
    Engine::new(Arc::new(c), LeaseTable::new())
}

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn ask(e: &mut Engine, m: &ClientMessage, i: &Ingress) -> (Vec<String>, ParsedReply) {
    let req = Request::parse(&m.encode()).unwrap();
    let out = e.handle(&req, i, NOW);
    let reply = out.reply.as_ref().expect("a reply");
    (
        out.exchange.classes.clone(),
        ParsedReply::parse(&reply.bytes).expect("well-formed reply"),
    )
}

const MINUS_FIVE_HOURS: &[u8] = &[0xff, 0xff, 0xb9, 0xb0];

#[test]
fn audiocodes_on_the_voice_vlan() {
    let mut e = engine(CONFIG);
    let m = ClientMessage::new(DISCOVER, mac("00:90:8f:00:00:01"), 1)
        .vendor_class("450HD")
        .user_class_raw("450HD")
        .requests(&[1, 3, 6, 15, 42]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert_eq!(classes, vec!["audiocodes"]);
    // 160 and 2 are sent unasked; 132 has no value on the voice VLAN.
    assert_eq!(r.codes(), vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 160, 2]);
    assert_eq!(r.get(160), Some(&b"http://10.250.0.1:8088/"[..]));
    assert_eq!(r.get(2), Some(MINUS_FIVE_HOURS));
    assert_eq!(r.get(42), Some(&[10, 250, 0, 1][..]));
    assert_eq!(r.get(6), Some(&[10, 250, 0, 1][..]));
    assert_eq!(r.get(15), Some(&b"lab.voip"[..]));
}

#[test]
fn audiocodes_on_the_native_vlan_is_sent_to_the_voice_vlan() {
    let mut e = engine(CONFIG);
    let m = ClientMessage::new(DISCOVER, mac("00:90:8f:00:00:02"), 1)
        .vendor_class("420HD")
        .requests(&[1, 3]);
    let (classes, r) = ask(&mut e, &m, &native());
    assert_eq!(classes, vec!["audiocodes"]);
    assert_eq!(r.codes(), vec![53, 54, 51, 58, 59, 1, 3, 160, 2, 42, 132]);
    assert_eq!(r.get(132), Some(&b"100"[..]));
    assert_eq!(r.get(160), Some(&b"http://192.168.1.1:8088/"[..]));
}

#[test]
fn recovery_gets_the_model_image_over_tftp() {
    let mut e = engine(CONFIG);
    // A bricked 450HD: model in 77 (RFC 3004 form), 66 and 67 in 55.
    let m = ClientMessage::new(DISCOVER, mac("00:90:8f:00:00:03"), 1)
        .option(77, b"\x05450HD".to_vec())
        .requests(&[1, 3, 66, 67]);
    let (classes, r) = ask(&mut e, &m, &native());
    assert_eq!(classes, vec!["audiocodes", "recovery"]);
    assert_eq!(r.get(66), Some(&b"192.168.1.1"[..]));
    assert_eq!(r.get(67), Some(&b"450HD_3.4.6.img"[..]));
    assert_eq!(r.file, b"450HD_3.4.6.img");
    assert_eq!(r.siaddr, Ipv4Addr::new(192, 168, 1, 1));
    // A model with a documented name, from option 60 only.
    let m = ClientMessage::new(DISCOVER, mac("00:90:8f:00:00:04"), 1)
        .vendor_class("420HD")
        .requests(&[66, 67]);
    let (_, r) = ask(&mut e, &m, &native());
    assert_eq!(r.get(67), Some(&b"420hd.img"[..]));
    // Recovery wins over a boot file the subnet sets.
    let text = CONFIG.replace(
        "options.vlan_id = 100",
        "options.vlan_id = 100\noptions.bootfile = \"other.img\"",
    );
    let mut e = engine(&text);
    let m = ClientMessage::new(DISCOVER, mac("00:90:8f:00:00:05"), 1)
        .user_class_raw("C450HD")
        .requests(&[66, 67]);
    let (_, r) = ask(&mut e, &m, &native());
    assert_eq!(r.get(67), Some(&b"C450HD.img"[..]));
}

#[test]
fn skype_for_business_sub_options_and_sip_servers() {
    let mut e = engine(CONFIG);
    let m = ClientMessage::new(DISCOVER, mac("00:90:8f:00:00:06"), 1)
        .vendor_class("MS-UC-Client")
        .user_class_raw("450HD")
        .requests(&[1, 3, 6, 15]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert_eq!(classes, vec!["audiocodes", "sfb"]);
    assert_eq!(
        r.codes(),
        vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 160, 2, 42, 43, 120]
    );
    let mut v43 = Vec::new();
    for (code, text) in [
        (1u8, &b"MS-UC-Client"[..]),
        (2, b"https"),
        (3, b"sfb.lab.voip"),
        (4, b"443"),
        (5, b"/CertProv/CertProvisioningService.svc"),
        (10, b"100"),
    ] {
        v43.push(code);
        v43.push(text.len() as u8);
        v43.extend_from_slice(text);
    }
    assert_eq!(r.get(43), Some(&v43[..]));
    assert_eq!(r.get(120), Some(&b"\x00\x03sfb\x03lab\x04voip\x00"[..]));
}

#[test]
fn polycom_gets_160_not_66() {
    let mut e = engine(CONFIG);
    let m = ClientMessage::new(DISCOVER, mac("00:04:f2:12:34:56"), 1)
        .vendor_class("Polycom-VVX411")
        .requests(&[1, 3, 6, 15, 66]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert_eq!(classes, vec!["polycom"]);
    assert_eq!(r.codes(), vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 160, 2, 42]);
    assert_eq!(r.get(160), Some(&b"http://10.250.0.1:8088/"[..]));
    // The second Polycom OUI.
    let m = ClientMessage::new(DISCOVER, mac("64:16:7f:00:00:01"), 1).requests(&[1]);
    assert_eq!(ask(&mut e, &m, &voice()).0, vec!["polycom"]);
}

#[test]
fn interaction_sip_station_gets_its_image_unasked() {
    let mut e = engine(CONFIG);
    let m = ClientMessage::new(DISCOVER, mac("00:26:fd:00:00:01"), 1)
        .vendor_class("SIP200")
        .requests(&[1, 3]);
    let (classes, r) = ask(&mut e, &m, &native());
    assert_eq!(classes, vec!["iss"]);
    assert_eq!(
        r.codes(),
        vec![53, 54, 51, 58, 59, 1, 3, 66, 67, 160, 132, 2, 42]
    );
    assert_eq!(r.get(66), Some(&b"192.168.1.1"[..]));
    assert_eq!(r.get(67), Some(&b"sip200.img"[..]));
    assert_eq!(r.get(132), Some(&b"100"[..]));
}

#[test]
fn softphone_gets_160_in_reply_to_inform() {
    let mut e = engine(CONFIG);
    let pc = mac("3c:52:82:00:00:01");
    let m = ClientMessage::new(INFORM, pc, 1)
        .ciaddr(Ipv4Addr::new(10, 250, 0, 77))
        .vendor_class("MSFT 5.0")
        .requests(&[1, 3, 6, 15]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert_eq!(classes, vec!["softphone"]);
    assert_eq!(r.codes(), vec![53, 54, 1, 3, 6, 15, 160]);
    assert_eq!(r.get(160), Some(&b"http://10.250.0.1:8088/"[..]));
    // The same computer's DISCOVER is not the soft phone asking.
    let m = ClientMessage::new(DISCOVER, pc, 2).requests(&[1, 3, 6, 15]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert!(classes.is_empty());
    assert_eq!(r.codes(), vec![53, 54, 51, 58, 59, 1, 3, 6, 15]);
}

#[test]
fn generic_sip_phones_get_the_basics_only() {
    let mut e = engine(CONFIG);
    let m = ClientMessage::new(DISCOVER, mac("00:90:7a:00:00:01"), 1)
        .requests(&[1, 3, 6, 15, 12, 66, 160, 132, 42, 2]);
    let (classes, r) = ask(&mut e, &m, &native());
    assert_eq!(classes, vec!["spectralink"]);
    assert_eq!(r.codes(), vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 2]);
    assert_eq!(r.get(42), Some(&[192, 168, 1, 1][..]));
    assert_eq!(r.get(2), Some(MINUS_FIVE_HOURS));
}

#[test]
fn subnet_values_win_over_profile_defaults_and_class_values_over_both() {
    let text = CONFIG.replace(
        "domain = \"lab.voip\"\n\n[[dhcp.class]]",
        "domain = \"lab.voip\"\noptions.provisioning_url = \"http://provision.lab.voip:8088\"\n\n[[dhcp.class]]",
    );
    let mut e = engine(&text);
    let m = ClientMessage::new(DISCOVER, mac("00:04:f2:00:00:09"), 1).requests(&[160]);
    let (_, r) = ask(&mut e, &m, &voice());
    assert_eq!(r.get(160), Some(&b"http://provision.lab.voip:8088"[..]));
    let text = text.replace(
        "profile = \"polycom\"",
        "profile = \"polycom\"\noptions.provisioning_url = \"http://polycom.lab.voip/\"",
    );
    let mut e = engine(&text);
    let (_, r) = ask(&mut e, &m, &voice());
    assert_eq!(r.get(160), Some(&b"http://polycom.lab.voip/"[..]));
    // Without HTTP served there is no default URL to send.
    let text = CONFIG.replace("http = [\"0.0.0.0:8088\"]", "http = []");
    let mut e = engine(&text);
    let (_, r) = ask(&mut e, &m, &voice());
    assert_eq!(r.get(160), None);
}

#[test]
fn yealink_gets_its_url_in_66_and_160_only_when_configured() {
    let mut e = engine(CONFIG);
    // Option 60 is `yealink` out of the box.
    let m = ClientMessage::new(DISCOVER, mac("80:5e:c0:00:00:01"), 1)
        .vendor_class("yealink")
        .requests(&[1, 3, 6, 15, 42, 66]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert_eq!(classes, vec!["yealink"]);
    assert_eq!(r.codes(), vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 66, 2]);
    assert_eq!(r.get(66), Some(&b"http://10.250.0.1:8088/"[..]));
    assert_eq!(r.get(42), Some(&[10, 250, 0, 1][..]));
    assert_eq!(r.get(2), Some(MINUS_FIVE_HOURS));
    // A Yealink MAC set to another option 60 is still a Yealink; 160 and
    // 43 go out when the site sets them, asked or not.
    let text = CONFIG.replace(
        "domain = \"lab.voip\"\n\n[[dhcp.class]]\nname = \"audiocodes\"",
        "domain = \"lab.voip\"\noptions.provisioning_url = \"http://p.lab.voip/yealink/\"\noptions.vendor_specific = { 1 = \"http://acs.lab.voip/\" }\n\n[[dhcp.class]]\nname = \"audiocodes\"",
    );
    assert_ne!(text, CONFIG);
    let mut e = engine(&text);
    let m = ClientMessage::new(DISCOVER, mac("00:15:65:00:00:02"), 1)
        .vendor_class("SIP-T46S")
        .requests(&[1, 3, 66]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert_eq!(classes, vec!["yealink"]);
    assert_eq!(
        r.codes(),
        vec![53, 54, 51, 58, 59, 1, 3, 66, 43, 160, 2, 42]
    );
    assert_eq!(r.get(160), Some(&b"http://p.lab.voip/yealink/"[..]));
    assert_eq!(r.get(43), Some(&b"\x01\x14http://acs.lab.voip/"[..]));
}

#[test]
fn cisco_gets_option_150_as_binary_addresses_and_66() {
    let mut e = engine(CONFIG);
    // Enterprise firmware ends option 60 with a NUL.
    let m = ClientMessage::new(DISCOVER, mac("30:e4:db:00:00:01"), 1)
        .option(60, b"Cisco Systems, Inc. IP Phone CP-8841\0".to_vec())
        .requests(&[1, 3, 6, 15, 42, 66, 150]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert_eq!(classes, vec!["cisco"]);
    assert_eq!(
        r.codes(),
        vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 66, 150, 2]
    );
    assert_eq!(r.get(150), Some(&[10, 250, 0, 1][..]));
    assert_eq!(r.get(66), Some(&b"10.250.0.1"[..]));
    // A Cisco MAC alone (a router, a switch) is not a phone.
    let m = ClientMessage::new(DISCOVER, mac("30:e4:db:00:00:02"), 1).requests(&[1, 3, 150]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert!(classes.is_empty(), "{classes:?}");
    assert_eq!(r.get(150), None);
    // Two servers, one by name: four bytes each, in order.
    let text = CONFIG.replace(
        "name = \"cisco\"\nprofile = \"cisco\"",
        "name = \"cisco\"\nprofile = \"cisco\"\noptions.tftp_servers = [\"10.250.0.9\", \"self\"]",
    );
    assert_ne!(text, CONFIG);
    let mut e = engine(&text);
    let m = ClientMessage::new(DISCOVER, mac("30:e4:db:00:00:03"), 1)
        .vendor_class("Cisco Systems, Inc. IP Phone CP-7965G")
        .requests(&[150]);
    let (_, r) = ask(&mut e, &m, &voice());
    assert_eq!(r.get(150), Some(&[10, 250, 0, 9, 10, 250, 0, 1][..]));
}

#[test]
fn grandstream_gets_its_url_in_66() {
    let mut e = engine(CONFIG);
    let m = ClientMessage::new(DISCOVER, mac("00:0b:82:00:00:01"), 1)
        .vendor_class("Grandstream GXP2160")
        .requests(&[1, 3, 6, 15, 42, 2, 43, 66]);
    let (classes, r) = ask(&mut e, &m, &voice());
    assert_eq!(classes, vec!["grandstream"]);
    // 43 is asked for but the site sets none: not sent.
    assert_eq!(r.codes(), vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 2, 66]);
    assert_eq!(r.get(66), Some(&b"http://10.250.0.1:8088/"[..]));
    assert_eq!(r.get(2), Some(MINUS_FIVE_HOURS));
    // A newer OUI, another option 60.
    let m = ClientMessage::new(DISCOVER, mac("c0:74:ad:00:00:02"), 1)
        .vendor_class("HT801")
        .requests(&[1, 3]);
    let (classes, _) = ask(&mut e, &m, &voice());
    assert_eq!(classes, vec!["grandstream"]);
}
