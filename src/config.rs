//! The TOML configuration: schema, defaults, and validation whose errors name the key.
//!
//! Every key is documented in `config/example.toml`; the embedded default config
//! (`config/default.toml`) is what `livegate run` uses without `--config`.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ingest::proxy_protocol::{ProxyProtocolMode, ProxyVersion};
use livegate_rtmp::DemuxLimits;

/// The config `livegate run` uses when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config {origin}: {invalid}")]
    Invalid { origin: String, invalid: InvalidKey },
}

/// A config value that is wrong: its dotted key (e.g. `hashlist[1].max_distance`) and
/// what is wrong with it. Every section's `validate` returns it, so every config error
/// names its key the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {message}")]
pub struct InvalidKey {
    pub key: String,
    pub message: String,
}

impl InvalidKey {
    pub fn new(key: String, message: String) -> Self {
        InvalidKey { key, message }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub ingest: Vec<IngestConfig>,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub hashlist: Vec<crate::signals::lists::HashListConfig>,
    #[serde(default)]
    pub policy: crate::policy::PolicyConfig,
    #[serde(default)]
    pub actuator: crate::actions::ActuatorConfig,
    #[serde(default)]
    pub analysis: crate::analysis::AnalysisConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<crate::admin::AdminConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<crate::signals::classifier::ClassifierConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<crate::descriptor::DescriptorConfig>,
    #[serde(default)]
    pub descriptorlist: Vec<crate::signals::descriptor_lists::DescriptorListConfig>,
    /// A fleet sharing bans, learned footage, audit and operator cuts through NATS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::backend::cluster::ClusterConfig>,
    /// Evidence frames and thumbnails for the review console.
    #[serde(default)]
    pub evidence: crate::evidence::EvidenceConfig,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Rtmp,
    /// RTMP inside TLS; needs `[ingest.tls]`.
    Rtmps,
    /// MPEG-TS over SRT (libsrt, live mode); options in `[ingest.srt]`.
    Srt,
}

impl Protocol {
    /// The name in the config, the API and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Rtmps => "rtmps",
            Protocol::Srt => "srt",
        }
    }
}

/// A PEM certificate chain (leaf first) and its PEM private key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFilesConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// What to do with a stream the demuxer cannot parse (and so livegate cannot inspect).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnParseError {
    /// Close the connection: an uninspectable stream is not let through.
    Cut,
    /// Keep relaying the bytes, stop inspecting, and log it.
    Pass,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// What publishers speak; plain RTMP unless said otherwise.
    #[serde(default)]
    pub protocol: Protocol,
    pub listen: SocketAddr,
    /// Address of the real ingest server; a host name is resolved at each dial.
    pub origin: String,
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "defaults::publish_timeout_ms")]
    pub publish_timeout_ms: u64,
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// The publisher must send the start of its handshake (C0 + C1) in this time; the
    /// origin is dialled only once it has.
    #[serde(default = "defaults::handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// A write to either side that does not complete in this time ends the session: that
    /// side has stopped reading.
    #[serde(default = "defaults::write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// Sessions one client address (one IPv6 /64) may hold on this listener; 0: no cap.
    #[serde(default = "defaults::max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// A publisher sending more than this on average over a window is closed; 0: no cap.
    #[serde(default)]
    pub max_publisher_kbps: u64,
    #[serde(default = "defaults::on_parse_error")]
    pub on_parse_error: OnParseError,
    /// Video flowing this long without a keyframe is uninspectable (`on_parse_error`):
    /// livegate inspects keyframes, and intra-refresh or mislabelled streams have none.
    #[serde(default = "defaults::max_keyframe_interval_ms")]
    pub max_keyframe_interval_ms: u64,
    #[serde(default)]
    pub limits: RtmpLimitsConfig,
    /// Whether connections start with a PROXY protocol header naming the real client.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocolMode,
    /// CIDRs of the load balancers whose PROXY headers are believed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// A PROXY header livegate sends the origin before any relayed byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_proxy_protocol: Option<ProxyVersion>,
    /// The certificate of an `rtmps` listener; reloaded on SIGHUP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFilesConfig>,
    /// TLS to the origin (an `rtmps://` origin); plain TCP without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_tls: Option<OriginTlsConfig>,
    /// SRT options of a `protocol = "srt"` listener and its origin link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt: Option<crate::ingest::srt::SrtConfig>,
    /// `pass` (default), or `gate`: bytes from each keyframe on wait for its verdict.
    #[serde(default)]
    pub mode: crate::session::IngestMode,
    /// Gate mode: `keyframe` (default) or `gop` (a GOP waits for the next keyframe too).
    #[serde(default)]
    pub gate: crate::session::GateUnit,
    /// Gate mode: longest wait for a keyframe's verdict before `on_hold_timeout`.
    #[serde(default = "crate::session::gate_defaults::max_hold_ms")]
    pub max_hold_ms: u64,
    #[serde(default)]
    pub on_hold_timeout: crate::session::OnHoldTimeout,
    /// Gate mode: most bytes held per stream before `on_hold_timeout`.
    #[serde(default = "crate::session::gate_defaults::max_held_bytes")]
    pub max_held_bytes: usize,
    /// Gate mode: the signals every keyframe waits for (`pdq` always).
    #[serde(default = "crate::session::gate_defaults::gate_signals")]
    pub gate_signals: Vec<crate::session::GateSignal>,
}

