//! What a requested file name means, before the disk is asked: `\` taken as
//! `/`, `.` dropped, `..`, NUL and absolute paths refused; the MAC a file
//! name carries; whether a name is private. No I/O.

use thiserror::Error;

use crate::units::Mac;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    #[error("the name contains a NUL byte")]
    Nul,
    #[error("the name climbs out of the served folder with `..`")]
    Parent,
    #[error("absolute paths outside the served folder are refused")]
    Absolute,
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than 1024 bytes")]
    TooLong,
    #[error("the name has a control character")]
    Control,
}

/// A request's path as components relative to the root. `absolute_ok`: the
/// name is an HTTP path, which is always rooted at the tree; for TFTP a
/// leading `/` is accepted only when what follows starts with the tree's own
/// path (`root`), as dnsmasq does, and refused otherwise.
pub fn components(raw: &str, root: &str, http: bool) -> Result<Vec<String>, Refusal> {
    if raw.contains('\0') {
        return Err(Refusal::Nul);
    }
    if raw.len() > 1024 {
        return Err(Refusal::TooLong);
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(Refusal::Control);
    }
    let name = raw.replace('\\', "/");
    let rel: &str = if http {
        let rest = name.strip_prefix('/').unwrap_or(&name);
        if rest.starts_with('/') {
            return Err(Refusal::Absolute);
        }
        rest
    } else if let Some(abs) = name.strip_prefix('/') {
        let root = root.trim_matches('/');
        match abs.strip_prefix(root) {
            Some(inside) if !root.is_empty() && (inside.is_empty() || inside.starts_with('/')) => {
                inside
            }
            _ => return Err(Refusal::Absolute),
        }
    } else {
        &name
    };
    let mut out = Vec::new();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(Refusal::Parent),
            c => out.push(c.to_string()),
        }
    }
    if out.is_empty() {
        return Err(Refusal::Empty);
    }
    Ok(out)
}

