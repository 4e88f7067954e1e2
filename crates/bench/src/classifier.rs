//! `livegate-bench classifier`: the real NudeNet YOLOv8n detector (`nudenet/320n.onnx`
//! from PyPI) on a 1280×720 picture, through livegate's classifier on one thread, against
//! the same model and tensor in Python's onnxruntime (one thread) in the same run. Prints
//! preprocessing and inference ms per frame, frames/s per core, and the ratio.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use livegate::signals::classifier::{Classifier, ClassifierConfig, preprocess};
use livegate_signals::pdq::Image;

const REFERENCE_SCRIPT: &str = include_str!("classifier_reference.py");
const NUDENET: &str = r#"
model = "set below"
input_size = [320, 320]
output = "detection"
labels = ["FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
  "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED",
  "BELLY_COVERED", "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE",
  "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED",
  "BUTTOCKS_COVERED"]
"#;
const WIDTH: usize = 1280;
const HEIGHT: usize = 720;

#[derive(Args)]
pub struct ClassifierBenchArgs {
    /// Python of the virtualenv holding onnxruntime and nudenet (scripts/install-deps.sh).
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// Measuring time per implementation, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
}

/// Milliseconds per call of `call`, repeated for at least `budget` (and 3 calls) after
/// one warm-up call.
pub(crate) fn per_call_ms(
    budget: Duration,
    mut call: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    call()?;
    let start = Instant::now();
    let mut calls = 0u32;
    loop {
        call()?;
        calls += 1;
        let elapsed = start.elapsed();
        if elapsed >= budget && calls >= 3 {
            return Ok(elapsed.as_secs_f64() * 1000.0 / f64::from(calls));
        }
    }
}

/// Evaluates `expression` (with `os`, `nudenet` and `skimage` imported) in `python`: a
/// path inside the virtualenv (`scripts/install-deps.sh` installs both packages).
pub(super) fn venv_path(python: &Path, expression: &str) -> anyhow::Result<PathBuf> {
    let output = Command::new(python)
        .arg("-c")
        .arg(format!("import os, nudenet, skimage; print({expression})"))
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "{} cannot locate {expression} (nudenet and scikit-image installed?): {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// NudeNet's detector as `[classifier]` describes it (input size, output kind, labels
/// in the model's output order), loading `model`.
pub(super) fn nudenet_config(model: PathBuf) -> anyhow::Result<ClassifierConfig> {
    let mut config: ClassifierConfig = toml::from_str(NUDENET)?;
    config.model = model;
    Ok(config)
}

pub fn run(args: ClassifierBenchArgs) -> anyhow::Result<ExitCode> {
    if !args.python.exists() {
        bail!(
            "{} not found: run scripts/install-deps.sh (or pass --python)",
            args.python.display()
        );
    }
    let model = venv_path(
        &args.python,
        "os.path.join(os.path.dirname(nudenet.__file__), '320n.onnx')",
    )?;
    let config = nudenet_config(model.clone())?;
    let config = Arc::new(config);
    // Timed with the default thresholds; the score check keeps every candidate.
    let mut classifier = Classifier::load(Arc::clone(&config))?;
    let mut unfiltered = ClassifierConfig::clone(&config);
    unfiltered.score_threshold = 0.0;
    unfiltered.nms_iou = 1.0;
    let mut every_candidate = Classifier::load(Arc::new(unfiltered))?;

    let pixels: Vec<u8> = (0..HEIGHT)
        .flat_map(|y| {
            (0..WIDTH).flat_map(move |x| {
                [
                    (x * 255 / WIDTH) as u8,
                    (y * 255 / HEIGHT) as u8,
                    ((x ^ y) & 0xff) as u8,
                ]
            })
        })
        .collect();
    let picture = Image {
        data: &pixels,
        width: WIDTH,
        height: HEIGHT,
        stride: WIDTH * 3,
    };
    let budget = Duration::from_secs_f64(args.seconds);
    let mut tensor = vec![0.0f32; 3 * 320 * 320];
    let preprocess_ms = per_call_ms(budget / 4, || {
        std::hint::black_box(preprocess(&config, &picture, &mut tensor));
        Ok(())
    })?;
    let mapping = preprocess(&config, &picture, &mut tensor);
    let inference_ms = per_call_ms(budget, || {
        std::hint::black_box(classifier.classify_tensor(&tensor, mapping)?);
        Ok(())
    })?;
    let top_score = every_candidate
        .classify_tensor(&tensor, mapping)?
        .first()
        .map_or(0.0, |best| best.score);

    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let tensor_path = dir.path().join("tensor.f32");
    let bytes: Vec<u8> = tensor
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect();
    std::fs::write(&tensor_path, bytes)?;
    let script = dir.path().join("classifier_reference.py");
    std::fs::write(&script, REFERENCE_SCRIPT)?;
    let seconds = args.seconds.to_string();
    let reference = super::run_python_reference(
        &args.python,
        &script,
        &[model.as_os_str(), tensor_path.as_os_str(), seconds.as_ref()],
    )?;
    let python_ms = reference["run_ms"].as_f64().context("run_ms")?;
    let python_top = reference["top_score"].as_f64().context("top_score")?;

    let total_ms = preprocess_ms + inference_ms;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "classifier: NudeNet YOLOv8n 320×320 on a {WIDTH}x{HEIGHT} picture, one thread"
    )?;
    writeln!(
        out,
        "  livegate preprocess (letterbox + normalise)  {preprocess_ms:>8.2} ms"
    )?;
    writeln!(
        out,
        "  livegate inference + NMS                     {inference_ms:>8.2} ms"
    )?;
    writeln!(
        out,
        "  livegate per frame                           {total_ms:>8.2} ms  ({:.1} frames/s per core)",
        1000.0 / total_ms
    )?;
    writeln!(
        out,
        "  python onnxruntime inference (same tensor)   {python_ms:>8.2} ms  (livegate inference = {:.2}x python's)",
        inference_ms / python_ms
    )?;
    writeln!(
        out,
        "  top score: livegate {top_score:.5}, python {python_top:.5}"
    )?;
    let agrees = (f64::from(top_score) - python_top).abs() < 1e-4;
    writeln!(out, "  scores agree: {agrees}")?;
    Ok(if agrees {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
