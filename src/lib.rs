//! livegate: a live-stream interception proxy.
//!
//! The modules follow the data flow of `DESIGN.md`: bytes arrive at an [`ingest`]
//! listener, a [`session`] relays them verbatim to the origin while a passive demuxer
//! reads a copy, [`media`] decodes sampled keyframes, [`signals`] hashes and looks them
//! up; [`policy`] decides and [`actions`] acts, keeping node-shared state in a
//! [`backend`]; [`telemetry`] holds what is observed and [`admin`] renders it. [`config`]
//! is the TOML schema.

pub mod actions;
pub mod admin;
pub mod analysis;
pub mod backend;
pub mod config;
pub mod ingest;
pub mod media;
pub mod policy;
pub mod server;
pub mod session;
pub mod signals;
pub mod stream;
pub mod telemetry;
