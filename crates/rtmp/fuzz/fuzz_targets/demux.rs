//! Fuzzes the RTMP demuxer: arbitrary bytes after a valid C0, fed in arbitrary splits,
//! with small limits so the caps are hit. Checks that no input panics, that the split
//! does not change the result, and that a dead demuxer stays dead. Half the inputs run
//! the split demuxer holding whole messages (gate mode): no video frame may then start
//! before what the relay would already have released.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_rtmp::{DemuxEvent, DemuxLimits, Demuxer};

const LIMITS: DemuxLimits = DemuxLimits {
    max_message_bytes: 4096,
    max_command_bytes: 1024,
    max_chunk_size: 1024,
    max_chunk_streams: 8,
    max_buffered_bytes: 8192,
};

/// Handshake C0+C1+C2: the fuzzer's bytes go straight to the chunk layer.
const HANDSHAKE: [u8; 3073] = {
    let mut h = [0u8; 3073];
    h[0] = 3;
    h
};

fuzz_target!(|input: &[u8]| {
    // The first two bytes choose the split pattern; the rest is the chunk stream.
    let (split_seed, data) = match input {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => return,
    };
    let mut stream = HANDSHAKE.to_vec();
    stream.extend_from_slice(data);

    let mut whole_events = Vec::new();
    let whole = Demuxer::new(LIMITS).feed(&stream, &mut whole_events);

    let mut split_events = Vec::new();
    let mut demuxer = Demuxer::new(LIMITS);
    let gated = split_seed & 1 == 1;
    if gated {
        demuxer.hold_whole_messages();
    }
    // Stream offset before which the relay has released every byte.
    let mut released = 0u64;
    let mut split = Ok(());
    let mut position = 0;
    let mut step = usize::from(split_seed % 257) + 1;
    while position < stream.len() && split.is_ok() {
        let end = (position + step).min(stream.len());
        let seen = split_events.len();
        split = demuxer.feed(&stream[position..end], &mut split_events);
        if gated {
            for event in &split_events[seen..] {
                if let DemuxEvent::VideoFrame(frame) = event {
                    assert!(frame.start_offset >= released, "frame bytes already released");
                }
            }
        }
        position = end;
        released = demuxer.held_from().unwrap_or(position as u64).max(released);
        step = (step * 7 + usize::from(split_seed >> 8)) % 263 + 1;
    }
    assert_eq!(whole, split);
    assert_eq!(whole_events, split_events);
    if let Err(error) = whole {
        assert_eq!(demuxer.feed(&[3], &mut split_events), Err(error));
    }
});
