//! The second signal: an image classifier (a platform's own ONNX model) run on sampled
//! keyframes through ONNX Runtime, and the configuration of the per-label rules that
//! [`crate::policy`] applies to its scores.
//!
//! Hashes only catch footage that is already known; a classifier scores what it has never
//! seen, so by default a score leads to an alert for human review, and a cut only where a
//! rule says so (with k-of-n confirmation like hash matches).
//!
//! ONNX Runtime is loaded at run time, by [`crate::onnx`], only when `[classifier]` names
//! a model; `classifier.runtime_library` picks the library.
//!
//! Preprocessing starts from the RGB24 picture the PDQ path already converted. A
//! classification model gets the picture stretched to its input size (classifiers are
//! trained on resized crops, and stretching keeps the whole picture); a detection model
//! gets it letterboxed — scaled to fit keeping its aspect ratio, placed at the top-left,
//! the rest black — as YOLO-style detectors and NudeNet expect, and its boxes are mapped
//! back to frame pixels.

use crate::config::InvalidKey;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

use crate::media::resize::bilinear;
use crate::onnx::{self, ModelError, ModelSection, TensorElementType, TensorInfo};
use livegate_signals::pdq::Image;

/// `[classifier]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// The ONNX model file.
    pub model: PathBuf,
    /// `libonnxruntime.so`; unset: `ORT_DYLIB_PATH`, then the project's `.venv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_library: Option<PathBuf>,
    /// The model's input picture size, `[width, height]`.
    pub input_size: [u32; 2],
    #[serde(default)]
    pub layout: TensorLayout,
    #[serde(default)]
    pub color: ColorOrder,
    /// What a pixel value of 255 becomes before `mean`/`std`.
    #[serde(default)]
    pub scale: PixelScale,
    /// Subtracted per channel (in `color` order) after scaling.
    #[serde(default = "defaults::mean")]
    pub mean: [f32; 3],
    /// Divides per channel after subtracting `mean`.
    #[serde(default = "defaults::std")]
    pub std: [f32; 3],
    #[serde(default)]
    pub output: OutputKind,
    /// Classification: the model outputs logits, to be turned into probabilities.
    #[serde(default)]
    pub softmax: bool,
    /// The model's classes, in output order.
    pub labels: Vec<String>,
    /// Detection: candidate boxes scoring below this are dropped before NMS.
    #[serde(default = "defaults::score_threshold")]
    pub score_threshold: f32,
    /// Detection: a box overlapping a higher-scoring one by more than this IoU is dropped.
    #[serde(default = "defaults::nms_iou")]
    pub nms_iou: f32,
    /// Classify one of every this many analysed samples of a stream.
    #[serde(default = "defaults::every_nth_sample")]
    pub every_nth_sample: u32,
    /// Threads running the model (its own budget, apart from the hashing workers).
    #[serde(default = "defaults::workers")]
    pub workers: usize,
    /// Pictures waiting for the model; beyond it new ones are shed and counted.
    #[serde(default = "defaults::queue")]
    pub queue: usize,
    #[serde(default, rename = "rule")]
    pub rules: Vec<ClassifierRule>,
}

