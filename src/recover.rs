//! `dialtone recover`: the bricked AudioCodes phone on a bare cable.
//!
//! No configuration file: the manual's recovery set-up (PHONES.md section 3)
//! is put on one interface. The interface gets 192.168.1.1/24 unless it
//! already has an address (then that one is used); a pool of five addresses
//! follows the server's own; a client that asks for options 66 and 67 gets
//! this server and the image for the model it gives in option 77; the
//! images are served over TFTP from where they lie. What happens is printed
//! as it happens: each phone's address, its image's progress, when the image
//! has gone in full, and when the phone comes back and asks for an address
//! again. On exit (Ctrl-C, SIGTERM, or an error) an address dialtone added
//! is removed and a link it brought up is set down again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use crate::config::Config;
use crate::files::resolve::{Body, Client, Found, Generator, Miss};
use crate::files::transfers::{InFlight, Live, Outcome, Transfer};
use crate::leases::Lease;
use crate::net::ifaces;
use crate::serve::Extras;
use crate::units::{Ipv4Net, Mac};

/// The manual's set-up: the server at 192.168.1.1/24.
pub const DEFAULT_ADDRESS: &str = "192.168.1.1/24";
/// Addresses handed out, after the server's own.
const POOL_SIZE: u32 = 5;
/// How often progress is printed while an image goes out.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// One `--image MODEL=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// As given; matched against option 77 without regard to case.
    pub model: String,
    pub path: PathBuf,
}

impl std::str::FromStr for Image {
    type Err = String;
    fn from_str(s: &str) -> Result<Image, String> {
        let (model, path) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected MODEL=FILE, e.g. 450HD=450HD_3.4.6.img"))?;
        let model = model.trim();
        if model.is_empty()
            || !model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "`{s}`: the model must be letters and digits as the phone gives it in option 77, e.g. 450HD"
            ));
        }
        if path.trim().is_empty() {
            return Err(format!("`{s}`: no image file after `=`"));
        }
        Ok(Image {
            model: model.to_string(),
            path: PathBuf::from(path.trim()),
        })
    }
}

/// The images by the name a phone asks for (option 67: the file's own
/// name), checked: readable regular files, one per model, names distinct.
#[derive(Debug, Clone)]
pub struct Images {
    /// Lower-case file name -> (model, path, size).
    by_name: BTreeMap<String, (String, PathBuf, u64)>,
}

