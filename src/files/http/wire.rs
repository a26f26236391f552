//! HTTP/1.x on the wire, as far as a file server needs it: a request head
//! parsed from the bytes received so far (with httparse), and a response
//! head written out. No I/O.

use thiserror::Error;

/// A request head longer than this is refused (431).
pub const MAX_HEAD: usize = 16 << 10;
/// A request line longer than this is refused (414).
pub const MAX_LINE: usize = 8 << 10;
/// Headers per request at most.
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The path of the request target, with its query removed; still
    /// percent-encoded.
    pub path: String,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    pub body: BodyLen,
    headers: Vec<(String, String)>,
}

/// How the request's own body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head over {MAX_HEAD} bytes")]
    TooLarge,
    #[error("request target must be a path")]
    Target,
    #[error("request line over {MAX_LINE} bytes")]
    LineTooLong,
}

impl WireError {
    pub fn status(&self) -> u16 {
        match self {
            WireError::TooLarge => 431,
            WireError::LineTooLong => 414,
            WireError::Malformed(_) | WireError::Target => 400,
        }
    }
}

impl Head {
    /// A header's value (the first, when repeated), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request head from the start of `buf`: `Ok(None)` while it is
/// incomplete, else the head and the number of bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, WireError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(end) if end > MAX_LINE => return Err(WireError::LineTooLong),
        None if buf.len() > MAX_LINE => return Err(WireError::LineTooLong),
        _ => {}
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(WireError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(WireError::TooLarge),
        Err(e) => return Err(WireError::Malformed(e.to_string())),
    };
    if used > MAX_HEAD {
        return Err(WireError::TooLarge);
    }
    let method = req.method.unwrap_or_default().to_string();
    let path = target_path(req.path.unwrap_or_default())?;
    let http11 = req.version == Some(1);
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let mut head = Head {
        method,
        path,
        keep_alive: http11,
        body: BodyLen::None,
        headers,
    };
    if let Some(c) = head.header("connection") {
        let has = |t: &str| c.split(',').any(|x| x.trim().eq_ignore_ascii_case(t));
        if has("close") {
            head.keep_alive = false;
        } else if has("keep-alive") {
            head.keep_alive = true;
        }
    }
    // Two ways to delimit one body, or two lengths, are how requests are
    // smuggled past a proxy: refused (RFC 9112 6.1 and 6.3).
    let lengths: Vec<&str> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Err(WireError::Malformed(format!(
            "Content-Length given as {}",
            lengths.join(" and ")
        )));
    }
    if head.header("transfer-encoding").is_some() && !lengths.is_empty() {
        return Err(WireError::Malformed(
            "both Transfer-Encoding and Content-Length".into(),
        ));
    }
    head.body = if head.header("transfer-encoding").is_some() {
        BodyLen::Chunked
    } else {
        match lengths.first() {
            None => BodyLen::None,
            Some(v) => match v.parse::<u64>() {
                Ok(0) => BodyLen::None,
                Ok(n) => BodyLen::Length(n),
                Err(_) => {
                    return Err(WireError::Malformed(format!("Content-Length {v:?}")));
                }
            },
        }
    };
    Ok(Some((head, used)))
}

/// The path of an origin-form (`/a/b?q`) or absolute-form
/// (`http://host/a/b`) request target.
fn target_path(target: &str) -> Result<String, WireError> {
    let rest = if target.starts_with('/') {
        target
    } else if let Some(after) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        after.find('/').map(|i| &after[i..]).unwrap_or("/")
    } else {
        return Err(WireError::Target);
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    Ok(rest[..end].to_string())
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A response head: status line, `Date`, the given headers, and
/// `Connection: close` when the connection ends after it.
pub fn response_head(
    status: u16,
    headers: &[(&str, String)],
    keep_alive: bool,
    now: std::time::SystemTime,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    out.push_str("Date: ");
    out.push_str(&httpdate::fmt_http_date(now));
    out.push_str("\r\n");
    for (k, v) in headers {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    if !keep_alive {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        match parse(text.as_bytes()) {
            Ok(Some((h, n))) => {
                assert_eq!(n, text.len());
                h
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn request_heads() {
        let h = head("GET /450HD/450HD.img?x=1 HTTP/1.1\r\nHost: a\r\nRange: bytes=0-9\r\n\r\n");
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/450HD/450HD.img");
        assert!(h.keep_alive);
        assert_eq!(h.header("range"), Some("bytes=0-9"));
        assert_eq!(h.body, BodyLen::None);

        let h = head("GET http://10.0.0.1:8088/a%20b.cfg HTTP/1.0\r\n\r\n");
        assert_eq!(h.path, "/a%20b.cfg");
        assert!(!h.keep_alive, "HTTP/1.0 closes unless asked");
        let h = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive);
        let h = head("HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(!h.keep_alive);

        let h = head("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.body, BodyLen::Length(12));
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.body, BodyLen::Chunked);
    }

    #[test]
    fn partial_and_bad_heads() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Err(WireError::Malformed(_))
        ));
        assert_eq!(
            parse(b"OPTIONS * HTTP/1.1\r\n\r\n").map(|_| ()),
            Err(WireError::Target)
        );
        assert!(matches!(
            parse(b"\x16\x03\x01 hello"),
            Err(WireError::Malformed(_))
        ));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse(&long), Err(WireError::TooLarge));
        let many: String = (0..100).map(|i| format!("X{i}: y\r\n")).collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Err(WireError::TooLarge)
        );
    }

    #[test]
    fn long_lines_and_smuggled_bodies_are_refused() {
        // A request line over 8 KiB is 414, whether or not its end came.
        let line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE));
        assert_eq!(
            parse(line.as_bytes()).map(|_| ()),
            Err(WireError::LineTooLong)
        );
        assert_eq!(
            parse(&line.as_bytes()[..MAX_LINE + 1]).map(|_| ()),
            Err(WireError::LineTooLong)
        );
        assert_eq!(WireError::LineTooLong.status(), 414);
        // Two lengths that differ, or a length and a transfer coding: 400.
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        ] {
            let e = parse(bad.as_bytes()).map(|_| ());
            assert!(matches!(e, Err(WireError::Malformed(_))), "{bad:?}: {e:?}");
            assert_eq!(e.err().map(|e| e.status()), Some(400));
        }
        // The same length twice is one length.
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.body, BodyLen::Length(5));
    }

    #[test]
    fn response_heads() {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784111777);
        let h = response_head(206, &[("Content-Length", "10".into())], false, when);
        assert_eq!(
            String::from_utf8_lossy(&h),
            "HTTP/1.1 206 Partial Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Length: 10\r\nConnection: close\r\n\r\n"
        );
    }
}