/// `[[classifier.rule]]`: what a label's score leads to.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassifierRule {
    pub label: String,
    /// The rule fires on a sample whose score for `label` is at least this.
    pub threshold: f32,
    #[serde(default)]
    pub action: RuleAction,
    /// The action is taken once this many of the last `confirm_window` classified
    /// samples fired.
    #[serde(default = "defaults::confirm")]
    pub confirm_matches: usize,
    #[serde(default = "defaults::confirm")]
    pub confirm_window: usize,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TensorLayout {
    #[default]
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    #[default]
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum PixelScale {
    /// 0..=255 becomes 0.0..=1.0.
    #[default]
    #[serde(rename = "0-1")]
    Unit,
    /// Pixel values are used as they are.
    #[serde(rename = "0-255")]
    Byte,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// One score per label (`[1, C]`).
    #[default]
    Classification,
    /// YOLOv8-style `[1, 4 + C, N]`: N candidate boxes (cx, cy, w, h) and C class scores.
    Detection,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Record only.
    Log,
    /// For human review.
    #[default]
    Alert,
    /// End the stream (shadow mode and the allowlist apply).
    Cut,
}

mod defaults {
    pub fn mean() -> [f32; 3] {
        [0.0; 3]
    }
    pub fn std() -> [f32; 3] {
        [1.0; 3]
    }
    pub fn score_threshold() -> f32 {
        0.25
    }
    pub fn nms_iou() -> f32 {
        0.45
    }
    pub fn every_nth_sample() -> u32 {
        5
    }
    pub fn workers() -> usize {
        1
    }
    pub fn queue() -> usize {
        4
    }
    pub fn confirm() -> usize {
        1
    }
}

/// Largest accepted model input side; bounds the tensor buffer.
const MAX_INPUT_SIDE: u32 = 4096;
/// Most labels a model may have; bounds per-sample score vectors.
const MAX_LABELS: usize = 10_000;
/// Detection candidates entering NMS, best first.
const MAX_NMS_CANDIDATES: usize = 1000;

impl ClassifierConfig {
    /// Checks ranges and rules; the error is `(key, message)` for the config's error type.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        let invalid =
            |key: &str, message: String| Err(InvalidKey::new(format!("classifier.{key}"), message));
        let [width, height] = self.input_size;
        if !(1..=MAX_INPUT_SIDE).contains(&width) || !(1..=MAX_INPUT_SIDE).contains(&height) {
            return invalid(
                "input_size",
                format!("[{width}, {height}]: each side must be between 1 and {MAX_INPUT_SIDE}"),
            );
        }
        if self.labels.is_empty() || self.labels.len() > MAX_LABELS {
            return invalid(
                "labels",
                format!("must list between 1 and {MAX_LABELS} labels"),
            );
        }
        if let Some(channel) = self.std.iter().position(|value| !value.is_normal()) {
            return invalid(
                "std",
                format!(
                    "channel {channel} is {}: must be non-zero",
                    self.std[channel]
                ),
            );
        }
        if self.mean.iter().any(|value| !value.is_finite()) {
            return invalid("mean", "must be finite numbers".into());
        }
        if !(0.0..=1.0).contains(&self.score_threshold) {
            return invalid("score_threshold", "must be between 0 and 1".into());
        }
        if !(0.0..=1.0).contains(&self.nms_iou) {
            return invalid("nms_iou", "must be between 0 and 1".into());
        }
        if self.every_nth_sample == 0 {
            return invalid("every_nth_sample", "must be at least 1".into());
        }
        if self.workers == 0 || self.workers > 64 {
            return invalid("workers", "must be between 1 and 64".into());
        }
        if self.queue == 0 || self.queue > 1024 {
            return invalid("queue", "must be between 1 and 1024".into());
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let key = |name: &str| format!("rule[{i}].{name}");
            if !self.labels.contains(&rule.label) {
                return invalid(
                    &key("label"),
                    format!("{:?} is not one of classifier.labels", rule.label),
                );
            }
            if !rule.threshold.is_finite() {
                return invalid(&key("threshold"), "must be a number".into());
            }
            if rule.confirm_window == 0 || rule.confirm_window > 64 {
                return invalid(&key("confirm_window"), "must be between 1 and 64".into());
            }
            if rule.confirm_matches == 0 || rule.confirm_matches > rule.confirm_window {
                return invalid(
                    &key("confirm_matches"),
                    "must be between 1 and the rule's confirm_window".into(),
                );
            }
        }
        Ok(())
    }
}

/// The section the classifier's errors name.
pub const SECTION: ModelSection = ModelSection {
    name: "classifier",
    input_keys: "input_size/layout",
    output_keys: "labels/output",
};

/// Why the classifier cannot load or run its model.
pub type ClassifierError = ModelError;

/// One label's score on a picture; for a detection model, with its box in frame pixels
/// (`x, y, width, height` from the top-left corner).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    pub label: Arc<str>,
    pub score: f32,
    pub bbox: Option<[f32; 4]>,
}

/// A loaded model with its preprocessing; one per classifier thread.
pub struct Classifier {
    config: Arc<ClassifierConfig>,
    session: ort::session::Session,
    input_name: String,
    labels: Vec<Arc<str>>,
    /// The model's input tensor, reused across pictures.
    tensor: Vec<f32>,
}

impl Classifier {
    /// Loads ONNX Runtime (once per process) and the model, and checks the model's
    /// declared input shape against `input_size` and `layout`.
    pub fn load(config: Arc<ClassifierConfig>) -> Result<Self, ClassifierError> {
        let session =
            onnx::load_session(SECTION, config.runtime_library.as_deref(), &config.model, 1)?;
        let (input, _) = onnx::single_input(&session)
            .map_err(|message| SECTION.model_error(&config.model, message))?;
        check_input_shape(&config, &input)?;
        let input_name = input.name;
        let [width, height] = config.input_size;
        let mut classifier = Classifier {
            labels: config
                .labels
                .iter()
                .map(|label| Arc::from(&**label))
                .collect(),
            tensor: vec![0.0; 3 * width as usize * height as usize],
            config,
            session,
            input_name,
        };
        // One run on a black picture: an output that does not fit `output`/`labels`
        // fails here, at startup, rather than on every keyframe.
        classifier.run(BoxMapping {
            scale: 1.0,
            frame_width: width as f32,
            frame_height: height as f32,
        })?;
        Ok(classifier)
    }

