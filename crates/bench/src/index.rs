//! `livegate-bench index`: build time, memory and lookup latency of the hash index at
//! several list sizes, on random and on clustered lists, against brute force (every hash
//! compared) measured in the same run on the same queries.
//!
//! Half the queries have a planted neighbour (a stored hash with up to `radius` bits
//! flipped), half are random, so lookups return results. The 8-variant lookup stands for a
//! frame plus its 7 dihedral variants: the extra 7 are random hashes, as real variants are
//! unrelated to the stored hashes.

use clap::Args;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use livegate_signals::hash256::Hash256;
use livegate_signals::hashlist::{HashListBuilder, ListLimits};
use livegate_signals::index::{HashIndex, Neighbor, SearchPlan};

#[derive(Args)]
pub struct IndexBenchArgs {
    /// List sizes (number of hashes), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100_000, 1_000_000, 10_000_000])]
    pub sizes: Vec<usize>,
    /// Search radius (Hamming distance).
    #[arg(long, default_value_t = 31, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub radius: u32,
    /// Timed index lookups per case.
    #[arg(long, default_value_t = 2000)]
    pub queries: usize,
    /// Brute-force lookups per case (each reads the whole list).
    #[arg(long, default_value_t = 20)]
    pub brute_queries: usize,
    /// Slot width in bits (e.g. 16 for Meta's 16 slots of 16 bits); default about log2(n).
    #[arg(long, value_parser = clap::value_parser!(u32).range(8..=24))]
    pub slot_bits: Option<u32>,
    /// Seed of the pseudo-random lists and queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Members per cluster in the clustered lists (consecutive frames of one video).
const CLUSTER_SIZE: usize = 64;
/// Largest distance of a cluster member from its cluster's centre.
const CLUSTER_SPREAD: u32 = 16;

#[derive(Clone, Copy)]
enum ListKind {
    Random,
    Clustered,
}

impl ListKind {
    fn name(self) -> &'static str {
        match self {
            ListKind::Random => "random",
            ListKind::Clustered => "clustered",
        }
    }
}

/// SplitMix64: a tiny, fast, deterministic generator (enough for benchmark data).
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    /// Uniform in [0, 1].
    pub(crate) fn next_fraction(&mut self) -> f64 {
        self.next() as f64 / u64::MAX as f64
    }

    fn hash(&mut self) -> Hash256 {
        Hash256::from_words([self.next(), self.next(), self.next(), self.next()])
    }

    /// `hash` with up to `max_flips` random bits flipped (repeats cancel).
    fn near(&mut self, hash: Hash256, max_flips: u32) -> Hash256 {
        let mut words = hash.words();
        for _ in 0..self.below(u64::from(max_flips) + 1) {
            let bit = self.below(256) as usize;
            words[bit / 64] ^= 1 << (bit % 64);
        }
        Hash256::from_words(words)
    }
}

