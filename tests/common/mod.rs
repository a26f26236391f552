//! A lab for DHCP tests: a server namespace with a native and a voice interface
//! (veth pairs; this kernel has no 802.1Q), a phone namespace on the other ends,
//! and the real `dialtone` binary serving inside. Everything is removed on drop,
//! also when the test fails.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dialtone::dhcp::client::{ClientMessage, ParsedReply};
use dialtone::lab::{Netns, veth};
use socket2::{Domain, Protocol, Socket, Type};

pub const BIN: &str = env!("CARGO_BIN_EXE_dialtone");

pub struct Lab {
    pub tag: String,
    pub srv: Netns,
    pub cli: Netns,
    pub dir: PathBuf,
    /// Client-side interface names: native VLAN, voice VLAN.
    pub native_if: String,
    pub voice_if: String,
    server: Option<Child>,
    starts: usize,
}

/// The demo's lab configuration, plus a Polycom class.
pub fn base_config() -> String {
    format!(
        "{}\n[[dhcp.class]]\nname = \"polycom\"\nmatch.vendor_class = \"Polycom*\"\noptions.provisioning_url = \"http://{{server}}/polycom\"\n",
        dialtone::demo::LAB_CONFIG
    )
}

fn must_be_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test builds network namespaces and must run as root (CI does)"
    );
}

impl Lab {
    /// Server namespace with `native0` 192.168.1.1/24 and `voice0` 10.250.0.1/24,
    /// phone namespace with the other ends.
    pub fn new(tag: &str) -> Lab {
        must_be_root();
        let prefix = dialtone::lab::unique(tag);
        let srv = Netns::create(&format!("{prefix}-s")).expect("server namespace");
        let cli = Netns::create(&format!("{prefix}-c")).expect("phone namespace");
        // Client interface names are unique per test: dhcpcd and dhclient keep
        // per-interface files in /run, shared by all namespaces.
        let short: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        let native_if = format!("n{short}{}", std::process::id() % 100);
        let voice_if = format!("v{short}{}", std::process::id() % 100);
        veth(&srv, "native0", &cli, &native_if).expect("native veth");
        veth(&srv, "voice0", &cli, &voice_if).expect("voice veth");
        srv.addr("native0", "192.168.1.1/24").unwrap();
        srv.addr("voice0", "10.250.0.1/24").unwrap();
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Lab {
            tag: tag.into(),
            srv,
            cli,
            dir,
            native_if,
            voice_if,
            server: None,
            starts: 0,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("dialtone.toml")
    }

    pub fn write_config(&self, text: &str) {
        let text = text.replace("@STATE@", &self.state_dir().display().to_string());
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("server-{}.log", self.starts))
    }

