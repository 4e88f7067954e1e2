//! Exact search of descriptors by cosine similarity: an int8 scan that picks candidates,
//! then f32 re-scoring, so the answer equals the f32 brute force's exactly.
//!
//! **What is held.** Stored descriptors are int8 vectors `r` (see [`crate::descriptor`]),
//! split at `h = dim/2` (rounded down to 16; the whole vector below 32 dimensions) into a
//! head and a tail, each in one contiguous array (`h` and `dim − h` bytes per descriptor;
//! ids are positions), plus two f32 per descriptor: `ν = 1/‖r‖` and `τ = ‖r_tail‖·ν`.
//! 1M × 512-d: 512 MiB + 8 MiB. A descriptor's score against a query `x` (unit f32) is
//! defined as `cosine(x, r) = fl(Σ x_j · r_j) · ν`, the sum taken by [`exact_dot`] in a
//! fixed order (16 lanes, then a fixed reduction); the brute force
//! ([`DescriptorIndex::brute_force_search`]) scores every descriptor that way.
//!
//! **The fast path.** The query is quantised too: `s = max|x|/127`, `q_j = round(x_j/s)`,
//! `e = x − s·q`. Integer dot products are exact (i32); with `D = Σ q_j r_j` the
//! approximate score `A = D·s·ν` differs from the real-arithmetic score by
//! `ν|Σ e_j r_j| ≤ ν‖e‖‖r‖ = ‖e‖` (Cauchy–Schwarz; ≈ 0.009 for 512-d), and the f32
//! rounding of both sides adds at most `(dim + 8)·2ε·(‖x‖ + ‖e‖)`: their sum (widened a
//! little) is the query's `margin`, `|A − cosine| ≤ margin` for every descriptor.
//!
//! A search for `cosine ≥ t` first reads only the heads: with `A_h = D_head·s·ν`,
//! Cauchy–Schwarz on the tail gives `cosine ≤ A_h + ‖x_tail‖·τ + head margin`, so a
//! descriptor whose bound is below `t` cannot match and its tail is never read. Unrelated
//! descriptors have `A_h` near 0 and `τ ≈ 0.7`, so for thresholds above about 0.6 almost
//! every descriptor stops there (half the bytes and arithmetic). The others get the tail
//! product; those with `A ≥ t − margin` are re-scored with [`exact_dot`]: the same floats
//! the brute force computes, so the same set in the same order (best first, ties by id).
//! Top-k reads whole vectors: with `A_k` the k-th largest `A`, every descriptor of the
//! exact top k has `A ≥ A_k − 2·margin`; those are re-scored.
//!
//! **The scan** is a plain loop over `u8 × i8 → i32` products (the query offset by +128 to
//! be unsigned, corrected with the stored row sums) that LLVM vectorises (`vpdpwssd` with
//! AVX-512 VNNI, `vpmaddwd` with AVX2); the loop is compiled three times, for AVX-512,
//! AVX2 and the baseline, and the CPU's best is chosen at run time. Between unrelated
//! pictures cosines average 0.02 (sd 0.055), so at copy thresholds (≥ 0.7) almost
//! nothing but true matches is re-scored.

use std::ops::Range;

use crate::descriptor::{Descriptor, DescriptorError, check_components};

