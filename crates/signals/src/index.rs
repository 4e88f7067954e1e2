//! Exact radius search over 256-bit hashes: multi-index hashing with a linear-scan fallback.
//!
//! The 256 bits are cut into `m` contiguous slots of about ⌊log2(n)⌋ bits each (Norouzi et
//! al.'s rule, so an exact-match bucket holds one or two hashes and the offset tables cost
//! about 4·m bytes per hash). Pigeonhole: if a stored hash
//! is within distance `r` of the query, the slot distances sum to at most `r`, so some slot
//! `s` has distance ≤ `t_s` whenever Σ (t_s + 1) ≥ r + 1. With `r = q·m + a` the search
//! gives `a + 1` slots the threshold `q` and the others `q − 1` (a slot with threshold −1 is
//! not probed), and probes, in each slot, every bucket within its threshold. Candidates are
//! verified with the full 256-bit distance, so the result is exact: every stored hash
//! within the radius, each once. A hash found through slot `s` is reported only if no
//! earlier slot would also have found it, which removes duplicates without a visited set.
//!
//! When the expected number of probes and candidates costs more than reading every hash
//! (large radii, tiny lists), the search scans the flat array instead.
//!
//! Layout: the hashes in one contiguous array (ids are positions in it); per slot, a bucket
//! offset table of `2^bits + 1` `u32`s and the `u32` ids ordered by bucket, built by
//! counting sort. A search allocates nothing beyond the caller's result vector.

use crate::hash256::Hash256;

/// Widest slot: bounds each offset table to 64 MiB.
const MAX_SLOT_BITS: u32 = 24;
/// Narrowest slot, for tiny lists (which scan linearly anyway).
const MIN_SLOT_BITS: u32 = 8;
/// At most 256 / MIN_SLOT_BITS slots.
const MAX_SLOTS: usize = 32;
/// Ids are `u32`, with one value kept free for the offset tables' end.
pub const MAX_HASHES: usize = u32::MAX as usize - 1;

/// Rough relative costs used to choose between probing and scanning: a bucket probe and a
/// candidate check are cache misses, a scanned hash is a streamed read.
const PROBE_COST: f64 = 2.0;
const CANDIDATE_COST: f64 = 1.5;
const SCAN_COST: f64 = 0.12;
/// Buckets enumerated (and their bounds prefetched) before any is read (see [`Probe`]).
const BUCKET_BATCH: usize = 32;
/// Candidate ids gathered (and their hashes prefetched) before any hash is compared.
const CANDIDATE_BATCH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("{count} hashes exceed the index capacity of {MAX_HASHES}")]
    TooManyHashes { count: usize },
}

/// One stored hash within the search radius.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// Position of the hash in [`HashIndex::hashes`].
    pub id: u32,
    pub distance: u32,
}

/// A contiguous range of bits of the hash, counted from the most significant bit of the
/// first word (the first hex digit).
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: u32,
    bits: u32,
}

impl Slot {
    #[inline(always)]
    fn value(self, hash: &Hash256) -> u32 {
        let words = hash.words();
        let word = (self.start / 64) as usize;
        let offset = self.start % 64;
        let high = u128::from(words[word]) << 64;
        let low = words.get(word + 1).map_or(0, |&next| u128::from(next));
        let shifted = (high | low) >> (128 - offset - self.bits);
        (shifted as u32) & ((1u32 << self.bits) - 1)
    }
}

struct SlotTable {
    /// `offsets[v]..offsets[v + 1]` is the range of `ids` whose slot value is `v`.
    offsets: Vec<u32>,
    ids: Vec<u32>,
}

/// Which search a caller asked for.
#[derive(Clone, Copy)]
enum Method {
    /// Whichever [`HashIndex::plan`] expects to be faster.
    Planned,
    Probe,
    Scan,
}

/// How a search at one radius runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchPlan {
    /// Probe buckets, then check the candidates found in them.
    MultiIndex {
        probes: f64,
        expected_candidates: f64,
    },
    LinearScan,
}

