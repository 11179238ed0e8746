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
                let k: Vec<f64> = (0..self.support.n_rows).map(|s| self.kernel.eval(row, self.support.row(s))).collect();
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

/// f32 dot product with eight accumulators, so the compiler can vectorise it.
fn dot32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for k in 0..8 {
            acc[k] += a[c * 8 + k] * b[c * 8 + k];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for k in chunks * 8..a.len() {
        sum += a[k] * b[k];
    }
    sum
}

/// Signed kernel rows `Q_it = y_i y_t K(x_i, x_t)` in f32 (as libsvm's `Qfloat`), cached by position
/// with least-recently-used eviction under a byte budget. A row may hold only its first `len`
/// positions (the active set when it was computed) and is extended on demand.
struct QMatrix<'a> {
    /// Position → original row, so that shrinking can swap positions without moving the data.
    perm: Vec<usize>,
    y: Vec<f32>,
    xf: &'a [f32],
    sq_norms: &'a [f32],
    d: usize,
    kernel: Kernel,
    rows: Vec<Vec<f32>>,
    /// LRU list over positions; node `n` (the sentinel) is the list head.
    prev: Vec<usize>,
    next: Vec<usize>,
    budget_floats: usize,
    used_floats: usize,
}

impl<'a> QMatrix<'a> {
    fn new(xf: &'a [f32], sq_norms: &'a [f32], d: usize, y: &[f64], kernel: Kernel, cache_mb: usize) -> QMatrix<'a> {
        let n = y.len();
        // At least two full rows, as libsvm guarantees.
        let budget_floats = (cache_mb * 1024 * 1024 / 4).max(2 * n);
        QMatrix {
            perm: (0..n).collect(),
            y: y.iter().map(|&v| v as f32).collect(),
            xf,
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

    fn fill(&self, i: usize, start: usize, out: &mut [f32]) {
        let d = self.d;
        let oi = self.perm[i];
        let xi = &self.xf[oi * d..(oi + 1) * d];
        let (sq_i, yi) = (self.sq_norms[oi], self.y[i]);
        let entry = |t: usize| {
            let ot = self.perm[t];
            let dt = dot32(xi, &self.xf[ot * d..(ot + 1) * d]);
            let k = match self.kernel {
                Kernel::Linear => dt,
                Kernel::Rbf { gamma } => (-(gamma as f32) * (sq_i + self.sq_norms[ot] - 2.0 * dt).max(0.0)).exp(),
            };
            yi * self.y[t] * k
        };
        // Threads pay only for long rows; short ones cost less than waking the pool.
        if out.len() * d >= PARALLEL_WORK {
            out.par_chunks_mut(2048).enumerate().for_each(|(c, chunk)| {
                for (o, v) in chunk.iter_mut().enumerate() {
                    *v = entry(start + c * 2048 + o);
                }
            });
        } else {
            for (o, v) in out.iter_mut().enumerate() {
                *v = entry(start + o);
            }
        }
    }

    /// Swaps positions `i` and `j` (libsvm's `Cache::swap_index`): cached rows follow their position,
    /// and entries of other rows are swapped, or the row dropped when it covers `i` but not `j`.
    fn swap(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        self.perm.swap(i, j);
        self.y.swap(i, j);
        let (li, lj) = (self.rows[i].len() > 0, self.rows[j].len() > 0);
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
        let (lo, hi) = (i.min(j), i.max(j));
        let head = self.rows.len();
        let mut node = self.next[head];
        while node != head {
            let following = self.next[node];
            let len = self.rows[node].len();
            if len > lo {
                if len > hi {
                    self.rows[node].swap(lo, hi);
                } else {
                    self.evict(node);
                }
            }
            node = following;
        }
    }
}

/// Work (row length × features) above which a kernel row is computed on the thread pool.
const PARALLEL_WORK: usize = 1 << 17;

#[derive(Clone, Copy, PartialEq)]
enum Bound {
    Lower,
    Upper,
    Free,
}

/// libsvm's `Solver` for the C-SVC dual (all `p_i = -1`, one C): WSS2 working-set selection,
/// shrinking with gradient reconstruction, and the `G_bar` bookkeeping that makes it cheap.
struct Solver<'a> {
    q: QMatrix<'a>,
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

impl Solver<'_> {
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

