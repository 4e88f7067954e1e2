//! `livegate hash FILE...`: PDQ hashes of images and sampled video frames.
//!
//! Text output is a valid hash list (DESIGN.md): `HASH,QUALITY,FILENAME` per image (Meta's
//! `pdq-photo-hasher` format) and `HASH,QUALITY,FILENAME,PTS_SECONDS` per video frame.
//! `--dihedral` prints 8 lines per image or frame, the variant's name appended as the last
//! field (`...,FILENAME,rot90` / `...,FILENAME,PTS_SECONDS,rot90`), `original` first.
//! `--json` prints one JSON object per line with `hash`, `quality`, `file`, `pts` (videos
//! only) and `variant` (with `--dihedral` only). Warnings and errors, FFmpeg's included,
//! go to stderr (`RUST_LOG` can raise the level).

use std::fs::File;
use std::io::{BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use livegate::config::{LogConfig, LogFormat};
use livegate::media::decode::{MediaError, Sampling, VideoFile};
use livegate::media::frame::{FrameError, FrameHasher};
use livegate_signals::hash256::Hash256;
use livegate_signals::pdq::{Dihedral, Image, LumaFormula, PdqHasher, PdqOutput, PixelLayout};

#[derive(Args)]
pub struct HashArgs {
    /// Images (PNG, JPEG, GIF, BMP, WebP) and videos (anything FFmpeg reads).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON lines (`hash`, `quality`, `file`, `pts` for videos, `variant`).
    #[arg(long)]
    pub json: bool,
    /// Also print the 8 rotation/flip variants, one line each, the variant name last.
    #[arg(long)]
    pub dihedral: bool,
    /// Hash one video frame every this many seconds (frames chosen like Meta's vPDQ).
    #[arg(long, default_value_t = 1.0, value_parser = parse_positive_seconds)]
    pub every: f64,
    /// Hash every video keyframe instead of sampling by time.
    #[arg(long, conflicts_with = "every")]
    pub keyframes: bool,
}

pub(super) fn parse_positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(seconds),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

/// One output record: the hash of an image or frame, or of one of its variants.
struct Record<'a> {
    hash: Hash256,
    quality: u8,
    file: &'a str,
    pts: Option<f64>,
    variant: Option<Dihedral>,
}

impl Record<'_> {
    fn write(&self, out: &mut impl Write, json: bool) -> std::io::Result<()> {
        if json {
            let mut object = serde_json::json!({
                "hash": self.hash.to_string(),
                "quality": self.quality,
                "file": self.file,
            });
            if let Some(pts) = self.pts {
                object["pts"] = serde_json::json!(pts);
            }
            if let Some(variant) = self.variant {
                object["variant"] = serde_json::json!(variant.name());
            }
            writeln!(out, "{object}")
        } else {
            write!(out, "{},{},{}", self.hash, self.quality, self.file)?;
            if let Some(pts) = self.pts {
                write!(out, ",{pts:.3}")?;
            }
            if let Some(variant) = self.variant {
                write!(out, ",{}", variant.name())?;
            }
            writeln!(out)
        }
    }
}

