use super::*;
use crate::dhcp::client::{ClientMessage, ParsedReply};

fn mac() -> Mac {
    "00:90:8f:12:34:56".parse().unwrap()
}

#[test]
fn parses_a_discover() {
    let b = ClientMessage::new(DISCOVER, mac(), 0x1234)
        .requests(&[1, 3, 66, 67])
        .vendor_class("SIP100")
        .user_class_raw("450HD")
        .option(opt::MAX_MESSAGE_SIZE, 1500u16.to_be_bytes().to_vec())
        .encode();
    let r = Request::parse(&b).unwrap();
    assert_eq!(r.msg_type, DISCOVER);
    assert_eq!(r.xid, 0x1234);
    assert_eq!(r.mac, mac());
    assert_eq!(r.param_list, vec![1, 3, 66, 67]);
    assert_eq!(r.vendor_class.as_deref(), Some("SIP100"));
    assert_eq!(r.user_class(), Some("450HD"));
    assert_eq!(r.max_reply(), 1500 - 28);
}

#[test]
fn rejects_malformed() {
    assert_eq!(
        Request::parse(&[0u8; 100]).unwrap_err(),
        ParseError::TooShort(100)
    );
    let mut b = ClientMessage::new(DISCOVER, mac(), 1).encode();
    b[2] = 200; // hlen
    assert!(matches!(
        Request::parse(&b),
        Err(ParseError::NotEthernet { .. })
    ));
    let mut b = ClientMessage::new(DISCOVER, mac(), 1).encode();
    b[0] = BOOTREPLY;
    assert_eq!(Request::parse(&b).unwrap_err(), ParseError::NotRequest(2));
    // No cookie: a plain BOOTP request, its vendor area not read as options.
    let mut b = ClientMessage::new(DISCOVER, mac(), 1).encode();
    b[236] = 0;
    let r = Request::parse(&b).unwrap();
    assert_eq!(r.msg_type, BOOTP);
    assert!(r.options.is_empty());
    let b = ClientMessage::new(OFFER, mac(), 1).encode();
    assert_eq!(
        Request::parse(&b).unwrap_err(),
        ParseError::BadMessageType(OFFER)
    );
    // An option whose length runs off the end: the packet is unreadable.
    let mut b = ClientMessage::new(DISCOVER, mac(), 1).encode();
    b.truncate(243);
    b.extend_from_slice(&[55, 200, 1]);
    assert_eq!(
        Request::parse(&b).unwrap_err(),
        ParseError::OptionPastEnd {
            code: 55,
            area: "packet"
        }
    );
    // An option code as the last byte, its length missing: the same.
    let mut b = ClientMessage::new(DISCOVER, mac(), 1).encode();
    b.truncate(243);
    b.push(12);
    assert!(matches!(
        Request::parse(&b),
        Err(ParseError::OptionPastEnd { code: 12, .. })
    ));
}

#[test]
fn a_packet_without_end_is_read_to_its_last_byte() {
    let mut b = ClientMessage::new(DISCOVER, mac(), 1)
        .requests(&[1, 3])
        .encode();
    b.truncate(240 + 3 + 4);
    assert_ne!(b.last(), Some(&opt::END));
    let r = Request::parse(&b).unwrap();
    assert_eq!(r.msg_type, DISCOVER);
    assert_eq!(r.param_list, vec![1, 3]);
}

#[test]
fn option_52_over_garbage_makes_the_packet_unreadable() {
    let mut b = ClientMessage::new(DISCOVER, mac(), 1)
        .option(opt::OVERLOAD, vec![3])
        .encode();
    // A boot file name where options are promised: 'p' (112) of length
    // 'x' (120) runs past the sname field.
    b[44..56].copy_from_slice(b"pxelinux.0\0\0");
    assert!(matches!(
        Request::parse(&b),
        Err(ParseError::OptionPastEnd {
            area: "sname field",
            ..
        })
    ));
    // Options that do fit in the file field are read.
    let mut b = ClientMessage::new(DISCOVER, mac(), 1)
        .option(opt::OVERLOAD, vec![1])
        .encode();
    b[108..114].copy_from_slice(&[55, 2, 1, 3, 255, 0]);
    assert_eq!(Request::parse(&b).unwrap().param_list, vec![1, 3]);
}

#[test]
fn garbage_never_panics() {
    // A deterministic pseudo-random stream of packets with a valid header
    // and random option bytes.
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for len in 0..1200usize {
        let mut b = ClientMessage::new(DISCOVER, mac(), 1).encode();
        b.truncate(240);
        for _ in 0..(len % 400) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b.push(seed as u8);
        }
        let _ = Request::parse(&b);
        let _ = Request::parse(&b[..b.len().min(len)]);
    }
}

