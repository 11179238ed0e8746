//! Decision trees over binned features: feature binning (shared with gradient boosting), the stored
//! [`Tree`], and a depth-first CART builder for classification (Gini) and regression (squared error).
//!
//! Each feature is cut into at most 255 quantile bins; a split "bin <= b" is stored as the float
//! threshold `edges[b]`, so prediction on raw values needs no binning and agrees exactly with training.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::table::Matrix;

/// Features cut into bins: `bins[f][row]` and the upper edges of every bin but the last.
pub struct Binned {
    pub n_rows: usize,
    pub bins: Vec<Vec<u8>>,
    pub edges: Vec<Vec<f64>>,
}

impl Binned {
    /// Bins every column of `x` into at most `max_bins` (≤ 256) quantile bins.
    pub fn new(x: &Matrix, max_bins: usize) -> Binned {
        let max_bins = max_bins.clamp(2, 256);
        let (edges, bins): (Vec<Vec<f64>>, Vec<Vec<u8>>) = (0..x.n_cols)
            .into_par_iter()
            .map(|j| {
                let column = x.column(j);
                let edges = bin_edges(&column, max_bins);
                let bins = column.iter().map(|&v| edges.partition_point(|&e| e < v) as u8).collect();
                (edges, bins)
            })
            .unzip();
        Binned { n_rows: x.n_rows, bins, edges }
    }

    pub fn n_features(&self) -> usize {
        self.bins.len()
    }
}

fn bin_edges(column: &[f64], max_bins: usize) -> Vec<f64> {
    let mut sorted = column.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut distinct = sorted.clone();
    distinct.dedup();
    if distinct.len() <= max_bins {
        return distinct.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect();
    }
    let n = sorted.len();
    let mut edges: Vec<f64> = (1..max_bins)
        .map(|b| {
            let pos = b as f64 * (n - 1) as f64 / max_bins as f64;
            let lo = pos.floor() as usize;
            let frac = pos - lo as f64;
            sorted[lo] + frac * (sorted[(lo + 1).min(n - 1)] - sorted[lo])
        })
        .collect();
    edges.dedup();
    edges
}

/// A fitted binary tree stored as parallel arrays; `feature[node] < 0` marks a leaf whose outputs are
/// `value[node * n_outputs..][..n_outputs]` (class probabilities, or one regression value).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tree {
    pub n_outputs: usize,
    pub feature: Vec<i32>,
    pub threshold: Vec<f64>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    pub value: Vec<f64>,
}

impl Tree {
    pub(crate) fn new(n_outputs: usize) -> Tree {
        Tree {
            n_outputs,
            feature: Vec::new(),
            threshold: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
            value: Vec::new(),
        }
    }

    pub(crate) fn push_leaf(&mut self, value: &[f64]) -> usize {
        self.feature.push(-1);
        self.threshold.push(0.0);
        self.left.push(0);
        self.right.push(0);
        self.value.extend_from_slice(value);
        self.feature.len() - 1
    }

    pub(crate) fn make_split(&mut self, node: usize, feature: usize, threshold: f64, left: usize, right: usize) {
        self.feature[node] = feature as i32;
        self.threshold[node] = threshold;
        self.left[node] = left as u32;
        self.right[node] = right as u32;
    }

    pub(crate) fn set_value(&mut self, node: usize, value: &[f64]) {
        self.value[node * self.n_outputs..(node + 1) * self.n_outputs].copy_from_slice(value);
    }

    /// Index of the leaf that `row` falls into.
    pub fn leaf(&self, row: &[f64]) -> usize {
        let mut node = 0;
        while self.feature[node] >= 0 {
            let f = self.feature[node] as usize;
            node = if row[f] <= self.threshold[node] { self.left[node] } else { self.right[node] } as usize;
        }
        node
    }

    pub fn predict_row(&self, row: &[f64]) -> &[f64] {
        let leaf = self.leaf(row);
        &self.value[leaf * self.n_outputs..(leaf + 1) * self.n_outputs]
    }

    pub fn n_nodes(&self) -> usize {
        self.feature.len()
    }

    pub fn depth(&self) -> usize {
        fn walk(t: &Tree, node: usize) -> usize {
            if t.feature[node] < 0 {
                0
            } else {
                1 + walk(t, t.left[node] as usize).max(walk(t, t.right[node] as usize))
            }
        }
        if self.feature.is_empty() {
            0
        } else {
            walk(self, 0)
        }
    }
}

/// Rows per block in batched prediction: a block and one tree's nodes stay in cache together.
pub(crate) const PREDICT_BLOCK: usize = 128;

