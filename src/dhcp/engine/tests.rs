use super::*;
use crate::dhcp::client::{ClientMessage, ParsedReply};
use crate::dhcp::packet::{ACK, DECLINE, DISCOVER, INFORM, NAK, OFFER, RELEASE, REQUEST};

const NOW: u64 = 1_000_000;

fn engine() -> Engine {
    let c = Config::parse("ex", include_str!("../../../config/dialtone.toml")).unwrap();
    Engine::new(Arc::new(c), LeaseTable::new())
}

pub(super) fn native() -> Ingress {
    Ingress {
        interface: "eth0".into(),
        addrs: vec!["192.168.1.1/24".parse().unwrap()],
    }
}

pub(super) fn voice() -> Ingress {
    Ingress {
        interface: "eth0.100".into(),
        addrs: vec!["10.250.0.1/24".parse().unwrap()],
    }
}

fn mac(n: u8) -> Mac {
    Mac([0x00, 0x90, 0x8f, 0xaa, 0xbb, n])
}

fn run(e: &mut Engine, m: &ClientMessage, i: &Ingress) -> (Outcome, Option<ParsedReply>) {
    let req = Request::parse(&m.encode()).unwrap();
    let out = e.handle(&req, i, NOW);
    let parsed = out
        .reply
        .as_ref()
        .map(|r| ParsedReply::parse(&r.bytes).expect("well-formed reply"));
    (out, parsed)
}

/// DISCOVER then REQUEST; returns the ACK.
fn lease(e: &mut Engine, m: Mac, i: &Ingress, prl: &[u8]) -> ParsedReply {
    let (_, offer) = run(e, &ClientMessage::new(DISCOVER, m, 1).requests(prl), i);
    let offer = offer.expect("offer");
    assert_eq!(offer.msg_type(), Some(OFFER));
    let sid = Ipv4Addr::from(<[u8; 4]>::try_from(offer.get(54).unwrap()).unwrap());
    let (out, ack) = run(
        e,
        &ClientMessage::new(REQUEST, m, 2)
            .requested_ip(offer.yiaddr)
            .server_id(sid)
            .requests(prl),
        i,
    );
    assert_eq!(out.persist.len(), 1, "ACK waits on a lease write");
    let ack = ack.expect("ack");
    assert_eq!(ack.msg_type(), Some(ACK));
    assert_eq!(ack.yiaddr, offer.yiaddr);
    ack
}

#[test]
fn voice_vlan_phone_gets_its_options_in_order() {
    let mut e = engine();
    let ack = lease(&mut e, mac(1), &voice(), &[1, 3, 6, 15, 42, 2, 160]);
    assert!(
        Ipv4Net {
            addr: ack.yiaddr,
            prefix: 24
        }
        .contains(Ipv4Addr::new(10, 250, 0, 1))
    );
    assert_eq!(
        ack.codes(),
        vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 42, 2, 160]
    );
    assert_eq!(ack.get(54), Some(&[10, 250, 0, 1][..]));
    assert_eq!(ack.get(51), Some(&3600u32.to_be_bytes()[..]));
    assert_eq!(ack.get(58), Some(&1800u32.to_be_bytes()[..]));
    assert_eq!(ack.get(59), Some(&3150u32.to_be_bytes()[..]));
    assert_eq!(ack.get(6), Some(&[10, 250, 0, 1][..]), "dns = self");
    assert_eq!(ack.get(42), Some(&[10, 250, 0, 1][..]), "ntp = self");
    assert_eq!(ack.get(2), Some(&[0xff, 0xff, 0xb9, 0xb0][..]));
    assert_eq!(ack.get(15), Some(&b"lab.voip"[..]));
    assert_eq!(ack.get(160), Some(&b"http://provision.lab.voip:8088"[..]));
    assert!(ack.len >= 300);
}

#[test]
fn options_follow_the_order_of_55_and_only_what_is_asked() {
    let mut e = engine();
    let ack = lease(&mut e, mac(1), &voice(), &[160, 2, 42]);
    // 1 and 3 always; then 55's order; 6 and 15 not asked for.
    assert_eq!(ack.codes(), vec![53, 54, 51, 58, 59, 1, 3, 160, 2, 42]);
}

#[test]
fn native_vlan_sends_vlan_id_as_text() {
    let mut e = engine();
    let ack = lease(&mut e, mac(1), &native(), &[1, 3, 132]);
    assert_eq!(ack.get(132), Some(&b"100"[..]));
    assert_eq!(ack.get(54), Some(&[192, 168, 1, 1][..]));
}

