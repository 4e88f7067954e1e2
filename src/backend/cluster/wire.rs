//! What nodes say to each other over NATS: the subjects and JetStream stream names of a
//! fleet (all under `cluster.prefix`), and the JSON messages on them. Sans-IO: parsing a
//! message from another node is checked like any other input (sizes, hex, finite
//! numbers); a bad message is counted and skipped, never applied in part.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backend::BanTarget;
use crate::signals::descriptor_lists::AddedDescriptor;
use crate::signals::lists::AddedHash;
use livegate_signals::descriptor::Descriptor;
use livegate_signals::hash256::Hash256;

/// Hashes per learned-hashes message: ~100 bytes each, far below NATS's default 1 MiB
/// payload limit.
pub const HASHES_PER_MESSAGE: usize = 2000;
/// Descriptors per message: a 512-dimension descriptor is ~5 KB of JSON.
pub const DESCRIPTORS_PER_MESSAGE: usize = 32;
/// A message from another node larger than this is refused unparsed.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The subjects and stream names of one fleet.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.to_string(),
        }
    }

    pub fn bans_stream(&self) -> String {
        format!("{}_bans", self.prefix)
    }
    pub fn learned_stream(&self) -> String {
        format!("{}_learned", self.prefix)
    }
    pub fn events_stream(&self) -> String {
        format!("{}_events", self.prefix)
    }

    /// Every ban subject; one subject per target, so the stream keeps the latest ban of
    /// each.
    pub fn bans(&self) -> String {
        format!("{}.bans.>", self.prefix)
    }
    pub fn ban(&self, target: &BanTarget) -> String {
        match target {
            BanTarget::Key(fingerprint) => format!("{}.bans.key.{fingerprint}", self.prefix),
            // Dots separate subject tokens: an IPv4 address is written with '_'.
            BanTarget::Client(address) => format!(
                "{}.bans.client.{}",
                self.prefix,
                address.to_string().replace('.', "_")
            ),
        }
    }
    pub fn learned(&self) -> String {
        format!("{}.learned.>", self.prefix)
    }
    pub fn learned_hashes(&self, list: &str) -> String {
        format!("{}.learned.hash.{list}", self.prefix)
    }
    pub fn learned_descriptors(&self, list: &str) -> String {
        format!("{}.learned.descriptor.{list}", self.prefix)
    }
    pub fn events(&self) -> String {
        format!("{}.events.>", self.prefix)
    }
    pub fn event(&self, node_id: &str, event: &str) -> String {
        format!("{}.events.{node_id}.{event}", self.prefix)
    }
    /// Requests for one node: `…node.NODE_ID.cut`.
    pub fn node_commands(&self, node_id: &str) -> String {
        format!("{}.node.{node_id}.*", self.prefix)
    }
    pub fn node_cut(&self, node_id: &str) -> String {
        format!("{}.node.{node_id}.cut", self.prefix)
    }
    /// Requests every node answers: `…fleet.cut_key`, `…fleet.streams`.
    pub fn fleet_commands(&self) -> String {
        format!("{}.fleet.cmd.*", self.prefix)
    }
    pub fn fleet_command(&self, command: FleetCommand) -> String {
        format!("{}.fleet.cmd.{}", self.prefix, command.as_str())
    }
    pub fn heartbeat(&self) -> String {
        format!("{}.fleet.heartbeat", self.prefix)
    }
}

/// A request every node answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetCommand {
    CutKey,
    Streams,
}

impl FleetCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            FleetCommand::CutKey => "cut_key",
            FleetCommand::Streams => "streams",
        }
    }

    pub fn from_subject(subject: &str) -> Option<FleetCommand> {
        match subject.rsplit('.').next()? {
            "cut_key" => Some(FleetCommand::CutKey),
            "streams" => Some(FleetCommand::Streams),
            _ => None,
        }
    }
}

/// Milliseconds since the Unix epoch: how nodes exchange instants (their clocks are
/// assumed NTP-synchronised; a skew shifts ban expiry and the measured lag by as much).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// How far `unix_ms` is in the future of `now`; `None` when it has passed.
pub fn remaining(unix_ms: u64, now: SystemTime) -> Option<Duration> {
    (UNIX_EPOCH + Duration::from_millis(unix_ms))
        .duration_since(now)
        .ok()
        .filter(|left| !left.is_zero())
}

