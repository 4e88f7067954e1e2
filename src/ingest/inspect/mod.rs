//! Passive inspectors: one per protocol, each fed a copy of every read from the
//! publisher (in order, before the read is forwarded) and turning it into
//! [`StreamEvent`]s. An inspector never writes and never changes a byte; it may ask for
//! bytes to be held back until it has understood them ([`Inspector::held_from`]).

pub mod mpegts;
pub mod rtmp;

use crate::config::IngestConfig;
use crate::config::Protocol;
use crate::stream::StreamEvent;

/// The publisher sent bytes the inspector refuses: malformed, over a limit, or bytes
/// origins could read in more than one way. The stream cannot be inspected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InspectError(pub String);

/// What a session needs from the protocol its publisher speaks.
pub trait Inspector: Send + Sync {
    /// The protocol's name in messages ("RTMP").
    fn protocol(&self) -> &'static str;

    /// What the first [`Inspector::dial_after`] bytes are called in messages.
    fn handshake_start(&self) -> &'static str;

    /// Bytes the publisher must send before the origin is dialled (its handshake start),
    /// so that idle or foreign sockets cost the origin nothing; 0 when the transport has
    /// already done a handshake of its own.
    fn dial_after(&self) -> usize;

    /// Checks the first bytes (up to [`Inspector::dial_after`] of them, possibly fewer)
    /// before the origin is dialled; the error says what the bytes are not.
    fn check_start(&self, start: &[u8]) -> Result<(), InspectError>;

    /// Bytes the origin sends before the publisher can go on (its side of the handshake):
    /// while it owes them, a silent session is the origin's doing.
    fn origin_handshake_len(&self) -> u64;

    /// Reads the next bytes from the publisher, appending what they tell to `events`.
    /// After an error the inspector must not be fed again.
    fn feed(&mut self, bytes: &[u8], events: &mut Vec<StreamEvent>) -> Result<(), InspectError>;

    /// Stream offset from which bytes must wait before going to the origin (the start of
    /// a message the inspector has to read whole first); `None`: release everything.
    fn held_from(&self) -> Option<u64>;

    /// Gate mode: from now on [`Inspector::held_from`] holds every message until it is
    /// whole, so releases fall on message boundaries. False when the protocol's
    /// inspector cannot (the session then cannot be gated).
    fn hold_whole_messages(&mut self) -> bool {
        false
    }
}

/// The inspector for a listener's protocol.
pub fn for_ingest(ingest: &IngestConfig) -> Box<dyn Inspector> {
    match ingest.protocol {
        // RTMPS is RTMP once the session has removed the TLS layer.
        Protocol::Rtmp | Protocol::Rtmps => {
            Box::new(rtmp::RtmpInspector::new(ingest.demux_limits()))
        }
        // SRT carries MPEG-TS; its identity comes from the handshake, not the bytes.
        Protocol::Srt => Box::new(mpegts::MpegTsInspector::new(
            "SRT",
            livegate_mpegts::Limits::default(),
        )),
    }
}
