//! The gradient-boosted tree model as stored in the artefact, with prediction.
//!
//! A model is `base_score + sum_t tree_t(x)` on the log-odds scale. Each tree is a flat list of
//! nodes, the root first; a split sends a row **left when `x[feature] <= threshold`**, right when
//! `x[feature] > threshold`, and a missing value (`NaN`) left when `default_left` is true. The
//! threshold is a raw `f32` feature value, so applying a model needs nothing but this file: no bin
//! mapper, no external crate. Leaf values already include the learning rate. Every node records the
//! training hessian sum (`cover`, what TreeSHAP weights paths by, as in XGBoost) and row count.

use crate::data::Dataset;
use crate::error::{ModelError, Result};
use crate::metrics::sigmoid;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// An internal node: a binary test on one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Feature index (position in the model's `feature_names`).
    pub feature: u32,
    /// Go left when `x <= threshold` (a raw feature value; `f32::MAX` means "every observed
    /// value left, missing right" - features are finite, see [`crate::Dataset`]).
    pub threshold: f32,
    /// Where a missing value goes: learned in training as the direction with the higher gain (or,
    /// if the node saw no missing value, the child with the larger hessian sum).
    pub default_left: bool,
    /// Index of the left child in the tree's node list.
    pub left: u32,
    /// Index of the right child in the tree's node list.
    pub right: u32,
    /// Split gain (reduction in the second-order loss approximation) - for feature importance.
    pub gain: f64,
    /// Sum of training hessians reaching this node.
    pub cover: f64,
    /// Training rows reaching this node.
    pub count: u64,
}

/// A terminal node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    /// Contribution to the log-odds (learning rate already applied).
    pub value: f64,
    /// Sum of training hessians reaching this leaf.
    pub cover: f64,
    /// Training rows reaching this leaf.
    pub count: u64,
}

/// A tree node (serialised as `{"split": {...}}` or `{"leaf": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// Internal node.
    Split(Split),
    /// Terminal node.
    Leaf(Leaf),
}

impl Node {
    /// Hessian sum (TreeSHAP weight) of the node.
    pub fn cover(&self) -> f64 {
        match self {
            Node::Split(s) => s.cover,
            Node::Leaf(l) => l.cover,
        }
    }
}

/// One regression tree: nodes with the root at index 0 and every child after its parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes (root first).
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The tree's output for one row of raw feature values.
    #[inline]
    pub fn predict_row(&self, row: &[f32]) -> f64 {
        let mut i = 0usize;
        loop {
            match &self.nodes[i] {
                Node::Leaf(l) => return l.value,
                Node::Split(s) => {
                    let v = row[s.feature as usize];
                    let left = if v.is_nan() {
                        s.default_left
                    } else {
                        v <= s.threshold
                    };
                    i = if left { s.left } else { s.right } as usize;
                }
            }
        }
    }

    /// Index of the leaf reached by `row`.
    pub fn leaf_index(&self, row: &[f32]) -> usize {
        let mut i = 0usize;
        loop {
            match &self.nodes[i] {
                Node::Leaf(_) => return i,
                Node::Split(s) => {
                    let v = row[s.feature as usize];
                    let left = if v.is_nan() {
                        s.default_left
                    } else {
                        v <= s.threshold
                    };
                    i = if left { s.left } else { s.right } as usize;
                }
            }
        }
    }

    /// Maximum number of splits on a root-to-leaf path.
    pub fn depth(&self) -> usize {
        fn rec(t: &Tree, i: usize) -> usize {
            match &t.nodes[i] {
                Node::Leaf(_) => 0,
                Node::Split(s) => 1 + rec(t, s.left as usize).max(rec(t, s.right as usize)),
            }
        }
        if self.nodes.is_empty() {
            0
        } else {
            rec(self, 0)
        }
    }

    /// Expected output under the training distribution as TreeSHAP defines it: leaf values
    /// weighted by `cover / root cover`.
    pub fn expected_value(&self) -> f64 {
        let root = self.nodes.first().map_or(0.0, Node::cover);
        if root <= 0.0 {
            return 0.0;
        }
        self.nodes
            .iter()
            .map(|n| match n {
                Node::Leaf(l) => l.value * l.cover / root,
                Node::Split(_) => 0.0,
            })
            .sum()
    }

    /// Checks that the node list is a proper tree over `n_features` features: children in range and
    /// after their parent (so no cycles), every node but the root reached exactly once, finite values.
    pub fn validate(&self, n_features: usize) -> Result<()> {
        let n = self.nodes.len();
        if n == 0 {
            return Err(ModelError::InvalidModel("empty tree".into()));
        }
        let mut seen = vec![false; n];
        for (i, node) in self.nodes.iter().enumerate() {
            match node {
                Node::Split(s) => {
                    if s.feature as usize >= n_features {
                        return Err(ModelError::InvalidModel(format!(
                            "node {i}: feature {} out of range",
                            s.feature
                        )));
                    }
                    if s.threshold.is_nan() {
                        return Err(ModelError::InvalidModel(format!("node {i}: NaN threshold")));
                    }
                    for c in [s.left as usize, s.right as usize] {
                        if c <= i || c >= n || seen[c] {
                            return Err(ModelError::InvalidModel(format!(
                                "node {i}: bad child {c}"
                            )));
                        }
                        seen[c] = true;
                    }
                }
                Node::Leaf(l) => {
                    if !l.value.is_finite() {
                        return Err(ModelError::InvalidModel(format!(
                            "node {i}: non-finite leaf value"
                        )));
                    }
                }
            }
        }
        if seen.iter().skip(1).any(|s| !s) {
            return Err(ModelError::InvalidModel("unreachable node".into()));
        }
        Ok(())
    }
}

