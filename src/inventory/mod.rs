//! The phone inventory: which phones the site has (MAC, model, extension,
//! SIP credentials, where they register; the families they belong to are
//! in `families`), CSV import from CIC's lists, and the per-phone
//! configuration files generated for them.

pub mod csv;
pub mod file;
pub mod generate;
pub mod seen;

pub use crate::config::phone::{Inventory, Phone, Register};
pub use crate::families::{Family, Maker};
