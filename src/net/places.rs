//! A service's places kept in step with the live configuration: each place
//! (an interface, or an address an HTTP listener binds as given) runs in
//! its own task; when the configuration changes (a reload), places no
//! longer wanted are stopped (their sockets closed), new ones started, and
//! a place whose socket settings changed (a port) is restarted. Places that
//! did not change keep running untouched, with what they serve read per
//! request from the live state.
//!
//! A place that fails at start ends the service, as a server that cannot
//! bind its port should; one that fails after a reload is logged and shown
//! as waiting, and the others keep serving.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use super::ifaces::follow;
use super::ready::{Readiness, Report};

/// One place a service serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// What the status line calls it: the interface, or the address.
    pub label: String,
    /// The interface it is bound to and followed through (None: an address
    /// bound as given).
    pub interface: Option<String>,
    /// The socket settings (e.g. the port): a change restarts the place.
    pub settings: String,
}

impl Place {
    pub fn on(interface: &str, settings: impl Into<String>) -> Place {
        Place {
            label: interface.to_string(),
            interface: Some(interface.to_string()),
            settings: settings.into(),
        }
    }
}

/// Serves `places(current)` for as long as the future lives, following
/// `live` through its changes; `start(place, report)` binds and serves one
/// place and calls `report.bound()` once its sockets are bound.
pub async fn serve<T, P, F, Fut>(
    mut live: watch::Receiver<T>,
    service: &'static str,
    ready: Arc<Readiness>,
    places: P,
    start: F,
) -> anyhow::Result<()>
where
    T: Send + Sync + 'static,
    P: Fn(&T) -> Vec<Place>,
    F: Fn(Place, Report) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut tasks: JoinSet<(Place, bool, anyhow::Result<()>)> = JoinSet::new();
    let mut running: BTreeMap<Place, AbortHandle> = BTreeMap::new();
    let mut first = true;
    loop {
        let want: Vec<Place> = places(&live.borrow_and_update());
        let gone: Vec<Place> = running
            .keys()
            .filter(|p| !want.contains(p))
            .cloned()
            .collect();
        for p in gone {
            if let Some(h) = running.remove(&p) {
                h.abort();
            }
            if !want.iter().any(|w| w.label == p.label) {
                ready.forget(service, &p.label);
            }
            tracing::info!(target: "dialtone", service, place = %p.label, "stopped serving (reload)");
        }
        for p in want {
            if running.contains_key(&p) {
                continue;
            }
            let report = Report::new(&ready, service, &p.label);
            report.waiting("starting");
            let start = start.clone();
            let place = p.clone();
            let initial = first;
            let handle = tasks.spawn(async move {
                let r = match place.interface.clone() {
                    Some(i) => {
                        follow(&i, service, &report, || {
                            start(place.clone(), report.clone())
                        })
                        .await
                    }
                    None => start(place.clone(), report.clone()).await,
                };
                if let Err(e) = &r {
                    report.waiting(format!("{e:#}"));
                }
                (place, initial, r)
            });
            running.insert(p, handle);
        }
        first = false;
        tokio::select! {
            changed = live.changed() => {
                if changed.is_err() {
                    // The live state is gone: serve what runs until dropped.
                    return wait_all(tasks).await;
                }
            }
            Some(done) = tasks.join_next() => match done {
                Ok((place, initial, result)) => {
                    running.remove(&place);
                    match result {
                        Err(e) if initial => return Err(e),
                        Err(e) => {
                            tracing::error!(target: "dialtone", service, place = %place.label, error = %format!("{e:#}"), "cannot serve this place after the reload; the others keep serving");
                            // Not started again until the next reload
                            // changes it: keep it out of the running set
                            // but remember it so it is not retried now.
                            running.insert(place, tokio::spawn(std::future::pending::<()>()).abort_handle());
                        }
                        Ok(()) => {}
                    }
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
}

async fn wait_all(mut tasks: JoinSet<(Place, bool, anyhow::Result<()>)>) -> anyhow::Result<()> {
    while let Some(done) = tasks.join_next().await {
        if let Ok((_, _, Err(e))) = done {
            return Err(e);
        }
    }
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    fn addr(label: &str, settings: &str) -> Place {
        Place {
            label: label.into(),
            interface: None,
            settings: settings.into(),
        }
    }

    #[tokio::test]
    async fn places_follow_the_live_list_and_restart_on_new_settings() {
        let (tx, rx) = watch::channel(vec![addr("a", "1"), addr("b", "1")]);
        let ready = Readiness::new();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&starts);
        let serving = tokio::spawn(serve(
            rx,
            "T",
            Arc::clone(&ready),
            |v: &Vec<Place>| v.clone(),
            move |p: Place, r: Report| {
                let s = Arc::clone(&s);
                async move {
                    s.lock()
                        .unwrap()
                        .push(format!("{}:{}", p.label, p.settings));
                    r.bound();
                    std::future::pending::<anyhow::Result<()>>().await
                }
            },
        ));
        let settle = || tokio::time::sleep(Duration::from_millis(50));
        settle().await;
        assert!(ready.all_bound());
        assert_eq!(ready.snapshot().len(), 2);
        // b goes, c comes, a's settings change: a restarts, b stops.
        tx.send(vec![addr("a", "2"), addr("c", "1")]).unwrap();
        settle().await;
        let labels: Vec<String> = ready.snapshot().into_iter().map(|(_, l, _)| l).collect();
        assert_eq!(labels, vec!["a", "c"]);
        assert!(ready.all_bound());
        assert_eq!(*starts.lock().unwrap(), vec!["a:1", "b:1", "a:2", "c:1"]);
        serving.abort();
    }

    #[tokio::test]
    async fn a_failure_at_start_ends_the_service_one_after_a_change_does_not() {
        let (tx, rx) = watch::channel(vec![addr("ok", "1")]);
        let ready = Readiness::new();
        let serving = tokio::spawn(serve(
            rx,
            "T",
            Arc::clone(&ready),
            |v: &Vec<Place>| v.clone(),
            |p: Place, r: Report| async move {
                if p.label == "bad" {
                    anyhow::bail!("port in use");
                }
                r.bound();
                std::future::pending().await
            },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(vec![addr("ok", "1"), addr("bad", "1")]).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !serving.is_finished(),
            "a place failing after a reload is logged"
        );
        let bad = ready
            .snapshot()
            .into_iter()
            .find(|(_, l, _)| l == "bad")
            .unwrap();
        assert_eq!(
            bad.2,
            crate::net::ready::Slot::Waiting("port in use".into())
        );
        serving.abort();
        let (_tx, rx) = watch::channel(vec![addr("bad", "1")]);
        let r = serve(
            rx,
            "T",
            Readiness::new(),
            |v: &Vec<Place>| v.clone(),
            |_p: Place, _r: Report| async move { anyhow::bail!("port in use") },
        )
        .await;
        assert!(r.is_err(), "a place failing at start ends the service");
    }
}
