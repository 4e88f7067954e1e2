//! The seam between ingest and everything after it: what a stream is and carries, in
//! terms no protocol owns. Each protocol's inspector (RTMP today, SRT next) turns the
//! bytes it reads into [`StreamEvent`]s; sessions, analysis, media, policy and actions
//! see only these.
//!
//! A video access unit says how its bytes are framed ([`BitstreamFormat`]) so that a
//! decoder can take it with or without a separate codec configuration: RTMP sends one
//! (a sequence header) before its length-prefixed frames, MPEG-TS never does — its
//! Annex B keyframes carry their parameter sets in-band.

use bytes::Bytes;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::OnceLock;

/// A video codec livegate can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Avc,
    Hevc,
    Av1,
    Vp9,
}

impl VideoCodec {
    /// The name the API, the logs and the metrics use (`avc`, `hevc`, `av1`, `vp9`).
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::Avc => "avc",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp9 => "vp9",
        }
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the bytes of an access unit are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitstreamFormat {
    /// NAL units each preceded by their length (AVCC/HVCC, as in FLV and MP4); decoding
    /// needs the codec configuration record, which says the length's size.
    LengthPrefixed,
    /// NAL units after start codes (MPEG-TS); parameter sets travel in-band.
    AnnexB,
    /// AV1 open bitstream units (low-overhead format).
    Obu,
    /// The codec's own frame format (VP9 superframes).
    Raw,
}

/// A stream's out-of-band codec configuration (avcC, hvcC, av1C, vpcC): later access
/// units decode with it until the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecConfig {
    pub codec: VideoCodec,
    pub extradata: Bytes,
}

/// One coded video picture (a frame's worth of bytes, demultiplexed).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessUnit {
    pub codec: VideoCodec,
    pub format: BitstreamFormat,
    /// A random-access point: decodable on its own (with the codec configuration, if any).
    pub keyframe: bool,
    /// Presentation and decoding time, in milliseconds of the stream's clock.
    pub pts_ms: i64,
    pub dts_ms: i64,
    pub data: Bytes,
    /// Offset in the publisher's byte stream of the first byte that carried this unit:
    /// maps the unit back to when it arrived.
    pub offset: u64,
}

/// What the stream's metadata announces (RTMP `onMetaData`); none of it is trusted for
/// decisions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnnouncedMetadata {
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub framerate: Option<f64>,
    pub encoder: Option<String>,
}

/// What an inspector learned from the publisher's bytes, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The application (RTMP `connect`'s app; an SRT streamid's resource).
    Application {
        app: String,
    },
    /// The publisher asks to publish under `key` (the bare key: any `?query` removed).
    /// Every publish is reported: a connection may publish more than once.
    Publish {
        key: String,
    },
    Metadata(AnnouncedMetadata),
    CodecConfig(CodecConfig),
    AccessUnit(AccessUnit),
    /// Video livegate cannot decode: the listener's `on_parse_error` decides.
    Uninspectable {
        reason: UninspectableReason,
        description: String,
    },
}

/// Why a stream cannot be inspected: the `reason` label of
/// `livegate_streams_uninspectable_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UninspectableReason {
    /// Its pictures are larger than `analysis.max_picture_pixels`.
    PictureTooLarge,
    /// A keyframe decoded with more than `analysis.max_concealed_fraction` concealed.
    KeyframeConcealed,
    /// Bytes the inspector refuses (malformed, or read differently by origins).
    Unparseable,
    /// Video livegate cannot decode (a codec, or a multitrack track other than 0).
    UnsupportedVideo,
    /// Video flowing without a keyframe for `max_keyframe_interval_ms`.
    NoKeyframe,
}

impl UninspectableReason {
    pub const ALL: [UninspectableReason; 5] = [
        UninspectableReason::PictureTooLarge,
        UninspectableReason::KeyframeConcealed,
        UninspectableReason::Unparseable,
        UninspectableReason::UnsupportedVideo,
        UninspectableReason::NoKeyframe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UninspectableReason::PictureTooLarge => "picture_too_large",
            UninspectableReason::KeyframeConcealed => "keyframe_concealed",
            UninspectableReason::Unparseable => "unparseable",
            UninspectableReason::UnsupportedVideo => "unsupported_video",
            UninspectableReason::NoKeyframe => "no_keyframe",
        }
    }
}

