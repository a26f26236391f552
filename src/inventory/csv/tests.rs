use super::*;
use crate::inventory::file;

/// CIC's sample list (001 L1611-1619), as Notepad shows it.
pub const SAMPLE: &str = "Name,Type,Manufacturer,Model,Proxy Group,Extension,Identification Address,Label,Address\r
PolycomLobby2,Stand-alone Phone,Polycom,IP330,,7102,,Lobby,\r
PolycomAgent2,workstation,Polycom,IP601,,7202,,Line1,0004F204F6A9\r
AgentSSP-PC2,workstation,ININ,Soft Phone,Remote Agent SSP - TLS,7302,7302,,\r
AgentISS1,Stand-alone Phone,ININ,Interaction SIP Station,Remote Agent ISS - TCP,7402,7402,,0026DF00020\r
Agent420HD,Stand-alone Phone,AudioCodes,420HD,,7502,7502,,00908F123456\r
AgentISS2,Stand-alone Phone,ININ,Interaction SIP Station II,Remote Agent ISS - TCP,7602,7602,Line2,00908F5635BB\r
";

#[test]
fn the_sample_list_keeps_good_rows_and_says_why_bad_ones_are_refused() {
    let p = parse(SAMPLE).unwrap();
    let names: Vec<_> = p.rows.iter().map(|r| (r.line, r.name.as_str())).collect();
    assert_eq!(
        names,
        [
            (2, "PolycomLobby2"),
            (3, "PolycomAgent2"),
            (4, "AgentSSP-PC2"),
            (6, "Agent420HD")
        ]
    );
    let polycom = &p.rows[1];
    assert_eq!(polycom.family, &crate::families::polycom::FAMILY);
    assert_eq!(polycom.mac, "00:04:f2:04:f6:a9".parse().ok());
    assert_eq!(polycom.label.as_deref(), Some("Line1"));
    assert_eq!(p.rows[2].family, &crate::families::softphone::FAMILY);
    assert_eq!(
        p.rows[2].proxy_group.as_deref(),
        Some("Remote Agent SSP - TLS")
    );
    assert_eq!(p.rows[3].family, &crate::families::audiocodes::FAMILY);
    assert!(p.rows[0].remark.as_deref().unwrap().contains("no MAC yet"));

    assert_eq!(p.refused.len(), 2);
    assert_eq!(p.refused[0].line, 5);
    assert_eq!(p.refused[0].name, "AgentISS1");
    assert_eq!(
        p.refused[0].reason,
        "short MAC `0026DF00020`: 11 hex digits, expected 12"
    );
    assert_eq!(p.refused[1].line, 7);
    assert_eq!(
        p.refused[1].reason,
        "wrong OUI for ININ: 00:90:8f:56:35:bb starts with 00:90:8f (the AudioCodes OUI); ININ MACs start with 00:26:fd"
    );
    let report = report(&p);
    assert!(
        report.contains("line 5 (AgentISS1): refused: short MAC"),
        "{report}"
    );
    assert!(
        report.contains("line 2 (PolycomLobby2): kept, no MAC yet"),
        "{report}"
    );
}

#[test]
fn every_kind_of_bad_row_is_named() {
    let text = "name,TYPE,manufacturer,model,address,extension\n\
        ,Workstation,Polycom,IP601,0004f2000001,1\n\
        A,Desk,Polycom,IP601,0004f2000002,2\n\
        B,Workstation,Snom,D735,0004f2000003,3\n\
        C,Workstation,polycom,,0004f2000004,4\n\
        D,Workstation,POLYCOM,IP601,0004f2zz0005,5\n\
        E,Workstation,Polycom,IP601,0004f20000060,6\n\
        F,Workstation,Polycom,IP601,00:04:F2:00:00:01,7\n\
        G,Workstation,Polycom,IP601\n\
        \"H, quoted\",\"Stand-alone Phone\",Genesys,\"4\"\"20HD\",00-90-8f-00-00-08,8\n\
        I,Workstation,Polycom,VVX,64167f000009,9\n\
        J,Workstation,Polycom,VVX,64:16:7F:00:00:09,10\n";
    let p = parse(text).unwrap();
    let reasons: Vec<_> = p
        .refused
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (2, "Name is empty; every phone needs one"),
            (3, "Type `Desk` is not Workstation or Stand-alone Phone"),
            (
                4,
                "unknown manufacturer `Snom` (expected AudioCodes, Cisco, Genesys, Grandstream, ININ, Polycom, Yealink)"
            ),
            (5, "Model is empty; every phone needs one"),
            (
                6,
                "Address `0004f2zz0005` is not a MAC address (expected 12 hex digits)"
            ),
            (7, "long MAC `0004f20000060`: 13 hex digits, expected 12"),
            (9, "4 fields where the header has 6"),
            (12, "MAC 64:16:7f:00:00:09 is already the phone on line 11"),
        ]
    );
    // Line 2 was refused, so its MAC is free for F.
    let kept: Vec<_> = p.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(kept, ["F", "H, quoted", "I"]);
    assert_eq!(p.rows[1].model, "4\"20HD");
    assert_eq!(
        p.rows[1].manufacturer,
        &crate::families::audiocodes::GENESYS
    );
}