pub struct HashIndex {
    hashes: Vec<Hash256>,
    slots: Vec<Slot>,
    tables: Vec<SlotTable>,
}

impl HashIndex {
    /// Indexes `hashes`; a hash's id is its position. Duplicates are allowed (each is found).
    /// Slots are about ⌊log2(n)⌋ bits wide.
    pub fn new(hashes: Vec<Hash256>) -> Result<HashIndex, IndexError> {
        let bits = hashes.len().max(2).ilog2();
        HashIndex::with_slot_bits(hashes, bits)
    }

    /// [`HashIndex::new`] with slots of about `bits` bits (clamped to 8..=24), e.g. 16 for
    /// Meta's layout of 16 slots of 16 bits.
    pub fn with_slot_bits(hashes: Vec<Hash256>, bits: u32) -> Result<HashIndex, IndexError> {
        if hashes.len() > MAX_HASHES {
            return Err(IndexError::TooManyHashes {
                count: hashes.len(),
            });
        }
        let slots = slot_layout(bits);
        let tables = slots
            .iter()
            .map(|&slot| build_table(&hashes, slot))
            .collect();
        Ok(HashIndex {
            hashes,
            slots,
            tables,
        })
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn hashes(&self) -> &[Hash256] {
        &self.hashes
    }

    /// Number of slots the 256 bits are cut into.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Bytes held by the index (hashes, offset tables, postings).
    pub fn memory_bytes(&self) -> usize {
        let tables: usize = self
            .tables
            .iter()
            .map(|table| (table.offsets.capacity() + table.ids.capacity()) * size_of::<u32>())
            .sum();
        size_of::<Self>()
            + self.hashes.capacity() * size_of::<Hash256>()
            + self.slots.capacity() * size_of::<Slot>()
            + self.tables.capacity() * size_of::<SlotTable>()
            + tables
    }

    /// Every stored hash within `max_distance` of `query`, nearest first (ties by id),
    /// written into `out` (cleared first).
    pub fn search_into(&self, query: &Hash256, max_distance: u32, out: &mut Vec<Neighbor>) {
        self.run(query, max_distance, Method::Planned, out);
    }

    /// [`HashIndex::search_into`] into a new vector.
    pub fn search(&self, query: &Hash256, max_distance: u32) -> Vec<Neighbor> {
        let mut out = Vec::new();
        self.search_into(query, max_distance, &mut out);
        out
    }

    /// [`HashIndex::search_into`] forced to probe buckets even where a scan is cheaper.
    pub fn multi_index_search_into(
        &self,
        query: &Hash256,
        max_distance: u32,
        out: &mut Vec<Neighbor>,
    ) {
        self.run(query, max_distance, Method::Probe, out);
    }

    /// The brute-force answer (every hash compared), nearest first: the yardstick.
    pub fn linear_search_into(&self, query: &Hash256, max_distance: u32, out: &mut Vec<Neighbor>) {
        self.run(query, max_distance, Method::Scan, out);
    }

    /// Runs a search with the CPU's popcount instruction when it has one (the portable
    /// build of `count_ones` is several times slower).
    fn run(&self, query: &Hash256, max_distance: u32, method: Method, out: &mut Vec<Neighbor>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: `run_with_popcnt` needs only POPCNT, which this CPU has (checked above).
            unsafe { self.run_with_popcnt(query, max_distance, method, out) };
            return;
        }
        self.run_portable(query, max_distance, method, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    fn run_with_popcnt(
        &self,
        query: &Hash256,
        max_distance: u32,
        method: Method,
        out: &mut Vec<Neighbor>,
    ) {
        self.run_portable(query, max_distance, method, out);
    }

    #[inline(always)]
    fn run_portable(
        &self,
        query: &Hash256,
        max_distance: u32,
        method: Method,
        out: &mut Vec<Neighbor>,
    ) {
        out.clear();
        let mut thresholds = [0i32; MAX_SLOTS];
        let plan = self.plan_into(max_distance, &mut thresholds);
        match (method, plan) {
            (Method::Scan, _) | (Method::Planned, SearchPlan::LinearScan) => {
                self.scan(query, max_distance, out);
            }
            (Method::Probe, _) | (Method::Planned, SearchPlan::MultiIndex { .. }) => {
                self.probe(query, max_distance, &thresholds, out);
            }
        }
        out.sort_unstable_by_key(|neighbor| (neighbor.distance, neighbor.id));
    }

    /// How a search at `max_distance` would run, with its expected work.
    pub fn plan(&self, max_distance: u32) -> SearchPlan {
        self.plan_into(max_distance, &mut [0; MAX_SLOTS])
    }

    fn plan_into(&self, max_distance: u32, thresholds: &mut [i32; MAX_SLOTS]) -> SearchPlan {
        let m = self.slots.len() as u32;
        let n = self.hashes.len() as f64;
        let (q, a) = (max_distance / m, max_distance % m);
        // Σ (t_s + 1) must reach r + 1 = q·m + a + 1: the last a + 1 (narrowest) slots
        // get q, the first m − a − 1 (widest) get q − 1.
        let lowered = (m - a - 1) as usize;
        let mut probes = 0.0;
        let mut candidates = 0.0;
        for (s, slot) in self.slots.iter().enumerate() {
            let threshold = if s < lowered { q as i32 - 1 } else { q as i32 };
            thresholds[s] = threshold;
            let mut buckets = 0.0;
            let mut binomial = 1.0;
            for k in 0..=threshold.min(slot.bits as i32) {
                if k > 0 {
                    binomial = binomial * f64::from(slot.bits - k as u32 + 1) / f64::from(k);
                }
                buckets += binomial;
            }
            probes += buckets;
            candidates += buckets * n / f64::from(1u32 << slot.bits);
        }
        let probing = probes * PROBE_COST + candidates * CANDIDATE_COST;
        if probing >= n * SCAN_COST {
            SearchPlan::LinearScan
        } else {
            SearchPlan::MultiIndex {
                probes,
                expected_candidates: candidates,
            }
        }
    }

    #[inline(always)]
    fn scan(&self, query: &Hash256, max_distance: u32, out: &mut Vec<Neighbor>) {
        for (id, hash) in self.hashes.iter().enumerate() {
            let distance = hash.distance(query);
            if distance <= max_distance {
                out.push(Neighbor {
                    id: id as u32,
                    distance,
                });
            }
        }
    }

    #[inline(always)]
    fn probe(
        &self,
        query: &Hash256,
        max_distance: u32,
        thresholds: &[i32; MAX_SLOTS],
        out: &mut Vec<Neighbor>,
    ) {
        let mut query_values = [0u32; MAX_SLOTS];
        for (value, slot) in query_values.iter_mut().zip(&self.slots) {
            *value = slot.value(query);
        }
        let probe = Probe {
            index: self,
            query,
            max_distance,
            query_values,
            thresholds,
        };
        for (s, (slot, table)) in self.slots.iter().zip(&self.tables).enumerate() {
            let Ok(threshold) = u32::try_from(thresholds[s]) else {
                continue;
            };
            let mut buckets = [0u32; BUCKET_BATCH];
            let mut filled = 0;
            for_each_within(slot.bits, threshold, |flip| {
                let bucket = query_values[s] ^ flip;
                prefetch(&table.offsets[bucket as usize]);
                buckets[filled] = bucket;
                filled += 1;
                if filled == BUCKET_BATCH {
                    probe.check_buckets(s, &buckets, out);
                    filled = 0;
                }
            });
            probe.check_buckets(s, &buckets[..filled], out);
        }
    }
}

/// One multi-index search. Bucket bounds, then ids, then hashes are prefetched and read in
/// batches, so the cache misses of a batch overlap instead of following one another.
struct Probe<'a> {
    index: &'a HashIndex,
    query: &'a Hash256,
    max_distance: u32,
    query_values: [u32; MAX_SLOTS],
    thresholds: &'a [i32; MAX_SLOTS],
}

impl Probe<'_> {
    #[inline(always)]
    fn check_buckets(&self, slot: usize, buckets: &[u32], out: &mut Vec<Neighbor>) {
        let table = &self.index.tables[slot];
        let mut bounds = [(0u32, 0u32); BUCKET_BATCH];
        for (bound, &bucket) in bounds.iter_mut().zip(buckets) {
            let (start, end) = (
                table.offsets[bucket as usize],
                table.offsets[bucket as usize + 1],
            );
            if let Some(first) = table.ids.get(start as usize) {
                prefetch(first);
            }
            *bound = (start, end);
        }
        let mut candidates = [0u32; CANDIDATE_BATCH];
        let mut filled = 0;
        for &(start, end) in &bounds[..buckets.len()] {
            for &id in &table.ids[start as usize..end as usize] {
                prefetch(&self.index.hashes[id as usize]);
                candidates[filled] = id;
                filled += 1;
                if filled == CANDIDATE_BATCH {
                    self.check(slot, &candidates, out);
                    filled = 0;
                }
            }
        }
        self.check(slot, &candidates[..filled], out);
    }

