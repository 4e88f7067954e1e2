//! The descriptor model on ONNX Runtime: pictures resized to its input, run in one batch,
//! and the output turned into L2-normalised vectors.

use std::sync::Arc;

use super::config::{DescriptorConfig, InputDtype};
use crate::media::resize::stretch;
use crate::onnx::{self, ModelError, ModelSection, Session, TensorElementType};
use crate::signals::classifier::{ColorOrder, PixelScale, TensorLayout};
use livegate_signals::pdq::Image;

/// The section the descriptor's errors name.
pub const SECTION: ModelSection = ModelSection {
    name: "descriptor",
    input_keys: "input_size/input_layout/input_dtype",
    output_keys: "output_dim",
};

/// Why the descriptor cannot load or run its model.
pub type DescriptorError = ModelError;

/// The input tensor of one run, reused across runs.
enum Tensor {
    Uint8(Vec<u8>),
    Float32(Vec<f32>),
}

/// A loaded descriptor model; one per descriptor thread.
pub struct DescriptorModel {
    config: Arc<DescriptorConfig>,
    session: Session,
    input_name: String,
    /// Pictures one run takes at most: any number when the model's batch dimension is
    /// symbolic, else 1.
    max_batch: usize,
    tensor: Tensor,
}

impl DescriptorModel {
    /// Loads ONNX Runtime (once per process) and the model, and checks its declared
    /// input and output against the config, then runs it once on a black picture so an
    /// output of another size fails here, at startup, not on every keyframe.
    pub fn load(config: Arc<DescriptorConfig>) -> Result<Self, DescriptorError> {
        let session = onnx::load_session(
            SECTION,
            config.runtime_library.as_deref(),
            &config.model,
            config.threads,
        )?;
        let model_error = |message: String| SECTION.model_error(&config.model, message);
        let (input, output) = onnx::single_input(&session).map_err(model_error)?;
        let element = match config.input_dtype {
            InputDtype::Uint8 => TensorElementType::Uint8,
            InputDtype::Float32 => TensorElementType::Float32,
        };
        let any_batch = input_shape(&config, -1);
        let declared_batch = input
            .tensor
            .as_ref()
            .and_then(|(_, dims)| dims.first().copied())
            .unwrap_or(1);
        // A symbolic batch takes a keyframe's views in one run; a fixed one must be 1,
        // since livegate does not pad batches.
        if !input.fits(element, &any_batch) || declared_batch > 1 {
            return Err(SECTION.input_shape(
                &config.model,
                input.describe(),
                format!(
                    "a {} tensor {} ({:?}, batch 1 or symbolic)",
                    onnx::element_name(element),
                    onnx::shape_text(&any_batch),
                    config.input_layout
                )
                .to_lowercase(),
            ));
        }
        let dim = config.output_dim as i64;
        if !output.fits(TensorElementType::Float32, &[declared_batch, dim]) {
            return Err(SECTION.output_shape(
                &config.model,
                output.describe(),
                format!("a float32 tensor [batch, {dim}]"),
            ));
        }
        let max_batch = if declared_batch < 0 { usize::MAX } else { 1 };
        let tensor = match config.input_dtype {
            InputDtype::Uint8 => Tensor::Uint8(Vec::new()),
            InputDtype::Float32 => Tensor::Float32(Vec::new()),
        };
        let mut model = DescriptorModel {
            input_name: input.name,
            config,
            session,
            max_batch,
            tensor,
        };
        let black = [0u8; 3];
        model.describe(&Image {
            data: &black,
            width: 1,
            height: 1,
            stride: 3,
        })?;
        Ok(model)
    }

    pub fn config(&self) -> &Arc<DescriptorConfig> {
        &self.config
    }

    /// The L2-normalised descriptor of an RGB24 picture.
    pub fn describe(&mut self, picture: &Image<'_>) -> Result<Vec<f32>, DescriptorError> {
        let mut found = self.describe_all(std::slice::from_ref(picture))?;
        found
            .pop()
            .ok_or_else(|| SECTION.inference("the model returned no descriptor"))
    }

