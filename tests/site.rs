//! The status page, `/metrics`, `/health` and the phones' own logs, against
//! the real `dialtone serve` in the lab's namespaces: the emulated phones of
//! every family boot, one of them stuck (its configuration missing), the
//! phones send syslog with `logger` (RFC 3164 and 5424), and the page is
//! read by headless Chromium (its DOM and a screenshot, from the command
//! line: `--dump-dom`, `--screenshot`), by curl and by promtool. Each test
//! builds its own lab and removes it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use dialtone::demo::{Lab, Server};
use dialtone::lab::phone;
use dialtone::lab::unique;

const BIN: &str = env!("CARGO_BIN_EXE_dialtone");

struct Running {
    // Field order is drop order: the server and the call servers stop
    // before the lab goes.
    server: Server,
    calls: [Option<dialtone::lab::CallServer>; 2],
    lab: Lab,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("server log:\n{}", self.server.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(tag: &str, extra: &str, before: &dyn Fn(&Path)) -> Running {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test builds network namespaces and must run as root (CI does)"
    );
    let prefix = unique(tag);
    let lab = Lab::new(&prefix).expect("lab");
    // The phones register with them.
    let calls = lab.call_servers().expect("call servers");
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    before(&dir);
    let extra = extra.replace("@DIR@", &dir.display().to_string());
    let server = lab
        .serve_with(Path::new(BIN), &dir, &extra, &|_| Ok(()))
        .expect("dialtone serving");
    let r = Running {
        server,
        calls: [Some(calls.0), Some(calls.1)],
        lab,
        dir,
    };
    wait_for(&r, "the admin listener", &|| {
        r.server.log().contains("serving the status page")
    });
    r
}

fn wait_for(r: &Running, what: &str, ok: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within 20 s\n{}",
            r.server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(ns: &dialtone::lab::Netns, program: &str, args: &[&str]) -> Output {
    ns.run(program, args).expect(program)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `curl` in the appliance's namespace: (status, body).
fn curl(r: &Running, url: &str, extra: &[&str]) -> (u16, String) {
    let mut args = vec!["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = text(&run(&r.lab.app, "curl", &args));
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A counter's value in a metrics text (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn spec(profile: &str) -> phone::Spec {
    phone::lab_phones()
        .into_iter()
        .find(|s| s.profile == profile)
        .expect("a lab phone of this profile")
}

/// Sends one syslog line with util-linux `logger` from `ip` (put on the
/// phones' voice link for the while).
fn logger(r: &Running, ip: std::net::Ipv4Addr, args: &[&str]) {
    let cidr = format!("{ip}/24");
    let ns = &r.lab.phones;
    ns.ip(&["addr", "add", &cidr, "dev", "voice"]).unwrap();
    // The source is this address, whatever else the link holds (the soft
    // phone keeps its own).
    let src = ip.to_string();
    ns.ip(&[
        "route",
        "replace",
        "10.250.0.1/32",
        "dev",
        "voice",
        "src",
        &src,
    ])
    .unwrap();
    let mut all = vec!["-n", "10.250.0.1", "-P", "514", "-d"];
    all.extend_from_slice(args);
    let out = run(ns, "logger", &all);
    let _ = ns.ip(&["route", "del", "10.250.0.1/32", "dev", "voice"]);
    let _ = ns.ip(&["addr", "del", &cidr, "dev", "voice"]);
    assert!(out.status.success(), "logger: {out:?}");
}

#[test]
fn the_status_page_shows_every_phone_a_stuck_one_and_their_logs_in_chromium() {
    // The SIP Station's configuration is missing: it is the stuck phone.
    let mut r = start("site-page", "[syslog]\nlines_per_phone = 50\n", &|_| {});
    std::fs::remove_file(r.dir.join("tree/0026FD000400.cfg")).unwrap();
    let (status, page) = curl(&r, "http://127.0.0.1:8080/", &[]);
    assert_eq!(status, 200, "loopback is open without credentials");
    assert!(page.contains("phone-table"));
    // The family filter lists every family by its title.
    for (name, title) in dialtone::site::view::families() {
        assert!(
            page.contains(&format!("<option value=\"{name}\">{title}</option>")),
            "{name}: {page}"
        );
    }
    assert!(page.contains("<option value=\"cisco\">Cisco (enterprise SIP)</option>"));
    let (_, before) = curl(&r, "http://127.0.0.1:8080/metrics", &[]);

    let mut booted = Vec::new();
    for s in phone::lab_phones() {
        let boot = phone::boot(&r.lab.phones, s.vlan, &s);
        booted.push((s, boot));
    }
    let (ac, ac_boot) = booted
        .iter()
        .find(|(s, _)| s.profile == "audiocodes")
        .unwrap();
    assert!(ac_boot.result.is_ok(), "{ac_boot:#?}");
    let ac_ip = ac_boot.address.unwrap();
    let ac_mac = ac.mac.to_string();
    // Its generated configuration sends its syslog to the appliance.
    let cfg = ac_boot
        .files
        .iter()
        .find(|f| f.name.ends_with(".cfg"))
        .expect("the AudioCodes configuration");
    assert!(cfg.got.is_ok(), "{cfg:?}");
    logger(
        &r,
        ac_ip,
        &[
            "--rfc3164",
            "-t",
            "sipua",
            "SIP line 1 registered at vm40ic1.lab.voip",
        ],
    );
    logger(
        &r,
        ac_ip,
        &[
            "--rfc5424",
            "-t",
            "provision",
            "-p",
            "user.err",
            "hostile <script>alert(1)</script> & \"quotes\"",
        ],
    );
    // From an address no phone holds: dropped and counted.
    logger(
        &r,
        "10.250.0.250".parse().unwrap(),
        &["--rfc3164", "spoofed"],
    );
    let logs = r.dir.join("state/syslog");

    wait_for(&r, "the phone's log on disk", &|| {
        std::fs::read_to_string(logs.join(format!("{}.log", ac.mac.bare())))
            .is_ok_and(|t| t.lines().count() >= 2)
    });

    // A transfer in progress: a TFTP read whose client took the first
    // block and went quiet (its socket stays open, so the server waits and
    // resends) is on the page with its progress bar.
    // (Each lab phone set the link's MAC in turn: the appliance forgets
    // the soft phone's, so its answer reaches the link's current one.)
    r.lab.app.ip(&["neigh", "flush", "dev", "voice0"]).unwrap();
    let quiet = r
        .lab
        .phones
        .run_in(|| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.send_to(b"\x00\x01450HD_3.4.6.img\x00octet\x00", "10.250.0.1:69")?;
            let mut buf = [0u8; 1024];
            let (n, _) = s.recv_from(&mut buf)?;
            anyhow::ensure!(n == 516 && buf[..4] == [0, 3, 0, 1], "the first block");
            Ok(s)
        })
        .unwrap();
    // (A page is made at most once a second per filter.)
    std::thread::sleep(Duration::from_millis(1100));
    let (_, during) = curl(&r, "http://127.0.0.1:8080/", &[]);
    let progress = during
        .split("<h2 id=\"transfers\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_default()
        .to_string();
    assert!(
        progress.contains("450HD_3.4.6.img")
            && progress.contains("<progress max=\"3145728\" value=\"")
            && progress.contains("tftp"),
        "{progress}"
    );
    drop(quiet);

    // Chromium reads the page: phones, boot lines, the stuck one's reason.
    let profile = r.dir.join("chromium");
    let netlog = r.dir.join("netlog.json");
    let shot = r.dir.join("page.png");
    let chromium = |extra: &[&str]| {
        let mut args = vec![
            "60",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
            // Chromium's own calls home (component updates, network time,
            // safe browsing, domain reliability) are off: the net log below
            // must list the appliance's page only.
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--safebrowsing-disable-auto-update",
            "--metrics-recording-only",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
        ];
        let user = format!("--user-data-dir={}", profile.display());
        let log = format!("--log-net-log={}", netlog.display());
        args.push(&user);
        args.push(&log);
        args.extend_from_slice(extra);
        args.push("http://127.0.0.1:8080/");
        run(&r.lab.app, "timeout", &args)
    };
    let dom = chromium(&["--dump-dom"]);
    let dom_text = text(&dom);
    assert!(dom_text.contains("phone-table"), "chromium's DOM: {dom:?}");
    for (s, _) in &booted {
        assert!(
            dom_text.contains(&format!("data-mac=\"{}\"", s.mac)),
            "{} is listed",
            s.label
        );
    }
    let iss = spec("interaction-sip-station");
    let iss_row = dom_text
        .split("<tr class=\"phone\"")
        .find(|row| row.contains(&format!("data-mac=\"{}\"", iss.mac)))
        .unwrap();
    assert!(iss_row.contains("data-state=\"stuck\""), "{iss_row}");
    assert!(
        iss_row.contains("asked for 0026FD000400.cfg: not found"),
        "the reason is on the row: {iss_row}"
    );
    assert!(iss_row.contains("step failed"), "{iss_row}");
    let ac_row = dom_text
        .split("<tr class=\"phone\"")
        .find(|row| row.contains(&format!("data-mac=\"{ac_mac}\"")))
        .unwrap();
    assert!(ac_row.contains("data-state=\"booted\""), "{ac_row}");
    assert!(
        ac_row.contains("3.4.6.700"),
        "firmware from the User-Agent: {ac_row}"
    );
    assert!(
        ac_row.contains("step done\" title=\"SIP line 1 registered"),
        "registration from its own log: {ac_row}"
    );
    // The lease search, and the call servers: both up, then one stopped.
    let (_, up) = curl(&r, "http://127.0.0.1:8080/", &[]);
    let up = up
        .split("<h2 id=\"call-servers\">")
        .nth(1)
        .and_then(|c| c.split("<h2").next())
        .unwrap_or_default();
    assert_eq!(up.matches("class=\"up\"").count(), 2, "{up}");
    drop(r.calls[1].take());
    wait_for(&r, "vm40ic2 seen down", &|| {
        curl(&r, "http://127.0.0.1:8080/", &[])
            .1
            .contains("<td>vm40ic2</td><td>10.250.1.152</td><td class=\"down\"")
    });
    let (_, found) = curl(&r, &format!("http://127.0.0.1:8080/?q={ac_mac}"), &[]);
    let leases = found
        .split("<h2 id=\"leases\">")
        .nth(1)
        .unwrap_or_default()
        .split("<h2 id=\"call-servers\">")
        .collect::<Vec<_>>();
    assert_eq!(
        leases[0]
            .matches(&format!("<td><a href=\"/phones/{ac_mac}\">"))
            .count(),
        1,
        "{}",
        leases[0]
    );
    assert!(leases[0].contains("1 of "), "{}", leases[0]);
    let calls = leases.get(1).copied().unwrap_or_default();
    assert!(
        calls.contains("vm40ic1") && calls.contains("vm40ic2") && calls.contains("class=\"down\""),
        "{calls}"
    );
    // The filter keeps the stuck phone only.
    let (_, stuck) = curl(&r, "http://127.0.0.1:8080/?stuck=true", &[]);
    assert_eq!(stuck.matches("<tr class=\"phone\"").count(), 1, "{stuck}");

    // A screenshot at a phone's screen size.
    let shot_arg = format!("--screenshot={}", shot.display());
    let out = chromium(&[&shot_arg, "--window-size=412,915", "--hide-scrollbars"]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {out:?}"));
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        png.len() > 10_000,
        "a page with content: {} bytes",
        png.len()
    );
    // Nothing the page asks for is outside the appliance: no absolute
    // address in its links, sources or forms, and a policy that forbids
    // loading anything but itself. Chromium's own background calls (it
    // tries google.com whatever the flags) cannot leave either: the
    // appliance's namespace has routes to the lab's links only.
    assert!(
        !dom_text.contains("=\"http"),
        "an absolute address on the page"
    );
    let (_, head) = {
        let out = text(&run(
            &r.lab.app,
            "curl",
            &["-s", "-D", "-", "-o", "/dev/null", "http://127.0.0.1:8080/"],
        ));
        (0, out.to_ascii_lowercase())
    };
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    let net = std::fs::read_to_string(&netlog).unwrap();
    assert!(
        net.contains("\"url\":\"http://127.0.0.1:8080/\""),
        "Chromium fetched the page"
    );
    for family in ["-4", "-6"] {
        let routes = text(&run(
            &r.lab.app,
            "ip",
            &[family, "route", "show", "table", "all"],
        ));
        for line in routes.lines().filter(|l| {
            !l.contains("table local") && !l.starts_with("multicast") && !l.contains("dev lo")
        }) {
            assert!(
                !line.starts_with("default")
                    && ["native0", "voice0", "calls0"]
                        .iter()
                        .any(|d| line.contains(&format!("dev {d}"))),
                "a route out of the lab: {line}"
            );
        }
    }

    // The phone's own page: its log (escaped), options sent, files, explain.
    let (status, own) = curl(&r, &format!("http://127.0.0.1:8080/phones/{ac_mac}"), &[]);
    assert_eq!(status, 200);
    assert!(own.contains("SIP line 1 registered"), "{own}");
    assert!(own.contains("hostile &lt;script&gt;alert(1)&lt;"), "{own}");
    assert!(own.contains("&amp; &quot;quotes&quot;"), "{own}");
    assert!(!own.contains("<script>alert"), "escaped everywhere");
    assert!(
        own.contains("66 tftp_server, 67 bootfile, 160 provisioning_url"),
        "options sent: {own}"
    );
    assert!(
        own.contains("450HD_3.4.6.img"),
        "files fetched in order: {own}"
    );
    assert!(
        own.contains("Phone 00:90:8f:00:01:00"),
        "explain's answer: {own}"
    );
    assert!(!own.contains("demo-75"), "no SIP password on the page");
    let (status, _) = curl(&r, "http://127.0.0.1:8080/phones/00:11:22:33:44:55", &[]);
    assert_eq!(status, 404);
    let (status, _) = curl(&r, "http://127.0.0.1:8080/phones/nonsense", &[]);
    assert_eq!(status, 400);

    // `dialtone logs` reads the same lines.
    let config = r.dir.join("dialtone.toml");
    let out = std::process::Command::new(BIN)
        .args(["logs", "--config"])
        .arg(&config)
        .args(["--mac", &ac_mac])
        .output()
        .unwrap();
    let printed = text(&out);
    assert!(out.status.success(), "{out:?}");
    assert!(
        printed.contains("sipua: SIP line 1 registered"),
        "{printed}"
    );
    assert!(
        printed.contains("err     provision: hostile <script>"),
        "{printed}"
    );

    // `--follow` prints what arrives after it started.
    let mut follow = std::process::Command::new(BIN)
        .args(["logs", "--follow", "-n", "0", "--config"])
        .arg(&config)
        .args(["--mac", &ac_mac])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    logger(
        &r,
        ac_ip,
        &["--rfc3164", "-t", "sipua", "call 7501 -> 7502 connected"],
    );
    let followed = {
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line
    };
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        followed.contains("sipua: call 7501 -> 7502 connected"),
        "{followed}"
    );

    // A flood from the phone's address: the rate per source holds, and its
    // file stays within its bound (50 lines, rewritten at a quarter over).
    let flood_ip = ac_ip;
    let ns = &r.lab.phones;
    ns.ip(&["addr", "add", &format!("{flood_ip}/24"), "dev", "voice"])
        .unwrap();
    let sent = ns
        .run_in(move || {
            let s = std::net::UdpSocket::bind((flood_ip, 0))?;
            let mut big = vec![b'x'; 2500];
            big[..4].copy_from_slice(b"<11>");
            for i in 0..3000u32 {
                let msg: &[u8] = if i % 10 == 0 {
                    &big
                } else {
                    b"<14>flood \x00\xff\x1b[2J"
                };
                s.send_to(msg, "10.250.0.1:514")?;
            }
            Ok(3000)
        })
        .unwrap();
    let _ = ns.ip(&["addr", "del", &format!("{flood_ip}/24"), "dev", "voice"]);
    assert_eq!(sent, 3000);
    std::thread::sleep(Duration::from_millis(2500));
    let file = std::fs::read_to_string(logs.join(format!("{}.log", ac.mac.bare()))).unwrap();
    assert!(
        file.lines().count() <= 63,
        "bounded: {} lines",
        file.lines().count()
    );
    assert!(file.lines().all(|l| l.len() < 1_200), "each line bounded");
    let (status, own) = curl(&r, &format!("http://127.0.0.1:8080/phones/{ac_mac}"), &[]);
    assert_eq!(status, 200, "the page still renders after the flood");
    assert!(own.contains("flood"), "{own}");

    // Metrics: promtool accepts them, and they moved with the boots.
    let (status, after) = curl(&r, "http://127.0.0.1:8080/metrics", &[]);
    assert_eq!(status, 200);
    let metrics = r.dir.join("metrics.txt");
    std::fs::write(&metrics, &after).unwrap();
    let check = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", metrics.display()))
        .output()
        .unwrap();
    assert!(check.status.success(), "promtool: {check:?}\n{after}");
    let acks = "dialtone_dhcp4_packets_sent_total{operation=\"ack\"}";
    assert!(
        metric(&after, acks) >= metric(&before, acks) + 5.0,
        "ACKs counted:\n{after}"
    );
    assert!(
        metric(
            &after,
            "dialtone_file_transfers_total{protocol=\"http\",family=\"audiocodes\",outcome=\"complete\"}"
        ) >= 1.0,
        "{after}"
    );
    assert!(
        metric(&after, "dialtone_phones{state=\"stuck\"}") >= 1.0,
        "{after}"
    );
    assert!(
        metric(
            &after,
            "dialtone_syslog_messages_total{outcome=\"unknown-source\"}"
        ) >= 1.0,
        "{after}"
    );
    assert!(
        metric(&after, "dialtone_lease_commit_seconds_count") >= 5.0,
        "{after}"
    );
    assert!(
        metric(
            &after,
            "dialtone_dns_queries_total{type=\"SRV\",rcode=\"NOERROR\"}"
        ) >= 1.0,
        "{after}"
    );
    // A scraper that asks for OpenMetrics gets it.
    let (_, open) = curl(
        &r,
        "http://127.0.0.1:8080/metrics",
        &["-H", "Accept: application/openmetrics-text; version=1.0.0"],
    );
    assert!(open.trim_end().ends_with("# EOF"), "{open}");
    assert!(open.contains("# TYPE dialtone_dhcp4_packets_sent counter"));
    // Health: every place bound, the state folder writable.
    let (status, body) = curl(&r, "http://127.0.0.1:8080/health", &[]);
    assert_eq!((status, body.trim()), (200, "ok"));
}

#[test]
fn off_loopback_the_page_asks_for_a_password_or_a_token_and_check_never_prints_them() {
    let password = "correct horse battery";
    let token = "0123456789abcdef0123456789abcdef";
    let r = start(
        "site-auth",
        "[admin]\nlisten = \"10.250.1.1:8081\"\npassword_file = \"@DIR@/admin-password\"\ntoken_file = \"@DIR@/admin-token\"\n",
        &|dir| {
            let mut child = std::process::Command::new(BIN)
                .args(["passwd", "--user", "tech", "--file"])
                .arg(dir.join("admin-password"))
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{password}\n").as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
            std::fs::write(dir.join("admin-token"), format!("{token}\n")).unwrap();
        },
    );
    let calls = &r.lab.calls;
    let get = |args: &[&str]| -> (u16, String, String) {
        let mut all = vec![
            "-s",
            "-m",
            "10",
            "-D",
            "-",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ];
        all.extend_from_slice(args);
        let out = text(&run(calls, "curl", &all));
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
        let (head, body) = body.split_once("\r\n\r\n").unwrap_or((body, ""));
        (
            code.trim().parse().unwrap_or(0),
            head.to_string(),
            body.to_string(),
        )
    };
    let page = "http://10.250.1.1:8081/";
    let (status, head, _) = get(&["--interface", "10.250.1.151", page]);
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"dialtone\""),
        "{head}"
    );
    let (status, _, _) = get(&["--interface", "10.250.1.151", "-u", "tech:wrong", page]);
    assert_eq!(status, 401);
    let right = format!("tech:{password}");
    let (status, _, body) = get(&["--interface", "10.250.1.151", "-u", &right, page]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("phone-table"));
    let bearer = format!("Authorization: Bearer {token}");
    let (status, _, body) = get(&[
        "--interface",
        "10.250.1.151",
        "-H",
        &bearer,
        "http://10.250.1.1:8081/metrics",
    ]);
    assert_eq!(status, 200);
    assert!(body.contains("dialtone_dhcp4_packets_received_total"));
    let (status, _, _) = get(&[
        "--interface",
        "10.250.1.151",
        "-H",
        "Authorization: Bearer not-the-token-at-all",
        page,
    ]);
    assert_eq!(status, 401);
    // A guesser is slowed after 10 failures a minute, even with the right
    // password then; another address is not.
    for _ in 0..10 {
        let (status, _, _) = get(&["--interface", "10.250.1.152", "-u", "tech:guess", page]);
        assert_eq!(status, 401);
    }
    let (status, _, _) = get(&["--interface", "10.250.1.152", "-u", &right, page]);
    assert_eq!(status, 429);
    let (status, _, _) = get(&["--interface", "10.250.1.151", "-u", &right, page]);
    assert_eq!(status, 200);
    // A new password set with `dialtone passwd` counts after a reload.
    let renewed = "a new and longer password";
    let mut child = std::process::Command::new(BIN)
        .args(["passwd", "--user", "tech", "--file"])
        .arg(r.dir.join("admin-password"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{renewed}\n").as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(r.server.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    wait_for(&r, "the reload", &|| {
        r.server.log().contains("configuration reloaded")
    });
    let new = format!("tech:{renewed}");
    let (status, _, _) = get(&["--interface", "10.250.1.151", "-u", &new, page]);
    assert_eq!(status, 200, "the new password after the reload");
    let (status, _, _) = get(&["--interface", "10.250.1.151", "-u", &right, page]);
    assert_eq!(status, 401, "the old password no longer opens it");
    // Only the configured address listens.
    let (status, _) = curl(&r, "http://127.0.0.1:8080/", &[]);
    assert_eq!(status, 0, "nothing on loopback now");
    // check shows the files' paths, never what they hold.
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(r.dir.join("dialtone.toml"))
        .output()
        .unwrap();
    let printed = format!("{}{}", text(&out), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("password_file = "), "{printed}");
    assert!(!printed.contains("$argon2"), "{printed}");
    assert!(!printed.contains(token), "{printed}");
    assert!(!r.server.log().contains("$argon2") && !r.server.log().contains(token));
    assert!(!r.server.log().contains(password));
}
