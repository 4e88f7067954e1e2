//! The classifier beside the hashes: one in `every_nth_sample` analysed keyframes of a
//! stream is copied (as the RGB24 picture the PDQ path already made) into a bounded
//! queue, and the classifier's own threads run the model on it and hand its scores to
//! the stream's one policy. A full queue sheds the picture and counts it
//! (`livegate_classifier_shed_total`), so the model never holds up hashing; a classifier
//! verdict is acted on by the same pipeline step as a hash verdict, so its time to cut
//! is audited too.

use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::{debug, info, warn};

use super::StreamAnalysis;
use super::pipeline::SampleTime;
use crate::evidence::Source;
use crate::policy::Signals;
use crate::session::{GateSignal, Outcome};
use crate::signals::classifier::{Classifier, ClassifierConfig, ClassifierError};
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
    at: SampleTime,
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

    /// Queues a copy of `picture`; never waits: a full queue sheds it (false).
    pub(super) fn offer(
        &self,
        stream: &Arc<StreamAnalysis>,
        picture: &Image<'_>,
        at: SampleTime,
    ) -> bool {
        let job = ClassifyJob {
            stream: Arc::clone(stream),
            pixels: picture.packed_rgb_rows(),
            width: picture.width,
            height: picture.height,
            at,
        };
        super::queue_or_shed(
            &self.queue,
            job,
            &self.stats.pictures_shed,
            "classifier workers are gone: picture not classified",
        )
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
                let decision = job.stream.decide(&Signals::classifier(&scores));
                if job.stream.act(
                    decision,
                    job.at,
                    None,
                    Vec::new(),
                    GateSignal::Classifier,
                    Some(Source::Rgb(&picture)),
                ) {
                    stats.verdicts.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                debug!(session = %job.stream.session.id, %error, "picture not classified");
                job.stream
                    .answer_gate(job.at.offset, GateSignal::Classifier, Outcome::Unjudged);
            }
        }
    }
}
