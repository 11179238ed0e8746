//! Small numerics the algorithms share: the normal distribution, a truncated-normal mixture on [0, 1],
//! Cholesky solves and a symmetric eigen-decomposition (Jacobi). Sizes are tiny (≤ a few hundred
//! trials, ≤ tens of parameters), so plain `Vec<f64>` code beats pulling in a linear-algebra crate.

use crate::space::standard_normal;
use rand::Rng;

/// erf through the Chebyshev-fitted erfc of Numerical Recipes (absolute error below 1.2e-7).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - r
    } else {
        r - 1.0
    }
}

pub fn norm_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

pub fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// A mixture of normals truncated to [0, 1], one component per (mu, sigma, weight).
pub struct Mixture {
    pub mu: Vec<f64>,
    pub sigma: Vec<f64>,
    pub logw: Vec<f64>,
    total: f64,
}

impl Mixture {
    pub fn new(mu: Vec<f64>, sigma: Vec<f64>, w: Vec<f64>) -> Mixture {
        let total: f64 = w.iter().sum();
        // Each weight is divided by its component's mass inside [0, 1] so that the truncated pdf integrates to 1.
        let logw = w
            .iter()
            .zip(mu.iter().zip(&sigma))
            .map(|(w, (m, s))| (w / total).ln() - (norm_cdf((1.0 - m) / s) - norm_cdf(-m / s)).max(1e-12).ln() - s.ln())
            .collect();
        Mixture { mu, sigma, logw, total }
    }

    pub fn log_pdf(&self, x: f64) -> f64 {
        let mut acc = LogSumExp::default();
        for ((m, s), lw) in self.mu.iter().zip(&self.sigma).zip(&self.logw) {
            acc.add(lw - 0.5 * ((x - m) / s).powi(2));
        }
        acc.value() - 0.5 * (2.0 * std::f64::consts::PI).ln()
    }

    /// Draw a component index by weight.
    pub fn pick(&self, rng: &mut impl Rng, weights: &[f64]) -> usize {
        let mut u = rng.gen::<f64>() * self.total;
        for (i, w) in weights.iter().enumerate() {
            u -= w;
            if u <= 0.0 {
                return i;
            }
        }
        weights.len() - 1
    }
}

/// A streaming log-sum-exp (no buffer), for the hot density loops.
pub struct LogSumExp {
    max: f64,
    sum: f64,
}

impl Default for LogSumExp {
    fn default() -> Self {
        LogSumExp { max: f64::NEG_INFINITY, sum: 0.0 }
    }
}

impl LogSumExp {
    pub fn add(&mut self, t: f64) {
        if t > self.max {
            self.sum = self.sum * (self.max - t).exp() + 1.0;
            self.max = t;
        } else {
            self.sum += (t - self.max).exp();
        }
    }

    pub fn value(&self) -> f64 {
        if self.max.is_finite() {
            self.max + self.sum.ln()
        } else {
            self.max
        }
    }
}

pub fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// A draw from N(mu, sigma) truncated to [0, 1].
pub fn trunc_normal(rng: &mut impl Rng, mu: f64, sigma: f64) -> f64 {
    for _ in 0..100 {
        let x = mu + sigma * standard_normal(rng);
        if (0.0..=1.0).contains(&x) {
            return x;
        }
    }
    mu.clamp(0.0, 1.0)
}

/// Lower Cholesky factor of a symmetric positive definite n×n matrix (row-major); None if not SPD.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solve L x = b (forward substitution).
pub fn solve_lower(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut x = b.to_vec();
    for i in 0..n {
        let mut s = x[i];
        for k in 0..i {
            s -= l[i * n + k] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
    x
}

/// Solve Lᵀ x = b (back substitution).
pub fn solve_upper_t(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut x = b.to_vec();
    for i in (0..n).rev() {
        let mut s = x[i];
        for k in i + 1..n {
            s -= l[k * n + i] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
    x
}

/// Eigen-decomposition of a symmetric n×n matrix by cyclic Jacobi rotations: (eigenvalues, eigenvectors
/// as columns of a row-major matrix).
pub fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..50 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_normal_cdf_match_known_values() {
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 1e-6);
        assert!((erf(-1.5) + 0.966_105_146_5).abs() < 1e-6);
        assert!((norm_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((norm_pdf(0.0) - 0.398_942_280_4).abs() < 1e-9);
    }

    #[test]
    fn cholesky_solves_and_refuses_non_spd() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let l = cholesky(&a, 2).expect("spd");
        let x = solve_upper_t(&l, 2, &solve_lower(&l, 2, &[2.0, 1.0]));
        // A x = b
        assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-12 && (2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-12);
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    #[test]
    fn jacobi_finds_eigenpairs() {
        let a = [2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 5.0];
        let (mut ev, v) = sym_eigen(&a, 3);
        // A v_k = λ_k v_k for each column.
        for k in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i * 3 + j] * v[j * 3 + k]).sum();
                assert!((av - ev[k] * v[i * 3 + k]).abs() < 1e-9);
            }
        }
        ev.sort_by(f64::total_cmp);
        assert!((ev[0] - 1.0).abs() < 1e-9 && (ev[1] - 3.0).abs() < 1e-9 && (ev[2] - 5.0).abs() < 1e-9);
    }

    #[test]
    fn truncated_mixture_integrates_to_one() {
        let m = Mixture::new(vec![0.1, 0.9], vec![0.3, 0.05], vec![1.0, 2.0]);
        let n = 20_000;
        let integral: f64 = (0..n).map(|i| m.log_pdf((i as f64 + 0.5) / n as f64).exp()).sum::<f64>() / n as f64;
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
    }
}
