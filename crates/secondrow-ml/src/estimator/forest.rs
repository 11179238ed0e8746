//! Single decision trees and random forests (bootstrap samples, random feature subsets per split,
//! trees grown in parallel with rayon, probabilities averaged).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::tree::{build_cart, Binned, CartParams, Target, Tree};
use crate::rng::Rng;
use crate::table::Matrix;

/// An ensemble of trees whose outputs are averaged (one tree for a plain decision tree).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Forest {
    pub trees: Vec<Tree>,
}

/// Forest hyperparameters.
#[derive(Debug, Clone, Copy)]
pub struct ForestParams {
    pub n_trees: usize,
    pub bootstrap: bool,
    pub cart: CartParams,
    pub max_bins: usize,
    pub seed: u64,
}

impl Forest {
    pub fn fit(x: &Matrix, target: Target, params: ForestParams) -> Forest {
        let binned = Binned::new(x, params.max_bins);
        let n = x.n_rows;
        let root = Rng::new(params.seed);
        let trees = (0..params.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = root.fork(t as u64);
                let mut weights = vec![0.0; n];
                let rows: Vec<u32> = if params.bootstrap {
                    for _ in 0..n {
                        weights[rng.below(n)] += 1.0;
                    }
                    (0..n as u32).filter(|&r| weights[r as usize] > 0.0).collect()
                } else {
                    weights.iter_mut().for_each(|w| *w = 1.0);
                    (0..n as u32).collect()
                };
                build_cart(&binned, target, rows, &weights, params.cart, &mut rng)
            })
            .collect();
        Forest { trees }
    }

    /// Averaged outputs: class probabilities (n × classes) or values (n × 1).
    pub fn predict(&self, x: &Matrix) -> Matrix {
        let k = self.trees.first().map_or(1, |t| t.n_outputs);
        let n_trees = self.trees.len().max(1) as f64;
        let data = (0..x.n_rows)
            .into_par_iter()
            .flat_map_iter(|i| {
                let row = x.row(i);
                let mut out = vec![0.0; k];
                for tree in &self.trees {
                    for (o, v) in out.iter_mut().zip(tree.predict_row(row)) {
                        *o += v;
                    }
                }
                out.into_iter().map(move |v| v / n_trees)
            })
            .collect();
        Matrix::new(x.n_rows, k, data)
    }
}
