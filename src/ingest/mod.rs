//! Ingest: the listeners that accept publishers. The passive demuxer that understands a
//! copy of what they send is the `livegate-rtmp` crate (`crates/rtmp/`).

pub mod listener;