#[test]
fn recovery_phone_gets_66_67_and_boot_file_field() {
    let mut e = engine();
    let m = ClientMessage::new(DISCOVER, mac(2), 1)
        .user_class_raw("450HD")
        .requests(&[1, 3, 66, 67]);
    let (out, offer) = run(&mut e, &m, &native());
    let offer = offer.unwrap();
    assert_eq!(out.exchange.classes, vec!["audiocodes-recovery"]);
    assert_eq!(offer.get(66), Some(&b"192.168.1.1"[..]));
    assert_eq!(offer.get(67), Some(&b"450HD.img"[..]));
    assert_eq!(offer.file, b"450HD.img");
    assert_eq!(offer.siaddr, Ipv4Addr::new(192, 168, 1, 1));
}

#[test]
fn forced_options_are_sent_unasked() {
    let c = Config::parse(
        "t",
        "[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.20\"]\n[[dhcp.class]]\nname = \"r\"\nmatch.user_class = \"*HD\"\noptions.tftp_server = \"self\"\noptions.bootfile = \"{user_class}.img\"\nforce = [66, 67]\n",
    )
    .unwrap();
    let mut e = Engine::new(Arc::new(c), LeaseTable::new());
    let i = Ingress {
        interface: "v".into(),
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    };
    let (_, offer) = run(
        &mut e,
        &ClientMessage::new(DISCOVER, mac(1), 1)
            .user_class_raw("420HD")
            .requests(&[1]),
        &i,
    );
    let offer = offer.unwrap();
    assert_eq!(offer.codes(), vec![53, 54, 51, 58, 59, 1, 66, 67]);
    assert_eq!(offer.get(67), Some(&b"420HD.img"[..]));
}

#[test]
fn later_classes_override_earlier_ones() {
    let c = Config::parse(
        "t",
        "[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.20\"]\noptions.provisioning_url = \"http://subnet\"\n[[dhcp.class]]\nname = \"a\"\nmatch.vendor_class = \"X*\"\noptions.provisioning_url = \"http://a\"\noptions.bootfile = \"a.img\"\n[[dhcp.class]]\nname = \"b\"\nmatch.vendor_class = \"XY\"\noptions.provisioning_url = \"http://b\"\n",
    )
    .unwrap();
    let mut e = Engine::new(Arc::new(c), LeaseTable::new());
    let i = Ingress {
        interface: "v".into(),
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    };
    let (out, offer) = run(
        &mut e,
        &ClientMessage::new(DISCOVER, mac(1), 1)
            .vendor_class("XY")
            .requests(&[160, 67]),
        &i,
    );
    let offer = offer.unwrap();
    assert_eq!(out.exchange.classes, vec!["a", "b"]);
    assert_eq!(offer.get(160), Some(&b"http://b"[..]));
    assert_eq!(offer.get(67), Some(&b"a.img"[..]));
}

#[test]
fn skype_for_business_vendor_options() {
    let mut e = engine();
    let m = ClientMessage::new(DISCOVER, mac(3), 1)
        .vendor_class("MS-UC-Client")
        .requests(&[43, 120]);
    let (_, offer) = run(&mut e, &m, &voice());
    let offer = offer.unwrap();
    let v = offer.get(43).unwrap();
    assert_eq!(&v[..14], b"\x01\x0cMS-UC-Client");
    assert_eq!(offer.get(120).unwrap()[0], 0, "RFC 3361 encoding 0: names");
}

#[test]
fn reservation_is_offered_and_others_stay_off_it() {
    let mut e = engine();
    let reserved: Mac = "00:90:8f:12:34:56".parse().unwrap();
    let ack = lease(&mut e, reserved, &voice(), &[1, 3, 12]);
    assert_eq!(ack.yiaddr, Ipv4Addr::new(10, 250, 0, 20));
    assert_eq!(ack.get(12), Some(&b"agent420hd"[..]));
    // Another client asking for the reserved address is refused.
    let (out, nak) = run(
        &mut e,
        &ClientMessage::new(REQUEST, mac(9), 3).requested_ip(Ipv4Addr::new(10, 250, 0, 20)),
        &voice(),
    );
    assert_eq!(nak.unwrap().msg_type(), Some(NAK));
    assert_eq!(out.reply.unwrap().dest, Destination::Broadcast);
}

