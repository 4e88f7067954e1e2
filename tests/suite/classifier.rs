//! The classifier signal on real ONNX Runtime: a tiny model built here with Python's
//! `onnx` whose scores are known exactly; NudeNet's YOLOv8n detector cross-checked
//! against the same model run by Python's onnxruntime on the same tensor, and finding the
//! face in a photograph as NudeNet's own Python pipeline does; and the startup errors for
//! a wrong input shape or output, a missing or invalid model and a missing runtime.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use livegate::signals::classifier::{
    BoxMapping, Classifier, ClassifierConfig, ClassifierError, LabelScore, preprocess,
};
use livegate_signals::pdq::Image;

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.onnx");
    support::run_python(support::TINY_ONNX_MODEL, &[&path]);
    path
}

fn config(toml_text: &str, model: &Path) -> ClassifierConfig {
    let mut config: ClassifierConfig = toml::from_str(toml_text).expect("classifier config");
    config.model = model.to_path_buf();
    config.runtime_library = Some(support::onnx_runtime_library());
    config.validate().expect("valid config");
    config
}

const TINY_CONFIG: &str = r#"
model = "set by the test"
input_size = [8, 8]
labels = ["first_channel", "second_channel"]
"#;

fn solid(width: usize, height: usize, rgb: [u8; 3]) -> Vec<u8> {
    rgb.repeat(width * height)
}

fn scores(found: &[LabelScore]) -> Vec<(String, f32)> {
    found
        .iter()
        .map(|score| (score.label.to_string(), score.score))
        .collect()
}

#[test]
fn tiny_classification_model_scores_are_the_known_function_of_the_pixels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path());
    let pixels = solid(32, 24, [51, 102, 153]);
    let picture = Image {
        data: &pixels,
        width: 32,
        height: 24,
        stride: 32 * 3,
    };
    let tolerance = 1e-6;

    let mut rgb = Classifier::load(Arc::new(config(TINY_CONFIG, &model))).expect("load");
    let found = scores(&rgb.classify(&picture).expect("classify"));
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].0, "first_channel");
    assert!((found[0].1 - 0.2).abs() < tolerance, "{found:?}");
    assert!(
        (found[1].1 - (2.0 * 0.4 + 0.25)).abs() < tolerance,
        "{found:?}"
    );

    // BGR order and mean/std normalisation reach the model as configured.
    let bgr_config =
        format!("{TINY_CONFIG}color = \"bgr\"\nmean = [0.1, 0.2, 0.3]\nstd = [0.5, 0.5, 0.5]\n");
    let mut bgr = Classifier::load(Arc::new(config(&bgr_config, &model))).expect("load");
    let found = scores(&bgr.classify(&picture).expect("classify"));
    assert!(
        (found[0].1 - (0.6 - 0.1) / 0.5).abs() < tolerance,
        "{found:?}"
    );
    assert!(
        (found[1].1 - (2.0 * (0.4 - 0.2) / 0.5 + 0.25)).abs() < tolerance,
        "{found:?}"
    );

    // Softmax turns the two logits into probabilities.
    let softmax_config = format!("{TINY_CONFIG}softmax = true\n");
    let mut softmax = Classifier::load(Arc::new(config(&softmax_config, &model))).expect("load");
    let found = scores(&softmax.classify(&picture).expect("classify"));
    let (a, b) = (0.2f32.exp(), 1.05f32.exp());
    assert!((found[0].1 - a / (a + b)).abs() < tolerance, "{found:?}");
    assert!((found[1].1 - b / (a + b)).abs() < tolerance, "{found:?}");
}