/// How livegate dials an `rtmps://` origin.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OriginTlsConfig {
    /// The name the origin's certificate must carry (and SNI); default: `origin`'s host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM CA certificates the origin's chain must end at; default: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Off: any certificate is accepted (a test origin only; the link is then open to
    /// interception).
    #[serde(default = "defaults::verify")]
    pub verify: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RtmpLimitsConfig {
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: u32,
    #[serde(default = "defaults::max_command_bytes")]
    pub max_command_bytes: u32,
    #[serde(default = "defaults::max_chunk_size")]
    pub max_chunk_size: u32,
    #[serde(default = "defaults::max_chunk_streams")]
    pub max_chunk_streams: usize,
    #[serde(default = "defaults::max_buffered_bytes")]
    pub max_buffered_bytes: usize,
}

impl Default for RtmpLimitsConfig {
    fn default() -> Self {
        let limits = DemuxLimits::default();
        RtmpLimitsConfig {
            max_message_bytes: limits.max_message_bytes,
            max_command_bytes: limits.max_command_bytes,
            max_chunk_size: limits.max_chunk_size,
            max_chunk_streams: limits.max_chunk_streams,
            max_buffered_bytes: limits.max_buffered_bytes,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// How long SIGTERM/Ctrl-C waits for live sessions before closing them.
    #[serde(default = "defaults::shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shutdown_grace_ms: defaults::shutdown_grace_ms(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "defaults::log_format")]
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `livegate=debug`; `RUST_LOG` overrides it.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: defaults::log_format(),
            level: defaults::log_level(),
        }
    }
}

mod defaults {
    pub fn verify() -> bool {
        true
    }
    use super::{LogFormat, OnParseError};
    use livegate_rtmp::DemuxLimits;

    pub fn max_connections() -> usize {
        1024
    }
    pub fn connect_timeout_ms() -> u64 {
        3_000
    }
    pub fn publish_timeout_ms() -> u64 {
        10_000
    }
    pub fn idle_timeout_ms() -> u64 {
        30_000
    }
    pub fn max_keyframe_interval_ms() -> u64 {
        20_000
    }
    pub fn handshake_timeout_ms() -> u64 {
        5_000
    }
    pub fn write_timeout_ms() -> u64 {
        10_000
    }
    /// One address rarely needs more than a few streams (a studio or encoder farm behind
    /// one NAT address runs a handful); 16 leaves room for that while one host can take
    /// at most 16 of the default 1024 slots.
    pub fn max_connections_per_client() -> usize {
        16
    }
    pub fn on_parse_error() -> OnParseError {
        OnParseError::Cut
    }
    pub fn max_message_bytes() -> u32 {
        DemuxLimits::default().max_message_bytes
    }
    pub fn max_command_bytes() -> u32 {
        DemuxLimits::default().max_command_bytes
    }
    pub fn max_chunk_size() -> u32 {
        DemuxLimits::default().max_chunk_size
    }
    pub fn max_chunk_streams() -> usize {
        DemuxLimits::default().max_chunk_streams
    }
    pub fn max_buffered_bytes() -> usize {
        DemuxLimits::default().max_buffered_bytes
    }
    pub fn shutdown_grace_ms() -> u64 {
        10_000
    }
    pub fn log_format() -> LogFormat {
        LogFormat::Text
    }
    pub fn log_level() -> String {
        "info".to_string()
    }
}

