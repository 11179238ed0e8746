//! `bayesianoptimization`: a Gaussian process (Matérn 5/2 kernel with one length scale per parameter,
//! fitted by maximising the log marginal likelihood over a coarse-to-fine search) on the standardised
//! losses, and an acquisition function maximised over random and local candidates.
//!
//! Settings as Katib's scikit-optimize service: `base_estimator` (only `GP`), `n_initial_points` (10)
//! random trials first, `acq_func` `EI` / `PI` / `LCB` (ξ = 0.01, κ = 1.96 as skopt) or `gp_hedge`
//! (here: the three in turn, one per suggestion — a deterministic portfolio instead of skopt's
//! softmax over past gains), `acq_optimizer` (accepted; the optimiser is always sampling + local
//! refinement). Pending trials and earlier picks of the same request are added with the best loss
//! seen so far ("constant liar"), so a batch spreads out.

use super::{rng, History, Settings, Suggester, Trial};
use crate::error::{Result, TuneError};
use crate::experiment::Direction;
use crate::math::{cholesky, norm_cdf, norm_pdf, solve_lower, solve_upper_t};
use crate::space::{Assignment, Space};
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Acq {
    Ei,
    Pi,
    Lcb,
    Hedge,
}

pub struct BayesOpt {
    space: Space,
    dir: Direction,
    seed: u64,
    initial: usize,
    acq: Acq,
}

impl BayesOpt {
    pub(crate) fn new(space: Space, dir: Direction, s: &Settings) -> Result<BayesOpt> {
        if let Some((path, v)) = s.str("base_estimator") {
            match v {
                "GP" => {}
                "RF" | "ET" | "GBRT" => {
                    return Err(TuneError::unsupported(path, format!("base_estimator {v:?} (only GP)")))
                }
                _ => {
                    return Err(TuneError::invalid(
                        path,
                        format!("base_estimator must be GP, RF, ET or GBRT, got {v:?}"),
                    ))
                }
            }
        }
        let acq = match s.str("acq_func") {
            None => Acq::Hedge,
            Some((path, v)) => match v {
                "gp_hedge" => Acq::Hedge,
                "EI" => Acq::Ei,
                "PI" => Acq::Pi,
                "LCB" => Acq::Lcb,
                "EIps" | "PIps" => {
                    return Err(TuneError::unsupported(path, format!("acq_func {v:?} (it needs trial durations)")))
                }
                _ => {
                    return Err(TuneError::invalid(
                        path,
                        format!("acq_func must be one of gp_hedge, LCB, EI, PI, EIps, PIps, got {v:?}"),
                    ))
                }
            },
        };
        if let Some((path, v)) = s.str("acq_optimizer") {
            if !["auto", "sampling", "lbfgs"].contains(&v) {
                return Err(TuneError::invalid(
                    path,
                    format!("acq_optimizer must be auto, sampling or lbfgs, got {v:?}"),
                ));
            }
        }
        let initial = s.int("n_initial_points", 10, |n| n >= 1, "an integer ≥ 1")? as usize;
        Ok(BayesOpt { space, dir, seed: s.seed()?, initial, acq })
    }
}

/// A fitted GP on standardised targets.
pub(crate) struct Gp {
    x: Vec<Vec<f64>>,
    inv_ls: Vec<f64>,
    noise: f64,
    l: Vec<f64>,
    alpha: Vec<f64>,
    pub y_best: f64,
}

fn matern52(a: &[f64], b: &[f64], inv_ls: &[f64]) -> f64 {
    let r2: f64 = a.iter().zip(b).zip(inv_ls).map(|((x, y), il)| ((x - y) * il).powi(2)).sum();
    let r = (5.0 * r2).sqrt();
    (1.0 + r + 5.0 * r2 / 3.0) * (-r).exp()
}

