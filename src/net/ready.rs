//! Which of the services' sockets are bound, and why the others wait. Each
//! service reports for each place it serves (an interface, or an address
//! for an HTTP listener bound as given); `dialtone serve` tells the service
//! manager it is ready once every place it expects is bound, and says in
//! its status line what still waits and why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Where one service stands on one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Not serving yet, and why (the interface does not exist, ...).
    Waiting(String),
    /// Its sockets are bound: it answers.
    Bound,
}

/// The services' places and where each stands; every change bumps a
/// counter its watchers wake on.
#[derive(Debug)]
pub struct Readiness {
    slots: Mutex<BTreeMap<(&'static str, String), Slot>>,
    changed: watch::Sender<u64>,
}

impl Readiness {
    pub fn new() -> Arc<Readiness> {
        Arc::new(Readiness {
            slots: Mutex::new(BTreeMap::new()),
            changed: watch::Sender::new(0),
        })
    }

    fn set(&self, service: &'static str, place: &str, slot: Option<Slot>) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        let key = (service, place.to_string());
        let before = slots.get(&key).cloned();
        match &slot {
            Some(s) => {
                slots.insert(key, s.clone());
            }
            None => {
                slots.remove(&key);
            }
        }
        drop(slots);
        if before != slot {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// `service` expects to serve `place` and does not yet, because `why`.
    pub fn waiting(&self, service: &'static str, place: &str, why: impl Into<String>) {
        self.set(service, place, Some(Slot::Waiting(why.into())));
    }

    /// `service`'s sockets on `place` are bound.
    pub fn bound(&self, service: &'static str, place: &str) {
        self.set(service, place, Some(Slot::Bound));
    }

    /// `service` no longer serves `place`.
    pub fn forget(&self, service: &'static str, place: &str) {
        self.set(service, place, None);
    }

    /// Every place, by service, in order.
    pub fn snapshot(&self) -> Vec<(&'static str, String, Slot)> {
        self.slots
            .lock()
            .map(|s| {
                s.iter()
                    .map(|((svc, place), slot)| (*svc, place.clone(), slot.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when every place is bound.
    pub fn all_bound(&self) -> bool {
        self.snapshot().iter().all(|(_, _, s)| *s == Slot::Bound)
    }

    /// Wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// One service's report for one place, handed to the task that binds it.
#[derive(Debug, Clone)]
pub struct Report {
    ready: Arc<Readiness>,
    service: &'static str,
    place: String,
}

impl Report {
    pub fn new(ready: &Arc<Readiness>, service: &'static str, place: &str) -> Report {
        Report {
            ready: Arc::clone(ready),
            service,
            place: place.to_string(),
        }
    }

    /// The sockets are bound.
    pub fn bound(&self) {
        self.ready.bound(self.service, &self.place);
    }

    pub fn waiting(&self, why: impl Into<String>) {
        self.ready.waiting(self.service, &self.place, why);
    }

    pub fn forget(&self) {
        self.ready.forget(self.service, &self.place);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_every_place_is_bound() {
        let r = Readiness::new();
        let mut seen = r.subscribe();
        r.waiting("DHCP", "eth0", "starting");
        r.waiting("DNS", "eth0", "starting");
        assert!(!r.all_bound());
        assert!(seen.has_changed().unwrap());
        seen.mark_unchanged();
        Report::new(&r, "DHCP", "eth0").bound();
        assert!(!r.all_bound());
        r.bound("DNS", "eth0");
        assert!(r.all_bound());
        // The same state again is no change.
        seen.mark_unchanged();
        r.bound("DNS", "eth0");
        assert!(!seen.has_changed().unwrap());
        r.waiting("DNS", "eth0", "interface went away");
        assert!(!r.all_bound());
        r.forget("DNS", "eth0");
        assert!(r.all_bound());
        assert_eq!(
            r.snapshot(),
            vec![("DHCP", "eth0".to_string(), Slot::Bound)]
        );
    }
}