impl IngestConfig {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    pub fn max_keyframe_interval(&self) -> Duration {
        Duration::from_millis(self.max_keyframe_interval_ms)
    }
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
    pub fn demux_limits(&self) -> DemuxLimits {
        DemuxLimits {
            max_message_bytes: self.limits.max_message_bytes,
            max_command_bytes: self.limits.max_command_bytes,
            max_chunk_size: self.limits.max_chunk_size,
            max_chunk_streams: self.limits.max_chunk_streams,
            max_buffered_bytes: self.limits.max_buffered_bytes,
        }
    }
    /// The MPEG-TS demuxer's limits: `max_message_bytes` bounds a video access unit (a
    /// PES) as it bounds an RTMP video message; the others are the demuxer's defaults.
    pub fn ts_limits(&self) -> livegate_mpegts::Limits {
        livegate_mpegts::Limits {
            max_pes_bytes: self.limits.max_message_bytes as usize,
            ..livegate_mpegts::Limits::default()
        }
    }
}

impl ServerConfig {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths in it are relative to the file's
    /// folder (not to wherever livegate was started from).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        // Absolute, so the effective config (check-config, logs) says where files are.
        let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
        Config::parse_in(&text, &path.display().to_string(), Some(&folder))
    }

    /// The embedded default config. Its one relative path, the demo's hash list, is
    /// relative to the source tree livegate was built from (where `lists/` is), so the
    /// demo works from any folder of the machine that built it.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::parse_in(
            EMBEDDED_DEFAULT,
            "(embedded default)",
            Some(Path::new(env!("CARGO_MANIFEST_DIR"))),
        )
    }

    /// Parses and validates TOML text; `origin` names the source in errors. Relative
    /// paths stay relative to the working directory.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::parse_in(text, origin, None)
    }

    fn parse_in(text: &str, origin: &str, folder: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            origin: origin.to_string(),
            message: in_plain_words(&error.to_string()),
        })?;
        if let Some(folder) = folder {
            config.resolve_paths_from(folder);
        }
        config.validate(origin)?;
        Ok(config)
    }

    /// Makes every relative file path absolute from `folder` (the config file's). A
    /// runtime library given as a bare name (`libonnxruntime.so`) is left for the dynamic
    /// loader's search path.
    fn resolve_paths_from(&mut self, folder: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() && !path.as_os_str().is_empty() {
                *path = folder.join(&*path);
            }
        };
        let resolve_library = |library: &mut Option<PathBuf>| {
            if let Some(library) = library.as_mut().filter(|l| l.components().count() > 1) {
                resolve(library);
            }
        };
        for ingest in &mut self.ingest {
            if let Some(tls) = &mut ingest.tls {
                resolve(&mut tls.certificate);
                resolve(&mut tls.key);
            }
            if let Some(ca) = ingest.origin_tls.as_mut().and_then(|tls| tls.ca.as_mut()) {
                resolve(ca);
            }
        }
        if let Some(admin) = &mut self.admin {
            admin.token_file.iter_mut().for_each(resolve);
            admin
                .tokens
                .iter_mut()
                .for_each(|named| named.token_file.iter_mut().for_each(resolve));
            if let Some(tls) = &mut admin.tls {
                resolve(&mut tls.certificate);
                resolve(&mut tls.key);
            }
        }
        self.hashlist
            .iter_mut()
            .for_each(|list| resolve(&mut list.path));
        self.descriptorlist
            .iter_mut()
            .for_each(|list| resolve(&mut list.path));
        if let Some(descriptor) = &mut self.descriptor {
            resolve(&mut descriptor.model);
            resolve_library(&mut descriptor.runtime_library);
        }
        if let Some(classifier) = &mut self.classifier {
            resolve(&mut classifier.model);
            resolve_library(&mut classifier.runtime_library);
        }
        self.actuator.audit_log.iter_mut().for_each(resolve);
        self.evidence.dir.iter_mut().for_each(resolve);
        for webhook in &mut self.actuator.webhook {
            webhook.ca.iter_mut().for_each(resolve);
        }
        if let Some(cluster) = &mut self.cluster {
            for file in [
                &mut cluster.token_file,
                &mut cluster.creds_file,
                &mut cluster.nkey_seed_file,
            ] {
                file.iter_mut().for_each(resolve);
            }
        }
    }

    /// The effective config (defaults filled in) as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# cannot render: {error}"))
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let in_section = |invalid: InvalidKey| ConfigError::Invalid {
            origin: origin.to_string(),
            invalid,
        };
        let invalid = |key: String, message: &str| in_section(InvalidKey::new(key, message.into()));
        if self.ingest.is_empty() {
            return Err(invalid(
                "ingest".into(),
                "at least one [[ingest]] is required",
            ));
        }
        let mut listens = std::collections::HashSet::new();
        for (i, ingest) in self.ingest.iter().enumerate() {
            let key = |name: &str| format!("ingest[{i}].{name}");
            // Port 0 asks the OS for a free port, so it never collides.
            if ingest.listen.port() != 0 && !listens.insert(ingest.listen) {
                return Err(invalid(
                    key("listen"),
                    "address used by two [[ingest]] entries",
                ));
            }
            if ingest
                .origin
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return Err(invalid(key("origin"), "expected HOST:PORT"));
            }
            if ingest.max_connections == 0 {
                return Err(invalid(key("max_connections"), "must be at least 1"));
            }
            match (ingest.protocol, &ingest.tls) {
                (Protocol::Rtmps, None) => {
                    return Err(invalid(
                        key("tls"),
                        "protocol = \"rtmps\" needs [ingest.tls] with certificate and key",
                    ));
                }
                (Protocol::Rtmp | Protocol::Srt, Some(_)) => {
                    return Err(invalid(key("tls"), "needs protocol = \"rtmps\""));
                }
                _ => {}
            }
            for (name, value) in [
                ("connect_timeout_ms", ingest.connect_timeout_ms),
                ("publish_timeout_ms", ingest.publish_timeout_ms),
                ("idle_timeout_ms", ingest.idle_timeout_ms),
                ("max_keyframe_interval_ms", ingest.max_keyframe_interval_ms),
                ("handshake_timeout_ms", ingest.handshake_timeout_ms),
                ("write_timeout_ms", ingest.write_timeout_ms),
            ] {
                if value == 0 {
                    return Err(invalid(key(name), "must be greater than 0"));
                }
            }
            let limits = &ingest.limits;
            if limits.max_chunk_size < 128 {
                return Err(invalid(
                    key("limits.max_chunk_size"),
                    "must be at least 128 (RTMP's initial chunk size)",
                ));
            }
            if limits.max_message_bytes == 0 || limits.max_message_bytes > 0x00FF_FFFF {
                return Err(invalid(
                    key("limits.max_message_bytes"),
                    "must be between 1 and 16777215 (RTMP's 24-bit message length)",
                ));
            }
            if limits.max_command_bytes == 0 || limits.max_command_bytes > 0x00FF_FFFF {
                return Err(invalid(
                    key("limits.max_command_bytes"),
                    "must be between 1 and 16777215 (RTMP's 24-bit message length)",
                ));
            }
            if limits.max_chunk_streams == 0 {
                return Err(invalid(
                    key("limits.max_chunk_streams"),
                    "must be at least 1",
                ));
            }
            if limits.max_buffered_bytes < limits.max_message_bytes as usize {
                return Err(invalid(
                    key("limits.max_buffered_bytes"),
                    "must be at least limits.max_message_bytes",
                ));
            }
            crate::ingest::proxy_protocol::validate(ingest, key).map_err(in_section)?;
            crate::ingest::srt::validate(ingest, key).map_err(in_section)?;
            crate::session::validate_gate(
                ingest,
                key,
                self.descriptor.is_some(),
                self.classifier.is_some(),
            )
            .map_err(in_section)?;
        }
        crate::signals::lists::validate_configs(&self.hashlist).map_err(in_section)?;
        crate::signals::descriptor_lists::validate_configs(&self.descriptorlist)
            .map_err(in_section)?;
        if !self.descriptorlist.is_empty() && self.descriptor.is_none() {
            return Err(invalid(
                "descriptorlist".into(),
                "[[descriptorlist]] needs a [descriptor] model to describe live pictures",
            ));
        }
        self.policy.validate().map_err(in_section)?;
        let list_names: Vec<&str> = self
            .hashlist
            .iter()
            .map(|list| list.name.as_str())
            .chain(self.descriptorlist.iter().map(|list| list.name.as_str()))
            .collect();
        self.actuator.validate(&list_names).map_err(in_section)?;
        self.analysis.validate().map_err(in_section)?;
        if let Some(admin) = &self.admin {
            admin.validate().map_err(in_section)?;
        }
        if let Some(cluster) = &self.cluster {
            cluster
                .validate(self.actuator.ban_seconds)
                .map_err(in_section)?;
        }
        if let Some(classifier) = &self.classifier {
            classifier.validate().map_err(in_section)?;
        }
        if let Some(descriptor) = &self.descriptor {
            descriptor.validate().map_err(in_section)?;
        }
        self.evidence.validate().map_err(in_section)?;
        Ok(())
    }
}

