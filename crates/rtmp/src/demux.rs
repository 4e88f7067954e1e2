//! The passive RTMP demuxer: fed a copy of the bytes a publisher sends (handshake
//! included, split anywhere), it reports the session's `connect` and `publish`, its
//! metadata, video decoder configurations and video frames as [`DemuxEvent`]s.
//!
//! Layers: C0/C1/C2 are skipped by length; [`ChunkReader`] turns chunks into messages;
//! commands and data messages are read with the AMF0 decoder ([`super::amf0`]); video
//! messages (also inside aggregate messages) are parsed by [`super::flv`]. Audio is
//! skipped. Every buffer is bounded by [`DemuxLimits`].
//!
//! After an error the demuxer is dead: every later `feed` returns the same error again
//! and emits nothing.
//!
//! What the origin (nginx-rtmp) makes of the bytes is what this demuxer reports; the
//! chunk-layer ambiguities are listed in [`super::chunk`]. Above it:
//! - a property repeated in a command object: the last one wins (nginx-rtmp's reader
//!   overwrites), so `{app: "allowed", app: "other"}` is `other`;
//! - `app` and the publishing name as nginx-rtmp reads them ([`origin_name`],
//!   [`origin_app`]): cut at a NUL byte and at 255 bytes, `app` without a trailing `/`,
//!   `/_definst_` or `?args`;
//! - every AMF message type (commands 20/17, data 18/15, shared objects 19/16) runs the
//!   handler its function name selects, looked up case-insensitively and cut at a NUL,
//!   as nginx-rtmp does: `PUBLISH` in a data message is a publish; the AMF3 format byte
//!   is skipped whatever its value;
//! - aggregate messages may carry audio and video only (nginx-rtmp would act on a
//!   command or a Set Chunk Size inside one; it reads the whole tag type byte): others
//!   are refused;
//! - every `publish` is reported, not only the first (the relay admits each);
//! - keyframes: the FLV frame type, or an IDR (AVC) / IRAP (HEVC) NAL unit or an AV1
//!   key frame header in a frame flagged otherwise — decoders show such a picture
//!   whatever the flag says;
//! - Enhanced RTMP multitrack video: a track other than 0 makes the stream
//!   uninspectable (a player may show it; livegate inspects one picture);
//! - AMF nesting deeper than [`super::amf0::MAX_DEPTH`] is refused (nginx-rtmp recurses).

use bytes::Bytes;

use super::amf0::{Amf0Decoder, Amf0Error, Amf0Value};
use super::chunk::{ChunkReader, Message};
use super::flv::{FlvError, VideoTag, parse_video_tag};

/// C0 (version byte) + C1 + C2, as sent by the client.
pub const HANDSHAKE_LEN: u64 = 1 + 1536 + 1536;
/// The only C0 version plain RTMP uses (6 would be RTMPE).
const RTMP_VERSION: u8 = 3;

const MSG_AUDIO: u8 = 8;
const MSG_VIDEO: u8 = 9;
const MSG_AMF3_DATA: u8 = 15;
const MSG_AMF3_SHARED_OBJECT: u8 = 16;
const MSG_AMF3_COMMAND: u8 = 17;
const MSG_AMF0_DATA: u8 = 18;
const MSG_AMF0_SHARED_OBJECT: u8 = 19;
const MSG_AMF0_COMMAND: u8 = 20;
const MSG_AGGREGATE: u8 = 22;

/// Longest AMF function name nginx-rtmp keeps (its 128-byte buffer less the NUL).
const ORIGIN_MAX_FUNCTION_BYTES: usize = 127;

/// Size of the FLV tag header in front of every sub-message of an aggregate message,
/// and of the back-pointer after it.
const AGGREGATE_TAG_HEADER_LEN: usize = 11;
const AGGREGATE_BACK_POINTER_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemuxLimits {
    /// Largest audio, video or aggregate message (declared length) accepted.
    pub max_message_bytes: u32,
    /// Largest other message (commands, data, control) accepted: the relay holds these
    /// until they are parsed.
    pub max_command_bytes: u32,
    /// Largest Set Chunk Size accepted.
    pub max_chunk_size: u32,
    /// Most distinct chunk stream ids in one session.
    pub max_chunk_streams: usize,
    /// Most bytes held for messages being reassembled, all chunk streams together.
    pub max_buffered_bytes: usize,
}

impl Default for DemuxLimits {
    fn default() -> Self {
        DemuxLimits {
            max_message_bytes: 8 * 1024 * 1024,
            max_command_bytes: 64 * 1024,
            // nginx-rtmp's NGX_RTMP_MAX_CHUNK_SIZE: it ignores a larger Set Chunk Size
            // (keeping the old size), so applying one would desynchronise the readings;
            // refusing it is safe for every origin.
            max_chunk_size: 10 * 1024 * 1024,
            max_chunk_streams: 64,
            max_buffered_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Avc,
    Hevc,
    Av1,
    Vp9,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrame {
    pub codec: VideoCodec,
    pub keyframe: bool,
    /// Decode timestamp: the RTMP timestamp, unwrapped past 2^32 ms.
    pub dts_ms: i64,
    /// Presentation timestamp: `dts_ms` + the FLV composition time.
    pub pts_ms: i64,
    /// AVC/HEVC: length-prefixed NAL units; AV1: OBUs; VP9: the frame.
    pub data: Bytes,
    /// Stream offset (from the publisher's first byte, handshake included) of the first
    /// chunk header of the message that carried this frame (for a frame inside an
    /// aggregate message, that aggregate's).
    pub start_offset: u64,
}

/// `onMetaData` as sent by the publisher: the well-known video fields typed, and every
/// top-level entry rendered as text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamMetadata {
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub framerate: Option<f64>,
    /// `videocodecid`: the FLV CodecID ("7"), or a FourCC ("hvc1") when sent as one.
    pub video_codec: Option<String>,
    /// `videodatarate` in kbit/s.
    pub video_data_rate: Option<f64>,
    pub encoder: Option<String>,
    /// All top-level entries in order; numbers as Rust prints `f64`, containers as
    /// `[object]`/`[array]`.
    pub entries: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DemuxEvent {
    Connect {
        app: String,
        tc_url: Option<String>,
        flash_ver: Option<String>,
        /// Enhanced RTMP `fourCcList` (codecs the client says it can send).
        four_cc_list: Vec<String>,
    },
    /// A `publish` command: every one is reported (a connection may send several, after
    /// `closeStream`/`deleteStream`), and each must be admitted.
    Publish {
        /// The publishing name as nginx-rtmp reads it ([`origin_name`]), `?query`
        /// included (see [`split_stream_key`]).
        stream_key: String,
        /// "live", "record" or "append" when given.
        publish_type: Option<String>,
    },
    Metadata(StreamMetadata),
    VideoConfig {
        codec: VideoCodec,
        /// avcC, hvcC, av1C or vpcC.
        extradata: Bytes,
    },
    VideoFrame(VideoFrame),
    /// The publisher sends video this demuxer cannot analyse (legacy non-AVC codecs,
    /// VP8, unknown FourCC, Enhanced RTMP ModEx, a multitrack track other than 0).
    /// Reported once per session.
    UnsupportedVideo {
        description: String,
    },
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DemuxError {
    #[error("not RTMP: first byte {0:#04x} is not RTMP version 3")]
    NotRtmp(u8),
    #[error("fmt {fmt} chunk on chunk stream {csid} with no previous header (at byte {offset})")]
    NoPreviousHeader { fmt: u8, csid: u32, offset: u64 },
    #[error(
        "fmt {fmt} chunk on chunk stream {csid} while a message is still being received there (at byte {offset})"
    )]
    HeaderMidMessage { fmt: u8, csid: u32, offset: u64 },
    #[error(
        "message length {length} (type {type_id}) on chunk stream {csid} exceeds cap {cap} (at byte {offset})"
    )]
    MessageTooLarge {
        length: u32,
        type_id: u8,
        csid: u32,
        cap: u32,
        offset: u64,
    },
    #[error(
        "fmt 3 chunk on chunk stream {csid} carries extended timestamp {found:#x} where the message began with {expected:#x} (at byte {offset}): origins disagree whether these 4 bytes are payload"
    )]
    ExtendedTimestampMismatch {
        csid: u32,
        expected: u32,
        found: u32,
        offset: u64,
    },
    #[error(
        "Set Chunk Size lowers the chunk size from {from} to {to} (at byte {offset}): origins may drop bytes already read"
    )]
    ChunkSizeLowered { from: u32, to: u32, offset: u64 },
    #[error("more than {cap} chunk streams: chunk stream {csid} at byte {offset}")]
    TooManyChunkStreams { cap: usize, csid: u32, offset: u64 },
    #[error(
        "messages being reassembled would hold {needed} bytes, above cap {cap} (at byte {offset})"
    )]
    BufferedBytesExceeded {
        needed: usize,
        cap: usize,
        offset: u64,
    },
    #[error("{name} message of {length} bytes is shorter than 4 (at byte {offset})")]
    ControlMessageTooShort {
        name: &'static str,
        length: usize,
        offset: u64,
    },
    #[error(
        "Abort of chunk stream {csid} in the middle of a message ({received} of {length} bytes received) at byte {offset}: origins disagree on what follows"
    )]
    AbortMidMessage {
        csid: u32,
        received: usize,
        length: u32,
        offset: u64,
    },
    #[error("Set Chunk Size {size} is invalid (at byte {offset})")]
    InvalidChunkSize { size: u32, offset: u64 },
    #[error("chunk size {size} exceeds cap {cap} (at byte {offset})")]
    ChunkSizeTooLarge { size: u32, cap: u32, offset: u64 },
    #[error("message type {message_type} at byte {offset}: {source}")]
    Amf {
        message_type: u8,
        offset: u64,
        source: Amf0Error,
    },
    #[error("{command} at byte {offset}: {field} is {found}, expected {expected}")]
    CommandField {
        command: &'static str,
        field: &'static str,
        expected: &'static str,
        found: &'static str,
        offset: u64,
    },
    #[error("video message at byte {offset}: {source}")]
    Video { offset: u64, source: FlvError },
    #[error(
        "aggregate message at byte {offset}: sub-message of type {type_id} at message offset {position}: only audio and video may be aggregated (an origin would act on it)"
    )]
    AggregateSubMessage {
        offset: u64,
        position: usize,
        type_id: u8,
    },
    #[error(
        "aggregate message at byte {offset}: sub-message at message offset {position} needs {needed} bytes, {remaining} left"
    )]
    AggregateTruncated {
        offset: u64,
        position: usize,
        needed: usize,
        remaining: usize,
    },
}

