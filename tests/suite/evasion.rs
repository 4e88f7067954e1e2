//! Issue 10's attacks on livegate, each against a real, recording nginx-rtmp origin.
//!
//! The differential tests relay sessions — a captured ffmpeg session replayed, a live
//! ffmpeg publisher, and sessions crafted chunk by chunk (`encode::ChunkCrafter`) — and
//! check that what livegate's demuxer saw (the exact bytes the publisher sent, fed to
//! `Demuxer` in-process) equals what the origin recorded, frame by frame: keyframe flag,
//! codec, composition time, payload bytes, order and count, and timestamps relative to the
//! first keyframe (nginx's `record` writes timestamps minus the first recorded message's,
//! so only differences are comparable). That livegate itself inspected the stream is
//! checked through its audit log: every crafted session shows footage from a list, and a
//! `shadow_cut` (or, in enforce mode, a `cut`) must name that list at distance 0.
//! Sessions livegate must refuse are closed with the demuxer's reason, and nothing of the
//! ambiguous message reaches the origin.

use crate::support;

use bytes::Bytes;
use livegate_rtmp::encode::{
    self, AggregatePart, CSID_CONTROL, CSID_VIDEO, ChunkCrafter, MessageHeader, TYPE_ABORT,
    TYPE_AGGREGATE, TYPE_AUDIO, TYPE_SET_CHUNK_SIZE, TYPE_VIDEO, nginx,
};
use livegate_rtmp::flv::{VideoTag, parse_video_tag};
use livegate_rtmp::{DemuxError, DemuxEvent, Demuxer, VideoCodec};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;
use support::{AttackPublisher, FlvTag, GateStack, RawClient, Tee, flv_tags};

const FIXTURE: &[u8] = include_bytes!("../fixtures/ffmpeg-publish-avc.rtmp");
/// The stream key the fixture publishes.
const FIXTURE_KEY: &str = "testkey123";
/// Video timestamps of crafted sessions start here, so every header needs the 4-byte
/// extended timestamp (and every fmt 3 chunk its slot).
const EXTENDED_BASE: u32 = 0x0100_0000;
/// A chunk stream the crafted sessions use besides video.
const CSID_SPARE: u32 = 4;
const WAIT: Duration = Duration::from_secs(15);

/// A video frame as livegate's demuxer reports it or as nginx recorded it.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    keyframe: bool,
    codec: VideoCodec,
    /// Decode timestamp minus the first keyframe's (32-bit, as RTMP and FLV carry it).
    dts_from_first_keyframe: u32,
    composition_ms: i64,
    data: Bytes,
}

/// Frames from the first keyframe on: nginx's `record` skips what comes before it.
fn from_first_keyframe(frames: Vec<(u32, Frame)>) -> Vec<Frame> {
    let Some(start) = frames.iter().position(|(_, frame)| frame.keyframe) else {
        return Vec::new();
    };
    let base = frames[start].0;
    frames
        .into_iter()
        .skip(start)
        .map(|(dts, frame)| Frame {
            dts_from_first_keyframe: dts.wrapping_sub(base),
            ..frame
        })
        .collect()
}

/// What livegate's demuxer reports for the bytes a publisher sent: the frames, and the
/// error that made it stop, if any.
fn demuxed(sent: &[u8]) -> (Vec<Frame>, Option<DemuxError>) {
    let mut demuxer = Demuxer::default();
    let mut events = Vec::new();
    let error = demuxer.feed(sent, &mut events).err();
    let frames = events
        .into_iter()
        .filter_map(|event| match event {
            DemuxEvent::VideoFrame(frame) => Some((
                frame.dts_ms as u32,
                Frame {
                    keyframe: frame.keyframe,
                    codec: frame.codec,
                    dts_from_first_keyframe: 0,
                    composition_ms: frame.pts_ms - frame.dts_ms,
                    data: frame.data,
                },
            )),
            _ => None,
        })
        .collect();
    (from_first_keyframe(frames), error)
}

