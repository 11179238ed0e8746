//! A small multi-layer perceptron: ReLU hidden layers, a sigmoid (two classes), softmax (more classes)
//! or identity (regression) output, trained with Adam on shuffled mini-batches and an L2 penalty,
//! following scikit-learn's `MLPClassifier`/`MLPRegressor` (Glorot initialisation, `alpha`, `batch_size`).
//! Matrix products go through `matrixmultiply`'s blocked GEMM.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::logistic::{sigmoid, softmax};
use crate::rng::Rng;
use crate::table::Matrix;

/// Output layer activation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MlpOutput {
    Sigmoid,
    Softmax,
    Identity,
}

/// Fitted weights: `weights[l]` is (in × out) row-major, `biases[l]` has `out` entries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mlp {
    pub sizes: Vec<usize>,
    pub weights: Vec<Vec<f64>>,
    pub biases: Vec<Vec<f64>>,
    pub output: MlpOutput,
    pub final_loss: f64,
}

/// Hyperparameters.
#[derive(Debug, Clone)]
pub struct MlpParams {
    pub hidden: Vec<usize>,
    pub learning_rate: f64,
    pub alpha: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub seed: u64,
}

/// c (m×n) = a (m×k) · b (k×n), with a and b optionally transposed in storage.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(m: usize, k: usize, n: usize, a: &[f64], a_t: bool, b: &[f64], b_t: bool, c: &mut [f64]) {
    let (rsa, csa) = if a_t { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if b_t { (1, k as isize) } else { (n as isize, 1) };
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the asserts above guarantee every index the strides reach is in bounds.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

impl Mlp {
    /// Fits on `x`; `targets` is n × outputs (one-hot classes, a 0/1 column, or values).
    pub fn fit(x: &Matrix, targets: &Matrix, output: MlpOutput, params: &MlpParams) -> Mlp {
        let mut sizes = vec![x.n_cols];
        sizes.extend(params.hidden.iter().copied().filter(|&h| h > 0));
        sizes.push(targets.n_cols);
        let n_layers = sizes.len() - 1;
        let mut rng = Rng::new(params.seed);
        let mut weights = Vec::with_capacity(n_layers);
        let mut biases = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let (fan_in, fan_out) = (sizes[l], sizes[l + 1]);
            let factor = if l == n_layers - 1 && output == MlpOutput::Sigmoid { 2.0 } else { 6.0 };
            let bound = (factor / (fan_in + fan_out) as f64).sqrt();
            weights.push((0..fan_in * fan_out).map(|_| (2.0 * rng.next_f64() - 1.0) * bound).collect::<Vec<f64>>());
            biases.push((0..fan_out).map(|_| (2.0 * rng.next_f64() - 1.0) * bound).collect::<Vec<f64>>());
        }
        let mut m_w: Vec<Vec<f64>> = weights.iter().map(|w| vec![0.0; w.len()]).collect();
        let mut v_w = m_w.clone();
        let mut m_b: Vec<Vec<f64>> = biases.iter().map(|b| vec![0.0; b.len()]).collect();
        let mut v_b = m_b.clone();
        let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8);
        let n = x.n_rows;
        let batch = params.batch_size.clamp(1, n.max(1));
        let mut order: Vec<usize> = (0..n).collect();
        let mut step = 0i32;
        let mut final_loss = 0.0;
        // Per-batch buffers: activations per layer and deltas.
        let mut acts: Vec<Vec<f64>> = sizes.iter().map(|&s| vec![0.0; batch * s]).collect();
        let mut deltas: Vec<Vec<f64>> = sizes.iter().map(|&s| vec![0.0; batch * s]).collect();
        let mut grad_w: Vec<Vec<f64>> = weights.iter().map(|w| vec![0.0; w.len()]).collect();
        let mut grad_b: Vec<Vec<f64>> = biases.iter().map(|b| vec![0.0; b.len()]).collect();
        for _ in 0..params.epochs {
            rng.shuffle(&mut order);
            let mut epoch_loss = 0.0;
            for chunk in order.chunks(batch) {
                let bs = chunk.len();
                for (r, &i) in chunk.iter().enumerate() {
                    acts[0][r * sizes[0]..(r + 1) * sizes[0]].copy_from_slice(x.row(i));
                }
                // Forward.
                for l in 0..n_layers {
                    let (head, tail) = acts.split_at_mut(l + 1);
                    let (input, out) = (&head[l], &mut tail[0]);
                    gemm(bs, sizes[l], sizes[l + 1], input, false, &weights[l], false, out);
                    let width = sizes[l + 1];
                    for r in 0..bs {
                        let row = &mut out[r * width..(r + 1) * width];
                        for (v, b) in row.iter_mut().zip(&biases[l]) {
                            *v += b;
                        }
                        if l < n_layers - 1 {
                            row.iter_mut().for_each(|v| *v = v.max(0.0));
                        } else {
                            match output {
                                MlpOutput::Sigmoid => row.iter_mut().for_each(|v| *v = sigmoid(*v)),
                                MlpOutput::Softmax => {
                                    let s = softmax(row);
                                    row.copy_from_slice(&s);
                                }
                                MlpOutput::Identity => {}
                            }
                        }
                    }
                }
                // Output delta (prediction - target) / batch, and the batch loss.
                let width = sizes[n_layers];
                let out = &acts[n_layers];
                for (r, &i) in chunk.iter().enumerate() {
                    let t = targets.row(i);
                    for c in 0..width {
                        let p = out[r * width + c];
                        deltas[n_layers][r * width + c] = (p - t[c]) / bs as f64;
                        epoch_loss += match output {
                            MlpOutput::Sigmoid => {
                                let p = p.clamp(1e-15, 1.0 - 1e-15);
                                -(t[c] * p.ln() + (1.0 - t[c]) * (1.0 - p).ln())
                            }
                            MlpOutput::Softmax => -t[c] * p.max(1e-15).ln(),
                            MlpOutput::Identity => 0.5 * (p - t[c]).powi(2),
                        };
                    }
                }
                // Backward.
                for l in (0..n_layers).rev() {
                    gemm(sizes[l], bs, sizes[l + 1], &acts[l], true, &deltas[l + 1], false, &mut grad_w[l]);
                    for (g, w) in grad_w[l].iter_mut().zip(&weights[l]) {
                        *g += params.alpha * w / bs as f64;
                    }
                    let width = sizes[l + 1];
                    grad_b[l].iter_mut().for_each(|g| *g = 0.0);
                    for r in 0..bs {
                        for (g, d) in grad_b[l].iter_mut().zip(&deltas[l + 1][r * width..(r + 1) * width]) {
                            *g += d;
                        }
                    }
                    if l > 0 {
                        let (head, tail) = deltas.split_at_mut(l + 1);
                        gemm(bs, sizes[l + 1], sizes[l], &tail[0], false, &weights[l], true, &mut head[l]);
                        for (d, a) in head[l][..bs * sizes[l]].iter_mut().zip(&acts[l][..bs * sizes[l]]) {
                            if *a <= 0.0 {
                                *d = 0.0;
                            }
                        }
                    }
                }
                // Adam.
                step += 1;
                let lr = params.learning_rate * (1.0 - beta2.powi(step)).sqrt() / (1.0 - beta1.powi(step));
                for l in 0..n_layers {
                    adam(&mut weights[l], &grad_w[l], &mut m_w[l], &mut v_w[l], lr, beta1, beta2, eps);
                    adam(&mut biases[l], &grad_b[l], &mut m_b[l], &mut v_b[l], lr, beta1, beta2, eps);
                }
            }
            final_loss = epoch_loss / n.max(1) as f64;
        }
        Mlp { sizes, weights, biases, output, final_loss }
    }

    /// Network outputs (n × outputs): probabilities or values.
    pub fn predict(&self, x: &Matrix) -> Matrix {
        let n_layers = self.weights.len();
        let width = self.sizes[n_layers];
        let data = (0..x.n_rows)
            .into_par_iter()
            .flat_map_iter(|i| {
                let mut a = x.row(i).to_vec();
                for l in 0..n_layers {
                    let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
                    let mut z = self.biases[l].clone();
                    for (p, &av) in a.iter().enumerate().take(fan_in) {
                        let w = &self.weights[l][p * fan_out..(p + 1) * fan_out];
                        for (zv, wv) in z.iter_mut().zip(w) {
                            *zv += av * wv;
                        }
                    }
                    if l < n_layers - 1 {
                        z.iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                    a = z;
                }
                match self.output {
                    MlpOutput::Sigmoid => a.iter().map(|&v| sigmoid(v)).collect(),
                    MlpOutput::Softmax => softmax(&a),
                    MlpOutput::Identity => a,
                }
            })
            .collect();
        Matrix::new(x.n_rows, width, data)
    }
}

#[allow(clippy::too_many_arguments)]
fn adam(w: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64], lr: f64, beta1: f64, beta2: f64, eps: f64) {
    for t in 0..w.len() {
        m[t] = beta1 * m[t] + (1.0 - beta1) * g[t];
        v[t] = beta2 * v[t] + (1.0 - beta2) * g[t] * g[t];
        w[t] -= lr * m[t] / (v[t].sqrt() + eps);
    }
}
