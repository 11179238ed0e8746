//! Histogram-based gradient-boosted trees in the style of LightGBM and scikit-learn's
//! `HistGradientBoosting*`: quantile-binned features, leaf-wise growth up to `max_leaf_nodes`,
//! gradient/hessian histograms built in parallel over features, the sibling histogram obtained by
//! subtraction, Newton leaf values, and optional early stopping on a held-out validation loss.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::logistic::{sigmoid, softmax};
use super::tree::{partition, Binned, PackedTrees, Tree, PREDICT_BLOCK};
use crate::rng::Rng;
use crate::table::Matrix;

/// The loss being boosted.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GbtLoss {
    SquaredError,
    BinaryLogLoss,
    MultinomialLogLoss,
}

/// A fitted ensemble: `trees[iteration * n_outputs + k]` adds to raw output `k`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gbt {
    pub loss: GbtLoss,
    pub n_outputs: usize,
    pub baseline: Vec<f64>,
    pub trees: Vec<Tree>,
    pub n_iter: usize,
}

/// Hyperparameters (defaults as in scikit-learn).
#[derive(Debug, Clone, Copy)]
pub struct GbtParams {
    pub max_iter: usize,
    pub learning_rate: f64,
    pub max_leaf_nodes: usize,
    /// 0 = unlimited.
    pub max_depth: usize,
    pub min_samples_leaf: usize,
    pub l2_regularization: f64,
    pub max_bins: usize,
    pub early_stopping: bool,
    pub validation_fraction: f64,
    pub n_iter_no_change: usize,
    pub tol: f64,
    pub seed: u64,
}

#[derive(Clone, Copy, Default)]
struct HBin {
    g: f64,
    h: f64,
    n: u32,
}

#[derive(Clone, Copy)]
struct SplitInfo {
    gain: f64,
    feature: usize,
    bin: usize,
}

struct Leaf {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    sum_g: f64,
    sum_h: f64,
    hist: Vec<HBin>,
    split: Option<SplitInfo>,
}

const N_BINS: usize = 256;

impl Gbt {
    /// Fits on `x`; `y` holds class indices (as f64) for log losses and values for squared error.
    pub fn fit(x: &Matrix, y: &[f64], loss: GbtLoss, n_classes: usize, params: GbtParams) -> Gbt {
        let n_outputs = if loss == GbtLoss::MultinomialLogLoss { n_classes } else { 1 };
        // Hold out a validation part for early stopping (stratified for classification).
        let (train_rows, val_rows) = if params.early_stopping {
            holdout(y, loss != GbtLoss::SquaredError, params.validation_fraction, params.seed)
        } else {
            ((0..x.n_rows).collect(), Vec::new())
        };
        let xt = x.select_rows(&train_rows);
        let yt: Vec<f64> = train_rows.iter().map(|&i| y[i]).collect();
        let xv = x.select_rows(&val_rows);
        let yv: Vec<f64> = val_rows.iter().map(|&i| y[i]).collect();
        let binned = Binned::new(&xt, params.max_bins.min(255));
        let n = xt.n_rows;
        let baseline = baseline(&yt, loss, n_outputs);
        let mut raw: Vec<f64> = (0..n).flat_map(|_| baseline.iter().copied()).collect();
        let mut raw_val: Vec<f64> = (0..xv.n_rows).flat_map(|_| baseline.iter().copied()).collect();
        let mut gradients = vec![0.0; n * n_outputs];
        let mut hessians = vec![0.0; n * n_outputs];
        let mut trees = Vec::new();
        let mut scores = Vec::new();
        if params.early_stopping {
            scores.push(-mean_loss(&raw_val, &yv, loss, n_outputs));
        }
        let mut n_iter = 0;
        for _ in 0..params.max_iter {
            compute_gradients(&raw, &yt, loss, n_outputs, &mut gradients, &mut hessians);
            for k in 0..n_outputs {
                let g: Vec<f64> = (0..n).map(|i| gradients[i * n_outputs + k]).collect();
                let h: Vec<f64> = (0..n).map(|i| hessians[i * n_outputs + k]).collect();
                let (tree, leaves) = grow(&binned, &g, &h, &params);
                for (node, rows) in leaves {
                    let v = tree.value[node];
                    for r in rows {
                        raw[r as usize * n_outputs + k] += v;
                    }
                }
                for i in 0..xv.n_rows {
                    raw_val[i * n_outputs + k] += tree.predict_row(xv.row(i))[0];
                }
                trees.push(tree);
            }
            n_iter += 1;
            if params.early_stopping {
                scores.push(-mean_loss(&raw_val, &yv, loss, n_outputs));
                let m = params.n_iter_no_change;
                if scores.len() > m {
                    let reference = scores[scores.len() - m - 1] + params.tol;
                    if !scores[scores.len() - m..].iter().any(|&s| s > reference) {
                        break;
                    }
                }
            }
        }
        Gbt { loss, n_outputs, baseline, trees, n_iter }
    }

