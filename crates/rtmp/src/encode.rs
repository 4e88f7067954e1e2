//! A minimal RTMP *publisher-side* encoder: handshake, chunked messages, the AMF0
//! commands of a publish, FLV video tags and aggregate messages; a [`ChunkCrafter`] that
//! chooses every chunk header (fmt, what goes in fmt 3 extended-timestamp slots, which
//! chunk stream goes next) for attack sessions; and [`nginx`], a reference model of how
//! nginx-rtmp reads the chunk layer, for differential tests and fuzzing.
//!
//! livegate never writes RTMP on the relay path (bytes pass untouched); this exists to
//! generate load for `livegate-bench relay` and exact byte sequences for tests, so that
//! both speak the same, spec-conforming dialect as real encoders — or, with the crafter,
//! exactly the dialect an attacker chooses.

use std::collections::HashMap;

/// Chunk-stream ids the way ffmpeg assigns them: protocol control, commands, media.
pub const CSID_CONTROL: u32 = 2;
pub const CSID_COMMAND: u32 = 3;
pub const CSID_VIDEO: u32 = 6;

pub const TYPE_SET_CHUNK_SIZE: u8 = 1;
pub const TYPE_ABORT: u8 = 2;
pub const TYPE_AUDIO: u8 = 8;
pub const TYPE_VIDEO: u8 = 9;
pub const TYPE_COMMAND_AMF0: u8 = 20;
pub const TYPE_AGGREGATE: u8 = 22;

/// Size of C1 and C2.
pub const HANDSHAKE_PACKET_BYTES: usize = 1536;
/// Initial chunk size of every RTMP connection.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// A 24-bit timestamp field of this value means "see the 4-byte extended timestamp".
pub const EXTENDED_TIMESTAMP_MARK: u32 = 0x00FF_FFFF;

/// C0 + C1 + C2 of a plain (version 3) RTMP client, sent back to back.
pub fn client_handshake() -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 2 * HANDSHAKE_PACKET_BYTES);
    out.push(3);
    for packet in 0..2u8 {
        out.extend(
            (0..HANDSHAKE_PACKET_BYTES).map(|i| (i as u8).wrapping_mul(31).wrapping_add(packet)),
        );
    }
    out
}

/// Splits messages into chunks: a type-0 header, then type-3 continuations.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    chunk_size: usize,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        ChunkWriter {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkWriter {
    /// Writes a Set Chunk Size message and uses the new size for what follows.
    /// Values the protocol forbids (0, high bit) are written as given, for tests.
    pub fn set_chunk_size(&mut self, out: &mut Vec<u8>, size: u32) {
        self.write_message(
            out,
            CSID_CONTROL,
            0,
            TYPE_SET_CHUNK_SIZE,
            0,
            &size.to_be_bytes(),
        );
        if size > 0 && size <= 0x7FFF_FFFF {
            self.chunk_size = size as usize;
        }
    }

    pub fn write_message(
        &self,
        out: &mut Vec<u8>,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        let header = MessageHeader {
            timestamp,
            type_id,
            stream_id,
        };
        write_chunk_header(out, 0, csid, &header, payload.len());
        for (index, chunk) in payload.chunks(self.chunk_size.max(1)).enumerate() {
            if index > 0 {
                write_basic_header(out, 3, csid);
                // ffmpeg and librtmp repeat the extended timestamp on continuations.
                if timestamp >= EXTENDED_TIMESTAMP_MARK {
                    out.extend_from_slice(&timestamp.to_be_bytes());
                }
            }
            out.extend_from_slice(chunk);
        }
    }
}

/// The message-header fields of a chunk header. A fmt 0 header writes them all
/// (`timestamp` absolute), fmt 1 all but the stream id and fmt 2 only the timestamp
/// (`timestamp` is then the delta to the chunk stream's previous message); fmt 3 none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageHeader {
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
}

/// Writes a fmt 0, 1 or 2 chunk header for a message of `length` bytes, with the 4-byte
/// extended timestamp when `header.timestamp` does not fit the 24-bit field.
pub fn write_chunk_header(
    out: &mut Vec<u8>,
    fmt: u8,
    csid: u32,
    header: &MessageHeader,
    length: usize,
) {
    let extended = header.timestamp >= EXTENDED_TIMESTAMP_MARK;
    let field = if extended {
        EXTENDED_TIMESTAMP_MARK
    } else {
        header.timestamp
    };
    write_basic_header(out, fmt, csid);
    out.extend_from_slice(&field.to_be_bytes()[1..]);
    if fmt <= 1 {
        out.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
        out.push(header.type_id);
    }
    if fmt == 0 {
        out.extend_from_slice(&header.stream_id.to_le_bytes());
    }
    if extended {
        out.extend_from_slice(&header.timestamp.to_be_bytes());
    }
}

/// Per chunk stream, what the crafter knows the reader expects (nginx-rtmp's state).
#[derive(Debug, Default)]
struct CraftedStream {
    /// The extended timestamp of the header that started the last message, if it had
    /// one: then every fmt 3 chunk on this chunk stream has a 4-byte slot for it.
    extended: Option<[u8; 4]>,
    /// Payload bytes of the message in progress not written yet.
    pending: Vec<u8>,
}

