//! A publisher's session from accept to close: the registry of live sessions, the relay
//! that copies bytes both ways, the tap that inspects a copy, and the bytes held back
//! until the tap has understood them.

mod held_bytes;
mod registry;
mod relay;
mod tap;

pub use registry::*;
pub use relay::{Services, SessionEnd, run_session};