/// Longest `app` or publishing name nginx-rtmp keeps (`NGX_RTMP_MAX_NAME` less its
/// terminating NUL): it silently truncates longer ones.
const ORIGIN_MAX_NAME_BYTES: usize = 255;

/// A name (`app`, publishing name) as nginx-rtmp reads it into a C string: cut at the
/// first NUL and at 255 bytes. Identity, bans and allowlists must see what the origin
/// sees, or `key\0anything` would be a new key to livegate and the banned one to the
/// origin.
pub fn origin_name(sent: &str) -> String {
    c_string(sent, ORIGIN_MAX_NAME_BYTES)
}

/// A string as nginx-rtmp copies it into a fixed C buffer: up to the first NUL, at most
/// `max_bytes` bytes.
fn c_string(sent: &str, max_bytes: usize) -> String {
    let bytes = sent.as_bytes();
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(bytes.len())
        .min(max_bytes);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The `app` of a `connect` as nginx-rtmp uses it: [`origin_name`], less a trailing
/// `/_definst_` or `/`, less any `?args`.
pub fn origin_app(sent: &str) -> String {
    let mut app = origin_name(sent);
    if app.len() > 10 && app.ends_with("/_definst_") {
        app.truncate(app.len() - 10);
    } else if app.ends_with('/') {
        app.pop();
    }
    if let Some(query) = app.find('?') {
        app.truncate(query);
    }
    app
}

/// Splits a publishing name into the stream key and its `?query`, the way nginx-rtmp
/// separates `name` from `args`.
pub fn split_stream_key(publishing_name: &str) -> (&str, Option<&str>) {
    match publishing_name.split_once('?') {
        Some((key, query)) => (key, Some(query)),
        None => (publishing_name, None),
    }
}

/// Extends 32-bit RTMP timestamps into a monotone-when-the-source-is i64 timeline:
/// each timestamp is placed within ±2^31 ms of the previous one.
#[derive(Debug, Default)]
struct TimestampUnwrapper {
    last: Option<(u32, i64)>,
}

impl TimestampUnwrapper {
    fn unwrap(&mut self, timestamp: u32) -> i64 {
        let extended = match self.last {
            None => i64::from(timestamp),
            Some((last32, last64)) => last64 + i64::from(timestamp.wrapping_sub(last32) as i32),
        };
        self.last = Some((timestamp, extended));
        extended
    }
}

#[derive(Debug)]
enum Phase {
    /// Handshake bytes still to skip.
    Handshake {
        remaining: u64,
    },
    Chunks,
    Failed(DemuxError),
}

/// Passive, sans-IO demuxer for the publisher → server direction of one RTMP session.
#[derive(Debug)]
pub struct Demuxer {
    limits: DemuxLimits,
    phase: Phase,
    chunks: ChunkReader,
    /// Messages completed by the current `feed`, reused between feeds.
    messages: Vec<Message>,
    video_clock: TimestampUnwrapper,
    unsupported_reported: bool,
    /// Bytes of each NAL unit's length prefix (AVC/HEVC), from the last configuration.
    nal_length_size: usize,
}

impl Default for Demuxer {
    fn default() -> Self {
        Demuxer::new(DemuxLimits::default())
    }
}

impl Demuxer {
    pub fn new(limits: DemuxLimits) -> Self {
        Demuxer {
            limits,
            phase: Phase::Handshake {
                remaining: HANDSHAKE_LEN,
            },
            chunks: ChunkReader::new(limits, HANDSHAKE_LEN),
            messages: Vec::new(),
            video_clock: TimestampUnwrapper::default(),
            unsupported_reported: false,
            nal_length_size: DEFAULT_NAL_LENGTH_SIZE,
        }
    }

    pub fn limits(&self) -> DemuxLimits {
        self.limits
    }

    /// Stream offset from which the relay must hold the bytes it read: a command or
    /// other non-media message (or a chunk header) is still incomplete there. `None`
    /// once the demuxer has failed: the caller decides what happens to the stream.
    pub fn held_from(&self) -> Option<u64> {
        match self.phase {
            Phase::Chunks => self.chunks.held_from(),
            Phase::Handshake { .. } | Phase::Failed(_) => None,
        }
    }

    /// Makes [`Demuxer::held_from`] hold audio, video and aggregate messages until they
    /// are whole too (gate mode), so that the relay only ever releases whole messages.
    pub fn hold_whole_messages(&mut self) {
        self.chunks.hold_whole_messages();
    }

    /// Feeds the next bytes the publisher sent. Events for every message completed by
    /// these bytes are appended to `events` (also those before an error). An incomplete
    /// message is kept and finished by later feeds.
    pub fn feed(&mut self, data: &[u8], events: &mut Vec<DemuxEvent>) -> Result<(), DemuxError> {
        let result = self.feed_inner(data, events);
        if let Err(error) = &result {
            self.phase = Phase::Failed(error.clone());
            self.messages.clear();
        }
        result
    }

    fn feed_inner(
        &mut self,
        mut data: &[u8],
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        if let Phase::Failed(error) = &self.phase {
            return Err(error.clone());
        }
        if let Phase::Handshake { remaining } = self.phase {
            if remaining == HANDSHAKE_LEN
                && let Some(&version) = data.first()
                && version != RTMP_VERSION
            {
                return Err(DemuxError::NotRtmp(version));
            }
            let skip = remaining.min(data.len() as u64);
            data = &data[skip as usize..];
            self.phase = if skip == remaining {
                Phase::Chunks
            } else {
                Phase::Handshake {
                    remaining: remaining - skip,
                }
            };
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut messages = std::mem::take(&mut self.messages);
        let chunk_result = self.chunks.feed(data, &mut messages);
        let mut result = Ok(());
        for message in messages.drain(..) {
            result = self.handle_message(message, events);
            if result.is_err() {
                break;
            }
        }
        messages.clear();
        self.messages = messages;
        result.and(chunk_result)
    }

    fn handle_message(
        &mut self,
        message: Message,
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        match message.type_id {
            MSG_AMF3_DATA
            | MSG_AMF3_SHARED_OBJECT
            | MSG_AMF3_COMMAND
            | MSG_AMF0_DATA
            | MSG_AMF0_SHARED_OBJECT
            | MSG_AMF0_COMMAND => self.handle_amf(&message, events),
            MSG_VIDEO => {
                let dts = self.video_clock.unwrap(message.timestamp);
                self.handle_video(&message.payload, dts, message.start_offset, events)
            }
            MSG_AGGREGATE => self.handle_aggregate(&message, events),
            // Audio, acknowledgements, window sizes, user control.
            _ => Ok(()),
        }
    }

    /// Every AMF message type is read as nginx-rtmp's `ngx_rtmp_amf_message_handler`
    /// reads it: a function name, then the handler registered for that name, whatever
    /// the message type. A `publish` sent as a data or shared-object message is a publish
    /// to the origin, so it is one here.
    fn handle_amf(
        &mut self,
        message: &Message,
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        let amf_error = amf_error_in(message);
        // AMF3-typed messages from publishers carry AMF0 after a format byte; nginx-rtmp
        // skips that byte whatever its value.
        let skip = usize::from(
            matches!(
                message.type_id,
                MSG_AMF3_DATA | MSG_AMF3_SHARED_OBJECT | MSG_AMF3_COMMAND
            ) && !message.payload.is_empty(),
        );
        let mut decoder = Amf0Decoder::new(&message.payload[skip..], skip);
        let name = if matches!(
            message.type_id,
            MSG_AMF0_SHARED_OBJECT | MSG_AMF3_SHARED_OBJECT
        ) {
            decoder.typeless_string().map_err(amf_error)?
        } else {
            match decoder.next_value().map_err(amf_error)? {
                Amf0Value::String(name) => name,
                _ => return Ok(()),
            }
        };
        match origin_function_name(&name).as_str() {
            "connect" => self.handle_command("connect", decoder, message, events),
            "publish" => self.handle_command("publish", decoder, message, events),
            "@setdataframe" | "onmetadata" => handle_metadata(&name, decoder, message, events),
            _ => Ok(()),
        }
    }

    fn handle_command(
        &mut self,
        command: &'static str,
        mut decoder: Amf0Decoder<'_>,
        message: &Message,
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        let amf_error = amf_error_in(message);
        let args = decoder.remaining_values().map_err(amf_error)?;
        let field_error = |field, expected, found: &Amf0Value| DemuxError::CommandField {
            command,
            field,
            expected,
            found: found.type_name(),
            offset: message.start_offset,
        };
        // args: transaction id, command object, optional arguments.
        if command == "connect" {
            let object = args.get(1).unwrap_or(&Amf0Value::Undefined);
            if object.properties().is_none() {
                return Err(field_error("command object", "object", object));
            }
            let string_property = |key: &'static str| match object.property(key) {
                None | Some(Amf0Value::Null | Amf0Value::Undefined) => Ok(None),
                Some(Amf0Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(field_error(key, "string", other)),
            };
            let four_cc_list = match object.property("fourCcList") {
                None | Some(Amf0Value::Null | Amf0Value::Undefined) => Vec::new(),
                Some(Amf0Value::StrictArray(items)) => items
                    .iter()
                    .map(|item| match item {
                        Amf0Value::String(s) => Ok(s.clone()),
                        other => Err(field_error("fourCcList item", "string", other)),
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => return Err(field_error("fourCcList", "strict array", other)),
            };
            events.push(DemuxEvent::Connect {
                app: origin_app(&string_property("app")?.unwrap_or_default()),
                tc_url: string_property("tcUrl")?,
                flash_ver: string_property("flashVer")?,
                four_cc_list,
            });
        } else {
            let stream_key = match args.get(2) {
                Some(Amf0Value::String(s)) => origin_name(s),
                other => {
                    return Err(field_error(
                        "publishing name",
                        "string",
                        other.unwrap_or(&Amf0Value::Undefined),
                    ));
                }
            };
            let publish_type = match args.get(3) {
                Some(Amf0Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            events.push(DemuxEvent::Publish {
                stream_key,
                publish_type,
            });
        }
        Ok(())
    }

    fn handle_video(
        &mut self,
        payload: &Bytes,
        dts_ms: i64,
        start_offset: u64,
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        let tag = parse_video_tag(payload).map_err(|source| DemuxError::Video {
            offset: start_offset,
            source,
        })?;
        match tag {
            VideoTag::Config { codec, extradata } => {
                self.nal_length_size = nal_length_size(codec, &extradata);
                events.push(DemuxEvent::VideoConfig { codec, extradata })
            }
            VideoTag::Frame {
                codec,
                keyframe,
                composition_time_ms,
                data,
            } => events.push(DemuxEvent::VideoFrame(VideoFrame {
                codec,
                // The FLV frame type is the publisher's word; players decode the NAL
                // units. An IDR/IRAP picture flagged as an inter frame is still a
                // picture viewers see, so it is inspected as a keyframe.
                keyframe: keyframe || has_random_access_nal(codec, &data, self.nal_length_size),
                dts_ms,
                pts_ms: dts_ms + i64::from(composition_time_ms),
                data,
                start_offset,
            })),
            VideoTag::Unsupported(description) => {
                if !self.unsupported_reported {
                    self.unsupported_reported = true;
                    events.push(DemuxEvent::UnsupportedVideo { description });
                }
            }
            VideoTag::Ignored => {}
        }
        Ok(())
    }

    /// An aggregate message is a run of FLV tags (11-byte header, body, 4-byte back
    /// pointer); like nginx-rtmp, the sub-message timestamps are taken relative to the
    /// first one and added to the aggregate's own timestamp.
    fn handle_aggregate(
        &mut self,
        message: &Message,
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        let payload = &message.payload;
        let mut position = 0;
        let mut first_timestamp = None;
        while position < payload.len() {
            let truncated = |needed| DemuxError::AggregateTruncated {
                offset: message.start_offset,
                position,
                needed,
                remaining: payload.len() - position,
            };
            let Some(header) = payload.get(position..position + AGGREGATE_TAG_HEADER_LEN) else {
                return Err(truncated(AGGREGATE_TAG_HEADER_LEN));
            };
            // nginx-rtmp dispatches the whole byte as a message type, and would run a
            // command or a Set Chunk Size found here: only media may be aggregated.
            let type_id = header[0];
            if type_id != MSG_AUDIO && type_id != MSG_VIDEO {
                return Err(DemuxError::AggregateSubMessage {
                    offset: message.start_offset,
                    position,
                    type_id,
                });
            }
            let size = (usize::from(header[1]) << 16)
                | (usize::from(header[2]) << 8)
                | usize::from(header[3]);
            let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
            let body_start = position + AGGREGATE_TAG_HEADER_LEN;
            let needed = AGGREGATE_TAG_HEADER_LEN + size + AGGREGATE_BACK_POINTER_LEN;
            if payload.len() - position < needed {
                return Err(truncated(needed));
            }
            let base = *first_timestamp.get_or_insert(timestamp);
            if type_id == MSG_VIDEO {
                let dts = self
                    .video_clock
                    .unwrap(message.timestamp.wrapping_add(timestamp.wrapping_sub(base)));
                let body = payload.slice(body_start..body_start + size);
                self.handle_video(&body, dts, message.start_offset, events)?;
            }
            position += needed;
        }
        Ok(())
    }
}

/// NAL length prefix of every common encoder, used until a configuration says otherwise.
const DEFAULT_NAL_LENGTH_SIZE: usize = 4;

/// The NAL length prefix size an avcC (byte 4) or hvcC (byte 21) declares.
fn nal_length_size(codec: VideoCodec, extradata: &[u8]) -> usize {
    let field = match codec {
        VideoCodec::Avc => extradata.get(4),
        VideoCodec::Hevc => extradata.get(21),
        VideoCodec::Av1 | VideoCodec::Vp9 => None,
    };
    field.map_or(DEFAULT_NAL_LENGTH_SIZE, |byte| usize::from(byte & 3) + 1)
}

/// True when an AVC access unit holds an IDR slice (NAL type 5), an HEVC one an IRAP
/// picture (NAL types 16–23), or an AV1 temporal unit a key frame ([`av1_key_frame`]).
/// Stops at the first length that runs past the data.
fn has_random_access_nal(codec: VideoCodec, data: &[u8], length_size: usize) -> bool {
    if codec == VideoCodec::Av1 {
        return av1_key_frame(data);
    }
    let mut rest = data;
    while rest.len() > length_size {
        let length = rest[..length_size]
            .iter()
            .fold(0usize, |acc, &byte| (acc << 8) | usize::from(byte));
        rest = &rest[length_size..];
        let Some(&header) = rest.first().filter(|_| length > 0 && length <= rest.len()) else {
            return false;
        };
        let random_access = match codec {
            VideoCodec::Avc => header & 0x1F == 5,
            VideoCodec::Hevc => (16..=23).contains(&((header >> 1) & 0x3F)),
            VideoCodec::Av1 | VideoCodec::Vp9 => return false,
        };
        if random_access {
            return true;
        }
        rest = &rest[length..];
    }
    false
}

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_FRAME_HEADER: u8 = 3;
const OBU_FRAME: u8 = 6;

/// True when AV1 OBUs (low-overhead format, as Enhanced RTMP and av1C carry them) hold
/// a key frame: a frame header with `show_existing_frame` 0 and `frame_type` KEY_FRAME
/// (its first three bits zero), or a sequence header of still pictures
/// (`reduced_still_picture_header`: every frame is a key frame). Stops at an OBU
/// without a size field (the last one) or whose size runs past the data.
fn av1_key_frame(data: &[u8]) -> bool {
    let mut rest = data;
    while let Some(&header) = rest.first() {
        let obu_type = (header >> 3) & 0x0F;
        let header_len = if header & 0x04 != 0 { 2 } else { 1 };
        let Some(after_header) = rest.get(header_len..) else {
            return false;
        };
        let (payload, next) = if header & 0x02 != 0 {
            let Some((size, leb_len)) = leb128(after_header) else {
                return false;
            };
            let Some(payload) = after_header.get(leb_len..leb_len.saturating_add(size)) else {
                return false;
            };
            (payload, &after_header[leb_len + size..])
        } else {
            (after_header, &[][..])
        };
        let key = match (obu_type, payload.first()) {
            (OBU_SEQUENCE_HEADER, Some(&first)) => first & 0x08 != 0,
            (OBU_FRAME_HEADER | OBU_FRAME, Some(&first)) => first & 0xE0 == 0,
            _ => false,
        };
        if key {
            return true;
        }
        rest = next;
    }
    false
}

/// An AV1 leb128 value (at most 8 bytes) and its length.
fn leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0u64;
    for (index, &byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, index + 1));
        }
    }
    None
}

/// Wraps an AMF0 error with the message it was found in.
fn amf_error_in(message: &Message) -> impl Fn(Amf0Error) -> DemuxError + Copy + '_ {
    |source| DemuxError::Amf {
        message_type: message.type_id,
        offset: message.start_offset,
        source,
    }
}

/// AMF function names as nginx-rtmp looks them up: cut at a NUL byte and at 127 bytes,
/// ASCII-lowercased (its handler table is case-insensitive).
fn origin_function_name(sent: &str) -> String {
    c_string(sent, ORIGIN_MAX_FUNCTION_BYTES).to_ascii_lowercase()
}

/// `@setDataFrame("onMetaData", {...})` or `onMetaData({...})` (`function` is the name
/// already read); other shapes are ignored.
fn handle_metadata(
    function: &str,
    mut decoder: Amf0Decoder<'_>,
    message: &Message,
    events: &mut Vec<DemuxEvent>,
) -> Result<(), DemuxError> {
    let amf_error = amf_error_in(message);
    if origin_function_name(function) == "@setdataframe" {
        if decoder.is_empty() {
            return Ok(());
        }
        if decoder.next_value().map_err(amf_error)? != Amf0Value::String("onMetaData".into()) {
            return Ok(());
        }
    }
    if decoder.is_empty() {
        return Ok(());
    }
    let value = decoder.next_value().map_err(amf_error)?;
    if let Some(properties) = value.properties() {
        events.push(DemuxEvent::Metadata(metadata_from(&value, properties)));
    }
    Ok(())
}

fn metadata_from(object: &Amf0Value, properties: &[(String, Amf0Value)]) -> StreamMetadata {
    let number = |key: &str| match object.property(key) {
        Some(Amf0Value::Number(n)) => Some(*n),
        _ => None,
    };
    let video_codec = object.property("videocodecid").map(|v| match v {
        Amf0Value::Number(n) => four_cc_text(*n).unwrap_or_else(|| render(v)),
        other => render(other),
    });
    StreamMetadata {
        width: number("width"),
        height: number("height"),
        framerate: number("framerate").or_else(|| number("fps")),
        video_codec,
        video_data_rate: number("videodatarate"),
        encoder: object.property("encoder").map(render),
        entries: properties
            .iter()
            .map(|(k, v)| (k.clone(), render(v)))
            .collect(),
    }
}

/// A codec id sent as a FourCC packed into a number (Enhanced RTMP), e.g. 1752589105.0
/// → "hvc1".
fn four_cc_text(value: f64) -> Option<String> {
    if !(16_777_216.0..=4_294_967_295.0).contains(&value) || value.fract() != 0.0 {
        return None;
    }
    let bytes = (value as u32).to_be_bytes();
    bytes
        .iter()
        .all(|b| b.is_ascii_graphic())
        .then(|| String::from_utf8_lossy(&bytes).into_owned())
}

fn render(value: &Amf0Value) -> String {
    match value {
        Amf0Value::Number(n) | Amf0Value::Date(n) => n.to_string(),
        Amf0Value::Boolean(b) => b.to_string(),
        Amf0Value::String(s) | Amf0Value::XmlDocument(s) => s.clone(),
        Amf0Value::Null | Amf0Value::Undefined | Amf0Value::Unsupported => "null".into(),
        Amf0Value::Reference(r) => format!("[reference {r}]"),
        Amf0Value::Object(_) | Amf0Value::EcmaArray(_) | Amf0Value::TypedObject { .. } => {
            "[object]".into()
        }
        Amf0Value::StrictArray(_) => "[array]".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::amf0::encode::encode_all;
    use super::*;

    use Amf0Value::{Null, Number, Object, StrictArray};

    fn string(s: &str) -> Amf0Value {
        Amf0Value::String(s.into())
    }

    /// Writes chunk streams the way a publisher does.
    struct ChunkWriter {
        out: Vec<u8>,
        chunk_size: usize,
        /// Repeat the extended timestamp on fmt 3 chunks (FFmpeg, librtmp).
        repeat_extended: bool,
    }

    fn basic_header(fmt: u8, csid: u32) -> Vec<u8> {
        match csid {
            2..=63 => vec![fmt << 6 | csid as u8],
            64..=319 => vec![fmt << 6, (csid - 64) as u8],
            _ => vec![fmt << 6 | 1, (csid - 64) as u8, ((csid - 64) >> 8) as u8],
        }
    }

    fn be24(v: u32) -> [u8; 3] {
        let b = v.to_be_bytes();
        [b[1], b[2], b[3]]
    }

    impl ChunkWriter {
        fn new() -> Self {
            // C0 (version 3) + C1 + C2.
            let mut out = vec![3];
            out.resize(HANDSHAKE_LEN as usize, 0xAB);
            ChunkWriter {
                out,
                chunk_size: 128,
                repeat_extended: true,
            }
        }

        /// A chunk header of format `fmt`; `timestamp` is the absolute timestamp (fmt 0)
        /// or the delta (fmt 1, 2), ignored for fmt 3 unless `fmt3_extended` is given.
        fn header(&mut self, fmt: u8, csid: u32, timestamp: u32, length: usize, type_id: u8) {
            self.out.extend(basic_header(fmt, csid));
            let field = timestamp.min(0xFF_FFFF);
            if fmt <= 2 {
                self.out.extend(be24(field));
            }
            if fmt <= 1 {
                self.out.extend(be24(length as u32));
                self.out.push(type_id);
            }
            if fmt == 0 {
                self.out.extend(1u32.to_le_bytes());
            }
            if fmt <= 2 && field == 0xFF_FFFF {
                self.out.extend(timestamp.to_be_bytes());
            }
        }

        /// The payload of a message whose first header was just written, split into
        /// chunks with fmt 3 continuation headers.
        fn payload(&mut self, csid: u32, extended: Option<u32>, payload: &[u8]) {
            for (i, chunk) in payload.chunks(self.chunk_size).enumerate() {
                if i > 0 {
                    self.out.extend(basic_header(3, csid));
                    if let Some(ts) = extended.filter(|_| self.repeat_extended) {
                        self.out.extend(ts.to_be_bytes());
                    }
                }
                self.out.extend_from_slice(chunk);
            }
        }

        /// A whole message with a fmt 0 first header.
        fn message(&mut self, csid: u32, timestamp: u32, type_id: u8, payload: &[u8]) {
            self.header(0, csid, timestamp, payload.len(), type_id);
            let extended = (timestamp >= 0xFF_FFFF).then_some(timestamp);
            self.payload(csid, extended, payload);
        }

        fn set_chunk_size(&mut self, size: u32) {
            self.message(2, 0, 1, &size.to_be_bytes());
            self.chunk_size = size as usize;
        }

        fn command(&mut self, type_id: u8, values: &[Amf0Value]) {
            let mut payload = if type_id == MSG_AMF3_COMMAND {
                vec![0]
            } else {
                vec![]
            };
            payload.extend(encode_all(values));
            self.message(3, 0, type_id, &payload);
        }

        fn connect_and_publish(&mut self) {
            self.command(
                MSG_AMF0_COMMAND,
                &[
                    string("connect"),
                    Number(1.0),
                    Object(vec![
                        ("app".into(), string("live")),
                        ("tcUrl".into(), string("rtmp://h/live")),
                    ]),
                ],
            );
            self.command(
                MSG_AMF0_COMMAND,
                &[
                    string("publish"),
                    Number(5.0),
                    Null,
                    string("key?t=1"),
                    string("live"),
                ],
            );
        }
    }

    /// Demuxes `data` whole, and one byte at a time, and checks both agree.
    fn demux(data: &[u8]) -> Result<Vec<DemuxEvent>, (DemuxError, Vec<DemuxEvent>)> {
        let mut events = Vec::new();
        let whole = Demuxer::default().feed(data, &mut events);
        let mut bytewise_events = Vec::new();
        let mut demuxer = Demuxer::default();
        let bytewise = data
            .iter()
            .try_for_each(|b| demuxer.feed(std::slice::from_ref(b), &mut bytewise_events));
        assert_eq!(whole, bytewise, "whole vs byte-at-a-time result");
        assert_eq!(events, bytewise_events, "whole vs byte-at-a-time events");
        match whole {
            Ok(()) => Ok(events),
            Err(e) => Err((e, events)),
        }
    }

    fn demux_err(data: &[u8]) -> DemuxError {
        demux(data).expect_err("demuxing should fail").0
    }

    fn frames(events: &[DemuxEvent]) -> Vec<&VideoFrame> {
        events
            .iter()
            .filter_map(|e| match e {
                DemuxEvent::VideoFrame(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn ex_tag(first: u8, four_cc: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut tag = vec![first];
        tag.extend_from_slice(four_cc);
        tag.extend_from_slice(body);
        tag
    }

    #[test]
    fn hand_built_legacy_avc_session() {
        let mut w = ChunkWriter::new();
        w.connect_and_publish();
        w.message(6, 0, MSG_VIDEO, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F]);
        let keyframe: Vec<u8> = [0x17, 1, 0, 0, 40, 0, 0, 1, 0x2C]
            .into_iter()
            .chain(std::iter::repeat_n(0x65, 300))
            .collect();
        let keyframe_offset = w.out.len() as u64;
        w.message(6, 1000, MSG_VIDEO, &keyframe);
        w.header(1, 6, 40, 10, MSG_VIDEO);
        w.payload(6, None, &[0x27, 1, 0xFF, 0xFF, 0xD8, 0, 0, 0, 1, 0x41]);
        let events = demux(&w.out).unwrap();
        assert_eq!(
            events[..2],
            [
                DemuxEvent::Connect {
                    app: "live".into(),
                    tc_url: Some("rtmp://h/live".into()),
                    flash_ver: None,
                    four_cc_list: vec![]
                },
                DemuxEvent::Publish {
                    stream_key: "key?t=1".into(),
                    publish_type: Some("live".into())
                }
            ]
        );
        assert_eq!(
            events[2],
            DemuxEvent::VideoConfig {
                codec: VideoCodec::Avc,
                extradata: Bytes::from_static(&[1, 0x64, 0, 0x1F])
            }
        );
        let frames = frames(&events);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            *frames[0],
            VideoFrame {
                codec: VideoCodec::Avc,
                keyframe: true,
                dts_ms: 1000,
                pts_ms: 1040,
                data: Bytes::copy_from_slice(&keyframe[5..]),
                start_offset: keyframe_offset,
            }
        );
        assert!(!frames[1].keyframe);
        assert_eq!((frames[1].dts_ms, frames[1].pts_ms), (1040, 1000));
        assert_eq!(split_stream_key("key?t=1"), ("key", Some("t=1")));
        assert_eq!(split_stream_key("key"), ("key", None));
    }

    #[test]
    fn amf3_wrapped_commands_and_four_cc_list() {
        let mut w = ChunkWriter::new();
        w.command(
            MSG_AMF3_COMMAND,
            &[
                string("connect"),
                Number(1.0),
                Object(vec![
                    ("app".into(), string("decoy")),
                    ("app".into(), string("app")),
                    ("flashVer".into(), string("FMLE/3.0")),
                    (
                        "fourCcList".into(),
                        StrictArray(vec![string("hvc1"), string("av01")]),
                    ),
                ]),
            ],
        );
        w.command(
            MSG_AMF3_COMMAND,
            &[string("releaseStream"), Number(2.0), Null, string("k")],
        );
        // The format byte is skipped whatever its value (0x02 here).
        let mut publish = vec![0x02];
        publish.extend(encode_all(&[
            string("publish"),
            Number(5.0),
            Null,
            string("k"),
        ]));
        w.message(3, 0, MSG_AMF3_COMMAND, &publish);
        w.command(
            MSG_AMF0_COMMAND,
            &[string("publish"), Number(6.0), Null, string("other")],
        );
        let events = demux(&w.out).unwrap();
        assert_eq!(
            events,
            [
                DemuxEvent::Connect {
                    app: "app".into(),
                    tc_url: None,
                    flash_ver: Some("FMLE/3.0".into()),
                    four_cc_list: vec!["hvc1".into(), "av01".into()]
                },
                DemuxEvent::Publish {
                    stream_key: "k".into(),
                    publish_type: None
                },
                DemuxEvent::Publish {
                    stream_key: "other".into(),
                    publish_type: None
                }
            ]
        );
    }

    #[test]
    fn metadata_from_set_data_frame_and_amf3_data() {
        let mut w = ChunkWriter::new();
        let object = Amf0Value::EcmaArray(vec![
            ("width".into(), Number(1280.0)),
            ("height".into(), Number(720.0)),
            ("framerate".into(), Number(29.97)),
            (
                "videocodecid".into(),
                Number(f64::from(u32::from_be_bytes(*b"hvc1"))),
            ),
            ("encoder".into(), string("obs")),
            ("nested".into(), Object(vec![])),
        ]);
        let data = encode_all(&[
            string("@setDataFrame"),
            string("onMetaData"),
            object.clone(),
        ]);
        w.message(4, 0, MSG_AMF0_DATA, &data);
        let mut amf3 = vec![0];
        amf3.extend(encode_all(&[string("onMetaData"), object]));
        w.message(4, 0, MSG_AMF3_DATA, &amf3);
        w.message(
            4,
            0,
            MSG_AMF0_DATA,
            &encode_all(&[string("onCuePoint"), Null]),
        );
        let events = demux(&w.out).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], events[1]);
        let DemuxEvent::Metadata(m) = &events[0] else {
            panic!("not metadata: {:?}", events[0]);
        };
        assert_eq!(
            (m.width, m.height, m.framerate),
            (Some(1280.0), Some(720.0), Some(29.97))
        );
        assert_eq!(m.video_codec.as_deref(), Some("hvc1"));
        assert_eq!(m.encoder.as_deref(), Some("obs"));
        assert_eq!(m.entries[2], ("framerate".into(), "29.97".into()));
        assert_eq!(m.entries[5], ("nested".into(), "[object]".into()));
    }

    #[test]
    fn enhanced_hevc_and_av1_tags() {
        let mut w = ChunkWriter::new();
        w.message(6, 0, MSG_VIDEO, &ex_tag(0x90, b"hvc1", &[1, 2, 3]));
        w.message(6, 100, MSG_VIDEO, &ex_tag(0x91, b"hvc1", &[0, 0, 33, 0xAA]));
        w.message(6, 133, MSG_VIDEO, &ex_tag(0xA3, b"hvc1", &[0xBB]));
        w.message(
            7,
            200,
            MSG_VIDEO,
            &ex_tag(0x90, b"av01", &[0x81, 0, 0x0C, 0]),
        );
        w.message(7, 233, MSG_VIDEO, &ex_tag(0x91, b"av01", &[0x12, 0]));
        w.message(7, 266, MSG_VIDEO, &ex_tag(0xA3, b"av01", &[0x32, 0]));
        let events = demux(&w.out).unwrap();
        let summary: Vec<_> = frames(&events)
            .iter()
            .map(|f| (f.codec, f.keyframe, f.dts_ms, f.pts_ms, f.data.to_vec()))
            .collect();
        assert_eq!(
            summary,
            [
                (VideoCodec::Hevc, true, 100, 133, vec![0xAA]),
                (VideoCodec::Hevc, false, 133, 133, vec![0xBB]),
                (VideoCodec::Av1, true, 233, 233, vec![0x12, 0]),
                (VideoCodec::Av1, false, 266, 266, vec![0x32, 0]),
            ]
        );
        assert_eq!(
            events[0],
            DemuxEvent::VideoConfig {
                codec: VideoCodec::Hevc,
                extradata: Bytes::from_static(&[1, 2, 3])
            }
        );
        assert!(matches!(
            events[3],
            DemuxEvent::VideoConfig {
                codec: VideoCodec::Av1,
                ..
            }
        ));
    }

    #[test]
    fn extended_timestamps_repeated_on_fmt3_chunks() {
        let payload: Vec<u8> = [0x17, 1, 0, 0, 0]
            .into_iter()
            .chain((0..300).map(|i| i as u8))
            .collect();
        let mut w = ChunkWriter::new();
        w.message(6, 0x0100_0000, MSG_VIDEO, &payload);
        w.message(6, 0x0100_0010, MSG_VIDEO, &payload[..130]);
        w.message(6, 0x0100_0020, MSG_VIDEO, &payload);
        let events = demux(&w.out).unwrap();
        let frames = frames(&events);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].dts_ms, 0x0100_0000);
        assert_eq!(frames[0].data[..], payload[5..]);
        assert_eq!(frames[1].data[..], payload[5..130]);
        assert_eq!(frames[2].dts_ms, 0x0100_0020);
    }

    /// nginx-rtmp always skips the 4 bytes after a fmt 3 header of a message that began
    /// with an extended timestamp; SRS reads them as payload unless they repeat the
    /// timestamp. Other bytes there would make the two read different frames: refused,
    /// and so is an encoder that does not repeat the timestamp at all.
    #[test]
    fn other_bytes_in_a_fmt3_extended_timestamp_are_refused() {
        let payload: Vec<u8> = [0x17, 1, 0, 0, 0]
            .into_iter()
            .chain((0..300).map(|i| i as u8))
            .collect();
        let mut w = ChunkWriter::new();
        w.header(0, 6, 0x0100_0000, payload.len(), MSG_VIDEO);
        w.out.extend_from_slice(&payload[..128]);
        let continuation = w.out.len() as u64;
        w.out.extend(basic_header(3, 6));
        w.out.extend([0xDE, 0xAD, 0xBE, 0xEF]);
        w.out.extend_from_slice(&payload[128..256]);
        assert_eq!(
            demux_err(&w.out),
            DemuxError::ExtendedTimestampMismatch {
                csid: 6,
                expected: 0x0100_0000,
                found: 0xDEAD_BEEF,
                offset: continuation
            }
        );

        let mut w = ChunkWriter::new();
        w.repeat_extended = false;
        w.message(6, 0x0100_0000, MSG_VIDEO, &payload);
        assert!(matches!(
            demux_err(&w.out),
            DemuxError::ExtendedTimestampMismatch {
                found: 0x7b7c_7d7e,
                ..
            }
        ));
    }

    #[test]
    fn fmt3_new_message_after_extended_delta() {
        let mut w = ChunkWriter::new();
        w.message(6, 10, MSG_VIDEO, &[0x27, 1, 0, 0, 0, 1]);
        w.header(1, 6, 0x0100_0000, 6, MSG_VIDEO);
        w.payload(6, None, &[0x27, 1, 0, 0, 0, 2]);
        w.out.extend(basic_header(3, 6));
        w.out.extend(0x0100_0000u32.to_be_bytes());
        w.out.extend([0x27, 1, 0, 0, 0, 3]);
        let dts: Vec<_> = frames(&demux(&w.out).unwrap())
            .iter()
            .map(|f| f.dts_ms)
            .collect();
        assert_eq!(dts, [10, 10 + 0x0100_0000, 10 + 2 * 0x0100_0000]);
    }

    #[test]
    fn timestamp_deltas_and_wrap_around() {
        let frame = [0x27, 1, 0, 0, 0, 9];
        let mut w = ChunkWriter::new();
        w.message(6, 0xFFFF_FF00, MSG_VIDEO, &frame);
        w.header(1, 6, 0x80, frame.len(), MSG_VIDEO);
        w.payload(6, None, &frame);
        w.header(2, 6, 0x100, 0, 0);
        w.payload(6, None, &frame);
        w.out.extend(basic_header(3, 6));
        w.payload(6, None, &frame);
        // A fmt 0 header after fmt 0 repeats with delta 0 (nginx-rtmp semantics).
        w.message(7, 50, MSG_VIDEO, &frame);
        w.out.extend(basic_header(3, 7));
        w.payload(7, None, &frame);
        let dts: Vec<_> = frames(&demux(&w.out).unwrap())
            .iter()
            .map(|f| f.dts_ms)
            .collect();
        let base = 0xFFFF_FF00_i64;
        assert_eq!(
            dts,
            [
                base,
                base + 0x80,
                base + 0x180,
                base + 0x280,
                50 + (1 << 32),
                50 + (1 << 32)
            ]
        );
    }

    #[test]
    fn one_two_and_three_byte_chunk_stream_ids() {
        let frame = [0x27, 1, 0, 0, 0, 7];
        let mut w = ChunkWriter::new();
        for csid in [5, 64, 319, 320, 65599] {
            w.message(csid, 0, MSG_VIDEO, &frame);
        }
        // csid 100 written in the 3-byte form.
        w.out.extend([0x01, 36, 0]);
        w.out.extend([0, 0, 0, 0, 0, 6, MSG_VIDEO, 1, 0, 0, 0]);
        w.out.extend(frame);
        let events = demux(&w.out).unwrap();
        assert_eq!(frames(&events).len(), 6);
    }

    #[test]
    fn abort_between_messages_is_a_no_op_and_mid_message_an_error() {
        let mut w = ChunkWriter::new();
        w.message(6, 0, MSG_VIDEO, &[0x27, 1, 0, 0, 0, 1]);
        w.message(2, 0, 2, &6u32.to_be_bytes());
        w.message(2, 0, 2, &40u32.to_be_bytes());
        w.message(6, 40, MSG_VIDEO, &[0x27, 1, 0, 0, 0, 2]);
        assert_eq!(frames(&demux(&w.out).unwrap()).len(), 2);

        let mut w = ChunkWriter::new();
        let big: Vec<u8> = [0x17, 1, 0, 0, 0].into_iter().chain([0xEE; 295]).collect();
        w.header(0, 6, 0, big.len(), MSG_VIDEO);
        w.out.extend_from_slice(&big[..128]);
        let abort_offset = w.out.len() as u64;
        w.message(2, 0, 2, &6u32.to_be_bytes());
        assert_eq!(
            demux_err(&w.out),
            DemuxError::AbortMidMessage {
                csid: 6,
                received: 128,
                length: 300,
                offset: abort_offset
            }
        );
    }

    #[test]
    fn set_chunk_size_applies_to_following_chunks() {
        let mut w = ChunkWriter::new();
        w.set_chunk_size(4096);
        let big: Vec<u8> = [0x17, 1, 0, 0, 0].into_iter().chain([0x11; 9000]).collect();
        w.message(6, 0, MSG_VIDEO, &big);
        w.set_chunk_size(8192);
        w.message(6, 5, MSG_VIDEO, &big);
        let events = demux(&w.out).unwrap();
        let frames = frames(&events);
        assert_eq!(frames[0].data.len(), 9000);
        assert_eq!(frames[1].data.len(), 9000);
    }

    #[test]
    fn a_lowered_chunk_size_is_refused() {
        let mut w = ChunkWriter::new();
        w.set_chunk_size(4096);
        let offset = w.out.len() as u64;
        w.set_chunk_size(1024);
        assert_eq!(
            demux_err(&w.out).to_string(),
            format!(
                "Set Chunk Size lowers the chunk size from 4096 to 1024 (at byte {offset}): origins may drop bytes already read"
            )
        );
    }

    #[test]
    fn commands_are_held_until_complete() {
        let mut w = ChunkWriter::new();
        w.message(6, 0, MSG_VIDEO, &[0x27, 1, 0, 0, 0, 1]);
        let command_start = w.out.len();
        w.connect_and_publish();
        let mut demuxer = Demuxer::default();
        let mut events = Vec::new();
        // Part of the video message's header: held (its type is not known yet).
        demuxer
            .feed(&w.out[..HANDSHAKE_LEN as usize + 3], &mut events)
            .unwrap();
        assert_eq!(demuxer.held_from(), Some(HANDSHAKE_LEN));
        // The video message and the start of the connect command.
        demuxer
            .feed(
                &w.out[HANDSHAKE_LEN as usize + 3..command_start + 20],
                &mut events,
            )
            .unwrap();
        assert_eq!(demuxer.held_from(), Some(command_start as u64));
        demuxer
            .feed(&w.out[command_start + 20..], &mut events)
            .unwrap();
        assert_eq!(demuxer.held_from(), None);
        assert!(matches!(events.last(), Some(DemuxEvent::Publish { .. })));

        // A media message being received is not held.
        let mut w = ChunkWriter::new();
        w.header(0, 6, 0, 300, MSG_VIDEO);
        w.out.extend([0x17; 100]);
        let mut demuxer = Demuxer::default();
        demuxer.feed(&w.out, &mut events).unwrap();
        assert_eq!(demuxer.held_from(), None);
    }

    #[test]
    fn gate_mode_holds_media_until_whole() {
        // A video message in three 128-byte chunks, interleaved with a whole audio one.
        let mut w = ChunkWriter::new();
        let video_start = w.out.len();
        w.header(0, 6, 0, 300, MSG_VIDEO);
        // AVC end of sequence: a video message that yields no event.
        w.out.extend([0x17, 2, 0, 0, 0]);
        w.out.extend([0; 123]);
        let audio_start = w.out.len();
        w.message(4, 0, MSG_AUDIO, &[0xAF, 1, 2, 3]);
        let continuation = w.out.len();
        w.out.push(0xC6);
        w.out.extend([0; 128]);
        w.out.push(0xC6);
        w.out.extend([0; 44]);
        let mut demuxer = Demuxer::default();
        demuxer.hold_whole_messages();
        let mut events = Vec::new();
        demuxer
            .feed(&w.out[..audio_start + 2], &mut events)
            .unwrap();
        assert_eq!(demuxer.held_from(), Some(video_start as u64));
        demuxer
            .feed(&w.out[audio_start + 2..continuation + 10], &mut events)
            .unwrap();
        assert_eq!(demuxer.held_from(), Some(video_start as u64));
        demuxer
            .feed(&w.out[continuation + 10..], &mut events)
            .unwrap();
        assert_eq!(demuxer.held_from(), None, "whole: nothing held");
    }

    #[test]
    fn oversized_command_is_rejected_at_its_header() {
        let mut w = ChunkWriter::new();
        w.header(0, 3, 0, 70_000, MSG_AMF0_COMMAND);
        assert_eq!(
            demux_err(&w.out).to_string(),
            "message length 70000 (type 20) on chunk stream 3 exceeds cap 65536 (at byte 3073)"
        );
    }

    #[test]
    fn names_are_read_as_nginx_rtmp_reads_them() {
        assert_eq!(origin_name("key\0evil"), "key");
        let long = "k".repeat(300);
        assert_eq!(origin_name(&long), "k".repeat(255));
        assert_eq!(origin_name("plain?token=1"), "plain?token=1");
        assert_eq!(origin_app("live/"), "live");
        assert_eq!(origin_app("live/_definst_"), "live");
        assert_eq!(origin_app("live?vhost=x"), "live");
        assert_eq!(origin_app("live\0/other"), "live");
        assert_eq!(origin_app("live//"), "live/");
    }

    /// An IDR picture sent with the FLV "inter frame" type is still a keyframe to the
    /// viewers' decoders, so it is one to livegate too.
    #[test]
    fn an_idr_flagged_as_inter_frame_is_a_keyframe() {
        let nal = |header: u8| [&[0, 0, 0, 3, header][..], &[0xAA, 0xBB]].concat();
        let mut w = ChunkWriter::new();
        // avcC with a 4-byte length prefix.
        w.message(
            6,
            0,
            MSG_VIDEO,
            &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F, 0xFF, 0xE0, 0],
        );
        let sei_then_idr = [&[0x27, 1, 0, 0, 0][..], &nal(0x06), &nal(0x65)].concat();
        w.message(6, 40, MSG_VIDEO, &sei_then_idr);
        let non_idr = [&[0x27, 1, 0, 0, 0][..], &nal(0x41)].concat();
        w.message(6, 80, MSG_VIDEO, &non_idr);
        // An HEVC IDR_W_RADL (type 19) in a legacy CodecID 12 tag.
        let hevc_idr = [&[0x2C, 1, 0, 0, 0][..], &[0, 0, 0, 3, 19 << 1, 1, 0xAA]].concat();
        w.message(6, 120, MSG_VIDEO, &hevc_idr);
        // AV1 flagged inter: a temporal delimiter then an OBU_FRAME whose header is a
        // KEY_FRAME (first bits 000); then an inter frame (frame_type 1: 001); then
        // OBU_FRAME_HEADER (type 3, with the extension byte) of a key frame.
        w.message(6, 160, MSG_VIDEO, b"\xA1av01\x12\x00\x32\x02\x10\x00");
        w.message(6, 200, MSG_VIDEO, b"\xA1av01\x12\x00\x32\x02\x30\x00");
        w.message(6, 240, MSG_VIDEO, b"\xA1av01\x1E\x00\x01\x00");
        // Truncated and size-less OBUs are not key frames.
        w.message(6, 280, MSG_VIDEO, b"\xA1av01\x32\x09\x00");
        w.message(6, 320, MSG_VIDEO, b"\xA1av01\x30\x40");
        let keyframes: Vec<bool> = frames(&demux(&w.out).unwrap())
            .iter()
            .map(|frame| frame.keyframe)
            .collect();
        assert_eq!(
            keyframes,
            [true, false, true, true, false, true, false, false]
        );
    }

    #[test]
    fn every_publish_is_reported() {
        let mut w = ChunkWriter::new();
        w.connect_and_publish();
        w.command(
            MSG_AMF0_COMMAND,
            &[string("publish"), Number(6.0), Null, string("other\0tail")],
        );
        let keys: Vec<_> = demux(&w.out)
            .unwrap()
            .into_iter()
            .filter_map(|event| match event {
                DemuxEvent::Publish { stream_key, .. } => Some(stream_key),
                _ => None,
            })
            .collect();
        assert_eq!(keys, ["key?t=1", "other"]);
    }

    #[test]
    fn aggregate_messages_carry_video_tags() {
        let mut body = Vec::new();
        for (ts, nal) in [(500u32, 1u8), (540, 2)] {
            let tag = [0x27, 1, 0, 0, 0, nal];
            body.push(MSG_VIDEO);
            body.extend(be24(tag.len() as u32));
            body.extend(be24(ts));
            body.push(0);
            body.extend([0, 0, 0]);
            body.extend(tag);
            body.extend((11 + tag.len() as u32).to_be_bytes());
        }
        let mut w = ChunkWriter::new();
        w.message(6, 2000, MSG_AGGREGATE, &body);
        let events = demux(&w.out).unwrap();
        let dts: Vec<_> = frames(&events)
            .iter()
            .map(|f| (f.dts_ms, f.data[0]))
            .collect();
        assert_eq!(dts, [(2000, 1), (2040, 2)]);
        body.truncate(body.len() - 1);
        let mut w = ChunkWriter::new();
        w.message(6, 2000, MSG_AGGREGATE, &body);
        assert!(matches!(
            demux_err(&w.out),
            DemuxError::AggregateTruncated {
                position: 21,
                needed: 21,
                remaining: 20,
                ..
            }
        ));
    }

    /// Only media may be aggregated: nginx-rtmp would execute a command or a Set Chunk
    /// Size inside an aggregate, and dispatches the whole type byte (0x29 is no video).
    #[test]
    fn aggregated_non_media_is_refused() {
        for type_byte in [MSG_AMF0_COMMAND, 1, 0x20 | MSG_VIDEO] {
            let mut body = vec![type_byte];
            body.extend(be24(4));
            body.extend([0; 7]);
            body.extend([0, 0, 0, 128]);
            body.extend(15u32.to_be_bytes());
            let mut w = ChunkWriter::new();
            w.message(6, 0, MSG_AGGREGATE, &body);
            assert!(
                matches!(
                    demux_err(&w.out),
                    DemuxError::AggregateSubMessage { type_id, position: 0, .. } if type_id == type_byte
                ),
                "type {type_byte}"
            );
        }
    }

    /// nginx-rtmp runs the handler named by the function name of any AMF message type,
    /// looked up case-insensitively, cut at a NUL: each of these is a publish.
    #[test]
    fn publish_in_any_amf_message_shape_is_a_publish() {
        let args =
            |name: &str| encode_all(&[string(name), Number(5.0), Null, string("hidden-key")]);
        let shared_object = {
            // A typeless name, then bytes the publish handler reads as its arguments.
            let mut payload = vec![0, 7];
            payload.extend(b"publish");
            payload.extend(encode_all(&[Number(5.0), Null, string("hidden-key")]));
            payload
        };
        let cases: [(&str, u8, Vec<u8>); 6] = [
            ("upper case", MSG_AMF0_COMMAND, args("PUBLISH")),
            ("NUL suffix", MSG_AMF0_COMMAND, args("publish\0ignored")),
            ("data message", MSG_AMF0_DATA, args("publish")),
            (
                "AMF3 data",
                MSG_AMF3_DATA,
                [&[0][..], &args("Publish")].concat(),
            ),
            (
                "shared object",
                MSG_AMF0_SHARED_OBJECT,
                shared_object.clone(),
            ),
            (
                "AMF3 shared object",
                MSG_AMF3_SHARED_OBJECT,
                [&[0][..], &shared_object].concat(),
            ),
        ];
        for (name, type_id, payload) in cases {
            let mut w = ChunkWriter::new();
            w.message(3, 0, type_id, &payload);
            let events = demux(&w.out).unwrap();
            assert!(
                matches!(
                    &events[..],
                    [DemuxEvent::Publish { stream_key, .. }] if stream_key == "hidden-key"
                ),
                "{name}: {events:?}"
            );
        }
    }

    #[test]
    fn unsupported_video_is_reported_once_and_audio_skipped() {
        let mut w = ChunkWriter::new();
        w.message(4, 0, 8, &[0xAF, 1, 0x21]);
        w.message(6, 0, MSG_VIDEO, &[0x22, 0, 0]);
        w.message(6, 0, MSG_VIDEO, &ex_tag(0x91, b"vp08", &[0]));
        w.message(6, 0, MSG_VIDEO, &[]);
        assert_eq!(
            demux(&w.out).unwrap(),
            [DemuxEvent::UnsupportedVideo {
                description: "FLV CodecID 2".into()
            }]
        );
    }

    #[test]
    fn http_request_is_not_rtmp() {
        let err = demux_err(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(err, DemuxError::NotRtmp(b'G'));
        assert_eq!(
            err.to_string(),
            "not RTMP: first byte 0x47 is not RTMP version 3"
        );
        assert_eq!(demux_err(&[6]), DemuxError::NotRtmp(6));
    }

    #[test]
    fn invalid_chunk_sizes() {
        for (size, expected) in [
            (0u32, "Set Chunk Size 0 is invalid (at byte 3073)"),
            (
                0x8000_0000,
                "Set Chunk Size 2147483648 is invalid (at byte 3073)",
            ),
            (
                0x7FFF_FFFF,
                "chunk size 2147483647 exceeds cap 10485760 (at byte 3073)",
            ),
        ] {
            let mut w = ChunkWriter::new();
            w.message(2, 0, 1, &size.to_be_bytes());
            assert_eq!(demux_err(&w.out).to_string(), expected);
        }
        let mut w = ChunkWriter::new();
        w.message(2, 0, 1, &[0, 1]);
        assert!(matches!(
            demux_err(&w.out),
            DemuxError::ControlMessageTooShort { length: 2, .. }
        ));
    }

    #[test]
    fn oversized_message_is_rejected_at_its_header() {
        let mut w = ChunkWriter::new();
        w.header(0, 4, 0, 0xFF_FFFF, MSG_VIDEO);
        let err = demux_err(&w.out);
        assert_eq!(
            err.to_string(),
            "message length 16777215 (type 9) on chunk stream 4 exceeds cap 8388608 (at byte 3073)"
        );
    }

    #[test]
    fn buffered_bytes_are_capped_across_chunk_streams() {
        let mut w = ChunkWriter::new();
        for csid in 3..8 {
            w.header(0, csid, 0, 8 * 1024 * 1024, MSG_VIDEO);
            w.out.extend([0; 128]);
        }
        assert!(matches!(
            demux_err(&w.out),
            DemuxError::BufferedBytesExceeded {
                needed: 41943040,
                cap: 33554432,
                ..
            }
        ));
    }

    #[test]
    fn thousands_of_chunk_streams_are_rejected() {
        let mut w = ChunkWriter::new();
        for csid in 3..3003 {
            w.message(csid, 0, 8, &[0xAF]);
        }
        let err = demux_err(&w.out);
        assert!(
            matches!(
                err,
                DemuxError::TooManyChunkStreams {
                    cap: 64,
                    csid: 67,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn fmt_1_to_3_without_previous_header() {
        for fmt in 1..=3 {
            let mut w = ChunkWriter::new();
            w.header(fmt, 9, 0, 1, MSG_VIDEO);
            w.out.push(0);
            assert_eq!(
                demux_err(&w.out).to_string(),
                format!("fmt {fmt} chunk on chunk stream 9 with no previous header (at byte 3073)")
            );
        }
    }

    #[test]
    fn new_header_in_the_middle_of_a_message() {
        let mut w = ChunkWriter::new();
        w.header(0, 6, 0, 300, MSG_VIDEO);
        w.out.extend([0x17; 128]);
        w.header(1, 6, 0, 5, MSG_VIDEO);
        assert!(matches!(
            demux_err(&w.out),
            DemuxError::HeaderMidMessage {
                fmt: 1,
                csid: 6,
                ..
            }
        ));
    }

    #[test]
    fn malformed_commands() {
        let cases: [(Vec<u8>, &str); 4] = [
            (
                encode_all(&[string("publish"), Number(1.0), Null, Number(3.0)]),
                "publish at byte 3073: publishing name is number, expected string",
            ),
            (
                encode_all(&[string("connect"), Number(1.0), string("app")]),
                "connect at byte 3073: command object is string, expected object",
            ),
            (
                encode_all(&[
                    string("connect"),
                    Number(1.0),
                    Object(vec![("app".into(), Number(1.0))]),
                ]),
                "connect at byte 3073: app is number, expected string",
            ),
            (
                [0x02, 0, 7]
                    .into_iter()
                    .chain(*b"connect")
                    .chain([0x02, 0xFF, 0xFF, b'x'])
                    .collect(),
                "message type 20 at byte 3073: AMF0 string of 65535 bytes at message offset 11 \
                 runs past the end of the message (1 bytes left)",
            ),
        ];
        for (payload, expected) in cases {
            let mut w = ChunkWriter::new();
            w.message(3, 0, MSG_AMF0_COMMAND, &payload);
            assert_eq!(demux_err(&w.out).to_string(), expected);
        }
        let mut truncated = vec![0x02, 0, 7];
        truncated.extend(b"conn");
        let mut w = ChunkWriter::new();
        w.message(3, 0, MSG_AMF0_COMMAND, &truncated);
        assert_eq!(
            demux_err(&w.out).to_string(),
            "message type 20 at byte 3073: AMF0 string of 7 bytes at message offset 1 runs \
             past the end of the message (4 bytes left)"
        );
        let mut nested = encode_all(&[string("connect"), Number(1.0)]);
        nested.extend(std::iter::repeat_n([0x0A, 0, 0, 0, 1], 40).flatten());
        let mut w = ChunkWriter::new();
        w.message(3, 0, MSG_AMF0_COMMAND, &nested);
        assert!(matches!(
            demux_err(&w.out),
            DemuxError::Amf {
                source: Amf0Error::TooDeep { .. },
                ..
            }
        ));
    }

    /// An Enhanced RTMP session as the test encoder writes it: HEVC (hvcC with a 2-byte
    /// NAL length, CodedFrames and CodedFramesX, metadata, end of sequence), then AV1
    /// (av1C, OBUs) and legacy CodecID 12 HEVC; split at every byte it demuxes alike.
    #[test]
    fn enhanced_rtmp_from_the_test_encoder_in_every_split() {
        use crate::encode::{
            self, CSID_VIDEO, ExVideoPacket, LEGACY_CODEC_HEVC, TYPE_VIDEO, ex_coded_frame,
            ex_video_tag, legacy_video_tag,
        };
        // Longer than a 128-byte chunk, so that it is continued.
        let mut hvcc = vec![1; 150];
        hvcc[21] = 0xF1;
        let hevc_idr = [0, 3, 19 << 1, 1, 0xAA];
        let hevc_trail = [0, 3, 1 << 1, 1, 0xBB];
        let av1c = [0x81, 0x00, 0x0C, 0x00, 0x0A, 0x0B, 0, 0, 0, 0x2A];
        let av1_frame = [0x32, 0x03, 0x10, 0x00, 0x00];
        let tags = [
            ex_video_tag(ExVideoPacket::SequenceStart, true, b"hvc1", &hvcc),
            ex_coded_frame(b"hvc1", true, 80, &hevc_idr),
            ex_coded_frame(b"hvc1", false, 0, &hevc_trail),
            ex_video_tag(ExVideoPacket::Metadata, true, b"hvc1", &[2, 0, 1, b'c']),
            ex_video_tag(ExVideoPacket::SequenceEnd, true, b"hvc1", &[]),
            ex_video_tag(ExVideoPacket::SequenceStart, true, b"av01", &av1c),
            ex_coded_frame(b"av01", true, 40, &av1_frame),
            legacy_video_tag(LEGACY_CODEC_HEVC, true, 0, 0, &hvcc),
            legacy_video_tag(LEGACY_CODEC_HEVC, false, 1, -40, &hevc_trail),
        ];
        let mut out = encode::client_handshake();
        let writer = encode::ChunkWriter::default();
        out.extend(encode::publish_commands(&writer, "live", "key"));
        for (index, tag) in tags.iter().enumerate() {
            writer.write_message(
                &mut out,
                CSID_VIDEO,
                1000 + 40 * index as u32,
                TYPE_VIDEO,
                1,
                tag,
            );
        }
        let events = demux(&out).unwrap();
        let configs: Vec<_> = events
            .iter()
            .filter_map(|event| match event {
                DemuxEvent::VideoConfig { codec, extradata } => Some((*codec, extradata.to_vec())),
                _ => None,
            })
            .collect();
        assert_eq!(
            configs,
            [
                (VideoCodec::Hevc, hvcc.clone()),
                (VideoCodec::Av1, av1c.to_vec()),
                (VideoCodec::Hevc, hvcc.clone())
            ]
        );
        let seen: Vec<_> = frames(&events)
            .iter()
            .map(|f| (f.codec, f.keyframe, f.dts_ms, f.pts_ms, f.data.to_vec()))
            .collect();
        assert_eq!(
            seen,
            [
                (VideoCodec::Hevc, true, 1040, 1120, hevc_idr.to_vec()),
                (VideoCodec::Hevc, false, 1080, 1080, hevc_trail.to_vec()),
                (VideoCodec::Av1, true, 1240, 1240, av1_frame.to_vec()),
                (VideoCodec::Hevc, false, 1320, 1280, hevc_trail.to_vec()),
            ]
        );
        for cut in 0..out.len() {
            let mut demuxer = Demuxer::default();
            let mut split = Vec::new();
            demuxer.feed(&out[..cut], &mut split).unwrap();
            demuxer.feed(&out[cut..], &mut split).unwrap();
            assert_eq!(split, events, "split at {cut}");
        }
        // A codec livegate cannot decode is reported, once.
        let mut out = encode::client_handshake();
        let writer = encode::ChunkWriter::default();
        out.extend(encode::publish_commands(&writer, "live", "key"));
        for timestamp in [0, 40] {
            let tag = ex_coded_frame(b"vvc1", true, 0, &[0, 1]);
            writer.write_message(&mut out, CSID_VIDEO, timestamp, TYPE_VIDEO, 1, &tag);
        }
        let unsupported: Vec<_> = demux(&out)
            .unwrap()
            .into_iter()
            .filter(|event| matches!(event, DemuxEvent::UnsupportedVideo { .. }))
            .collect();
        assert_eq!(
            unsupported,
            [DemuxEvent::UnsupportedVideo {
                description: "FourCC vvc1".into()
            }]
        );
    }

    #[test]
    fn truncated_stream_emits_only_complete_messages() {
        let mut w = ChunkWriter::new();
        w.connect_and_publish();
        w.message(6, 0, MSG_VIDEO, &[0x17; 400]);
        for cut in HANDSHAKE_LEN as usize..w.out.len() {
            let mut demuxer = Demuxer::default();
            let mut events = Vec::new();
            demuxer.feed(&w.out[..cut], &mut events).unwrap();
            assert!(events.len() <= 2);
            assert!(frames(&events).is_empty());
        }
    }

    #[test]
    fn demuxer_stays_dead_after_an_error() {
        let mut demuxer = Demuxer::default();
        let mut events = Vec::new();
        assert_eq!(
            demuxer.feed(b"G", &mut events),
            Err(DemuxError::NotRtmp(b'G'))
        );
        let mut w = ChunkWriter::new();
        w.connect_and_publish();
        assert_eq!(
            demuxer.feed(&w.out, &mut events),
            Err(DemuxError::NotRtmp(b'G'))
        );
        assert!(events.is_empty());
    }

    #[test]
    fn events_before_an_error_are_kept() {
        let mut w = ChunkWriter::new();
        w.connect_and_publish();
        w.message(2, 0, 1, &0u32.to_be_bytes());
        let (err, events) = demux(&w.out).unwrap_err();
        assert!(matches!(err, DemuxError::InvalidChunkSize { size: 0, .. }));
        assert_eq!(events.len(), 2);
    }
}
