//! Suggestion algorithms behind one trait: given the trials so far, the next N assignments.
//!
//! Every algorithm works in the unit cube of [`crate::space`] and minimises a loss (the objective,
//! negated for `maximize`). They are stateless: each call rebuilds what it needs from the trial
//! history, and draws from a ChaCha RNG seeded with `random_state` and the history's length, so the
//! same history and settings give the same suggestions (and a resumed experiment continues the same way).

mod bayesopt;
mod cmaes;
mod grid;
mod hyperband;
mod random;
mod sobol;
mod tpe;

pub use hyperband::Hyperband;

use crate::error::{Result, TuneError};
use crate::experiment::{AlgorithmSpec, Direction, Experiment};
use crate::space::{Assignment, Space};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A trial's state as the algorithms see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialState {
    /// Created or running: no value yet.
    Pending,
    Succeeded,
    /// Early-stopped trials keep the value they reached.
    EarlyStopped,
    /// Failed or metrics unavailable.
    Failed,
}

/// One trial of the history, in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub assignment: Assignment,
    pub state: TrialState,
    /// The objective value after its metric strategy (as reported, not negated).
    pub value: Option<f64>,
}

impl Trial {
    pub fn pending(assignment: Assignment) -> Trial {
        Trial { assignment, state: TrialState::Pending, value: None }
    }
    pub fn finished(assignment: Assignment, value: f64) -> Trial {
        Trial { assignment, state: TrialState::Succeeded, value: Some(value) }
    }
}

/// The algorithms' one interface.
pub trait Suggester: Send + Sync {
    /// The next `n` assignments (fewer, possibly none, when the algorithm has no more to give now —
    /// grid exhausted, or hyperband waiting for a rung to finish).
    fn suggest(&self, trials: &[Trial], n: usize) -> Result<Vec<Assignment>>;
    /// Katib's `algorithmName`.
    fn name(&self) -> &'static str;
}

/// Known algorithm names, implemented ones first.
pub const ALGORITHMS: [&str; 8] =
    ["grid", "random", "sobol", "tpe", "multivariate-tpe", "bayesianoptimization", "cmaes", "hyperband"];

/// The history prepared for a model: cube points with losses, and pending cube points.
pub(crate) struct History {
    pub done: Vec<(Vec<f64>, f64)>,
    pub pending: Vec<Vec<f64>>,
}

impl History {
    pub fn new(space: &Space, trials: &[Trial], dir: Direction) -> History {
        let mut h = History { done: vec![], pending: vec![] };
        for t in trials {
            let Some(u) = space.encode(&t.assignment) else { continue };
            match (t.state, t.value) {
                (TrialState::Succeeded | TrialState::EarlyStopped, Some(v)) if v.is_finite() => {
                    h.done.push((u, dir.loss(v)))
                }
                (TrialState::Pending, _) => h.pending.push(u),
                _ => {}
            }
        }
        h
    }
}