/// Ids are `u32`.
pub const MAX_DESCRIPTORS: usize = u32::MAX as usize;
/// f32 lanes of [`exact_dot`]: independent partial sums the compiler vectorises.
const LANES: usize = 16;
/// Descriptors scanned between candidate-list prunes in a top-k search.
const TOP_K_PRUNE_EVERY: usize = 4096;
/// Descriptors per block of a batch search: 1024 heads of 256 bytes stay in L2.
pub const BATCH_BLOCK: usize = 1024;
/// The +128 that makes quantised query components unsigned (see [`QuantizedQuery`]).
const QUERY_OFFSET: i32 = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("more than {max} descriptors")]
pub struct CapacityError {
    pub max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorIndexError {
    #[error("a {found}-dimensional query against {expected}-dimensional descriptors")]
    Dimension { found: usize, expected: usize },
    #[error(transparent)]
    Vector(#[from] DescriptorError),
    #[error(transparent)]
    Full(#[from] CapacityError),
}

/// One stored descriptor at or above the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DescriptorMatch {
    /// Position of the descriptor in the index (and its list).
    pub id: u32,
    pub cosine: f32,
}

/// int8 heads and tails, their sums and norms; see the module comment.
#[derive(Debug, Clone)]
pub struct DescriptorIndex {
    dim: usize,
    head_dim: usize,
    heads: Vec<i8>,
    tails: Vec<i8>,
    /// Per descriptor: (head sum, tail sum), to undo the query's offset.
    sums: Vec<[i32; 2]>,
    inverse_norms: Vec<f32>,
    /// `‖r_tail‖ / ‖r‖`.
    tail_fractions: Vec<f32>,
}

/// A query prepared for the int8 scan: `q_j + 128` as `u8` (an unsigned operand is what
/// lets LLVM use the byte dot-product instructions), so `D = Σ (q_j+128) r_j − 128 Σ r_j`.
struct QuantizedQuery {
    offset: Vec<u8>,
    scale: f32,
    /// Bounds `|A − cosine|` (whole vectors) and `|A_h − head part|` (heads).
    margin: f32,
    head_margin: f32,
    tail_norm: f32,
}

impl QuantizedQuery {
    fn new(query: &Descriptor, head_dim: usize) -> QuantizedQuery {
        let values = query.values();
        let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        // A descriptor is not zero, so `largest > 0`.
        let scale = largest / 127.0;
        let quantized: Vec<i32> = values
            .iter()
            .map(|&v| (v / scale).round().clamp(-127.0, 127.0) as i32)
            .collect();
        let squares = |range: std::ops::Range<usize>, error: bool| {
            range
                .map(|j| {
                    let v = f64::from(values[j]);
                    let d = if error {
                        v - f64::from(scale) * f64::from(quantized[j])
                    } else {
                        v
                    };
                    d * d
                })
                .sum::<f64>()
        };
        let dim = values.len();
        let head_error = squares(0..head_dim, true);
        let error = (head_error + squares(head_dim..dim, true)).sqrt();
        let norm = squares(0..dim, false).sqrt();
        let rounding = (dim as f64 + 8.0) * 4.0 * f64::from(f32::EPSILON) * (norm + error);
        // Widened by a millionth and 1e-6: the bound itself is computed in floating point.
        let widen = |bound: f64| ((bound + rounding) * (1.0 + 1e-6) + 1e-6) as f32;
        QuantizedQuery {
            offset: quantized
                .iter()
                .map(|&q| (q + QUERY_OFFSET) as u8)
                .collect(),
            scale,
            margin: widen(error),
            head_margin: widen(head_error.sqrt()),
            tail_norm: (squares(head_dim..dim, false).sqrt() * (1.0 + 1e-6)) as f32,
        }
    }
}

impl DescriptorIndex {
    /// An empty index of `dim`-dimensional descriptors.
    pub fn new(dim: usize) -> DescriptorIndex {
        // A multiple of 16 keeps `exact_dot`'s lanes the same across the split.
        let head_dim = if dim >= 32 {
            dim / 2 / LANES * LANES
        } else {
            dim
        };
        DescriptorIndex {
            dim,
            head_dim,
            heads: Vec::new(),
            tails: Vec::new(),
            sums: Vec::new(),
            inverse_norms: Vec::new(),
            tail_fractions: Vec::new(),
        }
    }

    /// Room for `additional` more descriptors without reallocating.
    pub fn reserve(&mut self, additional: usize) {
        self.heads.reserve(additional.saturating_mul(self.head_dim));
        self.tails
            .reserve(additional.saturating_mul(self.dim - self.head_dim));
        self.sums.reserve(additional);
        self.inverse_norms.reserve(additional);
        self.tail_fractions.reserve(additional);
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.inverse_norms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inverse_norms.is_empty()
    }

    fn head(&self, id: usize) -> &[i8] {
        &self.heads[id * self.head_dim..(id + 1) * self.head_dim]
    }

    fn tail(&self, id: usize) -> &[i8] {
        let tail_dim = self.dim - self.head_dim;
        &self.tails[id * tail_dim..(id + 1) * tail_dim]
    }

    /// Stored components of descriptor `id`.
    pub fn vector(&self, id: usize) -> Option<Vec<i8>> {
        (id < self.len()).then(|| [self.head(id), self.tail(id)].concat())
    }

    /// Bytes held: vectors, sums and norms.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.heads.capacity()
            + self.tails.capacity()
            + self.sums.capacity() * size_of::<[i32; 2]>()
            + (self.inverse_norms.capacity() + self.tail_fractions.capacity()) * size_of::<f32>()
    }

    pub fn shrink_to_fit(&mut self) {
        self.heads.shrink_to_fit();
        self.tails.shrink_to_fit();
        self.sums.shrink_to_fit();
        self.inverse_norms.shrink_to_fit();
        self.tail_fractions.shrink_to_fit();
    }

    /// Adds a descriptor (`dim` components, -127..=127, not all zero); returns its id.
    pub fn push(&mut self, components: &[i8]) -> Result<u32, DescriptorIndexError> {
        if components.len() != self.dim {
            return Err(DescriptorIndexError::Dimension {
                found: components.len(),
                expected: self.dim,
            });
        }
        check_components(components)?;
        Ok(self.push_components(components)?)
    }

    /// [`DescriptorIndex::push`] for components already checked.
    pub(crate) fn push_components(&mut self, components: &[i8]) -> Result<u32, CapacityError> {
        let id = self.len();
        if id >= MAX_DESCRIPTORS {
            return Err(CapacityError {
                max: MAX_DESCRIPTORS,
            });
        }
        let (head, tail) = components.split_at(self.head_dim);
        let sum = |part: &[i8]| part.iter().map(|&c| i32::from(c)).sum::<i32>();
        let squares = |part: &[i8]| {
            part.iter()
                .map(|&c| i64::from(c) * i64::from(c))
                .sum::<i64>() as f64
        };
        let (head_squares, tail_squares) = (squares(head), squares(tail));
        let norm = (head_squares + tail_squares).sqrt();
        self.heads.extend_from_slice(head);
        self.tails.extend_from_slice(tail);
        self.sums.push([sum(head), sum(tail)]);
        self.inverse_norms.push((1.0 / norm) as f32);
        // Rounded up: it bounds the tail's share of the score from above.
        self.tail_fractions
            .push(((tail_squares.sqrt() / norm) * (1.0 + 1e-6)) as f32);
        Ok(id as u32)
    }

    /// The score of descriptor `id` against `query` as every search defines it.
    pub fn cosine(&self, query: &Descriptor, id: usize) -> Option<f32> {
        (query.dim() == self.dim && id < self.len()).then(|| self.exact_cosine(query, id))
    }

    fn exact_cosine(&self, query: &Descriptor, id: usize) -> f32 {
        exact_dot(query.values(), self.head(id), self.tail(id)) * self.inverse_norms[id]
    }

    fn check_query(&self, query: &Descriptor) -> Result<(), DescriptorIndexError> {
        if query.dim() != self.dim {
            return Err(DescriptorIndexError::Dimension {
                found: query.dim(),
                expected: self.dim,
            });
        }
        Ok(())
    }

    /// Every stored descriptor with `cosine ≥ threshold`, best first (ties by id), into
    /// `out` (cleared first).
    pub fn search_into(
        &self,
        query: &Descriptor,
        threshold: f32,
        out: &mut Vec<DescriptorMatch>,
    ) -> Result<(), DescriptorIndexError> {
        self.search_each(
            std::slice::from_ref(query),
            threshold,
            std::slice::from_mut(out),
        )
    }

    /// [`DescriptorIndex::search_into`] for several queries at once (e.g. the views of one
    /// keyframe), `outs[i]` for `queries[i]`: the stored heads are read once per block of
    /// [`BATCH_BLOCK`] descriptors for all queries, so a batch costs less memory traffic
    /// than the same searches one by one. Results are those of the single searches; `outs`
    /// is resized to one vector per query.
    pub fn search_batch_into(
        &self,
        queries: &[Descriptor],
        threshold: f32,
        outs: &mut Vec<Vec<DescriptorMatch>>,
    ) -> Result<(), DescriptorIndexError> {
        outs.resize_with(queries.len(), Vec::new);
        self.search_each(queries, threshold, outs)
    }

    /// The batch search into one output per query (`outs.len() == queries.len()`).
    fn search_each(
        &self,
        queries: &[Descriptor],
        threshold: f32,
        outs: &mut [Vec<DescriptorMatch>],
    ) -> Result<(), DescriptorIndexError> {
        for query in queries {
            self.check_query(query)?;
        }
        let prepared: Vec<QuantizedQuery> = queries
            .iter()
            .map(|query| QuantizedQuery::new(query, self.head_dim))
            .collect();
        for out in outs.iter_mut() {
            out.clear();
        }
        let mut start = 0;
        while start < self.len() {
            let rows = start..(start + BATCH_BLOCK).min(self.len());
            for (query, out) in prepared.iter().zip(outs.iter_mut()) {
                let head_cut = Some(threshold - query.head_margin);
                let cut = threshold - query.margin;
                self.scan(query, head_cut, rows.clone(), |id, approximate| {
                    if approximate >= cut {
                        out.push(DescriptorMatch {
                            id,
                            cosine: approximate,
                        });
                    }
                });
            }
            start = rows.end;
        }
        for (query, out) in queries.iter().zip(outs.iter_mut()) {
            self.rescore(query, out, |cosine| cosine >= threshold);
        }
        Ok(())
    }

    /// [`DescriptorIndex::search_into`] into a new vector.
    pub fn search(
        &self,
        query: &Descriptor,
        threshold: f32,
    ) -> Result<Vec<DescriptorMatch>, DescriptorIndexError> {
        let mut out = Vec::new();
        self.search_into(query, threshold, &mut out)?;
        Ok(out)
    }

    /// The `k` best stored descriptors, best first (ties by id).
    pub fn top_k(
        &self,
        query: &Descriptor,
        k: usize,
    ) -> Result<Vec<DescriptorMatch>, DescriptorIndexError> {
        self.check_query(query)?;
        let mut out = Vec::new();
        if k == 0 {
            return Ok(out);
        }
        let prepared = QuantizedQuery::new(query, self.head_dim);
        let window = 2.0 * prepared.margin;
        // The k largest approximate scores seen so far (a min-heap); its minimum only
        // rises, so `minimum − window` keeps a superset of the final candidates.
        let mut best = std::collections::BinaryHeap::with_capacity(k + 1);
        let mut floor = f32::NEG_INFINITY;
        let mut since_prune = 0usize;
        self.scan(&prepared, None, 0..self.len(), |id, approximate| {
            if approximate < floor - window {
                return;
            }
            out.push(DescriptorMatch {
                id,
                cosine: approximate,
            });
            best.push(std::cmp::Reverse(TotalF32(approximate)));
            if best.len() > k {
                best.pop();
            }
            if best.len() == k {
                floor = best.peek().map_or(floor, |minimum| minimum.0.0);
            }
            since_prune += 1;
            if since_prune >= TOP_K_PRUNE_EVERY {
                since_prune = 0;
                out.retain(|candidate| candidate.cosine >= floor - window);
            }
        });
        out.retain(|candidate| candidate.cosine >= floor - window);
        self.rescore(query, &mut out, |_| true);
        out.truncate(k);
        Ok(out)
    }

    /// The yardstick: every stored descriptor scored in f32, those `≥ threshold` sorted
    /// best first (ties by id).
    pub fn brute_force_search(
        &self,
        query: &Descriptor,
        threshold: f32,
    ) -> Result<Vec<DescriptorMatch>, DescriptorIndexError> {
        let mut out = self.brute_force_all(query)?;
        out.retain(|found| found.cosine >= threshold);
        Ok(out)
    }

    /// The yardstick for [`DescriptorIndex::top_k`].
    pub fn brute_force_top_k(
        &self,
        query: &Descriptor,
        k: usize,
    ) -> Result<Vec<DescriptorMatch>, DescriptorIndexError> {
        let mut out = self.brute_force_all(query)?;
        out.truncate(k);
        Ok(out)
    }

    fn brute_force_all(
        &self,
        query: &Descriptor,
    ) -> Result<Vec<DescriptorMatch>, DescriptorIndexError> {
        self.check_query(query)?;
        let mut out: Vec<DescriptorMatch> = (0..self.len() as u32)
            .map(|id| DescriptorMatch { id, cosine: 0.0 })
            .collect();
        self.rescore(query, &mut out, |_| true);
        Ok(out)
    }

    /// Replaces each candidate's score by the exact one, keeps those `keep` accepts, and
    /// sorts best first (ties by id).
    fn rescore(
        &self,
        query: &Descriptor,
        candidates: &mut Vec<DescriptorMatch>,
        keep: impl Fn(f32) -> bool,
    ) {
        candidates.retain_mut(|candidate| {
            candidate.cosine = self.exact_cosine(query, candidate.id as usize);
            keep(candidate.cosine)
        });
        candidates.sort_unstable_by(|a, b| b.cosine.total_cmp(&a.cosine).then(a.id.cmp(&b.id)));
    }

    /// Calls `visit(id, approximate score)` for every stored descriptor of `rows` in id order, or,
    /// with a `head_cut`, only for those whose head bound reaches it; with the widest vector
    /// instructions the CPU has.
    fn scan(
        &self,
        query: &QuantizedQuery,
        head_cut: Option<f32>,
        rows: Range<usize>,
        mut visit: impl FnMut(u32, f32),
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                // SAFETY: the CPU has the features `scan_avx512` is compiled for (checked).
                unsafe { self.scan_avx512(query, head_cut, rows, &mut visit) };
                return;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked above).
                unsafe { self.scan_avx2(query, head_cut, rows, &mut visit) };
                return;
            }
        }
        self.scan_portable(query, head_cut, rows, &mut visit);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    fn scan_avx512(
        &self,
        query: &QuantizedQuery,
        head_cut: Option<f32>,
        rows: Range<usize>,
        visit: &mut impl FnMut(u32, f32),
    ) {
        self.scan_portable(query, head_cut, rows, visit);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn scan_avx2(
        &self,
        query: &QuantizedQuery,
        head_cut: Option<f32>,
        rows: Range<usize>,
        visit: &mut impl FnMut(u32, f32),
    ) {
        self.scan_portable(query, head_cut, rows, visit);
    }

    #[inline(always)]
    fn scan_portable(
        &self,
        query: &QuantizedQuery,
        head_cut: Option<f32>,
        rows: Range<usize>,
        visit: &mut impl FnMut(u32, f32),
    ) {
        let (query_head, query_tail) = query.offset.split_at(self.head_dim);
        let tail_dim = self.dim - self.head_dim;
        let heads = self.heads[rows.start * self.head_dim..rows.end * self.head_dim]
            .chunks_exact(self.head_dim);
        for (id, head) in (rows.start..).zip(heads) {
            let [head_sum, tail_sum] = self.sums[id];
            let head_dot = integer_dot(query_head, head) - QUERY_OFFSET * head_sum;
            let factor = query.scale * self.inverse_norms[id];
            if let Some(cut) = head_cut {
                let bound = head_dot as f32 * factor + query.tail_norm * self.tail_fractions[id];
                if bound < cut {
                    continue;
                }
            }
            let tail = &self.tails[id * tail_dim..(id + 1) * tail_dim];
            let dot = head_dot + integer_dot(query_tail, tail) - QUERY_OFFSET * tail_sum;
            visit(id as u32, dot as f32 * factor);
        }
    }
}

