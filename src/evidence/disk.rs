//! Evidence on disk (`evidence.dir`): each item is `ID.jpg` and `ID.json`, written by one
//! background thread (never by the relay or an analysis worker: they only queue, and a
//! full queue drops the write and counts it). The thread also keeps the retention: at
//! most `max_files` items, none older than `max_age` (by the JPEG's modification time),
//! checked after each write and every minute. At startup the directory is read, the
//! retention applied, and the newest items reloaded into the memory ring, so the review
//! queue survives a restart.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};
use tracing::{error, warn};

use super::{EvidenceId, ItemState};

/// Writes waiting for the thread; beyond this a write is dropped (and counted).
const QUEUE: usize = 256;
/// How often age retention runs when nothing is written.
const AGE_CHECK: Duration = Duration::from_secs(60);
/// An item's JSON larger than this is not one livegate wrote.
const MAX_JSON_BYTES: u64 = 1024 * 1024;
/// An evidence JPEG larger than this is not one livegate wrote.
const MAX_JPEG_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot use the evidence directory {path} (evidence.dir): {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// An item read back from disk: its fields and its JPEG.
pub(super) type Reloaded = (ItemState, Vec<u8>);

/// One write: the JSON always, the JPEG the first time.
struct Write {
    id: String,
    json: Vec<u8>,
    jpeg: Option<Arc<[u8]>>,
}

/// The queue to the writer thread.
pub(super) struct DiskWriter {
    queue: SyncSender<Write>,
}

/// The items on disk, oldest first, by the JPEG's modification time.
struct Kept {
    dir: PathBuf,
    items: VecDeque<(SystemTime, String)>,
    max_files: usize,
    max_age: Duration,
}

impl DiskWriter {
    /// Creates `dir` if needed, applies the retention, reads back the newest `reload`
    /// items and starts the writer thread.
    pub(super) fn start(
        dir: &Path,
        max_files: usize,
        max_age: Duration,
        reload: usize,
    ) -> Result<(DiskWriter, Vec<Reloaded>), DiskError> {
        let dir_error = |source| DiskError::Dir {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_error)?;
        let mut kept = Kept {
            dir: dir.to_path_buf(),
            items: list(dir).map_err(dir_error)?,
            max_files,
            max_age,
        };
        kept.retain(SystemTime::now());
        let reloaded = kept
            .items
            .iter()
            .rev()
            .take(reload)
            .filter_map(|(_, id)| read_item(dir, id))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let (queue, writes) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("livegate-evidence".into())
            .spawn(move || run(kept, writes))
            .map_err(dir_error)?;
        Ok((DiskWriter { queue }, reloaded))
    }

    /// Queues a write; false when the queue is full (the write is dropped).
    pub(super) fn write(&self, id: String, json: Vec<u8>, jpeg: Option<Arc<[u8]>>) -> bool {
        match self.queue.try_send(Write { id, json, jpeg }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The evidence items in `dir` (a JPEG and its JSON, named by an id), oldest first.
fn list(dir: &Path) -> std::io::Result<VecDeque<(SystemTime, String)>> {
    let mut items = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|name| name.strip_suffix(".jpg"))
            .filter(|id| EvidenceId::parse(id).is_some())
        else {
            continue;
        };
        if !dir.join(format!("{id}.json")).is_file() {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        items.push((modified, id.to_string()));
    }
    items.sort();
    Ok(items.into())
}

/// Reads an item back; `None` (logged) when it is unreadable or not livegate's.
fn read_item(dir: &Path, id: &str) -> Option<Reloaded> {
    let read = |name: String, max: u64| -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::fs::File::open(dir.join(name))?
            .take(max + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > max {
            return Err(std::io::Error::other(format!("larger than {max} bytes")));
        }
        Ok(bytes)
    };
    let loaded = read(format!("{id}.json"), MAX_JSON_BYTES).and_then(|json| {
        let state: ItemState = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
        if state.info.id != id {
            return Err(std::io::Error::other("its id is not its file name"));
        }
        Ok((state, read(format!("{id}.jpg"), MAX_JPEG_BYTES)?))
    });
    match loaded {
        Ok(item) => Some(item),
        Err(error) => {
            warn!(dir = %dir.display(), evidence = id, %error, "evidence item not reloaded");
            None
        }
    }
}

impl Kept {
    /// Removes the items beyond `max_files` and older than `max_age`.
    fn retain(&mut self, now: SystemTime) {
        while let Some((modified, _)) = self.items.front() {
            let too_old = now
                .duration_since(*modified)
                .is_ok_and(|age| age > self.max_age);
            if self.items.len() <= self.max_files && !too_old {
                break;
            }
            if let Some((_, id)) = self.items.pop_front() {
                for name in [format!("{id}.jpg"), format!("{id}.json")] {
                    if let Err(error) = std::fs::remove_file(self.dir.join(&name))
                        && error.kind() != std::io::ErrorKind::NotFound
                    {
                        warn!(file = %self.dir.join(&name).display(), %error, "cannot remove old evidence");
                    }
                }
            }
        }
    }

    fn write(&mut self, write: Write) -> std::io::Result<()> {
        if let Some(jpeg) = &write.jpeg {
            std::fs::write(self.dir.join(format!("{}.jpg", write.id)), jpeg)?;
            self.items.push_back((SystemTime::now(), write.id.clone()));
        }
        // Through a temporary file: a reload never reads half a review.
        let temporary = self.dir.join(format!("{}.json.tmp", write.id));
        std::fs::write(&temporary, &write.json)?;
        std::fs::rename(&temporary, self.dir.join(format!("{}.json", write.id)))
    }
}

fn run(mut kept: Kept, writes: Receiver<Write>) {
    loop {
        match writes.recv_timeout(AGE_CHECK) {
            Ok(write) => {
                let id = write.id.clone();
                if let Err(error) = kept.write(write) {
                    error!(dir = %kept.dir.display(), evidence = %id, %error, "cannot write evidence");
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        kept.retain(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EvidenceConfig, EvidenceId, EvidenceStore};
    use super::*;
    use crate::actions::AuditEvent;
    use crate::stream::StreamId;
    use livegate_signals::pdq::Image;

    fn capture(store: &EvidenceStore) -> EvidenceId {
        let pixels = vec![90u8; 64 * 64 * 3];
        let picture = Image {
            data: &pixels,
            width: 64,
            height: 64,
            stride: 192,
        };
        let id = store.new_id().expect("id");
        store.capture(
            super::super::Capture {
                id,
                event: AuditEvent::Alert,
                stream_id: StreamId::local(1),
                app: "live".into(),
                key_fingerprint: None,
                client: "192.0.2.1:1".into(),
                pts_seconds: None,
                offset: 0,
                pdq: None,
                signal: None,
                bbox: None,
                reason: "test".into(),
            },
            super::super::Source::Rgb(&picture),
        );
        id
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir).expect("dir").count()
    }

    fn eventually(done: impl Fn() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    #[test]
    fn disk_keeps_max_files_and_reloads_the_newest_at_startup() {
        let dir = tempfile::tempdir().expect("dir");
        let config = EvidenceConfig {
            dir: Some(dir.path().to_path_buf()),
            max_files: 3,
            memory_frames: 2,
            ..EvidenceConfig::default()
        };
        let store = EvidenceStore::open(config.clone()).expect("store");
        let ids: Vec<EvidenceId> = (0..5)
            .map(|_| {
                let id = capture(&store);
                // Distinct modification times order the items.
                std::thread::sleep(Duration::from_millis(20));
                id
            })
            .collect();
        assert!(
            eventually(
                || files(dir.path()) == 6 && dir.path().join(format!("{}.json", ids[4])).exists()
            ),
            "3 items (6 files) kept, found {}",
            files(dir.path())
        );
        assert!(!dir.path().join(format!("{}.jpg", ids[0])).exists());
        drop(store);
        let reopened = EvidenceStore::open(config).expect("reopen");
        let reloaded: Vec<String> = reopened
            .newest(10, |_| true)
            .into_iter()
            .map(|info| info.id)
            .collect();
        assert_eq!(reloaded, vec![ids[4].to_string(), ids[3].to_string()]);
        assert!(
            reopened
                .get(ids[4])
                .is_some_and(|item| item.jpeg.len() > 100)
        );
    }

    #[test]
    fn items_older_than_max_age_are_removed_and_strangers_left_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let mut kept = Kept {
            dir: dir.path().to_path_buf(),
            items: VecDeque::new(),
            max_files: 10,
            max_age: Duration::from_secs(3600),
        };
        for id in ["00000000000000aa", "00000000000000bb"] {
            kept.write(Write {
                id: id.into(),
                json: b"{}".to_vec(),
                jpeg: Some(Arc::from(&b"jpeg"[..])),
            })
            .expect("write");
        }
        std::fs::write(dir.path().join("notes.txt"), "not evidence").expect("write");
        // Two hours later, both are too old.
        kept.retain(SystemTime::now() + Duration::from_secs(7200));
        assert!(kept.items.is_empty());
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into())
            .collect();
        assert_eq!(left, vec!["notes.txt".to_string()]);
        // What is listed at startup: a JPEG with its JSON, named by an id.
        std::fs::write(dir.path().join("00000000000000cc.jpg"), "x").expect("write");
        std::fs::write(dir.path().join("00000000000000cc.json"), "{}").expect("write");
        std::fs::write(dir.path().join("00000000000000dd.jpg"), "x").expect("write");
        let listed: Vec<String> = list(dir.path())
            .expect("list")
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        assert_eq!(listed, vec!["00000000000000cc".to_string()]);
        // Its JSON is not an item: not reloaded, no panic.
        assert!(read_item(dir.path(), "00000000000000cc").is_none());
    }
}
