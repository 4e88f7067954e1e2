//! `livegate run` and `livegate check-config`.

use anyhow::Context;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

use livegate::admin::TOKEN_ENV;
use livegate::config::{Config, LogConfig, LogFormat};
use livegate::descriptor::DescriptorModel;
use livegate::ingest::tls::{CertificateStore, OriginTls};
use livegate::server::Server;
use livegate::signals::classifier::Classifier;
use livegate::signals::descriptor_lists::DescriptorListSet;
use livegate::signals::lists::ListSet;

#[derive(Args)]
pub struct RunArgs {
    /// Config file (TOML); the embedded default config (config/default.toml) when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args)]
pub struct CheckConfigArgs {
    /// Config file to validate.
    pub file: PathBuf,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default()?,
    };
    init_logging(&config.log)?;
    // FFmpeg's own lines go through the same subscriber (one format on stderr).
    livegate::media::log::install();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        tokio::spawn(reload_lists_on_sighup(
            server.lists(),
            server.descriptor_lists(),
        ));
        let certificates = server.certificates();
        if !certificates.is_empty() {
            tokio::spawn(reload_certificates(certificates));
        }
        server.run_until(shutdown_signal()).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn check_config(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.file)?;
    // What `run` reads besides the file itself.
    if let Some(cluster) = &config.cluster {
        livegate::backend::cluster::credentials(cluster)?;
    }
    if let Some(admin) = &config.admin {
        let tokens = livegate::admin::resolve_tokens(admin, std::env::var(TOKEN_ENV).ok())?;
        let names: Vec<&str> = tokens.iter().map(|named| named.name.as_str()).collect();
        match names.is_empty() {
            true => eprintln!("admin tokens: none (the /v1/ API stays locked)"),
            false => eprintln!("admin tokens: {}", names.join(", ")),
        }
        if let Some(files) = &admin.tls {
            CertificateStore::load(files, "admin.tls")?;
        }
    }
    for (index, ingest) in config.ingest.iter().enumerate() {
        if let Some(files) = &ingest.tls {
            CertificateStore::load(files, &format!("ingest[{index}].tls"))?;
        }
        if let Some(tls) = &ingest.origin_tls {
            OriginTls::load(tls, &ingest.origin, &format!("ingest[{index}].origin_tls"))?;
        }
    }
    // The lists and models, loaded as `run` loads them (a missing, empty or malformed
    // file fails here the same way); what was loaded goes to stderr, the config to stdout.
    let lists = ListSet::load(&config.hashlist)?;
    for status in lists.status() {
        eprintln!("hash list {}: {} hashes", status.name, status.hashes);
    }
    if let Some(descriptor) = &config.descriptor {
        let lists = DescriptorListSet::load(&config.descriptorlist, &descriptor.list_model()?)?;
        for status in lists.status() {
            eprintln!(
                "descriptor list {}: {} descriptors",
                status.name, status.descriptors
            );
        }
        DescriptorModel::load(Arc::new(descriptor.clone()))?;
        eprintln!("descriptor model {}: loaded", descriptor.model.display());
    }
    if let Some(classifier) = &config.classifier {
        Classifier::load(Arc::new(classifier.clone()))?;
        eprintln!("classifier model {}: loaded", classifier.model.display());
    }
    print!("{}", config.to_toml());
    Ok(ExitCode::SUCCESS)
}

/// Installs the `tracing` subscriber writing to stderr.
pub fn init_logging(log: &LogConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => EnvFilter::try_new(&from_env)
            .with_context(|| format!("RUST_LOG={from_env:?} is not a valid log filter"))?,
        _ => EnvFilter::try_new(&log.level)
            .with_context(|| format!("log.level = {:?} is not a valid log filter", log.level))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

/// Reloads every hash list and descriptor list on SIGHUP, off the async workers; a list
/// that fails keeps its previous version (the error names `file:line`).
async fn reload_lists_on_sighup(
    lists: Arc<ListSet>,
    descriptor_lists: Option<Arc<DescriptorListSet>>,
) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP: lists reload only through the API");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading lists");
        // Each list logs its own reload, or its failure naming `file:line` (the list
        // code does, for every path a reload takes: SIGHUP, the API, the fleet).
        let (hash_lists, descriptor_lists) = (Arc::clone(&lists), descriptor_lists.clone());
        let reloaded = tokio::task::spawn_blocking(move || {
            hash_lists.reload_all();
            if let Some(descriptor_lists) = descriptor_lists {
                descriptor_lists.reload_all();
            }
        })
        .await;
        if let Err(error) = reloaded {
            tracing::error!(%error, "list reload task failed");
        }
    }
}

/// How often certificate files are checked for changes (two `stat` calls a certificate).
const CERTIFICATE_POLL: Duration = Duration::from_secs(5);

/// Reloads the TLS certificates (RTMPS listeners, admin) on SIGHUP and when their files
/// change on disk (a renewal): new connections get the new pair, running sessions keep
/// theirs, and a pair that fails to load leaves the old one (reported once per change).
async fn reload_certificates(certificates: Vec<Arc<CertificateStore>>) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP: certificates reload only when their files change");
            None
        }
    };
    let mut poll = tokio::time::interval(CERTIFICATE_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            Some(()) = async { hangups.as_mut()?.recv().await } => "sighup",
            _ = poll.tick() => "file_changed",
        };
        for store in &certificates {
            if trigger == "file_changed" && !store.changed_on_disk() {
                continue;
            }
            let reloading = Arc::clone(store);
            match tokio::task::spawn_blocking(move || reloading.reload()).await {
                Ok(Ok(())) => tracing::info!(
                    certificate = %store.certificate_path().display(),
                    trigger,
                    "TLS certificate reloaded"
                ),
                Ok(Err(error)) => tracing::error!(
                    %error,
                    trigger,
                    "TLS certificate reload failed; previous certificate stays active"
                ),
                Err(error) => tracing::error!(%error, "TLS certificate reload task failed"),
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}