pub fn run(args: IndexBenchArgs) -> anyhow::Result<ExitCode> {
    println!(
        "livegate bench index: radius {}, {} index queries and {} brute-force queries per case, seed {}",
        args.radius, args.queries, args.brute_queries, args.seed
    );
    // Latency percentiles are only as steady as the machine: show how busy it was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.trim());
    }
    println!(
        "{:<10} {:>10} {:>6} {:>7} {:>8} {:>9} {:>6} {:>9} {:>8} {:>8} {:>9} {:>9} {:>10} {:>9} {:>7}",
        "list",
        "hashes",
        "list_s",
        "index_s",
        "B/hash",
        "rss_MiB",
        "slots",
        "plan",
        "p50_us",
        "p99_us",
        "p50_8v_us",
        "p99_8v_us",
        "brute_us",
        "speedup",
        "found"
    );
    for &size in &args.sizes {
        for kind in [ListKind::Random, ListKind::Clustered] {
            bench_case(&args, size, kind)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_case(args: &IndexBenchArgs, size: usize, kind: ListKind) -> anyhow::Result<()> {
    let rss_before = resident_bytes();
    let mut rng = SplitMix(args.seed ^ (size as u64).rotate_left(32));
    let hashes = generate_list(&mut rng, size, kind);
    let queries: Vec<Hash256> = (0..args.queries.max(args.brute_queries))
        .map(|i| {
            if i % 2 == 0 {
                let stored = hashes[rng.below(size as u64) as usize];
                rng.near(stored, args.radius)
            } else {
                rng.hash()
            }
        })
        .collect();

    let limits = ListLimits {
        max_hashes: size.max(1),
        ..ListLimits::default()
    };
    let mut builder = HashListBuilder::new(Path::new("(generated)"), limits);
    let mut label = String::new();
    for (i, hash) in hashes.into_iter().enumerate() {
        label.clear();
        write!(label, "bench-{i}")?;
        builder.push(hash, Some(100), i as u32 + 1, &label)?;
    }
    let started = Instant::now();
    let list = builder.finish()?;
    let list_time = started.elapsed();
    let metadata = list.metadata;
    let started = Instant::now();
    let index = match args.slot_bits {
        Some(bits) => HashIndex::with_slot_bits(list.hashes, bits)?,
        None => HashIndex::new(list.hashes)?,
    };
    let index_time = started.elapsed();
    let rss_delta = resident_bytes().saturating_sub(rss_before);
    let memory = index.memory_bytes() + metadata.memory_bytes();

    let mut neighbors: Vec<Neighbor> = Vec::new();
    let mut single = Vec::with_capacity(args.queries);
    let mut found = 0usize;
    for query in &queries[..args.queries] {
        let started = Instant::now();
        index.search_into(query, args.radius, &mut neighbors);
        single.push(started.elapsed());
        found += neighbors.len();
    }
    let mut variants = [Hash256::default(); 8];
    let mut eight = Vec::with_capacity(args.queries);
    for query in &queries[..args.queries] {
        variants[0] = *query;
        for variant in &mut variants[1..] {
            *variant = rng.hash();
        }
        let started = Instant::now();
        for variant in &variants {
            index.search_into(variant, args.radius, &mut neighbors);
        }
        eight.push(started.elapsed());
    }

    let mut brute = Vec::with_capacity(args.brute_queries);
    let mut expected = Vec::new();
    for query in &queries[..args.brute_queries] {
        let started = Instant::now();
        index.linear_search_into(query, args.radius, &mut expected);
        brute.push(started.elapsed());
        index.search_into(query, args.radius, &mut neighbors);
        anyhow::ensure!(
            neighbors == expected,
            "index and brute force disagree on query {query} ({} vs {} results)",
            neighbors.len(),
            expected.len()
        );
    }

    let plan = match index.plan(args.radius) {
        SearchPlan::MultiIndex { .. } => "multi",
        SearchPlan::LinearScan => "linear",
    };
    let brute_mean = mean(&brute);
    let index_mean = mean(&single);
    println!(
        "{:<10} {:>10} {:>6.2} {:>7.2} {:>8.1} {:>9.0} {:>6} {:>9} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>10.1} {:>8.0}x {:>7.1}",
        kind.name(),
        size,
        list_time.as_secs_f64(),
        index_time.as_secs_f64(),
        memory as f64 / size.max(1) as f64,
        rss_delta as f64 / f64::from(1 << 20),
        index.slot_count(),
        plan,
        micros(percentile(&mut single, 0.50)),
        micros(percentile(&mut single, 0.99)),
        micros(percentile(&mut eight, 0.50)),
        micros(percentile(&mut eight, 0.99)),
        micros(brute_mean),
        brute_mean.as_secs_f64() / index_mean.as_secs_f64().max(1e-12),
        found as f64 / args.queries.max(1) as f64,
    );
    Ok(())
}

fn generate_list(rng: &mut SplitMix, size: usize, kind: ListKind) -> Vec<Hash256> {
    match kind {
        ListKind::Random => (0..size).map(|_| rng.hash()).collect(),
        ListKind::Clustered => {
            let mut hashes = Vec::with_capacity(size);
            while hashes.len() < size {
                let centre = rng.hash();
                for _ in 0..CLUSTER_SIZE.min(size - hashes.len()) {
                    let member = rng.near(centre, CLUSTER_SPREAD);
                    hashes.push(member);
                }
            }
            hashes
        }
    }
}

pub(crate) fn mean(times: &[Duration]) -> Duration {
    times.iter().sum::<Duration>() / u32::try_from(times.len().max(1)).unwrap_or(u32::MAX)
}

pub(crate) fn percentile(times: &mut [Duration], fraction: f64) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    times.sort_unstable();
    let rank = ((times.len() as f64 * fraction).ceil() as usize).clamp(1, times.len());
    times[rank - 1]
}

pub(crate) fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Resident set size from /proc/self/statm (0 where unavailable).
pub(crate) fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}
