//! The classifier end to end: a live stream through livegate with a `[classifier]` whose
//! tiny model (built here with Python's `onnx`) always scores its rule's label above the
//! threshold. Enforce mode: the first firing is audited awaiting confirmation, the second
//! cuts the stream with a classifier signal and a time to cut. Shadow mode: audited as
//! `shadow_cut`, the stream keeps flowing. Real nginx-rtmp origin, real ffmpeg publisher.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{Livegate, NginxOrigin, Publisher, free_port, key_fingerprint, local};

/// `[1, 3, 8, 8]` → `[mean(ch0), 2 * mean(ch1) + 0.25]`: the second score is always > 0.25.
const TINY_MODEL: &str = r#"
import sys, onnx
from onnx import helper, TensorProto
weights = helper.make_tensor('w', TensorProto.FLOAT, [3, 2], [1, 0, 0, 2, 0, 0])
bias = helper.make_tensor('b', TensorProto.FLOAT, [2], [0, 0.25])
graph = helper.make_graph(
    [helper.make_node('ReduceMean', ['image'], ['means'], axes=[2, 3], keepdims=0),
     helper.make_node('MatMul', ['means', 'w'], ['scaled']),
     helper.make_node('Add', ['scaled', 'b'], ['scores'])],
    'tiny', [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 8, 8])],
    [helper.make_tensor_value_info('scores', TensorProto.FLOAT, [1, 2])], [weights, bias])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
model.ir_version = 8
onnx.save(model, sys.argv[1])
"#;

fn tiny_model(dir: &Path) -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let path = dir.join("tiny.onnx");
    let output = Command::new(&python)
        .arg("-c")
        .arg(TINY_MODEL)
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
    let origin = NginxOrigin::start();
    let dir = support::scratch_dir();
    let audit = dir.path().join("audit.jsonl");
    let listen = local(free_port());
    let config = format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{}\"\n\
         [policy]\nmode = \"{mode}\"\n\
         [actuator]\naudit_log = \"{}\"\n\
         [classifier]\nmodel = \"{}\"\ninput_size = [8, 8]\n\
         labels = [\"first_channel\", \"second_channel\"]\nevery_nth_sample = 1\n\
         [[classifier.rule]]\nlabel = \"second_channel\"\nthreshold = 0.25\naction = \"cut\"\n\
         confirm_matches = 2\nconfirm_window = 3\n",
        origin.addr,
        audit.display(),
        tiny_model(dir.path()).display()
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