/// The video frames of an FLV file (decoder configurations left out).
fn flv_frames(tags: &[FlvTag]) -> Vec<(u32, Frame)> {
    tags.iter()
        .filter(|tag| tag.type_id == TYPE_VIDEO)
        .filter_map(
            |tag| match parse_video_tag(&Bytes::from(tag.body.clone())) {
                Ok(VideoTag::Frame {
                    codec,
                    keyframe,
                    composition_time_ms,
                    data,
                }) => Some((
                    tag.timestamp,
                    Frame {
                        keyframe,
                        codec,
                        dts_from_first_keyframe: 0,
                        composition_ms: i64::from(composition_time_ms),
                        data,
                    },
                )),
                _ => None,
            },
        )
        .collect()
}

/// What the origin recorded of `key`, once the session is over.
fn recorded(stack: &GateStack, key: &str) -> Vec<Frame> {
    let file = support::finished_recording(&stack.origin, key);
    if file.is_empty() {
        return Vec::new();
    }
    from_first_keyframe(flv_frames(&flv_tags(&file)))
}

/// Frame-by-frame equality, reporting the first difference rather than two long lists.
fn assert_same_frames(session: &str, demuxer: &[Frame], origin: &[Frame]) {
    for (index, (seen, recorded)) in demuxer.iter().zip(origin).enumerate() {
        let first_byte = seen
            .data
            .iter()
            .zip(&recorded.data)
            .position(|(a, b)| a != b);
        assert!(
            seen == recorded,
            "{session}: frame {index} differs (payload first differs at byte {first_byte:?})\n  \
             livegate's demuxer: {}\n  origin recorded:    {}",
            describe(seen),
            describe(recorded)
        );
    }
    assert_eq!(
        demuxer.len(),
        origin.len(),
        "{session}: livegate's demuxer saw {} frames from the first keyframe, the origin recorded {}",
        demuxer.len(),
        origin.len()
    );
}

fn describe(frame: &Frame) -> String {
    format!(
        "keyframe {} {:?} dts +{} ms cts {} ms, {} bytes starting {:02x?}",
        frame.keyframe,
        frame.codec,
        frame.dts_from_first_keyframe,
        frame.composition_ms,
        frame.data.len(),
        &frame.data[..frame.data.len().min(12)]
    )
}

/// H.264 footage on a list: its FLV tags, and the list (`livegate hash --keyframes` of
/// the same file: each keyframe decoded alone, as the live path does).
struct Media {
    _dir: tempfile::TempDir,
    file: PathBuf,
    list: PathBuf,
    /// The AVC sequence header's tag body.
    config: Vec<u8>,
    /// The video frames' tags, in order.
    frames: Vec<FlvTag>,
}

fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("media dir");
        let file = dir.path().join("known.flv");
        let x264 = support::x264_args(30);
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "mandelbrot=s=640x360:r=30:start_scale=2:end_scale=0.2,trim=duration=3",
        ];
        args.extend(x264.iter().map(String::as_str));
        args.extend(["-an", "-f", "flv", file.to_str().expect("utf-8 path")]);
        support::ffmpeg(&args);
        let list = dir.path().join("known.csv");
        std::fs::write(&list, support::livegate_hash(&["--keyframes"], &file)).expect("write list");
        let tags = flv_tags(&std::fs::read(&file).expect("read media"));
        let mut video = tags.into_iter().filter(|tag| tag.type_id == TYPE_VIDEO);
        let config = video.next().expect("AVC sequence header").body;
        assert_eq!(
            config[..2],
            [0x17, 0],
            "first video tag is the sequence header"
        );
        // Coded frames only (AVCPacketType 1): ffmpeg ends with an end-of-sequence tag.
        let frames: Vec<FlvTag> = video.filter(|tag| tag.body[1] == 1).collect();
        assert!(frames.iter().filter(|tag| is_keyframe(tag)).count() >= 3);
        Media {
            _dir: dir,
            file,
            list,
            config,
            frames,
        }
    })
}

