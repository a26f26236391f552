//! Floods: how many new clients a subnet admits per second, and warnings
//! said at most once a minute. Keyed by the subnet's network address, so
//! their memory is bounded by the configuration, never by what clients send.
//! No I/O, no clock: the second is passed in.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// New clients admitted per subnet in the current second.
#[derive(Debug, Default)]
pub struct Admission {
    windows: HashMap<Ipv4Addr, (u64, u32)>,
}

impl Admission {
    /// Whether one more new client may be served in `subnet` during second
    /// `now`, at most `per_second` (0: no limit).
    pub fn admit(&mut self, subnet: Ipv4Addr, per_second: u32, now: u64) -> bool {
        if per_second == 0 {
            return true;
        }
        let (second, admitted) = self.windows.entry(subnet).or_insert((now, 0));
        if *second != now {
            *second = now;
            *admitted = 0;
        }
        if *admitted < per_second {
            *admitted += 1;
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
        assert!((0..3).all(|_| a.admit(NET, 3, 100)));
        assert!(!a.admit(NET, 3, 100));
        assert!(
            a.admit(Ipv4Addr::new(10, 1, 0, 0), 3, 100),
            "another subnet"
        );
        assert!(a.admit(NET, 3, 101), "the next second");
        assert!((0..1000).all(|_| a.admit(NET, 0, 102)), "0 is no limit");
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
