//! The in-process backend: bans in a map, hashes and descriptors added straight to this
//! process's lists,
//! audit records in this process's trail (file, log, memory). Nothing is shared with
//! other processes, so a stream not served here cannot be cut from here. The cluster
//! backend keeps one of these as its node's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Backend, BanTarget, Fleet};
use crate::actions::{AuditRecord, AuditTrail};
use crate::signals::descriptor_lists::{
    AddedDescriptor, DescriptorAddReport, DescriptorListSet, DescriptorListSetError,
};
use crate::signals::lists::{AddReport, AddedHash, ListSet, ListSetError};

/// Bans held before the first sweep of expired ones.
const MIN_BAN_SWEEP: usize = 1024;

/// One process's shared state.
pub struct LocalBackend {
    bans: Mutex<HashMap<BanTarget, Instant>>,
    /// Map size at which expired bans are next swept.
    sweep_bans_at: AtomicUsize,
    lists: Arc<ListSet>,
    /// `None` without `[descriptor]`.
    descriptor_lists: Option<Arc<DescriptorListSet>>,
    audit: AuditTrail,
}

impl LocalBackend {
    pub fn new(
        lists: Arc<ListSet>,
        descriptor_lists: Option<Arc<DescriptorListSet>>,
        audit: AuditTrail,
    ) -> Self {
        LocalBackend {
            bans: Mutex::new(HashMap::new()),
            sweep_bans_at: AtomicUsize::new(MIN_BAN_SWEEP),
            lists,
            descriptor_lists,
            audit,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LocalBackend {
    /// The descriptor model's tag, with `[descriptor]`.
    pub fn descriptor_model(&self) -> Option<&str> {
        self.descriptor_lists
            .as_ref()
            .map(|lists| lists.model().tag())
    }

    /// Bans `target` until `until`, unless it is already banned for longer: bans from
    /// several places (this node, the fleet, a replay after a restart) never shorten
    /// each other.
    pub fn ban_until(&self, target: BanTarget, until: Instant) {
        let mut bans = lock(&self.bans);
        let entry = bans.entry(target).or_insert(until);
        if *entry < until {
            *entry = until;
        }
        // A fleet's bans are mostly of keys that never come back: expired ones are
        // swept whenever the map has doubled since the last sweep (amortised O(1)).
        if bans.len() >= self.sweep_bans_at.load(Ordering::Relaxed) {
            let now = Instant::now();
            bans.retain(|_, until| *until > now);
            self.sweep_bans_at
                .store((bans.len() * 2).max(MIN_BAN_SWEEP), Ordering::Relaxed);
        }
    }
}

impl Backend for LocalBackend {
    fn ban(&self, target: &BanTarget, duration: Duration) {
        self.ban_until(target.clone(), Instant::now() + duration);
    }

    fn ban_remaining(&self, target: &BanTarget) -> Option<Duration> {
        let mut bans = lock(&self.bans);
        let now = Instant::now();
        match bans.get(target) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                // Expired bans are dropped when next asked about, so the map holds only
                // targets that published again or are still banned.
                bans.remove(target);
                None
            }
            None => None,
        }
    }

    fn bans(&self) -> Vec<(BanTarget, Duration)> {
        let now = Instant::now();
        lock(&self.bans)
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(target, until)| (target.clone(), *until - now))
            .collect()
    }

    fn lift_ban(&self, target: &BanTarget) -> bool {
        lock(&self.bans)
            .remove(target)
            .is_some_and(|until| until > Instant::now())
    }

    fn add_hashes(&self, list: &str, hashes: &[AddedHash]) -> Result<AddReport, ListSetError> {
        self.lists.add_hashes(list, hashes)
    }

    fn add_descriptors(
        &self,
        list: &str,
        entries: &[AddedDescriptor],
    ) -> Result<DescriptorAddReport, DescriptorListSetError> {
        match &self.descriptor_lists {
            Some(lists) => lists.add(list, entries),
            None => Err(DescriptorListSetError::UnknownList(list.to_string())),
        }
    }

    fn publish_audit(&self, record: &AuditRecord) {
        self.audit.append(record);
    }

    fn recent_audit(&self) -> Vec<AuditRecord> {
        self.audit.recent()
    }

