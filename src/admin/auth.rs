//! Who may read the admin listener: anyone on loopback; elsewhere a bearer
//! token (`[admin] token_file`) or a user and password checked against an
//! argon2 hash (`[admin] password_file`, written by `dialtone passwd`).
//! Nothing here is logged but the user name and the source address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64ct::{Base64, Encoding};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected `user:$argon2id$...` (written by dialtone passwd)")]
    Line { path: String, line: usize },
    #[error("{path}: the token file is empty or shorter than 16 characters")]
    Token { path: String },
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Failed attempts allowed per source address a minute; then 429.
pub const FAILURES_PER_MINUTE: u32 = 10;
/// Verified `Authorization` values remembered (argon2 is slow on purpose).
const REMEMBERED: usize = 64;
const REMEMBER_FOR: Duration = Duration::from_secs(300);

/// The credentials the listener accepts.
#[derive(Default)]
pub struct Credentials {
    /// None: the listener is on loopback and open.
    required: bool,
    users: Vec<(String, String)>,
    token: Option<String>,
    verified: Mutex<HashMap<String, Instant>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// What a request's credentials come to.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// 401: none, or wrong.
    Refused,
    /// 429: too many failures from this address.
    Slowed,
}

/// `user:hash` lines of a password file.
pub fn read_users(path: &Path) -> Result<Vec<(String, String)>, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_users(&path.display().to_string(), &text)
}

pub fn parse_users(path: &str, text: &str) -> Result<Vec<(String, String)>, AuthError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || AuthError::Line {
            path: path.to_string(),
            line: i + 1,
        };
        let (user, hash) = line.split_once(':').ok_or_else(bad)?;
        if user.is_empty() || PasswordHash::new(hash).is_err() {
            return Err(bad());
        }
        out.push((user.to_string(), hash.to_string()));
    }
    Ok(out)
}

/// A new argon2id hash of `password` with a random salt.
pub fn hash(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut salt))
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Equal without telling by its timing where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Credentials {
    /// Open to all (a loopback listener).
    pub fn open() -> Credentials {
        Credentials::default()
    }

    /// From `[admin]`: what its files hold.
    pub fn load(admin: &crate::config::Admin) -> Result<Credentials, AuthError> {
        let mut c = Credentials {
            required: admin.needs_credentials(),
            ..Credentials::default()
        };
        if let Some(p) = &admin.password_file {
            c.users = read_users(p)?;
        }
        if let Some(p) = &admin.token_file {
            let t = std::fs::read_to_string(p).map_err(|source| AuthError::Read {
                path: p.display().to_string(),
                source,
            })?;
            let t = t.trim().to_string();
            if t.len() < 16 {
                return Err(AuthError::Token {
                    path: p.display().to_string(),
                });
            }
            c.token = Some(t);
        }
        Ok(c)
    }

    pub fn with_users(users: Vec<(String, String)>, token: Option<String>) -> Credentials {
        Credentials {
            required: true,
            users,
            token,
            ..Credentials::default()
        }
    }

    pub fn required(&self) -> bool {
        self.required
    }

    fn failed(&self, from: IpAddr) -> Verdict {
        if let Ok(mut f) = self.failures.lock() {
            if f.len() > 4_096 {
                f.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(60));
                if f.len() > 4_096 {
                    f.clear();
                }
            }
            let e = f.entry(from).or_insert((Instant::now(), 0));
            if e.0.elapsed() >= Duration::from_secs(60) {
                *e = (Instant::now(), 0);
            }
            e.1 += 1;
        }
        Verdict::Refused
    }

    fn slowed(&self, from: IpAddr) -> bool {
        self.failures.lock().is_ok_and(|f| {
            f.get(&from).is_some_and(|(at, n)| {
                at.elapsed() < Duration::from_secs(60) && *n >= FAILURES_PER_MINUTE
            })
        })
    }

    /// Checks one request's `Authorization` header from `from`.
    pub fn check(&self, authorization: Option<&str>, from: IpAddr) -> Verdict {
        if !self.required {
            return Verdict::Allowed;
        }
        if self.slowed(from) {
            return Verdict::Slowed;
        }
        let Some(value) = authorization.map(str::trim) else {
            return Verdict::Refused;
        };
        if let Some(t) = value.strip_prefix("Bearer ") {
            return match &self.token {
                Some(token) if same(t.trim().as_bytes(), token.as_bytes()) => Verdict::Allowed,
                _ => self.failed(from),
            };
        }
        let Some(b) = value.strip_prefix("Basic ") else {
            return self.failed(from);
        };
        if let Ok(v) = self.verified.lock()
            && v.get(value).is_some_and(|at| at.elapsed() < REMEMBER_FOR)
        {
            return Verdict::Allowed;
        }
        let Ok(decoded) = Base64::decode_vec(b.trim()) else {
            return self.failed(from);
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return self.failed(from);
        };
        let Some((user, password)) = text.split_once(':') else {
            return self.failed(from);
        };
        let ok = self.users.iter().any(|(u, h)| {
            u == user
                && PasswordHash::new(h).is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
        });
        if !ok {
            tracing::info!(target: "dialtone::admin", %from, user, "admin login refused");
            return self.failed(from);
        }
        if let Ok(mut v) = self.verified.lock() {
            if v.len() >= REMEMBERED {
                v.clear();
            }
            v.insert(value.to_string(), Instant::now());
        }
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_tokens_and_a_guesser() {
        let h = hash("s3cret pass").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let users = parse_users("f", &format!("# admins\nadmin:{h}\n")).unwrap();
        assert!(parse_users("f", "admin:plaintext\n").is_err());
        let c = Credentials::with_users(users, Some("0123456789abcdef0123".into()));
        let from: IpAddr = "10.1.1.1".parse().unwrap();
        let basic = |s: &str| format!("Basic {}", Base64::encode_string(s.as_bytes()));
        assert_eq!(c.check(None, from), Verdict::Refused);
        assert_eq!(
            c.check(Some(&basic("admin:s3cret pass")), from),
            Verdict::Allowed
        );
        assert_eq!(
            c.check(Some(&basic("admin:s3cret pass")), from),
            Verdict::Allowed
        );
        assert_eq!(
            c.check(Some("Bearer 0123456789abcdef0123"), from),
            Verdict::Allowed
        );
        assert_eq!(
            c.check(Some("Bearer 0123456789abcdef012"), from),
            Verdict::Refused
        );
        let guesser: IpAddr = "10.1.1.2".parse().unwrap();
        for _ in 0..FAILURES_PER_MINUTE {
            assert_eq!(
                c.check(Some(&basic("admin:guess")), guesser),
                Verdict::Refused
            );
        }
        assert_eq!(
            c.check(Some(&basic("admin:s3cret pass")), guesser),
            Verdict::Slowed
        );
        assert_eq!(
            c.check(Some(&basic("admin:s3cret pass")), from),
            Verdict::Allowed
        );
        assert_eq!(Credentials::open().check(None, from), Verdict::Allowed);
    }
}
