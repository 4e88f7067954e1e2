//! The RTMP chunk layer (publisher → server direction): chunk headers of fmt 0–3,
//! 1/2/3-byte chunk stream ids, extended timestamps, message reassembly, Set Chunk Size
//! and Abort. Every other message is handed up whole.
//!
//! Input may arrive split anywhere: header bytes are staged in a small fixed buffer,
//! payload bytes are copied once, straight from the caller's slice into the message
//! being reassembled.
//!
//! The reader follows nginx-rtmp's `ngx_rtmp_recv` (the origin livegate is tested
//! against) byte for byte, and refuses the stream — an error naming the offset — where
//! RTMP servers read the same bytes differently and no choice is safe for every origin.
//! A publisher who knows livegate is there can otherwise show the origin other frames
//! than livegate inspects. The ambiguities and the choices made:
//!
//! | bytes | nginx-rtmp | others | livegate |
//! |---|---|---|---|
//! | fmt 3 chunk on a chunk stream whose message began with an extended timestamp | always skips 4 bytes | SRS: skips them only if they equal the timestamp, else payload | reads the 4 bytes; on a continuation chunk they must equal the message's first extended timestamp, else refused |
//! | fmt 3 header starting a new message after an extended timestamp | its 4 bytes are the new delta | | as nginx-rtmp |
//! | fmt 3 starting a message | adds the last fmt 1/2 delta, nothing after fmt 0 | | as nginx-rtmp |
//! | fmt 0–2 header in the middle of a message | overwrites length/type, keeps the bytes received | spec: undefined | refused |
//! | fmt 1–3 on a chunk stream never opened by fmt 0 | reads zeroed state | | refused |
//! | Set Chunk Size lowering the size | may drop bytes already read past it (buffer shrinks) | | refused |
//! | Set Chunk Size above 10 MiB (incl. ≥ 2^31) | ignores it, keeps the old size | | refused (default cap 10 MiB) |
//! | Set Chunk Size 0, or a control message shorter than 4 bytes | loops / ignores it | | refused |
//! | Abort in the middle of a message | ignored (keeps reassembling) | spec: drop the partial message | refused (accepted between messages) |
//! | message stream id of media | ignored (one stream per connection) | | ignored: video on any message stream is inspected |
//! | chunk stream id ≥ 32 (`max_streams`) | closes the session | | accepted up to [`DemuxLimits::max_chunk_streams`] ids |
//!
//! Timestamps follow nginx-rtmp: a fmt 3 header that starts a message adds the delta
//! of the stream's last fmt 1/2 header, or nothing after a fmt 0 header.
//!
//! Messages other than audio, video and aggregates (commands, data, control) are small:
//! [`ChunkReader::held_from`] tells the relay where the oldest incomplete one begins, so
//! that it holds those bytes until the message is parsed; an unparseable command then
//! never reaches the origin, not even in part.

use std::collections::HashMap;

use bytes::Bytes;

use super::demux::{DemuxError, DemuxLimits};

/// Chunk size every RTMP connection starts with.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Longest chunk header: 3-byte basic header, 11-byte message header, extended timestamp.
const MAX_HEADER_LEN: usize = 3 + 11 + 4;
const EXTENDED_TIMESTAMP_MARK: u32 = 0x00FF_FFFF;

const MSG_SET_CHUNK_SIZE: u8 = 1;
const MSG_ABORT: u8 = 2;
const MSG_AUDIO: u8 = 8;
const MSG_VIDEO: u8 = 9;
const MSG_AGGREGATE: u8 = 22;

/// Media messages stream through the relay as they arrive; every other message is held
/// until it is complete and parsed.
fn is_media(type_id: u8) -> bool {
    matches!(type_id, MSG_AUDIO | MSG_VIDEO | MSG_AGGREGATE)
}

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub type_id: u8,
    pub stream_id: u32,
    /// The 32-bit RTMP timestamp (wraps around).
    pub timestamp: u32,
    pub payload: Bytes,
    /// Stream offset of the first byte of the chunk header that started this message.
    pub start_offset: u64,
}

#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    /// The delta a fmt 3 header that starts a new message adds (nginx-rtmp semantics:
    /// 0 after a fmt 0 header).
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The extended timestamp of the header that started the current (or last)
    /// message, if it had one: every fmt 3 chunk then carries 4 more header bytes.
    extended_timestamp: Option<u32>,
    /// The message being reassembled; `None` between messages.
    partial: Option<PartialMessage>,
}

#[derive(Debug)]
struct PartialMessage {
    payload: Vec<u8>,
    start_offset: u64,
}