fn is_keyframe(tag: &FlvTag) -> bool {
    tag.body[0] >> 4 == 1
}

fn video_header(timestamp: u32) -> MessageHeader {
    MessageHeader {
        timestamp,
        type_id: TYPE_VIDEO,
        stream_id: 1,
    }
}

/// Checks that livegate inspected `key`'s listed footage: an audit record of `event`
/// naming the list at distance 0.
fn assert_matched(stack: &GateStack, key: &str, event: &str) -> Value {
    let record = stack.wait_for_record(key, event, WAIT).unwrap_or_else(|| {
        panic!(
            "{key}: no {event} record; audit: {:#?}\nlivegate log:\n{}",
            support::audit_records(&stack.audit),
            stack.livegate.raw_log()
        )
    });
    assert_eq!(record["signal"]["list"], "known", "{key}: {record}");
    assert_eq!(record["signal"]["distance"], 0, "{key}: {record}");
    record
}

/// Publishes a crafted session through `stack`: `craft` writes everything after
/// `publish`. In shadow mode the publisher leaves once livegate matched its footage (so
/// the whole stream reached the origin); returns the bytes sent.
fn publish_crafted(
    stack: &GateStack,
    key: &str,
    craft: impl FnOnce(&mut ChunkCrafter, &mut Vec<u8>),
) -> Vec<u8> {
    let mut publisher = AttackPublisher::connect(stack.listen, "live", key);
    let mut out = Vec::new();
    craft(&mut ChunkCrafter::default(), &mut out);
    publisher.send(&out);
    assert_matched(stack, key, "shadow_cut");
    publisher.close()
}

/// The differential check of a session livegate relayed whole: once it is over, the
/// origin recorded exactly the frames livegate's demuxer saw in the bytes sent.
fn assert_origin_saw_what_livegate_saw(stack: &GateStack, key: &str, sent: &[u8]) {
    stack.livegate.session_closed_for_key(key, WAIT);
    let (seen, error) = demuxed(sent);
    assert_eq!(error, None, "{key}: livegate's demuxer refused the session");
    assert_same_frames(key, &seen, &recorded(stack, key));
    assert_eq!(seen.len(), media().frames.len(), "{key}: frames seen");
}

/// Writes the media's video (sequence header, then every frame) the way `write` chunks
/// each message; `write` gets the frame's index (`None` for the sequence header), its
/// RTMP timestamp and its tag body.
fn craft_video(
    crafter: &mut ChunkCrafter,
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut ChunkCrafter, &mut Vec<u8>, Option<usize>, u32, &[u8]),
) {
    let media = media();
    write(crafter, out, None, EXTENDED_BASE, &media.config);
    for (index, tag) in media.frames.iter().enumerate() {
        write(
            crafter,
            out,
            Some(index),
            EXTENDED_BASE + tag.timestamp,
            &tag.body,
        );
    }
}

/// A 3-byte message on the spare chunk stream: what the attack's keyframe tails imitate.
const SPARE_PAYLOAD: [u8; 3] = [0xAF, 0x01, 0x21];

/// `body` (an AVC frame) padded to `length` bytes with an H.264 filler-data NAL unit,
/// which decoders skip, whose last bytes are `tail`.
fn padded_with_filler(body: &[u8], length: usize, tail: &[u8]) -> Vec<u8> {
    let filler_len = length - body.len() - 4;
    let mut out = body.to_vec();
    out.extend_from_slice(&(filler_len as u32).to_be_bytes());
    out.push(0x0C);
    out.extend(std::iter::repeat_n(0xFF, filler_len - 1 - tail.len()));
    out.extend_from_slice(tail);
    out
}

