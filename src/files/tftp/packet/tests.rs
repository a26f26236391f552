use super::*;

fn limits() -> Limits {
    Limits {
        max_window: 64,
        default_timeout: Duration::from_secs(1),
    }
}

fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn read_request_with_options() {
    let p = parse(b"\x00\x01450HD.img\x00OCTET\x00BLKSIZE\x001468\x00tsize\x000\x00").unwrap();
    assert_eq!(
        p,
        Packet::Read(Request {
            filename: "450HD.img".into(),
            mode: Mode::Octet,
            options: opts(&[("blksize", "1468"), ("tsize", "0")]),
        })
    );
}

#[test]
fn malformed_requests_are_errors_not_panics() {
    assert_eq!(parse(b""), Err(ParseError::Short));
    assert_eq!(parse(b"\x00"), Err(ParseError::Short));
    assert_eq!(parse(b"\x00\x01"), Err(ParseError::Unterminated));
    assert_eq!(parse(b"\x00\x01\x00"), Err(ParseError::EmptyName));
    // A request or an option without its final NUL (atftp's
    // CVE-2021-46671 read past the end of such a packet).
    assert_eq!(parse(b"\x00\x01a\x00octet"), Err(ParseError::Unterminated));
    assert_eq!(
        parse(b"\x00\x01a\x00octet\x00blksize\x001024"),
        Err(ParseError::Unterminated)
    );
    assert_eq!(parse(b"\x00\x01a\x00"), Err(ParseError::Fields));
    assert_eq!(parse(b"\x00\x01\x00octet\x00"), Err(ParseError::EmptyName));
    assert_eq!(
        parse(b"\x00\x01a\x00mail\x00"),
        Err(ParseError::BadMode("mail".into()))
    );
    assert_eq!(
        parse(b"\x00\x01a\x00octet\x00blksize\x00"),
        Err(ParseError::OptionValue("blksize".into()))
    );
    assert_eq!(
        parse(b"\x00\x01\xff\x00octet\x00"),
        Err(ParseError::NotText)
    );
    assert_eq!(parse(b"\x00\x09xx"), Err(ParseError::Opcode(9)));
    assert_eq!(parse(b"\x00\x04\x00"), Err(ParseError::Short));
    // Every prefix of a valid request parses or fails cleanly.
    let full = b"\x00\x01a/b.cfg\x00netascii\x00windowsize\x0016\x00";
    for n in 0..full.len() {
        let _ = parse(&full[..n]);
    }
}

#[test]
fn ack_error_and_data() {
    assert_eq!(parse(b"\x00\x04\xff\xfe"), Ok(Packet::Ack(65534)));
    assert_eq!(
        parse(b"\x00\x05\x00\x08tsize probe\x00"),
        Ok(Packet::Error {
            code: 8,
            message: "tsize probe".into()
        })
    );
    let mut out = Vec::new();
    data(0, b"abc", &mut out);
    assert_eq!(out, b"\x00\x03\x00\x00abc");
    assert_eq!(
        error(1, "File not found"),
        b"\x00\x05\x00\x01File not found\x00"
    );
    assert_eq!(
        oack(&[("blksize", "1468".into()), ("tsize", "42".into())]),
        b"\x00\x06blksize\x001468\x00tsize\x0042\x00"
    );
}

#[test]
fn negotiation_grants_limits_and_ignores_nonsense() {
    let n = negotiate(
        &opts(&[
            ("blksize", "1468"),
            ("tsize", "0"),
            ("timeout", "3"),
            ("windowsize", "16"),
            ("color", "blue"),
        ]),
        67_108_864,
        limits(),
    );
    assert_eq!(n.blksize, 1468);
    assert_eq!(n.window, 16);
    assert_eq!(n.timeout, Duration::from_secs(3));
    assert_eq!(
        n.oack,
        vec![
            ("blksize", "1468".to_string()),
            ("tsize", "67108864".to_string()),
            ("timeout", "3".to_string()),
            ("windowsize", "16".to_string()),
        ]
    );
    // Too big is lowered, too small or not a number is left out.
    let n = negotiate(
        &opts(&[
            ("blksize", "70000"),
            ("windowsize", "500"),
            ("timeout", "0"),
        ]),
        1,
        limits(),
    );
    assert_eq!((n.blksize, n.window), (MAX_BLKSIZE, 64));
    assert_eq!(n.timeout, Duration::from_secs(1));
    assert_eq!(n.oack.len(), 2);
    let n = negotiate(&opts(&[("blksize", "7"), ("tsize", "x")]), 1, limits());
    assert_eq!(n.blksize, 512);
    assert!(n.oack.is_empty());
}

#[test]
fn netascii_conversion() {
    assert_eq!(to_netascii(b"a\nb\rc\r\n"), b"a\r\nb\r\0c\r\0\r\n");
}

#[test]
fn client_requests_and_option_acks_round_trip() {
    let req = rrq("Image.IMG", &[("blksize", "1468"), ("windowsize", "8")]);
    let Ok(Packet::Read(r)) = parse(&req) else {
        panic!("not a read request: {req:?}");
    };
    assert_eq!(r.filename, "Image.IMG");
    assert_eq!(r.mode, Mode::Octet);
    assert_eq!(
        r.options,
        [
            ("blksize".to_string(), "1468".to_string()),
            ("windowsize".to_string(), "8".to_string())
        ]
    );
    let o = oack(&[("blksize", "1468".into()), ("tsize", "99".into())]);
    assert_eq!(oack_value(&o, "BLKSIZE"), Some("1468"));
    assert_eq!(oack_value(&o, "tsize"), Some("99"));
    assert_eq!(oack_value(&o, "windowsize"), None);
    assert_eq!(oack_value(b"\x00", "blksize"), None);
}

#[test]
fn an_option_sent_twice_counts_once() {
    let opts: Vec<(String, String)> = [
        ("blksize", "1024"),
        ("blksize", "512"),
        ("windowsize", "8"),
        ("windowsize", "4"),
        ("tsize", "0"),
        ("tsize", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let limits = Limits {
        max_window: 64,
        default_timeout: std::time::Duration::from_secs(1),
    };
    let n = negotiate(&opts, 1000, limits);
    assert_eq!((n.blksize, n.window), (1024, 8));
    assert_eq!(
        n.oack,
        vec![
            ("blksize", "1024".to_string()),
            ("windowsize", "8".to_string()),
            ("tsize", "1000".to_string())
        ]
    );
}
