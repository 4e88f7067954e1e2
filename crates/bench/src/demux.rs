//! `livegate-bench demux`: RTMP demuxer throughput on the captured FFmpeg publish
//! session, fed in relay-sized reads, against a plain copy of the same bytes (the
//! yardstick: the relay's own tap copy). [`against_copy`] is the measurement, shared
//! with `ts-demux`.
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use livegate_rtmp::{DemuxEvent, DemuxLimits, Demuxer};

const SESSION: &[u8] = include_bytes!("../../../tests/fixtures/ffmpeg-publish-avc.rtmp");

#[derive(Args)]
pub struct DemuxBenchArgs {
    /// Times the session is demuxed.
    #[arg(long, default_value_t = 2000)]
    iterations: u32,
    /// Bytes per `feed` call (a relay read).
    #[arg(long, default_value_t = 16 * 1024)]
    read_size: usize,
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

pub fn run(args: DemuxBenchArgs) -> anyhow::Result<ExitCode> {
    let mut events = Vec::new();
    against_copy(
        "demux",
        SESSION,
        args.iterations,
        args.read_size,
        |session, read_size| {
            let mut demuxer = Demuxer::new(DemuxLimits::default());
            let mut frames = 0;
            for read in session.chunks(read_size) {
                demuxer.feed(black_box(read), &mut events)?;
                frames += events
                    .drain(..)
                    .filter(|e| matches!(e, DemuxEvent::VideoFrame(_)))
                    .count();
            }
            Ok(frames)
        },
    )
}

/// Runs `demux_session` (one pass over `session` in reads of `read_size` bytes, returning
/// the frames found) `iterations` times, and a plain copy of the same reads as many
/// times, and prints both throughputs.
pub fn against_copy(
    name: &str,
    session: &[u8],
    iterations: u32,
    read_size: usize,
    mut demux_session: impl FnMut(&[u8], usize) -> anyhow::Result<usize>,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(read_size > 0, "--read-size must be at least 1");
    let total = session.len() * iterations as usize;

    let started = Instant::now();
    let mut copy = Vec::with_capacity(session.len());
    for _ in 0..iterations {
        copy.clear();
        for read in session.chunks(read_size) {
            copy.extend_from_slice(black_box(read));
        }
        black_box(&copy);
    }
    let copy_elapsed = started.elapsed();

    let started = Instant::now();
    let mut frames = 0usize;
    for _ in 0..iterations {
        frames += demux_session(session, read_size)?;
    }
    let demux_elapsed = started.elapsed();

    println!(
        "{name}: {} bytes x {iterations} in {read_size}-byte reads, {frames} frames",
        session.len(),
    );
    println!(
        "copy (yardstick): {:10.1} MB/s",
        mb_per_s(total, copy_elapsed)
    );
    println!(
        "{name}:{:pad$} {:10.1} MB/s",
        "",
        mb_per_s(total, demux_elapsed),
        pad = 17usize.saturating_sub(name.len() + 1),
    );
    println!(
        "{name} time / copy time: {:.1}",
        demux_elapsed.as_secs_f64() / copy_elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