#[derive(Debug, Clone, Copy)]
enum ReadState {
    Header,
    Payload { csid: u32, remaining: usize },
}

/// Sans-IO chunk stream reader.
#[derive(Debug)]
pub struct ChunkReader {
    limits: DemuxLimits,
    chunk_size: u32,
    streams: HashMap<u32, ChunkStream>,
    /// Sum of the declared lengths of messages being reassembled (their allocations).
    buffered: usize,
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    header_start: u64,
    state: ReadState,
    /// Stream offset of the next byte to be consumed.
    offset: u64,
    /// Media messages are held until whole too (gate mode): every release point is
    /// then a message boundary.
    hold_media: bool,
}

/// What the staged header bytes say so far.
enum HeaderProgress {
    /// At least this many bytes are needed in total.
    Need(usize),
    /// The header is complete and `len` bytes long.
    Complete(ParsedHeader),
}

#[derive(Debug, Clone, Copy)]
struct ParsedHeader {
    fmt: u8,
    csid: u32,
    len: usize,
    /// The timestamp or delta field (already replaced by the extended timestamp).
    timestamp_field: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

fn be24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl ChunkReader {
    /// A reader whose first byte is at stream offset `start_offset` (after the handshake).
    pub fn new(limits: DemuxLimits, start_offset: u64) -> Self {
        ChunkReader {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            buffered: 0,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            header_start: start_offset,
            state: ReadState::Header,
            offset: start_offset,
            hold_media: false,
        }
    }

    /// Reads `data`, appending every completed non-control message to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Message>) -> Result<(), DemuxError> {
        while !data.is_empty() {
            match self.state {
                ReadState::Payload { csid, remaining } => {
                    let n = remaining.min(data.len());
                    self.append_payload(csid, &data[..n]);
                    data = &data[n..];
                    self.offset += n as u64;
                    if n == remaining {
                        self.state = ReadState::Header;
                        self.finish_if_complete(csid, out)?;
                    } else {
                        self.state = ReadState::Payload {
                            csid,
                            remaining: remaining - n,
                        };
                    }
                }
                ReadState::Header => {
                    if self.header_len == 0 {
                        self.header_start = self.offset;
                    }
                    match self.header_progress()? {
                        HeaderProgress::Need(needed) => {
                            let n = (needed - self.header_len).min(data.len());
                            self.header[self.header_len..self.header_len + n]
                                .copy_from_slice(&data[..n]);
                            self.header_len += n;
                            self.offset += n as u64;
                            data = &data[n..];
                        }
                        HeaderProgress::Complete(header) => {
                            self.header_len = 0;
                            self.start_chunk(header, out)?;
                        }
                    }
                }
            }
        }
        // A header completed by the last byte (e.g. a zero-length message) is handled
        // now rather than on the next feed, so events are not held back.
        if let ReadState::Header = self.state
            && self.header_len > 0
            && let HeaderProgress::Complete(header) = self.header_progress()?
        {
            self.header_len = 0;
            self.start_chunk(header, out)?;
        }
        Ok(())
    }

    /// From now on media messages are held until whole as well: nothing before
    /// [`ChunkReader::held_from`] is then part of an incomplete message.
    pub fn hold_whole_messages(&mut self) {
        self.hold_media = true;
    }

    /// Stream offset of the first byte the relay must hold back: the start of the oldest
    /// non-media message still being reassembled, or of a chunk header not yet complete
    /// (whose message type may be a command). `None` when every byte read so far may go.
    pub fn held_from(&self) -> Option<u64> {
        let staged_header = (self.header_len > 0).then_some(self.header_start);
        self.streams
            .values()
            .filter(|stream| self.hold_media || !is_media(stream.type_id))
            .filter_map(|stream| stream.partial.as_ref().map(|p| p.start_offset))
            .chain(staged_header)
            .min()
    }