    /// Raw scores (n × outputs).
    pub fn raw(&self, x: &Matrix) -> Matrix {
        let k = self.n_outputs;
        let packed = PackedTrees::new(&self.trees);
        let mut data: Vec<f64> = (0..x.n_rows).flat_map(|_| self.baseline.iter().copied()).collect();
        data.par_chunks_mut(PREDICT_BLOCK * k).enumerate().for_each(|(b, out)| {
            let start = b * PREDICT_BLOCK;
            packed.for_each_leaf(x, start..start + out.len() / k, |t, i, v| out[(i - start) * k + t % k] += v[0]);
        });
        Matrix::new(x.n_rows, k, data)
    }

    /// Class probabilities for log losses (n × classes), values for squared error (n × 1).
    pub fn predict(&self, x: &Matrix) -> Matrix {
        let raw = self.raw(x);
        match self.loss {
            GbtLoss::SquaredError => raw,
            GbtLoss::BinaryLogLoss => {
                let data = raw.data.iter().flat_map(|&z| {
                    let p = sigmoid(z);
                    [1.0 - p, p]
                });
                Matrix::new(x.n_rows, 2, data.collect())
            }
            GbtLoss::MultinomialLogLoss => {
                let data = (0..raw.n_rows).flat_map(|i| softmax(raw.row(i))).collect();
                Matrix::new(x.n_rows, self.n_outputs, data)
            }
        }
    }
}

