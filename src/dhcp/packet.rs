//! DHCP messages on the wire: decoding a client's request (through dhcproto's
//! zero-copy reader) and encoding a reply with the exact option order, size
//! limit (option 57), overload (option 52) and long-option splitting (RFC 3396)
//! that phones need.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dhcproto::v4::borrowed::Message;
use thiserror::Error;

use super::options::{self as opt, user_class_instances};
use crate::units::Mac;

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;

pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const DECLINE: u8 = 4;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;
pub const RELEASE: u8 = 7;
pub const INFORM: u8 = 8;
/// Not a DHCP message type: a BOOTP request (no option 53), RFC 951/1542.
pub const BOOTP: u8 = 0;

pub const BROADCAST_FLAG: u16 = 0x8000;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Smallest reply sent: BOOTP relays and old clients drop shorter ones.
pub const MIN_REPLY: usize = 300;
/// The largest DHCP message every client must accept (576-byte IP datagram).
pub const DEFAULT_MAX_MESSAGE: usize = 576 - 28;

pub fn message_type_name(t: u8) -> &'static str {
    match t {
        DISCOVER => "DISCOVER",
        OFFER => "OFFER",
        REQUEST => "REQUEST",
        DECLINE => "DECLINE",
        ACK => "ACK",
        NAK => "NAK",
        RELEASE => "RELEASE",
        INFORM => "INFORM",
        BOOTP => "BOOTP",
        _ => "UNKNOWN",
    }
}

/// The message type a configuration names (`inform`, any case).
pub fn message_type_code(name: &str) -> Option<u8> {
    [DISCOVER, REQUEST, DECLINE, RELEASE, INFORM]
        .into_iter()
        .find(|t| message_type_name(*t).eq_ignore_ascii_case(name.trim()))
}

/// Why a packet was dropped before the exchange logic saw it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("packet of {0} bytes is shorter than a DHCP message (240)")]
    TooShort(usize),
    #[error("not a BOOTREQUEST (op {0})")]
    NotRequest(u8),
    #[error("hardware type {htype} with address length {hlen} is not Ethernet")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("no DHCP magic cookie (BOOTP is not served)")]
    NoCookie,
    #[error("no message type (option 53)")]
    NoMessageType,
    #[error("message type {0} is not one a client sends")]
    BadMessageType(u8),
    #[error("client identifier of {0} bytes (at most {MAX_CLIENT_ID})")]
    ClientIdTooLong(usize),
    #[error("option {code} runs past the end of the {area}")]
    OptionPastEnd { code: u8, area: &'static str },
}

/// The longest client identifier (option 61) accepted, as Kea does. It is
/// echoed in every reply (RFC 6842), so a longer one would not leave room
/// for the answer within the 576 bytes every client takes.
pub const MAX_CLIENT_ID: usize = 255;

/// A client's request, decoded and checked.
#[derive(Debug, Clone)]
pub struct Request {
    pub msg_type: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub hops: u8,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    pub mac: Mac,
    /// Every option, with repeated instances concatenated (RFC 3396).
    pub options: BTreeMap<u8, Vec<u8>>,
    pub param_list: Vec<u8>,
    pub vendor_class: Option<String>,
    /// Option 77 split into RFC 3004 instances (or the raw value as one).
    pub user_classes: Vec<String>,
}

