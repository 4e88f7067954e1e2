//! The configured hash lists (`[[hashlist]]`): loading, lookup, and hot reload.
//!
//! Each list's current version (index + metadata) is swapped whole
//! ([`LiveList`](super::live_list::LiveList)): a lookup takes a snapshot without locking
//! and so always sees one whole version; a reload reads and indexes the file on the
//! calling thread (callers run it on a blocking thread, never on a stream's path), then
//! swaps the new version in atomically. A file that fails to load leaves the previous
//! version active and the error, naming `file:line`, is returned and logged. A file holding no hash (empty or only comments: typically a truncated
//! deploy) fails to load too, unless the list says `allow_empty = true`: a list that
//! silently stops matching is worse than one that keeps its previous version. A reload
//! that drops more than half of a list's hashes is accepted with a warning.
//!
//! Hashes added at run time ([`ListSet::add_hashes`]) are visible at once (a new version
//! shares the index and scans the few additions linearly until they are indexed), kept in
//! memory and merged into every later reload of their list. An addition already in the
//! list (its file or earlier additions) or repeated within one call is skipped and
//! counted, so repeated posts or re-learned keyframes do not grow the list.

use crate::config::InvalidKey;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use livegate_signals::hash256::Hash256;
use livegate_signals::hashlist::{
    DEFAULT_MAX_HASHES, EntryMetadata, HashListBuilder, HashListError, ListLimits, ListMetadata,
};
use livegate_signals::index::{HashIndex, IndexError, Neighbor};

use super::live_list::{ListFile, ListVersion, LiveList, lock};

/// Largest accepted `max_distance`: beyond it a PDQ match means little.
pub const MAX_DISTANCE_LIMIT: u32 = 64;

/// What a match on a list asks the policy to do.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListAction {
    Cut,
    Alert,
    Log,
}

impl std::fmt::Display for ListAction {
    /// As the config spells it (`cut`, `alert`, `log`), in logs as in the API.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ListAction::Cut => "cut",
            ListAction::Alert => "alert",
            ListAction::Log => "log",
        })
    }
}

/// One `[[hashlist]]` entry of the config.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HashListConfig {
    /// Names the list in matches, logs, the admin API and `reload(name)`.
    pub name: String,
    /// The list file, relative to the working directory unless absolute.
    pub path: PathBuf,
    /// Hamming distance up to which a frame matches (PDQ's recommendation: 31).
    #[serde(default = "defaults::max_distance")]
    pub max_distance: u32,
    /// Frames whose PDQ quality is below this are not looked up in this list.
    #[serde(default = "defaults::min_quality")]
    pub min_quality: u32,
    #[serde(default = "defaults::action")]
    pub action: ListAction,
    /// Also look up the 7 rotated/flipped variants of each frame.
    #[serde(default = "defaults::dihedral")]
    pub dihedral: bool,
    /// Cap on lines carrying a hash; a longer file is refused.
    #[serde(default = "defaults::max_hashes")]
    pub max_hashes: usize,
    /// Accept a file holding no hash. Off: an empty or comment-only file is refused (at
    /// startup and on reload) since it is far more often a truncated deploy than intended.
    #[serde(default)]
    pub allow_empty: bool,
}

mod defaults {
    use super::{DEFAULT_MAX_HASHES, ListAction};

    pub fn max_distance() -> u32 {
        31
    }
    pub fn min_quality() -> u32 {
        50
    }
    pub fn action() -> ListAction {
        ListAction::Cut
    }
    pub fn dihedral() -> bool {
        true
    }
    pub fn max_hashes() -> usize {
        DEFAULT_MAX_HASHES
    }
}

