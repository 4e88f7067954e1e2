//! SRT ingest at the protocol edge: the `[ingest.srt]` options (latency, passphrases,
//! bandwidth, the origin's streamid), what a caller's streamid asks for ([`identify`],
//! over the `livegate-srt` parser) and the SRT reject reason for each refusal, the
//! [`Transport`] impls that let the session relay over libsrt sockets, and the dial to
//! the SRT origin.
//!
//! SRT does its own handshake (and encryption) before livegate sees a byte, and carries
//! the stream's identity in that handshake: the session gets an established connection
//! and an identity, never a handshake to parse.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{IngestConfig, InvalidKey, Protocol};
use crate::ingest::transport::{
    DialError, Incoming, IncomingError, PEER_CLOSE_POLL, PeerClose, Transport,
};
use livegate_srt::streamid::{self, Mode, StreamIdError};
use livegate_srt::{RejectReason, SocketOptions, SrtStream};

/// SRT's passphrase length limits (characters).
const PASSPHRASE_LEN: std::ops::RangeInclusive<usize> = 10..=79;
/// How long a connection may stay silent (not even SRT keepalives, sent every second)
/// before libsrt calls it broken: libsrt's default.
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closed link keeps delivering what the relay had already written to it.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// `[ingest.srt]`: how a `protocol = "srt"` listener and its link to the origin are set up.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SrtConfig {
    /// The receiver's buffer against loss and jitter (SRTO_LATENCY), both links.
    #[serde(default = "default_latency_ms")]
    pub latency_ms: u64,
    /// Publishers must encrypt with this passphrase (10–79 characters). Never printed
    /// by `check-config`.
    #[serde(default, skip_serializing)]
    pub passphrase: Option<String>,
    /// A file whose content (trailing whitespace removed) is the passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<PathBuf>,
    /// AES key length in bytes (16, 24 or 32), for both links.
    #[serde(default = "default_pbkeylen")]
    pub pbkeylen: u8,
    /// The origin's passphrase; unset: the same as `passphrase` (both links encrypted
    /// alike), `""`: no encryption to the origin. Never printed by `check-config`.
    #[serde(default, skip_serializing)]
    pub origin_passphrase: Option<String>,
    /// A file holding the origin's passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_passphrase_file: Option<PathBuf>,
    /// Sending rate cap per link in kbit/s (SRTO_MAXBW); 0: libsrt's default.
    #[serde(default)]
    pub max_bandwidth_kbps: u64,
    /// The streamid livegate sends the origin: `{streamid}` (the publisher's, as sent),
    /// `{app}` and `{key}` are replaced.
    #[serde(default = "default_origin_streamid")]
    pub origin_streamid: String,
}

impl std::fmt::Debug for SrtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "(redacted)");
        f.debug_struct("SrtConfig")
            .field("latency_ms", &self.latency_ms)
            .field("passphrase", &redacted(&self.passphrase))
            .field("passphrase_file", &self.passphrase_file)
            .field("pbkeylen", &self.pbkeylen)
            .field("origin_passphrase", &redacted(&self.origin_passphrase))
            .field("origin_passphrase_file", &self.origin_passphrase_file)
            .field("max_bandwidth_kbps", &self.max_bandwidth_kbps)
            .field("origin_streamid", &self.origin_streamid)
            .finish()
    }
}

impl Default for SrtConfig {
    fn default() -> Self {
        SrtConfig {
            latency_ms: default_latency_ms(),
            passphrase: None,
            passphrase_file: None,
            pbkeylen: default_pbkeylen(),
            origin_passphrase: None,
            origin_passphrase_file: None,
            max_bandwidth_kbps: 0,
            origin_streamid: default_origin_streamid(),
        }
    }
}

/// libsrt's default latency: enough for a few retransmissions on a LAN or nearby link.
fn default_latency_ms() -> u64 {
    120
}
fn default_pbkeylen() -> u8 {
    16
}
fn default_origin_streamid() -> String {
    "{streamid}".to_string()
}

/// A passphrase given inline or in a file; `None` for neither.
fn read_secret(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    key: &dyn Fn(&str) -> String,
    name: &str,
) -> Result<Option<String>, InvalidKey> {
    let file_key = format!("{name}_file");
    match (inline, file) {
        (Some(_), Some(_)) => Err(InvalidKey::new(
            key(&file_key),
            format!("set either {name} or {file_key}, not both"),
        )),
        (Some(secret), None) => Ok(Some(secret.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|text| Some(text.trim_end().to_string()))
            .map_err(|error| {
                InvalidKey::new(
                    key(&file_key),
                    format!("cannot read {}: {error}", path.display()),
                )
            }),
        (None, None) => Ok(None),
    }
}

/// The passphrases of both links, resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrases {
    pub publisher: Option<String>,
    pub origin: Option<String>,
}