    #[inline(always)]
    fn check(&self, slot: usize, ids: &[u32], out: &mut Vec<Neighbor>) {
        for &id in ids {
            let hash = &self.index.hashes[id as usize];
            let distance = hash.distance(self.query);
            if distance <= self.max_distance && !self.found_earlier(hash, slot) {
                out.push(Neighbor { id, distance });
            }
        }
    }

    /// Whether a slot before `slot_index` also has `hash` within its threshold (and so
    /// reported it already).
    #[inline(always)]
    fn found_earlier(&self, hash: &Hash256, slot_index: usize) -> bool {
        self.index.slots[..slot_index]
            .iter()
            .enumerate()
            .any(|(s, slot)| {
                let slot_distance = (slot.value(hash) ^ self.query_values[s]).count_ones();
                i64::from(slot_distance) <= i64::from(self.thresholds[s])
            })
    }
}

/// Asks the CPU to start loading `value`'s cache line: a hint, results do not depend on it.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is in the x86-64 baseline (SSE) and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Slots of about `bits` bits each, widest first, summing to 256.
fn slot_layout(bits: u32) -> Vec<Slot> {
    let target = bits.clamp(MIN_SLOT_BITS, MAX_SLOT_BITS);
    let count = (256.0 / f64::from(target)).round() as u32;
    let count = count.clamp(256_u32.div_ceil(MAX_SLOT_BITS), 256 / MIN_SLOT_BITS);
    let (base, wider) = (256 / count, 256 % count);
    let mut start = 0;
    (0..count)
        .map(|s| {
            let bits = base + u32::from(s < wider);
            let slot = Slot { start, bits };
            start += bits;
            slot
        })
        .collect()
}

