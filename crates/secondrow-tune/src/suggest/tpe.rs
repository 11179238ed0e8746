//! Tree-structured Parzen estimators.
//!
//! `tpe` follows hyperopt (Katib's backend): the best ⌈gamma·√n⌉ trials (at most 25) form the "good"
//! set, each dimension gets its own Parzen mixture (one truncated normal per observation, bandwidth =
//! the larger gap to its sorted neighbours, clipped to [1/min(100, n+1), 1], plus a prior component of
//! weight `prior_weight`), `n_EI_candidates` draws from l(x) per dimension, and each dimension keeps
//! the draw with the largest l(x)/g(x) — independently, as hyperopt does.
//!
//! `multivariate-tpe` follows Optuna's `TPESampler(multivariate=True, constant_liar=True)`: the good set
//! is the best min(⌈0.1·n⌉, 25), one joint kernel per observation with Scott-style bandwidth
//! 0.2·n^(−1/(d+4)) per dimension, pending trials count as bad (constant liar), and the candidate with
//! the largest joint l/g wins. Both are random until there are enough finished trials.

use super::{rng, History, Settings, Suggester, Trial};
use crate::error::Result;
use crate::experiment::Direction;
use crate::math::{trunc_normal, Mixture};
use crate::space::{Assignment, Space};
use rand::Rng;

pub struct Tpe {
    space: Space,
    dir: Direction,
    seed: u64,
    multivariate: bool,
    gamma: f64,
    prior_weight: f64,
    candidates: usize,
    startup: usize,
}

impl Tpe {
    pub(crate) fn independent(space: Space, dir: Direction, s: &Settings) -> Result<Tpe> {
        Ok(Tpe {
            space,
            dir,
            seed: s.seed()?,
            multivariate: false,
            gamma: s.f64("gamma", 0.25, |g| g > 0.0 && g < 1.0, "in (0, 1)")?,
            prior_weight: s.f64("prior_weight", 1.0, |w| w > 0.0, "greater than 0")?,
            candidates: s.int("n_EI_candidates", 24, |n| n > 0, "an integer > 0")? as usize,
            startup: 1,
        })
    }

    pub(crate) fn multivariate(space: Space, dir: Direction, s: &Settings) -> Result<Tpe> {
        Ok(Tpe {
            space,
            dir,
            seed: s.seed()?,
            multivariate: true,
            gamma: 0.1,
            prior_weight: 1.0,
            candidates: s.int("n_ei_candidates", 24, |n| n > 0, "an integer > 0")? as usize,
            startup: s.int("n_startup_trials", 10, |n| n >= 0, "an integer ≥ 0")? as usize,
        })
    }

    /// Split into (good, bad) cube points.
    fn split(&self, h: &History) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let mut done: Vec<&(Vec<f64>, f64)> = h.done.iter().collect();
        done.sort_by(|a, b| a.1.total_cmp(&b.1));
        let n = done.len();
        let n_good = if self.multivariate {
            ((self.gamma * n as f64).ceil() as usize).min(25)
        } else {
            ((self.gamma * (n as f64).sqrt()).ceil() as usize).min(25)
        };
        let n_good = n_good.clamp(1, n.max(1));
        let good = done.iter().take(n_good).map(|d| d.0.clone()).collect();
        let mut bad: Vec<Vec<f64>> = done.iter().skip(n_good).map(|d| d.0.clone()).collect();
        if self.multivariate {
            bad.extend(h.pending.iter().cloned());
        }
        (good, bad)
    }

    fn suggest_independent(&self, good: &[Vec<f64>], bad: &[Vec<f64>], r: &mut impl Rng) -> Vec<f64> {
        (0..self.space.dim())
            .map(|d| {
                let l = parzen(good.iter().map(|p| p[d]).collect(), self.prior_weight);
                let g = parzen(bad.iter().map(|p| p[d]).collect(), self.prior_weight);
                let mut best = (f64::NEG_INFINITY, 0.5);
                for _ in 0..self.candidates {
                    let (mix, w) = &l;
                    let k = mix.pick(r, w);
                    let x = trunc_normal(r, mix.mu[k], mix.sigma[k]);
                    let score = mix.log_pdf(x) - g.0.log_pdf(x);
                    if score > best.0 {
                        best = (score, x);
                    }
                }
                best.1
            })
            .collect()
    }

    fn suggest_joint(&self, good: &[Vec<f64>], bad: &[Vec<f64>], r: &mut impl Rng) -> Vec<f64> {
        let d = self.space.dim();
        let l = Joint::new(good, d, self.prior_weight);
        let g = Joint::new(bad, d, self.prior_weight);
        let mut best = (f64::NEG_INFINITY, vec![0.5; d]);
        for _ in 0..self.candidates {
            let x = l.sample(r);
            let score = l.log_pdf(&x) - g.log_pdf(&x);
            if score > best.0 {
                best = (score, x);
            }
        }
        best.1
    }
}

