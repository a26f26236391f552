//! Files over TFTP and HTTP against the real server in namespaces, with real
//! clients: tftp-hpa, atftp, curl and busybox tftp.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Lab, base_config, pattern};
use dialtone::files::tftp::packet::rrq;

const SERVER: &str = "192.168.1.1";
const CLIENT: &str = "192.168.1.50/24";

struct Files {
    lab: Lab,
    root: PathBuf,
    out: PathBuf,
}

impl Files {
    /// A lab whose server serves `root` (TFTP and HTTP on port 8088), with
    /// the phone side's native interface at 192.168.1.50. `@DIR@` in
    /// `extra` is the lab's own folder.
    fn new(tag: &str, extra: &str) -> Files {
        let lab = Lab::new(tag);
        let root = lab.dir.join("tree");
        let out = lab.dir.join("out");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        lab.write_config(&format!(
            "{}\n[files]\nroot = \"{}\"\nhttp = [\"0.0.0.0:8088\"]\n{}",
            base_config(),
            root.display(),
            extra.replace("@DIR@", &lab.dir.display().to_string())
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

    /// The phones' voice link takes `mac` and leases an address with
    /// udhcpc, which it then holds; the address.
    fn lease_as(&self, mac: &str) -> String {
        self.lab
            .cli
            .ip(&["link", "set", &self.lab.voice_if, "address", mac])
            .unwrap();
        let env = self.lab.udhcpc(&self.lab.voice_if.clone(), &[]);
        let ip = env.get("ip").expect("a lease").clone();
        self.lab
            .cli
            .addr(&self.lab.voice_if, &format!("{ip}/24"))
            .unwrap();
        ip
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

    /// tftp-hpa (plain RFC 1350: lockstep 512-byte blocks, no options)
    /// fetching `name` into `out` in `mode` ("binary" or "ascii").
    fn tftp_hpa(&self, mode: &str, name: &str, out: &Path) -> (bool, String) {
        let out = out.display().to_string();
        self.client("tftp", &["-m", mode, SERVER, "-c", "get", name, &out])
    }

    /// tftp-hpa sending the local file `path` as `name` in `mode`.
    fn tftp_hpa_put(&self, mode: &str, path: &str, name: &str) -> (bool, String) {
        self.client("tftp", &["-m", mode, SERVER, "-c", "put", path, name])
    }

    /// atftp fetching `name` into `out`, with options such as "blksize 1468".
    fn atftp(&self, name: &str, out: &Path, options: &[&str]) -> (bool, String) {
        let out = out.display().to_string();
        let mut args = vec!["--get", "-r", name, "-l", &out];
        for o in options {
            args.extend_from_slice(&["--option", o]);
        }
        args.push(SERVER);
        self.client("atftp", &args)
    }

    /// curl fetching a `tftp://` URL into `out` with a block size.
    fn curl_tftp(&self, url: &str, blksize: &str, out: &Path) -> (bool, String) {
        let out = out.display().to_string();
        self.client("curl", &["-sS", "--tftp-blksize", blksize, "-o", &out, url])
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
        let o = f.out(&format!("hpa-{}", name.replace('/', "_")));
        let (ok, text) = f.tftp_hpa("binary", name, &o);
        assert!(ok, "tftp-hpa {name}: {text}");
        f.same(&o, want);
        // atftp with blksize, tsize and a window.
        let o = f.out(&format!("atftp-{}", name.replace('/', "_")));
        let (ok, text) = f.atftp(name, &o, &["blksize 1468", "tsize 0", "windowsize 16"]);
        assert!(ok, "atftp {name}: {text}");
        f.same(&o, want);
        // curl with a block size.
        let o = f.out(&format!("curl-{}", name.replace('/', "_")));
        let url = format!("tftp://{SERVER}/{name}");
        let (ok, text) = f.curl_tftp(&url, "1024", &o);
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
    let (ok, text) = f.tftp_hpa("binary", "SUB\\EXACT.IMG", &o);
    assert!(ok, "{text}");
    f.same(&o, &multiple);
    // netascii: tftp-hpa turns CR LF back into LF.
    let o = f.out("notes");
    let (ok, text) = f.tftp_hpa("ascii", "notes.txt", &o);
    assert!(ok, "{text}");
    f.same(&o, b"line one\nline two\r\nend\n");
    // A missing file is ERROR 1, logged at info.
    let o = f.out("missing");
    let (_, text) = f.tftp_hpa("binary", "nothing.cfg", &o);
    assert!(text.contains("File not found"), "{text}");
    let log = f.lab.log();
    assert!(log.contains("\"outcome\":\"not found\""), "{log}");
    assert!(log.contains("\"outcome\":\"complete\""), "{log}");
    assert!(log.contains("blksize 1468 window 16"), "{log}");
    f.lab.stop();
}

#[test]
fn tftp_100_mib_rolls_over_block_numbers() {
    let mut f = Files::new("tftpbig", "");
    let big = pattern(100 << 20, 7);
    f.put("big.img", &big);
    f.start();
    // 512-byte blocks: 204,801 of them, so numbers pass 65535 three times.
    let o = f.out("big-512");
    let (ok, text) = f.atftp("big.img", &o, &["windowsize 32"]);
    assert!(ok, "atftp: {text}");
    f.same(&o, &big);
    std::fs::remove_file(&o).unwrap();
    let o = f.out("big-1468");
    let url = format!("tftp://{SERVER}/big.img");
    let (ok, text) = f.curl_tftp(&url, "1468", &o);
    assert!(ok, "curl: {text}");
    f.same(&o, &big);
    f.lab.stop();
}

#[test]
fn tftp_windows_go_as_datagrams_when_the_interface_cannot_carry_them_cut() {
    let mut f = Files::new("tftpgso", "");
    let image = pattern(300_000, 11);
    f.put("w.img", &image);
    f.start();
    // A window leaves as one message the kernel cuts into its blocks.
    let o = f.out("cut");
    let (ok, text) = f.atftp("w.img", &o, &["blksize 1468", "windowsize 16"]);
    assert!(ok, "atftp: {text}");
    f.same(&o, &image);
    // The link's MTU drops below a block's datagram: cut messages cannot
    // leave any more, so every datagram goes on its own (fragmented).
    let srv_mtu = f
        .lab
        .srv
        .run("ip", &["link", "set", "native0", "mtu", "1000"])
        .unwrap();
    assert!(srv_mtu.status.success());
    let cli_mtu = f
        .lab
        .cli
        .run("ip", &["link", "set", &f.lab.native_if, "mtu", "1000"])
        .unwrap();
    assert!(cli_mtu.status.success());
    let o = f.out("single");
    let (ok, text) = f.atftp("w.img", &o, &["blksize 1468", "windowsize 16"]);
    assert!(ok, "atftp: {text}");
    f.same(&o, &image);
    let log = f.lab.log();
    assert!(log.contains("a datagram at a time"), "{log}");
    f.lab.stop();
}

/// A hand-driven TFTP client in the phone namespace.
fn raw_client(f: &Files) -> UdpSocket {
    f.lab
        .cli
        .run_in(|| {
            let s = UdpSocket::bind("192.168.1.50:0")?;
            s.set_read_timeout(Some(Duration::from_millis(300)))?;
            Ok(s)
        })
        .unwrap()
}

#[test]
fn tftp_protocol_edges() {
    let mut f = Files::new("tftpedge", "max_transfers = 2\n");
    f.put("big.img", &pattern(1 << 20, 9));
    f.start();
    let server: SocketAddr = format!("{SERVER}:69").parse().unwrap();
    let mut buf = [0u8; 70000];

    // A tsize probe abandoned with ERROR 8 ends the transfer at once.
    let s = raw_client(&f);
    s.send_to(
        &rrq("big.img", &[("tsize", "0"), ("blksize", "1024")]),
        server,
    )
    .unwrap();
    let (n, tid) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0, 6], "OACK expected");
    let oack = String::from_utf8_lossy(&buf[2..n]).replace('\0', " ");
    assert!(oack.contains("tsize 1048576"), "{oack}");
    assert!(oack.contains("blksize 1024"), "{oack}");
    assert_ne!(tid.port(), 69, "the transfer answers from its own port");
    let mut err = vec![0, 5, 0, 8];
    err.extend_from_slice(b"tsize only\0");
    s.send_to(&err, tid).unwrap();
    // Nothing more comes: no OACK resent after the timeout.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        s.recv_from(&mut buf).is_err(),
        "server kept sending after ERROR"
    );
    let log = f.lab.log();
    assert!(log.contains("\"outcome\":\"aborted by client\""), "{log}");

    // Duplicate ACKs never cause duplicate DATA (Sorcerer's Apprentice).
    let s = raw_client(&f);
    s.send_to(&rrq("big.img", &[]), server).unwrap();
    let (_, tid) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], &[0, 3, 0, 1]);
    s.send_to(&[0, 4, 0, 1], tid).unwrap();
    s.send_to(&[0, 4, 0, 1], tid).unwrap();
    s.send_to(&[0, 4, 0, 1], tid).unwrap();
    let (_, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], &[0, 3, 0, 2]);
    // Within well under the 1 s timeout, no second block 2 arrives.
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        s.recv_from(&mut buf).is_err(),
        "duplicate ACKs caused a resend"
    );
    // With no ACK, block 2 is sent again after the timeout.
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let (_, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], &[0, 3, 0, 2]);
    // This transfer stays open (the client walks away); a second one too,
    // so the third request meets the limit of 2.
    let s2 = raw_client(&f);
    s2.send_to(&rrq("big.img", &[]), server).unwrap();
    s2.recv_from(&mut buf).unwrap();
    let s3 = raw_client(&f);
    s3.send_to(&rrq("big.img", &[]), server).unwrap();
    let (n, _) = s3.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0, 5], "ERROR expected at the limit");
    assert!(String::from_utf8_lossy(&buf[4..n]).contains("too many transfers"));

    // Writes are refused; garbage gets an error, not a crash.
    let s = raw_client(&f);
    let mut wrq = rrq("upload.bin", &[]);
    wrq[1] = 2;
    s.send_to(&wrq, server).unwrap();
    let (_, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], &[0, 5, 0, 2]);
    s.send_to(b"\x00\x01\xff\xfe\x00octet\x00", server).unwrap();
    let (_, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0, 5]);
    f.lab.stop();
}

