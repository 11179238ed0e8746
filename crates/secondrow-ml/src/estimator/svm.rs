//! Support vector classification (C-SVC) with linear or RBF kernels, solved by SMO as libsvm does it:
//! second-order working-set selection, shrinking, and an LRU cache of f32 kernel rows sized in MB.
//! Several classes are handled one-vs-one with majority voting, as in libsvm and scikit-learn's `SVC`.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::table::Matrix;

/// Kernel function.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kernel {
    Linear,
    Rbf { gamma: f64 },
}

impl Kernel {
    fn eval(&self, a: &[f64], b: &[f64]) -> f64 {
        match self {
            Kernel::Linear => a.iter().zip(b).map(|(p, q)| p * q).sum(),
            Kernel::Rbf { gamma } => (-gamma * a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f64>()).exp(),
        }
    }
}

/// One binary machine: support vectors (indices into [`Svm::support`]) with coefficients α·y, and rho.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BinarySvm {
    pub positive: usize,
    pub negative: usize,
    pub sv: Vec<usize>,
    pub coef: Vec<f64>,
    pub rho: f64,
}

/// A fitted classifier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Svm {
    pub kernel: Kernel,
    pub n_classes: usize,
    pub support: Matrix,
    pub machines: Vec<BinarySvm>,
}

/// Hyperparameters.
#[derive(Debug, Clone, Copy)]
pub struct SvmParams {
    pub c: f64,
    pub kernel: Kernel,
    pub tol: f64,
    pub max_iter: usize,
    pub cache_mb: usize,
}

impl Svm {
    pub fn fit(x: &Matrix, y: &[usize], n_classes: usize, params: SvmParams) -> Svm {
        let mut support_rows: Vec<usize> = Vec::new();
        let mut support_index: HashMap<usize, usize> = HashMap::new();
        let mut machines = Vec::new();
        for a in 0..n_classes {
            for b in a + 1..n_classes {
                let rows: Vec<usize> = (0..x.n_rows).filter(|&i| y[i] == a || y[i] == b).collect();
                let sub = x.select_rows(&rows);
                // Class `a` is +1, as libsvm orders the pair.
                let signs: Vec<f64> = rows.iter().map(|&i| if y[i] == a { 1.0 } else { -1.0 }).collect();
                let (alpha, rho) = smo(&sub, &signs, params);
                let mut sv = Vec::new();
                let mut coef = Vec::new();
                for (t, &al) in alpha.iter().enumerate() {
                    if al > 0.0 {
                        let original = rows[t];
                        let idx = *support_index.entry(original).or_insert_with(|| {
                            support_rows.push(original);
                            support_rows.len() - 1
                        });
                        sv.push(idx);
                        coef.push(al * signs[t]);
                    }
                }
                machines.push(BinarySvm { positive: a, negative: b, sv, coef, rho });
            }
        }
        Svm { kernel: params.kernel, n_classes, support: x.select_rows(&support_rows), machines }
    }

    /// Decision values (n × machines): positive favours the machine's `positive` class.
    pub fn decision(&self, x: &Matrix) -> Matrix {
        let m = self.machines.len();
        let data = (0..x.n_rows)
            .into_par_iter()
            .flat_map_iter(|i| {
                let row = x.row(i);
                let k: Vec<f64> =
                    (0..self.support.n_rows).map(|s| self.kernel.eval(row, self.support.row(s))).collect();
                self.machines
                    .iter()
                    .map(|mach| mach.sv.iter().zip(&mach.coef).map(|(&s, c)| c * k[s]).sum::<f64>() - mach.rho)
                    .collect::<Vec<_>>()
            })
            .collect();
        Matrix::new(x.n_rows, m, data)
    }

    /// Scores per class (n × classes). Two classes: the sigmoid of the decision value (monotone, not
    /// calibrated); more: the fraction of one-vs-one votes.
    pub fn predict_scores(&self, x: &Matrix) -> Matrix {
        let dec = self.decision(x);
        let k = self.n_classes;
        let mut data = vec![0.0; x.n_rows * k];
        for i in 0..x.n_rows {
            let out = &mut data[i * k..(i + 1) * k];
            if k == 2 {
                let p = super::logistic::sigmoid(dec.row(i)[0]);
                out[0] = p;
                out[1] = 1.0 - p;
            } else {
                for (mach, &d) in self.machines.iter().zip(dec.row(i)) {
                    out[if d > 0.0 { mach.positive } else { mach.negative }] += 1.0;
                }
                let total = self.machines.len() as f64;
                out.iter_mut().for_each(|v| *v /= total);
            }
        }
        Matrix::new(x.n_rows, k, data)
    }
}

