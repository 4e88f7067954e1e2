//! The passive observer of the publisher's bytes: feeds a copy of each read to the
//! protocol's inspector before the read is forwarded, and acts on the protocol-neutral
//! events it reports: records the stream's identity, admits every publish, hands
//! keyframes to analysis, and notices video it cannot inspect. It never writes and
//! never changes a byte. In gate mode it also registers each keyframe with the
//! session's gate before offering it, and turns the gate's steps into release limits,
//! alerts and cuts.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

use super::gate::{GateInbox, GateSettings, GiveUp, SessionGate};
use super::relay::{Services, SessionEnd};
use crate::actions::{Actions, AuditEvent, Cut, Finding};
use crate::analysis::StreamAnalysis;
use crate::backend::BanTarget;
use crate::config::{IngestConfig, OnParseError};
use crate::ingest::inspect::Inspector;
use crate::session::{Closer, EndKind, SessionState};
use crate::stream::{AccessUnit, RedactedKey, StreamEvent, UninspectableReason, VideoCodec};

/// Reads remembered to map a frame's stream offset back to its arrival time: enough
/// for a keyframe spread over many reads.
const ARRIVALS_KEPT: usize = 512;

/// The passive observer of the publisher's bytes.
pub(super) struct Tap {
    /// `None` once the stream proved uninspectable under `on_parse_error = "pass"`.
    inspector: Option<Box<dyn Inspector>>,
    events: Vec<StreamEvent>,
    on_parse_error: OnParseError,
    published: bool,
    state: Arc<SessionState>,
    stream: Arc<StreamAnalysis>,
    actions: Arc<Actions>,
    /// Stream offset just past each recent read, with when that read completed.
    arrivals: VecDeque<(u64, Instant)>,
    offset: u64,
    /// Most bytes held back behind an incomplete command before the session ends.
    pub(super) max_held_bytes: usize,
    /// When the read being observed completed.
    read_at: Instant,
    /// Since when video has flowed without a keyframe (`None`: none yet, or a keyframe
    /// was the last).
    keyframe_gap_since: Option<Instant>,
    max_keyframe_interval: Duration,
    /// The codec of the latest codec config or access unit.
    codec: Option<VideoCodec>,
    /// Gate mode: the session's gate.
    gate: Option<SessionGate>,
}

impl Tap {
    pub(super) fn new(
        mut inspector: Box<dyn Inspector>,
        ingest: &IngestConfig,
        state: Arc<SessionState>,
        stream: Arc<StreamAnalysis>,
        services: &Services,
    ) -> Self {
        let actions = services.analysis.actions();
        let gate = GateSettings::of(ingest).map(|settings| {
            // Config validation admits gate mode only where the inspector can do this.
            if !inspector.hold_whole_messages() {
                warn!(
                    session = %state.id,
                    protocol = inspector.protocol(),
                    "gate mode: the inspector cannot hold whole messages; releases may split one"
                );
            }
            state.gated.store(true, Ordering::Relaxed);
            let inbox = Arc::new(GateInbox::new(&ingest.gate_signals));
            stream.gate_with(Arc::clone(&inbox));
            SessionGate::new(settings, inbox, Arc::clone(actions.telemetry()))
        });
        Tap {
            gate,
            inspector: Some(inspector),
            events: Vec::new(),
            on_parse_error: ingest.on_parse_error,
            published: false,
            state,
            stream,
            actions: Arc::clone(actions),
            arrivals: VecDeque::with_capacity(ARRIVALS_KEPT),
            offset: 0,
            max_held_bytes: ingest.limits.max_buffered_bytes,
            read_at: Instant::now(),
            keyframe_gap_since: None,
            max_keyframe_interval: ingest.max_keyframe_interval(),
            codec: None,
        }
    }

    /// Stream offset before which every byte read may go to the origin: all of them,
    /// except from where the inspector holds them (a command not yet parsed whole).
    pub(super) fn release_limit(&self) -> u64 {
        self.inspector
            .as_ref()
            .and_then(|inspector| inspector.held_from())
            .unwrap_or(self.offset)
    }

    /// Stream offset just past the last byte read.
    pub(super) fn read_end(&self) -> u64 {
        self.offset
    }

    /// Gate mode: resolves when the gate may release more (an answer, a timeout).
    pub(super) fn gate_wake(&self) -> Option<impl Future<Output = ()> + use<>> {
        self.gate.as_ref().map(SessionGate::wake)
    }

    /// Gate mode: the publisher stopped; the last GOP needs no next keyframe.
    pub(super) fn finish_gate(&mut self) {
        if let Some(gate) = &mut self.gate {
            gate.finish();
        }
    }

