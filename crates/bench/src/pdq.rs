//! `livegate-bench pdq`: livegate's PDQ against Meta's C++ (PyPI `pdqhash`) on the same
//! RGB buffers, in one run. Prints ms per hash for both, the speed ratio, and fails unless
//! every hash and quality is bit-identical.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use livegate_signals::pdq::{Image, LumaFormula, PdqHasher, PdqOutput, PixelLayout};

const REFERENCE_SCRIPT: &str = include_str!("pdq_reference.py");
const SIZES: [(usize, usize); 4] = [(64, 64), (512, 512), (1024, 1024), (1920, 1080)];

#[derive(Args)]
pub struct PdqBenchArgs {
    /// Python of the virtualenv holding PyPI pdqhash (made by scripts/install-deps.sh).
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// Measuring time per size and implementation, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
}

/// Deterministic test picture: smooth gradients plus xorshift noise, like a photo's mix of
/// structure and texture.
fn test_picture(width: usize, height: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (width * 31 + height) as u64;
    let mut pixels = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state & 0x3f) as usize;
            pixels.push(((x * 255 / width + noise) % 256) as u8);
            pixels.push(((y * 255 / height + noise / 2) % 256) as u8);
            pixels.push((((x + y) * 128 / (width + height) + noise) % 256) as u8);
        }
    }
    pixels
}

fn per_call_ms(budget: Duration, mut call: impl FnMut()) -> f64 {
    call();
    let start = Instant::now();
    let mut calls = 0u32;
    loop {
        call();
        calls += 1;
        let elapsed = start.elapsed();
        if elapsed >= budget && calls >= 3 {
            return elapsed.as_secs_f64() * 1000.0 / f64::from(calls);
        }
    }
}

struct Measured {
    width: usize,
    height: usize,
    output: PdqOutput,
    ms: f64,
}

pub fn run(args: PdqBenchArgs) -> anyhow::Result<ExitCode> {
    if !args.python.exists() {
        bail!(
            "{} not found: run scripts/install-deps.sh (or pass --python)",
            args.python.display()
        );
    }
    let budget = Duration::from_secs_f64(args.seconds);
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let mut manifest = Vec::new();
    let mut ours = Vec::new();
    let mut hasher = PdqHasher::new();
    let layout = PixelLayout::Rgb8(LumaFormula::Float64Rounded);
    for (width, height) in SIZES {
        let pixels = test_picture(width, height);
        let file = format!("{width}x{height}.rgb");
        std::fs::write(dir.path().join(&file), &pixels).context("writing a test buffer")?;
        manifest.push(serde_json::json!({"file": file, "width": width, "height": height}));
        let image = Image {
            data: &pixels,
            width,
            height,
            stride: width * 3,
        };
        let output = hasher.hash(image, layout)?;
        let ms = per_call_ms(budget, || {
            std::hint::black_box(hasher.hash(std::hint::black_box(image), layout).ok());
        });
        ours.push(Measured {
            width,
            height,
            output,
            ms,
        });
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_vec(&manifest)?,
    )?;
    let script = dir.path().join("pdq_reference.py");
    std::fs::write(&script, REFERENCE_SCRIPT)?;
    let seconds = args.seconds.to_string();
    let reference = super::run_python_reference(
        &args.python,
        &script,
        &[dir.path().as_os_str(), seconds.as_ref()],
    )?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "PDQ, RGB8 → hash+quality, ms per hash (livegate single thread vs pdqhash.compute)"
    )?;
    writeln!(
        out,
        "{:>10} {:>10} {:>12} {:>8} {:>14} {:>8}  bit-exact",
        "size", "livegate", "pdqhash", "ratio", "C++ est.", "ratio"
    )?;
    let mut all_exact = true;
    for m in &ours {
        let entry = &reference[format!("{}x{}.rgb", m.width, m.height)];
        let compute_ms = entry["compute_ms"].as_f64().context("compute_ms")?;
        let luma_ms = entry["luma_ms"].as_f64().context("luma_ms")?;
        let cpp_ms = compute_ms - luma_ms;
        let exact = entry["hash"].as_str() == Some(m.output.hash.to_string().as_str())
            && entry["quality"].as_u64() == Some(u64::from(m.output.quality));
        all_exact &= exact;
        writeln!(
            out,
            "{:>10} {:>10.3} {:>12.3} {:>7.2}x {:>14.3} {:>7.2}x  {}",
            format!("{}x{}", m.width, m.height),
            m.ms,
            compute_ms,
            compute_ms / m.ms,
            cpp_ms,
            cpp_ms / m.ms,
            if exact { "yes" } else { "NO" }
        )?;
    }
    writeln!(
        out,
        "ratio = reference time / livegate time; C++ est. = pdqhash.compute minus its numpy luma"
    )?;
    if !all_exact {
        bail!("livegate's PDQ differs from the reference");
    }
    Ok(ExitCode::SUCCESS)
}
