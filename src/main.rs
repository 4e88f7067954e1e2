//! The `livegate` binary: command-line parsing and the error edge (anyhow lives here only).

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// How often `livegate run` (and `bench`, which measures it) hands freed heap memory back
/// to the kernel.
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// glibc keeps what tokio's worker threads free in their arenas and returns it only from
/// the top of each heap, so after bursts (connection floods, a fast publisher) RSS stays
/// at its high-water mark and creeps up burst after burst (32 → 110 MiB over seven floods
/// of 1000 connections). `malloc_trim(0)` releases every free page of every arena: RSS
/// then follows the load back down, and relay throughput is unchanged (BENCHMARKS.md,
/// "Memory returned after bursts"; jemalloc and mimalloc did worse there).
fn trim_freed_memory_periodically() {
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_INTERVAL);
                // SAFETY: malloc_trim only takes glibc's own arena locks.
                unsafe { libc::malloc_trim(0) };
            }
        });
    if let Err(error) = spawned {
        eprintln!(
            "livegate: cannot start the malloc-trim thread ({error}); freed memory stays with the process"
        );
    }
}

#[derive(Parser)]
#[command(name = "livegate", version, about = "Live-stream interception proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (embedded default config without --config).
    Run(cli::run::RunArgs),
    /// Validate a config file and print the effective config.
    CheckConfig(cli::run::CheckConfigArgs),
    /// Look hashes or images up in a hash list file.
    Match(cli::matching::MatchArgs),
    /// PDQ hashes of images and video frames (`HASH,QUALITY,FILENAME[,PTS]`).
    Hash(cli::hash::HashArgs),
    /// Benchmarks that print ratios against a yardstick measured in the same run.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => {
            trim_freed_memory_periodically();
            cli::run::run(args)
        }
        Command::CheckConfig(args) => cli::run::check_config(args),
        Command::Match(args) => cli::matching::run(args),
        Command::Hash(args) => cli::hash::run(args),
        Command::Bench(command) => {
            trim_freed_memory_periodically();
            cli::bench::run(command)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("livegate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
