//! How one send call carries the front of the queue (`Plan`): which queued
//! datagrams go as one message the kernel cuts into blocks (UDP GSO). No
//! I/O.

use std::net::SocketAddrV4;

use bytes::Bytes;

use super::BATCH;

/// One datagram to send.
pub(super) struct Out {
    pub(super) to: SocketAddrV4,
    /// The DATA header (empty for an OACK or ERROR, whose bytes are all in
    /// `body`).
    pub(super) head: [u8; 4],
    pub(super) head_len: usize,
    pub(super) body: Bytes,
}

impl Out {
    pub(super) fn whole(to: SocketAddrV4, body: Bytes) -> Out {
        Out {
            to,
            head: [0; 4],
            head_len: 0,
            body,
        }
    }
}

/// The most datagrams the kernel cuts one message into (UDP_MAX_SEGMENTS).
pub(super) const MAX_SEGMENTS: usize = 128;
/// The most bytes one UDP message carries.
pub(super) const MAX_MESSAGE: usize = 65_507;

/// How one send call carries the front of the queue: each message is a run
/// of queued datagrams; a run of more than one (consecutive blocks to one
/// client, all of one size but the last) goes as one message that the
/// kernel cuts into datagrams of `segment` bytes (UDP GSO), so a window
/// crosses the stack once instead of once per block.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) messages: Vec<std::ops::Range<usize>>,
    pub(super) segment: Option<usize>,
}

impl Plan {
    /// Plans at most `BATCH` messages from `out`; runs only when
    /// `segment_max` (the largest datagram the interface carries whole; 0
    /// when the kernel cannot cut messages) allows.
    pub(super) fn new(out: &[Out], segment_max: usize) -> Plan {
        let mut plan = Plan {
            messages: Vec::new(),
            segment: None,
        };
        // The longest lone datagram so far: one cut into segments shorter
        // than itself would arrive in pieces.
        let mut longest_single = 0;
        let mut i = 0;
        while i < out.len() && plan.messages.len() < BATCH {
            let first = &out[i];
            let size = first.len();
            let mut j = i + 1;
            if first.head_len == 4 && size <= segment_max {
                let most = MAX_SEGMENTS.min(MAX_MESSAGE / size.max(1));
                while j < out.len()
                    && j - i < most
                    && out[j].to == first.to
                    && out[j].head_len == 4
                    && out[j - 1].len() == size
                    && out[j].len() <= size
                {
                    j += 1;
                }
            }
            if j - i > 1 {
                match plan.segment {
                    None if longest_single <= size => plan.segment = Some(size),
                    Some(s) if s == size => {}
                    // Another segment size: the next call.
                    _ => break,
                }
            } else {
                if plan.segment.is_some_and(|s| size > s) {
                    break;
                }
                longest_single = longest_single.max(size);
            }
            plan.messages.push(i..j);
            i = j;
        }
        plan
    }

    /// How many queued datagrams the first `sent` messages carry.
    pub(super) fn carried(&self, sent: usize) -> usize {
        self.messages[..sent].last().map_or(0, |r| r.end)
    }
}

impl Out {
    pub(super) fn len(&self) -> usize {
        self.head_len + self.body.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// A queued block of `len` bytes of data to port `port`.
    fn block(port: u16, len: usize) -> Out {
        Out {
            to: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            head: [0, 3, 0, 1],
            head_len: 4,
            body: Bytes::from(vec![0; len]),
        }
    }

    fn whole(port: u16, len: usize) -> Out {
        Out::whole(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            Bytes::from(vec![0; len]),
        )
    }

    /// Each message's first and last-plus-one queued datagram.
    fn bounds(plan: &Plan) -> Vec<(usize, usize)> {
        plan.messages.iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn a_window_goes_as_one_message_cut_into_its_blocks() {
        // Two clients' windows, each ending with a short last block, and an
        // OACK between them: three messages, cut at 516 bytes.
        let mut out: Vec<Out> = (0..3).map(|_| block(1, 512)).collect();
        out.push(block(1, 100));
        out.push(whole(3, 30));
        out.extend((0..4).map(|_| block(2, 512)));
        let plan = Plan::new(&out, 1472);
        assert_eq!(bounds(&plan), [(0, 4), (4, 5), (5, 9)]);
        assert_eq!(plan.segment, Some(516));
        assert_eq!(plan.carried(2), 5);
        // A short block ends a run: the next block to that client starts
        // a new message.
        let out = vec![block(1, 512), block(1, 10), block(1, 512), block(1, 512)];
        assert_eq!(bounds(&Plan::new(&out, 1472)), [(0, 2), (2, 4)]);
    }

    #[test]
    fn messages_cut_at_other_sizes_wait_for_the_next_call() {
        // Another client's windows of 1468-byte blocks need another
        // segment size; so does a lone datagram longer than the segment.
        let out = vec![block(1, 512), block(1, 512), block(2, 1468), block(2, 1468)];
        let plan = Plan::new(&out, 1472);
        assert_eq!((bounds(&plan), plan.segment), (vec![(0, 2)], Some(516)));
        let out = vec![block(1, 512), block(1, 512), whole(2, 600)];
        assert_eq!(bounds(&Plan::new(&out, 1472)), [(0, 2)]);
        // A lone datagram longer than a later window's blocks goes first,
        // on its own call.
        let out = vec![whole(2, 600), block(1, 512), block(1, 512)];
        let plan = Plan::new(&out, 1472);
        assert_eq!((bounds(&plan), plan.segment), (vec![(0, 1)], None));
    }

    #[test]
    fn blocks_too_long_for_the_interface_or_many_go_one_by_one_or_capped() {
        // Blocks longer than the interface carries whole, or no cutting.
        let out = vec![block(1, 8192), block(1, 8192)];
        let plan = Plan::new(&out, 1472);
        assert_eq!((bounds(&plan), plan.segment), (vec![(0, 1), (1, 2)], None));
        let out = vec![block(1, 512), block(1, 512)];
        assert_eq!(bounds(&Plan::new(&out, 0)), [(0, 1), (1, 2)]);
        // One message holds at most 64 KiB: 44 blocks of 1472 bytes.
        let out: Vec<Out> = (0..64).map(|_| block(1, 1468)).collect();
        assert_eq!(bounds(&Plan::new(&out, 1472)), [(0, 44), (44, 64)]);
        // At most BATCH messages per call.
        let out: Vec<Out> = (0..100).map(|p| block(p, 512)).collect();
        assert_eq!(Plan::new(&out, 1472).messages.len(), BATCH);
    }
}