/// Reads share one transfer port per server address: each client's
/// transfer is told apart by its own address and port.
#[test]
fn tftp_reads_share_a_transfer_port_and_stay_apart() {
    let mut f = Files::new("tftpmux", "");
    let (a_img, b_img) = (pattern(5000, 1), pattern(5000, 2));
    f.put("a.img", &a_img);
    f.put("b.img", &b_img);
    f.start();
    let server: SocketAddr = format!("{SERVER}:69").parse().unwrap();
    let mut buf = [0u8; 2048];

    // Two clients at once, one port answering both, each its own file.
    let a = raw_client(&f);
    let b = raw_client(&f);
    a.send_to(&rrq("a.img", &[]), server).unwrap();
    b.send_to(&rrq("b.img", &[]), server).unwrap();
    let (n, tid_a) = a.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..4], &buf[4..n]), (&[0, 3, 0, 1][..], &a_img[..512]));
    let (n, tid_b) = b.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..4], &buf[4..n]), (&[0, 3, 0, 1][..], &b_img[..512]));
    assert_eq!(tid_a, tid_b, "one transfer port per server address");
    assert_ne!(tid_a.port(), 69);

    // An ACK from a port with no transfer gets ERROR 5 (unknown transfer
    // ID), sent to it alone, and moves nothing (RFC 1350 4).
    let stranger = raw_client(&f);
    stranger.send_to(&[0, 4, 0, 1], tid_a).unwrap();
    let (n, from) = stranger
        .recv_from(&mut buf)
        .expect("ERROR 5 for the stranger");
    assert_eq!(&buf[..4], &[0, 5, 0, 5], "{:?}", &buf[..n]);
    assert_eq!(from, tid_a);
    a.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        a.recv_from(&mut buf).is_err(),
        "another port's ACK moved a's transfer"
    );

    // Each ACK moves its own client's transfer only.
    b.send_to(&[0, 4, 0, 1], tid_b).unwrap();
    let (n, _) = b.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..4], &buf[4..n]),
        (&[0, 3, 0, 2][..], &b_img[512..1024])
    );
    a.send_to(&[0, 4, 0, 1], tid_a).unwrap();
    let (n, _) = a.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..4], &buf[4..n]),
        (&[0, 3, 0, 2][..], &a_img[512..1024])
    );

    // A request sent twice (its first answer not yet acknowledged) is one
    // transfer: block 1 comes once, then once more only at the timeout.
    let c = raw_client(&f);
    c.send_to(&rrq("a.img", &[]), server).unwrap();
    c.send_to(&rrq("a.img", &[]), server).unwrap();
    c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], &[0, 3, 0, 1]);
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        c.recv_from(&mut buf).is_err(),
        "a repeated request started a second transfer"
    );

    // A client that goes away: the block resent after the timeout meets a
    // closed port, and the transfer ends as aborted, not after its retries.
    drop(c);
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let mut log = f.lab.log();
    while !log.contains("the client's port is closed") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        log = f.lab.log();
    }
    let line = log
        .lines()
        .find(|l| l.contains("the client's port is closed"))
        .unwrap_or_else(|| panic!("no abort logged: {log}"));
    assert!(line.contains("\"outcome\":\"aborted by client\""), "{line}");
    f.lab.stop();
}

