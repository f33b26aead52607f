//! Histogram gradient-boosted decision trees for a binary outcome (log-loss), our own
//! implementation (see REPORT.md for why not a crate).
//!
//! ## Algorithm
//! * **Binning**: per feature, up to `max_bins` (<= 255) value bins from the quantiles of a seeded
//!   sample of `bin_sample_rows` rows (every distinct value its own bin when there are few), cut
//!   points placed half-way between neighbouring sample values; plus one **missing bin** for `NaN`.
//! * **Gradients**: `g = p - y`, `h = p (1 - p)` at the current log-odds, quantised to fixed point
//!   and summed in `i64`: `g` to steps of `2^-30`; `h` to steps of `2^-(hb+2)` and packed with a
//!   row count as `h_q * 2^c + 1`, where `c = ceil(log2(n+1))` bits hold the count and
//!   `hb = 62 - c - ceil(log2 n)` keeps every sum below `2^63` (steps of 6e-8 at 800k rows, 2.4e-7
//!   at 1.2M, 1e-6 at 4M). A histogram cell is then two `i64`s, one 16-byte add per feature and
//!   row. Integer sums are exact and associative, so histograms are **bit-identical whatever the
//!   thread count or chunking**, and histogram subtraction (sibling = parent - child) is exact.
//! * **Growth**: best-first (leaf-wise, like LightGBM) up to `max_leaves` leaves and `max_depth`
//!   splits from root to leaf. Only the smaller child's histogram is built from rows; the larger
//!   child's is the parent's minus it. Histograms are built row-wise over a sparse row-wise bin
//!   store in parallel (rayon) over blocks of the node's rows. The store keeps, per row, only the
//!   cells of features not at their most frequent bin (zero counts, absent flags, missing labs);
//!   those cells are recovered as node total minus the feature's other cells.
//! * **Splits**: for each feature, every bin boundary with the missing bin sent left and sent right
//!   (the learned default direction), plus "all observed values left, missing right"; gain
//!   `G_L^2/(H_L+l2) + G_R^2/(H_R+l2) - G^2/(H+l2)`; children must have `min_child_samples` rows
//!   and `min_child_weight` hessian. Ties go to the lowest feature, then the lowest bin, then
//!   missing-right. If a node saw no missing value, missing goes to the child with the larger
//!   hessian sum.
//! * **Leaves**: `-learning_rate * G / (H + l2)`.
//! * **Row subsampling** (optional): each tree draws its rows with probability `subsample` from
//!   the generator `SplitMix64::stream(seed, tree)`.
//!
//! The result is a [`GbdtModel`] whose trees test raw `f32` values (`x <= threshold`), so applying
//! it needs no bins: a row's bin is `<= b` exactly when its value is `<=` the cut point `b`.

use crate::data::Dataset;
use crate::error::{ModelError, Result};
use crate::metrics::sigmoid;
use crate::rng::SplitMix64;
use crate::tree::{GbdtModel, Leaf, Node, Split, Tree};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const G_SCALE: f64 = (1u64 << 30) as f64;
/// Rows below which a histogram is built on one thread.
const PAR_ROWS: usize = 8_192;

/// Hyper-parameters of [`fit_gbdt`]. Names follow LightGBM where there is an equivalent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtParams {
    /// Boosting rounds (trees). LightGBM: `num_iterations`.
    pub n_trees: usize,
    /// Shrinkage applied to every leaf value. LightGBM: `learning_rate`.
    pub learning_rate: f64,
    /// Maximum splits on a root-to-leaf path. LightGBM: `max_depth`.
    pub max_depth: usize,
    /// Maximum leaves per tree. LightGBM: `num_leaves`.
    pub max_leaves: usize,
    /// Maximum value bins per feature (2..=255), plus one missing bin. LightGBM: `max_bin`.
    pub max_bins: usize,
    /// Minimum hessian sum in a child. LightGBM: `min_sum_hessian_in_leaf`.
    pub min_child_weight: f64,
    /// Minimum rows in a child. LightGBM: `min_data_in_leaf` (LightGBM estimates it from hessians;
    /// we count rows exactly).
    pub min_child_samples: usize,
    /// L2 penalty on leaf values. LightGBM: `lambda_l2`.
    pub l2: f64,
    /// Minimum gain to split. LightGBM: `min_gain_to_split`.
    pub min_split_gain: f64,
    /// Fraction of rows drawn (without replacement, Bernoulli) for each tree; 1 = all.
    /// LightGBM: `bagging_fraction` with `bagging_freq = 1`.
    pub subsample: f64,
    /// Seed for bin sampling and row subsampling.
    pub seed: u64,
    /// Rows sampled to find bin cut points. LightGBM: `bin_construct_sample_cnt`.
    pub bin_sample_rows: usize,
    /// Monotone constraints by feature name: `1` the prediction never falls as the feature
    /// rises, `-1` never rises; others free. LightGBM: `monotone_constraints` with its `basic`
    /// method (a split on a constrained feature must order its children's values, and every
    /// leaf below it is held to its side of their midpoint).
    #[serde(default)]
    pub monotone: Vec<(String, i8)>,
    /// Early stopping: stop when the log-loss of the held-out rows has not improved for this
    /// many trees, and keep the trees up to the best (0 = off, every tree kept). LightGBM:
    /// `early_stopping_round` with a validation set.
    #[serde(default)]
    pub early_stopping_rounds: usize,
    /// With early stopping, every `holdout_every`-th row (by row order, so the same rows
    /// whatever the thread count) is held out from fitting to decide when to stop.
    #[serde(default = "default_holdout_every")]
    pub holdout_every: usize,
}

