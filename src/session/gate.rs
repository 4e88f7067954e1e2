//! Gate mode (`mode = "gate"` on an `[[ingest]]`): from the first byte of each keyframe,
//! the publisher's bytes wait until analysis has judged that keyframe. Cleared, they go
//! to the origin at once, in order; a cut ends the session and none of them reach it.
//!
//! [`Gate`] is the sans-IO state machine: keyframe offsets and the gating signals'
//! answers go in, the stream offset before which bytes may go out (or a cut) comes out.
//! [`SessionGate`] is its thin shell for one session: the [`GateInbox`] analysis posts
//! answers to (with a wake-up for the relay), the metrics, and the audit record of a
//! keyframe released unjudged. The relay keeps the bytes themselves (`HeldBytes`) and
//! releases only up to the limit the gate and the inspector agree on; in gate mode the
//! inspector holds every message until it is whole, so the limit is always a message
//! boundary and the origin never receives half a message, even at a cut.
//!
//! Units: with `gate = "keyframe"` bytes wait from each keyframe until its verdict;
//! with `gate = "gop"` a GOP (a keyframe and the frames up to the next one) waits until
//! the *next* keyframe is cleared too, so footage spliced between keyframes is covered
//! by the next keyframe's verdict, at the cost of one GOP of delay. When the publisher
//! stops, the last GOP goes once its own keyframe is cleared: no next keyframe will come.
//!
//! A keyframe is cleared once every gating signal answered for it without a cut (PDQ
//! always; the descriptor and the classifier when `gate_signals` names them). A signal
//! that could not answer (an undecodable keyframe, a full model queue) and a verdict
//! later than `max_hold_ms` are handled by `on_hold_timeout`: released with an alert, or
//! cut; so is a stream whose held bytes exceed `max_held_bytes`.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::config::{IngestConfig, InvalidKey, Protocol};

/// `mode` of an `[[ingest]]`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IngestMode {
    /// Bytes go to the origin as they are parsed; analysis runs beside them.
    #[default]
    Pass,
    /// Bytes from each keyframe on wait for its verdict.
    Gate,
}

impl IngestMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestMode::Pass => "pass",
            IngestMode::Gate => "gate",
        }
    }
}

/// `gate`: what one verdict releases.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GateUnit {
    /// A keyframe and what follows it, up to the next keyframe, once it is cleared.
    #[default]
    Keyframe,
    /// A GOP once the next keyframe is cleared too.
    Gop,
}

/// `on_hold_timeout`: what happens to bytes whose keyframe got no verdict in time.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnHoldTimeout {
    /// Release them, with an alert and a metric: availability first.
    #[default]
    Release,
    /// Cut the stream: nothing unjudged reaches the origin.
    Cut,
}

impl OnHoldTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            OnHoldTimeout::Release => "release",
            OnHoldTimeout::Cut => "cut",
        }
    }
}

/// A signal that gates keyframes (`gate_signals`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GateSignal {
    Pdq,
    Descriptor,
    Classifier,
}

impl GateSignal {
    fn bit(self) -> u8 {
        match self {
            GateSignal::Pdq => 1,
            GateSignal::Descriptor => 2,
            GateSignal::Classifier => 4,
        }
    }
}

pub mod defaults {
    use super::GateSignal;

    /// Analysis answers in tens of milliseconds; a second means it is starved.
    pub fn max_hold_ms() -> u64 {
        1_000
    }
    /// A GOP of 8 s (OBS's default) at 30 Mbit/s: enough for `gate = "gop"`.
    pub fn max_held_bytes() -> usize {
        32 * 1024 * 1024
    }
    pub fn gate_signals() -> Vec<GateSignal> {
        vec![GateSignal::Pdq]
    }
}