/// `gamma = "scale"`: 1 / (n_features · variance of all feature values).
pub fn gamma_scale(x: &Matrix) -> f64 {
    let n = x.data.len().max(1) as f64;
    let mean = x.data.iter().sum::<f64>() / n;
    let var = x.data.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    if var > 0.0 {
        1.0 / (x.n_cols as f64 * var)
    } else {
        1.0
    }
}

/// `exp(x)` for `x <= 0` in f32, branch-free so that loops over it vectorise (Cephes' `expf`: reduction
/// by `ln 2`, a degree-6 polynomial, and the power of two put in the exponent bits; relative error
/// about 1e-7). Arguments below -87 give `exp(-87) ≈ 1.6e-38` instead of a denormal or zero.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    // 1.5 · 2^23: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = if x < -87.0 { -87.0 } else { x };
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    // n >= -126 here, so n + 127 is a valid (normal) exponent.
    let pow2 = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    (p * r * r + r + 1.0) * pow2
}

/// Positions per block when filling a kernel row: the block's accumulators stay in L1 while every
/// feature column is added in.
const FILL_BLOCK: usize = 512;

/// Signed kernel rows `Q_it = y_i y_t K(x_i, x_t)` in f32 (as libsvm's `Qfloat`), cached by position
/// with least-recently-used eviction under a byte budget. A row may hold only its first `len`
/// positions (the active set when it was computed) and is extended on demand.
///
/// The data are kept feature-major and in position order (shrinking swaps them along), so that a row
/// is a sequence of contiguous `axpy`s over positions followed by an elementwise exp, all of which
/// vectorise.
struct QMatrix {
    /// Position → original row, so that the caller can map results back.
    perm: Vec<usize>,
    y: Vec<f32>,
    /// Feature `k` of the point at position `t` is `cols[k * n + t]`.
    cols: Vec<f32>,
    /// Squared norms by position.
    sq_norms: Vec<f32>,
    d: usize,
    kernel: Kernel,
    rows: Vec<Vec<f32>>,
    /// LRU list over positions; node `n` (the sentinel) is the list head.
    prev: Vec<usize>,
    next: Vec<usize>,
    budget_floats: usize,
    used_floats: usize,
}

impl QMatrix {
    fn new(x: &Matrix, y: &[f64], kernel: Kernel, cache_mb: usize) -> QMatrix {
        let n = y.len();
        let d = x.n_cols;
        let mut cols = vec![0.0f32; n * d];
        for t in 0..n {
            for (k, &v) in x.row(t).iter().enumerate() {
                cols[k * n + t] = v as f32;
            }
        }
        let mut sq_norms = vec![0.0f32; n];
        for col in cols.chunks_exact(n.max(1)) {
            for (s, &v) in sq_norms.iter_mut().zip(col) {
                *s += v * v;
            }
        }
        // At least two full rows, as libsvm guarantees.
        let budget_floats = (cache_mb * 1024 * 1024 / 4).max(2 * n);
        QMatrix {
            perm: (0..n).collect(),
            y: y.iter().map(|&v| v as f32).collect(),
            cols,
            sq_norms,
            d,
            kernel,
            rows: vec![Vec::new(); n],
            prev: vec![n; n + 1],
            next: vec![n; n + 1],
            budget_floats,
            used_floats: 0,
        }
    }

    fn lru_unlink(&mut self, i: usize) {
        let (p, q) = (self.prev[i], self.next[i]);
        self.next[p] = q;
        self.prev[q] = p;
    }

    fn lru_push_back(&mut self, i: usize) {
        let head = self.rows.len();
        let last = self.prev[head];
        self.next[last] = i;
        self.prev[i] = last;
        self.next[i] = head;
        self.prev[head] = i;
    }

    fn evict(&mut self, i: usize) {
        self.lru_unlink(i);
        self.used_floats -= self.rows[i].len();
        self.rows[i] = Vec::new();
    }

