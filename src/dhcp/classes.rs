//! Which classes a client belongs to, from what it says about itself.

use crate::config::{Class, Match};
use crate::dhcp::packet::Request;
use crate::glob;

/// Whether every condition of `m` holds for the request.
pub fn matches(m: &Match, req: &Request) -> bool {
    if m.message.is_some_and(|t| t != req.msg_type) {
        return false;
    }
    if let Some(p) = &m.vendor_class {
        match &req.vendor_class {
            Some(v) if glob::matches(p, v.as_bytes()) => {}
            _ => return false,
        }
    }
    if let Some(p) = &m.user_class
        && !req
            .user_classes
            .iter()
            .any(|u| glob::matches(p, u.as_bytes()))
    {
        return false;
    }
    if !m.requests.iter().all(|c| req.param_list.contains(c)) {
        return false;
    }
    if let Some(p) = &m.mac
        && !glob::matches(p, req.mac.to_string().replace(':', "").as_bytes())
    {
        return false;
    }
    true
}

/// The classes that apply, in configuration order (later ones override earlier ones).
pub fn select<'c>(classes: &'c [Class], req: &Request) -> Vec<&'c Class> {
    classes
        .iter()
        .filter(|c| c.matchers.iter().any(|m| matches(m, req)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::dhcp::client::ClientMessage;
    use crate::dhcp::packet::DISCOVER;

    fn names(req: &ClientMessage) -> Vec<String> {
        let c = Config::parse("ex", include_str!("../../config/dialtone.toml")).unwrap();
        let r = Request::parse(&req.encode()).unwrap();
        select(&c.dhcp.classes, &r)
            .into_iter()
            .map(|k| k.name.clone())
            .collect()
    }

    #[test]
    fn example_classes() {
        let mac = "00:26:fd:00:00:01".parse().unwrap();
        let iss = ClientMessage::new(DISCOVER, mac, 1)
            .vendor_class("SIP100")
            .requests(&[1, 3]);
        assert_eq!(names(&iss), vec!["iss"]);
        let ac = ClientMessage::new(DISCOVER, mac, 1)
            .user_class_raw("450HD")
            .requests(&[1, 66, 67]);
        assert_eq!(names(&ac), vec!["audiocodes-recovery"]);
        // Without 66/67 in option 55 it is not in recovery.
        let ac = ClientMessage::new(DISCOVER, mac, 1)
            .user_class_raw("450HD")
            .requests(&[1, 3]);
        assert!(names(&ac).is_empty());
        // RFC 3004 form of option 77.
        let ac = ClientMessage::new(DISCOVER, mac, 1)
            .option(77, b"\x06C450HD".to_vec())
            .requests(&[66, 67]);
        assert_eq!(names(&ac), vec!["audiocodes-recovery"]);
        let sfb = ClientMessage::new(DISCOVER, mac, 1).vendor_class("ms-uc-client");
        assert_eq!(names(&sfb), vec!["skype-for-business"]);
        // Several classes at once, in configuration order.
        let both = ClientMessage::new(DISCOVER, mac, 1)
            .vendor_class("SIP100")
            .user_class_raw("420HD")
            .requests(&[66, 67]);
        assert_eq!(names(&both), vec!["iss", "audiocodes-recovery"]);
    }

    #[test]
    fn mac_prefix() {
        let c = Config::parse(
            "t",
            "[[dhcp.class]]\nname = \"ac\"\nmatch.mac = \"00:90:8F:*\"\n",
        )
        .unwrap();
        let hit = Request::parse(
            &ClientMessage::new(DISCOVER, "00:90:8f:aa:bb:cc".parse().unwrap(), 1).encode(),
        )
        .unwrap();
        let miss = Request::parse(
            &ClientMessage::new(DISCOVER, "00:04:f2:aa:bb:cc".parse().unwrap(), 1).encode(),
        )
        .unwrap();
        assert_eq!(select(&c.dhcp.classes, &hit).len(), 1);
        assert!(select(&c.dhcp.classes, &miss).is_empty());
        // Separators are optional and any of : - . may be used.
        for pattern in [
            "00908f*",
            "00-90-8F-*",
            "0090.8f*",
            "*:AA:BB:CC",
            "00:90:8f:??:??:??",
        ] {
            let c = Config::parse(
                "t",
                &format!("[[dhcp.class]]\nname = \"ac\"\nmatch.mac = \"{pattern}\"\n"),
            )
            .unwrap();
            assert_eq!(select(&c.dhcp.classes, &hit).len(), 1, "{pattern}");
            assert!(
                select(&c.dhcp.classes, &miss).is_empty() || pattern.starts_with('*'),
                "{pattern}"
            );
        }
        let e = Config::parse(
            "t",
            "[[dhcp.class]]\nname = \"ac\"\nmatch.mac = \"00:90:zz:*\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "dhcp.class[0].match.mac");
        assert!(e.message.contains("not a MAC glob"), "{e}");
    }
}
