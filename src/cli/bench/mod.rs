//! `livegate bench …`: each benchmark measures a yardstick in the same run and prints ratios.
use clap::Subcommand;
use std::process::ExitCode;

pub mod index;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Hash index: build time, memory, lookup latency against brute force.
    Index(index::IndexBenchArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Index(args) => index::run(args),
    }
}
