//! A publisher's session from accept to close: the accept loop with its caps (for SRT:
//! the handshake hook, [`srt`]), the
//! registry of live sessions, the relay that copies bytes both ways over any
//! [`crate::ingest::transport::Transport`], the tap that hands a copy to the protocol's
//! inspector and acts on the [`crate::stream::StreamEvent`]s it reports, and the bytes
//! held back until the inspector has understood them. Everything below the session
//! (analysis, media, policy, actions) sees only stream events.

mod gate;
mod held_bytes;
mod listener;
mod registry;
mod relay;
mod srt;
mod tap;

pub use gate::{
    GateAnswer, GateInbox, GateMetrics, GateSignal, GateUnit, IngestMode, OnHoldTimeout, Outcome,
    defaults as gate_defaults, validate as validate_gate,
};
pub use listener::{ConnectionGauge, IngestListener, client_of};
pub use registry::*;
pub use relay::{Services, SessionEnd, run_session};
pub use srt::{SrtBindError, SrtIngestListener};
