//! SNTP server (RFC 4330): the reply to one client packet decided without I/O,
//! and the sockets around it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A time as an NTP timestamp: seconds since 1900 modulo 2^32 (so era 1,
/// from 2036 on, wraps as RFC 5905 section 6 describes) and a binary fraction.
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = (d.as_secs() + NTP_UNIX_OFFSET) & 0xffff_ffff;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The Unix time an NTP timestamp stands for, taking the era nearest `near`.
pub fn unix_time(ts: u64, near: SystemTime) -> SystemTime {
    let near_ntp = near
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        + NTP_UNIX_OFFSET;
    let era_base = near_ntp & !0xffff_ffff;
    let secs32 = ts >> 32;
    let mut candidates = [
        era_base + secs32,
        (era_base + secs32).saturating_sub(1 << 32),
        era_base + secs32 + (1 << 32),
    ];
    candidates.sort_by_key(|c| c.abs_diff(near_ntp));
    let secs = candidates[0].saturating_sub(NTP_UNIX_OFFSET);
    let nanos = ((ts & 0xffff_ffff) * 1_000_000_000) >> 32;
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos)
}

/// Why a packet got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drop {
    TooShort(usize),
    NotClient { mode: u8 },
    Version(u8),
}

impl std::fmt::Display for Drop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drop::TooShort(n) => write!(f, "{n} bytes, shorter than an NTP header (48)"),
            Drop::NotClient { mode } => write!(f, "mode {mode}, not a client request (3)"),
            Drop::Version(v) => write!(f, "NTP version {v}, expected 1-4"),
        }
    }
}

/// The server's reply to a client packet received at `received`, sent at
/// `now`. Stratum and reference identifier as configured; the leap
/// indicator says "no warning" (the host's own synchronisation is logged).
pub fn reply(
    request: &[u8],
    received: SystemTime,
    now: SystemTime,
    stratum: u8,
) -> Result<[u8; 48], Drop> {
    if request.len() < 48 {
        return Err(Drop::TooShort(request.len()));
    }
    let version = (request[0] >> 3) & 0x07;
    let mode = request[0] & 0x07;
    if !(1..=4).contains(&version) {
        return Err(Drop::Version(version));
    }
    if mode != 3 {
        return Err(Drop::NotClient { mode });
    }
    let mut out = [0u8; 48];
    out[0] = (version << 3) | 4; // LI 0, the client's version, mode 4 (server)
    out[1] = stratum;
    out[2] = request[2].clamp(4, 17); // poll: the client's, within RFC 5905 bounds
    out[3] = (-20i8) as u8; // precision: about a microsecond
    // Root delay 0; root dispersion about 10 ms (16.16 fixed point).
    out[8..12].copy_from_slice(&655u32.to_be_bytes());
    // Reference identifier: "LOCL", the host's own clock.
    out[12..16].copy_from_slice(b"LOCL");
    let reference = now.checked_sub(Duration::from_secs(16)).unwrap_or(now);
    out[16..24].copy_from_slice(&ntp_timestamp(reference).to_be_bytes());
    // Originate: the client's transmit timestamp, copied as is.
    out[24..32].copy_from_slice(&request[40..48]);
    out[32..40].copy_from_slice(&ntp_timestamp(received).to_be_bytes());
    out[40..48].copy_from_slice(&ntp_timestamp(now).to_be_bytes());
    Ok(out)
}

/// Where SNTP listens under `config`: its port on each served interface,
/// when `[time] serve` is on.
pub fn places(config: &crate::config::Config) -> Vec<crate::net::places::Place> {
    if !config.time.serve {
        return Vec::new();
    }
    let settings = format!("{} {}", config.time.port, config.time.stratum);
    config
        .server
        .interfaces
        .iter()
        .map(|i| crate::net::places::Place::on(i, settings.clone()))
        .collect()
}

/// Serves SNTP on every interface until dropped.
pub async fn run(
    live: tokio::sync::watch::Receiver<std::sync::Arc<crate::config::Config>>,
    ready: std::sync::Arc<crate::net::ready::Readiness>,
) -> anyhow::Result<()> {
    let config = live.clone();
    let stratum = live.borrow().time.stratum;
    if live.borrow().time.serve && !crate::sys::clock::synchronised() {
        tracing::warn!(target: "dialtone::time", stratum, "the host clock is not synchronised (no NTP daemon disciplines it); phones get its time anyway, announced at the configured stratum");
    }
    crate::net::places::serve(
        live,
        "SNTP",
        ready,
        |c| places(c),
        move |place, report| {
            let time = config.borrow().time.clone();
            serve_interface(place.label, time.port, time.stratum, report)
        },
    )
    .await
}

