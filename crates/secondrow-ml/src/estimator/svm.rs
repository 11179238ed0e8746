//! Support vector classification (C-SVC) with linear or RBF kernels, solved by SMO with libsvm's
//! second-order working-set selection and a bounded cache of kernel rows; several classes are handled
//! one-vs-one with majority voting, as in libsvm and scikit-learn's `SVC`.

use std::collections::{HashMap, VecDeque};

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

struct KernelCache<'a> {
    x: &'a Matrix,
    kernel: Kernel,
    /// The rows in f32 (kernel rows are stored in f32 anyway) and their squared norms, for
    /// `||a - b||² = |a|² + |b|² - 2 a·b`.
    xf: Vec<f32>,
    sq_norms: Vec<f32>,
    rows: HashMap<usize, std::sync::Arc<[f32]>>,
    order: VecDeque<usize>,
    capacity_rows: usize,
}

impl KernelCache<'_> {
    fn row(&mut self, i: usize) -> std::sync::Arc<[f32]> {
        if !self.rows.contains_key(&i) {
            if self.rows.len() >= self.capacity_rows {
                if let Some(old) = self.order.pop_front() {
                    self.rows.remove(&old);
                }
            }
            let d = self.x.n_cols;
            let (xf, sq, kernel) = (&self.xf, &self.sq_norms, self.kernel);
            let xi = &xf[i * d..(i + 1) * d];
            let sq_i = sq[i];
            let values: Vec<f32> = (0..self.x.n_rows)
                .into_par_iter()
                .with_min_len(1024)
                .map(|t| {
                    let dt = dot32(xi, &xf[t * d..(t + 1) * d]);
                    match kernel {
                        Kernel::Linear => dt,
                        Kernel::Rbf { gamma } => (-(gamma as f32) * (sq_i + sq[t] - 2.0 * dt).max(0.0)).exp(),
                    }
                })
                .collect();
            self.rows.insert(i, values.into());
            self.order.push_back(i);
        }
        self.rows[&i].clone()
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

/// Solves the C-SVC dual for labels `y` in {-1, +1}; returns α and rho.
fn smo(x: &Matrix, y: &[f64], params: SvmParams) -> (Vec<f64>, f64) {
    let n = x.n_rows;
    let c = params.c;
    let tau = 1e-12;
    let capacity_rows = ((params.cache_mb * 1024 * 1024) / (4 * n.max(1))).max(2);
    let xf: Vec<f32> = x.data.iter().map(|&v| v as f32).collect();
    let d = x.n_cols;
    let sq_norms = (0..n).map(|i| dot32(&xf[i * d..(i + 1) * d], &xf[i * d..(i + 1) * d])).collect();
    let mut cache = KernelCache { x, kernel: params.kernel, xf, sq_norms, rows: HashMap::new(), order: VecDeque::new(), capacity_rows };
    let qd: Vec<f64> = (0..n).map(|i| params.kernel.eval(x.row(i), x.row(i))).collect();
    let mut alpha = vec![0.0; n];
    let mut grad = vec![-1.0; n];
    let upper = |a: f64| a >= c;
    let lower = |a: f64| a <= 0.0;
    for _ in 0..params.max_iter {
        // Select i: maximal violating "up" index.
        let mut gmax = f64::NEG_INFINITY;
        let mut i_sel = usize::MAX;
        for t in 0..n {
            let v = if y[t] > 0.0 {
                if upper(alpha[t]) { continue } else { -grad[t] }
            } else if lower(alpha[t]) {
                continue;
            } else {
                grad[t]
            };
            if v >= gmax {
                gmax = v;
                i_sel = t;
            }
        }
        if i_sel == usize::MAX {
            break;
        }
        let i = i_sel;
        let ki = cache.row(i);
        let mut gmax2 = f64::NEG_INFINITY;
        let mut obj_min = f64::INFINITY;
        let mut j_sel = usize::MAX;
        for t in 0..n {
            let (grad_diff, g2) = if y[t] > 0.0 {
                if lower(alpha[t]) {
                    continue;
                }
                (gmax + grad[t], grad[t])
            } else {
                if upper(alpha[t]) {
                    continue;
                }
                (gmax - grad[t], -grad[t])
            };
            if g2 >= gmax2 {
                gmax2 = g2;
            }
            if grad_diff > 0.0 {
                // libsvm: QD[i] + QD[t] ∓ 2 y_i Q_it, which is QD[i] + QD[t] - 2 K_it for either sign of y_t.
                let quad = qd[i] + qd[t] - 2.0 * ki[t] as f64;
                let obj = -(grad_diff * grad_diff) / if quad > 0.0 { quad } else { tau };
                if obj <= obj_min {
                    obj_min = obj;
                    j_sel = t;
                }
            }
        }
        if gmax + gmax2 < params.tol || j_sel == usize::MAX {
            break;
        }
        let j = j_sel;
        let kj = cache.row(j);
        let (old_ai, old_aj) = (alpha[i], alpha[j]);
        let kij = ki[j] as f64;
        if y[i] != y[j] {
            let quad = { let q = qd[i] + qd[j] - 2.0 * kij; if q > 0.0 { q } else { tau } };
            let delta = (-grad[i] - grad[j]) / quad;
            let diff = alpha[i] - alpha[j];
            alpha[i] += delta;
            alpha[j] += delta;
            if diff > 0.0 {
                if alpha[j] < 0.0 {
                    alpha[j] = 0.0;
                    alpha[i] = diff;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = -diff;
            }
            if diff > 0.0 {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = c - diff;
                }
            } else if alpha[j] > c {
                alpha[j] = c;
                alpha[i] = c + diff;
            }
        } else {
            let quad = { let q = qd[i] + qd[j] - 2.0 * kij; if q > 0.0 { q } else { tau } };
            let delta = (grad[i] - grad[j]) / quad;
            let sum = alpha[i] + alpha[j];
            alpha[i] -= delta;
            alpha[j] += delta;
            if sum > c {
                if alpha[i] > c {
                    alpha[i] = c;
                    alpha[j] = sum - c;
                }
            } else if alpha[j] < 0.0 {
                alpha[j] = 0.0;
                alpha[i] = sum;
            }
            if sum > c {
                if alpha[j] > c {
                    alpha[j] = c;
                    alpha[i] = sum - c;
                }
            } else if alpha[i] < 0.0 {
                alpha[i] = 0.0;
                alpha[j] = sum;
            }
        }
        let (dai, daj) = (alpha[i] - old_ai, alpha[j] - old_aj);
        let (yi, yj) = (y[i], y[j]);
        // Sequential on purpose: one pass is a few microseconds, less than waking a thread pool.
        let (ci, cj) = (yi * dai, yj * daj);
        for (t, g) in grad.iter_mut().enumerate() {
            // Q_it = y_i y_t K_it.
            *g += y[t] * (ci * ki[t] as f64 + cj * kj[t] as f64);
        }
    }
    // rho from free support vectors (or the midpoint of the feasible interval).
    let (mut ub, mut lb, mut sum_free, mut n_free) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    for t in 0..n {
        let yg = y[t] * grad[t];
        if upper(alpha[t]) {
            if y[t] < 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
        } else if lower(alpha[t]) {
            if y[t] > 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
        } else {
            n_free += 1;
            sum_free += yg;
        }
    }
    let rho = if n_free > 0 { sum_free / n_free as f64 } else { (ub + lb) / 2.0 };
    (alpha, rho)
}