pub fn run(args: HashArgs) -> anyhow::Result<ExitCode> {
    // Warnings and errors (FFmpeg's among them) on stderr; hashes alone on stdout.
    super::run::init_logging(&LogConfig {
        format: LogFormat::Text,
        level: "warn".to_string(),
    })?;
    livegate::media::log::install();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut pdq = PdqHasher::new();
    let mut frames = FrameHasher::new();
    let mut failures = 0usize;
    for path in &args.files {
        let result = if is_image(path) {
            hash_image(&args, path, &mut pdq, &mut out)
        } else {
            hash_video(&args, path, &mut frames, &mut out)
        };
        out.flush().context("writing to stdout")?;
        if let Err(error) = result {
            eprintln!(
                "livegate hash: {}: {}",
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

/// Whether the file's content (not its name) is an image format the `image` crate decodes
/// here; anything else (videos, and images of formats not compiled in) goes to FFmpeg.
pub(super) fn is_image(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    image::ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .is_ok_and(|reader| {
            reader
                .format()
                .is_some_and(|format| format.reading_enabled())
        })
}

fn emit(
    out: &mut impl Write,
    args: &HashArgs,
    file: &str,
    pts: Option<f64>,
    quality: u8,
    variants: impl IntoIterator<Item = (Option<Dihedral>, Hash256)>,
) -> anyhow::Result<()> {
    for (variant, hash) in variants {
        let record = Record {
            hash,
            quality,
            file,
            pts,
            variant,
        };
        record.write(out, args.json).context("writing to stdout")?;
    }
    Ok(())
}

/// Images are hashed on their full-resolution 8-bit RGB pixels (alpha dropped, gray
/// replicated) with the luma of PyPI `pdqhash.compute`.
const IMAGE_LAYOUT: PixelLayout = PixelLayout::Rgb8(LumaFormula::Float64Rounded);

pub(super) fn decode_rgb(path: &Path) -> anyhow::Result<image::RgbImage> {
    Ok(image::ImageReader::open(path)
        .context("opening")?
        .with_guessed_format()
        .context("reading")?
        .decode()
        .context("decoding the image")?
        .into_rgb8())
}

pub(super) fn view(decoded: &image::RgbImage) -> Image<'_> {
    let width = decoded.width() as usize;
    Image {
        data: decoded.as_raw(),
        width,
        height: decoded.height() as usize,
        stride: width * 3,
    }
}

/// The PDQ hash and quality of an image file, exactly as `livegate hash` prints them.
pub fn pdq_of_image(path: &Path, pdq: &mut PdqHasher) -> anyhow::Result<PdqOutput> {
    let decoded = decode_rgb(path)?;
    Ok(pdq.hash(view(&decoded), IMAGE_LAYOUT)?)
}

fn hash_image(
    args: &HashArgs,
    path: &Path,
    pdq: &mut PdqHasher,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let decoded = decode_rgb(path)?;
    let file = path.to_string_lossy();
    if args.dihedral {
        let all = pdq.hash_dihedral(view(&decoded), IMAGE_LAYOUT)?;
        let variants = all.iter().map(|(v, h)| (Some(v), h));
        emit(out, args, &file, None, all.quality, variants)
    } else {
        let one = pdq.hash(view(&decoded), IMAGE_LAYOUT)?;
        emit(out, args, &file, None, one.quality, [(None, one.hash)])
    }
}

/// Error of the per-frame callback: decoding, hashing or writing.
#[derive(Debug, thiserror::Error)]
enum VideoError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Output(#[from] anyhow::Error),
}

fn hash_video(
    args: &HashArgs,
    path: &Path,
    frames: &mut FrameHasher,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut video = VideoFile::open(path)
        .context("neither an image livegate reads nor a video FFmpeg opens")?;
    let progress = progress_bar(path, video.duration_seconds());
    let sampling = if args.keyframes {
        Sampling::Keyframes
    } else {
        Sampling::Every(args.every)
    };
    let file = path.to_string_lossy();
    let mut sampled = 0usize;
    let result = video.sample(sampling, |frame, pts| -> Result<(), VideoError> {
        if let Some(bar) = &progress {
            bar.set_position(pts.max(0.0) as u64);
        }
        sampled += 1;
        if args.dihedral {
            let all = frames.hash_frame_dihedral(frame)?;
            let variants = all.iter().map(|(v, h)| (Some(v), h));
            emit(out, args, &file, Some(pts), all.quality, variants)?;
        } else {
            let one = frames.hash_frame(frame)?;
            emit(out, args, &file, Some(pts), one.quality, [(None, one.hash)])?;
        }
        Ok(())
    });
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    result?;
    anyhow::ensure!(
        sampled > 0,
        "not an image livegate reads, and FFmpeg decoded no frame of it (corrupt, or not a picture)"
    );
    Ok(())
}

/// A progress bar in seconds of `file`'s video, naming it, with the time left, on
/// stderr, only when stderr is a terminal.
pub(super) fn progress_bar(file: &Path, duration_seconds: Option<f64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(duration_seconds.map_or(0, |d| d.ceil() as u64));
    let style = ProgressStyle::with_template(
        "{msg} {bar:30} {pos}/{len} s of video, {elapsed} spent, about {eta} left",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(file.display().to_string());
    Some(bar)
}
