//! `hyperband`: Li et al.'s brackets of successive halving, as Katib's service runs them.
//!
//! With `r_l` the largest budget and `eta` the reduction factor, s_max = ⌊log(r_l)/log(eta)⌋ and
//! B = (s_max+1)·r_l. Bracket s (s_max down to 0) starts n = ⌈B/r_l · eta^s/(s+1)⌉ random
//! configurations at budget r = r_l·eta^(−s); rung i keeps the best ⌊n·eta^(−i)⌋ of the previous rung
//! and runs them again at budget r·eta^i. The budget is written into the `resource_name` parameter.
//! The plan is replayed over the history (trials in creation order), so no state is kept between calls;
//! a rung is handed out whole, and the next one only once all of it has finished. Katib's state
//! settings (`s_max`, `current_s`, …) are accepted and ignored.

use super::{rng, Settings, Suggester, Trial, TrialState};
use crate::error::{Result, TuneError};
use crate::experiment::Direction;
use crate::space::{Assignment, Domain, Space, Value};

/// Limits that keep a hostile `r_l`/`eta` from planning billions of rungs or trials.
const MAX_BRACKETS: usize = 30;
const MAX_PLAN_TRIALS: f64 = 100_000.0;

pub struct Hyperband {
    space: Space,
    dir: Direction,
    seed: u64,
    resource: usize,
    r_l: f64,
    eta: f64,
}

/// One rung of the plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    pub bracket: usize,
    pub index: usize,
    pub trials: usize,
    pub budget: f64,
}

impl Hyperband {
    pub(crate) fn new(space: Space, dir: Direction, s: &Settings, parallel: usize) -> Result<Hyperband> {
        let (path, name) = s.str("resource_name").ok_or_else(|| {
            TuneError::invalid("spec.algorithm.algorithmSettings", "hyperband needs the setting resource_name")
        })?;
        let resource = space.params.iter().position(|p| p.name == name && p.is_numeric()).ok_or_else(|| {
            TuneError::invalid(path, format!("resource_name {name:?} names no double or int parameter"))
        })?;
        if s.str("r_l").is_none() {
            return Err(TuneError::invalid("spec.algorithm.algorithmSettings", "hyperband needs the setting r_l"));
        }
        let r_l = s.f64("r_l", 1.0, |x| x > 0.0, "greater than 0")?;
        let eta = s.f64("eta", 3.0, |x| x > 1.0, "greater than 1")?;
        let hb = Hyperband { space, dir, seed: s.seed()?, resource, r_l, eta };
        if hb.s_max() > MAX_BRACKETS {
            return Err(TuneError::invalid(
                "spec.algorithm.algorithmSettings",
                format!("r_l and eta give {} brackets; at most {MAX_BRACKETS} are supported", hb.s_max() + 1),
            ));
        }
        let total: f64 = hb.plan_sizes().iter().sum();
        if total > MAX_PLAN_TRIALS {
            return Err(TuneError::invalid(
                "spec.algorithm.algorithmSettings",
                format!("r_l and eta plan {total} trials; at most {MAX_PLAN_TRIALS} are supported"),
            ));
        }
        let need = eta.powi(hb.s_max() as i32).ceil() as usize;
        if parallel < need {
            return Err(TuneError::invalid(
                "spec.parallelTrialCount",
                format!("{parallel} is too small for hyperband: it must be ≥ eta^s_max = {need}"),
            ));
        }
        Ok(hb)
    }

    pub fn s_max(&self) -> usize {
        ((self.r_l.ln() / self.eta.ln()) + 1e-9).floor().max(0.0) as usize
    }

    /// The number of trials of every rung (as floats: checked before `plan` materialises anything).
    fn plan_sizes(&self) -> Vec<f64> {
        let s_max = self.s_max();
        let b = (s_max + 1) as f64 * self.r_l;
        let mut out = vec![];
        for s in (0..=s_max).rev() {
            let n = ((b / self.r_l) * self.eta.powi(s as i32) / (s + 1) as f64).ceil();
            for i in 0..=s {
                out.push((n * self.eta.powi(-(i as i32))).floor().max(1.0));
            }
        }
        out
    }

    /// Every rung, in the order they run.
    pub fn plan(&self) -> Vec<Rung> {
        let s_max = self.s_max();
        let b = (s_max + 1) as f64 * self.r_l;
        let mut out = vec![];
        for s in (0..=s_max).rev() {
            let n = ((b / self.r_l) * self.eta.powi(s as i32) / (s + 1) as f64).ceil();
            let r = self.r_l * self.eta.powi(-(s as i32));
            for i in 0..=s {
                let trials = (n * self.eta.powi(-(i as i32))).floor().max(1.0) as usize;
                out.push(Rung { bracket: s_max - s, index: i, trials, budget: r * self.eta.powi(i as i32) });
            }
        }
        out
    }

    fn with_budget(&self, mut a: Assignment, budget: f64) -> Assignment {
        let p = &self.space.params[self.resource];
        let v = match p.domain {
            Domain::Int { .. } => Value::Int(budget.round().max(1.0) as i64),
            _ => Value::Double(budget),
        };
        if let Some(slot) = a.iter_mut().find(|(n, _)| n == &p.name) {
            slot.1 = v;
        }
        a
    }
}

impl Suggester for Hyperband {
    fn suggest(&self, trials: &[Trial], n: usize) -> Result<Vec<Assignment>> {
        let mut at = 0;
        let mut prev: Vec<&Trial> = vec![];
        for rung in self.plan() {
            let configs: Vec<Assignment> = if rung.index == 0 {
                let mut r = rng(self.seed, 1_000_003 * (rung.bracket + 1));
                (0..rung.trials).map(|_| self.space.decode(&self.space.sample_prior(&mut r))).collect()
            } else {
                let mut ranked = prev.clone();
                let loss = |t: &Trial| match (t.state, t.value) {
                    (TrialState::Succeeded | TrialState::EarlyStopped, Some(v)) if v.is_finite() => self.dir.loss(v),
                    _ => f64::INFINITY,
                };
                ranked.sort_by(|a, b| loss(a).total_cmp(&loss(b)));
                ranked.iter().take(rung.trials).map(|t| t.assignment.clone()).collect()
            };
            let configs: Vec<Assignment> = configs.into_iter().map(|a| self.with_budget(a, rung.budget)).collect();
            let issued = trials.len().saturating_sub(at).min(configs.len());
            if issued < configs.len() {
                return Ok(configs.into_iter().skip(issued).take(n).collect());
            }
            let this = &trials[at..at + configs.len()];
            if this.iter().any(|t| t.state == TrialState::Pending) {
                return Ok(vec![]);
            }
            prev = this.iter().collect();
            at += configs.len();
        }
        Ok(vec![])
    }
    fn name(&self) -> &'static str {
        "hyperband"
    }
}
