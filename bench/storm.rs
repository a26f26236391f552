//! storm: the power comes back and a whole site's phones boot at once. The
//! load tool of bench/storm.sh: one process, one thread, one socket per
//! exchange, emulating N phones of every family through their families'
//! boot steps (`families::Step`, the recipes `lab::phone` follows one phone
//! at a time): DHCP with the family's identity, DNS, SNTP, firmware, the
//! files in the family's order over HTTP or TFTP, and a SIP REGISTER with
//! the credentials read back from the phone's own configuration file.
//!
//! Usage:
//!   storm prepare DIR N   writes DIR/dialtone.toml (@STATE@ and @TREE@ to
//!                         fill in), DIR/tree (what dialtone serves from
//!                         disk), DIR/www (the same files plus every phone's
//!                         generated configuration, for the anchor stack's
//!                         web and TFTP servers) and DIR/expected (what each
//!                         profile's answer holds, from dialtone's explain)
//!   storm run N OUT.csv   boots N phones from the phones' namespace and
//!                         writes one line per phone; prints one summary
//!                         line: seconds to the last phone done, the median
//!                         and 99th percentile of a phone's boot, phones
//!                         failed, phones that retried anything, DHCP
//!                         retransmissions, and the tool's own CPU use.
//!   STORM_TRACE=1 prints every failed phone's story, and the first phone
//!   of each family's.
//!
//! The network is fixed (bench/storm.sh builds it): the server at 10.64.0.1
//! on a /18, the pool 10.64.1.0-10.64.31.255 made local in the phones'
//! namespace by `local` routes (so the tool can use any leased address), and
//! the call server pair at 10.64.63.1 and .2 in the phones' namespace, which
//! this tool answers as registrars (the lab's stand-in, `lab::sip`).
//!
//! The site's mix, per 20 phones: 6 AudioCodes and 5 Polycom over HTTP, 3
//! Yealink, 1 Cisco (TFTP), 1 Grandstream, 2 Interaction SIP Stations, 1
//! bricked AudioCodes recovered over TFTP with its whole image, 1 generic
//! SIP phone. Of the phones whose boot reads a firmware image (AudioCodes,
//! SIP Station, Polycom), every tenth finds a newer one and fetches it
//! whole; the rest read its first KiB and go on.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use dialtone::dhcp::client::{ClientMessage, ParsedReply};
use dialtone::dhcp::options as opt;
use dialtone::families::{self, Family, LabPhone, Source, Step, Vars};
use dialtone::lab::phone::{best_srv, first_addr, text};
use dialtone::lab::sip;
use dialtone::units::Mac;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

const CALL_SERVERS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 64, 63, 1), Ipv4Addr::new(10, 64, 63, 2)];
/// The call servers' SIP port (UDP) and the ports their health is checked
/// on (TCP), as the zone says.
const SIP_PORT: u16 = 8060;
const TCP_PORTS: [u16; 3] = [8060, 8061, 5061];
/// Every image in the tree: a whole-image fetch moves this much.
const IMAGE_SIZE: usize = 8 << 20;
const HEADER: u64 = 1024;
const REALM: &str = "lab.voip";
const NONCE: &str = "5f0c9e0d1b7a";

/// Which lab phone each of 20 consecutive phones is, by profile.
const MIX: [&str; 20] = [
    "audiocodes",
    "polycom",
    "yealink",
    "audiocodes",
    "polycom",
    "interaction-sip-station",
    "audiocodes",
    "cisco",
    "yealink",
    "recovery",
    "audiocodes",
    "polycom",
    "grandstream",
    "audiocodes",
    "yealink",
    "interaction-sip-station",
    "polycom",
    "audiocodes",
    "generic-sip",
    "polycom",
];

/// One phone of the storm.
#[derive(Clone)]
struct Plan {
    index: usize,
    family: &'static Family,
    lab: &'static LabPhone,
    mac: Mac,
    /// Extension and SIP password, for the families the inventory lists.
    line: Option<(String, String)>,
    /// It finds a newer firmware and fetches the whole image.
    whole: bool,
    /// When it starts, after the storm's start.
    start: Duration,
}

fn lab_phone(profile: &str) -> Option<(&'static Family, &'static LabPhone)> {
    families::lab_phones().find(|(_, p)| p.profile == profile)
}

