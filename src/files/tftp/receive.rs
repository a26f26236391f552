//! The receiving side of a TFTP write (an upload to the upload folder) as a
//! state machine: which blocks to keep, when to acknowledge (every
//! `window` blocks and the last one, RFC 7440), what to acknowledge again
//! after a timeout or a block out of order, block numbers rolling over past
//! 65535, and the size limit. Also the netascii decoder. No I/O.

use super::window::wire_number;

#[derive(Debug, Clone)]
pub struct Receive {
    blksize: usize,
    window: u16,
    /// Blocks 1..next are stored.
    next: u64,
    bytes: u64,
    max_bytes: u64,
    /// Blocks stored since the last acknowledgement.
    since_ack: u16,
    /// An acknowledgement of `next - 1` was sent again for a block out of
    /// order, and no block has been stored since: do not send it again.
    reacked: bool,
    retries: u32,
    done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// Store the block's data; then acknowledge `ack` if set. `last`: the
    /// block is shorter than blksize, the upload is complete.
    Store { ack: Option<u16>, last: bool },
    /// Not the block expected: acknowledge the last block stored in order
    /// (once), so the sender starts again after it.
    Ack(u16),
    /// Nothing to do.
    Ignore,
    /// Storing the block would pass the size limit.
    TooBig,
}

impl Receive {
    pub fn new(blksize: u16, window: u16, max_bytes: u64) -> Receive {
        Receive {
            blksize: usize::from(blksize.max(1)),
            window: window.max(1),
            next: 1,
            bytes: 0,
            max_bytes,
            since_ack: 0,
            reacked: false,
            retries: 0,
            done: false,
        }
    }

    /// Bytes stored so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The wire number of the last block stored (0 before the first).
    pub fn last_stored(&self) -> u16 {
        wire_number(self.next - 1)
    }

    /// A DATA packet with wire number `block` and `len` bytes of data.
    pub fn on_data(&mut self, block: u16, len: usize) -> Got {
        if self.done {
            // The final ACK was lost and the sender sent its last block
            // again: acknowledge it again, as often as it comes.
            return if block == self.last_stored() {
                Got::Ack(block)
            } else {
                Got::Ignore
            };
        }
        if block != wire_number(self.next) {
            if self.reacked {
                return Got::Ignore;
            }
            self.reacked = true;
            self.since_ack = 0;
            return Got::Ack(self.last_stored());
        }
        if len > self.blksize {
            // Longer than negotiated: not a block of this transfer.
            return Got::Ignore;
        }
        if self.bytes + len as u64 > self.max_bytes {
            return Got::TooBig;
        }
        self.bytes += len as u64;
        self.next += 1;
        self.retries = 0;
        self.reacked = false;
        self.since_ack += 1;
        let last = len < self.blksize;
        self.done = last;
        let ack = (last || self.since_ack >= self.window).then(|| {
            self.since_ack = 0;
            self.last_stored()
        });
        Got::Store { ack, last }
    }

    /// Nothing came in time: the block number to acknowledge again (0 before
    /// any block: the OACK or ACK 0 goes again), or `None` once
    /// `max_retries` are spent.
    pub fn on_timeout(&mut self, max_retries: u32) -> Option<u16> {
        if self.retries >= max_retries {
            return None;
        }
        self.retries += 1;
        self.since_ack = 0;
        self.reacked = false;
        Some(self.last_stored())
    }
}

/// Netascii to the host's text, across block boundaries: CR LF becomes LF,
/// CR NUL becomes CR. A CR followed by anything else is kept as it is.
#[derive(Debug, Default)]
pub struct NetasciiDecoder {
    pending_cr: bool,
}

