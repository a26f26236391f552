//! Running as an unprivileged user. Under systemd the unit does it (`User=`,
//! `AmbientCapabilities=`); outside it, `dialtone serve --user NAME` started
//! as root gives the state folder to that user, switches to it and keeps
//! only `NEEDED`, as dnsmasq does. The switch happens before the runtime
//! starts its threads: Linux keeps credentials per thread, and threads
//! created afterwards inherit the main thread's.
//!
//! The capabilities are kept, not only used once for binding, because
//! sockets are bound again later: when a served interface comes back, and
//! when a reload adds an interface or changes a port.

use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};
use thiserror::Error;

/// What the servers need and nothing more (docs/packaging.md):
/// - CAP_NET_BIND_SERVICE: ports below 1024 (DHCP 67, DNS 53, TFTP 69,
///   SNTP 123, HTTP 80);
/// - CAP_NET_ADMIN: the ARP entry (SIOCSARP) that lets a DHCP reply be
///   unicast to a client without an address, and socket buffers forced past
///   the system limit (SO_RCVBUFFORCE) so a boot storm does not overflow
///   them.
///
/// SO_BINDTODEVICE needs no capability on an unbound socket since Linux 5.7.
pub const NEEDED: [Capability; 2] = [Capability::CAP_NET_BIND_SERVICE, Capability::CAP_NET_ADMIN];

#[derive(Debug, Error)]
pub enum DropError {
    #[error("--user {0}: no such user")]
    NoSuchUser(String),
    #[error("--user {user}: cannot look the user up: {source}")]
    Lookup { user: String, source: nix::Error },
    #[error("--user needs dialtone to be started as root (it is uid {0})")]
    NotRoot(u32),
    #[error("cannot give {path} to {user}: {source}")]
    Chown {
        path: String,
        user: String,
        source: nix::Error,
    },
    #[error("cannot switch to user {user}: {what}: {source}")]
    Switch {
        user: String,
        what: &'static str,
        source: nix::Error,
    },
    #[error("cannot set the capabilities: {0}")]
    Caps(#[from] caps::errors::CapsError),
}

/// The capability set `NEEDED`.
pub fn needed() -> CapsHashSet {
    NEEDED.into_iter().collect()
}

/// Becomes `user` (and its primary group, with no supplementary groups)
/// keeping `NEEDED` in the permitted and effective sets; every other
/// capability is gone, from the bounding set too, so nothing this process
/// runs could get it back. `owned` (the state folder, the upload folder)
/// are made the user's first, with the files directly in them.
pub fn drop_to(user: &str, owned: &[&Path]) -> Result<(), DropError> {
    let euid = Uid::effective();
    if !euid.is_root() {
        return Err(DropError::NotRoot(euid.as_raw()));
    }
    let u = User::from_name(user)
        .map_err(|source| DropError::Lookup {
            user: user.to_string(),
            source,
        })?
        .ok_or_else(|| DropError::NoSuchUser(user.to_string()))?;
    for dir in owned {
        give(dir, &u)?;
    }
    let switch = |what, source| DropError::Switch {
        user: user.to_string(),
        what,
        source,
    };
    // Capabilities outside NEEDED leave the bounding set while this
    // process still has CAP_SETPCAP.
    for cap in caps::all() {
        if !NEEDED.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    nix::unistd::setgroups(&[u.gid]).map_err(|e| switch("setgroups", e))?;
    nix::unistd::setgid(u.gid).map_err(|e| switch("setgid", e))?;
    // Keep the permitted set across setuid; it is cut to NEEDED just after.
    nix::sys::prctl::set_keepcaps(true).map_err(|e| switch("PR_SET_KEEPCAPS", e))?;
    nix::unistd::setuid(u.uid).map_err(|e| switch("setuid", e))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| switch("PR_SET_KEEPCAPS", e))?;
    let keep = needed();
    caps::set(None, CapSet::Permitted, &keep)?;
    caps::set(None, CapSet::Effective, &keep)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::clear(None, CapSet::Ambient)?;
    if Uid::current().is_root() || Gid::current() != u.gid {
        return Err(switch("check", nix::Error::EPERM));
    }
    tracing::info!(target: "dialtone", user, uid = u.uid.as_raw(), gid = u.gid.as_raw(), capabilities = "CAP_NET_BIND_SERVICE CAP_NET_ADMIN", "running as an unprivileged user");
    Ok(())
}

/// Makes `dir` (created if missing) and the files directly in it `u`'s.
fn give(dir: &Path, u: &User) -> Result<(), DropError> {
    let chown = |p: &Path| {
        nix::unistd::chown(p, Some(u.uid), Some(u.gid)).map_err(|source| DropError::Chown {
            path: p.display().to_string(),
            user: u.name.clone(),
            source,
        })
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(DropError::Chown {
            path: dir.display().to_string(),
            user: u.name.clone(),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        });
    }
    chown(dir)?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            chown(&e.path())?;
        }
    }
    Ok(())
}
