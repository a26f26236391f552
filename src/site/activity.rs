//! What each phone did lately, as the status page shows it: its last DHCP
//! exchange (by MAC), the names it asked DNS for and when it asked for the
//! time (by address), and the last transfers that ended. Fed by the
//! servers through `stats::tell` (a bounded queue they never wait on) and
//! read by the page; bounded in every map.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use crate::files::transfers::Transfer;
use crate::stats::{DhcpSeen, Event};
use crate::units::Mac;

/// Entries kept per map (phones, addresses); past it the older half goes.
pub const KEPT: usize = 10_000;
/// Names kept per address.
pub const NAMES_KEPT: usize = 8;
/// Finished transfers kept.
pub const FINISHED_KEPT: usize = 100;
/// Events queued for the collector before the servers' are dropped: a
/// tenth of a second of 100,000 DNS queries or DHCP exchanges a second.
pub const QUEUE: usize = 16_384;
/// How often the collector takes what queued.
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A name asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub at: u64,
    pub name: String,
    pub qtype: u16,
    pub rcode: u8,
}

/// One transfer that ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub at: u64,
    pub protocol: &'static str,
    pub client: Ipv4Addr,
    pub mac: Option<Mac>,
    pub requested: String,
    pub sent: u64,
    pub total: Option<u64>,
    pub outcome: &'static str,
    pub detail: String,
    pub millis: u64,
}

#[derive(Debug, Default)]
pub struct State {
    pub dhcp: HashMap<Mac, (u64, DhcpSeen)>,
    pub dns: HashMap<Ipv4Addr, VecDeque<Asked>>,
    pub sntp: HashMap<Ipv4Addr, u64>,
    /// Newest last.
    pub finished: VecDeque<Finished>,
}

/// Drops the older half of `map` when it holds more than `KEPT`.
fn bound<K: Clone + Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, at: impl Fn(&V) -> u64) {
    if map.len() <= KEPT {
        return;
    }
    let mut times: Vec<u64> = map.values().map(&at).collect();
    let mid = times.len() / 2;
    let (_, cut, _) = times.select_nth_unstable(mid);
    let cut = *cut;
    map.retain(|_, v| at(v) > cut);
}

impl State {
    pub fn apply(&mut self, at: u64, event: Event) {
        match event {
            Event::Dhcp(d) => {
                self.dhcp.insert(d.mac, (at, d));
                bound(&mut self.dhcp, |(t, _)| *t);
            }
            Event::Dns {
                client,
                name,
                qtype,
                rcode,
            } => {
                let list = self.dns.entry(client).or_default();
                list.retain(|a| !(a.name == name && a.qtype == qtype));
                list.push_back(Asked {
                    at,
                    name,
                    qtype,
                    rcode,
                });
                while list.len() > NAMES_KEPT {
                    list.pop_front();
                }
                bound(&mut self.dns, |l| l.back().map_or(0, |a| a.at));
            }
            Event::Sntp { client } => {
                self.sntp.insert(client, at);
                bound(&mut self.sntp, |t| *t);
            }
        }
    }

    pub fn finished(&mut self, at: u64, t: &Transfer) {
        self.finished.push_back(Finished {
            at,
            protocol: t.protocol,
            client: t.client,
            mac: t.mac,
            requested: t.requested.chars().take(200).collect(),
            sent: t.sent,
            total: t.total,
            outcome: t.outcome.as_str(),
            detail: t.detail.chars().take(200).collect(),
            millis: u64::try_from(t.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        while self.finished.len() > FINISHED_KEPT {
            self.finished.pop_front();
        }
    }
}

/// The collector's state, shared with the page.
#[derive(Default)]
pub struct Activity {
    state: Mutex<State>,
}

impl Activity {
    /// Starts the collector thread and installs it as the servers'
    /// listener (once per process: a second `serve` in the same process
    /// shares the first one's).
    pub fn start() -> Arc<Activity> {
        static ONE: std::sync::OnceLock<Arc<Activity>> = std::sync::OnceLock::new();
        Arc::clone(ONE.get_or_init(|| {
            let activity = Arc::new(Activity::default());
            let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Event)>(QUEUE);
            let a = Arc::clone(&activity);
            let started = std::thread::Builder::new()
                .name("site-activity".into())
                .spawn(move || {
                    // Drained ten times a second rather than woken per
                    // event: a wake-up per exchange cost a DHCP server at
                    // 10,000 exchanges a second an eighth of its core.
                    loop {
                        std::thread::sleep(DRAIN_EVERY);
                        crate::stats::drained();
                        let Ok(mut s) = a.state.lock() else { return };
                        loop {
                            match rx.try_recv() {
                                Ok((at, e)) => s.apply(at, e),
                                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                            }
                        }
                    }
                });
            match started {
                Ok(_) => {
                    crate::stats::listen(tx);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the status page's activity collector; the page shows leases and transfers only");
                }
            }
            activity
        }))
    }

    pub fn transfer_finished(&self, t: &Transfer) {
        if let Ok(mut s) = self.state.lock() {
            s.finished(crate::now(), t);
        }
    }

    /// Runs `f` over the state (briefly: the collector waits meanwhile).
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Option<T> {
        self.state.lock().ok().map(|s| f(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_stay_bounded_and_keep_the_newest() {
        let mut s = State::default();
        for i in 0..(KEPT as u32 + 10) {
            s.apply(
                u64::from(i),
                Event::Sntp {
                    client: Ipv4Addr::from(i),
                },
            );
        }
        assert!(s.sntp.len() <= KEPT);
        assert!(s.sntp.contains_key(&Ipv4Addr::from(KEPT as u32 + 9)));
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        for i in 0..20 {
            s.apply(
                i,
                Event::Dns {
                    client: ip,
                    name: format!("n{}.lab", i % 10),
                    qtype: 1,
                    rcode: 0,
                },
            );
        }
        let names = &s.dns[&ip];
        assert_eq!(names.len(), NAMES_KEPT);
        assert_eq!(names.back().map(|a| a.name.as_str()), Some("n9.lab"));
    }
}
