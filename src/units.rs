//! Small value types shared by the configuration and the DHCP code:
//! MAC addresses, durations written as `"1h"`, IPv4 networks and ranges.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An Ethernet hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Twelve lower-case hex digits without separators (`00908f123456`), the form
    /// phones use in file names.
    pub fn bare(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = String;
    /// Accepts `00:90:8f:12:34:56`, `00-90-8F-12-34-56`, `0090.8f12.3456` and `00908f123456`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex: String = s
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | '.'))
            .collect();
        if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "`{s}` is not a MAC address (expected 12 hex digits, e.g. 00:90:8f:12:34:56)"
            ));
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("`{s}` is not a MAC address"))?;
        }
        Ok(Mac(out))
    }
}

/// Written as `00:90:8f:12:34:56` (also as a JSON map key).
impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses `"90s"`, `"10m"`, `"1h"`, `"2d"`, `"1h30m"` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration (expected e.g. \"1h\", \"30m\", \"90s\")".into());
    }
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => {
                return Err(format!(
                    "`{s}` is not a duration (expected e.g. \"1h\", \"30m\", \"90s\")"
                ));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration (a number must precede `{c}`)"))?;
        num.clear();
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if !num.is_empty() {
        return Err(format!(
            "`{s}` is not a duration (a unit s, m, h, d or w must follow {num})"
        ));
    }
    u32::try_from(total).map_err(|_| format!("`{s}` is too long a duration"))
}

/// Parses a size in bytes: `"16M"`, `"512K"`, `"1G"` (powers of 1024, an
/// optional `iB` or `B` after the letter) or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad =
        || format!("`{s}` is not a size (expected e.g. \"16M\", \"512K\" or a number of bytes)");
    let lower = t.to_ascii_lowercase();
    let unit_text = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match unit_text.chars().last() {
        Some('k') => (&unit_text[..unit_text.len() - 1], 10),
        Some('m') => (&unit_text[..unit_text.len() - 1], 20),
        Some('g') => (&unit_text[..unit_text.len() - 1], 30),
        Some(c) if c.is_ascii_digit() => (unit_text, 0),
        _ => return Err(bad()),
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large a size"))
}

/// An IPv4 network such as `192.168.1.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_u32())
    }
    fn mask_u32(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_u32())
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_u32())
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_u32() == u32::from(self.addr) & self.mask_u32()
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("`{s}` is not an IPv4 network (expected e.g. 192.168.1.0/24)");
        let (a, p) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = a.trim().parse().map_err(|_| err())?;
        let prefix: u8 = p.trim().parse().map_err(|_| err())?;
        if prefix > 32 {
            return Err(err());
        }
        Ok(Ipv4Net { addr, prefix })
    }
}

/// An inclusive range of IPv4 addresses, written `a-b` (or a single address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Range {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Ipv4Range {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        ip >= self.first && ip <= self.last
    }
    /// Number of addresses in the range (never 0: a range holds at least one).
    pub fn size(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for Ipv4Range {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err =
            || format!("`{s}` is not an address range (expected e.g. 192.168.1.100-192.168.1.199)");
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a, b),
            None => (s, s),
        };
        let first: Ipv4Addr = a.trim().parse().map_err(|_| err())?;
        let last: Ipv4Addr = b.trim().parse().map_err(|_| err())?;
        if first > last {
            return Err(format!("`{s}`: the range ends before it starts"));
        }
        Ok(Ipv4Range { first, last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_forms() {
        let m: Mac = "00:90:8F:12:34:56".parse().unwrap();
        assert_eq!(m.to_string(), "00:90:8f:12:34:56");
        assert_eq!(m.bare(), "00908f123456");
        assert_eq!("00908f123456".parse::<Mac>().unwrap(), m);
        assert_eq!("0090.8f12.3456".parse::<Mac>().unwrap(), m);
        assert!("00:90:8f:12:34".parse::<Mac>().is_err());
        assert!("00:90:8f:12:34:5g".parse::<Mac>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2MB"), Ok(2 << 20));
        assert_eq!(parse_size(" 4096 "), Ok(4096));
        assert_eq!(parse_size("100B"), Ok(100));
        for bad in ["", "M", "12X", "-1K", "1.5M", "k12"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("60s"), Ok(60));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("120"), Ok(120));
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("10").is_ok());
        assert!(parse_duration("5").is_ok());
        assert!(parse_duration("1m5").is_err());
    }

    #[test]
    fn nets_and_ranges() {
        let n: Ipv4Net = "10.250.0.0/24".parse().unwrap();
        assert!(n.contains("10.250.0.7".parse().unwrap()));
        assert!(!n.contains("10.250.1.7".parse().unwrap()));
        assert_eq!(n.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 250, 0, 255));
        let r: Ipv4Range = "10.0.0.5-10.0.0.9".parse().unwrap();
        assert_eq!(r.size(), 5);
        assert!("10.0.0.9-10.0.0.5".parse::<Ipv4Range>().is_err());
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86400) as i64);
    let rem = secs % 86400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date (year, month, day) of a day count since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod utc_tests {
    #[test]
    fn formats_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_795_000_000), "2026-11-18 11:06:40");
    }

    #[test]
    fn dates_match_the_calendar() {
        use super::civil_from_days;
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
        assert_eq!(civil_from_days(24_837), (2038, 1, 1));
    }
}
