//! `livegate-bench demux`: RTMP demuxer throughput on the captured FFmpeg publish
//! session, fed in relay-sized reads, against a plain copy of the same bytes (the
//! yardstick: the relay's own tap copy).
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
    anyhow::ensure!(args.read_size > 0, "--read-size must be at least 1");
    let total = SESSION.len() * args.iterations as usize;

    let started = Instant::now();
    let mut copy = Vec::with_capacity(SESSION.len());
    for _ in 0..args.iterations {
        copy.clear();
        for read in SESSION.chunks(args.read_size) {
            copy.extend_from_slice(black_box(read));
        }
        black_box(&copy);
    }
    let copy_elapsed = started.elapsed();

    let started = Instant::now();
    let mut frames = 0usize;
    let mut events = Vec::new();
    for _ in 0..args.iterations {
        let mut demuxer = Demuxer::new(DemuxLimits::default());
        for read in SESSION.chunks(args.read_size) {
            demuxer.feed(black_box(read), &mut events)?;
            frames += events
                .drain(..)
                .filter(|e| matches!(e, DemuxEvent::VideoFrame(_)))
                .count();
        }
    }
    let demux_elapsed = started.elapsed();

    println!(
        "demux: {} bytes x {} in {}-byte reads, {} frames",
        SESSION.len(),
        args.iterations,
        args.read_size,
        frames
    );
    println!(
        "copy (yardstick): {:10.1} MB/s",
        mb_per_s(total, copy_elapsed)
    );
    println!(
        "demux:            {:10.1} MB/s",
        mb_per_s(total, demux_elapsed)
    );
    println!(
        "demux time / copy time: {:.1}",
        demux_elapsed.as_secs_f64() / copy_elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