/// The storm's phones; the same for the same N, in prepare and run.
fn plan(n: usize) -> Result<Vec<Plan>, String> {
    let mut per_profile: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(n);
    for index in 0..n {
        let profile = MIX[index % MIX.len()];
        let (family, lab) = lab_phone(profile).ok_or(format!("no lab phone {profile}"))?;
        let nth = per_profile.entry(profile).or_default();
        *nth += 1;
        let mut mac = lab.mac;
        // The maker's OUI, then the phone's number.
        let id = index as u32 + 1;
        mac[3] = 0x40 | ((id >> 16) & 0x3f) as u8;
        mac[4] = (id >> 8) as u8;
        mac[5] = id as u8;
        let line = lab
            .line
            .as_ref()
            .map(|_| (format!("{}", 20000 + index), format!("storm-{index:05}")));
        out.push(Plan {
            index,
            family,
            lab,
            mac: Mac(mac),
            line,
            whole: *nth % 10 == 1,
            start: Duration::from_micros((index as u64 * 1_000_000) / n.max(1) as u64),
        });
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let n = |i: usize| args.get(i).and_then(|s| s.parse::<usize>().ok());
    let result = match (args.get(1).map(String::as_str), n(3)) {
        (Some("prepare"), Some(count)) => prepare(Path::new(&args[2]), count),
        (Some("run"), _) => match (n(2), args.get(3)) {
            (Some(count), Some(out)) => run(count, Path::new(out)),
            _ => Err("usage: storm run N OUT.csv".into()),
        },
        _ => Err("usage: storm prepare DIR N | storm run N OUT.csv".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storm: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- prepare

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn prepare(dir: &Path, n: usize) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let phones = plan(n)?;
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).map_err(io)?;
    // The demo's tree (firmware, the Polycom application, the SIP Station's
    // list), with every image IMAGE_SIZE long.
    dialtone::demo::families_tree(&tree).map_err(|e| e.to_string())?;
    for (name, seed) in [("450HD_3.4.6.img", 7), ("sip100.img", 11), ("sip.ld", 13)] {
        std::fs::write(tree.join(name), image(IMAGE_SIZE, seed)).map_err(io)?;
    }
    // The SIP Stations' own files are the site's, not generated.
    for p in phones
        .iter()
        .filter(|p| p.lab.profile == "interaction-sip-station")
    {
        std::fs::write(
            tree.join(format!("{}.cfg", p.mac.bare().to_ascii_uppercase())),
            format!(
                "# Interaction SIP Station {}\nsip_server=lab.voip\nline1={}\n",
                p.mac,
                20000 + p.index
            ),
        )
        .map_err(io)?;
    }

    let config = config_text(&phones);
    std::fs::write(dir.join("dialtone.toml"), &config).map_err(io)?;

    // The anchor's tree: the same files, plus each phone's configuration as
    // dialtone renders it (the anchor has no per-phone privacy).
    let www = dir.join("www");
    std::fs::create_dir_all(&www).map_err(io)?;
    for entry in std::fs::read_dir(&tree).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            std::fs::hard_link(entry.path(), www.join(entry.file_name())).map_err(io)?;
        }
    }
    let filled = config
        .replace("@STATE@", &dir.join("state-prepare").display().to_string())
        .replace("@TREE@", &tree.display().to_string());
    let parsed =
        dialtone::config::Config::parse(&dir.join("dialtone.toml").display().to_string(), &filled)
            .map_err(|e| e.to_string())?;
    let parsed = Arc::new(parsed);
    let files = dialtone::inventory::generate::PhoneFiles::new(Arc::clone(&parsed))
        .ok_or("the configuration has no [files]")?;
    let mut written = 0;
    for phone in &parsed.phones.phones {
        let Some(mac) = phone.mac else { continue };
        for kind in phone.family.generated {
            let text = files.render(phone, kind, Ipv4Addr::UNSPECIFIED)?;
            std::fs::write(www.join(kind.file_name(mac)), text).map_err(io)?;
            written += 1;
        }
    }
    eprintln!(
        "storm: {n} phones; {} in the inventory, {written} generated files in {}",
        parsed.phones.phones.len(),
        www.display()
    );
    Ok(())
}

/// dialtone's configuration for the storm: one subnet, a class per profile
/// of the mix (in the families' order, as the demo has them), the
/// inventory's phones, and the lab's zone on this network's call servers.
fn config_text(phones: &[Plan]) -> String {
    let mut c = String::from(
        r#"# bench/storm.sh: a site of phones on one subnet (written by `storm prepare`).
[server]
state_dir = "@STATE@"
interfaces = ["bsrv0"]

[dhcp]
lease_time = "1h"

[dhcp.images]
"450HD" = "450HD_3.4.6.img"

[[dhcp.subnet]]
cidr = "10.64.0.0/18"
pool = ["10.64.1.0-10.64.31.255"]
router = "10.64.0.1"
dns = ["self"]
domain = "lab.voip"
options.ntp_servers = ["self"]
options.time_offset = "-05:00"

[files]
root = "@TREE@"
tftp = true
http = ["0.0.0.0:8088"]

[time]
serve = true
"#,
    );
    let mut done: Vec<&str> = Vec::new();
    for (_, p) in families::lab_phones() {
        if MIX.contains(&p.profile) && !done.contains(&p.profile) {
            done.push(p.profile);
            let _ = writeln!(
                c,
                "\n[[dhcp.class]]\nname = \"{0}\"\nprofile = \"{0}\"",
                p.profile
            );
            if !p.class.is_empty() {
                let _ = writeln!(c, "{}", p.class);
            }
        }
    }
    for p in phones {
        let (Some((ext, password)), Some(line), Some(maker)) =
            (&p.line, &p.lab.line, p.family.makers.first())
        else {
            continue;
        };
        let _ = writeln!(
            c,
            "\n[[phone]]\nname = \"storm{}\"\nmac = \"{}\"\nmanufacturer = \"{}\"\nmodel = \"{}\"\n\
             extension = \"{ext}\"\nsip_password = \"{password}\"\nregister = \"cic\"",
            p.index, p.mac, maker.name, line.model
        );
    }
    c.push_str(&format!(
        r#"
[dns]
zone = "lab.voip"
ttl = "60s"

[[dns.host]]
name = "vm40ic1"
ip = "{}"
[[dns.host]]
name = "vm40ic2"
ip = "{}"

[[dns.switchover]]
name = "cic"
members = ["vm40ic1", "vm40ic2"]
mode = "equal"
provision_name = "provision"
services = [
  {{ srv = "_sip._udp", port = 8060 }},
  {{ srv = "_sip._tcp", port = 8060 }},
]
health = {{ check = "tcp", interval = "5s" }}
"#,
        CALL_SERVERS[0], CALL_SERVERS[1]
    ));
    c
}

