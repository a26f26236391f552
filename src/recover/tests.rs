use super::*;
use crate::leases::LeaseState;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "dialtone-recover-test-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn images(dir: &Path) -> Images {
    std::fs::write(dir.join("450HD_3.4.6.img"), vec![7u8; 3000]).expect("image");
    std::fs::write(dir.join("420HD.img"), vec![1u8; 10]).expect("image");
    let given: Vec<Image> = ["450HD=", "420hd="]
        .iter()
        .zip(["450HD_3.4.6.img", "420HD.img"])
        .map(|(m, f)| {
            format!("{m}{}", dir.join(f).display())
                .parse()
                .expect("image")
        })
        .collect();
    Images::check(&given).expect("images")
}

fn lease(mac: &str, ip: &str, model: Option<&str>, vc: &str) -> Lease {
    Lease {
        ip: ip.parse().expect("ip"),
        mac: mac.parse().expect("mac"),
        hostname: None,
        vendor_class: Some(vc.into()),
        user_class: model.map(str::to_string),
        interface: "eth1".into(),
        state: LeaseState::Bound,
        expires: 0,
    }
}

#[test]
fn image_arguments() {
    let i: Image = "450HD=/srv/450HD_3.4.6.img".parse().expect("valid");
    assert_eq!(i.model, "450HD");
    assert_eq!(i.path, PathBuf::from("/srv/450HD_3.4.6.img"));
    for (bad, why) in [
        ("450HD", "MODEL=FILE"),
        ("=x.img", "model"),
        ("450 HD=x.img", "model"),
        ("450HD=", "no image file"),
    ] {
        let e = bad.parse::<Image>().expect_err(bad);
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn images_are_checked_and_served_by_name() {
    let d = tmp("images");
    let imgs = images(&d);
    assert_eq!(imgs.for_model("450hd"), Some("450HD_3.4.6.img"));
    assert_eq!(imgs.for_model("440HD"), None);
    let client = Client {
        ip: Ipv4Addr::new(192, 168, 1, 2),
        mac: None,
    };
    // By its name, in any case; nothing else.
    let found = imgs
        .generate(&["450hd_3.4.6.IMG".to_string()], &client)
        .expect("ours")
        .expect("found");
    assert_eq!((found.path.as_str(), found.size), ("450HD_3.4.6.img", 3000));
    assert!(imgs.generate(&["other.img".to_string()], &client).is_none());
    assert!(
        imgs.generate(&["x".to_string(), "450HD_3.4.6.img".to_string()], &client)
            .is_none()
    );
    let err = |given: Vec<String>| {
        let given: Vec<Image> = given.iter().map(|g| g.parse().expect("syntax")).collect();
        Images::check(&given).expect_err("invalid").to_string()
    };
    let p = |f: &str| d.join(f).display().to_string();
    assert!(err(vec![]).contains("at least one image"));
    assert!(err(vec![format!("450HD={}", p("missing.img"))]).contains("missing.img"));
    assert!(err(vec![format!("450HD={}", d.display())]).contains("not a file"));
    assert!(
        err(vec![
            format!("450HD={}", p("420HD.img")),
            format!("450hd={}", p("450HD_3.4.6.img"))
        ])
        .contains("given twice")
    );
    std::fs::create_dir_all(d.join("b")).expect("dir");
    std::fs::write(d.join("b/420HD.img"), b"x").expect("file");
    assert!(
        err(vec![
            format!("420HD={}", p("420HD.img")),
            format!("430HD={}", p("b/420HD.img"))
        ])
        .contains("two images are named")
    );
    std::fs::remove_dir_all(&d).expect("clean");
}

#[test]
fn the_setup_is_a_valid_configuration_with_the_manuals_pool() {
    let d = tmp("config");
    let imgs = images(&d);
    let net: Ipv4Net = DEFAULT_ADDRESS.parse().expect("net");
    let text = config_text("eth1", net, &d, &imgs);
    let c = Config::parse("(recover)", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let s = &c.dhcp.subnets[0];
    assert_eq!(s.net.network(), Ipv4Addr::new(192, 168, 1, 0));
    assert_eq!(
        (s.pools[0].first, s.pools[0].last),
        (Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(192, 168, 1, 6))
    );
    assert_eq!(
        c.dhcp.images.get("450HD").map(String::as_str),
        Some("450HD_3.4.6.img")
    );
    assert_eq!(
        c.dhcp.images.get("420HD").map(String::as_str),
        Some("420HD.img")
    );
    assert_eq!(c.server.interfaces, ["eth1"]);
    assert!(!c.time.serve);
    // An interface that has an address near the top of its network: the
    // pool stops before the broadcast address.
    let high: Ipv4Net = "10.0.0.253/24".parse().expect("net");
    let c = Config::parse("(recover)", &config_text("eth1", high, &d, &imgs)).expect("valid");
    let p = &c.dhcp.subnets[0].pools[0];
    assert_eq!(
        (p.first, p.last),
        (Ipv4Addr::new(10, 0, 0, 254), Ipv4Addr::new(10, 0, 0, 254))
    );
    std::fs::remove_dir_all(&d).expect("clean");
}

#[test]
fn the_board_follows_a_phone_from_lease_to_image_to_its_return() {
    let d = tmp("board");
    let mut b = Board::new(&images(&d));
    let mac = "00:90:8f:12:34:56";
    let lines = [b
        .lease(&lease(mac, "192.168.1.2", Some("450HD"), "AUDC-IPPhone"))
        .expect("news")];
    assert!(
        lines[0].contains("got 192.168.1.2") && lines[0].contains("image 450HD_3.4.6.img"),
        "{lines:?}"
    );
    // The same lease again says nothing new.
    assert!(
        b.lease(&lease(mac, "192.168.1.2", Some("450HD"), "AUDC-IPPhone"))
            .is_none()
    );
    let client = Client {
        ip: "192.168.1.2".parse().expect("ip"),
        mac: mac.parse().ok(),
    };
    let mut t = Transfer::begin("tftp", &client, "450HD_3.4.6.img");
    t.outcome = Outcome::AbortedByClient;
    t.sent = 1_500_000;
    let lines = [b.transfer(&t)];
    assert!(
        lines[0].contains("aborted by client after 1.5 MB"),
        "{lines:?}"
    );
    assert!(b.recovered().is_empty());
    t.outcome = Outcome::Complete;
    t.sent = 3000;
    let lines = [b.transfer(&t)];
    assert!(
        lines[0].contains("sent in full") && lines[0].contains("450HD"),
        "{lines:?}"
    );
    let lines = [b
        .lease(&lease(
            mac,
            "192.168.1.2",
            Some("450HD"),
            "AUDC-IPPhone/3.4.6",
        ))
        .expect("news")];
    assert!(
        lines[0].contains("is back") && lines[0].contains("AUDC-IPPhone/3.4.6"),
        "{lines:?}"
    );
    assert_eq!(b.recovered(), vec![mac.parse::<Mac>().expect("mac")]);
    // A model without an image is told so.
    let lines = [b
        .lease(&lease(
            "00:90:8f:00:00:01",
            "192.168.1.3",
            Some("445HD"),
            "x",
        ))
        .expect("news")];
    assert!(
        lines[0].contains("no image was given for model 445HD"),
        "{lines:?}"
    );
    // Progress of a transfer in flight.
    let live = std::sync::Arc::new(Live::default());
    let mut t = Transfer::begin("tftp", &client, "450HD_3.4.6.img");
    t.file = Some("450HD_3.4.6.img".into());
    let tracked = live.track(&t, 3_000_000);
    tracked.progress.set_sent(1_500_000);
    let line = b.progress(&live.snapshot()[0]);
    assert!(
        line.contains("1.5 MB of 3.0 MB (50%)") && line.contains(mac),
        "{line}"
    );
    drop(tracked);
    assert!(live.snapshot().is_empty());
    std::fs::remove_dir_all(&d).expect("clean");
}