fn default_holdout_every() -> usize {
    5
}

impl Default for GbdtParams {
    /// LightGBM's defaults where it has them (learning rate 0.1, 31 leaves, no depth limit in
    /// practice (30), 255 bins, min child weight 1e-3, 20 rows per child, l2 = 0, no
    /// subsampling, 200,000 rows for binning), with early stopping after 20 trees without
    /// improvement on a held-out fifth, at most 300 trees. `strata train` uses these.
    fn default() -> Self {
        Self {
            n_trees: 300,
            learning_rate: 0.1,
            max_depth: 30,
            max_leaves: 31,
            max_bins: 255,
            min_child_weight: 1e-3,
            min_child_samples: 20,
            l2: 0.0,
            min_split_gain: 0.0,
            subsample: 1.0,
            seed: 0,
            bin_sample_rows: 200_000,
            monotone: Vec::new(),
            early_stopping_rounds: 20,
            holdout_every: default_holdout_every(),
        }
    }
}

impl GbdtParams {
    fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, reason: String| Err(ModelError::Param { name, reason });
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(
                "learning_rate",
                format!("{} must be > 0", self.learning_rate),
            );
        }
        if self.max_depth == 0 {
            return bad("max_depth", "must be >= 1".into());
        }
        if self.max_leaves < 2 {
            return bad("max_leaves", "must be >= 2".into());
        }
        if !(2..=255).contains(&self.max_bins) {
            return bad("max_bins", format!("{} not in 2..=255", self.max_bins));
        }
        let non_negative = |v: f64| v >= 0.0 && v.is_finite();
        if !non_negative(self.min_child_weight)
            || !non_negative(self.l2)
            || !non_negative(self.min_split_gain)
        {
            return bad("min_child_weight/l2/min_split_gain", "must be >= 0".into());
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return bad("subsample", format!("{} not in (0, 1]", self.subsample));
        }
        if self.bin_sample_rows == 0 {
            return bad("bin_sample_rows", "must be > 0".into());
        }
        Ok(())
    }
}

/// Cut points of every feature: value `x` falls in bin `#{cuts < x}`; `NaN` in bin `cuts.len() + 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinCuts {
    /// Ascending cut points per feature (at most `max_bins - 1` each).
    pub cuts: Vec<Vec<f32>>,
}

impl BinCuts {
    /// Finds cut points on a seeded sample of rows (see module docs).
    pub fn fit(data: &Dataset, max_bins: usize, sample_rows: usize, seed: u64) -> Self {
        let n = data.n_rows();
        let sample: Vec<usize> = if n <= sample_rows {
            (0..n).collect()
        } else {
            // Selection sampling (Knuth's Algorithm S): exactly `sample_rows` rows, in order.
            let mut rng = SplitMix64::stream(seed, u64::MAX);
            let mut out = Vec::with_capacity(sample_rows);
            let mut need = sample_rows;
            for i in 0..n {
                if (rng.next_f64() * (n - i) as f64) < need as f64 {
                    out.push(i);
                    need -= 1;
                    if need == 0 {
                        break;
                    }
                }
            }
            out
        };
        let cuts = (0..data.n_features())
            .into_par_iter()
            .map(|j| {
                let col = data.column(j);
                let mut v: Vec<f32> = sample
                    .iter()
                    .map(|&i| col[i])
                    .filter(|x| !x.is_nan())
                    .map(|x| if x == 0.0 { 0.0 } else { x })
                    .collect();
                v.sort_unstable_by(f32::total_cmp);
                feature_cuts(&v, max_bins)
            })
            .collect();
        Self { cuts }
    }

    /// Bin index of `x` for feature `j`.
    #[inline]
    pub fn bin(&self, j: usize, x: f32) -> u8 {
        let c = &self.cuts[j];
        if x.is_nan() {
            (c.len() + 1) as u8
        } else {
            c.partition_point(|&t| t < x) as u8
        }
    }
}

/// Cut points for one feature from its sorted non-missing sample values.
fn feature_cuts(sorted: &[f32], max_bins: usize) -> Vec<f32> {
    let mut distinct: Vec<(f32, usize)> = Vec::new();
    for &x in sorted {
        match distinct.last_mut() {
            Some((v, c)) if *v == x => *c += 1,
            _ => distinct.push((x, 1)),
        }
    }
    let cut_between = |lo: f32, hi: f32| -> f32 {
        let mid = (f64::from(lo) + (f64::from(hi) - f64::from(lo)) / 2.0) as f32;
        if lo <= mid && mid < hi { mid } else { lo }
    };
    let mut cuts = Vec::new();
    if distinct.len() <= 1 {
        return cuts;
    }
    if distinct.len() <= max_bins {
        for w in distinct.windows(2) {
            cuts.push(cut_between(w[0].0, w[1].0));
        }
        return cuts;
    }
    // Greedy equal-frequency bins; after each cut the remaining rows are shared equally among the
    // remaining bins, so a heavy value (e.g. 70% zeros) does not starve the others.
    let total: usize = distinct.iter().map(|d| d.1).sum();
    let mut cum = 0usize;
    let mut target = total as f64 / max_bins as f64;
    for k in 0..distinct.len() - 1 {
        cum += distinct[k].1;
        if cum as f64 >= target {
            cuts.push(cut_between(distinct[k].0, distinct[k + 1].0));
            if cuts.len() == max_bins - 1 {
                break;
            }
            let left_bins = (max_bins - cuts.len()) as f64;
            target = cum as f64 + (total - cum) as f64 / left_bins;
        }
    }
    cuts
}

