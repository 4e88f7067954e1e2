//! The mission end to end: streams showing listed footage — as is, and altered the way
//! re-uploaders alter it — are cut within a fraction of a second of the first matching
//! keyframe, benign streams are never cut, shadow mode only audits, and a cut key is
//! refused when it comes back. Streams analysis cannot inspect (pictures over
//! `max_picture_pixels`, keyframes decoded mostly by concealment) follow `on_parse_error`,
//! and FFmpeg's own log lines stay JSON. Real nginx-rtmp origin, real ffmpeg publishers.

use crate::support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::http::{metric, scrape};
use support::{GateStack, audit_records, records_for};
use support::{Livegate, NginxOrigin, Publisher, free_port, local};

/// Seconds of benign footage before the listed clip starts.
const BENIGN_SECONDS: u32 = 10;
const CLIP_SECONDS: u32 = 6;
const GOP_FRAMES: u32 = 60;
/// Generous bound for a noisy CI machine; the benchmark measures the real figure.
const MAX_TIME_TO_CUT_MS: f64 = 1500.0;

/// Pre-encoded media shared by the tests of this file (made once, at full speed).
struct Media {
    dir: tempfile::TempDir,
    list: PathBuf,
}

/// Encodes `inputs` (ffmpeg input and filter options) into `out` with the tests' H.264
/// settings (2 s GOPs at 30 fps) followed by `extra` output options.
fn encode(inputs: &[&str], extra: &[&str], out: &Path) {
    let gop = support::x264_args(GOP_FRAMES);
    let out = out.to_str().expect("utf-8 path");
    let mut args: Vec<&str> = inputs.to_vec();
    args.extend(gop.iter().map(String::as_str));
    args.extend_from_slice(extra);
    args.push(out);
    support::ffmpeg(&args);
}

/// Benign footage, then the listed clip with `alteration` applied (an ffmpeg filter on
/// the clip part), then `whole` (a filter) and `extra` encoder options for the stream.
fn stream_file(dir: &Path, name: &str, alteration: &str, whole: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.mp4"));
    let (benign, known) = (dir.join("benign.mp4"), dir.join("known.mp4"));
    let filter = format!("[1:v]{alteration}[clip];[0:v][clip]concat=n=2:v=1:a=0,{whole}[v]");
    let inputs = [
        "-i",
        benign.to_str().expect("utf-8 path"),
        "-i",
        known.to_str().expect("utf-8 path"),
        "-filter_complex",
        &filter,
        "-map",
        "[v]",
    ];
    encode(&inputs, extra, &out);
    out
}

fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("media dir");
        // The "known" footage: rich, large-scale structure, as real footage has.
        let known = dir.path().join("known.mp4");
        let clip = format!(
            "mandelbrot=s=1280x720:r=30:start_scale=2:end_scale=0.05,trim=duration={CLIP_SECONDS}"
        );
        encode(&["-f", "lavfi", "-i", &clip], &[], &known);
        let benign = format!("testsrc2=s=1280x720:r=30:d={BENIGN_SECONDS}");
        encode(
            &["-f", "lavfi", "-i", &benign],
            &[],
            &dir.path().join("benign.mp4"),
        );
        // The list, made by livegate itself from the known footage.
        let list = dir.path().join("known.csv");
        std::fs::write(&list, support::livegate_hash(&["--every", "1"], &known))
            .expect("write list");
        Media { dir, list }
    })
}

/// 32 s of benign footage of several kinds, none of it listed.
fn long_benign_file(dir: &Path) -> PathBuf {
    let out = dir.join("benign-long.mp4");
    let inputs = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=1280x720:r=30:d=12",
        "-f",
        "lavfi",
        "-i",
        "life=s=1280x720:r=30:seed=3:mold=10:ratio=0.2,trim=duration=10",
        "-f",
        "lavfi",
        "-i",
        "smptehdbars=s=1280x720:r=30:d=10",
        "-filter_complex",
        "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]",
        "-map",
        "[v]",
    ];
    encode(&inputs, &[], &out);
    out
}

fn start_stack(policy: &str) -> GateStack {
    GateStack::start(&media().list, policy)
}