impl ListFile for HashListConfig {
    const KIND: &'static str = "hash list";
    const ENTRIES: &'static str = "hashes";
    fn name(&self) -> &str {
        &self.name
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

impl HashListConfig {
    /// A list with every optional key at its default.
    pub fn new(name: &str, path: &Path) -> HashListConfig {
        HashListConfig {
            name: name.to_string(),
            path: path.to_path_buf(),
            max_distance: defaults::max_distance(),
            min_quality: defaults::min_quality(),
            action: defaults::action(),
            dihedral: defaults::dihedral(),
            max_hashes: defaults::max_hashes(),
            allow_empty: false,
        }
    }

    pub fn limits(&self) -> ListLimits {
        ListLimits {
            max_hashes: self.max_hashes,
            ..ListLimits::default()
        }
    }
}

/// Checks the `[[hashlist]]` entries (the files themselves are read by [`ListSet::load`]).
pub fn validate_configs(lists: &[HashListConfig]) -> Result<(), InvalidKey> {
    let mut names = HashSet::new();
    for (i, list) in lists.iter().enumerate() {
        let invalid = |name: &str, message: &str| {
            InvalidKey::new(format!("hashlist[{i}].{name}"), message.to_string())
        };
        if let Some((key, message)) =
            super::live_list::check_name_and_path(&list.name, &list.path, &mut names, "hashlist")
        {
            return Err(invalid(key, &message));
        }
        if list.max_distance > MAX_DISTANCE_LIMIT {
            return Err(invalid("max_distance", "must be 0..=64"));
        }
        if list.min_quality > 100 {
            return Err(invalid("min_quality", "must be 0..=100"));
        }
        if list.max_hashes == 0 || list.max_hashes > livegate_signals::index::MAX_HASHES {
            return Err(invalid("max_hashes", "must be 1..=4294967294"));
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ListSetError {
    #[error("no hash list named {0:?}")]
    UnknownList(String),
    #[error("hash list {name:?}: {source}")]
    Load { name: String, source: HashListError },
    #[error("hash list {name:?}: {source}")]
    Index { name: String, source: IndexError },
    #[error("hash list {name:?}: adding would exceed its cap of {max} hashes (max_hashes)")]
    Full { name: String, max: usize },
    #[error(
        "hash list {name:?}: {} holds no hash (empty or only comments); set allow_empty = true on [[hashlist]] {name:?} if that is intended",
        path.display()
    )]
    Empty { name: String, path: PathBuf },
}

/// Run-time additions are scanned linearly until there are more than this many since the
/// list was last indexed; then the list is re-indexed with them.
const MAX_UNINDEXED_ADDITIONS: usize = 4096;

/// A list's hashes with their index and metadata (ids are positions in both; the hashes
/// are sorted, as [`HashListBuilder::finish`] leaves them).
struct IndexedList {
    index: HashIndex,
    metadata: ListMetadata,
    duplicates_merged: usize,
}

/// One version of one list: what a lookup sees.
pub struct LoadedList {
    pub version: u64,
    pub loaded_at: SystemTime,
    /// Reading, parsing and indexing time of this version.
    pub build_time: Duration,
    /// Shared by the versions that differ only by run-time additions.
    indexed: Arc<IndexedList>,
    /// Hashes added at run time since `indexed` was built.
    unindexed: Vec<AddedHash>,
}

impl ListVersion for LoadedList {
    fn len(&self) -> usize {
        LoadedList::len(self)
    }
}

impl LoadedList {
    pub fn len(&self) -> usize {
        self.indexed.index.len() + self.unindexed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// File lines whose hash was already in the list (merged into the first).
    pub fn duplicates_merged(&self) -> usize {
        self.indexed.duplicates_merged
    }

    /// Run-time additions not yet in the index (looked up by a linear scan).
    pub fn unindexed_additions(&self) -> usize {
        self.unindexed.len()
    }

    /// `hashes` less those this version already holds and repeats within `hashes` (the
    /// first occurrence is kept), in their order.
    fn new_hashes(&self, hashes: &[AddedHash]) -> Vec<AddedHash> {
        let mut seen: HashSet<Hash256> = self.unindexed.iter().map(|added| added.hash).collect();
        let indexed = self.indexed.index.hashes();
        hashes
            .iter()
            .filter(|added| indexed.binary_search(&added.hash).is_err() && seen.insert(added.hash))
            .cloned()
            .collect()
    }

    /// Bytes held by the index, the metadata and the unindexed additions.
    pub fn memory_bytes(&self) -> usize {
        let unindexed: usize = self
            .unindexed
            .iter()
            .map(|added| size_of::<AddedHash>() + added.label.capacity())
            .sum();
        self.indexed.index.memory_bytes() + self.indexed.metadata.memory_bytes() + unindexed
    }
}

/// A list's state for status pages (`GET /v1/hashlists`).
#[derive(Debug, Clone, Serialize)]
pub struct ListStatus {
    pub name: String,
    pub path: PathBuf,
    pub action: ListAction,
    pub max_distance: u32,
    pub min_quality: u32,
    pub dihedral: bool,
    pub version: u64,
    pub loaded_at: SystemTime,
    pub build_time: Duration,
    pub hashes: usize,
    pub duplicates_merged: usize,
    pub added_at_runtime: usize,
    pub memory_bytes: usize,
}

/// A hash added at run time (e.g. learned from a cut stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedHash {
    pub hash: Hash256,
    pub quality: Option<u8>,
    /// Free text kept as the entry's metadata fields.
    pub label: String,
}

impl AddedHash {
    fn as_entry(&self) -> EntryMetadata<'_> {
        EntryMetadata {
            quality: self.quality,
            line: None,
            duplicates: 0,
            fields: &self.label,
        }
    }
}

/// One match of a frame against a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMatch {
    pub list: Arc<str>,
    pub action: ListAction,
    /// Version of the list that answered.
    pub list_version: u64,
    /// Index into the query's variants (0: the frame as decoded).
    pub variant: usize,
    pub hash: Hash256,
    pub distance: u32,
    pub quality: Option<u8>,
    /// Line in the list file; `None` for a hash added at run time.
    pub line: Option<u32>,
    pub fields: String,
}

/// Reusable buffers for [`ListSet::lookup_into`], one per worker thread.
#[derive(Default)]
pub struct LookupScratch {
    neighbors: Vec<Neighbor>,
}

/// One list: its live versions and the hashes added at run time (merged into every
/// reload).
struct NamedList {
    live: LiveList<HashListConfig, LoadedList>,
    added: Mutex<Vec<AddedHash>>,
}

/// All configured lists.
pub struct ListSet {
    lists: Vec<NamedList>,
}

/// Outcome of one list's reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub name: String,
    pub version: u64,
    pub hashes: usize,
    pub build_time: Duration,
}

