//! What an HTTP file request gets, from its conditional and range headers
//! and the file's size, date and ETag (RFC 9110 sections 13 and 14): the
//! whole file, one byte range, 304 or 416. No I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The headers that decide the answer (None when absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions<'a> {
    pub head: bool,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    /// Whole seconds (HTTP dates have no finer resolution).
    pub modified: SystemTime,
    pub etag: String,
}

impl Meta {
    pub fn new(size: u64, modified: SystemTime) -> Meta {
        let since = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        Meta {
            size,
            modified: UNIX_EPOCH + Duration::from_secs(since.as_secs()),
            etag: format!("\"{size:x}-{:x}\"", since.as_nanos()),
        }
    }

    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Range { start: u64, end: u64 },
    /// 304.
    NotModified,
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// The answer to a GET or HEAD of a file described by `meta`.
pub fn plan(c: &Conditions<'_>, meta: &Meta) -> Plan {
    if let Some(inm) = c.if_none_match {
        if etag_listed(inm, &meta.etag) {
            return Plan::NotModified;
        }
    } else if let Some(since) = c
        .if_modified_since
        .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
        && meta.modified <= since
    {
        return Plan::NotModified;
    }
    let Some(range) = c.range.filter(|_| !c.head) else {
        return Plan::Full;
    };
    if let Some(ir) = c.if_range {
        let ir = ir.trim();
        let still = if ir.starts_with('"') || ir.starts_with("W/") {
            // Strong comparison: a weak tag never matches.
            ir == meta.etag
        } else {
            httpdate::parse_http_date(ir).is_ok_and(|d| d == meta.modified)
        };
        if !still {
            return Plan::Full;
        }
    }
    match byte_range(range, meta.size) {
        None => Plan::Full,
        Some(None) => Plan::Unsatisfiable,
        Some(Some((start, end))) => Plan::Range { start, end },
    }
}

/// Weak comparison against a list of tags, or `*`.
fn etag_listed(list: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = bare(etag);
    list.split(',').any(|t| t.trim() == "*" || bare(t) == ours)
}

/// A single `bytes=` range: `None` when the header is to be ignored (not
/// bytes, several ranges, malformed), `Some(None)` when unsatisfiable.
fn byte_range(header: &str, size: u64) -> Option<Option<(u64, u64)>> {
    let spec = header.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    if a.is_empty() {
        // The last `b` bytes.
        let n = num(b)?;
        if n == 0 || size == 0 {
            return Some(None);
        }
        return Some(Some((size.saturating_sub(n), size - 1)));
    }
    let start = num(a)?;
    let end = if b.is_empty() { u64::MAX } else { num(b)? };
    if end < start {
        return None;
    }
    if start >= size {
        return Some(None);
    }
    Some(Some((start, end.min(size - 1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta::new(1000, UNIX_EPOCH + Duration::from_millis(1_700_000_000_500))
    }

    fn with_range(r: &str) -> Plan {
        plan(
            &Conditions {
                range: Some(r),
                ..Default::default()
            },
            &meta(),
        )
    }

    #[test]
    fn ranges() {
        assert_eq!(with_range("bytes=0-99"), Plan::Range { start: 0, end: 99 });
        assert_eq!(
            with_range("bytes=900-"),
            Plan::Range {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            with_range("bytes=900-5000"),
            Plan::Range {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            with_range("bytes=-100"),
            Plan::Range {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            with_range("bytes=-5000"),
            Plan::Range { start: 0, end: 999 }
        );
        assert_eq!(with_range("bytes=1000-"), Plan::Unsatisfiable);
        assert_eq!(with_range("bytes=-0"), Plan::Unsatisfiable);
        // Ignored: several ranges, other units, nonsense.
        for r in [
            "bytes=0-1,5-6",
            "lines=1-2",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=",
            "bytes=+1-2",
        ] {
            assert_eq!(with_range(r), Plan::Full, "{r}");
        }
        // HEAD ignores Range.
        let c = Conditions {
            head: true,
            range: Some("bytes=0-1"),
            ..Default::default()
        };
        assert_eq!(plan(&c, &meta()), Plan::Full);
        let empty = Meta::new(0, UNIX_EPOCH);
        let c = Conditions {
            range: Some("bytes=0-"),
            ..Default::default()
        };
        assert_eq!(plan(&c, &empty), Plan::Unsatisfiable);
    }

    #[test]
    fn conditionals() {
        let m = meta();
        let c = |inm: Option<&'static str>, ims: Option<&'static str>| Conditions {
            if_none_match: inm,
            if_modified_since: ims,
            ..Default::default()
        };
        assert_eq!(
            plan(
                &c(Some(&*Box::leak(m.etag.clone().into_boxed_str())), None),
                &m
            ),
            Plan::NotModified
        );
        assert_eq!(plan(&c(Some("\"x\", *"), None), &m), Plan::NotModified);
        assert_eq!(plan(&c(Some("\"other\""), None), &m), Plan::Full);
        let date = Box::leak(m.last_modified().into_boxed_str());
        assert_eq!(plan(&c(None, Some(date)), &m), Plan::NotModified);
        assert_eq!(
            plan(&c(None, Some("Thu, 01 Jan 1970 00:00:00 GMT")), &m),
            Plan::Full
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(plan(&c(Some("\"other\""), Some(date)), &m), Plan::Full);
        assert_eq!(plan(&c(None, Some("garbage")), &m), Plan::Full);
    }

    #[test]
    fn if_range() {
        let m = meta();
        let tag = Box::leak(m.etag.clone().into_boxed_str());
        let c = |ir: &'static str| Conditions {
            range: Some("bytes=0-9"),
            if_range: Some(ir),
            ..Default::default()
        };
        assert_eq!(plan(&c(tag), &m), Plan::Range { start: 0, end: 9 });
        assert_eq!(plan(&c("\"old\""), &m), Plan::Full);
        let date = Box::leak(m.last_modified().into_boxed_str());
        assert_eq!(plan(&c(date), &m), Plan::Range { start: 0, end: 9 });
        assert_eq!(plan(&c("Thu, 01 Jan 1970 00:00:00 GMT"), &m), Plan::Full);
    }
}
