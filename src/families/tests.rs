use super::*;

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

#[test]
fn makers_and_their_ouis() {
    assert_eq!(maker("audiocodes"), Some(&audiocodes::AUDIOCODES));
    assert_eq!(maker(" ININ "), Some(&sip_station::ININ));
    assert_eq!(maker("Acme"), None);
    assert!(polycom::POLYCOM.owns(mac("64:16:7f:00:00:01")));
    assert!(audiocodes::GENESYS.owns(mac("00908f123456")));
    assert!(!sip_station::ININ.owns(mac("00908f5635bb")));
    assert_eq!(maker_of(mac("0026fd0095fd")), Some(&sip_station::ININ));
    assert_eq!(polycom::POLYCOM.ouis_text(), "00:04:f2 or 64:16:7f");
    assert_eq!(
        yealink::YEALINK.ouis_text(),
        "00:15:65, 80:5e:c0, 80:5e:0c (or 9 more)"
    );
    assert_eq!(
        of_model(&sip_station::ININ, "soft phone"),
        &softphone::FAMILY
    );
    assert_eq!(
        of_model(&sip_station::ININ, " Soft Phone "),
        &softphone::FAMILY
    );
    assert_eq!(
        of_model(&sip_station::ININ, "Interaction SIP Station II"),
        &sip_station::FAMILY
    );
    assert_eq!(of_model(&audiocodes::GENESYS, "450HD"), &audiocodes::FAMILY);
    assert_eq!(
        of_mac(mac("00:04:f2:00:00:01"), None),
        Some(&polycom::FAMILY)
    );
    assert_eq!(of_mac(mac("00:90:7a:00:00:01"), None), None);
    // Cisco's list is not complete: an unlisted MAC may be a Cisco phone,
    // another maker's may not; Polycom's list is complete.
    assert!(cisco::CISCO.may_own(mac("00:22:90:00:00:01")));
    assert!(!cisco::CISCO.may_own(mac("00:04:f2:00:00:01")));
    assert!(!polycom::POLYCOM.may_own(mac("00:22:90:00:00:01")));
    assert!(yealink::YEALINK.may_own(mac("80:5e:c0:00:00:01")));
}

#[test]
fn every_name_is_unique_and_every_profile_has_its_family() {
    let mut names: Vec<&str> = ALL.iter().map(|f| f.name).collect();
    names.extend(
        profiles()
            .map(|(_, p)| p.name)
            .filter(|p| named(p).is_none()),
    );
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "a family or profile name is used twice");
    assert_eq!(of_profile("recovery"), Some(&audiocodes::FAMILY));
    assert_eq!(of_profile("AudioCodes-SfB"), Some(&audiocodes::FAMILY));
    assert_eq!(of_profile("polycom"), Some(&polycom::FAMILY));
    assert_eq!(of_profile("nope"), None);
    assert_eq!(by_computer(), &softphone::FAMILY);
    assert_eq!(generic().name, "generic-sip");
}

#[test]
fn generated_names_put_the_mac_in_its_case() {
    let m = mac("00:90:8f:0a:bc:de");
    let ac = &audiocodes::FAMILY.generated[0];
    assert_eq!(ac.file_name(m), "00908F0ABCDE.cfg");
    assert!(ac.is("", ".CFG"));
    assert!(!ac.is("", "-registration.cfg"));
    let reg = polycom::FAMILY.generated_file("", "-Registration.cfg");
    assert_eq!(
        reg.map(|g| g.file_name(m)).as_deref(),
        Some("00908f0abcde-registration.cfg")
    );
    assert_eq!(
        audiocodes::FAMILY
            .generated_file("x", ".cfg")
            .map(|g| g.name),
        None
    );
}

#[test]
fn families_are_told_by_user_agent() {
    assert_eq!(
        of_agent("AUDC-IPPhone-450HD_UC_3.4.6.700/1.0"),
        Some(&audiocodes::FAMILY)
    );
    assert_eq!(
        of_agent("FileTransport PolycomVVX-VVX_411-UA/6.4.3.5018 (SN:0004f2000300)"),
        Some(&polycom::FAMILY)
    );
    assert_eq!(of_agent("curl/8.0"), None);
}

