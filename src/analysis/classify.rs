//! The classifier beside the hashes: one in `every_nth_sample` analysed keyframes of a
//! stream is copied (as the RGB24 picture the PDQ path already made) into a bounded
//! queue, and the classifier's own threads run the model on it and apply the stream's
//! per-label rules. A full queue sheds the picture and counts it
//! (`livegate_classifier_shed_total`), so
//! the model never holds up hashing; a classifier cut goes the same `CutRequest` way as a
//! hash cut, so its time to cut is audited too.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::{debug, info, warn};

use super::{StreamAnalysis, lock};
use crate::actions::{AuditEvent, SignalRecord};
use crate::policy::Verdict;
use crate::session::{Closer, CutEvidence, CutRequest, EndKind};
use crate::signals::classifier::{
    Classifier, ClassifierConfig, ClassifierError, ClassifierPolicy, LabelScore,
};
use livegate_signals::pdq::Image;

/// Counters for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct ClassifierStats {
    pub pictures_shed: AtomicU64,
    pub pictures_classified: AtomicU64,
    pub errors: AtomicU64,
    pub verdicts: AtomicU64,
}

/// A keyframe's picture waiting for the model.
pub(super) struct ClassifyJob {
    stream: Arc<StreamAnalysis>,
    /// Packed RGB24 rows.
    pixels: Vec<u8>,
    width: usize,
    height: usize,
    arrived: Instant,
    pts_ms: i64,
}

/// The classifier threads and their queue, shared by all streams.
pub struct ClassifierPool {
    config: Arc<ClassifierConfig>,
    queue: Sender<ClassifyJob>,
    pub stats: Arc<ClassifierStats>,
}

impl ClassifierPool {
    /// Loads the model once per worker (so startup fails on a bad model, shape or runtime)
    /// and starts the workers.
    pub fn start(config: ClassifierConfig) -> Result<Arc<Self>, ClassifierError> {
        let config = Arc::new(config);
        let (queue, jobs) = crossbeam_channel::bounded::<ClassifyJob>(config.queue);
        let stats = Arc::new(ClassifierStats::default());
        for index in 0..config.workers {
            let classifier = Classifier::load(Arc::clone(&config))?;
            let (jobs, stats) = (jobs.clone(), Arc::clone(&stats));
            let spawned = std::thread::Builder::new()
                .name(format!("livegate-classifier-{index}"))
                .spawn(move || run_classifier(classifier, jobs, stats));
            if let Err(error) = spawned {
                warn!(%error, index, "cannot start a classifier worker");
            }
        }
        info!(workers = config.workers, model = %config.model.display(), "classifier loaded");
        Ok(Arc::new(ClassifierPool {
            config,
            queue,
            stats,
        }))
    }

    pub fn config(&self) -> &Arc<ClassifierConfig> {
        &self.config
    }

    /// Queues a copy of `picture`; never waits: a full queue sheds it.
    pub(super) fn offer(
        &self,
        stream: &Arc<StreamAnalysis>,
        picture: &Image<'_>,
        arrived: Instant,
        pts_ms: i64,
    ) {
        let row = picture.width * 3;
        let pixels: Vec<u8> = (0..picture.height)
            .filter_map(|y| {
                picture
                    .data
                    .get(y * picture.stride..y * picture.stride + row)
            })
            .flatten()
            .copied()
            .collect();
        let job = ClassifyJob {
            stream: Arc::clone(stream),
            pixels,
            width: picture.width,
            height: picture.height,
            arrived,
            pts_ms,
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.pictures_shed.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                warn!("classifier workers are gone: picture not classified");
            }
        }
    }
}

fn run_classifier(
    mut classifier: Classifier,
    jobs: Receiver<ClassifyJob>,
    stats: Arc<ClassifierStats>,
) {
    for job in jobs {
        if job.stream.ended.load(Ordering::Relaxed) {
            continue;
        }
        let picture = Image {
            data: &job.pixels,
            width: job.width,
            height: job.height,
            stride: job.width * 3,
        };
        match classifier.classify(&picture) {
            Ok(scores) => {
                stats.pictures_classified.fetch_add(1, Ordering::Relaxed);
                if job.stream.act_on_scores(&scores, &job, classifier.config()) {
                    stats.verdicts.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                debug!(session = %job.stream.session.id, %error, "picture not classified");
            }
        }
    }
}

impl StreamAnalysis {
    /// Applies the stream's classifier rules to one picture's scores and audits or cuts;
    /// true when a rule fired.
    fn act_on_scores(
        &self,
        scores: &[LabelScore],
        job: &ClassifyJob,
        config: &Arc<ClassifierConfig>,
    ) -> bool {
        let decision = {
            let mut policy = lock(&self.classifier_policy);
            let policy = policy.get_or_insert_with(|| {
                let identity = self.session.identity();
                let fingerprint = identity
                    .key
                    .as_ref()
                    .map(|key| key.fingerprint().to_string());
                let rules = &self.analysis.policy;
                ClassifierPolicy::new(
                    Arc::clone(config),
                    rules.mode,
                    rules.allows(
                        identity.app.as_deref().unwrap_or(""),
                        fingerprint.as_deref(),
                    ),
                )
            });
            policy.decide(scores)
        };
        let Some(decision) = decision else {
            return false;
        };
        let event = match decision.verdict {
            Verdict::Clear => return false,
            Verdict::Log => AuditEvent::Match,
            Verdict::Alert => AuditEvent::Alert,
            Verdict::ShadowCut => AuditEvent::ShadowCut,
            Verdict::Cut => AuditEvent::Cut,
        };
        let bbox = scores
            .iter()
            .find(|found| found.label == decision.label && found.score == decision.score)
            .and_then(|found| found.bbox);
        let mut record = self.audit_record(event, decision.reason.clone());
        record.pts_seconds = Some(job.pts_ms as f64 / 1000.0);
        record.signal = Some(SignalRecord::classifier(
            &decision.label,
            decision.score,
            bbox,
        ));
        if event != AuditEvent::Cut {
            self.analysis.actuator.record(record);
            return true;
        }
        self.session.request_cut(CutRequest {
            closer: Closer::Policy,
            kind: EndKind::PolicyCut,
            reason: decision.reason,
            evidence: Some(Arc::new(CutEvidence {
                record,
                keyframe_arrived: Some(job.arrived),
            })),
        });
        self.ended.store(true, Ordering::Relaxed);
        if let Some(key) = self.session.identity().key {
            self.analysis.actuator.ban(key.fingerprint());
        }
        true
    }
}
