//! Signals computed on decoded frames: perceptual hashes and hash-list lookups.
pub mod pdq;
