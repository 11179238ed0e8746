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
        let mut sq_dev = vec![0.0; x.n_cols];
        for i in 0..x.n_rows {
            for ((acc, v), m) in sq_dev.iter_mut().zip(x.row(i)).zip(&means) {
                *acc += (v - m) * (v - m);
            }
        }
        let mean_var = sq_dev.iter().sum::<f64>() / (x.n_rows.max(1) * x.n_cols.max(1)) as f64;
        let tol = params.tol * mean_var;
        let root = Rng::new(params.seed);
        (0..params.n_init.max(1))
            .map(|run| {
                let mut rng = root.fork(run as u64);
                let centers = kmeans_plus_plus(x, k, &mut rng);
                let (centers, n_iter) = lloyd(x, centers, params.max_iter.max(1), tol);
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

/// Squared Euclidean distance, summed in four independent lanes so that the compiler can vectorise it
/// (one running sum would be a chain of dependent additions).
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4.remainder().iter().zip(b4.remainder()).map(|(p, q)| (p - q) * (p - q)).sum();
    for (p, q) in a4.zip(b4) {
        for l in 0..4 {
            lanes[l] += (p[l] - q[l]) * (p[l] - q[l]);
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
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

/// Rows per parallel task in the assignment passes.
const CHUNK: usize = 4096;

/// Lloyd's iterations (assign every row to its nearest centre, move each centre to the mean of its rows)
/// until no row changes cluster or the squared centre shift is at most `tol`, computed with Hamerly's
/// bounds: per row an upper bound on the distance to its own centre and a lower bound on the distance
/// to any other, so that a row whose bounds cannot cross is not measured at all. The result is that of
/// plain Lloyd's; only the distances that cannot change an assignment are skipped.
fn lloyd(x: &Matrix, mut centers: Matrix, max_iter: usize, tol: f64) -> (Matrix, usize) {
    let (n, k, d) = (x.n_rows, centers.n_rows, centers.n_cols);
    let mut labels = vec![0u32; n];
    let mut upper = vec![0.0; n];
    let mut lower = vec![0.0; n];
    // First assignment: every distance, and the per-cluster sums the centres are kept from.
    let mut sums = sweep(&mut labels, &mut upper, &mut lower, k, d, |i, label, up, low, acc| {
        let row = x.row(i);
        let (best, d1, d2) = two_nearest(row, &centers);
        (*label, *up, *low) = (best as u32, d1, d2);
        acc.add(best, row, 1.0);
    });
    let mut n_iter = 0;
    loop {
        n_iter += 1;
        // Move the centres and loosen every row's bounds by how far they moved.
        let mut moved = vec![0.0; k];
        let mut shift_total = 0.0;
        let mut next = centers.data.clone();
        for c in 0..k {
            if sums.counts[c] > 0.0 {
                let center = &mut next[c * d..(c + 1) * d];
                for (v, s) in center.iter_mut().zip(&sums.sums[c * d..(c + 1) * d]) {
                    *v = s / sums.counts[c];
                }
                let shift = sq_dist(center, centers.row(c));
                shift_total += shift;
                moved[c] = shift.sqrt();
            }
        }
        centers = Matrix::new(k, d, next);
        if shift_total <= tol || n_iter >= max_iter {
            break;
        }
        let (far, far_moved) = moved.iter().enumerate().fold((0, 0.0), |b, (c, &m)| if m > b.1 { (c, m) } else { b });
        let second_moved = moved.iter().enumerate().filter(|&(c, _)| c != far).map(|(_, &m)| m).fold(0.0, f64::max);
        // Half the distance from each centre to its nearest other centre: closer than that, a row can't switch.
        let half_gap: Vec<f64> = (0..k)
            .map(|a| {
                (0..k)
                    .filter(|&b| b != a)
                    .map(|b| sq_dist(centers.row(a), centers.row(b)))
                    .fold(f64::INFINITY, f64::min)
                    .sqrt()
                    / 2.0
            })
            .collect();
        let delta = sweep(&mut labels, &mut upper, &mut lower, k, d, |i, label, up, low, acc| {
            let own = *label as usize;
            *up += moved[own];
            *low -= if own == far { second_moved } else { far_moved };
            let bound = half_gap[own].max(*low);
            if *up <= bound {
                return;
            }
            let row = x.row(i);
            *up = sq_dist(row, centers.row(own)).sqrt();
            if *up <= bound {
                return;
            }
            let (best, d1, d2) = two_nearest(row, &centers);
            (*up, *low) = (d1, d2);
            if best != own {
                *label = best as u32;
                acc.add(best, row, 1.0);
                acc.add(own, row, -1.0);
                acc.changed += 1;
            }
        });
        if delta.changed == 0 {
            n_iter += 1; // this assignment pass counts as the iteration that found nothing to move
            break;
        }
        sums = sums.merge(delta);
    }
    (centers, n_iter)
}

/// Visits every row `i` with its label and bounds, in parallel chunks, and merges what the visits add
/// to their chunk's [`ClusterSums`].
fn sweep(
    labels: &mut [u32],
    upper: &mut [f64],
    lower: &mut [f64],
    k: usize,
    d: usize,
    visit: impl Fn(usize, &mut u32, &mut f64, &mut f64, &mut ClusterSums) + Sync,
) -> ClusterSums {
    labels
        .par_chunks_mut(CHUNK)
        .zip(upper.par_chunks_mut(CHUNK))
        .zip(lower.par_chunks_mut(CHUNK))
        .enumerate()
        .map(|(c, ((labels, upper), lower))| {
            let mut acc = ClusterSums::new(k, d);
            for (t, ((label, up), low)) in labels.iter_mut().zip(upper).zip(lower).enumerate() {
                visit(c * CHUNK + t, label, up, low, &mut acc);
            }
            acc
        })
        .reduce(|| ClusterSums::new(k, d), ClusterSums::merge)
}

/// Per-cluster coordinate sums and row counts (or their changes), and how many rows changed cluster.
struct ClusterSums {
    d: usize,
    sums: Vec<f64>,
    counts: Vec<f64>,
    changed: usize,
}

impl ClusterSums {
    fn new(k: usize, d: usize) -> ClusterSums {
        ClusterSums { d, sums: vec![0.0; k * d], counts: vec![0.0; k], changed: 0 }
    }

    fn add(&mut self, cluster: usize, row: &[f64], sign: f64) {
        for (s, v) in self.sums[cluster * self.d..(cluster + 1) * self.d].iter_mut().zip(row) {
            *s += sign * v;
        }
        self.counts[cluster] += sign;
    }

    fn merge(mut self, other: ClusterSums) -> ClusterSums {
        self.sums.iter_mut().zip(&other.sums).for_each(|(a, b)| *a += b);
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.changed += other.changed;
        self
    }
}

/// The nearest centre of `row`, its distance, and the distance to the second nearest (∞ if k = 1).
fn two_nearest(row: &[f64], centers: &Matrix) -> (usize, f64, f64) {
    let (mut best, mut d1, mut d2) = (0, f64::INFINITY, f64::INFINITY);
    for c in 0..centers.n_rows {
        let dist = sq_dist(row, centers.row(c));
        if dist < d1 {
            (best, d2, d1) = (c, d1, dist);
        } else if dist < d2 {
            d2 = dist;
        }
    }
    (best, d1.sqrt(), d2.sqrt())
}

/// Greedy k-means++: each new centre is the best of `2 + ln k` candidates drawn by D² sampling
/// (the one that lowers the potential most), as scikit-learn does it.
fn kmeans_plus_plus(x: &Matrix, k: usize, rng: &mut Rng) -> Matrix {
    let n = x.n_rows;
    let trials = 2 + (k as f64).ln() as usize;
    let mut centers = Vec::with_capacity(k * x.n_cols);
    let first = rng.below(n);
    centers.extend_from_slice(x.row(first));
    let mut closest: Vec<f64> = (0..n).into_par_iter().map(|i| sq_dist(x.row(i), x.row(first))).collect();
    let mut cumulative = vec![0.0; n];
    for _ in 1..k {
        let mut total = 0.0;
        for (c, d) in cumulative.iter_mut().zip(&closest) {
            total += d;
            *c = total;
        }
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                let target = rng.next_f64() * total;
                cumulative.partition_point(|&c| c < target).min(n - 1)
            })
            .collect();
        // One pass over the rows scores every candidate: the potential if it were added.
        let potentials = (0..n)
            .into_par_iter()
            .fold(
                || vec![0.0; trials],
                |mut pot, i| {
                    for (p, &c) in pot.iter_mut().zip(&candidates) {
                        *p += closest[i].min(sq_dist(x.row(i), x.row(c)));
                    }
                    pot
                },
            )
            .reduce(|| vec![0.0; trials], |a, b| a.iter().zip(&b).map(|(p, q)| p + q).collect());
        let best = (0..trials)
            .min_by(|&a, &b| potentials[a].total_cmp(&potentials[b]))
            .map_or(candidates[0], |t| candidates[t]);
        centers.extend_from_slice(x.row(best));
        closest.par_iter_mut().enumerate().for_each(|(i, d)| *d = d.min(sq_dist(x.row(i), x.row(best))));
    }
    Matrix::new(centers.len() / x.n_cols.max(1), x.n_cols, centers)
}
