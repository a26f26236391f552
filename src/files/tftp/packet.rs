//! TFTP packets (RFC 1350) and option negotiation (RFC 2347 OACK, 2348
//! blksize, 2349 timeout and tsize, 7440 windowsize). No I/O.

use std::time::Duration;

use thiserror::Error;

pub const RRQ: u16 = 1;
pub const WRQ: u16 = 2;
pub const DATA: u16 = 3;
pub const ACK: u16 = 4;
pub const ERROR: u16 = 5;
pub const OACK: u16 = 6;

/// Error codes of RFC 1350 and 2347.
pub const ERR_UNDEFINED: u16 = 0;
pub const ERR_NOT_FOUND: u16 = 1;
pub const ERR_ACCESS: u16 = 2;
pub const ERR_DISK_FULL: u16 = 3;
pub const ERR_ILLEGAL: u16 = 4;
pub const ERR_UNKNOWN_TID: u16 = 5;
pub const ERR_OPTIONS: u16 = 8;

pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;
pub const DEFAULT_BLKSIZE: u16 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Octet,
    Netascii,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The name as sent (bytes that are not UTF-8 are refused in parsing).
    pub filename: String,
    pub mode: Mode,
    /// Options with lowercase names, in the order sent.
    pub options: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Read(Request),
    Write(Request),
    Data { block: u16, data: &'a [u8] },
    Ack(u16),
    Error { code: u16, message: String },
    OptionAck,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("packet shorter than 4 bytes")]
    Short,
    #[error("unknown opcode {0}")]
    Opcode(u16),
    #[error("request without a file name or mode")]
    Fields,
    #[error("file name or option is not text")]
    NotText,
    #[error("file name is empty")]
    EmptyName,
    #[error("transfer mode `{0}` is not supported (octet or netascii)")]
    BadMode(String),
    #[error("option `{0}` has no value")]
    OptionValue(String),
    #[error("request not ended by a NUL byte")]
    Unterminated,
}

/// Parses one datagram.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, ParseError> {
    if buf.len() < 2 {
        return Err(ParseError::Short);
    }
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    match op {
        RRQ | WRQ => {
            let r = request(&buf[2..])?;
            Ok(if op == RRQ {
                Packet::Read(r)
            } else {
                Packet::Write(r)
            })
        }
        DATA | ACK | ERROR if buf.len() < 4 => Err(ParseError::Short),
        DATA => Ok(Packet::Data {
            block: u16::from_be_bytes([buf[2], buf[3]]),
            data: &buf[4..],
        }),
        ACK => Ok(Packet::Ack(u16::from_be_bytes([buf[2], buf[3]]))),
        ERROR => {
            let text = buf[4..].split(|&b| b == 0).next().unwrap_or_default();
            Ok(Packet::Error {
                code: u16::from_be_bytes([buf[2], buf[3]]),
                message: String::from_utf8_lossy(text).into_owned(),
            })
        }
        OACK => Ok(Packet::OptionAck),
        other => Err(ParseError::Opcode(other)),
    }
}

fn request(body: &[u8]) -> Result<Request, ParseError> {
    // Every field ends with a NUL (RFC 1350), the last one too: a request
    // cut short is refused, as dnsmasq and tftp-hpa refuse it.
    let body = body.strip_suffix(&[0]).ok_or(ParseError::Unterminated)?;
    let mut fields = body.split(|&b| b == 0);
    let text = |f: &[u8]| {
        std::str::from_utf8(f)
            .map(str::to_string)
            .map_err(|_| ParseError::NotText)
    };
    let filename = text(fields.next().ok_or(ParseError::Fields)?)?;
    if filename.is_empty() {
        return Err(ParseError::EmptyName);
    }
    let mode = text(fields.next().ok_or(ParseError::Fields)?)?;
    let mode = match mode.to_ascii_lowercase().as_str() {
        "octet" => Mode::Octet,
        "netascii" => Mode::Netascii,
        "" => return Err(ParseError::Fields),
        _ => return Err(ParseError::BadMode(mode)),
    };
    let mut options = Vec::new();
    while let Some(name) = fields.next() {
        if name.is_empty() {
            continue;
        }
        let name = text(name)?.to_ascii_lowercase();
        let value = fields
            .next()
            .ok_or_else(|| ParseError::OptionValue(name.clone()))?;
        options.push((name, text(value)?));
    }
    Ok(Request {
        filename,
        mode,
        options,
    })
}

