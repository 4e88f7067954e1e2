//! `livegate bench …`: each benchmark measures a yardstick in the same run and prints ratios.
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum BenchCommand {}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