#[test]
fn every_family_has_lab_phones_with_its_makers_oui() {
    for f in ALL {
        assert!(!f.lab.is_empty(), "{} has no lab phone", f.name);
        for p in f.lab {
            assert!(profile(p.profile).is_some(), "{}", p.label);
            assert_eq!(of_profile(p.profile), Some(*f), "{}", p.label);
            let m = Mac(p.mac);
            if !f.makers.is_empty() && !f.by_computer {
                assert!(f.makers.iter().any(|k| k.owns(m)), "{}", p.label);
            } else {
                assert_eq!(maker_of(m), None, "{}", p.label);
            }
        }
    }
}

#[test]
fn registrations_are_read_from_each_familys_files() {
    let fetched = |name: &str, body: &str| Fetched {
        files: vec![(name.into(), body.as_bytes().to_vec())],
        domain: Some("lab.voip".into()),
    };
    let ac = fetched(
        "00908F000100.cfg",
        "voip/line/0/enabled=1\nvoip/line/0/id=7501\nvoip/line/0/auth_name=7501\n\
         voip/line/0/auth_password=pw\nvoip/signalling/sip/proxy_address=lab.voip\n",
    );
    assert_eq!(
        audiocodes::registration(&ac),
        Ok(Registration {
            line: Some("7501".into()),
            user: Some("7501".into()),
            password: Some("pw".into()),
            host: "lab.voip".into(),
            port: 5060,
        })
    );
    let none = fetched("x.cfg", "voip/line/0/enabled=0\n");
    assert_eq!(
        audiocodes::registration(&none),
        Err("its configuration names no proxy".into())
    );
    let poly = fetched(
        "0004f2000300-registration.cfg",
        r#"<reg reg.1.address="7503" reg.1.auth.userId="7503" reg.1.auth.password="a&amp;b" reg.1.server.1.address="lab.voip" reg.1.server.1.port="0"/>"#,
    );
    let r = polycom::registration(&poly);
    assert_eq!(r.as_ref().map(|r| r.port), Ok(0));
    assert_eq!(r.as_ref().map(|r| r.password.as_deref()), Ok(Some("a&b")));
    assert_eq!(r.map(|r| r.line), Ok(Some("7503".into())));
    let vars = Vars {
        mac: "0004f2000300".into(),
        part: "3111-48450-001".into(),
        ..Vars::default()
    };
    assert_eq!(
        polycom::listed(
            r#"<APPLICATION APP_FILE_PATH="[PHONE_PART_NUMBER].sip.ld" CONFIG_FILES="[MACADDRESS]-registration.cfg, site.cfg"/>"#,
            &vars
        ),
        [
            "3111-48450-001.sip.ld",
            "0004f2000300-registration.cfg",
            "site.cfg"
        ]
    );
    assert_eq!(
        generic::registration(&Fetched::default()),
        Err("no option 15".into())
    );
    assert_eq!(
        sip_station::registration(&fetched("0026FD000400.cfg", "sip_server=pbx.lab\n"))
            .map(|r| r.host),
        Ok("pbx.lab".into())
    );
    assert_eq!(
        vars.fill("{MAC}-{mac}-{part}"),
        "0004F2000300-0004f2000300-3111-48450-001"
    );
}

#[test]
fn settings_and_attributes_are_read() {
    let xml = r#"<APPLICATION APP_FILE_PATH="sip.ld" CONFIG_FILES="a.cfg, b.cfg"/>"#;
    assert_eq!(attribute(xml, "APP_FILE_PATH"), Some("sip.ld"));
    assert_eq!(attribute(xml, "CONFIG_FILES"), Some("a.cfg, b.cfg"));
    assert_eq!(attribute(xml, "MISC_FILES"), None);
    let cfg = "# comment\nvoip/line/0/id=7501\nvoip/signalling/sip/proxy_address = lab.voip\n";
    assert_eq!(setting(cfg, "voip/line/0/id"), Some("7501"));
    assert_eq!(
        setting(cfg, "voip/signalling/sip/proxy_address"),
        Some("lab.voip")
    );
    assert_eq!(setting(cfg, "voip/line/0"), None);
}

#[test]
fn xml_text_is_unescaped_once() {
    assert_eq!(
        unescape("a&amp;lt;b &lt;&#x2f;&#47;&quot;&apos; & x&;"),
        "a&lt;b <//\"' & x&;"
    );
    assert_eq!(
        element("<n>1</n><name>E&#x2f;D</name>", "name").as_deref(),
        Some("E/D")
    );
}
