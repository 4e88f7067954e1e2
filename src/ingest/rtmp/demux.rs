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

use bytes::Bytes;

use super::amf0::{Amf0Decoder, Amf0Error, Amf0Value};
use super::chunk::{ChunkReader, Message};
use super::flv::{FlvError, VideoTag, parse_video_tag};

/// C0 (version byte) + C1 + C2, as sent by the client.
pub const HANDSHAKE_LEN: u64 = 1 + 1536 + 1536;
/// The only C0 version plain RTMP uses (6 would be RTMPE).
const RTMP_VERSION: u8 = 3;

const MSG_VIDEO: u8 = 9;
const MSG_AMF3_DATA: u8 = 15;
const MSG_AMF3_COMMAND: u8 = 17;
const MSG_AMF0_DATA: u8 = 18;
const MSG_AMF0_COMMAND: u8 = 20;
const MSG_AGGREGATE: u8 = 22;

/// Size of the FLV tag header in front of every sub-message of an aggregate message,
/// and of the back-pointer after it.
const AGGREGATE_TAG_HEADER_LEN: usize = 11;
const AGGREGATE_BACK_POINTER_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemuxLimits {
    /// Largest message (declared length) accepted.
    pub max_message_bytes: u32,
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
            max_chunk_size: 0x00FF_FFFF,
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
    /// chunk header of the message that carried this frame.
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
    /// The first `publish` command; later ones are ignored.
    Publish {
        /// The publishing name as sent, `?query` included (see [`split_stream_key`]).
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
    /// VP8, unknown FourCC, Enhanced RTMP multitrack/ModEx). Reported once per session.
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
    #[error("message length {length} on chunk stream {csid} exceeds cap {cap} (at byte {offset})")]
    MessageTooLarge {
        length: u32,
        csid: u32,
        cap: u32,
        offset: u64,
    },
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
        "aggregate message at byte {offset}: sub-message at message offset {position} needs {needed} bytes, {remaining} left"
    )]
    AggregateTruncated {
        offset: u64,
        position: usize,
        needed: usize,
        remaining: usize,
    },
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
    published: bool,
    unsupported_reported: bool,
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
            published: false,
            unsupported_reported: false,
        }
    }

    pub fn limits(&self) -> DemuxLimits {
        self.limits
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
            MSG_AMF0_COMMAND => self.handle_command(&message.payload, 0, &message, events),
            MSG_AMF3_COMMAND | MSG_AMF3_DATA => {
                // AMF3-typed messages from publishers carry AMF0 after a 0x00 format byte.
                let skip = usize::from(message.payload.first() == Some(&0));
                let body = &message.payload[skip..];
                if message.type_id == MSG_AMF3_COMMAND {
                    self.handle_command(body, skip, &message, events)
                } else {
                    handle_data(body, skip, &message, events)
                }
            }
            MSG_AMF0_DATA => handle_data(&message.payload, 0, &message, events),
            MSG_VIDEO => {
                let dts = self.video_clock.unwrap(message.timestamp);
                self.handle_video(&message.payload, dts, message.start_offset, events)
            }
            MSG_AGGREGATE => self.handle_aggregate(&message, events),
            // Audio, acknowledgements, window sizes, user control, shared objects.
            _ => Ok(()),
        }
    }

    fn handle_command(
        &mut self,
        body: &[u8],
        base_offset: usize,
        message: &Message,
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        let amf_error = |source| DemuxError::Amf {
            message_type: message.type_id,
            offset: message.start_offset,
            source,
        };
        let mut decoder = Amf0Decoder::new(body, base_offset);
        let Amf0Value::String(name) = decoder.next_value().map_err(amf_error)? else {
            return Ok(());
        };
        let command = match name.as_str() {
            "connect" => "connect",
            "publish" if !self.published => "publish",
            _ => return Ok(()),
        };
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
                app: string_property("app")?.unwrap_or_default(),
                tc_url: string_property("tcUrl")?,
                flash_ver: string_property("flashVer")?,
                four_cc_list,
            });
        } else {
            let stream_key = match args.get(2) {
                Some(Amf0Value::String(s)) => s.clone(),
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
            self.published = true;
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
                events.push(DemuxEvent::VideoConfig { codec, extradata })
            }
            VideoTag::Frame {
                codec,
                keyframe,
                composition_time_ms,
                data,
            } => events.push(DemuxEvent::VideoFrame(VideoFrame {
                codec,
                keyframe,
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
            let type_id = header[0] & 0x1F;
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

/// `@setDataFrame("onMetaData", {...})` or `onMetaData({...})`; other data messages
/// are ignored.
fn handle_data(
    body: &[u8],
    base_offset: usize,
    message: &Message,
    events: &mut Vec<DemuxEvent>,
) -> Result<(), DemuxError> {
    let amf_error = |source| DemuxError::Amf {
        message_type: message.type_id,
        offset: message.start_offset,
        source,
    };
    let mut decoder = Amf0Decoder::new(body, base_offset);
    let mut name = decoder.next_value().map_err(amf_error)?;
    if name == Amf0Value::String("@setDataFrame".into()) {
        if decoder.is_empty() {
            return Ok(());
        }
        name = decoder.next_value().map_err(amf_error)?;
    }
    if name != Amf0Value::String("onMetaData".into()) || decoder.is_empty() {
        return Ok(());
    }
    let value = decoder.next_value().map_err(amf_error)?;
    if let Some(properties) = value.properties() {
        events.push(DemuxEvent::Metadata(metadata_from(properties)));
    }
    Ok(())
}

fn metadata_from(properties: &[(String, Amf0Value)]) -> StreamMetadata {
    let number = |key: &str| {
        properties.iter().find_map(|(k, v)| match v {
            Amf0Value::Number(n) if k == key => Some(*n),
            _ => None,
        })
    };
    let text = |key: &str| {
        properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| render(v))
    };
    let video_codec = properties
        .iter()
        .find(|(k, _)| k == "videocodecid")
        .map(|(_, v)| match v {
            Amf0Value::Number(n) => four_cc_text(*n).unwrap_or_else(|| render(v)),
            other => render(other),
        });
    StreamMetadata {
        width: number("width"),
        height: number("height"),
        framerate: number("framerate").or_else(|| number("fps")),
        video_codec,
        video_data_rate: number("videodatarate"),
        encoder: text("encoder"),
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