/// SNTP on one interface, until dropped.
async fn serve_interface(
    name: String,
    port: u16,
    stratum: u8,
    report: crate::net::ready::Report,
) -> anyhow::Result<()> {
    // A site's phones ask for the time together after a power cut, while
    // the same core moves their firmware: the queue holds the burst until
    // this task runs (the default one overflowed at 5,000 phones).
    let sock = crate::net::sockets::udp(&name, port, |s| {
        crate::net::sockets::large_buffers(s, 1 << 20, false);
        Ok(())
    })
    .with_context(|| format!("cannot listen for SNTP on {name} UDP port {port}"))?;
    report.bound();
    tracing::info!(target: "dialtone::time", interface = %name, port, stratum, "serving SNTP");
    let mut buf = [0u8; 512];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: "dialtone::time", interface = %name, error = %e, "receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let received = SystemTime::now();
        match reply(&buf[..n], received, SystemTime::now(), stratum) {
            Ok(out) => {
                if let Err(e) = sock.send_to(&out, from).await {
                    tracing::debug!(target: "dialtone::time", %from, error = %e, "send failed");
                }
                tracing::debug!(target: "dialtone::time", client = %from, interface = %name, "sntp answered");
                if let std::net::IpAddr::V4(client) = from.ip() {
                    crate::stats::tell(|| crate::stats::Event::Sntp { client });
                }
            }
            Err(why) => {
                crate::counters::bump(crate::counters::Counter::SntpDropped);
                tracing::debug!(target: "dialtone::time", client = %from, interface = %name, reason = %why, "sntp packet dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(version: u8, transmit: u64) -> Vec<u8> {
        let mut p = vec![0u8; 48];
        p[0] = (version << 3) | 3;
        p[2] = 6;
        p[40..48].copy_from_slice(&transmit.to_be_bytes());
        p
    }

    #[test]
    fn timestamps_cross_the_2036_era_boundary() {
        // 2036-02-07T06:28:16Z is NTP second 2^32: era 1 starts at 0 again.
        let boundary = UNIX_EPOCH + Duration::from_secs((1u64 << 32) - NTP_UNIX_OFFSET);
        assert_eq!(ntp_timestamp(boundary) >> 32, 0);
        let before = boundary - Duration::from_secs(1);
        assert_eq!(ntp_timestamp(before) >> 32, 0xffff_ffff);
        // Read back near the boundary, both sides land in the right era.
        assert_eq!(unix_time(ntp_timestamp(boundary), before), boundary);
        assert_eq!(unix_time(ntp_timestamp(before), boundary), before);
        // 2026: era 0, seconds = unix + 2208988800.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(ntp_timestamp(t) >> 32, 1_795_000_000 + NTP_UNIX_OFFSET);
        // A half second is half of 2^32 in the fraction.
        let h = t + Duration::from_millis(500);
        assert_eq!(ntp_timestamp(h) & 0xffff_ffff, 1 << 31);
    }

    #[test]
    fn reply_to_a_client() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let req = client(4, 0x1122_3344_5566_7788);
        let r = reply(&req, now, now, 10).unwrap();
        assert_eq!(r[0], (4 << 3) | 4, "LI 0, version 4, mode 4");
        assert_eq!(r[1], 10);
        assert_eq!(&r[12..16], b"LOCL");
        assert_eq!(
            &r[24..32],
            &0x1122_3344_5566_7788u64.to_be_bytes(),
            "originate = client transmit"
        );
        assert_eq!(
            u64::from_be_bytes(r[40..48].try_into().unwrap()),
            ntp_timestamp(now)
        );
        assert!(u64::from_be_bytes(r[16..24].try_into().unwrap()) < ntp_timestamp(now));
        // Version 3 clients get version 3 back.
        assert_eq!(reply(&client(3, 1), now, now, 10).unwrap()[0], (3 << 3) | 4);
    }

    #[test]
    fn drops_what_is_not_a_client_request() {
        let now = SystemTime::now();
        assert_eq!(reply(&[0u8; 47], now, now, 10), Err(Drop::TooShort(47)));
        let mut server_mode = client(4, 1);
        server_mode[0] = (4 << 3) | 4;
        assert_eq!(
            reply(&server_mode, now, now, 10),
            Err(Drop::NotClient { mode: 4 })
        );
        assert_eq!(reply(&client(0, 1), now, now, 10), Err(Drop::Version(0)));
        assert_eq!(reply(&client(7, 1), now, now, 10), Err(Drop::Version(7)));
    }
}