/// A node compiled for batch prediction: a leaf has both children pointing at itself.
#[derive(Debug, Clone, Copy)]
struct CNode {
    threshold: f32,
    feature: u32,
    left: u32,
    right: u32,
    default_left: bool,
    value: f64,
}

fn compile(t: &Tree) -> Vec<CNode> {
    t.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| match n {
            Node::Split(s) => CNode {
                threshold: s.threshold,
                feature: s.feature,
                left: s.left,
                right: s.right,
                default_left: s.default_left,
                value: 0.0,
            },
            Node::Leaf(l) => CNode {
                threshold: 0.0,
                feature: 0,
                left: i as u32,
                right: i as u32,
                default_left: false,
                value: l.value,
            },
        })
        .collect()
}

/// A model's trees compiled to compact nodes whose leaves point to themselves: eight rows descend
/// a tree in lockstep for `depth` branch-free steps (no mispredicted branches, eight independent
/// loads in flight), tree by tree over a block of rows, so a tree's nodes stay in cache.
#[derive(Debug, Clone)]
pub struct CompiledTrees {
    base_score: f64,
    trees: Vec<(Vec<CNode>, usize)>,
}

impl CompiledTrees {
    /// Log-odds of rows of raw feature values (row-major, `p` features, the model's order) into
    /// `out` (one per row): each row summed over the trees in order from the base score, the
    /// same bits as [`GbdtModel::margin_row`].
    pub fn margins_into(&self, rows: &[f32], p: usize, out: &mut [f64]) {
        const L: usize = 8;
        let m = out.len().min(rows.len() / p.max(1));
        out.fill(self.base_score);
        for (nodes, depth) in &self.trees {
            let mut start = 0;
            while start < m {
                let k = L.min(m - start);
                let mut idx = [0usize; L];
                for _ in 0..*depth {
                    for (r, ix) in idx.iter_mut().enumerate().take(k) {
                        let nd = &nodes[*ix];
                        let v = rows[(start + r) * p + nd.feature as usize];
                        let left = (v <= nd.threshold) | (v.is_nan() & nd.default_left);
                        *ix = if left { nd.left } else { nd.right } as usize;
                    }
                }
                for (r, ix) in idx.iter().enumerate().take(k) {
                    out[start + r] += nodes[*ix].value;
                }
                start += k;
            }
        }
    }
}

/// A fitted gradient-boosted tree ensemble for a binary outcome (log-odds scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtModel {
    /// Feature names in the order the trees index them.
    pub feature_names: Vec<String>,
    /// Initial log-odds (the training event rate's logit).
    pub base_score: f64,
    /// The trees, in boosting order.
    pub trees: Vec<Tree>,
}

impl GbdtModel {
    /// Validates every tree (see [`Tree::validate`]) and the base score.
    pub fn validate(&self) -> Result<()> {
        if !self.base_score.is_finite() {
            return Err(ModelError::InvalidModel("non-finite base score".into()));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            tree.validate(self.feature_names.len())
                .map_err(|e| ModelError::InvalidModel(format!("tree {t}: {e}")))?;
        }
        Ok(())
    }

    /// Log-odds for one row of raw feature values (model feature order).
    pub fn margin_row(&self, row: &[f32]) -> f64 {
        let mut s = self.base_score;
        for t in &self.trees {
            s += t.predict_row(row);
        }
        s
    }

    pub(crate) fn check_features(&self, data: &Dataset) -> Result<()> {
        if data.feature_names() != self.feature_names.as_slice() {
            return Err(ModelError::FeatureMismatch(format!(
                "model has {} features, table has {} (or names/order differ)",
                self.feature_names.len(),
                data.n_features()
            )));
        }
        Ok(())
    }

    /// Log-odds for every row (parallel over blocks of rows; each row summed over trees in order,
    /// exactly as [`GbdtModel::margin_row`], so results do not depend on the thread count). See
    /// [`CompiledTrees`].
    pub fn predict_margin(&self, data: &Dataset) -> Result<Vec<f64>> {
        self.check_features(data)?;
        let p = data.n_features();
        let compiled = self.compile();
        let mut out = vec![0.0f64; data.n_rows()];
        const B: usize = 256;
        out.par_chunks_mut(B).enumerate().for_each(|(b, o)| {
            let lo = b * B;
            let m = o.len();
            let mut rows = vec![0f32; m * p];
            for j in 0..p {
                let col = &data.column(j)[lo..lo + m];
                for (i, &v) in col.iter().enumerate() {
                    rows[i * p + j] = v;
                }
            }
            compiled.margins_into(&rows, p, o);
        });
        Ok(out)
    }

    /// The trees compiled for applying them to blocks of rows ([`CompiledTrees`]).
    pub fn compile(&self) -> CompiledTrees {
        CompiledTrees {
            base_score: self.base_score,
            trees: self.trees.iter().map(|t| (compile(t), t.depth())).collect(),
        }
    }

    /// Event probabilities for every row.
    pub fn predict_proba(&self, data: &Dataset) -> Result<Vec<f64>> {
        Ok(self
            .predict_margin(data)?
            .into_par_iter()
            .map(sigmoid)
            .collect())
    }

    /// Total split gain per feature (a global importance; SHAP gives per-patient attributions).
    pub fn gain_importance(&self) -> Vec<f64> {
        let mut imp = vec![0.0; self.feature_names.len()];
        for t in &self.trees {
            for n in &t.nodes {
                if let Node::Split(s) = n {
                    imp[s.feature as usize] += s.gain;
                }
            }
        }
        imp
    }
}