    /// Row `i` valid on positions `0..len`.
    fn row(&mut self, i: usize, len: usize) -> &[f32] {
        let have = self.rows[i].len();
        if have > 0 {
            self.lru_unlink(i);
        }
        if have < len {
            let head = self.rows.len();
            while self.used_floats + (len - have) > self.budget_floats && self.next[head] != head {
                let oldest = self.next[head];
                self.evict(oldest);
            }
            let mut row = std::mem::take(&mut self.rows[i]);
            let start = row.len();
            row.resize(len, 0.0);
            self.fill(i, start, &mut row[start..]);
            self.used_floats += len - start;
            self.rows[i] = row;
        }
        self.lru_push_back(i);
        &self.rows[i]
    }

    /// Computes `Q_it` for positions `t = start..start + out.len()`.
    fn fill(&self, i: usize, start: usize, out: &mut [f32]) {
        let n = self.y.len();
        let xi: Vec<f32> = (0..self.d).map(|k| self.cols[k * n + i]).collect();
        // Threads pay only for long rows: a row of 10,000 points × 20 features takes some 35 µs on one
        // core, little more than waking the pool, and splitting it loses outright on a busy machine.
        if out.len() * self.d >= PARALLEL_WORK {
            let per_task = FILL_BLOCK * (PARALLEL_TASK_WORK / (FILL_BLOCK * self.d)).max(1);
            out.par_chunks_mut(per_task).enumerate().for_each(|(c, chunk)| {
                for (b, block) in chunk.chunks_mut(FILL_BLOCK).enumerate() {
                    self.fill_block(i, &xi, start + c * per_task + b * FILL_BLOCK, block);
                }
            });
        } else {
            for (b, block) in out.chunks_mut(FILL_BLOCK).enumerate() {
                self.fill_block(i, &xi, start + b * FILL_BLOCK, block);
            }
        }
    }

    fn fill_block(&self, i: usize, xi: &[f32], lo: usize, out: &mut [f32]) {
        let n = self.y.len();
        let hi = lo + out.len();
        let col = |k: usize| &self.cols[k * n + lo..k * n + hi];
        out.fill(0.0);
        // Four features per pass over the block: a quarter of the loads and stores of `out`.
        let quads = xi.chunks_exact(4);
        let rest = quads.remainder();
        for (q, a) in quads.enumerate() {
            let k = 4 * q;
            let columns = col(k).iter().zip(col(k + 1)).zip(col(k + 2)).zip(col(k + 3));
            for (o, (((&v0, &v1), &v2), &v3)) in out.iter_mut().zip(columns) {
                *o += a[0] * v0 + a[1] * v1 + a[2] * v2 + a[3] * v3;
            }
        }
        for (k, &a) in (xi.len() - rest.len()..).zip(rest) {
            for (o, &v) in out.iter_mut().zip(col(k)) {
                *o += a * v;
            }
        }
        let yi = self.y[i];
        let y = &self.y[lo..hi];
        match self.kernel {
            Kernel::Linear => {
                for (o, &yt) in out.iter_mut().zip(y) {
                    *o *= yi * yt;
                }
            }
            Kernel::Rbf { gamma } => {
                let (g, sq_i) = (gamma as f32, self.sq_norms[i]);
                for ((o, &sq_t), &yt) in out.iter_mut().zip(&self.sq_norms[lo..hi]).zip(y) {
                    let dist = sq_i + sq_t - 2.0 * *o;
                    let dist = if dist > 0.0 { dist } else { 0.0 };
                    *o = yi * yt * exp_nonpositive(-g * dist);
                }
            }
        }
    }

    /// Swaps positions `i` and `j` (libsvm's `Cache::swap_index`, but for the entries of the other
    /// cached rows, which [`QMatrix::swap_entries`] then swaps for a whole batch of swaps at once).
    fn swap(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        self.perm.swap(i, j);
        self.y.swap(i, j);
        self.sq_norms.swap(i, j);
        let n = self.y.len();
        for k in 0..self.d {
            self.cols.swap(k * n + i, k * n + j);
        }
        let (li, lj) = (!self.rows[i].is_empty(), !self.rows[j].is_empty());
        if li {
            self.lru_unlink(i);
        }
        if lj {
            self.lru_unlink(j);
        }
        self.rows.swap(i, j);
        if lj {
            self.lru_push_back(i);
        }
        if li {
            self.lru_push_back(j);
        }
    }

