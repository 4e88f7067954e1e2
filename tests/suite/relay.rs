//! The relay end to end: Debian's ffmpeg publishes through livegate to a real
//! nginx-rtmp origin while bad clients hit the same livegate on their own connections.

use crate::support;

use livegate_rtmp::encode::{self, CSID_COMMAND, ChunkWriter, TYPE_AUDIO, TYPE_COMMAND_AMF0};
use serde_json::Value;
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;
use support::{
    Livegate, NginxOrigin, Publisher, RawClient, Tee, free_port, key_fingerprint, local,
};

const STREAM_SECONDS: u32 = 10;
const GOP_SECONDS: u32 = 2;
const STREAM_KEY: &str = "relay-test-key-0123456789";

fn ingest(listen: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{origin}\"\n\
         publish_timeout_ms = 8000\nconnect_timeout_ms = 1000\n"
    )
}

/// One bad client: what it sends, and words its "session closed" reason must contain.
struct BadInput {
    name: &'static str,
    bytes: Vec<u8>,
    reason: &'static str,
}

fn bad_inputs() -> Vec<BadInput> {
    let handshake = encode::client_handshake();
    let with_handshake = |tail: Vec<u8>| [handshake.clone(), tail].concat();
    let set_chunk_size = |size: u32| {
        let mut out = Vec::new();
        ChunkWriter::default().set_chunk_size(&mut out, size);
        with_handshake(out)
    };
    let oversized_message = {
        // A header announcing a 16 MiB - 1 message: beyond the 8 MiB default cap.
        let mut out = Vec::new();
        encode::write_basic_header(&mut out, 0, CSID_COMMAND);
        out.extend_from_slice(&[0, 0, 0, 0xFF, 0xFF, 0xFF, TYPE_COMMAND_AMF0, 0, 0, 0, 0]);
        out.extend_from_slice(&[0u8; 64]);
        with_handshake(out)
    };
    let many_chunk_streams = {
        let writer = ChunkWriter::default();
        let mut out = Vec::new();
        for csid in 3..3000 {
            writer.write_message(&mut out, csid, 0, TYPE_AUDIO, 1, &[0xAF, 0x01, 0, 0]);
        }
        with_handshake(out)
    };
    let truncated = {
        let writer = ChunkWriter::default();
        let full = encode::publish_preamble(&writer, "live", "truncated-key");
        full[..handshake.len() + 40].to_vec()
    };
    vec![
        BadInput {
            name: "garbage after the handshake",
            bytes: with_handshake(vec![0xFF; 4096]),
            reason: "cannot be inspected",
        },
        BadInput {
            name: "truncated stream",
            bytes: truncated,
            reason: "publisher closed",
        },
        BadInput {
            name: "chunk size 0",
            bytes: set_chunk_size(0),
            reason: "cannot be inspected",
        },
        BadInput {
            name: "chunk size 2^31-1",
            bytes: set_chunk_size(0x7FFF_FFFF),
            reason: "cannot be inspected",
        },
        BadInput {
            name: "message length beyond the cap",
            bytes: oversized_message,
            reason: "cannot be inspected",
        },
        BadInput {
            name: "thousands of chunk-stream ids",
            bytes: many_chunk_streams,
            reason: "cannot be inspected",
        },
        BadInput {
            name: "HTTP request",
            bytes: b"GET / HTTP/1.1\r\nHost: livegate\r\n\r\n".to_vec(),
            reason: "not RTMP",
        },
    ]
}

fn closed_reason(livegate: &Livegate, client: SocketAddr) -> String {
    let line = livegate.session_closed_for(client, Duration::from_secs(10));
    format!(
        "{} ({})",
        line["reason"].as_str().unwrap_or_default(),
        line["closer"].as_str().unwrap_or_default()
    )
}

