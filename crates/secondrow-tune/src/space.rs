//! The search space in typed form, and its map onto the unit cube that every algorithm works in.
//!
//! Each parameter is one coordinate `u ∈ [0, 1]`: doubles linearly (or on `ln` for the log
//! distributions), ints and lists by equal-width bins, so an algorithm never needs to know types.
//! The *prior* is where a random draw lands: uniform in the cube, or a normal with mean 0.5 and
//! σ = 1/6 truncated to the cube for `normal`/`logNormal` (hyperopt's μ = (min+max)/2, σ = (max−min)/6).

use rand::Rng;
use std::fmt;

/// Katib's `feasibleSpace.distribution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    LogUniform,
    Normal,
    LogNormal,
}

impl Distribution {
    fn is_log(self) -> bool {
        matches!(self, Distribution::LogUniform | Distribution::LogNormal)
    }
    fn is_normal(self) -> bool {
        matches!(self, Distribution::Normal | Distribution::LogNormal)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    Double { min: f64, max: f64, step: Option<f64>, dist: Distribution },
    Int { min: i64, max: i64, step: i64, dist: Distribution },
    Categorical(Vec<String>),
    Discrete(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub domain: Domain,
}

/// One parameter's value in an assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Double(f64),
    Int(i64),
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Double(x) => write!(f, "{x}"),
            Value::Int(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// A full assignment: one value per parameter, in the space's order.
pub type Assignment = Vec<(String, Value)>;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Space {
    pub params: Vec<Param>,
}

impl Param {
    /// Number of distinct values (None for a continuous double).
    pub fn cardinality(&self) -> Option<usize> {
        match &self.domain {
            Domain::Double { min, max, step: Some(s), .. } => Some(((max - min) / s + 1e-9).floor() as usize + 1),
            Domain::Double { .. } => None,
            Domain::Int { min, max, step, .. } => Some(((max - min) / step) as usize + 1),
            Domain::Categorical(l) | Domain::Discrete(l) => Some(l.len()),
        }
    }

    /// The `k`-th value of a finite domain (grid order).
    pub fn nth(&self, k: usize) -> Value {
        match &self.domain {
            Domain::Double { min, step, .. } => Value::Double(min + step.unwrap_or(0.0) * k as f64),
            Domain::Int { min, step, .. } => Value::Int(min + step * k as i64),
            Domain::Categorical(l) | Domain::Discrete(l) => Value::Str(l[k.min(l.len() - 1)].clone()),
        }
    }

    /// Cube coordinate → value.
    pub fn decode(&self, u: f64) -> Value {
        let u = u.clamp(0.0, 1.0);
        match &self.domain {
            Domain::Double { min, max, step, dist } => {
                let x =
                    if dist.is_log() { (min.ln() + u * (max.ln() - min.ln())).exp() } else { min + u * (max - min) };
                let x = match step {
                    Some(s) => (min + ((x - min) / s).round() * s).min(*max),
                    None => x,
                };
                Value::Double(x.clamp(*min, *max))
            }
            Domain::Int { min, max, step, dist } => {
                let k_max = (max - min) / step;
                let k = if dist.is_log() {
                    let lo = (*min as f64 - 0.5).max(0.5).ln();
                    let hi = (*max as f64 + 0.5).ln();
                    let x = (lo + u * (hi - lo)).exp();
                    ((x - *min as f64) / *step as f64).round() as i64
                } else {
                    (u * (k_max + 1) as f64).floor() as i64
                };
                Value::Int(min + k.clamp(0, k_max) * step)
            }
            Domain::Categorical(l) | Domain::Discrete(l) => {
                let k = ((u * l.len() as f64).floor() as usize).min(l.len() - 1);
                Value::Str(l[k].clone())
            }
        }
    }

    /// Value → cube coordinate (the centre of its bin for finite domains). `None` when the value is
    /// not of this domain.
    pub fn encode(&self, v: &Value) -> Option<f64> {
        let u = match (&self.domain, v) {
            (Domain::Double { min, max, dist, .. }, Value::Double(x)) => {
                if dist.is_log() {
                    (x.max(*min).ln() - min.ln()) / (max.ln() - min.ln())
                } else {
                    (x - min) / (max - min)
                }
            }
            (Domain::Int { min, max, step, dist }, Value::Int(x)) => {
                if dist.is_log() {
                    let lo = (*min as f64 - 0.5).max(0.5).ln();
                    let hi = (*max as f64 + 0.5).ln();
                    ((*x as f64).max(0.5).ln() - lo) / (hi - lo)
                } else {
                    let k = (x - min) / step;
                    (k as f64 + 0.5) / (((max - min) / step) + 1) as f64
                }
            }
            (Domain::Categorical(l) | Domain::Discrete(l), Value::Str(s)) => {
                let k = l.iter().position(|x| x == s)?;
                (k as f64 + 0.5) / l.len() as f64
            }
            _ => return None,
        };
        Some(u.clamp(0.0, 1.0))
    }

    /// A draw from the parameter's prior, as a cube coordinate.
    pub fn sample_prior(&self, rng: &mut impl Rng) -> f64 {
        let normal = match &self.domain {
            Domain::Double { dist, .. } | Domain::Int { dist, .. } => dist.is_normal(),
            _ => false,
        };
        if normal {
            loop {
                let u = 0.5 + standard_normal(rng) / 6.0;
                if (0.0..=1.0).contains(&u) {
                    return u;
                }
            }
        }
        rng.gen::<f64>()
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self.domain, Domain::Double { .. } | Domain::Int { .. })
    }
}

impl Space {
    pub fn dim(&self) -> usize {
        self.params.len()
    }

    pub fn decode(&self, u: &[f64]) -> Assignment {
        self.params.iter().zip(u).map(|(p, &x)| (p.name.clone(), p.decode(x))).collect()
    }

    /// Assignment → cube point; `None` if a parameter is missing or of the wrong type.
    pub fn encode(&self, a: &Assignment) -> Option<Vec<f64>> {
        self.params.iter().map(|p| a.iter().find(|(n, _)| n == &p.name).and_then(|(_, v)| p.encode(v))).collect()
    }

    pub fn sample_prior(&self, rng: &mut impl Rng) -> Vec<f64> {
        self.params.iter().map(|p| p.sample_prior(rng)).collect()
    }

    /// Total number of grid points (saturating), None if a continuous double has no step.
    pub fn grid_size(&self) -> Option<usize> {
        self.params.iter().try_fold(1usize, |acc, p| p.cardinality().map(|c| acc.saturating_mul(c)))
    }
}

/// A standard normal draw (Box–Muller), so no distribution crate is needed.
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