/// A whole fmt 3 chunk of a message of `SPARE_PAYLOAD`'s length on the spare chunk
/// stream.
fn spare_fmt3_chunk() -> Vec<u8> {
    let mut chunk = Vec::new();
    encode::write_basic_header(&mut chunk, 3, CSID_SPARE);
    chunk.extend_from_slice(&SPARE_PAYLOAD);
    chunk
}

/// The parser differential of issue 10: each keyframe is one chunk of `chunk_size` bytes
/// and one continuation whose extended-timestamp slot holds 4 bytes other than the
/// timestamp. nginx-rtmp skips them; a reader that takes them for payload reads a
/// corrupted keyframe ending 4 bytes early, and those 4 bytes — the keyframe's tail, in a
/// filler NAL unit — then read as a fmt 3 chunk of a tiny message on a spare chunk stream,
/// which resynchronises it.
fn extended_slot_attack(crafter: &mut ChunkCrafter, out: &mut Vec<u8>) {
    let media = media();
    let largest = media.frames.iter().map(|tag| tag.body.len()).max();
    let chunk_size = largest.unwrap_or_default().max(256) as u32;
    crafter.set_chunk_size(out, chunk_size);
    let spare = MessageHeader {
        timestamp: 0,
        type_id: TYPE_AUDIO,
        stream_id: 1,
    };
    crafter.message(out, 0, CSID_SPARE, &spare, &SPARE_PAYLOAD, None);
    craft_video(crafter, out, |crafter, out, index, timestamp, body| {
        let header = video_header(timestamp);
        let keyframe = index.is_some_and(|i| is_keyframe(&media.frames[i]));
        if keyframe {
            let payload = padded_with_filler(body, chunk_size as usize + 64, &spare_fmt3_chunk());
            crafter.message(
                out,
                0,
                CSID_VIDEO,
                &header,
                &payload,
                Some(*b"\xDE\xAD\xBE\xEF"),
            );
        } else {
            crafter.message(out, 0, CSID_VIDEO, &header, body, None);
        }
    });
}

#[test]
fn captured_and_live_ffmpeg_sessions_reach_the_origin_as_livegate_saw_them() {
    let stack = GateStack::start(&media().list, "mode = \"shadow\"");

    // (a) The captured ffmpeg session, replayed byte for byte.
    let mut replay = RawClient::connect(stack.listen);
    replay.send(FIXTURE);
    thread::sleep(Duration::from_secs(1));
    drop(replay);
    let closed = stack.livegate.session_closed_for_key(FIXTURE_KEY, WAIT);
    let (seen, error) = demuxed(FIXTURE);
    assert_eq!(error, None);
    assert_same_frames("captured session", &seen, &recorded(&stack, FIXTURE_KEY));
    // livegate's own count (it saw all 45 frames, 3 of them keyframes).
    assert_eq!(closed["frames"], 45, "{closed}");
    assert_eq!(closed["keyframes"], 3, "{closed}");

    // (b) A live ffmpeg publisher, the bytes it sent recorded by a tee.
    let key = "live-ffmpeg-differential";
    let tee = Tee::start(stack.listen);
    let mut ffmpeg =
        support::publish_file(&media().file, &format!("rtmp://{}/live/{key}", tee.addr));
    let status = ffmpeg.wait_for(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "ffmpeg: {status:?}");
    let (sent, _) = tee.digests(WAIT);
    assert_matched(&stack, key, "shadow_cut");
    assert_origin_saw_what_livegate_saw(&stack, key, &sent.content);
}