/// Outcome of [`ListSet::add_hashes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddReport {
    pub name: String,
    /// The active version: a new one, or the previous one when nothing was new.
    pub version: u64,
    pub hashes: usize,
    /// Building the new version (zero when nothing was new).
    pub build_time: Duration,
    /// Hashes that were new to the list.
    pub added: usize,
    /// Hashes skipped: already in the list, or repeated earlier in the same call.
    pub already_present: usize,
}

impl ListSet {
    /// Loads every configured list; any missing or bad file is an error (at startup a
    /// list that cannot be read must not be silently empty).
    pub fn load(configs: &[HashListConfig]) -> Result<ListSet, ListSetError> {
        let lists = configs
            .iter()
            .map(|config| {
                let loaded = build(config, None, &[], 1)?;
                Ok(NamedList {
                    live: LiveList::new(config.clone(), loaded),
                    added: Mutex::new(Vec::new()),
                })
            })
            .collect::<Result<Vec<_>, ListSetError>>()?;
        Ok(ListSet { lists })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.lists.iter().map(|list| list.live.config.name.as_str())
    }

    /// The current version of a list (a snapshot: later reloads do not change it).
    pub fn current(&self, name: &str) -> Option<Arc<LoadedList>> {
        self.find(name).ok().map(|list| list.live.current_full())
    }

    pub fn status(&self) -> Vec<ListStatus> {
        self.lists
            .iter()
            .map(|list| {
                let loaded = list.live.current();
                let config = &list.live.config;
                ListStatus {
                    name: config.name.clone(),
                    path: config.path.clone(),
                    action: config.action,
                    max_distance: config.max_distance,
                    min_quality: config.min_quality,
                    dihedral: config.dihedral,
                    version: loaded.version,
                    loaded_at: loaded.loaded_at,
                    build_time: loaded.build_time,
                    hashes: loaded.len(),
                    duplicates_merged: loaded.duplicates_merged(),
                    added_at_runtime: lock(&list.added).len(),
                    memory_bytes: loaded.memory_bytes(),
                }
            })
            .collect()
    }

    /// Looks a frame up in every list. `variants[0]` is the frame's hash, the others its
    /// dihedral variants (used by lists with `dihedral = true`); `quality` is the frame's
    /// PDQ quality. A stored hash matched by several variants is reported once, with its
    /// smallest distance. Results: nearest first.
    pub fn lookup(&self, variants: &[Hash256], quality: u8) -> Vec<ListMatch> {
        let mut out = Vec::new();
        self.lookup_into(variants, quality, &mut LookupScratch::default(), &mut out);
        out
    }

