//! SIP registration in the lab: the emulated phone's REGISTER with digest
//! authentication (RFC 3261 section 22, RFC 2617 MD5, with or without
//! `qop=auth`), and the call server stand-in's registrar, which challenges
//! the users it knows and checks their answer. Messages are built and read
//! here without I/O; `register` puts them on a UDP socket.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

/// Lower-case hex MD5 of `s`.
pub fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// RFC 2617's MD5 response: without `qop`, MD5(HA1:nonce:HA2); with it
/// (`nc`, `cnonce`, `qop`), MD5(HA1:nonce:nc:cnonce:qop:HA2).
fn digest(
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
) -> String {
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce, qop)) => md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")),
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// A `WWW-Authenticate: Digest ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    /// `auth` when the server offers it.
    pub qop: Option<String>,
    pub opaque: Option<String>,
}

/// The parameters of a `Digest` header value (`key=value` or
/// `key="value"`, comma separated).
fn params(value: &str) -> Option<HashMap<String, String>> {
    let v = value.trim();
    let rest = v
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("digest"))
        .map(|_| v[6..].trim_start())?;
    let mut out = HashMap::new();
    let mut s = rest;
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (val, next) = match after.strip_prefix('"') {
            Some(q) => {
                let end = q.find('"')?;
                (q[..end].to_string(), &q[end + 1..])
            }
            None => match after.find(',') {
                Some(i) => (after[..i].trim().to_string(), &after[i..]),
                None => (after.trim().to_string(), ""),
            },
        };
        out.insert(key, val);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

impl Challenge {
    pub fn parse(value: &str) -> Option<Challenge> {
        let p = params(value)?;
        let qop = p.get("qop").and_then(|q| {
            q.split(',')
                .map(str::trim)
                .find(|q| q.eq_ignore_ascii_case("auth"))
                .map(str::to_string)
        });
        // MD5 is all this client computes (RFC 2617's default).
        if p.get("algorithm")
            .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
        {
            return None;
        }
        Some(Challenge {
            realm: p.get("realm")?.clone(),
            nonce: p.get("nonce")?.clone(),
            qop,
            opaque: p.get("opaque").cloned(),
        })
    }

    /// The `Authorization` header value answering this challenge.
    pub fn answer(
        &self,
        method: &str,
        uri: &str,
        user: &str,
        password: &str,
        cnonce: &str,
    ) -> String {
        let mut v = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm=MD5",
            self.realm, self.nonce
        );
        let qop = self.qop.as_deref().map(|q| ("00000001", cnonce, q));
        if let Some((nc, cnonce, q)) = qop {
            v.push_str(&format!(", qop={q}, nc={nc}, cnonce=\"{cnonce}\""));
        }
        let response = digest(user, &self.realm, password, method, uri, &self.nonce, qop);
        v.push_str(&format!(", response=\"{response}\""));
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        v
    }
}

/// A header's value (the first of that name, any case).
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A response's code and reason.
pub fn status(msg: &str) -> Option<(u16, String)> {
    let line = msg.split("\r\n").next()?;
    let mut f = line.splitn(3, ' ');
    if f.next()? != "SIP/2.0" {
        return None;
    }
    let code = f.next()?.parse().ok()?;
    Some((code, f.next().unwrap_or("").to_string()))
}

/// Who registers, where.
#[derive(Debug, Clone)]
pub struct Account<'a> {
    /// The AoR's user part (the line).
    pub user: &'a str,
    /// The SIP domain (the registrar's host name, or its address).
    pub domain: &'a str,
    /// The authentication name and password, if the phone has them.
    pub auth: Option<(&'a str, &'a str)>,
}

