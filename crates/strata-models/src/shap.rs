//! Exact path-dependent TreeSHAP (Lundberg, Erion & Lee 2018, "Consistent individualized feature
//! attribution for tree ensembles", Algorithm 2) on our [`Tree`] representation.
//!
//! For a row `x`, `phi[j]` is feature `j`'s SHAP value of the log-odds, where "feature j unknown"
//! is resolved by following both children weighted by their training `cover` (hessian sums).
//! Additivity holds exactly (up to rounding): `expected_value() + sum_j phi[j] = margin(x)`.
//! Cost is `O(leaves x depth^2)` per tree and row; rows are explained in parallel and each row is
//! computed on its own, so results do not depend on the thread count.

use crate::data::Dataset;
use crate::error::{ModelError, Result};
use crate::tree::{GbdtModel, Node, Tree};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    feature: i64,
    zero_fraction: f64,
    one_fraction: f64,
    pweight: f64,
}

/// `INV[k] = 1 / k`: the path arithmetic multiplies by these instead of dividing (divisions
/// dominated the cost).
const INV: [f64; 130] = {
    let mut t = [0.0; 130];
    let mut k = 1;
    while k < 130 {
        t[k] = 1.0 / k as f64;
        k += 1;
    }
    t
};

#[inline]
fn inv(k: usize) -> f64 {
    if k < INV.len() {
        INV[k]
    } else {
        1.0 / k as f64
    }
}

fn extend_path(path: &mut [PathElement], unique_depth: usize, zero: f64, one: f64, feature: i64) {
    path[unique_depth] = PathElement {
        feature,
        zero_fraction: zero,
        one_fraction: one,
        pweight: if unique_depth == 0 { 1.0 } else { 0.0 },
    };
    let inv_ud1 = inv(unique_depth + 1);
    for i in (0..unique_depth).rev() {
        let pw = path[i].pweight;
        path[i + 1].pweight += one * pw * ((i + 1) as f64 * inv_ud1);
        path[i].pweight = zero * pw * ((unique_depth - i) as f64 * inv_ud1);
    }
}

fn unwind_path(path: &mut [PathElement], unique_depth: usize, path_index: usize) {
    let one = path[path_index].one_fraction;
    let zero = path[path_index].zero_fraction;
    let mut next_one_portion = path[unique_depth].pweight;
    let ud1 = (unique_depth + 1) as f64;
    let inv_ud1 = inv(unique_depth + 1);
    if one != 0.0 {
        let inv_one = 1.0 / one;
        for i in (0..unique_depth).rev() {
            let tmp = path[i].pweight;
            let pw = next_one_portion * ud1 * inv(i + 1) * inv_one;
            path[i].pweight = pw;
            next_one_portion = tmp - pw * zero * ((unique_depth - i) as f64 * inv_ud1);
        }
    } else {
        let inv_zero = 1.0 / zero;
        for i in (0..unique_depth).rev() {
            path[i].pweight = path[i].pweight * ud1 * inv_zero * inv(unique_depth - i);
        }
    }
    for i in path_index..unique_depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

fn unwound_path_sum(path: &[PathElement], unique_depth: usize, path_index: usize) -> f64 {
    let one = path[path_index].one_fraction;
    let zero = path[path_index].zero_fraction;
    let mut total = 0.0;
    let ud1 = (unique_depth + 1) as f64;
    if one != 0.0 {
        let inv_one = 1.0 / one;
        let inv_ud1 = inv(unique_depth + 1);
        let mut next_one_portion = path[unique_depth].pweight;
        for i in (0..unique_depth).rev() {
            let tmp = next_one_portion * ud1 * inv(i + 1) * inv_one;
            total += tmp;
            next_one_portion = path[i].pweight - tmp * zero * ((unique_depth - i) as f64 * inv_ud1);
        }
    } else if zero != 0.0 {
        let inv_zero = 1.0 / zero;
        for i in (0..unique_depth).rev() {
            total += path[i].pweight * inv_zero * ud1 * inv(unique_depth - i);
        }
    }
    total
}

struct Ctx<'a> {
    tree: &'a Tree,
    x: &'a [f32],
    phi: &'a mut [f64],
}

