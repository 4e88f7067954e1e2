//! ONNX Runtime plumbing shared by the models livegate runs (the classifier and the
//! descriptor): finding and loading the runtime library, building a session on a model
//! file, and reading and checking the model's declared input and output shapes.
//!
//! ONNX Runtime is loaded at run time (`ort`'s `load-dynamic`): nothing is loaded and no
//! runtime is needed unless a model section of the config names a model. The library is
//! the section's `runtime_library`, else `ORT_DYLIB_PATH`, else the one inside the PyPI
//! `onnxruntime` wheel in the project's `.venv` (installed by `scripts/install-deps.sh`).
//!
//! Every error names the key of the model's config section that is wrong
//! (`classifier.model`, `descriptor.runtime_library`, ...): one [`ModelError`] type serves
//! every model, told its section by a [`ModelSection`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use ort::session::Session;
pub use ort::value::TensorElementType;

/// A config section that runs an ONNX model, and the keys its errors name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSection {
    /// `classifier`, `descriptor`.
    pub name: &'static str,
    /// The keys that describe the model's input, e.g. `input_size/layout`.
    pub input_keys: &'static str,
    /// The keys that describe its output, e.g. `output_dim`.
    pub output_keys: &'static str,
}

/// Why a model section cannot run its model; every message starts with the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No library configured and none found where livegate looks.
    #[error(
        "{section}.runtime_library: no ONNX Runtime library ({looked}); install the \
         `onnxruntime` wheel into .venv (scripts/install-deps.sh), or set \
         {section}.runtime_library or ORT_DYLIB_PATH"
    )]
    RuntimeNotFound {
        section: &'static str,
        looked: String,
    },
    #[error("{section}.runtime_library: cannot load ONNX Runtime from {path}: {message}")]
    Runtime {
        section: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{section}.model: cannot load the ONNX model {path}: {message}")]
    Model {
        section: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{section}.{keys}: model {path} takes {found}, but the config describes {expected}")]
    InputShape {
        section: &'static str,
        keys: &'static str,
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{section}.{keys}: model {path} outputs {found}, but the config expects {expected}")]
    OutputShape {
        section: &'static str,
        keys: &'static str,
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("running the {section} model: {message}")]
    Inference {
        section: &'static str,
        message: String,
    },
}

impl ModelSection {
    pub fn model_error(self, path: &Path, message: String) -> ModelError {
        ModelError::Model {
            section: self.name,
            path: path.to_path_buf(),
            message,
        }
    }

    pub fn input_shape(self, path: &Path, found: String, expected: String) -> ModelError {
        ModelError::InputShape {
            section: self.name,
            keys: self.input_keys,
            path: path.to_path_buf(),
            found,
            expected,
        }
    }

    pub fn output_shape(self, path: &Path, found: String, expected: String) -> ModelError {
        ModelError::OutputShape {
            section: self.name,
            keys: self.output_keys,
            path: path.to_path_buf(),
            found,
            expected,
        }
    }

    pub fn inference(self, message: impl Into<String>) -> ModelError {
        ModelError::Inference {
            section: self.name,
            message: message.into(),
        }
    }
}

/// The ONNX Runtime library to load: `configured`, else `ORT_DYLIB_PATH`, else the one in
/// `.venv` under the current directory.
pub fn find_runtime_library(
    section: ModelSection,
    configured: Option<&Path>,
) -> Result<PathBuf, ModelError> {
    if let Some(path) = configured {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(path));
    }
    let lib = Path::new(".venv").join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|pythons| {
        pythons.flatten().find_map(|python| {
            let capi = python
                .path()
                .join("site-packages")
                .join("onnxruntime")
                .join("capi");
            std::fs::read_dir(capi).ok()?.flatten().find_map(|entry| {
                let name = entry.file_name();
                name.to_string_lossy()
                    .starts_with("libonnxruntime.so")
                    .then(|| entry.path())
            })
        })
    });
    found.ok_or_else(|| ModelError::RuntimeNotFound {
        section: section.name,
        looked: format!(
            "ORT_DYLIB_PATH unset, no onnxruntime/capi/libonnxruntime.so* under {}",
            lib.display()
        ),
    })
}

/// The process-wide ONNX Runtime environment, created from the first library loaded.
/// A failed load is not remembered, so a corrected path works on the next attempt.
static RUNTIME: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

fn runtime(
    section: ModelSection,
    library: &Path,
) -> Result<ort::environment::Environment, ModelError> {
    let failed = |message: String| ModelError::Runtime {
        section: section.name,
        path: library.to_path_buf(),
        message,
    };
    // Checked on every load: once a library is loaded, ONNX Runtime ignores new paths.
    if !library.is_file() {
        return Err(failed("no such file".into()));
    }
    let mut current = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(environment) = current.as_ref() {
        return Ok(environment.clone());
    }
    let environment = ort::init_from(library)
        .map_err(|error| failed(error.to_string()))?
        .with_name("livegate")
        .build()
        .map_err(|error| failed(error.to_string()))?;
    Ok(current.insert(environment).clone())
}

