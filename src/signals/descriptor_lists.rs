//! The configured descriptor lists (`[[descriptorlist]]`): what each list is and how a
//! match on it is judged, and the live set of them ([`DescriptorListSet`]): loading,
//! lookup of a picture's views, hot reload and run-time additions.
//!
//! As with the hash lists ([`super::lists`]), each list's version is swapped whole
//! ([`LiveList`]): a lookup takes a snapshot without locking; a reload reads the file on
//! the calling thread (callers run it on a blocking thread) and swaps the new version in;
//! a file that fails to load (the error names `file:line`), that holds no descriptor
//! (unless `allow_empty`) or whose header names another model leaves the previous version
//! active.
//!
//! A version is the file's list (shared by the versions that differ only by additions)
//! and a small list of the descriptors added at run time (learned from a cut, or posted
//! to the admin API): an addition copies that small list, a reload keeps it as it is, so
//! additions are visible at once and survive reloads (they are not written to the file).
//! An addition within cosine [`NEAR_DUPLICATE_COSINE`] of a descriptor the list holds (or
//! of one earlier in the same call) is skipped and counted: the same keyframe learned
//! twice must not grow the list.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::live_list::{ListFile, ListVersion, LiveList};
use crate::config::InvalidKey;
use crate::signals::lists::ListAction;
use livegate_signals::descriptor::{
    AddError, DEFAULT_MAX_DESCRIPTORS, Descriptor, DescriptorList, DescriptorListError,
    DescriptorListLimits, DescriptorModel, RecordFields,
};
use livegate_signals::descriptor_index::{
    CapacityError, DescriptorIndexError, DescriptorMatch, MAX_DESCRIPTORS,
};

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

impl ListFile for DescriptorListConfig {
    const KIND: &'static str = "descriptor list";
    const ENTRIES: &'static str = "descriptors";
    fn name(&self) -> &str {
        &self.name
    }
    fn path(&self) -> &Path {
        &self.path
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
        if let Some((key, message)) = super::live_list::check_name_and_path(
            &list.name,
            &list.path,
            &mut names,
            "descriptorlist",
        ) {
            return Err(invalid(key, &message));
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

/// An addition this close (cosine) to a descriptor the list holds is the same picture:
/// skipped. Re-encodes of one frame score above 0.99; distinct frames of one scene below.
pub const NEAR_DUPLICATE_COSINE: f32 = 0.999;

#[derive(Debug, thiserror::Error)]
pub enum DescriptorListSetError {
    #[error("no [[descriptorlist]] named {0:?}")]
    UnknownList(String),
    #[error("descriptor list {name:?}: {source}")]
    Load {
        name: String,
        /// Boxed: a line error names two models and would make every `Result` large.
        source: Box<DescriptorListError>,
    },
    #[error(
        "descriptor list {name:?}: {} holds no descriptor (at most a header); set allow_empty = true on [[descriptorlist]] {name:?} if that is intended",
        path.display()
    )]
    Empty { name: String, path: PathBuf },
    #[error(
        "descriptor list {name:?}: more than its cap of {max} descriptors (max_descriptors), run-time additions included"
    )]
    Full { name: String, max: usize },
    /// A descriptor the list cannot be searched with (another dimension).
    #[error("descriptor list {name:?}: {source}")]
    Query {
        name: String,
        source: DescriptorIndexError,
    },
    #[error("descriptor list {name:?}: addition {index}: {source}")]
    Add {
        name: String,
        /// Position in the call's entries.
        index: usize,
        source: AddError,
    },
}

/// One version of one list: what a lookup sees.
pub struct LoadedDescriptorList {
    pub version: u64,
    pub loaded_at: SystemTime,
    /// Reading the file (a reload) or copying the additions (an addition).
    pub build_time: Duration,
    /// The file's descriptors; shared by the versions that differ only by additions.
    file: Arc<DescriptorList>,
    /// Descriptors added at run time (ids after the file's in no index: a list apart).
    added: Arc<DescriptorList>,
}

impl ListVersion for LoadedDescriptorList {
    fn len(&self) -> usize {
        LoadedDescriptorList::len(self)
    }
}

