//! Checking `[admin]` (the status page, metrics and health listener) and
//! `[syslog]` (the phones' own logs).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use toml::Spanned;

use super::raw::{RawAdmin, RawSyslog};
use super::{ConfigError, Cx, Dhcp};

/// The default admin listener: loopback only, open without credentials.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Lines of its own log kept per phone by default.
pub const DEFAULT_LINES_PER_PHONE: usize = 2_000;

/// `[admin]`: where the status page, `/metrics` and `/health` are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// None: `listen = "off"`.
    pub listen: Option<SocketAddr>,
    /// `user:hash` lines (argon2, written by `dialtone passwd`).
    pub password_file: Option<PathBuf>,
    /// A file holding a bearer token (for Prometheus).
    pub token_file: Option<PathBuf>,
    /// The listener may answer on a phone network (an address inside a
    /// served subnet, or every address).
    pub phone_network: bool,
}

impl Default for Admin {
    fn default() -> Admin {
        Admin {
            listen: Some(DEFAULT_ADMIN),
            password_file: None,
            token_file: None,
            phone_network: false,
        }
    }
}

impl Admin {
    /// Requests need credentials: the listener is not on loopback.
    pub fn needs_credentials(&self) -> bool {
        self.listen.is_some_and(|a| !a.ip().is_loopback())
    }
}

/// `[syslog]`: the receiver of the phones' own logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    /// UDP 514 on every served interface.
    pub serve: bool,
    pub port: u16,
    /// Lines kept per phone, on disk.
    pub lines_per_phone: usize,
}

impl Default for Syslog {
    fn default() -> Syslog {
        Syslog {
            serve: true,
            port: 514,
            lines_per_phone: DEFAULT_LINES_PER_PHONE,
        }
    }
}

impl Cx<'_> {
    pub(super) fn admin(
        &self,
        raw: Option<Spanned<RawAdmin>>,
        dhcp: &Dhcp,
    ) -> Result<Admin, ConfigError> {
        let mut a = Admin::default();
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return Ok(a);
        };
        a.phone_network = raw.phone_network.unwrap_or(false);
        for (field, key, into) in [
            (
                raw.password_file,
                "admin.password_file",
                &mut a.password_file,
            ),
            (raw.token_file, "admin.token_file", &mut a.token_file),
        ] {
            if let Some(f) = field {
                if f.get_ref().trim().is_empty() {
                    return Err(self.err(&f, key, "expected a file path"));
                }
                *into = Some(PathBuf::from(f.into_inner()));
            }
        }
        let Some(l) = raw.listen else {
            return Ok(a);
        };
        let text = l.get_ref().trim();
        if text == "off" {
            a.listen = None;
            return Ok(a);
        }
        let addr: SocketAddr = text.parse().map_err(|_| {
            self.err(
                &l,
                "admin.listen",
                "expected an IPv4 address and port, e.g. \"127.0.0.1:8080\", or \"off\"",
            )
        })?;
        let IpAddr::V4(ip) = addr.ip() else {
            return Err(self.err(&l, "admin.listen", "expected an IPv4 address and port"));
        };
        if addr.port() == 0 {
            return Err(self.err(&l, "admin.listen", "expected a port from 1 to 65535"));
        }
        a.listen = Some(addr);
        if ip.is_loopback() {
            return Ok(a);
        }
        if a.password_file.is_none() && a.token_file.is_none() {
            return Err(self.err(
                &l,
                "admin.listen",
                format!("{addr} is not loopback: set admin.password_file (dialtone passwd) or admin.token_file so the page asks for credentials"),
            ));
        }
        let phones = ip.is_unspecified() || dhcp.subnets.iter().any(|s| s.net.contains(ip));
        if phones && !a.phone_network {
            return Err(self.err(
                &l,
                "admin.listen",
                format!("{addr} answers on a phone network (an address inside a served subnet, or every address): name a management address, or set admin.phone_network = true to mean it"),
            ));
        }
        Ok(a)
    }

    pub(super) fn syslog(&self, raw: Option<Spanned<RawSyslog>>) -> Result<Syslog, ConfigError> {
        let mut s = Syslog::default();
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return Ok(s);
        };
        if let Some(serve) = raw.serve {
            s.serve = serve;
        }
        if let Some(p) = raw.port {
            s.port = u16::try_from(*p.get_ref())
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| self.err(&p, "syslog.port", "expected a port from 1 to 65535"))?;
        }
        if let Some(n) = raw.lines_per_phone {
            s.lines_per_phone = usize::try_from(*n.get_ref())
                .ok()
                .filter(|n| (10..=100_000).contains(n))
                .ok_or_else(|| {
                    self.err(
                        &n,
                        "syslog.lines_per_phone",
                        "expected a number of lines from 10 to 100000",
                    )
                })?;
        }
        Ok(s)
    }
}

/// What `check` warns about in `[admin]`: a listener allowed on a phone
/// network.
pub fn warnings(admin: &Admin) -> Vec<String> {
    match admin.listen {
        Some(a) if admin.phone_network => vec![format!(
            "admin.listen: {a} may answer on a phone network (admin.phone_network = true): phones and anyone on their VLAN can reach the login"
        )],
        _ => Vec::new(),
    }
}
