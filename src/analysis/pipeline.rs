//! The per-keyframe pipeline after decode: hash → list lookup → stats and the learn
//! buffer → classifier and descriptor hand-off → [`Signals`] → the stream's one
//! [`StreamPolicy`] → [`Actions`](crate::actions::Actions). The classifier and descriptor
//! threads join at the policy step with their own signal; every path turns a decision
//! into an audit record or a cut here.

use ffmpeg_next::frame;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tracing::debug;

use super::{StreamAnalysis, WorkerScratch, lock};
use crate::actions::{AuditEvent, Cut, Finding, Learned, SignalRecord};
use crate::descriptor::views::ViewCycle;
use crate::evidence::{Capture, Source};
use crate::policy::{Decision, Evidence, Signals, StreamPolicy, Verdict};
use crate::session::{Closer, EndKind, GateSignal, Outcome};
use crate::signals::lists::ListMatch;
use livegate_signals::hash256::Hash256;
use livegate_signals::pdq::{Dihedral, PdqDihedral};

/// When a sample's keyframe arrived and where it sits in the stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct SampleTime {
    /// When the keyframe's first byte arrived from the publisher.
    pub arrived: Instant,
    pub pts_ms: i64,
    /// Stream offset of the keyframe's first byte: what gate mode knows it by.
    pub offset: u64,
    /// The picture's PDQ hash and quality, once hashed (kept with its evidence frame).
    pub pdq: Option<(Hash256, u8)>,
}

/// A stream's pipeline state, kept by its worker: the learn buffer and the classifier's
/// and descriptor's sampling.
#[derive(Default)]
pub(super) struct PipelineState {
    /// The latest analysed keyframes' hashes, learned if the stream is cut.
    recent_hashes: VecDeque<(Hash256, u8)>,
    classifier_sampling: EveryNth,
    descriptor_sampling: EveryNth,
    /// Which views of the stream's next described keyframe to describe; made at the
    /// first one.
    view_cycle: Option<ViewCycle>,
}

/// Analysed samples since a signal was last offered one, modulo its `every_nth_sample`.
#[derive(Default)]
struct EveryNth(u32);

impl EveryNth {
    /// Whether this sample is due (the stream's first, then every nth).
    fn due(&mut self, every_nth: u32) -> bool {
        let due = self.0 == 0;
        self.0 = (self.0 + 1) % every_nth.max(1);
        due
    }
}

impl PipelineState {
    fn remember(&mut self, hash: Hash256, quality: u8, keep: usize) {
        if keep == 0 {
            return;
        }
        if self.recent_hashes.len() >= keep {
            self.recent_hashes.pop_front();
        }
        self.recent_hashes.push_back((hash, quality));
    }
}

/// Match variants from `INSIDE_BARS_VARIANTS` on are of the picture inside black bars.
const INSIDE_BARS_VARIANTS: usize = 8;

/// One picture's 8 dihedral hashes as looked up, with their quality.
struct QueryHashes {
    variants: [Hash256; 8],
    quality: u8,
}

impl From<&PdqDihedral> for QueryHashes {
    fn from(hashes: &PdqDihedral) -> Self {
        QueryHashes {
            variants: hashes.hashes,
            quality: hashes.quality,
        }
    }
}

/// What a sample's pictures were looked up as: the full picture and, when it has black
/// bars, the picture inside them.
pub(super) struct Lookup {
    full: QueryHashes,
    inside_bars: Option<QueryHashes>,
}

