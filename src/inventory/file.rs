//! Writing the phones file: imported rows merged into the entries already
//! there, so a list imported again updates its phones and keeps what was
//! set by hand (passwords, registration targets, profiles).

use std::fmt::Write as _;

use super::csv::Row;
use crate::units::Mac;

/// The keys of a `[[phone]]` table, in the order they are written.
const KEYS: [&str; 12] = [
    "name",
    "mac",
    "computer",
    "manufacturer",
    "model",
    "profile",
    "extension",
    "sip_user",
    "sip_password",
    "label",
    "register",
    "proxy_group",
];

/// What the merge did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub text: String,
    pub added: usize,
    pub updated: usize,
    pub kept: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("the phones file cannot be read as TOML: {0}")]
    NotToml(String),
    #[error("cannot make a password for a new phone: {0}")]
    Password(std::io::Error),
}

type Entry = Vec<(&'static str, String)>;

/// Merges `rows` into `existing` (the phones file's text, if any). A row
/// updates the entry with its MAC (or, without a MAC, its name); other rows
/// are added with a new password from `password` (usually [`new_password`]).
pub fn merge(
    existing: Option<&str>,
    rows: &[Row],
    mut password: impl FnMut() -> std::io::Result<String>,
) -> Result<Merged, MergeError> {
    let mut entries: Vec<Entry> = match existing {
        Some(text) => read(text)?,
        None => Vec::new(),
    };
    let before = entries.len();
    // Entries of the file this import updated, counted once each (two rows
    // may name one phone).
    let mut updated = std::collections::BTreeSet::new();
    for row in rows {
        let found = entries.iter().position(|e| match row.mac {
            Some(mac) => get(e, "mac").and_then(|t| t.parse::<Mac>().ok()) == Some(mac),
            None => {
                get(e, "mac").is_none()
                    && get(e, "name").is_some_and(|n| n.eq_ignore_ascii_case(&row.name))
            }
        });
        let i = match found {
            Some(i) => i,
            None => {
                let mut e = Entry::new();
                if row.extension.is_some() {
                    set(
                        &mut e,
                        "sip_password",
                        Some(password().map_err(MergeError::Password)?),
                    );
                }
                entries.push(e);
                entries.len() - 1
            }
        };
        if i < before {
            updated.insert(i);
        }
        let entry = &mut entries[i];
        set(entry, "name", Some(row.name.clone()));
        set(entry, "mac", row.mac.map(|m| m.to_string()));
        set(entry, "computer", row.computer.clone());
        set(
            entry,
            "manufacturer",
            Some(row.manufacturer.name.to_string()),
        );
        set(entry, "model", Some(row.model.clone()));
        set(entry, "extension", row.extension.clone());
        set(entry, "label", row.label.clone());
        set(entry, "proxy_group", row.proxy_group.clone());
    }
    Ok(Merged {
        text: render(&entries),
        added: entries.len() - before,
        updated: updated.len(),
        kept: before - updated.len(),
    })
}

fn get<'a>(e: &'a Entry, key: &str) -> Option<&'a str> {
    e.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
}

fn set(e: &mut Entry, key: &'static str, value: Option<String>) {
    e.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        e.push((key, v));
    }
}

fn read(text: &str) -> Result<Vec<Entry>, MergeError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| MergeError::NotToml(e.to_string()))?;
    let Some(list) = table.get("phone") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| MergeError::NotToml("`phone` is not an array of tables".into()))?;
    list.iter()
        .map(|p| {
            let t = p
                .as_table()
                .ok_or_else(|| MergeError::NotToml("a `phone` entry is not a table".into()))?;
            Ok(KEYS
                .iter()
                .filter_map(|k| {
                    t.get(*k)
                        .and_then(|v| v.as_str())
                        .map(|v| (*k, v.to_string()))
                })
                .collect())
        })
        .collect()
}

fn render(entries: &[Entry]) -> String {
    let mut o = String::from(
        "# The site's phones (dialtone's inventory). `dialtone import` merges CIC\n\
         # lists into this file: it updates the phones it lists and keeps the\n\
         # values set here by hand, but not comments. Passwords are in clear:\n\
         # keep this file readable by root only.\n",
    );
    for e in entries {
        o.push_str("\n[[phone]]\n");
        for k in KEYS {
            if let Some(v) = get(e, k) {
                let _ = writeln!(o, "{k} = {}", toml::Value::String(v.to_string()));
            }
        }
    }
    o
}

/// A password for a new phone: 16 characters from the system's random
/// source, letters and digits only (phones' keypads and web forms differ on
/// symbols).
pub fn new_password() -> std::io::Result<String> {
    use std::io::Read;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(16);
    let mut f = std::fs::File::open("/dev/urandom")?;
    let mut b = [0u8; 1];
    while out.len() < 16 {
        f.read_exact(&mut b)?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        if usize::from(b[0]) < limit {
            out.push(char::from(ALPHABET[usize::from(b[0]) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// Replaces the phones file at `path` with `text`: written beside it with
/// mode 0600 (it holds passwords), synced, then renamed over it and the
/// folder synced, so a crash leaves the old file or the new one, never half
/// of one.
pub fn write(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    crate::statefile::replace(path, text.as_bytes(), 0o600)
}
