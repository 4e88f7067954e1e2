//! INTERFACE STUB — replaced by the real demuxer.
use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemuxLimits {
    pub max_message_bytes: u32,
    pub max_chunk_size: u32,
    pub max_chunk_streams: usize,
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
    pub dts_ms: i64,
    pub pts_ms: i64,
    pub data: Bytes,
    pub start_offset: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DemuxEvent {
    Connect {
        app: String,
        tc_url: Option<String>,
        flash_ver: Option<String>,
        four_cc_list: Vec<String>,
    },
    Publish {
        stream_key: String,
        publish_type: Option<String>,
    },
    Metadata(Vec<(String, String)>),
    VideoConfig {
        codec: VideoCodec,
        extradata: Bytes,
    },
    VideoFrame(VideoFrame),
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DemuxError {
    #[error("not RTMP: first byte {0:#04x} is not RTMP version 3")]
    NotRtmp(u8),
}

#[derive(Debug, Default)]
pub struct Demuxer {
    pub limits: DemuxLimits,
}

impl Demuxer {
    pub fn new(limits: DemuxLimits) -> Self {
        Demuxer { limits }
    }
    pub fn feed(&mut self, _data: &[u8], _events: &mut Vec<DemuxEvent>) -> Result<(), DemuxError> {
        Ok(())
    }
}