impl StreamAnalysis {
    /// Runs a decoded keyframe through the pipeline; called by the stream's worker.
    /// False when it could not be hashed.
    pub(super) fn judge_picture(
        self: &Arc<Self>,
        state: &mut PipelineState,
        picture: &frame::Video,
        at: SampleTime,
        scratch: &mut WorkerScratch,
    ) -> bool {
        let Some(lookup) = self.look_up(picture, at, scratch) else {
            return false;
        };
        let at = SampleTime {
            pdq: Some((lookup.full.variants[0], lookup.full.quality)),
            ..at
        };
        self.count_analysed(at, &scratch.matches);
        if self.analysis.learn_into.hashes {
            state.remember(
                lookup.full.variants[0],
                lookup.full.quality,
                self.analysis.actions.learn_keyframes(),
            );
        }
        let decision = self.decide(&Signals::pdq(&scratch.matches));
        let learn = if decision.verdict == Verdict::Cut {
            state.recent_hashes.drain(..).collect()
        } else {
            Vec::new()
        };
        // The hash verdict first: a gated keyframe is released as soon as it can be.
        // Evidence and thumbnails are made of the decoded picture: scaling it costs a
        // quarter of converting the RGB one.
        let source = Some(Source::Frame(picture));
        self.act(decision, at, Some(&lookup), learn, GateSignal::Pdq, source);
        self.keep_thumbnail(picture);
        self.hand_to_classifier(state, scratch, at);
        self.hand_to_descriptor(state, scratch, at);
        true
    }

    /// Keeps the picture as the stream's thumbnail when one is due (`[evidence]
    /// thumbnails`, at most one per `thumbnail_interval_ms`).
    fn keep_thumbnail(&self, picture: &frame::Video) {
        let evidence = &self.analysis.evidence;
        if evidence.thumbnail_due(self.session.id) {
            evidence.keep_thumbnail(self.session.id, Source::Frame(picture));
            // A stream that ended meanwhile keeps no thumbnail.
            if self.ended.load(Ordering::Relaxed) {
                evidence.forget_stream(self.session.id);
            }
        }
    }

    /// Hashes the picture (and the picture inside its bars) and looks both up; the
    /// matches, nearest first, are left in `scratch.matches`.
    fn look_up(
        &self,
        picture: &frame::Video,
        at: SampleTime,
        scratch: &mut WorkerScratch,
    ) -> Option<Lookup> {
        let hashes = match scratch.hasher.hash_frame_for_matching(picture) {
            Ok(hashes) => hashes,
            Err(error) => {
                self.analysis
                    .stats
                    .decoder_errors
                    .fetch_add(1, Ordering::Relaxed);
                debug!(session = %self.session.id, %error, pts_ms = at.pts_ms, "keyframe not analysed");
                return None;
            }
        };
        let lists = &self.analysis.lists;
        let full = QueryHashes::from(&hashes.full);
        lists.lookup_into(
            &full.variants,
            full.quality,
            &mut scratch.lookup,
            &mut scratch.matches,
        );
        let inside_bars = hashes.inside_bars.as_ref().map(QueryHashes::from);
        if let Some(inside_bars) = &inside_bars {
            lists.lookup_into(
                &inside_bars.variants,
                inside_bars.quality,
                &mut scratch.lookup,
                &mut scratch.more_matches,
            );
            for found in scratch.more_matches.drain(..) {
                scratch.matches.push(ListMatch {
                    variant: found.variant + INSIDE_BARS_VARIANTS,
                    ..found
                });
            }
            scratch.matches.sort_by_key(|found| found.distance);
        }
        Some(Lookup { full, inside_bars })
    }

