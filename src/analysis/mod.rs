//! Keyframe analysis off the relay path: sampling, a bounded queue per stream, and a
//! pool of worker threads running decode → PDQ → list lookup → policy → action.
//!
//! The pipeline after decode lives in [`pipeline`]; this file holds the pool, the
//! per-stream queue, decoding and what happens to a stream analysis cannot inspect.
//!
//! The relay only ever *offers* a keyframe: a constant-time push under a short lock.
//! When a stream's queue is full the oldest sample is dropped and counted
//! (`samples_shed`), so a slow worker pool costs analysis coverage, never relay latency.
//! Each stream is worked on by one worker at a time (its decoder and policy state are
//! sequential); streams are scheduled round-robin through a shared channel.
//!
//! A stream analysis cannot inspect — pictures over `max_picture_pixels`, or a keyframe
//! mostly made up by FFmpeg's error concealment (what a stream livegate reads differently
//! from the origin decodes to) — follows its listener's `on_parse_error`, as bytes the
//! demuxer cannot parse do: the session is cut, or analysis of it stops (logged and
//! counted in `livegate_streams_uninspectable_total`).
//!
//! Memory: a stream keeps only its decoder (a pool of one or two pictures of 1.5 bytes
//! per pixel, and per-macroblock tables, at most `max_picture_pixels`); the RGB picture
//! and PDQ's float buffers, about 11 bytes per pixel, belong to the worker and are reused
//! across the streams it serves.

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

use crate::actions::{Actions, AuditEvent, Cut, Finding, LearnedDescriptor};
use crate::config::InvalidKey;
use crate::config::OnParseError;
use crate::evidence::EvidenceStore;
use crate::media::decode::{self, Concealment, Deblocking, KeyframeDecoder, MediaError};
use crate::media::frame::FrameHasher;
use crate::policy::{OverloadMode, PolicyConfig, RuntimeAllowlist, SignalRules, StreamPolicy};
use crate::session::{Closer, EndKind, GateInbox, GateSignal, Outcome, SessionState};
use crate::signals::descriptor_lists::DescriptorListConfig;
use crate::signals::lists::{ListMatch, ListSet, LookupScratch};
use crate::stream::{AccessUnit, BitstreamFormat, CodecConfig, UninspectableReason};
use livegate_signals::descriptor::Descriptor;

mod classify;
mod describe;
mod pipeline;
pub use classify::{ClassifierPool, ClassifierStats};
pub use describe::{DescriptorPool, DescriptorStats};
use pipeline::{PipelineState, SampleTime};

/// `[analysis]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Worker threads decoding and hashing; 0 means one per CPU core.
    #[serde(default)]
    pub workers: usize,
    /// Samples waiting per stream; beyond it the oldest is shed.
    #[serde(default = "defaults::queue_per_stream")]
    pub queue_per_stream: usize,
    /// At most this many keyframes per second are sampled from one stream (streams
    /// with very short GOPs would otherwise cost a decode per fraction of a second).
    #[serde(default = "defaults::max_samples_per_second")]
    pub max_samples_per_second: f64,
    /// Largest picture (width × height) decoded; a stream with larger pictures cannot be
    /// inspected (`on_parse_error`).
    #[serde(default = "defaults::max_picture_pixels")]
    pub max_picture_pixels: u64,
    /// A keyframe with more than this share of its macroblocks concealed by the decoder
    /// makes the stream uninspectable (`on_parse_error`).
    #[serde(default = "defaults::max_concealed_fraction")]
    pub max_concealed_fraction: f64,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            workers: 0,
            queue_per_stream: defaults::queue_per_stream(),
            max_samples_per_second: defaults::max_samples_per_second(),
            max_picture_pixels: defaults::max_picture_pixels(),
            max_concealed_fraction: defaults::max_concealed_fraction(),
        }
    }
}

