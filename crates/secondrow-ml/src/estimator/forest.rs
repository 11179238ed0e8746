//! Single decision trees and random forests (bootstrap samples, random feature subsets per split,
//! trees grown in parallel with rayon, probabilities averaged).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::tree::{build_cart, Binned, CartParams, PackedTrees, Target, Tree, PREDICT_BLOCK};
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
        let scale = 1.0 / self.trees.len().max(1) as f64;
        let packed = PackedTrees::new(&self.trees);
        let mut data = vec![0.0; x.n_rows * k];
        // Blocks of rows in parallel; within a block, tree by tree.
        data.par_chunks_mut(PREDICT_BLOCK * k).enumerate().for_each(|(b, out)| {
            let start = b * PREDICT_BLOCK;
            packed.for_each_leaf(x, start..start + out.len() / k, |_, i, v| {
                let o = &mut out[(i - start) * k..(i - start + 1) * k];
                o.iter_mut().zip(v).for_each(|(o, v)| *o += v);
            });
            out.iter_mut().for_each(|o| *o *= scale);
        });
        Matrix::new(x.n_rows, k, data)
    }
}