    /// Gate mode: where the gate holds bytes from now (`None`: it holds none), after the
    /// answers posted so far, the timeouts due at `now` and the cap on held bytes. Keyframes
    /// released unjudged are alerted; an error ends the session: a cut (a verdict, or
    /// `on_hold_timeout = "cut"`), requested and audited before it returns.
    pub(super) fn gate_limit(&mut self, now: Instant) -> Result<Option<u64>, SessionEnd> {
        let Some(gate) = &mut self.gate else {
            return Ok(None);
        };
        let step = gate.step(now, self.offset);
        for (cause, reason) in &step.gave_up {
            warn!(session = %self.state.id, cause = cause.as_str(), %reason, "gate released a keyframe unjudged (on_hold_timeout = \"release\")");
            self.actions.record(
                &self.state,
                Finding::new(
                    AuditEvent::Alert,
                    format!("{reason}; released (on_hold_timeout = \"release\")"),
                ),
            );
        }
        let Some((cause, reason)) = step.cut else {
            return Ok(step.limit);
        };
        if let Some(cause) = cause {
            let (closer, kind) = match cause {
                GiveUp::OverCap => (Closer::Publisher, EndKind::OverLimit),
                GiveUp::Timeout | GiveUp::Unjudged => (Closer::Overload, EndKind::OverloadCut),
            };
            self.actions.cut(
                &self.state,
                Cut {
                    closer,
                    kind,
                    finding: Finding::new(AuditEvent::Cut, reason.clone()),
                    keyframe_arrived: None,
                    ban: false,
                    learn: Default::default(),
                },
            );
        }
        // The policy (or the gate, just now) requested the cut before saying so.
        Err(self.state.pending_cut().map_or_else(
            || SessionEnd::new(Closer::Policy, EndKind::PolicyCut, reason),
            SessionEnd::from,
        ))
    }

    /// The protocol's inspector, while the stream is inspected.
    pub(super) fn inspector(&self) -> Option<&dyn Inspector> {
        self.inspector.as_deref()
    }

    /// True while the publish deadline applies: the stream is inspected and has not
    /// yet sent `publish`.
    pub(super) fn awaits_publish(&self) -> bool {
        self.inspector.is_some() && !self.published
    }

    /// When the byte at `offset` arrived (the oldest remembered read if it is older).
    fn arrival_of(&self, offset: u64) -> Instant {
        let index = self.arrivals.partition_point(|(end, _)| *end <= offset);
        self.arrivals
            .get(index)
            .or(self.arrivals.front())
            .map_or_else(Instant::now, |(_, arrived)| *arrived)
    }

