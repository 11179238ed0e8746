//! k-means clustering: greedy k-means++ initialisation and Lloyd iterations, parallel over rows.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::table::Matrix;

/// Fitted cluster centres (k × features) and the training inertia.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KMeans {
    pub centers: Matrix,
    pub inertia: f64,
    pub n_iter: usize,
}

/// Hyperparameters.
#[derive(Debug, Clone, Copy)]
pub struct KMeansParams {
    pub k: usize,
    pub max_iter: usize,
    pub tol: f64,
    pub n_init: usize,
    pub seed: u64,
}

impl KMeans {
    pub fn fit(x: &Matrix, params: KMeansParams) -> KMeans {
        let k = params.k.min(x.n_rows).max(1);
        // tol is relative to the mean feature variance, as in scikit-learn.
        let means = super::linear::column_means(x);
        let mean_var = (0..x.n_cols)
            .map(|j| (0..x.n_rows).map(|i| (x.data[i * x.n_cols + j] - means[j]).powi(2)).sum::<f64>() / x.n_rows as f64)
            .sum::<f64>()
            / x.n_cols.max(1) as f64;
        let tol = params.tol * mean_var;
        let root = Rng::new(params.seed);
        (0..params.n_init.max(1))
            .map(|run| {
                let mut rng = root.fork(run as u64);
                let mut centers = kmeans_plus_plus(x, k, &mut rng);
                let mut n_iter = 0;
                let mut labels = vec![usize::MAX; x.n_rows];
                for _ in 0..params.max_iter {
                    n_iter += 1;
                    let (new_labels, _) = assign(x, &centers);
                    let new_centers = recompute(x, &new_labels, &centers);
                    let shift: f64 = new_centers.data.iter().zip(&centers.data).map(|(a, b)| (a - b).powi(2)).sum();
                    let unchanged = new_labels == labels;
                    centers = new_centers;
                    labels = new_labels;
                    if unchanged || shift <= tol {
                        break;
                    }
                }
                let (_, inertia) = assign(x, &centers);
                KMeans { centers, inertia, n_iter }
            })
            .min_by(|a, b| a.inertia.total_cmp(&b.inertia))
            .unwrap_or_else(|| KMeans { centers: Matrix::new(0, x.n_cols, Vec::new()), inertia: 0.0, n_iter: 0 })
    }

    /// Nearest centre of every row.
    pub fn predict(&self, x: &Matrix) -> Vec<usize> {
        assign(x, &self.centers).0
    }

    /// Sum of squared distances of rows to their nearest centre.
    pub fn inertia_of(&self, x: &Matrix) -> f64 {
        assign(x, &self.centers).1
    }
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}

fn assign(x: &Matrix, centers: &Matrix) -> (Vec<usize>, f64) {
    let pairs: Vec<(usize, f64)> = (0..x.n_rows)
        .into_par_iter()
        .map(|i| {
            let row = x.row(i);
            (0..centers.n_rows)
                .map(|c| (c, sq_dist(row, centers.row(c))))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, 0.0))
        })
        .collect();
    let inertia = pairs.iter().map(|p| p.1).sum();
    (pairs.into_iter().map(|p| p.0).collect(), inertia)
}

fn recompute(x: &Matrix, labels: &[usize], old: &Matrix) -> Matrix {
    let (k, d) = (old.n_rows, old.n_cols);
    let mut sums = vec![0.0; k * d];
    let mut counts = vec![0usize; k];
    for (i, &c) in labels.iter().enumerate() {
        counts[c] += 1;
        for (s, v) in sums[c * d..(c + 1) * d].iter_mut().zip(x.row(i)) {
            *s += v;
        }
    }
    for c in 0..k {
        if counts[c] == 0 {
            sums[c * d..(c + 1) * d].copy_from_slice(old.row(c));
        } else {
            sums[c * d..(c + 1) * d].iter_mut().for_each(|s| *s /= counts[c] as f64);
        }
    }
    Matrix::new(k, d, sums)
}

/// Greedy k-means++: each new centre is the best of `2 + ln k` candidates drawn by D² sampling.
fn kmeans_plus_plus(x: &Matrix, k: usize, rng: &mut Rng) -> Matrix {
    let n = x.n_rows;
    let trials = 2 + (k as f64).ln() as usize;
    let mut centers = Vec::with_capacity(k * x.n_cols);
    let first = rng.below(n);
    centers.extend_from_slice(x.row(first));
    let mut closest: Vec<f64> = (0..n).into_par_iter().map(|i| sq_dist(x.row(i), x.row(first))).collect();
    for _ in 1..k {
        let total: f64 = closest.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let mut target = rng.next_f64() * total;
            let mut candidate = n - 1;
            for (i, &d) in closest.iter().enumerate() {
                target -= d;
                if target <= 0.0 {
                    candidate = i;
                    break;
                }
            }
            let updated: Vec<f64> =
                (0..n).into_par_iter().map(|i| closest[i].min(sq_dist(x.row(i), x.row(candidate)))).collect();
            let pot: f64 = updated.iter().sum();
            if best.as_ref().is_none_or(|b| pot < b.0) {
                best = Some((pot, candidate, updated));
            }
        }
        if let Some((_, candidate, updated)) = best {
            centers.extend_from_slice(x.row(candidate));
            closest = updated;
        }
    }
    Matrix::new(centers.len() / x.n_cols.max(1), x.n_cols, centers)
}