#[test]
fn sticky_address_and_renewal() {
    let mut e = engine();
    let first = lease(&mut e, mac(4), &voice(), &[1]);
    let again = lease(&mut e, mac(4), &voice(), &[1]);
    assert_eq!(first.yiaddr, again.yiaddr);
    // RENEWING: unicast REQUEST with ciaddr.
    let (out, ack) = run(
        &mut e,
        &ClientMessage::new(REQUEST, mac(4), 5).ciaddr(first.yiaddr),
        &voice(),
    );
    assert_eq!(ack.unwrap().msg_type(), Some(ACK));
    assert_eq!(out.persist.len(), 1);
    assert_eq!(out.reply.unwrap().dest, Destination::Unicast(first.yiaddr));
    // After a restart from the stored records, the MAC keeps its address.
    let stored: Vec<Lease> = e.leases.all().cloned().collect();
    let mut e2 = Engine::new(Arc::clone(e.config()), LeaseTable::from_leases(stored));
    let (_, offer) = run(&mut e2, &ClientMessage::new(DISCOVER, mac(4), 1), &voice());
    assert_eq!(offer.unwrap().yiaddr, first.yiaddr);
    let (_, offer) = run(&mut e2, &ClientMessage::new(DISCOVER, mac(5), 1), &voice());
    assert_ne!(offer.unwrap().yiaddr, first.yiaddr);
}

#[test]
fn init_reboot_and_foreign_addresses() {
    let mut e = engine();
    let ack = lease(&mut e, mac(6), &voice(), &[1]);
    let (_, r) = run(
        &mut e,
        &ClientMessage::new(REQUEST, mac(6), 7).requested_ip(ack.yiaddr),
        &voice(),
    );
    assert_eq!(r.unwrap().msg_type(), Some(ACK));
    // An address from another network: NAK, broadcast.
    let (out, r) = run(
        &mut e,
        &ClientMessage::new(REQUEST, mac(6), 8).requested_ip(Ipv4Addr::new(172, 16, 0, 9)),
        &voice(),
    );
    assert_eq!(r.unwrap().msg_type(), Some(NAK));
    assert_eq!(out.reply.unwrap().dest, Destination::Broadcast);
    // Another client's address: NAK.
    let (_, r) = run(
        &mut e,
        &ClientMessage::new(REQUEST, mac(7), 9).requested_ip(ack.yiaddr),
        &voice(),
    );
    assert_eq!(r.unwrap().msg_type(), Some(NAK));
    // Another server chosen: silence, offer dropped.
    let (out, r) = run(
        &mut e,
        &ClientMessage::new(REQUEST, mac(7), 9)
            .requested_ip(ack.yiaddr)
            .server_id(Ipv4Addr::new(10, 250, 0, 2)),
        &voice(),
    );
    assert!(r.is_none());
    assert!(out.persist.is_empty());
}

#[test]
fn decline_quarantines_and_release_frees() {
    let mut e = engine();
    let ack = lease(&mut e, mac(8), &voice(), &[1]);
    let ip = ack.yiaddr;
    let (out, r) = run(
        &mut e,
        &ClientMessage::new(DECLINE, mac(8), 1)
            .requested_ip(ip)
            .server_id(Ipv4Addr::new(10, 250, 0, 1)),
        &voice(),
    );
    assert!(r.is_none());
    assert_eq!(out.persist[0].state, LeaseState::Declined);
    // The same client is now offered another address.
    let (_, offer) = run(&mut e, &ClientMessage::new(DISCOVER, mac(8), 2), &voice());
    assert_ne!(offer.unwrap().yiaddr, ip);
    // RELEASE of a held lease.
    let ack = lease(&mut e, mac(10), &voice(), &[1]);
    let (out, r) = run(
        &mut e,
        &ClientMessage::new(RELEASE, mac(10), 3).ciaddr(ack.yiaddr),
        &voice(),
    );
    assert!(r.is_none());
    assert_eq!(out.persist[0].state, LeaseState::Released);
    // RELEASE from someone else changes nothing.
    let (out, _) = run(
        &mut e,
        &ClientMessage::new(RELEASE, mac(11), 3).ciaddr(ack.yiaddr),
        &voice(),
    );
    assert!(out.persist.is_empty());
}