#[test]
fn concatenates_split_options() {
    let long = vec![b'x'; 300];
    let b = ClientMessage::new(DISCOVER, mac(), 1)
        .option(224, long.clone())
        .encode();
    let r = Request::parse(&b).unwrap();
    assert_eq!(r.option(224), Some(long.as_slice()));
}

fn header() -> ReplyHeader {
    ReplyHeader {
        xid: 7,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::new(10, 0, 0, 5),
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: [0; 16],
        file: None,
    }
}

#[test]
fn reply_order_and_minimum_size() {
    let mandatory = vec![
        (53u8, vec![2u8]),
        (54, vec![10, 0, 0, 1]),
        (51, vec![0, 0, 14, 16]),
    ];
    let optional = vec![(66u8, b"10.0.0.1".to_vec()), (3, vec![10, 0, 0, 1])];
    let e = encode_reply(&header(), &mandatory, &optional, &[], DEFAULT_MAX_MESSAGE);
    assert_eq!(e.bytes.len(), MIN_REPLY);
    assert_eq!(&e.bytes[240..243], &[53, 1, 2]);
    let p = ParsedReply::parse(&e.bytes).unwrap();
    assert_eq!(p.codes(), vec![53, 54, 51, 66, 3]);
    assert_eq!(p.yiaddr, Ipv4Addr::new(10, 0, 0, 5));
    assert!(e.dropped.is_empty());
}

#[test]
fn long_option_is_split_rfc3396() {
    let mandatory = vec![(53u8, vec![5u8])];
    let long: Vec<u8> = (0..280u32).map(|i| i as u8).collect();
    let optional = vec![(43u8, long.clone())];
    let e = encode_reply(&header(), &mandatory, &optional, &[], 1500);
    // 43 appears twice on the wire, 255 then 25 bytes.
    assert_eq!(&e.bytes[243..245], &[43, 255]);
    assert_eq!(&e.bytes[243 + 257..243 + 259], &[43, 25]);
    let p = ParsedReply::parse(&e.bytes).unwrap();
    assert_eq!(p.get(43), Some(long.as_slice()));
}

#[test]
fn overload_then_drop_when_too_big() {
    let mandatory = vec![(53u8, vec![5u8]), (54, vec![10, 0, 0, 1])];
    // 548-byte limit: main area has 307 bytes. Ask for 5 options of 100 bytes.
    let optional: Vec<(u8, Vec<u8>)> = (0..5).map(|i| (200 + i, vec![i; 98])).collect();
    let e = encode_reply(&header(), &mandatory, &optional, &[], DEFAULT_MAX_MESSAGE);
    assert!(e.bytes.len() <= DEFAULT_MAX_MESSAGE);
    assert_eq!(e.overload, 1, "file field used");
    let p = ParsedReply::parse(&e.bytes).unwrap();
    assert_eq!(p.get(52), Some(&[1u8][..]));
    // 2 fit in main (200 bytes), 1 in file (100 of 127), sname too small: 2 dropped.
    assert_eq!(e.dropped, vec![203, 204]);
    for i in 0..3u8 {
        assert_eq!(p.get(200 + i), Some(vec![i; 98].as_slice()));
    }
    // With a boot file the file field is not available.
    let mut h = header();
    h.file = Some(b"sip100.img".to_vec());
    let e = encode_reply(&h, &mandatory, &optional, &[], DEFAULT_MAX_MESSAGE);
    assert_eq!(e.overload, 0);
    assert_eq!(e.dropped, vec![202, 203, 204]);
    let p = ParsedReply::parse(&e.bytes).unwrap();
    assert_eq!(p.file, b"sip100.img");
    // Small options spill into sname.
    let optional: Vec<(u8, Vec<u8>)> = vec![
        (200, vec![1; 200]),
        (201, vec![2; 91]),
        (202, vec![3; 50]),
        (203, vec![4; 100]),
    ];
    let e = encode_reply(&h, &mandatory, &optional, &[], DEFAULT_MAX_MESSAGE);
    assert_eq!(e.overload, 2);
    assert!(e.bytes.len() <= DEFAULT_MAX_MESSAGE);
    let p = ParsedReply::parse(&e.bytes).unwrap();
    assert_eq!(p.get(202), Some(vec![3; 50].as_slice()));
    assert_eq!(p.get(201), Some(vec![2; 91].as_slice()));
    assert_eq!(e.dropped, vec![203]);
}
