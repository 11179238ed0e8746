//! Histogram-based gradient-boosted trees in the style of LightGBM and scikit-learn's
//! `HistGradientBoosting*`: quantile-binned features, leaf-wise growth up to `max_leaf_nodes`,
//! gradient/hessian histograms built in parallel over features, the sibling histogram obtained by
//! subtraction, Newton leaf values, and optional early stopping on a held-out validation loss.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::logistic::{sigmoid, softmax};
use super::tree::{Binned, PackedTrees, Tree, PREDICT_BLOCK};
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

impl HBin {
    #[inline]
    fn add(&mut self, gh: &GradHess) {
        self.g += f64::from(gh[0]);
        self.h += f64::from(gh[1]);
        self.n += 1;
    }
}

#[derive(Clone, Copy)]
struct SplitInfo {
    gain: f64,
    feature: usize,
    bin: usize,
    /// Gradient and hessian sums of the rows going left.
    left_g: f64,
    left_h: f64,
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
        // Gradient pairs of every row and output (row-major), and one output's column of them.
        let mut all_gh: Vec<GradHess> = vec![[0.0; 2]; n * n_outputs];
        let mut gh: Vec<GradHess> = if n_outputs > 1 { vec![[0.0; 2]; n] } else { Vec::new() };
        let mut ws = Workspace::new(n, binned.n_features());
        let mut trees = Vec::new();
        let mut scores = Vec::new();
        if params.early_stopping {
            scores.push(-mean_loss(&raw_val, &yv, loss, n_outputs));
        }
        let mut n_iter = 0;
        for _ in 0..params.max_iter {
            compute_gradients(&raw, &yt, loss, n_outputs, &mut all_gh);
            for k in 0..n_outputs {
                let gh = if n_outputs == 1 {
                    &all_gh
                } else {
                    gh.iter_mut().zip(all_gh.chunks(n_outputs)).for_each(|(pair, row)| *pair = row[k]);
                    &gh
                };
                let (tree, leaves) = grow(&binned, gh, &params, &mut ws);
                for (node, span) in leaves {
                    let v = tree.value[node];
                    for &r in &ws.rows[span] {
                        raw[r as usize * n_outputs + k] += v;
                    }
                }
                raw_val
                    .par_chunks_mut(n_outputs)
                    .enumerate()
                    .with_min_len(512)
                    .for_each(|(i, out)| out[k] += tree.predict_row(xv.row(i))[0]);
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

/// Gradient and hessian of the loss for every row and output (`out[i * k + c]`), in f32 as
/// scikit-learn keeps them; sums over them are taken in f64.
fn compute_gradients(raw: &[f64], y: &[f64], loss: GbtLoss, k: usize, out: &mut [GradHess]) {
    const ROWS: usize = 4096;
    out.par_chunks_mut(ROWS * k).enumerate().for_each(|(chunk, out)| {
        for (t, pairs) in out.chunks_mut(k).enumerate() {
            let i = chunk * ROWS + t;
            match loss {
                GbtLoss::SquaredError => pairs[0] = [(raw[i] - y[i]) as f32, 1.0],
                GbtLoss::BinaryLogLoss => {
                    let p = sigmoid(raw[i]);
                    pairs[0] = [(p - y[i]) as f32, (p * (1.0 - p)) as f32];
                }
                GbtLoss::MultinomialLogLoss => {
                    let p = softmax(&raw[i * k..(i + 1) * k]);
                    for (c, (pair, p)) in pairs.iter_mut().zip(p).enumerate() {
                        let target = if y[i] as usize == c { 1.0 } else { 0.0 };
                        *pair = [(p - target) as f32, (p * (1.0 - p)) as f32];
                    }
                }
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

/// Gradient and hessian of one sample, side by side.
type GradHess = [f32; 2];

/// Buffers reused by every tree of one fit: histograms (a node's histogram becomes its larger child's by
/// subtraction, and those of finished leaves go back to `free`), the row order and the gradient pairs
/// permuted along with it (so every node's pairs are one contiguous slice), and partition scratch.
struct Workspace {
    hist_len: usize,
    free: Vec<Vec<HBin>>,
    rows: Vec<u32>,
    gh: Vec<GradHess>,
    scratch: Scratch,
}

impl Workspace {
    fn new(n_rows: usize, n_features: usize) -> Workspace {
        Workspace {
            hist_len: n_features * N_BINS,
            free: Vec::new(),
            rows: Vec::with_capacity(n_rows),
            gh: Vec::with_capacity(n_rows),
            scratch: Scratch {
                left_rows: vec![0; n_rows],
                left_gh: vec![[0.0; 2]; n_rows],
                right_rows: vec![0; n_rows],
                right_gh: vec![[0.0; 2]; n_rows],
            },
        }
    }

    fn take_hist(&mut self) -> Vec<HBin> {
        self.free.pop().unwrap_or_else(|| vec![HBin::default(); self.hist_len])
    }
}

/// Gradient/hessian sums and row count of a node.
#[derive(Clone, Copy)]
struct NodeSums {
    g: f64,
    h: f64,
    n: usize,
}

/// Below this many (row × feature) visits a node's histogram is built on the calling thread.
const PARALLEL_WORK: usize = 32 * 1024;

/// Features are handled two at a time: one pass over a node's rows feeds two independent histograms.
const FEATURES_PER_TASK: usize = 2;

/// Adds the rows of a node to the histograms of features `first..` (one `N_BINS` slice each in `out`).
/// `rows == None` means every row in order (the root); `gh[i]` is the gradient pair of the i-th row.
fn fill_histograms(binned: &Binned, first: usize, rows: Option<&[u32]>, gh: &[GradHess], out: &mut [HBin]) {
    let (h0, rest) = out.split_at_mut(N_BINS.min(out.len()));
    let Ok(h0) = <&mut [HBin; N_BINS]>::try_from(h0) else { return };
    let c0 = &binned.bins[first];
    h0[..binned.edges[first].len() + 1].fill(HBin::default());
    match <&mut [HBin; N_BINS]>::try_from(rest) {
        Ok(h1) => {
            let c1 = &binned.bins[first + 1];
            h1[..binned.edges[first + 1].len() + 1].fill(HBin::default());
            match rows {
                None => c0.iter().zip(c1).zip(gh).for_each(|((&b0, &b1), p)| {
                    h0[b0 as usize].add(p);
                    h1[b1 as usize].add(p);
                }),
                Some(rows) => rows.iter().zip(gh).for_each(|(&r, p)| {
                    h0[c0[r as usize] as usize].add(p);
                    h1[c1[r as usize] as usize].add(p);
                }),
            }
        }
        Err(_) => match rows {
            None => c0.iter().zip(gh).for_each(|(&b, p)| h0[b as usize].add(p)),
            Some(rows) => rows.iter().zip(gh).for_each(|(&r, p)| h0[c0[r as usize] as usize].add(p)),
        },
    }
}

/// The better of two candidate splits: higher gain, then the lower feature index.
fn better(a: Option<SplitInfo>, b: Option<SplitInfo>) -> Option<SplitInfo> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.gain > x.gain || (y.gain == x.gain && y.feature < x.feature) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The best split among the features whose histograms start at `first` in `hist`.
fn best_split_of(
    binned: &Binned,
    first: usize,
    hist: &[HBin],
    node: NodeSums,
    params: &GbtParams,
) -> Option<SplitInfo> {
    hist.chunks(N_BINS).enumerate().map(|(i, bins)| best_bin(binned, first + i, bins, node, params)).fold(None, better)
}

/// The best threshold of feature `f` given its histogram in the node.
fn best_bin(binned: &Binned, f: usize, hist: &[HBin], node: NodeSums, params: &GbtParams) -> Option<SplitInfo> {
    let lambda = params.l2_regularization;
    let parent = node.g * node.g / (node.h + lambda);
    let min_leaf = params.min_samples_leaf.max(1);
    let min_hessian = 1e-3;
    let n_bins = binned.edges[f].len() + 1;
    let (mut gl, mut hl, mut nl) = (0.0, 0.0, 0usize);
    let mut best: Option<SplitInfo> = None;
    for (b, bin) in hist[..n_bins - 1].iter().enumerate() {
        gl += bin.g;
        hl += bin.h;
        nl += bin.n as usize;
        if nl < min_leaf || hl < min_hessian {
            continue;
        }
        let hr = node.h - hl;
        if node.n - nl < min_leaf || hr < min_hessian {
            break;
        }
        let gr = node.g - gl;
        let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
        if gain > 1e-10 && best.is_none_or(|s| gain > s.gain) {
            best = Some(SplitInfo { gain, feature: f, bin: b, left_g: gl, left_h: hl });
        }
    }
    best
}

/// Builds the root's histogram into `hist` and returns its best split, in parallel over features.
fn root_split(
    binned: &Binned,
    gh: &[GradHess],
    hist: &mut [HBin],
    node: NodeSums,
    params: &GbtParams,
) -> Option<SplitInfo> {
    let task = |(t, out): (usize, &mut [HBin])| {
        let first = t * FEATURES_PER_TASK;
        fill_histograms(binned, first, None, gh, out);
        best_split_of(binned, first, out, node, params)
    };
    let chunk = FEATURES_PER_TASK * N_BINS;
    if gh.len() * binned.n_features() > PARALLEL_WORK {
        hist.par_chunks_mut(chunk).enumerate().map(task).reduce(|| None, better)
    } else {
        hist.chunks_mut(chunk).enumerate().map(task).fold(None, better)
    }
}

/// After a split: builds the smaller child's histogram from its rows, turns the parent's histogram
/// (`large`) into the larger child's by subtraction, and finds both children's best splits — all in one
/// pass per feature group, in parallel for large nodes. Returns (small child's split, large child's split).
fn children_splits(
    binned: &Binned,
    (small_rows, small_gh): (&[u32], &[GradHess]),
    small: &mut [HBin],
    large: &mut [HBin],
    (small_sums, large_sums): (NodeSums, NodeSums),
    params: &GbtParams,
) -> (Option<SplitInfo>, Option<SplitInfo>) {
    let task = |(t, (s, l)): (usize, (&mut [HBin], &mut [HBin]))| {
        let first = t * FEATURES_PER_TASK;
        fill_histograms(binned, first, Some(small_rows), small_gh, s);
        for (i, (sf, lf)) in s.chunks(N_BINS).zip(l.chunks_mut(N_BINS)).enumerate() {
            let n_bins = binned.edges[first + i].len() + 1;
            for (p, q) in lf[..n_bins].iter_mut().zip(&sf[..n_bins]) {
                p.g -= q.g;
                p.h -= q.h;
                p.n -= q.n;
            }
        }
        (best_split_of(binned, first, s, small_sums, params), best_split_of(binned, first, l, large_sums, params))
    };
    let both = |a: (Option<SplitInfo>, Option<SplitInfo>), b: (Option<SplitInfo>, Option<SplitInfo>)| {
        (better(a.0, b.0), better(a.1, b.1))
    };
    let chunk = FEATURES_PER_TASK * N_BINS;
    if small_rows.len() * binned.n_features() > PARALLEL_WORK {
        small.par_chunks_mut(chunk).zip(large.par_chunks_mut(chunk)).enumerate().map(task).reduce(|| (None, None), both)
    } else {
        small.chunks_mut(chunk).zip(large.chunks_mut(chunk)).enumerate().map(task).fold((None, None), both)
    }
}

/// Stable partition of a node's rows and their gradient pairs (kept in the same order) by `goes_left`,
/// in parallel pieces for large nodes. Returns how many went left (now first).
fn split_rows(
    rows: &mut [u32],
    gh: &mut [GradHess],
    scratch: &mut Scratch,
    goes_left: impl Fn(u32) -> bool + Sync,
) -> usize {
    const PIECE: usize = 4096;
    let n = rows.len();
    // Small nodes are one piece.
    let size = if n > 2 * PIECE { PIECE } else { n.max(1) };
    // Each piece copies every row to both sides and advances the side it belongs to (no branches).
    let piece = |(((rows, gh), (left_rows, left_gh)), (right_rows, right_gh)): PieceBuffers| {
        let (mut l, mut r) = (0, 0);
        for (&row, &pair) in rows.iter().zip(gh) {
            let left = goes_left(row);
            (left_rows[l], left_gh[l], right_rows[r], right_gh[r]) = (row, pair, row, pair);
            l += usize::from(left);
            r += usize::from(!left);
        }
        l
    };
    let lefts: Vec<usize> = rows
        .par_chunks(size)
        .zip(gh.par_chunks(size))
        .zip(scratch.left_rows[..n].par_chunks_mut(size).zip(scratch.left_gh[..n].par_chunks_mut(size)))
        .zip(scratch.right_rows[..n].par_chunks_mut(size).zip(scratch.right_gh[..n].par_chunks_mut(size)))
        .with_min_len(if size == n { usize::MAX } else { 1 })
        .map(piece)
        .collect();
    let n_left: usize = lefts.iter().sum();
    let (mut l, mut r) = (0, n_left);
    for (p, &piece_left) in lefts.iter().enumerate() {
        let start = p * size;
        let piece_right = (start + size).min(n) - start - piece_left;
        rows[l..l + piece_left].copy_from_slice(&scratch.left_rows[start..start + piece_left]);
        gh[l..l + piece_left].copy_from_slice(&scratch.left_gh[start..start + piece_left]);
        rows[r..r + piece_right].copy_from_slice(&scratch.right_rows[start..start + piece_right]);
        gh[r..r + piece_right].copy_from_slice(&scratch.right_gh[start..start + piece_right]);
        (l, r) = (l + piece_left, r + piece_right);
    }
    n_left
}

type PieceBuffers<'a> =
    (((&'a [u32], &'a [GradHess]), (&'a mut [u32], &'a mut [GradHess])), (&'a mut [u32], &'a mut [GradHess]));

/// Where [`split_rows`] sorts rows into the two sides before copying them back.
struct Scratch {
    left_rows: Vec<u32>,
    left_gh: Vec<GradHess>,
    right_rows: Vec<u32>,
    right_gh: Vec<GradHess>,
}

/// Grows one tree leaf-wise; returns it with its leaves as (node, range of `ws.rows`).
fn grow(
    binned: &Binned,
    gh: &[GradHess],
    params: &GbtParams,
    ws: &mut Workspace,
) -> (Tree, Vec<(usize, std::ops::Range<usize>)>) {
    let n = binned.n_rows;
    ws.rows.clear();
    ws.rows.extend(0..n as u32);
    ws.gh.clear();
    ws.gh.extend_from_slice(gh);
    let mut tree = Tree::new(1);
    let root_node = tree.push_leaf(&[0.0]);
    let (sum_g, sum_h) = gh
        .par_chunks(8192)
        .map(|c| c.iter().fold((0.0, 0.0), |(a, b), p| (a + f64::from(p[0]), b + f64::from(p[1]))))
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let mut hist = ws.take_hist();
    let root = NodeSums { g: sum_g, h: sum_h, n };
    let split = root_split(binned, gh, &mut hist, root, params);
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
        let threshold = split.bin as u8;
        let span = parent.start..parent.end;
        let mid = parent.start
            + split_rows(&mut ws.rows[span.clone()], &mut ws.gh[span], &mut ws.scratch, |r| {
                col[r as usize] <= threshold
            });
        let left = NodeSums { g: split.left_g, h: split.left_h, n: mid - parent.start };
        let right = NodeSums { g: parent.sum_g - left.g, h: parent.sum_h - left.h, n: parent.end - mid };
        let left_small = left.n <= right.n;
        let (small_range, small_sums, large_sums) =
            if left_small { (parent.start..mid, left, right) } else { (mid..parent.end, right, left) };
        let mut small_hist = ws.take_hist();
        let mut large_hist = parent.hist;
        // The children are final when this split fills the tree or neither could be split: no histograms.
        let depth = parent.depth + 1;
        let may_split = |sums: NodeSums| {
            sums.n >= 2 * params.min_samples_leaf.max(1) && (params.max_depth == 0 || depth < params.max_depth)
        };
        let (small_split, large_split) =
            if leaves.len() + 2 >= params.max_leaf_nodes.max(2) || !(may_split(left) || may_split(right)) {
                (None, None)
            } else {
                let small_node = (&ws.rows[small_range.clone()], &ws.gh[small_range]);
                children_splits(binned, small_node, &mut small_hist, &mut large_hist, (small_sums, large_sums), params)
            };
        let ((l_hist, l_split), (r_hist, r_split)) = if left_small {
            ((small_hist, small_split), (large_hist, large_split))
        } else {
            ((large_hist, large_split), (small_hist, small_split))
        };
        let l_node = tree.push_leaf(&[0.0]);
        let r_node = tree.push_leaf(&[0.0]);
        tree.make_split(parent.node, split.feature, binned.edges[split.feature][split.bin], l_node, r_node);
        leaves.push(Leaf {
            node: l_node,
            start: parent.start,
            end: mid,
            depth,
            sum_g: left.g,
            sum_h: left.h,
            hist: l_hist,
            split: l_split,
        });
        leaves.push(Leaf {
            node: r_node,
            start: mid,
            end: parent.end,
            depth,
            sum_g: right.g,
            sum_h: right.h,
            hist: r_hist,
            split: r_split,
        });
    }
    let mut leaf_rows = Vec::with_capacity(leaves.len());
    for leaf in leaves {
        let value = -params.learning_rate * leaf.sum_g / (leaf.sum_h + params.l2_regularization).max(1e-12);
        tree.set_value(leaf.node, &[value]);
        leaf_rows.push((leaf.node, leaf.start..leaf.end));
        ws.free.push(leaf.hist);
    }
    (tree, leaf_rows)
}
