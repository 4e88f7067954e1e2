//! `livegate bench …`: each benchmark measures a yardstick in the same run and prints ratios.

mod classifier;
mod cut;
mod demux;
mod index;
mod pdq;
mod relay;

use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Relay throughput, CPU and added latency against a direct connection.
    Relay(relay::RelayBenchArgs),
    /// Hash index: build time, memory, lookup latency against brute force.
    Index(index::IndexBenchArgs),
    /// PDQ hashing against Meta's C++ (PyPI pdqhash), bit-exactness checked.
    Pdq(pdq::PdqBenchArgs),
    /// RTMP demuxer throughput on a captured publish session.
    Demux(demux::DemuxBenchArgs),
    /// Time to cut under benign load, and streams per analysis core.
    Cut(cut::CutBenchArgs),
    /// Classifier (NudeNet's YOLOv8n) per-frame cost against Python's onnxruntime.
    Classifier(classifier::ClassifierBenchArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Relay(args) => relay::run(args),
        BenchCommand::Index(args) => index::run(args),
        BenchCommand::Pdq(args) => pdq::run(args),
        BenchCommand::Demux(args) => demux::run(args),
        BenchCommand::Cut(args) => cut::run(args),
        BenchCommand::Classifier(args) => classifier::run(args),
    }
}
