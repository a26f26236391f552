//! Connections at once per source address, for the TCP listeners a phone
//! VLAN reaches (HTTP, DNS over TCP): one address cannot hold them all.

use std::net::IpAddr;
use std::sync::Arc;

/// Open connections per source address on one listener. A connection
/// holds a `SourceSlot`, which gives its place back when dropped. Bounded:
/// an address is kept only while it has connections open.
#[derive(Default)]
pub struct Sources {
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, (usize, bool)>>,
}

pub struct SourceSlot {
    sources: Arc<Sources>,
    ip: IpAddr,
}

impl Sources {
    /// A slot for a connection from `ip`, or `Err(first)` when `ip` has
    /// `cap` open already (`first`: the first refusal of this burst, to be
    /// logged).
    pub fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Result<SourceSlot, bool> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (n, warned) = open.entry(ip).or_insert((0, false));
        if *n >= cap {
            let first = !*warned;
            *warned = true;
            return Err(first);
        }
        *n += 1;
        Ok(SourceSlot {
            sources: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((n, warned)) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            *warned = false;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