    /// The descriptors of several pictures (a keyframe's views), in order: in one run
    /// when the model takes a batch, else one run each.
    pub fn describe_all(
        &mut self,
        pictures: &[Image<'_>],
    ) -> Result<Vec<Vec<f32>>, DescriptorError> {
        let mut found = Vec::with_capacity(pictures.len());
        for batch in pictures.chunks(self.max_batch) {
            self.fill_tensor(batch);
            found.extend(self.run(batch.len())?);
        }
        Ok(found)
    }

    /// The model's input for `pictures` (see [`preprocess`]), as raw values: bytes for
    /// a uint8 model, little-endian f32 for a float one (for cross-checks).
    pub fn input_tensor_bytes(&mut self, pictures: &[Image<'_>]) -> Vec<u8> {
        self.fill_tensor(pictures);
        match &self.tensor {
            Tensor::Uint8(values) => values.clone(),
            Tensor::Float32(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    fn fill_tensor(&mut self, pictures: &[Image<'_>]) {
        let per_picture = input_values(&self.config);
        match &mut self.tensor {
            Tensor::Uint8(values) => {
                values.resize(per_picture * pictures.len(), 0);
                for (picture, slot) in pictures.iter().zip(values.chunks_exact_mut(per_picture)) {
                    preprocess(&self.config, picture, |index, value| {
                        slot[index] = value.round().clamp(0.0, 255.0) as u8;
                    });
                }
            }
            Tensor::Float32(values) => {
                values.resize(per_picture * pictures.len(), 0.0);
                for (picture, slot) in pictures.iter().zip(values.chunks_exact_mut(per_picture)) {
                    preprocess(&self.config, picture, |index, value| slot[index] = value);
                }
            }
        }
    }

    fn run(&mut self, batch: usize) -> Result<Vec<Vec<f32>>, DescriptorError> {
        let shape: Vec<i64> = input_shape(&self.config, batch as i64);
        let failed = |error: ort::Error| SECTION.inference(error.to_string());
        let input = match &self.tensor {
            Tensor::Uint8(values) => {
                ort::value::TensorRef::from_array_view((shape, &values[..])).map(|t| t.into_dyn())
            }
            Tensor::Float32(values) => {
                ort::value::TensorRef::from_array_view((shape, &values[..])).map(|t| t.into_dyn())
            }
        }
        .map_err(failed)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(failed)?;
        let (_, output) = outputs
            .iter()
            .next()
            .ok_or_else(|| SECTION.inference("the model returned no output"))?;
        let (shape, values) = output.try_extract_tensor::<f32>().map_err(failed)?;
        let dim = self.config.output_dim;
        if values.len() != batch * dim {
            return Err(SECTION.output_shape(
                &self.config.model,
                format!("{shape} for {batch} pictures"),
                format!("[{batch}, {dim}]"),
            ));
        }
        values
            .chunks_exact(dim)
            .map(|raw| {
                let mut vector = raw.to_vec();
                l2_normalise(&mut vector).then_some(vector).ok_or_else(|| {
                    SECTION.inference("the model returned a zero or non-finite vector")
                })
            })
            .collect()
    }
}

/// The input tensor's shape for `batch` pictures (`-1`: any batch).
fn input_shape(config: &DescriptorConfig, batch: i64) -> Vec<i64> {
    let [width, height] = config.input_size.width_height().map(i64::from);
    match config.input_layout {
        TensorLayout::Nchw => vec![batch, 3, height, width],
        TensorLayout::Nhwc => vec![batch, height, width, 3],
    }
}

/// Values of one picture in the input tensor.
fn input_values(config: &DescriptorConfig) -> usize {
    let [width, height] = config.input_size.width_height();
    3 * width as usize * height as usize
}

/// Calls `put(index, value)` for every value of one picture's slot in the input tensor:
/// the picture stretched to the input size (bilinear, sampled as the classifier's
/// preprocessing and OpenCV's `INTER_LINEAR` do), channels in `color` order, laid out
/// as configured; for a float input, scaled and normalised. Stretching, not
/// letterboxing: SSCD was trained and evaluated on resized whole pictures, and the list
/// side is resized the same way.
pub fn preprocess(config: &DescriptorConfig, picture: &Image<'_>, mut put: impl FnMut(usize, f32)) {
    let [width, height] = config.input_size.width_height().map(|side| side as usize);
    let channels = match config.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    let normalise: Option<([f32; 3], [f32; 3], f32)> = match config.input_dtype {
        InputDtype::Uint8 => None,
        InputDtype::Float32 => Some((
            config.mean,
            config.std,
            match config.scale {
                PixelScale::Unit => 1.0 / 255.0,
                PixelScale::Byte => 1.0,
            },
        )),
    };
    let plane = width * height;
    // (offset of the pixel's first value, step between its channels) per layout.
    let place = |x: usize, y: usize| match config.input_layout {
        TensorLayout::Nchw => (y * width + x, plane),
        TensorLayout::Nhwc => ((y * width + x) * 3, 1),
    };
    stretch(picture, width, height, |x, y, rgb| {
        let (first, step) = place(x, y);
        for (c, &source_channel) in channels.iter().enumerate() {
            let value = match normalise {
                None => rgb[source_channel],
                Some((mean, std, scale)) => (rgb[source_channel] * scale - mean[c]) / std[c],
            };
            put(first + c * step, value);
        }
    });
}

/// Scales `vector` to unit length; `false` when it has none to scale (zero or not
/// finite). Done even for models that normalise their output (SSCD does): cosine
/// similarity is a plain dot product only between unit vectors, a model-agnostic
/// config may name a model that does not normalise, and a quantised or fp16 model's
/// "unit" vectors are off by up to 1e-3, which a threshold on a dot product would see.
pub fn l2_normalise(vector: &mut [f32]) -> bool {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if !norm.is_normal() {
        return false;
    }
    vector.iter_mut().for_each(|v| *v /= norm);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> DescriptorConfig {
        toml::from_str(&format!("model = \"m.onnx\"\ninput_size = [4, 2]\n{extra}"))
            .expect("config")
    }

    #[test]
    fn preprocess_stretches_orders_channels_and_normalises_float_input() {
        // 8x2 picture: left half black, right half (200, 100, 50).
        let pixels: Vec<u8> = (0..2)
            .flat_map(|_| (0..8).flat_map(|x| if x < 4 { [0, 0, 0] } else { [200, 100, 50] }))
            .collect();
        let picture = Image {
            data: &pixels,
            width: 8,
            height: 2,
            stride: 24,
        };
        let mut nhwc = [-1.0; 24];
        preprocess(&config(""), &picture, |i, v| nhwc[i] = v);
        // Row 0: black, black, then the colour, as RGB triples.
        assert_eq!(
            &nhwc[..12],
            &[
                0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 200.0, 100.0, 50.0, 200.0, 100.0, 50.0
            ]
        );

        let float = config(
            "input_dtype = \"float32\"\ninput_layout = \"nchw\"\ncolor = \"bgr\"\n\
             mean = [0.5, 0.0, 0.0]\nstd = [0.5, 1.0, 1.0]",
        );
        let mut nchw = [-1.0; 24];
        preprocess(&float, &picture, |i, v| nchw[i] = v);
        // First plane is blue: (50/255 - 0.5) / 0.5 on the right, (0 - 0.5) / 0.5 left.
        let right = (50.0 / 255.0 - 0.5) / 0.5;
        for (ours, expected) in nchw[..4].iter().zip([-1.0, -1.0, right, right]) {
            assert!((ours - expected).abs() < 1e-6, "{:?}", &nchw[..4]);
        }
        assert!((nchw[8 + 3] - 100.0 / 255.0).abs() < 1e-6, "green plane");
    }

    #[test]
    fn normalising_gives_unit_vectors_and_refuses_zero() {
        let mut vector = vec![3.0, 4.0];
        assert!(l2_normalise(&mut vector));
        assert_eq!(vector, vec![0.6, 0.8]);
        assert!(!l2_normalise(&mut [0.0, 0.0]));
        assert!(!l2_normalise(&mut [f32::NAN, 1.0]));
    }
}
