//! Video frame hashing: interoperability with Meta's vPDQ (PyPI `vpdq` in `.venv`) on
//! generated videos, prompt decoding of lone keyframes with B-frames present, and the
//! live decoder's bounds: concealed keyframes reported, oversized pictures refused.

use crate::support;

use std::path::Path;
use std::process::Command;

use ffmpeg_next as ffmpeg;
use livegate::media::decode::{Deblocking, KeyframeDecoder, MediaError, Sampling, VideoFile};
use livegate::media::frame::FrameHasher;
use livegate_signals::hash256::Hash256;
use serde_json::Value;

/// Encodes a lavfi source with the ffmpeg CLI.
fn generate_video(path: &Path, source: &str, codec_args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
        ])
        .args(codec_args)
        .arg(path)
        .status()
        .expect("run ffmpeg");
    assert!(
        status.success(),
        "ffmpeg failed to generate {}",
        path.display()
    );
}

const H264_WITH_B_FRAMES: &[&str] = &[
    "-c:v",
    "libx264",
    "-bf",
    "3",
    "-g",
    "25",
    "-sc_threshold",
    "0",
    "-pix_fmt",
    "yuv420p",
];

/// vPDQ's per-second features: (frame number, hash, quality, timestamp).
fn vpdq_features(video: &Path) -> Vec<(u64, Hash256, u64, f64)> {
    let script = "import json, sys, vpdq\n\
        print(json.dumps([[f.frame_number, f.hex, f.quality, f.timestamp]\n\
                          for f in vpdq.computeHash(sys.argv[1], seconds_per_hash=1.0)]))";
    let output = Command::new(support::venv_python())
        .args(["-c", script])
        .arg(video)
        .output()
        .expect("run vpdq");
    assert!(
        output.status.success(),
        "vpdq failed (missing? run scripts/install-deps.sh): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let features: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    features
        .iter()
        .map(|f| {
            (
                f[0].as_u64().unwrap(),
                f[1].as_str().unwrap().parse().unwrap(),
                f[2].as_u64().unwrap(),
                f[3].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn per_second_hashes_match_vpdq() {
    let dir = tempfile::tempdir().unwrap();
    let videos = [
        (
            "testsrc2.mp4",
            "testsrc2=size=320x240:rate=30:duration=4",
            H264_WITH_B_FRAMES,
        ),
        (
            "life.mkv",
            "life=size=352x288:rate=25:mold=10:ratio=0.5:death_color=#C83232,trim=duration=4",
            &["-c:v", "mpeg4", "-q:v", "4"][..],
        ),
    ];
    let mut distances = Vec::new();
    for (name, source, codec) in videos {
        let path = dir.path().join(name);
        generate_video(&path, source, codec);
        let reference = vpdq_features(&path);
        let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
            .args(["hash", "--json"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let ours: Vec<Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ours.len(), reference.len(), "{name}: sampled frame count");
        assert!(ours.len() >= 4, "{name}: {} samples", ours.len());
        for (line, (frame_number, hash, quality, timestamp)) in ours.iter().zip(&reference) {
            let our_hash: Hash256 = line["hash"].as_str().unwrap().parse().unwrap();
            let pts = line["pts"].as_f64().unwrap();
            assert!(
                (pts - timestamp).abs() < 0.05,
                "{name} frame {frame_number}: pts {pts} vs vPDQ {timestamp}"
            );
            let distance = our_hash.distance(hash);
            distances.push(distance);
            assert!(
                (i64::try_from(line["quality"].as_u64().unwrap()).unwrap()
                    - i64::try_from(*quality).unwrap())
                .abs()
                    <= 5,
                "{name} frame {frame_number}: quality {} vs vPDQ {quality}",
                line["quality"]
            );
        }
    }
    distances.sort_unstable();
    let median = distances[distances.len() / 2];
    let max = distances[distances.len() - 1];
    eprintln!("livegate vs vPDQ Hamming distances: median {median}, max {max}");
    // Same FFmpeg conversion and the same f32 luma: identical in practice (0 here); the
    // bound leaves room for an FFmpeg build whose swscale rounds differently.
    assert!(max <= 16, "max distance {max} (median {median})");
}

#[test]
fn lone_keyframes_decode_promptly_from_extradata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bframes.mp4");
    generate_video(
        &path,
        "testsrc2=size=320x240:rate=25:duration=3",
        H264_WITH_B_FRAMES,
    );

    // Reference: every frame decoded in sequence; hashes of the key pictures.
    let mut frames = FrameHasher::new();
    let mut sequential = Vec::new();
    VideoFile::open(&path)
        .unwrap()
        .sample(
            Sampling::Every(1e-9),
            |frame, _pts| -> Result<(), MediaError> {
                if frame.is_key() {
                    sequential.push((frame.timestamp(), frames.hash_frame(frame).unwrap()));
                }
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(sequential.len(), 3, "one keyframe per second");

    // Live-path style: a decoder built from the codec id and the avcC record, fed only the
    // keyframe packets demuxed by FFmpeg.
    let (codec, extradata, keyframes) = demuxed_keyframes(&path);
    assert!(!extradata.is_empty(), "mp4 H.264 carries an avcC record");
    let mut decoder = KeyframeDecoder::new(codec, &extradata, u64::MAX, Deblocking::Full).unwrap();
    let mut lone = Vec::new();
    for (data, pts) in keyframes {
        let decoded = decoder.decode_keyframe(&data, pts).unwrap();
        assert_eq!(decoded.picture.timestamp(), Some(pts));
        assert_eq!(
            decoded.concealment, None,
            "a clean keyframe decodes cleanly"
        );
        lone.push((Some(pts), frames.hash_frame(decoded.picture).unwrap()));
    }
    assert_eq!(lone, sequential);
}

/// The live path's decoder skips the loop filter: a different picture on blocky noisy
/// keyframes, but the same PDQ hash within a few bits of what `livegate hash` computes.
#[test]
fn keyframes_decoded_without_deblocking_hash_as_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noisy.mp4");
    generate_video(
        &path,
        "testsrc2=size=640x360:rate=25:duration=3,noise=alls=20:allf=t",
        &[
            "-c:v", "libx264", "-g", "25", "-b:v", "300k", "-pix_fmt", "yuv420p",
        ],
    );
    let (codec, extradata, keyframes) = demuxed_keyframes(&path);
    let mut full = KeyframeDecoder::new(codec, &extradata, u64::MAX, Deblocking::Full).unwrap();
    let mut live = KeyframeDecoder::new(codec, &extradata, u64::MAX, Deblocking::Skip).unwrap();
    let mut frames = FrameHasher::new();
    assert!(!keyframes.is_empty());
    for (data, pts) in keyframes {
        let filtered = full.decode_keyframe(&data, pts).unwrap().picture.clone();
        let unfiltered = live.decode_keyframe(&data, pts).unwrap().picture;
        assert_ne!(
            filtered.data(0),
            unfiltered.data(0),
            "the loop filter was skipped"
        );
        let reference = frames.hash_frame(&filtered).unwrap().hash;
        let hashed = frames.hash_frame(unfiltered).unwrap().hash;
        let distance = reference.distance(&hashed);
        assert!(
            distance <= 8,
            "pts {pts}: {distance} bits from the filtered picture's hash"
        );
    }
}

/// A keyframe packet's data and pts.
type Keyframe = (Vec<u8>, i64);

/// The codec, configuration record and keyframe packets of a file's video stream, as the
/// live path gets them from RTMP.
fn demuxed_keyframes(path: &Path) -> (ffmpeg::codec::Id, Vec<u8>, Vec<Keyframe>) {
    ffmpeg::init().unwrap();
    let mut input = ffmpeg::format::input(&path).unwrap();
    let stream = input.streams().best(ffmpeg::media::Type::Video).unwrap();
    let index = stream.index();
    let parameters = stream.parameters();
    let extradata = livegate::media::decode::extradata_of(&parameters);
    let keyframes = input
        .packets()
        .filter(|(stream, packet)| stream.index() == index && packet.is_key())
        .map(|(_, packet)| (packet.data().unwrap().to_vec(), packet.pts().unwrap()))
        .collect();
    (parameters.id(), extradata, keyframes)
}

#[test]
fn keyframes_decoded_with_concealment_say_how_much_was_made_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clean.mp4");
    // Slices of whole pictures, as the live path gets them; rich content so that the
    // slice is large.
    generate_video(
        &path,
        "testsrc2=size=640x480:rate=25:duration=2",
        H264_WITH_B_FRAMES,
    );
    let (codec, extradata, keyframes) = demuxed_keyframes(&path);
    let (clean, pts) = keyframes.into_iter().next().unwrap();
    let mut decoder = KeyframeDecoder::new(codec, &extradata, u64::MAX, Deblocking::Full).unwrap();
    assert_eq!(
        decoder.decode_keyframe(&clean, pts).unwrap().concealment,
        None
    );

    let mut corrupted = clean.clone();
    support::corrupt_largest_nal_unit(&mut corrupted);
    let concealment = decoder
        .decode_keyframe(&corrupted, pts)
        .unwrap()
        .concealment
        .expect("the corrupted keyframe is reported as concealed");
    assert_eq!(concealment.macroblocks, 40 * 30);
    assert!(
        concealment.fraction() > 0.25,
        "half the slice overwritten, yet only {concealment:?}"
    );
    // The decoder is not left in a concealing state.
    assert_eq!(
        decoder.decode_keyframe(&clean, pts).unwrap().concealment,
        None
    );
}

#[test]
fn pictures_over_the_pixel_limit_are_refused_before_a_picture_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 320 * 240;
    let refused = |error: MediaError| match error {
        MediaError::PictureTooLarge {
            width,
            height,
            max_pixels,
        } => (width, height, max_pixels),
        other => panic!("expected PictureTooLarge, got {other}"),
    };
    // H.264 and HEVC: from the SPS of the configuration record, before FFmpeg sizes its
    // tables. The limit itself is fine.
    for (name, args) in [
        ("h264.mp4", H264_WITH_B_FRAMES),
        (
            "hevc.mp4",
            &["-c:v", "libx265", "-x265-params", "log-level=error"][..],
        ),
    ] {
        let path = dir.path().join(name);
        generate_video(&path, "testsrc2=size=640x480:rate=25:duration=0.2", args);
        let (codec, extradata, _) = demuxed_keyframes(&path);
        let error = KeyframeDecoder::new(codec, &extradata, limit, Deblocking::Full)
            .err()
            .unwrap_or_else(|| panic!("{name}: a 640x480 stream opened under a 320x240 limit"));
        assert_eq!(refused(error), (640, 480, limit), "{name}");
        assert!(KeyframeDecoder::new(codec, &extradata, 640 * 480, Deblocking::Full).is_ok());
    }
    // VP9 and AV1 sizes are not read by livegate: FFmpeg's max_pixels refuses them, for
    // VP9 at the frame, for AV1 when libdav1d opens on the av1C sequence header (or, as
    // its frame size limit, at the frame).
    for (name, args) in [
        (
            "vp9.webm",
            &["-c:v", "libvpx-vp9", "-deadline", "realtime"][..],
        ),
        (
            "av1.mp4",
            &["-c:v", "libaom-av1", "-cpu-used", "8", "-usage", "realtime"][..],
        ),
    ] {
        let path = dir.path().join(name);
        generate_video(&path, "testsrc2=size=640x480:rate=25:duration=0.2", args);
        let (codec, extradata, keyframes) = demuxed_keyframes(&path);
        let (data, pts) = &keyframes[0];
        let error = match KeyframeDecoder::new(codec, &extradata, limit, Deblocking::Full) {
            Ok(mut decoder) => decoder.decode_keyframe(data, *pts).err().unwrap(),
            Err(error) => error,
        };
        assert_eq!(refused(error), (640, 480, limit), "{name}");
        if name == "av1.mp4" {
            // An av1C without the sequence header: libdav1d refuses the frame.
            let mut decoder =
                KeyframeDecoder::new(codec, &extradata[..4], limit, Deblocking::Full).unwrap();
            let error = decoder.decode_keyframe(data, *pts).err().unwrap();
            assert_eq!(
                refused(error),
                (640, 480, limit),
                "{name} without configOBUs"
            );
        }
        let mut decoder =
            KeyframeDecoder::new(codec, &extradata, 640 * 480, Deblocking::Full).unwrap();
        let decoded = decoder.decode_keyframe(data, *pts).unwrap();
        assert_eq!(decoded.picture.width(), 640, "{name}");
    }
}