#[test]
fn broken_files_fail_as_a_whole() {
    assert!(matches!(parse(""), Err(CsvError::Empty)));
    assert!(matches!(
        parse("Name,Model\nx,y\n"),
        Err(CsvError::MissingColumn("Type"))
    ));
    let e = parse("Name,Type,Manufacturer,Model\n\"open,x,y,z\n").unwrap_err();
    assert_eq!(e.to_string(), "line 2: a quoted field is not closed");
}

#[test]
fn imports_merge_into_the_phones_file() {
    let p = parse(SAMPLE).unwrap();
    let mut n = 0;
    let mut pw = || {
        n += 1;
        Ok(format!("pw{n}"))
    };
    let first = file::merge(None, &p.rows, &mut pw).unwrap();
    assert_eq!((first.added, first.updated, first.kept), (4, 0, 0));
    assert!(first.text.contains("name = \"Agent420HD\"\nmac = \"00:90:8f:12:34:56\"\nmanufacturer = \"AudioCodes\"\nmodel = \"420HD\"\nextension = \"7502\"\nsip_password = \"pw4\"\n"), "{}", first.text);
    // Edited by hand, then the list imported again with a new label.
    let edited = first.text.replace(
        "sip_password = \"pw4\"",
        "sip_password = \"mine\"\nregister = \"cic\"",
    );
    let again = SAMPLE.replace("420HD,,7502,7502,,", "420HD,,7502,7502,Desk,");
    let p2 = parse(&again).unwrap();
    let second = file::merge(Some(&edited), &p2.rows, &mut pw).unwrap();
    assert_eq!((second.added, second.updated, second.kept), (0, 4, 0));
    assert!(
        second
            .text
            .contains("sip_password = \"mine\"\nlabel = \"Desk\"\nregister = \"cic\""),
        "{}",
        second.text
    );
    // The result is a valid phones file.
    let mut inv = crate::inventory::Inventory::default();
    crate::config::parse_phones_file("phones.toml", &second.text, None, &mut inv)
        .map(|_| ())
        .or_else(|e| {
            if e.key.ends_with("register") {
                Ok(())
            } else {
                Err(e)
            }
        })
        .unwrap();
    assert!(file::merge(Some("phone = 3"), &p.rows, &mut pw).is_err());
    // Two rows naming one phone without a MAC update it once.
    let twice = "Name,Type,Manufacturer,Model\nPolycomLobby2,Workstation,Polycom,IP330\nPolycomLobby2,Workstation,Polycom,IP331\n";
    let third = file::merge(Some(&second.text), &parse(twice).unwrap().rows, &mut pw).unwrap();
    assert_eq!((third.added, third.updated, third.kept), (0, 1, 3));
    assert!(third.text.contains("model = \"IP331\""), "{}", third.text);
    // A failing password source fails the merge.
    let mut broken = || Err(std::io::Error::other("no randomness"));
    assert!(matches!(
        file::merge(None, &p.rows, &mut broken),
        Err(file::MergeError::Password(_))
    ));
}

#[test]
fn passwords_are_random_letters_and_digits() {
    let a = file::new_password().unwrap();
    let b = file::new_password().unwrap();
    assert_eq!(a.len(), 16);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, b);
}

#[test]
fn yealink_cisco_and_grandstream_rows_are_imported_with_their_families() {
    let text = "Name,Type,Manufacturer,Model,Extension,Address\n\
        Desk,Stand-alone Phone,Yealink,T46S,7505,80:5E:C0:00:00:05\n\
        Warehouse,Stand-alone Phone,cisco,CP-8841,7507,30e4.db00.0007\n\
        Reception,Stand-alone Phone,GRANDSTREAM,GXP2160,7506,000B82000006\n\
        Wrong,Stand-alone Phone,Yealink,T54W,7508,000b82000008\n";
    let p = parse(text).unwrap();
    let rows: Vec<_> = p
        .rows
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.family.name,
                r.manufacturer.name,
                r.mac.map(|m| m.to_string()),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "Desk",
                "yealink",
                "Yealink",
                Some("80:5e:c0:00:00:05".to_string())
            ),
            (
                "Warehouse",
                "cisco",
                "Cisco",
                Some("30:e4:db:00:00:07".to_string())
            ),
            (
                "Reception",
                "grandstream",
                "Grandstream",
                Some("00:0b:82:00:00:06".to_string())
            ),
        ]
    );
    assert_eq!(p.refused.len(), 1);
    assert_eq!(
        p.refused[0].reason,
        "wrong OUI for Yealink: 00:0b:82:00:00:08 starts with 00:0b:82 (the Grandstream OUI); Yealink MACs start with 00:15:65, 80:5e:c0, 80:5e:0c (or 9 more)"
    );
    // Merged into a phones file, they check as phones of their families.
    let merged = file::merge(None, &p.rows, || Ok("pw".to_string())).expect("merged");
    let mut inv = crate::config::phone::Inventory::default();
    let checked = crate::config::parse_phones_file("phones.toml", &merged.text, None, &mut inv);
    assert!(checked.is_ok(), "{checked:?}\n{}", merged.text);
    let families: Vec<&str> = inv.phones.iter().map(|p| p.family.name).collect();
    assert_eq!(families, ["yealink", "cisco", "grandstream"]);
}