    pub fn config(&self) -> &Arc<ClassifierConfig> {
        &self.config
    }

    /// Scores an RGB24 picture: every label's score for a classification model, the
    /// detections left after NMS for a detection model (highest first).
    pub fn classify(&mut self, picture: &Image<'_>) -> Result<Vec<LabelScore>, ClassifierError> {
        let mapping = preprocess(&self.config, picture, &mut self.tensor);
        self.run(mapping)
    }

    /// Runs the model on the tensor [`preprocess`] filled (exposed for cross-checks).
    pub fn classify_tensor(
        &mut self,
        tensor: &[f32],
        mapping: BoxMapping,
    ) -> Result<Vec<LabelScore>, ClassifierError> {
        if tensor.len() != self.tensor.len() {
            return Err(SECTION.inference(format!(
                "tensor of {} values for a model input of {}",
                tensor.len(),
                self.tensor.len()
            )));
        }
        self.tensor.copy_from_slice(tensor);
        self.run(mapping)
    }

    fn run(&mut self, mapping: BoxMapping) -> Result<Vec<LabelScore>, ClassifierError> {
        let [width, height] = self.config.input_size.map(|side| side as usize);
        let shape = match self.config.layout {
            TensorLayout::Nchw => [1, 3, height, width],
            TensorLayout::Nhwc => [1, height, width, 3],
        };
        let failed = |error: ort::Error| SECTION.inference(error.to_string());
        let input =
            ort::value::TensorRef::from_array_view((shape, &self.tensor[..])).map_err(failed)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(failed)?;
        let (_, output) = outputs
            .iter()
            .next()
            .ok_or_else(|| SECTION.inference("the model returned no output"))?;
        let (shape, values) = output.try_extract_tensor::<f32>().map_err(failed)?;
        let path = &self.config.model;
        match self.config.output {
            OutputKind::Classification => {
                classification_scores(&self.labels, values, self.config.softmax).ok_or_else(|| {
                    SECTION.output_shape(
                        path,
                        format!("shape {shape}"),
                        format!("{} scores", self.labels.len()),
                    )
                })
            }
            OutputKind::Detection => {
                let dims: Vec<i64> = shape.iter().copied().collect();
                let candidates = match dims[..] {
                    [1, rows, n] if rows == 4 + self.labels.len() as i64 => n as usize,
                    _ => {
                        return Err(SECTION.output_shape(
                            path,
                            format!("shape {shape}"),
                            format!("[1, {}, N] (4 + labels)", 4 + self.labels.len()),
                        ));
                    }
                };
                Ok(detections(
                    &self.labels,
                    values,
                    candidates,
                    self.config.score_threshold,
                    self.config.nms_iou,
                    mapping,
                ))
            }
        }
    }
}

fn check_input_shape(config: &ClassifierConfig, input: &TensorInfo) -> Result<(), ClassifierError> {
    let [width, height] = config.input_size.map(i64::from);
    let expected = match config.layout {
        TensorLayout::Nchw => [1, 3, height, width],
        TensorLayout::Nhwc => [1, height, width, 3],
    };
    if input.fits(TensorElementType::Float32, &expected) {
        return Ok(());
    }
    Err(SECTION.input_shape(
        &config.model,
        input.describe(),
        format!("{:?} {}", config.layout, onnx::shape_text(&expected)).to_lowercase(),
    ))
}

/// How a detection box in model-input pixels maps back to frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxMapping {
    /// Frame pixels per model-input pixel.
    pub scale: f32,
    pub frame_width: f32,
    pub frame_height: f32,
}