/// `Σ q_j · r_j`, exact: |q| ≤ 255, |r| ≤ 127 and dim ≤ 4096 stay far inside i32.
#[inline(always)]
fn integer_dot(query: &[u8], row: &[i8]) -> i32 {
    query
        .iter()
        .zip(row)
        .map(|(&q, &r)| i32::from(q) * i32::from(r))
        .sum()
}

/// `Σ x_j · r_j` in f32 in a fixed order over `r = head ++ tail`: 16 lane sums over the
/// 16-aligned part (the head's length is a multiple of 16 when there is a tail, so the lanes
/// are those of the whole vector), the rest added to lanes 0.., then a pairwise reduction.
/// Every search and the brute force use this one function, so they compute the same floats.
#[inline]
pub fn exact_dot(query: &[f32], head: &[i8], tail: &[i8]) -> f32 {
    let mut lanes = [0f32; LANES];
    let (query_head, query_tail) = query.split_at(head.len().min(query.len()));
    add_lanes(&mut lanes, query_head, head);
    add_lanes(&mut lanes, query_tail, tail);
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for lane in 0..width {
            lanes[lane] += lanes[lane + width];
        }
    }
    lanes[0]
}

#[inline(always)]
fn add_lanes(lanes: &mut [f32; LANES], query: &[f32], row: &[i8]) {
    let query_chunks = query.chunks_exact(LANES);
    let row_chunks = row.chunks_exact(LANES);
    let (query_rest, row_rest) = (query_chunks.remainder(), row_chunks.remainder());
    for (x, r) in query_chunks.zip(row_chunks) {
        for lane in 0..LANES {
            lanes[lane] += x[lane] * f32::from(r[lane]);
        }
    }
    for (lane, (&x, &r)) in query_rest.iter().zip(row_rest).enumerate() {
        lanes[lane] += x * f32::from(r);
    }
}

