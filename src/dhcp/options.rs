//! DHCP option values as the configuration holds them, and their wire encodings
//! (RFC 2132, RFC 3361 for SIP servers, RFC 3004 user classes).
//!
//! Everything here is pure: values are decided at load time, and the few parts
//! that depend on the exchange (the appliance's address on the asking interface,
//! the client's MAC and classes) are filled in by [`OptionValue::render`].

use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

use crate::units::Mac;

pub const PAD: u8 = 0;
pub const SUBNET_MASK: u8 = 1;
pub const TIME_OFFSET: u8 = 2;
pub const ROUTER: u8 = 3;
pub const TIME_SERVERS: u8 = 4;
pub const DNS_SERVERS: u8 = 6;
pub const HOSTNAME: u8 = 12;
pub const DOMAIN_NAME: u8 = 15;
pub const BROADCAST_ADDR: u8 = 28;
pub const NTP_SERVERS: u8 = 42;
pub const VENDOR_SPECIFIC: u8 = 43;
pub const REQUESTED_IP: u8 = 50;
pub const LEASE_TIME: u8 = 51;
pub const OVERLOAD: u8 = 52;
pub const MESSAGE_TYPE: u8 = 53;
pub const SERVER_ID: u8 = 54;
pub const PARAM_LIST: u8 = 55;
pub const MESSAGE: u8 = 56;
pub const MAX_MESSAGE_SIZE: u8 = 57;
pub const RENEWAL_TIME: u8 = 58;
pub const REBINDING_TIME: u8 = 59;
pub const VENDOR_CLASS: u8 = 60;
pub const CLIENT_ID: u8 = 61;
pub const TFTP_SERVER: u8 = 66;
pub const BOOTFILE: u8 = 67;
pub const USER_CLASS: u8 = 77;
pub const RELAY_AGENT_INFO: u8 = 82;
pub const SIP_SERVERS: u8 = 120;
pub const VLAN_ID: u8 = 132;
/// Cisco's TFTP server list: IPv4 addresses, four bytes each.
pub const TFTP_SERVERS: u8 = 150;
pub const PROVISIONING_URL: u8 = 160;
pub const END: u8 = 255;

/// A short name for an option code, for logs and `dialtone check`.
pub fn name(code: u8) -> &'static str {
    match code {
        SUBNET_MASK => "subnet_mask",
        TIME_OFFSET => "time_offset",
        ROUTER => "router",
        TIME_SERVERS => "time_servers",
        DNS_SERVERS => "dns",
        HOSTNAME => "hostname",
        DOMAIN_NAME => "domain",
        BROADCAST_ADDR => "broadcast",
        NTP_SERVERS => "ntp_servers",
        VENDOR_SPECIFIC => "vendor_specific",
        LEASE_TIME => "lease_time",
        MESSAGE_TYPE => "message_type",
        SERVER_ID => "server_id",
        RENEWAL_TIME => "renewal_time",
        REBINDING_TIME => "rebinding_time",
        TFTP_SERVER => "tftp_server",
        BOOTFILE => "bootfile",
        RELAY_AGENT_INFO => "relay_agent_info",
        SIP_SERVERS => "sip_servers",
        VLAN_ID => "vlan_id",
        TFTP_SERVERS => "tftp_servers",
        PROVISIONING_URL => "provisioning_url",
        _ => "raw",
    }
}

/// An IPv4 address in the configuration: a literal, or `"self"`, the appliance's
/// own address on the interface the request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrSpec {
    SelfAddr,
    Ip(Ipv4Addr),
}

impl AddrSpec {
    pub fn resolve(self, server: Ipv4Addr) -> Ipv4Addr {
        match self {
            AddrSpec::SelfAddr => server,
            AddrSpec::Ip(ip) => ip,
        }
    }
}

impl fmt::Display for AddrSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrSpec::SelfAddr => f.write_str("self"),
            AddrSpec::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// One piece of a text option with placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    /// `{mac}`: twelve lower-case hex digits.
    Mac,
    /// `{MAC}`: twelve upper-case hex digits.
    MacUpper,
    VendorClass,
    UserClass,
    /// The appliance's address on the asking interface (written `self` as a whole value).
    ServerIp,
    /// `{model}`: the phone's model, option 77 if it sent one, else option 60.
    Model,
    /// `{image}`: the firmware image for the model (`[dhcp.images]`, then the
    /// families' documented names, then `<model>.img`).
    Image,
    /// `{http}`: this appliance's HTTP base URL on the asking interface
    /// (`http://<address>` plus `:<port>` when not 80); no value without `[files] http`.
    Http,
}

