//! A minimal RTMP *publisher-side* encoder: handshake, chunked messages, the AMF0
//! commands of a publish, and FLV video tags.
//!
//! livegate never writes RTMP on the relay path (bytes pass untouched); this exists to
//! generate load for `livegate bench relay` and exact byte sequences for tests, so that
//! both speak the same, spec-conforming dialect as real encoders.

/// Chunk-stream ids the way ffmpeg assigns them: protocol control, commands, media.
pub const CSID_CONTROL: u32 = 2;
pub const CSID_COMMAND: u32 = 3;
pub const CSID_VIDEO: u32 = 6;

pub const TYPE_SET_CHUNK_SIZE: u8 = 1;
pub const TYPE_AUDIO: u8 = 8;
pub const TYPE_VIDEO: u8 = 9;
pub const TYPE_COMMAND_AMF0: u8 = 20;

/// Size of C1 and C2.
pub const HANDSHAKE_PACKET_BYTES: usize = 1536;
/// Initial chunk size of every RTMP connection.
pub const DEFAULT_CHUNK_SIZE: usize = 128;

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
        let extended = timestamp >= 0x00FF_FFFF;
        let header_timestamp = if extended { 0x00FF_FFFF } else { timestamp };
        write_basic_header(out, 0, csid);
        out.extend_from_slice(&header_timestamp.to_be_bytes()[1..]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.push(type_id);
        out.extend_from_slice(&stream_id.to_le_bytes());
        if extended {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        for (index, chunk) in payload.chunks(self.chunk_size.max(1)).enumerate() {
            if index > 0 {
                write_basic_header(out, 3, csid);
                // ffmpeg and librtmp repeat the extended timestamp on continuations.
                if extended {
                    out.extend_from_slice(&timestamp.to_be_bytes());
                }
            }
            out.extend_from_slice(chunk);
        }
    }
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

/// A legacy FLV AVC video tag body: frame type, AVCPacketType 1 (NALUs), composition
/// time 0, then `nalus` as given.
pub fn avc_video_tag(keyframe: bool, nalus: &[u8]) -> Vec<u8> {
    let frame_type: u8 = if keyframe { 1 } else { 2 };
    let mut out = Vec::with_capacity(5 + nalus.len());
    out.extend_from_slice(&[(frame_type << 4) | 7, 1, 0, 0, 0]);
    out.extend_from_slice(nalus);
    out
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
}
