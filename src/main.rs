//! The `livegate` binary: command-line parsing and the error edge (anyhow lives here only).

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// A descriptor list of images and video frames (`[descriptor]` model).
    Describe(cli::describe::DescribeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => {
            livegate::memory::trim_freed_memory_periodically();
            cli::run::run(args)
        }
        Command::CheckConfig(args) => cli::run::check_config(args),
        Command::Match(args) => cli::matching::run(args),
        Command::Hash(args) => cli::hash::run(args),
        Command::Describe(args) => cli::describe::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("livegate: {}", cli::describe(&error));
            // 2, as grep: `match` exits 1 when nothing matched, which is not an error.
            ExitCode::from(2)
        }
    }
}
