//! MAC sweeps: a client that asks for `<MAC>.cfg` for one MAC after another
//! (scraping SIP passwords, 2^24 guesses per maker's prefix) gets nothing
//! private already; this makes it slow. Each source address has a budget of
//! misses on MAC-named files (not found, or another phone's): a handful
//! at once, then one every few seconds. A source over budget is not looked
//! up at all for MAC-named names until its budget refills. A real phone
//! asks for its own file or two per boot and never comes near it.
//! No I/O, no clock: the time is passed in (milliseconds, monotonic).

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Misses a source may have at once.
pub const BURST: f64 = 8.0;
/// One more miss allowed every this many milliseconds.
pub const REFILL_MS: u64 = 5_000;
/// Sources tracked at most; beyond it, those with a full budget are
/// forgotten (they are indistinguishable from new ones).
const MAX_SOURCES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Budget {
    misses: f64,
    at_ms: u64,
    /// Whether this burst was already reported.
    warned: bool,
}

#[derive(Debug, Default)]
pub struct SweepGuard {
    sources: HashMap<Ipv4Addr, Budget>,
}

/// What a miss did to its source's budget.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Within,
    /// Over budget; `first` for the first miss of this burst (to log once).
    Over {
        first: bool,
    },
}

impl SweepGuard {
    fn refill(b: &mut Budget, now_ms: u64) {
        let gained = now_ms.saturating_sub(b.at_ms) as f64 / REFILL_MS as f64;
        b.misses = (b.misses + gained).min(BURST);
        b.at_ms = now_ms;
        // A burst ends when the source has been quiet long enough to have
        // its whole budget back; a sweep that goes on at one miss every
        // few seconds is one burst, warned about once.
        if b.misses >= BURST {
            b.warned = false;
        }
    }

    /// Whether `ip` is over budget now: its MAC-named requests are refused
    /// without a look.
    pub fn slowed(&mut self, ip: Ipv4Addr, now_ms: u64) -> bool {
        match self.sources.get_mut(&ip) {
            Some(b) => {
                Self::refill(b, now_ms);
                b.misses < 1.0
            }
            None => false,
        }
    }

    /// Records a miss on a MAC-named file by `ip`.
    pub fn miss(&mut self, ip: Ipv4Addr, now_ms: u64) -> Verdict {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&ip) {
            self.sources.retain(|_, b| {
                Self::refill(b, now_ms);
                b.misses < BURST
            });
            // Still full: that many sources at once are a flood of their
            // own; forgetting them all keeps the memory bounded.
            if self.sources.len() >= MAX_SOURCES {
                self.sources.clear();
            }
        }
        let b = self.sources.entry(ip).or_insert(Budget {
            misses: BURST,
            at_ms: now_ms,
            warned: false,
        });
        Self::refill(b, now_ms);
        if b.misses >= 1.0 {
            b.misses -= 1.0;
            if b.misses >= 1.0 {
                return Verdict::Within;
            }
        }
        let first = !b.warned;
        b.warned = true;
        Verdict::Over { first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);

    #[test]
    fn a_handful_of_misses_then_slowed_then_one_every_few_seconds() {
        let mut g = SweepGuard::default();
        for _ in 0..7 {
            assert_eq!(g.miss(A, 0), Verdict::Within);
        }
        assert!(!g.slowed(A, 0));
        // The eighth spends the budget: reported once.
        assert_eq!(g.miss(A, 0), Verdict::Over { first: true });
        assert!(g.slowed(A, 0));
        assert_eq!(g.miss(A, 10), Verdict::Over { first: false });
        // Another source is not affected.
        assert!(!g.slowed(B, 10));
        // One refill later, one more request is looked up; the sweep goes
        // on, still the same burst: no second warning.
        assert!(!g.slowed(A, REFILL_MS + 10));
        assert_eq!(g.miss(A, REFILL_MS + 10), Verdict::Over { first: false });
        assert!(g.slowed(A, REFILL_MS + 20));
        // A quiet minute gives the whole budget back and ends the burst.
        assert!(!g.slowed(A, 60_000));
        assert_eq!(g.miss(A, 60_000), Verdict::Within);
        for _ in 0..6 {
            g.miss(A, 60_000);
        }
        assert_eq!(g.miss(A, 60_000), Verdict::Over { first: true });
    }

    #[test]
    fn sources_are_bounded() {
        let mut g = SweepGuard::default();
        for i in 0..30_000u32 {
            g.miss(Ipv4Addr::from(i), u64::from(i));
        }
        assert!(g.sources.len() <= MAX_SOURCES);
    }
}
