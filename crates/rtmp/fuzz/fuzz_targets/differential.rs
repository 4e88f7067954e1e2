//! Differential fuzzing of the chunk layer against nginx-rtmp: the input is decoded into
//! a publisher's moves — messages started on several chunk streams with a chosen fmt
//! and timestamp (extended or not), their chunks interleaved in any order, arbitrary
//! bytes in fmt 3 extended-timestamp slots, chunk size changes (also mid-message and
//! lowering ones), aborts, aggregate messages with parts of any type, and now and then
//! raw bytes — written with the crafting encoder
//! (`encode::ChunkCrafter`). The bytes are read by `encode::nginx::read`, the reference
//! model of nginx-rtmp's reader, and by livegate's `ChunkReader`, fed in random splits.
//!
//! The property: livegate never reports a message nginx-rtmp does not read the same way.
//! When livegate accepts the bytes, its messages (type, stream id, timestamp, payload,
//! offset) are exactly nginx-rtmp's; when it refuses, the messages it reported before are
//! nginx-rtmp's first ones, and the refusal is where livegate must or may refuse (an
//! ambiguity of the model, one of its optional points, or a configured cap). Where the
//! model says livegate must refuse, accepting is a finding. An aggregate message with a
//! part nginx-rtmp acts on (control, command, data, another aggregate) must be refused by
//! livegate's demuxer, the layer above the chunk reader.
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use livegate_rtmp::chunk::{ChunkReader, Message};
use livegate_rtmp::demux::HANDSHAKE_LEN;
use livegate_rtmp::encode::nginx::{self, Ambiguity, NginxMessage, Reading, Stop};
use livegate_rtmp::encode::{
    self, AggregatePart, CSID_CONTROL, ChunkCrafter, EXTENDED_TIMESTAMP_MARK, MessageHeader,
    TYPE_ABORT, TYPE_AGGREGATE,
};
use livegate_rtmp::{DemuxError, DemuxLimits, Demuxer};

/// A command cap small enough to be reached, and a media message cap equal to
/// nginx-rtmp's `max_message` so both stop at the same lengths. The chunk size cap is
/// chosen per input: the default (what deployments run) or one below what the moves
/// produce.
const LIMITS: DemuxLimits = DemuxLimits {
    max_message_bytes: nginx::MAX_MESSAGE,
    max_command_bytes: 512,
    max_chunk_size: 4096,
    max_chunk_streams: 64,
    max_buffered_bytes: 64 * 1024 * 1024,
};

/// Chunk streams the publisher uses; 40 is above nginx-rtmp's `max_streams`.
const CSIDS: [u32; 7] = [3, 4, 5, 6, 7, 8, 40];
/// Message types: audio, video, AMF0 data and command, aggregate, user control.
const TYPES: [u8; 6] = [8, 9, 18, 20, 22, 4];
const MAX_MOVES: usize = 64;
const MAX_PAYLOAD: usize = 700;