#[allow(clippy::too_many_arguments)]
fn recurse(
    ctx: &mut Ctx<'_>,
    buf: &mut [PathElement],
    parent_start: usize,
    node: usize,
    unique_depth: usize,
    parent_zero: f64,
    parent_one: f64,
    parent_feature: i64,
) {
    // this level's copy of the path lives right after the parent's
    let start = parent_start + unique_depth + 1;
    buf.copy_within(parent_start..parent_start + unique_depth + 1, start);
    let mut unique_depth = unique_depth;
    {
        let path = &mut buf[start..];
        extend_path(path, unique_depth, parent_zero, parent_one, parent_feature);
    }
    match &ctx.tree.nodes[node] {
        Node::Leaf(l) => {
            let path = &buf[start..];
            for i in 1..=unique_depth {
                let w = unwound_path_sum(path, unique_depth, i);
                let el = path[i];
                ctx.phi[el.feature as usize] += w * (el.one_fraction - el.zero_fraction) * l.value;
            }
        }
        Node::Split(s) => {
            let v = ctx.x[s.feature as usize];
            let go_left = if v.is_nan() {
                s.default_left
            } else {
                v <= s.threshold
            };
            let (hot, cold) = if go_left {
                (s.left as usize, s.right as usize)
            } else {
                (s.right as usize, s.left as usize)
            };
            let w = s.cover;
            let hot_zero = ctx.tree.nodes[hot].cover() / w;
            let cold_zero = ctx.tree.nodes[cold].cover() / w;
            let mut incoming_zero = 1.0;
            let mut incoming_one = 1.0;
            let feat = i64::from(s.feature);
            let path = &mut buf[start..];
            if let Some(pi) = (0..=unique_depth).find(|&i| path[i].feature == feat) {
                incoming_zero = path[pi].zero_fraction;
                incoming_one = path[pi].one_fraction;
                unwind_path(path, unique_depth, pi);
                unique_depth -= 1;
            }
            recurse(
                ctx,
                buf,
                start,
                hot,
                unique_depth + 1,
                hot_zero * incoming_zero,
                incoming_one,
                feat,
            );
            recurse(
                ctx,
                buf,
                start,
                cold,
                unique_depth + 1,
                cold_zero * incoming_zero,
                0.0,
                feat,
            );
        }
    }
}

/// Adds one tree's SHAP values for row `x` into `phi` (length = number of features).
/// `buf` is scratch space of at least [`path_buffer_len`]`(tree.depth())` elements.
fn tree_shap_into(tree: &Tree, x: &[f32], phi: &mut [f64], buf: &mut Vec<PathElement>) {
    if tree.nodes.is_empty() || matches!(tree.nodes[0], Node::Leaf(_)) {
        return;
    }
    let need = path_buffer_len(tree.depth());
    if buf.len() < need {
        buf.resize(need, PathElement::default());
    }
    let mut ctx = Ctx { tree, x, phi };
    recurse(&mut ctx, buf, 0, 0, 0, 1.0, 1.0, -1);
}

/// Scratch path elements needed for a tree of the given depth: the levels' path copies, of
/// lengths 1, 2, ..., depth + 2, laid end to end after a first slot.
fn path_buffer_len(depth: usize) -> usize {
    let d = depth + 2;
    1 + d * (d + 1) / 2 + d
}

/// SHAP values of one tree for one row (length `n_features`).
pub fn tree_shap(tree: &Tree, x: &[f32], n_features: usize) -> Vec<f64> {
    let mut phi = vec![0.0; n_features];
    let mut buf = Vec::new();
    tree_shap_into(tree, x, &mut phi, &mut buf);
    phi
}

impl GbdtModel {
    /// The SHAP base value: `base_score + sum_t E[tree_t]` (cover-weighted expectation).
    pub fn expected_value(&self) -> f64 {
        let mut s = self.base_score;
        for t in &self.trees {
            s += t.expected_value();
        }
        s
    }

    /// SHAP values of the log-odds for one row of raw feature values: `phi[j]` for each feature,
    /// with `expected_value() + sum(phi) == margin_row(row)` up to rounding.
    pub fn shap_row(&self, row: &[f32]) -> Vec<f64> {
        let mut phi = vec![0.0; self.feature_names.len()];
        let mut buf = Vec::new();
        for t in &self.trees {
            tree_shap_into(t, row, &mut phi, &mut buf);
        }
        phi
    }

    /// SHAP values for the given rows of `data` (all rows if `rows` is `None`), row-major
    /// (`rows.len() x n_features`). Builds a [`TreeExplainer`] and applies it; to explain several
    /// batches with one model, build the explainer once with [`GbdtModel::explainer`].
    pub fn shap(&self, data: &Dataset, rows: Option<&[usize]>) -> Result<Vec<f64>> {
        self.check_features(data)?;
        self.explainer().shap(data, rows)
    }

