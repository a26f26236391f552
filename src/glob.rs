//! Case-insensitive glob matching used by DHCP class rules (`*` and `?`).

/// Returns true when `text` matches `pattern`, ignoring ASCII case.
/// `*` matches any run of bytes (including none), `?` exactly one byte.
pub fn matches(pattern: &str, text: &[u8]) -> bool {
    let p = pattern.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position of the last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&text[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn literal_and_case() {
        assert!(matches("SIP100", b"sip100"));
        assert!(!matches("SIP100", b"SIP1000"));
    }

    #[test]
    fn wildcards() {
        assert!(matches("SIP1*", b"SIP100"));
        assert!(matches("SIP1*", b"sip1"));
        assert!(!matches("SIP1*", b"SIP200"));
        assert!(matches("*HD", b"450HD"));
        assert!(matches("*hd", b"C450HD"));
        assert!(!matches("*HD", b"450HDX"));
        assert!(matches("4?0HD", b"420HD"));
        assert!(!matches("4?0HD", b"40HD"));
        assert!(matches("*", b""));
        assert!(matches("a*b*c", b"axxbyyc"));
        assert!(!matches("a*b*c", b"axxbyy"));
        assert!(matches("00:90:8f:*", b"00:90:8F:12:34:56"));
    }
}