#[test]
fn listed_footage_is_cut_altered_or_not_while_benign_streams_flow() {
    let dir = media().dir.path();
    let variants: Vec<(&str, PathBuf)> = vec![
        (
            "as-listed",
            stream_file(dir, "as-listed", "null", "null", &[]),
        ),
        (
            "low-bitrate",
            stream_file(
                dir,
                "low-bitrate",
                "null",
                "null",
                &["-b:v", "300k", "-maxrate", "300k", "-bufsize", "600k"],
            ),
        ),
        (
            "downscaled-360p",
            stream_file(dir, "downscaled-360p", "null", "scale=640:360", &[]),
        ),
        (
            "text-overlay",
            stream_file(
                dir,
                "text-overlay",
                "drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:\
                 text='LIVE  reupload':fontsize=56:fontcolor=white:box=1:boxcolor=black@0.5:x=40:y=h-110",
                "null",
                &[],
            ),
        ),
        (
            "mirrored",
            stream_file(dir, "mirrored", "hflip", "null", &[]),
        ),
        (
            "letterboxed",
            stream_file(
                dir,
                "letterboxed",
                "scale=960:540,pad=1280:720:160:90:black",
                "null",
                &[],
            ),
        ),
    ];
    let benign = long_benign_file(dir);
    let stack = start_stack("mode = \"enforce\"");

    let started = Instant::now();
    let mut publishers = Vec::new();
    for (name, file) in &variants {
        let key = format!("listed-{name}-key");
        let url = format!("rtmp://{}/live/{key}", stack.listen);
        publishers.push((name.to_string(), key, support::publish_file(file, &url)));
    }
    let benign_key = "benign-long-stream-key";
    let mut benign_publisher = support::publish_file(
        &benign,
        &format!("rtmp://{}/live/{benign_key}", stack.listen),
    );

    // Every listed stream is cut: its ffmpeg fails before the file's end.
    let stream_seconds = (BENIGN_SECONDS + CLIP_SECONDS) as u64;
    for (name, key, publisher) in &mut publishers {
        let status = publisher.wait_for(Duration::from_secs(stream_seconds + 30));
        let records = audit_records(&stack.audit);
        let cuts = records_for(&records, key, "cut");
        assert_eq!(
            cuts.len(),
            1,
            "{name}: expected one cut record; ffmpeg exited {status:?}; audit:\n{records:#?}\nlivegate log:\n{}",
            stack.livegate.raw_log()
        );
        let cut = cuts[0];
        let signal = &cut["signal"];
        assert_eq!(signal["list"], "known", "{name}: {cut}");
        assert!(
            signal["distance"]
                .as_u64()
                .is_some_and(|distance| distance <= 31),
            "{name}: {cut}"
        );
        let pts = cut["pts_seconds"].as_f64().unwrap_or_default();
        assert!(
            pts >= BENIGN_SECONDS as f64 - 0.1,
            "{name}: cut during the benign part at {pts} s: {cut}"
        );
        let time_to_cut = cut["time_to_cut_ms"].as_f64().unwrap_or(f64::MAX);
        assert!(
            time_to_cut < MAX_TIME_TO_CUT_MS,
            "{name}: time to cut {time_to_cut} ms: {cut}"
        );
        assert!(
            status.is_some_and(|status| !status.success()),
            "{name}: publisher was not cut off ({status:?})"
        );
        eprintln!(
            "{name}: cut at {pts} s, distance {} ({}), time to cut {time_to_cut:.1} ms: {}",
            signal["distance"], signal["variant"], cut["reason"]
        );
        // The origin saw the publisher go: its recording ends near the matching keyframe.
        let recorded = support::probe_video(&stack.origin.recording(key));
        let cut_by = pts + MAX_TIME_TO_CUT_MS / 1000.0 + 0.2;
        assert!(
            (recorded.frames as f64) < cut_by * 30.0,
            "{name}: origin recorded {} frames, cut was at {pts} s",
            recorded.frames
        );
    }

    // A cut key coming back within the ban window is refused at publish, whatever
    // query string it carries this time.
    let (_, banned_key, _) = &publishers[0];
    let mut again = support::publish_file(
        &variants[0].1,
        &format!("rtmp://{}/live/{banned_key}?attempt=2", stack.listen),
    );
    let status = again.wait_for(Duration::from_secs(10));
    assert!(
        status.is_some_and(|status| !status.success()),
        "banned key was not refused: {status:?}"
    );
    let records = audit_records(&stack.audit);
    assert_eq!(
        records_for(&records, banned_key, "rejected").len(),
        1,
        "audit:\n{records:#?}"
    );

    // The benign stream ran its whole 32 s, never cut, never even matched.
    let status = benign_publisher.wait_for(Duration::from_secs(60));
    assert!(
        status.is_some_and(|status| status.success()),
        "benign stream did not finish cleanly: {status:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(30));
    let records = audit_records(&stack.audit);
    for event in ["cut", "shadow_cut", "match", "alert"] {
        assert!(
            records_for(&records, benign_key, event).is_empty(),
            "benign stream got a {event} record"
        );
    }
    let probe = support::probe_video(&stack.origin.recording(benign_key));
    assert!(
        probe.frames >= 30 * 31,
        "benign recording has only {} frames",
        probe.frames
    );
}

#[test]
fn shadow_mode_audits_what_it_would_cut_and_cuts_nothing() {
    let dir = media().dir.path();
    let file = stream_file(dir, "shadow", "null", "null", &[]);
    let stack = start_stack("mode = \"shadow\"");
    let key = "shadow-mode-stream-key";
    let mut publisher =
        support::publish_file(&file, &format!("rtmp://{}/live/{key}", stack.listen));
    let status = publisher.wait_for(Duration::from_secs(
        (BENIGN_SECONDS + CLIP_SECONDS) as u64 + 30,
    ));
    assert!(
        status.is_some_and(|status| status.success()),
        "shadow-mode stream was cut: {status:?}\n{}",
        stack.livegate.raw_log()
    );
    let records = audit_records(&stack.audit);
    let shadow_cuts = records_for(&records, key, "shadow_cut");
    assert!(
        !shadow_cuts.is_empty(),
        "no shadow_cut record: {records:#?}"
    );
    assert!(
        shadow_cuts[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("shadow"),
        "{}",
        shadow_cuts[0]
    );
    assert!(records_for(&records, key, "cut").is_empty());
    let probe = support::probe_video(&stack.origin.recording(key));
    assert!(
        probe.frames >= 30 * (BENIGN_SECONDS + CLIP_SECONDS - 1) as u64,
        "origin got {} frames",
        probe.frames
    );
}

/// livegate with two listeners to one origin, one per `on_parse_error`, and metrics.
struct ParseErrorStack {
    origin: NginxOrigin,
    livegate: Livegate,
    cut: std::net::SocketAddr,
    pass: std::net::SocketAddr,
}

fn start_parse_error_stack(analysis: &str) -> ParseErrorStack {
    let origin = NginxOrigin::start();
    let (cut, pass) = (local(free_port()), local(free_port()));
    let ingest = |listen, mode| {
        format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{}\"\n\
             on_parse_error = \"{mode}\"\n",
            origin.addr
        )
    };
    let config = format!(
        "{}{}[analysis]\n{analysis}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        ingest(cut, "cut"),
        ingest(pass, "pass")
    );
    let livegate = Livegate::start(&config, 2);
    ParseErrorStack {
        origin,
        livegate,
        cut,
        pass,
    }
}

impl ParseErrorStack {
    /// The "session closed" line whose reason contains `part`.
    fn wait_for_close_mentioning(&self, part: &str) -> Value {
        let mentions = |line: &Value| {
            line["message"] == "session closed"
                && line["reason"]
                    .as_str()
                    .is_some_and(|reason| reason.contains(part))
        };
        self.livegate.wait_for_logs(
            |lines| lines.iter().any(mentions),
            Duration::from_secs(20),
            &format!("a session closed for {part:?}"),
        );
        self.livegate
            .logs()
            .into_iter()
            .find(mentions)
            .unwrap_or_default()
    }

    /// `livegate_streams_uninspectable_total` for `reason` under `on_parse_error`.
    fn uninspectable(&self, metrics: &str, reason: &str, on_parse_error: &str) -> f64 {
        metric(
            metrics,
            &format!(
                "livegate_streams_uninspectable_total{{reason=\"{reason}\",on_parse_error=\"{on_parse_error}\"}}"
            ),
        )
    }

    /// Asserts the origin recorded `key`'s stream: relayed although uninspected.
    fn assert_recorded(&self, key: &str) {
        let recording = self.origin.recording(key);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !recording.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let probe = support::probe_video(&recording);
        assert!(probe.frames > 0, "origin recording of {key}: {probe:?}");
    }
}

#[test]
fn pictures_over_max_picture_pixels_are_cut_or_relayed_uninspected() {
    // The publishers send 640x360; the cap is 320x240.
    let stack = start_parse_error_stack("max_picture_pixels = 76800");
    let cut = Publisher::start(&format!("rtmp://{}/live/big-cut", stack.cut), 6, 1);
    let pass = Publisher::start(&format!("rtmp://{}/live/big-pass", stack.pass), 3, 1);

    let closed = stack.wait_for_close_mentioning("640x360");
    assert_eq!(closed["closer"], "publisher", "{closed}");
    let reason = closed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("on_parse_error = \"cut\"")
            && reason.contains("analysis.max_picture_pixels = 76800"),
        "{reason}"
    );
    let (cut_ok, _) = cut.finish(Duration::from_secs(20));
    assert!(!cut_ok, "the oversized stream was not cut");

    let (passed, stderr) = pass.finish(Duration::from_secs(20));
    assert!(passed, "the pass-mode publisher failed: {stderr}");
    stack.assert_recorded("big-pass");
    let metrics = scrape(stack.livegate.admin_addr());
    assert_eq!(
        stack.uninspectable(&metrics, "picture_too_large", "cut"),
        1.0
    );
    assert_eq!(
        stack.uninspectable(&metrics, "picture_too_large", "pass"),
        1.0
    );
    assert!(stack.livegate.logs().iter().any(|line| {
        line["message"]
            .as_str()
            .is_some_and(|message| message.contains("relaying it uninspected"))
            && line["reason"] == "picture_too_large"
    }));
}