/// Checks an `[[ingest]]`'s gate keys; `key` names them in errors; `has_descriptor` and
/// `has_classifier` say whether the config has those models (to gate on them).
pub fn validate(
    ingest: &IngestConfig,
    key: impl Fn(&str) -> String,
    has_descriptor: bool,
    has_classifier: bool,
) -> Result<(), InvalidKey> {
    let invalid = |name: &str, message: &str| Err(InvalidKey::new(key(name), message.into()));
    if ingest.mode == IngestMode::Pass {
        return Ok(());
    }
    // Gate mode needs an inspector that holds whole messages; RTMP's does.
    if !matches!(ingest.protocol, Protocol::Rtmp | Protocol::Rtmps) {
        return invalid("mode", "gate mode is available for rtmp and rtmps ingest");
    }
    if ingest.max_hold_ms == 0 || ingest.max_hold_ms > 60_000 {
        return invalid("max_hold_ms", "must be between 1 and 60000");
    }
    if ingest.max_held_bytes < ingest.limits.max_message_bytes as usize {
        return invalid(
            "max_held_bytes",
            "must be at least limits.max_message_bytes (a keyframe must fit)",
        );
    }
    if !ingest.gate_signals.contains(&GateSignal::Pdq) {
        return invalid(
            "gate_signals",
            "must include \"pdq\": the hash lists always gate",
        );
    }
    if ingest.gate_signals.contains(&GateSignal::Descriptor) && !has_descriptor {
        return invalid("gate_signals", "\"descriptor\" needs a [descriptor] model");
    }
    if ingest.gate_signals.contains(&GateSignal::Classifier) && !has_classifier {
        return invalid("gate_signals", "\"classifier\" needs a [classifier] model");
    }
    Ok(())
}

/// What one signal said about one keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Anything but a cut (clear, log, alert, shadow cut): the keyframe may go.
    Clear,
    /// The policy cut the stream on this keyframe.
    Cut,
    /// The signal could not judge it (not decodable, its queue full).
    Unjudged,
}

/// One gating signal's answer for the keyframe starting at stream offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateAnswer {
    pub offset: u64,
    pub signal: GateSignal,
    pub outcome: Outcome,
}

/// Where analysis posts a gated stream's answers; the relay waits on it.
#[derive(Debug)]
pub struct GateInbox {
    signals: u8,
    answers: Mutex<Vec<GateAnswer>>,
    wake: tokio::sync::Notify,
}

