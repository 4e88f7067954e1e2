//! The run-time allowlist: key fingerprints an operator allowlisted from the review
//! console (dismissing an alert as a false positive with `allowlist_key`), beside the
//! config's `policy.allow_key_fingerprints`. Every stream's policy consults it at each
//! decision, so an entry takes effect on the key's live stream at once and on its next
//! streams; removing it does the same. It is node-local and kept in memory only (a
//! restart forgets it): the config's list is the durable one.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::RwLock;

/// Longest run-time allowlist: each entry is an operator's action, so this is never
/// reached in practice; it bounds memory all the same.
pub const MAX_ENTRIES: usize = 10_000;

/// Who allowlisted a key, when and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllowlistEntry {
    pub key_fingerprint: String,
    pub actor: String,
    pub time: String,
    pub reason: String,
    /// The evidence whose dismissal allowlisted the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// Key fingerprints allowlisted at run time.
#[derive(Debug, Default)]
pub struct RuntimeAllowlist {
    entries: RwLock<BTreeMap<String, AllowlistEntry>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the run-time allowlist is full ({MAX_ENTRIES} keys): remove entries first")]
pub struct AllowlistFull;

impl RuntimeAllowlist {
    /// Whether `key_fingerprint` is allowlisted (a read lock and one lookup: it runs on
    /// every non-clear decision).
    pub fn contains(&self, key_fingerprint: &str) -> bool {
        self.read().contains_key(key_fingerprint)
    }

    /// Adds (or replaces) an entry.
    pub fn add(&self, entry: AllowlistEntry) -> Result<(), AllowlistFull> {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&entry.key_fingerprint) {
            return Err(AllowlistFull);
        }
        entries.insert(entry.key_fingerprint.clone(), entry);
        Ok(())
    }

    /// Removes `key_fingerprint`'s entry, returning it.
    pub fn remove(&self, key_fingerprint: &str) -> Option<AllowlistEntry> {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key_fingerprint)
    }

    /// Every entry, by fingerprint.
    pub fn entries(&self) -> Vec<AllowlistEntry> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, AllowlistEntry>> {
        // Poisoning only means a panic mid-insert of a plain map; it stays usable.
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