impl LoadedDescriptorList {
    pub fn len(&self) -> usize {
        self.file.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Descriptors added at run time.
    pub fn added_at_runtime(&self) -> usize {
        self.added.len()
    }

    /// Bytes held by the vectors, their index and metadata.
    pub fn memory_bytes(&self) -> usize {
        self.file.memory_bytes() + self.added.memory_bytes()
    }
}

/// A list's state for status pages (`GET /v1/descriptorlists`) and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct DescriptorListStatus {
    pub name: String,
    pub path: PathBuf,
    pub action: ListAction,
    pub min_cosine: f32,
    pub cut_immediately_above: f32,
    pub version: u64,
    pub loaded_at: SystemTime,
    pub build_time: Duration,
    pub descriptors: usize,
    pub added_at_runtime: usize,
    pub memory_bytes: usize,
}

/// A list's best match for one picture (over all its views).
#[derive(Debug, Clone, PartialEq)]
pub struct DescriptorListMatch {
    pub list: Arc<str>,
    pub action: ListAction,
    /// Version of the list that answered.
    pub list_version: u64,
    /// Index into the queried views.
    pub view: usize,
    /// Cosine of the view and the stored descriptor.
    pub score: f32,
    pub source: String,
    pub pts: Option<f64>,
    pub label: String,
    /// Line in the list file; `None` for a descriptor added at run time.
    pub line: Option<u32>,
}

/// A descriptor to add at run time, with the metadata its matches will carry.
#[derive(Debug, Clone)]
pub struct AddedDescriptor {
    pub descriptor: Descriptor,
    pub source: String,
    /// Seconds within `source`; `None` for a still image.
    pub pts: Option<f64>,
    pub label: String,
}

/// Outcome of one list's reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorReloadReport {
    pub name: String,
    pub version: u64,
    pub descriptors: usize,
    pub build_time: Duration,
}

/// Outcome of [`DescriptorListSet::add`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorAddReport {
    pub name: String,
    /// The active version: a new one, or the previous one when nothing was new.
    pub version: u64,
    pub descriptors: usize,
    /// Descriptors that were new to the list.
    pub added: usize,
    /// Descriptors skipped: near-identical to one in the list or earlier in the call.
    pub already_present: usize,
    /// Building the new version (zero when nothing was new).
    pub build_time: Duration,
}

/// Reusable buffers for [`DescriptorListSet::lookup_into`], one per worker thread.
#[derive(Default)]
pub struct DescriptorLookupScratch {
    /// Per view, the matches of one list's search.
    per_view: Vec<Vec<DescriptorMatch>>,
}

/// All configured descriptor lists, for one model.
pub struct DescriptorListSet {
    model: DescriptorModel,
    lists: Vec<LiveList<DescriptorListConfig, LoadedDescriptorList>>,
}

impl DescriptorListSet {
    /// Loads every list (blocking); any missing or bad file is an error naming
    /// `file:line`; each file's header must name `model`.
    pub fn load(
        configs: &[DescriptorListConfig],
        model: &DescriptorModel,
    ) -> Result<DescriptorListSet, DescriptorListSetError> {
        let empty = Arc::new(DescriptorList::new(model.clone()));
        let lists = configs
            .iter()
            .map(|config| {
                let loaded = build(config, model, Arc::clone(&empty), 1)?;
                Ok(LiveList::new(config.clone(), loaded))
            })
            .collect::<Result<Vec<_>, DescriptorListSetError>>()?;
        Ok(DescriptorListSet {
            model: model.clone(),
            lists,
        })
    }

    /// No list is configured.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// The model every list was made with (what a request body's header must name).
    pub fn model(&self) -> &DescriptorModel {
        &self.model
    }

    /// The current version of a list (a snapshot: later updates do not change it).
    pub fn current(&self, name: &str) -> Option<Arc<LoadedDescriptorList>> {
        self.find(name).ok().map(LiveList::current_full)
    }