/// The ids ordered by slot value, and the bucket offsets. The (value, id) pairs are sorted
/// by a two-pass LSD radix sort: each pass scatters into at most 4096 places, which stay in
/// cache, where a direct counting sort into 2^bits buckets misses the cache on every write.
fn build_table(hashes: &[Hash256], slot: Slot) -> SlotTable {
    let mut pairs: Vec<(u32, u32)> = hashes
        .iter()
        .enumerate()
        .map(|(id, hash)| (slot.value(hash), id as u32))
        .collect();
    let mut scratch = vec![(0u32, 0u32); pairs.len()];
    let low_bits = slot.bits / 2;
    radix_pass(&pairs, &mut scratch, 0, low_bits);
    radix_pass(&scratch, &mut pairs, low_bits, slot.bits - low_bits);
    drop(scratch);
    let buckets = 1usize << slot.bits;
    let mut offsets = vec![0u32; buckets + 1];
    for &(value, _) in &pairs {
        offsets[value as usize + 1] += 1;
    }
    for bucket in 0..buckets {
        offsets[bucket + 1] += offsets[bucket];
    }
    let mut ids = Vec::with_capacity(pairs.len());
    ids.extend(pairs.iter().map(|&(_, id)| id));
    SlotTable { offsets, ids }
}