    /// Parses bytes read from the publisher, before they are forwarded. An error ends
    /// the session: the stream cannot be inspected (`on_parse_error = "cut"`), or its
    /// key is banned.
    pub(super) fn observe(&mut self, bytes: &[u8], now: Instant) -> Result<(), SessionEnd> {
        self.read_at = now;
        self.offset += bytes.len() as u64;
        if self.arrivals.len() == ARRIVALS_KEPT {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back((self.offset, now));
        let Some(inspector) = self.inspector.as_mut() else {
            return Ok(());
        };
        let parsed = inspector
            .feed(bytes, &mut self.events)
            .map_err(|error| (UninspectableReason::Unparseable, error.to_string()));
        let mut events = std::mem::take(&mut self.events);
        let mut uninspectable = parsed.err();
        for event in events.drain(..) {
            match self.handle(event) {
                Ok(()) => {}
                Err(EventProblem::Uninspectable(reason, why)) => {
                    uninspectable.get_or_insert((reason, why));
                }
                Err(EventProblem::End(end)) => return Err(end),
            }
        }
        self.events = events;
        let Some((reason, why)) = uninspectable else {
            return Ok(());
        };
        self.stream.count_uninspectable(reason);
        match self.on_parse_error {
            OnParseError::Pass => {
                warn!(
                    session = %self.state.id,
                    error = %why,
                    "stream cannot be inspected; relaying it uninspected (on_parse_error = \"pass\")"
                );
                self.inspector = None;
                Ok(())
            }
            OnParseError::Cut => Err(SessionEnd::new(
                Closer::Publisher,
                EndKind::Uninspectable,
                format!("stream cannot be inspected (on_parse_error = \"cut\"): {why}"),
            )),
        }
    }

    /// Reports an identity learned outside the bytes (SRT's streamid, at the handshake)
    /// as an inspector would: the application, then the publish (bans checked, a refusal
    /// audited).
    pub(super) fn identify(&mut self, app: String, key: String) -> Result<(), SessionEnd> {
        for event in [
            StreamEvent::Application { app },
            StreamEvent::Publish { key },
        ] {
            match self.handle(event) {
                Ok(()) => {}
                Err(EventProblem::End(end)) => return Err(end),
                // Only video can be uninspectable; an identity never is.
                Err(EventProblem::Uninspectable(_, why)) => {
                    return Err(SessionEnd::new(Closer::Internal, EndKind::Internal, why));
                }
            }
        }
        Ok(())
    }

    /// Records what an event tells about the stream and hands keyframes to analysis.
    fn handle(&mut self, event: StreamEvent) -> Result<(), EventProblem> {
        let state = &self.state;
        match event {
            StreamEvent::Application { app } => {
                debug!(session = %state.id, %app, "application");
                state.update_identity(|identity| identity.app = Some(app));
            }
            StreamEvent::Publish { key } => {
                let key = RedactedKey::new(&key);
                self.published = true;
                let identity = state.identity();
                let app = identity.app.as_deref().unwrap_or("");
                info!(session = %state.id, app, %key, "publish");
                // Every publish is admitted, not just the first: after closeStream or
                // deleteStream a connection may publish again, and the origin takes it.
                // One connection carries one stream key: bans, allowlists, the audit and
                // analysis all hang on it.
                if let Some(admitted) = &identity.key
                    && admitted.fingerprint() != key.fingerprint()
                {
                    let reason = format!(
                        "publish of stream key {key} on a connection already publishing {admitted}: one stream key per connection"
                    );
                    return Err(self.reject(&key, EndKind::Rejected, reason));
                }
                state.update_identity(|identity| identity.key = Some(key.clone()));
                // The key, then the client (actuator.ban_client_address).
                let client = BanTarget::client(state.client.ip());
                for (target, banned) in [
                    (
                        BanTarget::key(key.fingerprint()),
                        format!("stream key {key}"),
                    ),
                    (client.clone(), client.to_string()),
                ] {
                    if let Some(remaining) = self.actions.ban_remaining(&target) {
                        let reason = format!(
                            "{banned} is banned for {} more seconds",
                            remaining.as_secs().max(1)
                        );
                        return Err(self.reject(&key, EndKind::Banned, reason));
                    }
                }
            }
            StreamEvent::CodecConfig(config) => {
                debug!(
                    session = %state.id,
                    codec = %config.codec,
                    extradata_bytes = config.extradata.len(),
                    "video config"
                );
                self.codec = Some(config.codec);
                state.update_identity(|identity| identity.codec = Some(config.codec));
                self.stream.set_codec(config);
            }
            StreamEvent::AccessUnit(unit) => self.video(unit)?,
            StreamEvent::Metadata(metadata) => {
                debug!(
                    session = %state.id,
                    width = metadata.width,
                    height = metadata.height,
                    framerate = metadata.framerate,
                    encoder = metadata.encoder.as_deref().unwrap_or(""),
                    "metadata"
                );
                state.update_identity(|identity| {
                    identity.set_dimensions(metadata.width, metadata.height);
                });
            }
            StreamEvent::Uninspectable {
                reason,
                description,
            } => return Err(EventProblem::Uninspectable(reason, description)),
        }
        Ok(())
    }

    /// Counts a video access unit, offers keyframes to analysis, and watches the gap
    /// between keyframes.
    fn video(&mut self, unit: AccessUnit) -> Result<(), EventProblem> {
        let state = &self.state;
        // Streams whose codec config is in-band (MPEG-TS) still show their codec.
        if self.codec != Some(unit.codec) {
            self.codec = Some(unit.codec);
            state.update_identity(|identity| identity.codec = Some(unit.codec));
        }
        state.frames_seen.fetch_add(1, Ordering::Relaxed);
        if unit.keyframe {
            state.keyframes_seen.fetch_add(1, Ordering::Relaxed);
            self.keyframe_gap_since = None;
            let arrived = self.arrival_of(unit.offset);
            // Registered before it is offered: its answers may come at once.
            if let Some(gate) = &mut self.gate {
                gate.keyframe(unit.offset, arrived);
            }
            self.stream.offer_keyframe(unit, arrived);
        } else {
            let since = *self.keyframe_gap_since.get_or_insert(self.read_at);
            if self.read_at.duration_since(since) > self.max_keyframe_interval {
                return Err(EventProblem::Uninspectable(
                    UninspectableReason::NoKeyframe,
                    format!(
                        "video without a keyframe for more than {} ms (max_keyframe_interval_ms): livegate inspects keyframes",
                        self.max_keyframe_interval.as_millis()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Tap {
    /// Refuses a `publish` before it reaches the origin, with a `rejected` audit record.
    fn reject(&self, key: &RedactedKey, kind: EndKind, reason: String) -> EventProblem {
        let end = self.actions.refuse_publish(&self.state, key, kind, reason);
        EventProblem::End(SessionEnd::from(end))
    }
}

/// Why an event stops the stream being relayed as it is.
enum EventProblem {
    /// Video livegate cannot inspect: `on_parse_error` decides.
    Uninspectable(UninspectableReason, String),
    /// The session must end, whatever the config.
    End(SessionEnd),
}