#[test]
fn a_decline_storm_from_one_client_quarantines_a_bounded_number_of_addresses() {
    let mut e = engine();
    let sid = Ipv4Addr::new(10, 250, 0, 1);
    let mut outcomes = Vec::new();
    for round in 0..10u32 {
        let ack = lease(&mut e, mac(9), &voice(), &[1]);
        let (out, r) = run(
            &mut e,
            &ClientMessage::new(DECLINE, mac(9), 100 + round)
                .requested_ip(ack.yiaddr)
                .server_id(sid),
            &voice(),
        );
        assert!(r.is_none());
        outcomes.push(out.persist[0].state);
    }
    let quarantined = e.leases.all().filter(|l| l.quarantined(NOW)).count();
    assert_eq!(quarantined, DECLINES_PER_CLIENT);
    assert_eq!(
        outcomes
            .iter()
            .filter(|s| **s == LeaseState::Released)
            .count(),
        10 - DECLINES_PER_CLIENT
    );
    // Another client's DECLINE is still honoured.
    let ack = lease(&mut e, mac(13), &voice(), &[1]);
    let (out, _) = run(
        &mut e,
        &ClientMessage::new(DECLINE, mac(13), 1)
            .requested_ip(ack.yiaddr)
            .server_id(sid),
        &voice(),
    );
    assert_eq!(out.persist[0].state, LeaseState::Declined);
}

#[test]
fn inform_gets_options_without_lease() {
    let mut e = engine();
    let ciaddr = Ipv4Addr::new(10, 250, 0, 77);
    let (out, r) = run(
        &mut e,
        &ClientMessage::new(INFORM, mac(12), 1)
            .ciaddr(ciaddr)
            .requests(&[160, 42]),
        &voice(),
    );
    let r = r.unwrap();
    assert_eq!(r.msg_type(), Some(ACK));
    assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.ciaddr, ciaddr);
    assert!(r.get(51).is_none() && r.get(58).is_none() && r.get(59).is_none());
    assert_eq!(r.get(160), Some(&b"http://provision.lab.voip:8088"[..]));
    assert!(out.persist.is_empty());
    assert_eq!(out.reply.unwrap().dest, Destination::Unicast(ciaddr));
}

#[test]
fn relayed_request_uses_giaddr_subnet_and_goes_to_relay() {
    let mut e = engine();
    // Arrives on the native interface but relayed from the voice VLAN.
    let relay = Ipv4Addr::new(10, 250, 0, 1);
    let m = ClientMessage::new(DISCOVER, mac(13), 1)
        .giaddr(relay)
        .broadcast()
        .option(82, vec![1, 3, b'a', b'b', b'c']);
    let (out, r) = run(&mut e, &m, &native());
    let r = r.unwrap();
    assert!(
        Ipv4Net {
            addr: relay,
            prefix: 24
        }
        .contains(r.yiaddr)
    );
    assert_eq!(r.giaddr, relay);
    assert_eq!(r.flags & 0x8000, 0x8000, "broadcast flag echoed");
    assert_eq!(*r.codes().last().unwrap(), 82, "relay info echoed last");
    assert_eq!(out.reply.unwrap().dest, Destination::Relay(relay));
    // Unknown relay network: dropped.
    let m = ClientMessage::new(DISCOVER, mac(13), 1).giaddr(Ipv4Addr::new(172, 16, 9, 1));
    let (out, r) = run(&mut e, &m, &native());
    assert!(r.is_none() && out.exchange.note.is_some());
}

#[test]
fn reply_destination_rules() {
    let mut e = engine();
    let (out, _) = run(&mut e, &ClientMessage::new(DISCOVER, mac(14), 1), &voice());
    assert!(
        matches!(out.reply.unwrap().dest, Destination::Hardware { mac: m, .. } if m == mac(14))
    );
    let (out, _) = run(
        &mut e,
        &ClientMessage::new(DISCOVER, mac(15), 1).broadcast(),
        &voice(),
    );
    assert_eq!(out.reply.unwrap().dest, Destination::Broadcast);
}

#[test]
fn pool_exhaustion_is_reported() {
    let c = Config::parse(
        "t",
        "[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.11\"]\n",
    )
    .unwrap();
    let mut e = Engine::new(Arc::new(c), LeaseTable::new());
    let i = Ingress {
        interface: "v".into(),
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    };
    lease(&mut e, mac(1), &i, &[]);
    lease(&mut e, mac(2), &i, &[]);
    let (out, r) = run(&mut e, &ClientMessage::new(DISCOVER, mac(3), 1), &i);
    assert!(r.is_none());
    assert_eq!(out.exchange.level, Level::Warn);
    assert!(out.exchange.note.unwrap().contains("pool exhausted"));
}

