//! `[cluster]`: where the fleet's NATS servers are, who this node is, how it proves it,
//! and how much the fleet's JetStream streams and this node's outbox may hold.
//! Credentials are never printed: `Debug` redacts them and `check-config` leaves out the
//! token.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::InvalidKey;

/// `[cluster]`.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://HOST:PORT`, `tls://HOST:PORT`); the client fails over
    /// between them.
    pub servers: Vec<String>,
    /// This node's name in the fleet's listings and records; the host name by default.
    #[serde(default = "default_node")]
    pub node: String,
    /// Subjects are `PREFIX.…` and streams `PREFIX_bans`, `PREFIX_learned`,
    /// `PREFIX_events`: several fleets can share one NATS.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// A NATS token. Never printed by `check-config`.
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
    /// A file whose content (trailing whitespace removed) is the NATS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// A NATS credentials file (user JWT and nkey seed, as `nsc` writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds_file: Option<PathBuf>,
    /// A file holding an nkey seed (`SU…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey_seed_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// JetStream API calls, a cut sent to another node, gathering the fleet's streams.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// When true, `/readyz` answers 503 while NATS is unreachable; by default a node
    /// without NATS still takes streams and enforces what it knows.
    #[serde(default)]
    pub ready_requires_cluster: bool,
    /// The bans stream's `max_age`: a backstop, since NATS 2.9 has no per-message TTL
    /// (each ban carries its own expiry). `actuator.ban_seconds` must not exceed it.
    #[serde(default = "default_ban_retention_seconds")]
    pub ban_retention_seconds: u64,
    #[serde(default = "default_events_max_age_seconds")]
    pub events_max_age_seconds: u64,
    #[serde(default = "default_max_stream_bytes")]
    pub events_max_bytes: u64,
    /// Learned hashes and descriptors are kept for ever (a node joining later needs them
    /// all), up to this size; past it, new additions are refused and counted.
    #[serde(default = "default_max_stream_bytes")]
    pub learned_max_bytes: u64,
    /// Decisions waiting for NATS while it is unreachable; past this the oldest audit
    /// events go first, then the oldest state, each counted.
    #[serde(default = "default_outbox_max_messages")]
    pub outbox_max_messages: usize,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("servers", &self.servers)
            .field("node", &self.node)
            .field("prefix", &self.prefix)
            .field("token", &self.token.as_ref().map(|_| "(redacted)"))
            .field("token_file", &self.token_file)
            .field("creds_file", &self.creds_file)
            .field("nkey_seed_file", &self.nkey_seed_file)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("ready_requires_cluster", &self.ready_requires_cluster)
            .field("ban_retention_seconds", &self.ban_retention_seconds)
            .field("events_max_age_seconds", &self.events_max_age_seconds)
            .field("events_max_bytes", &self.events_max_bytes)
            .field("learned_max_bytes", &self.learned_max_bytes)
            .field("outbox_max_messages", &self.outbox_max_messages)
            .finish()
    }
}

fn default_node() -> String {
    host_name().unwrap_or_else(|| "livegate".to_string())
}

/// The kernel's host name when it is a valid node name (containers and VMs set unique
/// ones).
fn host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into `buffer`.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return None;
    }
    let end = buffer.iter().position(|&byte| byte == 0)?;
    let name = std::str::from_utf8(&buffer[..end]).ok()?;
    // A fully qualified name keeps its first label: dots cannot go into a subject token.
    let name = name.split('.').next()?;
    is_name(name, MAX_NODE_CHARS).then(|| name.to_string())
}

fn default_prefix() -> String {
    "livegate".to_string()
}
fn default_connect_timeout_ms() -> u64 {
    2000
}
fn default_request_timeout_ms() -> u64 {
    1000
}
fn default_ban_retention_seconds() -> u64 {
    7 * 24 * 3600
}
fn default_events_max_age_seconds() -> u64 {
    7 * 24 * 3600
}
fn default_max_stream_bytes() -> u64 {
    1 << 30
}
fn default_outbox_max_messages() -> usize {
    100_000
}

const MAX_SERVERS: usize = 16;
const MAX_NODE_CHARS: usize = 64;
const MAX_PREFIX_CHARS: usize = 32;
/// Bounds of every `*_timeout_ms`.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 10..=60_000;

