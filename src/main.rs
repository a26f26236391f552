//! `dialtone`: the network boot appliance for IP phones.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use dialtone::config::Config;
use dialtone::leases::store::Store;
use dialtone::logline;

#[derive(Parser)]
#[command(
    name = "dialtone",
    version,
    about = "Network boot appliance for IP phones: DHCP, DNS, time and files"
)]
struct Cli {
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the configured interfaces. SIGHUP reloads the configuration,
    /// SIGUSR1 logs the counters of dropped and refused input;
    /// under systemd (Type=notify) readiness, status and the watchdog are
    /// reported to the service manager.
    Serve {
        #[arg(long, short, default_value = "/etc/dialtone/dialtone.toml")]
        config: PathBuf,
        /// Started as root, run as this user, keeping only the capabilities
        /// the servers need (CAP_NET_BIND_SERVICE, CAP_NET_ADMIN); the state
        /// folder is given to the user first.
        #[arg(long)]
        user: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the manual pages (dialtone.1 and one per subcommand) into DIR.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
    /// Validate a configuration file (and its phones file) and print its
    /// normalized form.
    Check {
        #[arg(long, short, default_value = "/etc/dialtone/dialtone.toml")]
        config: PathBuf,
        /// Print nothing when the file is good (only errors, on stderr).
        #[arg(long, short)]
        quiet: bool,
        /// Judge the files alone, as on another machine: host names in
        /// option values must be defined in [dns] (the system resolver is
        /// not asked), and this machine's interfaces are not compared.
        #[arg(long)]
        offline: bool,
    },
    /// Show the lease table.
    Leases {
        #[arg(long, short, default_value = "/etc/dialtone/dialtone.toml")]
        config: PathBuf,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Salvage a damaged lease database (one `serve` refuses to start
        /// on): every lease that can still be read goes into a new database,
        /// and the damaged one is kept beside it.
        #[arg(long, conflicts_with = "json")]
        repair: bool,
    },
    /// Show the counters per file of the TFTP and HTTP service (written by
    /// `serve` every few seconds).
    Files {
        #[arg(long, short, default_value = "/etc/dialtone/dialtone.toml")]
        config: PathBuf,
        /// The counters as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A phone's own log (what it sent to dialtone's syslog receiver), last
    /// lines first printed, then new ones as they come with --follow.
    Logs {
        #[arg(long, short, default_value = "/etc/dialtone/dialtone.toml")]
        config: PathBuf,
        /// The phone's MAC address.
        #[arg(long)]
        mac: dialtone::units::Mac,
        /// How many of the last lines to print first.
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: usize,
        /// Keep printing lines as they arrive.
        #[arg(long, short)]
        follow: bool,
    },
    /// Set a user's password for the status page (an argon2 hash in the
    /// password file named by [admin] password_file), read from standard
    /// input (without echo on a terminal).
    Passwd {
        /// The password file.
        #[arg(long, short, default_value = "/etc/dialtone/admin-password")]
        file: PathBuf,
        #[arg(long, short, default_value = "admin")]
        user: String,
    },
    /// The phones of the inventory and the phones `serve` has seen, known or
    /// not: status, family, model, address, when last seen, files fetched.
    Phones {
        #[arg(long, short, default_value = "/etc/dialtone/dialtone.toml")]
        config: PathBuf,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What a phone would get, without touching the network: the classes and
    /// profile it matches and why, the DHCP answer option by option, the DNS
    /// names it looks up and their answers, and the files it fetches.
    Explain {
        #[arg(long, short, default_value = "/etc/dialtone/dialtone.toml")]
        config: PathBuf,
        /// The phone's MAC, e.g. 00:90:8f:12:34:56.
        #[arg(long)]
        mac: dialtone::units::Mac,
        /// Option 60, e.g. SIP100 or 450HD.
        #[arg(long)]
        vendor_class: Option<String>,
        /// Option 77, e.g. 450HD.
        #[arg(long)]
        user_class: Option<String>,
        /// Option 55, e.g. 1,3,66,67 (default: what the phone families ask for).
        #[arg(long, value_delimiter = ',')]
        requests: Option<Vec<u8>>,
        /// The interface the phone asks on (default: the first served one).
        #[arg(long)]
        interface: Option<String>,
    },
    /// Import CIC's CSV Managed IP Phone list (Name,Type,Manufacturer,Model,
    /// Proxy Group,Extension,Identification Address,Label,Address) into the
    /// phones file: bad rows are reported with their line and reason, good
    /// rows are added or update the phone with the same MAC; new phones get a
    /// random SIP password.
    Import {
        /// The CSV file.
        list: PathBuf,
        #[arg(long, short, default_value = "/etc/dialtone/dialtone.toml")]
        config: PathBuf,
        /// Report what would change without writing the phones file.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the built-in phone profiles a class can name with `profile = "..."`:
    /// their match rules, the options they send and the files their phones fetch.
    Profiles,
    /// Build a throwaway lab of network namespaces, boot phones against a
    /// dialtone inside it, print what each received, and remove the lab.
    Demo,
    /// Rescue bricked AudioCodes phones on one interface, without a
    /// configuration file: the manual's recovery set-up (192.168.1.1/24
    /// unless the interface has an address, a pool of five, options 66 and 67
    /// by model, TFTP of the images), live progress per phone, and the
    /// interface put back as it was on exit or Ctrl-C.
    Recover {
        /// The interface the phones are on, e.g. eth1.
        #[arg(long)]
        interface: String,
        /// MODEL=FILE: the image for phones giving MODEL in option 77, e.g.
        /// 450HD=450HD_3.4.6.img. Repeat for more models.
        #[arg(long = "image", required = true)]
        images: Vec<dialtone::recover::Image>,
        /// The server's address when the interface has none.
        #[arg(long, default_value = dialtone::recover::DEFAULT_ADDRESS)]
        address: dialtone::units::Ipv4Net,
    },
}

/// Logs go to stderr through a writer thread: the threads answering phones
/// format their event and append it to a buffer, and the writer thread writes
/// what gathered every few milliseconds in one system call. Nothing is
/// dropped (a full buffer makes the caller wait); the returned guard writes
/// the rest at exit.
fn init_logs(format: LogFormat, level: &str) -> logline::SinkGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DIALTONE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let (writer, guard) = logline::sink(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(logline::LineFormat {
            json: matches!(format, LogFormat::Json),
            journal: stderr_is_the_journal(),
        })
        .init();
    guard
}

/// True when stderr is the journal's stream: `JOURNAL_STREAM` names its
/// device and inode (systemd.exec(5)). A child whose stderr was redirected
/// keeps the variable but not the stream.
fn stderr_is_the_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino),
        Err(_) => false,
    }
}

/// The manual pages, from the command line's own definition.
/// `dialtone leases --repair`.
fn repair_leases(c: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    use dialtone::leases::repair;
    match repair::damaged(path)? {
        None => {
            println!("{}: not damaged; nothing to repair", path.display());
            return Ok(());
        }
        Some(why) => eprintln!("{}: {why}", path.display()),
    }
    // Every address of every configured subnet: reservations and addresses
    // of an earlier pool are looked up too.
    let candidates = c.dhcp.subnets.iter().flat_map(|s| {
        (u32::from(s.net.network())..=u32::from(s.net.broadcast())).map(std::net::Ipv4Addr::from)
    });
    // Held out of the pool for the longest lease time configured.
    let hold = c
        .dhcp
        .subnets
        .iter()
        .filter_map(|s| s.lease_time)
        .chain([c.dhcp.lease_time])
        .max()
        .map_or(0, u64::from);
    let r = repair::repair(path, candidates, dialtone::now(), hold)?;
    // Run as root for a service that runs as its own user: the new files
    // belong to the owner of the state folder, as the old ones did.
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir)?;
        for suffix in ["", "-wal", "-shm"] {
            let f = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if f.exists() {
                nix::unistd::chown(
                    &f,
                    Some(nix::unistd::Uid::from_raw(meta.uid())),
                    Some(nix::unistd::Gid::from_raw(meta.gid())),
                )?;
            }
        }
    }
    println!(
        "salvaged {} leases into a new {} ({} by scanning, {} by looking up the configured subnets' addresses)",
        r.leases.len(),
        path.display(),
        r.scanned,
        r.looked_up
    );
    if r.unreadable > 0 {
        println!(
            "{} addresses could not be read ({}): they are held out of the pool until {} UTC, when any lease on them has run out, so none is offered while a phone may still hold it",
            r.unreadable,
            r.first_problem.as_deref().unwrap_or("damaged pages"),
            dialtone::units::utc(r.held_until)
        );
    }
    println!(
        "the damaged database is kept as {}; start dialtone again",
        r.kept_as.display()
    );
    Ok(())
}