#[test]
fn relays_a_real_publish_byte_for_byte_while_bad_clients_are_rejected() {
    let origin = NginxOrigin::start();
    // publisher → tee → livegate → tee → nginx: the tees fingerprint both directions.
    let origin_side = Tee::start(origin.addr);
    let tapped_listen = local(free_port());
    let bad_listen = local(free_port());
    let unreachable_listen = local(free_port());
    let closing_listen = local(free_port());
    let closing_origin = support::start_closing_origin(4096);
    let config = [
        ingest(tapped_listen, origin_side.addr),
        ingest(bad_listen, origin.addr),
        ingest(unreachable_listen, local(free_port())),
        ingest(closing_listen, closing_origin),
    ]
    .concat();
    let livegate = Livegate::start(&config, 4);
    let publisher_side = Tee::start(tapped_listen);
    let url = format!("rtmp://{}/live/{STREAM_KEY}", publisher_side.addr);
    let publisher = Publisher::start(&url, STREAM_SECONDS, GOP_SECONDS);

    // While the good stream runs, each bad client on its own connection.
    thread::sleep(Duration::from_secs(1));
    for bad in bad_inputs() {
        let mut client = RawClient::connect(bad_listen);
        client.send(&bad.bytes);
        if bad.name == "truncated stream" {
            let _ = client.stream.shutdown(std::net::Shutdown::Write);
        }
        assert!(
            client.closed_within(Duration::from_secs(10)),
            "{}: livegate kept the connection open",
            bad.name
        );
        let reason = closed_reason(&livegate, client.local);
        assert!(
            reason.contains(bad.reason),
            "{}: reason {reason:?} should mention {:?}",
            bad.name,
            bad.reason
        );
    }
    // The origin is dialled once the publisher has started its handshake.
    let mut unreachable = RawClient::connect(unreachable_listen);
    unreachable.send(&encode::client_handshake());
    assert!(
        unreachable.closed_within(Duration::from_secs(5)),
        "origin unreachable: connection left open"
    );
    let reason = closed_reason(&livegate, unreachable.local);
    assert!(
        reason.contains("unreachable") && reason.contains("(origin)"),
        "{reason}"
    );

    let mut mid_stream = RawClient::connect(closing_listen);
    let writer = ChunkWriter::default();
    mid_stream.send(&encode::publish_preamble(
        &writer,
        "live",
        "closing-origin-key",
    ));
    let filler = encode::avc_video_tag(true, &[0u8; 6000]);
    let mut media = Vec::new();
    writer.write_message(
        &mut media,
        encode::CSID_VIDEO,
        0,
        encode::TYPE_VIDEO,
        1,
        &filler,
    );
    mid_stream.send(&media);
    assert!(
        mid_stream.closed_within(Duration::from_secs(5)),
        "origin closing mid-stream: connection left open"
    );
    let reason = closed_reason(&livegate, mid_stream.local);
    assert!(reason.contains("(origin)"), "{reason}");

    // The good stream was not disturbed.
    let (ok, stderr) = publisher.finish(Duration::from_secs(STREAM_SECONDS as u64 + 20));
    assert!(
        ok,
        "ffmpeg publish failed: {stderr}\nlivegate log:\n{}",
        livegate.raw_log()
    );
    let (sent_up, sent_down) = publisher_side.digests(Duration::from_secs(10));
    let (arrived_up, arrived_down) = origin_side.digests(Duration::from_secs(10));
    assert!(
        sent_up.bytes > 100_000,
        "publisher sent only {} bytes",
        sent_up.bytes
    );
    assert_eq!(
        sent_up, arrived_up,
        "publisher→origin bytes changed in the relay"
    );
    // The origin's last replies (to deleteStream) may come after the publisher has left:
    // what reached the publisher is exactly what the origin sent, up to that point.
    assert!(
        arrived_down.starts_with(&sent_down) && sent_down.bytes > 3073,
        "origin→publisher bytes changed in the relay: origin sent {arrived_down:?}, publisher got {sent_down:?}"
    );

    let good = livegate.session_closed_for(tapped_client(&livegate), Duration::from_secs(10));
    assert_eq!(good["closer"], "publisher", "{good}");
    assert_eq!(good["app"], "live", "{good}");
    let key = good["key"].as_str().unwrap_or_default();
    assert!(key.ends_with(&key_fingerprint(STREAM_KEY)), "key {key}");
    assert!(
        !livegate.raw_log().contains(STREAM_KEY),
        "the stream key leaked into the log"
    );
    assert_eq!(good["codec"], "Avc", "{good}");
    let expected_keyframes = (STREAM_SECONDS / GOP_SECONDS) as u64;
    assert_eq!(
        good["keyframes"].as_u64(),
        Some(expected_keyframes),
        "{good}"
    );
    assert_eq!(
        good["frames"].as_u64(),
        Some(30 * STREAM_SECONDS as u64),
        "{good}"
    );
    assert_eq!(
        good["bytes_from_publisher"].as_u64(),
        Some(sent_up.bytes),
        "{good}"
    );

    // The origin served the stream: its recording is the full stream.
    let recording = origin.recording(STREAM_KEY);
    let probe = support::probe_video(&recording);
    assert_eq!(probe.codec, "h264", "{probe:?}");
    assert_eq!((probe.width, probe.height), (640, 360), "{probe:?}");
    assert_eq!(probe.frames, 30 * STREAM_SECONDS as u64, "{probe:?}");
}

/// The client address of the session that came through the tapped ingest (the tee's).
fn tapped_client(livegate: &Livegate) -> SocketAddr {
    let logs = livegate.logs();
    let publishing: Vec<&Value> = logs
        .iter()
        .filter(|line| line["message"] == "publish" && line["app"] == "live")
        .collect();
    let session = publishing
        .iter()
        .find(|line| {
            line["key"]
                .as_str()
                .is_some_and(|key| key.ends_with(&key_fingerprint(STREAM_KEY)))
        })
        .map(|line| line["session"].clone())
        .unwrap_or_else(|| panic!("no publish of the test key; log:\n{}", livegate.raw_log()));
    logs.iter()
        .find(|line| line["message"] == "session opened" && line["session"] == session)
        .and_then(|line| line["client"].as_str())
        .and_then(|client| client.parse().ok())
        .unwrap_or_else(|| panic!("no session opened line for session {session}"))
}

