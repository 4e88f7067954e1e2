//! livegate-mpegts: a sans-IO MPEG-TS demuxer for inspecting what a publisher sends over
//! SRT (or any byte stream of 188-byte transport packets).
//!
//! It reads PSI ([`psi`]: PAT and PMT with their CRC), reassembles the PES packets of the
//! one video stream it inspects ([`pes`]), and reports H.264 and HEVC access units in
//! Annex B form with their keyframes found in the NAL units ([`nal`]); video it cannot
//! inspect is reported, once. It never writes and never changes a byte, and reads them
//! as FFmpeg's TS demuxer does wherever demuxers differ (the rules are in [`demux`]).
//!
//! With the `mux` feature (tests and fuzzing; off in the proxy) it also has
//! `mux`, a minimal TS writer for building streams byte by byte.
//!
//! The crate has no sockets, no runtime and no API (its only dependencies are `bytes` and
//! `thiserror`), so it is fuzzed on its own (`fuzz/`).

pub mod demux;
#[cfg(any(test, feature = "mux"))]
pub mod mux;
pub mod nal;
pub mod pes;
pub mod psi;

pub use demux::{AccessUnit, DemuxError, DemuxEvent, Demuxer, Limits, Stats, VideoCodec};

/// Size of a transport packet; 192-byte (M2TS) and 204-byte (with Reed-Solomon) packets are
/// not used over SRT and are refused as a loss of sync.
pub const PACKET_SIZE: usize = 188;
/// The first byte of every transport packet.
pub const SYNC_BYTE: u8 = 0x47;