/// Decodes the publisher's moves from the fuzzer's bytes and writes them.
fn craft(u: &mut Unstructured<'_>) -> Vec<u8> {
    let mut crafter = ChunkCrafter::default();
    let mut out = Vec::new();
    // Per chunk stream, the length of its last message (what fmt 2/3 headers reuse).
    let mut lengths = [0usize; CSIDS.len()];
    for _ in 0..MAX_MOVES {
        if u.is_empty() {
            break;
        }
        let pick = |u: &mut Unstructured<'_>, n: usize| u.choose_index(n).unwrap_or(0);
        match u.int_in_range(0..=15u8).unwrap_or(0) {
            // Start a message.
            0..=5 => {
                let index = pick(u, CSIDS.len());
                let fmt = [0, 0, 1, 2, 3][pick(u, 5)];
                let timestamp = if u.ratio(1, 3).unwrap_or(false) {
                    EXTENDED_TIMESTAMP_MARK + u.int_in_range(0..=0x0100_0000).unwrap_or(0)
                } else {
                    u.int_in_range(0..=2000).unwrap_or(0)
                };
                let header = MessageHeader {
                    timestamp,
                    type_id: TYPES[pick(u, TYPES.len())],
                    stream_id: u.int_in_range(0..=2).unwrap_or(1),
                };
                // fmt 2/3 reuse the last length; now and then the publisher lies.
                let length = if fmt >= 2 && !u.ratio(1, 8).unwrap_or(false) {
                    lengths[index]
                } else {
                    u.int_in_range(0..=MAX_PAYLOAD).unwrap_or(0)
                };
                let structured = fmt <= 1 && header.type_id == TYPE_AGGREGATE;
                let payload = if structured && u.ratio(1, 2).unwrap_or(false) {
                    aggregate_body(u)
                } else {
                    (0..length)
                        .map(|i| u.arbitrary::<u8>().unwrap_or(i as u8))
                        .collect()
                };
                lengths[index] = payload.len();
                crafter.start(&mut out, fmt, CSIDS[index], &header, &payload);
            }
            // The next chunk of a message in progress, its slot repeated or not.
            6..=10 => {
                let index = pick(u, CSIDS.len());
                let slot = if u.ratio(1, 4).unwrap_or(false) {
                    u.arbitrary::<[u8; 4]>().ok()
                } else {
                    None
                };
                crafter.next_chunk(&mut out, CSIDS[index], slot);
            }
            // Finish every message in progress, in the order of the chunk stream list.
            11 => {
                for csid in CSIDS {
                    while crafter.next_chunk(&mut out, csid, None) {}
                }
            }
            // Set Chunk Size: mostly raising, sometimes anything.
            12 | 13 => {
                let size = if u.ratio(3, 4).unwrap_or(true) {
                    let current = crafter.chunk_size() as u32;
                    current + u.int_in_range(0..=1024).unwrap_or(0)
                } else {
                    u.arbitrary::<u32>().unwrap_or(0) >> u.int_in_range(0..=31).unwrap_or(0)
                };
                crafter.set_chunk_size(&mut out, size);
            }
            // Abort of a chunk stream.
            14 => {
                let header = MessageHeader {
                    timestamp: 0,
                    type_id: TYPE_ABORT,
                    stream_id: 0,
                };
                let aborted = CSIDS[pick(u, CSIDS.len())];
                crafter.message(
                    &mut out,
                    0,
                    CSID_CONTROL,
                    &header,
                    &aborted.to_be_bytes(),
                    None,
                );
            }
            // A few raw bytes.
            _ => {
                let n = u.int_in_range(1..=8).unwrap_or(1);
                out.extend_from_slice(u.bytes(n).unwrap_or_default());
            }
        }
    }
    out
}

/// An aggregate body of a few well-formed parts of any type (now and then cut short).
fn aggregate_body(u: &mut Unstructured<'_>) -> Vec<u8> {
    let mut parts = Vec::new();
    for _ in 0..u.int_in_range(1..=3).unwrap_or(1) {
        let type_id = u.int_in_range(0..=23).unwrap_or(9);
        let timestamp = u.int_in_range(0..=100).unwrap_or(0);
        let size = u.int_in_range(0..=64).unwrap_or(0);
        let body = u.bytes(size).unwrap_or_default().to_vec();
        parts.push((type_id, timestamp, body));
    }
    let parts: Vec<AggregatePart<'_>> = parts
        .iter()
        .map(|(type_id, timestamp, body)| AggregatePart {
            type_id: *type_id,
            timestamp: *timestamp,
            body,
        })
        .collect();
    let mut body = encode::aggregate(&parts);
    if u.ratio(1, 8).unwrap_or(false) {
        let keep = u.choose_index(body.len()).unwrap_or(0);
        body.truncate(keep);
    }
    body
}

/// livegate's reader on `data`, fed in pieces whose lengths come from the fuzzer.
fn livegate_reading(
    data: &[u8],
    limits: DemuxLimits,
    u: &mut Unstructured<'_>,
) -> (Vec<Message>, Result<(), DemuxError>) {
    let mut reader = ChunkReader::new(limits, 0);
    let mut messages = Vec::new();
    let mut position = 0;
    while position < data.len() {
        let step = u.int_in_range(1..=300).unwrap_or(data.len());
        let end = (position + step).min(data.len());
        if let Err(error) = reader.feed(&data[position..end], &mut messages) {
            return (messages, Err(error));
        }
        position = end;
    }
    (messages, Ok(()))
}

