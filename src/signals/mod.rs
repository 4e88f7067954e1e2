//! Signals that need the proxy's config, policy or ONNX Runtime: the live set of hash
//! lists ([`lists`]), of descriptor lists ([`descriptor_lists`]) and the image
//! classifier ([`classifier`]). Hashing, hash lists and
//! the index are the `livegate-signals` crate (`crates/signals/`).

pub mod classifier;
pub mod descriptor_lists;
pub mod lists;
mod live_list;