/// Row-wise storage of the bins for histogram building.
enum RowStore {
    /// Every feature's bin, `n x f` bytes (used when the sparse store would skip under 30% of the
    /// cells, or there are more than 65,535 histogram cells).
    Dense(Vec<u8>),
    /// Per row, the histogram cell index (`offset + bin`) of every feature whose bin is not that
    /// feature's most frequent bin (CSR layout). Zeros, absent flags and missing labs - most of a
    /// population-health table - are never touched; their cells are recovered by subtraction.
    Sparse { ptr: Vec<usize>, idx: Vec<u16> },
}

/// The training table as bins: row-wise for histograms, column-major for partitioning.
struct Binned {
    n: usize,
    f: usize,
    rows: RowStore,
    /// Most frequent bin of each feature (skipped by the sparse store).
    mfb: Vec<usize>,
    col_major: Vec<u8>,
    /// Number of value bins per feature (missing bin index = value bins).
    n_value_bins: Vec<usize>,
    /// Offset of each feature's histogram in the flat histogram.
    offsets: Vec<usize>,
    total_bins: usize,
}

impl Binned {
    fn new(data: &Dataset, cuts: &BinCuts) -> Self {
        let n = data.n_rows();
        let f = data.n_features();
        let n_value_bins: Vec<usize> = cuts.cuts.iter().map(|c| c.len() + 1).collect();
        let mut offsets = Vec::with_capacity(f);
        let mut total_bins = 0;
        for &nb in &n_value_bins {
            offsets.push(total_bins);
            total_bins += nb + 1;
        }
        let mut col_major = vec![0u8; n * f];
        col_major
            .par_chunks_mut(n.max(1))
            .enumerate()
            .for_each(|(j, out)| {
                for (o, &x) in out.iter_mut().zip(data.column(j)) {
                    *o = cuts.bin(j, x);
                }
            });
        let mfb: Vec<usize> = (0..f)
            .into_par_iter()
            .map(|j| {
                let mut cnt = [0usize; 256];
                for &v in &col_major[j * n..(j + 1) * n] {
                    cnt[v as usize] += 1;
                }
                // most frequent; ties to the lowest bin
                let mut best = 0;
                for k in 1..256 {
                    if cnt[k] > cnt[best] {
                        best = k;
                    }
                }
                best
            })
            .collect();
        const B: usize = 4096;
        // Sparse when it skips at least 30% of the cells (each kept cell costs 2 bytes instead of 1).
        let kept: usize = (0..f)
            .into_par_iter()
            .map(|j| {
                col_major[j * n..(j + 1) * n]
                    .iter()
                    .filter(|&&v| v as usize != mfb[j])
                    .count()
            })
            .sum();
        let sparse = total_bins <= usize::from(u16::MAX) && (kept as f64) <= 0.7 * (n * f) as f64;
        let rows = if sparse {
            let blocks: Vec<(Vec<u16>, Vec<u32>)> = (0..n.div_ceil(B))
                .into_par_iter()
                .map(|b| {
                    let lo = b * B;
                    let hi = (lo + B).min(n);
                    let mut lens = vec![0u32; hi - lo];
                    let mut tmp: Vec<Vec<u16>> = vec![Vec::new(); hi - lo];
                    for j in 0..f {
                        let col = &col_major[j * n + lo..j * n + hi];
                        for (i, &v) in col.iter().enumerate() {
                            if v as usize != mfb[j] {
                                tmp[i].push((offsets[j] + v as usize) as u16);
                                lens[i] += 1;
                            }
                        }
                    }
                    (tmp.concat(), lens)
                })
                .collect();
            let total: usize = blocks.iter().map(|b| b.0.len()).sum();
            let mut idx = Vec::with_capacity(total);
            let mut ptr = Vec::with_capacity(n + 1);
            ptr.push(0);
            for (e, lens) in blocks {
                idx.extend_from_slice(&e);
                for l in lens {
                    let last = ptr[ptr.len() - 1];
                    ptr.push(last + l as usize);
                }
            }
            RowStore::Sparse { ptr, idx }
        } else {
            let mut row_major = vec![0u8; n * f];
            row_major
                .par_chunks_mut(B * f)
                .enumerate()
                .for_each(|(b, out)| {
                    let lo = b * B;
                    let m = out.len() / f;
                    for j in 0..f {
                        let col = &col_major[j * n + lo..j * n + lo + m];
                        for (i, &v) in col.iter().enumerate() {
                            out[i * f + j] = v;
                        }
                    }
                });
            RowStore::Dense(row_major)
        };
        Self {
            n,
            f,
            rows,
            mfb,
            col_major,
            n_value_bins,
            offsets,
            total_bins,
        }
    }
}

/// Fixed-point layout of the packed hessian/count word (see module docs).
#[derive(Debug, Clone, Copy)]
struct Quant {
    /// Bits holding the row count.
    c: u32,
    /// Hessian scale `2^(hb+2)`.
    h_scale: f64,
}