/// The wrong part of a message from another node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("{0} bytes: larger than {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("not the expected JSON: {0}")]
    Json(String),
    #[error("entry {index}: {message}")]
    Entry { index: usize, message: String },
}

fn parse<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, WireError> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(payload.len()));
    }
    serde_json::from_slice(payload).map_err(|error| WireError::Json(error.to_string()))
}

/// A key fingerprint as livegate writes them: 16 lowercase hex digits.
pub fn is_fingerprint(text: &str) -> bool {
    text.len() == 16
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// A ban of one key (`fingerprint`) or one client (`client`) until `expires_at_ms`, or
/// (`lifted`) the end of its ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    pub expires_at_ms: u64,
    /// When and where the ban was made: the lag is measured from `made_at_ms`.
    pub made_at_ms: u64,
    pub node: String,
    /// An operator lifted the target's ban: nodes remove it. Expired at once
    /// (`expires_at_ms` = `made_at_ms`), so a node that does not know the field ignores it
    /// rather than banning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lifted: bool,
}

impl BanMessage {
    pub fn new(target: &BanTarget, expires_at_ms: u64, made_at_ms: u64, node: &str) -> Self {
        let (fingerprint, client) = match target {
            BanTarget::Key(fingerprint) => (Some(fingerprint.clone()), None),
            BanTarget::Client(address) => (None, Some(*address)),
        };
        BanMessage {
            fingerprint,
            client,
            expires_at_ms,
            made_at_ms,
            node: node.to_string(),
            lifted: false,
        }
    }

    /// The lift of `target`'s ban, made at `made_at_ms` by `node`.
    pub fn lift(target: &BanTarget, made_at_ms: u64, node: &str) -> Self {
        BanMessage {
            lifted: true,
            ..BanMessage::new(target, made_at_ms, made_at_ms, node)
        }
    }

    /// The message and what it bans.
    pub fn parse(payload: &[u8]) -> Result<(Self, BanTarget), WireError> {
        let ban: BanMessage = parse(payload)?;
        let target = match (&ban.fingerprint, ban.client) {
            (Some(fingerprint), None) if is_fingerprint(fingerprint) => BanTarget::key(fingerprint),
            (Some(fingerprint), None) => {
                return Err(WireError::Json(format!(
                    "fingerprint {fingerprint:?} is not 16 lowercase hex digits"
                )));
            }
            (None, Some(client)) => BanTarget::client(client),
            _ => {
                return Err(WireError::Json(
                    "a ban names either a fingerprint or a client".into(),
                ));
            }
        };
        Ok((ban, target))
    }
}

/// One learned or added hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireHash {
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    #[serde(default)]
    pub label: String,
}

/// Hashes added to the list `list` on `node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashesMessage {
    pub list: String,
    pub node: String,
    pub made_at_ms: u64,
    pub hashes: Vec<WireHash>,
}

impl HashesMessage {
    pub fn new(list: &str, node: &str, hashes: &[AddedHash]) -> Self {
        HashesMessage {
            list: list.to_string(),
            node: node.to_string(),
            made_at_ms: unix_ms(SystemTime::now()),
            hashes: hashes
                .iter()
                .map(|added| WireHash {
                    hash: added.hash.to_hex(),
                    quality: added.quality,
                    label: added.label.clone(),
                })
                .collect(),
        }
    }

