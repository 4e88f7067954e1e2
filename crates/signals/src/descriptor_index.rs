//! Exact search of descriptors by cosine similarity: an int8 scan that picks candidates,
//! then f32 re-scoring, so the answer equals the f32 brute force's exactly.
//!
//! **What is held.** Stored descriptors are int8 vectors `r` (see [`crate::descriptor`]),
//! in one contiguous array, `dim` bytes each (ids are positions), plus one f32 per vector,
//! `ν = 1/‖r‖`. 1M × 512-d: 512 MiB + 4 MiB. A descriptor's score against a query `x`
//! (unit f32) is defined as `cosine(x, r) = fl(Σ x_j · r_j) · ν`, the sum taken by
//! [`exact_dot`] in a fixed order (16 lanes, then a fixed reduction); the brute force
//! ([`DescriptorIndex::brute_force_search`]) scores every vector that way.
//!
//! **The fast path.** The query is quantised too: `s = max|x|/127`, `q_j = round(x_j/s)`,
//! and every stored vector gets the integer dot product `D = Σ q_j r_j` (exact in i32),
//! approximated score `A = D · s · ν`. With `e = x − s·q` (computed per query),
//! Cauchy–Schwarz bounds the difference with the real-arithmetic score:
//! `|ν Σ x_j r_j − ν s D| = ν |Σ e_j r_j| ≤ ν ‖e‖ ‖r‖ = ‖e‖` (≈ 0.009 for 512-d), and the
//! f32 rounding of both sides adds at most `(dim + 8) · 2ε · (‖x‖ + ‖e‖)`. Their sum is the
//! query's `margin`, so `|A − cosine| ≤ margin` for every stored vector. A search for
//! `cosine ≥ t` keeps the vectors with `A ≥ t − margin` as candidates and re-scores
//! them with [`exact_dot`]: the same floats the brute force computes, so the same set, in
//! the same order (best first, ties by id). Top-k: with `A_k` the k-th largest `A`, every
//! vector of the exact top k has `A ≥ A_k − 2·margin`; those are re-scored.
//!
//! **The scan** is a plain loop over `i16 × i8 → i32` products that LLVM vectorises
//! (`vpmovsxbw` + `vpmaddwd`, or `vpdpwssd` with AVX-512 VNNI); the loop is compiled
//! three times, for AVX-512 (BW + VNNI), AVX2 and the baseline, and the CPU's best is
//! chosen at run time. Between unrelated pictures cosines average 0.02 (sd 0.055), so at
//! copy thresholds (≥ 0.7) almost nothing but true matches is re-scored.

use crate::descriptor::{Descriptor, DescriptorError, check_components};

/// Ids are `u32`.
pub const MAX_DESCRIPTORS: usize = u32::MAX as usize;
/// f32 lanes of [`exact_dot`]: independent partial sums the compiler vectorises.
const LANES: usize = 16;
/// Vectors scanned between candidate-list prunes in a top-k search.
const TOP_K_PRUNE_EVERY: usize = 4096;

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

/// int8 vectors and their inverse norms; see the module comment.
#[derive(Debug, Clone)]
pub struct DescriptorIndex {
    dim: usize,
    vectors: Vec<i8>,
    inverse_norms: Vec<f32>,
}

/// A query prepared for the int8 scan.
struct QuantizedQuery {
    quantized: Vec<i16>,
    scale: f32,
    margin: f32,
}

impl QuantizedQuery {
    fn new(query: &Descriptor) -> QuantizedQuery {
        let values = query.values();
        let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        // A descriptor is not zero, so `largest > 0`.
        let scale = largest / 127.0;
        let quantized: Vec<i16> = values
            .iter()
            .map(|&v| (v / scale).round().clamp(-127.0, 127.0) as i16)
            .collect();
        let (mut error_squares, mut norm_squares) = (0f64, 0f64);
        for (&v, &q) in values.iter().zip(&quantized) {
            let error = f64::from(v) - f64::from(scale) * f64::from(q);
            error_squares += error * error;
            norm_squares += f64::from(v) * f64::from(v);
        }
        let (error, norm) = (error_squares.sqrt(), norm_squares.sqrt());
        let rounding = (values.len() as f64 + 8.0) * 2.0 * f64::from(f32::EPSILON) * (norm + error);
        // Widened by a millionth and 1e-6: the bound itself is computed in floating point.
        let margin = ((error + rounding) * (1.0 + 1e-6) + 1e-6) as f32;
        QuantizedQuery {
            quantized,
            scale,
            margin,
        }
    }
}

impl DescriptorIndex {
    /// An empty index of `dim`-dimensional descriptors.
    pub fn new(dim: usize) -> DescriptorIndex {
        DescriptorIndex {
            dim,
            vectors: Vec::new(),
            inverse_norms: Vec::new(),
        }
    }