    /// The server's log so far. dialtone writes its log from a separate
    /// thread, so this waits until the file has stopped growing for 150 ms
    /// (at most 3 s) before reading it.
    pub fn log(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(150));
            let now = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
            if now == last {
                break;
            }
            last = now;
        }
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts `dialtone serve` in the server namespace and waits until every
    /// interface is served.
    pub fn start(&mut self) {
        self.spawn(&[], &[]);
        self.wait_started();
    }

    /// Starts `dialtone --log-format json serve --config F ARGS` with `env`
    /// added, without waiting; returns its pid.
    pub fn spawn(&mut self, args: &[&str], env: &[(&str, String)]) -> u32 {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = self.srv.command(BIN);
        cmd.args(["--log-format", "json", "serve", "--config"])
            .arg(self.config_path())
            .args(args)
            .env("DIALTONE_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start dialtone");
        let pid = child.id();
        self.server = Some(child);
        pid
    }

    /// The running server's pid.
    pub fn pid(&self) -> u32 {
        self.server.as_ref().expect("server running").id()
    }

    /// Whether the server has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.server
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits until the server logs that it serves every service on every
    /// interface of its configuration.
    pub fn wait_started(&mut self) {
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        let want = text
            .lines()
            .find(|l| l.starts_with("interfaces"))
            .map(|l| l.matches('"').count() / 2)
            .unwrap_or(1);
        let mut services = vec!["serving DHCP"];
        if text.contains("\n[dns]") {
            services.push("serving DNS");
        }
        if text.contains("\n[time]") {
            services.push("serving SNTP");
        }
        if text.contains("\n[files]") {
            if !text.contains("\ntftp = false") {
                services.push("serving TFTP");
            }
            services.push("serving HTTP");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while services
            .iter()
            .any(|s| self.log().matches(s).count() < want)
        {
            if let Some(Ok(Some(status))) = self.server.as_mut().map(|c| c.try_wait()) {
                panic!("dialtone exited ({status}) at start:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "dialtone did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server with SIGTERM.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Kills the server outright: `ip netns exec` execs the server, so the
    /// child's pid is dialtone's.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's counters of dropped and refused input: sends it SIGUSR1
    /// and reads the event it logs in answer.
    pub fn counters(&self) -> HashMap<String, u64> {
        const EVENT: &str = "dropped and refused input so far";
        let before = self.log().matches(EVENT).count();
        let pid = self.server.as_ref().expect("server running").id();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .expect("SIGUSR1");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            if log.matches(EVENT).count() > before {
                let line = log
                    .lines()
                    .rfind(|l| l.contains(EVENT))
                    .expect("the counters' event");
                let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
                let text = v["fields"]["counters"]
                    .as_str()
                    .or_else(|| v["counters"].as_str())
                    .unwrap_or_else(|| panic!("no counters in {line}"));
                return text
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.parse().expect("a count")))
                    .collect();
            }
            assert!(Instant::now() < deadline, "no counters logged on SIGUSR1");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs udhcpc once on a phone interface; returns the variables its script saw
    /// on `bound` (empty if no lease).
    pub fn udhcpc(&self, interface: &str, args: &[&str]) -> HashMap<String, String> {
        let out = self
            .dir
            .join(format!("udhcpc-{interface}-{}.env", rand_tag()));
        let script = self.dir.join("udhcpc.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut full = vec![
            "-i", interface, "-n", "-q", "-f", "-t", "4", "-T", "1", "-A", "1",
        ];
        let s = script.display().to_string();
        full.extend_from_slice(&["-s", &s]);
        full.extend_from_slice(args);
        let r = self.cli.run("udhcpc", &full).expect("run udhcpc");
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let env = parse_env(&text);
        if env.is_empty() {
            eprintln!(
                "udhcpc got no lease: {}{}\nserver log:\n{}",
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr),
                self.log()
            );
        }
        env
    }

    /// Leases as `dialtone leases --json` prints them.
    pub fn leases(&self) -> Vec<serde_json::Value> {
        let out = std::process::Command::new(BIN)
            .args(["leases", "--json", "--config"])
            .arg(self.config_path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dialtone leases: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A hand-driven client in the phone namespace, on `interface`.
    pub fn probe(&self, interface: &str) -> Probe {
        Probe::open(&self.cli, interface)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill9();
        self.cli.kill_all();
        if std::thread::panicking() {
            eprintln!("server log ({}):\n{}", self.tag, self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn rand_tag() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// A raw DHCP client socket on port 68 inside a namespace, driven by a thread
/// that entered it. Sends crafted messages; collects replies.
pub struct Probe {
    tx: std::sync::mpsc::Sender<(Vec<u8>, SocketAddr)>,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Probe {
    fn open(ns: &Netns, interface: &str) -> Probe {
        let (tx, out_rx) = std::sync::mpsc::channel::<(Vec<u8>, SocketAddr)>();
        let (in_tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let interface = interface.to_string();
        ns.spawn_thread(move || {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_address(true)?;
            s.set_broadcast(true)?;
            s.bind_device(Some(interface.as_bytes()))?;
            s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into())?;
            let sock: UdpSocket = s.into();
            sock.set_read_timeout(Some(Duration::from_millis(5)))?;
            let _ = ready_tx.send(());
            let mut buf = [0u8; 2048];
            loop {
                loop {
                    match out_rx.try_recv() {
                        Ok((bytes, to)) => {
                            let _ = sock.send_to(&bytes, to);
                        }
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => return Ok(()),
                    }
                }
                if let Ok((n, _)) = sock.recv_from(&mut buf)
                    && in_tx.send(buf[..n].to_vec()).is_err()
                {
                    return Ok(());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("probe ready");
        Probe { tx, rx }
    }

    pub fn send(&self, m: &ClientMessage) {
        self.send_to(m, SocketAddr::from((Ipv4Addr::BROADCAST, 67)));
    }

    /// Sends arbitrary bytes to the DHCP server port (broadcast).
    pub fn send_raw(&self, bytes: Vec<u8>) {
        self.tx
            .send((bytes, SocketAddr::from((Ipv4Addr::BROADCAST, 67))))
            .unwrap();
    }

    pub fn send_to(&self, m: &ClientMessage, to: SocketAddr) {
        self.tx.send((m.encode(), to)).unwrap();
    }

    /// The next reply with this xid, within `timeout`.
    pub fn reply(&self, xid: u32, timeout: Duration) -> Option<ParsedReply> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(b) => {
                    if let Some(p) = ParsedReply::parse(&b)
                        && p.xid == xid
                    {
                        return Some(p);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// All replies that arrive within `window`.
    pub fn drain(&self, window: Duration) -> Vec<ParsedReply> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(b) => out.extend(ParsedReply::parse(&b)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                Err(_) => break,
            }
        }
        out
    }
}

/// Deterministic bytes that differ block to block.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
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
