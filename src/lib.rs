//! livegate: a live-stream interception proxy.
//!
//! The modules follow the data flow of `docs/ARCHITECTURE.md`: bytes arrive at an [`ingest`]
//! listener, a [`session`] relays them verbatim to the origin while a passive inspector
//! (for RTMP, the `livegate-rtmp` crate's demuxer) reads a copy and reports protocol-neutral
//! [`stream`] events, [`media`] decodes sampled keyframes, the `livegate-signals` crate
//! hashes them and [`signals`] looks them up; [`policy`] decides and [`actions`] acts,
//! keeping node-shared state in a [`backend`]; [`telemetry`] holds what is observed and
//! [`admin`] renders it. [`config`] is the TOML schema.

pub mod actions;
pub mod admin;
pub mod analysis;
pub mod backend;
pub mod config;
pub mod descriptor;
pub mod evidence;
pub mod ingest;
pub mod media;
pub mod memory;
pub mod onnx;
pub mod policy;
pub mod server;
pub mod session;
pub mod signals;
pub mod stream;
pub mod telemetry;