    /// Room for `additional` more descriptors without reallocating.
    pub fn reserve(&mut self, additional: usize) {
        self.vectors.reserve(additional.saturating_mul(self.dim));
        self.inverse_norms.reserve(additional);
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

    /// Stored components of descriptor `id`.
    pub fn vector(&self, id: usize) -> Option<&[i8]> {
        self.vectors.get(id * self.dim..(id + 1) * self.dim)
    }

    /// Bytes held: vectors and inverse norms.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.vectors.capacity() + self.inverse_norms.capacity() * 4
    }

    pub fn shrink_to_fit(&mut self) {
        self.vectors.shrink_to_fit();
        self.inverse_norms.shrink_to_fit();
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
        let squares: i64 = components.iter().map(|&c| i64::from(c) * i64::from(c)).sum();
        self.vectors.extend_from_slice(components);
        self.inverse_norms.push((1.0 / (squares as f64).sqrt()) as f32);
        Ok(id as u32)
    }

    /// The score of descriptor `id` against `query` as every search defines it.
    pub fn cosine(&self, query: &Descriptor, id: usize) -> Option<f32> {
        if query.dim() != self.dim {
            return None;
        }
        Some(exact_dot(query.values(), self.vector(id)?) * self.inverse_norms[id])
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
        self.check_query(query)?;
        out.clear();
        let prepared = QuantizedQuery::new(query);
        let cut = threshold - prepared.margin;
        self.scan(&prepared, |id, approximate| {
            if approximate >= cut {
                out.push(DescriptorMatch {
                    id,
                    cosine: approximate,
                });
            }
        });
        self.rescore(query, out, |cosine| cosine >= threshold);
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
        let prepared = QuantizedQuery::new(query);
        let window = 2.0 * prepared.margin;
        // The k largest approximate scores seen so far (a min-heap); its minimum only
        // rises, so `minimum − window` keeps a superset of the final candidates.
        let mut best = std::collections::BinaryHeap::with_capacity(k + 1);
        let mut floor = f32::NEG_INFINITY;
        let mut since_prune = 0usize;
        self.scan(&prepared, |id, approximate| {
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
            let id = candidate.id as usize;
            let row = &self.vectors[id * self.dim..(id + 1) * self.dim];
            candidate.cosine = exact_dot(query.values(), row) * self.inverse_norms[id];
            keep(candidate.cosine)
        });
        candidates.sort_unstable_by(|a, b| b.cosine.total_cmp(&a.cosine).then(a.id.cmp(&b.id)));
    }

    /// Calls `visit(id, approximate score)` for every stored vector, in id order, with the
    /// widest vector instructions the CPU has.
    fn scan(&self, query: &QuantizedQuery, mut visit: impl FnMut(u32, f32)) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                // SAFETY: the CPU has the features `scan_avx512` is compiled for (checked).
                unsafe { self.scan_avx512(query, &mut visit) };
                return;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked above).
                unsafe { self.scan_avx2(query, &mut visit) };
                return;
            }
        }
        self.scan_portable(query, &mut visit);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn scan_avx512(&self, query: &QuantizedQuery, visit: &mut impl FnMut(u32, f32)) {
        self.scan_portable(query, visit);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn scan_avx2(&self, query: &QuantizedQuery, visit: &mut impl FnMut(u32, f32)) {
        self.scan_portable(query, visit);
    }

    #[inline(always)]
    fn scan_portable(&self, query: &QuantizedQuery, visit: &mut impl FnMut(u32, f32)) {
        let rows = self.vectors.chunks_exact(self.dim);
        for (id, (row, &inverse_norm)) in rows.zip(&self.inverse_norms).enumerate() {
            let dot = integer_dot(&query.quantized, row);
            visit(id as u32, dot as f32 * (query.scale * inverse_norm));
        }
    }
}

/// `Σ q_j · r_j`, exact (|q|, |r| ≤ 127 and dim ≤ 4096 stay far inside i32).
#[inline(always)]
fn integer_dot(query: &[i16], row: &[i8]) -> i32 {
    query
        .iter()
        .zip(row)
        .map(|(&q, &r)| i32::from(q) * i32::from(r))
        .sum()
}

/// `Σ x_j · r_j` in f32 in a fixed order: 16 lane sums over the 16-aligned prefix, the
/// tail added to lanes 0.., then a pairwise reduction. Every search and the brute force
/// use this one function, so they compute the same floats.
#[inline]
pub fn exact_dot(query: &[f32], row: &[i8]) -> f32 {
    let mut lanes = [0f32; LANES];
    let query_chunks = query.chunks_exact(LANES);
    let row_chunks = row.chunks_exact(LANES);
    let (query_tail, row_tail) = (query_chunks.remainder(), row_chunks.remainder());
    for (x, r) in query_chunks.zip(row_chunks) {
        for lane in 0..LANES {
            lanes[lane] += x[lane] * f32::from(r[lane]);
        }
    }
    for (lane, (&x, &r)) in query_tail.iter().zip(row_tail).enumerate() {
        lanes[lane] += x * f32::from(r);
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for lane in 0..width {
            lanes[lane] += lanes[lane + width];
        }
    }
    lanes[0]
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
