//! The demuxer's edge cases, on streams built packet by packet with [`crate::mux`]; each
//! stream is also fed one byte at a time and must give the same result.

use super::*;
use crate::mux::{self, Writer};

const PMT_PID: u16 = 0x1000;

/// A PMT's `(stream_type, pid, descriptors)` entries.
type PmtStreams = Vec<(u8, u16, &'static [u8])>;
const VIDEO: u16 = 0x100;
const AUDIO: u16 = 0x101;

/// An H.264 IDR access unit of about `size` bytes: AUD, SPS, PPS, IDR slice.
fn avc_idr(size: usize) -> Vec<u8> {
    let mut unit = vec![
        0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x64, 0, 0x1F, 0, 0, 0, 1, 0x68, 0xEE,
    ];
    unit.extend([0, 0, 0, 1, 0x65]);
    unit.resize(size.max(unit.len()), 0x88);
    unit
}

/// An H.264 non-IDR access unit.
fn avc_p(fill: u8) -> Vec<u8> {
    vec![0, 0, 0, 1, 0x09, 0x30, 0, 0, 0, 1, 0x41, fill, fill, fill]
}

fn video_pes(pts: u64, unit: &[u8]) -> Vec<u8> {
    mux::pes(0xE0, Some(pts), Some(pts), unit, false)
}

/// Demuxes `data` whole and one byte at a time; both must agree.
fn demux_with(limits: Limits, data: &[u8]) -> (Result<(), DemuxError>, Vec<DemuxEvent>, Stats) {
    let mut demuxer = Demuxer::new(limits);
    let mut events = Vec::new();
    let whole = demuxer.feed(data, &mut events);
    let stats = demuxer.stats();
    let mut bytewise = Demuxer::new(limits);
    let mut bytewise_events = Vec::new();
    let by_byte = data
        .iter()
        .try_for_each(|byte| bytewise.feed(std::slice::from_ref(byte), &mut bytewise_events));
    assert_eq!(whole, by_byte, "whole vs byte at a time");
    assert_eq!(events, bytewise_events, "whole vs byte at a time");
    if whole.is_ok() {
        assert_eq!(stats, bytewise.stats());
    }
    (whole, events, stats)
}

fn demux(data: &[u8]) -> (Vec<DemuxEvent>, Stats) {
    let (result, events, stats) = demux_with(Limits::default(), data);
    result.expect("the stream demuxes");
    (events, stats)
}

fn units(events: &[DemuxEvent]) -> Vec<&AccessUnit> {
    events
        .iter()
        .filter_map(|event| match event {
            DemuxEvent::AccessUnit(unit) => Some(unit),
            DemuxEvent::UnsupportedVideo { .. } => None,
        })
        .collect()
}

fn unsupported(events: &[DemuxEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|event| match event {
            DemuxEvent::UnsupportedVideo { description } => Some(description.as_str()),
            DemuxEvent::AccessUnit(_) => None,
        })
        .collect()
}

fn avc_stream() -> Writer {
    let mut writer = Writer::default();
    writer.tables(PMT_PID, 0, &[(0x1B, VIDEO, &[]), (0x0F, AUDIO, &[])]);
    writer
}

#[test]
fn pes_spanning_many_packets_with_adaptation_only_packets_between() {
    let mut writer = avc_stream();
    let idr = avc_idr(20_000);
    let start = writer.out.len() as u64;
    // The IDR over ~110 packets, a PCR-style adaptation-only packet every 10th, audio
    // between them.
    let pes = video_pes(900_000, &idr);
    let mut rest = &pes[..];
    let mut first = true;
    let mut count = 0;
    while !rest.is_empty() {
        let taken = writer.packet(VIDEO, first, first, rest);
        rest = &rest[taken..];
        first = false;
        count += 1;
        if count % 10 == 0 {
            writer.adaptation_only(VIDEO, false);
            writer.unit(
                AUDIO,
                &mux::pes(0xC0, Some(1), None, &[0xFF, 0xF1, 0, 0], true),
                false,
            );
        }
    }
    writer.unit(VIDEO, &video_pes(903_600, &avc_p(1)), false);
    writer.unit(VIDEO, &video_pes(907_200, &avc_p(2)), false);
    let (events, stats) = demux(&writer.out);
    let units = units(&events);
    assert_eq!(units.len(), 2, "the last unit waits for the next one");
    assert_eq!(units[0].data, idr);
    assert!(units[0].keyframe && units[0].random_access_indicator);
    assert_eq!((units[0].pts_ms, units[0].dts_ms), (10_000, 10_000));
    assert_eq!(units[0].start_offset, start);
    assert_eq!(units[1].data, avc_p(1));
    assert!(!units[1].keyframe);
    assert_eq!(units[1].pts_ms, 10_040);
    assert_eq!(
        stats.continuity_errors, 0,
        "adaptation-only packets keep the counter"
    );
    assert!(
        unsupported(&events).is_empty(),
        "AAC does not look like video"
    );
}

#[test]
fn continuity_errors_are_counted_and_the_pes_goes_on() {
    let mut writer = avc_stream();
    let idr = avc_idr(1000);
    let pes = video_pes(0, &idr);
    let taken = writer.packet(VIDEO, true, true, &pes);
    // A lost packet: the next one skips a counter value. Its bytes still join the
    // unit, as FFmpeg appends them.
    writer.lose_one(VIDEO);
    let mut rest = &pes[taken..];
    let mut last_chunk = &[][..];
    while !rest.is_empty() {
        let taken = writer.packet(VIDEO, false, false, rest);
        last_chunk = &rest[..taken];
        rest = &rest[taken..];
    }
    // A duplicated packet (same counter twice) is also an error, and also appended.
    let last = writer.out[writer.out.len() - 188..].to_vec();
    writer.out.extend(&last);
    writer.unit(VIDEO, &video_pes(3600, &avc_p(1)), false);
    writer.unit(VIDEO, &video_pes(7200, &avc_p(2)), false);
    let (events, stats) = demux(&writer.out);
    let found = units(&events);
    assert_eq!(stats.continuity_errors, 2);
    assert_eq!(found.len(), 2);
    let mut expected = idr.clone();
    expected.extend_from_slice(last_chunk);
    assert_eq!(found[0].data, expected);
    assert!(found[0].keyframe);

    // A discontinuity indicator makes any counter valid.
    let mut writer = avc_stream();
    writer.unit(VIDEO, &video_pes(0, &avc_p(1)), false);
    let mut packet = [0xFFu8; 188];
    // Counter 9 where 1 is due, with the discontinuity indicator; the writer goes on
    // from 10.
    packet[..6].copy_from_slice(&[0x47, 0x41, 0x00, 0x39, 20, 0x80]);
    let pes = video_pes(3600, &avc_p(2));
    packet[188 - pes.len()..].copy_from_slice(&pes);
    packet[4] = (188 - pes.len() - 5) as u8;
    writer.out.extend(packet);
    for _ in 0..9 {
        writer.lose_one(VIDEO);
    }
    writer.unit(VIDEO, &video_pes(7200, &avc_p(3)), false);
    let (events, stats) = demux(&writer.out);
    assert_eq!(stats.continuity_errors, 0);
    assert_eq!(units(&events).len(), 2);
}

#[test]
fn transport_errors_are_counted_not_fatal() {
    let mut writer = avc_stream();
    let at = writer.out.len();
    writer.unit(VIDEO, &video_pes(0, &avc_idr(100)), true);
    writer.out[at + 1] |= 0x80;
    writer.unit(VIDEO, &video_pes(3600, &avc_p(1)), false);
    let (events, stats) = demux(&writer.out);
    assert_eq!(stats.transport_errors, 1);
    assert!(units(&events)[0].keyframe);
}

#[test]
fn the_nal_units_decide_keyframes_not_the_random_access_indicator() {
    let mut writer = avc_stream();
    // A P-frame flagged as a random-access point, an IDR flagged as nothing.
    writer.unit(VIDEO, &video_pes(0, &avc_p(1)), true);
    writer.unit(VIDEO, &video_pes(3600, &avc_idr(300)), false);
    writer.unit(VIDEO, &video_pes(7200, &avc_p(2)), false);
    let (events, stats) = demux(&writer.out);
    let flags: Vec<_> = units(&events)
        .iter()
        .map(|unit| (unit.keyframe, unit.random_access_indicator))
        .collect();
    assert_eq!(flags, [(false, true), (true, false)]);
    assert_eq!(stats.random_access_mismatches, 2);
}

#[test]
fn hevc_irap_and_the_hevc_registration_descriptor() {
    let cra = [0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1, 21 << 1, 1, 0xAA];
    let trail = [0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1, 1 << 1, 1, 0xBB];
    for (stream_type, descriptors) in [
        (0x24u8, &[][..]),
        (0x06, &[0x05, 4, b'H', b'E', b'V', b'C'][..]),
    ] {
        let mut writer = Writer::default();
        writer.tables(PMT_PID, 0, &[(stream_type, VIDEO, descriptors)]);
        for (index, unit) in [&cra, &trail, &trail].into_iter().enumerate() {
            writer.unit(VIDEO, &video_pes(3600 * index as u64, unit), index == 0);
        }
        let (events, _) = demux(&writer.out);
        let seen: Vec<_> = units(&events)
            .iter()
            .map(|unit| (unit.codec, unit.keyframe))
            .collect();
        assert_eq!(
            seen,
            [(VideoCodec::Hevc, true), (VideoCodec::Hevc, false)],
            "{stream_type:#x}"
        );
    }
}

#[test]
fn pmt_changes_mid_stream() {
    let mut writer = avc_stream();
    writer.unit(VIDEO, &video_pes(0, &avc_idr(100)), true);
    writer.unit(VIDEO, &video_pes(3600, &avc_p(1)), false);
    // The same PMT again (repeats are skipped), then version 1 moves video to another
    // PID: the unit in progress on the old PID is dropped.
    writer.tables(PMT_PID, 0, &[(0x1B, VIDEO, &[]), (0x0F, AUDIO, &[])]);
    writer.unit(VIDEO, &video_pes(7200, &avc_p(2)), false);
    writer.section(PMT_PID, &mux::pmt(1, 1, &[(0x1B, 0x102, &[])]));
    writer.unit(0x102, &video_pes(10_800, &avc_idr(100)), true);
    // Version 2: the same PID now carries HEVC.
    writer.section(PMT_PID, &mux::pmt(1, 2, &[(0x24, 0x102, &[])]));
    writer.unit(
        0x102,
        &video_pes(14_400, &[0, 0, 1, 19 << 1, 1, 0xCC]),
        true,
    );
    writer.unit(
        0x102,
        &video_pes(18_000, &[0, 0, 1, 1 << 1, 1, 0xDD]),
        false,
    );
    let (events, _) = demux(&writer.out);
    let seen: Vec<_> = units(&events)
        .iter()
        .map(|unit| (unit.pid, unit.codec, unit.keyframe, unit.pts_ms))
        .collect();
    assert_eq!(
        seen,
        [
            (VIDEO, VideoCodec::Avc, true, 0),
            (VIDEO, VideoCodec::Avc, false, 40),
            (0x102, VideoCodec::Hevc, true, 160),
        ]
    );
    assert!(unsupported(&events).is_empty());
}

#[test]
fn a_new_pat_replaces_the_programs() {
    let mut writer = avc_stream();
    writer.unit(VIDEO, &video_pes(0, &avc_idr(100)), true);
    // The new PAT points at another PMT PID, whose PMT lists HEVC on another PID.
    writer.section(0, &mux::pat(1, &[(2, 0x1100)]));
    writer.unit(VIDEO, &video_pes(3600, &avc_p(1)), false);
    writer.section(0x1100, &mux::pmt(2, 0, &[(0x24, 0x200, &[])]));
    writer.unit(0x200, &video_pes(7200, &[0, 0, 1, 20 << 1, 1]), true);
    writer.unit(0x200, &video_pes(10_800, &[0, 0, 1, 2, 1]), false);
    let (events, _) = demux(&writer.out);
    let pids: Vec<_> = units(&events).iter().map(|unit| unit.pid).collect();
    // The AVC unit open when the PAT changed belonged to a program no longer in force.
    assert_eq!(pids, [0x200]);
}

#[test]
fn a_missing_pmt_skips_video_then_refuses_the_stream() {
    let mut writer = Writer::default();
    writer.section(0, &mux::pat(0, &[(1, PMT_PID)]));
    writer.unit(VIDEO, &video_pes(0, &avc_idr(100)), true);
    writer.unit(VIDEO, &video_pes(3600, &avc_p(1)), false);
    let (events, _) = demux(&writer.out);
    assert!(events.is_empty(), "nothing is known of PID 0x100");
    let limits = Limits {
        max_bytes_before_pmt: 188 * 2,
        ..Limits::default()
    };
    let (result, events, _) = demux_with(limits, &writer.out);
    assert_eq!(result, Err(DemuxError::NoProgramMap { bytes: 376 }));
    assert!(events.is_empty());
    // The PMT arriving in time is enough.
    let mut writer = avc_stream();
    writer.out.extend(
        vec![0x47, 0x1F, 0xFF, 0x10]
            .into_iter()
            .chain([0xFF; 184])
            .collect::<Vec<_>>(),
    );
    let (result, _, _) = demux_with(limits, &writer.out);
    assert_eq!(result, Ok(()));
}

#[test]
fn truncated_packets_wait_for_the_rest() {
    let mut writer = avc_stream();
    writer.unit(VIDEO, &video_pes(0, &avc_idr(500)), true);
    writer.unit(VIDEO, &video_pes(3600, &avc_p(1)), false);
    let first_done = writer.out.len();
    writer.unit(VIDEO, &video_pes(7200, &avc_p(2)), false);
    assert_eq!(units(&demux(&writer.out).0).len(), 2);
    // Every truncation: a unit is reported only once the packet ending it is whole.
    for end in 0..=writer.out.len() {
        let mut demuxer = Demuxer::default();
        let mut events = Vec::new();
        demuxer
            .feed(&writer.out[..end], &mut events)
            .expect("a prefix demuxes");
        let expected = usize::from(end >= first_done) + usize::from(end == writer.out.len());
        assert_eq!(events.len(), expected, "prefix of {end}");
    }
}

#[test]
fn bad_crcs_are_ignored_until_ffmpeg_would_use_them() {
    let mut bad_pmt = mux::pmt(1, 0, &[(0x02, VIDEO, &[])]);
    let last = bad_pmt.len() - 1;
    bad_pmt[last] ^= 1;
    let mut writer = Writer::default();
    writer.section(0, &mux::pat(0, &[(1, PMT_PID)]));
    for _ in 0..10 {
        writer.section(PMT_PID, &bad_pmt);
    }
    let (events, stats) = demux(&writer.out);
    assert!(events.is_empty(), "the bad PMT's MPEG-2 video is not seen");
    assert_eq!(stats.crc_errors, 10);
    // FFmpeg would use the 11th.
    writer.section(PMT_PID, &bad_pmt);
    let (result, _, _) = demux_with(Limits::default(), &writer.out);
    let error = result.expect_err("11 bad sections in a row");
    assert!(
        matches!(
            error,
            DemuxError::CrcFailures {
                pid: PMT_PID,
                failures: 11,
                ..
            }
        ),
        "{error}"
    );
    // After a good section FFmpeg tolerates 110 bad ones.
    let mut writer = Writer::default();
    writer.tables(PMT_PID, 0, &[(0x1B, VIDEO, &[])]);
    for _ in 0..110 {
        writer.section(PMT_PID, &bad_pmt);
    }
    let (events, stats) = demux(&writer.out);
    assert!(events.is_empty());
    assert_eq!(stats.crc_errors, 110);
}

#[test]
fn pmt_not_yet_in_force_is_ignored() {
    let mut writer = Writer::default();
    writer.section(0, &mux::pat(0, &[(1, PMT_PID)]));
    let mut next = mux::pmt(1, 0, &[(0x02, VIDEO, &[])]);
    next[5] &= !1;
    let length = next.len();
    let crc = crate::psi::crc32(&next[..length - 4]);
    next[length - 4..].copy_from_slice(&crc.to_be_bytes());
    writer.section(PMT_PID, &next);
    let (events, _) = demux(&writer.out);
    assert!(events.is_empty());
}

#[test]
fn video_livegate_cannot_inspect_is_reported_once() {
    // Another codec; a second H.264 stream; H.264 hidden in a private stream; video on a
    // PID no PMT lists.
    let cases: [(PmtStreams, Option<u16>, &str); 5] = [
        (
            vec![(0x02, VIDEO, &[])],
            None,
            "MPEG-2 video (stream_type 0x02) on PID 0x0100",
        ),
        (
            vec![(0x06, VIDEO, &[0x05, 4, b'A', b'V', b'0', b'1'])],
            None,
            "AV1 video (stream_type 0x06) on PID 0x0100",
        ),
        (
            vec![(0x1B, VIDEO, &[]), (0x1B, 0x102, &[])],
            None,
            "a second video stream on PID 0x0102 (stream_type 0x1b) besides PID 0x0100: livegate inspects one",
        ),
        (
            vec![(0x1B, VIDEO, &[]), (0x06, 0x102, &[])],
            Some(0x102),
            "PID 0x0102 (listed with stream_type 0x06) carries video-like PES data livegate does not inspect; players probing it may show it",
        ),
        (
            vec![(0x1B, VIDEO, &[])],
            Some(0x555),
            "PID 0x0555 (listed in no PMT) carries video-like PES data livegate does not inspect; players probing it may show it",
        ),
    ];
    for (streams, hidden, expected) in cases {
        let mut writer = Writer::default();
        writer.tables(PMT_PID, 0, &streams);
        if let Some(pid) = hidden {
            for pts in [0, 3600] {
                // Private stream 1 with an Annex B start: what a prober takes for video.
                writer.unit(
                    pid,
                    &mux::pes(0xBD, Some(pts), None, &avc_idr(50), false),
                    false,
                );
            }
        }
        writer.tables(PMT_PID, 0, &streams);
        let (events, _) = demux(&writer.out);
        assert_eq!(unsupported(&events), [expected]);
    }
}

#[test]
fn timestamps_unwrap_past_33_bits() {
    let mut writer = avc_stream();
    let wrap = 1u64 << 33;
    for (index, pts) in [wrap - 3600, wrap - 1, 3599, 7199].into_iter().enumerate() {
        let pes = mux::pes(
            0xE0,
            Some(pts),
            Some(pts.wrapping_sub(3600) % wrap),
            &avc_p(index as u8),
            false,
        );
        writer.unit(VIDEO, &pes, false);
    }
    // No PTS: the previous unit's times.
    writer.unit(VIDEO, &mux::pes(0xE0, None, None, &avc_p(9), false), false);
    writer.unit(VIDEO, &video_pes(0, &avc_p(10)), false);
    let (events, _) = demux(&writer.out);
    let times: Vec<_> = units(&events)
        .iter()
        .map(|unit| (unit.pts_ms, unit.dts_ms))
        .collect();
    // Unwrapped: 3600 ticks (40 ms) apart, past 2^33.
    let ms = |ticks: u64| (ticks / 90) as i64;
    let expected: Vec<_> = (0..4)
        .map(|index| {
            (
                ms(wrap - 3600 + 3600 * index),
                ms(wrap - 7200 + 3600 * index),
            )
        })
        .chain([(ms(wrap + 7199), ms(wrap + 3599))])
        .collect();
    assert_eq!(times, expected);
}

#[test]
fn caps_refuse_the_stream_with_a_clear_error() {
    // A video PES over the cap: refused as soon as it is over, before its end.
    let mut writer = avc_stream();
    writer.unit(VIDEO, &video_pes(0, &avc_idr(5000)), true);
    let limits = Limits {
        max_pes_bytes: 4096,
        ..Limits::default()
    };
    let (result, _, _) = demux_with(limits, &writer.out);
    let error = result.expect_err("over the cap");
    assert!(
        matches!(
            error,
            DemuxError::PesTooLarge {
                pid: VIDEO,
                cap: 4096,
                offset: 376,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("video PES on PID 0x0100 started at byte 376 exceeds cap 4096 bytes")
    );

    // PES on thousands of unlisted PIDs.
    let mut writer = avc_stream();
    for pid in 0x200..0x300 {
        writer.unit(pid, &mux::pes(0xC0, None, None, &[0xFF], true), false);
    }
    let (result, _, _) = demux_with(Limits::default(), &writer.out);
    assert!(
        matches!(result, Err(DemuxError::TooManyPids { cap: 64, .. })),
        "{result:?}"
    );

    let programs: Vec<(u16, u16)> = (1..=17).map(|n| (n, 0x1000 + n)).collect();
    let mut writer = Writer::default();
    writer.section(0, &mux::pat(0, &programs));
    let (result, _, _) = demux_with(Limits::default(), &writer.out);
    assert_eq!(
        result.map_err(|error| error.to_string()),
        Err("PAT at byte 0 lists 17 programs, above cap 16".into())
    );
}

#[test]
fn lost_sync_is_refused_and_the_demuxer_stays_dead() {
    let mut writer = avc_stream();
    writer.unit(VIDEO, &video_pes(0, &avc_idr(100)), true);
    writer.unit(VIDEO, &video_pes(3600, &avc_p(1)), false);
    // A stray byte shifts every later packet.
    let at = writer.out.len();
    writer.out.push(0);
    writer.unit(VIDEO, &video_pes(7200, &avc_p(2)), false);
    writer.unit(VIDEO, &video_pes(10_800, &avc_p(3)), false);
    let (result, events, _) = demux_with(Limits::default(), &writer.out);
    let error = result.expect_err("lost sync");
    assert_eq!(
        error,
        DemuxError::LostSync {
            offset: at as u64,
            found: 0
        }
    );
    assert_eq!(units(&events).len(), 1, "units completed before are kept");

    let mut demuxer = Demuxer::default();
    let mut events = Vec::new();
    assert_eq!(
        demuxer.feed(&[0x00, 0x47], &mut events),
        Err(DemuxError::NotMpegTs { found: 0 })
    );
    assert_eq!(
        demuxer.feed(&avc_stream().out, &mut events),
        Err(DemuxError::NotMpegTs { found: 0 })
    );
    assert!(events.is_empty());
    // 192-byte packets (M2TS) lose sync at the second packet.
    let mut m2ts = Vec::new();
    for packet in avc_stream().out.chunks(188) {
        m2ts.extend([0x47, 0, 0, 0]);
        m2ts.extend(packet);
    }
    let (result, _, _) = demux_with(Limits::default(), &m2ts);
    assert!(
        matches!(result, Err(DemuxError::LostSync { offset: 188, .. })),
        "{result:?}"
    );
}