#[test]
fn crafted_sessions_reach_the_origin_as_livegate_saw_them() {
    let media = media();
    let stack = GateStack::start(&media.list, "mode = \"shadow\"");

    // Chunk size raised between messages, from 128 up to larger than any frame.
    let key = "crafted-chunk-size-changes";
    let sent = publish_crafted(&stack, key, |crafter, out| {
        let sizes = [200u32, 333, 1000, 4096, 5000, 65536];
        craft_video(crafter, out, |crafter, out, index, timestamp, body| {
            if let Some(index) = index.filter(|index| index % 10 == 0)
                && let Some(&size) = sizes.get(index / 10)
            {
                crafter.set_chunk_size(out, size);
            }
            crafter.message(out, 0, CSID_VIDEO, &video_header(timestamp), body, None);
        });
    });
    assert_origin_saw_what_livegate_saw(&stack, key, &sent);

    // Video alternating between two chunk streams, each opened by an extended fmt 0
    // header and then fmt 1 (or, for an equal length, fmt 2) headers with small deltas;
    // every video chunk followed by a chunk of an audio message in progress on the spare
    // chunk stream.
    let key = "crafted-interleaved-chunk-streams";
    let sent = publish_crafted(&stack, key, |crafter, out| {
        let audio = MessageHeader {
            timestamp: 0,
            type_id: TYPE_AUDIO,
            stream_id: 1,
        };
        let mut previous: [Option<(u32, usize)>; 2] = [None, None];
        craft_video(crafter, out, |crafter, out, index, timestamp, body| {
            let lane = index.map_or(0, |i| i % 2);
            let csid = CSID_VIDEO + lane as u32;
            let (fmt, header) = match previous[lane] {
                None => (0, video_header(timestamp)),
                Some((last, length)) => {
                    let fmt = if length == body.len() { 2 } else { 1 };
                    (fmt, video_header(timestamp - last))
                }
            };
            previous[lane] = Some((timestamp, body.len()));
            crafter.start(out, fmt, csid, &header, body);
            crafter.start(out, 0, CSID_SPARE, &audio, &[0xAF; 700]);
            while crafter.next_chunk(out, csid, None) | crafter.next_chunk(out, CSID_SPARE, None) {}
        });
    });
    assert_origin_saw_what_livegate_saw(&stack, key, &sent);

    // Every five frames in one aggregate message.
    let key = "crafted-aggregate-messages";
    let sent = publish_crafted(&stack, key, |crafter, out| aggregated(crafter, out, false));
    assert_origin_saw_what_livegate_saw(&stack, key, &sent);
}

/// The media's frames five by five in aggregate messages (after the sequence header on
/// its own); `nested`: each aggregate the only part of an outer aggregate, which
/// nginx-rtmp unpacks recursively (its aggregate handler hands every part, whatever its
/// type, to its message handlers).
fn aggregated(crafter: &mut ChunkCrafter, out: &mut Vec<u8>, nested: bool) {
    let media = media();
    crafter.set_chunk_size(out, 4096);
    let config = video_header(EXTENDED_BASE);
    crafter.message(out, 0, CSID_VIDEO, &config, &media.config, None);
    for group in media.frames.chunks(5) {
        let parts: Vec<AggregatePart<'_>> = group
            .iter()
            .map(|tag| AggregatePart {
                type_id: TYPE_VIDEO,
                timestamp: tag.timestamp,
                body: &tag.body,
            })
            .collect();
        let mut body = encode::aggregate(&parts);
        if nested {
            body = encode::aggregate(&[AggregatePart {
                type_id: TYPE_AGGREGATE,
                timestamp: group[0].timestamp,
                body: &body,
            }]);
        }
        let header = MessageHeader {
            timestamp: EXTENDED_BASE + group[0].timestamp,
            type_id: TYPE_AGGREGATE,
            stream_id: 1,
        };
        crafter.message(out, 0, CSID_VIDEO, &header, &body, None);
    }
}

/// Video inside an aggregate inside an aggregate: nginx-rtmp records it (its aggregate
/// handler dispatches each part by type, aggregates included). livegate must read those
/// frames or refuse the stream.
#[test]
fn video_in_nested_aggregates_is_inspected_or_refused() {
    let mut crafted = Vec::new();
    aggregated(&mut ChunkCrafter::default(), &mut crafted, true);
    let stack = GateStack::start(&media().list, "mode = \"shadow\"");
    relay_attack(&stack, "nested-aggregates", &crafted, "shadow_cut");
}