/// A text value whose placeholders are filled in per exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(pub Vec<Piece>);

impl Template {
    /// Parses `{mac}`, `{MAC}`, `{vendor_class}`, `{user_class}`, `{model}`,
    /// `{image}`, `{server}` and `{http}`; the whole value `self` stands for the
    /// appliance's address.
    pub fn parse(s: &str) -> Result<Template, String> {
        if s == "self" {
            return Ok(Template(vec![Piece::ServerIp]));
        }
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{s}`"))?;
            let piece = match &after[..close] {
                "mac" => Piece::Mac,
                "MAC" => Piece::MacUpper,
                "vendor_class" => Piece::VendorClass,
                "user_class" => Piece::UserClass,
                "server" => Piece::ServerIp,
                "model" => Piece::Model,
                "image" => Piece::Image,
                "http" => Piece::Http,
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}` in `{s}` (expected {{mac}}, {{MAC}}, {{vendor_class}}, {{user_class}}, {{model}}, {{image}}, {{server}} or {{http}})"
                    ));
                }
            };
            pieces.push(piece);
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// Fills in the placeholders; `None` when one of them has no value for this
    /// client (e.g. `{user_class}` from a phone that sent no option 77).
    pub fn render(&self, ctx: &RenderCtx<'_>) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Literal(s) => out.push_str(s),
                Piece::Mac => out.push_str(&ctx.mac.bare()),
                Piece::MacUpper => out.push_str(&ctx.mac.bare().to_ascii_uppercase()),
                Piece::VendorClass => out.push_str(ctx.vendor_class?),
                Piece::UserClass => out.push_str(ctx.user_class?),
                Piece::ServerIp => out.push_str(&ctx.server.to_string()),
                Piece::Model => out.push_str(ctx.model()?),
                Piece::Image => out.push_str(&ctx.image()?),
                Piece::Http => match ctx.http_port? {
                    80 => {
                        let _ = write!(out, "http://{}", ctx.server);
                    }
                    port => {
                        let _ = write!(out, "http://{}:{port}", ctx.server);
                    }
                },
            }
        }
        Some(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == [Piece::ServerIp] {
            return f.write_str("self");
        }
        for p in &self.0 {
            match p {
                Piece::Literal(s) => f.write_str(s)?,
                Piece::Mac => f.write_str("{mac}")?,
                Piece::MacUpper => f.write_str("{MAC}")?,
                Piece::VendorClass => f.write_str("{vendor_class}")?,
                Piece::UserClass => f.write_str("{user_class}")?,
                Piece::ServerIp => f.write_str("{server}")?,
                Piece::Model => f.write_str("{model}")?,
                Piece::Image => f.write_str("{image}")?,
                Piece::Http => f.write_str("{http}")?,
            }
        }
        Ok(())
    }
}

/// A phone's model: option 77 if it sent one, else option 60.
pub fn model_of<'a>(user_class: Option<&'a str>, vendor_class: Option<&'a str>) -> Option<&'a str> {
    user_class.or(vendor_class).filter(|m| !m.is_empty())
}

/// What a rendered option may depend on.
pub struct RenderCtx<'a> {
    pub server: Ipv4Addr,
    pub mac: Mac,
    pub vendor_class: Option<&'a str>,
    pub user_class: Option<&'a str>,
    /// Image names by upper-case model (`[dhcp.images]` over the built-in names).
    pub images: &'a Images,
    /// The port of the appliance's first HTTP listener, if it serves HTTP.
    pub http_port: Option<u16>,
}

/// Firmware image names by model, the model in upper case.
pub type Images = std::collections::BTreeMap<String, String>;

impl RenderCtx<'_> {
    pub fn model(&self) -> Option<&str> {
        model_of(self.user_class, self.vendor_class)
    }

    pub fn image(&self) -> Option<String> {
        let model = self.model()?;
        Some(
            self.images
                .get(&model.to_ascii_uppercase())
                .cloned()
                .unwrap_or_else(|| format!("{model}.img")),
        )
    }
}

/// The value of one option as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionValue {
    /// Bytes fixed at load time.
    Bytes(Vec<u8>),
    /// A list of IPv4 addresses, some of which may be `self`.
    Addrs(Vec<AddrSpec>),
    /// ASCII text with placeholders.
    Text(Template),
}

