//! The phones `dialtone serve` has seen: from every stored lease (address,
//! vendor and user class, host name) and every file transfer (what each
//! phone fetched), known to the inventory or not. Kept in memory by
//! `serve`, written to `phones-seen.json` in the state directory every few
//! seconds while it changes and on the way out, and read back at start, so
//! `dialtone phones` can list known and unknown phones with when they were
//! last seen, their address, model and files.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dhcp::options::model_of;
use crate::files::transfers::Transfer;
use crate::leases::{Lease, LeaseState};
use crate::statefile::JsonState;
use crate::units::Mac;

/// Files remembered per phone (the most recent, one entry per file).
pub const FILES_KEPT: usize = 24;

/// Phones remembered at most: past this, the tenth of them seen longest
/// ago are forgotten at once (`PHONES_AFTER_EVICTION` stay). Every MAC
/// that takes a lease is a sighting, so without a bound a flood of random
/// MACs (or years of visitors) would grow the table, and the file written
/// every 5 s, without end. Forgetting one phone per new one cost a pass
/// over the whole table per lease: with 60,000 new clients (bench/dhcp.sh)
/// that pass was a third of the lease writer's time and DHCP fell from
/// 58,000 exchanges a second to 6,400; a pass per thousand new phones
/// costs a few nanoseconds a lease.
pub const PHONES_KEPT: usize = 10_000;
pub const PHONES_AFTER_EVICTION: usize = PHONES_KEPT - PHONES_KEPT / 10;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sighting {
    /// Unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
    /// The address of its last lease.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    #[serde(default)]
    pub vendor_class: Option<String>,
    /// Option 77 if it sent one, else option 60 (as `{model}` in options).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    /// It was given a provisional configuration (not in the inventory).
    #[serde(default)]
    pub provisional: bool,
    /// The User-Agent of its last HTTP request (model, firmware version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Oldest first.
    #[serde(default)]
    pub fetched: Vec<Fetch>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fetch {
    /// The name as asked for.
    pub file: String,
    pub protocol: String,
    pub outcome: String,
    pub at: u64,
    /// Bytes sent, and the file's size when known (how far a transfer got).
    #[serde(default)]
    pub sent: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Why it was refused, or how it was sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Phones seen, by MAC.
#[derive(Debug, Default)]
pub struct Seen {
    phones: JsonState<BTreeMap<Mac, Sighting>>,
}

impl Seen {
    /// The phones seen before, from `path` (none if it does not exist).
    pub fn load(path: &Path) -> Result<Seen, String> {
        Ok(Seen {
            phones: JsonState::load(path)?,
        })
    }

    fn update(&self, mac: Mac, now: u64, f: impl FnOnce(&mut Sighting)) {
        self.phones.update(|phones| {
            let s = phones.entry(mac).or_insert_with(|| Sighting {
                first_seen: now,
                ..Sighting::default()
            });
            s.last_seen = s.last_seen.max(now);
            f(s);
            if phones.len() > PHONES_KEPT {
                forget_oldest(phones, mac);
            }
        });
    }

    /// A lease was stored (offered leases are not stored; bound, released,
    /// declined ones are).
    pub fn lease(&self, l: &Lease, now: u64) {
        self.update(l.mac, now, |s| {
            if l.state == LeaseState::Bound {
                s.address = Some(l.ip);
            }
            if l.vendor_class.is_some() {
                s.vendor_class = l.vendor_class.clone();
            }
            if let Some(m) = model_of(l.user_class.as_deref(), l.vendor_class.as_deref()) {
                s.model = Some(m.to_string());
            }
            if l.hostname.is_some() {
                s.hostname = l.hostname.clone();
            }
        });
    }

    /// A transfer ended; counted for the client's MAC when it is known.
    /// Uploads (TFTP writes, HTTP PUT) are what the phone sent, not what it
    /// fetched: they are not its files.
    pub fn transfer(&self, t: &Transfer, now: u64) {
        let Some(mac) = t.mac else { return };
        if t.protocol.ends_with("-upload") {
            return;
        }
        self.update(mac, now, |s| {
            s.address = Some(t.client);
            s.fetched.retain(|f| f.file != t.requested);
            s.fetched.push(Fetch {
                file: t.requested.clone(),
                protocol: t.protocol.to_string(),
                outcome: t.outcome.as_str().to_string(),
                at: now,
                sent: t.sent,
                total: t.total,
                detail: t.detail.chars().take(200).collect(),
            });
            if t.agent.is_some() {
                s.agent = t.agent.clone();
            }
            let extra = s.fetched.len().saturating_sub(FILES_KEPT);
            s.fetched.drain(..extra);
        });
    }

    /// The phone was given a provisional configuration.
    pub fn provisional(&self, mac: Mac, now: u64) {
        self.update(mac, now, |s| s.provisional = true);
    }

    /// The model a phone gave in its last lease.
    pub fn model(&self, mac: Mac) -> Option<String> {
        self.phones.read(|p| p.get(&mac)?.model.clone())
    }

    pub fn snapshot(&self) -> BTreeMap<Mac, Sighting> {
        self.phones.snapshot()
    }

    /// Writes the phones to `path` (atomically) if they changed since the
    /// last write.
    pub fn save_if_changed(&self, path: &Path) -> std::io::Result<()> {
        self.phones.save_if_changed(path)
    }
}

/// Forgets the phones seen longest ago, down to `PHONES_AFTER_EVICTION`;
/// never `keep` (the phone being recorded).
fn forget_oldest(phones: &mut BTreeMap<Mac, Sighting>, keep: Mac) {
    let mut ages: Vec<(u64, Mac)> = phones
        .iter()
        .filter(|(m, _)| **m != keep)
        .map(|(m, s)| (s.last_seen, *m))
        .collect();
    let excess = phones
        .len()
        .saturating_sub(PHONES_AFTER_EVICTION)
        .min(ages.len());
    if excess == 0 {
        return;
    }
    ages.select_nth_unstable(excess - 1);
    for (_, m) in &ages[..excess] {
        phones.remove(m);
    }
}

pub fn seen_path(state_dir: &Path) -> PathBuf {
    state_dir.join("phones-seen.json")
}

/// One line of `dialtone phones`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub mac: String,
    /// The inventory's name; empty for an unknown phone.
    pub name: String,
    /// `known` (in the inventory), `provisional` (not in it, given a
    /// provisional configuration) or `unknown`.
    pub status: &'static str,
    pub family: String,
    pub model: String,
    pub address: Option<Ipv4Addr>,
    /// Unix seconds; none if never seen.
    pub last_seen: Option<u64>,
    pub fetched: Vec<Fetch>,
}

/// Every phone of the inventory (seen or not) and every phone seen that is
/// not in it, by MAC.
pub fn rows(inventory: &super::Inventory, seen: &BTreeMap<Mac, Sighting>) -> Vec<Row> {
    let mut macs: Vec<Mac> = inventory.phones.iter().filter_map(|p| p.mac).collect();
    macs.extend(seen.keys().copied());
    macs.sort();
    macs.dedup();
    macs.into_iter()
        .map(|mac| {
            let s = seen.get(&mac);
            let id = identity(mac, inventory.by_mac(mac), s);
            Row {
                mac: mac.to_string(),
                name: id.name,
                status: id.status,
                family: id.family,
                model: id.model,
                address: s.and_then(|s| s.address),
                last_seen: s.map(|s| s.last_seen),
                fetched: s.map(|s| s.fetched.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// How a phone is named and told: the inventory's word first, else what
/// the phone said of itself.
pub struct Identity {
    /// The inventory's name; empty for an unknown phone.
    pub name: String,
    /// `known`, `provisional` or `unknown`.
    pub status: &'static str,
    pub family: String,
    pub model: String,
}

/// A phone's family: the inventory's, else told by its MAC and model.
pub fn family(
    mac: Mac,
    phone: Option<&super::Phone>,
    model: Option<&str>,
) -> Option<&'static super::Family> {
    match phone {
        Some(p) => Some(p.family),
        None => crate::families::of_mac(mac, model),
    }
}

pub fn identity(mac: Mac, phone: Option<&super::Phone>, s: Option<&Sighting>) -> Identity {
    let model = phone
        .and_then(|p| p.model.clone())
        .or_else(|| s.and_then(|s| s.model.clone()));
    Identity {
        name: phone.and_then(|p| p.name.clone()).unwrap_or_default(),
        status: match (phone, s) {
            (Some(_), _) => "known",
            (None, Some(s)) if s.provisional => "provisional",
            (None, _) => "unknown",
        },
        family: family(mac, phone, model.as_deref())
            .map(|f| f.name.to_string())
            .unwrap_or_default(),
        model: model.unwrap_or_default(),
    }
}

/// The rows as a table; `now` for "how long ago".
pub fn table(rows: &[Row], now: u64) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{:<17}  {:<12}  {:<11}  {:<23}  {:<8}  {:<15}  {:<10}  FETCHED\n",
        "MAC", "NAME", "STATUS", "FAMILY", "MODEL", "ADDRESS", "LAST SEEN"
    );
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    for r in rows {
        let fetched: Vec<String> = r
            .fetched
            .iter()
            .map(|f| match f.outcome.as_str() {
                "complete" | "partial" | "not modified" => f.file.clone(),
                other => format!("{} ({other})", f.file),
            })
            .collect();
        let _ = writeln!(
            out,
            "{:<17}  {:<12}  {:<11}  {:<23}  {:<8}  {:<15}  {:<10}  {}",
            r.mac,
            dash(&r.name),
            r.status,
            dash(&r.family),
            dash(&r.model),
            r.address
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            r.last_seen
                .map(|t| ago(now, t))
                .unwrap_or_else(|| "never".into()),
            if fetched.is_empty() {
                "-".to_string()
            } else {
                fetched.join(", ")
            }
        );
    }
    out
}

/// "12s ago", "5m ago", "3h ago", "2d ago".
fn ago(now: u64, then: u64) -> String {
    let d = now.saturating_sub(then);
    match d {
        0..60 => format!("{d}s ago"),
        60..3600 => format!("{}m ago", d / 60),
        3600..86400 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::resolve::Client;
    use crate::files::transfers::Outcome;

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    fn lease(m: &str, ip: [u8; 4], user_class: Option<&str>) -> Lease {
        Lease {
            ip: Ipv4Addr::from(ip),
            mac: mac(m),
            hostname: Some("phone".into()),
            vendor_class: Some("AUDC-IPPhone".into()),
            user_class: user_class.map(str::to_string),
            interface: "voice0".into(),
            state: LeaseState::Bound,
            expires: 2000,
        }
    }

    #[test]
    fn the_table_keeps_the_phones_seen_last_up_to_its_bound() {
        let seen = Seen::default();
        let mac = |i: u64| Mac([0x02, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let sight = |i: u64, at: u64| {
            let mut l = lease("00:90:8f:aa:bb:cc", [10, 0, 0, 5], None);
            l.mac = mac(i);
            seen.lease(&l, at);
        };
        // Up to the bound, every phone is kept.
        let n = PHONES_KEPT as u64;
        for i in 0..n {
            sight(i, 1000 + i);
        }
        assert_eq!(seen.snapshot().len(), PHONES_KEPT);
        // Phone 0, seen again, is now the most recent.
        sight(0, 1000 + n);
        // One more: down to PHONES_AFTER_EVICTION at once, the phones
        // seen longest ago going (1 to 1,001); the phone just seen and
        // phone 0 stay.
        sight(n, 1001 + n);
        let all = seen.snapshot();
        assert_eq!(all.len(), PHONES_AFTER_EVICTION);
        assert!((1..=1001).all(|i| !all.contains_key(&mac(i))));
        assert!(all.contains_key(&mac(0)) && all.contains_key(&mac(1002)));
        assert!(all.contains_key(&mac(n)));
        // Three times the bound later, still within it; the last ones seen
        // are all there.
        for i in n + 1..4 * n {
            sight(i, 1001 + i);
        }
        let all = seen.snapshot();
        assert!(all.len() <= PHONES_KEPT, "{}", all.len());
        assert!((4 * n - PHONES_AFTER_EVICTION as u64..4 * n).all(|i| all.contains_key(&mac(i))));
    }

    #[test]
    fn leases_and_transfers_make_sightings_that_survive_a_restart() {
        let seen = Seen::default();
        seen.lease(
            &lease("00:90:8f:aa:bb:cc", [10, 0, 0, 5], Some("450HD")),
            100,
        );
        seen.lease(&lease("00:04:f2:00:00:01", [10, 0, 0, 6], None), 110);
        let client = Client {
            ip: Ipv4Addr::new(10, 0, 0, 5),
            mac: Some(mac("00:90:8f:aa:bb:cc")),
        };
        for (i, (file, outcome)) in [
            ("450HD.img", Outcome::Partial),
            ("00908FAABBCC.cfg", Outcome::Complete),
            ("450HD.img", Outcome::Complete),
        ]
        .into_iter()
        .enumerate()
        {
            let mut t = Transfer::begin("http", &client, file);
            t.outcome = outcome;
            seen.transfer(&t, 120 + i as u64);
        }
        seen.provisional(mac("00:90:8f:aa:bb:cc"), 130);
        // A transfer by a client without a lease is not anyone's.
        let stranger = Client {
            ip: Ipv4Addr::new(10, 0, 0, 9),
            mac: None,
        };
        seen.transfer(&Transfer::begin("tftp", &stranger, "x.cfg"), 140);
        // What the phone uploads is not among its files.
        for proto in ["http-upload", "tftp-upload"] {
            let mut up = Transfer::begin(proto, &client, "00908faabbcc-local.cfg");
            up.outcome = Outcome::Complete;
            seen.transfer(&up, 150);
        }

        let snap = seen.snapshot();
        assert_eq!(snap.len(), 2);
        let a = &snap[&mac("00:90:8f:aa:bb:cc")];
        assert_eq!((a.first_seen, a.last_seen), (100, 130));
        assert_eq!(a.model.as_deref(), Some("450HD"));
        assert_eq!(a.address, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert!(a.provisional);
        // One entry per file, the latest last.
        let files: Vec<(&str, &str)> = a
            .fetched
            .iter()
            .map(|f| (f.file.as_str(), f.outcome.as_str()))
            .collect();
        assert_eq!(
            files,
            [("00908FAABBCC.cfg", "complete"), ("450HD.img", "complete")]
        );
        // Without option 77 the model is the vendor class.
        let p = &snap[&mac("00:04:f2:00:00:01")];
        assert_eq!(p.model.as_deref(), Some("AUDC-IPPhone"));
        assert!(!p.provisional);

        let dir = std::env::temp_dir().join(format!("dialtone-seen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = seen_path(&dir);
        seen.save_if_changed(&path).unwrap();
        let back = Seen::load(&path).unwrap();
        assert_eq!(back.snapshot(), snap);
        assert_eq!(
            back.model(mac("00:90:8f:aa:bb:cc")).as_deref(),
            Some("450HD")
        );
        // Unchanged since: not written again.
        std::fs::remove_file(&path).unwrap();
        seen.save_if_changed(&path).unwrap();
        assert!(!path.exists());
        // A damaged file is an error naming it, not a panic.
        std::fs::write(&path, "{\"zz\": {\"first_seen\": 1, \"last_seen\": 2}}").unwrap();
        let e = Seen::load(&path).unwrap_err();
        assert!(e.contains("phones-seen.json") && e.contains("zz"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_kept_per_phone_are_bounded() {
        let seen = Seen::default();
        let client = Client {
            ip: Ipv4Addr::new(10, 0, 0, 5),
            mac: Some(mac("00:90:8f:aa:bb:cc")),
        };
        for i in 0..100 {
            seen.transfer(&Transfer::begin("tftp", &client, &format!("f{i}")), i);
        }
        let snap = seen.snapshot();
        let f = &snap[&mac("00:90:8f:aa:bb:cc")].fetched;
        assert_eq!(f.len(), FILES_KEPT);
        assert_eq!(f.last().map(|x| x.file.as_str()), Some("f99"));
    }

    #[test]
    fn the_list_has_known_phones_seen_or_not_and_unknown_ones_seen() {
        let config = crate::config::Config::parse(
            "t.toml",
            r#"
[server]
interfaces = ["eth0"]
[[dhcp.subnet]]
cidr = "10.0.0.0/24"
pool = ["10.0.0.100-10.0.0.200"]
[[phone]]
mac = "00:90:8f:00:00:01"
name = "Front desk"
manufacturer = "AudioCodes"
model = "450HD"
[[phone]]
mac = "00:04:f2:00:00:02"
name = "Lab"
manufacturer = "Polycom"
model = "VVX 411"
"#,
        )
        .unwrap();
        let seen = Seen::default();
        seen.lease(
            &lease("00:90:8f:00:00:01", [10, 0, 0, 5], Some("450HD")),
            1000,
        );
        seen.lease(
            &lease("00:90:8f:00:00:09", [10, 0, 0, 9], Some("440HD")),
            1100,
        );
        seen.provisional(mac("00:90:8f:00:00:09"), 1100);
        seen.lease(&lease("52:54:00:00:00:07", [10, 0, 0, 7], None), 1150);
        let client = Client {
            ip: Ipv4Addr::new(10, 0, 0, 9),
            mac: Some(mac("00:90:8f:00:00:09")),
        };
        let mut t = Transfer::begin("http", &client, "00908F000009.cfg");
        t.outcome = Outcome::Complete;
        seen.transfer(&t, 1190);
        let mut t = Transfer::begin("http", &client, "440HD.img");
        t.outcome = Outcome::NotFound;
        seen.transfer(&t, 1195);

        let rows = rows(&config.phones, &seen.snapshot());
        let brief: Vec<(&str, &str, &str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.mac.as_str(),
                    r.status,
                    r.family.as_str(),
                    r.model.as_str(),
                )
            })
            .collect();
        assert_eq!(
            brief,
            [
                ("00:04:f2:00:00:02", "known", "polycom", "VVX 411"),
                ("00:90:8f:00:00:01", "known", "audiocodes", "450HD"),
                ("00:90:8f:00:00:09", "provisional", "audiocodes", "440HD"),
                ("52:54:00:00:00:07", "unknown", "", "AUDC-IPPhone"),
            ]
        );
        assert_eq!(rows[0].last_seen, None);
        let text = table(&rows, 1200);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("MAC "), "{text}");
        assert!(
            lines[1].contains("Lab") && lines[1].contains("never"),
            "{text}"
        );
        assert!(
            lines[2].contains("Front desk")
                && lines[2].contains("10.0.0.5")
                && lines[2].contains("3m ago"),
            "{text}"
        );
        assert!(
            lines[3].ends_with("00908F000009.cfg, 440HD.img (not found)")
                && lines[3].contains("5s ago"),
            "{text}"
        );
    }
}