    fn header_progress(&self) -> Result<HeaderProgress, DemuxError> {
        let h = &self.header[..self.header_len];
        let Some(&first) = h.first() else {
            return Ok(HeaderProgress::Need(1));
        };
        let fmt = first >> 6;
        let basic_len = match first & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if h.len() < basic_len {
            return Ok(HeaderProgress::Need(basic_len));
        }
        let csid = match basic_len {
            2 => 64 + u32::from(h[1]),
            3 => 64 + u32::from(h[1]) + (u32::from(h[2]) << 8),
            _ => u32::from(first & 0x3F),
        };
        let stream = self.streams.get(&csid);
        if fmt != 0 && stream.is_none() {
            return Err(DemuxError::NoPreviousHeader {
                fmt,
                csid,
                offset: self.header_start,
            });
        }
        let message_header_len = [11, 7, 3, 0][usize::from(fmt)];
        let base_len = basic_len + message_header_len;
        if h.len() < base_len {
            return Ok(HeaderProgress::Need(base_len));
        }
        let mh = &h[basic_len..base_len];
        let mut header = ParsedHeader {
            fmt,
            csid,
            len: base_len,
            timestamp_field: 0,
            extended: false,
            length: 0,
            type_id: 0,
            stream_id: 0,
        };
        if fmt == 3 {
            // nginx-rtmp reads 4 extended-timestamp bytes after every fmt 3 header of a
            // chunk stream whose message began with an extended timestamp.
            let Some(first) = stream.and_then(|s| s.extended_timestamp) else {
                return Ok(HeaderProgress::Complete(header));
            };
            let with_ext = base_len + 4;
            if h.len() < with_ext {
                return Ok(HeaderProgress::Need(with_ext));
            }
            let value = be32(&h[base_len..with_ext]);
            let continuation = stream.is_some_and(|s| s.partial.is_some());
            if continuation && value != first {
                // nginx-rtmp skips these bytes, SRS reads them as payload: refuse.
                return Err(DemuxError::ExtendedTimestampMismatch {
                    csid,
                    expected: first,
                    found: value,
                    offset: self.header_start,
                });
            }
            header.len = with_ext;
            header.timestamp_field = value;
            header.extended = !continuation;
            return Ok(HeaderProgress::Complete(header));
        }
        header.timestamp_field = be24(&mh[0..3]);
        if fmt <= 1 {
            header.length = be24(&mh[3..6]);
            header.type_id = mh[6];
            let cap = if is_media(header.type_id) {
                self.limits.max_message_bytes
            } else {
                self.limits.max_command_bytes
            };
            if header.length > cap {
                return Err(DemuxError::MessageTooLarge {
                    length: header.length,
                    type_id: header.type_id,
                    csid,
                    cap,
                    offset: self.header_start,
                });
            }
        }
        if fmt == 0 {
            header.stream_id = u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]);
        }
        if header.timestamp_field == EXTENDED_TIMESTAMP_MARK {
            let with_ext = base_len + 4;
            if h.len() < with_ext {
                return Ok(HeaderProgress::Need(with_ext));
            }
            header.timestamp_field = be32(&h[base_len..with_ext]);
            header.extended = true;
            header.len = with_ext;
        }
        Ok(HeaderProgress::Complete(header))
    }

    /// Applies a complete chunk header and sets up reading its payload.
    fn start_chunk(
        &mut self,
        header: ParsedHeader,
        out: &mut Vec<Message>,
    ) -> Result<(), DemuxError> {
        let csid = header.csid;
        if header.fmt == 0 && !self.streams.contains_key(&csid) {
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(DemuxError::TooManyChunkStreams {
                    cap: self.limits.max_chunk_streams,
                    csid,
                    offset: self.header_start,
                });
            }
            self.streams.insert(csid, ChunkStream::default());
        }
        let header_start = self.header_start;
        let Some(stream) = self.streams.get_mut(&csid) else {
            return Err(DemuxError::NoPreviousHeader {
                fmt: header.fmt,
                csid,
                offset: header_start,
            });
        };
        if stream.partial.is_some() && header.fmt != 3 {
            return Err(DemuxError::HeaderMidMessage {
                fmt: header.fmt,
                csid,
                offset: header_start,
            });
        }
        if stream.partial.is_none() {
            match header.fmt {
                0 => {
                    stream.timestamp = header.timestamp_field;
                    stream.delta = 0;
                    stream.length = header.length;
                    stream.type_id = header.type_id;
                    stream.stream_id = header.stream_id;
                }
                1 | 2 => {
                    stream.delta = header.timestamp_field;
                    stream.timestamp = stream.timestamp.wrapping_add(header.timestamp_field);
                    if header.fmt == 1 {
                        stream.length = header.length;
                        stream.type_id = header.type_id;
                    }
                }
                _ => {
                    // After an extended timestamp, a fmt 3 header's 4 bytes are the
                    // new delta (nginx-rtmp).
                    if header.extended {
                        stream.delta = header.timestamp_field;
                    }
                    stream.timestamp = stream.timestamp.wrapping_add(stream.delta);
                }
            }
            if header.fmt != 3 || header.extended {
                stream.extended_timestamp = header.extended.then_some(header.timestamp_field);
            }
            let length = stream.length as usize;
            if self.buffered + length > self.limits.max_buffered_bytes {
                return Err(DemuxError::BufferedBytesExceeded {
                    needed: self.buffered + length,
                    cap: self.limits.max_buffered_bytes,
                    offset: header_start,
                });
            }
            self.buffered += length;
            // Memory follows the bytes that arrive, not the length a header declares.
            stream.partial = Some(PartialMessage {
                payload: Vec::with_capacity(length.min(self.chunk_size as usize)),
                start_offset: header_start,
            });
        }
        let received = stream.partial.as_ref().map_or(0, |p| p.payload.len());
        let remaining = (stream.length as usize - received).min(self.chunk_size as usize);
        if remaining == 0 {
            self.finish_if_complete(csid, out)
        } else {
            self.state = ReadState::Payload { csid, remaining };
            Ok(())
        }
    }

    fn append_payload(&mut self, csid: u32, bytes: &[u8]) {
        if let Some(partial) = self.streams.get_mut(&csid).and_then(|s| s.partial.as_mut()) {
            partial.payload.extend_from_slice(bytes);
        }
    }

    fn finish_if_complete(&mut self, csid: u32, out: &mut Vec<Message>) -> Result<(), DemuxError> {
        let Some(stream) = self.streams.get_mut(&csid) else {
            return Ok(());
        };
        let complete = stream
            .partial
            .as_ref()
            .is_some_and(|p| p.payload.len() == stream.length as usize);
        if !complete {
            return Ok(());
        }
        let Some(partial) = stream.partial.take() else {
            return Ok(());
        };
        self.buffered -= stream.length as usize;
        let message = Message {
            type_id: stream.type_id,
            stream_id: stream.stream_id,
            timestamp: stream.timestamp,
            payload: Bytes::from(partial.payload),
            start_offset: partial.start_offset,
        };
        match message.type_id {
            MSG_SET_CHUNK_SIZE => self.set_chunk_size(&message),
            MSG_ABORT => self.abort(&message),
            _ => {
                out.push(message);
                Ok(())
            }
        }
    }

    fn control_value(message: &Message, name: &'static str) -> Result<u32, DemuxError> {
        if message.payload.len() < 4 {
            return Err(DemuxError::ControlMessageTooShort {
                name,
                length: message.payload.len(),
                offset: message.start_offset,
            });
        }
        Ok(be32(&message.payload))
    }

    fn set_chunk_size(&mut self, message: &Message) -> Result<(), DemuxError> {
        let size = Self::control_value(message, "Set Chunk Size")?;
        if size == 0 || size & 0x8000_0000 != 0 {
            return Err(DemuxError::InvalidChunkSize {
                size,
                offset: message.start_offset,
            });
        }
        if size > self.limits.max_chunk_size {
            return Err(DemuxError::ChunkSizeTooLarge {
                size,
                cap: self.limits.max_chunk_size,
                offset: message.start_offset,
            });
        }
        // nginx-rtmp reallocates its read buffer at the new size and may drop bytes it
        // had already read past a smaller one: what the origin then parses depends on
        // TCP segmentation. No encoder lowers its chunk size.
        if size < self.chunk_size {
            return Err(DemuxError::ChunkSizeLowered {
                from: self.chunk_size,
                to: size,
                offset: message.start_offset,
            });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Abort is only accepted between messages (where it changes nothing): nginx-rtmp
    /// and FFmpeg ignore Abort and keep reassembling, a spec-following server drops the
    /// partial message, so honouring or ignoring it would each let a publisher show the
    /// origin other frames than the demuxer sees. No common encoder sends it.
    fn abort(&mut self, message: &Message) -> Result<(), DemuxError> {
        let csid = Self::control_value(message, "Abort")?;
        if let Some(stream) = self.streams.get(&csid)
            && let Some(partial) = &stream.partial
        {
            return Err(DemuxError::AbortMidMessage {
                csid,
                received: partial.payload.len(),
                length: stream.length,
                offset: message.start_offset,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header declaring an 8 MiB message costs memory only as its bytes arrive.
    #[test]
    fn a_declared_length_is_not_allocated_up_front() {
        let mut reader = ChunkReader::new(DemuxLimits::default(), 0);
        let mut header = vec![0x06, 0, 0, 0, 0x80, 0, 0, MSG_VIDEO, 1, 0, 0, 0];
        header.extend([0x17; 100]);
        reader.feed(&header, &mut Vec::new()).unwrap();
        let allocated = reader.streams[&6]
            .partial
            .as_ref()
            .map(|partial| partial.payload.capacity());
        assert_eq!(allocated, Some(DEFAULT_CHUNK_SIZE as usize));
        assert_eq!(reader.held_from(), None);
    }
}