impl Gp {
    fn factor(x: &[Vec<f64>], y: &[f64], inv_ls: &[f64], noise: f64) -> Option<(Vec<f64>, Vec<f64>, f64)> {
        let n = x.len();
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = matern52(&x[i], &x[j], inv_ls);
                k[i * n + j] = v;
                k[j * n + i] = v;
            }
            k[i * n + i] += noise;
        }
        let l = cholesky(&k, n)?;
        let alpha = solve_upper_t(&l, n, &solve_lower(&l, n, y));
        let lml = -0.5 * y.iter().zip(&alpha).map(|(a, b)| a * b).sum::<f64>()
            - (0..n).map(|i| l[i * n + i].ln()).sum::<f64>();
        Some((l, alpha, lml))
    }

    /// Fit length scales (per dimension) and noise on standardised `y`.
    pub fn fit(x: Vec<Vec<f64>>, y_raw: &[f64]) -> Option<Gp> {
        let n = y_raw.len();
        let mean = y_raw.iter().sum::<f64>() / n as f64;
        let sd = (y_raw.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt().max(1e-12);
        let y: Vec<f64> = y_raw.iter().map(|v| (v - mean) / sd).collect();
        let d = x.first()?.len();
        let eval = |ils: &[f64], noise: f64| Gp::factor(&x, &y, ils, noise).map(|f| f.2).unwrap_or(f64::NEG_INFINITY);
        // Coarse: one shared length scale and a noise level.
        let mut best = (f64::NEG_INFINITY, vec![1.0; d], 1e-4);
        for ls in [0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 2.0] {
            for noise in [1e-6, 1e-4, 1e-2] {
                let ils = vec![1.0 / ls; d];
                let v = eval(&ils, noise);
                if v > best.0 {
                    best = (v, ils, noise);
                }
            }
        }
        // Fine: each dimension's scale up and down, until no move helps (three rounds at most).
        for factor in [2.0, 1.41, 1.19] {
            let mut improved = true;
            let mut rounds = 0;
            while improved && rounds < 3 {
                improved = false;
                rounds += 1;
                for k in 0..d {
                    for f in [factor, 1.0 / factor] {
                        let mut ils = best.1.clone();
                        ils[k] = (ils[k] * f).clamp(0.05, 200.0);
                        let v = eval(&ils, best.2);
                        if v > best.0 + 1e-9 {
                            best = (v, ils, best.2);
                            improved = true;
                        }
                    }
                }
            }
        }
        let (l, alpha, _) = Gp::factor(&x, &y, &best.1, best.2)?;
        let y_best = y.iter().copied().fold(f64::INFINITY, f64::min);
        Some(Gp { x, inv_ls: best.1, noise: best.2, l, alpha, y_best })
    }

    /// Posterior mean and standard deviation at `p`.
    pub fn predict(&self, p: &[f64]) -> (f64, f64) {
        let n = self.x.len();
        let k: Vec<f64> = self.x.iter().map(|xi| matern52(xi, p, &self.inv_ls)).collect();
        let mu = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = solve_lower(&self.l, n, &k);
        let var = (1.0 + self.noise - v.iter().map(|x| x * x).sum::<f64>()).max(1e-12);
        (mu, var.sqrt())
    }
}

fn acquisition(acq: Acq, gp: &Gp, p: &[f64]) -> f64 {
    let (mu, s) = gp.predict(p);
    let imp = gp.y_best - mu - 0.01;
    let z = imp / s;
    match acq {
        Acq::Ei | Acq::Hedge => imp * norm_cdf(z) + s * norm_pdf(z),
        Acq::Pi => norm_cdf(z),
        Acq::Lcb => -(mu - 1.96 * s),
    }
}

impl BayesOpt {
    fn one(&self, h: &History, acq: Acq, r: &mut impl Rng) -> Vec<f64> {
        let liar = h.done.iter().map(|d| d.1).fold(f64::INFINITY, f64::min);
        let mut x: Vec<Vec<f64>> = h.done.iter().map(|d| d.0.clone()).collect();
        let mut y: Vec<f64> = h.done.iter().map(|d| d.1).collect();
        for p in &h.pending {
            x.push(p.clone());
            y.push(liar);
        }
        let Some(gp) = Gp::fit(x, &y) else { return self.space.sample_prior(r) };
        let d = self.space.dim();
        let mut cands: Vec<Vec<f64>> = (0..1000).map(|_| (0..d).map(|_| r.gen::<f64>()).collect()).collect();
        let mut order: Vec<&(Vec<f64>, f64)> = h.done.iter().collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (p, _) in order.iter().take(5) {
            for _ in 0..60 {
                cands.push(p.iter().map(|v| (v + 0.05 * crate::space::standard_normal(r)).clamp(0.0, 1.0)).collect());
            }
        }
        let mut scored: Vec<(f64, Vec<f64>)> = cands.into_iter().map(|c| (acquisition(acq, &gp, &c), c)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(3);
        // Local refinement: a shrinking random walk from the three best candidates.
        let mut best = scored[0].clone();
        for (v0, c0) in scored {
            let (mut v, mut c) = (v0, c0);
            let mut step = 0.05;
            for _ in 0..40 {
                let t: Vec<f64> =
                    c.iter().map(|x| (x + step * crate::space::standard_normal(r)).clamp(0.0, 1.0)).collect();
                let tv = acquisition(acq, &gp, &t);
                if tv > v {
                    v = tv;
                    c = t;
                } else {
                    step = (step * 0.85).max(1e-3);
                }
            }
            if v > best.0 {
                best = (v, c);
            }
        }
        best.1
    }
}

impl Suggester for BayesOpt {
    fn suggest(&self, trials: &[Trial], n: usize) -> Result<Vec<Assignment>> {
        let mut h = History::new(&self.space, trials, self.dir);
        let mut r = rng(self.seed, trials.len());
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let u = if trials.len() + i < self.initial || h.done.is_empty() {
                self.space.sample_prior(&mut r)
            } else {
                let acq = match self.acq {
                    Acq::Hedge => [Acq::Ei, Acq::Lcb, Acq::Pi][(trials.len() + i) % 3],
                    a => a,
                };
                self.one(&h, acq, &mut r)
            };
            h.pending.push(u.clone());
            out.push(self.space.decode(&u));
        }
        Ok(out)
    }
    fn name(&self) -> &'static str {
        "bayesianoptimization"
    }
}
