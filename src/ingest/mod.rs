//! Ingest protocols: listeners that accept publishers, and the passive demuxers that
//! understand a copy of what they send.

pub mod listener;
pub mod rtmp;

/// The seam's codec for the RTMP demuxer's.
pub fn rtmp_codec(codec: rtmp::VideoCodec) -> crate::stream::VideoCodec {
    use crate::stream::VideoCodec;
    match codec {
        rtmp::VideoCodec::Avc => VideoCodec::Avc,
        rtmp::VideoCodec::Hevc => VideoCodec::Hevc,
        rtmp::VideoCodec::Av1 => VideoCodec::Av1,
        rtmp::VideoCodec::Vp9 => VideoCodec::Vp9,
    }
}