/// What livegate refuses at a command never reaches the origin, not even in part: an
/// unparseable `connect` (held until parsed, then refused), and a second `publish`
/// under another key on a connection already publishing (every publish is admitted).
#[test]
fn refused_commands_never_reach_the_origin() {
    use encode::Amf0;
    let origin = NginxOrigin::start();
    let writer = ChunkWriter::default();
    let command = |out: &mut Vec<u8>, stream: u32, payload: Vec<u8>| {
        writer.write_message(out, CSID_COMMAND, 0, TYPE_COMMAND_AMF0, stream, &payload);
    };
    let handshake = encode::client_handshake();
    // 16 000 nested AMF0 objects (64 KB, under max_command_bytes): beyond the decoder's
    // depth cap, and sent in small pieces so most of it arrives before the close.
    let mut deep_connect = encode::command("connect", 1.0, &[]);
    for _ in 0..16_000 {
        deep_connect.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    let mut unparseable = handshake.clone();
    command(&mut unparseable, 0, deep_connect);

    let first_publish = encode::publish_preamble(&writer, "live", "first-key-0123456789");
    let mut republish = Vec::new();
    command(
        &mut republish,
        0,
        encode::command("deleteStream", 4.0, &[Amf0::Null, Amf0::Number(1.0)]),
    );
    command(
        &mut republish,
        0,
        encode::command("createStream", 5.0, &[Amf0::Null]),
    );
    command(
        &mut republish,
        1,
        encode::command(
            "publish",
            6.0,
            &[
                Amf0::Null,
                Amf0::String("second-key-0123456789"),
                Amf0::String("live"),
            ],
        ),
    );

    // (case, what the client sends in phases, reason, closer, what the origin gets)
    for (name, phases, reason, closer, reaches_origin) in [
        (
            "unparseable connect",
            vec![unparseable],
            "cannot be inspected",
            "publisher",
            handshake,
        ),
        (
            "second publish",
            vec![first_publish.clone(), republish],
            "one stream key per connection",
            "policy",
            first_publish,
        ),
    ] {
        let tee = Tee::start(origin.addr);
        let listen = local(free_port());
        let livegate = Livegate::start(&ingest(listen, tee.addr), 1);
        let mut client = RawClient::connect(listen);
        for phase in &phases {
            for piece in phase.chunks(1000) {
                client.send(piece);
                thread::sleep(Duration::from_millis(1));
            }
            thread::sleep(Duration::from_millis(300));
        }
        assert!(
            client.closed_within(Duration::from_secs(10)),
            "{name}: left open"
        );
        let line = livegate.session_closed_for(client.local, Duration::from_secs(10));
        let why = line["reason"].as_str().unwrap_or_default();
        assert!(why.contains(reason), "{name}: reason {why:?}");
        assert_eq!(line["closer"], closer, "{name}: {line}");
        let (to_origin, _) = tee.digests(Duration::from_secs(10));
        // Everything before the refused command reached the origin, nothing after it.
        assert!(
            to_origin.content == reaches_origin,
            "{name}: the origin got {} bytes, expected the {} before the refused command",
            to_origin.bytes,
            reaches_origin.len()
        );
    }
}

/// livegate inspects keyframes: video that keeps flowing without one (intra refresh, or
/// IDR pictures flagged as inter frames and then none at all) cannot be inspected.
#[test]
fn video_without_keyframes_is_uninspectable() {
    let origin = NginxOrigin::start();
    let listen = local(free_port());
    let config = format!(
        "{}max_keyframe_interval_ms = 1000\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        ingest(listen, origin.addr)
    );
    let livegate = Livegate::start(&config, 1);
    let writer = ChunkWriter::default();
    let mut client = RawClient::connect(listen);
    client.send(&encode::publish_preamble(
        &writer,
        "live",
        "no-keyframes-key",
    ));
    // Non-IDR slices (NAL type 1), flagged as inter frames, at 25 frames per second.
    let inter = encode::avc_video_tag(false, &[0, 0, 0, 3, 0x41, 0x9A, 0x00]);
    let mut closed = false;
    for frame in 0..100u32 {
        let mut media = Vec::new();
        writer.write_message(
            &mut media,
            encode::CSID_VIDEO,
            frame * 40,
            encode::TYPE_VIDEO,
            1,
            &inter,
        );
        client.send(&media);
        if client.closed_within(Duration::from_millis(40)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a stream without keyframes flowed for 4 s");
    let line = livegate.session_closed_for(client.local, Duration::from_secs(10));
    let reason = line["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("without a keyframe"), "{line}");
    let metrics = support::http::scrape(livegate.admin_addr());
    let sample =
        "livegate_streams_uninspectable_total{reason=\"no_keyframe\",on_parse_error=\"cut\"}";
    assert_eq!(support::http::metric(&metrics, sample), 1.0);
}