impl SrtConfig {
    /// Reads the passphrases (inline or from their files) and checks their lengths;
    /// errors name the key.
    pub fn passphrases(&self, key: &dyn Fn(&str) -> String) -> Result<Passphrases, InvalidKey> {
        let publisher = read_secret(
            &self.passphrase,
            &self.passphrase_file,
            key,
            "srt.passphrase",
        )?;
        let origin = read_secret(
            &self.origin_passphrase,
            &self.origin_passphrase_file,
            key,
            "srt.origin_passphrase",
        )?;
        let origin = match origin {
            // "" turns encryption to the origin off.
            Some(origin) if origin.is_empty() => None,
            Some(origin) => Some(origin),
            None => publisher.clone(),
        };
        for (name, secret) in [
            ("srt.passphrase", &publisher),
            ("srt.origin_passphrase", &origin),
        ] {
            if let Some(secret) = secret
                && !PASSPHRASE_LEN.contains(&secret.chars().count())
            {
                return Err(InvalidKey::new(
                    key(name),
                    format!(
                        "must be {} to {} characters (SRT's limits), not {}",
                        PASSPHRASE_LEN.start(),
                        PASSPHRASE_LEN.end(),
                        secret.chars().count()
                    ),
                ));
            }
        }
        Ok(Passphrases { publisher, origin })
    }

    fn options(&self, ingest: &IngestConfig, passphrase: Option<String>) -> SocketOptions {
        SocketOptions {
            latency: Duration::from_millis(self.latency_ms),
            passphrase,
            pbkeylen: self.pbkeylen,
            // 1 kbit/s = 125 bytes/s.
            max_bandwidth: (self.max_bandwidth_kbps > 0).then(|| {
                i64::try_from(self.max_bandwidth_kbps.saturating_mul(125)).unwrap_or(i64::MAX)
            }),
            connect_timeout: ingest.connect_timeout(),
            peer_idle_timeout: PEER_IDLE_TIMEOUT,
            streamid: None,
            // Messages already relayed still reach the other side when the session
            // ends (as TCP delivers what was written before a close).
            linger: CLOSE_LINGER,
        }
    }

    /// The listener's options (inherited by every accepted publisher).
    pub fn listener_options(
        &self,
        ingest: &IngestConfig,
        passphrases: &Passphrases,
    ) -> SocketOptions {
        self.options(ingest, passphrases.publisher.clone())
    }

    /// The options of the link to the origin for one publisher.
    pub fn origin_options(
        &self,
        ingest: &IngestConfig,
        passphrases: &Passphrases,
        identity: &SrtIdentity,
    ) -> SocketOptions {
        let streamid = self
            .origin_streamid
            .replace("{streamid}", &identity.streamid)
            .replace("{app}", &identity.app)
            .replace("{key}", &identity.key);
        SocketOptions {
            streamid: Some(streamid),
            ..self.options(ingest, passphrases.origin.clone())
        }
    }
}

/// Checks an ingest's SRT settings; errors name the key.
pub fn validate(ingest: &IngestConfig, key: impl Fn(&str) -> String) -> Result<(), InvalidKey> {
    unsupported_with_srt(ingest, &key)?;
    let Some(srt) = &ingest.srt else {
        return Ok(());
    };
    if ingest.protocol != Protocol::Srt {
        return Err(InvalidKey::new(
            key("srt"),
            "needs protocol = \"srt\"".into(),
        ));
    }
    if !matches!(srt.pbkeylen, 16 | 24 | 32) {
        return Err(InvalidKey::new(
            key("srt.pbkeylen"),
            format!("must be 16, 24 or 32 (AES key bytes), not {}", srt.pbkeylen),
        ));
    }
    if srt.latency_ms == 0 || srt.latency_ms > 60_000 {
        return Err(InvalidKey::new(
            key("srt.latency_ms"),
            "must be between 1 and 60000".into(),
        ));
    }
    if srt.origin_streamid.is_empty()
        || srt.origin_streamid.len() > livegate_srt::streamid::MAX_STREAMID_BYTES
    {
        return Err(InvalidKey::new(
            key("srt.origin_streamid"),
            "must be 1 to 512 bytes (SRT's streamid limit)".into(),
        ));
    }
    srt.passphrases(&key)?;
    Ok(())
}

