//! `dialtone import`: CIC's CSV Managed IP Phone list (the type,
//! manufacturer and model form) into the phones file.
//!
//! `Name,Type,Manufacturer,Model,Proxy Group,Extension,Identification
//! Address,Label,Address`: columns are found by their header (any order, any
//! case), field values are read case-insensitively, every bad row is
//! reported with its line and reason, and the good rows are kept.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{Family, Maker};
use crate::families;
use crate::units::Mac;

/// The columns of CIC's list, as its header names them.
pub const COLUMNS: [&str; 9] = [
    "Name",
    "Type",
    "Manufacturer",
    "Model",
    "Proxy Group",
    "Extension",
    "Identification Address",
    "Label",
    "Address",
];
const REQUIRED: [&str; 4] = ["Name", "Type", "Manufacturer", "Model"];

/// A good row, as it goes into the phones file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: usize,
    pub name: String,
    pub manufacturer: &'static Maker,
    pub model: String,
    pub family: &'static Family,
    pub mac: Option<Mac>,
    /// A soft phone's computer name.
    pub computer: Option<String>,
    pub extension: Option<String>,
    pub label: Option<String>,
    pub proxy_group: Option<String>,
    /// Kept, with a remark (e.g. no MAC yet).
    pub remark: Option<String>,
}

/// A refused row: its line in the file and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub line: usize,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub rows: Vec<Row>,
    pub refused: Vec<Refused>,
}

/// What is wrong with the file as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("the file is empty; expected the header {}", COLUMNS.join(","))]
    Empty,
    #[error("the header has no `{0}` column; expected {cols}", cols = COLUMNS.join(","))]
    MissingColumn(&'static str),
}

/// Reads the list. Rows are refused one by one; only a broken file or header
/// fails as a whole.
pub fn parse(text: &str) -> Result<Parsed, CsvError> {
    let records = records(text.strip_prefix('\u{feff}').unwrap_or(text))?;
    let mut records = records
        .into_iter()
        .filter(|(_, f)| !(f.len() == 1 && f[0].trim().is_empty()));
    let Some((_, header)) = records.next() else {
        return Err(CsvError::Empty);
    };
    let index: HashMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_ascii_lowercase(), i))
        .collect();
    for c in REQUIRED {
        if !index.contains_key(&c.to_ascii_lowercase()) {
            return Err(CsvError::MissingColumn(c));
        }
    }
    let mut out = Parsed::default();
    let mut macs: HashMap<Mac, usize> = HashMap::new();
    for (line, fields) in records {
        let get = |c: &str| -> Option<String> {
            index
                .get(&c.to_ascii_lowercase())
                .and_then(|&i| fields.get(i))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let name = get("Name").unwrap_or_default();
        let refuse = |reason: String| Refused {
            line,
            name: name.clone(),
            reason,
        };
        if fields.len() != header.len() {
            out.refused.push(refuse(format!(
                "{} fields where the header has {}",
                fields.len(),
                header.len()
            )));
            continue;
        }
        match row(line, &name, &get) {
            Ok(r) => {
                if let Some(mac) = r.mac {
                    if let Some(first) = macs.get(&mac) {
                        out.refused.push(refuse(format!(
                            "MAC {mac} is already the phone on line {first}"
                        )));
                        continue;
                    }
                    macs.insert(mac, line);
                }
                out.rows.push(r);
            }
            Err(reason) => out.refused.push(refuse(reason)),
        }
    }
    Ok(out)
}

fn row(line: usize, name: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<Row, String> {
    if name.is_empty() {
        return Err("Name is empty; every phone needs one".into());
    }
    match get("Type") {
        Some(t)
            if t.eq_ignore_ascii_case("workstation")
                || t.eq_ignore_ascii_case("stand-alone phone") => {}
        Some(t) => {
            return Err(format!(
                "Type `{t}` is not Workstation or Stand-alone Phone"
            ));
        }
        None => return Err("Type is empty; expected Workstation or Stand-alone Phone".into()),
    }
    let maker_text = get("Manufacturer").unwrap_or_default();
    let manufacturer = families::maker(&maker_text).ok_or_else(|| {
        format!(
            "unknown manufacturer `{maker_text}` (expected {})",
            families::maker_names()
        )
    })?;
    let model = get("Model").ok_or("Model is empty; every phone needs one")?;
    let family = families::of_model(manufacturer, &model);
    let address = get("Address");
    let (mac, computer, remark) = match (family.by_computer, address) {
        (true, Some(a)) => (None, Some(a), None),
        (true, None) => (
            None,
            None,
            Some("no computer name yet: add `computer` when known".to_string()),
        ),
        (_, None) => (
            None,
            None,
            Some("no MAC yet: add `mac` when known; until then no phone matches it".to_string()),
        ),
        (_, Some(a)) => (Some(mac_for(&a, manufacturer)?), None, None),
    };
    Ok(Row {
        line,
        name: name.to_string(),
        manufacturer,
        model,
        family,
        mac,
        computer,
        extension: get("Extension"),
        label: get("Label"),
        proxy_group: get("Proxy Group"),
        remark,
    })
}

/// The Address column of a hardware phone: twelve hex digits (separators
/// `:`, `-`, `.` allowed) with the manufacturer's OUI.
fn mac_for(text: &str, maker: &Maker) -> Result<Mac, String> {
    let hex: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "Address `{text}` is not a MAC address (expected 12 hex digits)"
        ));
    }
    if hex.len() != 12 {
        let what = if hex.len() < 12 { "short" } else { "long" };
        return Err(format!(
            "{what} MAC `{text}`: {} hex digits, expected 12",
            hex.len()
        ));
    }
    let mac: Mac = hex.parse()?;
    if !maker.may_own(mac) {
        let whose = families::maker_of(mac)
            .map(|m| format!(" (the {m} OUI)"))
            .unwrap_or_default();
        return Err(format!(
            "wrong OUI for {maker}: {mac} starts with {:02x}:{:02x}:{:02x}{whose}; {maker} MACs start with {}",
            mac.0[0],
            mac.0[1],
            mac.0[2],
            maker.ouis_text()
        ));
    }
    Ok(mac)
}

/// RFC 4180 records with the line each starts on: `,` separated, fields in
/// double quotes may hold commas, quotes (`""`) and line breaks; CRLF or LF.
fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut start = 1;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            ',' => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                out.push((start, std::mem::take(&mut fields)));
                line += 1;
                start = line;
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err(CsvError::Syntax {
            line: start,
            message: "a quoted field is not closed".into(),
        });
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        out.push((start, fields));
    }
    Ok(out)
}

/// The report `dialtone import` prints: refused rows first, then remarks.
pub fn report(parsed: &Parsed) -> String {
    let mut o = String::new();
    for r in &parsed.refused {
        let name = if r.name.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.name)
        };
        let _ = writeln!(o, "line {}{name}: refused: {}", r.line, r.reason);
    }
    for r in parsed.rows.iter().filter(|r| r.remark.is_some()) {
        let _ = writeln!(
            o,
            "line {} ({}): kept, {}",
            r.line,
            r.name,
            r.remark.as_deref().unwrap_or("")
        );
    }
    o
}

#[cfg(test)]
mod tests;