    /// [`ListSet::lookup`] into `out` (cleared first) with reusable buffers.
    pub fn lookup_into(
        &self,
        variants: &[Hash256],
        quality: u8,
        scratch: &mut LookupScratch,
        out: &mut Vec<ListMatch>,
    ) {
        out.clear();
        for list in &self.lists {
            let config = &list.live.config;
            if u32::from(quality) < config.min_quality {
                continue;
            }
            let loaded = list.live.current();
            let used = if config.dihedral { variants.len() } else { 1 };
            let first = out.len();
            for (variant, query) in variants.iter().take(used).enumerate() {
                let matched = |hash, distance, entry: Option<EntryMetadata<'_>>| ListMatch {
                    list: Arc::clone(&list.live.name),
                    action: config.action,
                    list_version: loaded.version,
                    variant,
                    hash,
                    distance,
                    quality: entry.and_then(|entry| entry.quality),
                    line: entry.and_then(|entry| entry.line),
                    fields: entry
                        .map(|entry| entry.fields.to_string())
                        .unwrap_or_default(),
                };
                let indexed = &loaded.indexed;
                indexed
                    .index
                    .search_into(query, config.max_distance, &mut scratch.neighbors);
                for neighbor in &scratch.neighbors {
                    let hash = indexed.index.hashes()[neighbor.id as usize];
                    let entry = indexed.metadata.get(neighbor.id as usize);
                    out.push(matched(hash, neighbor.distance, entry));
                }
                for added in &loaded.unindexed {
                    let distance = added.hash.distance(query);
                    if distance <= config.max_distance {
                        out.push(matched(added.hash, distance, Some(added.as_entry())));
                    }
                }
            }
            let found = &mut out[first..];
            found.sort_unstable_by_key(|found| (found.hash, found.distance, found.variant));
            let kept = dedup_by_hash(found);
            out.truncate(first + kept);
        }
        out.sort_by_key(|found| found.distance);
    }

    /// Re-reads one list's file (plus its run-time additions) and swaps it in. Blocking:
    /// run it on a blocking thread. On error the previous version stays active.
    pub fn reload(&self, name: &str) -> Result<ReloadReport, ListSetError> {
        let list = self.find(name)?;
        let loaded = list.live.reload(|previous| {
            let added = lock(&list.added).clone();
            build(&list.live.config, None, &added, previous.version + 1)
        })?;
        Ok(ReloadReport {
            name: list.live.config.name.clone(),
            version: loaded.version,
            hashes: loaded.len(),
            build_time: loaded.build_time,
        })
    }

    /// [`ListSet::reload`] for every list, in config order.
    pub fn reload_all(&self) -> Vec<Result<ReloadReport, ListSetError>> {
        self.lists
            .iter()
            .map(|list| self.reload(&list.live.config.name))
            .collect()
    }

    /// Adds hashes to a list at run time (kept across reloads, not written to its file).
    /// They are visible to lookups on return. Hashes the list already holds, and repeats
    /// within `hashes`, are skipped (counted in the report); when nothing is new the
    /// version stays. Cheap: the new version shares the current index and scans the
    /// additions linearly, until more than 4096 have accumulated and the list is
    /// re-indexed (from memory, without re-reading the file).
    pub fn add_hashes(&self, name: &str, hashes: &[AddedHash]) -> Result<AddReport, ListSetError> {
        let list = self.find(name)?;
        let config = &list.live.config;
        let started = Instant::now();
        let mut new = Vec::new();
        let loaded = list.live.update(|current| {
            new = current.new_hashes(hashes);
            if new.is_empty() {
                return Ok(None);
            }
            let version = current.version + 1;
            let mut unindexed = current.unindexed.clone();
            unindexed.extend_from_slice(&new);
            let next = if current.len() + new.len() > config.max_hashes {
                return Err(ListSetError::Full {
                    name: config.name.clone(),
                    max: config.max_hashes,
                });
            } else if unindexed.len() > MAX_UNINDEXED_ADDITIONS {
                build(config, Some(&current.indexed), &unindexed, version)?
            } else {
                LoadedList {
                    version,
                    loaded_at: SystemTime::now(),
                    build_time: started.elapsed(),
                    indexed: Arc::clone(&current.indexed),
                    unindexed,
                }
            };
            lock(&list.added).extend_from_slice(&new);
            Ok(Some(next))
        })?;
        Ok(AddReport {
            name: config.name.clone(),
            version: loaded.version,
            hashes: loaded.len(),
            build_time: if new.is_empty() {
                Duration::ZERO
            } else {
                loaded.build_time
            },
            added: new.len(),
            already_present: hashes.len() - new.len(),
        })
    }

    fn find(&self, name: &str) -> Result<&NamedList, ListSetError> {
        self.lists
            .iter()
            .find(|list| list.live.config.name == name)
            .ok_or_else(|| ListSetError::UnknownList(name.to_string()))
    }
}

