//! The classifier end to end: a live stream through livegate with a `[classifier]` whose
//! tiny model (built here with Python's `onnx`) always scores its rule's label above the
//! threshold. Enforce mode: the first firing is audited awaiting confirmation, the second
//! cuts the stream with a classifier signal and a time to cut. Shadow mode: audited as
//! `shadow_cut`, the stream keeps flowing. And the real NudeNet detector on a stream of a
//! photograph: the face is alerted with its score and box. Real nginx-rtmp origin, real
//! ffmpeg publisher.

use crate::support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{Livegate, NginxOrigin, Publisher, free_port, key_fingerprint, local};

pub(crate) fn tiny_model(dir: &Path) -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let path = dir.join("tiny.onnx");
    let output = Command::new(&python)
        .arg("-c")
        .arg(support::TINY_ONNX_MODEL)
        .arg(&path)
        .output()
        .expect("run .venv/bin/python (scripts/install-deps.sh)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    path
}

struct Stack {
    _origin: NginxOrigin,
    livegate: Livegate,
    listen: std::net::SocketAddr,
    audit: PathBuf,
    _dir: tempfile::TempDir,
}

/// livegate with the tiny model; ONNX Runtime is found in .venv by the default search.
fn start_stack(mode: &str) -> Stack {
    start_stack_with(mode, |dir| {
        format!(
            "model = \"{}\"\ninput_size = [8, 8]\n\
             labels = [\"first_channel\", \"second_channel\"]\nevery_nth_sample = 1\n\
             [[classifier.rule]]\nlabel = \"second_channel\"\nthreshold = 0.25\naction = \"cut\"\n\
             confirm_matches = 2\nconfirm_window = 3\n",
            tiny_model(dir).display()
        )
    })
}

/// livegate with `[classifier]` made by `classifier` (given a scratch directory).
fn start_stack_with(mode: &str, classifier: impl FnOnce(&Path) -> String) -> Stack {
    let origin = NginxOrigin::start();
    let dir = support::scratch_dir();
    let audit = dir.path().join("audit.jsonl");
    let listen = local(free_port());
    let config = format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{}\"\n\
         [policy]\nmode = \"{mode}\"\n\
         [actuator]\naudit_log = \"{}\"\n\
         [classifier]\n{}",
        origin.addr,
        audit.display(),
        classifier(dir.path())
    );
    let livegate = Livegate::start(&config, 1);
    Stack {
        _origin: origin,
        livegate,
        listen,
        audit,
        _dir: dir,
    }
}

fn classifier_records(audit: &Path, key: &str) -> Vec<Value> {
    let fingerprint = key_fingerprint(key);
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| {
            record["key_fingerprint"] == fingerprint.as_str()
                && record["signal"]["kind"] == "classifier"
        })
        .collect()
}

fn venv_path(python_expression: &str) -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let output = Command::new(python)
        .arg("-c")
        .arg(format!(
            "import os, nudenet, skimage; print({python_expression})"
        ))
        .output()
        .expect("run .venv/bin/python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn assert_classifier_signal(record: &Value) {
    let signal = &record["signal"];
    assert_eq!(signal["label"], "second_channel", "{record}");
    assert!(
        signal["score"].as_f64().is_some_and(|score| score > 0.25),
        "{record}"
    );
    assert!(
        signal.get("hash").is_none() && signal.get("distance").is_none(),
        "{record}"
    );
}

#[test]
fn a_confirmed_classifier_rule_cuts_the_stream_with_its_time_to_cut() {
    let stack = start_stack("enforce");
    let key = "classifier-enforce-key";
    let publisher = Publisher::start(&format!("rtmp://{}/live/{key}", stack.listen), 20, 1);
    let (succeeded, _) = publisher.finish(Duration::from_secs(40));
    assert!(
        !succeeded,
        "stream was not cut\n{}",
        stack.livegate.raw_log()
    );
    let records = classifier_records(&stack.audit, key);
    let events: Vec<&str> = records.iter().filter_map(|r| r["event"].as_str()).collect();
    assert_eq!(events, ["match", "cut"], "{records:#?}");
    assert!(
        records[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("awaiting confirmation"))
    );
    assert_classifier_signal(&records[1]);
    assert!(
        records[1]["time_to_cut_ms"].as_f64().is_some(),
        "{}",
        records[1]
    );
}