/// A publisher's chunk layer under the test's full control: each message's first header
/// has a chosen fmt, the 4-byte extended-timestamp slot of each fmt 3 chunk holds chosen
/// bytes, and chunks of messages on different chunk streams interleave in any order.
///
/// The crafter writes a slot exactly where nginx-rtmp reads one (see [`nginx`]): after
/// every fmt 3 header of a chunk stream whose current message began with an extended
/// timestamp. What nginx-rtmp reads is therefore what the test meant to send; other
/// readers may read it differently, which is the point.
#[derive(Debug)]
pub struct ChunkCrafter {
    chunk_size: usize,
    streams: HashMap<u32, CraftedStream>,
}

impl Default for ChunkCrafter {
    fn default() -> Self {
        ChunkCrafter {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
        }
    }
}

impl ChunkCrafter {
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Whether a message on `csid` still has chunks to write.
    pub fn in_progress(&self, csid: u32) -> bool {
        self.streams
            .get(&csid)
            .is_some_and(|stream| !stream.pending.is_empty())
    }

    /// Starts a message on `csid` with a header of `fmt` and writes its first chunk.
    ///
    /// fmt 3 writes no header fields: the reader reuses the chunk stream's last length
    /// and type (the caller passes a payload of that length); if that chunk stream's
    /// last message began with an extended timestamp, the slot carries
    /// `header.timestamp`, which nginx-rtmp takes as this message's timestamp delta.
    pub fn start(
        &mut self,
        out: &mut Vec<u8>,
        fmt: u8,
        csid: u32,
        header: &MessageHeader,
        payload: &[u8],
    ) {
        let stream = self.streams.entry(csid).or_default();
        if fmt == 3 {
            write_basic_header(out, 3, csid);
            if stream.extended.is_some() {
                let slot = header.timestamp.to_be_bytes();
                out.extend_from_slice(&slot);
                stream.extended = Some(slot);
            }
        } else {
            write_chunk_header(out, fmt, csid, header, payload.len());
            stream.extended = (header.timestamp >= EXTENDED_TIMESTAMP_MARK)
                .then(|| header.timestamp.to_be_bytes());
        }
        let first = payload.len().min(self.chunk_size);
        out.extend_from_slice(&payload[..first]);
        stream.pending = payload[first..].to_vec();
    }

    /// Writes the next (fmt 3) chunk of the message in progress on `csid`, if any. Its
    /// extended-timestamp slot, when there is one, holds `slot`, or by default the
    /// message's extended timestamp again as FFmpeg and librtmp write it. Returns
    /// whether chunks remain after this one.
    pub fn next_chunk(&mut self, out: &mut Vec<u8>, csid: u32, slot: Option<[u8; 4]>) -> bool {
        let chunk_size = self.chunk_size;
        let Some(stream) = self.streams.get_mut(&csid) else {
            return false;
        };
        if stream.pending.is_empty() {
            return false;
        }
        write_basic_header(out, 3, csid);
        if let Some(repeat) = stream.extended {
            out.extend_from_slice(&slot.unwrap_or(repeat));
        }
        let n = stream.pending.len().min(chunk_size);
        out.extend(stream.pending.drain(..n));
        !stream.pending.is_empty()
    }

    /// A whole message, its chunks back to back; every continuation slot holds `slot`
    /// (by default the repeated extended timestamp).
    pub fn message(
        &mut self,
        out: &mut Vec<u8>,
        fmt: u8,
        csid: u32,
        header: &MessageHeader,
        payload: &[u8],
        slot: Option<[u8; 4]>,
    ) {
        self.start(out, fmt, csid, header, payload);
        while self.next_chunk(out, csid, slot) {}
    }

    /// Set Chunk Size as one fmt 0 message on [`CSID_CONTROL`]; the new size applies to
    /// every chunk written after it, on every chunk stream (messages in progress too).
    pub fn set_chunk_size(&mut self, out: &mut Vec<u8>, size: u32) {
        let header = MessageHeader {
            timestamp: 0,
            type_id: TYPE_SET_CHUNK_SIZE,
            stream_id: 0,
        };
        self.message(out, 0, CSID_CONTROL, &header, &size.to_be_bytes(), None);
        if size > 0 && size <= 0x7FFF_FFFF {
            self.chunk_size = size as usize;
        }
    }
}

/// One sub-message of an aggregate message.
#[derive(Debug, Clone, Copy)]
pub struct AggregatePart<'a> {
    pub type_id: u8,
    pub timestamp: u32,
    pub body: &'a [u8],
}

