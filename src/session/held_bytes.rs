//! Bytes read from the publisher that may not go to the origin yet, in order.
//!
//! The relay forwards each read as soon as the demuxer has parsed it, except from the
//! first byte of a message that must be understood before the origin sees any of it
//! (a command still incomplete, see `ChunkReader::held_from`). Those bytes, and every
//! byte read after them, wait here until the release point moves past them. Reads are
//! kept as the `Bytes` they arrived in: releasing splits at most one of them, so the
//! common case (nothing held) forwards the read itself, without a copy.

use bytes::Bytes;
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub(super) struct HeldBytes {
    reads: VecDeque<Bytes>,
    /// Stream offset of the first held byte.
    start: u64,
}

impl HeldBytes {
    /// Held bytes start at stream offset `start` (the first byte the publisher sends).
    pub fn new(start: u64) -> Self {
        HeldBytes {
            reads: VecDeque::new(),
            start,
        }
    }

    /// Appends the next read.
    pub fn push(&mut self, read: Bytes) {
        self.reads.push_back(read);
    }

    /// Takes every held byte before stream offset `limit`, in order.
    pub fn release_before(&mut self, limit: u64) -> Vec<Bytes> {
        let mut released = Vec::new();
        while self.start < limit {
            let Some(front) = self.reads.front_mut() else {
                break;
            };
            let wanted = usize::try_from(limit - self.start).unwrap_or(usize::MAX);
            let piece = if wanted >= front.len() {
                self.reads.pop_front().unwrap_or_default()
            } else {
                front.split_to(wanted)
            };
            self.start += piece.len() as u64;
            released.push(piece);
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(pieces: &[Bytes]) -> Vec<u8> {
        pieces.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn an_unheld_read_is_released_whole() {
        let mut held = HeldBytes::new(10);
        let read = Bytes::from_static(b"abcdef");
        held.push(read.clone());
        let released = held.release_before(16);
        assert_eq!(released, [read]);
        assert!(held.release_before(u64::MAX).is_empty());
    }

    #[test]
    fn release_stops_at_the_limit_and_resumes_in_order() {
        let mut held = HeldBytes::new(0);
        held.push(Bytes::from_static(b"0123"));
        held.push(Bytes::from_static(b"4567"));
        assert_eq!(concat(&held.release_before(2)), b"01");
        assert!(held.release_before(2).is_empty());
        held.push(Bytes::from_static(b"89"));
        assert_eq!(concat(&held.release_before(7)), b"23456");
        assert_eq!(concat(&held.release_before(100)), b"789");
        assert!(held.release_before(u64::MAX).is_empty());
    }
}
