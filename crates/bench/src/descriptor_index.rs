//! `livegate-bench descriptor-index`: build time, memory and per-query latency of the exact
//! descriptor index (int8 scan, f32 re-scoring) against the f32 brute force (every stored
//! descriptor scored in f32) measured in the same run on the same queries, whose answers
//! must be identical. The list is also written as a list file and loaded back (`file_MB`,
//! `load_s`, `load_MiB`: what the proxy's loading costs), after the in-memory list is
//! dropped.
//!
//! Stored descriptors are random unit vectors (unrelated pictures' descriptors are close
//! to that: cosines 0.02 ± 0.055). Half the queries are a stored descriptor moved to a
//! cosine of about 0.8 (an edited copy), half are random (a benign frame), so searches at
//! copy thresholds return results. One thread: the figures are per core. `batch_*` is
//! the time per query when `--batch` queries (a keyframe's views) are searched together.

use clap::Args;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use livegate_signals::descriptor::{
    Descriptor, DescriptorList, DescriptorListLimits, DescriptorModel, RecordFields,
};
use livegate_signals::descriptor_index::DescriptorMatch;

use crate::index::{SplitMix, mean, micros, percentile, resident_bytes};

#[derive(Args)]
pub struct DescriptorIndexBenchArgs {
    /// List sizes (number of descriptors), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100_000, 1_000_000])]
    pub descriptors: Vec<usize>,
    /// Dimension of the descriptors (SSCD: 512).
    #[arg(long, default_value_t = 512)]
    pub dim: usize,
    /// Cosine threshold of the searches.
    #[arg(long, default_value_t = 0.75)]
    pub threshold: f32,
    /// Timed index searches per size.
    #[arg(long, default_value_t = 400)]
    pub queries: usize,
    /// Brute-force searches per size (each scores the whole list in f32).
    #[arg(long, default_value_t = 20)]
    pub brute_queries: usize,
    /// Queries per batch search (a keyframe's views: whole picture, crops, top part).
    #[arg(long, default_value_t = 7)]
    pub batch: usize,
    /// Seed of the pseudo-random descriptors and queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl SplitMix {
    /// About a standard Gaussian (a sum of four uniforms, each of variance 1/12, scaled to
    /// variance 1): enough for directions.
    fn gaussian(&mut self) -> f32 {
        let sum: f32 = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .sum();
        sum * 3f32.sqrt()
    }

    /// A random unit vector of `dim` dimensions.
    pub(crate) fn unit(&mut self, dim: usize) -> anyhow::Result<Descriptor> {
        Ok(Descriptor::new(
            (0..dim).map(|_| self.gaussian()).collect(),
        )?)
    }

    /// `base` moved to a cosine of about `1/√(1 + amount²)`.
    fn near_descriptor(&mut self, base: &Descriptor, amount: f32) -> anyhow::Result<Descriptor> {
        let spread = amount / (base.dim() as f32).sqrt();
        let values = base
            .values()
            .iter()
            .map(|&v| v + spread * self.gaussian())
            .collect();
        Ok(Descriptor::new(values)?)
    }
}

