//! Signals computed on decoded frames: perceptual hashes and hash-list lookups.

pub mod classifier;
pub mod hash256;
pub mod hashlist;
pub mod index;
pub mod lists;
pub mod pdq;