#[derive(Clone, Copy)]
struct PackedNode {
    threshold: f64,
    /// Negative for a leaf, whose outputs start at `values[left]`.
    feature: i32,
    left: u32,
    right: u32,
}

/// Trees packed into one node array for prediction: a step of a traversal reads one node.
pub(crate) struct PackedTrees {
    nodes: Vec<PackedNode>,
    roots: Vec<usize>,
    values: Vec<f64>,
    n_outputs: usize,
}

impl PackedTrees {
    pub(crate) fn new(trees: &[Tree]) -> PackedTrees {
        let n_outputs = trees.first().map_or(1, |t| t.n_outputs);
        let mut packed = PackedTrees { nodes: Vec::new(), roots: Vec::new(), values: Vec::new(), n_outputs };
        for tree in trees {
            let base = packed.nodes.len() as u32;
            packed.roots.push(base as usize);
            for node in 0..tree.n_nodes() {
                packed.nodes.push(if tree.feature[node] < 0 {
                    let left = packed.values.len() as u32;
                    packed.values.extend_from_slice(&tree.value[node * n_outputs..(node + 1) * n_outputs]);
                    PackedNode { threshold: 0.0, feature: -1, left, right: 0 }
                } else {
                    PackedNode {
                        threshold: tree.threshold[node],
                        feature: tree.feature[node],
                        left: base + tree.left[node],
                        right: base + tree.right[node],
                    }
                });
            }
        }
        packed
    }

    /// Calls `f(tree, row, leaf outputs)` for every tree and every row in `rows`, tree by tree.
    pub(crate) fn for_each_leaf(
        &self,
        x: &Matrix,
        rows: std::ops::Range<usize>,
        mut f: impl FnMut(usize, usize, &[f64]),
    ) {
        for (t, &root) in self.roots.iter().enumerate() {
            for i in rows.clone() {
                let row = x.row(i);
                let mut node = self.nodes[root];
                while node.feature >= 0 {
                    let next = if row[node.feature as usize] <= node.threshold { node.left } else { node.right };
                    node = self.nodes[next as usize];
                }
                let start = node.left as usize;
                f(t, i, &self.values[start..start + self.n_outputs]);
            }
        }
    }
}

