//! Files over TFTP and HTTP against the real server in namespaces, with real
//! clients: tftp-hpa, atftp, curl and busybox tftp.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Lab, base_config};

const SERVER: &str = "192.168.1.1";
const CLIENT: &str = "192.168.1.50/24";

/// Deterministic bytes that differ block to block.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

struct Files {
    lab: Lab,
    root: PathBuf,
    out: PathBuf,
}

impl Files {
    /// A lab whose server serves `root` (TFTP and HTTP on port 8088), with
    /// the phone side's native interface at 192.168.1.50.
    fn new(tag: &str, extra: &str) -> Files {
        let mut lab = Lab::new(tag);
        let root = lab.dir.join("tree");
        let out = lab.dir.join("out");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        lab.write_config(&format!(
            "{}\n[files]\nroot = \"{}\"\nhttp = [\"0.0.0.0:8088\"]\n{extra}",
            base_config(),
            root.display()
        ));
        lab.cli.addr(&lab.native_if, CLIENT).unwrap();
        Files { lab, root, out }
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        let p = self.root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn start(&mut self) {
        self.lab.start();
    }

    /// Runs a client in the phone namespace; returns (success, stdout+stderr).
    fn client(&self, program: &str, args: &[&str]) -> (bool, String) {
        let o = self.lab.cli.run(program, args).expect(program);
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    fn out(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    fn same(&self, local: &Path, want: &[u8]) {
        let got = std::fs::read(local).unwrap_or_default();
        assert!(
            got == want,
            "{}: got {} bytes, want {}\n{}",
            local.display(),
            got.len(),
            want.len(),
            self.lab.log()
        );
    }
}

#[test]
fn tftp_clients_fetch_byte_exact() {
    let mut f = Files::new("tftpok", "");
    let small = pattern(1000, 1);
    let multiple = pattern(512 * 8, 2);
    let big = pattern(3 << 20, 3);
    f.put("450HD.img", &small);
    f.put("sub/exact.img", &multiple);
    f.put("sip100.img", &big);
    f.put("empty.img", b"");
    f.put("notes.txt", b"line one\nline two\r\nend\n");
    f.start();
    for (name, want) in [
        ("450HD.img", &small),
        ("sub/exact.img", &multiple),
        ("sip100.img", &big),
        ("empty.img", &Vec::new()),
    ] {
        // tftp-hpa: plain RFC 1350, lockstep 512-byte blocks, no options.
        let o = f.out(&format!("hpa-{}", name.replace('/', "_")));
        let (ok, text) = f.client(
            "tftp",
            &[
                "-m",
                "binary",
                SERVER,
                "-c",
                "get",
                name,
                &o.display().to_string(),
            ],
        );
        assert!(ok, "tftp-hpa {name}: {text}");
        f.same(&o, want);
        // atftp with blksize, tsize and a window.
        let o = f.out(&format!("atftp-{}", name.replace('/', "_")));
        let (ok, text) = f.client(
            "atftp",
            &[
                "--get",
                "-r",
                name,
                "-l",
                &o.display().to_string(),
                "--option",
                "blksize 1468",
                "--option",
                "tsize 0",
                "--option",
                "windowsize 16",
                SERVER,
            ],
        );
        assert!(ok, "atftp {name}: {text}");
        f.same(&o, want);
        // curl with a block size.
        let o = f.out(&format!("curl-{}", name.replace('/', "_")));
        let url = format!("tftp://{SERVER}/{name}");
        let (ok, text) = f.client(
            "curl",
            &[
                "-sS",
                "--tftp-blksize",
                "1024",
                "-o",
                &o.display().to_string(),
                &url,
            ],
        );
        assert!(ok, "curl {name}: {text}");
        f.same(&o, want);
        // busybox tftp.
        let o = f.out(&format!("bb-{}", name.replace('/', "_")));
        let (ok, text) = f.client(
            "busybox",
            &[
                "tftp",
                "-g",
                "-r",
                name,
                "-l",
                &o.display().to_string(),
                "-b",
                "1400",
                SERVER,
            ],
        );
        assert!(ok, "busybox tftp {name}: {text}");
        f.same(&o, want);
    }
    // Phones' spellings: backslashes and another case.
    let o = f.out("spelled");
    let (ok, text) = f.client(
        "tftp",
        &[
            "-m",
            "binary",
            SERVER,
            "-c",
            "get",
            "SUB\\EXACT.IMG",
            &o.display().to_string(),
        ],
    );
    assert!(ok, "{text}");
    f.same(&o, &multiple);
    // netascii: tftp-hpa turns CR LF back into LF.
    let o = f.out("notes");
    let (ok, text) = f.client(
        "tftp",
        &[
            "-m",
            "ascii",
            SERVER,
            "-c",
            "get",
            "notes.txt",
            &o.display().to_string(),
        ],
    );
    assert!(ok, "{text}");
    f.same(&o, b"line one\nline two\r\nend\n");
    // A missing file is ERROR 1, logged at info.
    let o = f.out("missing");
    let (_, text) = f.client(
        "tftp",
        &[
            "-m",
            "binary",
            SERVER,
            "-c",
            "get",
            "nothing.cfg",
            &o.display().to_string(),
        ],
    );
    assert!(text.contains("File not found"), "{text}");
    let log = f.lab.log();
    assert!(log.contains("\"outcome\":\"not found\""), "{log}");
    assert!(log.contains("\"outcome\":\"complete\""), "{log}");
    assert!(log.contains("blksize 1468 window 16"), "{log}");
    f.lab.stop();
}