#[test]
fn fifty_transfers_at_once() {
    let mut f = Files::new("tftpmany", "");
    let image = pattern(2 << 20, 11);
    f.put("sip200.img", &image);
    f.start();
    let mut children = Vec::new();
    for i in 0..50 {
        let o = f.out(&format!("many-{i}"));
        let url = format!("tftp://{SERVER}/sip200.img");
        let blk = if i % 2 == 0 { "512" } else { "1468" };
        let child = f
            .lab
            .cli
            .spawn(
                "curl",
                &[
                    "-sS",
                    "--tftp-blksize",
                    blk,
                    "-o",
                    &o.display().to_string(),
                    &url,
                ],
            )
            .unwrap();
        children.push((o, child));
    }
    for (o, mut c) in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "curl for {}", o.display());
        f.same(&o, &image);
    }
    f.lab.stop();
}

#[test]
fn traversal_is_refused_over_both_protocols() {
    let mut f = Files::new("travers", "");
    f.put("ok.img", b"fine");
    std::fs::write(f.lab.dir.join("secret.txt"), b"outside").unwrap();
    std::os::unix::fs::symlink(f.lab.dir.join("secret.txt"), f.root.join("link.img")).unwrap();
    f.start();
    for name in [
        "../secret.txt",
        "..\\secret.txt",
        "/etc/passwd",
        "link.img",
        "sub/../../secret.txt",
    ] {
        let o = f.out("t");
        let (_, text) = f.tftp_hpa("binary", name, &o);
        assert!(text.contains("Access violation"), "{name}: {text}");
    }
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/link.img",
        "//etc/passwd",
        "/ok.img%00",
    ] {
        let url = format!("http://{SERVER}:8088{path}");
        let (_, code) = f.client(
            "curl",
            &[
                "-s",
                "--path-as-is",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ],
        );
        assert!(code == "403" || code == "400", "{path}: {code}");
    }
    let log = f.lab.log();
    assert!(
        log.matches("\"outcome\":\"refused\"").count() >= 10,
        "{log}"
    );
    let leaked = std::fs::read(f.out("t")).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&leaked).contains("outside"));
    f.lab.stop();
}

/// curl in the phone namespace: (status code, headers, body).
fn http(f: &Files, path: &str, extra: &[&str]) -> (String, String, Vec<u8>) {
    let tag = common::rand_tag();
    let body = f.out(&format!("body-{tag}"));
    let headers = f.out(&format!("headers-{tag}"));
    let url = format!("http://{SERVER}:8088{path}");
    let mut args = vec![
        "-s",
        "-o",
        body.to_str().unwrap(),
        "-D",
        headers.to_str().unwrap(),
        "-w",
        "%{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let (_, code) = f.client("curl", &args);
    let h = std::fs::read_to_string(&headers).unwrap_or_default();
    (code, h, std::fs::read(&body).unwrap_or_default())
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v)
        })
        .unwrap_or("")
        .trim()
}

