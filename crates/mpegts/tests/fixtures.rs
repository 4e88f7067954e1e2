//! The demuxer on transport streams made by Debian's ffmpeg and GStreamer
//! (`scripts/make-ts-fixtures.sh`):
//! access units, keyframes, timestamps, sizes and offsets as `ffprobe -show_packets`
//! reports them, and the same events whatever the split of the bytes (every split point
//! near the start, strided ones beyond, one byte at a time, SRT-sized reads, random
//! multi-way splits).

use std::path::Path;
use std::process::Command;

use livegate_mpegts::{AccessUnit, DemuxEvent, Demuxer, VideoCodec};
use proptest::prelude::*;

const AVC: &[u8] = include_bytes!("../../../tests/fixtures/ffmpeg-avc-aac.ts");
const HEVC: &[u8] = include_bytes!("../../../tests/fixtures/ffmpeg-hevc.ts");
const GSTREAMER: &[u8] = include_bytes!("../../../tests/fixtures/gstreamer-avc.ts");

fn fixture_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// Demuxes `data` in pieces ending at each of `cuts`.
fn demux_with_cuts(data: &[u8], cuts: impl IntoIterator<Item = usize>) -> Vec<DemuxEvent> {
    let mut demuxer = Demuxer::default();
    let mut events = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([data.len()]) {
        demuxer
            .feed(&data[from..cut], &mut events)
            .expect("the fixture demuxes");
        from = cut;
    }
    events
}

fn units(events: &[DemuxEvent]) -> Vec<&AccessUnit> {
    events
        .iter()
        .map(|event| match event {
            DemuxEvent::AccessUnit(unit) => unit,
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

/// One video packet as ffprobe reports it: (pts ms, dts ms, keyframe, size, pos).
type Probed = (i64, i64, bool, usize, u64);

fn ffprobe(name: &str) -> Vec<Probed> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_packets"])
        .args([
            "-show_entries",
            "packet=pts,dts,flags,size,pos",
            "-of",
            "csv=p=0",
        ])
        .arg(fixture_path(name))
        .output()
        .expect("run ffprobe (scripts/install-deps.sh installs ffmpeg)");
    assert!(output.status.success(), "ffprobe failed on {name}");
    String::from_utf8(output.stdout)
        .expect("ffprobe prints text")
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            // pts,dts,size,pos,flags
            let fields: Vec<&str> = line.split(',').collect();
            let number = |index: usize| fields[index].parse::<i64>().expect("a number");
            (
                number(0).div_euclid(90),
                number(1).div_euclid(90),
                fields[4].starts_with('K'),
                number(2) as usize,
                number(3) as u64,
            )
        })
        .collect()
}

/// `still_open`: units the demuxer has not emitted at the end of the file (an unbounded
/// PES ends only when the next one starts).
fn check_against_ffprobe(
    data: &[u8],
    name: &str,
    codec: VideoCodec,
    expected_keyframes: &[usize],
    still_open: usize,
) {
    let events = demux_with_cuts(data, []);
    let units = units(&events);
    let ours: Vec<Probed> = units
        .iter()
        .map(|unit| {
            (
                unit.pts_ms,
                unit.dts_ms,
                unit.keyframe,
                unit.data.len(),
                unit.start_offset,
            )
        })
        .collect();
    let mut probed = ffprobe(name);
    // FFmpeg hands out the last PES at the end of the file; livegate, reading a live
    // stream, emits an unbounded one when the next one starts.
    assert_eq!(
        probed.len(),
        ours.len() + still_open,
        "{name}: units in progress"
    );
    probed.truncate(ours.len());
    if codec == VideoCodec::Hevc {
        // FFmpeg's HEVC parser hands out the first picture one byte longer than its PES
        // payload (a trailing zero byte); the others are their PES payloads.
        assert_eq!(probed[0].3, ours[0].3 + 1);
        probed[0].3 = ours[0].3;
    }
    assert_eq!(ours, probed, "{name}: units against ffprobe");
    let keyframes: Vec<usize> = (0..units.len()).filter(|&i| units[i].keyframe).collect();
    eprintln!(
        "{name}: {} access units, keyframes at {keyframes:?}",
        units.len()
    );
    // In decode order, as ffprobe lists them.
    assert_eq!(
        keyframes, expected_keyframes,
        "{name}: a keyframe every 30 frames"
    );
    for unit in &units {
        assert_eq!(unit.codec, codec);
        // Both muxers set the random-access indicator on keyframes.
        assert_eq!(unit.random_access_indicator, unit.keyframe);
        assert!(unit.data.starts_with(&[0, 0, 0, 1]), "Annex B");
    }
}

#[test]
fn avc_units_match_ffprobe() {
    check_against_ffprobe(
        AVC,
        "ffmpeg-avc-aac.ts",
        VideoCodec::Avc,
        &[0, 30, 60, 90],
        1,
    );
}

#[test]
fn hevc_units_match_ffprobe() {
    check_against_ffprobe(HEVC, "ffmpeg-hevc.ts", VideoCodec::Hevc, &[0, 30, 58], 1);
}

/// GStreamer's muxer bounds each video PES: every unit is emitted, the last one too.
#[test]
fn gstreamer_units_match_ffprobe() {
    check_against_ffprobe(GSTREAMER, "gstreamer-avc.ts", VideoCodec::Avc, &[0, 30], 0);
}

#[test]
fn every_split_gives_the_same_events() {
    for data in [AVC, HEVC, GSTREAMER] {
        let whole = demux_with_cuts(data, []);
        // Every split point through the first keyframe and well beyond; a prime stride
        // after that, so that the test stays fast unoptimised.
        let dense_until = 12_000.min(data.len());
        for cut in (0..=dense_until).chain((dense_until..data.len()).step_by(97)) {
            assert_eq!(demux_with_cuts(data, [cut]), whole, "split at {cut}");
        }
        assert_eq!(
            demux_with_cuts(data, 0..data.len()),
            whole,
            "byte at a time"
        );
        assert_eq!(
            demux_with_cuts(data, (7..data.len()).step_by(1316)),
            whole,
            "SRT-sized datagrams, misaligned"
        );
    }
}

#[test]
fn every_prefix_gives_a_prefix_of_the_events() {
    let whole = demux_with_cuts(AVC, []);
    for end in (0..AVC.len()).step_by(188 * 7 + 1) {
        let prefix = demux_with_cuts(&AVC[..end], []);
        assert_eq!(prefix[..], whole[..prefix.len()], "prefix of {end} bytes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_multi_way_splits_give_the_same_events(
        mut cuts in proptest::collection::vec(0..HEVC.len(), 1..300)
    ) {
        cuts.sort_unstable();
        prop_assert_eq!(demux_with_cuts(HEVC, cuts), demux_with_cuts(HEVC, []));
    }
}
