//! Issue 14: HEVC and AV1 over Enhanced RTMP, end to end, against a real nginx-rtmp origin.
//!
//! Debian's ffmpeg 5.1 encodes HEVC (libx265) and AV1 (libaom) but cannot publish them
//! over RTMP, so each clip is encoded to MP4, demuxed with FFmpeg (hvcC / av1C and the
//! coded frames as MP4 stores them: length-prefixed NAL units, OBUs) and packed into
//! Enhanced RTMP by the project's test encoder (`livegate_rtmp::encode`): a
//! SequenceStart, every frame (HEVC: CodedFramesX where the composition time is zero,
//! CodedFrames with it elsewhere — the clip has B-frames, so both forms; AV1:
//! CodedFrames), a SequenceEnd. That session is published over TCP through livegate:
//! - relayed byte-exact: a tee in front of the origin records what livegate forwards
//!   (nginx-rtmp's `record` does not write Enhanced RTMP faithfully, so the bytes are
//!   compared before it), and livegate decoded and hashed the keyframes (a shadow cut
//!   names the list made by `livegate hash` from the same MP4);
//! - cut when listed, benign footage in the same codecs kept;
//! - a FourCC livegate cannot decode follows `on_parse_error` (cut by default).
//!
//! The HEVC clips are also sent as legacy FLV CodecID 12 tags, which some encoders send,
//! and the AV1 clips with every frame typed an inter frame (key frames found in the OBUs).

use crate::support;

use ffmpeg_next as ffmpeg;
use livegate_rtmp::encode::{
    CSID_VIDEO, ChunkWriter, ExVideoPacket, LEGACY_CODEC_HEVC, TYPE_VIDEO, ex_coded_frame,
    ex_video_tag, legacy_video_tag,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::{AttackPublisher, GateStack, Livegate, NginxOrigin, Tee, free_port, local};

const WAIT: Duration = Duration::from_secs(20);
/// Chunk size the publisher announces (what OBS and ffmpeg use).
const CHUNK_SIZE: u32 = 4096;

/// One codec's footage: a listed clip and a benign one, as Enhanced RTMP messages.
struct CodecMedia {
    name: &'static str,
    /// Enhanced RTMP messages (Set Chunk Size, then the video) of the listed clip.
    known: Vec<u8>,
    /// The same for footage no list holds.
    benign: Vec<u8>,
}

struct Media {
    _dir: tempfile::TempDir,
    /// `livegate hash --keyframes` of every listed clip (HEVC and AV1).
    list: PathBuf,
    codecs: Vec<CodecMedia>,
}

fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("media dir");
        let hevc: &[&str] = &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error:keyint=30:min-keyint=30:scenecut=0:bframes=3",
            "-tag:v",
            "hvc1",
        ];
        let av1: &[&str] = &[
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-usage",
            "realtime",
            "-g",
            "30",
            "-keyint_min",
            "30",
        ];
        let mut list = String::new();
        let mut codecs = Vec::new();
        for (name, args, packings) in [
            (
                "hevc",
                hevc,
                &[
                    ("hevc", Packing::Enhanced(b"hvc1")),
                    ("hevc-legacy", Packing::LegacyHevc),
                ][..],
            ),
            (
                "av1",
                av1,
                &[
                    ("av1", Packing::Enhanced(b"av01")),
                    ("av1-unflagged", Packing::EnhancedUnflagged(b"av01")),
                ],
            ),
        ] {
            let encode = |source: &str, what: &str| {
                let path = dir.path().join(format!("{name}-{what}.mp4"));
                let mut all = vec!["-f", "lavfi", "-i", source, "-t", "3"];
                all.extend(args);
                all.extend(["-pix_fmt", "yuv420p", "-an"]);
                all.push(path.to_str().expect("utf-8 path"));
                support::ffmpeg(&all);
                path
            };
            let known = encode(support::MANDELBROT, "known");
            let benign = encode(support::CELLULAR_AUTOMATON, "benign");
            list.push_str(&support::livegate_hash(&["--keyframes"], &known));
            for &(name, packing) in packings {
                codecs.push(CodecMedia {
                    name,
                    known: rtmp_session(&known, packing),
                    benign: rtmp_session(&benign, packing),
                });
            }
        }
        let list_path = dir.path().join("known.csv");
        std::fs::write(&list_path, list).expect("write list");
        Media {
            _dir: dir,
            list: list_path,
            codecs,
        }
    })
}

