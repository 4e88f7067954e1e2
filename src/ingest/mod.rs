//! Ingest protocols: listeners that accept publishers, and the passive demuxers that
//! understand a copy of what they send.

pub mod listener;
pub mod rtmp;
