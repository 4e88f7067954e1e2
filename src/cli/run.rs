//! `livegate run` and `livegate check-config`.
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use livegate::config::Config;

#[derive(Args)]
pub struct RunArgs {
    /// Config file (TOML); the embedded default config when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args)]
pub struct CheckConfigArgs {
    /// Config file to validate.
    pub file: PathBuf,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let _config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default()?,
    };
    Ok(ExitCode::SUCCESS)
}

pub fn check_config(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.file)?;
    print!("{}", config.to_toml());
    Ok(ExitCode::SUCCESS)
}