/// f32 ordered by `total_cmp`, for the top-k heap.
#[derive(Clone, Copy, PartialEq)]
struct TotalF32(f32);

impl Eq for TotalF32 {}

impl PartialOrd for TotalF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TotalF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SplitMix64 → approximately Gaussian components (sum of uniforms).
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn gaussian(&mut self) -> f32 {
            (0..4)
                .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                .sum()
        }

        fn unit(&mut self, dim: usize) -> Descriptor {
            Descriptor::new((0..dim).map(|_| self.gaussian()).collect()).unwrap()
        }

        /// `base` moved by noise of relative size `amount`.
        fn near(&mut self, base: &Descriptor, amount: f32) -> Descriptor {
            let values = base
                .values()
                .iter()
                .map(|&v| v + amount * self.gaussian() / (base.dim() as f32).sqrt())
                .collect();
            Descriptor::new(values).unwrap()
        }
    }

    fn index_of(vectors: &[Descriptor]) -> DescriptorIndex {
        let mut index = DescriptorIndex::new(vectors[0].dim());
        for vector in vectors {
            index.push(vector.quantize().components()).unwrap();
        }
        index
    }

    #[test]
    fn quantizing_keeps_the_direction() {
        let mut random = Random(7);
        for _ in 0..100 {
            let vector = random.unit(512);
            let back = vector.quantize().to_descriptor();
            assert!(vector.cosine(&back) > 0.9999, "{}", vector.cosine(&back));
        }
    }

    #[test]
    fn planted_copies_are_found_best_first() {
        let mut random = Random(1);
        let mut stored: Vec<Descriptor> = (0..2000).map(|_| random.unit(512)).collect();
        let original = random.unit(512);
        let copy = random.near(&original, 0.5);
        stored[1234] = copy.clone();
        stored[99] = random.near(&original, 1.0);
        let index = index_of(&stored);
        let found = index.search(&original, 0.5).unwrap();
        assert_eq!(
            found.iter().map(|m| m.id).collect::<Vec<_>>(),
            [1234, 99],
            "{found:?}"
        );
        assert!((found[0].cosine - original.cosine(&copy)).abs() < 0.002);
        assert_eq!(found, index.brute_force_search(&original, 0.5).unwrap());
        assert_eq!(
            index.top_k(&original, 3).unwrap(),
            index.brute_force_top_k(&original, 3).unwrap()
        );
        assert_eq!(index.cosine(&original, 1234), Some(found[0].cosine));
    }

    #[test]
    fn wrong_dimensions_and_vectors_are_refused() {
        let mut index = DescriptorIndex::new(4);
        assert_eq!(
            index.push(&[1, 2, 3]),
            Err(DescriptorIndexError::Dimension {
                found: 3,
                expected: 4
            })
        );
        assert_eq!(
            index.push(&[0, 0, 0, 0]),
            Err(DescriptorIndexError::Vector(DescriptorError::Zero))
        );
        assert_eq!(
            index.push(&[1, -128, 0, 0]),
            Err(DescriptorIndexError::Vector(DescriptorError::OutOfRange {
                index: 1
            }))
        );
        assert_eq!(index.push(&[1, -127, 0, 0]), Ok(0));
        let query = Descriptor::new(vec![1.0; 5]).unwrap();
        assert_eq!(
            index.search(&query, 0.5),
            Err(DescriptorIndexError::Dimension {
                found: 5,
                expected: 4
            })
        );
        assert!(
            index
                .top_k(&Descriptor::new(vec![1.0; 4]).unwrap(), 0)
                .unwrap()
                .is_empty()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random unit vectors plus planted near-duplicates of the query at several
        /// distances, any dimension (tails off the 16 lanes included): the threshold search
        /// and the top-k equal the f32 brute force, set and order.
        #[test]
        fn equals_the_brute_force(
            seed in any::<u64>(),
            dim in 1usize..80,
            count in 1usize..300,
            planted in 0usize..20,
            threshold in -0.2f32..1.0,
            k in 0usize..12,
        ) {
            let mut random = Random(seed);
            let query = random.unit(dim);
            let mut stored: Vec<Descriptor> = (0..count).map(|_| random.unit(dim)).collect();
            for i in 0..planted {
                let at = random.next() as usize % count;
                stored[at] = random.near(&query, i as f32 * 0.15);
            }
            // Exact copies of each other tie: ties are broken by id on both sides.
            let duplicate = stored[random.next() as usize % count].clone();
            stored.push(duplicate);
            let index = index_of(&stored);
            prop_assert_eq!(
                index.search(&query, threshold).unwrap(),
                index.brute_force_search(&query, threshold).unwrap()
            );
            prop_assert_eq!(index.top_k(&query, k).unwrap(), index.brute_force_top_k(&query, k).unwrap());
            // A batch answers each query as a single search does.
            let others: Vec<Descriptor> = (0..3).map(|_| random.unit(dim)).collect();
            let batch = [query.clone(), others[0].clone(), others[1].clone(), others[2].clone()];
            let mut outs = Vec::new();
            index.search_batch_into(&batch, threshold, &mut outs).unwrap();
            for (query, out) in batch.iter().zip(&outs) {
                prop_assert_eq!(out, &index.brute_force_search(query, threshold).unwrap());
            }
            // A stored vector queried with itself scores about 1.
            let own = stored[0].quantize().to_descriptor();
            let best = index.top_k(&own, 1).unwrap();
            prop_assert!(best[0].cosine > 0.999);
        }
    }

    /// Thresholds sitting exactly on stored scores: the boundary is inclusive on both sides.
    #[test]
    fn thresholds_on_a_stored_score_agree() {
        let mut random = Random(3);
        let stored: Vec<Descriptor> = (0..500).map(|_| random.unit(64)).collect();
        let index = index_of(&stored);
        let query = random.unit(64);
        for found in index.brute_force_top_k(&query, 50).unwrap() {
            let exact = index.search(&query, found.cosine).unwrap();
            assert_eq!(
                exact,
                index.brute_force_search(&query, found.cosine).unwrap()
            );
            assert!(exact.iter().any(|m| m.id == found.id));
        }
    }
}
