//! k-nearest neighbours (Euclidean, uniform or distance weights) by brute force in blocks, parallel
//! over blocks of query rows. Fitting stores the training rows.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::mlp::gemm;
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
    ///
    /// Blocked brute force: for a block of queries and a block of training rows, `|t|² - 2 q·t`
    /// (which ranks like the distance) comes from one matrix product; a sorted list per query keeps
    /// the k best, and the winners' exact distances give the weights.
    pub fn predict(&self, x: &Matrix) -> Matrix {
        let (k, d, n) = (self.k, self.x.n_cols, self.x.n_rows);
        let train_sq: Vec<f64> = (0..n).map(|t| self.x.row(t).iter().map(|v| v * v).sum()).collect();
        let outputs = self.n_outputs;
        let mut data = vec![0.0; x.n_rows * outputs];
        data.par_chunks_mut(QUERY_BLOCK * outputs).enumerate().for_each(|(b, out)| {
            let q0 = b * QUERY_BLOCK;
            let m = out.len() / outputs;
            let queries = &x.data[q0 * d..(q0 + m) * d];
            let mut best: Vec<Vec<(f64, usize)>> = vec![Vec::with_capacity(k + 1); m];
            let mut dots = vec![0.0; m * TRAIN_BLOCK];
            for t0 in (0..n).step_by(TRAIN_BLOCK) {
                let tb = TRAIN_BLOCK.min(n - t0);
                gemm(m, d, tb, queries, false, &self.x.data[t0 * d..(t0 + tb) * d], true, &mut dots[..m * tb]);
                for (i, list) in best.iter_mut().enumerate() {
                    for (t, &dot) in dots[i * tb..(i + 1) * tb].iter().enumerate() {
                        let score = train_sq[t0 + t] - 2.0 * dot;
                        if list.len() < k || score < list[list.len() - 1].0 {
                            let pos = list.partition_point(|e| e.0 <= score);
                            list.insert(pos, (score, t0 + t));
                            list.truncate(k);
                        }
                    }
                }
            }
            for (i, list) in best.iter().enumerate() {
                let q = &queries[i * d..(i + 1) * d];
                let weights: Vec<f64> = list
                    .iter()
                    .map(|&(_, t)| {
                        if self.distance_weights {
                            let dist: f64 = q.iter().zip(self.x.row(t)).map(|(a, b)| (a - b) * (a - b)).sum();
                            1.0 / dist.sqrt().max(1e-12)
                        } else {
                            1.0
                        }
                    })
                    .collect();
                let total: f64 = weights.iter().sum();
                let o = &mut out[i * outputs..(i + 1) * outputs];
                for (&(_, t), w) in list.iter().zip(&weights) {
                    if self.classification {
                        o[self.y[t] as usize] += w / total;
                    } else {
                        o[0] += w * self.y[t] / total;
                    }
                }
            }
        });
        Matrix::new(x.n_rows, self.n_outputs, data)
    }
}

/// Queries per parallel task, and training rows per matrix product.
const QUERY_BLOCK: usize = 64;
const TRAIN_BLOCK: usize = 2048;
