//! Fuzzes the MPEG-TS demuxer: arbitrary packets after (optionally) a valid PAT and PMT
//! — whose CRCs a fuzzer would rarely find — fed in arbitrary splits, with small limits so
//! the caps are hit. Checks that no input panics, that the split does not change the
//! result, and that a dead demuxer stays dead.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_mpegts::mux::Writer;
use livegate_mpegts::{Demuxer, Limits};

const LIMITS: Limits = Limits {
    max_pes_bytes: 4096,
    max_pids: 8,
    max_programs: 2,
    max_bytes_before_pmt: 16 * 188,
};

fuzz_target!(|input: &[u8]| {
    // Byte 0 chooses the tables put in front, bytes 1–2 the split pattern.
    let (tables, split_seed, data) = match input {
        [a, b, c, rest @ ..] => (*a, u16::from_le_bytes([*b, *c]), rest),
        _ => return,
    };
    let mut writer = Writer::default();
    match tables % 4 {
        // H.264 video and AAC audio.
        1 => writer.tables(0x1000, 0, &[(0x1B, 0x100, &[]), (0x0F, 0x101, &[])]),
        // HEVC, and a private stream that is sniffed.
        2 => writer.tables(0x1000, 0, &[(0x24, 0x100, &[]), (0x06, 0x101, &[])]),
        // HEVC by registration descriptor.
        3 => writer.tables(0x1000, 0, &[(0x06, 0x100, &[0x05, 4, b'H', b'E', b'V', b'C'])]),
        _ => {}
    }
    let mut stream = writer.out;
    stream.extend_from_slice(data);

    let mut whole_events = Vec::new();
    let whole = Demuxer::new(LIMITS).feed(&stream, &mut whole_events);

    let mut split_events = Vec::new();
    let mut demuxer = Demuxer::new(LIMITS);
    let mut split = Ok(());
    let mut position = 0;
    let mut step = usize::from(split_seed % 401) + 1;
    while position < stream.len() && split.is_ok() {
        let end = (position + step).min(stream.len());
        split = demuxer.feed(&stream[position..end], &mut split_events);
        position = end;
        step = (step * 7 + usize::from(split_seed >> 8)) % 409 + 1;
    }
    assert_eq!(whole, split);
    assert_eq!(whole_events, split_events);
    if let Err(error) = whole {
        assert_eq!(demuxer.feed(&[0x47], &mut split_events), Err(error));
    }
});