/// hyperopt's adaptive Parzen estimator over one cube coordinate, with its component weights.
fn parzen(mut xs: Vec<f64>, prior_weight: f64) -> (Mixture, Vec<f64>) {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    // Insert the prior (mu 0.5, sigma 1) in sorted position.
    let pos = xs.partition_point(|&x| x < 0.5);
    let mut mu = xs.clone();
    mu.insert(pos, 0.5);
    let m = mu.len();
    let mut sigma = vec![1.0; m];
    if m > 1 {
        for i in 0..m {
            let left = if i > 0 { mu[i] - mu[i - 1] } else { mu[i] };
            let right = if i + 1 < m { mu[i + 1] - mu[i] } else { 1.0 - mu[i] };
            sigma[i] = left.max(right);
        }
    }
    let min_s = 1.0 / (100f64).min(1.0 + n as f64);
    for s in &mut sigma {
        *s = s.clamp(min_s, 1.0);
    }
    sigma[pos] = 1.0;
    let mut w = vec![1.0; m];
    w[pos] = prior_weight;
    (Mixture::new(mu, sigma, w.clone()), w)
}

/// Optuna-style multivariate kernel density with a prior component.
struct Joint {
    points: Vec<Vec<f64>>,
    sigma: f64,
    weights: Vec<f64>,
    /// Per component and dimension, log of its normaliser inside [0, 1].
    log_norm: Vec<f64>,
}

impl Joint {
    fn new(points: &[Vec<f64>], d: usize, prior_weight: f64) -> Joint {
        let n = points.len();
        let sigma = (0.2 * ((n.max(1)) as f64).powf(-1.0 / (d as f64 + 4.0))).clamp(0.01, 1.0);
        let mut pts = points.to_vec();
        pts.push(vec![0.5; d]);
        let mut weights = vec![1.0; n];
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        let log_norm = pts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let s = if i == n { 1.0 } else { sigma };
                (weights[i] / total).ln()
                    - p.iter()
                        .map(|m| {
                            ((crate::math::norm_cdf((1.0 - m) / s) - crate::math::norm_cdf(-m / s)).max(1e-12) * s).ln()
                        })
                        .sum::<f64>()
            })
            .collect();
        Joint { points: pts, sigma, weights, log_norm }
    }

    fn sigma_of(&self, i: usize) -> f64 {
        if i + 1 == self.points.len() {
            1.0
        } else {
            self.sigma
        }
    }

    fn sample(&self, r: &mut impl Rng) -> Vec<f64> {
        let total: f64 = self.weights.iter().sum();
        let mut u = r.gen::<f64>() * total;
        let mut k = self.points.len() - 1;
        for (i, w) in self.weights.iter().enumerate() {
            u -= w;
            if u <= 0.0 {
                k = i;
                break;
            }
        }
        let s = self.sigma_of(k);
        self.points[k].iter().map(|&m| trunc_normal(r, m, s)).collect()
    }

    fn log_pdf(&self, x: &[f64]) -> f64 {
        let mut acc = crate::math::LogSumExp::default();
        for (i, p) in self.points.iter().enumerate() {
            let s = self.sigma_of(i);
            acc.add(self.log_norm[i] - 0.5 * p.iter().zip(x).map(|(m, v)| ((v - m) / s).powi(2)).sum::<f64>());
        }
        acc.value()
    }
}

impl Suggester for Tpe {
    fn suggest(&self, trials: &[Trial], n: usize) -> Result<Vec<Assignment>> {
        let mut h = History::new(&self.space, trials, self.dir);
        let mut r = rng(self.seed, trials.len());
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let u = if h.done.len() < self.startup.max(1) {
                self.space.sample_prior(&mut r)
            } else {
                let (good, bad) = self.split(&h);
                if self.multivariate {
                    self.suggest_joint(&good, &bad, &mut r)
                } else {
                    self.suggest_independent(&good, &bad, &mut r)
                }
            };
            h.pending.push(u.clone());
            out.push(self.space.decode(&u));
        }
        Ok(out)
    }
    fn name(&self) -> &'static str {
        if self.multivariate {
            "multivariate-tpe"
        } else {
            "tpe"
        }
    }
}