/// Writes a DATA packet header followed by `payload` into `out`.
pub fn data(block: u16, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
    out.extend_from_slice(payload);
}

pub fn error(code: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.extend_from_slice(&ERROR.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out.push(0);
    out
}

pub fn ack(block: u16) -> Vec<u8> {
    let mut out = ACK.to_be_bytes().to_vec();
    out.extend_from_slice(&block.to_be_bytes());
    out
}

/// A client's read request in octet mode with `options` (the emulated
/// phones, the load tool and the tests).
pub fn rrq(name: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut out = RRQ.to_be_bytes().to_vec();
    for s in [name, "octet"]
        .into_iter()
        .chain(options.iter().flat_map(|(k, v)| [*k, *v]))
    {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    out
}

/// The value an OACK (`packet`, opcode included) gives `key`, as a client
/// reads it.
pub fn oack_value<'a>(packet: &'a [u8], key: &str) -> Option<&'a str> {
    let mut fields = packet.get(2..)?.split(|&b| b == 0);
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        if k.eq_ignore_ascii_case(key.as_bytes()) {
            return std::str::from_utf8(v).ok();
        }
    }
    None
}

pub fn oack(options: &[(&'static str, String)]) -> Vec<u8> {
    let mut out = OACK.to_be_bytes().to_vec();
    for (k, v) in options {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// What the server grants.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_window: u16,
    pub default_timeout: Duration,
}

/// The transfer's parameters after negotiation, and the OACK to send (empty:
/// no option was accepted, so the transfer starts with DATA block 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub window: u16,
    pub timeout: Duration,
    pub oack: Vec<(&'static str, String)>,
}

/// Negotiates the client's options for a read of `size` bytes (as sent on
/// the wire, i.e. after netascii conversion). Values out of range are
/// ignored (the option is left out of the OACK, so the default applies),
/// except blksize and windowsize above the limit, which are lowered, as RFC
/// 2348 and 7440 allow. Unknown options are ignored, and so is an option
/// sent again (the first counts: an OACK names each option once).
pub fn negotiate(options: &[(String, String)], size: u64, limits: Limits) -> Negotiated {
    let mut n = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        window: 1,
        timeout: limits.default_timeout,
        oack: Vec::new(),
    };
    // The options this server knows, as met (at most four: a request with
    // thousands of options costs one pass).
    let mut seen: Vec<&str> = Vec::with_capacity(4);
    for (name, value) in options {
        let known = matches!(
            name.as_str(),
            "blksize" | "tsize" | "timeout" | "windowsize"
        );
        if !known || seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name.as_str());
        let num = value.trim().parse::<u64>().ok();
        match (name.as_str(), num) {
            ("blksize", Some(v)) if v >= u64::from(MIN_BLKSIZE) => {
                n.blksize = v.min(u64::from(MAX_BLKSIZE)) as u16;
                n.oack.push(("blksize", n.blksize.to_string()));
            }
            // curl rejects an OACK with tsize 0 as invalid; an empty file
            // is answered without the option (a server may decline any).
            ("tsize", Some(_)) if size > 0 => n.oack.push(("tsize", size.to_string())),
            ("timeout", Some(v)) if (1..=255).contains(&v) => {
                n.timeout = Duration::from_secs(v);
                n.oack.push(("timeout", v.to_string()));
            }
            ("windowsize", Some(v)) if (1..=65535).contains(&v) => {
                n.window = v.min(u64::from(limits.max_window.max(1))) as u16;
                n.oack.push(("windowsize", n.window.to_string()));
            }
            _ => {}
        }
    }
    n
}

/// Converts text to netascii: LF becomes CR LF, a lone CR becomes CR NUL.
pub fn to_netascii(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 32);
    for &b in text {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests;
