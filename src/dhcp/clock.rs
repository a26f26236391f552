//! Steps of the system clock (an NTP client stepping it after boot, an
//! administrator setting it). Lease times are wall-clock seconds, on disk
//! and in the table; when the clock steps, every lease and offer is moved
//! by the same amount, so each keeps the time it had left: a step forward
//! expires nothing early, a step back makes nothing last longer.
//!
//! A step is told from the monotonic clock: between two looks, the wall
//! clock should advance as the monotonic one does (NTP's slewing changes
//! that by half a millisecond a second at most). No I/O: both readings are
//! passed in.

/// A jump of the wall clock against the monotonic one larger than this,
/// between two looks, is a step.
pub const STEP_MS: i64 = 2_000;

#[derive(Debug, Clone, Copy)]
pub struct StepWatch {
    wall_ms: i64,
    mono_ms: u64,
}

impl StepWatch {
    pub fn new(wall_ms: i64, mono_ms: u64) -> StepWatch {
        StepWatch { wall_ms, mono_ms }
    }

    /// Looks at the clocks again: `Some(seconds)` when the wall clock
    /// stepped by that much (rounded) since the last look.
    pub fn observe(&mut self, wall_ms: i64, mono_ms: u64) -> Option<i64> {
        let elapsed = i64::try_from(mono_ms.saturating_sub(self.mono_ms)).unwrap_or(i64::MAX);
        let expected = self.wall_ms.saturating_add(elapsed);
        let delta = wall_ms.saturating_sub(expected);
        self.wall_ms = wall_ms;
        self.mono_ms = mono_ms;
        (delta.abs() > STEP_MS).then(|| (delta as f64 / 1000.0).round() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_told_from_slewing_and_time_passing() {
        let mut w = StepWatch::new(1_000_000, 0);
        // Time passes on both clocks: nothing.
        assert_eq!(w.observe(1_001_000, 1_000), None);
        // A slewed clock drifts a little: nothing.
        assert_eq!(w.observe(1_002_001, 2_000), None);
        // A long pause between looks is not a step.
        assert_eq!(w.observe(1_602_001, 602_000), None);
        // An hour forward, an hour back.
        assert_eq!(w.observe(1_602_001 + 3_601_000, 603_000), Some(3600));
        assert_eq!(w.observe(1_602_001 + 2_000, 604_000), Some(-3600));
    }
}