/// This process's node id: 6 base-32 characters drawn at startup, so that stream ids
/// of different livegate processes (a fleet, or a restart) do not collide.
pub fn node_id() -> &'static str {
    static NODE: OnceLock<String> = OnceLock::new();
    NODE.get_or_init(|| {
        let mut seed = [0u8; 8];
        if os_random(&mut seed).is_err() {
            // No kernel entropy (never on Linux ≥ 3.17): the clock and pid still make
            // two processes differ.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos());
            let digest = Sha256::digest(format!("{now}-{}", std::process::id()));
            seed.copy_from_slice(&digest[..8]);
        }
        base32(u64::from_le_bytes(seed), 6)
    })
}

/// Fills `buf` from the kernel's CSPRNG (`getrandom(2)`, which blocks only until the
/// pool is first seeded at boot): for secrets such as console session ids.
pub fn os_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`.
        let written = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(written) {
            Ok(written) => filled += written,
            Err(_) => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}

fn base32(mut value: u64, chars: usize) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    (0..chars)
        .map(|_| {
            let digit = ALPHABET[(value % 32) as usize] as char;
            value /= 32;
            digit
        })
        .collect()
}

/// A stream's id, unique across livegate processes: this node's id and a sequence
/// number, written `NODE-SEQ` (e.g. `k3x9pq-17`) in logs, the API and the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    node: &'static str,
    sequence: u64,
}

impl StreamId {
    /// The `sequence`-th stream of this process.
    pub fn local(sequence: u64) -> Self {
        StreamId {
            node: node_id(),
            sequence,
        }
    }

    /// Parses `NODE-SEQ` as written by `Display`; only this node's ids parse, since only
    /// its streams can be found here.
    pub fn parse_local(text: &str) -> Option<Self> {
        let (node, sequence) = text.rsplit_once('-')?;
        if node != node_id() || sequence.starts_with('+') {
            return None;
        }
        Some(StreamId::local(sequence.parse().ok()?))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.node, self.sequence)
    }
}

impl Serialize for StreamId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A stream key reduced to what may be logged: a few leading characters (only for keys
/// long enough that they reveal little) and the first 16 hex digits of its SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedKey {
    shown: String,
    fingerprint: String,
}

impl RedactedKey {
    /// Keys shorter than this show no characters at all.
    const MIN_LEN_TO_SHOW_PREFIX: usize = 16;
    const SHOWN_PREFIX_CHARS: usize = 3;

    pub fn new(key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let fingerprint: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let shown = if key.chars().count() >= Self::MIN_LEN_TO_SHOW_PREFIX {
            key.chars().take(Self::SHOWN_PREFIX_CHARS).collect()
        } else {
            String::new()
        };
        RedactedKey { shown, fingerprint }
    }

    /// The SHA-256 fingerprint (16 hex digits): stable, so ops can correlate sessions
    /// and ban or allow a key without ever seeing it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Display for RedactedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}***#{}", self.shown, self.fingerprint)
    }
}

impl fmt::Debug for RedactedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_key_never_contains_a_short_key() {
        let redacted = RedactedKey::new("secret42").to_string();
        assert!(!redacted.contains("secret"), "{redacted}");
        assert!(redacted.starts_with("***#"), "{redacted}");
        assert_eq!(redacted.len(), 4 + 16);
    }

    #[test]
    fn redacted_key_shows_only_a_prefix_of_a_long_key() {
        let key = "live_1234567890abcdef?token=zzz";
        let redacted = RedactedKey::new(key);
        assert!(redacted.to_string().starts_with("liv***#"));
        assert!(!redacted.to_string().contains("1234567890"));
        assert!(!format!("{redacted:?}").contains("token"));
        let digest = Sha256::digest(key.as_bytes());
        let expected: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(redacted.fingerprint(), expected);
    }

    #[test]
    fn stream_ids_are_short_and_parse_back_on_this_node_only() {
        let id = StreamId::local(17);
        let text = id.to_string();
        assert_eq!(text.len(), 6 + 1 + 2, "{text}");
        assert_eq!(StreamId::parse_local(&text), Some(id));
        assert_eq!(
            serde_json::to_value(StreamId::local(3)).ok(),
            Some(serde_json::Value::String(format!("{}-3", node_id())))
        );
        for bad in ["17", "zzzzzz-17", "", "-", &format!("{}-+1", node_id())] {
            assert_eq!(StreamId::parse_local(bad), None, "{bad:?}");
        }
    }
}