    /// Precomputes the per-leaf tables of [`TreeExplainer`] (parallel over trees).
    pub fn explainer(&self) -> TreeExplainer<'_> {
        TreeExplainer {
            model: self,
            tables: self.shap_tables(),
        }
    }

    /// The per-leaf tables of [`TreeExplainer`], owned (parallel over trees).
    pub fn shap_tables(&self) -> ShapTables {
        // Each tree's table size first, then which trees get tables, in tree order, within the
        // model's budget: only those are built, so memory stays within it (deterministic).
        let sizes: Vec<Option<usize>> = self.trees.par_iter().map(table_values).collect();
        let mut total = 0usize;
        let build: Vec<bool> = sizes
            .iter()
            .map(|s| match s {
                Some(v) if total + v <= MAX_MODEL_TABLE_VALUES => {
                    total += v;
                    true
                }
                _ => false,
            })
            .collect();
        let tables: Vec<TreeTable> = self
            .trees
            .par_iter()
            .zip(build)
            .map(|(t, b)| {
                if b {
                    TreeTable::build(t)
                } else {
                    TreeTable::algorithm_2(t)
                }
            })
            .collect();
        ShapTables {
            tables,
            expected_value: self.expected_value(),
            shape: (self.trees.len(), self.feature_names.len()),
        }
    }
}

/// Values a tree's tables would hold (`2^d x d` per leaf, `d` its path's distinct features),
/// or `None` when a path has more than [`MAX_TABLE_PATH_FEATURES`] distinct features or the
/// tree's tables would pass [`MAX_TABLE_VALUES`].
fn table_values(tree: &Tree) -> Option<usize> {
    fn walk(tree: &Tree, node: usize, feats: &mut Vec<u32>, total: &mut usize) -> bool {
        match &tree.nodes[node] {
            Node::Leaf(_) => {
                let d = feats.len();
                *total += d << d;
                *total <= MAX_TABLE_VALUES
            }
            Node::Split(s) => {
                let new = !feats.contains(&s.feature);
                if new {
                    if feats.len() >= MAX_TABLE_PATH_FEATURES {
                        return false;
                    }
                    feats.push(s.feature);
                }
                let ok = walk(tree, s.left as usize, feats, total)
                    && walk(tree, s.right as usize, feats, total);
                if new {
                    feats.pop();
                }
                ok
            }
        }
    }
    if tree.nodes.is_empty() {
        return Some(0);
    }
    let mut total = 0;
    walk(tree, 0, &mut Vec::new(), &mut total).then_some(total)
}

/// Largest number of distinct features on one root-to-leaf path for which a tree gets
/// precomputed tables (`2^d x d` values per leaf); deeper trees are explained by Algorithm 2.
/// Leaf-wise trees of 31 leaves reach 12-14 on strata's feature table (10 left a tenth of the
/// trees to Algorithm 2, which then took most of the explaining time).
pub const MAX_TABLE_PATH_FEATURES: usize = 16;

/// Largest table of one tree, in values (32 MB); a larger one falls back to Algorithm 2 (one
/// tree of the shipped falls card needs 11 MB, and Algorithm 2 on it alone took as long as the
/// tables of all the others).
pub const MAX_TABLE_VALUES: usize = 1 << 22;

/// Largest tables of one model, in values (256 MB): trees past it, in tree order, fall back to
/// Algorithm 2 (deterministic, whatever the thread count).
pub const MAX_MODEL_TABLE_VALUES: usize = 1 << 25;

/// Rows explained together by the table walk.
const LANES: usize = 8;

/// Per-tree tables for fast exact TreeSHAP.
#[derive(Debug, Clone)]
struct TreeTable {
    /// For a split node, the position of its feature in the list of distinct features on the path
    /// from the root to it (the same for every leaf below).
    bit: Vec<u8>,
    /// For a leaf node, its index in `leaf_d` / `leaf_off`.
    leaf_of_node: Vec<u32>,
    /// Distinct features on each leaf's path.
    leaf_d: Vec<u8>,
    /// Offset of each leaf's features in `feats` and of its values in `values`.
    leaf_off: Vec<(u32, u32)>,
    feats: Vec<u32>,
    /// `values[off + pattern * d + k]`: contribution of the leaf to its `k`-th path feature when the
    /// row satisfies exactly the path features in the bit set `pattern`.
    values: Vec<f64>,
    /// True when the tree is too deep for tables (Algorithm 2 is used instead).
    fallback: bool,
    /// The tree's nodes in a compact form for the table walk.
    flat: Vec<FlatNode>,
    /// Indices (in `flat`) of the split nodes, parents first, and of the leaves.
    split_nodes: Vec<u32>,
    leaf_nodes: Vec<u32>,
}

