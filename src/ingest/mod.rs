//! The protocol edge: how publishers' bytes arrive ([`transport`]) and what they mean
//! ([`inspect`]: one passive inspector per protocol, turning a copy of the bytes into the
//! protocol-neutral [`crate::stream::StreamEvent`]s). Nothing here knows sessions,
//! analysis or actions: the session drives both through their traits.

pub mod inspect;
pub mod rtmp;
pub mod transport;