    /// The message and its hashes, ready for the list.
    pub fn parse(payload: &[u8]) -> Result<(Self, Vec<AddedHash>), WireError> {
        let message: HashesMessage = parse(payload)?;
        let hashes = message
            .hashes
            .iter()
            .enumerate()
            .map(|(index, wire)| {
                let hash = Hash256::from_hex(&wire.hash).map_err(|error| WireError::Entry {
                    index,
                    message: error.to_string(),
                })?;
                if wire.quality.is_some_and(|quality| quality > 100) {
                    return Err(WireError::Entry {
                        index,
                        message: "quality above 100".into(),
                    });
                }
                Ok(AddedHash {
                    hash,
                    quality: wire.quality,
                    label: wire.label.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((message, hashes))
    }
}

/// One learned or added descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireDescriptor {
    pub values: Vec<f32>,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pts: Option<f64>,
    #[serde(default)]
    pub label: String,
}

/// Descriptors added to the descriptor list `list` on `node`, by the model `model`
/// (descriptors of different models are not comparable, even of one dimension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DescriptorsMessage {
    pub list: String,
    pub model: String,
    pub node: String,
    pub made_at_ms: u64,
    pub descriptors: Vec<WireDescriptor>,
}

impl DescriptorsMessage {
    pub fn new(list: &str, model: &str, node: &str, entries: &[AddedDescriptor]) -> Self {
        DescriptorsMessage {
            list: list.to_string(),
            model: model.to_string(),
            node: node.to_string(),
            made_at_ms: unix_ms(SystemTime::now()),
            descriptors: entries
                .iter()
                .map(|entry| WireDescriptor {
                    values: entry.descriptor.values().to_vec(),
                    source: entry.source.clone(),
                    pts: entry.pts,
                    label: entry.label.clone(),
                })
                .collect(),
        }
    }

    /// The message and its descriptors, ready for the list (which checks the dimension
    /// against its model).
    pub fn parse(payload: &[u8]) -> Result<(Self, Vec<AddedDescriptor>), WireError> {
        let message: DescriptorsMessage = parse(payload)?;
        let entries = message
            .descriptors
            .iter()
            .enumerate()
            .map(|(index, wire)| {
                let descriptor =
                    Descriptor::new(wire.values.clone()).map_err(|error| WireError::Entry {
                        index,
                        message: error.to_string(),
                    })?;
                if wire.pts.is_some_and(|pts| !pts.is_finite() || pts < 0.0) {
                    return Err(WireError::Entry {
                        index,
                        message: "pts is not a finite, non-negative number".into(),
                    });
                }
                Ok(AddedDescriptor {
                    descriptor,
                    source: wire.source.clone(),
                    pts: wire.pts,
                    label: wire.label.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((message, entries))
    }
}

/// Every node says it is alive once a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    pub node_id: String,
    pub started_at_ms: u64,
}

impl Heartbeat {
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        parse(payload)
    }
}

/// `…node.ID.cut`: cut one stream of that node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutStreamRequest {
    pub stream: String,
    pub reason: String,
    /// The node that asked, for the audit.
    pub from: String,
    /// The operator it asked for (the admin token's name), for the audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// `…fleet.cmd.cut_key`: cut every stream of this key and ban it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutKeyRequest {
    pub fingerprint: String,
    pub reason: String,
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// Any node's answer to a request: an HTTP status and a JSON body that the asking
/// node's admin API passes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub node: String,
    pub node_id: String,
    pub status: u16,
    pub body: serde_json::Value,
}

impl Reply {
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        parse(payload)
    }
}

/// Parses a request body from another node.
pub fn parse_request<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, WireError> {
    parse(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_bad_entries_are_named() {
        let hash = Hash256::from_hex(&"ab".repeat(32)).expect("hex");
        let added = [AddedHash {
            hash,
            quality: Some(90),
            label: "learned from k-1".into(),
        }];
        let message = HashesMessage::new("learned", "node-a", &added);
        let payload = serde_json::to_vec(&message).expect("json");
        let (parsed, hashes) = HashesMessage::parse(&payload).expect("parse");
        assert_eq!(parsed.list, "learned");
        assert_eq!(hashes, added);

        let mut bad = message.clone();
        bad.hashes.push(WireHash {
            hash: "xyz".into(),
            quality: None,
            label: String::new(),
        });
        let payload = serde_json::to_vec(&bad).expect("json");
        assert!(matches!(
            HashesMessage::parse(&payload),
            Err(WireError::Entry { index: 1, .. })
        ));
        assert!(matches!(
            HashesMessage::parse(b"{\"list\":1}"),
            Err(WireError::Json(_))
        ));
        assert!(matches!(
            HashesMessage::parse(&vec![b' '; MAX_MESSAGE_BYTES + 1]),
            Err(WireError::TooLarge(_))
        ));
    }

    #[test]
    fn descriptors_refuse_non_finite_values() {
        let payload = br#"{"list":"l","model":"m","node":"n","made_at_ms":1,"descriptors":[{"values":[0.0,0.0],"source":"s"}]}"#;
        assert!(matches!(
            DescriptorsMessage::parse(payload),
            Err(WireError::Entry { index: 0, .. })
        ));
    }

    #[test]
    fn a_lift_is_a_ban_already_expired_that_says_so() {
        let key = BanTarget::key("0123456789abcdef");
        let lift = BanMessage::lift(&key, 7, "a");
        let payload = serde_json::to_vec(&lift).expect("json");
        let (parsed, target) = BanMessage::parse(&payload).expect("parse");
        assert!(parsed.lifted && parsed.expires_at_ms == 7 && target == key);
        // A ban says nothing of lifting, as before the field existed.
        let ban = serde_json::to_string(&BanMessage::new(&key, 10, 1, "a")).expect("json");
        assert!(!ban.contains("lifted"), "{ban}");
    }

    #[test]
    fn bans_name_one_key_or_one_client() {
        let key = BanTarget::key("0123456789abcdef");
        let ban = BanMessage::new(&key, 10, 1, "a");
        let payload = serde_json::to_vec(&ban).expect("json");
        assert_eq!(BanMessage::parse(&payload), Ok((ban.clone(), key)));

        let client = BanTarget::client("2001:db8::7".parse().expect("ip"));
        let payload = serde_json::to_vec(&BanMessage::new(&client, 10, 1, "a")).expect("json");
        let (_, parsed) = BanMessage::parse(&payload).expect("parse");
        assert_eq!(
            parsed,
            BanTarget::client("2001:db8::1".parse().expect("ip"))
        );
        assert_eq!(
            Subjects::new("p").ban(&BanTarget::client("10.1.2.3".parse().expect("ip"))),
            "p.bans.client.10_1_2_3"
        );

        for bad in [
            r#"{"fingerprint":"0123456789ABCDEF","expires_at_ms":1,"made_at_ms":1,"node":"a"}"#,
            r#"{"fingerprint":"0123456789abcdef","client":"10.0.0.1","expires_at_ms":1,"made_at_ms":1,"node":"a"}"#,
            r#"{"expires_at_ms":1,"made_at_ms":1,"node":"a"}"#,
            r#"{"client":"10.0.0.999","expires_at_ms":1,"made_at_ms":1,"node":"a"}"#,
        ] {
            assert!(BanMessage::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever another node (or anyone who can publish on the fleet's subjects)
        /// sends, parsing returns a value or an error, never a panic.
        #[test]
        fn any_bytes_parse_or_fail_cleanly(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = BanMessage::parse(&payload);
            let _ = HashesMessage::parse(&payload);
            let _ = DescriptorsMessage::parse(&payload);
            let _ = Heartbeat::parse(&payload);
            let _ = Reply::parse(&payload);
            let _ = parse_request::<CutStreamRequest>(&payload);
            let _ = parse_request::<CutKeyRequest>(&payload);
        }
    }

    #[test]
    fn remaining_time_of_past_and_future_instants() {
        let now = SystemTime::now();
        let ms = unix_ms(now);
        assert_eq!(remaining(ms.saturating_sub(1), now), None);
        let left = remaining(ms + 5000, now).expect("future");
        assert!(left <= Duration::from_secs(5) && left > Duration::from_secs(4));
    }

    #[test]
    fn subjects_stay_under_the_prefix() {
        let subjects = Subjects::new("fleet1");
        assert_eq!(
            subjects.ban(&BanTarget::key("0123456789abcdef")),
            "fleet1.bans.key.0123456789abcdef"
        );
        assert_eq!(subjects.bans_stream(), "fleet1_bans");
        assert_eq!(
            FleetCommand::from_subject(&subjects.fleet_command(FleetCommand::CutKey)),
            Some(FleetCommand::CutKey)
        );
    }
}