#[test]
fn http_ranges_and_conditionals() {
    let mut f = Files::new("httpget", "");
    let image = pattern(5 << 20, 21);
    f.put("450HD/450HD.img", &image);
    f.put("450HD.cfg", b"voip/line/0/enabled=1\n");
    // Bigger than both ends' socket buffers, so a client that stops
    // reading leaves the server with bytes it could not send.
    f.put("big.img", &pattern(64 << 20, 5));
    f.start();
    // Whole file, streamed, with its validators.
    let (code, h, body) = http(&f, "/450HD/450HD.img", &[]);
    assert_eq!(code, "200", "{h}");
    assert!(body == image, "body differs ({} bytes)", body.len());
    assert_eq!(header(&h, "content-length"), (5 << 20).to_string());
    assert_eq!(header(&h, "content-type"), "application/octet-stream");
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    let etag = header(&h, "etag").to_string();
    let modified = header(&h, "last-modified").to_string();
    assert!(etag.starts_with('"'), "{h}");
    // The same, its pages dropped from the cache first (a slow disk's
    // first read): read in off the runtime, then sent the same way.
    let path = f.root.join("450HD/450HD.img");
    let file = std::fs::File::open(&path).unwrap();
    file.sync_all().unwrap();
    // The kernel skips pages still in another core's LRU batch (the server
    // read them last on its core): asked again, they go once drained.
    for _ in 0..40 {
        nix::fcntl::posix_fadvise(
            &file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .unwrap();
        if !dialtone::sys::cache::cached(&file, 3 << 20) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!dialtone::sys::cache::cached(&file, 3 << 20));
    let (code, _, body) = http(&f, "/450HD/450HD.img", &["-r", "3145728-"]);
    assert_eq!(code, "206");
    assert!(
        body == image[3 << 20..],
        "body differs ({} bytes)",
        body.len()
    );
    assert!(dialtone::sys::cache::cached(&file, (5 << 20) - 1));
    // Phones read the header of the image to compare versions.
    let (code, h, body) = http(&f, "/450hd/450HD.IMG", &["-r", "0-1023"]);
    assert_eq!(code, "206");
    assert_eq!(body, &image[..1024]);
    assert_eq!(
        header(&h, "content-range"),
        format!("bytes 0-1023/{}", 5 << 20)
    );
    let (code, _, body) = http(&f, "/450HD/450HD.img", &["-r", "-100"]);
    assert_eq!(code, "206");
    assert_eq!(body, &image[image.len() - 100..]);
    let (code, h, _) = http(&f, "/450HD/450HD.img", &["-r", "99999999-"]);
    assert_eq!(code, "416");
    assert_eq!(header(&h, "content-range"), format!("bytes */{}", 5 << 20));
    // HEAD: headers only (curl -I writes them where the body would go).
    let (code, h, body) = http(&f, "/450HD/450HD.img", &["-I"]);
    assert_eq!(code, "200");
    assert!(
        body.len() < 1000 && body.starts_with(b"HTTP/1.1 200"),
        "{} bytes",
        body.len()
    );
    assert_eq!(header(&h, "content-length"), (5 << 20).to_string());
    // Conditionals.
    let inm = format!("If-None-Match: {etag}");
    let (code, _, body) = http(&f, "/450HD/450HD.img", &["-H", &inm]);
    assert_eq!(code, "304");
    assert!(body.is_empty());
    let ims = format!("If-Modified-Since: {modified}");
    let (code, _, _) = http(&f, "/450HD/450HD.img", &["-H", &ims]);
    assert_eq!(code, "304");
    let (code, _, _) = http(&f, "/450HD/450HD.img", &["-H", "If-None-Match: \"stale\""]);
    assert_eq!(code, "200");
    let ir = format!("If-Range: {etag}");
    let (code, _, _) = http(&f, "/450HD/450HD.img", &["-r", "0-9", "-H", &ir]);
    assert_eq!(code, "206");
    let (code, _, _) = http(
        &f,
        "/450HD/450HD.img",
        &["-r", "0-9", "-H", "If-Range: \"old\""],
    );
    assert_eq!(code, "200");
    // Text types, no listings, 404 for missing, 405 for other methods.
    let (code, h, _) = http(&f, "/450HD.cfg", &[]);
    assert_eq!(code, "200");
    assert!(header(&h, "content-type").starts_with("text/plain"));
    assert_eq!(http(&f, "/450HD/", &[]).0, "404");
    assert_eq!(http(&f, "/", &[]).0, "404");
    assert_eq!(http(&f, "/0004f218dece-license.cfg", &[]).0, "404");
    assert_eq!(http(&f, "/450HD.cfg", &["-X", "PUT"]).0, "405");
    // Keep-alive: a second request on the same connection (0 new connects).
    let cfg = format!("http://{SERVER}:8088/450HD.cfg");
    let (ok, out) = f.client(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects},",
            &cfg,
            &cfg,
        ],
    );
    assert!(ok && out == "1,0,", "{out}");
    // Raw requests: garbage, a body on GET (read and ignored, then a
    // pipelined request), a chunked body, an oversized head.
    let raw = |request: &str| -> String {
        let script =
            format!("exec 3<>/dev/tcp/{SERVER}/8088; printf '{request}' >&3; timeout 5 cat <&3");
        f.client("bash", &["-c", &script]).1
    };
    let out = raw("HELLO\\r\\n\\r\\n");
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    let out = raw(
        "GET /450HD.cfg HTTP/1.1\\r\\nContent-Length: 5\\r\\n\\r\\nhello\
         GET /450HD.cfg HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n",
    );
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert_eq!(out.matches("voip/line/0/enabled=1").count(), 2, "{out}");
    let out = raw("GET / HTTP/1.1\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n");
    assert!(out.starts_with("HTTP/1.1 411 "), "{out}");
    let out = raw(&format!(
        "GET / HTTP/1.1\\r\\nX: {}\\r\\n\\r\\n",
        "a".repeat(20000)
    ));
    assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
    // An aborted download is logged as such.
    let url = format!("http://{SERVER}:8088/big.img");
    let _ = f.client(
        "curl",
        &[
            "-s",
            "--limit-rate",
            "100k",
            "--max-time",
            "1",
            "-o",
            "/dev/null",
            &url,
        ],
    );
    // The server sees the abort at its next write to the closed connection.
    let mut log = String::new();
    for _ in 0..25 {
        log = f.lab.log();
        if log.contains("\"outcome\":\"aborted by client\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(log.contains("\"outcome\":\"aborted by client\""), "{log}");
    assert!(log.contains("\"outcome\":\"partial\""), "{log}");
    assert!(log.contains("\"outcome\":\"not modified\""), "{log}");
    f.lab.stop();
    // The counters per file were written on the way out; `dialtone files` shows them.
    let out = std::process::Command::new(common::BIN)
        .args(["files", "--json", "--config"])
        .arg(f.lab.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counters = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(&counters).unwrap();
    assert!(
        v["450HD/450HD.img"]["partial"].as_u64().unwrap() >= 3,
        "{counters}"
    );
    assert!(
        v["450HD/450HD.img"]["not_modified"].as_u64().unwrap() >= 2,
        "{counters}"
    );
    assert!(
        v["450HD/450HD.img"]["complete"].as_u64().unwrap() >= 2,
        "{counters}"
    );
}

#[test]
fn private_files_reach_only_their_phone() {
    let mut f = Files::new("private", "");
    f.start();
    // The phone on the voice VLAN leases an address for its MAC.
    let mac = "00:90:8f:aa:bb:cc";
    let ip = f.lease_as(mac);
    // Another client on the same VLAN without a lease.
    f.lab.cli.addr(&f.lab.voice_if, "10.250.0.99/24").unwrap();
    f.put("00908faabbcc.cfg", b"voip/line/0/auth_password=4321\n");
    f.put("450HD.cfg", b"shared\n");
    let fetch = |from: &str, path: &str| {
        let url = format!("http://10.250.0.1:8088{path}");
        f.client(
            "curl",
            &[
                "-s",
                "--interface",
                from,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ],
        )
        .1
    };
    assert_eq!(fetch(&ip, "/00908faabbcc.cfg"), "200");
    assert_eq!(fetch(&ip, "/00-90-8F-AA-BB-CC.cfg"), "200");
    assert_eq!(fetch("10.250.0.99", "/00908faabbcc.cfg"), "404");
    assert_eq!(fetch("10.250.0.99", "/450HD.cfg"), "200");
    // The same over TFTP: the phone gets it, the other client is told not found.
    let o = f.out("mine");
    let url = "tftp://10.250.0.1/00908FAABBCC.cfg";
    let (ok, text) = f.client(
        "curl",
        &["-sS", "--interface", &ip, "-o", o.to_str().unwrap(), url],
    );
    assert!(ok, "{text}");
    f.same(&o, b"voip/line/0/auth_password=4321\n");
    let o = f.out("theirs");
    let (ok, _) = f.client(
        "curl",
        &[
            "-sS",
            "--interface",
            "10.250.0.99",
            "-o",
            o.to_str().unwrap(),
            url,
        ],
    );
    assert!(!ok);
    let log = f.lab.log();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"outcome\":\"private\""))
        .collect();
    assert_eq!(refusals.len(), 2, "{log}");
    assert!(
        refusals
            .iter()
            .all(|l| l.contains("WARN") && l.contains("10.250.0.99")),
        "{refusals:?}"
    );
    // Transfers name the phone's MAC from its lease.
    assert!(
        log.contains(&format!("\"client\":\"{ip}\",\"mac\":\"{mac}\"")),
        "{log}"
    );
    f.lab.stop();
}

