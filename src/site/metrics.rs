//! `/metrics`: the Prometheus text format, written with prometheus-client
//! from copies taken at scrape time. DHCP names follow Kea's statistics
//! as Kea's Prometheus exporter spells them (`pkt4-received` by type ->
//! `dialtone_dhcp4_packets_received_total{operation="discover"}`,
//! `assigned-addresses` per subnet -> `dialtone_dhcp4_addresses_assigned`),
//! so dashboards built for Kea translate by their prefix.

use std::collections::HashMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::Site;
use super::view::{Phones, subnets, switchovers};

type Labels = Vec<(&'static str, String)>;

fn counters(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

fn gauges(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    reg.register(name, help, f.clone());
    f
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: i64) {
    let g = Gauge::<i64>::default();
    g.set(v);
    reg.register(name, help, g);
}

fn count(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The lease commit latency, from the lease writer's buckets.
#[derive(Debug)]
struct Commits;

impl Collector for Commits {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (counts, sum_us) = crate::stats::commits();
        let mut buckets: Vec<(f64, u64)> = crate::stats::COMMIT_BUCKETS_US
            .iter()
            .zip(&counts)
            .map(|(le, c)| (*le as f64 / 1e6, *c))
            .collect();
        buckets.push((f64::INFINITY, counts.last().copied().unwrap_or(0)));
        let total: u64 = counts.iter().sum();
        let mut m = encoder.encode_descriptor(
            "dialtone_lease_commit",
            "Time one commit of the lease database took (the disk's fsync included)",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            sum_us as f64 / 1e6,
            total,
            &buckets,
            None,
        )
    }
}

/// OpenMetrics text as the Prometheus text format 0.0.4, for scrapers that
/// do not ask for OpenMetrics (and for promtool): a counter's family takes
/// its `_total` name in HELP and TYPE, UNIT lines and `# EOF` go.
pub fn prometheus_text(open: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in open.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(open.len());
    for l in open.lines() {
        if l.starts_with("# UNIT ") || l == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| l.strip_prefix(p).map(|rest| (*p, rest)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(&format!("{prefix}{name}_total {tail}\n"));
                continue;
            }
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The text of `/metrics` now, in OpenMetrics.
pub fn text(site: &Site) -> String {
    let now = crate::now();
    let config = site.config();
    let mut reg = Registry::default();
    let r = &mut reg;
    gauge(
        r,
        "dialtone_start_time_seconds",
        "When dialtone started (unix seconds)",
        n(site.service.started),
    );
    // DHCP, Kea's names.
    let received = counters(
        r,
        "dialtone_dhcp4_packets_received",
        "DHCP packets received, by message type (Kea pkt4-*-received; parse-failed and drop as Kea counts them)",
    );
    let sent = counters(
        r,
        "dialtone_dhcp4_packets_sent",
        "DHCP replies sent, by message type (Kea pkt4-offer-sent, pkt4-ack-sent, pkt4-nak-sent)",
    );
    for (op, rx, tx) in crate::stats::dhcp_packets() {
        if rx > 0 || op != "other" {
            received
                .get_or_create(&vec![("operation", op.into())])
                .inc_by(rx);
        }
        if matches!(op, "offer" | "ack" | "nak") {
            sent.get_or_create(&vec![("operation", op.into())])
                .inc_by(tx);
        }
    }
    use crate::counters::{Counter as C, get};
    received
        .get_or_create(&vec![("operation", "parse-failed".into())])
        .inc_by(get(C::DhcpParseFailed));
    received
        .get_or_create(&vec![("operation", "drop".into())])
        .inc_by(get(C::DhcpRateLimited) + get(C::DhcpIgnored));
    let phone_rows = Phones::new(site, &config);
    let total = gauges(
        r,
        "dialtone_dhcp4_addresses_in_pools",
        "Addresses in the subnet's pools (Kea total-addresses)",
    );
    let assigned = gauges(
        r,
        "dialtone_dhcp4_addresses_assigned",
        "Addresses leased now (Kea assigned-addresses)",
    );
    let declined = gauges(
        r,
        "dialtone_dhcp4_addresses_declined",
        "Addresses declined and held out of the pool now (Kea declined-addresses)",
    );
    let offered = gauges(
        r,
        "dialtone_dhcp4_addresses_offered",
        "Addresses offered and held for the client they were offered to",
    );
    for s in subnets(&config, phone_rows.published(), now) {
        let l = vec![("subnet", s.subnet.clone())];
        total.get_or_create(&l).set(n(s.pool));
        assigned.get_or_create(&l).set(n(s.used));
        declined.get_or_create(&l).set(n(s.declined));
        offered.get_or_create(&l).set(n(s.offered));
    }
    let ops = crate::stats::dhcp_packets();
    count(
        r,
        "dialtone_dhcp4_declines",
        "Addresses declined by clients since the start (Kea declined-addresses, cumulative)",
        ops.get(4).map_or(0, |o| o.1),
    );
    let (leases, declines) = crate::stats::reclaims();
    count(
        r,
        "dialtone_dhcp4_reclaimed_leases",
        "Addresses leased again after another client's lease expired (Kea reclaimed-leases)",
        leases,
    );
    count(
        r,
        "dialtone_dhcp4_reclaimed_declined_addresses",
        "Declined addresses leased again after their quarantine (Kea reclaimed-declined-addresses)",
        declines,
    );
    // DNS
    let dns = counters(
        r,
        "dialtone_dns_queries",
        "DNS queries answered, by question type and answer code",
    );
    for (t, rc, v) in crate::stats::dns_answers() {
        dns.get_or_create(&vec![("type", t.into()), ("rcode", rc.into())])
            .inc_by(v);
    }
    // Drops and refusals, by reason.
    let dropped = counters(
        r,
        "dialtone_dropped",
        "Input dropped or refused, by reason (the counters SIGUSR1 logs)",
    );
    for (c, v) in crate::counters::snapshot() {
        dropped
            .get_or_create(&vec![("reason", c.name().into())])
            .inc_by(v);
    }
    // Files
    let transfers = counters(
        r,
        "dialtone_file_transfers",
        "File transfers that ended, by protocol, phone family and outcome",
    );
    if let Ok(m) = site.counts.by.lock() {
        for ((p, f, o), v) in m.iter() {
            transfers
                .get_or_create(&vec![
                    ("protocol", (*p).into()),
                    ("family", (*f).into()),
                    ("outcome", (*o).into()),
                ])
                .inc_by(*v);
        }
    }
    let bytes = counters(
        r,
        "dialtone_file_sent_bytes",
        "Bytes of files sent, by protocol",
    );
    if let Ok(m) = site.counts.bytes.lock() {
        for (p, v) in m.iter() {
            bytes
                .get_or_create(&vec![("protocol", (*p).into())])
                .inc_by(*v);
        }
    }
    let running = gauges(
        r,
        "dialtone_file_transfers_in_progress",
        "File transfers in progress, by protocol",
    );
    running
        .get_or_create(&vec![("protocol", "tftp".into())])
        .set(0);
    running
        .get_or_create(&vec![("protocol", "http".into())])
        .set(0);
    for t in site.transfers.snapshot() {
        running
            .get_or_create(&vec![("protocol", t.protocol.into())])
            .inc();
    }
    // Call servers
    let up = gauges(
        r,
        "dialtone_switchover_member_up",
        "1 while a switchover member answers its health check (or is not checked), else 0",
    );
    for sw in switchovers(site, &config) {
        for m in sw.members {
            up.get_or_create(&vec![("switchover", sw.name.clone()), ("member", m.name)])
                .set(i64::from(m.up));
        }
    }
    // Phones by boot state
    let phones = gauges(
        r,
        "dialtone_phones",
        "Phones known or seen, by boot state (booted, booting, stuck, not seen)",
    );
    let mut by: HashMap<&'static str, i64> = ["booted", "booting", "stuck", "not seen"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for row in phone_rows.rows(site, now) {
        *by.entry(row.boot.overall).or_default() += 1;
    }
    for (s, v) in by {
        phones.get_or_create(&vec![("state", s.into())]).set(v);
    }
    // Syslog
    let syslog = counters(
        r,
        "dialtone_syslog_messages",
        "Phones' syslog messages, by what became of them",
    );
    let c = &site.logs.counts;
    for (what, v) in [
        ("kept", &c.kept),
        ("unknown-source", &c.unknown_source),
        ("rate-limited", &c.rate_limited),
        ("lost", &c.lost),
        ("empty", &c.empty),
    ] {
        syslog
            .get_or_create(&vec![("outcome", what.into())])
            .inc_by(v.load(std::sync::atomic::Ordering::Relaxed));
    }
    count(
        r,
        "dialtone_activity_lost",
        "Events the status page's collector could not take (its queue was full)",
        crate::stats::activity_lost(),
    );
    reg.register_collector(Box::new(Commits));
    let mut out = String::with_capacity(16 * 1024);
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        out.clear();
        out.push_str("# the metrics could not be encoded\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn openmetrics_counters_become_prometheus_text() {
        let open = "# HELP a_total_ish Things.\n# TYPE a counter\n# HELP a Things.\na_total 3\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT h seconds\ng 1\n# EOF\n";
        let text = super::prometheus_text(open);
        assert!(text.contains("# TYPE a_total counter\n"));
        assert!(text.contains("# HELP a_total Things.\n"));
        assert!(text.contains("# TYPE g gauge\ng 1\n"));
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    }
}
