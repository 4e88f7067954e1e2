//! Evidence frames (`[evidence]`): for every match, alert, shadow cut and cut, the
//! analysed keyframe that triggered it, kept as a small JPEG ([`jpeg`]) with what a
//! reviewer needs beside it (the frame's PDQ hash, its descriptor when one was computed,
//! the deciding signal, the stream, the reason) and a review state; and, opt-in, the
//! latest analysed keyframe of each live stream as a thumbnail.
//!
//! Items live in a memory ring of `memory_frames` (the review queue), and with `dir` on
//! disk too ([`disk`]: written by a background thread, retained by count and age,
//! reloaded at startup). Capture happens on the thread that decided, after the decision
//! was acted on (a cut is requested and a gated keyframe answered first): the relay never
//! waits on it. Ids are 16 random lowercase hex digits, so an id cannot be guessed.
//!
//! Memory per item: the JPEG (a 480×270 keyframe at quality 80 is 15–40 KB), about 1 KB of
//! fields, and 2 KB for a 512-d descriptor: the ring of 500 holds 10–25 MB.

mod disk;
pub mod jpeg;

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info, warn};

use crate::actions::AuditEvent;
use crate::config::InvalidKey;
use crate::stream::StreamId;

pub use disk::DiskError;
pub use jpeg::Source;

/// `[evidence]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Capture evidence frames at all.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// Width of evidence JPEGs in pixels (aspect kept, never enlarged).
    #[serde(default = "defaults::width")]
    pub width: u32,
    /// Width of thumbnails: smaller than evidence, since one is made per live stream.
    #[serde(default = "defaults::thumbnail_width")]
    pub thumbnail_width: u32,
    /// JPEG quality, 1–100 as libjpeg's.
    #[serde(default = "defaults::jpeg_quality")]
    pub jpeg_quality: u8,
    /// Items kept in memory: the review queue.
    #[serde(default = "defaults::memory_frames")]
    pub memory_frames: usize,
    /// Keep items on disk too (`ID.jpg` and `ID.json`), reloaded at startup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Items kept on disk; the oldest go first.
    #[serde(default = "defaults::max_files")]
    pub max_files: usize,
    /// Items older than this are removed from disk (`30d`, `12h`, ...).
    #[serde(default = "defaults::max_age")]
    pub max_age: String,
    /// Keep the latest analysed keyframe of each live stream as a thumbnail.
    #[serde(default)]
    pub thumbnails: bool,
    /// At most one thumbnail encode per stream per this many milliseconds.
    #[serde(default = "defaults::thumbnail_interval_ms")]
    pub thumbnail_interval_ms: u64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            enabled: defaults::enabled(),
            width: defaults::width(),
            thumbnail_width: defaults::thumbnail_width(),
            jpeg_quality: defaults::jpeg_quality(),
            memory_frames: defaults::memory_frames(),
            dir: None,
            max_files: defaults::max_files(),
            max_age: defaults::max_age(),
            thumbnails: false,
            thumbnail_interval_ms: defaults::thumbnail_interval_ms(),
        }
    }
}

mod defaults {
    pub fn enabled() -> bool {
        true
    }
    pub fn width() -> u32 {
        480
    }
    pub fn thumbnail_width() -> u32 {
        320
    }
    pub fn jpeg_quality() -> u8 {
        80
    }
    pub fn memory_frames() -> usize {
        500
    }
    pub fn max_files() -> usize {
        10_000
    }
    pub fn max_age() -> String {
        "30d".into()
    }
    pub fn thumbnail_interval_ms() -> u64 {
        10_000
    }
}

/// Bounds of `evidence.width`: a JPEG a reviewer can read, no larger than 4K.
const WIDTH_RANGE: std::ops::RangeInclusive<u32> = 64..=3840;
/// Bound of `evidence.memory_frames` (at ~40 KB an item, 400 MB).
const MAX_MEMORY_FRAMES: usize = 10_000;
/// Bound of `evidence.max_files`.
const MAX_FILES: usize = 1_000_000;

