//! `sobol`: the Sobol low-discrepancy sequence (Joe–Kuo direction numbers, up to 16 parameters),
//! skipping the all-zero first point. With `random_state` a random digital shift (XOR of a random
//! 32-bit mask per dimension) scrambles the sequence while keeping its balance; without, it is the
//! plain sequence as goptuna's sampler gives.

use super::{Settings, Suggester, Trial};
use crate::error::{Result, TuneError};
use crate::space::{Assignment, Space};
use rand::Rng;

/// (s, a, m_1..m_s) for dimensions 2.. (dimension 1 is the van der Corput sequence).
const JOE_KUO: [(u32, u32, &[u32]); 15] = [
    (1, 0, &[1]),
    (2, 1, &[1, 3]),
    (3, 1, &[1, 3, 1]),
    (3, 2, &[1, 1, 1]),
    (4, 1, &[1, 1, 3, 3]),
    (4, 4, &[1, 3, 5, 13]),
    (5, 2, &[1, 1, 5, 5, 17]),
    (5, 4, &[1, 1, 5, 5, 5]),
    (5, 7, &[1, 1, 7, 11, 19]),
    (5, 11, &[1, 1, 5, 1, 1]),
    (5, 13, &[1, 1, 1, 3, 11]),
    (5, 14, &[1, 3, 5, 5, 31]),
    (6, 1, &[1, 3, 3, 9, 7, 49]),
    (6, 13, &[1, 1, 1, 15, 21, 21]),
    (6, 16, &[1, 3, 1, 13, 27, 49]),
];
const BITS: usize = 32;
pub const MAX_DIM: usize = JOE_KUO.len() + 1;

pub struct Sobol {
    space: Space,
    directions: Vec<[u32; BITS]>,
    shift: Vec<u32>,
}

fn directions(dim: usize) -> [u32; BITS] {
    let mut v = [0u32; BITS];
    if dim == 0 {
        for (i, x) in v.iter_mut().enumerate() {
            *x = 1 << (BITS - 1 - i);
        }
        return v;
    }
    let (s, a, m) = JOE_KUO[dim - 1];
    let s = s as usize;
    for i in 0..BITS {
        if i < s {
            v[i] = m[i] << (BITS - 1 - i);
        } else {
            let mut x = v[i - s] ^ (v[i - s] >> s);
            for k in 1..s {
                if (a >> (s - 1 - k)) & 1 == 1 {
                    x ^= v[i - k];
                }
            }
            v[i] = x;
        }
    }
    v
}

impl Sobol {
    pub(crate) fn new(space: Space, s: &Settings) -> Result<Sobol> {
        if space.dim() > MAX_DIM {
            return Err(TuneError::unsupported(
                "spec.parameters",
                format!("sobol with more than {MAX_DIM} parameters"),
            ));
        }
        let shift = match s.str("random_state") {
            Some(_) => {
                let mut r = super::rng(s.seed()?, 0);
                (0..space.dim()).map(|_| r.gen::<u32>()).collect()
            }
            None => vec![0; space.dim()],
        };
        Ok(Sobol { directions: (0..space.dim()).map(directions).collect(), space, shift })
    }

    /// The `k`-th point (k ≥ 0), Gray-code free direct construction.
    pub fn point(&self, k: u64) -> Vec<f64> {
        let g = k ^ (k >> 1);
        self.directions
            .iter()
            .zip(&self.shift)
            .map(|(v, sh)| {
                let mut x = 0u32;
                for (bit, d) in v.iter().enumerate().take(64.min(BITS)) {
                    if (g >> bit) & 1 == 1 {
                        x ^= d;
                    }
                }
                ((x ^ sh) as f64 + 0.5) / (1u64 << BITS) as f64
            })
            .collect()
    }
}

impl Suggester for Sobol {
    fn suggest(&self, trials: &[Trial], n: usize) -> Result<Vec<Assignment>> {
        let start = trials.len() as u64 + 1;
        Ok((start..start + n as u64).map(|k| self.space.decode(&self.point(k))).collect())
    }
    fn name(&self) -> &'static str {
        "sobol"
    }
}