mod defaults {
    pub fn queue_per_stream() -> usize {
        2
    }
    pub fn max_samples_per_second() -> f64 {
        2.0
    }
    /// 4096×2304: admits UHD (3840×2160) and DCI 4K (4096×2160), the largest sizes
    /// platforms take for live ingest, and refuses 5K and up. Analysis holds about
    /// 11 bytes per pixel per worker (RGB picture, PDQ buffers) and one or two decoded
    /// pictures per stream: about 100 MB per worker and 15–30 MB per stream at this size.
    pub fn max_picture_pixels() -> u64 {
        4096 * 2304
    }
    /// Over TCP an honest encoder's keyframe decodes cleanly; a quarter of it made up
    /// means the bytes are not what the encoder wrote (or not what the origin reads).
    pub fn max_concealed_fraction() -> f64 {
        0.25
    }
}

/// Bounds of `analysis.max_picture_pixels`: 64×64, and 16384×16384 (FFmpeg's decoders
/// refuse larger pictures anyway).
const PICTURE_PIXELS_RANGE: std::ops::RangeInclusive<u64> = 64 * 64..=16384 * 16384;

impl AnalysisConfig {
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if self.queue_per_stream == 0 || self.queue_per_stream > 64 {
            return Err(InvalidKey::new(
                "analysis.queue_per_stream".into(),
                "must be between 1 and 64".into(),
            ));
        }
        if !(self.max_samples_per_second > 0.0 && self.max_samples_per_second <= 120.0) {
            return Err(InvalidKey::new(
                "analysis.max_samples_per_second".into(),
                "must be greater than 0 and at most 120".into(),
            ));
        }
        if self.workers > 1024 {
            return Err(InvalidKey::new(
                "analysis.workers".into(),
                "must be at most 1024".into(),
            ));
        }
        if !PICTURE_PIXELS_RANGE.contains(&self.max_picture_pixels) {
            return Err(InvalidKey::new(
                "analysis.max_picture_pixels".into(),
                format!(
                    "must be between {} and {}",
                    PICTURE_PIXELS_RANGE.start(),
                    PICTURE_PIXELS_RANGE.end()
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.max_concealed_fraction) {
            return Err(InvalidKey::new(
                "analysis.max_concealed_fraction".into(),
                "must be between 0 and 1".into(),
            ));
        }
        Ok(())
    }

    fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct AnalysisStats {
    pub keyframes_offered: AtomicU64,
    pub keyframes_skipped_by_rate: AtomicU64,
    pub samples_shed: AtomicU64,
    pub samples_analysed: AtomicU64,
    pub decoder_errors: AtomicU64,
    /// Keyframes FFmpeg decoded with error concealment, whatever the share.
    pub keyframes_concealed: AtomicU64,
    /// Streams analysis could not inspect, by [`UninspectableReason`] and `on_parse_error`.
    streams_uninspectable: [[AtomicU64; 2]; UninspectableReason::ALL.len()],
    pub matches: AtomicU64,
    /// Sum of (analysis finished − keyframe arrived), for the mean.
    pub analysis_latency_micros_total: AtomicU64,
}

/// Why analysis cannot inspect a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Uninspectable {
    /// Its pictures are larger than `analysis.max_picture_pixels`.
    PictureTooLarge { width: u64, height: u64 },
    /// A keyframe decoded with more than `analysis.max_concealed_fraction` concealed.
    KeyframeConcealed(Concealment),
}

impl Uninspectable {
    pub fn reason(&self) -> UninspectableReason {
        match self {
            Uninspectable::PictureTooLarge { .. } => UninspectableReason::PictureTooLarge,
            Uninspectable::KeyframeConcealed(_) => UninspectableReason::KeyframeConcealed,
        }
    }

    /// What went wrong, naming the config key that drew the line.
    fn describe(&self, config: &AnalysisConfig) -> String {
        match self {
            Uninspectable::PictureTooLarge { width, height } => format!(
                "picture size {width}x{height} ({} pixels) exceeds analysis.max_picture_pixels = {}",
                width.saturating_mul(*height),
                config.max_picture_pixels
            ),
            Uninspectable::KeyframeConcealed(concealment) => format!(
                "a keyframe decoded with {} of its {} macroblocks concealed ({:.0} %), over \
                 analysis.max_concealed_fraction = {}",
                concealment.concealed,
                concealment.macroblocks,
                concealment.fraction() * 100.0,
                config.max_concealed_fraction
            ),
        }
    }
}

impl AnalysisStats {
    /// Streams found uninspectable for `reason` and handled by `on_parse_error`.
    pub fn streams_uninspectable(
        &self,
        reason: UninspectableReason,
        on_parse_error: OnParseError,
    ) -> u64 {
        self.uninspectable_counter(reason, on_parse_error)
            .load(Ordering::Relaxed)
    }

    fn uninspectable_counter(
        &self,
        reason: UninspectableReason,
        on_parse_error: OnParseError,
    ) -> &AtomicU64 {
        let mode = match on_parse_error {
            OnParseError::Cut => 0,
            OnParseError::Pass => 1,
        };
        &self.streams_uninspectable[reason as usize][mode]
    }
}

struct Sample {
    /// The stream's codec config, or an empty one for a keyframe whose parameter sets
    /// are in-band.
    config: Arc<CodecConfig>,
    frame: AccessUnit,
    /// When the keyframe's first byte arrived from the publisher.
    arrived: Instant,
}

/// What analysis judges keyframes with, beside the policy.
pub struct SignalSources {
    /// The hash lists (PDQ), always there (possibly none configured).
    pub lists: Arc<ListSet>,
    /// Gets every `every_nth_sample`-th analysed picture of each stream.
    pub classifier: Option<Arc<ClassifierPool>>,
    /// Gets every `every_nth_sample`-th analysed picture of each stream, with the views
    /// to describe.
    pub descriptor: Option<Arc<DescriptorPool>>,
    /// `[[descriptorlist]]`, whose rules the policy applies to descriptor matches.
    pub descriptor_lists: Vec<DescriptorListConfig>,
}

/// Which lists a cut learns into (`actuator.learn_into` names a hash list, a descriptor
/// list, or both).
#[derive(Debug, Clone, Copy, Default)]
struct LearnInto {
    hashes: bool,
    descriptors: bool,
}

/// The analysis pool shared by all sessions.
pub struct Analysis {
    config: AnalysisConfig,
    policy: Arc<PolicyConfig>,
    rules: SignalRules,
    lists: Arc<ListSet>,
    actions: Arc<Actions>,
    classifier: Option<Arc<ClassifierPool>>,
    descriptor: Option<Arc<DescriptorPool>>,
    learn_into: LearnInto,
    /// Evidence frames of decisions, and thumbnails.
    evidence: Arc<EvidenceStore>,
    ready: Sender<Arc<StreamAnalysis>>,
    /// Gated streams (gate mode), which workers take before any other.
    ready_gated: Sender<Arc<StreamAnalysis>>,
    pub stats: Arc<AnalysisStats>,
}

impl Analysis {
    /// Starts the worker threads; `learn_into` is `actuator.learn_into`.
    pub fn start(
        config: AnalysisConfig,
        policy: PolicyConfig,
        signals: SignalSources,
        actions: Arc<Actions>,
        learn_into: Option<&str>,
        evidence: Arc<EvidenceStore>,
    ) -> Arc<Self> {
        let SignalSources {
            lists,
            classifier,
            descriptor,
            descriptor_lists,
        } = signals;
        let learn_into = LearnInto {
            hashes: lists.names().any(|name| Some(name) == learn_into),
            descriptors: descriptor.is_some()
                && descriptor_lists
                    .iter()
                    .any(|list| Some(list.name.as_str()) == learn_into),
        };
        let rules = SignalRules {
            classifier: classifier
                .as_ref()
                .map(|classifier| Arc::clone(classifier.config())),
            descriptor_lists: descriptor_lists.into(),
            allowlist: Arc::default(),
        };
        let (ready, work) = crossbeam_channel::unbounded::<Arc<StreamAnalysis>>();
        let (ready_gated, gated_work) = crossbeam_channel::unbounded::<Arc<StreamAnalysis>>();
        let stats = Arc::new(AnalysisStats::default());
        let workers = config.worker_count();
        for index in 0..workers {
            let (work, gated_work) = (work.clone(), gated_work.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("livegate-analysis-{index}"))
                .spawn(move || run_worker(gated_work, work));
            if let Err(error) = spawned {
                warn!(%error, index, "cannot start an analysis worker");
            }
        }
        info!(workers, "analysis workers started");
        Arc::new(Analysis {
            config,
            policy: Arc::new(policy),
            rules,
            lists,
            actions,
            classifier,
            descriptor,
            learn_into,
            evidence,
            ready,
            ready_gated,
            stats,
        })
    }

    pub fn actions(&self) -> &Arc<Actions> {
        &self.actions
    }

    pub fn evidence(&self) -> &Arc<EvidenceStore> {
        &self.evidence
    }

    /// The keys allowlisted at run time, which every stream's policy consults.
    pub fn allowlist(&self) -> &Arc<RuntimeAllowlist> {
        &self.rules.allowlist
    }

    pub fn classifier(&self) -> Option<&Arc<ClassifierPool>> {
        self.classifier.as_ref()
    }

    pub fn descriptor(&self) -> Option<&Arc<DescriptorPool>> {
        self.descriptor.as_ref()
    }

    /// The analysis state of a new session; `on_parse_error` is its listener's answer
    /// to a stream analysis cannot inspect.
    pub fn open_stream(
        self: &Arc<Self>,
        session: Arc<SessionState>,
        on_parse_error: OnParseError,
    ) -> Arc<StreamAnalysis> {
        Arc::new(StreamAnalysis {
            analysis: Arc::clone(self),
            session,
            on_parse_error,
            queue: Mutex::new(StreamQueue::default()),
            worker: Mutex::new(None),
            codec: Mutex::new(None),
            policy: Mutex::new(None),
            recent_descriptors: Mutex::new(VecDeque::new()),
            ended: AtomicBool::new(false),
            gate: OnceLock::new(),
        })
    }
}

#[derive(Default)]
struct StreamQueue {
    samples: VecDeque<Sample>,
    /// True while the stream sits in the ready channel or a worker is on it.
    scheduled: bool,
    last_sampled: Option<Instant>,
    last_analysed: Option<Instant>,
    last_overload_alert: Option<Instant>,
}

/// One stream's analysis: its queue (touched by the relay) and its worker state
/// (touched by one worker at a time).
pub struct StreamAnalysis {
    analysis: Arc<Analysis>,
    session: Arc<SessionState>,
    /// What the stream's listener does with a stream that cannot be inspected.
    on_parse_error: OnParseError,
    queue: Mutex<StreamQueue>,
    worker: Mutex<Option<WorkerState>>,
    codec: Mutex<Option<Arc<CodecConfig>>>,
    /// The stream's one policy, shared by the hash path and the classifier and
    /// descriptor threads; made at its first decision.
    policy: Mutex<Option<StreamPolicy>>,
    /// The whole-picture descriptors of the latest described keyframes, learned if the
    /// stream is cut (kept only when `learn_into` names a descriptor list).
    recent_descriptors: Mutex<VecDeque<LearnedDescriptor>>,
    ended: AtomicBool,
    /// Gate mode: where every keyframe's answers go (set once, before any keyframe).
    gate: OnceLock<Arc<GateInbox>>,
}

/// Queues `job` for a model's threads without waiting: a full queue sheds it and counts
/// it in `shed`; `gone` is logged when the threads have stopped. False when not queued.
fn queue_or_shed<T>(queue: &Sender<T>, job: T, shed: &AtomicU64, gone: &str) -> bool {
    match queue.try_send(job) {
        Ok(()) => true,
        Err(crossbeam_channel::TrySendError::Full(_)) => {
            shed.fetch_add(1, Ordering::Relaxed);
            false
        }
        Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
            warn!("{gone}");
            false
        }
    }
}

/// Samples a gated stream may have waiting before the oldest is shed (answered as
/// unjudged): gated keyframes skip the rate limit and `queue_per_stream`, but a stream
/// that outruns analysis this far is held past `max_hold_ms` anyway.
const GATED_QUEUE_MAX: usize = 64;

/// How often an overloaded stream is re-reported.
const OVERLOAD_ALERT_INTERVAL: Duration = Duration::from_secs(30);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StreamAnalysis {
    /// A new sequence header: later keyframes decode with it.
    pub fn set_codec(&self, config: CodecConfig) {
        *lock(&self.codec) = Some(Arc::new(config));
    }

    /// Gate mode: every keyframe offered from now on gets answers in `inbox`.
    pub fn gate_with(&self, inbox: Arc<GateInbox>) {
        // Set once per stream, at its start: a second call has nothing to change.
        let _ = self.gate.set(inbox);
    }

    /// Whether `signal` gates this stream's keyframes.
    fn gates(&self, signal: GateSignal) -> bool {
        self.gate.get().is_some_and(|inbox| inbox.gates(signal))
    }

    /// Tells a gated stream's gate what `signal` made of the keyframe at `offset`.
    fn answer_gate(&self, offset: u64, signal: GateSignal, outcome: Outcome) {
        if let Some(inbox) = self.gate.get() {
            inbox.post(offset, signal, outcome);
        }
    }

    /// Offers a keyframe; never blocks on analysis. A gated stream's keyframes are never
    /// skipped by rate, and go to the workers before other streams'.
    pub fn offer_keyframe(self: &Arc<Self>, frame: AccessUnit, arrived: Instant) {
        let stats = &self.analysis.stats;
        stats.keyframes_offered.fetch_add(1, Ordering::Relaxed);
        let gated = self.gate.get().is_some();
        if self.ended.load(Ordering::Relaxed) {
            self.answer_gate(frame.offset, GateSignal::Pdq, Outcome::Unjudged);
            return;
        }
        let config = lock(&self.codec).clone().or_else(|| {
            // Annex B and OBU keyframes carry their parameter sets in-band.
            (frame.format != BitstreamFormat::LengthPrefixed).then(|| {
                Arc::new(CodecConfig {
                    codec: frame.codec,
                    extradata: Bytes::new(),
                })
            })
        });
        let Some(config) = config else {
            // Length-prefixed keyframes before any sequence header cannot be decoded.
            stats.decoder_errors.fetch_add(1, Ordering::Relaxed);
            self.answer_gate(frame.offset, GateSignal::Pdq, Outcome::Unjudged);
            return;
        };
        let min_gap = Duration::from_secs_f64(1.0 / self.analysis.config.max_samples_per_second);
        let mut queue = lock(&self.queue);
        if !gated
            && queue
                .last_sampled
                .is_some_and(|last| arrived.duration_since(last) < min_gap)
        {
            stats
                .keyframes_skipped_by_rate
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.last_sampled = Some(arrived);
        let mut shed = false;
        let capacity = if gated {
            GATED_QUEUE_MAX
        } else {
            self.analysis.config.queue_per_stream
        };
        if queue.samples.len() >= capacity
            && let Some(oldest) = queue.samples.pop_front()
        {
            stats.samples_shed.fetch_add(1, Ordering::Relaxed);
            self.answer_gate(oldest.frame.offset, GateSignal::Pdq, Outcome::Unjudged);
            shed = true;
        }
        queue.samples.push_back(Sample {
            config,
            frame,
            arrived,
        });
        let overloaded = shed
            .then(|| self.overload_action(&mut queue, arrived))
            .flatten();
        let schedule = !queue.scheduled;
        queue.scheduled = true;
        drop(queue);
        if let Some(action) = overloaded {
            self.act_on_overload(action);
        }
        let ready = if gated {
            &self.analysis.ready_gated
        } else {
            &self.analysis.ready
        };
        if schedule && ready.send(Arc::clone(self)).is_err() {
            warn!(
                session = %self.session.id,
                "analysis workers are gone: keyframe not analysed"
            );
        }
    }

    /// Keeps a described keyframe's whole-picture descriptor for learning, the latest
    /// `learn_keyframes` of them.
    fn remember_descriptor(&self, whole: &Descriptor, pts_ms: i64) {
        let keep = self.analysis.actions.learn_keyframes();
        if !self.analysis.learn_into.descriptors || keep == 0 {
            return;
        }
        let mut recent = lock(&self.recent_descriptors);
        if recent.len() >= keep {
            recent.pop_front();
        }
        recent.push_back(LearnedDescriptor {
            descriptor: whole.clone(),
            pts_ms,
        });
    }

    /// Gives a described keyframe's whole-picture descriptor to the evidence frames of
    /// that keyframe, if it has any (a scan of the ring: microseconds, against the
    /// model's milliseconds).
    fn attach_descriptor(&self, at: pipeline::SampleTime, whole: &Descriptor) {
        self.analysis
            .evidence
            .attach_descriptor(self.session.id, at.offset, whole.values());
    }

    /// Stops analysing: the session is over (its thumbnail goes).
    pub fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
        lock(&self.queue).samples.clear();
        self.analysis.evidence.forget_stream(self.session.id);
    }

    fn overload_action(&self, queue: &mut StreamQueue, now: Instant) -> Option<OverloadAction> {
        let policy = &self.analysis.policy;
        let unanalysed_for =
            now.duration_since(queue.last_analysed.unwrap_or(self.session_started()));
        if policy.on_overload == OverloadMode::Closed
            && unanalysed_for > Duration::from_millis(policy.max_unanalysed_ms)
        {
            return Some(OverloadAction::Cut(unanalysed_for));
        }
        if queue
            .last_overload_alert
            .is_none_or(|last| now.duration_since(last) > OVERLOAD_ALERT_INTERVAL)
        {
            queue.last_overload_alert = Some(now);
            return Some(OverloadAction::Alert);
        }
        None
    }

    fn session_started(&self) -> Instant {
        let age = self.session.started_at.elapsed().unwrap_or(Duration::ZERO);
        Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
    }

    fn act_on_overload(&self, action: OverloadAction) {
        let actions = &self.analysis.actions;
        match action {
            OverloadAction::Alert => {
                warn!(
                    session = %self.session.id,
                    "analysis cannot keep up: shedding samples (on_overload = open)"
                );
                actions.record(
                    &self.session,
                    Finding::new(
                        AuditEvent::Overload,
                        "analysis cannot keep up: samples shed, stream kept (on_overload = open)",
                    ),
                );
            }
            OverloadAction::Cut(unanalysed_for) => {
                let reason = format!(
                    "analysis overloaded: no keyframe analysed for {} ms (on_overload = closed)",
                    unanalysed_for.as_millis()
                );
                actions.cut(
                    &self.session,
                    Cut {
                        closer: Closer::Overload,
                        kind: EndKind::OverloadCut,
                        finding: Finding::new(AuditEvent::Cut, reason),
                        keyframe_arrived: None,
                        ban: false,
                        learn: Default::default(),
                    },
                );
            }
        }
    }

    /// Runs this stream's queued samples; called by one worker at a time.
    fn drain(self: &Arc<Self>, scratch: &mut WorkerScratch) {
        loop {
            let sample = {
                let mut queue = lock(&self.queue);
                match queue.samples.pop_front() {
                    Some(sample) => sample,
                    None => {
                        queue.scheduled = false;
                        return;
                    }
                }
            };
            let offset = sample.frame.offset;
            if self.ended.load(Ordering::Relaxed) || !self.analyse(sample, scratch) {
                // Not judged: a gated keyframe must not wait for a verdict that never comes.
                self.answer_gate(offset, GateSignal::Pdq, Outcome::Unjudged);
                continue;
            }
            lock(&self.queue).last_analysed = Some(Instant::now());
        }
    }

    /// Decodes and judges one sample; false when it was not judged.
    fn analyse(self: &Arc<Self>, sample: Sample, scratch: &mut WorkerScratch) -> bool {
        let stats = &self.analysis.stats;
        let config = &self.analysis.config;
        let mut worker = lock(&self.worker);
        let state = worker.get_or_insert_with(WorkerState::default);
        match state.use_codec(&sample.config, config.max_picture_pixels) {
            Ok(()) => {}
            Err(MediaError::PictureTooLarge { width, height, .. }) => {
                // The decoder and its tables go with the stream's analysis.
                *worker = None;
                self.uninspectable(Uninspectable::PictureTooLarge { width, height });
                return false;
            }
            Err(error) => {
                stats.decoder_errors.fetch_add(1, Ordering::Relaxed);
                warn!(session = %self.session.id, %error, "cannot open a decoder for the stream");
                return false;
            }
        }
        let Some((_, decoder)) = state.decoder.as_mut() else {
            return false;
        };
        let decoded = match decoder.decode_keyframe(&sample.frame.data, sample.frame.pts_ms) {
            Ok(decoded) => decoded,
            Err(MediaError::PictureTooLarge { width, height, .. }) => {
                *worker = None;
                self.uninspectable(Uninspectable::PictureTooLarge { width, height });
                return false;
            }
            Err(error) => {
                stats.decoder_errors.fetch_add(1, Ordering::Relaxed);
                debug!(session = %self.session.id, %error, pts_ms = sample.frame.pts_ms, "keyframe not analysed");
                return false;
            }
        };
        if let Some(concealment) = decoded.concealment {
            stats.keyframes_concealed.fetch_add(1, Ordering::Relaxed);
            debug!(
                session = %self.session.id,
                pts_ms = sample.frame.pts_ms,
                concealed = concealment.concealed,
                macroblocks = concealment.macroblocks,
                "keyframe decoded with error concealment"
            );
            if concealment.fraction() > config.max_concealed_fraction {
                *worker = None;
                self.uninspectable(Uninspectable::KeyframeConcealed(concealment));
                return false;
            }
        }
        let at = SampleTime {
            arrived: sample.arrived,
            pts_ms: sample.frame.pts_ms,
            offset: sample.frame.offset,
            pdq: None,
        };
        self.judge_picture(&mut state.pipeline, decoded.picture, at, scratch)
    }

    /// Counts this stream in `livegate_streams_uninspectable_total` under `reason` and
    /// its listener's `on_parse_error`.
    pub fn count_uninspectable(&self, reason: UninspectableReason) {
        self.analysis
            .stats
            .uninspectable_counter(reason, self.on_parse_error)
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Analysis cannot inspect this stream: it is cut or left uninspected, as its
    /// listener's `on_parse_error` says, and analysed no more either way.
    fn uninspectable(&self, why: Uninspectable) {
        self.end();
        let on_parse_error = self.on_parse_error;
        self.count_uninspectable(why.reason());
        let description = why.describe(&self.analysis.config);
        match on_parse_error {
            OnParseError::Pass => warn!(
                session = %self.session.id,
                reason = why.reason().as_str(),
                error = %description,
                "stream cannot be inspected; relaying it uninspected (on_parse_error = \"pass\")"
            ),
            OnParseError::Cut => {
                // As the relay ends a stream its demuxer cannot parse: the publisher sent
                // what cannot be inspected.
                self.analysis.actions.close(
                    &self.session,
                    Closer::Publisher,
                    EndKind::Uninspectable,
                    format!("stream cannot be inspected (on_parse_error = \"cut\"): {description}"),
                );
            }
        }
    }
}

enum OverloadAction {
    Alert,
    Cut(Duration),
}

/// Decoder and pipeline state of one stream, used by one worker at a time.
#[derive(Default)]
struct WorkerState {
    /// Opened at the first keyframe and again whenever the sequence header changes.
    decoder: Option<(Arc<CodecConfig>, KeyframeDecoder)>,
    pipeline: PipelineState,
}

impl WorkerState {
    /// Makes sure the decoder matches `codec`, reopening it when the stream sent a new
    /// codec config.
    fn use_codec(&mut self, codec: &Arc<CodecConfig>, max_pixels: u64) -> Result<(), MediaError> {
        if self
            .decoder
            .as_ref()
            .is_some_and(|(current, _)| current == codec)
        {
            return Ok(());
        }
        self.decoder = None;
        self.decoder = Some((
            Arc::clone(codec),
            KeyframeDecoder::new(
                decode::decoder_for(codec.codec),
                &codec.extradata,
                max_pixels,
                Deblocking::Skip,
            )?,
        ));
        Ok(())
    }
}

/// Per-worker buffers reused across samples. The hasher's picture-sized buffers live
/// here rather than per stream: memory grows with workers, not with streams.
#[derive(Default)]
struct WorkerScratch {
    hasher: FrameHasher,
    lookup: LookupScratch,
    matches: Vec<ListMatch>,
    more_matches: Vec<ListMatch>,
}

/// Serves gated streams first, then the others, round-robin within each.
fn run_worker(gated: Receiver<Arc<StreamAnalysis>>, work: Receiver<Arc<StreamAnalysis>>) {
    let mut scratch = WorkerScratch::default();
    loop {
        let next = match gated.try_recv() {
            Ok(stream) => Ok(stream),
            Err(_) => crossbeam_channel::select! {
                recv(gated) -> stream => stream,
                recv(work) -> stream => stream,
            },
        };
        // Both channels live as long as the pool: an error means it is shutting down.
        let Ok(stream) = next else { return };
        stream.drain(&mut scratch);
    }
}