fn manpages(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let cmd = Cli::command();
    let write = |name: &str, cmd: clap::Command| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
    };
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("dialtone-{}", sub.get_name());
        write(&name, sub.clone().name(name.clone()))?;
    }
    write("dialtone", cmd)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `recover` talks to a technician on stdout; its log says only what
    // went wrong unless DIALTONE_LOG asks for more.
    let level = match cli.command {
        Cmd::Recover { .. } => "warn",
        _ => "info",
    };
    let _logs = init_logs(cli.log_format, level);
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialtone: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Explain {
            config,
            mac,
            vendor_class,
            user_class,
            requests,
            interface,
        } => {
            let c = Arc::new(Config::load(&config)?);
            let place = dialtone::explain::Place::find(&c, interface.as_deref())?;
            let phone = dialtone::explain::Phone {
                mac,
                vendor_class,
                user_class,
                requests: requests.unwrap_or_else(|| dialtone::explain::DEFAULT_REQUESTS.to_vec()),
            };
            // The server's leases, read only, so a known phone is shown its
            // own address; without a database the phone is explained as new.
            let path = c.leases_path();
            let (leases, origin) = match Store::open_read_only(&path).and_then(|s| s.load()) {
                Ok(l) => {
                    let origin = format!("{} leases read from {}", l.len(), path.display());
                    (dialtone::leases::table::LeaseTable::from_leases(l), origin)
                }
                Err(e) => (
                    dialtone::leases::table::LeaseTable::new(),
                    format!("none ({e}); the phone is explained as a new one"),
                ),
            };
            print!(
                "{}",
                dialtone::explain::explain(c, &phone, &place, leases, &origin, dialtone::now())
            );
            Ok(())
        }
        Cmd::Import {
            list,
            config,
            dry_run,
        } => import(&list, &config, dry_run),
        Cmd::Profiles => {
            print!("{}", dialtone::config::profiles::describe()?);
            Ok(())
        }
        Cmd::Check {
            config,
            quiet,
            offline,
        } => {
            use dialtone::config::lookup;
            use dialtone::net::ifaces;
            let c = if offline {
                Config::load_with(&config, &lookup::Offline)?
            } else {
                Config::load(&config)?
            };
            let here = |name: &str| {
                ifaces::exists(name).then(|| ifaces::ipv4_addrs(name).unwrap_or_default())
            };
            if !offline {
                for w in dialtone::config::warnings::interfaces(&c, here) {
                    eprintln!("{}: warning: {w}", config.display());
                }
            }
            for w in dialtone::config::admin::warnings(&c.admin) {
                eprintln!("{}: warning: {w}", config.display());
            }
            if !quiet {
                let text = c.to_normalized_toml();
                print!("{text}");
                if !text.ends_with('\n') {
                    println!();
                }
                eprintln!("{}: OK", config.display());
            }
            Ok(())
        }
        Cmd::Recover {
            interface,
            images,
            address,
        } => dialtone::recover::main(&interface, &images, address),
        Cmd::Serve { config, user } => {
            let c = Arc::new(Config::load(&config)?);
            if let Some(user) = &user {
                let mut owned = vec![c.server.state_dir.as_path()];
                if let Some(up) = c.files.as_ref().and_then(|f| f.upload.as_deref()) {
                    owned.push(up);
                }
                dialtone::daemon::privileges::drop_to(user, &owned)?;
            }
            let extras = dialtone::serve::Extras {
                source: Some(config),
                ..Default::default()
            };
            dialtone::runtime()?.block_on(async move {
                tokio::select! {
                    r = dialtone::serve::run_with(c, extras) => r,
                    _ = dialtone::shutdown_signal() => {
                        dialtone::daemon::notify::Notifier.stopping();
                        dialtone::counters::log();
                        tracing::info!("shutting down");
                        Ok(())
                    }
                }
            })
        }
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "dialtone",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::Manpages { dir } => manpages(&dir),
        Cmd::Leases {
            config,
            json,
            repair,
        } => {
            let c = Config::load(&config)?;
            let path = c.leases_path();
            if !path.exists() {
                anyhow::bail!(
                    "no lease database at {} (has `dialtone serve` run with this configuration?)",
                    path.display()
                );
            }
            if repair {
                return repair_leases(&c, &path);
            }
            let mut leases = Store::open_read_only(&path)?.load()?;
            leases.sort_by_key(|l| l.ip);
            let now = dialtone::now();
            if json {
                let rows: Vec<serde_json::Value> = leases
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "mac": l.mac.to_string(),
                            "ip": l.ip.to_string(),
                            "state": if l.state == dialtone::leases::LeaseState::Bound && !l.active(now) { "expired" } else { l.state.as_str() },
                            "expires": l.expires,
                            "expires_utc": dialtone::units::utc(l.expires),
                            "hostname": l.hostname,
                            "vendor_class": l.vendor_class,
                            "user_class": l.user_class,
                            "interface": l.interface,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<17}  {:<15}  {:<8}  {:<20}  {:<16}  {:<16}  {:<10}  INTERFACE",
                    "MAC", "IP", "STATE", "EXPIRES (UTC)", "HOSTNAME", "VENDOR CLASS", "USER CLASS"
                );
                for l in &leases {
                    let state = if l.state == dialtone::leases::LeaseState::Bound && !l.active(now)
                    {
                        "expired"
                    } else {
                        l.state.as_str()
                    };
                    println!(
                        "{:<17}  {:<15}  {:<8}  {:<20}  {:<16}  {:<16}  {:<10}  {}",
                        l.mac.to_string(),
                        l.ip.to_string(),
                        state,
                        dialtone::units::utc(l.expires),
                        l.hostname.as_deref().unwrap_or("-"),
                        l.vendor_class.as_deref().unwrap_or("-"),
                        l.user_class.as_deref().unwrap_or("-"),
                        l.interface
                    );
                }
            }
            Ok(())
        }
        Cmd::Files { config, json } => {
            let c = Config::load(&config)?;
            let path = dialtone::files::transfers::counters_path(&c.server.state_dir);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no file counters at {} (has `dialtone serve` served files with this configuration?)",
                    path.display()
                )
            })?;
            let counters: std::collections::BTreeMap<
                String,
                dialtone::files::transfers::FileCounters,
            > = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a counters file", path.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&counters)?);
            } else {
                println!(
                    "{:>8}  {:>8}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>14}  FILE",
                    "REQUESTS",
                    "COMPLETE",
                    "PARTIAL",
                    "NOT MOD",
                    "ABORTED",
                    "TIMEOUT",
                    "REFUSED",
                    "BYTES"
                );
                for (file, n) in &counters {
                    println!(
                        "{:>8}  {:>8}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>14}  {file}",
                        n.requests,
                        n.complete,
                        n.partial,
                        n.not_modified,
                        n.aborted,
                        n.timeouts,
                        n.refused,
                        n.bytes
                    );
                }
            }
            Ok(())
        }
        Cmd::Phones { config, json } => {
            use dialtone::inventory::seen;
            let c = Config::load(&config)?;
            let path = seen::seen_path(&c.server.state_dir);
            let seen = seen::Seen::load(&path).map_err(anyhow::Error::msg)?;
            let rows = seen::rows(&c.phones, &seen.snapshot());
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", seen::table(&rows, dialtone::now()));
            }
            Ok(())
        }
        Cmd::Logs {
            config,
            mac,
            lines,
            follow,
        } => {
            let c = Config::load(&config)?;
            logs(&c.server.state_dir, mac, lines, follow)
        }
        Cmd::Passwd { file, user } => dialtone::admin::passwd::run(&file, &user),
        Cmd::Demo => dialtone::demo::run(),
    }
}