impl EvidenceConfig {
    pub fn validate(&self) -> Result<(), InvalidKey> {
        let invalid =
            |key: &str, message: String| Err(InvalidKey::new(format!("evidence.{key}"), message));
        for (key, width) in [
            ("width", self.width),
            ("thumbnail_width", self.thumbnail_width),
        ] {
            if !WIDTH_RANGE.contains(&width) {
                return invalid(
                    key,
                    format!(
                        "must be between {} and {}",
                        WIDTH_RANGE.start(),
                        WIDTH_RANGE.end()
                    ),
                );
            }
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return invalid("jpeg_quality", "must be between 1 and 100".into());
        }
        if self.memory_frames == 0 || self.memory_frames > MAX_MEMORY_FRAMES {
            return invalid(
                "memory_frames",
                format!("must be between 1 and {MAX_MEMORY_FRAMES}"),
            );
        }
        if self.max_files == 0 || self.max_files > MAX_FILES {
            return invalid("max_files", format!("must be between 1 and {MAX_FILES}"));
        }
        if let Err(error) = self.max_age_duration() {
            return invalid("max_age", error);
        }
        if self
            .dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return invalid("dir", "must not be empty".into());
        }
        if self.thumbnail_interval_ms < 100 {
            return invalid(
                "thumbnail_interval_ms",
                "must be at least 100 (it is the thumbnail rate limit)".into(),
            );
        }
        Ok(())
    }

    /// `max_age` as a duration; the error says what was wrong.
    pub fn max_age_duration(&self) -> Result<Duration, String> {
        match humantime::parse_duration(&self.max_age) {
            Ok(age) if age >= Duration::from_secs(60) => Ok(age),
            Ok(_) => Err("must be at least 1m".into()),
            Err(error) => Err(format!(
                "{:?} is not a duration such as \"30d\" or \"12h\": {error}",
                self.max_age
            )),
        }
    }
}

/// An evidence id: 16 random lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EvidenceId(u64);

impl EvidenceId {
    /// A new id from the kernel's random source; `None` if it fails (never on Linux ≥
    /// 3.17): evidence is then not captured rather than given a guessable id.
    pub fn random() -> Option<EvidenceId> {
        let mut bytes = [0u8; 8];
        crate::stream::os_random(&mut bytes).ok()?;
        Some(EvidenceId(u64::from_le_bytes(bytes)))
    }

    /// Parses exactly 16 lowercase hex digits (what [`std::fmt::Display`] writes).
    pub fn parse(text: &str) -> Option<EvidenceId> {
        (text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u64::from_str_radix(text, 16).ok().map(EvidenceId))
        .flatten()
    }
}

impl std::fmt::Display for EvidenceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where an item is in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Open,
    Confirmed,
    Dismissed,
}

/// An item's review: its state and, once reviewed, who did it, when, why and (for a
/// confirmation) into which list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Review {
    pub state: ReviewState,
    pub actor: Option<String>,
    pub time: Option<String>,
    pub reason: Option<String>,
    pub list: Option<String>,
}

impl Review {
    pub fn open() -> Review {
        Review {
            state: ReviewState::Open,
            actor: None,
            time: None,
            reason: None,
            list: None,
        }
    }
}

/// What is kept about an evidence frame, as `GET /v1/evidence/{id}/info` shows it (less
/// `live`, which the route adds) and as `ID.json` stores it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct EvidenceInfo {
    pub id: String,
    pub time: String,
    pub event: AuditEvent,
    pub stream_id: String,
    pub app: String,
    pub key_fingerprint: Option<String>,
    pub client: String,
    pub pts_seconds: Option<f64>,
    pub width: u32,
    pub height: u32,
    /// The picture's PDQ hash (hex) and quality, as analysed.
    pub pdq: Option<String>,
    pub pdq_quality: Option<u8>,
    pub has_descriptor: bool,
    /// The audit record's signal.
    pub signal: Option<serde_json::Value>,
    pub reason: String,
    pub review: Review,
}

