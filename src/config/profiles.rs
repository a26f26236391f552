//! The built-in profiles a class names with `profile = "..."` instead of
//! spelling out its match rules and options. Each family holds its own
//! (`families`); this module reads them as class TOML and describes them
//! for `dialtone profiles`.

pub use crate::families::Profile;

/// A built-in profile by name, any case.
pub fn find(name: &str) -> Option<&'static Profile> {
    crate::families::profile(name)
}

/// The names, for error messages.
pub fn names() -> String {
    crate::families::profile_names()
}

/// What `dialtone profiles` prints: each profile with its match rules, what
/// it sends and the files its phones fetch.
pub fn describe() -> Result<String, super::ConfigError> {
    use std::fmt::Write;
    let mut o = String::new();
    for (_, p) in crate::families::profiles() {
        let k = super::load_profile(p)?;
        let _ = writeln!(o, "{}\n  {}", p.name, p.summary);
        let rules: Vec<String> = k.matchers.iter().map(super::render::match_table).collect();
        let _ = match rules.len() {
            0 => writeln!(o, "  match:    none built in: the class must give one"),
            1 => writeln!(o, "  match:    {}", rules[0]),
            _ => writeln!(o, "  match:    any of {}", rules.join(", ")),
        };
        let mut codes: Vec<u8> = Vec::new();
        for c in k
            .force
            .iter()
            .chain(k.options.keys())
            .chain(k.defaults.keys())
        {
            if !codes.contains(c) {
                codes.push(*c);
            }
        }
        for code in codes {
            let how = if k.force.contains(&code) {
                "always"
            } else {
                "if asked"
            };
            let shown = |v: &crate::dhcp::options::OptionValue| match v {
                crate::dhcp::options::OptionValue::Bytes(b) => crate::dhcp::show::decode(code, b),
                crate::dhcp::options::OptionValue::Text(t) => format!("\"{t}\""),
                other => other.to_string(),
            };
            let value = match (k.options.get(&code), k.defaults.get(&code)) {
                (Some(v), _) => shown(v),
                (None, Some(v)) => format!("{} unless the configuration sets it", shown(v)),
                (None, None) => "from the configuration (not sent if it sets none)".into(),
            };
            let _ = writeln!(
                o,
                "  {code:>3} {:<18} {how:<9} {value}",
                crate::dhcp::options::name(code)
            );
        }
        if let Some(only) = &k.only {
            let _ = writeln!(o, "  nothing else is sent (only {only:?})");
        }
        if !p.files.is_empty() {
            let _ = writeln!(o, "  files:    {}", p.files.join(", then "));
        }
        o.push('\n');
    }
    Ok(o)
}