impl Request {
    pub fn parse(buf: &[u8]) -> Result<Request, ParseError> {
        let msg = Message::new(buf).map_err(|_| ParseError::TooShort(buf.len()))?;
        if buf[0] != BOOTREQUEST {
            return Err(ParseError::NotRequest(buf[0]));
        }
        let (htype, hlen) = (buf[1], buf[2]);
        if htype != 1 || hlen != 6 {
            return Err(ParseError::NotEthernet { htype, hlen });
        }
        // Without the magic cookie the vendor area is not RFC 1497 options: a
        // plain BOOTP request.
        let cookie = buf[236..240] == MAGIC;
        let mut options: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        if cookie {
            collect(&buf[240..], "packet", &mut options)?;
        }
        // Option 52: more options in the file and/or sname fields.
        let overload = options.get(&opt::OVERLOAD).and_then(|v| v.first().copied());
        if let Some(o) = overload {
            if o & 1 != 0 {
                collect(&buf[108..236], "file field", &mut options)?;
            }
            if o & 2 != 0 {
                collect(&buf[44..108], "sname field", &mut options)?;
            }
        }
        if let Some(id) = options.get(&opt::CLIENT_ID)
            && id.len() > MAX_CLIENT_ID
        {
            return Err(ParseError::ClientIdTooLong(id.len()));
        }
        let msg_type = match options.get(&opt::MESSAGE_TYPE).map(Vec::as_slice) {
            Some([t]) if *t != BOOTP => *t,
            Some(_) => return Err(ParseError::BadMessageType(0)),
            None => BOOTP,
        };
        if !matches!(
            msg_type,
            BOOTP | DISCOVER | REQUEST | DECLINE | RELEASE | INFORM
        ) {
            return Err(ParseError::BadMessageType(msg_type));
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&buf[28..44]);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&buf[28..34]);
        let param_list = options.get(&opt::PARAM_LIST).cloned().unwrap_or_default();
        // Some firmware (Cisco's) ends option 60 with a C string's NUL.
        let vendor_class = options.get(&opt::VENDOR_CLASS).map(|v| {
            let end = v.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
            printable(&v[..end])
        });
        let user_classes = options
            .get(&opt::USER_CLASS)
            .map(|v| {
                user_class_instances(v)
                    .iter()
                    .map(|u| printable(u))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Request {
            msg_type,
            xid: msg.xid(),
            secs: msg.secs(),
            flags: u16::from(msg.flags()),
            hops: msg.hops(),
            ciaddr: msg.ciaddr(),
            giaddr: msg.giaddr(),
            chaddr,
            mac: Mac(mac),
            options,
            param_list,
            vendor_class,
            user_classes,
        })
    }

    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options.get(&code).map(Vec::as_slice)
    }

    pub fn option_ip(&self, code: u8) -> Option<Ipv4Addr> {
        match self.option(code) {
            Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d)),
            _ => None,
        }
    }

    pub fn broadcast_flag(&self) -> bool {
        self.flags & BROADCAST_FLAG != 0
    }

    /// The largest reply this client accepts (option 57, never below 576).
    pub fn max_reply(&self) -> usize {
        match self.option(opt::MAX_MESSAGE_SIZE) {
            Some(&[a, b]) => (usize::from(u16::from_be_bytes([a, b])).max(576)) - 28,
            _ => DEFAULT_MAX_MESSAGE,
        }
    }

    /// The host name the client sent (option 12), cleaned to letters, digits and `-`.
    pub fn hostname(&self) -> Option<String> {
        let raw = self.option(opt::HOSTNAME)?;
        let s: String = raw
            .iter()
            .map(|&b| b as char)
            .take_while(|c| *c != '.' && *c != '\0')
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(63)
            .collect();
        (!s.is_empty()).then_some(s)
    }

    pub fn user_class(&self) -> Option<&str> {
        self.user_classes.first().map(String::as_str)
    }
}

/// Reads the options of one area (the options field, or the file or sname
/// field under option 52) into `into`, repeated ones concatenated (RFC
/// 3396). Pads are skipped and END stops; an area without END ends with its
/// bytes (as Kea and dnsmasq take it), but an option whose length runs past
/// the area makes the whole packet unreadable (as in Kea): its other
/// options cannot be trusted either.
fn collect(
    area: &[u8],
    name: &'static str,
    into: &mut BTreeMap<u8, Vec<u8>>,
) -> Result<(), ParseError> {
    let mut i = 0;
    while let Some(&code) = area.get(i) {
        match code {
            opt::PAD => i += 1,
            opt::END => break,
            _ => {
                let past = ParseError::OptionPastEnd { code, area: name };
                let len = usize::from(*area.get(i + 1).ok_or(past.clone())?);
                let data = area.get(i + 2..i + 2 + len).ok_or(past)?;
                into.entry(code).or_default().extend_from_slice(data);
                i += 2 + len;
            }
        }
    }
    Ok(())
}

/// Text from a phone, with anything unprintable escaped so it is safe to log and match.
fn printable(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

/// The fixed part of a reply.
#[derive(Debug, Clone)]
pub struct ReplyHeader {
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// The BOOTP file field (boot file name), if used.
    pub file: Option<Vec<u8>>,
}

/// An encoded reply and what had to give way to fit the client's size limit.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Codes of options actually sent, in wire order (main area, then file, then sname).
    pub sent: Vec<u8>,
    /// Optional options left out because the reply would have been too large.
    pub dropped: Vec<u8>,
    /// Option 52's value if the file/sname fields carry options.
    pub overload: u8,
}

