//! Whether the host clock is synchronised, from adjtimex(2) in read-only
//! mode. nix has no wrapper for it; the call fills a zero-initialised timex
//! structure and changes nothing (modes = 0).

/// True when the kernel says the clock is synchronised (an NTP daemon such as
/// chronyd or systemd-timesyncd disciplines it); false when it is not or the
/// call fails.
pub fn synchronised() -> bool {
    // SAFETY: timex is a plain C struct of integers, for which all-zero bytes
    // are valid; modes = 0 makes adjtimex only read the kernel's state.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    // SAFETY: tx is a valid, exclusively borrowed timex for the whole call.
    let state = unsafe { libc::adjtimex(&mut tx) };
    state >= 0 && state != libc::TIME_ERROR && (tx.status & libc::STA_UNSYNC) == 0
}