/// How the video is packed into RTMP video messages.
#[derive(Clone, Copy)]
enum Packing {
    /// Enhanced RTMP with this FourCC.
    Enhanced(&'static [u8; 4]),
    /// The same, every frame typed an inter frame: livegate must find the key frames in
    /// the OBUs, as a decoder does.
    EnhancedUnflagged(&'static [u8; 4]),
    /// Legacy FLV CodecID 12 HEVC (AVC's layout: AVCPacketType, composition time).
    LegacyHevc,
}

impl Packing {
    fn config(self, record: &[u8]) -> Vec<u8> {
        match self {
            Packing::Enhanced(four_cc) | Packing::EnhancedUnflagged(four_cc) => {
                ex_video_tag(ExVideoPacket::SequenceStart, true, four_cc, record)
            }
            Packing::LegacyHevc => legacy_video_tag(LEGACY_CODEC_HEVC, true, 0, 0, record),
        }
    }

    fn frame(self, keyframe: bool, composition_time_ms: i32, data: &[u8]) -> Vec<u8> {
        match self {
            Packing::Enhanced(four_cc) => {
                ex_coded_frame(four_cc, keyframe, composition_time_ms, data)
            }
            Packing::EnhancedUnflagged(four_cc) => {
                ex_coded_frame(four_cc, false, composition_time_ms, data)
            }
            Packing::LegacyHevc => {
                legacy_video_tag(LEGACY_CODEC_HEVC, keyframe, 1, composition_time_ms, data)
            }
        }
    }

    fn end(self) -> Vec<u8> {
        match self {
            Packing::Enhanced(four_cc) | Packing::EnhancedUnflagged(four_cc) => {
                ex_video_tag(ExVideoPacket::SequenceEnd, false, four_cc, &[])
            }
            Packing::LegacyHevc => legacy_video_tag(LEGACY_CODEC_HEVC, false, 2, 0, &[]),
        }
    }
}

/// The MP4's video as the messages a publisher sends after `publish`, packed as
/// `packing` says.
fn rtmp_session(mp4: &Path, packing: Packing) -> Vec<u8> {
    ffmpeg::init().expect("init FFmpeg");
    let mut input = ffmpeg::format::input(&mp4).expect("open the MP4");
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .expect("a video stream");
    let index = stream.index();
    let time_base = stream.time_base();
    let parameters = stream.parameters();
    // SAFETY: reads the stream's extradata buffer of extradata_size bytes, owned by the
    // parameters that outlive the copy.
    let config = unsafe {
        let raw = parameters.as_ptr();
        std::slice::from_raw_parts((*raw).extradata, (*raw).extradata_size as usize).to_vec()
    };
    assert!(!config.is_empty(), "{}: no hvcC/av1C", mp4.display());
    let to_ms = |value: i64| {
        value * 1000 * i64::from(time_base.numerator()) / i64::from(time_base.denominator())
    };
    let frames: Vec<(i64, i64, bool, Vec<u8>)> = input
        .packets()
        .filter(|(stream, _)| stream.index() == index)
        .map(|(_, packet)| {
            let dts = packet.dts().expect("packet dts");
            let pts = packet.pts().expect("packet pts");
            let data = packet.data().expect("packet data").to_vec();
            (to_ms(dts), to_ms(pts), packet.is_key(), data)
        })
        .collect();
    // MP4 starts B-frame streams at a negative decode time; RTMP timestamps are unsigned.
    let first_dts = frames.first().map_or(0, |frame| frame.0);
    let mut writer = ChunkWriter::default();
    let mut out = Vec::new();
    writer.set_chunk_size(&mut out, CHUNK_SIZE);
    let message = |out: &mut Vec<u8>, timestamp: i64, tag: &[u8]| {
        let timestamp = u32::try_from(timestamp - first_dts).expect("timestamp in range");
        writer.write_message(out, CSID_VIDEO, timestamp, TYPE_VIDEO, 1, tag);
    };
    message(&mut out, first_dts, &packing.config(&config));
    let mut forms = [0usize; 2];
    for (dts, pts, keyframe, data) in &frames {
        let tag = packing.frame(*keyframe, (pts - dts) as i32, data);
        // IsExHeader with packet type 3: CodedFramesX.
        forms[usize::from(tag[0] & 0x8F == 0x83)] += 1;
        message(&mut out, *dts, &tag);
    }
    if matches!(packing, Packing::Enhanced(b"hvc1")) {
        assert!(
            forms[0] > 0 && forms[1] > 0,
            "HEVC with B-frames sends both CodedFrames and CodedFramesX: {forms:?}"
        );
    }
    let last_dts = frames.last().map_or(first_dts, |frame| frame.0);
    message(&mut out, last_dts, &packing.end());
    out
}

/// The audit record of `event` for `key`, failing with the audit and livegate's log.
fn record(audit: &Path, livegate: &Livegate, key: &str, event: &str) -> Value {
    support::wait_for_audit_record(audit, key, event, WAIT).unwrap_or_else(|| {
        panic!(
            "{key}: no {event} record; audit: {:#?}\nlivegate log:\n{}",
            support::audit_records(audit),
            livegate.raw_log()
        )
    })
}

fn assert_listed_match(record: &Value, key: &str) {
    assert_eq!(record["signal"]["list"], "known", "{key}: {record}");
    let distance = record["signal"]["distance"].as_u64().expect("distance");
    assert!(distance <= 31, "{key}: distance {distance}: {record}");
}

#[test]
fn hevc_and_av1_are_relayed_byte_exact_and_their_keyframes_hashed() {
    let media = media();
    for codec in &media.codecs {
        let origin = NginxOrigin::start();
        // livegate → tee → nginx: the tee records exactly what livegate forwards.
        let origin_side = Tee::start(origin.addr);
        let dir = support::scratch_dir();
        let audit = dir.path().join("audit.jsonl");
        let listen = local(free_port());
        let config = format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{}\"\n\
             [[hashlist]]\nname = \"known\"\npath = \"{}\"\naction = \"cut\"\n\
             [policy]\nmode = \"shadow\"\n\
             [actuator]\naudit_log = \"{}\"\n",
            origin_side.addr,
            media.list.display(),
            audit.display()
        );
        let livegate = Livegate::start(&config, 1);
        let key = format!("{}-relayed", codec.name);
        let mut publisher = AttackPublisher::connect(listen, "live", &key);
        publisher.send(&codec.known);
        // Shadow mode: livegate decoded and matched a keyframe, and cut nothing.
        assert_listed_match(&record(&audit, &livegate, &key, "shadow_cut"), &key);
        let sent = publisher.close();
        let closed = livegate.session_closed_for_key(&key, WAIT);
        let (to_origin, _) = origin_side.digests(WAIT);
        assert!(
            to_origin.content == sent,
            "{key}: the origin got {} bytes, the publisher sent {}; closed: {closed}",
            to_origin.bytes,
            sent.len()
        );
    }
}

#[test]
fn listed_hevc_and_av1_are_cut_and_benign_footage_kept() {
    let media = media();
    let stack = GateStack::start(&media.list, "mode = \"enforce\"");
    for codec in &media.codecs {
        let key = format!("{}-listed", codec.name);
        let mut publisher = AttackPublisher::connect(stack.listen, "live", &key);
        publisher.send(&codec.known);
        assert_listed_match(&record(&stack.audit, &stack.livegate, &key, "cut"), &key);
        assert!(publisher.closed_within(WAIT), "{key}: not cut");

        let key = format!("{}-benign", codec.name);
        let mut publisher = AttackPublisher::connect(stack.listen, "live", &key);
        publisher.send(&codec.benign);
        // Three keyframes to decode and match: ample time, and the stream stays up.
        assert!(
            !publisher.closed_within(Duration::from_secs(4)),
            "{key}: benign footage closed; log:\n{}",
            stack.livegate.raw_log()
        );
        publisher.close();
        let closed = stack.livegate.session_closed_for_key(&key, WAIT);
        assert!(
            support::records_for(&support::audit_records(&stack.audit), &key, "cut").is_empty(),
            "{key}: cut; closed: {closed}"
        );
    }
}

#[test]
fn a_fourcc_livegate_cannot_decode_follows_on_parse_error() {
    let stack = GateStack::start(&media().list, "mode = \"enforce\"");
    let key = "vvc-unknown";
    let mut publisher = AttackPublisher::connect(stack.listen, "live", key);
    let writer = ChunkWriter::default();
    let mut out = Vec::new();
    for (timestamp, tag) in [
        (
            0,
            ex_video_tag(ExVideoPacket::SequenceStart, true, b"vvc1", &[1, 2, 3]),
        ),
        (0, ex_coded_frame(b"vvc1", true, 0, &[0, 0, 0, 1, 0x40])),
    ] {
        writer.write_message(&mut out, CSID_VIDEO, timestamp, TYPE_VIDEO, 1, &tag);
    }
    publisher.send(&out);
    assert!(publisher.closed_within(WAIT), "{key}: left open");
    let closed = stack.livegate.session_closed_for_key(key, WAIT);
    let reason = closed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("FourCC vvc1"), "{key}: reason {reason:?}");
}
