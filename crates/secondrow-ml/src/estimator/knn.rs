//! k-nearest neighbours (Euclidean, uniform or distance weights) by exact brute force, parallel over
//! the query rows. Fitting stores the training rows.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::table::Matrix;

/// A fitted k-NN model: the training rows and their targets (class index or value).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Knn {
    pub k: usize,
    pub distance_weights: bool,
    pub n_outputs: usize,
    pub classification: bool,
    pub x: Matrix,
    pub y: Vec<f64>,
}

impl Knn {
    pub fn fit(x: &Matrix, y: Vec<f64>, k: usize, distance_weights: bool, n_classes: Option<usize>) -> Knn {
        Knn {
            k: k.min(x.n_rows).max(1),
            distance_weights,
            n_outputs: n_classes.unwrap_or(1),
            classification: n_classes.is_some(),
            x: x.clone(),
            y,
        }
    }

    /// Class probabilities (n × classes) or values (n × 1).
    pub fn predict(&self, x: &Matrix) -> Matrix {
        let k = self.k;
        let data = (0..x.n_rows)
            .into_par_iter()
            .flat_map_iter(|i| {
                let q = x.row(i);
                // The k best (distance², index), kept sorted ascending.
                let mut best: Vec<(f64, usize)> = Vec::with_capacity(k + 1);
                for t in 0..self.x.n_rows {
                    let row = self.x.row(t);
                    let mut d = 0.0;
                    for (a, b) in q.iter().zip(row) {
                        let diff = a - b;
                        d += diff * diff;
                    }
                    if best.len() < k || d < best[best.len() - 1].0 {
                        let pos = best.partition_point(|e| e.0 <= d);
                        best.insert(pos, (d, t));
                        best.truncate(k);
                    }
                }
                let weights: Vec<f64> = best
                    .iter()
                    .map(|(d, _)| if self.distance_weights { 1.0 / d.sqrt().max(1e-12) } else { 1.0 })
                    .collect();
                let total: f64 = weights.iter().sum();
                let mut out = vec![0.0; self.n_outputs];
                for ((_, t), w) in best.iter().zip(&weights) {
                    if self.classification {
                        out[self.y[*t] as usize] += w / total;
                    } else {
                        out[0] += w * self.y[*t] / total;
                    }
                }
                out
            })
            .collect();
        Matrix::new(x.n_rows, self.n_outputs, data)
    }
}