fn wire_len(data: &[u8]) -> usize {
    let chunks = data.len().div_ceil(255).max(1);
    data.len() + 2 * chunks
}

/// Appends one option, split into 255-byte pieces when longer (RFC 3396).
pub(crate) fn put(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    if data.is_empty() {
        out.extend_from_slice(&[code, 0]);
        return;
    }
    for chunk in data.chunks(255) {
        out.push(code);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

/// Encodes a reply. `mandatory` options always go in the main area, in order
/// (53 must be first); `optional` follow in order while they fit in `max_len`
/// bytes, moving to the file and sname fields (option 52) when those are free;
/// `last` closes the main area (option 82 must be the last option, RFC 3046).
pub fn encode_reply(
    hdr: &ReplyHeader,
    mandatory: &[(u8, Vec<u8>)],
    optional: &[(u8, Vec<u8>)],
    last: &[(u8, Vec<u8>)],
    max_len: usize,
) -> Encoded {
    let max_len = max_len.max(DEFAULT_MAX_MESSAGE);
    let main_cap = max_len - 240 - 1;
    let mandatory_len: usize = mandatory.iter().chain(last).map(|(_, d)| wire_len(d)).sum();
    let optional_len: usize = optional.iter().map(|(_, d)| wire_len(d)).sum();

    // Areas: 0 main, 1 file, 2 sname.
    let mut placed: [Vec<usize>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut dropped = Vec::new();
    let mut overload = 0u8;
    if mandatory_len + optional_len <= main_cap {
        placed[0] = (0..optional.len()).collect();
    } else {
        let file_free = hdr.file.is_none();
        let mut room = [
            main_cap.saturating_sub(mandatory_len + 3),
            if file_free { 128 - 1 } else { 0 },
            64 - 1,
        ];
        for (i, (code, data)) in optional.iter().enumerate() {
            let need = wire_len(data);
            match (0..3).find(|&a| room[a] >= need) {
                Some(a) => {
                    room[a] -= need;
                    placed[a].push(i);
                    if a == 1 {
                        overload |= 1;
                    } else if a == 2 {
                        overload |= 2;
                    }
                }
                None => dropped.push(*code),
            }
        }
    }

    let mut out = Vec::with_capacity(max_len.max(MIN_REPLY));
    out.push(BOOTREPLY);
    out.push(1);
    out.push(6);
    out.push(0);
    out.extend_from_slice(&hdr.xid.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&hdr.flags.to_be_bytes());
    for a in [hdr.ciaddr, hdr.yiaddr, hdr.siaddr, hdr.giaddr] {
        out.extend_from_slice(&a.octets());
    }
    out.extend_from_slice(&hdr.chaddr);
    let mut sname = vec![0u8; 64];
    let mut file = vec![0u8; 128];
    if let Some(f) = &hdr.file {
        let n = f.len().min(127);
        file[..n].copy_from_slice(&f[..n]);
    }
    let mut sent = Vec::new();
    let fill = |area: &mut Vec<u8>, idx: &[usize], sent: &mut Vec<u8>| {
        let mut buf = Vec::new();
        for &i in idx {
            let (code, data) = &optional[i];
            put(&mut buf, *code, data);
            sent.push(*code);
        }
        buf.push(opt::END);
        area[..buf.len()].copy_from_slice(&buf);
    };
    let mut main = Vec::with_capacity(main_cap + 1);
    for (code, data) in mandatory {
        put(&mut main, *code, data);
        sent.push(*code);
    }
    if overload != 0 {
        put(&mut main, opt::OVERLOAD, &[overload]);
        sent.push(opt::OVERLOAD);
    }
    for &i in &placed[0] {
        let (code, data) = &optional[i];
        put(&mut main, *code, data);
        sent.push(*code);
    }
    for (code, data) in last {
        put(&mut main, *code, data);
        sent.push(*code);
    }
    main.push(opt::END);
    if overload & 1 != 0 {
        file = vec![0u8; 128];
        fill(&mut file, &placed[1], &mut sent);
    }
    if overload & 2 != 0 {
        fill(&mut sname, &placed[2], &mut sent);
    }
    out.extend_from_slice(&sname);
    out.extend_from_slice(&file);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&main);
    if out.len() < MIN_REPLY {
        out.resize(MIN_REPLY, opt::PAD);
    }
    Encoded {
        bytes: out,
        sent,
        dropped,
        overload,
    }
}

#[cfg(test)]
mod tests;