impl Quant {
    fn new(n: usize) -> Self {
        let bits = |v: usize| (usize::BITS - v.leading_zeros()).max(1);
        let c = bits(n);
        let hb = 62i64 - i64::from(c) - i64::from(bits(n.saturating_sub(1).max(1)));
        let hb = hb.clamp(4, 30);
        Self {
            c,
            h_scale: (1u64 << (hb + 2)) as f64,
        }
    }
}

/// One histogram cell: `[g sum, h sum << c | row count]` in fixed point.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Cell([i64; 2]);

impl Cell {
    #[inline]
    fn add(&mut self, o: &Cell) {
        self.0[0] += o.0[0];
        self.0[1] += o.0[1];
    }
    #[inline]
    fn sub(&self, o: &Cell) -> Cell {
        Cell([self.0[0] - o.0[0], self.0[1] - o.0[1]])
    }
    #[inline]
    fn n(&self, q: &Quant) -> i64 {
        self.0[1] & ((1i64 << q.c) - 1)
    }
    #[inline]
    fn gf(&self) -> f64 {
        self.0[0] as f64 / G_SCALE
    }
    #[inline]
    fn hf(&self, q: &Quant) -> f64 {
        (self.0[1] >> q.c) as f64 / q.h_scale
    }
}

/// Hints the processor to load the cache line holding `p` (no-op off x86-64; never faults).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it does not dereference `p` and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn accumulate(b: &Binned, gh: &[Cell], rows: &[u32], hist: &mut [Cell]) {
    match &b.rows {
        RowStore::Sparse { ptr, idx } => {
            // Every stored index is `offsets[j] + bin < total_bins` by construction (Binned::new).
            assert!(hist.len() >= b.total_bins && gh.len() >= b.n);
            // Rows of a child node are scattered: prefetch the row pointer and gradient 32 rows
            // ahead and the row's cell indices 16 rows ahead (the pointer is cached by then).
            const PF: usize = 16;
            for (i, &r) in rows.iter().enumerate() {
                if let Some(&ra) = rows.get(i + 2 * PF) {
                    prefetch(ptr.as_ptr().wrapping_add(ra as usize));
                    prefetch(gh.as_ptr().wrapping_add(ra as usize));
                }
                if let Some(&rb) = rows.get(i + PF) {
                    prefetch(idx.as_ptr().wrapping_add(ptr[rb as usize]));
                }
                let r = r as usize;
                let inc = gh[r];
                for &k in &idx[ptr[r]..ptr[r + 1]] {
                    // SAFETY: k < total_bins <= hist.len() (asserted above, invariant of `idx`).
                    unsafe { hist.get_unchecked_mut(k as usize) }.add(&inc);
                }
            }
        }
        RowStore::Dense(row_major) => {
            let f = b.f;
            let offsets = &b.offsets[..f];
            const PF: usize = 16;
            for (i, &r) in rows.iter().enumerate() {
                if let Some(&ra) = rows.get(i + PF) {
                    prefetch(gh.as_ptr().wrapping_add(ra as usize));
                    prefetch(row_major.as_ptr().wrapping_add(ra as usize * f));
                }
                let r = r as usize;
                let inc = gh[r];
                let rb = &row_major[r * f..r * f + f];
                for (&off, &bin) in offsets.iter().zip(rb) {
                    hist[off + bin as usize].add(&inc);
                }
            }
        }
    }
}

/// Fills each feature's most-frequent-bin cell (skipped by the sparse store) as the node total
/// minus the feature's other cells; exact in integer arithmetic.
fn fill_skipped(b: &Binned, total: &Cell, hist: &mut [Cell]) {
    if !matches!(b.rows, RowStore::Sparse { .. }) {
        return;
    }
    for j in 0..b.f {
        let cells = &mut hist[b.offsets[j]..b.offsets[j] + b.n_value_bins[j] + 1];
        let mut rest = Cell::default();
        for c in cells.iter() {
            rest.add(c);
        }
        // the skipped cell is still zero, so `rest` is the sum of the others
        cells[b.mfb[j]] = total.sub(&rest);
    }
}

/// Scratch buffers reused across histogram builds.
struct HistPool {
    total: usize,
    free: Vec<Vec<Cell>>,
    partials: Vec<Vec<Cell>>,
}

impl HistPool {
    fn get(&mut self) -> Vec<Cell> {
        self.free
            .pop()
            .unwrap_or_else(|| vec![Cell::default(); self.total])
    }
    fn put(&mut self, v: Vec<Cell>) {
        self.free.push(v);
    }
}

fn build_hist(
    b: &Binned,
    gh: &[Cell],
    rows: &[u32],
    total: &Cell,
    out: &mut [Cell],
    pool: &mut HistPool,
) {
    out.fill(Cell::default());
    if rows.len() < PAR_ROWS {
        accumulate(b, gh, rows, out);
        fill_skipped(b, total, out);
        return;
    }
    let parts = (rows.len() / (PAR_ROWS / 2))
        .min(2 * rayon::current_num_threads())
        .max(2);
    while pool.partials.len() < parts - 1 {
        pool.partials.push(vec![Cell::default(); pool.total]);
    }
    let chunk = rows.len().div_ceil(parts);
    let mut targets: Vec<&mut [Cell]> = Vec::with_capacity(parts);
    targets.push(out);
    for p in pool.partials.iter_mut().take(parts - 1) {
        p.fill(Cell::default());
        targets.push(p.as_mut_slice());
    }
    targets
        .par_iter_mut()
        .zip(rows.par_chunks(chunk))
        .for_each(|(t, rs)| accumulate(b, gh, rs, t));
    let out = targets.swap_remove(0);
    let partials: Vec<&[Cell]> = targets.into_iter().map(|t| &*t).collect();
    out.par_chunks_mut(1024).enumerate().for_each(|(k, o)| {
        for p in &partials {
            for (a, c) in o.iter_mut().zip(&p[k * 1024..]) {
                a.add(c);
            }
        }
    });
    fill_skipped(b, total, out);
}

