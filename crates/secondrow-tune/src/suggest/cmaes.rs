//! `cmaes`: CMA-ES (Hansen's (μ/μ_w, λ) update with rank-one and rank-μ covariance adaptation and
//! cumulative step-size control) in the unit cube, started at its centre. The algorithm is replayed
//! from the history on every call: trials are read in creation order in generations of λ, each fully
//! finished generation updates the distribution with the points actually tried (failed trials are left
//! out of the ranking), and new points are drawn from the current distribution.
//! `sigma` is the initial step as a fraction of each parameter's range (default 1/6, goptuna's
//! range/6); `restart_strategy` `ipop` restarts with a doubled population when the step collapses,
//! `bipop` alternates such large restarts with small ones at the default population and a smaller
//! step; `none` (the default) never restarts. Needs at least two double/int parameters, as Katib.

use super::{rng, Settings, Suggester, Trial, TrialState};
use crate::error::{Result, TuneError};
use crate::experiment::Direction;
use crate::math::sym_eigen;
use crate::space::{standard_normal, Assignment, Space};
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Restart {
    None,
    Ipop,
    Bipop,
}

pub struct CmaEs {
    space: Space,
    dir: Direction,
    seed: u64,
    sigma0: f64,
    restart: Restart,
}

struct State {
    d: usize,
    lambda: usize,
    mean: Vec<f64>,
    sigma: f64,
    c: Vec<f64>,
    b: Vec<f64>,
    dvec: Vec<f64>,
    pc: Vec<f64>,
    ps: Vec<f64>,
    gen: usize,
}

impl State {
    fn new(d: usize, lambda: usize, mean: Vec<f64>, sigma: f64) -> State {
        let mut c = vec![0.0; d * d];
        for i in 0..d {
            c[i * d + i] = 1.0;
        }
        State {
            d,
            lambda,
            mean,
            sigma,
            b: c.clone(),
            c,
            dvec: vec![1.0; d],
            pc: vec![0.0; d],
            ps: vec![0.0; d],
            gen: 0,
        }
    }

    fn sample(&self, r: &mut impl Rng) -> Vec<f64> {
        let d = self.d;
        let z: Vec<f64> = (0..d).map(|_| standard_normal(r)).collect();
        (0..d)
            .map(|i| {
                let y: f64 = (0..d).map(|j| self.b[i * d + j] * self.dvec[j] * z[j]).sum();
                (self.mean[i] + self.sigma * y).clamp(0.0, 1.0)
            })
            .collect()
    }