// -------------------------------------------------------------------- run

/// What one phone's boot did.
struct Outcome {
    /// From the storm's start.
    started: Duration,
    done: Duration,
    result: Result<String, String>,
    dhcp_retransmissions: u32,
    /// Other messages sent again: DNS, SNTP, TFTP, SIP, HTTP reconnects.
    retries: u32,
    bytes: u64,
    trace: Vec<String>,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            started: Duration::ZERO,
            done: Duration::ZERO,
            result: Err("did not start".into()),
            dhcp_retransmissions: 0,
            retries: 0,
            bytes: 0,
            trace: Vec::new(),
        }
    }
}

/// Replies on the shared DHCP socket, routed to the phone waiting on
/// their xid.
type Waiting = Rc<RefCell<HashMap<u32, mpsc::UnboundedSender<ParsedReply>>>>;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 12th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // Clock ticks: 100 a second on Linux.
    ticks / 100.0
}

fn run(n: usize, out: &Path) -> Result<(), String> {
    let phones = plan(n)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let (outcomes, wall, cpu) = local.block_on(&rt, storm(phones.clone()))?;
    let mut csv = String::from(
        "index,profile,whole,started_ms,done_ms,boot_ms,ok,dhcp_retx,retries,bytes,result\n",
    );
    let mut boots: Vec<f64> = Vec::new();
    let (mut failed, mut retried, mut retx, mut last) = (0, 0, 0, 0f64);
    let trace = std::env::var_os("STORM_TRACE").is_some();
    let mut traced: Vec<&str> = Vec::new();
    for (p, o) in phones.iter().zip(&outcomes) {
        let boot = (o.done - o.started).as_secs_f64();
        let ok = o.result.is_ok();
        let _ = writeln!(
            csv,
            "{},{},{},{:.1},{:.1},{:.1},{},{},{},{},\"{}\"",
            p.index,
            p.lab.profile,
            p.whole,
            o.started.as_secs_f64() * 1e3,
            o.done.as_secs_f64() * 1e3,
            boot * 1e3,
            ok as u8,
            o.dhcp_retransmissions,
            o.retries,
            o.bytes,
            match &o.result {
                Ok(s) | Err(s) => s.replace('"', "'"),
            }
        );
        // A failed phone counts at the time it gave up: its boot took at
        // least that long.
        boots.push(boot);
        if ok {
            last = last.max(o.done.as_secs_f64());
        } else {
            failed += 1;
        }
        if o.dhcp_retransmissions + o.retries > 0 {
            retried += 1;
        }
        retx += o.dhcp_retransmissions;
        if trace && (!ok || !traced.contains(&p.lab.profile)) {
            traced.push(p.lab.profile);
            eprintln!("phone {} ({}, {}):", p.index, p.lab.profile, p.mac);
            for t in &o.trace {
                eprintln!("  {t}");
            }
            eprintln!("  => {:?}", o.result);
        }
    }
    std::fs::write(out, csv).map_err(|e| e.to_string())?;
    boots.sort_by(f64::total_cmp);
    let pct = |q: f64| -> f64 {
        if boots.is_empty() {
            return f64::NAN;
        }
        let i = ((boots.len() as f64 * q).ceil() as usize).clamp(1, boots.len()) - 1;
        boots[i]
    };
    if failed > 0 {
        last = wall;
    }
    println!(
        "phones {n} last {last:.3} p50 {:.3} p99 {:.3} failed {failed} retried {retried} dhcp_retx {retx} tool_cpu {:.0}%",
        pct(0.5),
        pct(0.99),
        100.0 * cpu / wall.max(1e-9)
    );
    Ok(())
}

