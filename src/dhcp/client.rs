//! Building client messages: used by the tests, and by the phone emulation that
//! the demo and the recovery tooling drive.

use std::net::Ipv4Addr;

use super::options as opt;
use super::packet::BOOTREQUEST;
use crate::units::Mac;

/// A client message under construction.
#[derive(Debug, Clone)]
pub struct ClientMessage {
    pub msg_type: u8,
    pub xid: u32,
    pub mac: Mac,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub hops: u8,
    /// Options in the order they are written (53 is written first, always).
    pub options: Vec<(u8, Vec<u8>)>,
}

impl ClientMessage {
    pub fn new(msg_type: u8, mac: Mac, xid: u32) -> Self {
        ClientMessage {
            msg_type,
            xid,
            mac,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            hops: 0,
            options: Vec::new(),
        }
    }

    pub fn option(mut self, code: u8, data: impl Into<Vec<u8>>) -> Self {
        self.options.push((code, data.into()));
        self
    }

    pub fn requests(self, codes: &[u8]) -> Self {
        self.option(opt::PARAM_LIST, codes.to_vec())
    }

    pub fn requested_ip(self, ip: Ipv4Addr) -> Self {
        self.option(opt::REQUESTED_IP, ip.octets().to_vec())
    }

    pub fn server_id(self, ip: Ipv4Addr) -> Self {
        self.option(opt::SERVER_ID, ip.octets().to_vec())
    }

    pub fn vendor_class(self, v: &str) -> Self {
        self.option(opt::VENDOR_CLASS, v.as_bytes().to_vec())
    }

    pub fn user_class_raw(self, v: &str) -> Self {
        self.option(opt::USER_CLASS, v.as_bytes().to_vec())
    }

    pub fn ciaddr(mut self, ip: Ipv4Addr) -> Self {
        self.ciaddr = ip;
        self
    }

    pub fn giaddr(mut self, ip: Ipv4Addr) -> Self {
        self.giaddr = ip;
        self.hops = 1;
        self
    }

    pub fn broadcast(mut self) -> Self {
        self.flags |= super::packet::BROADCAST_FLAG;
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = BOOTREQUEST;
        b[1] = 1;
        b[2] = 6;
        b[3] = self.hops;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[10..12].copy_from_slice(&self.flags.to_be_bytes());
        b[12..16].copy_from_slice(&self.ciaddr.octets());
        b[24..28].copy_from_slice(&self.giaddr.octets());
        b[28..34].copy_from_slice(&self.mac.0);
        b[236..240].copy_from_slice(&[99, 130, 83, 99]);
        b.extend_from_slice(&[opt::MESSAGE_TYPE, 1, self.msg_type]);
        for (code, data) in &self.options {
            super::packet::put(&mut b, *code, data);
        }
        b.push(opt::END);
        if b.len() < 300 {
            b.resize(300, 0);
        }
        b
    }
}

/// A reply as a client sees it: header fields and options (all areas, concatenated).
#[derive(Debug, Clone)]
pub struct ParsedReply {
    pub op: u8,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub file: Vec<u8>,
    /// Options in wire order; repeated codes concatenated at the first position.
    pub options: Vec<(u8, Vec<u8>)>,
    pub len: usize,
}

impl ParsedReply {
    /// Decodes a reply strictly, walking every option area, so tests catch any
    /// malformed encoding. Returns `None` on anything malformed.
    pub fn parse(b: &[u8]) -> Option<ParsedReply> {
        if b.len() < 240 || b[236..240] != [99, 130, 83, 99] {
            return None;
        }
        let ip = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
        let mut options: Vec<(u8, Vec<u8>)> = Vec::new();
        fn walk(area: &[u8], options: &mut Vec<(u8, Vec<u8>)>) -> Option<()> {
            let mut i = 0;
            let mut last: Option<u8> = None;
            loop {
                let code = *area.get(i)?;
                if code == opt::END {
                    return Some(());
                }
                if code == opt::PAD {
                    i += 1;
                    continue;
                }
                let len = usize::from(*area.get(i + 1)?);
                let data = area.get(i + 2..i + 2 + len)?;
                match options.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, d)) if last == Some(code) => d.extend_from_slice(data),
                    Some(_) => return None, // the same option twice, not adjacent
                    None => options.push((code, data.to_vec())),
                }
                last = Some(code);
                i += 2 + len;
            }
        }
        walk(&b[240..], &mut options)?;
        let overload = options
            .iter()
            .find(|(c, _)| *c == opt::OVERLOAD)
            .and_then(|(_, d)| d.first().copied())
            .unwrap_or(0);
        if overload & 1 != 0 {
            walk(&b[108..236], &mut options)?;
        }
        if overload & 2 != 0 {
            walk(&b[44..108], &mut options)?;
        }
        let file = if overload & 1 != 0 {
            Vec::new()
        } else {
            let f = &b[108..236];
            f[..f.iter().position(|&c| c == 0).unwrap_or(f.len())].to_vec()
        };
        Some(ParsedReply {
            op: b[0],
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ip(12),
            yiaddr: ip(16),
            siaddr: ip(20),
            giaddr: ip(24),
            file,
            options,
            len: b.len(),
        })
    }

    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, d)| d.as_slice())
    }

    pub fn msg_type(&self) -> Option<u8> {
        self.get(opt::MESSAGE_TYPE).and_then(|d| d.first().copied())
    }

    pub fn codes(&self) -> Vec<u8> {
        self.options.iter().map(|(c, _)| *c).collect()
    }
}