#[test]
fn generated_and_provisional_files_reach_their_phone_and_phones_lists_them() {
    // One AudioCodes phone in the inventory; another, not in it, gets a
    // provisional configuration.
    let mut f = Files::new(
        "genprov",
        r#"
[[phone]]
name = "Agent450"
mac = "00:90:8f:aa:bb:cc"
manufacturer = "AudioCodes"
model = "450HD"
extension = "7502"
sip_password = "s3cret"
"#,
    );
    f.start();
    let lease = |iface: &str, mac: &str, model: &str| -> String {
        f.lab
            .cli
            .ip(&["link", "set", iface, "address", mac])
            .unwrap();
        let user_class = format!("0x4d:{}", common::hex_of(model));
        let env = f.lab.udhcpc(iface, &["-x", &user_class]);
        let ip = env.get("ip").expect("a lease").clone();
        f.lab.cli.addr(iface, &format!("{ip}/24")).unwrap();
        ip
    };
    let known = lease(&f.lab.voice_if.clone(), "00:90:8f:aa:bb:cc", "450HD");
    let stranger = lease(&f.lab.native_if.clone(), "00:90:8f:00:00:77", "440HD");
    let fetch = |from: &str, server: &str, path: &str| -> (String, String) {
        let out = f.out(&format!("gen-{}", common::rand_tag()));
        let url = format!("http://{server}:8088{path}");
        let (_, code) = f.client(
            "curl",
            &[
                "-s",
                "--interface",
                from,
                "-o",
                out.to_str().unwrap(),
                "-w",
                "%{http_code}",
                &url,
            ],
        );
        (code, std::fs::read_to_string(&out).unwrap_or_default())
    };
    let (code, cfg) = fetch(&known, "10.250.0.1", "/00908FAABBCC.cfg");
    assert_eq!(code, "200");
    assert!(
        cfg.contains("voip/line/0/auth_password=s3cret\n")
            && cfg.contains("system/ntp/primary_server_address=10.250.0.1\n"),
        "{cfg}"
    );
    // The stranger cannot read it, under any spelling, and gets its own
    // provisional file: a Setup line, no credentials.
    assert_eq!(fetch(&stranger, SERVER, "/00908FAABBCC.cfg").0, "404");
    assert_eq!(fetch(&stranger, SERVER, "/00-90-8f-aa-bb-cc.cfg").0, "404");
    let (code, cfg) = fetch(&stranger, SERVER, "/00908F000077.cfg");
    assert_eq!(code, "200");
    assert!(
        cfg.contains("(440HD)")
            && cfg.contains("voip/line/0/enabled=0\nvoip/line/0/description=Setup\n")
            && cfg.contains("system/ntp/primary_server_address=192.168.1.1\n")
            && !cfg.contains("auth"),
        "{cfg}"
    );
    f.lab.stop();
    // `dialtone phones`: both, with address, model and what they fetched.
    let out = std::process::Command::new(common::BIN)
        .args(["phones", "--json", "--config"])
        .arg(f.lab.config_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let row = |mac: &str| {
        rows.iter()
            .find(|r| r["mac"] == mac)
            .unwrap_or_else(|| panic!("{mac} missing: {text}"))
            .clone()
    };
    let files = |r: &serde_json::Value| -> Vec<(String, String)> {
        r["fetched"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["file"].as_str().unwrap().to_string(),
                    f["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let a = row("00:90:8f:aa:bb:cc");
    assert_eq!(
        (
            a["status"].as_str(),
            a["name"].as_str(),
            a["model"].as_str()
        ),
        (Some("known"), Some("Agent450"), Some("450HD"))
    );
    assert_eq!(a["address"].as_str(), Some(known.as_str()));
    assert_eq!(
        files(&a),
        [("/00908FAABBCC.cfg".to_string(), "complete".to_string())]
    );
    let b = row("00:90:8f:00:00:77");
    assert_eq!(
        (
            b["status"].as_str(),
            b["family"].as_str(),
            b["model"].as_str()
        ),
        (Some("provisional"), Some("audiocodes"), Some("440HD"))
    );
    assert_eq!(b["address"].as_str(), Some(stranger.as_str()));
    assert_eq!(
        files(&b),
        [
            ("/00908FAABBCC.cfg".to_string(), "private".to_string()),
            ("/00-90-8f-aa-bb-cc.cfg".to_string(), "private".to_string()),
            ("/00908F000077.cfg".to_string(), "complete".to_string()),
        ]
    );
    // The table says the same for people.
    let out = std::process::Command::new(common::BIN)
        .args(["phones", "--config"])
        .arg(f.lab.config_path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("00:90:8f:00:00:77")
            && l.contains("provisional")
            && l.contains("/00908FAABBCC.cfg (private)")),
        "{table}"
    );
}

/// Every file under `dir`, as paths relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn http_put_uploads_land_in_the_upload_folder() {
    // Yealink phones PUT `<mac>-local.cfg` and their logs over HTTP.
    let mut f = Files::new(
        "httpput",
        "upload = \"@DIR@/uploads\"\nupload_max = \"1M\"\n",
    );
    let uploads = f.lab.dir.join("uploads");
    f.start();
    let blob = pattern(700_000, 23);
    let blob_path = f.out("blob");
    std::fs::write(&blob_path, &blob).unwrap();
    let blob_path = blob_path.display().to_string();
    let stored = |name: &str| std::fs::read(uploads.join(name)).unwrap_or_default();
    // curl -T is a PUT with a Content-Length: 201, then 204 for a new copy.
    let put = |args: &[&str], path: &str| -> String {
        let url = format!("http://{SERVER}:8088{path}");
        let mut all = vec!["-s", "-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        all.push(&url);
        f.client("curl", &all).1
    };
    assert_eq!(put(&["-T", &blob_path], "/logs/blob.bin"), "201");
    assert!(stored("logs/blob.bin") == blob, "the PUT body differs");
    assert_eq!(put(&["-T", &blob_path], "/logs/blob.bin"), "204");
    // Told to wait for 100 Continue; and an empty body is an empty file.
    assert_eq!(
        put(
            &["-T", &blob_path, "-H", "Expect: 100-continue"],
            "/continued.bin"
        ),
        "201"
    );
    assert!(stored("continued.bin") == blob);
    assert_eq!(
        put(&["-X", "PUT", "--data-binary", ""], "/empty.log"),
        "201"
    );
    assert!(uploads.join("empty.log").is_file() && stored("empty.log").is_empty());
    // Kept alive: two PUTs on one connection (curl reuses it).
    let url2 = format!("http://{SERVER}:8088/second.bin");
    let (ok, text) = f.client(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            "-T",
            &blob_path,
            &format!("http://{SERVER}:8088/first.bin"),
            "-T",
            &blob_path,
            &url2,
        ],
    );
    assert!(ok, "{text}");
    assert_eq!(
        text.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        ["201 1", "201 0"],
        "{text}"
    );
    // Refused: too big (413, before any byte is kept), no length (chunked:
    // 411), names out of the folder, hidden, or another phone's MAC (403).
    let big = f.out("big");
    std::fs::write(&big, pattern(1_200_000, 24)).unwrap();
    assert_eq!(put(&["-T", &big.display().to_string()], "/big.bin"), "413");
    assert_eq!(
        put(
            &["-T", &blob_path, "-H", "Transfer-Encoding: chunked"],
            "/chunked.bin"
        ),
        "411"
    );
    for path in ["/../escape.log", "/.hidden.log", "/00908faabbcc-local.cfg"] {
        assert_eq!(
            put(&["-T", &blob_path, "--path-as-is"], path),
            "403",
            "{path}"
        );
    }
    // The phone itself, with its lease, may PUT under its own MAC.
    let mac = "00:90:8f:aa:bb:cc";
    let ip = f.lease_as(mac);
    let (ok, code) = f.client(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--interface",
            &ip,
            "-T",
            &blob_path,
            "http://10.250.0.1:8088/00908faabbcc-local.cfg",
        ],
    );
    assert!(ok && code == "201", "{code}");
    assert!(stored("00908faabbcc-local.cfg") == blob);
    // Uploads are never served, and GET still is what it was.
    assert_eq!(put(&[], "/first.bin"), "404");
    assert_eq!(
        tree(&uploads),
        [
            "00908faabbcc-local.cfg",
            "continued.bin",
            "empty.log",
            "first.bin",
            "logs/blob.bin",
            "second.bin"
        ],
        "only finished uploads, no partial files"
    );
    let log = f.lab.log();
    let complete = log
        .lines()
        .filter(|l| {
            l.contains("\"protocol\":\"http-upload\"") && l.contains("\"outcome\":\"complete\"")
        })
        .count();
    assert_eq!(complete, 7, "{log}");
    assert!(log.contains("PUT 413"), "{log}");
    assert!(log.contains(&format!("\"mac\":\"{mac}\"")), "{log}");
    f.lab.stop();
}

#[test]
fn tftp_uploads_land_in_the_upload_folder() {
    let mut f = Files::new(
        "upload",
        "upload = \"@DIR@/uploads\"\nupload_max = \"1M\"\n",
    );
    let uploads = f.lab.dir.join("uploads");
    f.start();
    assert!(uploads.is_dir(), "serve makes the upload folder");
    let log_text = b"boot 1\nboot 2\r\nend\n".to_vec();
    let blob = pattern(700_000, 21);
    let local = |name: &str, bytes: &[u8]| {
        let p = f.out(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let blob_path = local("blob", &blob);
    let text_path = local("text", &log_text);
    let stored = |name: &str| std::fs::read(uploads.join(name)).unwrap_or_default();

    // tftp-hpa, plain RFC 1350, binary and netascii.
    let (ok, text) = f.tftp_hpa_put("binary", &blob_path, "logs/blob.bin");
    assert!(ok && !text.contains("Error"), "{text}");
    assert!(
        stored("logs/blob.bin") == blob,
        "tftp-hpa binary upload differs\n{}",
        f.lab.log()
    );
    let (ok, text) = f.tftp_hpa_put("ascii", &text_path, "boot.log");
    assert!(ok && !text.contains("Error"), "{text}");
    assert_eq!(stored("boot.log"), log_text, "netascii decoded back");
    // atftp with blksize and tsize; curl (which announces tsize).
    let (ok, text) = f.client(
        "atftp",
        &[
            "--put",
            "-l",
            &blob_path,
            "-r",
            "atftp.bin",
            "--option",
            "blksize 1468",
            "--option",
            "tsize",
            "--option",
            "windowsize 8",
            SERVER,
        ],
    );
    assert!(ok, "atftp: {text}");
    assert!(
        stored("atftp.bin") == blob,
        "atftp upload differs\n{}",
        f.lab.log()
    );
    let url = format!("tftp://{SERVER}/curl.bin");
    let (ok, text) = f.client(
        "curl",
        &["-sS", "--tftp-blksize", "1024", "-T", &blob_path, &url],
    );
    assert!(ok, "curl: {text}");
    assert!(stored("curl.bin") == blob, "curl upload differs");
    // A second upload of a name replaces the first.
    let (ok, text) = f.tftp_hpa_put("binary", &text_path, "curl.bin");
    assert!(ok && !text.contains("Error"), "{text}");
    assert_eq!(stored("curl.bin"), log_text);

    // Over the limit: refused up front when the size is announced (curl),
    // at the first block past it otherwise (tftp-hpa); nothing is kept.
    let big_path = local("big", &pattern(1_200_000, 22));
    let url = format!("tftp://{SERVER}/big.bin");
    let (ok, _) = f.client("curl", &["-sS", "-T", &big_path, &url]);
    assert!(!ok, "curl's oversized upload was accepted");
    let (_, text) = f.tftp_hpa_put("binary", &big_path, "big.bin");
    assert!(text.contains("limited to 1048576 bytes"), "{text}");
    // Names that climb out, hidden names and another phone's MAC.
    for name in [
        "../escape.log",
        "/etc/escape.log",
        ".hidden.log",
        "00908faabbcc-app.log",
    ] {
        let (_, text) = f.tftp_hpa_put("binary", &text_path, name);
        assert!(text.contains("Access violation"), "{name}: {text}");
    }
    assert!(!f.lab.dir.join("escape.log").exists());

    // A phone with a lease may upload under its own MAC.
    let mac = "00:90:8f:aa:bb:cc";
    let ip = f.lease_as(mac);
    let url = "tftp://10.250.0.1/00908faabbcc-app.log";
    let (ok, text) = f.client("curl", &["-sS", "--interface", &ip, "-T", &text_path, url]);
    assert!(ok, "{text}");
    assert_eq!(stored("00908faabbcc-app.log"), log_text);

    // By hand: a block sent again (its ACK lost) is acknowledged again and
    // stored once; an upload the client abandons leaves nothing behind.
    let server: SocketAddr = format!("{SERVER}:69").parse().unwrap();
    let mut buf = [0u8; 600];
    let s = raw_client(&f);
    let mut wrq = rrq("abandoned.log", &[]);
    wrq[1] = 2;
    s.send_to(&wrq, server).unwrap();
    let (n, tid) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[0, 4, 0, 0], "ACK 0 expected");
    let mut data = vec![0, 3, 0, 1];
    data.extend_from_slice(&[b'x'; 512]);
    for _ in 0..2 {
        s.send_to(&data, tid).unwrap();
        let (n, _) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0, 4, 0, 1]);
    }
    let partials = std::fs::read_dir(&uploads)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .count();
    assert_eq!(partials, 1, "the upload in progress writes a partial file");
    s.send_to(b"\x00\x05\x00\x00gave up\x00", tid).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    assert_eq!(
        tree(&uploads),
        [
            "00908faabbcc-app.log",
            "atftp.bin",
            "boot.log",
            "curl.bin",
            "logs/blob.bin"
        ],
        "only finished uploads, no partial files"
    );
    assert!(
        tree(&f.root).is_empty(),
        "uploads never land in the served tree"
    );
    let log = f.lab.log();
    let uploads_logged = log
        .lines()
        .filter(|l| {
            l.contains("\"protocol\":\"tftp-upload\"") && l.contains("\"outcome\":\"complete\"")
        })
        .count();
    assert_eq!(uploads_logged, 6, "{log}");
    assert!(log.contains("\"outcome\":\"aborted by client\""), "{log}");
    assert!(log.contains("\"outcome\":\"refused\""), "{log}");
    assert!(log.contains(&format!("\"mac\":\"{mac}\"")), "{log}");
    f.lab.stop();
}