/// Issue 10, item 1: 4 bytes other than the timestamp in the extended-timestamp slot of
/// each keyframe's continuation chunk. livegate must read the keyframes nginx-rtmp
/// records — and so match the listed footage — or refuse the stream before any of it
/// reaches the origin.
#[test]
fn garbage_in_extended_timestamp_slots_does_not_hide_keyframes() {
    let media = media();
    let mut crafted = Vec::new();
    extended_slot_attack(&mut ChunkCrafter::default(), &mut crafted);
    // The attack is real: nginx-rtmp reads every frame as ffmpeg wrote it, keyframes
    // only padded with a filler NAL unit (which decoders skip).
    let reading = encode::nginx::read(&crafted, u32::MAX);
    assert_eq!(reading.stop, None);
    let video: Vec<_> = reading
        .messages
        .iter()
        .filter(|message| message.type_id == TYPE_VIDEO)
        .collect();
    assert_eq!(video.len(), 1 + media.frames.len());
    for (message, tag) in video[1..].iter().zip(&media.frames) {
        assert!(message.payload.starts_with(&tag.body));
        assert_eq!(message.payload.len() > tag.body.len(), is_keyframe(tag));
    }

    // Shadow mode: what livegate lets through reaches the origin whole.
    let stack = GateStack::start(&media.list, "mode = \"shadow\"");
    relay_attack(
        &stack,
        "extended-slot-attack-shadow",
        &crafted,
        "shadow_cut",
    );
    // Enforce mode: the listed keyframe is cut (or the stream refused).
    let stack = GateStack::start(&media.list, "mode = \"enforce\"");
    relay_attack(&stack, "extended-slot-attack-enforce", &crafted, "cut");
}

/// Publishes `crafted` (everything after `publish`) of listed footage through `stack`.
/// If livegate's demuxer reads the bytes, livegate must match the footage (an audit
/// record of `event`), and in shadow mode the origin must record exactly the frames the
/// demuxer saw; if it refuses them, the session must be closed before any of the refused
/// part reaches the origin.
fn relay_attack(stack: &GateStack, key: &str, crafted: &[u8], event: &str) {
    let mut publisher = AttackPublisher::connect(stack.listen, "live", key);
    publisher.send(crafted);
    let (_, error) = demuxed(&publisher.sent);
    match error {
        None => {
            eprintln!("{key}: livegate's demuxer reads the session");
            let record = stack.wait_for_record(key, event, WAIT);
            let cut = publisher.closed_within(Duration::from_millis(500));
            let sent = publisher.close();
            if event == "shadow_cut" {
                assert_origin_saw_what_livegate_saw(stack, key, &sent);
            } else {
                assert!(cut, "{key}: livegate did not close the session");
            }
            assert!(
                record.is_some(),
                "{key}: livegate did not match the listed footage:\n{}",
                stack.livegate.raw_log()
            );
            assert_matched(stack, key, event);
        }
        Some(refusal) => {
            eprintln!("{key}: livegate's demuxer refuses the session: {refusal}");
            assert!(
                publisher.closed_within(WAIT),
                "{key}: livegate did not close a session it cannot read"
            );
            let sent = publisher.close();
            assert_refused_before_origin(stack, key, &sent, &refusal);
        }
    }
}