    /// One generation's update from (point, loss) pairs (any order).
    fn update(&mut self, mut gen: Vec<(Vec<f64>, f64)>) {
        let d = self.d;
        let df = d as f64;
        gen.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mu = (self.lambda / 2).min(gen.len()).max(1);
        let raw: Vec<f64> = (0..mu).map(|i| ((mu as f64 + 0.5).ln() - ((i + 1) as f64).ln()).max(1e-12)).collect();
        let sw: f64 = raw.iter().sum();
        let w: Vec<f64> = raw.iter().map(|x| x / sw).collect();
        let mueff = 1.0 / w.iter().map(|x| x * x).sum::<f64>();
        let cc = (4.0 + mueff / df) / (df + 4.0 + 2.0 * mueff / df);
        let cs = (mueff + 2.0) / (df + mueff + 5.0);
        let c1 = 2.0 / ((df + 1.3).powi(2) + mueff);
        let cmu = (1.0 - c1).min(2.0 * (mueff - 2.0 + 1.0 / mueff) / ((df + 2.0).powi(2) + mueff));
        let damps = 1.0 + 2.0 * (((mueff - 1.0) / (df + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let chin = df.sqrt() * (1.0 - 1.0 / (4.0 * df) + 1.0 / (21.0 * df * df));
        let old = self.mean.clone();
        let ys: Vec<Vec<f64>> =
            gen.iter().take(mu).map(|(x, _)| x.iter().zip(&old).map(|(a, b)| (a - b) / self.sigma).collect()).collect();
        let yw: Vec<f64> = (0..d).map(|i| ys.iter().zip(&w).map(|(y, wi)| wi * y[i]).sum()).collect();
        for i in 0..d {
            self.mean[i] = old[i] + self.sigma * yw[i];
        }
        // C^{-1/2} yw = B D^{-1} Bᵀ yw
        let bt: Vec<f64> =
            (0..d).map(|j| (0..d).map(|i| self.b[i * d + j] * yw[i]).sum::<f64>() / self.dvec[j]).collect();
        let cinv: Vec<f64> = (0..d).map(|i| (0..d).map(|j| self.b[i * d + j] * bt[j]).sum()).collect();
        let k = (cs * (2.0 - cs) * mueff).sqrt();
        for (p, c) in self.ps.iter_mut().zip(&cinv) {
            *p = (1.0 - cs) * *p + k * c;
        }
        let psn = self.ps.iter().map(|x| x * x).sum::<f64>().sqrt();
        self.gen += 1;
        let hsig = psn / (1.0 - (1.0 - cs).powi(2 * self.gen as i32)).sqrt() / chin < 1.4 + 2.0 / (df + 1.0);
        let h = if hsig { 1.0 } else { 0.0 };
        let kc = (cc * (2.0 - cc) * mueff).sqrt();
        for (p, y) in self.pc.iter_mut().zip(&yw) {
            *p = (1.0 - cc) * *p + h * kc * y;
        }
        for i in 0..d {
            for j in 0..d {
                let rank_mu: f64 = ys.iter().zip(&w).map(|(y, wi)| wi * y[i] * y[j]).sum();
                self.c[i * d + j] = (1.0 - c1 - cmu) * self.c[i * d + j]
                    + c1 * (self.pc[i] * self.pc[j] + (1.0 - h) * cc * (2.0 - cc) * self.c[i * d + j])
                    + cmu * rank_mu;
            }
        }
        self.sigma *= ((cs / damps) * (psn / chin - 1.0)).exp().min(1e3);
        self.sigma = self.sigma.min(1.0);
        let (ev, vecs) = sym_eigen(&self.c, d);
        self.dvec = ev.iter().map(|e| e.max(1e-20).sqrt()).collect();
        self.b = vecs;
    }

    fn collapsed(&self) -> bool {
        self.sigma * self.dvec.iter().copied().fold(0.0, f64::max) < 1e-8
    }
}

impl CmaEs {
    pub(crate) fn new(space: Space, dir: Direction, s: &Settings) -> Result<CmaEs> {
        if space.params.iter().filter(|p| p.is_numeric()).count() < 2 {
            return Err(TuneError::invalid("spec.parameters", "cmaes needs at least two double or int parameters"));
        }
        let restart = match s.str("restart_strategy") {
            None => Restart::None,
            Some((_, "none" | "")) => Restart::None,
            Some((_, "ipop")) => Restart::Ipop,
            Some((_, "bipop")) => Restart::Bipop,
            Some((path, v)) => {
                return Err(TuneError::invalid(
                    path,
                    format!("restart_strategy must be ipop, bipop or none, got {v:?}"),
                ))
            }
        };
        Ok(CmaEs {
            space,
            dir,
            seed: s.seed()?,
            sigma0: s.f64("sigma", 1.0 / 6.0, |x| x > 0.0, "greater than 0")?,
            restart,
        })
    }

    fn default_lambda(&self) -> usize {
        4 + (3.0 * (self.space.dim() as f64).ln()).floor() as usize
    }

    /// Replay the history; returns the state to sample from and how many points of its current
    /// generation are already issued.
    fn replay(&self, trials: &[Trial]) -> State {
        let d = self.space.dim();
        let base = self.default_lambda();
        let mut st = State::new(d, base, vec![0.5; d], self.sigma0);
        let mut restarts = 0usize;
        let mut large = base;
        let mut i = 0;
        while i + st.lambda <= trials.len() {
            let gen = &trials[i..i + st.lambda];
            if gen.iter().any(|t| t.state == TrialState::Pending) {
                break;
            }
            let pts: Vec<(Vec<f64>, f64)> = gen
                .iter()
                .filter(|t| matches!(t.state, TrialState::Succeeded | TrialState::EarlyStopped))
                .filter_map(|t| Some((self.space.encode(&t.assignment)?, self.dir.loss(t.value?))))
                .filter(|p| p.1.is_finite())
                .collect();
            i += st.lambda;
            let spread = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max)
                - pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            if !pts.is_empty() {
                st.update(pts);
            }
            if self.restart != Restart::None && (st.collapsed() || (spread.is_finite() && spread < 1e-12)) {
                restarts += 1;
                let mut r = rng(self.seed ^ 0x5eed, restarts);
                let mean: Vec<f64> = (0..d).map(|_| r.gen::<f64>()).collect();
                let (lambda, sigma) = if self.restart == Restart::Bipop && restarts.is_multiple_of(2) {
                    (base, self.sigma0 * 10f64.powf(-2.0 * r.gen::<f64>()))
                } else {
                    large *= 2;
                    (large, self.sigma0)
                };
                st = State::new(d, lambda, mean, sigma);
            }
        }
        st
    }
}

impl Suggester for CmaEs {
    fn suggest(&self, trials: &[Trial], n: usize) -> Result<Vec<Assignment>> {
        let st = self.replay(trials);
        let mut r = rng(self.seed, trials.len());
        Ok((0..n).map(|_| self.space.decode(&st.sample(&mut r))).collect())
    }
    fn name(&self) -> &'static str {
        "cmaes"
    }
}
