//! Decoding sampled frames with FFmpeg and scaling them for the signals.

pub mod borders;
pub mod decode;
pub mod frame;
