//! Per-MAC rate limiting: a phone stuck in a loop (or a hostile host) sending
//! hundreds of DISCOVERs a second is slowed down without affecting the others.

use std::collections::HashMap;

use crate::units::Mac;

struct Bucket {
    tokens: f64,
    last_ms: u64,
    dropped: u64,
}

/// A token bucket per MAC: `rate` packets per second, bursts of twice that.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<Mac, Bucket>,
}

/// What the limiter decided for one packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Dropped; the first drop of a run says so, so it can be logged once.
    Drop {
        first: bool,
    },
}

impl RateLimiter {
    /// A new rate (a reload); the buckets carry on.
    pub fn set_rate(&mut self, rate: u32) {
        self.rate = f64::from(rate.max(1));
        self.burst = self.rate * 2.0;
    }

    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        RateLimiter {
            rate,
            burst: rate * 2.0,
            buckets: HashMap::new(),
        }
    }

    pub fn check(&mut self, mac: Mac, now_ms: u64) -> Verdict {
        if self.buckets.len() > 50_000 {
            self.prune(now_ms);
        }
        let b = self.buckets.entry(mac).or_insert(Bucket {
            tokens: self.burst,
            last_ms: now_ms,
            dropped: 0,
        });
        let elapsed = now_ms.saturating_sub(b.last_ms) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last_ms = now_ms;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.dropped = 0;
            Verdict::Pass
        } else {
            b.dropped += 1;
            Verdict::Drop {
                first: b.dropped == 1,
            }
        }
    }

    /// Forgets buckets that have refilled completely.
    fn prune(&mut self, now_ms: u64) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            let elapsed = now_ms.saturating_sub(b.last_ms) as f64 / 1000.0;
            b.tokens + elapsed * rate < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_is_limited_others_are_not() {
        let mut r = RateLimiter::new(10);
        let flooder = Mac([1; 6]);
        let quiet = Mac([2; 6]);
        let mut passed = 0;
        // 500 packets in one second from one MAC.
        for i in 0..500u64 {
            if r.check(flooder, 1000 + i * 2) == Verdict::Pass {
                passed += 1;
            }
            if i % 100 == 0 {
                assert_eq!(r.check(quiet, 1000 + i * 2), Verdict::Pass);
            }
        }
        assert!((20..=35).contains(&passed), "passed {passed}");
        // After a pause the flooder is served again.
        assert_eq!(r.check(flooder, 5000), Verdict::Pass);
    }

    #[test]
    fn first_drop_is_flagged_once() {
        let mut r = RateLimiter::new(1);
        let m = Mac([3; 6]);
        assert_eq!(r.check(m, 0), Verdict::Pass);
        assert_eq!(r.check(m, 0), Verdict::Pass);
        assert_eq!(r.check(m, 0), Verdict::Drop { first: true });
        assert_eq!(r.check(m, 0), Verdict::Drop { first: false });
    }
}
