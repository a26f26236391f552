//! The systemd notification protocol (sd_notify(3)) through the sd-notify
//! crate: `READY=1` once every socket is bound and the lease store is open,
//! `STATUS=` with what is served or why it waits, `RELOADING=1` around a
//! reload and `WATCHDOG=1` while the DHCP server and the lease writer answer.
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// The service manager's end of the notification socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifier;

impl Notifier {
    fn send(states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            tracing::debug!(target: "dialtone", error = %e, "cannot notify the service manager");
        }
    }

    /// Startup (or a reload) is finished; `status` says what is served.
    pub fn ready(&self, status: &str) {
        Self::send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        Self::send(&[NotifyState::Status(status)]);
    }

    /// A reload began. systemd 253 and later want the monotonic time with it.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => Self::send(&[NotifyState::Reloading, now]),
            Err(_) => Self::send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self) {
        Self::send(&[NotifyState::Stopping]);
    }

    pub fn watchdog(&self) {
        Self::send(&[NotifyState::Watchdog]);
    }

    /// How often systemd wants `WATCHDOG=1` (WatchdogSec=), when it does.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled()
    }
}