/// Keeps the first match of each hash in a slice sorted by hash; returns how many remain
/// (moved to the front).
fn dedup_by_hash(found: &mut [ListMatch]) -> usize {
    let mut kept = 0;
    for i in 0..found.len() {
        if kept == 0 || found[kept - 1].hash != found[i].hash {
            found.swap(kept, i);
            kept += 1;
        }
    }
    kept
}

/// Reads `config`'s file (or starts from `base`), adds `added`, and indexes the result.
fn build(
    config: &HashListConfig,
    base: Option<&IndexedList>,
    added: &[AddedHash],
    version: u64,
) -> Result<LoadedList, ListSetError> {
    let started = Instant::now();
    let load_error = |source| ListSetError::Load {
        name: config.name.clone(),
        source,
    };
    let mut builder = HashListBuilder::new(&config.path, config.limits());
    match base {
        Some(indexed) => builder
            .extend_from(indexed.index.hashes(), &indexed.metadata)
            .map_err(load_error)?,
        None => {
            builder.read_file().map_err(load_error)?;
            if builder.is_empty() && !config.allow_empty {
                return Err(ListSetError::Empty {
                    name: config.name.clone(),
                    path: config.path.clone(),
                });
            }
        }
    }
    for entry in added {
        builder
            .push(entry.hash, entry.quality, 0, &entry.label)
            .map_err(load_error)?;
    }
    let list = builder.finish().map_err(load_error)?;
    let index = HashIndex::new(list.hashes).map_err(|source| ListSetError::Index {
        name: config.name.clone(),
        source,
    })?;
    let loaded = LoadedList {
        version,
        loaded_at: SystemTime::now(),
        build_time: started.elapsed(),
        indexed: Arc::new(IndexedList {
            index,
            metadata: list.metadata,
            duplicates_merged: list.duplicates_merged,
        }),
        unindexed: Vec::new(),
    };
    let hashes = loaded.len();
    tracing::info!(
        list = %config.name,
        path = %config.path.display(),
        action = %config.action,
        version,
        hashes,
        duplicates_merged = loaded.duplicates_merged(),
        bytes_per_hash = loaded.memory_bytes() / hashes.max(1),
        build_ms = loaded.build_time.as_millis() as u64,
        "hash list loaded"
    );
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn hash(seed: u64) -> Hash256 {
        let mix = |i: u64| {
            let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Hash256::from_words([mix(1), mix(2), mix(3), mix(4)])
    }

    /// `query` with its first `count` bits flipped.
    fn near(query: Hash256, count: u32) -> Hash256 {
        let mut words = query.words();
        for bit in 0..count as usize {
            words[bit / 64] ^= 1 << (63 - bit % 64);
        }
        Hash256::from_words(words)
    }

    fn write_list(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn configs_are_validated_with_key_names() {
        let good = HashListConfig::new("known", Path::new("lists/known.csv"));
        let other = HashListConfig::new("other", Path::new("lists/other.csv"));
        assert_eq!(validate_configs(&[good.clone(), other.clone()]), Ok(()));
        let cases = [
            (
                HashListConfig {
                    max_distance: 65,
                    ..other.clone()
                },
                "key `hashlist[1].max_distance`: must be 0..=64",
            ),
            (
                HashListConfig {
                    min_quality: 101,
                    ..other.clone()
                },
                "key `hashlist[1].min_quality`: must be 0..=100",
            ),
            (
                HashListConfig {
                    name: "bad name".into(),
                    ..other.clone()
                },
                "key `hashlist[1].name`: must be non-empty ASCII letters, digits, '-', '_' or '.'",
            ),
            (
                good.clone(),
                "key `hashlist[1].name`: used by two [[hashlist]] entries",
            ),
            (
                HashListConfig {
                    max_hashes: 0,
                    ..other.clone()
                },
                "key `hashlist[1].max_hashes`: must be 1..=4294967294",
            ),
        ];
        for (second, expected) in cases {
            let error = validate_configs(&[good.clone(), second]).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn config_keys_have_documented_defaults() {
        let config: HashListConfig = toml::from_str("name = \"k\"\npath = \"k.csv\"\n").unwrap();
        assert_eq!(config, HashListConfig::new("k", Path::new("k.csv")));
        assert_eq!((config.max_distance, config.min_quality), (31, 50));
        assert_eq!(config.action, ListAction::Cut);
        assert!(config.dihedral);
        let error = toml::from_str::<HashListConfig>("name = \"k\"\npath = \"k\"\nbogus = 1\n")
            .unwrap_err();
        assert!(error.to_string().contains("bogus"), "{error}");
    }

    #[test]
    fn the_shipped_example_list_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("lists/example.csv");
        let set = ListSet::load(&[HashListConfig::new("example", &path)]).unwrap();
        let current = set.current("example").unwrap();
        assert_eq!(current.len(), 3);
        let video =
            Hash256::from_hex("23d3cfcccad3334b33f3cdcccacf330c33cccd30ef0d74b2bd0042b2d02828b7")
                .unwrap();
        let found = set.lookup(&[video], 100);
        assert_eq!(found[0].fields, "100,example-clip.mp4,2.000");
        assert_eq!(found[0].line, Some(8));
    }

    #[test]
    fn a_missing_or_bad_file_fails_startup_with_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let missing = HashListConfig::new("known", &dir.path().join("nope.csv"));
        let error = ListSet::load(&[missing]).err().unwrap().to_string();
        assert!(
            error.starts_with("hash list \"known\": cannot read hash list"),
            "{error}"
        );
        let path = dir.path().join("bad.csv");
        write_list(&path, &[hash(1).to_hex(), "oops".into()]);
        let error = ListSet::load(&[HashListConfig::new("bad", &path)])
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            error,
            format!(
                "hash list \"bad\": {}:2: no field is a 64-hex-digit hash",
                path.display()
            )
        );
    }

    #[test]
    fn lookups_apply_quality_dihedral_and_radius_per_list() {
        let dir = tempfile::tempdir().unwrap();
        let frame = hash(10);
        let rotated = hash(11);
        let cut_path = dir.path().join("cut.csv");
        write_list(
            &cut_path,
            &[
                format!("{},90,near.jpg", near(frame, 3).to_hex()),
                format!("{},80,rotated.jpg", near(rotated, 5).to_hex()),
                format!("{},70,far.jpg", near(frame, 40).to_hex()),
            ],
        );
        let log_path = dir.path().join("log.csv");
        write_list(
            &log_path,
            &[near(frame, 3).to_hex(), near(rotated, 1).to_hex()],
        );
        let cut = HashListConfig::new("cut", &cut_path);
        let log = HashListConfig {
            action: ListAction::Log,
            dihedral: false,
            min_quality: 80,
            max_distance: 2,
            ..HashListConfig::new("log", &log_path)
        };
        let set = ListSet::load(&[cut, log]).unwrap();
        let variants = [frame, rotated];

        let found = set.lookup(&variants, 100);
        let summary: Vec<(&str, usize, u32, &str)> = found
            .iter()
            .map(|m| (&*m.list, m.variant, m.distance, m.fields.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("cut", 0, 3, "90,near.jpg"),
                ("cut", 1, 5, "80,rotated.jpg")
            ]
        );
        assert_eq!(found[0].quality, Some(90));
        assert_eq!(found[0].line, Some(1));
        assert_eq!(found[0].action, ListAction::Cut);
        assert_eq!(found[0].hash, near(frame, 3));

        // Below the log list's min_quality only the cut list answers; the log list does
        // not look at variant 1 (dihedral = false) and its radius is 2.
        assert_eq!(set.lookup(&variants, 79).len(), 2);
        assert_eq!(set.lookup(&variants, 49).len(), 0);
        let log_only = set.lookup(&[near(frame, 3), near(rotated, 1)], 100);
        let logged: Vec<(&str, usize)> = log_only
            .iter()
            .filter(|m| m.action == ListAction::Log)
            .map(|m| (&*m.list, m.variant))
            .collect();
        assert_eq!(logged, [("log", 0)]);
    }

    #[test]
    fn a_hash_matched_by_several_variants_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sym.csv");
        let stored = hash(5);
        write_list(&path, &[stored.to_hex()]);
        let set = ListSet::load(&[HashListConfig::new("sym", &path)]).unwrap();
        let found = set.lookup(&[near(stored, 4), near(stored, 2), near(stored, 9)], 100);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].variant, found[0].distance), (1, 2));
    }

    #[test]
    fn a_bad_reload_keeps_the_old_version_and_additions_survive_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.csv");
        write_list(&path, &[format!("{},100,a", hash(1).to_hex())]);
        let set = ListSet::load(&[HashListConfig::new("known", &path)]).unwrap();
        assert_eq!(set.current("known").unwrap().version, 1);

        write_list(
            &path,
            &[hash(1).to_hex(), format!("{}zz", &hash(2).to_hex()[2..])],
        );
        let error = set.reload("known").unwrap_err().to_string();
        assert!(
            error.ends_with(":2: field 1: non-hex character 'z' at position 63"),
            "{error}"
        );
        let current = set.current("known").unwrap();
        assert_eq!((current.version, current.len()), (1, 1));
        assert_eq!(set.lookup(&[hash(1)], 100).len(), 1);

        let learned = AddedHash {
            hash: hash(3),
            quality: Some(77),
            label: "learned from stream 9".into(),
        };
        let report = set
            .add_hashes("known", std::slice::from_ref(&learned))
            .unwrap();
        assert_eq!((report.version, report.hashes), (2, 2));
        write_list(&path, &[hash(4).to_hex()]);
        let report = set.reload_all().pop().unwrap().unwrap();
        assert_eq!((report.version, report.hashes), (3, 2));
        let found = set.lookup(&[hash(3)], 100);
        assert_eq!(found[0].fields, "learned from stream 9");
        assert_eq!((found[0].line, found[0].quality), (None, Some(77)));
        assert!(set.lookup(&[hash(1)], 100).is_empty());
        assert!(matches!(
            set.reload("other"),
            Err(ListSetError::UnknownList(_))
        ));
        let status = set.status();
        assert_eq!((status[0].version, status[0].added_at_runtime), (3, 1));
    }

    #[test]
    fn a_file_holding_no_hash_is_refused_unless_the_list_allows_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.csv");
        let refusal = format!(
            "hash list \"known\": {} holds no hash (empty or only comments); \
             set allow_empty = true on [[hashlist]] \"known\" if that is intended",
            path.display()
        );
        let config = HashListConfig::new("known", &path);
        for content in ["", "\n\n", "# hash,quality,file\n  # truncated\n\n"] {
            std::fs::write(&path, content).unwrap();
            let error = ListSet::load(std::slice::from_ref(&config)).err().unwrap();
            assert_eq!(error.to_string(), refusal, "{content:?}");
        }

        write_list(&path, &[hash(1).to_hex(), hash(2).to_hex()]);
        let set = ListSet::load(std::slice::from_ref(&config)).unwrap();
        std::fs::write(&path, "# nothing left\n").unwrap();
        assert_eq!(set.reload("known").unwrap_err().to_string(), refusal);
        let current = set.current("known").unwrap();
        assert_eq!((current.version, current.len()), (1, 2));
        assert_eq!(set.lookup(&[hash(2)], 100).len(), 1, "still matching");

        let allowed = HashListConfig {
            allow_empty: true,
            ..config
        };
        let set = ListSet::load(std::slice::from_ref(&allowed)).unwrap();
        assert!(set.current("known").unwrap().is_empty());
        assert!(set.lookup(&[hash(2)], 100).is_empty());
        write_list(&path, &[hash(1).to_hex()]);
        assert_eq!(set.reload("known").unwrap().hashes, 1);
        std::fs::write(&path, "").unwrap();
        assert_eq!(set.reload("known").unwrap().hashes, 0);
        let parsed: HashListConfig =
            toml::from_str("name = \"k\"\npath = \"k.csv\"\nallow_empty = true\n").unwrap();
        assert!(parsed.allow_empty);
    }

    #[test]
    fn additions_already_in_the_list_or_repeated_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.csv");
        write_list(&path, &[hash(1).to_hex()]);
        let set = ListSet::load(&[HashListConfig::new("known", &path)]).unwrap();
        let added = |seed| AddedHash {
            hash: hash(seed),
            quality: None,
            label: format!("n{seed}"),
        };
        // One in the file, one repeated within the call.
        let batch = [added(1), added(2), added(3), added(2)];
        let report = set.add_hashes("known", &batch).unwrap();
        assert_eq!(
            (
                report.version,
                report.hashes,
                report.added,
                report.already_present
            ),
            (2, 3, 2, 2)
        );
        // The same batch again: nothing new, the version stays.
        let report = set.add_hashes("known", &batch).unwrap();
        assert_eq!(
            (
                report.version,
                report.hashes,
                report.added,
                report.already_present
            ),
            (2, 3, 0, 4)
        );
        // Against indexed additions too (a batch over 4096 re-indexes).
        let large: Vec<AddedHash> = (100..5_100).map(added).collect();
        assert_eq!(set.add_hashes("known", &large).unwrap().added, 5_000);
        assert_eq!(set.current("known").unwrap().unindexed_additions(), 0);
        let report = set.add_hashes("known", &large).unwrap();
        assert_eq!((report.added, report.already_present), (0, 5_000));
        set.reload("known").unwrap();
        let report = set.add_hashes("known", &batch).unwrap();
        assert_eq!((report.hashes, report.added), (5_003, 0));
        assert_eq!(set.status()[0].added_at_runtime, 5_002);
        let found = set.lookup(&[hash(2)], 100);
        assert_eq!((found.len(), found[0].fields.as_str()), (1, "n2"));
    }

    #[test]
    fn many_additions_are_indexed_and_the_cap_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("learned.csv");
        write_list(&path, &[hash(1).to_hex()]);
        let config = HashListConfig {
            max_hashes: 5_000,
            ..HashListConfig::new("learned", &path)
        };
        let set = ListSet::load(&[config]).unwrap();
        let additions: Vec<AddedHash> = (0..4_200)
            .map(|i| AddedHash {
                hash: hash(1_000 + i),
                quality: None,
                label: format!("n{i}"),
            })
            .collect();
        set.add_hashes("learned", &additions[..100]).unwrap();
        let current = set.current("learned").unwrap();
        assert_eq!((current.len(), current.unindexed_additions()), (101, 100));
        assert_eq!(set.lookup(&[hash(1_099)], 100)[0].fields, "n99");

        set.add_hashes("learned", &additions[100..]).unwrap();
        let current = set.current("learned").unwrap();
        assert_eq!((current.len(), current.unindexed_additions()), (4_201, 0));
        let found = set.lookup(&[hash(1_000 + 4_199)], 100);
        assert_eq!((found[0].fields.as_str(), found[0].line), ("n4199", None));
        assert_eq!(set.lookup(&[hash(1)], 100)[0].line, Some(1));

        let more: Vec<AddedHash> = (0..800)
            .map(|i| AddedHash {
                hash: hash(10_000 + i),
                quality: None,
                label: String::new(),
            })
            .collect();
        let error = set.add_hashes("learned", &more).unwrap_err();
        assert_eq!(
            error.to_string(),
            "hash list \"learned\": adding would exceed its cap of 5000 hashes (max_hashes)"
        );
        assert_eq!(set.current("learned").unwrap().version, 3);
    }

    #[test]
    fn lookups_during_reloads_see_one_whole_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swap.csv");
        let query = hash(42);
        // Version content alternates: odd versions hold 40 hashes labelled A, even ones 70
        // labelled B, all distinct and within distance 31 of the query.
        let content = move |version: u64| {
            let (label, count) = if version % 2 == 1 {
                ("A", 40)
            } else {
                ("B", 70)
            };
            let lines: Vec<String> = (0..count)
                .map(|i: u64| {
                    let mut words = near(query, (i % 25) as u32).words();
                    words[3] ^= i << 40;
                    format!("{},{label}", Hash256::from_words(words).to_hex())
                })
                .collect();
            (lines, label, count as usize)
        };
        write_list(&path, &content(1).0);
        let set = Arc::new(ListSet::load(&[HashListConfig::new("swap", &path)]).unwrap());
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (set, done) = (Arc::clone(&set), Arc::clone(&done));
                std::thread::spawn(move || {
                    let mut lookups = 0;
                    let mut scratch = LookupScratch::default();
                    let mut out = Vec::new();
                    while !done.load(Ordering::Relaxed) || lookups == 0 {
                        set.lookup_into(&[query], 100, &mut scratch, &mut out);
                        let version = out[0].list_version;
                        let (_, label, count) = content(version);
                        assert_eq!(out.len(), count, "version {version}");
                        assert!(out.iter().all(|m| m.list_version == version));
                        assert!(out.iter().all(|m| m.fields == label));
                        lookups += 1;
                    }
                    lookups
                })
            })
            .collect();
        for version in 2..=12 {
            write_list(&path, &content(version).0);
            let report = set.reload("swap").unwrap();
            assert_eq!(report.version, version);
        }
        done.store(true, Ordering::Relaxed);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    }
}