/// Refuses settings of the TCP protocols that an SRT listener cannot honour.
fn unsupported_with_srt(
    ingest: &IngestConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<(), InvalidKey> {
    if ingest.protocol != Protocol::Srt {
        return Ok(());
    }
    let unsupported = [
        ("origin_tls", ingest.origin_tls.is_some()),
        (
            "origin_proxy_protocol",
            ingest.origin_proxy_protocol.is_some(),
        ),
        (
            "proxy_protocol",
            ingest.proxy_protocol != Default::default(),
        ),
    ];
    for (name, set) in unsupported {
        if set {
            return Err(InvalidKey::new(
                key(name),
                "not available with protocol = \"srt\" (SRT is UDP: no TCP proxy header, its own encryption)".into(),
            ));
        }
    }
    Ok(())
}

/// Who a caller says it is: the stream's identity from its streamid.
#[derive(Clone)]
pub struct SrtIdentity {
    pub app: String,
    /// The bare key (any `?query` removed, as for RTMP): a secret.
    pub key: String,
    /// The streamid as the caller sent it (a secret too: it holds the key).
    pub streamid: String,
}

/// A caller refused at the handshake: the reason SRT tells it, and ours for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: RejectReason,
    pub message: String,
}

/// What a caller's streamid asks for: a publish of `APP/KEY`, or a refusal with the
/// access-control reason (a missing or malformed streamid: bad request; a type other
/// than stream: media not supported; a reader: bad mode).
pub fn identify(streamid: Option<&str>) -> Result<SrtIdentity, Refused> {
    let text = streamid.unwrap_or("");
    let parsed = streamid::parse(text).map_err(|error| Refused {
        reason: match error {
            StreamIdError::UnknownMode(_) => RejectReason::BAD_MODE,
            StreamIdError::UnsupportedType(_) => RejectReason::NOTSUP_MEDIA,
            StreamIdError::Missing
            | StreamIdError::TooLong
            | StreamIdError::Malformed(_)
            | StreamIdError::Duplicate(_) => RejectReason::BAD_REQUEST,
        },
        message: error.to_string(),
    })?;
    if parsed.mode != Mode::Publish {
        return Err(Refused {
            reason: RejectReason::BAD_MODE,
            message: format!(
                "streamid asks to {} (m={}): livegate ingests publishers only (m=publish)",
                if parsed.mode == Mode::Request {
                    "read"
                } else {
                    "read and publish"
                },
                parsed.mode.as_str()
            ),
        });
    }
    let (key, _query) = livegate_rtmp::split_stream_key(&parsed.key);
    Ok(SrtIdentity {
        app: parsed.app,
        key: key.to_string(),
        streamid: text.to_string(),
    })
}

/// Dials the SRT origin (`HOST:PORT`, resolved at each dial) as a caller.
pub async fn dial_origin(origin: &str, options: SocketOptions) -> Result<SrtStream, DialError> {
    let limit = options.connect_timeout;
    let unreachable = |source: std::io::Error| DialError::Unreachable {
        origin: origin.to_string(),
        source,
    };
    let addr = tokio::net::lookup_host(origin)
        .await
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| unreachable(std::io::Error::other("the name resolves to no address")))?;
    // libsrt enforces the limit itself (SRTO_CONNTIMEO); the outer timeout is a backstop.
    match tokio::time::timeout(
        limit + Duration::from_secs(1),
        SrtStream::connect(addr, options),
    )
    .await
    {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error))
            if error.reject.is_some_and(|reason| {
                reason.0 == livegate_srt::sys::SRT_REJECT_REASON_SRT_REJ_TIMEOUT as i32
            }) =>
        {
            Err(DialError::TimedOut {
                origin: origin.to_string(),
                limit,
            })
        }
        Ok(Err(error)) => Err(unreachable(std::io::Error::other(error))),
        Err(_) => Err(DialError::TimedOut {
            origin: origin.to_string(),
            limit,
        }),
    }
}

/// An SRT session's links (publisher and origin), for `/v1/streams` and the metrics;
/// they do not keep a connection open.
#[derive(Debug, Default)]
pub struct SrtLinks {
    pub publisher: std::sync::OnceLock<livegate_srt::Link>,
    pub origin: std::sync::OnceLock<livegate_srt::Link>,
}