#[derive(Debug, Clone, Copy)]
struct Cand {
    gain: f64,
    feature: usize,
    /// Last value bin sent left; `n_value_bins - 1` = every observed value left.
    bin: usize,
    default_left: bool,
    left: Cell,
    right: Cell,
}

struct SplitCfg {
    q: Quant,
    l2: f64,
    min_w: f64,
    min_n: i64,
    min_gain: f64,
    /// Per feature: 1 increasing, -1 decreasing, 0 free.
    monotone: Vec<i8>,
}

/// The leaf output (before shrinkage) of a gradient and hessian sum.
#[inline]
fn output(g: f64, h: f64, l2: f64) -> f64 {
    if h + l2 > 0.0 { -g / (h + l2) } else { 0.0 }
}

#[inline]
fn score(g: f64, h: f64, l2: f64) -> f64 {
    g * g / (h + l2)
}

fn best_for_feature(
    b: &Binned,
    hist: &[Cell],
    total: &Cell,
    j: usize,
    cfg: &SplitCfg,
    bounds: (f64, f64),
) -> Option<Cand> {
    let mono = cfg.monotone.get(j).copied().unwrap_or(0);
    let nv = b.n_value_bins[j];
    let h = &hist[b.offsets[j]..b.offsets[j] + nv + 1];
    let miss = h[nv];
    let q = &cfg.q;
    let parent = score(total.gf(), total.hf(q), cfg.l2);
    let ok = |c: &Cell| c.n(q) >= cfg.min_n && c.hf(q) >= cfg.min_w;
    let mut best: Option<Cand> = None;
    let mut consider = |left: Cell, bin: usize, default_left: bool| {
        let right = total.sub(&left);
        if !ok(&left) || !ok(&right) {
            return;
        }
        if mono != 0 {
            // Children's outputs, held to the leaf's bounds, must be in the constraint's order
            // (left holds the lower values of the feature).
            let clamp = |c: &Cell| output(c.gf(), c.hf(q), cfg.l2).clamp(bounds.0, bounds.1);
            let (lo, ro) = (clamp(&left), clamp(&right));
            if (mono > 0 && lo > ro) || (mono < 0 && lo < ro) {
                return;
            }
        }
        let gain =
            score(left.gf(), left.hf(q), cfg.l2) + score(right.gf(), right.hf(q), cfg.l2) - parent;
        if gain > cfg.min_gain && best.is_none_or(|c| gain > c.gain) {
            best = Some(Cand {
                gain,
                feature: j,
                bin,
                default_left,
                left,
                right,
            });
        }
    };
    let mut acc = Cell::default();
    for (bin, cell) in h[..nv].iter().enumerate() {
        acc.add(cell);
        if bin + 1 < nv {
            if miss.n(q) > 0 {
                consider(acc, bin, false);
                let mut with_miss = acc;
                with_miss.add(&miss);
                consider(with_miss, bin, true);
            } else {
                let right = total.sub(&acc);
                consider(acc, bin, acc.hf(q) >= right.hf(q));
            }
        } else if miss.n(q) > 0 {
            // every observed value left, missing right
            consider(acc, bin, false);
        }
    }
    best
}

fn best_split(
    b: &Binned,
    hist: &[Cell],
    total: &Cell,
    cfg: &SplitCfg,
    bounds: (f64, f64),
) -> Option<Cand> {
    let cands: Vec<Option<Cand>> = (0..b.f)
        .into_par_iter()
        .with_min_len(8)
        .map(|j| best_for_feature(b, hist, total, j, cfg, bounds))
        .collect();
    let mut best: Option<Cand> = None;
    for c in cands.into_iter().flatten() {
        if best.is_none_or(|bc| c.gain > bc.gain) {
            best = Some(c);
        }
    }
    best
}

#[derive(Debug, Clone)]
struct TNode {
    feature: usize,
    bin: usize,
    default_left: bool,
    gain: f64,
    left: usize,
    right: usize,
    value: f64,
    sum: Cell,
    is_leaf: bool,
}

struct LeafState {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    hist: Option<Vec<Cell>>,
    best: Option<Cand>,
    /// The range its output is held to by monotone splits above it.
    bounds: (f64, f64),
}

