//! Option values as a person reads them (`dialtone explain`, `dialtone
//! profiles`, the demo and the status page): addresses, seconds, text,
//! sub-options, names in DNS wire form. No I/O.

use std::net::Ipv4Addr;

use super::options as opt;
use super::packet::message_type_name;

fn text(b: &[u8]) -> String {
    format!("\"{}\"", String::from_utf8_lossy(b))
}

fn addrs(b: &[u8]) -> String {
    if !b.len().is_multiple_of(4) {
        return "(not a list of addresses)".into();
    }
    b.chunks(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn seconds(b: &[u8]) -> String {
    match <[u8; 4]>::try_from(b) {
        Ok(a) => format!("{} s", u32::from_be_bytes(a)),
        Err(_) => "(not 4 bytes)".into(),
    }
}

/// One option's value as a person reads it.
pub fn decode(code: u8, b: &[u8]) -> String {
    match code {
        opt::SUBNET_MASK
        | opt::ROUTER
        | opt::TIME_SERVERS
        | opt::DNS_SERVERS
        | opt::BROADCAST_ADDR
        | opt::NTP_SERVERS
        | opt::TFTP_SERVERS
        | opt::SERVER_ID => addrs(b),
        opt::TIME_OFFSET => match <[u8; 4]>::try_from(b) {
            Ok(a) => {
                let s = i32::from_be_bytes(a);
                format!("{s} s (UTC{})", opt::utc_offset_text(s))
            }
            Err(_) => "(not 4 bytes)".into(),
        },
        opt::LEASE_TIME | opt::RENEWAL_TIME | opt::REBINDING_TIME => seconds(b),
        opt::MESSAGE_TYPE => b
            .first()
            .map(|t| message_type_name(*t).to_string())
            .unwrap_or_default(),
        opt::VENDOR_SPECIFIC => match opt::decode_vendor_tlv(b) {
            Some(subs) => subs
                .iter()
                .map(|(c, v)| format!("{c}={}", text(v)))
                .collect::<Vec<_>>()
                .join(" "),
            None => "(not sub-options)".into(),
        },
        opt::SIP_SERVERS => match b.split_first() {
            Some((0, names)) => format!("names: {}", dns_wire_names(names).join(", ")),
            Some((1, ips)) => format!("addresses: {}", addrs(ips)),
            _ => "(unknown encoding)".into(),
        },
        _ if !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)) => text(b),
        _ => format!("{} bytes", b.len()),
    }
}

/// Names in DNS wire format, one after another (option 120).
pub fn dns_wire_names(mut b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut labels = Vec::new();
    while let Some((&len, rest)) = b.split_first() {
        if len == 0 {
            out.push(labels.join("."));
            labels.clear();
            b = rest;
            continue;
        }
        let Some(label) = rest.get(..usize::from(len)) else {
            break;
        };
        labels.push(String::from_utf8_lossy(label).into_owned());
        b = &rest[usize::from(len)..];
    }
    out
}