/// `dialtone logs`: the last lines of a phone's log, then (with `follow`)
/// every line written after them, across the rewrites that keep the file
/// bounded.
fn logs(
    state_dir: &std::path::Path,
    mac: dialtone::units::Mac,
    lines: usize,
    follow: bool,
) -> anyhow::Result<()> {
    use dialtone::site::syslog;
    let path = syslog::path(state_dir, mac);
    let first = syslog::tail(state_dir, mac, lines)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if first.is_empty() && !follow {
        eprintln!(
            "{}: no lines from {mac} yet (is its syslog pointed at dialtone?)",
            path.display()
        );
    }
    for l in &first {
        println!("{}", l.display());
    }
    if !follow {
        return Ok(());
    }
    // Where following starts: the file's last line now, whatever `lines`.
    let mut last = syslog::tail(state_dir, mac, 1)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .pop();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let all = syslog::tail(state_dir, mac, usize::MAX)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let start = match &last {
            None => 0,
            Some(l) => all.iter().rposition(|x| x == l).map_or(0, |i| i + 1),
        };
        for l in &all[start..] {
            println!("{}", l.display());
        }
        if let Some(l) = all.last() {
            last = Some(l.clone());
        }
    }
}

/// `dialtone import`: the list merged into the phones file, checked as
/// `serve` would read it, then written (mode 0600: it holds passwords).
fn import(
    list: &std::path::Path,
    config_path: &std::path::Path,
    dry_run: bool,
) -> anyhow::Result<()> {
    use dialtone::inventory::{Inventory, csv, file};
    let config = Config::load(config_path)?;
    let text = std::fs::read(list).with_context(|| format!("cannot read {}", list.display()))?;
    let text = String::from_utf8_lossy(&text);
    let parsed = csv::parse(&text).with_context(|| format!("{}", list.display()))?;
    for line in csv::report(&parsed).lines() {
        println!("{}:{line}", list.display());
    }
    let phones_path = config.phones_path(config_path);
    let existing = match std::fs::read_to_string(&phones_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", phones_path.display())),
    };
    let merged = file::merge(existing.as_deref(), &parsed.rows, file::new_password)
        .with_context(|| format!("{}", phones_path.display()))?;
    // The phones of the configuration file itself, so a MAC declared there
    // and in the list is caught here, as `serve` would.
    let phones_origin = phones_path.display().to_string();
    let mut check = Inventory {
        phones: config
            .phones
            .phones
            .iter()
            .filter(|p| p.origin.rsplit_once(':').map(|(f, _)| f) != Some(phones_origin.as_str()))
            .cloned()
            .collect(),
    };
    dialtone::config::parse_phones_file(
        &phones_origin,
        &merged.text,
        config.dns.as_ref(),
        &mut check,
    )
    .context("the merged phones file would not load; nothing written")?;
    let summary = format!(
        "{} rows imported ({} new, {} updated), {} refused; {} phones in {}",
        parsed.rows.len(),
        merged.added,
        merged.updated,
        parsed.refused.len(),
        merged.added + merged.updated + merged.kept,
        phones_path.display()
    );
    if dry_run {
        println!("{summary} (dry run: not written)");
        return Ok(());
    }
    file::write(&phones_path, &merged.text)
        .with_context(|| format!("cannot write {}", phones_path.display()))?;
    println!("{summary}");
    Ok(())
}