/// A node for the table walk: split test, children, path bit; or, for a leaf, its table index.
#[derive(Debug, Clone, Copy, Default)]
struct FlatNode {
    threshold: f32,
    feature: u32,
    left: u32,
    right: u32,
    /// Path bit (split) or leaf table index (leaf).
    slot: u32,
    is_leaf: bool,
    default_left: bool,
}

impl TreeTable {
    /// A tree explained by Algorithm 2, without tables.
    fn algorithm_2(tree: &Tree) -> Self {
        let n = tree.nodes.len();
        TreeTable {
            bit: vec![0; n],
            leaf_of_node: vec![u32::MAX; n],
            leaf_d: Vec::new(),
            leaf_off: Vec::new(),
            feats: Vec::new(),
            values: Vec::new(),
            fallback: n > 0 && !matches!(tree.nodes[0], Node::Leaf(_)),
            flat: Vec::new(),
            split_nodes: Vec::new(),
            leaf_nodes: Vec::new(),
        }
    }

    fn build(tree: &Tree) -> Self {
        let n = tree.nodes.len();
        let mut t = TreeTable {
            fallback: false,
            ..TreeTable::algorithm_2(tree)
        };
        if n == 0 || matches!(tree.nodes[0], Node::Leaf(_)) {
            return t;
        }
        let mut feats = Vec::new();
        let mut zeros = Vec::new();
        let mut path = Vec::new();
        if !t.visit(tree, 0, &mut feats, &mut zeros, &mut path) {
            t.fallback = true;
            t.values.clear();
            return t;
        }
        t.flat = tree
            .nodes
            .iter()
            .enumerate()
            .map(|(i, nd)| match nd {
                Node::Leaf(_) => FlatNode {
                    slot: t.leaf_of_node[i],
                    is_leaf: true,
                    ..FlatNode::default()
                },
                Node::Split(s) => FlatNode {
                    threshold: s.threshold,
                    feature: s.feature,
                    left: s.left,
                    right: s.right,
                    slot: u32::from(t.bit[i]),
                    is_leaf: false,
                    default_left: s.default_left,
                },
            })
            .collect();
        for (i, nd) in t.flat.iter().enumerate() {
            if nd.is_leaf {
                t.leaf_nodes.push(i as u32);
            } else {
                t.split_nodes.push(i as u32);
            }
        }
        t
    }

    /// [`TreeTable::apply_flat`] for `LANES` rows at once (`xs` and `phi` row-major): one pass over
    /// the split nodes propagating each row's bit set, then one over the leaves; no data-dependent
    /// branches and `LANES` independent chains for the processor to overlap.
    #[inline(never)]
    fn apply_lanes(&self, xs: &[f32], p: usize, phi: &mut [f64], masks: &mut Vec<[u64; LANES]>) {
        let n = self.flat.len();
        if n == 0 {
            return;
        }
        if masks.len() < n {
            masks.resize(n, [0; LANES]);
        }
        masks[0] = [u64::MAX; LANES];
        for &i in &self.split_nodes {
            let nd = self.flat[i as usize];
            let m = masks[i as usize];
            let bit = 1u64 << nd.slot;
            let (mut lm, mut rm) = ([0u64; LANES], [0u64; LANES]);
            for r in 0..LANES {
                let v = xs[r * p + nd.feature as usize];
                let go_left = (v <= nd.threshold) | (v.is_nan() & nd.default_left);
                lm[r] = m[r] & !(u64::from(!go_left) * bit);
                rm[r] = m[r] & !(u64::from(go_left) * bit);
            }
            masks[nd.left as usize] = lm;
            masks[nd.right as usize] = rm;
        }
        for &i in &self.leaf_nodes {
            let li = self.flat[i as usize].slot as usize;
            let d = self.leaf_d[li] as usize;
            let (fo, vo) = self.leaf_off[li];
            let fs = &self.feats[fo as usize..fo as usize + d];
            let low = (1u64 << d) - 1;
            let m = masks[i as usize];
            for r in 0..LANES {
                let base = vo as usize + (m[r] & low) as usize * d;
                let vals = &self.values[base..base + d];
                let ph = &mut phi[r * p..(r + 1) * p];
                for (&f, &v) in fs.iter().zip(vals) {
                    ph[f as usize] += v;
                }
            }
        }
    }

