//! A phone's boot line: DHCP, DNS, time, firmware, configuration and
//! registration, each done, waiting, skipped or failed with the reason,
//! told from what dialtone saw of it. Pure: the facts are passed in.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::activity::Asked;
use crate::inventory::seen::Fetch;
use crate::leases::Lease;
use crate::stats::DhcpSeen;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Done,
    Waiting,
    Skipped,
    Failed,
    /// dialtone cannot see this step (registration without the phone's log).
    Unseen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub state: State,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootLine {
    pub steps: Vec<Step>,
    /// `booted`, `booting`, `stuck` or `not seen`.
    pub overall: &'static str,
    /// The first failed step's reason.
    pub reason: Option<String>,
}

/// What dialtone saw of one phone.
#[derive(Debug, Default)]
pub struct Facts<'a> {
    pub now: u64,
    /// Its newest lease record.
    pub lease: Option<&'a Lease>,
    /// An address offered to it now.
    pub offered: Option<Ipv4Addr>,
    pub dhcp: Option<&'a (u64, DhcpSeen)>,
    pub dns: Option<&'a VecDeque<Asked>>,
    pub sntp: Option<u64>,
    /// Oldest first.
    pub fetched: &'a [Fetch],
    /// The phone's own log lines, oldest first (registration).
    pub log: &'a [String],
}

/// What a file is to a phone, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Firmware,
    Configuration,
    Other,
}

pub fn kind(file: &str) -> Kind {
    let lower = file.to_ascii_lowercase();
    let ext = lower.rsplit('.').next().unwrap_or("");
    match ext {
        "img" | "bin" | "zip" | "ld" | "rom" | "tar" | "gz" | "dlf" | "sbn" | "loads" | "fw"
        | "rom2" => Kind::Firmware,
        "cfg" | "xml" | "ini" | "txt" | "conf" | "boot" | "cnf" | "json" | "inf" => {
            Kind::Configuration
        }
        _ => Kind::Other,
    }
}

fn succeeded(f: &Fetch) -> bool {
    matches!(f.outcome.as_str(), "complete" | "partial" | "not modified")
}

fn percent(f: &Fetch) -> String {
    match f.total {
        Some(t) if t > 0 => format!("{} %", f.sent.saturating_mul(100) / t),
        _ => format!("{} bytes", f.sent),
    }
}

/// Why a fetch failed, in a technician's words.
pub fn failure(f: &Fetch) -> String {
    let proto = f.protocol.to_ascii_uppercase();
    let file = f.file.trim_start_matches('/');
    match f.outcome.as_str() {
        "not found" => format!("asked for {file}: not found"),
        "private" => format!("private file {file} refused: {}", f.detail),
        "timeout" => format!("{proto} timeout at {} ({file})", percent(f)),
        "aborted by client" => format!(
            "{proto} transfer of {file} stopped by the phone at {}",
            percent(f)
        ),
        "busy" => format!("{file} refused: the transfer limit was reached"),
        "slowed" => format!("{file} refused: this address is sweeping MAC-named files"),
        other => {
            let d = if f.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", f.detail)
            };
            format!("{file}: {other}{d}")
        }
    }
}

/// The step for the files of `kind`: done if one arrived, failed if none
/// did and the last try failed, else none tried.
fn files_step(name: &'static str, fetched: &[Fetch], k: Kind) -> Option<Step> {
    let mine: Vec<&Fetch> = fetched.iter().filter(|f| kind(&f.file) == k).collect();
    if let Some(ok) = mine.iter().rev().find(|f| succeeded(f)) {
        let how = if ok.outcome == "complete" {
            String::new()
        } else {
            format!(" ({})", ok.outcome)
        };
        return Some(Step {
            name,
            state: State::Done,
            detail: format!(
                "{} over {}{how}",
                ok.file.trim_start_matches('/'),
                ok.protocol.to_ascii_uppercase()
            ),
        });
    }
    let last = mine.last()?;
    Some(Step {
        name,
        state: State::Failed,
        detail: failure(last),
    })
}

