//! What the hash lists ([`super::lists`]) and the descriptor lists
//! ([`super::descriptor_lists`]) share: one configured list's active version behind an
//! [`ArcSwap`], swapped whole by reloads and run-time additions that are serialised by a
//! lock lookups never take; a failed update leaves the previous version active and is
//! logged; a reload that drops more than half of a list's entries is accepted with a
//! warning.
//!
//! Lookups take [`LiveList::current`] (a snapshot, without locking), so they always see
//! one whole version and never wait for a reload.

use arc_swap::{ArcSwap, Guard};
use std::fmt::Display;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A reload keeping less than this fraction of a list's entries logs a warning.
const SHRINK_WARNING_FRACTION: f64 = 0.5;

/// A list's config as this module needs it: its name and file, and how logs name it.
pub(crate) trait ListFile {
    /// "hash list", "descriptor list".
    const KIND: &'static str;
    /// What the list holds: "hashes", "descriptors".
    const ENTRIES: &'static str;
    fn name(&self) -> &str;
    fn path(&self) -> &Path;
}

/// One version of a list as this module needs it.
pub(crate) trait ListVersion {
    /// Entries a lookup sees.
    fn len(&self) -> usize;
}

/// One configured list: its config and its active version.
pub(crate) struct LiveList<C, V> {
    pub config: C,
    /// The list's name, shared by every match it answers.
    pub name: Arc<str>,
    current: ArcSwap<V>,
    /// Serialises reloads and additions of this list (lookups never take it).
    updating: Mutex<()>,
}

impl<C: ListFile, V: ListVersion> LiveList<C, V> {
    pub fn new(config: C, first: V) -> Self {
        LiveList {
            name: Arc::from(config.name()),
            config,
            current: ArcSwap::from_pointee(first),
            updating: Mutex::new(()),
        }
    }

    /// The active version, without locking (for a lookup: hold it only while looking up).
    pub fn current(&self) -> Guard<Arc<V>> {
        self.current.load()
    }

    /// The active version (a snapshot: later updates do not change it).
    pub fn current_full(&self) -> Arc<V> {
        self.current.load_full()
    }

    /// Builds the next version with `build(previous)` (blocking: callers run it on a
    /// blocking thread) and swaps it in; on error the previous version stays active.
    pub fn reload<E: Display>(&self, build: impl FnOnce(&V) -> Result<V, E>) -> Result<Arc<V>, E> {
        let _updating = lock(&self.updating);
        let previous = self.current.load_full();
        let result = build(&previous);
        if let Ok(next) = &result {
            self.warn_if_shrunk(previous.len(), next.len());
        }
        self.swap_in(result)
    }

    /// Swaps in the version `change(current)` makes; `Ok(None)`: nothing changes (the
    /// current version is returned). On error the current version stays active.
    pub fn update<E: Display>(
        &self,
        change: impl FnOnce(&Arc<V>) -> Result<Option<V>, E>,
    ) -> Result<Arc<V>, E> {
        let _updating = lock(&self.updating);
        let current = self.current.load_full();
        match change(&current) {
            Ok(None) => Ok(current),
            Ok(Some(next)) => self.swap_in(Ok(next)),
            Err(error) => self.swap_in(Err(error)),
        }
    }

    fn swap_in<E: Display>(&self, result: Result<V, E>) -> Result<Arc<V>, E> {
        match result {
            Ok(next) => {
                let next = Arc::new(next);
                self.current.store(Arc::clone(&next));
                Ok(next)
            }
            Err(error) => {
                tracing::warn!(
                    list = %self.name,
                    %error,
                    "{} update failed; the previous version stays active",
                    C::KIND
                );
                Err(error)
            }
        }
    }

    /// Warns when a reload keeps less than [`SHRINK_WARNING_FRACTION`] of the entries: a
    /// file cut short by a deploy still parses, and a list that lost most of its entries
    /// matches little, so an operator should look (it is not refused: lists do get
    /// pruned).
    fn warn_if_shrunk(&self, previous: usize, entries: usize) {
        if (entries as f64) < previous as f64 * SHRINK_WARNING_FRACTION {
            let path = self.config.path().display();
            tracing::warn!(
                list = %self.name,
                path = %path,
                previous_entries = previous,
                entries,
                "{} {:?} shrank from {previous} to {entries} {} on reload; check that {path} is complete",
                C::KIND,
                self.config.name(),
                C::ENTRIES,
            );
        }
    }
}

/// A poisoned lock only means a panic mid-update of plain data; it stays usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The checks every list section shares: a name of ASCII letters, digits, `-`, `_` or
/// `.`, unique among `names` (the section's names so far), and a non-empty path. The
/// failing key (`name` or `path`) and why, for the section's `InvalidKey`.
pub fn check_name_and_path<'a>(
    name: &'a str,
    path: &std::path::Path,
    names: &mut std::collections::HashSet<&'a str>,
    section: &str,
) -> Option<(&'static str, String)> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Some((
            "name",
            "must be non-empty ASCII letters, digits, '-', '_' or '.'".into(),
        ));
    }
    if !names.insert(name) {
        return Some(("name", format!("used by two [[{section}]] entries")));
    }
    if path.as_os_str().is_empty() {
        return Some(("path", "must not be empty".into()));
    }
    None
}