fn same(livegate: &Message, nginx: &NginxMessage) -> bool {
    livegate.type_id == nginx.type_id
        && livegate.stream_id == nginx.stream_id
        && livegate.timestamp == nginx.timestamp
        && livegate.payload[..] == nginx.payload[..]
        && livegate.start_offset == nginx.start_offset as u64
}

/// Refusals for a configured cap rather than an ambiguity: always allowed.
fn is_cap(error: &DemuxError) -> bool {
    matches!(
        error,
        DemuxError::MessageTooLarge { .. }
            | DemuxError::BufferedBytesExceeded { .. }
            | DemuxError::TooManyChunkStreams { .. }
            | DemuxError::ChunkSizeTooLarge { .. }
    )
}

/// Whether livegate's demuxer (the relay's parser, above the chunk reader) refuses `data`.
fn demuxer_refuses(data: &[u8], limits: DemuxLimits) -> bool {
    let mut session = vec![0u8; HANDSHAKE_LEN as usize];
    session[0] = 3;
    session.extend_from_slice(data);
    Demuxer::new(limits).feed(&session, &mut Vec::new()).is_err()
}

fn check(
    data: &[u8],
    limits: DemuxLimits,
    reading: &Reading,
    livegate: &[Message],
    result: &Result<(), DemuxError>,
) {
    let expected = &reading.messages;
    let shown = |what: &str| {
        format!(
            "{what}\nbytes ({}): {data:02x?}\nnginx-rtmp: {reading:#?}\nlivegate ({result:?}): {livegate:#?}",
            data.len()
        )
    };
    let agreed = livegate
        .iter()
        .zip(expected)
        .take_while(|(l, n)| same(l, n))
        .count();
    if let Some(Stop::Ambiguous {
        what: Ambiguity::NonMediaInAggregate,
        ..
    }) = reading.stop
    {
        // Refused above the chunk layer: the chunk reader goes on, the demuxer stops.
        assert_eq!(
            agreed,
            livegate.len().min(expected.len()),
            "{}",
            shown("livegate read other messages")
        );
        assert!(
            demuxer_refuses(data, limits),
            "{}",
            shown("livegate's demuxer accepted an aggregate nginx-rtmp acts on")
        );
        return;
    }
    let closed = matches!(reading.stop, Some(Stop::Closed { .. }));
    let ambiguous = matches!(reading.stop, Some(Stop::Ambiguous { .. }));
    // Once nginx-rtmp closed the session nothing more reaches it: what livegate reads
    // beyond that point does not matter.
    let beyond_close = if closed {
        livegate.len().saturating_sub(expected.len())
    } else {
        0
    };
    assert_eq!(
        agreed + beyond_close,
        livegate.len(),
        "{}",
        shown("livegate read other messages")
    );
    match result {
        Ok(()) => {
            assert!(
                !ambiguous,
                "{}",
                shown("livegate accepted bytes it must refuse")
            );
            assert_eq!(
                agreed,
                expected.len(),
                "{}",
                shown("livegate missed messages")
            );
        }
        Err(error) => {
            let at_stop = (ambiguous || closed) && agreed == expected.len();
            let at_optional = reading.optional.iter().any(|&(_, done, _)| done == agreed);
            assert!(
                is_cap(error) || at_stop || at_optional,
                "{}",
                shown("livegate refused bytes nginx-rtmp reads unambiguously")
            );
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let mut u = Unstructured::new(input);
    let limits = if u.ratio(1, 2).unwrap_or(false) {
        LIMITS
    } else {
        DemuxLimits {
            max_chunk_size: DemuxLimits::default().max_chunk_size,
            ..LIMITS
        }
    };
    let data = craft(&mut u);
    let reading = nginx::read(&data, limits.max_chunk_size);
    let (messages, result) = livegate_reading(&data, limits, &mut u);
    check(&data, limits, &reading, &messages, &result);
});