pub(crate) fn rng(seed: u64, salt: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (salt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The settings of one algorithm, checked against the names it accepts.
pub(crate) struct Settings<'a> {
    spec: &'a AlgorithmSpec,
    base: &'static str,
}

impl<'a> Settings<'a> {
    fn new(spec: &'a AlgorithmSpec, allowed: &[&str]) -> Result<Settings<'a>> {
        for (i, s) in spec.algorithm_settings.iter().enumerate() {
            if !allowed.contains(&s.name.as_str()) {
                return Err(TuneError::invalid(
                    format!("spec.algorithm.algorithmSettings[{i}].name"),
                    format!("unknown setting {:?} for {} (known: {})", s.name, spec.algorithm_name, allowed.join(", ")),
                ));
            }
        }
        Ok(Settings { spec, base: "spec.algorithm.algorithmSettings" })
    }

    fn find(&self, name: &str) -> Option<(String, &'a str)> {
        self.spec
            .algorithm_settings
            .iter()
            .enumerate()
            .rev()
            .find(|(_, s)| s.name == name)
            .map(|(i, s)| (format!("{}[{i}].value", self.base), s.value.as_deref().unwrap_or("")))
    }

    pub fn str(&self, name: &str) -> Option<(String, &'a str)> {
        self.find(name)
    }

    pub fn f64(&self, name: &str, default: f64, ok: impl Fn(f64) -> bool, rule: &str) -> Result<f64> {
        let Some((path, v)) = self.find(name) else { return Ok(default) };
        match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && ok(x) => Ok(x),
            _ => Err(TuneError::invalid(path, format!("{name} must be {rule}, got {v:?}"))),
        }
    }

    pub fn int(&self, name: &str, default: i64, ok: impl Fn(i64) -> bool, rule: &str) -> Result<i64> {
        let Some((path, v)) = self.find(name) else { return Ok(default) };
        match v.trim().parse::<i64>() {
            Ok(x) if ok(x) => Ok(x),
            _ => Err(TuneError::invalid(path, format!("{name} must be {rule}, got {v:?}"))),
        }
    }

    pub fn seed(&self) -> Result<u64> {
        self.int("random_state", 0, |x| x >= 0, "an integer ≥ 0").map(|x| x as u64)
    }
}

/// Build the experiment's algorithm, checking its settings (errors name the setting's field).
pub fn build(e: &Experiment, space: &Space) -> Result<Box<dyn Suggester>> {
    let spec = &e.spec.algorithm;
    let dir = e.direction();
    let space = space.clone();
    let max_trials = e.spec.max_trial_count;
    Ok(match spec.algorithm_name.as_str() {
        "random" => Box::new(random::Random::new(space, &Settings::new(spec, &["random_state"])?)?),
        "grid" => Box::new(grid::Grid::new(space, &Settings::new(spec, &["random_state"])?, max_trials)?),
        "sobol" => Box::new(sobol::Sobol::new(space, &Settings::new(spec, &["random_state"])?)?),
        "tpe" => Box::new(tpe::Tpe::independent(
            space,
            dir,
            &Settings::new(spec, &["gamma", "prior_weight", "n_EI_candidates", "random_state"])?,
        )?),
        "multivariate-tpe" => Box::new(tpe::Tpe::multivariate(
            space,
            dir,
            &Settings::new(spec, &["n_startup_trials", "n_ei_candidates", "random_state"])?,
        )?),
        "bayesianoptimization" => Box::new(bayesopt::BayesOpt::new(
            space,
            dir,
            &Settings::new(spec, &["base_estimator", "n_initial_points", "acq_func", "acq_optimizer", "random_state"])?,
        )?),
        "cmaes" => Box::new(cmaes::CmaEs::new(
            space,
            dir,
            &Settings::new(spec, &["random_state", "sigma", "restart_strategy"])?,
        )?),
        "hyperband" => Box::new(Hyperband::new(
            space,
            dir,
            &Settings::new(
                spec,
                &[
                    "resource_name",
                    "r_l",
                    "eta",
                    "random_state",
                    "s_max",
                    "b_l",
                    "r",
                    "n",
                    "current_s",
                    "current_i",
                    "evaluating_trials",
                ],
            )?,
            e.parallel_trial_count(),
        )?),
        "pbt" | "enas" | "darts" => {
            return Err(TuneError::unsupported(
                "spec.algorithm.algorithmName",
                format!("algorithm {:?}", spec.algorithm_name),
            ))
        }
        other => {
            return Err(TuneError::invalid(
                "spec.algorithm.algorithmName",
                format!("unknown algorithm {other:?} (known: {})", ALGORITHMS.join(", ")),
            ));
        }
    })
}

/// Build an algorithm directly (benchmarks, tests): `settings` are `(name, value)` pairs.
pub fn build_named(
    name: &str,
    settings: &[(&str, &str)],
    space: &Space,
    direction: Direction,
) -> Result<Box<dyn Suggester>> {
    let e = Experiment {
        spec: crate::experiment::ExperimentSpec {
            objective: crate::experiment::Objective {
                kind: if direction == Direction::Maximize { "maximize" } else { "minimize" }.into(),
                ..Default::default()
            },
            algorithm: AlgorithmSpec {
                algorithm_name: name.into(),
                algorithm_settings: settings
                    .iter()
                    .map(|(n, v)| crate::experiment::NameValue { name: (*n).into(), value: Some((*v).into()) })
                    .collect(),
            },
            parallel_trial_count: Some(1000),
            ..Default::default()
        },
        ..Default::default()
    };
    build(&e, space)
}