/// Decodes `%XX` escapes of an HTTP path (the query is cut off first).
/// None when an escape is malformed or the result is not UTF-8.
pub fn percent_decode(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The MAC a file name carries, with the text before and after it
/// (lowercase): `00908f123456.cfg`, `0004F218DECE-phone.cfg`,
/// `00-90-8f-12-34-56.cfg` and `00:90:8F:12:34:56.cfg` all carry one. The
/// twelve digits must not touch further hex digits.
pub fn mac_in_name(name: &str) -> Option<(String, Mac, String)> {
    let b = name.as_bytes();
    let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    for start in 0..b.len() {
        if !hex(start) || (start > 0 && hex(start - 1)) {
            continue;
        }
        // Bare twelve digits, or six pairs joined by one separator.
        for sep in [None, Some(b':'), Some(b'-')] {
            let mut digits = Vec::with_capacity(12);
            let mut i = start;
            let mut ok = true;
            for pair in 0..6 {
                if let (true, Some(s)) = (pair > 0, sep) {
                    if b.get(i) != Some(&s) {
                        ok = false;
                        break;
                    }
                    i += 1;
                }
                if !(hex(i) && hex(i + 1)) {
                    ok = false;
                    break;
                }
                digits.extend_from_slice(&b[i..i + 2]);
                i += 2;
            }
            if !ok || hex(i) {
                continue;
            }
            let text = std::str::from_utf8(&digits).ok()?;
            let mac: Mac = text.parse().ok()?;
            // OUI 00:00:00 is no phone's: it is the families' shared files
            // (Yealink's `y000000000000.cfg` and `y0000000000XX.cfg`,
            // Polycom's `000000000000.cfg`), for every phone.
            if mac.0[..3] == [0, 0, 0] {
                continue;
            }
            return Some((
                name[..start].to_ascii_lowercase(),
                mac,
                name[i..].to_ascii_lowercase(),
            ));
        }
    }
    None
}

/// Whether `rel` (a path in the tree) matches one of the private globs, by
/// its file name or by its whole path.
pub fn is_private(globs: &[String], rel: &str) -> bool {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    globs.iter().any(|g| {
        crate::glob::matches(g, base.as_bytes()) || crate::glob::matches(g, rel.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str, http: bool) -> Vec<String> {
        components(raw, "/srv/dialtone", http).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(ok("450HD.img", false), ["450HD.img"]);
        assert_eq!(
            ok("polycom\\00908f123456.cfg", false),
            ["polycom", "00908f123456.cfg"]
        );
        assert_eq!(ok("./a//b/./c", false), ["a", "b", "c"]);
        assert_eq!(
            ok("/srv/dialtone/450HD/450HD.img", false),
            ["450HD", "450HD.img"]
        );
        assert_eq!(ok("/450HD/450HD.img", true), ["450HD", "450HD.img"]);
    }

    #[test]
    fn escapes_are_refused() {
        let refused = |raw: &str, http: bool| components(raw, "/srv/dialtone", http).unwrap_err();
        assert_eq!(refused("../etc/passwd", false), Refusal::Parent);
        assert_eq!(refused("a/../../etc/passwd", false), Refusal::Parent);
        assert_eq!(refused("..\\..\\etc\\passwd", false), Refusal::Parent);
        assert_eq!(refused("/etc/passwd", false), Refusal::Absolute);
        assert_eq!(refused("/srv/dialtonex/a", false), Refusal::Absolute);
        assert_eq!(refused("//etc/passwd", true), Refusal::Absolute);
        assert_eq!(refused("a\0b", false), Refusal::Nul);
        assert_eq!(refused("/", true), Refusal::Empty);
        assert_eq!(refused("a\nb", true), Refusal::Control);
        let decoded = percent_decode("/%2e%2e/%2E%2E/etc/passwd?x=1").unwrap();
        assert_eq!(refused(&decoded, true), Refusal::Parent);
        assert_eq!(
            percent_decode("/a%00b").map(|d| components(&d, "/", true)),
            Some(Err(Refusal::Nul))
        );
        assert_eq!(percent_decode("/a%zz"), None);
        assert_eq!(percent_decode("/a%2"), None);
    }

    #[test]
    fn macs_in_names() {
        let m: Mac = "00:90:8f:12:34:56".parse().unwrap();
        for name in [
            "00908f123456.cfg",
            "00908F123456.cfg",
            "00-90-8f-12-34-56.cfg",
            "00:90:8F:12:34:56.cfg",
        ] {
            assert_eq!(
                mac_in_name(name),
                Some((String::new(), m, ".cfg".into())),
                "{name}"
            );
        }
        let (pre, mac, post) = mac_in_name("x-0004F218DECE-phone.cfg").unwrap();
        assert_eq!(
            (pre.as_str(), mac.to_string().as_str(), post.as_str()),
            ("x-", "00:04:f2:18:de:ce", "-phone.cfg")
        );
        assert_eq!(mac_in_name("2345-12500-001.bootrom.ld"), None);
        assert_eq!(mac_in_name("00908f1234567.cfg"), None);
        assert_eq!(mac_in_name("450HD.img"), None);
        assert_eq!(mac_in_name("y000000000000.cfg"), None);
        assert_eq!(mac_in_name("y000000000066.cfg"), None);
        assert_eq!(mac_in_name("000000000000.cfg"), None);
        assert_eq!(mac_in_name("00-90-8f:12-34-56.cfg"), None);
    }

    #[test]
    fn private_globs() {
        let g = vec!["*.cfg".to_string(), "polycom/*-directory.xml".to_string()];
        assert!(is_private(&g, "00908f123456.CFG"));
        assert!(is_private(&g, "450HD/00908f123456.cfg"));
        assert!(is_private(&g, "polycom/0004f218dece-directory.xml"));
        assert!(!is_private(&g, "450HD.img"));
    }
}
