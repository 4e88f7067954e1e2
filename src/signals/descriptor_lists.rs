//! The configured descriptor lists (`[[descriptorlist]]`): what each list is and how a
//! match on it is judged.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::config::InvalidKey;
use crate::signals::lists::ListAction;
use livegate_signals::descriptor::DEFAULT_MAX_DESCRIPTORS;
use livegate_signals::descriptor_index::MAX_DESCRIPTORS;

/// One `[[descriptorlist]]` entry of the config. Its file's header must name the model
/// of `[descriptor]` (`model_tag`, `output_dim`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DescriptorListConfig {
    /// Names the list in matches, logs, the admin API and `actuator.learn_into`.
    pub name: String,
    /// The list file (`livegate describe` writes them).
    pub path: PathBuf,
    /// A view whose cosine to an entry is at least this matches it. Unrelated pictures
    /// score 0.02 ± 0.055 with SSCD, edited copies 0.7 and up (BENCHMARKS.md).
    #[serde(default = "defaults::min_cosine")]
    pub min_cosine: f32,
    /// A match on a `cut` list at this cosine or more cuts on one keyframe; weaker
    /// matches need `confirm_matches` of the last `confirm_window` described keyframes.
    #[serde(default = "defaults::cut_immediately_above")]
    pub cut_immediately_above: f32,
    #[serde(default = "defaults::confirm_matches")]
    pub confirm_matches: usize,
    #[serde(default = "defaults::confirm_window")]
    pub confirm_window: usize,
    #[serde(default = "defaults::action")]
    pub action: ListAction,
    /// Cap on descriptors (file and run-time additions); a longer file is refused.
    #[serde(default = "defaults::max_descriptors")]
    pub max_descriptors: usize,
    /// Accept a file holding no descriptor (only its header). Off: such a file is refused
    /// (at startup and on reload): far more often a truncated deploy than intended.
    #[serde(default)]
    pub allow_empty: bool,
}

mod defaults {
    use super::{DEFAULT_MAX_DESCRIPTORS, ListAction};

    pub fn min_cosine() -> f32 {
        0.5
    }
    pub fn cut_immediately_above() -> f32 {
        0.7
    }
    pub fn confirm_matches() -> usize {
        2
    }
    pub fn confirm_window() -> usize {
        3
    }
    pub fn action() -> ListAction {
        ListAction::Cut
    }
    pub fn max_descriptors() -> usize {
        DEFAULT_MAX_DESCRIPTORS
    }
}

impl DescriptorListConfig {
    /// A list with every optional key at its default.
    pub fn new(name: &str, path: &Path) -> DescriptorListConfig {
        DescriptorListConfig {
            name: name.to_string(),
            path: path.to_path_buf(),
            min_cosine: defaults::min_cosine(),
            cut_immediately_above: defaults::cut_immediately_above(),
            confirm_matches: defaults::confirm_matches(),
            confirm_window: defaults::confirm_window(),
            action: defaults::action(),
            max_descriptors: defaults::max_descriptors(),
            allow_empty: false,
        }
    }
}

/// Checks the `[[descriptorlist]]` entries (the files themselves are read when loaded).
pub fn validate_configs(lists: &[DescriptorListConfig]) -> Result<(), InvalidKey> {
    let mut names = HashSet::new();
    for (i, list) in lists.iter().enumerate() {
        let invalid = |name: &str, message: &str| {
            InvalidKey::new(format!("descriptorlist[{i}].{name}"), message.to_string())
        };
        let name_ok = !list.name.is_empty()
            && list
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(invalid(
                "name",
                "must be non-empty ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        if !names.insert(list.name.as_str()) {
            return Err(invalid("name", "used by two [[descriptorlist]] entries"));
        }
        if list.path.as_os_str().is_empty() {
            return Err(invalid("path", "must not be empty"));
        }
        if !(list.min_cosine > 0.0 && list.min_cosine <= 1.0) {
            return Err(invalid(
                "min_cosine",
                "must be greater than 0 and at most 1",
            ));
        }
        if !(list.cut_immediately_above >= list.min_cosine && list.cut_immediately_above <= 1.0) {
            return Err(invalid(
                "cut_immediately_above",
                "must be between min_cosine and 1",
            ));
        }
        if list.confirm_window == 0 || list.confirm_window > 64 {
            return Err(invalid("confirm_window", "must be between 1 and 64"));
        }
        if list.confirm_matches == 0 || list.confirm_matches > list.confirm_window {
            return Err(invalid(
                "confirm_matches",
                "must be between 1 and confirm_window",
            ));
        }
        if list.max_descriptors == 0 || list.max_descriptors > MAX_DESCRIPTORS {
            return Err(invalid("max_descriptors", "must be 1..=4294967295"));
        }
    }
    Ok(())
}