#[test]
fn small_max_message_size_is_respected() {
    let mut text =
        String::from("[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.11\"]\n");
    for code in 224..234 {
        text.push_str(&format!(
            "options.raw.{code} = \"hex:{}\"\n",
            "ab".repeat(60)
        ));
    }
    let c = Config::parse("t", &text).unwrap();
    let mut e = Engine::new(Arc::new(c), LeaseTable::new());
    let i = Ingress {
        interface: "v".into(),
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    };
    let prl: Vec<u8> = (224..234).collect();
    let m = ClientMessage::new(DISCOVER, mac(1), 1)
        .requests(&prl)
        .option(57, 576u16.to_be_bytes().to_vec());
    let (out, r) = run(&mut e, &m, &i);
    let bytes = &out.reply.as_ref().unwrap().bytes;
    assert!(bytes.len() <= 576 - 28, "reply of {} bytes", bytes.len());
    let r = r.unwrap();
    assert!(!out.exchange.dropped.is_empty());
    assert_eq!(out.exchange.level, Level::Warn);
    // What was sent is complete and in 55's order.
    let sent: Vec<u8> = r.codes().into_iter().filter(|c| *c >= 224).collect();
    assert!(sent.windows(2).all(|w| w[0] < w[1]));
    // A large limit gets everything.
    let m = ClientMessage::new(DISCOVER, mac(2), 1)
        .requests(&prl)
        .option(57, 1500u16.to_be_bytes().to_vec());
    let (out, _) = run(&mut e, &m, &i);
    assert!(out.exchange.dropped.is_empty());
}

#[test]
fn two_macs_never_share_an_address() {
    let mut e = engine();
    let mut seen = HashMap::new();
    for n in 0..100u8 {
        let ack = lease(&mut e, Mac([2, 0, 0, 0, 1, n]), &voice(), &[1]);
        assert!(
            seen.insert(ack.yiaddr, n).is_none(),
            "{} given twice",
            ack.yiaddr
        );
    }
}

/// A DHCP message turned into a BOOTP request: option 53 overwritten with pads.
fn bootp_request(m: Mac) -> Request {
    let mut b = ClientMessage::new(DISCOVER, m, 9).encode();
    let at = (240..b.len() - 2)
        .find(|&i| b[i] == 53 && b[i + 1] == 1)
        .expect("option 53");
    b[at..at + 3].fill(0);
    let r = Request::parse(&b).unwrap();
    assert_eq!(r.msg_type, packet::BOOTP);
    r
}

#[test]
fn bootp_is_answered_for_reservations_only() {
    let mut e = engine();
    // The example reserves 10.250.0.20 for 00:90:8f:12:34:56 on the voice VLAN.
    let reserved = Mac([0x00, 0x90, 0x8f, 0x12, 0x34, 0x56]);
    let out = e.handle(&bootp_request(reserved), &voice(), NOW);
    let reply = out.reply.as_ref().expect("BOOTREPLY");
    let p = ParsedReply::parse(&reply.bytes).expect("well-formed reply");
    assert_eq!(p.yiaddr, Ipv4Addr::new(10, 250, 0, 20));
    assert_eq!(p.msg_type(), None, "no DHCP message type in a BOOTP reply");
    assert!(p.get(54).is_none() && p.get(51).is_none());
    assert_eq!(p.get(1), Some(&[255, 255, 255, 0][..]));
    assert_eq!(p.get(3), Some(&[10, 250, 0, 1][..]));
    assert_eq!(
        p.get(12),
        Some(&b"agent420hd"[..]),
        "configured options go out unasked"
    );
    assert!(out.persist.is_empty(), "the reservation is the binding");
    assert_eq!(out.exchange.request, "BOOTP");
    // Anyone else: no reply, a debug note.
    let out = e.handle(&bootp_request(mac(77)), &voice(), NOW);
    assert!(out.reply.is_none());
    assert!(
        out.exchange
            .note
            .as_deref()
            .unwrap_or("")
            .contains("reservations")
    );
}