/// What a CART tree predicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target<'a> {
    Classes { y: &'a [usize], n_classes: usize },
    Values { y: &'a [f64] },
}

/// CART hyperparameters.
#[derive(Debug, Clone, Copy)]
pub struct CartParams {
    pub max_depth: usize,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    /// Features tried per split (all when ≥ the number of features).
    pub max_features: usize,
}

/// Grows a CART tree on the rows in `rows` with per-row `weights` (bootstrap counts; 1 for plain trees).
pub fn build_cart(
    binned: &Binned,
    target: Target,
    rows: Vec<u32>,
    weights: &[f64],
    params: CartParams,
    rng: &mut Rng,
) -> Tree {
    // Per-row statistics: classes → one-hot class, values → [y]; the node's impurity proxy is
    // Σ_s sum_s² / w, so a split's gain is proxy(left) + proxy(right) - proxy(node).
    let n_stats = match target {
        Target::Classes { n_classes, .. } => n_classes,
        Target::Values { .. } => 1,
    };
    let n_features = binned.n_features();
    let mut tree = Tree::new(n_stats);
    let mut rows = rows;
    let totals = |rows: &[u32]| -> (f64, usize, Vec<f64>) {
        let mut w = 0.0;
        let mut sums = vec![0.0; n_stats];
        for &r in rows {
            let r = r as usize;
            let wr = weights[r];
            w += wr;
            match target {
                Target::Classes { y, .. } => sums[y[r]] += wr,
                Target::Values { y } => sums[0] += wr * y[r],
            }
        }
        (w, rows.len(), sums)
    };
    let leaf_value = |w: f64, sums: &[f64]| -> Vec<f64> { sums.iter().map(|s| s / w.max(1e-300)).collect() };
    let (w0, _, sums0) = totals(&rows);
    tree.push_leaf(&leaf_value(w0, &sums0));
    // Stack of (node, start, end, depth).
    let mut stack = vec![(0usize, 0usize, rows.len(), 0usize)];
    let mut features: Vec<usize> = (0..n_features).collect();
    let stride = n_stats + 1;
    let mut hist = vec![0.0; 256 * stride];
    let mut counts = vec![0usize; 256];
    while let Some((node, start, end, depth)) = stack.pop() {
        let node_rows = &rows[start..end];
        let (w, n_node, sums) = totals(node_rows);
        tree.set_value(node, &leaf_value(w, &sums));
        if depth >= params.max_depth || n_node < params.min_samples_split || n_node < 2 * params.min_samples_leaf {
            continue;
        }
        let pure = match target {
            Target::Classes { .. } => sums.iter().filter(|&&s| s > 0.0).count() <= 1,
            Target::Values { y } => {
                let first = y[node_rows[0] as usize];
                node_rows.iter().all(|&r| y[r as usize] == first)
            }
        };
        if pure {
            continue;
        }
        let parent_proxy = sums.iter().map(|s| s * s).sum::<f64>() / w;
        let mut best: Option<(f64, usize, usize)> = None; // (gain, feature, bin)
                                                          // Partial Fisher-Yates: sample max_features distinct features; keep going past them while no
                                                          // valid split was found, as scikit-learn does.
        let k = params.max_features.min(n_features);
        for t in 0..n_features {
            if t >= k && best.is_some() {
                break;
            }
            let pick = t + rng.below(n_features - t);
            features.swap(t, pick);
            let f = features[t];
            let col = &binned.bins[f];
            let n_bins = binned.edges[f].len() + 1;
            hist[..n_bins * stride].iter_mut().for_each(|v| *v = 0.0);
            counts[..n_bins].iter_mut().for_each(|v| *v = 0);
            for &r in node_rows {
                let r = r as usize;
                let b = col[r] as usize;
                let wr = weights[r];
                let h = &mut hist[b * stride..(b + 1) * stride];
                h[0] += wr;
                match target {
                    Target::Classes { y, .. } => h[1 + y[r]] += wr,
                    Target::Values { y } => h[1] += wr * y[r],
                }
                counts[b] += 1;
            }
            let mut left = vec![0.0; stride];
            let mut n_left = 0usize;
            for b in 0..n_bins - 1 {
                n_left += counts[b];
                for s in 0..stride {
                    left[s] += hist[b * stride + s];
                }
                if counts[b] == 0 || n_left < params.min_samples_leaf {
                    continue;
                }
                let n_right = n_node - n_left;
                if n_right < params.min_samples_leaf {
                    break;
                }
                let wl = left[0];
                let wr = w - wl;
                if wl <= 0.0 || wr <= 0.0 {
                    continue;
                }
                let mut pl = 0.0;
                let mut pr = 0.0;
                for s in 0..n_stats {
                    let l = left[1 + s];
                    let r = sums[s] - l;
                    pl += l * l;
                    pr += r * r;
                }
                let gain = pl / wl + pr / wr - parent_proxy;
                if gain > 1e-12 * w && best.is_none_or(|(g, _, _)| gain > g) {
                    best = Some((gain, f, b));
                }
            }
        }
        let Some((_, f, b)) = best else { continue };
        let col = &binned.bins[f];
        let mid = partition(&mut rows[start..end], |r| col[r as usize] as usize <= b) + start;
        let l = tree.push_leaf(&vec![0.0; n_stats]);
        let r = tree.push_leaf(&vec![0.0; n_stats]);
        tree.make_split(node, f, binned.edges[f][b], l, r);
        stack.push((r, mid, end, depth + 1));
        stack.push((l, start, mid, depth + 1));
    }
    tree
}

/// Stable in-place partition; returns the number of elements for which `pred` holds (now in front).
pub(crate) fn partition(rows: &mut [u32], pred: impl Fn(u32) -> bool) -> usize {
    let mut right = Vec::new();
    let mut n_left = 0;
    for i in 0..rows.len() {
        let r = rows[i];
        if pred(r) {
            rows[n_left] = r;
            n_left += 1;
        } else {
            right.push(r);
        }
    }
    rows[n_left..].copy_from_slice(&right);
    n_left
}

/// Parses `max_features`: `sqrt`, `log2`, `all`, an integer, or a fraction in (0, 1].
pub fn resolve_max_features(text: &str, n_features: usize) -> Option<usize> {
    let n = n_features as f64;
    let k = match text {
        "sqrt" => n.sqrt().floor(),
        "log2" => n.log2().floor(),
        "all" | "none" | "" => n,
        other => {
            let v: f64 = other.parse().ok()?;
            if v > 0.0 && v <= 1.0 && other.contains('.') {
                (v * n).floor()
            } else if v >= 1.0 && v.fract() == 0.0 {
                v
            } else {
                return None;
            }
        }
    };
    Some((k as usize).clamp(1, n_features.max(1)))
}