/// A step not seen: skipped (with `why`) when the phone went past it,
/// else still waited for.
fn not_yet(name: &'static str, passed: bool, why: &str) -> Step {
    if passed {
        Step {
            name,
            state: State::Skipped,
            detail: why.to_string(),
        }
    } else {
        Step {
            name,
            state: State::Waiting,
            detail: String::new(),
        }
    }
}

fn rcode_name(r: u8) -> &'static str {
    crate::stats::DNS_RCODES
        .get(usize::from(r))
        .copied()
        .unwrap_or("other")
}

pub fn line(f: &Facts) -> BootLine {
    let mut steps = Vec::with_capacity(6);
    // DHCP
    let bound = f.lease.filter(|l| l.active(f.now));
    steps.push(match (bound, f.dhcp) {
        (Some(l), _) => Step {
            name: "DHCP",
            state: State::Done,
            detail: format!("{} leased on {}", l.ip, l.interface),
        },
        (None, Some((_, d))) if d.reply == Some("NAK") || d.reply.is_none() => Step {
            name: "DHCP",
            state: State::Failed,
            detail: format!(
                "{} {}{}",
                d.request,
                d.reply
                    .map_or("not answered".to_string(), |r| format!("answered {r}")),
                d.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            ),
        },
        (None, _) if f.offered.is_some() => Step {
            name: "DHCP",
            state: State::Waiting,
            detail: format!(
                "offered {}; no REQUEST yet",
                f.offered.map(|o| o.to_string()).unwrap_or_default()
            ),
        },
        (None, _) => Step {
            name: "DHCP",
            state: State::Waiting,
            detail: "no lease".into(),
        },
    });
    let firmware = files_step("firmware", f.fetched, Kind::Firmware);
    let config = files_step("configuration", f.fetched, Kind::Configuration);
    let later = !f.fetched.is_empty();
    // DNS
    let asked: Vec<&Asked> = f.dns.map(|d| d.iter().collect()).unwrap_or_default();
    steps.push(if let Some(a) = asked.iter().rev().find(|a| a.rcode == 0) {
        Step {
            name: "DNS",
            state: State::Done,
            detail: format!("{} answered", a.name),
        }
    } else if let Some(a) = asked.last() {
        Step {
            name: "DNS",
            state: if later { State::Skipped } else { State::Failed },
            detail: format!("asked for {}: {}", a.name, rcode_name(a.rcode)),
        }
    } else {
        not_yet("DNS", later, "not asked (addresses in the options)")
    });
    // Time
    steps.push(match f.sntp {
        Some(_) => Step {
            name: "time",
            state: State::Done,
            detail: "SNTP answered".into(),
        },
        None => not_yet("time", later, "not asked of dialtone"),
    });
    let config_done = config.as_ref().is_some_and(|s| s.state == State::Done);
    steps.push(firmware.unwrap_or_else(|| not_yet("firmware", config_done, "none fetched")));
    steps.push(config.unwrap_or_else(|| not_yet("configuration", false, "")));
    steps.push(registration(f.log));
    let seen = f.lease.is_some() || f.dhcp.is_some() || later;
    let failed = steps.iter().find(|s| s.state == State::Failed);
    let reason = failed.map(|s| format!("{}: {}", s.name, s.detail));
    let overall = if !seen {
        "not seen"
    } else if failed.is_some() {
        "stuck"
    } else if config_done {
        "booted"
    } else {
        "booting"
    };
    BootLine {
        steps,
        overall,
        reason,
    }
}