impl NetasciiDecoder {
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.clear();
        for &b in data {
            if std::mem::take(&mut self.pending_cr) {
                match b {
                    b'\n' => {
                        out.push(b'\n');
                        continue;
                    }
                    0 => {
                        out.push(b'\r');
                        continue;
                    }
                    _ => out.push(b'\r'),
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// What is still held at the end of the upload (a final lone CR).
    pub fn finish(&mut self) -> &'static [u8] {
        if std::mem::take(&mut self.pending_cr) {
            b"\r"
        } else {
            b""
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::tftp::packet::to_netascii;

    #[test]
    fn lockstep_upload_acknowledges_every_block_and_ends_on_a_short_one() {
        let mut r = Receive::new(512, 1, 1 << 20);
        assert_eq!(
            r.on_data(1, 512),
            Got::Store {
                ack: Some(1),
                last: false
            }
        );
        // The sender did not get ACK 1 and sent block 1 again.
        assert_eq!(r.on_data(1, 512), Got::Ack(1));
        assert_eq!(r.on_data(1, 512), Got::Ignore);
        assert_eq!(
            r.on_data(2, 100),
            Got::Store {
                ack: Some(2),
                last: true
            }
        );
        assert!(r.is_done());
        assert_eq!(r.bytes(), 612);
        // The final ACK was lost: every resend of the last block is answered.
        assert_eq!(r.on_data(2, 100), Got::Ack(2));
        assert_eq!(r.on_data(2, 100), Got::Ack(2));
        assert_eq!(r.on_data(3, 0), Got::Ignore);
    }

    #[test]
    fn exact_multiple_ends_with_an_empty_block() {
        let mut r = Receive::new(512, 1, 1 << 20);
        assert!(matches!(r.on_data(1, 512), Got::Store { last: false, .. }));
        assert_eq!(
            r.on_data(2, 0),
            Got::Store {
                ack: Some(2),
                last: true
            }
        );
        assert_eq!(r.bytes(), 512);
    }

    #[test]
    fn windows_acknowledge_every_window_and_recover_from_a_gap() {
        let mut r = Receive::new(512, 4, 1 << 20);
        for b in 1..=3 {
            assert_eq!(
                r.on_data(b, 512),
                Got::Store {
                    ack: None,
                    last: false
                }
            );
        }
        assert_eq!(
            r.on_data(4, 512),
            Got::Store {
                ack: Some(4),
                last: false
            }
        );
        assert!(matches!(r.on_data(5, 512), Got::Store { ack: None, .. }));
        // Block 6 is lost: 7 and 8 bring one acknowledgement of 5, not two.
        assert_eq!(r.on_data(7, 512), Got::Ack(5));
        assert_eq!(r.on_data(8, 512), Got::Ignore);
        // The sender starts again at 6; the window counts from there.
        for b in 6..=8 {
            assert!(matches!(r.on_data(b, 512), Got::Store { ack: None, .. }));
        }
        assert_eq!(
            r.on_data(9, 512),
            Got::Store {
                ack: Some(9),
                last: false
            }
        );
        assert_eq!(
            r.on_data(10, 1),
            Got::Store {
                ack: Some(10),
                last: true
            }
        );
    }

    #[test]
    fn timeouts_acknowledge_the_last_block_again_until_retries_run_out() {
        let mut r = Receive::new(512, 8, 1 << 20);
        assert_eq!(r.on_timeout(2), Some(0));
        assert!(matches!(r.on_data(1, 512), Got::Store { ack: None, .. }));
        assert_eq!(r.on_timeout(2), Some(1));
        assert_eq!(r.on_timeout(2), Some(1));
        assert_eq!(r.on_timeout(2), None);
    }

    #[test]
    fn block_numbers_roll_over_to_zero() {
        let mut r = Receive::new(8, 1, u64::MAX);
        for i in 1..=70_000u64 {
            let got = r.on_data(wire_number(i), 8);
            assert_eq!(
                got,
                Got::Store {
                    ack: Some(wire_number(i)),
                    last: false
                },
                "block {i}"
            );
        }
        assert_eq!(r.last_stored(), wire_number(70_000));
        assert!(matches!(
            r.on_data(wire_number(70_001), 0),
            Got::Store { last: true, .. }
        ));
        assert_eq!(r.bytes(), 70_000 * 8);
    }

    #[test]
    fn the_size_limit_stops_the_upload_and_oversized_blocks_are_not_stored() {
        let mut r = Receive::new(512, 1, 1000);
        assert!(matches!(r.on_data(1, 512), Got::Store { .. }));
        assert_eq!(r.on_data(2, 600), Got::Ignore);
        assert_eq!(r.on_data(2, 512), Got::TooBig);
        assert_eq!(r.bytes(), 512);
        let mut exact = Receive::new(512, 1, 1000);
        assert!(matches!(exact.on_data(1, 512), Got::Store { .. }));
        assert!(matches!(
            exact.on_data(2, 488),
            Got::Store { last: true, .. }
        ));
    }

    #[test]
    fn netascii_decodes_across_block_boundaries() {
        let text = b"line one\nline two\r\ncarriage\rreturn\n\r".to_vec();
        let wire = to_netascii(&text);
        for split in 0..wire.len() {
            let mut d = NetasciiDecoder::default();
            let (mut got, mut part) = (Vec::new(), Vec::new());
            d.feed(&wire[..split], &mut part);
            got.extend_from_slice(&part);
            d.feed(&wire[split..], &mut part);
            got.extend_from_slice(&part);
            got.extend_from_slice(d.finish());
            assert_eq!(got, text, "split at {split}");
        }
        // A bare CR followed by a letter (not netascii) is kept.
        let mut d = NetasciiDecoder::default();
        let mut out = Vec::new();
        d.feed(b"a\rb", &mut out);
        assert_eq!(out, b"a\rb");
    }
}
