//! `livegate-bench codecs`: what analysing one keyframe costs in HEVC and AV1 against
//! H.264, in one run.
//!
//! The cut bench's benign footage (a busy 720p30 test pattern with sensor-like noise,
//! 2 s GOP, ~3 Mbit/s) is encoded once per codec by Debian's ffmpeg — libx264, libx265,
//! libsvtav1 — into Matroska, whose packets and configuration records (avcC, hvcC, av1C)
//! are what RTMP and Enhanced RTMP carry. Each file's keyframes then go through the live
//! worker's path on one thread: the live decoder ([`KeyframeDecoder`], loop filter
//! skipped), and decode + `hash_frame_for_matching` end to end; CPU time per keyframe,
//! H.264 as the yardstick.

use anyhow::{Context, bail, ensure};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use livegate::media::decode::{Deblocking, KeyframeDecoder};
use livegate::media::frame::FrameHasher;

use super::cut::{BENIGN_SOURCE, cpu_ms_per_call};

#[derive(Args)]
pub struct CodecsBenchArgs {
    /// Seconds of footage encoded per codec (5 keyframes in 10 s at a 2 s GOP).
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// FFmpeg lavfi source of the footage (720p30).
    #[arg(long, default_value = BENIGN_SOURCE)]
    pub source: String,
    /// CPU seconds spent measuring each stage of each codec.
    #[arg(long, default_value_t = 3.0)]
    pub stage_seconds: f64,
}

/// One codec: its name, FFmpeg encoder arguments (2 s GOP at 30 fps, ~3 Mbit/s, the
/// fast presets a live encoder uses) and the file extension.
const CODECS: [(&str, &[&str]); 3] = [
    (
        "H.264 (libx264)",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "3000k",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
        ],
    ),
    (
        "HEVC (libx265)",
        &[
            "-c:v",
            "libx265",
            "-preset",
            "veryfast",
            "-b:v",
            "3000k",
            "-x265-params",
            "keyint=60:min-keyint=60:scenecut=0:log-level=error",
            "-tag:v",
            "hvc1",
        ],
    ),
    (
        "AV1 (libsvtav1)",
        &[
            "-c:v",
            "libsvtav1",
            "-preset",
            "10",
            "-b:v",
            "3000k",
            "-g",
            "60",
        ],
    ),
];

/// Mean CPU milliseconds per keyframe of one codec.
struct CodecCost {
    name: &'static str,
    keyframes: usize,
    /// Mean size of a keyframe, in KB: decode cost follows the bits spent on it.
    keyframe_kb: f64,
    decode: f64,
    pipeline: f64,
}

pub fn run(args: CodecsBenchArgs) -> anyhow::Result<ExitCode> {
    ffmpeg_next::init().context("initialising FFmpeg")?;
    let dir = tempfile::tempdir().context("making a scratch directory")?;
    let budget = Duration::from_secs_f64(args.stage_seconds);
    println!(
        "codecs bench: {} s of `{}` per codec, 720p30, 2 s GOP, ~3 Mbit/s; one thread, CPU time per keyframe",
        args.seconds, args.source
    );
    let mut costs = Vec::with_capacity(CODECS.len());
    for (name, encoder) in CODECS {
        let path = dir.path().join(format!("{}.mkv", costs.len()));
        encode(&args, encoder, &path).with_context(|| format!("encoding {name}"))?;
        let cost = measure(name, &path, budget)?;
        println!(
            "{:<16} {} keyframes of {:>4.0} KB  decode {:>6.2} ms  decode + hash {:>6.2} ms  → {:>5.0} streams per core at a 2 s GOP",
            cost.name,
            cost.keyframes,
            cost.keyframe_kb,
            cost.decode,
            cost.pipeline,
            2000.0 / cost.pipeline
        );
        costs.push(cost);
    }
    let Some((h264, others)) = costs.split_first() else {
        bail!("no codec measured");
    };
    for other in others {
        println!(
            "{} / {}: decode {:.2}×, decode + hash {:.2}× per keyframe",
            other.name,
            h264.name,
            other.decode / h264.decode,
            other.pipeline / h264.pipeline
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn encode(args: &CodecsBenchArgs, encoder: &[&str], path: &PathBuf) -> anyhow::Result<()> {
    let output = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(&args.source)
        .args(["-t", &args.seconds.to_string(), "-pix_fmt", "yuv420p"])
        .args(encoder)
        .arg(path)
        .output()
        .context("running ffmpeg (Debian's ffmpeg package)")?;
    ensure!(
        output.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The live worker's costs on the keyframes of `path`'s video stream.
fn measure(name: &'static str, path: &Path, budget: Duration) -> anyhow::Result<CodecCost> {
    let mut input = ffmpeg_next::format::input(path).context("opening the encoded file")?;
    let stream = input
        .streams()
        .best(ffmpeg_next::media::Type::Video)
        .context("the encoded file has no video stream")?;
    let index = stream.index();
    let parameters = stream.parameters();
    // SAFETY: reads the stream's extradata buffer of extradata_size bytes, owned by
    // `parameters`, which outlives the copy.
    let extradata = unsafe {
        let raw = parameters.as_ptr();
        match (*raw).extradata_size {
            0 => Vec::new(),
            size => std::slice::from_raw_parts((*raw).extradata, size as usize).to_vec(),
        }
    };
    let keyframes: Vec<(Vec<u8>, i64)> = input
        .packets()
        .filter(|(stream, packet)| stream.index() == index && packet.is_key())
        .filter_map(|(_, packet)| Some((packet.data()?.to_vec(), packet.pts()?)))
        .collect();
    ensure!(!keyframes.is_empty(), "{name}: no keyframe in the file");
    let max_pixels = livegate::analysis::AnalysisConfig::default().max_picture_pixels;
    let mut decoder =
        KeyframeDecoder::new(parameters.id(), &extradata, max_pixels, Deblocking::Skip)?;
    let mut hasher = FrameHasher::new();
    let mut next = 0usize;
    let mut pick = || {
        next = (next + 1) % keyframes.len();
        &keyframes[next]
    };
    let decode = cpu_ms_per_call(budget, || {
        let (data, pts) = pick();
        decoder.decode_keyframe(data, *pts)?;
        Ok(())
    })?;
    let pipeline = cpu_ms_per_call(budget, || {
        let (data, pts) = pick();
        let decoded = decoder.decode_keyframe(data, *pts)?;
        std::hint::black_box(hasher.hash_frame_for_matching(decoded.picture)?);
        Ok(())
    })?;
    let keyframe_bytes: usize = keyframes.iter().map(|(data, _)| data.len()).sum();
    Ok(CodecCost {
        name,
        keyframes: keyframes.len(),
        keyframe_kb: keyframe_bytes as f64 / keyframes.len() as f64 / 1000.0,
        decode,
        pipeline,
    })
}