pub fn run(args: DescriptorIndexBenchArgs) -> anyhow::Result<ExitCode> {
    println!(
        "livegate bench descriptor-index: {}-d, threshold {}, {} index queries and {} brute-force queries per size, seed {}",
        args.dim, args.threshold, args.queries, args.brute_queries, args.seed
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.trim());
    }
    println!(
        "{:>11} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8} {:>9} {:>9} {:>10} {:>8} {:>6}",
        "descriptors",
        "build_s",
        "file_MB",
        "load_s",
        "B/desc",
        "rss_MiB",
        "load_MiB",
        "p50_us",
        "p99_us",
        "batch_p50",
        "batch_p99",
        "top1_p50",
        "top1_p99",
        "brute_us",
        "brute_p99",
        "speedup",
        "found"
    );
    for &size in &args.descriptors {
        bench_size(&args, size)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_size(args: &DescriptorIndexBenchArgs, size: usize) -> anyhow::Result<()> {
    let rss_before = resident_bytes();
    let mut rng = SplitMix(args.seed ^ (size as u64).rotate_left(32));
    let model = DescriptorModel::new("bench-random", args.dim)?;
    let mut list = DescriptorList::new(model);
    let started = Instant::now();
    let mut source = String::new();
    for i in 0..size {
        source.clear();
        source.push_str("bench-");
        source.push_str(&(i / 100).to_string());
        let fields = RecordFields {
            source: &source,
            pts: Some((i % 100) as f64 * 2.0),
            label: "",
        };
        list.push(&rng.unit(args.dim)?.quantize(), &fields, i as u32 + 1)?;
    }
    list.shrink_to_fit();
    let build_time = started.elapsed();
    let rss_delta = resident_bytes().saturating_sub(rss_before);

    let index = list.index();

    let queries = (0..args.queries.max(args.brute_queries))
        .map(|i| {
            if i % 2 == 0 {
                let id = rng.below(size as u64) as usize;
                let stored = index.vector(id).unwrap_or_default();
                let stored = Descriptor::new(stored.into_iter().map(f32::from).collect())?;
                rng.near_descriptor(&stored, 0.75)
            } else {
                rng.unit(args.dim)
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut found: Vec<DescriptorMatch> = Vec::new();
    let mut times = Vec::with_capacity(args.queries);
    let mut found_total = 0usize;
    for query in &queries[..args.queries] {
        let started = Instant::now();
        index.search_into(query, args.threshold, &mut found)?;
        times.push(started.elapsed());
        found_total += found.len();
    }
    let mut top1 = Vec::with_capacity(args.queries);
    for query in &queries[..args.queries] {
        let started = Instant::now();
        let best = index.top_k(query, 1)?;
        top1.push(started.elapsed());
        std::hint::black_box(best);
    }

    // The views of one keyframe are searched together: per-query time of a batch.
    let mut batched = Vec::new();
    let mut outs = Vec::new();
    for batch in queries[..args.queries].chunks_exact(args.batch.max(1)) {
        let started = Instant::now();
        index.search_batch_into(batch, args.threshold, &mut outs)?;
        batched.push(started.elapsed() / batch.len() as u32);
    }

    let mut brute: Vec<Duration> = Vec::with_capacity(args.brute_queries);
    for query in &queries[..args.brute_queries] {
        let started = Instant::now();
        let expected = index.brute_force_search(query, args.threshold)?;
        brute.push(started.elapsed());
        index.search_into(query, args.threshold, &mut found)?;
        anyhow::ensure!(
            found == expected,
            "index and brute force disagree ({} vs {} results)",
            found.len(),
            expected.len()
        );
        index.search_batch_into(std::slice::from_ref(query), args.threshold, &mut outs)?;
        anyhow::ensure!(outs[0] == expected, "batch search and brute force disagree");
        let best = index.top_k(query, 5)?;
        anyhow::ensure!(
            best == index.brute_force_top_k(query, 5)?,
            "top-5 and brute force disagree"
        );
    }

    // The list as a file: written, the in-memory list dropped, then loaded back (what the
    // proxy does), which must give the same vectors in no more memory.
    let file = tempfile::NamedTempFile::new()?;
    list.write(std::io::BufWriter::new(file.as_file()))?;
    let file_bytes = file.as_file().metadata()?.len();
    let samples: Vec<_> = [0, size / 2, size.saturating_sub(1)]
        .into_iter()
        .map(|id| (id, list.index().vector(id)))
        .collect();
    let model = list.model().clone();
    drop(list);
    let rss_before = resident_bytes();
    let started = Instant::now();
    let limits = DescriptorListLimits {
        max_descriptors: size.max(1),
        ..DescriptorListLimits::default()
    };
    let loaded = DescriptorList::load(file.path(), &model, &limits)?;
    let load_time = started.elapsed();
    let load_rss = resident_bytes().saturating_sub(rss_before);
    for (id, vector) in samples {
        anyhow::ensure!(
            loaded.index().vector(id) == vector,
            "descriptor {id} differs after writing and loading the list"
        );
    }

    let (brute_mean, index_mean) = (mean(&brute), mean(&times));
    println!(
        "{:>11} {:>8.2} {:>7.0} {:>7.2} {:>7.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>10.0} {:>10.0} {:>8.0} {:>9.0} {:>9.0} {:>10.0} {:>7.1}x {:>6.2}",
        size,
        build_time.as_secs_f64(),
        file_bytes as f64 / 1e6,
        load_time.as_secs_f64(),
        loaded.memory_bytes() as f64 / size.max(1) as f64,
        rss_delta as f64 / f64::from(1 << 20),
        load_rss as f64 / f64::from(1 << 20),
        micros(percentile(&mut times, 0.50)),
        micros(percentile(&mut times, 0.99)),
        micros(percentile(&mut batched, 0.50)),
        micros(percentile(&mut batched, 0.99)),
        micros(percentile(&mut top1, 0.50)),
        micros(percentile(&mut top1, 0.99)),
        micros(brute_mean),
        micros(percentile(&mut brute, 0.99)),
        brute_mean.as_secs_f64() / index_mean.as_secs_f64().max(1e-12),
        found_total as f64 / args.queries.max(1) as f64,
    );
    Ok(())
}
