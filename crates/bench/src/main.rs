//! `livegate-bench …`: each benchmark measures a yardstick in the same run and prints
//! ratios. A binary of its own (formerly `livegate bench`) so that the release `livegate`
//! carries no benchmark harness, test encoder or fixture.

mod classifier;
mod cluster;
mod codecs;
mod cut;
mod demux;
mod descriptor;
mod descriptor_index;
mod descriptor_recall;
mod evidence;
mod gate;
mod index;
mod live_hash;
mod pdq;
mod relay;
mod srt;
mod tls;
mod ts_demux;

use anyhow::{Context, bail};
use clap::Parser;
use std::path::Path;
use std::process::{Command, ExitCode};

/// Benchmarks that print ratios against a yardstick measured in the same run.
#[derive(Parser)]
#[command(name = "livegate-bench", version)]
enum BenchCommand {
    /// Relay throughput, CPU and added latency against a direct connection.
    Relay(relay::RelayBenchArgs),
    /// RTMPS against plain RTMP through the same livegate: added latency, CPU per Gbit.
    Tls(relay::RelayBenchArgs),
    /// Hash index: build time, memory, lookup latency against brute force.
    Index(index::IndexBenchArgs),
    /// Descriptor index: memory, exact cosine search latency against f32 brute force.
    DescriptorIndex(descriptor_index::DescriptorIndexBenchArgs),
    /// PDQ hashing against Meta's C++ (PyPI pdqhash), bit-exactness checked.
    Pdq(pdq::PdqBenchArgs),
    /// SRT streams at real rate through livegate against a direct SRT link: added
    /// latency and CPU.
    Srt(srt::SrtBenchArgs),
    /// RTMP demuxer throughput on a captured publish session.
    Demux(demux::DemuxBenchArgs),
    /// MPEG-TS demuxer throughput on an ffmpeg transport stream, against a memory copy.
    TsDemux(ts_demux::TsDemuxBenchArgs),
    /// Time to cut under benign load, and streams per analysis core.
    Cut(cut::CutBenchArgs),
    /// Gate mode: added latency per keyframe against pass mode, 1 to 200 streams.
    Gate(gate::GateBenchArgs),
    /// Evidence frames and thumbnails: JPEG cost per frame against the worker's path, and
    /// analysis CPU per keyframe with evidence on and off.
    Evidence(evidence::EvidenceBenchArgs),
    /// Per-keyframe analysis cost of HEVC and AV1 against H.264.
    Codecs(codecs::CodecsBenchArgs),
    /// Classifier (NudeNet's YOLOv8n) per-frame cost against Python's onnxruntime.
    Classifier(classifier::ClassifierBenchArgs),
    /// Descriptor (SSCD distilled) cost per view against Python's onnxruntime.
    Descriptor(descriptor::DescriptorBenchArgs),
    /// Recall per edit and benign false matches: PDQ, PDQ views and the descriptor.
    DescriptorRecall(descriptor_recall::DescriptorRecallBenchArgs),
    /// Distance of the live path's PDQ hashes to `livegate hash`'s on real keyframes.
    LiveHash(live_hash::LiveHashBenchArgs),
    /// A fleet on NATS JetStream: ban and learned-hash propagation between 3 nodes, and
    /// the relay and lookup cost of `[cluster]`.
    Cluster(cluster::ClusterBenchArgs),
    /// One load node of `cluster` (started by it).
    #[command(hide = true)]
    ClusterNode(cluster::ClusterNodeArgs),
}

fn main() -> ExitCode {
    let command = BenchCommand::parse();
    // The relay and cut benchmarks measure the proxy as `livegate run` runs it.
    livegate::memory::trim_freed_memory_periodically();
    match run(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("livegate-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Relay(args) => relay::run(args),
        BenchCommand::Tls(args) => tls::run(args),
        BenchCommand::Index(args) => index::run(args),
        BenchCommand::DescriptorIndex(args) => descriptor_index::run(args),
        BenchCommand::Pdq(args) => pdq::run(args),
        BenchCommand::Srt(args) => srt::run(args),
        BenchCommand::Demux(args) => demux::run(args),
        BenchCommand::TsDemux(args) => ts_demux::run(args),
        BenchCommand::Cut(args) => cut::run(args),
        BenchCommand::Gate(args) => gate::run(args),
        BenchCommand::Evidence(args) => evidence::run(args),
        BenchCommand::Codecs(args) => codecs::run(args),
        BenchCommand::Classifier(args) => classifier::run(args),
        BenchCommand::Descriptor(args) => descriptor::run(args),
        BenchCommand::DescriptorRecall(args) => descriptor_recall::run(args),
        BenchCommand::LiveHash(args) => live_hash::run(args),
        BenchCommand::Cluster(args) => cluster::run(args),
        BenchCommand::ClusterNode(args) => cluster::run_node(args),
    }
}

/// Runs a reference implementation's timing script with the project's Python and parses
/// the JSON it prints.
fn run_python_reference(
    python: &Path,
    script: &Path,
    args: &[&std::ffi::OsStr],
) -> anyhow::Result<serde_json::Value> {
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "reference timing failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("parsing the reference's timings")
}