/// Registration, from the phone's own log: the last line that says it
/// registered or failed to.
fn registration(log: &[String]) -> Step {
    for l in log.iter().rev() {
        let lower = l.to_ascii_lowercase();
        if !lower.contains("regist") {
            continue;
        }
        let failed = ["fail", "unregistered", "timeout", "401", "403", "rejected"]
            .iter()
            .any(|w| lower.contains(w));
        let detail: String = l.chars().take(120).collect();
        if failed {
            return Step {
                name: "registration",
                state: State::Failed,
                detail,
            };
        }
        if lower.contains("registered") || lower.contains("success") {
            return Step {
                name: "registration",
                state: State::Done,
                detail,
            };
        }
    }
    Step {
        name: "registration",
        state: State::Unseen,
        detail: "seen only in the phone's log".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::LeaseState;

    fn fetch(file: &str, outcome: &str, sent: u64, total: Option<u64>) -> Fetch {
        Fetch {
            file: file.into(),
            protocol: "tftp".into(),
            outcome: outcome.into(),
            at: 1,
            sent,
            total,
            detail: String::new(),
        }
    }

    fn lease() -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 250, 0, 100),
            mac: "00:90:8f:00:00:01".parse().unwrap(),
            hostname: None,
            vendor_class: None,
            user_class: None,
            interface: "v0".into(),
            state: LeaseState::Bound,
            expires: 1_000,
        }
    }

    #[test]
    fn a_missing_configuration_is_the_reason_a_phone_is_stuck() {
        let l = lease();
        let fetched = [
            fetch("450HD_3.4.6.img", "partial", 512, Some(1 << 20)),
            fetch("00908f000001.cfg", "not found", 0, None),
        ];
        let b = line(&Facts {
            now: 10,
            lease: Some(&l),
            fetched: &fetched,
            ..Facts::default()
        });
        assert_eq!(b.overall, "stuck");
        assert_eq!(
            b.reason.as_deref(),
            Some("configuration: asked for 00908f000001.cfg: not found")
        );
        let states: Vec<State> = b.steps.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [
                State::Done,
                State::Skipped,
                State::Skipped,
                State::Done,
                State::Failed,
                State::Unseen
            ]
        );
    }

    #[test]
    fn a_timeout_says_how_far_it_got_and_a_later_success_clears_it() {
        let l = lease();
        let mut fetched = vec![fetch("450HD.img", "timeout", 41, Some(100))];
        let b = line(&Facts {
            now: 10,
            lease: Some(&l),
            fetched: &fetched,
            ..Facts::default()
        });
        assert_eq!(
            b.reason.as_deref(),
            Some("firmware: TFTP timeout at 41 % (450HD.img)")
        );
        fetched.push(fetch("450HD.img", "complete", 100, Some(100)));
        fetched.push(fetch("450HD.cfg", "complete", 10, Some(10)));
        let log = vec!["SIP line 1 registered at vm40ic1".to_string()];
        let b = line(&Facts {
            now: 10,
            lease: Some(&l),
            fetched: &fetched,
            log: &log,
            ..Facts::default()
        });
        assert_eq!(b.overall, "booted");
        assert_eq!(b.steps[5].state, State::Done);
    }

    #[test]
    fn nothing_seen_is_not_seen_and_an_offer_waits() {
        let b = line(&Facts::default());
        assert_eq!(b.overall, "not seen");
        let b = line(&Facts {
            offered: Some(Ipv4Addr::new(10, 0, 0, 9)),
            dhcp: Some(&(
                1,
                DhcpSeen {
                    mac: "00:90:8f:00:00:01".parse().unwrap(),
                    request: "DISCOVER",
                    reply: Some("OFFER"),
                    ip: None,
                    interface: "v0".into(),
                    vendor_class: None,
                    classes: vec![],
                    options: vec![],
                    note: None,
                },
            )),
            ..Facts::default()
        });
        assert_eq!(b.overall, "booting");
        assert_eq!(b.steps[0].state, State::Waiting);
        assert_eq!(kind("SEP0011.cnf.xml"), Kind::Configuration);
        assert_eq!(kind("sip.ld"), Kind::Firmware);
    }
}