/// One stable counting-sort pass of `source` into `target` by the value bits
/// `shift..shift + bits`.
fn radix_pass(source: &[(u32, u32)], target: &mut [(u32, u32)], shift: u32, bits: u32) {
    let mask = (1u32 << bits) - 1;
    let mut next = vec![0usize; 1 << bits];
    for &(value, _) in source {
        next[((value >> shift) & mask) as usize] += 1;
    }
    let mut total = 0;
    for slot in &mut next {
        let count = *slot;
        *slot = total;
        total += count;
    }
    for &pair in source {
        let cursor = &mut next[((pair.0 >> shift) & mask) as usize];
        target[*cursor] = pair;
        *cursor += 1;
    }
}

/// Calls `visit` with every `bits`-bit mask of at most `radius` set bits (0 first).
#[inline(always)]
fn for_each_within(bits: u32, radius: u32, mut visit: impl FnMut(u32)) {
    let limit = 1u64 << bits;
    for ones in 0..=radius.min(bits) {
        // Gosper's hack: the masks with `ones` set bits, in increasing order.
        let mut mask: u64 = (1u64 << ones) - 1;
        while mask < limit {
            visit(mask as u32);
            if mask == 0 {
                break;
            }
            let lowest = mask & mask.wrapping_neg();
            let ripple = mask + lowest;
            mask = (((ripple ^ mask) >> 2) >> lowest.trailing_zeros()) | ripple;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flip_bits(hash: Hash256, positions: &[usize]) -> Hash256 {
        let mut words = hash.words();
        for &position in positions {
            words[position / 64] ^= 1 << (63 - position % 64);
        }
        Hash256::from_words(words)
    }

    /// A deterministic stream of pseudo-random hashes (SplitMix64).
    fn hashes_from_seed(seed: u64, count: usize) -> Vec<Hash256> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        (0..count)
            .map(|_| Hash256::from_words([next(), next(), next(), next()]))
            .collect()
    }

    fn assert_same_as_brute_force(index: &HashIndex, query: &Hash256, radius: u32) {
        let mut expected = Vec::new();
        index.linear_search_into(query, radius, &mut expected);
        assert_eq!(
            index.search(query, radius),
            expected,
            "radius {radius}, query {query}"
        );
        let mut probed = Vec::new();
        index.multi_index_search_into(query, radius, &mut probed);
        assert_eq!(probed, expected, "probing, radius {radius}, query {query}");
    }

    #[test]
    fn slot_layouts_cover_256_bits() {
        for bits in 0..40 {
            let slots = slot_layout(bits);
            assert!(slots.len() <= MAX_SLOTS);
            assert_eq!(slots.iter().map(|slot| slot.bits).sum::<u32>(), 256);
            assert!(slots.iter().all(|slot| slot.bits <= MAX_SLOT_BITS));
            assert!(slots.windows(2).all(|pair| pair[0].bits >= pair[1].bits));
            assert!(slots.iter().all(|slot| slot.bits >= MIN_SLOT_BITS));
            assert!(
                slots
                    .windows(2)
                    .all(|pair| pair[0].start + pair[0].bits == pair[1].start)
            );
        }
    }

    #[test]
    fn slot_values_read_bits_in_hex_order() {
        let hash = Hash256::from_hex(&format!("abcd{}", "0".repeat(59) + "7")).unwrap();
        assert_eq!(Slot { start: 0, bits: 16 }.value(&hash), 0xabcd);
        assert_eq!(Slot { start: 4, bits: 8 }.value(&hash), 0xbc);
        assert_eq!(
            Slot {
                start: 253,
                bits: 3
            }
            .value(&hash),
            7
        );
        let straddling = Hash256::from_words([0xf, 0xf << 60, 0, 0]);
        assert_eq!(Slot { start: 60, bits: 8 }.value(&straddling), 0xff);
    }

    #[test]
    fn masks_within_radius_are_all_enumerated_once() {
        let mut masks = Vec::new();
        for_each_within(10, 3, |mask| masks.push(mask));
        let expected: Vec<u32> = (0..1024u32).filter(|m| m.count_ones() <= 3).collect();
        assert_eq!(masks.len(), expected.len());
        masks.sort_unstable();
        assert_eq!(masks, expected);
    }

    #[test]
    fn fixed_slot_widths_are_exact_too() {
        let mut hashes = hashes_from_seed(11, 3_000);
        let query = hashes[17];
        hashes.extend((0..=64).map(|distance: usize| {
            let positions: Vec<usize> = (0..distance).map(|i| (i * 53 + 7) % 256).collect();
            flip_bits(query, &positions)
        }));
        for bits in [8, 12, 16] {
            let index = HashIndex::with_slot_bits(hashes.clone(), bits).unwrap();
            assert_eq!(
                index.slot_count(),
                (256.0 / f64::from(bits)).round() as usize
            );
            for radius in [0, 15, 16, 31, 47] {
                assert_same_as_brute_force(&index, &query, radius);
            }
        }
    }

    #[test]
    fn empty_index_finds_nothing() {
        let index = HashIndex::new(Vec::new()).unwrap();
        assert!(index.search(&Hash256::default(), 64).is_empty());
    }

    #[test]
    fn planted_neighbours_at_every_distance_are_found() {
        let mut hashes = hashes_from_seed(7, 20_000);
        let query = hashes_from_seed(99, 1)[0];
        for distance in 0..=64usize {
            let positions: Vec<usize> = (0..distance).map(|i| (i * 37 + distance) % 256).collect();
            hashes.push(flip_bits(query, &positions));
        }
        let index = HashIndex::new(hashes).unwrap();
        assert!(matches!(index.plan(31), SearchPlan::MultiIndex { .. }));
        for radius in [0, 8, 15, 16, 31, 32, 47, 63, 64] {
            let found = index.search(&query, radius);
            assert!(found.len() > radius as usize, "radius {radius}: {found:?}");
            assert_same_as_brute_force(&index, &query, radius);
        }
    }

    #[test]
    fn clustered_lists_return_each_match_once() {
        let mut hashes = Vec::new();
        for center in hashes_from_seed(3, 40) {
            for step in 0..60usize {
                let positions: Vec<usize> = (0..step % 20).map(|i| (i * 13 + step) % 256).collect();
                hashes.push(flip_bits(center, &positions));
            }
            hashes.push(center);
        }
        let queries: Vec<Hash256> = hashes.iter().step_by(97).copied().collect();
        let index = HashIndex::new(hashes).unwrap();
        for query in &queries {
            for radius in [0, 8, 31, 47, 63] {
                assert_same_as_brute_force(&index, query, radius);
            }
        }
    }

    fn hash_strategy() -> impl Strategy<Value = Hash256> {
        any::<[u64; 4]>().prop_map(Hash256::from_words)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn index_matches_brute_force(
            seed in any::<u64>(),
            size in 0usize..6_000,
            query in hash_strategy(),
            flips in proptest::collection::vec(proptest::collection::vec(0usize..256, 0..=64), 0..40),
            cluster in proptest::collection::vec(proptest::collection::vec(0usize..256, 0..=12), 0..60),
        ) {
            let mut hashes = hashes_from_seed(seed, size);
            // Near-duplicates of the query at spread distances (duplicate positions cancel,
            // so distances below the vector length occur too).
            hashes.extend(flips.iter().map(|positions| flip_bits(query, positions)));
            // A cluster of near-identical hashes around one neighbour of the query.
            let center = flip_bits(query, &[1, 50, 99, 140, 200, 255]);
            hashes.extend(cluster.iter().map(|positions| flip_bits(center, positions)));
            let index = HashIndex::new(hashes).unwrap();
            let mut expected = Vec::new();
            let mut probed = Vec::new();
            for radius in [0, 8, 31, 47, 63] {
                index.linear_search_into(&query, radius, &mut expected);
                prop_assert_eq!(&index.search(&query, radius), &expected);
                index.multi_index_search_into(&query, radius, &mut probed);
                prop_assert_eq!(&probed, &expected);
            }
        }
    }
}
