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
    /// Squared norms of the rows, for `||a - b||² = |a|² + |b|² - 2 a·b`.
    sq_norms: Vec<f64>,
    rows: HashMap<usize, Vec<f32>>,
    order: VecDeque<usize>,
    capacity_rows: usize,
}

impl KernelCache<'_> {
    fn row(&mut self, i: usize) -> &[f32] {
        if !self.rows.contains_key(&i) {
            if self.rows.len() >= self.capacity_rows {
                if let Some(old) = self.order.pop_front() {
                    self.rows.remove(&old);
                }
            }
            let xi = self.x.row(i);
            let sq_i = self.sq_norms[i];
            let (x, sq, kernel) = (self.x, &self.sq_norms, self.kernel);
            let values: Vec<f32> = (0..x.n_rows)
                .into_par_iter()
                .with_min_len(512)
                .map(|t| {
                    let d = dot(xi, x.row(t));
                    match kernel {
                        Kernel::Linear => d as f32,
                        Kernel::Rbf { gamma } => (-gamma * (sq_i + sq[t] - 2.0 * d).max(0.0)).exp() as f32,
                    }
                })
                .collect();
            self.rows.insert(i, values);
            self.order.push_back(i);
        }
        &self.rows[&i]
    }
}

/// Dot product with four accumulators, so the compiler can vectorise it.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        for k in 0..4 {
            acc[k] += a[c * 4 + k] * b[c * 4 + k];
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for k in chunks * 4..a.len() {
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
    let sq_norms = (0..n).map(|i| dot(x.row(i), x.row(i))).collect();
    let mut cache = KernelCache { x, kernel: params.kernel, sq_norms, rows: HashMap::new(), order: VecDeque::new(), capacity_rows };
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
        let ki: Vec<f32> = cache.row(i).to_vec();
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
        let kj: Vec<f32> = cache.row(j).to_vec();
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
        grad.par_iter_mut().enumerate().with_min_len(1024).for_each(|(t, g)| {
            // Q_it = y_i y_t K_it.
            *g += y[t] * (yi * ki[t] as f64 * dai + yj * kj[t] as f64 * daj);
        });
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