/// Checks a session livegate had to refuse: it was closed with the demuxer's reason, and
/// the origin recorded only frames the demuxer saw before the refusal (nothing of the
/// ambiguous message, nor after it). Returns how many frames the origin recorded.
fn assert_refused_before_origin(
    stack: &GateStack,
    key: &str,
    sent: &[u8],
    refusal: &DemuxError,
) -> usize {
    let closed = stack.livegate.session_closed_for_key(key, WAIT);
    let reason = closed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cannot be inspected") && reason.contains(&refusal.to_string()),
        "{key}: closed for {reason:?}, expected the demuxer's refusal {refusal}"
    );
    let (before, error) = demuxed(sent);
    assert_eq!(error.as_ref(), Some(refusal), "{key}");
    let origin = recorded(stack, key);
    assert!(
        origin.len() <= before.len(),
        "{key}: the origin recorded {} frames, livegate's demuxer saw only {} before refusing",
        origin.len(),
        before.len()
    );
    assert_same_frames(key, &before[..origin.len()], &origin);
    origin.len()
}

/// How a refusal case writes the ambiguous part: given the crafter, the output, the
/// keyframe it hides and that keyframe's timestamp.
type AmbiguousPart = fn(&mut ChunkCrafter, &mut Vec<u8>, &[u8], u32);

/// Bytes RTMP servers read in different ways, which livegate must refuse: a Set Chunk
/// Size lowering the size (nginx-rtmp may drop bytes it already read), a fmt 1 header in
/// the middle of a message, an Abort in the middle of a message. Each session sends a
/// clean first GOP, pauses so that it reaches the origin, then the ambiguous part at the
/// second keyframe: livegate must close the session with the demuxer's reason, the origin
/// must have the whole first GOP and nothing after it.
#[test]
fn ambiguous_chunk_streams_are_refused_before_the_origin_sees_them() {
    let media = media();
    let stack = GateStack::start(&media.list, "mode = \"shadow\"");
    let first_gop = 1 + media.frames[1..]
        .iter()
        .position(is_keyframe)
        .expect("a second keyframe");
    let cases: [(&str, AmbiguousPart); 3] = [
        (
            "refused-lowered-chunk-size",
            |crafter, out, keyframe, timestamp| {
                crafter.set_chunk_size(out, 1000);
                crafter.message(out, 0, CSID_VIDEO, &video_header(timestamp), keyframe, None);
            },
        ),
        (
            "refused-header-mid-message",
            |crafter, out, keyframe, timestamp| {
                crafter.start(out, 0, CSID_VIDEO, &video_header(timestamp), keyframe);
                // nginx-rtmp takes the new length and type and keeps the bytes received.
                crafter.start(out, 1, CSID_VIDEO, &video_header(33), &keyframe[..200]);
            },
        ),
        (
            "refused-abort-mid-message",
            |crafter, out, keyframe, timestamp| {
                crafter.start(out, 0, CSID_VIDEO, &video_header(timestamp), keyframe);
                let abort = MessageHeader {
                    timestamp: 0,
                    type_id: TYPE_ABORT,
                    stream_id: 0,
                };
                let aborted = CSID_VIDEO.to_be_bytes();
                crafter.message(out, 0, CSID_CONTROL, &abort, &aborted, None);
                while crafter.next_chunk(out, CSID_VIDEO, None) {}
            },
        ),
    ];
    for (key, ambiguous_part) in cases {
        let mut publisher = AttackPublisher::connect(stack.listen, "live", key);
        let mut crafter = ChunkCrafter::default();
        let mut clean = Vec::new();
        crafter.set_chunk_size(&mut clean, 4096);
        let config = video_header(EXTENDED_BASE);
        crafter.message(&mut clean, 0, CSID_VIDEO, &config, &media.config, None);
        let frame = |crafter: &mut ChunkCrafter, out: &mut Vec<u8>, tag: &FlvTag| {
            let header = video_header(EXTENDED_BASE + tag.timestamp);
            crafter.message(out, 0, CSID_VIDEO, &header, &tag.body, None);
        };
        for tag in &media.frames[..first_gop] {
            frame(&mut crafter, &mut clean, tag);
        }
        publisher.send(&clean);
        thread::sleep(Duration::from_millis(500));
        let mut ambiguous = Vec::new();
        let keyframe = &media.frames[first_gop];
        ambiguous_part(
            &mut crafter,
            &mut ambiguous,
            &keyframe.body,
            EXTENDED_BASE + keyframe.timestamp,
        );
        // The rest of the footage, which a reader that did not refuse would go on to.
        for tag in &media.frames[first_gop + 1..] {
            frame(&mut crafter, &mut ambiguous, tag);
        }
        publisher.send(&ambiguous);
        let (before, error) = demuxed(&publisher.sent);
        let refusal = error.unwrap_or_else(|| {
            panic!("{key}: livegate's demuxer accepted bytes origins read in different ways")
        });
        assert_eq!(before.len(), first_gop, "{key}: frames before the refusal");
        assert!(
            publisher.closed_within(WAIT),
            "{key}: livegate did not close the session"
        );
        let sent = publisher.close();
        let recorded = assert_refused_before_origin(&stack, key, &sent, &refusal);
        assert_eq!(
            recorded, first_gop,
            "{key}: the origin lacks part of the clean GOP"
        );
    }
}

