//! `random`: independent draws from each parameter's prior.

use super::{rng, Settings, Suggester, Trial};
use crate::error::Result;
use crate::space::{Assignment, Space};

pub struct Random {
    space: Space,
    seed: u64,
}

impl Random {
    pub(crate) fn new(space: Space, s: &Settings) -> Result<Random> {
        Ok(Random { space, seed: s.seed()? })
    }
}

impl Suggester for Random {
    fn suggest(&self, trials: &[Trial], n: usize) -> Result<Vec<Assignment>> {
        let mut r = rng(self.seed, trials.len());
        Ok((0..n).map(|_| self.space.decode(&self.space.sample_prior(&mut r))).collect())
    }
    fn name(&self) -> &'static str {
        "random"
    }
}