/// A TOML/serde message with Rust's type names said in words (`expected u32` → `expected
/// a whole number, 0 or more`): operators write configs, not Rust.
fn in_plain_words(message: &str) -> String {
    const TYPES: [(&str, &str); 9] = [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list [...]"),
    ];
    TYPES
        .iter()
        .fold(message.to_string(), |text, (rust, words)| {
            text.replace(rust, words)
        })
}

/// The commented-out section of `config/example.toml` that starts at the line `marker`
/// (e.g. `# [classifier]`), uncommented, up to the first blank line or the end with
/// `to_end`: what the tests of optional sections parse.
#[cfg(test)]
pub(crate) fn uncommented_example(marker: &str, to_end: bool) -> String {
    let example = include_str!("../config/example.toml");
    let start = example
        .find(marker)
        .expect("section documented in example.toml");
    let section = &example[start..];
    let end = if to_end {
        section.len()
    } else {
        section.find("\n\n").unwrap_or(section.len())
    };
    section[..end]
        .lines()
        .map(|line| {
            let line = line.strip_prefix('#').unwrap_or(line);
            format!("{}\n", line.strip_prefix(' ').unwrap_or(line))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::embedded_default().expect("embedded default config parses");
        assert_eq!(config.ingest.len(), 1);
        assert_eq!(config.ingest[0].on_parse_error, OnParseError::Cut);
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../config/example.toml");
        Config::parse(text, "example.toml").expect("example config parses");
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_files_folder() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("livegate.toml");
        std::fs::write(
            &file,
            "[[ingest]]\nlisten = \"127.0.0.1:1935\"\norigin = \"127.0.0.1:1\"\n\
             [[hashlist]]\nname = \"a\"\npath = \"lists/a.csv\"\n\
             [[hashlist]]\nname = \"b\"\npath = \"/srv/b.csv\"\n\
             [actuator]\naudit_log = \"audit.jsonl\"\n"
                .to_string()
                + &uncommented_example("# [classifier]", false)
                    .replace("models/320n.onnx", "../models/m.onnx")
                    .replace(
                        "/opt/onnxruntime/lib/libonnxruntime.so",
                        "libonnxruntime.so",
                    ),
        )
        .expect("write config");
        let config = Config::load(&file).expect("config loads");
        assert_eq!(config.hashlist[0].path, dir.path().join("lists/a.csv"));
        assert_eq!(config.hashlist[1].path, Path::new("/srv/b.csv"));
        assert_eq!(
            config.actuator.audit_log.as_deref(),
            Some(dir.path().join("audit.jsonl").as_path())
        );
        let classifier = config.classifier.expect("classifier");
        assert_eq!(classifier.model, dir.path().join("../models/m.onnx"));
        // A bare library name is for the dynamic loader's search path.
        assert_eq!(
            classifier.runtime_library.as_deref(),
            Some(Path::new("libonnxruntime.so"))
        );
        // The embedded default's demo list is the source tree's, wherever livegate runs.
        let default = Config::embedded_default().expect("default parses");
        assert!(
            default.hashlist[0].path.is_file(),
            "{:?}",
            default.hashlist[0].path
        );
    }

    #[test]
    fn effective_config_round_trips() {
        let config = Config::embedded_default().expect("default parses");
        let again = Config::parse(&config.to_toml(), "rendered").expect("rendered parses");
        assert_eq!(config, again);
    }

    #[test]
    fn rtmps_needs_its_certificate_and_the_example_parses() {
        let example = uncommented_example("# [[ingest]]\n# protocol = \"rtmps\"", false);
        let config = Config::parse(&example, "example rtmps").expect("rtmps example parses");
        let tls = config.ingest[0].tls.as_ref().expect("tls table");
        assert_eq!(config.ingest[0].protocol, Protocol::Rtmps);
        assert!(tls.certificate.ends_with("fullchain.pem"), "{tls:?}");
        let base = "[[ingest]]\nlisten = \"127.0.0.1:1935\"\norigin = \"127.0.0.1:1\"\n";
        let message = error_of(&format!("{base}protocol = \"rtmps\"\n"));
        assert!(message.contains("ingest[0].tls"), "{message}");
        let message = error_of(&format!(
            "{base}protocol = \"rtmp\"\n[ingest.tls]\ncertificate = \"a\"\nkey = \"b\"\n"
        ));
        assert!(
            message.contains("ingest[0].tls") && message.contains("rtmps"),
            "{message}"
        );
    }

    fn error_of(text: &str) -> String {
        match Config::parse(text, "test.toml") {
            Ok(_) => panic!("config should have been rejected:\n{text}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn errors_name_the_key() {
        let base = "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"127.0.0.1:1935\"\n";
        let cases = [
            (format!("{base}origin = \"nohost\"\n"), "ingest[0].origin"),
            (
                format!("{base}origin = \"127.0.0.1:1\"\nmax_connections = 0\n"),
                "ingest[0].max_connections",
            ),
            (
                format!("{base}origin = \"127.0.0.1:1\"\nidle_timeout_ms = 0\n"),
                "ingest[0].idle_timeout_ms",
            ),
            (
                format!("{base}origin = \"127.0.0.1:1\"\nwrite_timeout_ms = 0\n"),
                "ingest[0].write_timeout_ms",
            ),
            (
                format!("{base}origin = \"127.0.0.1:1\"\n[ingest.limits]\nmax_chunk_size = 1\n"),
                "ingest[0].limits.max_chunk_size",
            ),
            (
                format!(
                    "{base}origin = \"127.0.0.1:1\"\n[ingest.limits]\nmax_message_bytes = 99999999\n"
                ),
                "ingest[0].limits.max_message_bytes",
            ),
            ("[server]\nshutdown_grace_ms = 5\n".to_string(), "ingest"),
            (
                format!("{base}origin = \"127.0.0.1:1\"\n[policy]\nconfirm_matches = 9\n"),
                "policy.confirm_matches",
            ),
            (
                format!("{base}origin = \"127.0.0.1:1\"\n[analysis]\nqueue_per_stream = 0\n"),
                "analysis.queue_per_stream",
            ),
            (
                format!("{base}origin = \"127.0.0.1:1\"\n[analysis]\nmax_picture_pixels = 10\n"),
                "analysis.max_picture_pixels",
            ),
            (
                format!(
                    "{base}origin = \"127.0.0.1:1\"\n[analysis]\nmax_concealed_fraction = 1.5\n"
                ),
                "analysis.max_concealed_fraction",
            ),
            (
                format!("{base}origin = \"127.0.0.1:1\"\n[actuator]\nlearn_into = \"nope\"\n"),
                "actuator.learn_into",
            ),
            (
                format!(
                    "{base}origin = \"127.0.0.1:1\"\n[[actuator.webhook]]\nurl = \"ftp://x/y\"\n"
                ),
                "actuator.webhook[0].url",
            ),
        ];
        for (text, key) in cases {
            let message = error_of(&text);
            assert!(message.contains(key), "{message:?} should name {key}");
        }
    }

    #[test]
    fn type_errors_are_said_in_words() {
        let message = error_of(
            "[[ingest]]\nlisten = \"127.0.0.1:1935\"\norigin = \"a:1\"\nmax_connections = \"many\"\n",
        );
        assert!(
            message.contains("max_connections") && message.contains("a whole number"),
            "{message}"
        );
        assert!(
            !message.contains("u32") && !message.contains("usize"),
            "{message}"
        );
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let message = error_of("[[ingest]]\nprotocol = \"webrtc\"\n");
        assert!(message.contains("webrtc"), "{message}");
        let message = error_of("[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"x\"\norigin=\"a:1\"\n");
        assert!(message.contains("listen"), "{message}");
        let message = error_of("[bogus]\n");
        assert!(message.contains("bogus"), "{message}");
    }
}
