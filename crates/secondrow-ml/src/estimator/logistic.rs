//! Logistic regression: binary (one weight vector, sigmoid) and multinomial (one vector per class,
//! softmax), L2-penalised like scikit-learn (`C`), fitted with L-BFGS on the mean log-loss.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::lbfgs;
use crate::table::Matrix;

/// Fitted coefficients: `coef[k]` and `intercept[k]` per output (one output for two classes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Logistic {
    pub coef: Vec<Vec<f64>>,
    pub intercept: Vec<f64>,
    pub n_classes: usize,
    pub n_iter: usize,
}

/// Hyperparameters.
#[derive(Debug, Clone, Copy)]
pub struct LogisticParams {
    pub c: f64,
    pub max_iter: usize,
    pub tol: f64,
}

const CHUNK: usize = 2048;

/// The training rows as the objective reads them: dense, or compressed (only the non-zero cells, in
/// column order) when most cells are zero, as after one-hot encoding. Skipping zeros leaves every dot
/// product and gradient sum unchanged: each adds the same non-zero terms in the same order.
enum Rows<'a> {
    Dense(&'a Matrix),
    Sparse { starts: Vec<usize>, columns: Vec<u32>, values: Vec<f64> },
}

impl<'a> Rows<'a> {
    /// Compressed when at most half the cells are non-zero.
    fn new(x: &'a Matrix) -> Rows<'a> {
        let non_zero = x.data.iter().filter(|v| **v != 0.0).count();
        if x.n_cols > u32::MAX as usize || 2 * non_zero > x.data.len() {
            Rows::Dense(x)
        } else {
            Rows::sparse(x, non_zero)
        }
    }

    fn sparse(x: &Matrix, non_zero: usize) -> Rows<'a> {
        let mut starts = Vec::with_capacity(x.n_rows + 1);
        let mut columns = Vec::with_capacity(non_zero);
        let mut values = Vec::with_capacity(non_zero);
        starts.push(0);
        for i in 0..x.n_rows {
            for (j, &v) in x.row(i).iter().enumerate() {
                if v != 0.0 {
                    columns.push(j as u32);
                    values.push(v);
                }
            }
            starts.push(values.len());
        }
        Rows::Sparse { starts, columns, values }
    }

    /// `x_i · w` over the features (`w` without the intercept).
    #[inline]
    fn dot(&self, i: usize, w: &[f64]) -> f64 {
        match self {
            Rows::Dense(x) => x.row(i).iter().zip(w).map(|(a, b)| a * b).sum(),
            Rows::Sparse { starts, columns, values } => {
                let (from, to) = (starts[i], starts[i + 1]);
                columns[from..to].iter().zip(&values[from..to]).map(|(&j, a)| a * w[j as usize]).sum()
            }
        }
    }

    /// `g += r x_i` over the features.
    #[inline]
    fn add_scaled(&self, i: usize, r: f64, g: &mut [f64]) {
        match self {
            Rows::Dense(x) => g.iter_mut().zip(x.row(i)).for_each(|(gv, xv)| *gv += r * xv),
            Rows::Sparse { starts, columns, values } => {
                let (from, to) = (starts[i], starts[i + 1]);
                for (&j, xv) in columns[from..to].iter().zip(&values[from..to]) {
                    g[j as usize] += r * xv;
                }
            }
        }
    }
}

impl Logistic {
    pub fn fit(x: &Matrix, y: &[usize], n_classes: usize, params: LogisticParams) -> Logistic {
        Logistic::fit_rows(&Rows::new(x), x.n_rows, x.n_cols, y, n_classes, params)
    }