    pub fn status(&self) -> Vec<DescriptorListStatus> {
        self.lists
            .iter()
            .map(|list| {
                let loaded = list.current();
                let config = &list.config;
                DescriptorListStatus {
                    name: config.name.clone(),
                    path: config.path.clone(),
                    action: config.action,
                    min_cosine: config.min_cosine,
                    cut_immediately_above: config.cut_immediately_above,
                    version: loaded.version,
                    loaded_at: loaded.loaded_at,
                    build_time: loaded.build_time,
                    descriptors: loaded.len(),
                    added_at_runtime: loaded.added_at_runtime(),
                    memory_bytes: loaded.memory_bytes(),
                }
            })
            .collect()
    }

    /// [`DescriptorListSet::lookup_into`] with fresh buffers.
    pub fn lookup(&self, views: &[Descriptor]) -> Vec<DescriptorListMatch> {
        let mut out = Vec::new();
        self.lookup_into(views, &mut DescriptorLookupScratch::default(), &mut out);
        out
    }

    /// Per list, its best match over all `views` (the descriptors of one picture's views)
    /// whose cosine is at least the list's `min_cosine`, into `out` (cleared first),
    /// best first (equal scores in config order). A list's views are searched as one
    /// batch on a snapshot of its version: a reload never blocks a lookup. Views of
    /// another dimension than the model's match nothing (logged).
    pub fn lookup_into(
        &self,
        views: &[Descriptor],
        scratch: &mut DescriptorLookupScratch,
        out: &mut Vec<DescriptorListMatch>,
    ) {
        out.clear();
        for list in &self.lists {
            let loaded = list.current();
            let threshold = list.config.min_cosine;
            // The best (score, view, list part, id): the file's list first, then the
            // additions; equal scores keep the first found.
            let mut best: Option<(f32, usize, &DescriptorList, u32)> = None;
            for part in [&*loaded.file, &*loaded.added] {
                if part.is_empty() {
                    continue;
                }
                let searched =
                    part.index()
                        .search_batch_into(views, threshold, &mut scratch.per_view);
                if let Err(error) = searched {
                    tracing::warn!(list = %list.name, %error, "descriptor lookup skipped");
                    continue;
                }
                for (view, matches) in scratch.per_view.iter().enumerate() {
                    // Each view's matches are best first.
                    if let Some(found) = matches.first()
                        && best.is_none_or(|(score, ..)| found.cosine > score)
                    {
                        best = Some((found.cosine, view, part, found.id));
                    }
                }
            }
            let Some((score, view, part, id)) = best else {
                continue;
            };
            let entry = part.metadata().get(id as usize);
            out.push(DescriptorListMatch {
                list: Arc::clone(&list.name),
                action: list.config.action,
                list_version: loaded.version,
                view,
                score,
                source: entry.map_or_else(String::new, |entry| entry.fields.source.to_owned()),
                pts: entry.and_then(|entry| entry.fields.pts),
                label: entry.map_or_else(String::new, |entry| entry.fields.label.to_owned()),
                line: entry.and_then(|entry| entry.line),
            });
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
    }

    /// Re-reads one list's file (its run-time additions kept) and swaps it in. Blocking:
    /// run it on a blocking thread. On error the previous version stays active.
    pub fn reload(&self, name: &str) -> Result<DescriptorReloadReport, DescriptorListSetError> {
        let list = self.find(name)?;
        let loaded = list.reload(|previous| {
            build(
                &list.config,
                &self.model,
                Arc::clone(&previous.added),
                previous.version + 1,
            )
        })?;
        Ok(DescriptorReloadReport {
            name: list.config.name.clone(),
            version: loaded.version,
            descriptors: loaded.len(),
            build_time: loaded.build_time,
        })
    }

    /// [`DescriptorListSet::reload`] for every list, in config order.
    pub fn reload_all(&self) -> Vec<Result<DescriptorReloadReport, DescriptorListSetError>> {
        self.lists
            .iter()
            .map(|list| self.reload(&list.config.name))
            .collect()
    }

    /// Adds descriptors to a list at run time (learned from a cut, or the admin API):
    /// visible to lookups on return, kept across reloads, not written to the file. One
    /// within cosine [`NEAR_DUPLICATE_COSINE`] of a descriptor the list holds, or of one
    /// earlier in `entries`, is skipped and counted; when nothing is new the version
    /// stays. Going over `max_descriptors` adds nothing and is [`Full`] naming the list.
    /// Blocking (it scans the list once): call it off the relay and analysis workers.
    ///
    /// [`Full`]: DescriptorListSetError::Full
    pub fn add(
        &self,
        name: &str,
        entries: &[AddedDescriptor],
    ) -> Result<DescriptorAddReport, DescriptorListSetError> {
        let list = self.find(name)?;
        let config = &list.config;
        let started = Instant::now();
        let mut added = 0;
        let add_error = |index, source| match source {
            AddError::Full(CapacityError { .. }) => DescriptorListSetError::Full {
                name: config.name.clone(),
                max: config.max_descriptors,
            },
            source => DescriptorListSetError::Add {
                name: config.name.clone(),
                index,
                source,
            },
        };
        let loaded = list.update(|current| {
            let queries: Vec<Descriptor> = entries
                .iter()
                .map(|entry| entry.descriptor.clone())
                .collect();
            // One batch over the file for all the entries: it may hold millions.
            let mut in_file = Vec::new();
            current
                .file
                .index()
                .search_batch_into(&queries, NEAR_DUPLICATE_COSINE, &mut in_file)
                .map_err(|source| DescriptorListSetError::Query {
                    name: config.name.clone(),
                    source,
                })?;
            let mut additions = (*current.added).clone();
            let room = config.max_descriptors.saturating_sub(current.file.len());
            for (index, (entry, near)) in entries.iter().zip(&in_file).enumerate() {
                if !near.is_empty() {
                    continue;
                }
                let fields = RecordFields {
                    source: &entry.source,
                    pts: entry.pts,
                    label: &entry.label,
                };
                let learned = additions
                    .add_unless_near(&entry.descriptor, &fields, NEAR_DUPLICATE_COSINE, room)
                    .map_err(|source| add_error(index, source))?;
                added += usize::from(learned.is_some());
            }
            if added == 0 {
                return Ok(None);
            }
            Ok(Some(LoadedDescriptorList {
                version: current.version + 1,
                loaded_at: SystemTime::now(),
                build_time: started.elapsed(),
                file: Arc::clone(&current.file),
                added: Arc::new(additions),
            }))
        })?;
        Ok(DescriptorAddReport {
            name: config.name.clone(),
            version: loaded.version,
            descriptors: loaded.len(),
            added,
            already_present: entries.len() - added,
            build_time: if added == 0 {
                Duration::ZERO
            } else {
                loaded.build_time
            },
        })
    }

    fn find(
        &self,
        name: &str,
    ) -> Result<&LiveList<DescriptorListConfig, LoadedDescriptorList>, DescriptorListSetError> {
        self.lists
            .iter()
            .find(|list| list.config.name == name)
            .ok_or_else(|| DescriptorListSetError::UnknownList(name.to_string()))
    }
}

/// Reads `config`'s file for `model` and joins it with `added` (the run-time additions).
fn build(
    config: &DescriptorListConfig,
    model: &DescriptorModel,
    added: Arc<DescriptorList>,
    version: u64,
) -> Result<LoadedDescriptorList, DescriptorListSetError> {
    let started = Instant::now();
    let limits = DescriptorListLimits {
        max_descriptors: config.max_descriptors,
        ..DescriptorListLimits::default()
    };
    let file = DescriptorList::load(&config.path, model, &limits).map_err(|source| {
        DescriptorListSetError::Load {
            name: config.name.clone(),
            source: Box::new(source),
        }
    })?;
    if file.is_empty() && !config.allow_empty {
        return Err(DescriptorListSetError::Empty {
            name: config.name.clone(),
            path: config.path.clone(),
        });
    }
    if file.len() + added.len() > config.max_descriptors {
        return Err(DescriptorListSetError::Full {
            name: config.name.clone(),
            max: config.max_descriptors,
        });
    }
    let loaded = LoadedDescriptorList {
        version,
        loaded_at: SystemTime::now(),
        build_time: started.elapsed(),
        file: Arc::new(file),
        added,
    };
    tracing::info!(
        list = %config.name,
        path = %config.path.display(),
        action = %config.action,
        min_cosine = config.min_cosine,
        version,
        descriptors = loaded.len(),
        added_at_runtime = loaded.added_at_runtime(),
        memory_bytes = loaded.memory_bytes(),
        build_ms = loaded.build_time.as_millis() as u64,
        "descriptor list loaded"
    );
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use livegate_signals::descriptor::{write_header, write_record};

    const DIM: usize = 32;

    fn model() -> DescriptorModel {
        DescriptorModel::new("m", DIM).unwrap()
    }

    /// A pseudo-random unit vector (unrelated seeds are nearly orthogonal).
    fn random(seed: u64) -> Vec<f64> {
        let values: Vec<f64> = (0..DIM as u64)
            .map(|i| {
                let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as f64 / u64::MAX as f64 - 0.5
            })
            .collect();
        let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
        values.iter().map(|v| v / norm).collect()
    }

    fn descriptor(values: &[f64]) -> Descriptor {
        Descriptor::new(values.iter().map(|&v| v as f32).collect()).unwrap()
    }

    /// A unit vector whose cosine to `random(seed)` is `cosine`.
    fn near(seed: u64, cosine: f64, other: u64) -> Descriptor {
        let x = random(seed);
        let r = random(other);
        let along: f64 = x.iter().zip(&r).map(|(a, b)| a * b).sum();
        let mut u: Vec<f64> = r.iter().zip(&x).map(|(r, x)| r - along * x).collect();
        let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
        u.iter_mut().for_each(|v| *v /= norm);
        let sine = (1.0 - cosine * cosine).sqrt();
        descriptor(
            &x.iter()
                .zip(&u)
                .map(|(x, u)| cosine * x + sine * u)
                .collect::<Vec<_>>(),
        )
    }

    fn write_list(path: &Path, records: &[(&Descriptor, &str)]) {
        let mut text = Vec::new();
        write_header(&mut text, &model()).unwrap();
        for (descriptor, source) in records {
            let fields = RecordFields {
                source,
                pts: Some(1.5),
                label: "case 7",
            };
            write_record(&mut text, &descriptor.quantize(), &fields).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    fn added(descriptor: Descriptor, label: &str) -> AddedDescriptor {
        AddedDescriptor {
            descriptor,
            source: "live/stream".into(),
            pts: None,
            label: label.into(),
        }
    }

    #[test]
    fn the_documented_example_is_valid() {
        let uncommented = crate::config::uncommented_example("\n# [descriptor]\n", false);
        let parsed: toml::Table = toml::from_str(&uncommented).expect("example parses");
        let descriptor: crate::descriptor::DescriptorConfig =
            parsed["descriptor"].clone().try_into().expect("schema");
        assert_eq!(descriptor.validate(), Ok(()));
        let lists: Vec<DescriptorListConfig> =
            parsed["descriptorlist"].clone().try_into().expect("schema");
        assert_eq!(validate_configs(&lists), Ok(()));
        assert_eq!(
            lists,
            [DescriptorListConfig::new(
                "known-d",
                Path::new("lists/known-d.txt")
            )]
        );
        assert_eq!(descriptor.list_model(), Ok(model_of("sscd_distilled", 512)));
    }

    fn model_of(tag: &str, dim: usize) -> DescriptorModel {
        DescriptorModel::new(tag, dim).unwrap()
    }

    #[test]
    fn each_list_answers_its_best_match_over_the_views_best_first() {
        let dir = tempfile::tempdir().unwrap();
        let cut_path = dir.path().join("cut.txt");
        write_list(
            &cut_path,
            &[
                (&near(1, 0.6, 100), "weak.jpg"),
                (&near(2, 0.8, 101), "strong.jpg"),
                (&descriptor(&random(3)), "unrelated.jpg"),
            ],
        );
        let log_path = dir.path().join("log.txt");
        write_list(
            &log_path,
            &[
                (&near(1, 0.95, 102), "close.jpg"),
                (&near(2, 0.85, 103), "below.jpg"),
            ],
        );
        let cut = DescriptorListConfig::new("cut", &cut_path);
        let log = DescriptorListConfig {
            action: ListAction::Log,
            min_cosine: 0.9,
            cut_immediately_above: 0.95,
            ..DescriptorListConfig::new("log", &log_path)
        };
        let set = DescriptorListSet::load(&[cut, log], &model()).unwrap();
        assert!(!set.is_empty() && set.contains("log") && !set.contains("other"));
        let views = [descriptor(&random(1)), descriptor(&random(2))];

        let found = set.lookup(&views);
        let summary: Vec<(&str, usize, &str, Option<u32>)> = found
            .iter()
            .map(|m| (&*m.list, m.view, m.source.as_str(), m.line))
            .collect();
        // The log list's 0.85 entry is below its min_cosine; the cut list's best is the
        // 0.8 entry (view 1), not the 0.6 one.
        assert_eq!(
            summary,
            [
                ("log", 0, "close.jpg", Some(2)),
                ("cut", 1, "strong.jpg", Some(3))
            ]
        );
        assert!((found[0].score - 0.95).abs() < 0.01, "{found:?}");
        assert!((found[1].score - 0.8).abs() < 0.01, "{found:?}");
        assert_eq!(
            (found[1].action, found[1].list_version),
            (ListAction::Cut, 1)
        );
        assert_eq!(
            (found[1].pts, found[1].label.as_str()),
            (Some(1.5), "case 7")
        );

        // One view only: the cut list's best is then the 0.6 entry.
        let found = set.lookup(&views[..1]);
        assert_eq!(found.len(), 2);
        assert_eq!((found[1].source.as_str(), found[1].view), ("weak.jpg", 0));
        assert!(set.lookup(&[descriptor(&random(9))]).is_empty());
        let mut out = vec![found[0].clone()];
        set.lookup_into(&[], &mut DescriptorLookupScratch::default(), &mut out);
        assert!(out.is_empty(), "cleared first");
    }

    #[test]
    fn missing_bad_and_other_model_files_fail_with_their_location() {
        let dir = tempfile::tempdir().unwrap();
        let missing = DescriptorListConfig::new("known", &dir.path().join("nope.txt"));
        let error = DescriptorListSet::load(&[missing], &model())
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with("descriptor list \"known\": cannot read descriptor list"),
            "{error}"
        );
        let path = dir.path().join("other.txt");
        write_list(&path, &[(&descriptor(&random(1)), "a.jpg")]);
        let other = DescriptorModel::new("other", DIM).unwrap();
        let error = DescriptorListSet::load(&[DescriptorListConfig::new("known", &path)], &other)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            error,
            format!(
                "descriptor list \"known\": {}:1: list made by model=m dim=32, expected model=other dim=32",
                path.display()
            )
        );
    }

    #[test]
    fn a_bad_reload_keeps_the_old_version_and_additions_survive_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.txt");
        write_list(&path, &[(&descriptor(&random(1)), "file.jpg")]);
        let set = DescriptorListSet::load(&[DescriptorListConfig::new("known", &path)], &model())
            .unwrap();
        let report = set
            .add("known", &[added(descriptor(&random(2)), "learned")])
            .unwrap();
        assert_eq!(
            (report.version, report.descriptors, report.added),
            (2, 2, 1)
        );

        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("AAAA,broken\n");
        std::fs::write(&path, text).unwrap();
        let error = set.reload("known").unwrap_err().to_string();
        assert!(
            error.ends_with(&format!(
                "{}:3: field 1 (vector): 4 base64 characters, 44 encode 32 components",
                path.display()
            )),
            "{error}"
        );
        let status = &set.status()[0];
        assert_eq!((status.version, status.descriptors), (2, 2));
        assert_eq!(set.lookup(&[descriptor(&random(1))]).len(), 1);

        write_list(&path, &[(&descriptor(&random(3)), "new.jpg")]);
        let report = set.reload_all().pop().unwrap().unwrap();
        assert_eq!((report.version, report.descriptors), (3, 2));
        assert!(set.lookup(&[descriptor(&random(1))]).is_empty());
        let found = set.lookup(&[descriptor(&random(2))]);
        assert_eq!(
            (
                found[0].label.as_str(),
                found[0].line,
                found[0].list_version
            ),
            ("learned", None, 3)
        );
        assert_eq!(set.lookup(&[descriptor(&random(3))])[0].line, Some(2));
        assert!(matches!(
            set.reload("other"),
            Err(DescriptorListSetError::UnknownList(_))
        ));
        let status = &set.status()[0];
        assert_eq!((status.version, status.added_at_runtime), (3, 1));
        assert!(status.memory_bytes >= 2 * DIM);
    }