/// Fills `tensor` with `picture` resized to the model input (see the module docs),
/// channel-ordered, normalised and laid out as configured.
pub fn preprocess(
    config: &ClassifierConfig,
    picture: &Image<'_>,
    tensor: &mut [f32],
) -> BoxMapping {
    let [width, height] = config.input_size.map(|side| side as usize);
    let (source_w, source_h) = (picture.width.max(1) as f32, picture.height.max(1) as f32);
    // Model pixels covered by the picture, and source pixels per model pixel.
    let (content_w, content_h, step_x, step_y) = match config.output {
        OutputKind::Classification => (
            width,
            height,
            source_w / width as f32,
            source_h / height as f32,
        ),
        OutputKind::Detection => {
            let step = (source_w / width as f32).max(source_h / height as f32);
            (
                ((source_w / step).round() as usize).clamp(1, width),
                ((source_h / step).round() as usize).clamp(1, height),
                step,
                step,
            )
        }
    };
    let channels = match config.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    let scale = match config.scale {
        PixelScale::Unit => 1.0 / 255.0,
        PixelScale::Byte => 1.0,
    };
    let plane = width * height;
    let mut put = |x: usize, y: usize, rgb: [f32; 3]| {
        for (c, &source_channel) in channels.iter().enumerate() {
            let value = (rgb[source_channel] * scale - config.mean[c]) / config.std[c];
            let index = match config.layout {
                TensorLayout::Nchw => c * plane + y * width + x,
                TensorLayout::Nhwc => (y * width + x) * 3 + c,
            };
            if let Some(slot) = tensor.get_mut(index) {
                *slot = value;
            }
        }
    };
    for y in 0..height {
        for x in 0..width {
            let rgb = if x < content_w && y < content_h {
                bilinear(
                    picture,
                    (x as f32 + 0.5) * step_x - 0.5,
                    (y as f32 + 0.5) * step_y - 0.5,
                )
            } else {
                [0.0; 3]
            };
            put(x, y, rgb);
        }
    }
    BoxMapping {
        scale: step_x,
        frame_width: source_w,
        frame_height: source_h,
    }
}

/// One score per label, in label order; `None` when the output has another size.
fn classification_scores(
    labels: &[Arc<str>],
    values: &[f32],
    softmax: bool,
) -> Option<Vec<LabelScore>> {
    if values.len() != labels.len() {
        return None;
    }
    let mut scores = values.to_vec();
    if softmax {
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for score in &mut scores {
            *score = (*score - max).exp();
            sum += *score;
        }
        scores.iter_mut().for_each(|score| *score /= sum);
    }
    Some(
        labels
            .iter()
            .zip(scores)
            .map(|(label, score)| LabelScore {
                label: Arc::clone(label),
                score,
                bbox: None,
            })
            .collect(),
    )
}

/// YOLOv8 output `[1, 4 + C, N]` (row-major: row r, candidate n at `r * N + n`) →
/// detections above `threshold` after class-agnostic greedy NMS, highest first.
fn detections(
    labels: &[Arc<str>],
    values: &[f32],
    candidates: usize,
    threshold: f32,
    nms_iou: f32,
    mapping: BoxMapping,
) -> Vec<LabelScore> {
    let at = |row: usize, n: usize| values.get(row * candidates + n).copied().unwrap_or(0.0);
    let mut found: Vec<(usize, f32, [f32; 4])> = (0..candidates)
        .filter_map(|n| {
            let (class, score) = (0..labels.len())
                .map(|class| (class, at(4 + class, n)))
                .fold((0, f32::NEG_INFINITY), |best, this| {
                    if this.1 > best.1 { this } else { best }
                });
            (score >= threshold).then(|| {
                let (cx, cy, w, h) = (at(0, n), at(1, n), at(2, n), at(3, n));
                (class, score, [cx - w / 2.0, cy - h / 2.0, w, h])
            })
        })
        .collect();
    found.sort_by(|a, b| b.1.total_cmp(&a.1));
    // NMS is quadratic: only the best candidates are considered (YOLO keeps 300 at most).
    found.truncate(MAX_NMS_CANDIDATES);
    let mut kept: Vec<(usize, f32, [f32; 4])> = Vec::new();
    for candidate in found {
        if kept
            .iter()
            .all(|other| iou(&other.2, &candidate.2) <= nms_iou)
        {
            kept.push(candidate);
        }
    }
    kept.into_iter()
        .map(|(class, score, [x, y, w, h])| {
            let x0 = (x * mapping.scale).clamp(0.0, mapping.frame_width);
            let y0 = (y * mapping.scale).clamp(0.0, mapping.frame_height);
            let x1 = ((x + w) * mapping.scale).clamp(0.0, mapping.frame_width);
            let y1 = ((y + h) * mapping.scale).clamp(0.0, mapping.frame_height);
            LabelScore {
                label: Arc::clone(&labels[class]),
                score,
                bbox: Some([x0, y0, x1 - x0, y1 - y0]),
            }
        })
        .collect()
}

