//! `livegate bench …`: each benchmark measures a yardstick in the same run and prints ratios.
use clap::Subcommand;
use std::process::ExitCode;

mod demux;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// RTMP demuxer throughput on a captured publish session.
    Demux(demux::DemuxBenchArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Demux(args) => demux::run(args),
    }
}