/// Stable partition of `rows` (left rows first); returns the number of left rows.
fn partition(b: &Binned, rows: &mut [u32], c: &Cand, tmp: &mut Vec<u32>) -> usize {
    let col = &b.col_major[c.feature * b.n..(c.feature + 1) * b.n];
    let miss = b.n_value_bins[c.feature] as u8;
    let (split, dl) = (c.bin as u8, c.default_left);
    let go_left = |r: u32| {
        let v = col[r as usize];
        if v == miss { dl } else { v <= split }
    };
    if rows.len() < 65_536 {
        tmp.clear();
        let mut l = 0;
        for i in 0..rows.len() {
            if let Some(&ra) = rows.get(i + 32) {
                prefetch(col.as_ptr().wrapping_add(ra as usize));
            }
            let r = rows[i];
            if go_left(r) {
                rows[l] = r;
                l += 1;
            } else {
                tmp.push(r);
            }
        }
        rows[l..].copy_from_slice(tmp);
        return l;
    }
    let parts: Vec<(Vec<u32>, Vec<u32>)> = rows
        .par_chunks(32_768)
        .map(|ch| {
            let mut l = Vec::with_capacity(ch.len());
            let mut r = Vec::with_capacity(ch.len());
            for (i, &x) in ch.iter().enumerate() {
                if let Some(&ra) = ch.get(i + 32) {
                    prefetch(col.as_ptr().wrapping_add(ra as usize));
                }
                if go_left(x) { l.push(x) } else { r.push(x) }
            }
            (l, r)
        })
        .collect();
    let mut k = 0;
    for (l, _) in &parts {
        rows[k..k + l.len()].copy_from_slice(l);
        k += l.len();
    }
    let nl = k;
    for (_, r) in &parts {
        rows[k..k + r.len()].copy_from_slice(r);
        k += r.len();
    }
    nl
}

/// Grows one tree on `rows` (reordered in place); returns the nodes and the leaves' row ranges.
#[allow(clippy::too_many_arguments)]
fn grow(
    b: &Binned,
    gh: &[Cell],
    rows: &mut [u32],
    p: &GbdtParams,
    monotone: &[i8],
    q: Quant,
    pool: &mut HistPool,
    tmp: &mut Vec<u32>,
) -> (Vec<TNode>, Vec<(usize, usize, usize)>) {
    let cfg = SplitCfg {
        q,
        l2: p.l2,
        min_w: p.min_child_weight,
        min_n: p.min_child_samples.max(1) as i64,
        min_gain: p.min_split_gain,
        monotone: monotone.to_vec(),
    };
    let free = (f64::NEG_INFINITY, f64::INFINITY);
    let total = rows
        .par_chunks(65_536)
        .map(|ch| {
            let mut t = Cell::default();
            for &r in ch {
                t.add(&gh[r as usize]);
            }
            t
        })
        .reduce(Cell::default, |mut a, b| {
            a.add(&b);
            a
        });
    let mut root_hist = pool.get();
    build_hist(b, gh, rows, &total, &mut root_hist, pool);
    let mut nodes = vec![TNode {
        feature: 0,
        bin: 0,
        default_left: false,
        gain: 0.0,
        left: 0,
        right: 0,
        value: 0.0,
        sum: total,
        is_leaf: true,
    }];
    let best = best_split(b, &root_hist, &total, &cfg, free);
    let mut leaves = vec![LeafState {
        node: 0,
        start: 0,
        end: rows.len(),
        depth: 0,
        hist: Some(root_hist),
        best,
        bounds: free,
    }];
    let can_split = |sum: &Cell, depth: usize| {
        depth < p.max_depth && sum.n(&q) >= 2 * cfg.min_n && sum.hf(&q) >= 2.0 * cfg.min_w
    };
    if !can_split(&total, 0) {
        leaves[0].best = None;
    }
    while leaves.len() < p.max_leaves {
        // the leaf with the highest gain (ties: lowest node index)
        let mut pick: Option<usize> = None;
        for (k, l) in leaves.iter().enumerate() {
            if let Some(c) = &l.best {
                let better = match pick {
                    None => true,
                    Some(q) => leaves[q].best.as_ref().is_none_or(|qc| {
                        c.gain > qc.gain || (c.gain == qc.gain && l.node < leaves[q].node)
                    }),
                };
                if better {
                    pick = Some(k);
                }
            }
        }
        let Some(k) = pick else { break };
        let leaf = leaves.swap_remove(k);
        let Some(c) = leaf.best else { break };
        let nl = partition(b, &mut rows[leaf.start..leaf.end], &c, tmp);
        let (li, ri) = (nodes.len(), nodes.len() + 1);
        for sum in [c.left, c.right] {
            nodes.push(TNode {
                feature: 0,
                bin: 0,
                default_left: false,
                gain: 0.0,
                left: 0,
                right: 0,
                value: 0.0,
                sum,
                is_leaf: true,
            });
        }
        {
            let nd = &mut nodes[leaf.node];
            nd.is_leaf = false;
            nd.feature = c.feature;
            nd.bin = c.bin;
            nd.default_left = c.default_left;
            nd.gain = c.gain;
            nd.left = li;
            nd.right = ri;
        }
        let depth = leaf.depth + 1;
        let room = leaves.len() + 2 < p.max_leaves;
        let want_l = room && can_split(&c.left, depth);
        let want_r = room && can_split(&c.right, depth);
        let (ls, le) = (leaf.start, leaf.start + nl);
        let (rs, re) = (leaf.start + nl, leaf.end);
        let mut parent_hist = leaf.hist;
        let (mut hl, mut hr) = (None, None);
        if want_l || want_r {
            if let Some(mut ph) = parent_hist.take() {
                let mut small = pool.get();
                let left_smaller = c.left.n(&q) <= c.right.n(&q);
                let (s0, s1, st) = if left_smaller {
                    (ls, le, c.left)
                } else {
                    (rs, re, c.right)
                };
                build_hist(b, gh, &rows[s0..s1], &st, &mut small, pool);
                ph.par_chunks_mut(4096)
                    .zip(small.par_chunks(4096))
                    .for_each(|(a, s)| {
                        for (x, y) in a.iter_mut().zip(s) {
                            *x = x.sub(y);
                        }
                    });
                if left_smaller {
                    hl = Some(small);
                    hr = Some(ph);
                } else {
                    hl = Some(ph);
                    hr = Some(small);
                }
            }
        }
        if let Some(ph) = parent_hist {
            pool.put(ph);
        }
        // Children of a split on a constrained feature are held to their side of the midpoint
        // of their outputs.
        let (mut bl, mut br) = (leaf.bounds, leaf.bounds);
        let mono = cfg.monotone.get(c.feature).copied().unwrap_or(0);
        if mono != 0 {
            let clamp = |cell: &Cell| {
                output(cell.gf(), cell.hf(&q), cfg.l2).clamp(leaf.bounds.0, leaf.bounds.1)
            };
            let mid = (clamp(&c.left) + clamp(&c.right)) / 2.0;
            if mono > 0 {
                bl.1 = mid;
                br.0 = mid;
            } else {
                bl.0 = mid;
                br.1 = mid;
            }
        }
        for (want, hist, sum, s, e, node, bounds) in [
            (want_l, hl, c.left, ls, le, li, bl),
            (want_r, hr, c.right, rs, re, ri, br),
        ] {
            let (best, hist) = match hist {
                Some(h) if want => (best_split(b, &h, &sum, &cfg, bounds), Some(h)),
                Some(h) => {
                    pool.put(h);
                    (None, None)
                }
                None => (None, None),
            };
            let hist = if best.is_none() {
                if let Some(h) = hist {
                    pool.put(h);
                }
                None
            } else {
                hist
            };
            leaves.push(LeafState {
                node,
                start: s,
                end: e,
                depth,
                hist,
                best,
                bounds,
            });
        }
    }
    let mut ranges = Vec::with_capacity(leaves.len());
    for l in leaves {
        if let Some(h) = l.hist {
            pool.put(h);
        }
        let nd = &mut nodes[l.node];
        // a leaf with no curvature (only with l2 = 0 and min_child_weight = 0) stays at 0;
        // a leaf below monotone splits is held to its bounds
        nd.value = p.learning_rate
            * output(nd.sum.gf(), nd.sum.hf(&q), p.l2).clamp(l.bounds.0, l.bounds.1);
        ranges.push((l.node, l.start, l.end));
    }
    (nodes, ranges)
}