/// An FLV of 640x480 H.264 whose every keyframe has the middle of its slice overwritten:
/// what livegate decodes when it reads a stream's bytes other than the encoder wrote them.
fn concealed_keyframes_flv(dir: &Path) -> PathBuf {
    let path = dir.join("concealed.flv");
    let gop = support::x264_args(25);
    let mut args = vec!["-f", "lavfi", "-i", "testsrc2=s=640x480:r=25:d=5"];
    args.extend(gop.iter().map(String::as_str));
    args.extend(["-f", "flv", path.to_str().expect("utf-8 path")]);
    support::ffmpeg(&args);
    let mut flv = std::fs::read(&path).expect("read the FLV");
    // FLV: a header of DataOffset bytes, then (previous tag size, tag) pairs; a tag is
    // type, 24-bit size, timestamp (4), stream id (3), then its data.
    let mut offset = u32::from_be_bytes(flv[5..9].try_into().expect("FLV header")) as usize + 4;
    let mut corrupted = 0;
    while offset + 11 <= flv.len() {
        let size =
            u32::from_be_bytes([0, flv[offset + 1], flv[offset + 2], flv[offset + 3]]) as usize;
        let data = offset + 11..offset + 11 + size;
        // Video (9), keyframe AVC (0x17), a coded frame (AVCPacketType 1): NAL units after
        // the 3-byte composition time.
        if flv[offset] == 9 && flv[data.start] == 0x17 && flv[data.start + 1] == 1 {
            support::corrupt_largest_nal_unit(&mut flv[data.start + 5..data.end]);
            corrupted += 1;
        }
        offset = data.end + 4;
    }
    assert_eq!(corrupted, 5, "one keyframe a second for 5 s");
    std::fs::write(&path, flv).expect("write the FLV");
    path
}

