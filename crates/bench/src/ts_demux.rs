//! `livegate-bench ts-demux`: MPEG-TS demuxer throughput on ffmpeg's H.264 + AAC transport
//! stream (`tests/fixtures/ffmpeg-avc-aac.ts`), fed in SRT-sized reads (7 packets, 1316
//! bytes), against a plain copy of the same bytes (the relay's own tap copy).
use std::hint::black_box;
use std::process::ExitCode;

use clap::Args;

use livegate_mpegts::{DemuxEvent, Demuxer, Limits};

const STREAM: &[u8] = include_bytes!("../../../tests/fixtures/ffmpeg-avc-aac.ts");

#[derive(Args)]
pub struct TsDemuxBenchArgs {
    /// Times the stream is demuxed.
    #[arg(long, default_value_t = 2000)]
    iterations: u32,
    /// Bytes per `feed` call (an SRT payload carries 7 packets).
    #[arg(long, default_value_t = 7 * 188)]
    read_size: usize,
}

pub fn run(args: TsDemuxBenchArgs) -> anyhow::Result<ExitCode> {
    let mut events = Vec::new();
    super::demux::against_copy(
        "ts-demux",
        STREAM,
        args.iterations,
        args.read_size,
        |stream, read_size| {
            let mut demuxer = Demuxer::new(Limits::default());
            let mut units = 0;
            for read in stream.chunks(read_size) {
                demuxer.feed(black_box(read), &mut events)?;
                units += events
                    .drain(..)
                    .filter(|event| matches!(event, DemuxEvent::AccessUnit(_)))
                    .count();
            }
            Ok(units)
        },
    )
}