    /// Adds the tree's SHAP values for `x` to `phi`: one forward pass over the nodes (children
    /// always follow their parent) propagating the bit set of path features `x` satisfies, then
    /// the table lookup at each leaf. `masks` is scratch space.
    #[inline(never)]
    fn apply_flat(&self, x: &[f32], phi: &mut [f64], masks: &mut Vec<u64>) {
        let n = self.flat.len();
        if n == 0 {
            return;
        }
        if masks.len() < n {
            masks.resize(n, 0);
        }
        masks[0] = u64::MAX;
        for i in 0..n {
            let nd = self.flat[i];
            let mask = masks[i];
            if nd.is_leaf {
                let li = nd.slot as usize;
                let d = self.leaf_d[li] as usize;
                let (fo, vo) = self.leaf_off[li];
                let pattern = (mask & ((1u64 << d) - 1)) as usize;
                let base = vo as usize + pattern * d;
                let vals = &self.values[base..base + d];
                let fs = &self.feats[fo as usize..fo as usize + d];
                for (&f, &v) in fs.iter().zip(vals) {
                    phi[f as usize] += v;
                }
            } else {
                let v = x[nd.feature as usize];
                let go_left = (v <= nd.threshold) | (v.is_nan() & nd.default_left);
                let bit = 1u64 << nd.slot;
                masks[nd.left as usize] = mask & !(u64::from(!go_left) * bit);
                masks[nd.right as usize] = mask & !(u64::from(go_left) * bit);
            }
        }
    }

    /// Depth-first over the tree; returns false if a path has too many distinct features.
    fn visit(
        &mut self,
        tree: &Tree,
        node: usize,
        feats: &mut Vec<u32>,
        zeros: &mut Vec<f64>,
        path: &mut Vec<PathElement>,
    ) -> bool {
        match &tree.nodes[node] {
            Node::Leaf(l) => {
                let d = feats.len();
                if self.values.len() + (d << d) > MAX_TABLE_VALUES {
                    return false;
                }
                self.leaf_of_node[node] = self.leaf_d.len() as u32;
                self.leaf_d.push(d as u8);
                self.leaf_off
                    .push((self.feats.len() as u32, self.values.len() as u32));
                self.feats.extend_from_slice(feats);
                path.clear();
                path.resize(d + 1, PathElement::default());
                for pattern in 0..(1usize << d) {
                    extend_path(path, 0, 1.0, 1.0, -1);
                    for k in 0..d {
                        let one = if pattern >> k & 1 == 1 { 1.0 } else { 0.0 };
                        extend_path(path, k + 1, zeros[k], one, i64::from(feats[k]));
                    }
                    for i in 1..=d {
                        let w = unwound_path_sum(path, d, i);
                        let el = path[i];
                        self.values
                            .push(w * (el.one_fraction - el.zero_fraction) * l.value);
                    }
                }
                true
            }
            Node::Split(s) => {
                let pos = feats.iter().position(|&f| f == s.feature);
                let b = match pos {
                    Some(b) => b,
                    None => {
                        if feats.len() >= MAX_TABLE_PATH_FEATURES {
                            return false;
                        }
                        feats.push(s.feature);
                        zeros.push(1.0);
                        feats.len() - 1
                    }
                };
                self.bit[node] = b as u8;
                let w = s.cover;
                let saved = zeros[b];
                for child in [s.left as usize, s.right as usize] {
                    let frac = if w > 0.0 {
                        tree.nodes[child].cover() / w
                    } else {
                        0.5
                    };
                    zeros[b] = saved * frac;
                    if !self.visit(tree, child, feats, zeros, path) {
                        return false;
                    }
                }
                zeros[b] = saved;
                if pos.is_none() {
                    feats.pop();
                    zeros.pop();
                }
                true
            }
        }
    }
}

