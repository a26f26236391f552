//! The status page's content, built from copies of the server's state:
//! what the templates render. Pure but for reading the phones' log files
//! on a phone's own page.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::Serialize;

use super::Site;
use super::boot::{self, BootLine};
use crate::config::Config;
use crate::dhcp::server::Published;
use crate::inventory::Phone;
use crate::inventory::seen::{Fetch, Sighting, identity};
use crate::leases::Lease;
use crate::units::Mac;

/// What the phone list is filtered by (`?family=&stuck=1&unknown=1&q=`).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Filter {
    pub family: String,
    pub stuck: bool,
    pub unknown: bool,
    /// Words the lease table is searched for.
    pub q: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhoneRow {
    pub mac: String,
    pub name: String,
    /// `known`, `provisional` or `unknown`.
    pub status: &'static str,
    pub family: String,
    pub model: String,
    pub address: String,
    pub interface: String,
    pub firmware: String,
    pub last_seen: String,
    pub boot: BootLine,
}

#[derive(Debug, Clone, Serialize)]
pub struct InProgress {
    pub protocol: &'static str,
    pub client: String,
    pub mac: String,
    pub file: String,
    pub sent: u64,
    pub total: u64,
    pub percent: u64,
    pub rate: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FinishedRow {
    pub at: String,
    pub protocol: &'static str,
    pub client: String,
    pub mac: String,
    pub file: String,
    pub sent: u64,
    pub outcome: &'static str,
    pub detail: String,
    pub millis: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SubnetRow {
    pub subnet: String,
    pub pool: u64,
    pub used: u64,
    pub free: u64,
    pub offered: u64,
    pub declined: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeaseRow {
    pub ip: String,
    pub mac: String,
    pub state: String,
    pub name: String,
    pub hostname: String,
    pub vendor_class: String,
    pub interface: String,
    pub expires: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    pub name: String,
    pub addresses: String,
    pub up: bool,
    pub changed: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwitchoverRow {
    pub name: String,
    pub checked: bool,
    pub members: Vec<MemberRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlaceRow {
    pub service: &'static str,
    pub place: String,
    pub state: String,
    pub addresses: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceRow {
    pub version: &'static str,
    pub uptime: String,
    pub source: String,
    pub loaded_at: String,
    pub last_reload: String,
    pub places: Vec<PlaceRow>,
    pub last_commit: String,
    pub commit_error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub phones: usize,
    pub booted: usize,
    pub booting: usize,
    pub stuck: usize,
    pub not_seen: usize,
    pub unknown: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub now: String,
    pub filter: Filter,
    /// Every family: its name (the filter's value) and its title.
    pub families: Vec<(&'static str, &'static str)>,
    pub counts: Counts,
    pub phones: Vec<PhoneRow>,
    /// Rows past `ROWS_SHOWN` left out (the filters narrow the list).
    pub phones_more: usize,
    pub transfers: Vec<InProgress>,
    pub finished: Vec<FinishedRow>,
    pub subnets: Vec<SubnetRow>,
    pub leases: Vec<LeaseRow>,
    pub leases_total: usize,
    pub switchovers: Vec<SwitchoverRow>,
    pub service: ServiceRow,
}

/// Phone rows on the page at most (a flood of made-up MACs would make it
/// megabytes); the counts above the list cover every phone.
pub const ROWS_SHOWN: usize = 2_000;

/// "12 s ago", "3 min ago", "2 h ago", "4 d ago".
pub fn ago(now: u64, then: u64) -> String {
    let d = now.saturating_sub(then);
    match d {
        0..60 => format!("{d} s ago"),
        60..3_600 => format!("{} min ago", d / 60),
        3_600..86_400 => format!("{} h ago", d / 3_600),
        _ => format!("{} d ago", d / 86_400),
    }
}

/// The firmware version a User-Agent names: its first word of three or
/// more numbers joined by dots (`AUDC-IPPhone-450HD_UC_3.4.6.700/1.0`,
/// `PolycomVVX-VVX_450-UA/6.4.3.5018`).
pub fn firmware_of(agent: &str) -> Option<String> {
    let mut best: Option<&str> = None;
    for word in agent.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        let w = word.trim_matches('.');
        let parts: Vec<&str> = w.split('.').collect();
        if parts.len() >= 3 && parts.iter().all(|p| !p.is_empty()) {
            best = Some(w);
            break;
        }
    }
    best.map(str::to_string)
}

/// The newest record of each MAC.
fn newest_leases(p: &Published) -> HashMap<Mac, &Lease> {
    let mut by: HashMap<Mac, &Lease> = HashMap::new();
    for l in &p.leases {
        let newer = by.get(&l.mac).is_none_or(|o| {
            (l.state == crate::leases::LeaseState::Bound, l.expires)
                > (o.state == crate::leases::LeaseState::Bound, o.expires)
        });
        if newer {
            by.insert(l.mac, l);
        }
    }
    by
}

/// Per subnet: pool size, leased, offered, declined, free, at `now`.
pub fn subnets(config: &Config, p: &Published, now: u64) -> Vec<SubnetRow> {
    config
        .dhcp
        .subnets
        .iter()
        .map(|s| {
            let pool: u64 = s.pools.iter().map(|r| r.size()).sum();
            let used = p
                .leases
                .iter()
                .filter(|l| s.in_pool(l.ip) && l.active(now))
                .count() as u64;
            let declined = p
                .leases
                .iter()
                .filter(|l| s.in_pool(l.ip) && l.quarantined(now))
                .count() as u64;
            let offered = p
                .offers
                .iter()
                .filter(|(ip, _, until)| s.in_pool(*ip) && *until > now)
                .count() as u64;
            SubnetRow {
                subnet: s.net.to_string(),
                pool,
                used,
                offered,
                declined,
                free: pool.saturating_sub(used + offered + declined),
            }
        })
        .collect()
}

/// Every phone's facts and boot line, for the page and the metrics.
pub struct Phones<'a> {
    seen: std::collections::BTreeMap<Mac, Sighting>,
    published: Arc<Published>,
    inventory: HashMap<Mac, &'a Phone>,
}

impl<'a> Phones<'a> {
    pub fn new(site: &Site, config: &'a Config) -> Phones<'a> {
        Phones {
            seen: site.seen.snapshot(),
            published: site.dhcp.published(),
            inventory: config
                .phones
                .phones
                .iter()
                .filter_map(|p| Some((p.mac?, p)))
                .collect(),
        }
    }

    /// The lease table copy the rows come from.
    pub fn published(&self) -> &Published {
        &self.published
    }

    /// Every MAC known or seen (a lease, a transfer, a DHCP exchange
    /// since the start), sorted.
    pub fn macs(&self, site: &Site) -> Vec<Mac> {
        let mut m: Vec<Mac> = self.inventory.keys().copied().collect();
        m.extend(self.seen.keys().copied());
        m.extend(self.published.leases.iter().map(|l| l.mac));
        if let Some(more) = site
            .activity
            .read(|a| a.dhcp.keys().copied().collect::<Vec<_>>())
        {
            m.extend(more);
        }
        m.sort();
        m.dedup();
        m
    }

    /// Every phone's row.
    pub fn rows(&self, site: &Site, now: u64) -> Vec<PhoneRow> {
        self.rows_of(site, self.macs(site), now)
    }

    /// The rows of `macs`.
    fn rows_of(&self, site: &Site, macs: Vec<Mac>, now: u64) -> Vec<PhoneRow> {
        let leases = newest_leases(&self.published);
        let offers: HashMap<Mac, Ipv4Addr> = self
            .published
            .offers
            .iter()
            .filter(|o| o.2 > now)
            .map(|(ip, mac, _)| (*mac, *ip))
            .collect();
        let registrations = site.logs.registrations();
        site.activity
            .read(|a| {
                macs.into_iter()
                    .map(|mac| {
                        let lease = leases.get(&mac).copied();
                        let s = self.seen.get(&mac);
                        let address = lease
                            .filter(|l| l.active(now))
                            .map(|l| l.ip)
                            .or_else(|| s.and_then(|s| s.address));
                        let log: Vec<String> =
                            registrations.get(&mac).cloned().into_iter().collect();
                        let facts = boot::Facts {
                            now,
                            lease,
                            offered: offers.get(&mac).copied(),
                            dhcp: a.dhcp.get(&mac),
                            dns: address.and_then(|ip| a.dns.get(&ip)),
                            sntp: address.and_then(|ip| a.sntp.get(&ip).copied()),
                            fetched: s.map_or(&[][..], |s| s.fetched.as_slice()),
                            log: &log,
                        };
                        let last = [s.map(|s| s.last_seen), a.dhcp.get(&mac).map(|d| d.0)]
                            .into_iter()
                            .flatten()
                            .max();
                        self.row(mac, lease, address, last, boot::line(&facts), now)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn row(
        &self,
        mac: Mac,
        lease: Option<&Lease>,
        address: Option<Ipv4Addr>,
        last: Option<u64>,
        boot: BootLine,
        now: u64,
    ) -> PhoneRow {
        let s = self.seen.get(&mac);
        let id = identity(mac, self.inventory.get(&mac).copied(), s);
        PhoneRow {
            mac: mac.to_string(),
            name: id.name,
            status: id.status,
            family: id.family,
            model: id.model,
            address: address.map(|a| a.to_string()).unwrap_or_default(),
            interface: lease.map(|l| l.interface.clone()).unwrap_or_default(),
            firmware: s
                .and_then(|s| s.agent.as_deref())
                .and_then(firmware_of)
                .unwrap_or_default(),
            last_seen: last.map(|t| ago(now, t)).unwrap_or_else(|| "never".into()),
            boot,
        }
    }
}

fn keep(row: &PhoneRow, f: &Filter) -> bool {
    (f.family.is_empty() || row.family == f.family)
        && (!f.stuck || row.boot.overall == "stuck")
        && (!f.unknown || row.status != "known")
}

/// The whole page.
pub fn page(site: &Site, filter: Filter, now: u64) -> Page {
    let config = site.config();
    let phones = Phones::new(site, &config);
    let all = phones.rows(site, now);
    let mut counts = Counts {
        phones: all.len(),
        ..Counts::default()
    };
    for r in &all {
        match r.boot.overall {
            "booted" => counts.booted += 1,
            "stuck" => counts.stuck += 1,
            "not seen" => counts.not_seen += 1,
            _ => counts.booting += 1,
        }
        if r.status != "known" {
            counts.unknown += 1;
        }
    }
    let mut rows: Vec<PhoneRow> = all.into_iter().filter(|r| keep(r, &filter)).collect();
    // Stuck phones first, then booting, then the rest, each by MAC.
    rows.sort_by_key(|r| match r.boot.overall {
        "stuck" => 0,
        "booting" => 1,
        "booted" => 2,
        _ => 3,
    });
    let phones_more = rows.len().saturating_sub(ROWS_SHOWN);
    rows.truncate(ROWS_SHOWN);
    let transfers = site
        .transfers
        .snapshot()
        .iter()
        .map(|t| {
            let sent = t.sent();
            let secs = t.started.elapsed().as_secs_f64().max(0.001);
            InProgress {
                protocol: t.protocol,
                client: t.client.to_string(),
                mac: t.mac.map(|m| m.to_string()).unwrap_or_default(),
                file: t.file.clone(),
                sent,
                total: t.total,
                percent: sent.saturating_mul(100).checked_div(t.total).unwrap_or(0),
                rate: format!("{:.1} MiB/s", sent as f64 / secs / 1_048_576.0),
            }
        })
        .collect();
    let finished = site
        .activity
        .read(|a| {
            a.finished
                .iter()
                .rev()
                .map(|f| FinishedRow {
                    at: ago(now, f.at),
                    protocol: f.protocol,
                    client: f.client.to_string(),
                    mac: f.mac.map(|m| m.to_string()).unwrap_or_default(),
                    file: f.requested.clone(),
                    sent: f.sent,
                    outcome: f.outcome,
                    detail: f.detail.clone(),
                    millis: f.millis,
                })
                .collect()
        })
        .unwrap_or_default();
    let published = Arc::clone(&phones.published);
    let names: HashMap<Mac, String> = config
        .phones
        .phones
        .iter()
        .filter_map(|p| Some((p.mac?, p.name.clone()?)))
        .collect();
    let q = filter.q.to_ascii_lowercase();
    let mut leases: Vec<LeaseRow> = published
        .leases
        .iter()
        .filter(|l| l.active(now) || l.quarantined(now))
        .map(|l| LeaseRow {
            ip: l.ip.to_string(),
            mac: l.mac.to_string(),
            state: l.state.as_str().to_string(),
            name: names.get(&l.mac).cloned().unwrap_or_default(),
            hostname: l.hostname.clone().unwrap_or_default(),
            vendor_class: l.vendor_class.clone().unwrap_or_default(),
            interface: l.interface.clone(),
            expires: crate::units::utc(l.expires),
        })
        .collect();
    let leases_total = leases.len();
    if !q.is_empty() {
        leases.retain(|l| {
            [&l.ip, &l.mac, &l.name, &l.hostname, &l.vendor_class]
                .iter()
                .any(|f| f.to_ascii_lowercase().contains(&q))
        });
    }
    leases.sort_by_key(|l| l.ip.parse::<Ipv4Addr>().ok());
    Page {
        now: crate::units::utc(now),
        filter,
        families: families(),
        counts,
        phones: rows,
        phones_more,
        transfers,
        finished,
        subnets: subnets(&config, &published, now),
        leases,
        leases_total,
        switchovers: switchovers(site, &config),
        service: service(site, now),
    }
}

pub fn families() -> Vec<(&'static str, &'static str)> {
    crate::families::ALL
        .iter()
        .map(|f| (f.name, f.title))
        .collect()
}

pub fn switchovers(site: &Site, config: &Config) -> Vec<SwitchoverRow> {
    let Some(dns) = &config.dns else {
        return Vec::new();
    };
    let members = site
        .zone
        .borrow()
        .as_ref()
        .and_then(|z| z.read().ok().map(|z| z.members()))
        .unwrap_or_default();
    dns.switchovers
        .iter()
        .zip(members)
        .map(|(sw, list)| SwitchoverRow {
            name: sw.name.clone(),
            checked: sw.health.is_some(),
            members: list
                .into_iter()
                .map(|(name, addrs, up)| MemberRow {
                    changed: crate::stats::health_changed_at(&sw.name, &name)
                        .map(crate::units::utc)
                        .unwrap_or_else(|| "not since the start".into()),
                    addresses: addrs
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    name,
                    up,
                })
                .collect(),
        })
        .collect()
}

fn service(site: &Site, now: u64) -> ServiceRow {
    let places = site
        .ready
        .snapshot()
        .into_iter()
        .map(|(service, place, slot)| PlaceRow {
            service,
            addresses: crate::net::ifaces::ipv4_addrs(&place)
                .map(|a| {
                    a.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            state: match slot {
                crate::net::ready::Slot::Bound => "serving".into(),
                crate::net::ready::Slot::Waiting(w) => format!("waiting: {w}"),
            },
            place,
        })
        .collect();
    let s = &site.service;
    let up = now.saturating_sub(s.started);
    ServiceRow {
        version: env!("CARGO_PKG_VERSION"),
        uptime: format!(
            "{} d {} h {} min",
            up / 86_400,
            up % 86_400 / 3_600,
            up % 3_600 / 60
        ),
        source: s
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "a generated configuration".into()),
        loaded_at: crate::units::utc(s.loaded_at.load(std::sync::atomic::Ordering::Relaxed)),
        last_reload: s
            .last_reload
            .read()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "none since the start".into()),
        places,
        last_commit: crate::stats::last_commit()
            .map(|(us, at)| format!("{:.2} ms, {}", us as f64 / 1000.0, ago(now, at)))
            .unwrap_or_else(|| "none yet".into()),
        commit_error: crate::stats::commit_error().unwrap_or_default(),
    }
}

/// One phone's own page.
#[derive(Debug, Clone, Serialize)]
pub struct PhonePage {
    pub now: String,
    pub row: PhoneRow,
    pub explain: String,
    pub exchange: Option<Exchange>,
    pub fetched: Vec<FetchRow>,
    pub dns: Vec<String>,
    pub log: Vec<String>,
    pub log_error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub at: String,
    pub request: &'static str,
    pub reply: String,
    pub ip: String,
    pub interface: String,
    pub vendor_class: String,
    pub classes: String,
    pub options: Vec<String>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FetchRow {
    pub at: String,
    pub file: String,
    pub protocol: String,
    pub outcome: String,
    pub sent: u64,
    pub total: String,
    pub detail: String,
}

/// Lines of the phone's log shown on its page.
pub const LOG_SHOWN: usize = 200;

/// One phone's page; None when dialtone neither knows nor saw it.
pub fn phone(site: &Site, mac: Mac, now: u64) -> Option<PhonePage> {
    let config = site.config();
    let phones = Phones::new(site, &config);
    if !phones.macs(site).contains(&mac) {
        return None;
    }
    let row = phones.rows_of(site, vec![mac], now).pop()?;
    let (exchange, dns) = site
        .activity
        .read(|a| {
            let ex = a.dhcp.get(&mac).map(|(at, d)| Exchange {
                at: crate::units::utc(*at),
                request: d.request,
                reply: d.reply.unwrap_or("no answer").to_string(),
                ip: d.ip.map(|i| i.to_string()).unwrap_or_default(),
                interface: d.interface.clone(),
                vendor_class: d.vendor_class.clone().unwrap_or_default(),
                classes: d.classes.join(", "),
                options: d
                    .options
                    .iter()
                    .map(|c| format!("{c} {}", crate::dhcp::options::name(*c)))
                    .collect(),
                note: d.note.clone().unwrap_or_default(),
            });
            let dns = row
                .address
                .parse::<Ipv4Addr>()
                .ok()
                .and_then(|ip| a.dns.get(&ip))
                .map(|l| {
                    l.iter()
                        .map(|q| {
                            format!(
                                "{} {} {}: {}",
                                ago(now, q.at),
                                q.name,
                                crate::stats::DNS_TYPES
                                    .iter()
                                    .find(|t| t.0 == q.qtype)
                                    .map_or("other", |t| t.1),
                                crate::stats::DNS_RCODES
                                    .get(usize::from(q.rcode))
                                    .copied()
                                    .unwrap_or("other")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (ex, dns)
        })
        .unwrap_or((None, Vec::new()));
    let seen = phones.seen.get(&mac);
    let fetched = seen
        .map(|s| s.fetched.iter().map(fetch_row).collect())
        .unwrap_or_default();
    let (log, log_error) = match super::syslog::tail(&config.server.state_dir, mac, LOG_SHOWN) {
        Ok(l) => (l.iter().map(|l| l.display()).collect(), String::new()),
        Err(e) => (Vec::new(), e.to_string()),
    };
    Some(PhonePage {
        now: crate::units::utc(now),
        explain: explain(&config, &phones, mac, seen),
        row,
        exchange,
        fetched,
        dns,
        log,
        log_error,
    })
}

fn fetch_row(f: &Fetch) -> FetchRow {
    FetchRow {
        at: crate::units::utc(f.at),
        file: f.file.clone(),
        protocol: f.protocol.clone(),
        outcome: f.outcome.clone(),
        sent: f.sent,
        total: f.total.map(|t| t.to_string()).unwrap_or_default(),
        detail: if boot::kind(&f.file) == boot::Kind::Other || f.outcome != "complete" {
            boot::failure(f)
        } else {
            f.detail.clone()
        },
    }
}

/// What `dialtone explain` says this phone gets, as it identified itself
/// last (its vendor class), against the server's leases.
fn explain(config: &Config, phones: &Phones, mac: Mac, seen: Option<&Sighting>) -> String {
    let config = std::sync::Arc::new(config.clone());
    let place = match crate::explain::Place::find(&config, None) {
        Ok(p) => p,
        Err(e) => return format!("{e:#}"),
    };
    let phone = crate::explain::Phone {
        mac,
        vendor_class: seen.and_then(|s| s.vendor_class.clone()),
        user_class: None,
        requests: crate::explain::DEFAULT_REQUESTS.to_vec(),
    };
    let table = crate::leases::table::LeaseTable::from_leases(phones.published.leases.clone());
    crate::explain::explain(
        config,
        &phone,
        &place,
        table,
        "the server's lease table",
        crate::now(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_versions_from_user_agents() {
        assert_eq!(
            firmware_of("AUDC-IPPhone-450HD_UC_3.4.6.700/1.0").as_deref(),
            Some("3.4.6.700")
        );
        assert_eq!(
            firmware_of("FileTransport PolycomVVX-VVX_450-UA/6.4.3.5018 (SN:0004f2000001)")
                .as_deref(),
            Some("6.4.3.5018")
        );
        assert_eq!(firmware_of("curl/7.88.1").as_deref(), Some("7.88.1"));
        assert_eq!(firmware_of("dialtone-phone"), None);
        assert_eq!(ago(100, 40), "60 s ago".replace("60 s", "1 min"));
    }
}