impl SrtLinks {
    /// Both links' statistics, `None` for a session that is not SRT.
    pub fn view(&self) -> Option<SrtLinksView> {
        let stats = |link: &std::sync::OnceLock<livegate_srt::Link>| {
            link.get()
                .and_then(livegate_srt::Link::stats)
                .map(SrtLinkView::from)
        };
        let publisher = stats(&self.publisher);
        let origin = stats(&self.origin);
        (publisher.is_some() || origin.is_some()).then_some(SrtLinksView { publisher, origin })
    }
}

/// An SRT stream's links as `GET /v1/streams` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct SrtLinksView {
    pub publisher: Option<SrtLinkView>,
    pub origin: Option<SrtLinkView>,
}

/// One SRT link's statistics (libsrt's `srt_bistats`, totals since it connected).
#[derive(Debug, Clone, Serialize)]
pub struct SrtLinkView {
    pub rtt_ms: f64,
    pub packets_received: u64,
    pub packets_sent: u64,
    /// Packets livegate found missing from what the peer sent (before retransmission).
    pub packets_lost_receiving: u64,
    /// Packets the peer reported missing from what livegate sent.
    pub packets_lost_sending: u64,
    /// Packets livegate sent again.
    pub packets_retransmitted: u64,
    /// Retransmitted packets the peer sent livegate.
    pub packets_retransmitted_received: u64,
    /// Packets that arrived too late to play and were skipped.
    pub packets_dropped_receiving: u64,
    /// Packets livegate gave up sending (too late for the receiver).
    pub packets_dropped_sending: u64,
    pub bandwidth_mbps: f64,
}

impl From<livegate_srt::LinkStats> for SrtLinkView {
    fn from(stats: livegate_srt::LinkStats) -> Self {
        SrtLinkView {
            rtt_ms: stats.rtt_ms,
            packets_received: stats.packets_received,
            packets_sent: stats.packets_sent,
            packets_lost_receiving: stats.packets_lost_receiving,
            packets_lost_sending: stats.packets_lost_sending,
            packets_retransmitted: stats.packets_retransmitted,
            packets_retransmitted_received: stats.packets_retransmitted_received,
            packets_dropped_receiving: stats.packets_dropped_receiving,
            packets_dropped_sending: stats.packets_dropped_sending,
            bandwidth_mbps: stats.bandwidth_mbps,
        }
    }
}

/// An accepted SRT connection has done its handshake (and encryption) already.
impl Incoming for SrtStream {
    type Stream = SrtStream;

    async fn establish(self, _limit: Duration) -> Result<SrtStream, IncomingError> {
        Ok(self)
    }
}

/// Each read is one SRT message and each write sends one, so the relay, which forwards
/// each read as one write, keeps message boundaries; both halves share the socket.
impl Transport for SrtStream {
    type ReadHalf = SrtStream;
    type WriteHalf = SrtStream;

    fn into_halves(self) -> (SrtStream, SrtStream) {
        (self.clone(), self)
    }

    fn send_without_delay(&self) -> std::io::Result<()> {
        // SRT sends each message at once (live mode paces by timestamps, not by Nagle).
        Ok(())
    }
}