/// The body of an aggregate message (type 22): each part as an FLV tag — type, 24-bit
/// size, timestamp (24 bits + 8 high bits), stream id 0 — then its body and the 4-byte
/// size of the tag. Readers take the parts' timestamps relative to the first part's.
pub fn aggregate(parts: &[AggregatePart<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let size = part.body.len() as u32;
        let timestamp = part.timestamp.to_be_bytes();
        out.push(part.type_id);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&timestamp[1..]);
        out.push(timestamp[0]);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(part.body);
        out.extend_from_slice(&(11 + size).to_be_bytes());
    }
    out
}

/// The 1-, 2- or 3-byte basic header for chunk stream `csid` (2..=65599).
pub fn write_basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        0..=63 => out.push(fmt | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt, (csid - 64) as u8]),
        _ => {
            let id = csid - 64;
            out.extend_from_slice(&[fmt | 1, (id & 0xFF) as u8, (id >> 8) as u8]);
        }
    }
}

/// AMF0 values a publisher's commands use.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0<'a> {
    Number(f64),
    Boolean(bool),
    String(&'a str),
    Object(Vec<(&'a str, Amf0<'a>)>),
    Null,
}

impl Amf0<'_> {
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Amf0::Number(value) => {
                out.push(0x00);
                out.extend_from_slice(&value.to_be_bytes());
            }
            Amf0::Boolean(value) => out.extend_from_slice(&[0x01, u8::from(*value)]),
            Amf0::String(value) => {
                out.push(0x02);
                write_short_string(out, value);
            }
            Amf0::Object(properties) => {
                out.push(0x03);
                for (name, value) in properties {
                    write_short_string(out, name);
                    value.write(out);
                }
                out.extend_from_slice(&[0x00, 0x00, 0x09]);
            }
            Amf0::Null => out.push(0x05),
        }
    }
}