/// A TCP connection to the HTTP server from the phone namespace.
fn tcp(f: &Files) -> std::net::TcpStream {
    let s = f
        .lab
        .cli
        .run_in(|| Ok(std::net::TcpStream::connect((SERVER, 8088))?))
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    s
}

/// Everything the server sends until it closes (or 6 s pass).
fn read_all(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn exchange(f: &Files, request: &[u8]) -> String {
    use std::io::Write;
    let mut s = tcp(f);
    let _ = s.write_all(request);
    read_all(&mut s)
}

/// Requests a phone never sends, over a real connection: a request line or
/// head over the limits (414, 431), two lengths or a length and a transfer
/// coding (400: request smuggling), a client that dribbles its head (408
/// at the deadline), and more connections from one address than allowed
/// (503 with Retry-After, one warning, and served again once one closes).
#[test]
fn http_refuses_hostile_requests_and_bounds_each_source() {
    use std::io::Write;
    let mut f = Files::new(
        "httphostile",
        "http_head_timeout = \"2s\"\nhttp_per_source = 4\n",
    );
    f.put("a.txt", b"hello\n");
    f.start();

    let line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let r = exchange(&f, line.as_bytes());
    assert!(r.starts_with("HTTP/1.1 414 "), "{r}");
    let big = format!("GET /a.txt HTTP/1.1\r\nX: {}\r\n\r\n", "b".repeat(20_000));
    assert!(exchange(&f, big.as_bytes()).starts_with("HTTP/1.1 431 "));
    for smuggle in [
        "POST /a.txt HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "POST /a.txt HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    ] {
        let r = exchange(&f, smuggle.as_bytes());
        assert!(r.starts_with("HTTP/1.1 400 "), "{smuggle:?}: {r}");
        assert!(
            r.contains("Connection: close") || r.contains("connection: close"),
            "{r}"
        );
    }

    // Slowloris: a byte every 300 ms never completes a head; at the 2 s
    // deadline the server answers 408 and closes.
    let mut s = tcp(&f);
    let started = std::time::Instant::now();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut got = String::new();
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(300));
        if s.write_all(b"X").is_err() {
            break;
        }
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        if let Ok(n) = std::io::Read::read(&mut s, &mut buf)
            && n > 0
        {
            got = String::from_utf8_lossy(&buf[..n]).into_owned();
            break;
        }
        s.set_nonblocking(false).unwrap();
    }
    let took = started.elapsed();
    assert!(got.starts_with("HTTP/1.1 408 "), "{got:?} after {took:?}");
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // Four connections from one address are served; the fifth, sixth and
    // seventh get 503 at once; when one closes, a new one is served.
    let held: Vec<_> = (0..4).map(|_| tcp(&f)).collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        let r = exchange(&f, b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(r.contains("Retry-After: 5"), "{r}");
    }
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let r = exchange(
        &f,
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        r.starts_with("HTTP/1.1 200 ") && r.ends_with("hello\n"),
        "{r}"
    );
    let log = f.lab.log();
    assert_eq!(
        log.matches("too many HTTP connections from one address")
            .count(),
        1,
        "{log}"
    );
}