    /// Swaps entries `lo` and `hi` of every cached row for each pair `(lo, hi)` (with `lo < hi`), or
    /// drops a row that covers `lo` but not `hi`. The pairs must be disjoint, so their order does not
    /// matter; one pass over the cache per batch instead of one per swap keeps each row's accesses
    /// together.
    fn swap_entries(&mut self, pairs: &[(usize, usize)]) {
        if pairs.is_empty() {
            return;
        }
        let head = self.rows.len();
        let mut node = self.next[head];
        while node != head {
            let following = self.next[node];
            let row = &mut self.rows[node];
            let len = row.len();
            if pairs.iter().any(|&(lo, hi)| lo < len && len <= hi) {
                self.evict(node);
            } else {
                for &(lo, hi) in pairs {
                    if hi < len {
                        row.swap(lo, hi);
                    }
                }
            }
            node = following;
        }
    }
}

/// Work (row length × features) above which a kernel row is computed on the thread pool.
const PARALLEL_WORK: usize = 1 << 20;
/// Work per thread-pool task when it is.
const PARALLEL_TASK_WORK: usize = 1 << 18;

#[derive(Clone, Copy, PartialEq)]
enum Bound {
    Lower,
    Upper,
    Free,
}

/// libsvm's `Solver` for the C-SVC dual (all `p_i = -1`, one C): WSS2 working-set selection,
/// shrinking with gradient reconstruction, and the `G_bar` bookkeeping that makes it cheap.
struct Solver {
    q: QMatrix,
    y: Vec<f64>,
    alpha: Vec<f64>,
    status: Vec<Bound>,
    grad: Vec<f64>,
    /// `G_bar_i = C · Σ_{j at upper bound} Q_ij`.
    grad_bar: Vec<f64>,
    qd: Vec<f64>,
    c: f64,
    eps: f64,
    active: usize,
    unshrink: bool,
}

const TAU: f64 = 1e-12;

/// Whether `α_t` may move up in the direction `y_t` (libsvm's `I_up`).
fn in_up(y: f64, status: Bound) -> bool {
    status != if y > 0.0 { Bound::Upper } else { Bound::Lower }
}

/// Whether `α_t` may move down in the direction `y_t` (libsvm's `I_low`).
fn in_low(y: f64, status: Bound) -> bool {
    status != if y > 0.0 { Bound::Lower } else { Bound::Upper }
}

/// libsvm's clipping for `y_i == y_j` (α_i + α_j = sum stays fixed): `x` to its upper bound, or
/// `other` to zero.
fn clip_pair(x: &mut f64, other: &mut f64, sum: f64, c: f64) {
    if sum > c {
        if *x > c {
            *x = c;
            *other = sum - c;
        }
    } else if *other < 0.0 {
        *other = 0.0;
        *x = sum;
    }
}

impl Solver {
    fn bound(&self, a: f64) -> Bound {
        if a >= self.c {
            Bound::Upper
        } else if a <= 0.0 {
            Bound::Lower
        } else {
            Bound::Free
        }
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.q.swap(i, j);
        self.y.swap(i, j);
        self.alpha.swap(i, j);
        self.status.swap(i, j);
        self.grad.swap(i, j);
        self.grad_bar.swap(i, j);
        self.qd.swap(i, j);
    }

    fn solve(&mut self, max_iter: usize) {
        let n = self.y.len();
        let mut iter = 0;
        let mut counter = n.min(1000) + 1;
        while iter < max_iter {
            counter -= 1;
            if counter == 0 {
                counter = n.min(1000);
                self.shrink();
            }
            let (i, j) = match self.select() {
                Some(pair) => pair,
                None => {
                    self.reconstruct_gradient();
                    self.active = n;
                    match self.select() {
                        Some(pair) => {
                            counter = 1;
                            pair
                        }
                        None => break,
                    }
                }
            };
            iter += 1;
            self.step(i, j);
        }
        if self.active < n {
            self.reconstruct_gradient();
            self.active = n;
        }
    }

