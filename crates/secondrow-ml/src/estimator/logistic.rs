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

impl Logistic {
    pub fn fit(x: &Matrix, y: &[usize], n_classes: usize, params: LogisticParams) -> Logistic {
        let (n, d) = (x.n_rows, x.n_cols);
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
                        let row = x.row(i);
                        for k in 0..outputs {
                            let wk = &w[k * stride..(k + 1) * stride];
                            z[k] = wk[d] + row.iter().zip(wk).map(|(a, b)| a * b).sum::<f64>();
                        }
                        if outputs == 1 {
                            let t = if y[i] == 1 { 1.0 } else { 0.0 };
                            // log(1 + e^z) - t z, computed stably.
                            loss += softplus(z[0]) - t * z[0];
                            let r = sigmoid(z[0]) - t;
                            let gk = &mut g[..stride];
                            for (gv, xv) in gk.iter_mut().zip(row) {
                                *gv += r * xv;
                            }
                            gk[d] += r;
                        } else {
                            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
                            let lse = max + sum.ln();
                            loss += lse - z[y[i]];
                            for k in 0..outputs {
                                let p = (z[k] - lse).exp();
                                let r = p - if y[i] == k { 1.0 } else { 0.0 };
                                let gk = &mut g[k * stride..(k + 1) * stride];
                                for (gv, xv) in gk.iter_mut().zip(row) {
                                    *gv += r * xv;
                                }
                                gk[d] += r;
                            }
                        }
                    }
                    (loss, g)
                })
                .reduce(|| (0.0, vec![0.0; outputs * stride]), |mut a, b| {
                    a.0 += b.0;
                    a.1.iter_mut().zip(&b.1).for_each(|(p, q)| *p += q);
                    a
                });
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

pub(crate) fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}