impl OptionValue {
    /// The option's payload for one exchange, or `None` if a placeholder has no value.
    pub fn render(&self, ctx: &RenderCtx<'_>) -> Option<Vec<u8>> {
        match self {
            OptionValue::Bytes(b) => Some(b.clone()),
            OptionValue::Addrs(list) => Some(encode_addrs(
                &list
                    .iter()
                    .map(|a| a.resolve(ctx.server))
                    .collect::<Vec<_>>(),
            )),
            OptionValue::Text(t) => t.render(ctx).map(String::into_bytes),
        }
    }
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Bytes(b)
                if !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c) && *c != b'{') =>
            {
                write!(f, "text:{}", String::from_utf8_lossy(b))
            }
            OptionValue::Bytes(b) => write!(f, "hex:{}", hex(b)),
            OptionValue::Addrs(list) => {
                f.write_str("ip:")?;
                for (i, a) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{a}")?;
                }
                Ok(())
            }
            OptionValue::Text(t) => write!(f, "text:{t}"),
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    if !digits.len().is_multiple_of(2) || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{s}` is not hex bytes (expected e.g. hex:0a0b or hex:0a:0b)"
        ));
    }
    (0..digits.len() / 2)
        .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Option 2: signed seconds east of UTC, 32-bit big endian.
pub fn encode_time_offset(seconds: i32) -> Vec<u8> {
    seconds.to_be_bytes().to_vec()
}

/// Parses a time offset written `"-05:00"`, `"+05:30"` or as signed seconds.
pub fn parse_time_offset(s: &str) -> Result<i32, String> {
    let err = || format!("`{s}` is not a time offset (expected e.g. \"-05:00\" or -18000)");
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let (h, m) = rest.split_once(':').ok_or_else(err)?;
    let h: i32 = h.parse().map_err(|_| err())?;
    let m: i32 = m.parse().map_err(|_| err())?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(err());
    }
    Ok(sign * (h * 3600 + m * 60))
}

pub fn encode_addrs(list: &[Ipv4Addr]) -> Vec<u8> {
    list.iter().flat_map(|a| a.octets()).collect()
}

/// Option 43 sub-options as type-length-value triples.
pub fn encode_vendor_tlv(subs: &[(u8, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (code, data) in subs {
        let len = u8::try_from(data.len())
            .map_err(|_| format!("sub-option {code} is longer than 255 bytes"))?;
        out.push(*code);
        out.push(len);
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// Option 43's sub-options as (code, value) pairs; `None` if the bytes are
/// not a well-formed TLV list.
pub fn decode_vendor_tlv(mut b: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut out = Vec::new();
    while let [code, len, rest @ ..] = b {
        let len = usize::from(*len);
        out.push((*code, rest.get(..len)?.to_vec()));
        b = &rest[len..];
    }
    b.is_empty().then_some(out)
}

/// The sub-options of `base` with those of `over` replacing or added, in
/// code order.
pub fn merge_suboptions(base: &[u8], over: &[u8]) -> Option<Vec<u8>> {
    let mut subs = std::collections::BTreeMap::new();
    for b in [base, over] {
        subs.extend(decode_vendor_tlv(b)?);
    }
    encode_vendor_tlv(&subs.into_iter().collect::<Vec<_>>()).ok()
}

/// A name in DNS wire format (RFC 1035 3.1), as option 120 carries it.
pub fn encode_dns_name(name: &str) -> Result<Vec<u8>, String> {
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return Err("empty host name".into());
    }
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "`{name}` is not a host name (labels must be 1-63 characters)"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("`{name}` is not a host name"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 255 {
        return Err(format!("`{name}` is longer than 255 bytes"));
    }
    Ok(out)
}

/// Option 120 (RFC 3361): byte 0 then DNS names, or byte 1 then IPv4 addresses.
/// The two forms cannot be mixed in one option.
pub fn encode_sip_servers(entries: &[String]) -> Result<Vec<u8>, String> {
    if entries.is_empty() {
        return Err("sip_servers needs at least one name or address".into());
    }
    let ips: Vec<Option<Ipv4Addr>> = entries.iter().map(|e| e.parse().ok()).collect();
    if ips.iter().all(Option::is_some) {
        let mut out = vec![1u8];
        for ip in ips.into_iter().flatten() {
            out.extend_from_slice(&ip.octets());
        }
        Ok(out)
    } else if ips.iter().all(Option::is_none) {
        let mut out = vec![0u8];
        for e in entries {
            out.extend(encode_dns_name(e)?);
        }
        Ok(out)
    } else {
        Err("sip_servers mixes names and addresses; RFC 3361 allows one kind per option".into())
    }
}

/// A time offset (option 2) as `+hh:mm` or `-hh:mm`.
pub fn utc_offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let m = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// How option 132 (VLAN ID) is put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VlanEncoding {
    /// ASCII decimal text, `"100"` (CIC's String type): the default.
    Text,
    U16,
    U32,
}

pub fn encode_vlan(id: u16, enc: VlanEncoding) -> Vec<u8> {
    match enc {
        VlanEncoding::Text => id.to_string().into_bytes(),
        VlanEncoding::U16 => id.to_be_bytes().to_vec(),
        VlanEncoding::U32 => u32::from(id).to_be_bytes().to_vec(),
    }
}

/// Splits option 77 into its RFC 3004 instances, or returns the raw value as one
/// instance when it is not in that form (AudioCodes sends the model as plain text).
pub fn user_class_instances(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < data.len() {
        let len = usize::from(data[i]);
        if len == 0 || i + 1 + len > data.len() {
            return vec![data.to_vec()];
        }
        out.push(data[i + 1..i + 1 + len].to_vec());
        i += 1 + len;
    }
    if out.is_empty() {
        vec![data.to_vec()]
    } else {
        out
    }
}

/// `hex:0a0b`, `text:...`, or plain text.
pub fn typed_bytes(s: &str) -> Result<Vec<u8>, String> {
    if let Some(h) = s.strip_prefix("hex:") {
        parse_hex(h)
    } else if let Some(t) = s.strip_prefix("text:") {
        Ok(t.as_bytes().to_vec())
    } else {
        Ok(s.as_bytes().to_vec())
    }
}

/// A raw option: `hex:0a0b`, `text:...` (placeholders allowed) or `ip:a,b,self`.
pub fn raw_value(s: &str) -> Result<OptionValue, String> {
    if let Some(h) = s.strip_prefix("hex:") {
        return parse_hex(h).map(OptionValue::Bytes);
    }
    if let Some(t) = s.strip_prefix("text:") {
        return Template::parse(t).map(OptionValue::Text);
    }
    if let Some(list) = s.strip_prefix("ip:") {
        let mut out = Vec::new();
        for a in list.split(',') {
            let a = a.trim();
            if a == "self" {
                out.push(AddrSpec::SelfAddr);
            } else {
                out.push(AddrSpec::Ip(a.parse().map_err(|_| {
                    format!("`{a}` is not an IPv4 address or \"self\"")
                })?));
            }
        }
        return Ok(OptionValue::Addrs(out));
    }
    Err(format!(
        "`{s}` has no type (expected \"hex:0a0b\", \"text:...\" or \"ip:10.0.0.1,self\")"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_offset_matches_phones_md() {
        // PHONES.md section 2: -18000 = ff ff b9 b0.
        assert_eq!(parse_time_offset("-05:00"), Ok(-18000));
        assert_eq!(encode_time_offset(-18000), vec![0xff, 0xff, 0xb9, 0xb0]);
        assert_eq!(parse_time_offset("+05:30"), Ok(19800));
        assert_eq!(parse_time_offset("3600"), Ok(3600));
        assert!(parse_time_offset("-25:00").is_err());
        assert!(parse_time_offset("five").is_err());
    }

    #[test]
    fn vlan_encodings() {
        assert_eq!(encode_vlan(100, VlanEncoding::Text), b"100".to_vec());
        assert_eq!(encode_vlan(100, VlanEncoding::U16), vec![0x00, 0x64]);
        assert_eq!(encode_vlan(100, VlanEncoding::U32), vec![0, 0, 0, 0x64]);
    }

    #[test]
    fn sip_servers_both_encodings() {
        let names = encode_sip_servers(&["sfb.lab.voip".into()]).unwrap();
        let mut want = vec![0u8, 3];
        want.extend_from_slice(b"sfb");
        want.push(3);
        want.extend_from_slice(b"lab");
        want.push(4);
        want.extend_from_slice(b"voip");
        want.push(0);
        assert_eq!(names, want);
        let ips = encode_sip_servers(&["10.250.1.151".into(), "10.250.1.152".into()]).unwrap();
        assert_eq!(ips, vec![1, 10, 250, 1, 151, 10, 250, 1, 152]);
        assert!(encode_sip_servers(&["10.0.0.1".into(), "a.b".into()]).is_err());
        assert!(encode_sip_servers(&[]).is_err());
    }

    #[test]
    fn vendor_specific_sfb() {
        // PHONES.md section 2, option 43 for MS-UC-Client.
        let subs = vec![
            (1u8, b"MS-UC-Client".to_vec()),
            (2, b"https".to_vec()),
            (3, b"sfb.lab.voip".to_vec()),
            (4, b"443".to_vec()),
            (5, b"/CertProv/CertProvisioningService.svc".to_vec()),
        ];
        let out = encode_vendor_tlv(&subs).unwrap();
        assert_eq!(&out[..14], b"\x01\x0cMS-UC-Client");
        assert_eq!(&out[14..21], b"\x02\x05https");
        assert_eq!(&out[21..35], b"\x03\x0csfb.lab.voip");
        assert_eq!(&out[35..40], b"\x04\x03443");
        assert_eq!(out[40], 5);
        assert_eq!(
            usize::from(out[41]),
            "/CertProv/CertProvisioningService.svc".len()
        );
        assert_eq!(out.len(), 42 + 37);
    }

    #[test]
    fn user_class_forms() {
        assert_eq!(user_class_instances(b"450HD"), vec![b"450HD".to_vec()]);
        assert_eq!(
            user_class_instances(b"\x05450HD\x03abc"),
            vec![b"450HD".to_vec(), b"abc".to_vec()]
        );
        assert_eq!(
            user_class_instances(b"\x09450HD"),
            vec![b"\x09450HD".to_vec()]
        );
    }

    #[test]
    fn templates() {
        let t = Template::parse("{user_class}.img").unwrap();
        let mac: Mac = "00:90:8f:12:34:56".parse().unwrap();
        let images: Images = [("420HD".to_string(), "420hd.img".to_string())].into();
        let mut ctx = RenderCtx {
            server: Ipv4Addr::new(10, 0, 0, 1),
            mac,
            vendor_class: None,
            user_class: Some("450HD"),
            images: &images,
            http_port: None,
        };
        assert_eq!(t.render(&ctx).as_deref(), Some("450HD.img"));
        let t = Template::parse("{vendor_class}.img").unwrap();
        assert_eq!(t.render(&ctx), None);
        let t = Template::parse("http://{server}/{MAC}.cfg").unwrap();
        assert_eq!(
            t.render(&ctx).as_deref(),
            Some("http://10.0.0.1/00908F123456.cfg")
        );
        assert_eq!(
            Template::parse("self").unwrap().render(&ctx).as_deref(),
            Some("10.0.0.1")
        );
        assert!(Template::parse("{modell}").is_err());
        assert!(Template::parse("{mac").is_err());

        // {model} is option 77, else option 60; {image} looks it up.
        let image = Template::parse("{image}").unwrap();
        let model = Template::parse("{model}").unwrap();
        let http = Template::parse("{http}/").unwrap();
        assert_eq!(image.render(&ctx).as_deref(), Some("450HD.img"));
        assert_eq!(http.render(&ctx), None, "no HTTP served");
        ctx.user_class = None;
        ctx.vendor_class = Some("420hd");
        assert_eq!(model.render(&ctx).as_deref(), Some("420hd"));
        assert_eq!(image.render(&ctx).as_deref(), Some("420hd.img"));
        ctx.vendor_class = None;
        assert_eq!(image.render(&ctx), None);
        ctx.http_port = Some(80);
        assert_eq!(http.render(&ctx).as_deref(), Some("http://10.0.0.1/"));
        ctx.http_port = Some(8088);
        assert_eq!(http.render(&ctx).as_deref(), Some("http://10.0.0.1:8088/"));
    }

    #[test]
    fn vendor_suboptions_merge_by_code() {
        let base = encode_vendor_tlv(&[(1, b"a".to_vec()), (3, b"old".to_vec())]).unwrap();
        let over = encode_vendor_tlv(&[(3, b"new".to_vec()), (2, b"b".to_vec())]).unwrap();
        assert_eq!(
            merge_suboptions(&base, &over).unwrap(),
            b"\x01\x01a\x02\x01b\x03\x03new".to_vec()
        );
        assert_eq!(decode_vendor_tlv(b"\x01\x05ab"), None);
    }
}
