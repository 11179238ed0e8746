//! `grid`: every combination of the parameters' values (doubles need `step`), in mixed-radix order
//! (the last parameter varies fastest), or in a random permutation when `random_state` is given (as
//! Optuna's GridSampler visits the grid randomly). Exhausted → no more suggestions.

use super::{Settings, Suggester, Trial};
use crate::error::{Result, TuneError};
use crate::space::{Assignment, Domain, Space};
use rand::seq::SliceRandom;

pub struct Grid {
    space: Space,
    order: Option<Vec<usize>>,
    size: usize,
}

/// Grids larger than this are refused (they could not be enumerated or shuffled in memory).
const MAX_GRID: usize = 10_000_000;

impl Grid {
    pub(crate) fn new(space: Space, s: &Settings, max_trials: Option<i64>) -> Result<Grid> {
        for (i, p) in space.params.iter().enumerate() {
            if let Domain::Double { step: None, .. } = p.domain {
                return Err(TuneError::invalid(
                    format!("spec.parameters[{i}].feasibleSpace.step"),
                    "is required for a double parameter with the grid algorithm",
                ));
            }
        }
        let size = space.grid_size().unwrap_or(usize::MAX);
        if size > MAX_GRID {
            return Err(TuneError::invalid("spec.parameters", format!("the grid has more than {MAX_GRID} points")));
        }
        if let Some(m) = max_trials {
            if m as usize > size {
                return Err(TuneError::invalid(
                    "spec.maxTrialCount",
                    format!("{m} is greater than the {size} combinations of the grid"),
                ));
            }
        }
        let order = match s.str("random_state") {
            Some(_) => {
                let mut o: Vec<usize> = (0..size).collect();
                o.shuffle(&mut super::rng(s.seed()?, 0));
                Some(o)
            }
            None => None,
        };
        Ok(Grid { space, order, size })
    }

    /// The `k`-th grid point in enumeration order.
    pub fn point(&self, k: usize) -> Assignment {
        let mut k = self.order.as_ref().map(|o| o[k]).unwrap_or(k);
        let mut out = vec![];
        for p in self.space.params.iter().rev() {
            let c = p.cardinality().unwrap_or(1);
            out.push((p.name.clone(), p.nth(k % c)));
            k /= c;
        }
        out.reverse();
        out
    }
}

impl Suggester for Grid {
    fn suggest(&self, trials: &[Trial], n: usize) -> Result<Vec<Assignment>> {
        let start = trials.len().min(self.size);
        Ok((start..(start + n).min(self.size)).map(|k| self.point(k)).collect())
    }
    fn name(&self) -> &'static str {
        "grid"
    }
}