async fn storm(phones: Vec<Plan>) -> Result<(Vec<Outcome>, f64, f64), String> {
    // The call servers: registrars on UDP, health checks on TCP.
    let registrar = Rc::new(sip::Registrar {
        users: phones.iter().filter_map(|p| p.line.clone()).collect(),
        realm: REALM.into(),
        nonce: NONCE.into(),
    });
    for ip in CALL_SERVERS {
        let udp = UdpSocket::bind((ip, SIP_PORT))
            .await
            .map_err(|e| format!("cannot bind the call server {ip}:{SIP_PORT}: {e}"))?;
        let r = Rc::clone(&registrar);
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let req = String::from_utf8_lossy(&buf[..n]);
                if let Some(answer) = r.answer(&req) {
                    let _ = udp.send_to(answer.as_bytes(), from).await;
                }
            }
        });
        for port in TCP_PORTS {
            let tcp = TcpListener::bind((ip, port))
                .await
                .map_err(|e| format!("cannot listen on {ip}:{port}: {e}"))?;
            tokio::task::spawn_local(async move {
                while let Ok((conn, _)) = tcp.accept().await {
                    drop(conn);
                }
            });
        }
    }

    // The phones' DHCP socket: port 68 on the phones' link; replies are
    // broadcast (the phones set the flag) and found by xid.
    let dhcp = {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .map_err(|e| e.to_string())?;
        s.set_reuse_address(true).map_err(|e| e.to_string())?;
        s.set_broadcast(true).map_err(|e| e.to_string())?;
        let _ = s.set_recv_buffer_size(8 << 20);
        s.bind_device(Some(b"bcli0"))
            .map_err(|e| format!("bcli0: {e}"))?;
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into())
            .map_err(|e| format!("cannot bind port 68: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Rc::new(UdpSocket::from_std(s.into()).map_err(|e| e.to_string())?)
    };
    let waiting: Waiting = Rc::new(RefCell::new(HashMap::new()));
    {
        let (sock, waiting) = (Rc::clone(&dhcp), Rc::clone(&waiting));
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 1500];
            while let Ok(n) = sock.recv(&mut buf).await {
                if let Some(r) = ParsedReply::parse(&buf[..n])
                    && let Some(tx) = waiting.borrow().get(&r.xid)
                {
                    let _ = tx.send(r);
                }
            }
        });
    }

    // Let the listeners start before the first phone.
    sleep(Duration::from_millis(50)).await;
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(phones.len());
    for p in phones {
        let (dhcp, waiting) = (Rc::clone(&dhcp), Rc::clone(&waiting));
        tasks.push(tokio::task::spawn_local(async move {
            tokio::time::sleep_until(t0 + p.start).await;
            let mut phone = Phone {
                plan: &p,
                dhcp,
                waiting,
                ip: Ipv4Addr::UNSPECIFIED,
                dns: None,
                out: Outcome {
                    started: t0.elapsed(),
                    ..Outcome::default()
                },
            };
            phone.out.result = phone.boot().await;
            phone.out.done = t0.elapsed();
            phone.out
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await.map_err(|e| e.to_string())?);
    }
    let wall = t0.elapsed().as_secs_f64();
    Ok((outcomes, wall, cpu_seconds() - cpu0))
}

/// Where the files come from.
#[derive(Clone)]
enum Base {
    Http(Ipv4Addr, u16, String),
    Tftp(Ipv4Addr),
}

struct Phone<'a> {
    plan: &'a Plan,
    dhcp: Rc<UdpSocket>,
    waiting: Waiting,
    ip: Ipv4Addr,
    dns: Option<Ipv4Addr>,
    out: Outcome,
}

const DHCPDISCOVER: u8 = 1;
const DHCPOFFER: u8 = 2;
const DHCPREQUEST: u8 = 3;
const DHCPACK: u8 = 5;
const DHCPNAK: u8 = 6;

