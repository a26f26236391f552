//! The configuration: loading a TOML file, checking every value, and the
//! normalized form the rest of dialtone works from. `raw.rs` is the file
//! as written, `check.rs` turns it into the model of `model.rs`, `lookup.rs`
//! is where host names outside `[dns]` get their addresses.
//!
//! Every error names the file, the line and column, the key and what was
//! expected. This module imports only what lies below it: units, the option
//! codecs and the phone families.

pub mod admin;
mod check;
mod dns;
mod files;
pub mod lookup;
mod model;
pub mod phone;
mod phones;
pub mod profiles;
mod raw;
mod render;
pub mod warnings;

pub use admin::{Admin, Syslog};
pub use check::load_profile;
pub use dns::{Dns, DnsHost, Health, HealthCheck, Service, Switchover, SwitchoverMode, Time};
pub use files::Files;
pub use lookup::Lookup;
pub use model::*;
pub use phones::{InventorySettings, parse_phones_file};
pub use render::match_table;

use std::collections::HashMap;
use std::path::Path;

use thiserror::Error;

use check::{Cx, local_names};
use raw::RawConfig;

/// A configuration error, located in the file.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{file}:{line}:{column}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

/// Errors while reading the configuration file from disk.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: cannot read the phones file ([inventory] file): {source}")]
    ReadPhones {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl Config {
    /// Reads and checks a configuration file; host names in option values
    /// that `[dns]` does not define are asked of the system resolver.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        Config::load_with(path, &lookup::System)
    }

    /// As `load`, with names `[dns]` does not define asked of `names`
    /// (`dialtone check --offline` passes `lookup::Offline`).
    pub fn load_with(path: &Path, names: &dyn Lookup) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse_with(&path.display().to_string(), &text, names)?;
        let phones = config.phones_path(path);
        match std::fs::read_to_string(&phones) {
            Ok(text) => phones::parse_phones_file(
                &phones.display().to_string(),
                &text,
                config.dns.as_ref(),
                &mut config.phones,
            )?,
            // Only a phones file that was named must exist.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && config.inventory.file.is_none() => {}
            Err(source) => {
                return Err(LoadError::ReadPhones {
                    path: phones.display().to_string(),
                    source,
                });
            }
        }
        Ok(config)
    }

    /// Checks configuration text; `file` names it in errors. A host name
    /// in an option value must be one `[dns]` defines: the result depends on
    /// the text alone, never on the host's resolver (for the engine's tests,
    /// fuzzing and `check --offline`).
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(file, text, &lookup::Offline)
    }

    /// As `parse`, with the names `[dns]` does not define asked of `names`.
    pub fn parse_with(file: &str, text: &str, names: &dyn Lookup) -> Result<Config, ConfigError> {
        let mut cx = Cx {
            file,
            text,
            local: HashMap::new(),
            names,
        };
        let de = toml::de::Deserializer::parse(text).map_err(|e| cx.toml_error("", &e))?;
        let mut raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            cx.toml_error(&path, e.inner())
        })?;
        // [dns] first: DHCP options may name its hosts.
        let dns = match raw.dns.take() {
            Some(d) => Some(cx.dns(d)?),
            None => None,
        };
        if let Some(d) = &dns {
            cx.local = local_names(d);
        }
        cx.build(raw, dns)
    }
}

#[cfg(test)]
mod tests;