impl Images {
    pub fn check(images: &[Image]) -> anyhow::Result<Images> {
        if images.is_empty() {
            bail!(
                "give at least one image: --image MODEL=FILE, e.g. --image 450HD=450HD_3.4.6.img"
            );
        }
        let mut by_name = BTreeMap::new();
        let mut models = BTreeMap::new();
        for i in images {
            let meta = std::fs::metadata(&i.path)
                .with_context(|| format!("image for {}: {}", i.model, i.path.display()))?;
            if !meta.is_file() {
                bail!("image for {}: {} is not a file", i.model, i.path.display());
            }
            std::fs::File::open(&i.path)
                .with_context(|| format!("image for {}: {}", i.model, i.path.display()))?;
            let name = i
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| !n.contains(char::is_whitespace))
                .with_context(|| {
                    format!(
                        "image for {}: {}: the file name must be text without spaces (phones ask for it by name)",
                        i.model,
                        i.path.display()
                    )
                })?;
            if let Some(before) = models.insert(i.model.to_ascii_uppercase(), &i.path) {
                bail!(
                    "model {} is given twice ({} and {})",
                    i.model,
                    before.display(),
                    i.path.display()
                );
            }
            if by_name
                .insert(
                    name.to_ascii_lowercase(),
                    (i.model.clone(), i.path.clone(), meta.len()),
                )
                .is_some()
            {
                bail!("two images are named {name}: rename one (phones ask for the name alone)");
            }
        }
        Ok(Images { by_name })
    }

    /// The image file name for `model` (option 77), if one was given.
    pub fn for_model(&self, model: &str) -> Option<&str> {
        self.by_name
            .iter()
            .find(|(_, (m, _, _))| m.eq_ignore_ascii_case(model))
            .map(|(_, (_, p, _))| p.file_name().and_then(|n| n.to_str()).unwrap_or_default())
    }

    fn models(&self) -> String {
        self.by_name
            .values()
            .map(|(m, _, _)| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The images, served by name from where they lie (the tree is empty).
impl Generator for Images {
    fn generate(&self, path: &[String], _client: &Client) -> Option<Result<Found, Miss>> {
        let [name] = path else { return None };
        let (_, real, _) = self.by_name.get(&name.to_ascii_lowercase())?;
        let opened = std::fs::File::open(real).and_then(|f| Ok((f.metadata()?, f)));
        Some(match opened {
            Ok((meta, file)) => Ok(Found {
                path: real
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(name)
                    .to_string(),
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                body: Body::File(file),
            }),
            Err(e) => Err(Miss::Io(e)),
        })
    }
}

/// The configuration `recover` runs: `net` is the interface's address.
pub fn config_text(interface: &str, net: Ipv4Net, state_dir: &Path, images: &Images) -> String {
    let own = u32::from(net.addr);
    let last_host = u32::from(net.broadcast()).saturating_sub(1);
    let first = own + 1;
    let last = (own + POOL_SIZE).min(last_host);
    let mut t = String::new();
    let _ = writeln!(t, "[server]");
    let _ = writeln!(
        t,
        "state_dir = {:?}",
        state_dir.join("state").display().to_string()
    );
    let _ = writeln!(t, "interfaces = [{interface:?}]");
    let _ = writeln!(t, "[dhcp]\nlease_time = \"10m\"");
    let _ = writeln!(t, "[[dhcp.subnet]]");
    let _ = writeln!(t, "cidr = \"{}/{}\"", net.network(), net.prefix);
    let _ = writeln!(
        t,
        "pool = [\"{}-{}\"]",
        Ipv4Addr::from(first),
        Ipv4Addr::from(last)
    );
    let _ = writeln!(t, "router = \"self\"");
    let _ = writeln!(t, "[dhcp.images]");
    for (model, path, _) in images.by_name.values() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let _ = writeln!(t, "{model:?} = {name:?}");
    }
    let _ = writeln!(
        t,
        "[[dhcp.class]]\nname = \"recovery\"\nprofile = \"recovery\""
    );
    let _ = writeln!(t, "[time]\nserve = false");
    let _ = writeln!(t, "[files]");
    let _ = writeln!(
        t,
        "root = {:?}",
        state_dir.join("tree").display().to_string()
    );
    let _ = writeln!(t, "http = []\nprivate = []");
    // Its own lines are the recovery's report: no status page, and no
    // syslog port taken on a technician's laptop.
    let _ = writeln!(t, "[admin]\nlisten = \"off\"\n[syslog]\nserve = false");
    t
}

/// What recover has seen of one phone.
#[derive(Debug, Clone, Default)]
struct Phone {
    model: Option<String>,
    address: Option<Ipv4Addr>,
    /// The image went out in full.
    imaged: bool,
    /// It asked for an address again after that.
    back: bool,
}

/// The phones and the lines to print about them. No I/O.
#[derive(Debug)]
pub struct Board {
    phones: BTreeMap<Mac, Phone>,
    images: Images,
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl Board {
    pub fn new(images: &Images) -> Board {
        Board {
            phones: BTreeMap::new(),
            images: images.clone(),
        }
    }

    fn label(&self, mac: Mac) -> String {
        let model = self
            .phones
            .get(&mac)
            .and_then(|p| p.model.clone())
            .unwrap_or_else(|| "?".into());
        format!("{mac}  {model:<7}")
    }

    /// A lease was stored for a phone: a line when it is news (a new
    /// address, or the phone back after its image).
    pub fn lease(&mut self, l: &Lease) -> Option<String> {
        let model =
            crate::dhcp::options::model_of(l.user_class.as_deref(), l.vendor_class.as_deref())
                .map(str::to_string);
        let p = self.phones.entry(l.mac).or_default();
        let moved = p.address.replace(l.ip) != Some(l.ip);
        if model.is_some() {
            p.model.clone_from(&model);
        }
        let came_back = p.imaged && !p.back;
        p.back |= came_back;
        let label = self.label(l.mac);
        if came_back {
            let vc = l.vendor_class.as_deref().unwrap_or("-");
            return Some(format!(
                "{label}  is back: asked for an address again after its image ({}, vendor class {vc}): recovered",
                l.ip
            ));
        }
        if !moved {
            return None;
        }
        let image = match model.as_deref() {
            Some(m) => match self.images.for_model(m) {
                Some(i) => format!("image {i}"),
                None => format!(
                    "no image was given for model {m} (given: {}); it is told {m}.img, which is not here",
                    self.images.models()
                ),
            },
            None => "no model in option 77 or 60: no image".into(),
        };
        Some(format!("{label}  got {}  {image}", l.ip))
    }

    /// A transfer ended.
    pub fn transfer(&mut self, t: &Transfer) -> String {
        let Some(mac) = t.mac else {
            return format!(
                "{}  (no lease)  {}: {}",
                t.client,
                t.requested,
                t.outcome.as_str()
            );
        };
        let p = self.phones.entry(mac).or_default();
        let secs = t.started.elapsed().as_secs_f64();
        let line = match t.outcome {
            Outcome::Complete => {
                p.imaged = true;
                p.back = false;
                format!(
                    "image {} sent in full ({} in {secs:.1} s); the phone now writes it and restarts",
                    t.requested,
                    mb(t.sent)
                )
            }
            o => format!(
                "image {}: {} after {}{}",
                t.requested,
                o.as_str(),
                mb(t.sent),
                if t.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", t.detail)
                }
            ),
        };
        format!("{}  {line}", self.label(mac))
    }

    /// A line for a transfer in progress.
    pub fn progress(&self, f: &InFlight) -> String {
        let sent = f.sent();
        let secs = f.started.elapsed().as_secs_f64().max(0.001);
        let pct = (sent * 100).checked_div(f.total).unwrap_or(100);
        let who = match f.mac {
            Some(m) => self.label(m),
            None => format!("{}", f.client),
        };
        format!(
            "{who}  {}  {} of {} ({pct}%)  {:.1} MB/s",
            f.file,
            mb(sent),
            mb(f.total),
            sent as f64 / 1e6 / secs
        )
    }

    /// The phones that came back after their image.
    pub fn recovered(&self) -> Vec<Mac> {
        self.phones
            .iter()
            .filter(|(_, p)| p.back)
            .map(|(m, _)| *m)
            .collect()
    }
}

/// An address or link state dialtone changed, undone when dropped.
struct Interface {
    name: String,
    added: Option<Ipv4Net>,
    brought_up: bool,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2) to set the interface up")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn link_is_up(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & 1 != 0)
}