fn write_short_string(out: &mut Vec<u8>, value: &str) {
    let bytes = &value.as_bytes()[..value.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// An AMF0 command message body: name, transaction id, then arguments.
pub fn command(name: &str, transaction: f64, arguments: &[Amf0<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    Amf0::String(name).write(&mut out);
    Amf0::Number(transaction).write(&mut out);
    for argument in arguments {
        argument.write(&mut out);
    }
    out
}

/// Everything a publisher sends before media: handshake, connect, createStream, publish.
/// (A real client waits for the server's replies in between; a relay test need not.)
pub fn publish_preamble(writer: &ChunkWriter, app: &str, stream_key: &str) -> Vec<u8> {
    let mut out = client_handshake();
    out.extend(publish_commands(writer, app, stream_key));
    out
}

/// connect, createStream and publish (on message stream 1), as chunks.
pub fn publish_commands(writer: &ChunkWriter, app: &str, stream_key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let tc_url = format!("rtmp://127.0.0.1/{app}");
    let connect = command(
        "connect",
        1.0,
        &[Amf0::Object(vec![
            ("app", Amf0::String(app)),
            ("type", Amf0::String("nonprivate")),
            ("flashVer", Amf0::String("FMLE/3.0 (compatible; livegate)")),
            ("tcUrl", Amf0::String(&tc_url)),
        ])],
    );
    writer.write_message(&mut out, CSID_COMMAND, 0, TYPE_COMMAND_AMF0, 0, &connect);
    let create_stream = command("createStream", 2.0, &[Amf0::Null]);
    writer.write_message(
        &mut out,
        CSID_COMMAND,
        0,
        TYPE_COMMAND_AMF0,
        0,
        &create_stream,
    );
    let publish = command(
        "publish",
        3.0,
        &[Amf0::Null, Amf0::String(stream_key), Amf0::String("live")],
    );
    writer.write_message(&mut out, CSID_COMMAND, 0, TYPE_COMMAND_AMF0, 1, &publish);
    out
}

/// FLV frame type 1 (keyframe) or 2 (inter frame).
fn frame_type(keyframe: bool) -> u8 {
    if keyframe { 1 } else { 2 }
}

/// The low 24 bits of `value`, big-endian (FLV's SI24 composition time).
fn si24(value: i32) -> [u8; 3] {
    let bytes = value.to_be_bytes();
    [bytes[1], bytes[2], bytes[3]]
}

/// Legacy FLV CodecID of AVC.
pub const LEGACY_CODEC_AVC: u8 = 7;
/// Legacy FLV CodecID 12: the pre-Enhanced-RTMP HEVC extension some encoders send.
pub const LEGACY_CODEC_HEVC: u8 = 12;

/// A legacy FLV video tag body of `codec_id` (AVC or HEVC): frame type, AVCPacketType
/// (0 configuration record, 1 NAL units, 2 end of sequence), composition time, `body`.
pub fn legacy_video_tag(
    codec_id: u8,
    keyframe: bool,
    packet_type: u8,
    composition_time_ms: i32,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push((frame_type(keyframe) << 4) | codec_id);
    out.push(packet_type);
    out.extend_from_slice(&si24(composition_time_ms));
    out.extend_from_slice(body);
    out
}

/// A legacy FLV AVC video tag body: frame type, AVCPacketType 1 (NALUs), composition
/// time 0, then `nalus` as given.
pub fn avc_video_tag(keyframe: bool, nalus: &[u8]) -> Vec<u8> {
    legacy_video_tag(LEGACY_CODEC_AVC, keyframe, 1, 0, nalus)
}

/// An Enhanced RTMP (veovera v1/v2) VideoPacketType, with what its header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExVideoPacket {
    /// 0: the decoder configuration record (avcC, hvcC, av1C, vpcC).
    SequenceStart,
    /// 1: coded frames; for `avc1`/`hvc1` an SI24 composition time precedes them
    /// (`None` writes none: the form of `av01` and `vp09`).
    CodedFrames { composition_time_ms: Option<i32> },
    /// 2: end of sequence, no body.
    SequenceEnd,
    /// 3: coded frames whose composition time is implicitly zero.
    CodedFramesX,
    /// 4: AMF-encoded metadata (e.g. colorInfo).
    Metadata,
    /// 5: an AV1 MPEG-2 TS video descriptor instead of av1C.
    Mpeg2TsSequenceStart,
}

impl ExVideoPacket {
    fn code(self) -> u8 {
        match self {
            ExVideoPacket::SequenceStart => 0,
            ExVideoPacket::CodedFrames { .. } => 1,
            ExVideoPacket::SequenceEnd => 2,
            ExVideoPacket::CodedFramesX => 3,
            ExVideoPacket::Metadata => 4,
            ExVideoPacket::Mpeg2TsSequenceStart => 5,
        }
    }
}

/// An Enhanced RTMP video tag body: `[IsExHeader | FrameType | PacketType]`, the
/// FourCC, the composition time if `packet` has one, then `body`.
pub fn ex_video_tag(
    packet: ExVideoPacket,
    keyframe: bool,
    four_cc: &[u8; 4],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.push(0x80 | (frame_type(keyframe) << 4) | packet.code());
    out.extend_from_slice(four_cc);
    if let ExVideoPacket::CodedFrames {
        composition_time_ms: Some(composition),
    } = packet
    {
        out.extend_from_slice(&si24(composition));
    }
    out.extend_from_slice(body);
    out
}

/// One coded frame as an Enhanced RTMP encoder packs it: for `avc1`/`hvc1`,
/// CodedFramesX when the composition time is zero and CodedFrames with it otherwise
/// (what OBS and FFmpeg 7 send, so B-frame streams mix both forms); other FourCCs
/// have no composition time and use CodedFrames.
pub fn ex_coded_frame(
    four_cc: &[u8; 4],
    keyframe: bool,
    composition_time_ms: i32,
    data: &[u8],
) -> Vec<u8> {
    let packet = match four_cc {
        b"avc1" | b"hvc1" if composition_time_ms == 0 => ExVideoPacket::CodedFramesX,
        b"avc1" | b"hvc1" => ExVideoPacket::CodedFrames {
            composition_time_ms: Some(composition_time_ms),
        },
        _ => ExVideoPacket::CodedFrames {
            composition_time_ms: None,
        },
    };
    ex_video_tag(packet, keyframe, four_cc, data)
}

/// How nginx-rtmp (arut/nginx-rtmp-module 1.2, `ngx_rtmp_recv` with its defaults:
/// `publish_time_fix on`, `max_streams 32`, `max_message 1m`) reads a publisher's chunk
/// stream, written out plainly so that livegate's reader can be checked against it.
///
/// Per chunk stream nginx-rtmp keeps the last header's fields, a delta `dtime`, the
/// bytes received of the current message, and `ext`: whether the header that *started*
/// the current message had an extended timestamp (a fmt 0–2 header with the 24-bit
/// field at 0xFFFFFF; a fmt 3 header starting a message inherits the previous value).
/// Then, for every chunk:
///
/// - fmt 0–2 read their fields; `ext` for this chunk is "field == 0xFFFFFF".
/// - If `ext` (for fmt 3: the chunk stream's remembered `ext`), 4 more bytes are read
///   and replace the timestamp/delta — on every fmt 3 chunk, continuation or not.
/// - A chunk that starts a message remembers `ext`; fmt 0 sets the timestamp and a
///   delta of 0, fmt 1–3 set the delta to the value read (fmt 3 without `ext`: the
///   delta stays). The message's timestamp is the previous one plus the delta.
/// - The chunk's payload is `min(chunk size, bytes left)`.
///
/// Where nginx-rtmp's reading depends on things a relay cannot see (how its reads were
/// split) or is not what other servers do, the model stops with an
/// [`Ambiguity`](nginx::Ambiguity) that livegate must refuse; where livegate may refuse
/// but need not, it notes the point.
pub mod nginx {
    use std::collections::HashMap;

    use super::{EXTENDED_TIMESTAMP_MARK, TYPE_ABORT, TYPE_AGGREGATE, TYPE_SET_CHUNK_SIZE};

    /// `max_streams`: a chunk stream id at or above it closes the session.
    pub const MAX_STREAMS: u32 = 32;
    /// `max_message`: a longer declared message closes the session.
    pub const MAX_MESSAGE: u32 = 1024 * 1024;
    /// `NGX_RTMP_MAX_CHUNK_SIZE`: a larger Set Chunk Size is ignored.
    pub const MAX_CHUNK_SIZE: u32 = 10_485_760;

    /// A message as nginx-rtmp hands it to its modules (Set Chunk Size and Abort are
    /// consumed by the chunk layer, as livegate's `ChunkReader` does, and not listed).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct NginxMessage {
        pub type_id: u8,
        pub stream_id: u32,
        pub timestamp: u32,
        pub payload: Vec<u8>,
        /// Offset (in the bytes given to [`read`]) of the header that started it.
        pub start_offset: usize,
    }

    /// Bytes nginx-rtmp reads one way and other servers (or nginx-rtmp itself, on other
    /// read boundaries) another.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Ambiguity {
        /// fmt 0–2 while a message is in progress on that chunk stream: nginx-rtmp takes
        /// the new length and type but keeps the bytes received.
        HeaderMidMessage,
        /// fmt 1–3 on a chunk stream no fmt 0 header opened: nginx-rtmp reads zeroes.
        NoPreviousHeader,
        /// Abort of a chunk stream with a message in progress: nginx-rtmp ignores it,
        /// the specification drops the partial message.
        AbortMidMessage,
        /// Set Chunk Size lowering the size: nginx-rtmp moves bytes it already read past
        /// it into a smaller buffer, dropping what does not fit.
        ChunkSizeLowered,
        /// Set Chunk Size 0 (nginx-rtmp stops making progress) or above
        /// [`MAX_CHUNK_SIZE`] (ignored; the specification would apply it).
        ChunkSizeInvalid,
        /// An aggregate message with a part nginx-rtmp acts on other than audio and
        /// video: its aggregate handler passes each part to the handlers of its type, so
        /// a Set Chunk Size, a command or another aggregate inside one takes effect.
        /// livegate's demuxer (not its chunk reader) must refuse it.
        NonMediaInAggregate,
    }

    /// Points where livegate may refuse the stream but need not.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Optional {
        /// A continuation chunk's extended-timestamp slot does not repeat the message's
        /// extended timestamp: nginx-rtmp skips it, SRS reads it as payload.
        ExtendedSlotDiffers,
        /// A Set Chunk Size or Abort shorter than 4 bytes: nginx-rtmp ignores it.
        ShortControlMessage,
        /// Set Chunk Size above livegate's cap (but one nginx-rtmp applies).
        ChunkSizeAboveCap,
        /// A header livegate must refuse, cut short by the end of the input: a reader may
        /// refuse it already or wait for the rest.
        HeaderCutShort,
    }

    /// Why nginx-rtmp's reading ended before the bytes did.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Stop {
        /// livegate must refuse here.
        Ambiguous { what: Ambiguity, offset: usize },
        /// nginx-rtmp closes the session here (chunk stream id or message length above
        /// its limits): nothing after reaches it, whatever livegate does.
        Closed { offset: usize },
    }

    /// What nginx-rtmp read.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Reading {
        pub messages: Vec<NginxMessage>,
        /// `(offset, messages completed before it, what)` for each point where livegate
        /// may refuse the stream.
        pub optional: Vec<(usize, usize, Optional)>,
        pub stop: Option<Stop>,
        /// Offset of the first byte not read (a chunk cut short by the end of input).
        pub consumed: usize,
    }

    #[derive(Debug, Default)]
    struct Stream {
        opened: bool,
        ext: bool,
        /// The 4 bytes read in the extended slot of the header that started the current
        /// message (what FFmpeg repeats on its continuations).
        first_extended: [u8; 4],
        dtime: u32,
        timestamp: u32,
        length: u32,
        type_id: u8,
        stream_id: u32,
        payload: Vec<u8>,
        start_offset: usize,
    }

    /// Reads `data` (the publisher's bytes after C0/C1/C2) as nginx-rtmp does. A
    /// Set Chunk Size above `livegate_chunk_cap` is noted as an optional refusal point.
    pub fn read(data: &[u8], livegate_chunk_cap: u32) -> Reading {
        let mut reading = Reading::default();
        let mut streams: HashMap<u32, Stream> = HashMap::new();
        let mut chunk_size = super::DEFAULT_CHUNK_SIZE as u32;
        let mut at = 0;
        loop {
            reading.consumed = at;
            let start = at;
            let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
                let bytes = data.get(*at..*at + n)?;
                *at += n;
                Some(bytes)
            };
            let Some(&[first]) = take(&mut at, 1) else {
                return reading;
            };
            let fmt = first >> 6;
            let csid = match first & 0x3F {
                0 => match take(&mut at, 1) {
                    Some(b) => 64 + u32::from(b[0]),
                    None => return reading,
                },
                1 => match take(&mut at, 2) {
                    Some(b) => 64 + u32::from(b[0]) + 256 * u32::from(b[1]),
                    None => return reading,
                },
                id => u32::from(id),
            };
            let stop = |what| {
                Some(Stop::Ambiguous {
                    what,
                    offset: start,
                })
            };
            if csid >= MAX_STREAMS {
                reading.stop = Some(Stop::Closed { offset: start });
                return reading;
            }
            let stream = streams.entry(csid).or_default();
            let in_progress = !stream.payload.is_empty() && stream.length != 0;
            let ambiguity = if !stream.opened && fmt != 0 {
                Some(Ambiguity::NoPreviousHeader)
            } else if in_progress && fmt <= 2 {
                Some(Ambiguity::HeaderMidMessage)
            } else {
                None
            };
            if let Some(what) = ambiguity {
                // Cut short by the end of the input, the header may or may not be
                // refused yet (a reader may wait for all of it).
                if header_complete(&data[at..], fmt) {
                    reading.stop = stop(what);
                } else {
                    let done = reading.messages.len();
                    reading
                        .optional
                        .push((start, done, Optional::HeaderCutShort));
                }
                return reading;
            }
            let mut ext = stream.ext;
            let mut timestamp = stream.dtime;
            let mut length = stream.length;
            let mut type_id = stream.type_id;
            let mut stream_id = stream.stream_id;
            if fmt <= 2 {
                let Some(field) = take(&mut at, 3) else {
                    return reading;
                };
                timestamp = be24(field);
                ext = timestamp == EXTENDED_TIMESTAMP_MARK;
                if fmt <= 1 {
                    let Some(fields) = take(&mut at, 4) else {
                        return reading;
                    };
                    length = be24(fields);
                    type_id = fields[3];
                }
                if fmt == 0 {
                    let Some(id) = take(&mut at, 4) else {
                        return reading;
                    };
                    stream_id = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
                }
            }
            let mut slot = [0u8; 4];
            if ext {
                let Some(bytes) = take(&mut at, 4) else {
                    return reading;
                };
                slot.copy_from_slice(bytes);
                timestamp = u32::from_be_bytes(slot);
                if fmt == 3 && in_progress && slot != stream.first_extended {
                    let done = reading.messages.len();
                    reading
                        .optional
                        .push((start, done, Optional::ExtendedSlotDiffers));
                }
            }
            if length > MAX_MESSAGE {
                reading.stop = Some(Stop::Closed { offset: start });
                return reading;
            }
            let received = if in_progress { stream.payload.len() } else { 0 };
            let n = (length as usize - received).min(chunk_size as usize);
            let Some(bytes) = take(&mut at, n) else {
                return reading;
            };
            // The chunk is complete: only now is it applied (a chunk cut short by the
            // end of input changes nothing).
            stream.opened = true;
            if !in_progress {
                stream.ext = ext;
                stream.first_extended = slot;
                stream.start_offset = start;
                stream.payload.clear();
                if fmt == 0 {
                    stream.timestamp = timestamp;
                    stream.dtime = 0;
                } else {
                    stream.dtime = timestamp;
                }
            }
            (stream.length, stream.type_id, stream.stream_id) = (length, type_id, stream_id);
            stream.payload.extend_from_slice(bytes);
            if stream.payload.len() < length as usize {
                continue;
            }
            stream.timestamp = stream.timestamp.wrapping_add(stream.dtime);
            let message = NginxMessage {
                type_id,
                stream_id,
                timestamp: stream.timestamp,
                payload: std::mem::take(&mut stream.payload),
                start_offset: stream.start_offset,
            };
            let done = reading.messages.len();
            let value = message
                .payload
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            match (message.type_id, value) {
                (TYPE_SET_CHUNK_SIZE | TYPE_ABORT, None) => {
                    reading
                        .optional
                        .push((start, done, Optional::ShortControlMessage));
                }
                (TYPE_SET_CHUNK_SIZE, Some(size)) => {
                    if size == 0 || size > MAX_CHUNK_SIZE {
                        reading.stop = stop(Ambiguity::ChunkSizeInvalid);
                        return reading;
                    }
                    if size < chunk_size {
                        reading.stop = stop(Ambiguity::ChunkSizeLowered);
                        return reading;
                    }
                    if size > livegate_chunk_cap {
                        reading
                            .optional
                            .push((start, done, Optional::ChunkSizeAboveCap));
                    }
                    chunk_size = size;
                }
                (TYPE_ABORT, Some(aborted)) => {
                    let partial = streams
                        .get(&aborted)
                        .is_some_and(|s| !s.payload.is_empty() && s.length != 0);
                    if partial {
                        reading.stop = stop(Ambiguity::AbortMidMessage);
                        return reading;
                    }
                }
                (TYPE_AGGREGATE, _) if acting_part(&message.payload) => {
                    reading.stop = stop(Ambiguity::NonMediaInAggregate);
                    return reading;
                }
                _ => reading.messages.push(message),
            }
        }
    }

    /// Whether nginx-rtmp's aggregate handler would hand a part of `body` other than
    /// audio or video to a handler (types with none, above 22 or 7 and 10–14, do nothing).
    /// Parts are read as it reads them: an 11-byte header (full-byte type, 24-bit size),
    /// the body, and at least one more byte (the back pointer) or it stops with an error.
    fn acting_part(body: &[u8]) -> bool {
        let mut at = 0;
        while let Some(header) = body.get(at..at + 11) {
            let size = be24(&header[1..4]) as usize;
            if body.len() <= at + 11 + size {
                return false;
            }
            if matches!(header[0], 1..=6 | 15..=20 | 22) {
                return true;
            }
            at += 11 + size + 4;
        }
        false
    }

    /// Whether `rest` (what follows a basic header of `fmt`) holds the whole message
    /// header, and the extended timestamp its timestamp field calls for (a fmt 3 header
    /// where this is asked for has none: no message began on its chunk stream).
    fn header_complete(rest: &[u8], fmt: u8) -> bool {
        let fields = [11, 7, 3, 0][usize::from(fmt)];
        let extended = rest
            .get(..3)
            .is_some_and(|field| be24(field) == EXTENDED_TIMESTAMP_MARK);
        let needed = if fmt <= 2 && extended {
            fields + 4
        } else {
            fields
        };
        rest.len() >= needed
    }

    fn be24(b: &[u8]) -> u32 {
        (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_forms() {
        let mut out = Vec::new();
        write_basic_header(&mut out, 0, 3);
        write_basic_header(&mut out, 3, 64);
        write_basic_header(&mut out, 1, 320);
        assert_eq!(out, [0x03, 0xC0, 0x00, 0x41, 0x00, 0x01]);
    }

    #[test]
    fn long_message_is_split_with_continuations() {
        let writer = ChunkWriter::default();
        let mut out = Vec::new();
        writer.write_message(&mut out, 6, 40, TYPE_VIDEO, 1, &[7u8; 300]);
        // 12-byte header + 128 + (1 + 128) + (1 + 44)
        assert_eq!(out.len(), 12 + 300 + 2);
        assert_eq!(out[12 + 128], 0xC6);
        assert_eq!(&out[1..4], &[0, 0, 40]);
        assert_eq!(&out[4..7], &[0, 1, 44]);
    }

    #[test]
    fn extended_timestamp_is_repeated_on_continuations() {
        let writer = ChunkWriter::default();
        let mut out = Vec::new();
        writer.write_message(&mut out, 6, 0x0100_0000, TYPE_VIDEO, 1, &[0u8; 130]);
        assert_eq!(&out[1..4], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(&out[12..16], &[1, 0, 0, 0]);
        assert_eq!(&out[16 + 128..16 + 128 + 5], &[0xC6, 1, 0, 0, 0]);
    }

    #[test]
    fn amf0_object_encoding() {
        let mut out = Vec::new();
        Amf0::Object(vec![("a", Amf0::Boolean(true))]).write(&mut out);
        assert_eq!(out, [0x03, 0, 1, b'a', 0x01, 1, 0, 0, 9]);
    }

    fn video(timestamp: u32) -> MessageHeader {
        MessageHeader {
            timestamp,
            type_id: TYPE_VIDEO,
            stream_id: 1,
        }
    }

    #[test]
    fn garbage_in_continuation_slots_is_skipped_by_nginx() {
        let payload: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let mut crafter = ChunkCrafter::default();
        let mut out = Vec::new();
        crafter.message(
            &mut out,
            0,
            6,
            &video(0x0100_0000),
            &payload,
            Some(*b"JUNK"),
        );
        // 16-byte header, 128 bytes, then fmt 3 + slot + 128, fmt 3 + slot + 44.
        assert_eq!(out.len(), 16 + 300 + 2 * 5);
        assert_eq!(&out[16 + 128..16 + 128 + 5], b"\xC6JUNK");
        let reading = nginx::read(&out, u32::MAX);
        assert_eq!(reading.stop, None);
        assert_eq!(reading.messages.len(), 1);
        assert_eq!(reading.messages[0].payload, payload);
        assert_eq!(reading.messages[0].timestamp, 0x0100_0000);
        let differs: Vec<_> = reading.optional.iter().map(|point| point.0).collect();
        assert_eq!(differs, [16 + 128, 16 + 128 + 5 + 128]);
    }

    #[test]
    fn nginx_timestamps_after_extended_headers() {
        let mut crafter = ChunkCrafter::default();
        let mut out = Vec::new();
        crafter.message(&mut out, 0, 6, &video(0x0100_0000), &[1; 10], None);
        // fmt 3 after an extended fmt 0: the slot is the delta (nginx-rtmp).
        crafter.message(&mut out, 3, 6, &video(40), &[2; 10], None);
        // fmt 1 with a small delta: no slot any more, fmt 3 then repeats that delta.
        crafter.message(&mut out, 1, 6, &video(33), &[3; 10], None);
        crafter.message(&mut out, 3, 6, &video(0), &[4; 10], None);
        crafter.message(&mut out, 2, 6, &video(0x0100_0000), &[5; 10], None);
        let reading = nginx::read(&out, u32::MAX);
        let timestamps: Vec<_> = reading.messages.iter().map(|m| m.timestamp).collect();
        assert_eq!(
            timestamps,
            [
                0x0100_0000,
                0x0100_0028,
                0x0100_0049,
                0x0100_006A,
                0x0200_006A
            ]
        );
        assert!(reading.optional.is_empty() && reading.stop.is_none());
    }

    #[test]
    fn interleaved_chunk_streams_and_chunk_size_changes() {
        let mut crafter = ChunkCrafter::default();
        let mut out = Vec::new();
        let (video_payload, audio_payload) = (vec![9u8; 500], vec![8u8; 200]);
        crafter.start(&mut out, 0, 6, &video(0x0123_4567), &video_payload);
        let audio = MessageHeader {
            timestamp: 5,
            type_id: TYPE_AUDIO,
            stream_id: 1,
        };
        crafter.start(&mut out, 0, 4, &audio, &audio_payload);
        crafter.next_chunk(&mut out, 6, None);
        crafter.set_chunk_size(&mut out, 1000);
        assert_eq!(crafter.chunk_size(), 1000);
        while crafter.next_chunk(&mut out, 4, None) || crafter.next_chunk(&mut out, 6, None) {}
        assert!(!crafter.in_progress(6) && !crafter.in_progress(4));
        let reading = nginx::read(&out, u32::MAX);
        let read: Vec<_> = reading
            .messages
            .iter()
            .map(|m| (m.type_id, m.timestamp, m.payload.len()))
            .collect();
        assert_eq!(read, [(TYPE_AUDIO, 5, 200), (TYPE_VIDEO, 0x0123_4567, 500)]);
        assert_eq!(reading.consumed, out.len());
    }

    #[test]
    fn nginx_model_stops_where_readers_disagree() {
        type Craft<'a> = &'a dyn Fn(&mut ChunkCrafter, &mut Vec<u8>);
        let header = video(0);
        let cases: [(Craft<'_>, nginx::Ambiguity); 5] = [
            (
                &|c, out| {
                    c.set_chunk_size(out, 4096);
                    c.set_chunk_size(out, 1000);
                },
                nginx::Ambiguity::ChunkSizeLowered,
            ),
            (
                &|c, out| {
                    c.start(out, 0, 6, &header, &[0; 300]);
                    c.start(out, 1, 6, &header, &[0; 10]);
                },
                nginx::Ambiguity::HeaderMidMessage,
            ),
            (
                &|c, out| c.start(out, 3, 7, &header, &[]),
                nginx::Ambiguity::NoPreviousHeader,
            ),
            (
                &|c, out| {
                    c.start(out, 0, 6, &header, &[0; 300]);
                    let abort = MessageHeader {
                        type_id: TYPE_ABORT,
                        ..header
                    };
                    c.message(out, 0, CSID_CONTROL, &abort, &6u32.to_be_bytes(), None);
                },
                nginx::Ambiguity::AbortMidMessage,
            ),
            (
                &|c, out| {
                    let hidden = aggregate(&[AggregatePart {
                        type_id: TYPE_SET_CHUNK_SIZE,
                        timestamp: 0,
                        body: &4096u32.to_be_bytes(),
                    }]);
                    let header = MessageHeader {
                        type_id: TYPE_AGGREGATE,
                        ..header
                    };
                    c.message(out, 0, 6, &header, &hidden, None);
                },
                nginx::Ambiguity::NonMediaInAggregate,
            ),
        ];
        for (craft, expected) in cases {
            let mut out = Vec::new();
            craft(&mut ChunkCrafter::default(), &mut out);
            let reading = nginx::read(&out, u32::MAX);
            assert!(
                matches!(reading.stop, Some(nginx::Stop::Ambiguous { what, .. }) if what == expected),
                "{expected:?}: {reading:?}"
            );
        }
        // The same fmt 1 header cut short by the end of the input: a reader may refuse
        // it already or wait for the rest.
        let mut out = Vec::new();
        let mut crafter = ChunkCrafter::default();
        crafter.start(&mut out, 0, 6, &header, &[0; 300]);
        let cut_at = out.len();
        crafter.start(&mut out, 1, 6, &header, &[0; 10]);
        let reading = nginx::read(&out[..cut_at + 3], u32::MAX);
        assert_eq!(reading.stop, None);
        assert_eq!(
            reading.optional,
            [(cut_at, 0, nginx::Optional::HeaderCutShort)]
        );
        let mut out = Vec::new();
        ChunkCrafter::default().message(&mut out, 0, 40, &header, &[1], None);
        assert_eq!(
            nginx::read(&out, u32::MAX).stop,
            Some(nginx::Stop::Closed { offset: 0 })
        );
    }

    #[test]
    fn aggregate_parts_are_flv_tags() {
        let body = aggregate(&[AggregatePart {
            type_id: TYPE_VIDEO,
            timestamp: 0x0102_0304,
            body: &[0x27, 1],
        }]);
        assert_eq!(
            body,
            [9, 0, 0, 2, 2, 3, 4, 1, 0, 0, 0, 0x27, 1, 0, 0, 0, 13]
        );
    }
}
