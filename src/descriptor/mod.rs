//! The descriptor signal's model side: an image-embedding ONNX model (the SSCD family:
//! L2-normalised vectors compared by cosine) described by `[descriptor]`
//! ([`DescriptorConfig`]), loaded and run by [`DescriptorModel`] through the ONNX Runtime
//! plumbing it shares with the classifier ([`crate::onnx`]), on the [`views`] of a
//! picture. Model-agnostic: any model with one picture input and one `[batch, N]` float
//! output fits. Lists of descriptors and their index are the `livegate-signals` crate's.

pub mod config;
pub mod model;
pub mod views;

pub use config::{DescriptorConfig, InputDtype, InputSize};
pub use model::{DescriptorError, DescriptorModel};