fn holdout(y: &[f64], stratify: bool, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let mut groups: std::collections::BTreeMap<i64, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, &v) in y.iter().enumerate() {
        groups.entry(if stratify { v as i64 } else { 0 }).or_default().push(i);
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for rows in groups.values_mut() {
        rng.shuffle(rows);
        let n_val = ((rows.len() as f64) * fraction).ceil() as usize;
        val.extend_from_slice(&rows[..n_val.min(rows.len())]);
        train.extend_from_slice(&rows[n_val.min(rows.len())..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

fn baseline(y: &[f64], loss: GbtLoss, n_outputs: usize) -> Vec<f64> {
    let n = y.len().max(1) as f64;
    match loss {
        GbtLoss::SquaredError => vec![y.iter().sum::<f64>() / n],
        GbtLoss::BinaryLogLoss => {
            let p = (y.iter().sum::<f64>() / n).clamp(1e-12, 1.0 - 1e-12);
            vec![(p / (1.0 - p)).ln()]
        }
        GbtLoss::MultinomialLogLoss => {
            let mut counts = vec![0.0; n_outputs];
            for &v in y {
                counts[v as usize] += 1.0;
            }
            counts.iter().map(|c| (c / n).clamp(1e-12, 1.0).ln()).collect()
        }
    }
}

fn compute_gradients(raw: &[f64], y: &[f64], loss: GbtLoss, k: usize, g: &mut [f64], h: &mut [f64]) {
    g.par_chunks_mut(k).zip(h.par_chunks_mut(k)).enumerate().for_each(|(i, (gi, hi))| match loss {
        GbtLoss::SquaredError => {
            gi[0] = raw[i] - y[i];
            hi[0] = 1.0;
        }
        GbtLoss::BinaryLogLoss => {
            let p = sigmoid(raw[i]);
            gi[0] = p - y[i];
            hi[0] = p * (1.0 - p);
        }
        GbtLoss::MultinomialLogLoss => {
            let p = softmax(&raw[i * k..(i + 1) * k]);
            for c in 0..k {
                let t = if y[i] as usize == c { 1.0 } else { 0.0 };
                gi[c] = p[c] - t;
                hi[c] = p[c] * (1.0 - p[c]);
            }
        }
    });
}

fn mean_loss(raw: &[f64], y: &[f64], loss: GbtLoss, k: usize) -> f64 {
    let n = y.len().max(1) as f64;
    let total: f64 = (0..y.len())
        .map(|i| match loss {
            GbtLoss::SquaredError => 0.5 * (raw[i] - y[i]).powi(2),
            GbtLoss::BinaryLogLoss => super::logistic::softplus(raw[i]) - y[i] * raw[i],
            GbtLoss::MultinomialLogLoss => {
                let z = &raw[i * k..(i + 1) * k];
                let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                lse - z[y[i] as usize]
            }
        })
        .sum();
    total / n
}

fn build_histogram(binned: &Binned, rows: &[u32], g: &[f64], h: &[f64]) -> Vec<HBin> {
    let n_features = binned.n_features();
    let mut hist = vec![HBin::default(); n_features * N_BINS];
    let fill = |(f, out): (usize, &mut [HBin])| {
        let col = &binned.bins[f];
        for &r in rows {
            let r = r as usize;
            let bin = &mut out[col[r] as usize];
            bin.g += g[r];
            bin.h += h[r];
            bin.n += 1;
        }
    };
    if rows.len() * n_features > 32 * 1024 {
        hist.par_chunks_mut(N_BINS).enumerate().for_each(fill);
    } else {
        hist.chunks_mut(N_BINS).enumerate().for_each(fill);
    }
    hist
}

fn best_split(binned: &Binned, hist: &[HBin], sum_g: f64, sum_h: f64, count: usize, params: &GbtParams) -> Option<SplitInfo> {
    let lambda = params.l2_regularization;
    let parent = sum_g * sum_g / (sum_h + lambda);
    let min_leaf = params.min_samples_leaf.max(1);
    let min_hessian = 1e-3;
    (0..binned.n_features())
        .filter_map(|f| {
            let n_bins = binned.edges[f].len() + 1;
            let bins = &hist[f * N_BINS..f * N_BINS + n_bins];
            let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0usize);
            let mut best: Option<SplitInfo> = None;
            for (b, bin) in bins.iter().enumerate().take(n_bins - 1) {
                gl += bin.g;
                hl += bin.h;
                nl += bin.n as usize;
                if nl < min_leaf || hl < min_hessian {
                    continue;
                }
                let nr = count - nl;
                let hr = sum_h - hl;
                if nr < min_leaf || hr < min_hessian {
                    break;
                }
                let gr = sum_g - gl;
                let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
                if gain > 1e-10 && best.is_none_or(|s| gain > s.gain) {
                    best = Some(SplitInfo { gain, feature: f, bin: b });
                }
            }
            best
        })
        .max_by(|a, b| a.gain.total_cmp(&b.gain).then(b.feature.cmp(&a.feature)))
}

/// Grows one tree leaf-wise; returns it with the training rows of every leaf.
fn grow(binned: &Binned, g: &[f64], h: &[f64], params: &GbtParams) -> (Tree, Vec<(usize, Vec<u32>)>) {
    let n = binned.n_rows;
    let mut rows: Vec<u32> = (0..n as u32).collect();
    let mut tree = Tree::new(1);
    let root_node = tree.push_leaf(&[0.0]);
    let sum_g: f64 = g.iter().sum();
    let sum_h: f64 = h.iter().sum();
    let hist = build_histogram(binned, &rows, g, h);
    let split = best_split(binned, &hist, sum_g, sum_h, n, params);
    let mut leaves = vec![Leaf { node: root_node, start: 0, end: n, depth: 0, sum_g, sum_h, hist, split }];
    let can_split = |leaf: &Leaf| params.max_depth == 0 || leaf.depth < params.max_depth;
    while leaves.len() < params.max_leaf_nodes.max(2) {
        let pick = leaves
            .iter()
            .enumerate()
            .filter(|(_, l)| l.split.is_some() && can_split(l))
            .max_by(|a, b| a.1.split.map_or(0.0, |s| s.gain).total_cmp(&b.1.split.map_or(0.0, |s| s.gain)))
            .map(|(i, _)| i);
        let Some(i) = pick else { break };
        let parent = leaves.swap_remove(i);
        let Some(split) = parent.split else { break };
        let col = &binned.bins[split.feature];
        let mid = parent.start + partition(&mut rows[parent.start..parent.end], |r| col[r as usize] as usize <= split.bin);
        let (left_rows, right_rows) = (&rows[parent.start..mid], &rows[mid..parent.end]);
        let left_small = left_rows.len() <= right_rows.len();
        let small_rows = if left_small { left_rows } else { right_rows };
        let small_hist = build_histogram(binned, small_rows, g, h);
        let mut large_hist = parent.hist;
        for (p, s) in large_hist.iter_mut().zip(&small_hist) {
            p.g -= s.g;
            p.h -= s.h;
            p.n -= s.n;
        }
        let (left_hist, right_hist) = if left_small { (small_hist, large_hist) } else { (large_hist, small_hist) };
        let sum = |rows: &[u32]| rows.iter().fold((0.0, 0.0), |(a, b), &r| (a + g[r as usize], b + h[r as usize]));
        let (lg, lh) = sum(left_rows);
        let (rg, rh) = (parent.sum_g - lg, parent.sum_h - lh);
        let l_node = tree.push_leaf(&[0.0]);
        let r_node = tree.push_leaf(&[0.0]);
        tree.make_split(parent.node, split.feature, binned.edges[split.feature][split.bin], l_node, r_node);
        let (n_left, n_right) = (mid - parent.start, parent.end - mid);
        let l_split = best_split(binned, &left_hist, lg, lh, n_left, params);
        let r_split = best_split(binned, &right_hist, rg, rh, n_right, params);
        let depth = parent.depth + 1;
        leaves.push(Leaf { node: l_node, start: parent.start, end: mid, depth, sum_g: lg, sum_h: lh, hist: left_hist, split: l_split });
        leaves.push(Leaf { node: r_node, start: mid, end: parent.end, depth, sum_g: rg, sum_h: rh, hist: right_hist, split: r_split });
    }
    let mut leaf_rows = Vec::with_capacity(leaves.len());
    for leaf in leaves {
        let value = -params.learning_rate * leaf.sum_g / (leaf.sum_h + params.l2_regularization).max(1e-12);
        tree.set_value(leaf.node, &[value]);
        leaf_rows.push((leaf.node, rows[leaf.start..leaf.end].to_vec()));
    }
    (tree, leaf_rows)
}