    /// Returns the working pair, or `None` at optimality. With `y_t = ±1`, `-y_t G_t` over `I_up` gives
    /// `i`, and `y_t G_t` over `I_low` both `gmax2` and the gradient difference for `j`; the loops
    /// are written with selects rather than branches, which the data make unpredictable.
    fn select(&mut self) -> Option<(usize, usize)> {
        let active = self.active;
        let (y, status, grad, qd) =
            (&self.y[..active], &self.status[..active], &self.grad[..active], &self.qd[..active]);
        let mut gmax = f64::NEG_INFINITY;
        let mut i_sel = usize::MAX;
        for (t, ((&yt, &st), &g)) in y.iter().zip(status).zip(grad).enumerate() {
            let v = -yt * g;
            if in_up(yt, st) && v >= gmax {
                gmax = v;
                i_sel = t;
            }
        }
        if i_sel == usize::MAX {
            return None;
        }
        let i = i_sel;
        let qi = &self.q.row(i, active)[..active];
        let (yi, qdi) = (y[i], qd[i]);
        let mut gmax2 = f64::NEG_INFINITY;
        let mut obj_min = f64::INFINITY;
        let mut j_sel = usize::MAX;
        for (t, ((((&yt, &st), &g), &qdt), &qit)) in y.iter().zip(status).zip(grad).zip(qd).zip(qi).enumerate() {
            if !in_low(yt, st) {
                continue;
            }
            let g2 = yt * g;
            gmax2 = if g2 >= gmax2 { g2 } else { gmax2 };
            let grad_diff = gmax + g2;
            if grad_diff > 0.0 {
                // QD_i + QD_t - 2 y_i y_t Q_it = QD_i + QD_t - 2 K_it.
                let quad = qdi + qdt - 2.0 * yi * yt * qit as f64;
                let obj = -(grad_diff * grad_diff) / if quad > 0.0 { quad } else { TAU };
                if obj <= obj_min {
                    obj_min = obj;
                    j_sel = t;
                }
            }
        }
        if gmax + gmax2 < self.eps || j_sel == usize::MAX {
            return None;
        }
        Some((i, j_sel))
    }

    fn step(&mut self, i: usize, j: usize) {
        let active = self.active;
        let c = self.c;
        let qij = self.q.row(i, active)[j] as f64;
        let (old_ai, old_aj) = (self.alpha[i], self.alpha[j]);
        let (mut ai, mut aj) = (old_ai, old_aj);
        if self.y[i] != self.y[j] {
            let quad = self.qd[i] + self.qd[j] + 2.0 * qij;
            let delta = (-self.grad[i] - self.grad[j]) / if quad > 0.0 { quad } else { TAU };
            let diff = ai - aj;
            ai += delta;
            aj += delta;
            if diff > 0.0 {
                if aj < 0.0 {
                    aj = 0.0;
                    ai = diff;
                }
            } else if ai < 0.0 {
                ai = 0.0;
                aj = -diff;
            }
            if diff > 0.0 {
                if ai > c {
                    ai = c;
                    aj = c - diff;
                }
            } else if aj > c {
                aj = c;
                ai = c + diff;
            }
        } else {
            let quad = self.qd[i] + self.qd[j] - 2.0 * qij;
            let delta = (self.grad[i] - self.grad[j]) / if quad > 0.0 { quad } else { TAU };
            let sum = ai + aj;
            ai -= delta;
            aj += delta;
            clip_pair(&mut ai, &mut aj, sum, c);
            clip_pair(&mut aj, &mut ai, sum, c);
        }
        self.alpha[i] = ai;
        self.alpha[j] = aj;
        let (dai, daj) = (ai - old_ai, aj - old_aj);
        // Both rows at once: the cache holds them across the call (budget ≥ two full rows).
        self.q.row(j, active);
        let (qi, qj) = (&self.q.rows[i][..active], &self.q.rows[j][..active]);
        for ((g, &a), &b) in self.grad[..active].iter_mut().zip(qi).zip(qj) {
            *g += a as f64 * dai + b as f64 * daj;
        }
        let n = self.y.len();
        for t in [i, j] {
            let was_upper = self.status[t] == Bound::Upper;
            self.status[t] = self.bound(self.alpha[t]);
            let is_upper = self.status[t] == Bound::Upper;
            if was_upper != is_upper {
                let sign = if is_upper { c } else { -c };
                let qt = self.q.row(t, n);
                for (gb, &v) in self.grad_bar.iter_mut().zip(qt) {
                    *gb += sign * v as f64;
                }
            }
        }
    }

    fn be_shrunk(&self, t: usize, gmax1: f64, gmax2: f64) -> bool {
        match self.status[t] {
            Bound::Upper => -self.grad[t] > if self.y[t] > 0.0 { gmax1 } else { gmax2 },
            Bound::Lower => self.grad[t] > if self.y[t] > 0.0 { gmax2 } else { gmax1 },
            Bound::Free => false,
        }
    }