impl Phone<'_> {
    fn note(&mut self, s: impl Into<String>) {
        if std::env::var_os("STORM_TRACE").is_some() {
            let at = self.out.started.as_secs_f64();
            self.out.trace.push(format!("[{at:.3}] {}", s.into()));
        }
    }

    fn vars(&self) -> Vars {
        let lab = self.plan.lab;
        Vars {
            mac: self.plan.mac.bare(),
            model: lab
                .user_class
                .or(lab.vendor_class)
                .unwrap_or("400HD")
                .to_string(),
            part: lab.part.unwrap_or("0000-00000-000").to_string(),
            computer: String::new(),
        }
    }

    fn agent(&self) -> String {
        let lab = self.plan.lab;
        let model = lab.user_class.or(lab.vendor_class).unwrap_or("phone");
        lab.agent
            .replace("{model}", model)
            .replace("{mac}", &self.plan.mac.bare())
    }

    fn message(&self, kind: u8, xid: u32, vendor: Option<&str>, requests: &[u8]) -> ClientMessage {
        let lab = self.plan.lab;
        let mut m = ClientMessage::new(kind, self.plan.mac, xid)
            .requests(requests)
            .broadcast();
        if let Some(v) = vendor {
            m = m.option(opt::VENDOR_CLASS, v.as_bytes().to_vec());
        }
        if let Some(u) = lab.user_class {
            let mut b = vec![u.len() as u8];
            b.extend_from_slice(u.as_bytes());
            m = m.option(opt::USER_CLASS, b);
        }
        m
    }

    /// Sends `m` and waits for an answer of the `wanted` types; sends it
    /// again after 4, 8, 16 and 32 seconds, each randomized by up to a
    /// second either way as RFC 2131 (4.1) has it, and gives up 64 seconds
    /// after the last.
    async fn exchange(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<ParsedReply>,
        m: &ClientMessage,
        wanted: &[u8],
    ) -> Result<ParsedReply, String> {
        let bytes = m.encode();
        let to = SocketAddr::from((Ipv4Addr::BROADCAST, 67));
        let mut wait = Duration::from_secs(4);
        for attempt in 0..5u32 {
            if attempt > 0 {
                self.out.dhcp_retransmissions += 1;
                self.note(format!("DHCP message {} again", m.msg_type));
            }
            self.dhcp
                .send_to(&bytes, to)
                .await
                .map_err(|e| e.to_string())?;
            // The phone's own pseudo-random second either way.
            let spread = (self.plan.index as u64 * 7919 + u64::from(attempt) * 104_729) % 2001;
            let until =
                Instant::now() + wait + Duration::from_millis(spread) - Duration::from_secs(1);
            loop {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(r)) if r.msg_type().is_some_and(|t| wanted.contains(&t)) => {
                        return Ok(r);
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => return Err("the DHCP socket closed".into()),
                    Err(_) => break,
                }
            }
            wait = (wait * 2).min(Duration::from_secs(64));
        }
        Err(format!("no answer to DHCP message {}", m.msg_type))
    }

    /// DISCOVER, OFFER, REQUEST, ACK: the ACK.
    /// A lease; after a DHCPNAK the phone starts over from DISCOVER (RFC
    /// 2131 3.1), three times at most, each counted as a retry.
    async fn lease(
        &mut self,
        vendor: Option<&str>,
        requests: &[u8],
        round: u32,
    ) -> Result<ParsedReply, String> {
        let mut naks = 0;
        loop {
            match self.lease_once(vendor, requests, round * 4 + naks).await {
                Err(e) if e == "DHCPNAK" && naks < 3 => {
                    naks += 1;
                    self.out.retries += 1;
                    self.note("DHCPNAK: starting over");
                }
                other => return other,
            }
        }
    }

    async fn lease_once(
        &mut self,
        vendor: Option<&str>,
        requests: &[u8],
        round: u32,
    ) -> Result<ParsedReply, String> {
        let xid = u32::from_be_bytes([
            self.plan.mac.0[3] ^ (round as u8).wrapping_mul(0x5b),
            self.plan.mac.0[4],
            self.plan.mac.0[5],
            self.plan.mac.0[2],
        ]) ^ 0x5a5a_0000;
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.waiting.borrow_mut().insert(xid, tx);
        let got = async {
            let offer = self
                .exchange(
                    &mut rx,
                    &self.message(DHCPDISCOVER, xid, vendor, requests),
                    &[DHCPOFFER],
                )
                .await?;
            let server =
                first_addr(&offer, opt::SERVER_ID).ok_or("an offer without a server identifier")?;
            let request = self
                .message(DHCPREQUEST, xid, vendor, requests)
                .requested_ip(offer.yiaddr)
                .server_id(server);
            let ack = self
                .exchange(&mut rx, &request, &[DHCPACK, DHCPNAK])
                .await?;
            if ack.msg_type() == Some(DHCPNAK) {
                return Err("DHCPNAK".to_string());
            }
            Ok(ack)
        }
        .await;
        self.waiting.borrow_mut().remove(&xid);
        got
    }

    async fn boot(&mut self) -> Result<String, String> {
        let lab = self.plan.lab;
        let reply = self
            .lease(lab.vendor_class, lab.requests, 0)
            .await
            .map_err(|e| format!("DHCP: {e}"))?;
        self.ip = reply.yiaddr;
        self.dns = first_addr(&reply, opt::DNS_SERVERS);
        self.note(format!("leased {}", self.ip));
        if let Some(ntp) =
            first_addr(&reply, opt::NTP_SERVERS).or(first_addr(&reply, opt::TIME_SERVERS))
        {
            self.sntp(ntp).await?;
        }
        self.steps(&reply).await
    }

    async fn udp(&self) -> Result<UdpSocket, String> {
        UdpSocket::bind((self.ip, 0))
            .await
            .map_err(|e| format!("bind {}: {e}", self.ip))
    }

    /// One question, asked up to three times two seconds apart.
    async fn ask(&mut self, name: &str, qtype: RecordType) -> Result<Vec<String>, String> {
        let server = self.dns.ok_or("no DNS server (option 6)")?;
        let qname = Name::from_ascii(name).map_err(|e| format!("{name}: {e}"))?;
        let id = (self.plan.index as u16)
            .wrapping_mul(7)
            .wrapping_add(u16::from(qtype));
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(qname, qtype));
        let wire = m.to_vec().map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        let n = self
            .exchange_udp(SocketAddr::from((server, 53)), &wire, &mut buf, |_| true)
            .await?
            .ok_or_else(|| format!("no DNS answer for {name} {qtype}"))?;
        let r = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
        let mut answers: Vec<String> = r
            .answers
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::A(a) if qtype == RecordType::A => Some(a.0.to_string()),
                RData::SRV(s) => Some(format!(
                    "{} {} {} {}",
                    s.priority, s.weight, s.port, s.target
                )),
                _ => None,
            })
            .collect();
        answers.sort();
        self.note(format!("DNS {name} {qtype}: {answers:?}"));
        Ok(answers)
    }

    /// One question over UDP from the phone's address, asked up to three
    /// times two seconds apart (a retry each time again): the length of the
    /// first answer `fits` accepts, or `None`.
    async fn exchange_udp(
        &mut self,
        to: SocketAddr,
        question: &[u8],
        buf: &mut [u8],
        fits: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<usize>, String> {
        let sock = self.udp().await?;
        for attempt in 0..3 {
            if attempt > 0 {
                self.out.retries += 1;
            }
            sock.send_to(question, to)
                .await
                .map_err(|e| e.to_string())?;
            if let Ok(Ok(n)) = timeout(Duration::from_secs(2), sock.recv(buf)).await
                && fits(&buf[..n])
            {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    async fn resolve(&mut self, host: &str) -> Result<Ipv4Addr, String> {
        if let Ok(ip) = host.parse() {
            return Ok(ip);
        }
        self.ask(host, RecordType::A)
            .await?
            .first()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("cannot resolve {host}"))
    }

    async fn sntp(&mut self, server: Ipv4Addr) -> Result<(), String> {
        let mut req = [0u8; 48];
        req[0] = (4 << 3) | 3;
        let mut buf = [0u8; 68];
        let to = SocketAddr::from((server, 123));
        self.exchange_udp(to, &req, &mut buf, |r| r.len() >= 48 && r[0] & 7 == 4)
            .await?
            .ok_or_else(|| format!("no SNTP answer from {server}"))?;
        self.note(format!("SNTP from {server}: stratum {}", buf[1]));
        Ok(())
    }

    /// A GET of `path`, a new connection each time as phones do; up to three
    /// tries when the connection fails. The status and, when `keep`, the
    /// body (else its length only).
    async fn http(
        &mut self,
        server: Ipv4Addr,
        port: u16,
        path: &str,
        range: Option<u64>,
        keep: bool,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut why = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                self.out.retries += 1;
                sleep(Duration::from_secs(1)).await;
            }
            match self.http_once(server, port, path, range, keep).await {
                Ok(r) => return Ok(r),
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    async fn http_once(
        &mut self,
        server: Ipv4Addr,
        port: u16,
        path: &str,
        range: Option<u64>,
        keep: bool,
    ) -> Result<(u16, Vec<u8>), String> {
        let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        sock.bind(SocketAddr::from((self.ip, 0)))
            .map_err(|e| e.to_string())?;
        let mut s = timeout(
            Duration::from_secs(5),
            sock.connect(SocketAddr::from((server, port))),
        )
        .await
        .map_err(|_| format!("connect to {server}:{port} timed out"))?
        .map_err(|e| format!("connect to {server}:{port}: {e}"))?;
        let range = range
            .map(|n| format!("Range: bytes=0-{}\r\n", n.saturating_sub(1)))
            .unwrap_or_default();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {server}:{port}\r\nUser-Agent: {}\r\n{range}Connection: close\r\n\r\n",
            self.agent()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut body = Vec::new();
        let mut buf = vec![0u8; if keep { 16 << 10 } else { 256 << 10 }];
        let mut total = 0u64;
        let read = async {
            loop {
                let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Ok::<(), String>(());
                }
                if head.is_empty() || !head.ends_with(b"\r\n\r\n") {
                    // Still in the header: keep everything until its end.
                    head.extend_from_slice(&buf[..n]);
                    if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        let rest = head.split_off(end + 4);
                        total += rest.len() as u64;
                        if keep {
                            body.extend_from_slice(&rest);
                        }
                    }
                } else {
                    total += n as u64;
                    if keep {
                        body.extend_from_slice(&buf[..n]);
                    }
                }
            }
        };
        timeout(Duration::from_secs(60), read)
            .await
            .map_err(|_| format!("GET {path}: no end within 60 s"))??;
        let status = String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("GET {path}: an answer without a status"))?;
        self.out.bytes += total;
        Ok((status, body))
    }

    /// One TFTP read, started again from the request two seconds after a
    /// server's refusal other than "file not found" (a busy server), as
    /// phones keep trying; ten tries at most.
    async fn tftp(&mut self, server: Ipv4Addr, name: &str, keep: bool) -> Result<Vec<u8>, String> {
        let mut tries = 0;
        loop {
            match self.tftp_once(server, name, keep).await {
                Err(e) if !e.contains("error 1:") && e.contains(": error ") && tries < 10 => {
                    tries += 1;
                    self.out.retries += 1;
                    self.note(e);
                    sleep(Duration::from_secs(2)).await;
                }
                other => return other,
            }
        }
    }

    /// One TFTP read (octet, blksize 1468, lockstep), each silence of a
    /// second answered by sending the last message again, five at most.
    async fn tftp_once(
        &mut self,
        server: Ipv4Addr,
        name: &str,
        keep: bool,
    ) -> Result<Vec<u8>, String> {
        use dialtone::files::tftp::packet::{self, Packet};
        let sock = self.udp().await?;
        let rrq = packet::rrq(name, &[("blksize", "1468")]);
        let (mut blksize, mut expect) = (512usize, 1u16);
        let mut out = Vec::new();
        let mut last = rrq.clone();
        let mut to = SocketAddr::from((server, 69));
        let mut peer: Option<SocketAddr> = None;
        let mut buf = vec![0u8; 2048];
        let mut quiet = 0;
        sock.send_to(&rrq, to).await.map_err(|e| e.to_string())?;
        // One timer for the transfer, moved only when it fires before the
        // silence is a second long: a timer set and cancelled per block
        // cost the tool a third of its core with 50 recoveries at once.
        let mut heard = Instant::now();
        let timer = sleep(Duration::from_secs(1));
        tokio::pin!(timer);
        loop {
            let got = tokio::select! {
                r = sock.recv_from(&mut buf) => Some(r),
                () = &mut timer => None,
            };
            let (n, src) = match got {
                Some(Ok(x)) => x,
                None if heard.elapsed() < Duration::from_secs(1) => {
                    timer.as_mut().reset(heard + Duration::from_secs(1));
                    continue;
                }
                _ => {
                    heard = Instant::now();
                    timer.as_mut().reset(heard + Duration::from_secs(1));
                    quiet += 1;
                    if quiet > 5 {
                        return Err(format!("TFTP {name}: the server stopped answering"));
                    }
                    self.out.retries += 1;
                    sock.send_to(&last, to).await.map_err(|e| e.to_string())?;
                    continue;
                }
            };
            if peer.is_some_and(|p| p != src) {
                continue;
            }
            heard = Instant::now();
            quiet = 0;
            peer = Some(src);
            to = src;
            match packet::parse(&buf[..n]) {
                Ok(Packet::OptionAck) => {
                    blksize = packet::oack_value(&buf[..n], "blksize")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(512);
                    last = packet::ack(0);
                }
                Ok(Packet::Data { block, data }) => {
                    if block == expect {
                        self.out.bytes += data.len() as u64;
                        if keep {
                            out.extend_from_slice(data);
                        }
                        expect = expect.wrapping_add(1);
                        last = packet::ack(block);
                        if data.len() < blksize {
                            sock.send_to(&last, to).await.map_err(|e| e.to_string())?;
                            return Ok(out);
                        }
                    }
                }
                Ok(Packet::Error { code, message }) => {
                    return Err(format!("TFTP {name}: error {code}: {message}"));
                }
                _ => continue,
            }
            sock.send_to(&last, to).await.map_err(|e| e.to_string())?;
        }
    }

    /// `name` from `base`; `None` for a miss (HTTP 404, TFTP error).
    async fn get(
        &mut self,
        base: &Base,
        name: &str,
        range: Option<u64>,
        keep: bool,
    ) -> Result<Option<Vec<u8>>, String> {
        let got = match base {
            Base::Http(ip, port, dir) => {
                let (status, body) = self
                    .http(*ip, *port, &format!("{dir}{name}"), range, keep)
                    .await?;
                self.note(format!(
                    "GET {dir}{name}{}: {status}",
                    if range.is_some() { " (part)" } else { "" }
                ));
                (status == 200 || status == 206).then_some(body)
            }
            Base::Tftp(ip) => match self.tftp(*ip, name, keep).await {
                Ok(b) => {
                    self.note(format!("TFTP {name}: {} bytes", b.len()));
                    Some(b)
                }
                Err(e) if e.contains(": error ") => {
                    self.note(e);
                    None
                }
                Err(e) => return Err(e),
            },
        };
        Ok(got)
    }

    /// A firmware image: its first KiB to compare versions (over HTTP), and
    /// the whole image when this phone finds a newer one.
    async fn firmware(&mut self, base: &Base, image: &str) -> Result<(), String> {
        let whole = self.plan.whole || matches!(base, Base::Tftp(_));
        if let Base::Http(..) = base {
            self.get(base, image, Some(HEADER), false)
                .await?
                .ok_or_else(|| format!("no firmware {image}"))?;
        }
        if whole {
            self.get(base, image, None, false)
                .await?
                .ok_or_else(|| format!("no firmware {image}"))?;
        }
        Ok(())
    }

    async fn server(&mut self, reply: &ParsedReply, source: Source) -> Result<Base, String> {
        match source {
            Source::Url(code) => {
                let url = text(reply, code).ok_or_else(|| format!("no option {code}"))?;
                if !url.contains("://") {
                    return Ok(Base::Tftp(self.resolve(url.trim()).await?));
                }
                let (scheme, host, port, path) = dialtone::lab::phone::split_url(&url)
                    .ok_or_else(|| format!("option {code} `{url}` is not a URL"))?;
                let (tftp, host) = (scheme == "tftp", host.to_string());
                let ip = self.resolve(&host).await?;
                Ok(if tftp {
                    Base::Tftp(ip)
                } else {
                    Base::Http(ip, port, path)
                })
            }
            Source::FirstAddress(code) => first_addr(reply, code)
                .map(Base::Tftp)
                .ok_or_else(|| format!("no option {code}")),
        }
    }

    async fn registrar(
        &mut self,
        host: &str,
        port: u16,
        srv: &str,
    ) -> Result<(String, u16), String> {
        if port != 0 {
            return Ok((host.to_string(), port));
        }
        let answers = self.ask(&format!("{srv}.{host}"), RecordType::SRV).await?;
        best_srv(&answers).ok_or_else(|| format!("no SRV record for {srv}.{host}"))
    }

    /// REGISTER, the digest answer to the challenge, the final answer; each
    /// request sent again after 0.5, 1 and 2 s (RFC 3261 timer E).
    async fn register(
        &mut self,
        r: &families::Registration,
        host: &str,
        port: u16,
    ) -> Result<String, String> {
        let ip = self.resolve(host).await?;
        let to = SocketAddr::from((ip, port));
        let mac = self.plan.mac.bare();
        let user = r.line.clone().unwrap_or(mac);
        let auth_user = r.user.clone().unwrap_or(user.clone());
        let account = sip::Account {
            user: &user,
            domain: &r.host,
            auth: r.password.as_deref().map(|p| (auth_user.as_str(), p)),
        };
        let sock = self.udp().await?;
        let local = sock.local_addr().map_err(|e| e.to_string())?;
        let call_id = sip::md5_hex(&format!("{local}{to}{user}"))[..16].to_string();
        let answer_to = |cseq: u32, auth: Option<String>| {
            let req = sip::register_request(&account, local, &call_id, cseq, auth.as_deref());
            let sock = &sock;
            async move {
                let mut wait = Duration::from_millis(500);
                let mut buf = vec![0u8; 4096];
                for resent in 0..4u32 {
                    sock.send_to(req.as_bytes(), to)
                        .await
                        .map_err(|e| e.to_string())?;
                    let until = Instant::now() + wait;
                    while let Ok(Ok(n)) = tokio::time::timeout_at(until, sock.recv(&mut buf)).await
                    {
                        let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let ours = sip::header(&resp, "CSeq")
                            .is_some_and(|c| c.starts_with(&format!("{cseq} ")));
                        if ours && sip::status(&resp).is_some_and(|(c, _)| c >= 200) {
                            return Ok((resp, resent));
                        }
                    }
                    wait *= 2;
                }
                Err(format!("no SIP answer from {to}"))
            }
        };
        let (first, n1) = answer_to(1, None).await?;
        let (code, reason) = sip::status(&first).ok_or("an answer that is not SIP")?;
        let (last, n2) = match (code, account.auth) {
            (401 | 407, Some((name, password))) => {
                let h = if code == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let challenge = sip::header(&first, h)
                    .and_then(sip::Challenge::parse)
                    .ok_or_else(|| format!("{code} {reason} without a challenge"))?;
                let uri = format!("sip:{}", account.domain);
                let answer = challenge.answer(
                    "REGISTER",
                    &uri,
                    name,
                    password,
                    &sip::md5_hex(&call_id)[..8],
                );
                answer_to(2, Some(answer)).await?
            }
            (401 | 407, None) => return Err(format!("{code} {reason} (no credentials)")),
            _ => (first, 0),
        };
        self.out.retries += n1 + n2;
        let (code, reason) = sip::status(&last).ok_or("an answer that is not SIP")?;
        let line = format!("REGISTER {user} at {host}:{port}: {code} {reason}");
        self.note(line.clone());
        if code == 200 { Ok(line) } else { Err(line) }
    }

    async fn steps(&mut self, reply: &ParsedReply) -> Result<String, String> {
        let vars = self.vars();
        let mut base: Option<Base> = None;
        let mut got = families::Fetched {
            files: Vec::new(),
            domain: text(reply, opt::DOMAIN_NAME),
        };
        let mut result = Err("its boot has no last step".to_string());
        let lab = self.plan.lab;
        for step in lab.steps {
            let server = |b: &Option<Base>| b.clone().ok_or("no provisioning server".to_string());
            match *step {
                Step::Server(source) => base = Some(self.server(reply, source).await?),
                Step::Firmware { requires_67 } => {
                    let b = server(&base)?;
                    let image = match text(reply, opt::BOOTFILE) {
                        Some(i) => i,
                        None if requires_67 => return Err("no option 67".into()),
                        None => format!("{}.img", vars.model),
                    };
                    self.firmware(&b, &image).await?;
                }
                Step::Get { name, optional } => {
                    let b = server(&base)?;
                    let name = vars.fill(name);
                    match self.get(&b, &name, None, true).await? {
                        Some(body) => got.files.push((name, body)),
                        None if optional => {}
                        None => return Err(format!("no {name}")),
                    }
                }
                Step::Listed(list) => {
                    let b = server(&base)?;
                    let last = got
                        .files
                        .last()
                        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                    for name in list(&last, &vars) {
                        if name.ends_with(".ld") {
                            // The application image: firmware.
                            self.firmware(&b, &name).await?;
                            continue;
                        }
                        let body = self
                            .get(&b, &name, None, true)
                            .await?
                            .ok_or_else(|| format!("no {name}"))?;
                        got.files.push((name, body));
                    }
                }
                Step::Reflash { requests } => {
                    let server = text(reply, opt::TFTP_SERVER).ok_or("no option 66")?;
                    let server: Ipv4Addr = server
                        .parse()
                        .map_err(|_| format!("option 66 `{server}` is not an address"))?;
                    let image = text(reply, opt::BOOTFILE).ok_or("no option 67")?;
                    self.get(&Base::Tftp(server), &image, None, false)
                        .await?
                        .ok_or_else(|| format!("no image {image}"))?;
                    // Flashed: it asks again as a working phone, its model
                    // in option 60.
                    let back = self
                        .lease(lab.user_class, requests, 1)
                        .await
                        .map_err(|e| format!("after the image: {e}"))?;
                    result = Ok(format!("flashed, back at {}", back.yiaddr));
                }
                Step::Register { read, srv } | Step::Locate { read, srv } => {
                    let r = read(&got)?;
                    let (host, port) = self.registrar(&r.host, r.port, srv).await?;
                    result = match step {
                        Step::Register { .. } => self.register(&r, &host, port).await,
                        _ => Ok(format!("registers at {host}:{port}")),
                    };
                }
                Step::Configured => result = Ok("configured".into()),
            }
        }
        result
    }
}
