//! The demuxer on a real publish session: FFmpeg 5.1 (libx264 with B-frames, AAC)
//! publishing to nginx-rtmp, captured by `scripts/capture-rtmp-fixture.py`.

use livegate_rtmp::{DemuxEvent, DemuxLimits, Demuxer, VideoCodec, VideoFrame};
use proptest::prelude::*;

const FIXTURE: &[u8] = include_bytes!("../fixtures/ffmpeg-publish-avc.rtmp");
/// 3 s at 15 frame/s with a keyframe every 15 frames.
const EXPECTED_FRAMES: usize = 45;
const EXPECTED_KEYFRAMES: usize = 3;

/// Feeds `data` in pieces ending at each of `cuts` (ascending), then the rest.
fn demux_with_cuts(data: &[u8], cuts: impl IntoIterator<Item = usize>) -> Vec<DemuxEvent> {
    let mut demuxer = Demuxer::new(DemuxLimits::default());
    let mut events = Vec::new();
    let mut position = 0;
    for cut in cuts.into_iter().chain([data.len()]) {
        demuxer.feed(&data[position..cut], &mut events).unwrap();
        position = cut;
    }
    events
}

fn frames(events: &[DemuxEvent]) -> Vec<&VideoFrame> {
    events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::VideoFrame(f) => Some(f),
            _ => None,
        })
        .collect()
}

#[test]
fn ffmpeg_session_yields_connect_publish_metadata_config_and_frames() {
    let events = demux_with_cuts(FIXTURE, []);
    let DemuxEvent::Connect {
        app,
        tc_url,
        flash_ver,
        four_cc_list,
    } = &events[0]
    else {
        panic!("first event is not Connect: {:?}", events[0]);
    };
    assert_eq!(app, "live");
    assert!(
        tc_url
            .as_deref()
            .is_some_and(|u| u.starts_with("rtmp://127.0.0.1:"))
    );
    assert!(flash_ver.as_deref().is_some_and(|v| v.contains("Lavf")));
    assert!(four_cc_list.is_empty());
    assert_eq!(
        events[1],
        DemuxEvent::Publish {
            stream_key: "testkey123".into(),
            publish_type: Some("live".into())
        }
    );
    let DemuxEvent::Metadata(metadata) = &events[2] else {
        panic!("third event is not Metadata: {:?}", events[2]);
    };
    assert_eq!(
        (metadata.width, metadata.height, metadata.framerate),
        (Some(320.0), Some(240.0), Some(15.0))
    );
    assert_eq!(metadata.video_codec.as_deref(), Some("7"));
    let DemuxEvent::VideoConfig { codec, extradata } = &events[3] else {
        panic!("fourth event is not VideoConfig: {:?}", events[3]);
    };
    assert_eq!(*codec, VideoCodec::Avc);
    assert_eq!(extradata[0], 1, "avcC configurationVersion");

    let frames = frames(&events);
    assert_eq!(frames.len(), EXPECTED_FRAMES);
    assert_eq!(
        frames.iter().filter(|f| f.keyframe).count(),
        EXPECTED_KEYFRAMES
    );
    assert!(frames[0].keyframe);
    assert!(frames.iter().all(|f| f.codec == VideoCodec::Avc));
    // 15 frame/s: dts advances by 66–67 ms per frame.
    for pair in frames.windows(2) {
        let step = pair[1].dts_ms - pair[0].dts_ms;
        assert!((66..=67).contains(&step), "dts step {step}");
        assert!(pair[1].start_offset > pair[0].start_offset);
    }
    assert!(frames.iter().all(|f| f.pts_ms >= f.dts_ms));
    assert!(
        frames.iter().any(|f| f.pts_ms > f.dts_ms + 67),
        "B-frames reorder presentation"
    );
    // Every frame is length-prefixed NAL units filling its payload exactly.
    for frame in &frames {
        let mut rest = &frame.data[..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            rest = &rest[4 + len..];
        }
    }
    // The first chunk header after the handshake belongs to `connect`; frames start later.
    assert!(frames[0].start_offset > 3073);
    // Keyframes are larger than FFmpeg's 4096-byte chunks: reassembly was exercised.
    assert!(frames.iter().any(|f| f.keyframe && f.data.len() > 4096));
}

#[test]
fn any_split_gives_the_same_events() {
    let whole = demux_with_cuts(FIXTURE, []);
    // Every single split point through the handshake, the commands and the first
    // (multi-chunk) keyframe; a prime stride beyond, so the test stays fast in debug.
    let dense_until = 12_000;
    for cut in (0..=dense_until).chain((dense_until..FIXTURE.len()).step_by(61)) {
        assert_eq!(demux_with_cuts(FIXTURE, [cut]), whole, "split at {cut}");
    }
    assert_eq!(
        demux_with_cuts(FIXTURE, 0..FIXTURE.len()),
        whole,
        "byte at a time"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_multi_way_splits_give_the_same_events(
        mut cuts in proptest::collection::vec(0..FIXTURE.len(), 1..200)
    ) {
        cuts.sort_unstable();
        prop_assert_eq!(demux_with_cuts(FIXTURE, cuts), demux_with_cuts(FIXTURE, []));
    }
}
