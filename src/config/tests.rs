use super::*;

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
    assert_eq!(c.dhcp.classes[1].matcher.requests, vec![66, 67]);
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

    let e = err("[[dhcp.class]]\nname = \"x\"\noptions.bootfile = \"{model}.img\"\n");
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