/// A loader that reads only the BOOTP header: it asks for 1, 3, 6, 12, 17
/// and never for 66 or 67, then fetches `file` from `siaddr`.
fn header_only(config: &str, m: Mac) -> (Vec<u8>, Ipv4Addr, Vec<u8>) {
    let (mut e, i) = engine_on_v(config);
    let req = ClientMessage::new(DISCOVER, m, 1).requests(&[1, 3, 6, 12, 17]);
    let out = e.handle(&Request::parse(&req.encode()).unwrap(), &i, NOW);
    let bytes = out.reply.expect("offer").bytes;
    let offer = ParsedReply::parse(&bytes).expect("well-formed reply");
    assert!(offer.get(66).is_none() && offer.get(67).is_none());
    let sname = bytes[44..108].to_vec();
    (offer.file, offer.siaddr, sname)
}

const BOOT_SUBNET: &str = "[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.20\"]\noptions.bootfile = \"loader.bin\"\n";

#[test]
fn the_boot_file_and_next_server_reach_a_loader_that_asks_for_neither() {
    // Serving TFTP and a boot file goes out: siaddr is this appliance.
    let tftp = "[files]\nroot = \"/srv/dialtone\"\ntftp = true\n";
    let (file, siaddr, sname) = header_only(&format!("{BOOT_SUBNET}{tftp}"), mac(1));
    assert_eq!(file, b"loader.bin");
    assert_eq!(siaddr, Ipv4Addr::new(10, 0, 0, 1));
    assert!(sname.iter().all(|&b| b == 0), "sname stays empty");

    // Option 66 configured as an address: siaddr is that server, though 66
    // itself is not sent.
    let other = format!("{BOOT_SUBNET}options.tftp_server = \"10.0.0.5\"\n{tftp}");
    assert_eq!(header_only(&other, mac(1)).1, Ipv4Addr::new(10, 0, 0, 5));

    // No TFTP here and no 66: nobody to name, 0.0.0.0.
    let (file, siaddr, _) = header_only(BOOT_SUBNET, mac(1));
    assert_eq!(file, b"loader.bin");
    assert_eq!(siaddr, Ipv4Addr::UNSPECIFIED);

    // No boot file: siaddr stays 0 even when TFTP is served.
    let plain = "[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.20\"]\n[files]\nroot = \"/srv/dialtone\"\ntftp = true\n";
    let (file, siaddr, _) = header_only(plain, mac(1));
    assert!(file.is_empty());
    assert_eq!(siaddr, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn next_server_is_taken_from_host_then_class_then_subnet_then_global() {
    let layered = "[dhcp]\nnext_server = \"10.0.0.2\"\n\
        [[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.20\"]\noptions.bootfile = \"loader.bin\"\noptions.tftp_server = \"10.0.0.9\"\nnext_server = \"10.0.0.3\"\n\
        [[dhcp.class]]\nname = \"lab\"\nmatch = [{ mac = \"00908faabb02\" }, { mac = \"00908faabb03\" }]\nnext_server = \"10.0.0.4\"\n\
        [[dhcp.host]]\nmac = \"00:90:8f:aa:bb:03\"\nnext_server = \"self\"\n";
    // subnet beats global and option 66
    assert_eq!(header_only(layered, mac(1)).1, Ipv4Addr::new(10, 0, 0, 3));
    // class beats subnet
    assert_eq!(header_only(layered, mac(2)).1, Ipv4Addr::new(10, 0, 0, 4));
    // host beats class; "self" is this appliance's address
    assert_eq!(header_only(layered, mac(3)).1, Ipv4Addr::new(10, 0, 0, 1));
    // global alone
    let global = "[dhcp]\nnext_server = \"10.0.0.2\"\n[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.20\"]\n";
    assert_eq!(header_only(global, mac(1)).1, Ipv4Addr::new(10, 0, 0, 2));
}

#[test]
fn next_server_must_be_an_address_or_self() {
    let bad = "[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\nnext_server = \"tftp.example\"\n";
    let e = Config::parse("t.toml", bad).unwrap_err().to_string();
    assert!(
        e.contains("t.toml:3:") && e.contains("dhcp.subnet[0].next_server"),
        "{e}"
    );
    assert!(e.contains("not an IPv4 address or \"self\""), "{e}");
}

/// An engine for `config` (test text: a failure to load is the test's
/// failure) and the interface `v` at 10.0.0.1/24.
fn engine_on_v(config: &str) -> (Engine, Ingress) {
    let c = Config::parse("t", config).unwrap();
    let i = Ingress {
        interface: "v".into(),
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    };
    (Engine::new(Arc::new(c), LeaseTable::new()), i)
}

/// A pool of three in 10.0.0.0/24 and one reserved host, with `extra`
/// under `[dhcp]`.
fn small(extra: &str) -> (Engine, Ingress) {
    engine_on_v(&format!(
        "[dhcp]\n{extra}\n[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.12\"]\n[[dhcp.host]]\nmac = \"00:90:8f:aa:bb:f0\"\n"
    ))
}

fn discover_at(e: &mut Engine, m: Mac, i: &Ingress, now: u64) -> Outcome {
    let req = Request::parse(&ClientMessage::new(DISCOVER, m, 9).encode()).unwrap();
    e.handle(&req, i, now)
}

#[test]
fn a_flood_of_offers_cannot_hold_the_pool_against_a_phone() {
    let (mut e, i) = small("");
    // Three made-up MACs hold every address of the pool with offers.
    let mut offered = Vec::new();
    for n in 1..=3 {
        let out = discover_at(&mut e, mac(n), &i, NOW + u64::from(n));
        offered.push(out.exchange.ip.expect("offer"));
    }
    // A phone still gets an offer: the oldest one is taken back.
    let out = discover_at(&mut e, mac(10), &i, NOW + 5);
    assert_eq!(out.exchange.ip, Some(offered[0]));
    // The first client's REQUEST for it is refused.
    let (_, nak) = run(
        &mut e,
        &ClientMessage::new(REQUEST, mac(1), 3)
            .requested_ip(offered[0])
            .server_id(Ipv4Addr::new(10, 0, 0, 1)),
        &i,
    );
    assert_eq!(nak.unwrap().msg_type(), Some(NAK));
    // Leases are never taken back: with all three bound, nothing is offered.
    let (mut e, i) = small("");
    for n in 1..=3u8 {
        let (_, offer) = run(&mut e, &ClientMessage::new(DISCOVER, mac(n), 1), &i);
        let ip = offer.unwrap().yiaddr;
        let (_, ack) = run(
            &mut e,
            &ClientMessage::new(REQUEST, mac(n), 2)
                .requested_ip(ip)
                .server_id(Ipv4Addr::new(10, 0, 0, 1)),
            &i,
        );
        assert_eq!(ack.unwrap().msg_type(), Some(ACK));
    }
    assert!(discover_at(&mut e, mac(10), &i, NOW).reply.is_none());
}

#[test]
fn new_clients_are_admitted_per_second_and_known_ones_always() {
    let (mut e, i) = small("new_clients_per_second = 2\nnew_clients_burst = 0");
    let outs: Vec<Outcome> = (1..=5)
        .map(|n| discover_at(&mut e, mac(n), &i, NOW))
        .collect();
    let served = outs.iter().filter(|o| o.reply.is_some()).count();
    assert_eq!(served, 2);
    // The first drop warns (naming the limit), the rest are quiet.
    let warned: Vec<&Outcome> = outs
        .iter()
        .filter(|o| o.reply.is_none() && o.exchange.level == Level::Warn)
        .collect();
    assert_eq!(warned.len(), 1);
    let note = warned[0].exchange.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("more than 2 new clients at once, then 2 a second, in 10.0.0.0/24"),
        "{note}"
    );
    // Known clients pass in the same second: one with an offer already, and
    // a reserved host.
    assert!(discover_at(&mut e, mac(1), &i, NOW).reply.is_some());
    assert!(discover_at(&mut e, mac(0xf0), &i, NOW).reply.is_some());
    // The next second admits new clients again.
    assert!(discover_at(&mut e, mac(3), &i, NOW + 1).reply.is_some());
    // 0: no limit.
    let (mut e, i) = small("new_clients_per_second = 0");
    assert!((1..=3).all(|n| discover_at(&mut e, mac(n), &i, NOW).reply.is_some()));
}

#[test]
fn a_burst_of_new_clients_is_admitted_at_once_then_the_rate() {
    let (mut e, i) = engine_on_v(
        "[dhcp]\nnew_clients_per_second = 2\nnew_clients_burst = 5\n[[dhcp.subnet]]\ncidr = \"10.0.0.0/24\"\npool = [\"10.0.0.10-10.0.0.99\"]\n",
    );
    let served = |e: &mut Engine, from: u8, to: u8, now: u64| {
        (from..=to)
            .filter(|&n| discover_at(e, mac(n), &i, now).reply.is_some())
            .count()
    };
    assert_eq!(served(&mut e, 1, 8, NOW), 5);
    assert_eq!(served(&mut e, 11, 18, NOW + 1), 2);
    // The default: 2,000 at once.
    let (mut e, i) =
        engine_on_v("[[dhcp.subnet]]\ncidr = \"10.0.0.0/20\"\npool = [\"10.0.1.0-10.0.15.250\"]\n");
    let served = (0..2100u32)
        .filter(|n| {
            let m = Mac([0x02, 0, 0, 0, (n >> 8) as u8, *n as u8]);
            discover_at(&mut e, m, &i, NOW).reply.is_some()
        })
        .count();
    assert_eq!(served, 2000);
}

#[test]
fn an_exhausted_pool_is_a_warning_once_a_minute() {
    let (mut e, i) = small("");
    for n in 1..=3u8 {
        let (_, offer) = run(&mut e, &ClientMessage::new(DISCOVER, mac(n), 1), &i);
        let ip = offer.unwrap().yiaddr;
        run(
            &mut e,
            &ClientMessage::new(REQUEST, mac(n), 2)
                .requested_ip(ip)
                .server_id(Ipv4Addr::new(10, 0, 0, 1)),
            &i,
        );
    }
    let levels: Vec<Level> = (0..10u64)
        .map(|k| {
            discover_at(&mut e, mac(20 + k as u8), &i, NOW + k)
                .exchange
                .level
        })
        .collect();
    assert_eq!(levels.iter().filter(|l| **l == Level::Warn).count(), 1);
    let later = discover_at(&mut e, mac(40), &i, NOW + 61);
    assert_eq!(later.exchange.level, Level::Warn);
    let note = later.exchange.note.unwrap_or_default();
    assert!(note.contains("9 more clients found it exhausted"), "{note}");
}

#[test]
fn a_clock_step_moves_every_lease_so_none_expires_early_or_lives_on() {
    let (mut e, i) = small("");
    let (_, offer) = run(&mut e, &ClientMessage::new(DISCOVER, mac(1), 1), &i);
    let ip = offer.unwrap().yiaddr;
    let (_, ack) = run(
        &mut e,
        &ClientMessage::new(REQUEST, mac(1), 2)
            .requested_ip(ip)
            .server_id(Ipv4Addr::new(10, 0, 0, 1)),
        &i,
    );
    assert_eq!(ack.unwrap().msg_type(), Some(ACK));
    let expires = e.leases.get(ip).unwrap().expires;
    // The clock steps an hour forward: the lease moves with it and is still
    // held; another client is not given its address.
    let moved = e.clock_stepped(3600);
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].expires, expires + 3600);
    assert!(e.leases.get(ip).unwrap().active(NOW + 3600 + 10));
    let other = discover_at(&mut e, mac(2), &i, NOW + 3600 + 10);
    assert_ne!(other.exchange.ip, Some(ip));
    // Two hours back: it ends when it had left to run, not an hour later.
    e.clock_stepped(-7200);
    assert_eq!(e.leases.get(ip).unwrap().expires, expires - 3600);
}

