//! MPEG-TS keyframes through the live path: the ffmpeg and GStreamer fixtures (H.264 and
//! HEVC in MPEG-TS, `scripts/make-ts-fixtures.sh`) read by `MpegTsInspector`, their Annex B
//! keyframes decoded without any codec configuration (parameter sets in-band) and hashed
//! with livegate's PDQ, against `livegate hash --keyframes` of the same files (FFmpeg's
//! own demuxer and decoder): the same pictures, the same hashes.

use std::path::Path;
use std::process::Command;

use livegate::ingest::inspect::Inspector;
use livegate::ingest::inspect::mpegts::MpegTsInspector;
use livegate::media::decode::{Deblocking, KeyframeDecoder, decoder_for};
use livegate::media::frame::FrameHasher;
use livegate::stream::{AccessUnit, BitstreamFormat, StreamEvent, VideoCodec};
use livegate_signals::hash256::Hash256;
use serde_json::Value;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `livegate hash --keyframes --json FILE`: every keyframe's hash, in order.
fn livegate_hash_keyframes(path: &Path) -> Vec<Hash256> {
    let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["hash", "--keyframes", "--json"])
        .arg(path)
        .output()
        .expect("livegate hash runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("text")
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("a JSON line");
            record["hash"]
                .as_str()
                .expect("a hash")
                .parse()
                .expect("a PDQ hash")
        })
        .collect()
}

/// The keyframe access units the inspector reports for `data`.
fn inspected_keyframes(data: &[u8]) -> Vec<AccessUnit> {
    let mut inspector = MpegTsInspector::new("SRT", livegate_mpegts::Limits::default());
    let mut events = Vec::new();
    inspector
        .feed(data, &mut events)
        .expect("the fixture demuxes");
    events
        .into_iter()
        .filter_map(|event| match event {
            StreamEvent::AccessUnit(unit) if unit.keyframe => Some(unit),
            StreamEvent::AccessUnit(_) => None,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn check(name: &str, codec: VideoCodec, keyframes: usize) {
    let path = fixture(name);
    let data = std::fs::read(&path).expect("read the fixture");
    let units = inspected_keyframes(&data);
    assert_eq!(units.len(), keyframes, "{name}");
    let reference = livegate_hash_keyframes(&path);
    assert_eq!(
        reference.len(),
        keyframes,
        "{name}: livegate hash --keyframes"
    );
    let mut hasher = FrameHasher::new();
    // No extradata: the decoder takes the parameter sets from the keyframe.
    let mut full = KeyframeDecoder::new(decoder_for(codec), &[], u64::MAX, Deblocking::Full)
        .expect("a decoder without a configuration record");
    // The live path's decoder (no loop filter).
    let mut live = KeyframeDecoder::new(decoder_for(codec), &[], u64::MAX, Deblocking::Skip)
        .expect("a decoder without a configuration record");
    for (unit, expected) in units.iter().zip(&reference) {
        assert_eq!((unit.codec, unit.format), (codec, BitstreamFormat::AnnexB));
        let decoded = full
            .decode_keyframe(&unit.data, unit.pts_ms)
            .expect("an Annex B keyframe decodes alone");
        assert_eq!(decoded.concealment, None, "{name}: a clean decode");
        let hash = hasher.hash_frame(decoded.picture).expect("hashes").hash;
        assert_eq!(
            hash.distance(expected),
            0,
            "{name} pts {} ms: the picture livegate hash decodes",
            unit.pts_ms
        );
        let live_picture = live
            .decode_keyframe(&unit.data, unit.pts_ms)
            .expect("decodes")
            .picture;
        let live_hash = hasher.hash_frame(live_picture).expect("hashes").hash;
        // As video_hashing.rs accepts for the live path's decoder.
        assert!(
            live_hash.distance(expected) <= 8,
            "{name} pts {}",
            unit.pts_ms
        );
    }
}

#[test]
fn avc_keyframes_from_mpegts_hash_as_livegate_hash_does() {
    check("ffmpeg-avc-aac.ts", VideoCodec::Avc, 4);
}

#[test]
fn hevc_keyframes_from_mpegts_hash_as_livegate_hash_does() {
    check("ffmpeg-hevc.ts", VideoCodec::Hevc, 3);
}

#[test]
fn gstreamer_avc_keyframes_from_mpegts_hash_as_livegate_hash_does() {
    check("gstreamer-avc.ts", VideoCodec::Avc, 2);
}
