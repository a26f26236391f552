//! Counts of what the servers dropped or refused, for the whole process:
//! packets that did not parse, requests ignored or refused, sources slowed.
//! Each server bumps its counters where it drops; `dialtone serve` logs them
//! all in one event on SIGUSR1 (as dnsmasq logs its statistics) and at
//! shutdown. Plain atomics, so counting costs no lock on any hot path.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// One counter of dropped or refused input.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Counter {
            $(#[doc = $doc] $variant,)*
        }

        /// Every counter, in the order they are reported.
        pub const ALL: &[Counter] = &[$(Counter::$variant,)*];

        impl Counter {
            /// The counter's name in reports (`protocol_what`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)*
                }
            }

            /// What the counter counts, in words.
            pub const fn describe(self) -> &'static str {
                match self {
                    $(Counter::$variant => $doc,)*
                }
            }
        }
    };
}

counters! {
    DhcpParseFailed => "dhcp_parse_failed": "DHCP packets that are not well-formed DHCP or BOOTP requests (dropped)",
    DhcpRateLimited => "dhcp_rate_limited": "DHCP packets over one client's rate limit (dropped)",
    DhcpIgnored => "dhcp_ignored": "DHCP requests read but not answered: no subnet, another server's, a new client over the cap, a DECLINE or RELEASE of an address the client does not hold",
    DhcpNak => "dhcp_nak": "DHCP REQUESTs refused with a NAK",
    DnsDropped => "dns_dropped": "DNS packets dropped: unreadable headers, responses (QR=1), queries to forward over the in-flight limit",
    DnsFormErr => "dns_formerr": "DNS queries answered FORMERR (a header that can be read, a body that cannot)",
    DnsTcpRefused => "dns_tcp_refused": "DNS TCP connections refused or closed: over the per-source cap, stalled past the deadline",
    SntpDropped => "sntp_dropped": "SNTP packets that are not client requests (dropped)",
    TftpDropped => "tftp_dropped": "TFTP packets dropped: unreadable, not a request on port 69, for no transfer in progress",
    TftpRefused => "tftp_refused": "TFTP requests refused with an ERROR (not found, not allowed, bad options)",
    TftpWrongTid => "tftp_wrong_tid": "TFTP packets from an unknown transfer id, answered ERROR 5",
    HttpRefused => "http_refused": "HTTP requests refused for their form (4xx other than 404, 503 over the per-source cap)",
    SweepSlowed => "sweep_slowed": "requests for MAC-named files refused because their source is sweeping MACs",
}

static VALUES: [AtomicU64; ALL.len()] = [const { AtomicU64::new(0) }; ALL.len()];

/// Adds one to `counter`.
pub fn bump(counter: Counter) {
    VALUES[counter as usize].fetch_add(1, Ordering::Relaxed);
}

/// The current value of `counter`.
pub fn get(counter: Counter) -> u64 {
    VALUES[counter as usize].load(Ordering::Relaxed)
}

/// Every counter with its value, in report order.
pub fn snapshot() -> Vec<(Counter, u64)> {
    ALL.iter().map(|&c| (c, get(c))).collect()
}

/// The counters as one line of `name=value` pairs.
pub fn summary() -> String {
    snapshot()
        .iter()
        .map(|(c, v)| format!("{}={v}", c.name()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Logs every counter in one event (SIGUSR1, shutdown).
pub fn log() {
    tracing::info!(target: "dialtone::counters", counters = %summary(), "dropped and refused input so far");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_a_bump_moves_only_its_counter() {
        let mut names: Vec<_> = ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{} is reported at its own index", c.name());
        }
        let before = snapshot();
        bump(Counter::SweepSlowed);
        let after = snapshot();
        for ((c, b), (_, a)) in before.iter().zip(&after) {
            if *c == Counter::SweepSlowed {
                assert!(a > b);
            }
        }
        assert!(summary().contains("sweep_slowed="));
    }
}
