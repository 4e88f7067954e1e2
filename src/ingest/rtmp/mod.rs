//! RTMP ingest: a sans-IO demuxer for the publisher's side of a session.
//!
//! The demuxer never writes and never changes a byte: it is fed copies of whatever
//! slices the relay read from the publisher, in order, and reports what the stream
//! is (app, stream key, codec) and where its video frames are.

pub mod amf0;
pub mod chunk;
pub mod demux;
pub mod encode;
pub mod flv;

pub use demux::{
    DemuxError, DemuxEvent, DemuxLimits, Demuxer, StreamMetadata, VideoCodec, VideoFrame,
    origin_app, origin_name, split_stream_key,
};