#[test]
fn mostly_concealed_keyframes_make_a_stream_uninspectable_and_ffmpeg_logs_stay_json() {
    let stack = start_parse_error_stack("");
    let dir = support::scratch_dir();
    let file = concealed_keyframes_flv(dir.path());
    let mut cut = support::publish_file(&file, &format!("rtmp://{}/live/concealed-cut", stack.cut));
    let mut pass =
        support::publish_file(&file, &format!("rtmp://{}/live/concealed-pass", stack.pass));

    let closed = stack.wait_for_close_mentioning("macroblocks concealed");
    assert_eq!(closed["closer"], "publisher", "{closed}");
    let reason = closed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("of its 1200 macroblocks concealed")
            && reason.contains("analysis.max_concealed_fraction = 0.25"),
        "{reason}"
    );
    assert!(cut.wait_for(Duration::from_secs(20)).is_some());
    assert!(
        pass.wait_for(Duration::from_secs(20))
            .is_some_and(|status| status.success())
    );
    stack.assert_recorded("concealed-pass");
    let metrics = scrape(stack.livegate.admin_addr());
    assert_eq!(
        stack.uninspectable(&metrics, "keyframe_concealed", "cut"),
        1.0
    );
    assert_eq!(
        stack.uninspectable(&metrics, "keyframe_concealed", "pass"),
        1.0
    );
    assert!(metric(&metrics, "livegate_keyframes_concealed_total") >= 2.0);

    // FFmpeg reported the concealment, as a JSON line of its own (log.level = "debug"),
    // and no line of stderr is anything but JSON.
    let raw = stack.livegate.raw_log();
    for line in raw.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON log line: {line:?}"
        );
    }
    assert!(
        stack
            .livegate
            .logs()
            .iter()
            .any(|line| line["target"] == "ffmpeg"
                && line["component"] == "h264"
                && line["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("concealing"))),
        "no FFmpeg concealment line in:\n{raw}"
    );
}