    /// Returns the working pair, or `None` at optimality.
    fn select(&mut self) -> Option<(usize, usize)> {
        let mut gmax = f64::NEG_INFINITY;
        let mut i_sel = None;
        for t in 0..self.active {
            let v = if self.y[t] > 0.0 {
                if self.status[t] == Bound::Upper { continue } else { -self.grad[t] }
            } else if self.status[t] == Bound::Lower {
                continue;
            } else {
                self.grad[t]
            };
            if v >= gmax {
                gmax = v;
                i_sel = Some(t);
            }
        }
        let i = i_sel?;
        let active = self.active;
        let qi = self.q.row(i, active);
        let yi = self.y[i];
        let qdi = self.qd[i];
        let mut gmax2 = f64::NEG_INFINITY;
        let mut obj_min = f64::INFINITY;
        let mut j_sel = None;
        for t in 0..active {
            let (grad_diff, g2) = if self.y[t] > 0.0 {
                if self.status[t] == Bound::Lower {
                    continue;
                }
                (gmax + self.grad[t], self.grad[t])
            } else {
                if self.status[t] == Bound::Upper {
                    continue;
                }
                (gmax - self.grad[t], -self.grad[t])
            };
            if g2 >= gmax2 {
                gmax2 = g2;
            }
            if grad_diff > 0.0 {
                // QD_i + QD_t - 2 y_i y_t Q_it; the sign of y_t is folded in by the branches above.
                let quad = qdi + self.qd[t] - 2.0 * yi * self.y[t] * qi[t] as f64;
                let obj = -(grad_diff * grad_diff) / if quad > 0.0 { quad } else { TAU };
                if obj <= obj_min {
                    obj_min = obj;
                    j_sel = Some(t);
                }
            }
        }
        if gmax + gmax2 < self.eps {
            return None;
        }
        j_sel.map(|j| (i, j))
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
        let mut t = 0;
        while t < self.active {
            if self.be_shrunk(t, gmax1, gmax2) {
                self.active -= 1;
                while self.active > t {
                    if !self.be_shrunk(self.active, gmax1, gmax2) {
                        self.swap(t, self.active);
                        break;
                    }
                    self.active -= 1;
                }
            }
            t += 1;
        }
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
                let mut add = 0.0;
                for t in 0..active {
                    if self.status[t] == Bound::Free {
                        add += self.alpha[t] * qi[t] as f64;
                    }
                }
                self.grad[i] += add;
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
                    if self.y[t] < 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
                }
                Bound::Lower => {
                    if self.y[t] > 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
                }
                Bound::Free => {
                    n_free += 1;
                    sum_free += yg;
                }
            }
        }
        if n_free > 0 { sum_free / n_free as f64 } else { (ub + lb) / 2.0 }
    }
}

/// Solves the C-SVC dual for labels `y` in {-1, +1}; returns α (in row order) and rho.
fn smo(x: &Matrix, y: &[f64], params: SvmParams) -> (Vec<f64>, f64) {
    let n = x.n_rows;
    let d = x.n_cols;
    let xf: Vec<f32> = x.data.iter().map(|&v| v as f32).collect();
    let sq_norms: Vec<f32> = (0..n).map(|i| dot32(&xf[i * d..(i + 1) * d], &xf[i * d..(i + 1) * d])).collect();
    let qd = (0..n).map(|i| params.kernel.eval(x.row(i), x.row(i))).collect();
    let mut solver = Solver {
        q: QMatrix::new(&xf, &sq_norms, d, y, params.kernel, params.cache_mb),
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