    fn fleet(&self) -> Option<&Fleet> {
        // This process is the only node: a stream its registry does not hold is nowhere.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::{ActuatorConfig, AuditEvent};
    use crate::signals::lists::HashListConfig;
    use crate::stream::StreamId;
    use livegate_signals::hash256::Hash256;

    fn backend(dir: &tempfile::TempDir) -> LocalBackend {
        let path = dir.path().join("learned.csv");
        std::fs::write(&path, "# learned hashes\n").expect("write list");
        let config = HashListConfig {
            allow_empty: true,
            ..HashListConfig::new("learned", &path)
        };
        let lists = Arc::new(ListSet::load(&[config]).expect("load"));
        let config = ActuatorConfig {
            audit_memory: 2,
            ..ActuatorConfig::default()
        };
        LocalBackend::new(lists, None, AuditTrail::open(&config).expect("trail"))
    }

    #[test]
    fn bans_expire() {
        let dir = tempfile::tempdir().expect("dir");
        let backend = backend(&dir);
        let key = BanTarget::key("0123456789abcdef");
        backend.ban(&key, Duration::from_millis(50));
        let remaining = backend.ban_remaining(&key).expect("banned");
        assert!(remaining <= Duration::from_millis(50));
        assert_eq!(
            backend.ban_remaining(&BanTarget::key("fedcba9876543210")),
            None
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(backend.ban_remaining(&key), None);
    }

    #[test]
    fn added_hashes_are_looked_up_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let backend = backend(&dir);
        let hash = Hash256::from_words([1, 2, 3, 4]);
        let added = AddedHash {
            hash,
            quality: Some(90),
            label: "api".into(),
        };
        let report = backend
            .add_hashes("learned", std::slice::from_ref(&added))
            .expect("added");
        assert_eq!(report.added, 1);
        assert_eq!(backend.lists.lookup(&[hash], 100).len(), 1);
        assert!(matches!(
            backend.add_hashes("missing", &[added]),
            Err(ListSetError::UnknownList(_))
        ));
    }

    #[test]
    fn added_descriptors_are_looked_up_at_once() {
        use crate::signals::descriptor_lists::DescriptorListConfig;
        use livegate_signals::descriptor::{Descriptor, DescriptorModel};

        let dir = tempfile::tempdir().expect("dir");
        let model = DescriptorModel::new("m", 4).expect("model");
        let path = dir.path().join("learned.txt");
        std::fs::write(&path, format!("livegate-descriptors 1 {model}\n")).expect("write list");
        let config = DescriptorListConfig {
            allow_empty: true,
            ..DescriptorListConfig::new("learned", &path)
        };
        let lists = Arc::new(DescriptorListSet::load(&[config], &model).expect("load"));
        let without = backend(&dir);
        let trail = AuditTrail::open(&ActuatorConfig::default()).expect("trail");
        let backend = LocalBackend::new(Arc::clone(&without.lists), Some(lists), trail);
        let descriptor = Descriptor::new(vec![1.0, 2.0, 3.0, 4.0]).expect("descriptor");
        let added = AddedDescriptor {
            descriptor: descriptor.clone(),
            source: "live/key".into(),
            pts: Some(2.0),
            label: "api".into(),
        };
        let report = backend
            .add_descriptors("learned", std::slice::from_ref(&added))
            .expect("added");
        assert_eq!((report.added, report.descriptors), (1, 1));
        let lists = backend.descriptor_lists.as_ref().expect("lists");
        assert_eq!(lists.lookup(&[descriptor])[0].label, "api");
        let error = without.add_descriptors("learned", &[added]).unwrap_err();
        assert_eq!(error.to_string(), "no [[descriptorlist]] named \"learned\"");
    }

    #[test]
    fn the_audit_trail_keeps_the_latest_records() {
        let dir = tempfile::tempdir().expect("dir");
        let backend = backend(&dir);
        for id in 1..=3 {
            backend.publish_audit(&AuditRecord::now(
                AuditEvent::Match,
                StreamId::local(id),
                "seen",
            ));
        }
        let ids: Vec<StreamId> = backend
            .recent_audit()
            .iter()
            .filter_map(|record| record.stream_id)
            .collect();
        assert_eq!(ids, [StreamId::local(2), StreamId::local(3)]);
    }

    #[test]
    fn expired_bans_are_swept_as_the_map_grows() {
        let dir = tempfile::tempdir().expect("dir");
        let backend = backend(&dir);
        let soon = Instant::now() + Duration::from_millis(20);
        for index in 0..MIN_BAN_SWEEP - 1 {
            backend.ban_until(BanTarget::key(&format!("{index:016x}")), soon);
        }
        std::thread::sleep(Duration::from_millis(30));
        let lasting = BanTarget::key("ffffffffffffffff");
        backend.ban(&lasting, Duration::from_secs(60));
        assert_eq!(lock(&backend.bans).len(), 1);
        assert!(backend.ban_remaining(&lasting).is_some());
    }

    #[test]
    fn one_process_has_no_fleet_and_bans_never_shorten() {
        let dir = tempfile::tempdir().expect("dir");
        let backend = backend(&dir);
        assert!(backend.fleet().is_none());
        let key = BanTarget::key("0123456789abcdef");
        backend.ban(&key, Duration::from_secs(60));
        backend.ban_until(key.clone(), Instant::now() + Duration::from_secs(1));
        let left = backend.ban_remaining(&key).expect("banned");
        assert!(left > Duration::from_secs(50), "{left:?}");
    }
}
