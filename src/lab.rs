//! Throwaway labs of network namespaces joined by veth pairs, for the demo, the
//! tests and the benchmarks. dialtone never serves on the machine's own
//! interfaces outside `serve`: everything else runs inside namespaces made here
//! and removed when their guard is dropped, also on failure.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};

/// A network namespace that is deleted (with its processes) when dropped.
pub struct Netns {
    name: String,
}

fn ip(args: &[&str]) -> anyhow::Result<Output> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (package iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

impl Netns {
    /// Creates the namespace `name`, replacing a stale one left by a killed run,
    /// and brings its loopback up.
    pub fn create(name: &str) -> anyhow::Result<Netns> {
        if !nix::unistd::Uid::effective().is_root() {
            bail!("network namespaces need root (run as root, as CI does)");
        }
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs a program inside the namespace and returns its output, whatever its status.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {program} in namespace {}", self.name))
    }

    /// Starts a program inside the namespace.
    pub fn spawn(&self, program: &str, args: &[&str]) -> anyhow::Result<Child> {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {program} in namespace {}", self.name))
    }

    /// Adds an address to an interface and brings it up.
    pub fn addr(&self, interface: &str, cidr: &str) -> anyhow::Result<()> {
        self.ip(&["addr", "add", cidr, "dev", interface])?;
        self.ip(&["link", "set", interface, "up"])?;
        Ok(())
    }

    pub fn up(&self, interface: &str) -> anyhow::Result<()> {
        self.ip(&["link", "set", interface, "up"])?;
        Ok(())
    }

    /// Moves the calling thread into the namespace: sockets it opens afterwards
    /// live there. Use a dedicated thread.
    pub fn enter_current_thread(&self) -> anyhow::Result<()> {
        enter(&self.name)
    }

    /// Runs `f` on a new thread inside the namespace.
    pub fn spawn_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> JoinHandle<anyhow::Result<T>> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter(&name)?;
            f()
        })
    }

    /// Runs `f` inside the namespace (on its own thread) and returns its result.
    pub fn run_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.spawn_thread(f)
            .join()
            .map_err(|_| anyhow::anyhow!("thread in namespace {} panicked", self.name))?
    }

    /// Kills every process still running in the namespace.
    pub fn kill_all(&self) {
        if let Ok(out) = ip(&["netns", "pids", &self.name]) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(p) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

fn enter(name: &str) -> anyhow::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{name}"))
        .with_context(|| format!("namespace {name} not found"))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("cannot enter namespace {name}"))?;
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Joins two namespaces with a veth pair: `a_if` in `a`, `b_if` in `b`.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> anyhow::Result<()> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.up(a_if)?;
    b.up(b_if)?;
    Ok(())
}

/// A short prefix unique to this process, for namespace names.
pub fn unique(tag: &str) -> String {
    format!("dt{}-{}", std::process::id(), tag)
}

/// A call server stand-in for switchover health checks: accepts TCP
/// connections on `tcp_port` and, when `sip_port` is given, answers SIP
/// OPTIONS over UDP there with `SIP/2.0 200 OK`. Stops when dropped.
pub struct CallServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl CallServer {
    pub fn start(
        ns: &Netns,
        ip: Ipv4Addr,
        tcp_port: u16,
        sip_port: Option<u16>,
    ) -> anyhow::Result<CallServer> {
        CallServer::with_registrar(ns, ip, tcp_port, sip_port, sip::Registrar::default())
    }

    /// As `start`, answering REGISTER on the SIP port as `registrar` says.
    pub fn with_registrar(
        ns: &Netns,
        ip: Ipv4Addr,
        tcp_port: u16,
        sip_port: Option<u16>,
        registrar: sip::Registrar,
    ) -> anyhow::Result<CallServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let thread = ns.spawn_thread(move || {
            let tcp = TcpListener::bind(SocketAddr::from((ip, tcp_port)))?;
            tcp.set_nonblocking(true)?;
            let udp = match sip_port {
                Some(port) => {
                    let u = UdpSocket::bind((ip, port))?;
                    u.set_read_timeout(Some(Duration::from_millis(20)))?;
                    Some(u)
                }
                None => None,
            };
            let _ = ready_tx.send(());
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                while let Ok((conn, _)) = tcp.accept() {
                    drop(conn);
                }
                match &udp {
                    Some(u) => {
                        if let Ok((n, from)) = u.recv_from(&mut buf) {
                            let req = String::from_utf8_lossy(&buf[..n]);
                            if req.contains("\r\nCSeq: ")
                                && let Some(answer) = registrar.answer(&req)
                            {
                                let _ = u.send_to(answer.as_bytes(), from);
                            }
                        }
                    }
                    None => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            Ok(())
        });
        if ready_rx.recv_timeout(Duration::from_secs(5)).is_err() {
            return match thread.join() {
                Ok(Err(e)) => Err(e.context("call server stand-in did not start")),
                _ => bail!("call server stand-in did not start"),
            };
        }
        Ok(CallServer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for CallServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub mod clients;
pub mod phone;
pub mod sip;