/// Found by the DHCP fuzzer: a client identifier of 400 bytes (option 61
/// repeated, RFC 3396) made every reply, which echoes it, larger than the
/// client's 576 bytes. Over 255 bytes is refused; up to 255, every reply
/// fits, a NAK too (its reason gives way).
#[test]
fn a_long_client_id_fits_every_reply_or_is_refused() {
    let (mut e, i) = small("");
    let id = vec![7u8; 255];
    let m = ClientMessage::new(REQUEST, mac(1), 5)
        .option(61, id.clone())
        .option(57, vec![2, 0x40])
        .requested_ip(Ipv4Addr::new(10, 0, 0, 99));
    let req = Request::parse(&m.encode()).unwrap();
    let r = e.handle(&req, &i, NOW).reply.expect("NAK");
    assert!(r.bytes.len() <= 548, "{}", r.bytes.len());
    let p = ParsedReply::parse(&r.bytes).unwrap();
    assert_eq!(p.msg_type(), Some(NAK));
    assert_eq!(p.get(61), Some(&id[..]));
    let (_, offer) = run(
        &mut e,
        &ClientMessage::new(DISCOVER, mac(2), 6)
            .option(61, id.clone())
            .option(57, vec![2, 0x40])
            .requests(&(1..=254).collect::<Vec<u8>>()),
        &i,
    );
    assert!(offer.unwrap().len <= 548);
    let m = ClientMessage::new(DISCOVER, mac(1), 7).option(61, vec![7u8; 256]);
    assert!(matches!(
        Request::parse(&m.encode()),
        Err(packet::ParseError::ClientIdTooLong(256))
    ));
}