/// Loads ONNX Runtime (once per process: `runtime_library` as [`find_runtime_library`]
/// resolves it) and a session on `model` running on `threads` threads.
pub fn load_session(
    section: ModelSection,
    runtime_library: Option<&Path>,
    model: &Path,
    threads: usize,
) -> Result<Session, ModelError> {
    let library = find_runtime_library(section, runtime_library)?;
    let environment = runtime(section, &library)?;
    let model_error = |message: String| section.model_error(model, message);
    if !model.is_file() {
        return Err(model_error("no such file".into()));
    }
    Session::builder(&environment)
        .and_then(|builder| builder.with_intra_threads(threads).map_err(Into::into))
        .and_then(|mut builder| builder.commit_from_file(model))
        .map_err(|error| model_error(error.to_string()))
}

/// A model input or output as the model file declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Element type and dimensions (negative: symbolic, any size); `None` when the
    /// value is not a tensor.
    pub tensor: Option<(TensorElementType, Vec<i64>)>,
}

impl TensorInfo {
    fn of(outlet: &ort::value::Outlet) -> Self {
        let tensor = match outlet.dtype() {
            ort::value::ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
            _ => None,
        };
        TensorInfo {
            name: outlet.name().to_string(),
            tensor,
        }
    }

    /// Whether this is a tensor of `element` whose declared dimensions fit `expected`
    /// (a symbolic declared dimension fits any size, a negative expected one takes any).
    pub fn fits(&self, element: TensorElementType, expected: &[i64]) -> bool {
        self.tensor.as_ref().is_some_and(|(ty, dims)| {
            *ty == element
                && dims.len() == expected.len()
                && dims
                    .iter()
                    .zip(expected)
                    .all(|(declared, wanted)| *declared < 0 || *wanted < 0 || declared == wanted)
        })
    }

    /// `a uint8 tensor [?, 320, 320, 3]`, for error messages.
    pub fn describe(&self) -> String {
        match &self.tensor {
            Some((ty, dims)) => format!("a {} tensor {}", element_name(*ty), shape_text(dims)),
            None => "a value that is not a tensor".into(),
        }
    }
}

/// The single input and the first output of a session's model, or why the model does not
/// have that form.
pub fn single_input(session: &Session) -> Result<(TensorInfo, TensorInfo), String> {
    let [input] = session.inputs() else {
        return Err(format!(
            "the model has {} inputs; livegate feeds one picture tensor",
            session.inputs().len()
        ));
    };
    let output = session
        .outputs()
        .first()
        .ok_or_else(|| "the model has no output".to_string())?;
    Ok((TensorInfo::of(input), TensorInfo::of(output)))
}

/// `[?, 3, 224, 224]`: negative (symbolic) dimensions as `?`.
pub fn shape_text(dims: &[i64]) -> String {
    let dims: Vec<String> = dims
        .iter()
        .map(|dim| {
            if *dim < 0 {
                "?".into()
            } else {
                dim.to_string()
            }
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The config's name of a tensor element type (`uint8`, `float32`).
pub fn element_name(element: TensorElementType) -> String {
    match element {
        TensorElementType::Uint8 => "uint8".into(),
        TensorElementType::Float32 => "float32".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_dimensions_fit_any_size_and_print_as_question_marks() {
        let info = TensorInfo {
            name: "image".into(),
            tensor: Some((TensorElementType::Uint8, vec![-1, -1, -1, 3])),
        };
        assert!(info.fits(TensorElementType::Uint8, &[4, 320, 320, 3]));
        assert!(!info.fits(TensorElementType::Float32, &[4, 320, 320, 3]));
        assert!(!info.fits(TensorElementType::Uint8, &[4, 3, 320, 320]));
        assert!(!info.fits(TensorElementType::Uint8, &[320, 320, 3]));
        let fixed = TensorInfo {
            name: "image".into(),
            tensor: Some((TensorElementType::Uint8, vec![1, 224, 224, 3])),
        };
        assert!(fixed.fits(TensorElementType::Uint8, &[-1, 224, 224, 3]));
        assert!(!fixed.fits(TensorElementType::Uint8, &[2, 224, 224, 3]));
        assert_eq!(info.describe(), "a uint8 tensor [?, ?, ?, 3]");
        let missing = TensorInfo {
            name: "x".into(),
            tensor: None,
        };
        assert!(!missing.fits(TensorElementType::Uint8, &[1]));
    }

    const SECTION: ModelSection = ModelSection {
        name: "model",
        input_keys: "input",
        output_keys: "output",
    };

    #[test]
    fn a_configured_library_is_taken_as_it_is() {
        let path = Path::new("/opt/ort/libonnxruntime.so.1");
        assert_eq!(
            find_runtime_library(SECTION, Some(path)).ok().as_deref(),
            Some(path)
        );
    }

    #[test]
    fn errors_name_the_key_of_their_section() {
        let path = Path::new("m.onnx");
        let errors = [
            SECTION.model_error(path, "no such file".into()),
            SECTION.input_shape(path, "a".into(), "b".into()),
            SECTION.output_shape(path, "a".into(), "b".into()),
        ];
        let starts: Vec<String> = errors
            .iter()
            .map(|error| {
                error
                    .to_string()
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(starts, ["model.model", "model.input", "model.output"]);
        assert_eq!(
            SECTION.inference("boom").to_string(),
            "running the model model: boom"
        );
    }
}