impl Interface {
    /// Uses the interface's first IPv4 address, or adds `wanted`.
    fn prepare(name: &str, wanted: Ipv4Net) -> anyhow::Result<(Interface, Ipv4Net)> {
        if !ifaces::exists(name) {
            bail!("there is no interface {name} (see `ip link`)");
        }
        let mut iface = Interface {
            name: name.to_string(),
            added: None,
            brought_up: false,
        };
        if !link_is_up(name) {
            ip(&["link", "set", name, "up"])?;
            iface.brought_up = true;
        }
        let have = ifaces::ipv4_addrs(name).with_context(|| format!("addresses of {name}"))?;
        let net = match have.first() {
            Some(n) => *n,
            None => {
                let cidr = format!("{}/{}", wanted.addr, wanted.prefix);
                ip(&["addr", "add", &cidr, "dev", name])?;
                iface.added = Some(wanted);
                wanted
            }
        };
        Ok((iface, net))
    }
}

impl Drop for Interface {
    fn drop(&mut self) {
        if let Some(n) = self.added {
            let cidr = format!("{}/{}", n.addr, n.prefix);
            match ip(&["addr", "del", &cidr, "dev", &self.name]) {
                Ok(()) => println!("removed {cidr} from {}", self.name),
                Err(e) => eprintln!("dialtone: {e:#}"),
            }
        }
        if self.brought_up {
            match ip(&["link", "set", &self.name, "down"]) {
                Ok(()) => println!("set {} down again", self.name),
                Err(e) => eprintln!("dialtone: {e:#}"),
            }
        }
    }
}

