use std::collections::HashMap;
use std::io::Read;

use super::*;

struct Fixed(HashMap<Ipv4Addr, Mac>);

impl Owners for Fixed {
    fn mac_of(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.0.get(&ip).copied()
    }
}

const PHONE: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 20);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 21);

fn tree(tag: &str) -> (PathBuf, Resolver) {
    let dir = std::env::temp_dir().join(format!("dialtone-resolve-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("Polycom")).unwrap();
    fs::create_dir_all(dir.join("450HD")).unwrap();
    fs::write(dir.join("450HD.img"), b"image").unwrap();
    fs::write(dir.join("Polycom/00908F123456.cfg"), b"secret").unwrap();
    fs::write(dir.join("0004f218dece-phone.cfg"), b"other secret").unwrap();
    fs::write(dir.join("450HD.cfg"), b"model").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("escape.img")).unwrap();
    std::os::unix::fs::symlink("450HD.img", dir.join("latest.img")).unwrap();
    std::os::unix::fs::symlink("Polycom/00908F123456.cfg", dir.join("public.cfg")).unwrap();
    let files = Files {
        root: dir.clone(),
        ..Files::default()
    };
    let owners = Fixed(HashMap::from([(
        PHONE,
        "00:90:8f:12:34:56".parse().unwrap(),
    )]));
    let r = Resolver::new(&files, Arc::new(owners)).unwrap();
    (dir, r)
}

fn content(found: Found) -> String {
    let mut s = String::new();
    match found.body {
        Body::File(mut f) => {
            f.read_to_string(&mut s).unwrap();
        }
        Body::Bytes(b) => s = String::from_utf8_lossy(&b).into_owned(),
    }
    s
}

#[test]
fn spelling_variants_find_the_file() {
    let (dir, r) = tree("spelling");
    let c = r.client(PHONE);
    for name in ["450HD.img", "450hd.IMG", "/450HD.img", "./450HD.img"] {
        let f = r
            .resolve(name, &c, name.starts_with('/'))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(f.path, "450HD.img");
        assert_eq!(f.size, 5);
        assert_eq!(content(f), "image");
    }
    for name in [
        "Polycom/00908F123456.cfg",
        "polycom\\00908f123456.cfg",
        "POLYCOM/00-90-8f-12-34-56.cfg",
        "polycom/00:90:8F:12:34:56.CFG",
    ] {
        let f = r
            .resolve(name, &c, false)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(f.path, "Polycom/00908F123456.cfg", "{name}");
    }
    let root = dir.display().to_string();
    assert!(r.resolve(&format!("{root}/450HD.img"), &c, false).is_ok());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn missing_directories_and_escapes() {
    let (dir, r) = tree("missing");
    let c = r.client(OTHER);
    assert!(matches!(
        r.resolve("nothing.cfg", &c, false),
        Err(Miss::NotFound)
    ));
    assert!(matches!(
        r.resolve("nothing/at/all", &c, false),
        Err(Miss::NotFound)
    ));
    assert!(matches!(r.resolve("450HD", &c, false), Err(Miss::NotFound)));
    assert!(matches!(
        r.resolve("450HD.img/x", &c, false),
        Err(Miss::NotFound)
    ));
    for bad in ["../etc/passwd", "/etc/passwd", "escape.img", "a\0b"] {
        assert!(
            matches!(r.resolve(bad, &c, false), Err(Miss::Refused(_))),
            "{bad}"
        );
    }
    assert_eq!(
        content(r.resolve("latest.img", &c, false).unwrap()),
        "image"
    );
    // A FIFO in the tree is refused without waiting for a writer.
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("pipe.img"))
        .status()
        .unwrap();
    assert!(made.success());
    assert!(matches!(
        r.resolve("pipe.img", &c, false),
        Err(Miss::Refused(_))
    ));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn private_files_go_to_their_phone_only() {
    let (dir, r) = tree("private");
    let phone = r.client(PHONE);
    let other = r.client(OTHER);
    assert_eq!(
        content(
            r.resolve("polycom/00908f123456.cfg", &phone, false)
                .unwrap()
        ),
        "secret"
    );
    match r.resolve("polycom/00908f123456.cfg", &other, false) {
        Err(Miss::Private { owner, .. }) => assert_eq!(owner.to_string(), "00:90:8f:12:34:56"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.resolve("0004F218DECE-phone.cfg", &phone, false),
        Err(Miss::Private { .. })
    ));
    // A link without a MAC to a private file is still private.
    assert!(matches!(
        r.resolve("public.cfg", &other, false),
        Err(Miss::Private { .. })
    ));
    // A .cfg without a MAC is for everyone.
    assert_eq!(
        content(r.resolve("450hd.cfg", &other, false).unwrap()),
        "model"
    );
    let _ = fs::remove_dir_all(dir);
}

struct Greeting;

impl Generator for Greeting {
    fn generate(&self, path: &[String], client: &Client) -> Option<Result<Found, Miss>> {
        (path == ["hello.txt"]).then(|| {
            Ok(Found {
                path: "hello.txt".into(),
                body: Body::Bytes(Bytes::from(format!("hello {}", client.ip))),
                size: 0,
                modified: SystemTime::UNIX_EPOCH,
            })
        })
    }
}

#[test]
fn generators_come_after_the_tree() {
    let (dir, r) = tree("generators");
    let r = r.with_generator(Arc::new(Greeting));
    let c = r.client(OTHER);
    assert_eq!(
        content(r.resolve("hello.txt", &c, false).unwrap()),
        "hello 10.250.0.21"
    );
    fs::write(dir.join("hello.txt"), b"static").unwrap();
    assert_eq!(
        content(r.resolve("hello.txt", &c, false).unwrap()),
        "static"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_phones_misses_on_its_own_files_are_no_sweep() {
    let (dir, r) = tree("own-misses");
    let r = r.with_sweep_guard(Arc::new(Sweep::default()));
    let phone = r.client(PHONE);
    // Twenty boots' worth of files the phone may ask for that are not there
    // (Cisco's trust lists, Grandstream's binary file): never slowed.
    for _ in 0..20 {
        for name in [
            "CTLSEP00908F123456.tlv",
            "cfg00908f123456",
            "00908f123456.boot",
        ] {
            assert!(matches!(
                r.resolve(name, &phone, false),
                Err(Miss::NotFound)
            ));
        }
    }
    // Another phone's names are a sweep, slowed after the burst.
    let other = r.client(OTHER);
    let slowed = (0..20)
        .map(|i| r.resolve(&format!("00908f0000{i:02}.cfg"), &other, false))
        .filter(|f| matches!(f, Err(Miss::Slowed)))
        .count();
    assert!(slowed > 0);
    assert!(matches!(
        r.resolve("cfg00908f123456", &phone, false),
        Err(Miss::NotFound)
    ));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn the_families_shared_files_are_every_phones() {
    // Yealink's common files and Polycom's 000000000000.cfg carry no
    // phone's MAC: private globs (`*.cfg`) do not make them anyone's.
    let (dir, r) = tree("shared");
    let r = r.with_sweep_guard(Arc::new(Sweep::default()));
    assert!(r.private.iter().any(|g| g == "*.cfg"), "{:?}", r.private);
    fs::write(dir.join("y000000000066.cfg"), b"#!version:1.0.0.1\n").unwrap();
    fs::write(dir.join("000000000000.cfg"), b"<polycom/>").unwrap();
    for who in [PHONE, OTHER] {
        let c = r.client(who);
        assert_eq!(
            content(r.resolve("y000000000066.cfg", &c, true).unwrap()),
            "#!version:1.0.0.1\n"
        );
        assert_eq!(
            content(r.resolve("000000000000.cfg", &c, false).unwrap()),
            "<polycom/>"
        );
    }
    // Misses on shared names are no sweep either.
    let other = r.client(OTHER);
    for _ in 0..20 {
        assert!(matches!(
            r.resolve("y000000000000.boot", &other, true),
            Err(Miss::NotFound)
        ));
    }
    let _ = fs::remove_dir_all(dir);
}