    #[test]
    fn a_file_holding_no_descriptor_is_refused_unless_the_list_allows_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.txt");
        let refusal = format!(
            "descriptor list \"known\": {} holds no descriptor (at most a header); \
             set allow_empty = true on [[descriptorlist]] \"known\" if that is intended",
            path.display()
        );
        let config = DescriptorListConfig::new("known", &path);
        for content in ["", "# nothing\n", "livegate-descriptors 1 model=m dim=32\n"] {
            std::fs::write(&path, content).unwrap();
            let error = DescriptorListSet::load(std::slice::from_ref(&config), &model());
            assert_eq!(error.err().unwrap().to_string(), refusal, "{content:?}");
        }
        write_list(&path, &[(&descriptor(&random(1)), "a.jpg")]);
        let set = DescriptorListSet::load(std::slice::from_ref(&config), &model()).unwrap();
        std::fs::write(&path, "").unwrap();
        assert_eq!(set.reload("known").unwrap_err().to_string(), refusal);
        assert_eq!(
            set.lookup(&[descriptor(&random(1))]).len(),
            1,
            "still matching"
        );

        let allowed = DescriptorListConfig {
            allow_empty: true,
            ..config
        };
        let set = DescriptorListSet::load(std::slice::from_ref(&allowed), &model()).unwrap();
        assert_eq!(set.status()[0].descriptors, 0);
        assert!(set.lookup(&[descriptor(&random(1))]).is_empty());
        assert!(DescriptorListSet::load(&[], &model()).unwrap().is_empty());
    }

    #[test]
    fn near_duplicate_additions_are_skipped_and_the_cap_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("learned.txt");
        write_list(&path, &[(&descriptor(&random(1)), "file.jpg")]);
        let config = DescriptorListConfig {
            max_descriptors: 3,
            ..DescriptorListConfig::new("learned", &path)
        };
        let set = DescriptorListSet::load(&[config], &model()).unwrap();
        // One near the file's entry, one new, then the same new one re-encoded.
        let batch = [
            added(near(1, 0.9999, 50), "again"),
            added(descriptor(&random(2)), "new"),
            added(near(2, 0.9995, 51), "new again"),
        ];
        let counts = |report: DescriptorAddReport| {
            let counted = (report.added, report.already_present);
            (report.version, report.descriptors, counted)
        };
        assert_eq!(counts(set.add("learned", &batch).unwrap()), (2, 2, (1, 2)));
        let again = set.add("learned", &batch).unwrap();
        assert_eq!(again.build_time, Duration::ZERO);
        assert_eq!(counts(again), (2, 2, (0, 3)));
        // A distinct picture at 0.99 is not a duplicate.
        let report = set
            .add("learned", &[added(near(2, 0.99, 52), "edit")])
            .unwrap();
        assert_eq!((report.version, report.descriptors), (3, 3));

        let error = set
            .add("learned", &[added(descriptor(&random(4)), "over")])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "descriptor list \"learned\": more than its cap of 3 descriptors (max_descriptors), run-time additions included"
        );
        assert_eq!(set.status()[0].version, 3);
        let short = Descriptor::new(vec![1.0; 4]).unwrap();
        let error = set.add("learned", &[added(short, "short")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "descriptor list \"learned\": a 4-dimensional query against 32-dimensional descriptors"
        );
        assert!(matches!(
            set.add("other", &batch),
            Err(DescriptorListSetError::UnknownList(_))
        ));
    }
}