    fn shrink(&mut self) {
        let (mut gmax1, mut gmax2) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for t in 0..self.active {
            let g = self.grad[t];
            // gmax1 over the "up" set (-y G), gmax2 over the "low" set (y G).
            let (not_upper, not_lower) = (self.status[t] != Bound::Upper, self.status[t] != Bound::Lower);
            if self.y[t] > 0.0 {
                if not_upper {
                    gmax1 = gmax1.max(-g);
                }
                if not_lower {
                    gmax2 = gmax2.max(g);
                }
            } else {
                if not_upper {
                    gmax2 = gmax2.max(-g);
                }
                if not_lower {
                    gmax1 = gmax1.max(g);
                }
            }
        }
        if !self.unshrink && gmax1 + gmax2 <= self.eps * 10.0 {
            self.unshrink = true;
            self.reconstruct_gradient();
            self.active = self.y.len();
        }
        let mut swapped = Vec::new();
        let mut t = 0;
        while t < self.active {
            if self.be_shrunk(t, gmax1, gmax2) {
                self.active -= 1;
                while self.active > t {
                    if !self.be_shrunk(self.active, gmax1, gmax2) {
                        self.swap(t, self.active);
                        swapped.push((t, self.active));
                        break;
                    }
                    self.active -= 1;
                }
            }
            t += 1;
        }
        self.q.swap_entries(&swapped);
    }

    /// Recomputes the gradient of the shrunk positions from `G_bar` and the free variables.
    fn reconstruct_gradient(&mut self) {
        let n = self.y.len();
        let active = self.active;
        if active == n {
            return;
        }
        for t in active..n {
            self.grad[t] = self.grad_bar[t] - 1.0;
        }
        let n_free = (0..active).filter(|&t| self.status[t] == Bound::Free).count();
        if n_free * n > 2 * active * (n - active) {
            for i in active..n {
                let qi = self.q.row(i, active);
                let free = self.status[..active].iter().zip(&self.alpha[..active]).zip(qi);
                self.grad[i] +=
                    free.filter(|((s, _), _)| **s == Bound::Free).map(|((_, a), &q)| a * q as f64).sum::<f64>();
            }
        } else {
            for i in 0..active {
                if self.status[i] == Bound::Free {
                    let ai = self.alpha[i];
                    let qi = self.q.row(i, n);
                    for (g, &v) in self.grad[active..].iter_mut().zip(&qi[active..]) {
                        *g += ai * v as f64;
                    }
                }
            }
        }
    }

    /// libsvm's `calculate_rho`: the mean of `y_i G_i` over free variables, or the middle of the
    /// feasible interval when none is free.
    fn rho(&self) -> f64 {
        let (mut ub, mut lb, mut sum_free, mut n_free) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
        for t in 0..self.active {
            let yg = self.y[t] * self.grad[t];
            match self.status[t] {
                Bound::Upper => {
                    if self.y[t] < 0.0 {
                        ub = ub.min(yg)
                    } else {
                        lb = lb.max(yg)
                    }
                }
                Bound::Lower => {
                    if self.y[t] > 0.0 {
                        ub = ub.min(yg)
                    } else {
                        lb = lb.max(yg)
                    }
                }
                Bound::Free => {
                    n_free += 1;
                    sum_free += yg;
                }
            }
        }
        if n_free > 0 {
            sum_free / n_free as f64
        } else {
            (ub + lb) / 2.0
        }
    }
}

