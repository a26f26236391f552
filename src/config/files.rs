//! Checking the `[files]` section: the tree served over TFTP and HTTP.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawFiles, RawSize};
use super::{ConfigError, Cx};
use crate::units::parse_size;

/// Firmware and configuration files, one tree for TFTP and HTTP.
#[derive(Debug, Clone)]
pub struct Files {
    pub root: PathBuf,
    /// TFTP on `tftp_port` of every served interface.
    pub tftp: bool,
    pub tftp_port: u16,
    /// HTTP listeners. `0.0.0.0:port` means that port on every served
    /// interface (bound to the device, like DHCP and DNS); a specific
    /// address means that address only.
    pub http: Vec<SocketAddrV4>,
    /// Globs (case-insensitive) over a file's name or its path in the tree:
    /// files that match and carry a MAC are served only to that MAC's phone.
    pub private: Vec<String>,
    /// TFTP transfers at once; a request beyond it gets an error.
    pub max_transfers: usize,
    /// The largest TFTP window (RFC 7440) granted.
    pub max_window: u16,
    /// How long a TFTP transfer waits for an acknowledgement before sending
    /// again (a client's `timeout` option overrides it), and how often.
    pub tftp_timeout: Duration,
    pub tftp_retries: u32,
    /// The folder TFTP write requests store their files in (phone logs);
    /// none: writes are refused. Never inside `root`, and `root` never
    /// inside it, so an upload is neither served nor replaces a served file.
    pub upload: Option<PathBuf>,
    /// The largest upload accepted, in bytes.
    pub upload_max: u64,
    /// How long an HTTP client has to send a whole request head (408
    /// after it: a slow sender holds a connection no longer).
    pub http_head_timeout: Duration,
    /// HTTP connections open at once from one source address (per
    /// listener); more are answered 503 and closed.
    pub http_per_source: usize,
}

impl Default for Files {
    fn default() -> Files {
        Files {
            root: PathBuf::from("/srv/dialtone"),
            tftp: true,
            tftp_port: 69,
            http: vec![SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)],
            private: vec!["*.cfg".into()],
            max_transfers: 200,
            max_window: 64,
            tftp_timeout: Duration::from_secs(1),
            tftp_retries: 5,
            upload: None,
            upload_max: 16 << 20,
            http_head_timeout: Duration::from_secs(30),
            http_per_source: 32,
        }
    }
}

impl Cx<'_> {
    pub(super) fn files(&self, raw: Spanned<RawFiles>) -> Result<Files, ConfigError> {
        let mut f = Files::default();
        let raw = raw.into_inner();
        if let Some(r) = &raw.root {
            let text = r.get_ref().trim();
            if text.is_empty() || !text.starts_with('/') {
                return Err(self.err(
                    r,
                    "files.root",
                    "expected an absolute directory path, e.g. \"/srv/dialtone\"",
                ));
            }
            f.root = PathBuf::from(text);
        }
        if let Some(t) = raw.tftp {
            f.tftp = t;
        }
        if let Some(p) = &raw.tftp_port {
            f.tftp_port = self.port(p, "files.tftp_port")?;
        }
        if let Some(list) = &raw.http {
            f.http = Vec::new();
            for (i, a) in list.get_ref().iter().enumerate() {
                let key = format!("files.http[{i}]");
                let text = a.get_ref().trim();
                let addr = text
                    .parse::<SocketAddrV4>()
                    .ok()
                    .or_else(|| {
                        // ":8088" and "8088" mean every served interface.
                        text.trim_start_matches(':')
                            .parse::<u16>()
                            .ok()
                            .map(|p| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, p))
                    })
                    .filter(|a| a.port() != 0)
                    .ok_or_else(|| {
                        self.err(
                            a,
                            &key,
                            "expected an IPv4 address and port such as \"0.0.0.0:80\", or a port",
                        )
                    })?;
                if f.http.contains(&addr) {
                    return Err(self.err(a, &key, format!("{addr} is listed twice")));
                }
                f.http.push(addr);
            }
        }
        if let Some(list) = &raw.private {
            f.private = Vec::new();
            for (i, g) in list.get_ref().iter().enumerate() {
                let text = g.get_ref().trim();
                if text.is_empty() || text.contains('\0') {
                    return Err(self.err(
                        g,
                        &format!("files.private[{i}]"),
                        "expected a file name glob such as \"*.cfg\"",
                    ));
                }
                f.private.push(text.trim_start_matches('/').to_string());
            }
        }
        if let Some(n) = &raw.max_transfers {
            f.max_transfers = usize::try_from(*n.get_ref())
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| self.err(n, "files.max_transfers", "expected a number, 1-10000"))?;
        }
        if let Some(n) = &raw.max_window {
            f.max_window = u16::try_from(*n.get_ref())
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| self.err(n, "files.max_window", "expected a number, 1-1024"))?;
        }
        if let Some(t) = &raw.tftp_timeout {
            let secs = self.duration(t, "files.tftp_timeout")?;
            if !(1..=255).contains(&secs) {
                return Err(self.err(
                    t,
                    "files.tftp_timeout",
                    "expected a duration from 1s to 255s",
                ));
            }
            f.tftp_timeout = Duration::from_secs(u64::from(secs));
        }
        if let Some(n) = &raw.tftp_retries {
            f.tftp_retries = u32::try_from(*n.get_ref())
                .ok()
                .filter(|n| (1..=50).contains(n))
                .ok_or_else(|| self.err(n, "files.tftp_retries", "expected a number, 1-50"))?;
        }
        if let Some(u) = &raw.upload {
            let text = u.get_ref().trim();
            if text.is_empty() || !text.starts_with('/') {
                return Err(self.err(
                    u,
                    "files.upload",
                    "expected an absolute folder path, e.g. \"/var/lib/dialtone/uploads\"",
                ));
            }
            let dir = PathBuf::from(text);
            if dir.starts_with(&f.root) || f.root.starts_with(&dir) {
                return Err(self.err(
                    u,
                    "files.upload",
                    format!(
                        "expected a folder outside files.root ({}) that does not hold it: uploads must not be served to others or replace served files",
                        f.root.display()
                    ),
                ));
            }
            f.upload = Some(dir);
        }
        if let Some(m) = &raw.upload_max {
            let bytes = match m.get_ref() {
                RawSize::Bytes(n) => u64::try_from(*n).map_err(|_| {
                    self.err(m, "files.upload_max", "expected a size such as \"16M\"")
                })?,
                RawSize::Text(t) => {
                    parse_size(t).map_err(|e| self.err(m, "files.upload_max", e))?
                }
            };
            if bytes == 0 {
                return Err(self.err(m, "files.upload_max", "expected a size above 0"));
            }
            f.upload_max = bytes;
        }
        if let Some(t) = &raw.http_head_timeout {
            let secs = self.duration(t, "files.http_head_timeout")?;
            if !(1..=3600).contains(&secs) {
                return Err(self.err(
                    t,
                    "files.http_head_timeout",
                    "expected a duration from 1s to 1h",
                ));
            }
            f.http_head_timeout = Duration::from_secs(u64::from(secs));
        }
        if let Some(n) = &raw.http_per_source {
            f.http_per_source = usize::try_from(*n.get_ref())
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    self.err(n, "files.http_per_source", "expected a number, 1-10000")
                })?;
        }
        Ok(f)
    }
}