impl PeerClose for SrtStream {
    async fn closed_by_peer(&self) {
        while !self.is_gone() {
            tokio::time::sleep(PEER_CLOSE_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse_srt(srt: &str) -> Result<Config, String> {
        let text = format!(
            "[[ingest]]\nprotocol = \"srt\"\nlisten = \"127.0.0.1:9000\"\norigin = \"127.0.0.1:9001\"\n[ingest.srt]\n{srt}"
        );
        Config::parse(&text, "test.toml").map_err(|error| error.to_string())
    }

    #[test]
    fn passphrases_default_to_the_same_on_both_links() {
        let config = parse_srt("passphrase = \"0123456789ab\"\n").expect("valid");
        let srt = config.ingest[0].srt.as_ref().expect("srt");
        let passphrases = srt.passphrases(&|name| name.to_string()).expect("resolved");
        assert_eq!(passphrases.origin.as_deref(), Some("0123456789ab"));
        let config =
            parse_srt("passphrase = \"0123456789ab\"\norigin_passphrase = \"\"\n").expect("valid");
        let srt = config.ingest[0].srt.as_ref().expect("srt");
        assert_eq!(
            srt.passphrases(&|name| name.to_string())
                .expect("resolved")
                .origin,
            None
        );
        assert!(!format!("{srt:?}").contains("0123456789ab"));
        assert!(
            !config.to_toml().contains("0123456789ab"),
            "check-config never prints it"
        );
    }

    #[test]
    fn errors_name_the_srt_key() {
        for (srt, key) in [
            ("passphrase = \"short\"\n", "ingest[0].srt.passphrase"),
            (
                "origin_passphrase = \"x\"\n",
                "ingest[0].srt.origin_passphrase",
            ),
            ("pbkeylen = 20\n", "ingest[0].srt.pbkeylen"),
            ("latency_ms = 0\n", "ingest[0].srt.latency_ms"),
            (
                "passphrase_file = \"/nonexistent/p\"\n",
                "ingest[0].srt.passphrase_file",
            ),
            (
                "passphrase = \"0123456789ab\"\npassphrase_file = \"/p\"\n",
                "ingest[0].srt.passphrase_file",
            ),
            ("origin_streamid = \"\"\n", "ingest[0].srt.origin_streamid"),
        ] {
            let error = parse_srt(srt).expect_err(srt);
            assert!(error.contains(key), "{error} should name {key}");
            assert!(!error.contains("0123456789ab"), "{error}");
        }
        let text = "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"127.0.0.1:9000\"\norigin = \"127.0.0.1:1\"\n[ingest.srt]\n";
        let error = Config::parse(text, "t")
            .expect_err("srt on rtmp")
            .to_string();
        assert!(error.contains("ingest[0].srt"), "{error}");
        let text = "[[ingest]]\nprotocol = \"srt\"\nlisten = \"127.0.0.1:9000\"\norigin = \"127.0.0.1:1\"\n[ingest.origin_tls]\n";
        let error = Config::parse(text, "t")
            .expect_err("origin_tls on srt")
            .to_string();
        assert!(error.contains("ingest[0].origin_tls"), "{error}");
    }

    #[test]
    fn streamids_map_to_identities_or_reject_reasons() {
        let identity = identify(Some("#!::r=live/key1?token=x,m=publish")).expect("publish");
        assert_eq!(
            (identity.app.as_str(), identity.key.as_str()),
            ("live", "key1")
        );
        assert_eq!(identify(Some("live/key1")).expect("plain").key, "key1");
        for (streamid, reason) in [
            (None, RejectReason::BAD_REQUEST),
            (Some("garbage"), RejectReason::BAD_REQUEST),
            (Some("#!::r=live/k,m=request"), RejectReason::BAD_MODE),
            (Some("#!::r=live/k"), RejectReason::BAD_MODE),
            (
                Some("#!::r=live/k,m=publish,t=file"),
                RejectReason::NOTSUP_MEDIA,
            ),
        ] {
            let refused = identify(streamid).map(|_| ()).expect_err("refused");
            assert_eq!(refused.reason, reason, "{streamid:?}: {}", refused.message);
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let example =
            crate::config::uncommented_example("# [[ingest]]\n# protocol = \"srt\"", false)
                .replace("passphrase = \"...\"", "passphrase = \"0123456789ab\"");
        let config = Config::parse(&example, "example srt").expect("the srt example parses");
        let srt = config.ingest[0].srt.as_ref().expect("srt table");
        assert_eq!(config.ingest[0].protocol, Protocol::Srt);
        assert_eq!((srt.latency_ms, srt.pbkeylen), (120, 16));
        assert_eq!(srt.origin_streamid, "{streamid}");
    }

    #[test]
    fn the_origin_streamid_template() {
        let config = parse_srt("origin_streamid = \"#!::r={app}/{key},m=publish,u=livegate\"\n")
            .expect("valid");
        let ingest = &config.ingest[0];
        let srt = ingest.srt.as_ref().expect("srt");
        let identity = identify(Some("live/abc")).expect("identity");
        let passphrases = srt.passphrases(&|name| name.to_string()).expect("none");
        let options = srt.origin_options(ingest, &passphrases, &identity);
        assert_eq!(
            options.streamid.as_deref(),
            Some("#!::r=live/abc,m=publish,u=livegate")
        );
        let default = SrtConfig::default().origin_options(ingest, &passphrases, &identity);
        assert_eq!(
            default.streamid.as_deref(),
            Some("live/abc"),
            "unchanged by default"
        );
    }
}
