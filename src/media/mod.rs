//! Decoding sampled frames with FFmpeg and scaling them for the signals, and FFmpeg's
//! logging routed into `tracing`.

pub mod borders;
pub mod decode;
pub mod frame;
pub mod log;
pub mod resize;
pub mod sequence_header;