/// Fast exact TreeSHAP for one model: the same values as Algorithm 2 (to rounding), computed
/// from per-leaf tables.
///
/// In path-dependent TreeSHAP a leaf's contribution to the features on its path depends on the
/// row only through which of those features' split conditions the row satisfies (a bit set of at
/// most `d` bits, `d` = distinct features on the path). The tables hold, for every leaf and every
/// such bit set, the `d` contributions, computed once with Algorithm 2's path arithmetic (the idea
/// of "Fast TreeSHAP v2", Yang 2021). Explaining a row is then one walk over each tree's nodes and
/// `d` additions per leaf, `O(leaves x depth)` instead of `O(leaves x depth^2)` with divisions.
/// Memory: `8 x 2^d x d` bytes per leaf (about 3 KB at depth 6); a tree whose tables would pass
/// [`MAX_TABLE_VALUES`], or with a path of more than [`MAX_TABLE_PATH_FEATURES`] distinct
/// features, falls back to Algorithm 2.
pub struct TreeExplainer<'a> {
    model: &'a GbdtModel,
    tables: ShapTables,
}

/// The per-tree tables of [`TreeExplainer`], owned apart from the model so that a caller holding
/// the model (a risk card applied every night) can build them once and keep them beside it.
#[derive(Debug, Clone)]
pub struct ShapTables {
    tables: Vec<TreeTable>,
    expected_value: f64,
    /// The model's number of trees and features, to refuse another model's rows.
    shape: (usize, usize),
}

impl ShapTables {
    /// The SHAP base value (see [`GbdtModel::expected_value`]).
    pub fn expected_value(&self) -> f64 {
        self.expected_value
    }

    /// Bytes held by the tables.
    pub fn table_bytes(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.values.len() * 8 + t.feats.len() * 4 + t.bit.len() * 5)
            .sum()
    }

    /// Trees explained by Algorithm 2 because their tables would be too large.
    pub fn fallback_trees(&self) -> usize {
        self.tables.iter().filter(|t| t.fallback).count()
    }

    /// SHAP values of `model` (the model these tables were built from) for rows of raw feature
    /// values, row-major (`xs.len() / p` rows of `p` = the model's feature count), returned
    /// row-major.
    ///
    /// A tree's values for a row depend on the row only through the side it takes at each of the
    /// tree's splits, and rows repeat those patterns (on strata's table about one row in ten has
    /// a pattern not seen before in a batch of 95,000): each tree explains each distinct pattern
    /// of a batch once, from its tables, and every row adds its patterns' values in tree order.
    /// A row's values are therefore the same bits whichever rows share its batch, whatever the
    /// thread count (a PCN explained alone gets the explanations of the whole run).
    pub fn explain_rows(&self, model: &GbdtModel, xs: &[f32]) -> Result<Vec<f64>> {
        let p = model.feature_names.len();
        if self.shape != (model.trees.len(), p) {
            return Err(ModelError::Shape(format!(
                "SHAP tables of {} trees x {} features applied to a model of {} x {}",
                self.shape.0,
                self.shape.1,
                model.trees.len(),
                p
            )));
        }
        if p == 0 || xs.len() % p != 0 {
            return Err(ModelError::Shape(format!(
                "{} values are not rows of {p} features",
                xs.len()
            )));
        }
        let mut out = vec![0.0f64; xs.len()];
        // Batches bound the memory (a pattern index per row and tree); the values do not depend
        // on where the batches fall.
        for (xs, out) in xs
            .chunks(BATCH_ROWS * p)
            .zip(out.chunks_mut(BATCH_ROWS * p))
        {
            self.batch(model, xs, p, out);
        }
        Ok(out)
    }

    /// [`ShapTables::explain_rows`] for one batch: trees in parallel find and explain their
    /// patterns, then rows in parallel add them up.
    fn batch(&self, model: &GbdtModel, xs: &[f32], p: usize, out: &mut [f64]) {
        let n = xs.len() / p;
        // Column-major copy: each split tests one feature of every row.
        let mut cols = vec![0f32; xs.len()];
        for (r, x) in xs.chunks(p).enumerate() {
            for (j, &v) in x.iter().enumerate() {
                cols[j * n + r] = v;
            }
        }
        // Trees in groups of 16: a group's patterns are found (trees in parallel), then added to every
        // row (rows in parallel), then dropped, which bounds the memory whatever the number of
        // trees; each row still adds its trees in order, so the bits are the same.
        const TREES: usize = 16;
        for (trees, tables) in model.trees.chunks(TREES).zip(self.tables.chunks(TREES)) {
            let patterns: Vec<Patterns> = trees
                .par_iter()
                .zip(tables)
                .map(|(t, tab)| Patterns::of(t, tab, xs, &cols, p))
                .collect();
            add_patterns(&patterns, p, out);
        }
    }
}

