//! The sending side of a TFTP read as a state machine: which blocks to send
//! after an acknowledgement or a timeout, block numbers rolling over past
//! 65535, windows (RFC 7440), and no Sorcerer's Apprentice: an ACK that does
//! not move the transfer forward never causes a send; only a timeout resends.
//! No I/O.

use std::ops::RangeInclusive;

/// Blocks are counted from 1 as `u64` (block `i` is bytes `(i-1)*blksize..`);
/// on the wire a block's number is `i mod 65536`, so after 65535 comes 0.
#[derive(Debug, Clone)]
pub struct Window {
    /// Data blocks in the transfer: the last one is shorter than blksize
    /// (empty when the size is a multiple of it).
    total: u64,
    window: u64,
    /// Blocks 1..=acked are acknowledged.
    acked: u64,
    /// Blocks up to this one have been sent since the last ACK or timeout.
    sent: u64,
    /// An OACK went out and its ACK (block 0) has not come yet.
    awaiting_oack: bool,
    retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these blocks (by index), then wait.
    Send(RangeInclusive<u64>),
    /// Nothing to send: a duplicate or stale ACK.
    Ignore,
    /// The last block is acknowledged.
    Done,
}

/// Block index to the number on the wire.
pub fn wire_number(index: u64) -> u16 {
    (index % 65536) as u16
}

impl Window {
    /// A transfer of `size` bytes in blocks of `blksize`, `window` blocks at a
    /// time. `oack`: an OACK is sent first and block 1 waits for its ACK 0.
    pub fn new(size: u64, blksize: u16, window: u16, oack: bool) -> Window {
        Window {
            total: size / u64::from(blksize.max(1)) + 1,
            window: u64::from(window.max(1)),
            acked: 0,
            sent: 0,
            awaiting_oack: oack,
            retries: 0,
        }
    }

    pub fn total_blocks(&self) -> u64 {
        self.total
    }

    /// Blocks acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// What to send first: nothing while the OACK waits for its ACK.
    pub fn start(&mut self) -> Step {
        if self.awaiting_oack {
            Step::Ignore
        } else {
            self.fill()
        }
    }

    fn fill(&mut self) -> Step {
        let last = (self.acked + self.window).min(self.total);
        let first = self.sent.max(self.acked) + 1;
        if first > last {
            return Step::Ignore;
        }
        self.sent = last;
        Step::Send(first..=last)
    }

    /// An ACK with wire number `block` arrived.
    pub fn on_ack(&mut self, block: u16) -> Step {
        if self.awaiting_oack {
            if block != 0 {
                return Step::Ignore;
            }
            self.awaiting_oack = false;
            self.retries = 0;
            return self.fill();
        }
        // The acknowledged index: the one at or after `acked` within what
        // was sent whose wire number matches.
        let delta = u64::from(block.wrapping_sub(wire_number(self.acked)));
        let index = self.acked + delta;
        if delta == 0 || index > self.sent {
            // A duplicate (Sorcerer's Apprentice) or a number never sent.
            return Step::Ignore;
        }
        self.acked = index;
        self.retries = 0;
        if self.acked == self.total {
            return Step::Done;
        }
        // Anything sent past the acknowledged block is presumed lost (the
        // client acknowledges the last block it received in order).
        self.sent = self.acked;
        self.fill()
    }

    /// No ACK came in time: what to send again (the OACK when `None` is
    /// inside `Some`), or `None` once `max_retries` are spent.
    pub fn on_timeout(&mut self, max_retries: u32) -> Option<Resend> {
        if self.retries >= max_retries {
            return None;
        }
        self.retries += 1;
        if self.awaiting_oack {
            return Some(Resend::OptionAck);
        }
        self.sent = self.acked;
        match self.fill() {
            Step::Send(r) => Some(Resend::Blocks(r)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resend {
    OptionAck,
    Blocks(RangeInclusive<u64>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockstep_without_options() {
        let mut w = Window::new(1000, 512, 1, false);
        assert_eq!(w.total_blocks(), 2);
        assert_eq!(w.start(), Step::Send(1..=1));
        assert_eq!(w.on_ack(1), Step::Send(2..=2));
        // The duplicate ACK of block 1 sends nothing (Sorcerer's Apprentice).
        assert_eq!(w.on_ack(1), Step::Ignore);
        assert_eq!(w.on_ack(7), Step::Ignore);
        assert_eq!(w.on_ack(2), Step::Done);
    }

    #[test]
    fn exact_multiple_ends_with_an_empty_block() {
        let mut w = Window::new(1024, 512, 1, false);
        assert_eq!(w.total_blocks(), 3);
        let mut w0 = Window::new(0, 512, 1, false);
        assert_eq!(w0.start(), Step::Send(1..=1));
        assert_eq!(w0.on_ack(1), Step::Done);
        assert_eq!(w.start(), Step::Send(1..=1));
    }

    #[test]
    fn oack_waits_for_ack_zero_and_is_resent_on_timeout() {
        let mut w = Window::new(100, 512, 4, true);
        assert_eq!(w.start(), Step::Ignore);
        assert_eq!(w.on_ack(3), Step::Ignore);
        assert_eq!(w.on_timeout(5), Some(Resend::OptionAck));
        assert_eq!(w.on_ack(0), Step::Send(1..=1));
        assert_eq!(w.on_ack(1), Step::Done);
    }

    #[test]
    fn windows_and_a_gap() {
        let mut w = Window::new(10 * 512 + 5, 512, 4, false);
        assert_eq!(w.total_blocks(), 11);
        assert_eq!(w.start(), Step::Send(1..=4));
        assert_eq!(w.on_ack(4), Step::Send(5..=8));
        // Block 7 was lost: the client acknowledges 6, the window restarts at 7.
        assert_eq!(w.on_ack(6), Step::Send(7..=10));
        assert_eq!(w.on_ack(6), Step::Ignore);
        assert_eq!(w.on_timeout(5), Some(Resend::Blocks(7..=10)));
        assert_eq!(w.on_ack(10), Step::Send(11..=11));
        assert_eq!(w.on_ack(11), Step::Done);
    }

    #[test]
    fn block_numbers_roll_over_to_zero() {
        // 70,000 blocks of 512 bytes: past 65535 the numbers restart at 0.
        let mut w = Window::new(70_000 * 512 + 1, 512, 8, false);
        let mut step = w.start();
        let mut acks = 0u64;
        loop {
            match step {
                Step::Send(r) => {
                    let last = *r.end();
                    acks += 1;
                    step = w.on_ack(wire_number(last));
                }
                Step::Done => break,
                Step::Ignore => panic!("stuck at {}", w.acked()),
            }
        }
        assert_eq!(w.acked(), 70_001);
        assert_eq!(acks, 70_001_u64.div_ceil(8));
        assert_eq!(wire_number(65_535), 65_535);
        assert_eq!(wire_number(65_536), 0);
    }

    #[test]
    fn retries_run_out() {
        let mut w = Window::new(100, 512, 1, false);
        w.start();
        for _ in 0..3 {
            assert_eq!(w.on_timeout(3), Some(Resend::Blocks(1..=1)));
        }
        assert_eq!(w.on_timeout(3), None);
    }
}