/// A MAC sweep (a laptop asking for `<MAC>.cfg` for one MAC after another
/// to scrape SIP passwords) gets nothing private, and after a handful of
/// misses is slowed: HTTP answers 429 with Retry-After without looking,
/// TFTP answers nothing at all (each guess costs the scanner its timeout).
/// One warning names the address. Other files still reach that address,
/// and another address is not affected.
#[test]
fn a_mac_sweep_is_slowed_and_named_once() {
    let mut f = Files::new("macsweep", "");
    f.put("00908f123456.cfg", b"voip/line/0/auth_password=secret\n");
    f.put("450HD.img", b"firmware");
    f.start();
    let mut codes = Vec::new();
    for n in 0..12u32 {
        let (code, headers, body) = http(&f, &format!("/00908f{:06x}.cfg", 0x123450 + n), &[]);
        assert!(
            !String::from_utf8_lossy(&body).contains("secret"),
            "{n}: {body:?}"
        );
        if code == "429" {
            assert_eq!(header(&headers, "retry-after"), "5", "{headers}");
        }
        codes.push(code);
    }
    // The owner's file is private (this address holds no lease): 404 like
    // the missing ones, and never its contents.
    assert_eq!(codes[..7], ["404"; 7], "{codes:?}");
    assert!(codes[8..].iter().all(|c| c == "429"), "{codes:?}");
    // TFTP from the same address: a MAC-named name gets no answer at all.
    let started = std::time::Instant::now();
    let o = f.out("swept.cfg");
    let (ok, text) = f.client(
        "timeout",
        &[
            "3",
            "tftp",
            "-m",
            "binary",
            SERVER,
            "-c",
            "get",
            "00908f999999.cfg",
            o.to_str().unwrap(),
        ],
    );
    assert!(!ok && !text.contains("Error code"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(2900));
    // Files that carry no MAC are still served to it.
    let (ok, text) = f.tftp_hpa("binary", "450HD.img", &f.out("fw.img"));
    assert!(ok, "{text}");
    assert_eq!(http(&f, "/450HD.img", &[]).0, "200");
    // Another address on the same network is not slowed.
    f.lab.cli.addr(&f.lab.native_if, "192.168.1.51/24").unwrap();
    let (code, _, _) = http(&f, "/00908f000001.cfg", &["--interface", "192.168.1.51"]);
    assert_eq!(code, "404");
    let log = f.lab.log();
    assert_eq!(log.matches("a MAC sweep?").count(), 1, "{log}");
    assert!(log.contains("\"client\":\"192.168.1.50\""), "{log}");
}

/// A file replaced while it is being sent: by a rename (how `install` and
/// `mv` replace a file), the client gets the old file whole; written in
/// place (as `cp` does), the transfer breaks before it completes. Never a
/// mix of old and new bytes taken for the file, over HTTP or TFTP.
#[test]
fn a_file_replaced_while_it_is_sent_arrives_whole_or_not_at_all() {
    let mut f = Files::new("replaced", "");
    let old = pattern(6 << 20, 21);
    let new = pattern(6 << 20, 22);
    // Small TCP buffers on both sides (per namespace), so the body is still
    // being sent when the file changes, not already queued whole.
    for (ns, key, value) in [
        (&f.lab.cli, "net.ipv4.tcp_rmem", "4096 65536 131072"),
        (&f.lab.srv, "net.ipv4.tcp_wmem", "4096 65536 262144"),
    ] {
        let out = ns
            .run("sysctl", &["-q", "-w", &format!("{key}={value}")])
            .unwrap();
        assert!(out.status.success(), "{key}");
    }
    f.start();
    let rewrite = |in_place: bool| {
        let path = f.root.join("fw.img");
        if in_place {
            use std::io::{Seek, Write};
            let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            w.seek(std::io::SeekFrom::Start(0)).unwrap();
            w.write_all(&new).unwrap();
            w.sync_all().unwrap();
        } else {
            let tmp = f.root.join(".fw.img.new");
            std::fs::write(&tmp, &new).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    };
    // HTTP: a client that reads half a megabyte of the body, stops reading
    // (the server waits with its buffers full), lets the file change, then
    // reads on to the end.
    for in_place in [false, true] {
        f.put("fw.img", &old);
        let mut c = f
            .lab
            .cli
            .run_in(|| {
                let mut c = std::net::TcpStream::connect((SERVER, 8088))?;
                c.write_all(b"GET /fw.img HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
                c.set_read_timeout(Some(Duration::from_secs(10)))?;
                Ok(c)
            })
            .unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut head_end = None;
        while head_end.is_none_or(|h| got.len() < h + (512 << 10)) {
            let n = c.read(&mut buf).expect("the body under way");
            assert!(n > 0, "HTTP: closed early");
            got.extend_from_slice(&buf[..n]);
            if head_end.is_none() {
                head_end = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        rewrite(in_place);
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let body = &got[head_end.unwrap()..];
        if in_place {
            assert!(
                body.len() < old.len(),
                "HTTP: a file written in place arrived as if whole"
            );
            assert!(old.starts_with(&body[..512 << 10]));
        } else {
            assert!(
                body == old,
                "HTTP: not the old file whole ({} bytes)",
                body.len()
            );
        }
    }
    // TFTP: a client that takes 200 blocks (past nothing but the first
    // chunk the server read), then the file changes, then it goes on.
    let server: SocketAddr = format!("{SERVER}:69").parse().unwrap();
    for in_place in [false, true] {
        f.put("fw.img", &old);
        let s = raw_client(&f);
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send_to(&rrq("fw.img", &[("blksize", "1024")]), server)
            .unwrap();
        let mut buf = [0u8; 2048];
        let (_, tid) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 6], "OACK");
        s.send_to(&[0, 4, 0, 0], tid).unwrap();
        let mut got = Vec::new();
        let mut error = None;
        loop {
            let (n, _) = s.recv_from(&mut buf).expect("DATA or ERROR");
            if buf[..2] == [0, 5] {
                error = Some(String::from_utf8_lossy(&buf[4..n]).to_string());
                break;
            }
            assert_eq!(&buf[..2], &[0, 3]);
            got.extend_from_slice(&buf[4..n]);
            let block = [buf[2], buf[3]];
            if got.len() == 200 * 1024 {
                rewrite(in_place);
            }
            s.send_to(&[0, 4, block[0], block[1]], tid).unwrap();
            if n < 4 + 1024 {
                break;
            }
        }
        assert!(
            old.starts_with(&got),
            "TFTP: bytes that are not the old file's"
        );
        if in_place {
            let e = error.expect("TFTP: an ERROR for a file written in place");
            assert!(e.contains("changed while being sent"), "{e}");
        } else {
            assert!(
                error.is_none() && got == old,
                "TFTP: not the old file whole"
            );
        }
    }
    let log = f.lab.log();
    assert!(
        log.matches("the file changed while being sent").count() >= 2,
        "{log}"
    );
    f.lab.stop();
}
