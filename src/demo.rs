//! `dialtone demo`: see lab.rs. (filled in below)
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("demo not built yet")
}
