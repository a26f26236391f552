//! Floods: how many new clients a subnet admits (a burst, then so many a
//! second), and warnings
//! said at most once a minute. Keyed by the subnet's network address, so
//! their memory is bounded by the configuration, never by what clients send.
//! No I/O, no clock: the second is passed in.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// New clients admitted per subnet: a bucket per subnet holding up to
/// `burst` admissions, refilled by `per_second` each second. A power cut's
/// site of phones nobody has seen yet boots at once; a flood of made-up
/// MACs goes on, and after the burst gets `per_second`.
#[derive(Debug, Default)]
pub struct Admission {
    /// Subnet -> (the second last refilled, admissions left).
    buckets: HashMap<Ipv4Addr, (u64, u32)>,
}

impl Admission {
    /// Whether one more new client may be served in `subnet` during second
    /// `now`: up to `burst` at once (never fewer than `per_second`), then
    /// `per_second` a second (0: no limit).
    pub fn admit(&mut self, subnet: Ipv4Addr, per_second: u32, burst: u32, now: u64) -> bool {
        if per_second == 0 {
            return true;
        }
        let cap = burst.max(per_second);
        let (last, left) = self.buckets.entry(subnet).or_insert((now, cap));
        if now > *last {
            let refill = (now - *last).saturating_mul(u64::from(per_second));
            *left = u64::from(*left).saturating_add(refill).min(u64::from(cap)) as u32;
            *last = now;
        }
        // A burst lowered by a reload applies at once.
        *left = (*left).min(cap);
        if *left > 0 {
            *left -= 1;
            true
        } else {
            false
        }
    }
}

/// A warning said at most once a minute per subnet; the occurrences in
/// between are counted and reported with the next one.
#[derive(Debug, Default)]
pub struct Quiet {
    last: HashMap<Ipv4Addr, (u64, u64)>,
}

/// How long a warning stays quiet after it was said.
pub const QUIET_FOR: u64 = 60;

impl Quiet {
    /// Records one occurrence at `now`: `Some(n)` when the warning is to be
    /// said now, `n` being the occurrences kept quiet since the last one.
    pub fn occur(&mut self, subnet: Ipv4Addr, now: u64) -> Option<u64> {
        match self.last.get_mut(&subnet) {
            Some((said, quiet)) if now < *said + QUIET_FOR => {
                *quiet += 1;
                None
            }
            Some((said, quiet)) => {
                let n = *quiet;
                *said = now;
                *quiet = 0;
                Some(n)
            }
            None => {
                self.last.insert(subnet, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 0);

    #[test]
    fn admits_per_second_per_subnet() {
        let mut a = Admission::default();
        assert!((0..3).all(|_| a.admit(NET, 3, 0, 100)));
        assert!(!a.admit(NET, 3, 0, 100));
        assert!(
            a.admit(Ipv4Addr::new(10, 1, 0, 0), 3, 0, 100),
            "another subnet"
        );
        assert!(a.admit(NET, 3, 0, 101), "the next second");
        assert!((0..1000).all(|_| a.admit(NET, 0, 0, 102)), "0 is no limit");
    }

    #[test]
    fn a_burst_then_per_second() {
        let mut a = Admission::default();
        // A site's phones at once: the whole burst.
        assert_eq!(
            (0..2500).filter(|_| a.admit(NET, 200, 2000, 100)).count(),
            2000
        );
        // Then the rate: 200 the next second, 400 after two quiet ones.
        assert_eq!(
            (0..500).filter(|_| a.admit(NET, 200, 2000, 101)).count(),
            200
        );
        assert_eq!(
            (0..500).filter(|_| a.admit(NET, 200, 2000, 103)).count(),
            400
        );
        // Refilled to the burst and no further, after a long quiet.
        assert_eq!(
            (0..5000)
                .filter(|_| a.admit(NET, 200, 2000, 10_000))
                .count(),
            2000
        );
        // A burst lowered (a reload) applies at once.
        assert_eq!(
            (0..5000).filter(|_| a.admit(NET, 200, 100, 10_000)).count(),
            0
        );
        assert_eq!(
            (0..5000).filter(|_| a.admit(NET, 200, 100, 20_000)).count(),
            200
        );
        // A clock gone back refills nothing.
        assert_eq!((0..10).filter(|_| a.admit(NET, 200, 2000, 50)).count(), 0);
    }

    #[test]
    fn warns_once_a_minute_with_the_count_in_between() {
        let mut q = Quiet::default();
        assert_eq!(q.occur(NET, 1000), Some(0));
        assert_eq!(q.occur(NET, 1001), None);
        assert_eq!(q.occur(NET, 1059), None);
        assert_eq!(q.occur(NET, 1060), Some(2));
        assert_eq!(q.occur(NET, 1061), None);
    }
}