/// Letters, digits, `-` and `_`: safe as one NATS subject token and in a stream name.
fn is_name(text: &str, max_chars: usize) -> bool {
    !text.is_empty()
        && text.len() <= max_chars
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Whether `text` can be one token of a subject (a node name or id).
pub fn is_subject_token(text: &str) -> bool {
    is_name(text, MAX_NODE_CHARS)
}

impl ClusterConfig {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Checks the section; `ban_seconds` is `actuator.ban_seconds`, which the bans
    /// stream must keep.
    pub fn validate(&self, ban_seconds: u64) -> Result<(), InvalidKey> {
        let invalid =
            |key: &str, message: String| Err(InvalidKey::new(format!("cluster.{key}"), message));
        if self.servers.is_empty() || self.servers.len() > MAX_SERVERS {
            return invalid(
                "servers",
                format!("list 1 to {MAX_SERVERS} NATS URLs, e.g. [\"nats://127.0.0.1:4222\"]"),
            );
        }
        for (index, server) in self.servers.iter().enumerate() {
            if let Err(message) = check_server_url(server) {
                return invalid(&format!("servers[{index}]"), message);
            }
        }
        if !is_name(&self.node, MAX_NODE_CHARS) {
            return invalid(
                "node",
                format!("1 to {MAX_NODE_CHARS} letters, digits, '-' or '_'"),
            );
        }
        if !is_name(&self.prefix, MAX_PREFIX_CHARS) {
            return invalid(
                "prefix",
                format!("1 to {MAX_PREFIX_CHARS} letters, digits, '-' or '_'"),
            );
        }
        let credentials = [
            ("token", self.token.is_some()),
            ("token_file", self.token_file.is_some()),
            ("creds_file", self.creds_file.is_some()),
            ("nkey_seed_file", self.nkey_seed_file.is_some()),
        ];
        let given: Vec<&str> = credentials
            .iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect();
        if given.len() > 1 {
            return invalid(
                given[1],
                format!("set one credential, not {}", given.join(" and ")),
            );
        }
        if let Some(token) = &self.token
            && (token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return invalid(
                "token",
                "must be non-empty, without spaces or control characters".into(),
            );
        }
        for (key, path) in [
            ("token_file", &self.token_file),
            ("creds_file", &self.creds_file),
            ("nkey_seed_file", &self.nkey_seed_file),
        ] {
            if path
                .as_ref()
                .is_some_and(|path| path.as_os_str().is_empty())
            {
                return invalid(key, "must not be empty".into());
            }
        }
        for (key, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if !TIMEOUT_MS.contains(&value) {
                return invalid(
                    key,
                    format!(
                        "must be between {} and {}",
                        TIMEOUT_MS.start(),
                        TIMEOUT_MS.end()
                    ),
                );
            }
        }
        if self.ban_retention_seconds < ban_seconds.max(1) {
            return invalid(
                "ban_retention_seconds",
                format!(
                    "must be at least actuator.ban_seconds ({ban_seconds}): the bans stream would forget bans still in force"
                ),
            );
        }
        if self.events_max_age_seconds == 0 {
            return invalid("events_max_age_seconds", "must be greater than 0".into());
        }
        for (key, value) in [
            ("events_max_bytes", self.events_max_bytes),
            ("learned_max_bytes", self.learned_max_bytes),
        ] {
            if value < 1 << 20 || value > i64::MAX as u64 {
                return invalid(key, "must be at least 1048576 (1 MiB)".into());
            }
        }
        if self.outbox_max_messages < 100 {
            return invalid("outbox_max_messages", "must be at least 100".into());
        }
        Ok(())
    }
}

/// A NATS URL without credentials: URLs are logged and shown by `/v1/cluster`, so
/// secrets belong in `token`, `token_file`, `creds_file` or `nkey_seed_file`.
fn check_server_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{url:?}: expected nats://HOST:PORT or tls://HOST:PORT"
        ));
    };
    if !matches!(scheme, "nats" | "tls") {
        return Err(format!(
            "{url:?}: scheme {scheme:?} is not nats or tls (websocket is not supported)"
        ));
    }
    if rest.contains('@') {
        return Err(
            "credentials in a server URL would be logged: use cluster.token, token_file, creds_file or nkey_seed_file"
                .into(),
        );
    }
    let host_port = rest.trim_end_matches('/');
    let valid = host_port
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid || host_port.contains('/') {
        return Err(format!("{url:?}: expected nats://HOST:PORT"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ClusterConfig {
        toml::from_str(text).expect("parse")
    }

    #[test]
    fn defaults_are_valid() {
        let config = config(r#"servers = ["nats://127.0.0.1:4222"]"#);
        assert_eq!(config.prefix, "livegate");
        assert!(is_name(&config.node, MAX_NODE_CHARS), "{:?}", config.node);
        config.validate(600).expect("valid");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (r#"servers = []"#, "cluster.servers"),
            (r#"servers = ["127.0.0.1:4222"]"#, "cluster.servers[0]"),
            (
                r#"servers = ["nats://127.0.0.1:4222", "nats://u:p@h:4222"]"#,
                "cluster.servers[1]",
            ),
            (r#"servers = ["ws://h:80"]"#, "cluster.servers[0]"),
            (
                r#"servers = ["nats://h:4222"]
node = "a.b""#,
                "cluster.node",
            ),
            (
                r#"servers = ["nats://h:4222"]
prefix = "x>""#,
                "cluster.prefix",
            ),
            (
                r#"servers = ["nats://h:4222"]
token = "t"
creds_file = "c""#,
                "cluster.creds_file",
            ),
            (
                r#"servers = ["nats://h:4222"]
request_timeout_ms = 0"#,
                "cluster.request_timeout_ms",
            ),
            (
                r#"servers = ["nats://h:4222"]
ban_retention_seconds = 60"#,
                "cluster.ban_retention_seconds",
            ),
        ];
        for (text, key) in cases {
            let error = config(text).validate(600).expect_err(text);
            assert_eq!(error.key, key, "{text}: {error}");
        }
    }

    #[test]
    fn the_documented_example_section_is_valid() {
        let uncommented = crate::config::uncommented_example("# [cluster]", false);
        let parsed: toml::Table = toml::from_str(&uncommented).expect("example parses");
        let config: ClusterConfig = parsed["cluster"].clone().try_into().expect("schema");
        config.validate(600).expect("valid");
        let defaults = self::config(r#"servers = ["nats://127.0.0.1:4222"]"#);
        assert_eq!(
            ClusterConfig {
                node: defaults.node.clone(),
                ..config
            },
            defaults,
            "example.toml documents every default"
        );
    }

    #[test]
    fn debug_redacts_the_token() {
        let config = config(
            r#"servers = ["nats://h:4222"]
token = "s3cret-token""#,
        );
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        let rendered = toml::to_string(&config).expect("render");
        assert!(!rendered.contains("s3cret"), "{rendered}");
    }
}
