//! The statistics behind drift: population stability index, the two-sample Kolmogorov–Smirnov
//! statistic (against raw values or a histogram) with its asymptotic p-value, and Pearson's chi-square
//! with its p-value (regularized upper incomplete gamma). Plain functions on slices.

/// Proportions below this count as this much in PSI (an empty bin would make it infinite).
pub const PSI_FLOOR: f64 = 1e-4;

/// Population stability index of two distributions over the same bins, given as counts:
/// Σ (actual − expected) · ln(actual / expected) over proportions, each floored at [`PSI_FLOOR`].
/// Zero when either side is empty.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    let (e_total, a_total) = (expected.iter().sum::<f64>(), actual.iter().sum::<f64>());
    if e_total <= 0.0 || a_total <= 0.0 {
        return 0.0;
    }
    expected
        .iter()
        .zip(actual)
        .map(|(e, a)| {
            let (p, q) = ((e / e_total).max(PSI_FLOOR), (a / a_total).max(PSI_FLOOR));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Counts of `values` in bins with inner edges `edges[1..len-1]`: the first and last bins are open
/// (values below `edges[0]` go to the first bin, above the last edge to the last). `edges` has at least
/// two entries; a value equal to an inner edge goes to the bin on its right, as numpy's histogram does.
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let bins = edges.len().saturating_sub(1).max(1);
    let mut counts = vec![0.0; bins];
    let inner = if edges.len() > 2 { &edges[1..edges.len() - 1] } else { &[][..] };
    for &v in values {
        let i = inner.partition_point(|&e| e <= v);
        counts[i.min(bins - 1)] += 1.0;
    }
    counts
}

/// `bins` equal-width edges from `lo` to `hi` (one bin around the value when they are equal).
pub fn equal_width_edges(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let bins = bins.max(1);
    if hi <= lo {
        return vec![lo - 0.5, hi + 0.5];
    }
    let width = (hi - lo) / bins as f64;
    (0..=bins).map(|i| if i == bins { hi } else { lo + width * i as f64 }).collect()
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest distance between the empirical
/// distribution functions of two sorted samples (`scipy.stats.ks_2samp`'s statistic).
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// The Kolmogorov–Smirnov distance between a sorted sample and a distribution known by a histogram
/// (`edges`, `counts`), whose distribution function is taken as linear within each bin.
pub fn ks_against_histogram(sample: &[f64], edges: &[f64], counts: &[f64]) -> f64 {
    let total: f64 = counts.iter().sum();
    if sample.is_empty() || total <= 0.0 || edges.len() != counts.len() + 1 {
        return 0.0;
    }
    let cdf = |x: f64| -> f64 {
        if x <= edges[0] {
            return 0.0;
        }
        let mut below = 0.0;
        for (k, c) in counts.iter().enumerate() {
            let (lo, hi) = (edges[k], edges[k + 1]);
            if x >= hi {
                below += c;
            } else {
                let part = if hi > lo { (x - lo) / (hi - lo) } else { 1.0 };
                return (below + c * part) / total;
            }
        }
        1.0
    };
    let n = sample.len() as f64;
    let mut d = 0.0f64;
    let mut i = 0;
    while i < sample.len() {
        let x = sample[i];
        let before = i as f64 / n;
        while i < sample.len() && sample[i] <= x {
            i += 1;
        }
        let f = cdf(x);
        d = d.max((f - before).abs()).max((i as f64 / n - f).abs());
    }
    d
}

/// Asymptotic p-value of a two-sample KS statistic `d` for samples of `n` and `m` values (the
/// Kolmogorov distribution with Stephens' small-sample correction).
pub fn ks_p_value(d: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let en = (n as f64 * m as f64 / (n + m) as f64).sqrt();
    kolmogorov_sf((en + 0.12 + 0.11 / en) * d)
}

/// P(K > λ) of the Kolmogorov distribution.
fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if k as u64 % 2 == 1 { term } else { -term };
        if term < 1e-12 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Pearson's chi-square statistic of `observed` counts against `expected` proportions (scaled to the
/// observed total) and its p-value with `bins − 1` degrees of freedom. Bins expected at zero are
/// floored at [`PSI_FLOOR`] of the total.
pub fn chi_square(expected: &[f64], observed: &[f64]) -> (f64, f64) {
    let (e_total, o_total) = (expected.iter().sum::<f64>(), observed.iter().sum::<f64>());
    if e_total <= 0.0 || o_total <= 0.0 || expected.len() < 2 {
        return (0.0, 1.0);
    }
    let statistic: f64 = expected
        .iter()
        .zip(observed)
        .map(|(e, o)| {
            let e = (e / e_total).max(PSI_FLOOR) * o_total;
            (o - e) * (o - e) / e
        })
        .sum();
    let dof = (expected.len() - 1) as f64;
    (statistic, gamma_q(dof / 2.0, statistic / 2.0))
}

/// The regularized upper incomplete gamma function Q(a, x) (series below a + 1, continued fraction
/// above; Numerical Recipes' method).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 || a <= 0.0 {
        return 1.0;
    }
    let log_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * log_prefix.exp()).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (log_prefix.exp() * h).clamp(0.0, 1.0)
    }
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        sum += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}
