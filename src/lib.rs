//! livegate: a live-stream interception proxy.
//!
//! The modules follow the data flow of `DESIGN.md`: bytes arrive at an [`ingest`]
//! listener, the [`relay`] copies them verbatim to the origin while a passive demuxer
//! (the `livegate-rtmp` crate) reads a copy, [`media`] decodes sampled keyframes, the
//! `livegate-signals` crate hashes them and [`signals`] looks them up. [`session`] keeps
//! the registry of live streams; [`config`] is the TOML schema.

pub mod actuator;
pub mod admin;
pub mod analysis;
pub mod config;
pub mod held_bytes;
pub mod ingest;
pub mod media;
pub mod memory;
pub mod policy;
pub mod relay;
pub mod server;
pub mod session;
pub mod signals;