impl GateInbox {
    pub fn new(signals: &[GateSignal]) -> Self {
        GateInbox {
            signals: signals.iter().fold(0, |bits, signal| bits | signal.bit()),
            answers: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Whether `signal` gates this stream: analysis must answer for every keyframe.
    pub fn gates(&self, signal: GateSignal) -> bool {
        self.signals & signal.bit() != 0
    }

    /// Posts an answer (ignored for a signal that does not gate) and wakes the relay.
    pub fn post(&self, offset: u64, signal: GateSignal, outcome: Outcome) {
        if !self.gates(signal) {
            return;
        }
        self.lock().push(GateAnswer {
            offset,
            signal,
            outcome,
        });
        self.wake.notify_one();
    }

    /// Resolves once an answer was posted since the last wake-up.
    pub async fn posted(&self) {
        self.wake.notified().await;
    }

    fn take(&self, into: &mut Vec<GateAnswer>) {
        into.append(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<GateAnswer>> {
        self.answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The gate's settings for one session.
#[derive(Debug, Clone, Copy)]
pub struct GateSettings {
    pub unit: GateUnit,
    /// The gating signals, as [`GateSignal::bit`]s.
    signals: u8,
    pub max_hold: Duration,
    pub max_held_bytes: u64,
    pub on_hold_timeout: OnHoldTimeout,
}

impl GateSettings {
    /// The settings of a gated `[[ingest]]`; `None` in pass mode.
    pub fn of(ingest: &IngestConfig) -> Option<Self> {
        (ingest.mode == IngestMode::Gate).then(|| GateSettings {
            unit: ingest.gate,
            signals: GateInbox::new(&ingest.gate_signals).signals,
            max_hold: Duration::from_millis(ingest.max_hold_ms),
            max_held_bytes: ingest.max_held_bytes as u64,
            on_hold_timeout: ingest.on_hold_timeout,
        })
    }
}

/// Why the gate gave up holding a keyframe (the `cause` label of the timeout metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// No verdict within `max_hold_ms`.
    Timeout,
    /// A gating signal could not judge the keyframe.
    Unjudged,
    /// Held bytes went over `max_held_bytes`.
    OverCap,
}

impl GiveUp {
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUp::Timeout => "max_hold_ms",
            GiveUp::Unjudged => "unjudged",
            GiveUp::OverCap => "max_held_bytes",
        }
    }

    fn describe(self, settings: &GateSettings, held: Duration) -> String {
        match self {
            GiveUp::Timeout => format!(
                "gate: no verdict for a keyframe within max_hold_ms = {} ({} ms held)",
                settings.max_hold.as_millis(),
                held.as_millis()
            ),
            GiveUp::Unjudged => "gate: analysis could not judge a keyframe".to_string(),
            GiveUp::OverCap => format!(
                "gate: held bytes went over max_held_bytes = {}",
                settings.max_held_bytes
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    /// Waiting for signals; the bits of those that answered.
    Waiting(u8),
    /// Every gating signal cleared it, or the gate gave up and released it.
    Released,
}

#[derive(Debug, Clone, Copy)]
struct HeldKeyframe {
    offset: u64,
    arrived: Instant,
    state: HoldState,
}

/// What one [`Gate::step`] decided.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// Bytes before this offset may go; `None`: the gate holds nothing.
    pub limit: Option<u64>,
    /// How long each keyframe released by this step was held.
    pub released: Vec<Duration>,
    /// Keyframes released unjudged (`on_hold_timeout = "release"`), with why and a reason.
    pub gave_up: Vec<(GiveUp, String)>,
    /// The stream must end: why (a verdict, or `on_hold_timeout = "cut"`), and a reason.
    pub cut: Option<(Option<GiveUp>, String)>,
}

/// The sans-IO gate of one stream.
#[derive(Debug)]
pub struct Gate {
    settings: GateSettings,
    /// Keyframes not yet released, in stream order (in `gop` mode also the last released
    /// keyframe, whose GOP waits for the next one).
    held: VecDeque<HeldKeyframe>,
    /// The publisher stopped: no next keyframe will come.
    finished: bool,
    cut: bool,
}

impl Gate {
    pub fn new(settings: GateSettings) -> Self {
        Gate {
            settings,
            held: VecDeque::new(),
            finished: false,
            cut: false,
        }
    }

    /// A keyframe whose first byte is at `offset` arrived; bytes from it on wait.
    pub fn keyframe(&mut self, offset: u64, arrived: Instant) {
        self.held.push_back(HeldKeyframe {
            offset,
            arrived,
            state: HoldState::Waiting(0),
        });
    }

    /// The publisher stopped sending: the last GOP needs no next keyframe.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Keyframes whose bytes are held.
    pub fn keyframes_held(&self) -> usize {
        self.held
            .iter()
            .filter(|keyframe| keyframe.state != HoldState::Released)
            .count()
            .max(usize::from(self.limit().is_some()))
    }

    /// When the oldest keyframe still waiting for signals times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.held
            .iter()
            .find(|keyframe| keyframe.state != HoldState::Released)
            .map(|keyframe| keyframe.arrived + self.settings.max_hold)
    }

    /// Applies `answers`, timeouts at `now` and the cap on held bytes (`read_end`: the
    /// offset just past the last byte read), and says what may go.
    pub fn step(&mut self, answers: &[GateAnswer], now: Instant, read_end: u64) -> Step {
        let mut step = Step::default();
        if self.cut {
            step.cut = Some((None, "gate: the stream was cut".into()));
            return step;
        }
        for answer in answers {
            let Some(keyframe) = self
                .held
                .iter_mut()
                .find(|keyframe| keyframe.offset == answer.offset)
            else {
                // Answered after the gate gave up on it: its bytes are gone already.
                continue;
            };
            let HoldState::Waiting(answered) = keyframe.state else {
                continue;
            };
            match answer.outcome {
                Outcome::Clear => {
                    let answered = answered | answer.signal.bit();
                    keyframe.state = if answered & self.settings.signals == self.settings.signals {
                        HoldState::Released
                    } else {
                        HoldState::Waiting(answered)
                    };
                }
                Outcome::Cut => {
                    self.cut = true;
                    step.cut = Some((None, "gate: a gated keyframe was cut".into()));
                    return step;
                }
                Outcome::Unjudged => {
                    let held = now.saturating_duration_since(keyframe.arrived);
                    keyframe.state = HoldState::Released;
                    if self.give_up(GiveUp::Unjudged, held, &mut step) {
                        return step;
                    }
                }
            }
        }
        let settings = self.settings;
        for index in 0..self.held.len() {
            let keyframe = self.held[index];
            if keyframe.state != HoldState::Released && now >= keyframe.arrived + settings.max_hold
            {
                self.held[index].state = HoldState::Released;
                let held = now.saturating_duration_since(keyframe.arrived);
                if self.give_up(GiveUp::Timeout, held, &mut step) {
                    return step;
                }
            }
        }
        if let Some(limit) = self.limit()
            && read_end.saturating_sub(limit) > settings.max_held_bytes
        {
            let oldest = self.held.front().map_or(now, |keyframe| keyframe.arrived);
            let held = now.saturating_duration_since(oldest);
            if self.give_up(GiveUp::OverCap, held, &mut step) {
                return step;
            }
            // Released: every keyframe held now goes, and a gop-mode GOP with them.
            for keyframe in &mut self.held {
                keyframe.state = HoldState::Released;
            }
            self.drop_released(now, &mut step, true);
        }
        self.drop_released(now, &mut step, false);
        step.limit = self.limit();
        step
    }

    /// Gives up on a keyframe per `on_hold_timeout`; true when that cuts the stream.
    fn give_up(&mut self, cause: GiveUp, held: Duration, step: &mut Step) -> bool {
        let reason = cause.describe(&self.settings, held);
        match self.settings.on_hold_timeout {
            OnHoldTimeout::Release => {
                step.gave_up.push((cause, reason));
                false
            }
            OnHoldTimeout::Cut => {
                self.cut = true;
                step.cut = Some((Some(cause), format!("{reason} (on_hold_timeout = \"cut\")")));
                true
            }
        }
    }

    /// Forgets released keyframes whose bytes may all go, recording how long each was
    /// held. In `gop` mode the last released keyframe before a waiting one (or before
    /// the end of what was read) stays: its GOP waits for the next keyframe's verdict.
    fn drop_released(&mut self, now: Instant, step: &mut Step, everything: bool) {
        let keep_last_gop = self.settings.unit == GateUnit::Gop && !self.finished && !everything;
        while let Some(front) = self.held.front() {
            if front.state != HoldState::Released {
                break;
            }
            let next_released = self
                .held
                .get(1)
                .is_some_and(|next| next.state == HoldState::Released);
            if keep_last_gop && !next_released {
                break;
            }
            step.released
                .push(now.saturating_duration_since(front.arrived));
            self.held.pop_front();
        }
    }

    /// The offset of the first held byte, if any.
    fn limit(&self) -> Option<u64> {
        self.held.front().map(|keyframe| keyframe.offset)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct GiveUpLabel {
    cause: &'static str,
    on_hold_timeout: &'static str,
}

/// Seconds a keyframe's bytes were held before release.
const HOLD_TIME_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Gate metrics, shared by every gated session; admin renders them.
#[derive(Debug)]
pub struct GateMetrics {
    pub held_bytes: Gauge,
    pub held_keyframes: Gauge,
    pub hold_time: Histogram,
    pub gave_up: Family<GiveUpLabel, Counter>,
}

impl Default for GateMetrics {
    fn default() -> Self {
        let gave_up = Family::default();
        for cause in [GiveUp::Timeout, GiveUp::Unjudged, GiveUp::OverCap] {
            for action in [OnHoldTimeout::Release, OnHoldTimeout::Cut] {
                gave_up.get_or_create_owned(&GiveUpLabel {
                    cause: cause.as_str(),
                    on_hold_timeout: action.as_str(),
                });
            }
        }
        GateMetrics {
            held_bytes: Gauge::default(),
            held_keyframes: Gauge::default(),
            hold_time: Histogram::new(HOLD_TIME_BUCKETS),
            gave_up,
        }
    }
}

/// A session's gate with its inbox and metrics: what the relay drives.
pub(super) struct SessionGate {
    gate: Gate,
    inbox: Arc<GateInbox>,
    metrics: Arc<crate::telemetry::Telemetry>,
    answers: Vec<GateAnswer>,
    /// What this session adds to the held gauges now (taken back on drop).
    held_bytes: i64,
    held_keyframes: i64,
}

impl SessionGate {
    pub(super) fn new(
        settings: GateSettings,
        inbox: Arc<GateInbox>,
        metrics: Arc<crate::telemetry::Telemetry>,
    ) -> Self {
        SessionGate {
            gate: Gate::new(settings),
            inbox,
            metrics,
            answers: Vec::new(),
            held_bytes: 0,
            held_keyframes: 0,
        }
    }

    pub(super) fn keyframe(&mut self, offset: u64, arrived: Instant) {
        self.gate.keyframe(offset, arrived);
    }

    pub(super) fn finish(&mut self) {
        self.gate.finish();
    }

    /// Resolves when an answer arrives or the oldest waiting keyframe times out: what
    /// the relay waits for beside the publisher's next read. Owns what it needs.
    pub(super) fn wake(&self) -> impl std::future::Future<Output = ()> + use<> {
        let inbox = Arc::clone(&self.inbox);
        let deadline = self.gate.deadline();
        async move {
            match deadline {
                Some(deadline) => tokio::select! {
                    () = inbox.posted() => {}
                    () = tokio::time::sleep_until(deadline.into()) => {}
                },
                None => inbox.posted().await,
            }
        }
    }

    /// Steps the gate with the answers posted so far; records metrics.
    pub(super) fn step(&mut self, now: Instant, read_end: u64) -> Step {
        self.inbox.take(&mut self.answers);
        let step = self.gate.step(&self.answers, now, read_end);
        self.answers.clear();
        let metrics = self.metrics.gate();
        for held in &step.released {
            metrics.hold_time.observe(held.as_secs_f64());
        }
        let action = self.gate.settings.on_hold_timeout.as_str();
        let causes = step
            .gave_up
            .iter()
            .map(|(cause, _)| *cause)
            .chain(step.cut.as_ref().and_then(|(cause, _)| *cause));
        for cause in causes {
            metrics
                .gave_up
                .get_or_create(&GiveUpLabel {
                    cause: cause.as_str(),
                    on_hold_timeout: action,
                })
                .inc();
        }
        let held_bytes = step.limit.map_or(0, |limit| read_end.saturating_sub(limit)) as i64;
        let held_keyframes = self.gate.keyframes_held() as i64;
        metrics.held_bytes.inc_by(held_bytes - self.held_bytes);
        metrics
            .held_keyframes
            .inc_by(held_keyframes - self.held_keyframes);
        self.held_bytes = held_bytes;
        self.held_keyframes = held_keyframes;
        step
    }
}

impl Drop for SessionGate {
    fn drop(&mut self) {
        let metrics = self.metrics.gate();
        metrics.held_bytes.dec_by(self.held_bytes);
        metrics.held_keyframes.dec_by(self.held_keyframes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings(unit: GateUnit, signals: &[GateSignal], on: OnHoldTimeout) -> GateSettings {
        GateSettings {
            unit,
            signals: GateInbox::new(signals).signals,
            max_hold: 100 * MS,
            max_held_bytes: 1_000,
            on_hold_timeout: on,
        }
    }

    fn keyframe_gate() -> Gate {
        Gate::new(settings(
            GateUnit::Keyframe,
            &[GateSignal::Pdq],
            OnHoldTimeout::Release,
        ))
    }

    fn answer(offset: u64, signal: GateSignal, outcome: Outcome) -> GateAnswer {
        GateAnswer {
            offset,
            signal,
            outcome,
        }
    }

    fn clear(offset: u64) -> GateAnswer {
        answer(offset, GateSignal::Pdq, Outcome::Clear)
    }

    #[test]
    fn nothing_is_held_before_a_keyframe() {
        let mut gate = keyframe_gate();
        let step = gate.step(&[], Instant::now(), 500);
        assert_eq!(step.limit, None);
        assert_eq!(gate.deadline(), None);
    }

    #[test]
    fn a_keyframe_holds_from_its_first_byte_until_cleared() {
        let t0 = Instant::now();
        let mut gate = keyframe_gate();
        gate.keyframe(100, t0);
        assert_eq!(gate.step(&[], t0, 400).limit, Some(100));
        assert_eq!(gate.deadline(), Some(t0 + 100 * MS));
        // A second keyframe behind it waits for both.
        gate.keyframe(300, t0 + 10 * MS);
        let step = gate.step(&[clear(300)], t0 + 20 * MS, 400);
        assert_eq!(step.limit, Some(100), "in order: the first still waits");
        let step = gate.step(&[clear(100)], t0 + 30 * MS, 400);
        assert_eq!(step.limit, None, "both cleared: everything read may go");
        assert_eq!(step.released, [30 * MS, 20 * MS]);
        assert!(step.gave_up.is_empty() && step.cut.is_none());
    }

    #[test]
    fn a_cut_answer_releases_nothing_ever_again() {
        let t0 = Instant::now();
        let mut gate = keyframe_gate();
        gate.keyframe(100, t0);
        gate.keyframe(200, t0);
        let step = gate.step(
            &[clear(100), answer(200, GateSignal::Pdq, Outcome::Cut)],
            t0,
            300,
        );
        assert!(step.cut.is_some());
        assert_eq!(step.limit, None, "a cut step releases nothing");
        let later = gate.step(&[clear(200)], t0, 300);
        assert!(later.cut.is_some(), "stays cut");
    }

    #[test]
    fn every_gating_signal_must_clear() {
        let t0 = Instant::now();
        let mut gate = Gate::new(settings(
            GateUnit::Keyframe,
            &[GateSignal::Pdq, GateSignal::Classifier],
            OnHoldTimeout::Release,
        ));
        gate.keyframe(10, t0);
        // A non-gating signal's answer counts for nothing.
        let step = gate.step(
            &[
                clear(10),
                answer(10, GateSignal::Descriptor, Outcome::Clear),
            ],
            t0,
            50,
        );
        assert_eq!(step.limit, Some(10));
        let step = gate.step(
            &[answer(10, GateSignal::Classifier, Outcome::Clear)],
            t0,
            50,
        );
        assert_eq!(step.limit, None);
    }

    #[test]
    fn a_timeout_releases_with_an_alert_or_cuts() {
        let t0 = Instant::now();
        let mut gate = keyframe_gate();
        gate.keyframe(10, t0);
        assert_eq!(gate.step(&[], t0 + 99 * MS, 50).limit, Some(10));
        let step = gate.step(&[], t0 + 100 * MS, 50);
        assert_eq!(step.limit, None);
        assert_eq!(step.gave_up.len(), 1);
        assert_eq!(step.gave_up[0].0, GiveUp::Timeout);
        // A verdict after the gate gave up changes nothing.
        assert_eq!(gate.step(&[clear(10)], t0 + 200 * MS, 50), Step::default());

        let mut gate = Gate::new(settings(
            GateUnit::Keyframe,
            &[GateSignal::Pdq],
            OnHoldTimeout::Cut,
        ));
        gate.keyframe(10, t0);
        let step = gate.step(&[], t0 + 100 * MS, 50);
        assert_eq!(
            step.cut.as_ref().map(|cut| cut.0),
            Some(Some(GiveUp::Timeout))
        );
        assert_eq!(step.limit, None);
    }

    #[test]
    fn an_unjudged_keyframe_follows_on_hold_timeout() {
        let t0 = Instant::now();
        let mut gate = keyframe_gate();
        gate.keyframe(10, t0);
        let step = gate.step(&[answer(10, GateSignal::Pdq, Outcome::Unjudged)], t0, 50);
        assert_eq!(step.limit, None);
        assert_eq!(step.gave_up[0].0, GiveUp::Unjudged);
    }

    #[test]
    fn held_bytes_over_the_cap_follow_on_hold_timeout() {
        let t0 = Instant::now();
        let mut gate = keyframe_gate();
        gate.keyframe(10, t0);
        assert_eq!(gate.step(&[], t0, 1_010).limit, Some(10), "at the cap");
        let step = gate.step(&[], t0, 1_011);
        assert_eq!(step.limit, None);
        assert_eq!(step.gave_up[0].0, GiveUp::OverCap);

        let mut gate = Gate::new(settings(
            GateUnit::Gop,
            &[GateSignal::Pdq],
            OnHoldTimeout::Cut,
        ));
        gate.keyframe(10, t0);
        let step = gate.step(&[clear(10)], t0, 1_011);
        assert_eq!(
            step.cut.as_ref().map(|cut| cut.0),
            Some(Some(GiveUp::OverCap))
        );
    }

    #[test]
    fn a_gop_waits_for_the_next_keyframe() {
        let t0 = Instant::now();
        let mut gate = Gate::new(settings(
            GateUnit::Gop,
            &[GateSignal::Pdq],
            OnHoldTimeout::Release,
        ));
        gate.keyframe(10, t0);
        let step = gate.step(&[clear(10)], t0 + MS, 200);
        assert_eq!(step.limit, Some(10), "cleared, but its GOP waits");
        assert_eq!(gate.deadline(), None, "no verdict awaited: no timeout");
        gate.keyframe(300, t0 + 50 * MS);
        assert_eq!(gate.step(&[], t0 + 51 * MS, 400).limit, Some(10));
        let step = gate.step(&[clear(300)], t0 + 60 * MS, 400);
        assert_eq!(
            step.limit,
            Some(300),
            "the first GOP goes, the second waits"
        );
        assert_eq!(step.released, [60 * MS]);
        // A cut on the next keyframe keeps the GOP before it.
        gate.keyframe(600, t0 + 70 * MS);
        let step = gate.step(&[answer(600, GateSignal::Pdq, Outcome::Cut)], t0, 700);
        assert!(step.cut.is_some());
        // Once the publisher stops, a cleared last GOP goes.
        let mut gate = Gate::new(settings(
            GateUnit::Gop,
            &[GateSignal::Pdq],
            OnHoldTimeout::Release,
        ));
        gate.keyframe(10, t0);
        assert_eq!(gate.step(&[clear(10)], t0, 200).limit, Some(10));
        gate.finish();
        assert_eq!(gate.step(&[], t0, 200).limit, None);
    }

    #[test]
    fn gate_keys_are_validated_naming_the_key() {
        let config = |keys: &str| {
            crate::config::Config::parse(
                &format!(
                    "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"127.0.0.1:0\"\n\
                     origin = \"127.0.0.1:1935\"\n{keys}\n"
                ),
                "test",
            )
            .map(|config| config.ingest[0].clone())
            .map_err(|error| error.to_string())
        };
        let pass = config("").expect("pass mode by default");
        assert_eq!(pass.mode, IngestMode::Pass);
        assert!(GateSettings::of(&pass).is_none());
        let gated = config("mode = \"gate\"\ngate = \"gop\"").expect("gate mode");
        let settings = GateSettings::of(&gated).expect("gated");
        assert_eq!(settings.unit, GateUnit::Gop);
        assert_eq!(settings.max_hold, Duration::from_secs(1));
        assert_eq!(settings.on_hold_timeout, OnHoldTimeout::Release);
        for (keys, error) in [
            ("mode = \"gate\"\nmax_hold_ms = 0", "ingest[0].max_hold_ms"),
            (
                "mode = \"gate\"\nmax_held_bytes = 1000",
                "ingest[0].max_held_bytes",
            ),
            (
                "mode = \"gate\"\ngate_signals = [\"descriptor\"]",
                "must include \"pdq\"",
            ),
            (
                "mode = \"gate\"\ngate_signals = [\"pdq\", \"classifier\"]",
                "needs a [classifier] model",
            ),
            ("mode = \"hold\"", "unknown variant"),
        ] {
            let found = config(keys).expect_err(keys);
            assert!(found.contains(error), "{keys}: {found}");
        }
    }

    #[test]
    fn the_inbox_keeps_only_gating_signals() {
        let inbox = GateInbox::new(&[GateSignal::Pdq]);
        assert!(inbox.gates(GateSignal::Pdq));
        assert!(!inbox.gates(GateSignal::Classifier));
        inbox.post(1, GateSignal::Classifier, Outcome::Clear);
        inbox.post(1, GateSignal::Pdq, Outcome::Clear);
        let mut answers = Vec::new();
        inbox.take(&mut answers);
        assert_eq!(answers, [clear(1)]);
    }
}
