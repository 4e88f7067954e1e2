//! `livegate-bench live-hash FILE…`: how far the live path's PDQ hashes (keyframe decoder
//! without deblocking, picture hashed at reduced size) are from the hashes `livegate hash`
//! lists are built with (full decode, full size, bit-exact with Meta's vPDQ), on every
//! keyframe of the given videos. Prints the distance distribution of each saving alone
//! and of both, and fails when any distance reaches the match threshold's margin.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, ensure};
use clap::Args;
use livegate::media::decode::{Deblocking, KeyframeDecoder};
use livegate::media::frame::FrameHasher;
use livegate_signals::hash256::Hash256;

#[derive(Args)]
pub struct LiveHashBenchArgs {
    /// Videos whose keyframes are compared (e.g. photographs encoded all-intra at 720p).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Largest acceptable distance to the reference hash, in bits.
    #[arg(long, default_value_t = 8)]
    pub max_bits: u32,
}

/// One keyframe's hash and quality by each path.
struct Compared {
    reference: (Hash256, u8),
    no_deblocking: (Hash256, u8),
    reduced: (Hash256, u8),
    live: (Hash256, u8),
}

pub fn run(args: LiveHashBenchArgs) -> anyhow::Result<ExitCode> {
    ffmpeg_next::init()?;
    let mut compared = Vec::new();
    for file in &args.files {
        compare_file(file, &mut compared).with_context(|| file.display().to_string())?;
    }
    ensure!(!compared.is_empty(), "no keyframe in the given files");
    println!(
        "== live hash against `livegate hash` (full decode, full size): {} keyframes of {} files",
        compared.len(),
        args.files.len()
    );
    println!(
        "  {:<34} {:>6} {:>6} {:>6} {:>6} {:>12}",
        "path", "mean", "p50", "p99", "max", "quality Δ"
    );
    let paths: [(&str, fn(&Compared) -> (Hash256, u8)); 3] = [
        ("no deblocking, full size", |c| c.no_deblocking),
        ("deblocking, reduced size", |c| c.reduced),
        ("live: no deblocking, reduced size", |c| c.live),
    ];
    let mut worst = 0;
    for (name, path) in paths {
        let mut distances: Vec<u32> = compared
            .iter()
            .map(|c| path(c).0.distance(&c.reference.0))
            .collect();
        distances.sort_unstable();
        let quality_delta: i32 = compared
            .iter()
            .map(|c| (i32::from(path(c).1) - i32::from(c.reference.1)).abs())
            .max()
            .unwrap_or(0);
        let mean = distances.iter().sum::<u32>() as f64 / distances.len() as f64;
        let at = |q: f64| distances[((distances.len() - 1) as f64 * q).round() as usize];
        let max = distances.last().copied().unwrap_or(0);
        worst = worst.max(max);
        println!(
            "  {name:<34} {mean:>6.2} {:>6} {:>6} {max:>6} {:>10} max",
            at(0.5),
            at(0.99),
            quality_delta
        );
    }
    if worst > args.max_bits {
        println!("  a distance of {worst} bits exceeds --max-bits {}", args.max_bits);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn compare_file(file: &PathBuf, compared: &mut Vec<Compared>) -> anyhow::Result<()> {
    let mut input = ffmpeg_next::format::input(file)?;
    let stream = input
        .streams()
        .best(ffmpeg_next::media::Type::Video)
        .context("no video stream")?;
    let index = stream.index();
    let parameters = stream.parameters();
    // SAFETY: reads the codec parameters' extradata, owned by `parameters` and valid for
    // `extradata_size` bytes while it lives.
    let extradata = unsafe {
        let raw = parameters.as_ptr();
        match ((*raw).extradata, usize::try_from((*raw).extradata_size)) {
            (data, Ok(len)) if !data.is_null() => std::slice::from_raw_parts(data, len).to_vec(),
            _ => Vec::new(),
        }
    };
    let codec = parameters.id();
    let mut full = KeyframeDecoder::new(codec, &extradata, u64::MAX, Deblocking::Full)?;
    let mut skip = KeyframeDecoder::new(codec, &extradata, u64::MAX, Deblocking::Skip)?;
    let mut hasher = FrameHasher::new();
    for (stream, packet) in input.packets() {
        if stream.index() != index || !packet.is_key() {
            continue;
        }
        let (Some(data), pts) = (packet.data(), packet.pts().unwrap_or(0)) else {
            continue;
        };
        let full_picture = full.decode_keyframe(data, pts)?.picture;
        let reference = hasher.hash_frame_dihedral(full_picture)?;
        let reduced = hasher.hash_frame_for_matching(full_picture)?.full;
        let skip_picture = skip.decode_keyframe(data, pts)?.picture;
        let no_deblocking = hasher.hash_frame_dihedral(skip_picture)?;
        let live = hasher.hash_frame_for_matching(skip_picture)?.full;
        compared.push(Compared {
            reference: (reference.hashes[0], reference.quality),
            no_deblocking: (no_deblocking.hashes[0], no_deblocking.quality),
            reduced: (reduced.hashes[0], reduced.quality),
            live: (live.hashes[0], live.quality),
        });
    }
    Ok(())
}