fn to_public(nodes: &[TNode], cuts: &BinCuts, nv: &[usize], q: &Quant) -> Tree {
    Tree {
        nodes: nodes
            .iter()
            .map(|nd| {
                if nd.is_leaf {
                    Node::Leaf(Leaf {
                        value: nd.value,
                        cover: nd.sum.hf(q),
                        count: nd.sum.n(q) as u64,
                    })
                } else {
                    let threshold = if nd.bin + 1 >= nv[nd.feature] {
                        f32::MAX
                    } else {
                        cuts.cuts[nd.feature][nd.bin]
                    };
                    Node::Split(Split {
                        feature: nd.feature as u32,
                        threshold,
                        default_left: nd.default_left,
                        left: nd.left as u32,
                        right: nd.right as u32,
                        gain: nd.gain,
                        cover: nd.sum.hf(q),
                        count: nd.sum.n(q) as u64,
                    })
                }
            })
            .collect(),
    }
}

/// Value of the binned tree for row `r`.
fn tnode_predict(nodes: &[TNode], b: &Binned, r: usize) -> f64 {
    let mut i = 0;
    loop {
        let nd = &nodes[i];
        if nd.is_leaf {
            return nd.value;
        }
        let v = b.col_major[nd.feature * b.n + r];
        let left = if v as usize == b.n_value_bins[nd.feature] {
            nd.default_left
        } else {
            v as usize <= nd.bin
        };
        i = if left { nd.left } else { nd.right };
    }
}

/// A fitted GBDT with its bin cut points (kept for the model card; not needed to predict).
#[derive(Debug, Clone, PartialEq)]
pub struct GbdtFit {
    /// The model.
    pub model: GbdtModel,
    /// The bin cut points used in training.
    pub bins: BinCuts,
    /// With early stopping: the held-out rows' log-loss after each tree fitted (the model
    /// keeps the trees up to the lowest).
    pub holdout_logloss: Vec<f64>,
}