#[test]
fn shadow_mode_audits_a_classifier_cut_and_keeps_the_stream() {
    let stack = start_stack("shadow");
    let key = "classifier-shadow-key";
    let publisher = Publisher::start(&format!("rtmp://{}/live/{key}", stack.listen), 6, 1);
    let (succeeded, stderr) = publisher.finish(Duration::from_secs(30));
    assert!(
        succeeded,
        "shadow-mode stream was cut: {stderr}\n{}",
        stack.livegate.raw_log()
    );
    let records = classifier_records(&stack.audit, key);
    let shadow_cuts: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "shadow_cut")
        .collect();
    assert!(!shadow_cuts.is_empty(), "{records:#?}");
    assert_classifier_signal(shadow_cuts[0]);
    assert!(records.iter().all(|r| r["event"] != "cut"), "{records:#?}");
}

#[test]
fn nudenet_alerts_the_face_in_a_streamed_photograph() {
    let model = venv_path("os.path.join(os.path.dirname(nudenet.__file__), '320n.onnx')");
    let photo =
        venv_path("os.path.join(os.path.dirname(skimage.__file__), 'data', 'astronaut.png')");
    let stack = start_stack_with("enforce", |_| {
        format!(
            "model = \"{}\"\ninput_size = [320, 320]\noutput = \"detection\"\n\
             labels = [\"FEMALE_GENITALIA_COVERED\", \"FACE_FEMALE\", \"BUTTOCKS_EXPOSED\", \
             \"FEMALE_BREAST_EXPOSED\", \"FEMALE_GENITALIA_EXPOSED\", \"MALE_BREAST_EXPOSED\", \
             \"ANUS_EXPOSED\", \"FEET_EXPOSED\", \"BELLY_COVERED\", \"FEET_COVERED\", \
             \"ARMPITS_COVERED\", \"ARMPITS_EXPOSED\", \"FACE_MALE\", \"BELLY_EXPOSED\", \
             \"MALE_GENITALIA_EXPOSED\", \"ANUS_COVERED\", \"FEMALE_BREAST_COVERED\", \
             \"BUTTOCKS_COVERED\"]\nevery_nth_sample = 1\n\
             [[classifier.rule]]\nlabel = \"FACE_FEMALE\"\nthreshold = 0.5\n",
            model.display()
        )
    });
    let key = "classifier-photo-key";
    let url = format!("rtmp://{}/live/{key}", stack.listen);
    let gop = support::x264_args(30);
    let mut publisher = support::ChildGuard::spawn(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-loop", "1", "-framerate", "30", "-i"])
            .arg(&photo)
            .args(["-t", "4", "-vf", "format=yuv420p"])
            .args(&gop)
            .args(["-f", "flv", &url])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
        "ffmpeg",
    );
    let status = publisher.wait_for(Duration::from_secs(30));
    assert!(
        status.is_some_and(|status| status.success()),
        "an alert rule must not cut: {status:?}\n{}",
        stack.livegate.raw_log()
    );
    let records = classifier_records(&stack.audit, key);
    assert!(
        !records.is_empty(),
        "no classifier record\n{}",
        stack.livegate.raw_log()
    );
    for record in &records {
        assert_eq!(record["event"], "alert", "{record}");
        let signal = &record["signal"];
        assert_eq!(signal["label"], "FACE_FEMALE", "{record}");
        assert!(
            signal["score"].as_f64().is_some_and(|score| score > 0.5),
            "{record}"
        );
        let bbox: Vec<f64> = signal["bbox"]
            .as_array()
            .expect("a detection has a box")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        // The face in the 512x512 portrait is about x 173-275, y 82-180.
        assert!(
            bbox.len() == 4 && (bbox[0] - 173.0).abs() < 15.0 && (bbox[1] - 82.0).abs() < 15.0,
            "{record}"
        );
    }
}
