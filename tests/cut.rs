//! The mission end to end: streams showing listed footage — as is, and altered the way
//! re-uploaders alter it — are cut within a fraction of a second of the first matching
//! keyframe, benign streams are never cut, shadow mode only audits, and a cut key is
//! refused when it comes back. Real nginx-rtmp origin, real ffmpeg publishers.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{GateStack, audit_records, records_for};

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
        let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
            .args(["hash", "--every", "1"])
            .arg(&known)
            .output()
            .expect("run livegate hash");
        assert!(
            output.status.success(),
            "livegate hash: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let list = dir.path().join("known.csv");
        std::fs::write(&list, &output.stdout).expect("write list");
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

/// ffmpeg pushing a pre-encoded file at real-time rate.
fn publish(file: &Path, url: &str) -> support::ChildGuard {
    support::ChildGuard::spawn(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-re",
                "-i",
            ])
            .arg(file)
            .args(["-c", "copy", "-f", "flv", url])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "ffmpeg publisher",
    )
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
        publishers.push((name.to_string(), key, publish(file, &url)));
    }
    let benign_key = "benign-long-stream-key";
    let mut benign_publisher = publish(
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
    let mut again = publish(
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
    let mut publisher = publish(&file, &format!("rtmp://{}/live/{key}", stack.listen));
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