    fn fit_rows(rows: &Rows, n: usize, d: usize, y: &[usize], n_classes: usize, params: LogisticParams) -> Logistic {
        let outputs = if n_classes == 2 { 1 } else { n_classes };
        let stride = d + 1;
        let l2 = 1.0 / (params.c * n as f64);
        let objective = |w: &[f64], grad: &mut [f64]| -> f64 {
            let (loss, g) = (0..n.div_ceil(CHUNK))
                .into_par_iter()
                .map(|c| {
                    let mut g = vec![0.0; outputs * stride];
                    let mut loss = 0.0;
                    let mut z = vec![0.0; outputs];
                    for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                        for k in 0..outputs {
                            let wk = &w[k * stride..(k + 1) * stride];
                            z[k] = wk[d] + rows.dot(i, &wk[..d]);
                        }
                        if outputs == 1 {
                            let t = if y[i] == 1 { 1.0 } else { 0.0 };
                            // log(1 + e^z) - t z, computed stably.
                            let (softplus, sigmoid) = softplus_sigmoid(z[0]);
                            loss += softplus - t * z[0];
                            let r = sigmoid - t;
                            rows.add_scaled(i, r, &mut g[..d]);
                            g[d] += r;
                        } else {
                            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
                            let lse = max + sum.ln();
                            loss += lse - z[y[i]];
                            for k in 0..outputs {
                                let p = (z[k] - lse).exp();
                                let r = p - if y[i] == k { 1.0 } else { 0.0 };
                                let gk = &mut g[k * stride..(k + 1) * stride];
                                rows.add_scaled(i, r, &mut gk[..d]);
                                gk[d] += r;
                            }
                        }
                    }
                    (loss, g)
                })
                .reduce(
                    || (0.0, vec![0.0; outputs * stride]),
                    |mut a, b| {
                        a.0 += b.0;
                        a.1.iter_mut().zip(&b.1).for_each(|(p, q)| *p += q);
                        a
                    },
                );
            let mut total = loss / n as f64;
            for k in 0..outputs {
                for j in 0..stride {
                    let idx = k * stride + j;
                    grad[idx] = g[idx] / n as f64;
                    if j < d {
                        grad[idx] += l2 * w[idx];
                        total += 0.5 * l2 * w[idx] * w[idx];
                    }
                }
            }
            total
        };
        let result = lbfgs::minimize(objective, vec![0.0; outputs * stride], params.max_iter, params.tol);
        let w = result.x;
        Logistic {
            coef: (0..outputs).map(|k| w[k * stride..k * stride + d].to_vec()).collect(),
            intercept: (0..outputs).map(|k| w[k * stride + d]).collect(),
            n_classes,
            n_iter: result.n_iter,
        }
    }

    /// Class probabilities, one row per sample.
    pub fn predict_proba(&self, x: &Matrix) -> Matrix {
        let k = self.n_classes;
        let data: Vec<f64> = (0..x.n_rows)
            .into_par_iter()
            .flat_map_iter(|i| {
                let row = x.row(i);
                let z: Vec<f64> = self
                    .coef
                    .iter()
                    .zip(&self.intercept)
                    .map(|(c, b)| b + c.iter().zip(row).map(|(p, q)| p * q).sum::<f64>())
                    .collect();
                if self.coef.len() == 1 {
                    let p = sigmoid(z[0]);
                    vec![1.0 - p, p]
                } else {
                    softmax(&z)
                }
            })
            .collect();
        Matrix::new(x.n_rows, k, data)
    }
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

pub(crate) fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// `(softplus(z), sigmoid(z))` from one exponential; equal to the two functions bit for bit.
fn softplus_sigmoid(z: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let softplus = if z > 0.0 { z + e.ln_1p() } else { e.ln_1p() };
    let sigmoid = if z >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    (softplus, sigmoid)
}

pub(crate) fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_sigmoid_matches_the_separate_functions() {
        for z in
            [-800.0, -30.0, -1.5, -1e-300, -0.0, 0.0, 1e-300, 0.25, 2.0, 40.0, 800.0, f64::INFINITY, f64::NEG_INFINITY]
        {
            let (sp, sg) = softplus_sigmoid(z);
            assert_eq!(sp.to_bits(), softplus(z).to_bits(), "softplus({z})");
            assert_eq!(sg.to_bits(), sigmoid(z).to_bits(), "sigmoid({z})");
        }
    }

    #[test]
    fn sparse_rows_fit_the_same_coefficients_as_dense_rows() {
        // One dense column and two one-hot groups: mostly zeros.
        let n = 300;
        let mut data = Vec::new();
        let mut y2 = Vec::new();
        let mut y3 = Vec::new();
        for i in 0..n {
            let a = ((i * 37) % 101) as f64 / 50.0 - 1.0;
            let mut row = vec![a, 0.0, 0.0, 0.0, 0.0, 0.0];
            row[1 + i % 3] = 1.0;
            row[4 + (i / 7) % 2] = 1.0;
            data.extend(row);
            y2.push(usize::from(a + if i % 3 == 0 { 0.8 } else { -0.3 } > 0.1));
            y3.push((i + (i / 7) % 2) % 3);
        }
        let x = Matrix::new(n, 6, data);
        let sparse = Rows::new(&x);
        assert!(matches!(sparse, Rows::Sparse { .. }));
        let params = LogisticParams { c: 1.0, max_iter: 100, tol: 1e-6 };
        for (y, k) in [(&y2, 2), (&y3, 3)] {
            let a = Logistic::fit_rows(&Rows::Dense(&x), n, 6, y, k, params);
            let b = Logistic::fit_rows(&sparse, n, 6, y, k, params);
            assert!(a.n_iter > 2);
            assert_eq!(a, b);
        }
    }
}
