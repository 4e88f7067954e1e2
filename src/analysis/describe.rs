//! The descriptor beside the hashes: one in `every_nth_sample` analysed keyframes of a
//! stream is copied (as the RGB24 picture the PDQ path already made), with the views the
//! stream's [`ViewCycle`] chose for it, into a bounded queue. The descriptor's own
//! threads trim the picture's uniform borders, describe its views in one model run, look
//! the descriptors up in the `[[descriptorlist]]`s and hand the matches to the stream's
//! one policy. A full queue sheds the picture and counts it
//! (`livegate_descriptor_shed_total`), so the model never holds up hashing; a descriptor
//! verdict is acted on by the same pipeline step as a hash verdict, so its time to cut is
//! audited too. The whole-picture descriptors of a stream's latest described keyframes
//! are kept for `actuator.learn_into`.

use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::{debug, info, warn};

use super::StreamAnalysis;
use super::pipeline::SampleTime;
use crate::descriptor::views::{View, crop_view, trim_borders};
use crate::descriptor::{DescriptorConfig, DescriptorError, DescriptorModel};
use crate::evidence::Source;
use crate::policy::{DescriptorSignal, Signals};
use crate::session::{GateSignal, Outcome};
use crate::signals::descriptor_lists::{
    DescriptorListMatch, DescriptorListSet, DescriptorLookupScratch,
};
use livegate_signals::descriptor::Descriptor;
use livegate_signals::pdq::Image;

/// Counters for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct DescriptorStats {
    pub pictures_shed: AtomicU64,
    pub pictures_described: AtomicU64,
    pub views_described: AtomicU64,
    pub errors: AtomicU64,
    /// Described pictures with at least one list match.
    pub matches: AtomicU64,
    pub verdicts: AtomicU64,
    /// Sum of model and lookup time per described picture, for the mean.
    pub describe_micros_total: AtomicU64,
}

/// A keyframe's picture waiting for the model.
pub(super) struct DescribeJob {
    stream: Arc<StreamAnalysis>,
    /// Packed RGB24 rows.
    pixels: Vec<u8>,
    width: usize,
    height: usize,
    views: Vec<View>,
    at: SampleTime,
}

/// The descriptor threads and their queue, shared by all streams.
pub struct DescriptorPool {
    config: Arc<DescriptorConfig>,
    queue: Sender<DescribeJob>,
    pub stats: Arc<DescriptorStats>,
}

impl DescriptorPool {
    /// Loads the model once per worker (so startup fails on a bad model, shape or
    /// runtime, naming the key) and starts the workers, which look descriptors up in
    /// `lists`.
    pub fn start(
        config: DescriptorConfig,
        lists: Arc<DescriptorListSet>,
    ) -> Result<Arc<Self>, DescriptorError> {
        let config = Arc::new(config);
        let (queue, jobs) = crossbeam_channel::bounded::<DescribeJob>(config.queue);
        let stats = Arc::new(DescriptorStats::default());
        for index in 0..config.workers {
            let model = DescriptorModel::load(Arc::clone(&config))?;
            let (jobs, stats, lists) = (jobs.clone(), Arc::clone(&stats), Arc::clone(&lists));
            let spawned = std::thread::Builder::new()
                .name(format!("livegate-descriptor-{index}"))
                .spawn(move || run_describer(model, lists, jobs, stats));
            if let Err(error) = spawned {
                warn!(%error, index, "cannot start a descriptor worker");
            }
        }
        info!(
            workers = config.workers,
            model = %config.model.display(),
            views = config.views.name(),
            views_per_keyframe = config.views_per_keyframe.unwrap_or(config.views.views().len()),
            "descriptor loaded"
        );
        Ok(Arc::new(DescriptorPool {
            config,
            queue,
            stats,
        }))
    }

    pub fn config(&self) -> &Arc<DescriptorConfig> {
        &self.config
    }

    /// Queues a copy of `picture` to be described as `views`; never waits: a full queue
    /// sheds it (false).
    pub(super) fn offer(
        &self,
        stream: &Arc<StreamAnalysis>,
        picture: &Image<'_>,
        views: Vec<View>,
        at: SampleTime,
    ) -> bool {
        let job = DescribeJob {
            stream: Arc::clone(stream),
            pixels: picture.packed_rgb_rows(),
            width: picture.width,
            height: picture.height,
            views,
            at,
        };
        super::queue_or_shed(
            &self.queue,
            job,
            &self.stats.pictures_shed,
            "descriptor workers are gone: picture not described",
        )
    }
}

/// A describer thread's reusable buffers.
#[derive(Default)]
struct DescribeScratch {
    lookup: DescriptorLookupScratch,
    matches: Vec<DescriptorListMatch>,
}

fn run_describer(
    mut model: DescriptorModel,
    lists: Arc<DescriptorListSet>,
    jobs: Receiver<DescribeJob>,
    stats: Arc<DescriptorStats>,
) {
    let mut scratch = DescribeScratch::default();
    for job in jobs {
        if job.stream.ended.load(Ordering::Relaxed) {
            continue;
        }
        let started = Instant::now();
        let descriptors = match describe_views(&mut model, &job) {
            Ok(descriptors) => descriptors,
            Err(error) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                debug!(session = %job.stream.session.id, %error, "picture not described");
                job.stream
                    .answer_gate(job.at.offset, GateSignal::Descriptor, Outcome::Unjudged);
                continue;
            }
        };
        stats.pictures_described.fetch_add(1, Ordering::Relaxed);
        stats
            .views_described
            .fetch_add(descriptors.len() as u64, Ordering::Relaxed);
        if let Some(whole) = descriptors.first() {
            job.stream.remember_descriptor(whole, job.at.pts_ms);
        }
        lists.lookup_into(&descriptors, &mut scratch.lookup, &mut scratch.matches);
        stats
            .describe_micros_total
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        if !scratch.matches.is_empty() {
            stats.matches.fetch_add(1, Ordering::Relaxed);
        }
        let decision = job.stream.decide(&Signals::descriptor(DescriptorSignal {
            matches: &scratch.matches,
            views: &job.views,
        }));
        let picture = Image {
            data: &job.pixels,
            width: job.width,
            height: job.height,
            stride: job.width * 3,
        };
        if job.stream.act(
            decision,
            job.at,
            None,
            Vec::new(),
            GateSignal::Descriptor,
            Some(Source::Rgb(&picture)),
        ) {
            stats.verdicts.fetch_add(1, Ordering::Relaxed);
        }
        // The keyframe's evidence (this decision's, or the hash path's) keeps its
        // descriptor, for a reviewer to confirm into a descriptor list.
        if let Some(whole) = descriptors.first() {
            job.stream.attach_descriptor(job.at, whole);
        }
    }
}

/// The descriptors of the job's views of its picture, trimmed of uniform borders, in the
/// order of `job.views` (the whole picture first).
fn describe_views(
    model: &mut DescriptorModel,
    job: &DescribeJob,
) -> Result<Vec<Descriptor>, String> {
    let picture = Image {
        data: &job.pixels,
        width: job.width,
        height: job.height,
        stride: job.width * 3,
    };
    let trimmed = trim_borders(&picture);
    let crops = job
        .views
        .iter()
        .map(|view| crop_view(&trimmed, view))
        .collect::<Option<Vec<Image<'_>>>>()
        .ok_or("empty picture")?;
    let vectors = model
        .describe_all(&crops)
        .map_err(|error| error.to_string())?;
    vectors
        .into_iter()
        .map(|vector| Descriptor::new(vector).map_err(|error| error.to_string()))
        .collect()
}
