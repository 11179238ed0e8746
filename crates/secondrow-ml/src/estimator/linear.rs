//! Ordinary least squares and ridge regression, solved exactly through the normal equations on centred
//! data (Cholesky), with an unpenalised intercept as in scikit-learn.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::table::Matrix;

/// A fitted linear model `y = coef · x + intercept`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Linear {
    pub coef: Vec<f64>,
    pub intercept: f64,
    pub alpha: f64,
}

impl Linear {
    /// Fits least squares with an L2 penalty `alpha * ||coef||²` (`alpha = 0`: plain least squares).
    pub fn fit(x: &Matrix, y: &[f64], alpha: f64) -> Result<Linear> {
        if alpha < 0.0 {
            return Err(Error::arg("alpha", "must be >= 0"));
        }
        let (n, d) = (x.n_rows, x.n_cols);
        let x_mean = column_means(x);
        let y_mean = y.iter().sum::<f64>() / n as f64;
        // Gram matrix and X'y of the centred data, accumulated over row chunks in parallel.
        let chunk = 4096;
        let (gram, xty) = (0..n.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let mut gram = vec![0.0; d * d];
                let mut xty = vec![0.0; d];
                let mut row = vec![0.0; d];
                let rows = c * chunk..((c + 1) * chunk).min(n);
                for (i, &y_i) in rows.clone().zip(&y[rows]) {
                    for (j, r) in row.iter_mut().enumerate() {
                        *r = x.data[i * d + j] - x_mean[j];
                    }
                    let yi = y_i - y_mean;
                    for a in 0..d {
                        let ra = row[a];
                        xty[a] += ra * yi;
                        let g = &mut gram[a * d..a * d + a + 1];
                        for (b, gv) in g.iter_mut().enumerate() {
                            *gv += ra * row[b];
                        }
                    }
                }
                (gram, xty)
            })
            .reduce(
                || (vec![0.0; d * d], vec![0.0; d]),
                |mut a, b| {
                    a.0.iter_mut().zip(&b.0).for_each(|(p, q)| *p += q);
                    a.1.iter_mut().zip(&b.1).for_each(|(p, q)| *p += q);
                    a
                },
            );
        let mut gram = gram;
        for a in 0..d {
            for b in 0..a {
                gram[b * d + a] = gram[a * d + b];
            }
            gram[a * d + a] += alpha;
        }
        let coef = match solve_spd(&gram, &xty, d) {
            Some(c) => c,
            None => {
                // Singular (collinear features): add the smallest ridge that makes it solvable.
                let trace: f64 = (0..d).map(|a| gram[a * d + a]).sum();
                let mut jittered = gram.clone();
                for a in 0..d {
                    jittered[a * d + a] += 1e-10 * trace.max(1.0) / d as f64;
                }
                solve_spd(&jittered, &xty, d).ok_or_else(|| {
                    Error::InvalidData("linear system is singular; check for constant features".into())
                })?
            }
        };
        let intercept = y_mean - coef.iter().zip(&x_mean).map(|(c, m)| c * m).sum::<f64>();
        Ok(Linear { coef, intercept, alpha })
    }

    pub fn predict(&self, x: &Matrix) -> Vec<f64> {
        (0..x.n_rows)
            .into_par_iter()
            .map(|i| self.intercept + x.row(i).iter().zip(&self.coef).map(|(a, b)| a * b).sum::<f64>())
            .collect()
    }
}

pub(crate) fn column_means(x: &Matrix) -> Vec<f64> {
    let mut means = vec![0.0; x.n_cols];
    for i in 0..x.n_rows {
        for (m, v) in means.iter_mut().zip(x.row(i)) {
            *m += v;
        }
    }
    means.iter_mut().for_each(|m| *m /= x.n_rows.max(1) as f64);
    means
}

/// Solves `a x = b` for a symmetric positive definite `a` (d×d, row-major) by Cholesky; `None` if not SPD.
pub(crate) fn solve_spd(a: &[f64], b: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut sum = a[i * d + j];
            for k in 0..j {
                sum -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if sum <= 1e-300 * a[i * d + i].abs().max(1.0) || !sum.is_finite() {
                    return None;
                }
                l[i * d + i] = sum.sqrt();
            } else {
                l[i * d + j] = sum / l[j * d + j];
            }
        }
    }
    let mut z = vec![0.0; d];
    for i in 0..d {
        let s: f64 = (0..i).map(|k| l[i * d + k] * z[k]).sum();
        z[i] = (b[i] - s) / l[i * d + i];
    }
    let mut x = vec![0.0; d];
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| l[k * d + i] * x[k]).sum();
        x[i] = (z[i] - s) / l[i * d + i];
    }
    Some(x)
}