/// Fits a gradient-boosted tree ensemble on a labelled table (1 = event).
pub fn fit_gbdt(data: &Dataset, params: &GbdtParams) -> Result<GbdtFit> {
    params.validate()?;
    let y = data.labels_for("gbdt fit")?;
    let n = data.n_rows();
    if n > u32::MAX as usize {
        return Err(ModelError::Shape("more than 2^32 rows".into()));
    }
    let events = y.iter().filter(|&&v| v == 1).count();
    if events == 0 || events == n {
        return Err(ModelError::SingleClass("gbdt fit"));
    }
    let mut monotone = vec![0i8; data.feature_names().len()];
    for (name, sign) in &params.monotone {
        let j = data
            .feature_names()
            .iter()
            .position(|f| f == name)
            .ok_or_else(|| ModelError::Param {
                name: "monotone",
                reason: format!("no feature named {name}"),
            })?;
        monotone[j] = sign.signum();
    }
    // Early stopping holds out every k-th row; the rest are fitted.
    let holdout: Vec<bool> = if params.early_stopping_rounds > 0 {
        let k = params.holdout_every.max(2);
        (0..n).map(|i| i % k == k - 1).collect()
    } else {
        Vec::new()
    };
    let held = |i: usize| holdout.get(i).copied().unwrap_or(false);
    let (fit_n, fit_events) = (0..n)
        .filter(|&i| !held(i))
        .fold((0usize, 0usize), |(a, e), i| {
            (a + 1, e + usize::from(y[i] == 1))
        });
    if fit_events == 0 || fit_events == fit_n {
        return Err(ModelError::SingleClass("gbdt fit"));
    }
    let ybar = fit_events as f64 / fit_n as f64;
    let base_score = (ybar / (1.0 - ybar)).ln();
    let held_rows: Vec<usize> = (0..n).filter(|&i| held(i)).collect();
    let mut holdout_logloss = Vec::new();
    let (mut best, mut best_at) = (f64::INFINITY, 0usize);
    let cuts = BinCuts::fit(data, params.max_bins, params.bin_sample_rows, params.seed);
    let b = Binned::new(data, &cuts);
    let mut pool = HistPool {
        total: b.total_bins,
        free: Vec::new(),
        partials: Vec::new(),
    };
    let mut margin = vec![base_score; n];
    let q = Quant::new(n);
    let mut gh = vec![Cell::default(); n];
    let mut rows: Vec<u32> = Vec::with_capacity(n);
    let mut in_bag = vec![false; if params.subsample < 1.0 { n } else { 0 }];
    let mut tmp = Vec::new();
    let mut pos_value = vec![0.0f64; n];
    let mut trees = Vec::with_capacity(params.n_trees);
    for t in 0..params.n_trees {
        gh.par_chunks_mut(8192)
            .zip(margin.par_chunks(8192))
            .zip(y.par_chunks(8192))
            .for_each(|((o, m), yy)| {
                for ((o, &m), &yi) in o.iter_mut().zip(m).zip(yy) {
                    let pr = sigmoid(m);
                    let g = pr - f64::from(yi);
                    let h = pr * (1.0 - pr);
                    let hq = (h * q.h_scale).round() as i64;
                    *o = Cell([(g * G_SCALE).round() as i64, (hq << q.c) | 1]);
                }
            });
        rows.clear();
        if params.subsample < 1.0 {
            let mut rng = SplitMix64::stream(params.seed, t as u64);
            for (i, ib) in in_bag.iter_mut().enumerate() {
                *ib = !held(i) && rng.next_f64() < params.subsample;
                if *ib {
                    rows.push(i as u32);
                }
            }
            if rows.is_empty() {
                rows.push(0);
                in_bag[0] = true;
            }
        } else {
            rows.extend((0..n as u32).filter(|&i| !held(i as usize)));
        }
        let (nodes, ranges) = grow(
            &b, &gh, &mut rows, params, &monotone, q, &mut pool, &mut tmp,
        );
        // in-bag rows: add their leaf's value (leaf ranges of the partitioned row list)
        let m = rows.len();
        for &(node, s, e) in &ranges {
            pos_value[s..e].fill(nodes[node].value);
        }
        for (&r, &v) in rows.iter().zip(&pos_value[..m]) {
            margin[r as usize] += v;
        }
        if params.subsample < 1.0 {
            margin
                .par_chunks_mut(8192)
                .zip(in_bag.par_chunks(8192))
                .enumerate()
                .for_each(|(k, (mc, ib))| {
                    for (i, (mv, &inb)) in mc.iter_mut().zip(ib).enumerate() {
                        if !inb {
                            *mv += tnode_predict(&nodes, &b, k * 8192 + i);
                        }
                    }
                });
        }
        if !held_rows.is_empty() && params.subsample >= 1.0 {
            // (With subsampling the held-out rows were updated with the out-of-bag rows.)
            let add: Vec<f64> = held_rows
                .par_iter()
                .map(|&r| tnode_predict(&nodes, &b, r))
                .collect();
            for (&r, v) in held_rows.iter().zip(add) {
                margin[r] += v;
            }
        }
        trees.push(to_public(&nodes, &cuts, &b.n_value_bins, &q));
        if !held_rows.is_empty() {
            let loss = held_rows
                .iter()
                .map(|&r| {
                    let p = sigmoid(margin[r]).clamp(1e-15, 1.0 - 1e-15);
                    if y[r] == 1 { -p.ln() } else { -(1.0 - p).ln() }
                })
                .sum::<f64>()
                / held_rows.len() as f64;
            holdout_logloss.push(loss);
            if loss < best {
                (best, best_at) = (loss, t + 1);
            } else if t + 1 - best_at >= params.early_stopping_rounds {
                break;
            }
        }
    }
    if !held_rows.is_empty() {
        trees.truncate(best_at.max(1));
    }
    Ok(GbdtFit {
        model: GbdtModel {
            feature_names: data.feature_names().to_vec(),
            base_score,
            trees,
        },
        bins: cuts,
        holdout_logloss,
    })
}