#[test]
fn startup_errors_name_the_key_and_what_was_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path());

    let wrong_size = config(&TINY_CONFIG.replace("[8, 8]", "[224, 224]"), &model);
    let error = Classifier::load(Arc::new(wrong_size))
        .err()
        .expect("wrong size");
    assert!(
        matches!(error, ClassifierError::InputShape { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("classifier.input_size/layout"),
        "{message}"
    );
    assert!(
        message.contains("[1, 3, 8, 8]") && message.contains("[1, 3, 224, 224]"),
        "{message}"
    );

    let nhwc = config(&format!("{TINY_CONFIG}layout = \"nhwc\"\n"), &model);
    let error = Classifier::load(Arc::new(nhwc))
        .err()
        .expect("wrong layout");
    assert!(error.to_string().contains("nhwc [1, 8, 8, 3]"), "{error}");

    let three_labels = TINY_CONFIG.replace("\"second_channel\"]", "\"second_channel\", \"third\"]");
    let error = Classifier::load(Arc::new(config(&three_labels, &model)))
        .err()
        .expect("label count");
    assert!(
        matches!(error, ClassifierError::OutputShape { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("expects 3 scores"), "{error}");

    let detection = format!("{TINY_CONFIG}output = \"detection\"\n");
    let error = Classifier::load(Arc::new(config(&detection, &model)))
        .err()
        .expect("not a detector");
    assert!(error.to_string().contains("[1, 6, N]"), "{error}");

    let missing = config(TINY_CONFIG, &dir.path().join("absent.onnx"));
    let error = Classifier::load(Arc::new(missing)).err().expect("no model");
    assert!(
        error.to_string().starts_with("classifier.model:"),
        "{error}"
    );
    assert!(error.to_string().contains("absent.onnx"), "{error}");

    let not_a_model = dir.path().join("garbage.onnx");
    std::fs::write(&not_a_model, b"not an onnx model").expect("write");
    let error = Classifier::load(Arc::new(config(TINY_CONFIG, &not_a_model)))
        .err()
        .expect("garbage model");
    assert!(matches!(error, ClassifierError::Model { .. }), "{error}");

    let mut no_runtime = config(TINY_CONFIG, &model);
    no_runtime.runtime_library = Some(dir.path().join("libonnxruntime.so"));
    let error = Classifier::load(Arc::new(no_runtime))
        .err()
        .expect("no runtime");
    assert!(matches!(error, ClassifierError::Runtime { .. }), "{error}");
    assert!(
        error.to_string().starts_with("classifier.runtime_library:"),
        "{error}"
    );
}

const NUDENET_CONFIG: &str = r#"
model = "set by the test"
input_size = [320, 320]
output = "detection"
labels = ["FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
  "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED",
  "BELLY_COVERED", "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE",
  "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED",
  "BUTTOCKS_COVERED"]
"#;

/// Per class: the highest score of a candidate whose best class it is, and that box.
const NUDENET_REFERENCE: &str = r#"
import sys, numpy as np, onnxruntime
model, tensor_path = sys.argv[1], sys.argv[2]
session = onnxruntime.InferenceSession(model, providers=['CPUExecutionProvider'])
tensor = np.fromfile(tensor_path, dtype='<f4').reshape(1, 3, 320, 320)
out = session.run(None, {session.get_inputs()[0].name: tensor})[0][0].T
classes = out[:, 4:].argmax(axis=1)
best = out[:, 4:].max(axis=1)
for c in range(out.shape[1] - 4):
    rows = np.where(classes == c)[0]
    if len(rows) == 0:
        continue
    r = rows[best[rows].argmax()]
    cx, cy, w, h = out[r, :4]
    print(c, repr(float(best[r])), repr(float(cx - w / 2)), repr(float(cy - h / 2)))
"#;

#[test]
fn nudenet_detector_matches_python_onnxruntime_on_the_same_tensor() {
    let model = Path::new(&support::run_python(
        "import os, nudenet; print(os.path.join(os.path.dirname(nudenet.__file__), '320n.onnx'))",
        &[],
    )
    .trim())
    .to_path_buf();
    let mut detector_config = config(NUDENET_CONFIG, &model);

    // A synthetic test pattern (no people): colour gradients and a checkerboard, 16:9.
    let (width, height) = (640usize, 360usize);
    let pixels: Vec<u8> = (0..height)
        .flat_map(|y| {
            (0..width).flat_map(move |x| {
                let check = if (x / 40 + y / 40) % 2 == 0 { 200 } else { 40 };
                [(x * 255 / width) as u8, (y * 255 / height) as u8, check]
            })
        })
        .collect();
    let picture = Image {
        data: &pixels,
        width,
        height,
        stride: width * 3,
    };

    // With the defaults (score ≥ 0.25, NMS) a test pattern shows nothing.
    let mut detector = Classifier::load(Arc::new(detector_config.clone())).expect("load nudenet");
    let found = detector.classify(&picture).expect("detect");
    assert!(found.is_empty(), "a test pattern detected as {found:?}");

    // The candidates, unsuppressed, compared with Python on the very same tensor.
    let mut tensor = vec![0.0f32; 3 * 320 * 320];
    let mapping = preprocess(&detector_config, &picture, &mut tensor);
    assert!(
        (mapping.scale - 2.0).abs() < 1e-6,
        "640 wide letterboxed into 320"
    );
    detector_config.score_threshold = 0.0;
    detector_config.nms_iou = 1.0;
    let mut all = Classifier::load(Arc::new(detector_config)).expect("load nudenet");
    let unscaled = BoxMapping {
        scale: 1.0,
        frame_width: f32::MAX,
        frame_height: f32::MAX,
    };
    let candidates = all.classify_tensor(&tensor, unscaled).expect("detect");
    // YOLOv8n at 320 has 2100 candidates; the best 1000 enter NMS.
    assert_eq!(candidates.len(), 1000);
    let floor = candidates.last().expect("candidates").score;

    let dir = tempfile::tempdir().expect("tempdir");
    let tensor_path = dir.path().join("tensor.f32");
    let bytes: Vec<u8> = tensor
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect();
    std::fs::write(&tensor_path, bytes).expect("write tensor");
    let reference = support::run_python(NUDENET_REFERENCE, &[&model, &tensor_path]);
    let labels: Vec<String> = toml::from_str::<ClassifierConfig>(NUDENET_CONFIG)
        .expect("config")
        .labels;
    let mut compared = 0;
    for line in reference.lines() {
        let fields: Vec<f32> = line
            .split_whitespace()
            .map(|field| field.parse().expect("number"))
            .collect();
        let label = &labels[fields[0] as usize];
        if fields[1] < floor {
            continue;
        }
        let ours = candidates
            .iter()
            .find(|candidate| *candidate.label == **label)
            .expect("same class present");
        let bbox = ours.bbox.expect("detections have boxes");
        assert!(
            (ours.score - fields[1]).abs() < 1e-4,
            "{label}: {} vs {}",
            ours.score,
            fields[1]
        );
        // Boxes clamped at 0 by livegate; Python's are raw.
        assert!(
            (bbox[0] - fields[2].max(0.0)).abs() < 0.05,
            "{label} x: {bbox:?} vs {line}"
        );
        assert!(
            (bbox[1] - fields[3].max(0.0)).abs() < 0.05,
            "{label} y: {bbox:?} vs {line}"
        );
        compared += 1;
    }
    assert!(
        compared >= 3,
        "python reported {compared} classes: {reference}"
    );
}

/// NudeNet's own Python pipeline on a photograph: `[{"class", "score", "box"}]`.
const NUDENET_DETECT: &str = r#"
import json, sys
from nudenet import NudeDetector
print(json.dumps(NudeDetector().detect(sys.argv[1])))
"#;

/// The same model on the photograph resized by OpenCV (`INTER_LINEAR`), in RGB: the top
/// FACE_FEMALE score.
const OPENCV_RGB_FACE_SCORE: &str = r#"
import sys, cv2, numpy as np, onnxruntime
session = onnxruntime.InferenceSession(sys.argv[2], providers=['CPUExecutionProvider'])
rgb = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
blob = (cv2.resize(rgb, (320, 320), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255)
out = session.run(None, {session.get_inputs()[0].name: blob.transpose(2, 0, 1)[None].copy()})[0]
print(float(out[0, 4 + 1].max()))
"#;

#[test]
fn nudenet_finds_the_face_in_a_photograph_as_nudenet_itself_does() {
    // scikit-image's `astronaut` (public-domain NASA portrait of Eileen Collins), 512x512.
    let photo = PathBuf::from(
        support::run_python(
            "import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), 'data', 'astronaut.png'))",
            &[],
        )
        .trim(),
    );
    let model = PathBuf::from(
        support::run_python(
            "import os, nudenet; print(os.path.join(os.path.dirname(nudenet.__file__), '320n.onnx'))",
            &[],
        )
        .trim(),
    );
    let rgb = image::open(&photo)
        .expect("decode the photograph")
        .to_rgb8();
    let picture = Image {
        data: rgb.as_raw(),
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        stride: rgb.width() as usize * 3,
    };
    let face = |color: &str| {
        let text = format!("{NUDENET_CONFIG}color = \"{color}\"\n");
        let mut detector = Classifier::load(Arc::new(config(&text, &model))).expect("load");
        let found = detector.classify(&picture).expect("detect");
        let best = found.first().expect("livegate detects something").clone();
        assert_eq!(&*best.label, "FACE_FEMALE", "{found:?}");
        best
    };

    // The model as trained (RGB): livegate's resize against OpenCV's, same model.
    let ours = face("rgb");
    let opencv: f32 = support::run_python(OPENCV_RGB_FACE_SCORE, &[&photo, &model])
        .trim()
        .parse()
        .expect("score");
    assert!(
        (ours.score - opencv).abs() < 0.01,
        "{} vs {opencv}",
        ours.score
    );

    // NudeNet's own pipeline swaps channels twice (RGBA2BGR on a BGR picture, then
    // swapRB), so it feeds the model BGR: livegate with `color = "bgr"` reproduces it.
    let theirs: serde_json::Value =
        serde_json::from_str(&support::run_python(NUDENET_DETECT, &[&photo])).expect("json");
    let their_face = &theirs[0];
    assert_eq!(
        their_face["class"], "FACE_FEMALE",
        "python nudenet: {theirs}"
    );
    let ours = face("bgr");
    let their_score = their_face["score"].as_f64().expect("score") as f32;
    assert!(
        (ours.score - their_score).abs() < 0.01,
        "{} vs {their_score}",
        ours.score
    );
    let bbox = ours.bbox.expect("box");
    for (ours, theirs) in bbox.iter().zip(their_face["box"].as_array().expect("box")) {
        let theirs = theirs.as_f64().expect("number") as f32;
        // NudeNet truncates its box to whole pixels.
        assert!(
            (ours - theirs).abs() < 2.0,
            "box {bbox:?} vs {}",
            their_face["box"]
        );
    }
}