/// Adds each row's patterns' values to its row of `out` (row-major, `p` features), trees in
/// order: rows in blocks, tree by tree, so the block's values and the tree's patterns stay in
/// cache.
fn add_patterns(patterns: &[Patterns], p: usize, out: &mut [f64]) {
    const BLOCK: usize = 512;
    out.par_chunks_mut(BLOCK * p)
        .enumerate()
        .for_each(|(b, phi)| {
            let r0 = b * BLOCK;
            let rows = phi.len() / p;
            // The values a row AHEAD rows on will add are fetched while this row adds its own
            // (most of the time here was waiting for them).
            const AHEAD: usize = 16;
            for pat in patterns {
                let d = pat.feats.len();
                if d == 0 {
                    continue;
                }
                let index = &pat.index[r0..r0 + rows];
                for (k, phi) in phi.chunks_mut(p).enumerate() {
                    if let Some(&a) = index.get(k + AHEAD) {
                        prefetch(&pat.values[a as usize * d..(a as usize + 1) * d]);
                    }
                    let u = index[k] as usize;
                    for (&f, &v) in pat.feats.iter().zip(&pat.values[u * d..(u + 1) * d]) {
                        phi[f as usize] += v;
                    }
                }
            }
        });
}

/// Asks the processor to bring `v` (its first and last cache lines) into cache: a hint,
/// nothing is read.
#[inline(always)]
fn prefetch(v: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    for p in [
        v.as_ptr(),
        v.as_ptr().wrapping_add(v.len().saturating_sub(1)),
    ] {
        // SAFETY: a prefetch reads nothing and cannot fault; the addresses are in a live slice,
        // and SSE is part of every x86_64 target.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Rows explained per batch by [`ShapTables::explain_rows`].
const BATCH_ROWS: usize = 1 << 17;

/// One tree's explanations of a batch of rows: the distinct patterns of sides the rows take at
/// the tree's splits, each explained once.
struct Patterns {
    /// The features the tree splits on, ascending.
    feats: Vec<u32>,
    /// For each row of the batch, its pattern.
    index: Vec<u32>,
    /// For each pattern, the tree's SHAP value of each of `feats`.
    values: Vec<f64>,
}

impl Patterns {
    #[inline(never)]
    fn of(tree: &Tree, tab: &TreeTable, xs: &[f32], cols: &[f32], p: usize) -> Patterns {
        let n = xs.len() / p;
        let splits: Vec<&crate::tree::Split> = tree
            .nodes
            .iter()
            .filter_map(|nd| match nd {
                Node::Split(s) => Some(s),
                Node::Leaf(_) => None,
            })
            .collect();
        let mut feats: Vec<u32> = splits.iter().map(|s| s.feature).collect();
        feats.sort_unstable();
        feats.dedup();
        if splits.is_empty() || matches!(tree.nodes.first(), Some(Node::Leaf(_)) | None) {
            return Patterns {
                feats: Vec::new(),
                index: Vec::new(),
                values: Vec::new(),
            };
        }
        // Each row's pattern: one bit per split, `w` words.
        let w = splits.len().div_ceil(64);
        let mut sig = vec![0u64; n * w];
        // Rows in blocks, every split on a block: the block's patterns stay in the first cache.
        const ROWS: usize = 1024;
        for (blk, sig) in sig.chunks_mut(ROWS * w).enumerate() {
            let r0 = blk * ROWS;
            let rows = sig.len() / w;
            for (b, s) in splits.iter().enumerate() {
                let f = s.feature as usize * n + r0;
                let col = &cols[f..f + rows];
                let (word, bit) = (b / 64, b % 64);
                let (t, dl) = (s.threshold, s.default_left);
                if w == 1 {
                    for (g, &v) in sig.iter_mut().zip(col) {
                        *g |= u64::from((v <= t) | (v.is_nan() & dl)) << bit;
                    }
                } else {
                    for (r, &v) in col.iter().enumerate() {
                        sig[r * w + word] |= u64::from((v <= t) | (v.is_nan() & dl)) << bit;
                    }
                }
            }
        }
        // Distinct patterns in order of first appearance (open addressing on a hash of the
        // words), each with the first row that has it.
        let cap = (2 * n).next_power_of_two().max(16);
        let mut slots = vec![u32::MAX; cap];
        let mut first: Vec<u32> = Vec::new();
        let mut index = vec![0u32; n];
        for r in 0..n {
            let key = &sig[r * w..(r + 1) * w];
            let mut h = 0x9E37_79B9_7F4A_7C15u64;
            for &k in key {
                h = (h ^ k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                h ^= h >> 32;
            }
            let mut slot = h as usize & (cap - 1);
            loop {
                let u = slots[slot];
                if u == u32::MAX {
                    slots[slot] = first.len() as u32;
                    index[r] = first.len() as u32;
                    first.push(r as u32);
                    break;
                }
                let f = first[u as usize] as usize;
                let same = if w == 1 {
                    sig[f] == key[0]
                } else {
                    sig[f * w..(f + 1) * w] == *key
                };
                if same {
                    index[r] = u;
                    break;
                }
                slot = (slot + 1) & (cap - 1);
            }
        }
        drop(sig);
        // Commonest patterns first: the values rows look up most sit together and stay in
        // cache while the rows add them (ties in order of first appearance).
        let mut count = vec![0u32; first.len()];
        for &u in &index {
            count[u as usize] += 1;
        }
        let mut order: Vec<u32> = (0..first.len() as u32).collect();
        order.sort_by_key(|&u| std::cmp::Reverse(count[u as usize]));
        let mut rank = vec![0u32; first.len()];
        for (k, &u) in order.iter().enumerate() {
            rank[u as usize] = k as u32;
        }
        for u in index.iter_mut() {
            *u = rank[*u as usize];
        }
        let first: Vec<u32> = order.iter().map(|&u| first[u as usize]).collect();
        // Each pattern explained once, on its first row (the same splits taken, so the same
        // values as on any other row with the pattern), eight rows at a time; the table walk
        // adds leaves in the same order for one row or eight, so the bits do not depend on it.
        let d = feats.len();
        let mut values = vec![0.0f64; first.len() * d];
        let mut rows = vec![0f32; LANES * p];
        let mut phi = vec![0.0f64; LANES * p];
        let (mut masks, mut lanes, mut buf) = (Vec::new(), Vec::new(), Vec::new());
        for (group, vals) in first.chunks(LANES).zip(values.chunks_mut(LANES * d)) {
            for (&r, x) in group.iter().zip(rows.chunks_mut(p)) {
                x.copy_from_slice(&xs[r as usize * p..(r as usize + 1) * p]);
            }
            if group.len() == LANES && !tab.fallback {
                tab.apply_lanes(&rows, p, &mut phi, &mut lanes);
            } else {
                for k in 0..group.len() {
                    let (x, ph) = (&rows[k * p..(k + 1) * p], &mut phi[k * p..(k + 1) * p]);
                    if tab.fallback {
                        tree_shap_into(tree, x, ph, &mut buf);
                    } else {
                        tab.apply_flat(x, ph, &mut masks);
                    }
                }
            }
            for (v, ph) in vals.chunks_mut(d).zip(phi.chunks_mut(p)) {
                for (v, &f) in v.iter_mut().zip(&feats) {
                    *v = ph[f as usize];
                    ph[f as usize] = 0.0;
                }
            }
        }
        Patterns {
            feats,
            index,
            values,
        }
    }
}

impl TreeExplainer<'_> {
    /// The SHAP base value (see [`GbdtModel::expected_value`]).
    pub fn expected_value(&self) -> f64 {
        self.tables.expected_value
    }

    /// Bytes held by the tables.
    pub fn table_bytes(&self) -> usize {
        self.tables.table_bytes()
    }

    /// SHAP values for one row of raw feature values (model feature order).
    pub fn shap_row(&self, row: &[f32]) -> Vec<f64> {
        self.tables
            .explain_rows(self.model, row)
            .unwrap_or_else(|_| self.model.shap_row(row))
    }

    /// SHAP values for the given rows of `data` (all if `None`), row-major, parallel over rows.
    pub fn shap(&self, data: &Dataset, rows: Option<&[usize]>) -> Result<Vec<f64>> {
        self.model.check_features(data)?;
        let all: Vec<usize>;
        let rows = match rows {
            Some(r) => r,
            None => {
                all = (0..data.n_rows()).collect();
                &all
            }
        };
        if let Some(&bad) = rows.iter().find(|&&r| r >= data.n_rows()) {
            return Err(ModelError::Shape(format!("row {bad} out of range")));
        }
        let p = self.model.feature_names.len();
        let mut xs = vec![0f32; rows.len() * p];
        xs.par_chunks_mut(p.max(1))
            .zip(rows.par_iter())
            .for_each(|(x, &r)| data.row_into(r, x));
        self.tables.explain_rows(self.model, &xs)
    }
}
