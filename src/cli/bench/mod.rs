//! `livegate bench …`: each benchmark measures a yardstick in the same run and prints ratios.
use clap::Subcommand;
use std::process::ExitCode;

pub mod pdq;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// PDQ hashing against Meta's C++ (PyPI pdqhash), bit-exactness checked.
    Pdq(pdq::PdqBenchArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Pdq(args) => pdq::run(args),
    }
}
