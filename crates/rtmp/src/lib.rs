//! livegate-rtmp: sans-IO RTMP for the publisher's side of a session — the chunk stream
//! ([`chunk`]), AMF0 ([`amf0`]), FLV video tags ([`flv`]) and the passive [`demux`]er
//! built on them.
//!
//! The demuxer never writes and never changes a byte: it is fed copies of whatever
//! slices the relay read from the publisher, in order, and reports what the stream
//! is (app, stream key, codec) and where its video frames are. The crate has no
//! sockets, no runtime and no API by construction (its only dependencies are `bytes`
//! and `thiserror`), so it is fuzzed on its own.
//!
//! With the `encode` feature (tests, benchmarks, fuzzing; off in the proxy) it also
//! has `encode`: a publisher-side RTMP encoder and a model of how nginx-rtmp reads
//! the chunk layer.

pub mod amf0;
pub mod chunk;
pub mod demux;
#[cfg(any(test, feature = "encode"))]
pub mod encode;
pub mod flv;

pub use demux::{
    DemuxError, DemuxEvent, DemuxLimits, Demuxer, StreamMetadata, VideoCodec, VideoFrame,
    origin_app, origin_name, split_stream_key,
};