/// One evidence frame.
#[derive(Debug)]
pub struct EvidenceItem {
    pub id: EvidenceId,
    pub jpeg: Arc<[u8]>,
    /// The fields; the review and descriptor change under the lock.
    state: Mutex<ItemState>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct ItemState {
    info: EvidenceInfo,
    /// The whole picture's descriptor, when one was computed for this keyframe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    descriptor: Option<Vec<f32>>,
    /// The stream offset of the keyframe (to attach a descriptor computed later).
    #[serde(default)]
    offset: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EvidenceItem {
    pub fn info(&self) -> EvidenceInfo {
        lock(&self.state).info.clone()
    }

    pub fn descriptor(&self) -> Option<Vec<f32>> {
        lock(&self.state).descriptor.clone()
    }

    fn matches(&self, stream_id: &str, offset: u64) -> bool {
        let state = lock(&self.state);
        state.offset == offset && state.info.stream_id == stream_id
    }
}

/// What a decision's capture knows besides the picture.
#[derive(Debug, Clone)]
pub struct Capture {
    pub id: EvidenceId,
    pub event: AuditEvent,
    pub stream_id: StreamId,
    pub app: String,
    pub key_fingerprint: Option<String>,
    pub client: String,
    pub pts_seconds: Option<f64>,
    pub offset: u64,
    pub pdq: Option<(String, u8)>,
    pub signal: Option<serde_json::Value>,
    /// A detection's box in the picture's pixels.
    pub bbox: Option<[f32; 4]>,
    pub reason: String,
}

/// Why a review could not be recorded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReviewError {
    #[error("evidence {0} is already {1}")]
    AlreadyReviewed(String, &'static str),
}

/// A live stream's latest thumbnail.
struct Thumbnail {
    jpeg: Option<Arc<[u8]>>,
    /// When the last encode was made (the rate limit).
    encoded_at: Instant,
}

/// Counters for metrics and the benchmark.
#[derive(Debug, Default)]
pub struct EvidenceStats {
    pub captured: AtomicU64,
    pub thumbnails: AtomicU64,
    pub encode_errors: AtomicU64,
    /// Sum of encode times (evidence and thumbnails), for the mean.
    pub encode_micros_total: AtomicU64,
    pub disk_dropped: AtomicU64,
}

/// The evidence ring, its disk copy and the thumbnails.
pub struct EvidenceStore {
    config: EvidenceConfig,
    ring: Mutex<VecDeque<Arc<EvidenceItem>>>,
    disk: Option<disk::DiskWriter>,
    thumbnails: Mutex<HashMap<StreamId, Thumbnail>>,
    pub stats: EvidenceStats,
}

impl EvidenceStore {
    /// Opens the store; with `dir`, creates it if needed, reloads the newest
    /// `memory_frames` items and starts the writer thread.
    pub fn open(config: EvidenceConfig) -> Result<Arc<EvidenceStore>, DiskError> {
        let mut ring = VecDeque::with_capacity(config.memory_frames.min(1024));
        let disk = match (&config.dir, config.enabled) {
            (Some(dir), true) => {
                let max_age = config
                    .max_age_duration()
                    .map_err(|problem| DiskError::Config(format!("evidence.max_age: {problem}")))?;
                let (writer, reloaded) =
                    disk::DiskWriter::start(dir, config.max_files, max_age, config.memory_frames)?;
                for (state, jpeg) in reloaded {
                    if let Some(id) = EvidenceId::parse(&state.info.id) {
                        ring.push_back(Arc::new(EvidenceItem {
                            id,
                            jpeg: jpeg.into(),
                            state: Mutex::new(state),
                        }));
                    }
                }
                info!(dir = %dir.display(), reloaded = ring.len(), "evidence frames kept on disk");
                Some(writer)
            }
            _ => None,
        };
        Ok(Arc::new(EvidenceStore {
            config,
            ring: Mutex::new(ring),
            disk,
            thumbnails: Mutex::new(HashMap::new()),
            stats: EvidenceStats::default(),
        }))
    }

    pub fn config(&self) -> &EvidenceConfig {
        &self.config
    }

    /// An id for a decision's evidence, when evidence is captured.
    pub fn new_id(&self) -> Option<EvidenceId> {
        self.config.enabled.then(EvidenceId::random).flatten()
    }

    /// Encodes `picture` as the evidence of `capture` and keeps it.
    pub fn capture(&self, capture: Capture, picture: Source<'_>) {
        let Some(jpeg) = self.encode(picture, self.config.width, capture.bbox) else {
            return;
        };
        let state = ItemState {
            info: EvidenceInfo {
                id: capture.id.to_string(),
                time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                event: capture.event,
                stream_id: capture.stream_id.to_string(),
                app: capture.app,
                key_fingerprint: capture.key_fingerprint,
                client: capture.client,
                pts_seconds: capture.pts_seconds,
                width: jpeg.width,
                height: jpeg.height,
                pdq: capture.pdq.as_ref().map(|(hash, _)| hash.clone()),
                pdq_quality: capture.pdq.map(|(_, quality)| quality),
                has_descriptor: false,
                signal: capture.signal,
                reason: capture.reason,
                review: Review::open(),
            },
            descriptor: None,
            offset: capture.offset,
        };
        let item = Arc::new(EvidenceItem {
            id: capture.id,
            jpeg: jpeg.data.into(),
            state: Mutex::new(state),
        });
        self.stats.captured.fetch_add(1, Ordering::Relaxed);
        self.persist(&item, true);
        let mut ring = lock(&self.ring);
        if ring.len() >= self.config.memory_frames {
            ring.pop_front();
        }
        ring.push_back(item);
    }

    /// Attaches a keyframe's whole-picture descriptor, computed after its evidence was
    /// captured, to the items of that keyframe.
    pub fn attach_descriptor(&self, stream_id: StreamId, offset: u64, descriptor: &[f32]) {
        let stream_id = stream_id.to_string();
        let items: Vec<Arc<EvidenceItem>> = lock(&self.ring)
            .iter()
            .rev()
            .filter(|item| item.matches(&stream_id, offset))
            .cloned()
            .collect();
        for item in items {
            {
                let mut state = lock(&item.state);
                state.descriptor = Some(descriptor.to_vec());
                state.info.has_descriptor = true;
            }
            self.persist(&item, false);
        }
    }

    /// The item `id`, if the ring holds it.
    pub fn get(&self, id: EvidenceId) -> Option<Arc<EvidenceItem>> {
        lock(&self.ring)
            .iter()
            .rev()
            .find(|item| item.id == id)
            .cloned()
    }

    /// Items newest first that `keep` accepts, at most `limit`.
    pub fn newest(&self, limit: usize, keep: impl Fn(&EvidenceInfo) -> bool) -> Vec<EvidenceInfo> {
        let items: Vec<Arc<EvidenceItem>> = lock(&self.ring).iter().rev().cloned().collect();
        items
            .iter()
            .map(|item| item.info())
            .filter(|info| keep(info))
            .take(limit)
            .collect()
    }

    /// Marks an open item as reviewed (`review`), or says it was reviewed already; the
    /// caller then applies the review and [`Self::settle_review`]s it.
    pub fn claim_review(&self, item: &EvidenceItem, review: Review) -> Result<(), ReviewError> {
        let mut state = lock(&item.state);
        let name = match state.info.review.state {
            ReviewState::Open => {
                state.info.review = review;
                return Ok(());
            }
            ReviewState::Confirmed => "confirmed",
            ReviewState::Dismissed => "dismissed",
        };
        Err(ReviewError::AlreadyReviewed(item.id.to_string(), name))
    }

    /// Keeps a claimed review (persisting it) when it was applied, or opens the item again.
    pub fn settle_review(&self, item: &EvidenceItem, applied: bool) {
        if applied {
            self.persist(item, false);
        } else {
            lock(&item.state).info.review = Review::open();
        }
    }

    /// Writes an item to `dir` (its JPEG only the first time).
    fn persist(&self, item: &EvidenceItem, with_jpeg: bool) {
        let Some(disk) = &self.disk else { return };
        let state = lock(&item.state).clone();
        let json = match serde_json::to_vec_pretty(&state) {
            Ok(json) => json,
            Err(error) => {
                warn!(evidence = %item.id, %error, "cannot serialise evidence");
                return;
            }
        };
        let jpeg = with_jpeg.then(|| Arc::clone(&item.jpeg));
        if !disk.write(item.id.to_string(), json, jpeg) {
            self.stats.disk_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn encode(
        &self,
        picture: Source<'_>,
        width: u32,
        bbox: Option<[f32; 4]>,
    ) -> Option<jpeg::Jpeg> {
        let started = Instant::now();
        let encoded = jpeg::encode(picture, width, self.config.jpeg_quality, bbox);
        self.stats
            .encode_micros_total
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match encoded {
            Ok(jpeg) => Some(jpeg),
            Err(error) => {
                self.stats.encode_errors.fetch_add(1, Ordering::Relaxed);
                debug!(%error, "evidence frame not encoded");
                None
            }
        }
    }

    /// Whether a thumbnail of `stream` is due now (thumbnails on, and none encoded within
    /// `thumbnail_interval_ms`); if so the slot is taken, so the caller must encode.
    pub fn thumbnail_due(&self, stream: StreamId) -> bool {
        if !self.config.thumbnails {
            return false;
        }
        let interval = Duration::from_millis(self.config.thumbnail_interval_ms);
        let now = Instant::now();
        let mut thumbnails = lock(&self.thumbnails);
        match thumbnails.get_mut(&stream) {
            Some(thumbnail) if now.duration_since(thumbnail.encoded_at) < interval => false,
            Some(thumbnail) => {
                thumbnail.encoded_at = now;
                true
            }
            None => {
                thumbnails.insert(
                    stream,
                    Thumbnail {
                        jpeg: None,
                        encoded_at: now,
                    },
                );
                true
            }
        }
    }

    /// Encodes and keeps `stream`'s thumbnail (after [`Self::thumbnail_due`]); nothing
    /// if the stream was forgotten meanwhile.
    pub fn keep_thumbnail(&self, stream: StreamId, picture: Source<'_>) {
        let Some(jpeg) = self.encode(picture, self.config.thumbnail_width, None) else {
            return;
        };
        self.stats.thumbnails.fetch_add(1, Ordering::Relaxed);
        if let Some(thumbnail) = lock(&self.thumbnails).get_mut(&stream) {
            thumbnail.jpeg = Some(jpeg.data.into());
        }
    }

    /// `stream`'s latest thumbnail.
    pub fn thumbnail(&self, stream: StreamId) -> Option<Arc<[u8]>> {
        lock(&self.thumbnails)
            .get(&stream)
            .and_then(|thumbnail| thumbnail.jpeg.clone())
    }

    /// Drops `stream`'s thumbnail: it has ended.
    pub fn forget_stream(&self, stream: StreamId) {
        lock(&self.thumbnails).remove(&stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use livegate_signals::pdq::Image;

    fn picture(pixels: &[u8]) -> Image<'_> {
        Image {
            data: pixels,
            width: 160,
            height: 90,
            stride: 480,
        }
    }

    fn capture(id: EvidenceId, event: AuditEvent) -> Capture {
        Capture {
            id,
            event,
            stream_id: StreamId::local(7),
            app: "live".into(),
            key_fingerprint: Some("0123456789abcdef".into()),
            client: "192.0.2.1:5000".into(),
            pts_seconds: Some(1.5),
            offset: 42,
            pdq: Some(("ab".repeat(32), 90)),
            signal: None,
            bbox: None,
            reason: "matched".into(),
        }
    }

    #[test]
    fn ids_are_16_lowercase_hex_digits() {
        let id = EvidenceId::random().expect("random");
        let text = id.to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(EvidenceId::parse(&text), Some(id));
        for bad in [
            "",
            "0123",
            "0123456789ABCDEF",
            "0123456789abcdeg",
            "+123456789abcdef",
        ] {
            assert_eq!(EvidenceId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn validation_names_the_key() {
        type Change = fn(&mut EvidenceConfig);
        let cases: [(Change, &str); 7] = [
            (|c| c.width = 10, "evidence.width"),
            (|c| c.thumbnail_width = 5000, "evidence.thumbnail_width"),
            (|c| c.jpeg_quality = 0, "evidence.jpeg_quality"),
            (|c| c.memory_frames = 0, "evidence.memory_frames"),
            (|c| c.max_files = 0, "evidence.max_files"),
            (|c| c.max_age = "soon".into(), "evidence.max_age"),
            (
                |c| c.thumbnail_interval_ms = 5,
                "evidence.thumbnail_interval_ms",
            ),
        ];
        for (change, key) in cases {
            let mut config = EvidenceConfig::default();
            change(&mut config);
            assert_eq!(config.validate().expect_err(key).key, key);
        }
        EvidenceConfig::default()
            .validate()
            .expect("defaults are valid");
    }

    #[test]
    fn the_ring_is_bounded_and_newest_first() {
        let store = EvidenceStore::open(EvidenceConfig {
            memory_frames: 3,
            ..EvidenceConfig::default()
        })
        .expect("store");
        let pixels = vec![128u8; 160 * 90 * 3];
        let ids: Vec<EvidenceId> = (0..5).map(|_| store.new_id().expect("id")).collect();
        for id in &ids {
            store.capture(
                capture(*id, AuditEvent::Alert),
                Source::Rgb(&picture(&pixels)),
            );
        }
        let newest = store.newest(10, |_| true);
        let kept: Vec<String> = newest.iter().map(|info| info.id.clone()).collect();
        let expected: Vec<String> = ids[2..].iter().rev().map(ToString::to_string).collect();
        assert_eq!(kept, expected);
        assert!(store.get(ids[0]).is_none(), "the oldest left the ring");
        let item = store.get(ids[4]).expect("newest kept");
        assert_eq!((item.info().width, item.info().height), (160, 90));
        // A descriptor computed later for that keyframe joins it.
        store.attach_descriptor(StreamId::local(7), 42, &[0.5, 0.5]);
        assert!(item.info().has_descriptor);
        assert_eq!(item.descriptor(), Some(vec![0.5, 0.5]));
    }

    #[test]
    fn a_review_happens_once_and_a_failed_one_reopens() {
        let store = EvidenceStore::open(EvidenceConfig::default()).expect("store");
        let pixels = vec![128u8; 160 * 90 * 3];
        let id = store.new_id().expect("id");
        store.capture(
            capture(id, AuditEvent::Alert),
            Source::Rgb(&picture(&pixels)),
        );
        let item = store.get(id).expect("kept");
        let review = |state| Review {
            state,
            actor: Some("alice".into()),
            time: None,
            reason: Some("why".into()),
            list: None,
        };
        store
            .claim_review(&item, review(ReviewState::Confirmed))
            .expect("open");
        store.settle_review(&item, false);
        assert_eq!(
            item.info().review.state,
            ReviewState::Open,
            "failed: open again"
        );
        store
            .claim_review(&item, review(ReviewState::Dismissed))
            .expect("open");
        store.settle_review(&item, true);
        assert_eq!(
            store.claim_review(&item, review(ReviewState::Confirmed)),
            Err(ReviewError::AlreadyReviewed(id.to_string(), "dismissed"))
        );
        assert_eq!(item.info().review.actor.as_deref(), Some("alice"));
    }

    #[test]
    fn thumbnails_are_rate_limited_and_forgotten() {
        let store = EvidenceStore::open(EvidenceConfig {
            thumbnails: true,
            thumbnail_interval_ms: 60_000,
            ..EvidenceConfig::default()
        })
        .expect("store");
        let pixels = vec![128u8; 160 * 90 * 3];
        let stream = StreamId::local(9);
        assert!(store.thumbnail_due(stream));
        store.keep_thumbnail(stream, Source::Rgb(&picture(&pixels)));
        assert!(!store.thumbnail_due(stream), "within the interval");
        assert!(store.thumbnail(stream).is_some());
        store.forget_stream(stream);
        assert!(store.thumbnail(stream).is_none());
        let off = EvidenceStore::open(EvidenceConfig::default()).expect("store");
        assert!(!off.thumbnail_due(stream), "off by default");
    }
}