/// A Set Chunk Size above nginx-rtmp's maximum (10 MiB), which nginx-rtmp ignores: the
/// publisher goes on chunking at the old size, as nginx-rtmp reads it. A reader that
/// applies the size reads each frame's continuation headers as payload and the frame's
/// last bytes as chunks: every multi-chunk frame is padded (filler NAL unit) so that
/// those bytes are a whole fmt 1 chunk of an audio message on the spare chunk stream,
/// which resynchronises such a reader.
#[test]
fn chunk_size_the_origin_ignores_is_not_applied() {
    const CHUNK_SIZE: usize = 4096;
    // fmt 3 basic header + extended-timestamp slot, per continuation chunk.
    const CONTINUATION_HEADER: usize = 5;
    let media = media();
    let mut crafter = ChunkCrafter::default();
    let mut crafted = Vec::new();
    crafter.set_chunk_size(&mut crafted, CHUNK_SIZE as u32);
    // A plain message rather than `set_chunk_size`, so the crafter keeps the old size.
    let ignored = MessageHeader {
        timestamp: 0,
        type_id: TYPE_SET_CHUNK_SIZE,
        stream_id: 0,
    };
    let size = nginx::MAX_CHUNK_SIZE + 1;
    crafter.message(
        &mut crafted,
        0,
        CSID_CONTROL,
        &ignored,
        &size.to_be_bytes(),
        None,
    );
    let spare = MessageHeader {
        timestamp: 0,
        type_id: TYPE_AUDIO,
        stream_id: 1,
    };
    crafter.message(&mut crafted, 0, CSID_SPARE, &spare, &SPARE_PAYLOAD, None);
    craft_video(
        &mut crafter,
        &mut crafted,
        |crafter, out, _, timestamp, body| {
            let header = video_header(timestamp);
            if body.len() <= CHUNK_SIZE {
                crafter.message(out, 0, CSID_VIDEO, &header, body, None);
                return;
            }
            // Pad to a length whose continuation headers (and so the bytes left over by a
            // reader that skips none) number at least 8 bytes, all inside the last chunk.
            let (length, tail) = (body.len() + CHUNK_SIZE..)
                .map(|length| (length, (length - 1) / CHUNK_SIZE * CONTINUATION_HEADER))
                .find(|&(length, tail)| {
                    tail >= 8 && length % CHUNK_SIZE >= tail && length - body.len() >= tail + 5
                })
                .expect("a padded length");
            let mut fake = Vec::new();
            encode::write_chunk_header(&mut fake, 1, CSID_SPARE, &spare, tail - 8);
            fake.resize(tail, 0xAF);
            let payload = padded_with_filler(body, length, &fake);
            crafter.message(out, 0, CSID_VIDEO, &header, &payload, None);
        },
    );
    let stack = GateStack::start(&media.list, "mode = \"shadow\"");
    relay_attack(
        &stack,
        "chunk-size-the-origin-ignores",
        &crafted,
        "shadow_cut",
    );
}