    /// Counts an analysed sample: stats, latency, matches by list, the session's nearest
    /// match.
    fn count_analysed(&self, at: SampleTime, matches: &[ListMatch]) {
        let stats = &self.analysis.stats;
        stats.samples_analysed.fetch_add(1, Ordering::Relaxed);
        self.session
            .keyframes_analysed
            .fetch_add(1, Ordering::Relaxed);
        let latency = at.arrived.elapsed();
        stats
            .analysis_latency_micros_total
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
        self.analysis
            .actions
            .telemetry()
            .record_analysis(latency, matches);
        if let Some(nearest) = matches.first() {
            self.session.record_match_distance(nearest.distance);
            stats.matches.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Offers the picture to the classifier: the stream's first analysed sample, then
    /// every nth.
    fn hand_to_classifier(
        self: &Arc<Self>,
        state: &mut PipelineState,
        scratch: &WorkerScratch,
        at: SampleTime,
    ) {
        let Some(classifier) = &self.analysis.classifier else {
            return;
        };
        // A gating signal judges every keyframe of a gated stream, whatever its sampling.
        let gates = self.gates(GateSignal::Classifier);
        let due = state
            .classifier_sampling
            .due(classifier.config().every_nth_sample);
        if (due || gates) && !classifier.offer(self, &scratch.hasher.rgb_picture(), at) {
            self.answer_gate(at.offset, GateSignal::Classifier, Outcome::Unjudged);
        }
    }

    /// Offers the picture to the descriptor, with the views due for this stream: the
    /// stream's first analysed sample, then every nth.
    fn hand_to_descriptor(
        self: &Arc<Self>,
        state: &mut PipelineState,
        scratch: &WorkerScratch,
        at: SampleTime,
    ) {
        let Some(descriptor) = &self.analysis.descriptor else {
            return;
        };
        let config = descriptor.config();
        let gates = self.gates(GateSignal::Descriptor);
        if state.descriptor_sampling.due(config.every_nth_sample) || gates {
            let views = state
                .view_cycle
                .get_or_insert_with(|| ViewCycle::new(config.views, config.views_per_keyframe))
                .next_views();
            if !descriptor.offer(self, &scratch.hasher.rgb_picture(), views, at) {
                self.answer_gate(at.offset, GateSignal::Descriptor, Outcome::Unjudged);
            }
        }
    }

    /// The stream's policy decision on one sample's signals; the policy is made at the
    /// stream's first decision, once its app and key are known.
    pub(super) fn decide(&self, signals: &Signals<'_>) -> Decision {
        let mut policy = lock(&self.policy);
        policy
            .get_or_insert_with(|| {
                let identity = self.session.identity();
                StreamPolicy::new(
                    Arc::clone(&self.analysis.policy),
                    &self.analysis.rules,
                    identity.app.as_deref().unwrap_or(""),
                    identity.key.as_ref().map(|key| key.fingerprint()),
                )
                .gated(self.gate.get().is_some())
            })
            .decide(signals)
    }

    /// Audits or cuts as `decision` says; `lookup` is the sample's PDQ query when the
    /// decision came from the hash path, `learn` the hashes a cut learns (the stream's
    /// remembered descriptors are learned too). `signal` decided, and answers a gated
    /// stream's gate once the cut (if any) is requested; then `picture` (the analysed
    /// keyframe) is kept as the decision's evidence frame. True when the decision
    /// was more than clear.
    pub(super) fn act(
        &self,
        decision: Decision,
        at: SampleTime,
        lookup: Option<&Lookup>,
        learn: Vec<(Hash256, u8)>,
        signal: GateSignal,
        picture: Option<Source<'_>>,
    ) -> bool {
        let Some(acted) = self.act_on(decision, at, lookup, learn) else {
            self.answer_gate(at.offset, signal, Outcome::Clear);
            return false;
        };
        let outcome = if acted.verdict == Verdict::Cut {
            Outcome::Cut
        } else {
            Outcome::Clear
        };
        self.answer_gate(at.offset, signal, outcome);
        // After the cut and the gate: the encode delays neither. Before the record of a
        // verdict that does not cut: whoever reads the record finds its evidence. (A
        // cut's record is written once the sockets closed, in practice after this.)
        if let (Some(capture), Some(picture)) = (acted.capture, picture) {
            self.analysis.evidence.capture(capture, picture);
        }
        if let Some(finding) = acted.to_record {
            self.analysis.actions.record(&self.session, finding);
        }
        true
    }

    /// [`StreamAnalysis::act`] without the gate and the encode: cuts at once, and says
    /// what else is to be done, `None` for clear.
    fn act_on(
        &self,
        decision: Decision,
        at: SampleTime,
        lookup: Option<&Lookup>,
        learn: Vec<(Hash256, u8)>,
    ) -> Option<Acted> {
        let event = match decision.verdict {
            Verdict::Clear => return None,
            Verdict::Log => AuditEvent::Match,
            Verdict::Alert => AuditEvent::Alert,
            Verdict::ShadowCut => AuditEvent::ShadowCut,
            Verdict::Cut => AuditEvent::Cut,
        };
        let finding = Finding {
            signal: decision
                .evidence
                .as_ref()
                .and_then(|evidence| signal_record(evidence, lookup)),
            pts_seconds: Some(at.pts_ms as f64 / 1000.0),
            evidence: self.analysis.evidence.new_id().map(|id| id.to_string()),
            ..Finding::new(event, decision.reason)
        };
        let capture = self.capture_of(&finding, at);
        let actions = &self.analysis.actions;
        if let Some(signal) = &finding.signal {
            actions.telemetry().record_verdict(signal.kind, event);
        }
        if event != AuditEvent::Cut {
            return Some(Acted {
                verdict: decision.verdict,
                capture,
                to_record: Some(finding),
            });
        }
        self.ended.store(true, Ordering::Relaxed);
        let descriptors = lock(&self.recent_descriptors).drain(..).collect();
        actions.cut(
            &self.session,
            Cut {
                closer: Closer::Policy,
                kind: EndKind::PolicyCut,
                finding,
                keyframe_arrived: Some(at.arrived),
                ban: true,
                learn: Learned {
                    hashes: learn,
                    descriptors,
                },
            },
        );
        Some(Acted {
            verdict: Verdict::Cut,
            capture,
            to_record: None,
        })
    }

    /// What the evidence frame of `finding` keeps besides the picture, when it has an id.
    fn capture_of(&self, finding: &Finding, at: SampleTime) -> Option<Capture> {
        let id = finding
            .evidence
            .as_deref()
            .and_then(crate::evidence::EvidenceId::parse)?;
        let identity = self.session.identity();
        Some(Capture {
            id,
            event: finding.event,
            stream_id: self.session.id,
            app: identity.app.unwrap_or_default(),
            key_fingerprint: identity.key.map(|key| key.fingerprint().to_string()),
            client: self.session.client.to_string(),
            pts_seconds: finding.pts_seconds,
            offset: at.offset,
            pdq: at.pdq.map(|(hash, quality)| (hash.to_hex(), quality)),
            signal: finding
                .signal
                .as_ref()
                .and_then(|signal| serde_json::to_value(signal).ok()),
            bbox: finding.signal.as_ref().and_then(|signal| signal.bbox),
            reason: finding.reason.clone(),
        })
    }
}

/// A decision acted on: its verdict, what its evidence frame keeps, and the finding to
/// audit once the frame is kept (none for a cut, audited when its sockets close).
struct Acted {
    verdict: Verdict,
    capture: Option<Capture>,
    to_record: Option<Finding>,
}

/// The audit form of the deciding signal. A PDQ match names the frame hash and variant
/// it matched as, from the sample's query.
fn signal_record(evidence: &Evidence, lookup: Option<&Lookup>) -> Option<SignalRecord> {
    match evidence {
        Evidence::Classifier { label, score, bbox } => {
            Some(SignalRecord::classifier(label, *score, *bbox))
        }
        Evidence::Descriptor { found, view } => Some(SignalRecord::descriptor(found, view)),
        Evidence::Pdq(found) => {
            let lookup = lookup?;
            let (picture, index, prefix) = match &lookup.inside_bars {
                Some(inside) if found.variant >= INSIDE_BARS_VARIANTS => {
                    (inside, found.variant - INSIDE_BARS_VARIANTS, "inside_bars:")
                }
                _ => (&lookup.full, found.variant, ""),
            };
            let name = Dihedral::ALL
                .get(index)
                .map_or("original", |variant| variant.name());
            let frame_hash = picture.variants.get(index).unwrap_or(&picture.variants[0]);
            Some(SignalRecord::pdq(
                found,
                frame_hash,
                picture.quality,
                &format!("{prefix}{name}"),
            ))
        }
    }
}
