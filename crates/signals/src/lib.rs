//! livegate-signals: the signals computed on decoded frames that need nothing but
//! arithmetic — PDQ perceptual hashing ([`pdq`]) into 256-bit hashes ([`hash256`]), hash
//! list files ([`hashlist`]) and the exact radius-search index over them ([`index`]);
//! image descriptors from an embedding model, their list files ([`descriptor`]) and the
//! exact cosine-threshold index over them ([`descriptor_index`]).
//!
//! No sockets, no API, no FFmpeg and no ONNX Runtime by construction (its only
//! dependency is `thiserror`): frames arrive as pixel buffers, descriptors as vectors,
//! lists as bytes, so the crate is tested and fuzzed on its own. The proxy's live list set and the classifier
//! stay in `livegate::signals`.

pub mod descriptor;
pub mod descriptor_index;
pub mod hash256;
pub mod hashlist;
pub mod index;
pub mod pdq;