/// Removes the temporary state folder when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the recovery set-up on `interface` until Ctrl-C or SIGTERM, on its
/// own runtime. The temporary state folder is removed only after the
/// runtime has stopped, so no service's last save can make it again.
pub fn main(interface: &str, images: &[Image], address: Ipv4Net) -> anyhow::Result<()> {
    let images = Images::check(images)?;
    let dir = std::env::temp_dir().join(format!("dialtone-recover-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tree"))
        .with_context(|| format!("cannot make {}", dir.display()))?;
    let _dir = TempDir(dir.clone());
    let rt = crate::runtime()?;
    let result = rt.block_on(run(interface, images, address, &dir));
    drop(rt);
    result
}

async fn run(interface: &str, images: Images, address: Ipv4Net, dir: &Path) -> anyhow::Result<()> {
    let (iface, net) = Interface::prepare(interface, address)?;
    let text = config_text(interface, net, dir, &images);
    let config = Config::parse("(recover)", &text)
        .map_err(|e| anyhow::anyhow!("the recovery set-up is not valid: {e}"))?;
    let pool = config
        .dhcp
        .subnets
        .first()
        .map(|s| {
            s.pools
                .iter()
                .map(|r| format!("{}-{}", r.first, r.last))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        "dialtone recover on {interface}: server {}/{}{}, addresses {pool}, TFTP on port 69",
        net.addr,
        net.prefix,
        if iface.added.is_some() {
            " (added; removed on exit)"
        } else {
            " (the interface's own)"
        }
    );
    for (model, path, size) in images.by_name.values() {
        println!("  {model}: {} ({})", path.display(), mb(*size));
    }
    println!(
        "waiting for phones that ask for options 66 and 67 (models {}); Ctrl-C to stop",
        images.models()
    );

    let board = Arc::new(Mutex::new(Board::new(&images)));
    let live = Arc::new(Live::default());
    let (b1, b2) = (Arc::clone(&board), Arc::clone(&board));
    let extras = Extras {
        source: None,
        generator: Some(Arc::new(images.clone())),
        on_transfer: Some(Box::new(move |t| {
            if let Ok(mut b) = b1.lock() {
                println!("{}", b.transfer(t));
            }
        })),
        on_lease: Some(Arc::new(move |l: &Lease| {
            if let Some(line) = b2.lock().ok().and_then(|mut b| b.lease(l)) {
                println!("{line}");
            }
        })),
        live: Some(Arc::clone(&live)),
    };
    let progress = {
        let (board, live) = (Arc::clone(&board), Arc::clone(&live));
        async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let running = live.snapshot();
                if let Ok(b) = board.lock() {
                    for f in running {
                        println!("{}", b.progress(&f));
                    }
                }
            }
        }
    };
    let result = tokio::select! {
        r = crate::serve::run_with(Arc::new(config), extras) => r,
        s = crate::shutdown_signal() => {
            println!("{s}: stopping");
            Ok(())
        }
        () = progress => Ok(()),
    };
    let recovered = board.lock().map(|b| b.recovered()).unwrap_or_default();
    println!(
        "recovered {} phone(s){}",
        recovered.len(),
        recovered
            .iter()
            .map(|m| format!(" {m}"))
            .collect::<String>()
    );
    drop(iface);
    result
}

#[cfg(test)]
mod tests;