/// A REGISTER for `account` from `from` (the phone's address and port).
pub fn register_request(
    account: &Account,
    from: SocketAddr,
    call_id: &str,
    cseq: u32,
    authorization: Option<&str>,
) -> String {
    let Account { user, domain, .. } = account;
    let mut m = format!(
        "REGISTER sip:{domain} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK{call_id}{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{domain}>;tag={call_id}\r\n\
         To: <sip:{user}@{domain}>\r\n\
         Call-ID: {call_id}@{ip}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{from}>\r\n\
         Expires: 300\r\n\
         User-Agent: dialtone-lab-phone\r\n",
        ip = from.ip(),
    );
    if let Some(a) = authorization {
        m.push_str(&format!("Authorization: {a}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

/// Registers `account` with the registrar at `to` from the address `from`:
/// a REGISTER, the digest answer to its challenge, and the final response
/// as "200 OK" (or why not). A request is sent again after 500 ms and 1 s
/// (RFC 3261's timer E) when nothing comes back, and given up 2 s later.
pub fn register(from: Ipv4Addr, to: SocketAddr, account: &Account) -> Result<String, String> {
    let sock = UdpSocket::bind((from, 0)).map_err(|e| e.to_string())?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let call_id = md5_hex(&format!("{local}{to}{}", account.user))[..16].to_string();
    let ask = |cseq: u32, auth: Option<&str>| -> Result<String, String> {
        let req = register_request(account, local, &call_id, cseq, auth);
        let mut wait = Duration::from_millis(500);
        let mut buf = [0u8; 4096];
        for _ in 0..3 {
            sock.send_to(req.as_bytes(), to)
                .map_err(|e| e.to_string())?;
            let until = Instant::now() + wait;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .map_err(|e| e.to_string())?;
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    break;
                };
                let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
                // Provisional responses and strays wait for the final one.
                let ours =
                    header(&resp, "CSeq").is_some_and(|c| c.starts_with(&format!("{cseq} ")));
                if ours && status(&resp).is_some_and(|(c, _)| c >= 200) {
                    return Ok(resp);
                }
            }
            wait *= 2;
        }
        Err(format!("no answer from {to}"))
    };
    let first = ask(1, None)?;
    let (code, reason) = status(&first).ok_or("an answer that is not SIP")?;
    let last = match (code, account.auth) {
        (401 | 407, Some((name, password))) => {
            let h = if code == 401 {
                "WWW-Authenticate"
            } else {
                "Proxy-Authenticate"
            };
            let challenge = header(&first, h)
                .and_then(Challenge::parse)
                .ok_or_else(|| format!("{code} {reason} without a digest challenge"))?;
            let uri = format!("sip:{}", account.domain);
            let cnonce = &md5_hex(&call_id)[..8];
            let answer = challenge.answer("REGISTER", &uri, name, password, cnonce);
            ask(2, Some(&answer))?
        }
        (401 | 407, None) => return Err(format!("{code} {reason} (it has no credentials)")),
        _ => first,
    };
    let (code, reason) = status(&last).ok_or("an answer that is not SIP")?;
    let text = format!("{code} {reason}");
    if code == 200 { Ok(text) } else { Err(text) }
}

/// The call server stand-in's registrar: users it knows are challenged and
/// their digest checked (`qop=auth`); users it does not know are taken as
/// they come, as a lab PBX open to any line would.
#[derive(Debug, Clone, Default)]
pub struct Registrar {
    /// User -> password.
    pub users: HashMap<String, String>,
    pub realm: String,
    /// The one nonce it hands out (a stand-in, not a server to attack).
    pub nonce: String,
}

impl Registrar {
    /// The answer to `request` (any SIP request), or none for what is not
    /// one.
    pub fn answer(&self, request: &str) -> Option<String> {
        let method = request.split(' ').next()?;
        let reply = |code: &str, extra: &str| {
            let mut r = format!("SIP/2.0 {code}\r\n");
            for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                if let Some(v) = header(request, h) {
                    r.push_str(&format!("{h}: {v}\r\n"));
                }
            }
            r.push_str(extra);
            r.push_str("Content-Length: 0\r\n\r\n");
            Some(r)
        };
        match method {
            "OPTIONS" => reply("200 OK", ""),
            "REGISTER" => {
                let to = header(request, "To")?;
                let line = to.split("sip:").nth(1)?.split('@').next()?;
                let auth = header(request, "Authorization").and_then(params);
                // The credentials' name, else the line: an authentication
                // name other than the line is taken as such.
                let user = auth
                    .as_ref()
                    .and_then(|p| p.get("username"))
                    .map_or(line, String::as_str)
                    .to_string();
                let Some(password) = self.users.get(&user) else {
                    return reply("200 OK", "");
                };
                let challenge = || {
                    reply(
                        "401 Unauthorized",
                        &format!(
                            "WWW-Authenticate: Digest realm=\"{}\", nonce=\"{}\", qop=\"auth\"\r\n",
                            self.realm, self.nonce
                        ),
                    )
                };
                let Some(p) = &auth else {
                    return challenge();
                };
                let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
                if get("nonce") != self.nonce || get("username") != user {
                    return challenge();
                }
                let qop = Some(get("qop"))
                    .filter(|q| !q.is_empty())
                    .map(|q| (get("nc"), get("cnonce"), q));
                let want = digest(
                    &user,
                    &self.realm,
                    password,
                    "REGISTER",
                    get("uri"),
                    &self.nonce,
                    qop,
                );
                if get("response") == want {
                    reply("200 OK", "")
                } else {
                    reply("403 Forbidden", "")
                }
            }
            m if m.chars().all(|c| c.is_ascii_uppercase()) && !m.is_empty() => {
                reply("405 Method Not Allowed", "")
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_matches_a_captured_kamailio_exchange() {
        // Kamailio 5.6 challenged with qop="auth"; sipsak answered (user
        // 7501, password s3cret) and was registered.
        let c = Challenge::parse(
            r#"Digest realm="voice.lab", nonce="axYPamsWDj5R9TK3MDUSftLpde+dmZWu", qop="auth""#,
        )
        .unwrap();
        assert_eq!(c.realm, "voice.lab");
        assert_eq!(c.qop.as_deref(), Some("auth"));
        let a = c.answer("REGISTER", "sip:10.77.0.1", "7501", "s3cret", "5fc8949b");
        assert!(
            a.contains(r#"response="476836eca0f8db436e7f07dddc2c9b4c""#),
            "{a}"
        );
        assert!(
            a.contains("qop=auth, nc=00000001, cnonce=\"5fc8949b\""),
            "{a}"
        );
        // RFC 2617 section 3.5's example, without qop's nc and cnonce.
        let rfc = Challenge {
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            qop: None,
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
        };
        let a = rfc.answer("GET", "/dir/index.html", "Mufasa", "Circle Of Life", "x");
        assert!(
            a.contains(r#"response="670fd8c2df070c60b045671b8b24ff02""#),
            "{a}"
        );
        assert!(
            a.ends_with(r#"opaque="5ccc069c403ebaf9f0171e9517f40e41""#),
            "{a}"
        );
    }

    #[test]
    fn the_stand_in_challenges_known_users_and_checks_their_answer() {
        let r = Registrar {
            users: [("7501".to_string(), "demo-7501".to_string())].into(),
            realm: "lab.voip".into(),
            nonce: "n0nce".into(),
        };
        let from: SocketAddr = "10.250.0.100:5062".parse().unwrap();
        let acct = Account {
            user: "7501",
            domain: "lab.voip",
            auth: Some(("7501", "demo-7501")),
        };
        let first = r
            .answer(&register_request(&acct, from, "abc", 1, None))
            .unwrap();
        assert_eq!(status(&first), Some((401, "Unauthorized".into())));
        assert_eq!(header(&first, "CSeq"), Some("1 REGISTER"));
        let c = Challenge::parse(header(&first, "WWW-Authenticate").unwrap()).unwrap();
        let good = c.answer("REGISTER", "sip:lab.voip", "7501", "demo-7501", "c0ffee");
        let ok = r
            .answer(&register_request(&acct, from, "abc", 2, Some(&good)))
            .unwrap();
        assert_eq!(status(&ok), Some((200, "OK".into())));
        let bad = c.answer("REGISTER", "sip:lab.voip", "7501", "guess", "c0ffee");
        let no = r
            .answer(&register_request(&acct, from, "abc", 3, Some(&bad)))
            .unwrap();
        assert_eq!(status(&no), Some((403, "Forbidden".into())));
        // A line it does not know is taken as it comes; junk is ignored.
        let other = Account {
            user: "7599",
            domain: "lab.voip",
            auth: None,
        };
        let open = r
            .answer(&register_request(&other, from, "d", 1, None))
            .unwrap();
        assert_eq!(status(&open), Some((200, "OK".into())));
        assert_eq!(r.answer("\u{0}\u{1}garbage"), None);
    }
}