/// Intersection over union of two `x, y, w, h` boxes.
fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let width = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let height = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    let intersection = width.max(0.0) * height.max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - intersection;
    if union > 0.0 {
        intersection / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> ClassifierConfig {
        let text =
            format!("model = \"m.onnx\"\ninput_size = [4, 2]\nlabels = [\"a\", \"b\"]\n{extra}");
        let config: ClassifierConfig = toml::from_str(&text).expect("config");
        config
    }

    #[test]
    fn the_documented_example_section_is_valid() {
        let uncommented = crate::config::uncommented_example("# [classifier]", true);
        let parsed: toml::Table = toml::from_str(&uncommented).expect("example parses");
        let config: ClassifierConfig = parsed["classifier"].clone().try_into().expect("schema");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!((config.labels.len(), config.rules.len()), (18, 1));
    }

    #[test]
    fn validation_names_the_key() {
        let key = |extra: &str| config(extra).validate().err().map(|invalid| invalid.key);
        assert_eq!(key(""), None);
        assert_eq!(
            key("[[rule]]\nlabel = \"c\"\nthreshold = 0.5\n").as_deref(),
            Some("classifier.rule[0].label")
        );
        assert_eq!(
            key("[[rule]]\nlabel = \"a\"\nthreshold = 0.5\nconfirm_matches = 3\nconfirm_window = 2\n")
                .as_deref(),
            Some("classifier.rule[0].confirm_matches")
        );
        assert_eq!(
            key("std = [1.0, 0.0, 1.0]").as_deref(),
            Some("classifier.std")
        );
        assert_eq!(
            key("every_nth_sample = 0").as_deref(),
            Some("classifier.every_nth_sample")
        );
        let mut empty = config("");
        empty.labels.clear();
        assert_eq!(
            empty.validate().err().map(|invalid| invalid.key).as_deref(),
            Some("classifier.labels")
        );
        assert_eq!(config("").rules.first(), None);
        let rule = &config("[[rule]]\nlabel = \"a\"\nthreshold = 0.5\n").rules[0];
        assert_eq!(
            (rule.action, rule.confirm_matches, rule.confirm_window),
            (RuleAction::Alert, 1, 1)
        );
    }

    #[test]
    fn classification_stretches_and_detection_letterboxes_top_left() {
        // 8x2 picture: left half black, right half white.
        let pixels: Vec<u8> = (0..2)
            .flat_map(|_| (0..8).flat_map(|x| [if x < 4 { 0 } else { 255 }; 3]))
            .collect();
        let picture = Image {
            data: &pixels,
            width: 8,
            height: 2,
            stride: 24,
        };
        let mut tensor = vec![-1.0; 3 * 4 * 2];
        let stretched = preprocess(&config(""), &picture, &mut tensor);
        assert_eq!(stretched.scale, 2.0);
        // Red plane, 4x2: black, black, white, white on each row.
        assert_eq!(&tensor[..8], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);

        let mut detection = config("output = \"detection\"\nlayout = \"nhwc\"");
        detection.input_size = [4, 4];
        let mut tensor = vec![-1.0; 3 * 4 * 4];
        let boxed = preprocess(&detection, &picture, &mut tensor);
        assert_eq!(boxed.scale, 2.0);
        let red = |x: usize, y: usize| tensor[(y * 4 + x) * 3];
        assert_eq!(
            [red(0, 0), red(3, 0)],
            [0.0, 1.0],
            "the picture fills the top row"
        );
        assert_eq!(
            [red(3, 1), red(3, 2), red(3, 3)],
            [0.0, 0.0, 0.0],
            "black padding below"
        );
    }

    #[test]
    fn detections_keep_the_best_class_and_suppress_overlaps() {
        let labels: Vec<Arc<str>> = vec![Arc::from("a"), Arc::from("b")];
        // Rows cx, cy, w, h, score a, score b over 3 candidates.
        let values = [
            10.0, 11.0, 50.0, // cx
            10.0, 10.0, 50.0, // cy
            10.0, 10.0, 4.0, // w
            10.0, 10.0, 4.0, // h
            0.9, 0.1, 0.1, // a
            0.2, 0.8, 0.3, // b
        ];
        let mapping = BoxMapping {
            scale: 2.0,
            frame_width: 1000.0,
            frame_height: 1000.0,
        };
        let found = detections(&labels, &values, 3, 0.25, 0.45, mapping);
        // The second box overlaps the first (IoU 0.82) and is suppressed.
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((&*found[0].label, found[0].score), ("a", 0.9));
        assert_eq!(found[0].bbox, Some([10.0, 10.0, 20.0, 20.0]));
        assert_eq!((&*found[1].label, found[1].score), ("b", 0.3));
        assert!((iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 0.0, 2.0, 2.0]) - 1.0 / 3.0).abs() < 1e-6);
    }
}
