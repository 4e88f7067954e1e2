//! `livegate-bench live-hash FILE…`: how far cheaper live-path hashes are from the hashes
//! `livegate hash` builds lists with (full decode, RGB24 at full size, bit-exact with
//! Meta's vPDQ), on every keyframe of the given videos. Compares the live path as it is
//! (keyframe decoder without deblocking) and two savings measured but not applied:
//! hashing swscale's GRAY8 luma (no RGB conversion) and hashing RGB24 at half size.
//! Fails when the live path's distance exceeds `--max-bits`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, ensure};
use clap::Args;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use ffmpeg_next::software::scaling;
use livegate::media::decode::{Deblocking, KeyframeDecoder};
use livegate::media::frame::FrameHasher;
use livegate_signals::hash256::Hash256;
use livegate_signals::pdq::{Image, LumaFormula, PdqHasher, PixelLayout};

#[derive(Args)]
pub struct LiveHashBenchArgs {
    /// Videos whose keyframes are compared (e.g. photographs encoded all-intra at 720p).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Largest acceptable distance of the live path's hash to the reference, in bits.
    #[arg(long, default_value_t = 8)]
    pub max_bits: u32,
}

/// A keyframe's original-orientation hash and quality.
type Hashed = (Hash256, u8);

/// The paths compared with the reference, in the order of [`Compared::paths`]; the
/// first is the live path.
const PATHS: [&str; 3] = [
    "live: no deblocking, RGB24 full size",
    "+ GRAY8 luma instead of RGB24 (not applied)",
    "+ RGB24 at half size (not applied)",
];

/// One keyframe's hash by the reference and by each of [`PATHS`].
struct Compared {
    reference: Hashed,
    paths: [Hashed; 3],
}

pub fn run(args: LiveHashBenchArgs) -> anyhow::Result<ExitCode> {
    ffmpeg_next::init()?;
    let mut compared = Vec::new();
    for file in &args.files {
        compare_file(file, &mut compared).with_context(|| file.display().to_string())?;
    }
    ensure!(!compared.is_empty(), "no keyframe in the given files");
    println!(
        "== distance to `livegate hash` (full decode, RGB24 full size), bits: {} keyframes of {} files",
        compared.len(),
        args.files.len()
    );
    println!(
        "  {:<44} {:>5} {:>4} {:>4} {:>4} {:>10}",
        "path", "mean", "p50", "p99", "max", "max Δqual"
    );
    for (path, name) in PATHS.iter().enumerate() {
        let mut distances: Vec<u32> = compared
            .iter()
            .map(|c| c.paths[path].0.distance(&c.reference.0))
            .collect();
        distances.sort_unstable();
        let quality_delta = compared
            .iter()
            .map(|c| c.paths[path].1.abs_diff(c.reference.1))
            .max()
            .unwrap_or(0);
        let mean = f64::from(distances.iter().sum::<u32>()) / distances.len() as f64;
        let at = |q: f64| distances[((distances.len() - 1) as f64 * q).round() as usize];
        println!(
            "  {name:<44} {mean:>5.2} {:>4} {:>4} {:>4} {quality_delta:>10}",
            at(0.5),
            at(0.99),
            at(1.0),
        );
    }
    let worst = compared
        .iter()
        .map(|c| c.paths[0].0.distance(&c.reference.0))
        .max()
        .unwrap_or(0);
    if worst > args.max_bits {
        println!(
            "  the live path's distance of {worst} bits exceeds --max-bits {}",
            args.max_bits
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn compare_file(file: &Path, compared: &mut Vec<Compared>) -> anyhow::Result<()> {
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
    let mut live = KeyframeDecoder::new(codec, &extradata, u64::MAX, Deblocking::Skip)?;
    let mut hasher = FrameHasher::new();
    let mut pdq = PdqHasher::new();
    for (stream, packet) in input.packets() {
        if stream.index() != index || !packet.is_key() {
            continue;
        }
        let (Some(data), pts) = (packet.data(), packet.pts().unwrap_or(0)) else {
            continue;
        };
        let reference = hasher.hash_frame(full.decode_keyframe(data, pts)?.picture)?;
        let picture = live.decode_keyframe(data, pts)?.picture;
        let live_hashes = hasher.hash_frame_for_matching(picture)?.full;
        let (width, height) = (picture.width(), picture.height());
        let luma = convert(picture, Pixel::GRAY8, width, height)?;
        let luma = pdq.hash(view(&luma), PixelLayout::Gray8)?;
        let half = convert(picture, Pixel::RGB24, width / 2, height / 2)?;
        let half = pdq.hash(view(&half), PixelLayout::Rgb8(LumaFormula::Float32))?;
        compared.push(Compared {
            reference: (reference.hash, reference.quality),
            paths: [
                (live_hashes.hashes[0], live_hashes.quality),
                (luma.hash, luma.quality),
                (half.hash, half.quality),
            ],
        });
    }
    Ok(())
}

/// The picture converted by swscale with vPDQ's `SWS_AREA` flag.
fn convert(
    picture: &frame::Video,
    format: Pixel,
    width: u32,
    height: u32,
) -> anyhow::Result<frame::Video> {
    let mut converted = frame::Video::new(format, width, height);
    scaling::Context::get(
        picture.format(),
        picture.width(),
        picture.height(),
        format,
        width,
        height,
        scaling::Flags::AREA,
    )?
    .run(picture, &mut converted)?;
    Ok(converted)
}

fn view(converted: &frame::Video) -> Image<'_> {
    Image {
        data: converted.data(0),
        width: converted.width() as usize,
        height: converted.height() as usize,
        stride: converted.stride(0),
    }
}