/// Solves the C-SVC dual for labels `y` in {-1, +1}; returns α (in row order) and rho.
fn smo(x: &Matrix, y: &[f64], params: SvmParams) -> (Vec<f64>, f64) {
    let n = x.n_rows;
    let qd = (0..n).map(|i| params.kernel.eval(x.row(i), x.row(i))).collect();
    let mut solver = Solver {
        q: QMatrix::new(x, y, params.kernel, params.cache_mb),
        y: y.to_vec(),
        alpha: vec![0.0; n],
        status: vec![Bound::Lower; n],
        grad: vec![-1.0; n],
        grad_bar: vec![0.0; n],
        qd,
        c: params.c,
        eps: params.tol,
        active: n,
        unshrink: false,
    };
    solver.solve(params.max_iter);
    let rho = solver.rho();
    let mut alpha = vec![0.0; n];
    for (pos, &orig) in solver.q.perm.iter().enumerate() {
        alpha[orig] = solver.alpha[pos];
    }
    (alpha, rho)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_nonpositive_matches_exp() {
        for step in 0..=100_000 {
            let x = -90.0 * step as f32 / 100_000.0;
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            if x >= -87.0 {
                assert!((got - want).abs() <= 3e-7 * want, "exp({x}) = {got}, want {want}");
            } else {
                assert!(got <= 2e-38, "exp({x}) = {got}");
            }
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    /// Two overlapping Gaussian-ish blobs from a fixed LCG, so that many α end up free or at C.
    fn blobs(n: usize, d: usize) -> (Matrix, Vec<f64>) {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut data = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            for k in 0..d {
                let noise: f64 = (0..4).map(|_| uniform() - 0.5).sum();
                data.push(noise * 2.0 + if k < 2 { 0.6 * sign } else { 0.0 });
            }
            y.push(sign);
        }
        (Matrix::new(n, d, data), y)
    }

    #[test]
    fn kernel_rows_match_the_kernel_serial_and_parallel() {
        // 21,000 × 50 is past PARALLEL_WORK for full rows; the 300-long rows are filled serially.
        let (x, y) = blobs(21_000, 50);
        let kernel = Kernel::Rbf { gamma: gamma_scale(&x) };
        let mut q = QMatrix::new(&x, &y, kernel, 64);
        q.swap(3, 20_000);
        for (i, len) in [(3, 21_000), (7, 300), (7, 21_000), (20_000, 300)] {
            let oi = q.perm[i];
            let row = q.row(i, len).to_vec();
            assert_eq!(row.len(), len);
            for (t, &v) in row.iter().enumerate() {
                let ot = q.perm[t];
                let want = y[oi] * y[ot] * kernel.eval(x.row(oi), x.row(ot));
                assert!((v as f64 - want).abs() < 1e-5, "Q[{i}][{t}] = {v}, want {want}");
            }
        }
    }

    /// The largest violation of the dual optimality conditions, with the gradient recomputed in f64.
    fn kkt_violation(x: &Matrix, y: &[f64], alpha: &[f64], params: SvmParams) -> f64 {
        let n = y.len();
        let (mut up, mut low) = (f64::NEG_INFINITY, f64::INFINITY);
        for t in 0..n {
            let g: f64 =
                (0..n).map(|s| y[t] * y[s] * params.kernel.eval(x.row(t), x.row(s)) * alpha[s]).sum::<f64>() - 1.0;
            let v = -y[t] * g;
            if (y[t] > 0.0 && alpha[t] < params.c) || (y[t] < 0.0 && alpha[t] > 0.0) {
                up = up.max(v);
            }
            if (y[t] > 0.0 && alpha[t] > 0.0) || (y[t] < 0.0 && alpha[t] < params.c) {
                low = low.min(v);
            }
        }
        up - low
    }

    #[test]
    fn smo_reaches_optimality_with_shrinking_and_a_tiny_cache() {
        let (x, y) = blobs(2000, 5);
        let kernel = Kernel::Rbf { gamma: gamma_scale(&x) };
        let params = SvmParams { c: 1.0, kernel, tol: 1e-3, max_iter: 1_000_000, cache_mb: 64 };
        let (alpha, rho) = smo(&x, &y, params);
        // The minimum cache (two rows) forces evictions, also while shrinking swaps positions.
        let tiny = SvmParams { cache_mb: 0, ..params };
        let (alpha_tiny, rho_tiny) = smo(&x, &y, tiny);
        for a in [&alpha, &alpha_tiny] {
            assert!(a.iter().all(|&v| (0.0..=params.c).contains(&v)));
            let balance: f64 = a.iter().zip(&y).map(|(a, y)| a * y).sum();
            assert!(balance.abs() < 1e-9, "sum of alpha_i y_i = {balance}");
            let violation = kkt_violation(&x, &y, a, params);
            assert!(violation < 2e-3, "KKT violation {violation}");
        }
        let free = alpha.iter().filter(|&&a| a > 0.0 && a < params.c).count();
        let bounded = alpha.iter().filter(|&&a| a >= params.c).count();
        assert!(free > 10 && bounded > 10, "{free} free, {bounded} at C");
        assert!((rho - rho_tiny).abs() < 1e-2, "rho {rho} vs {rho_tiny}");
    }
}
