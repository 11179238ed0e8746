//! Benchmark of the suggestion algorithms on Branin (2-D, 50 trials) and Hartmann-6 (6-D, 100 trials),
//! one study per seed, trials one after another (suggest 1, evaluate, record). Prints one JSON line per
//! (function, algorithm) with the same fields as the Optuna side (`bench/tuning/optuna_side.py`).
//!
//! cargo run --release -p secondrow-tune --example tuning_bench -- [--seeds 20] [--algorithms a,b,…]

use secondrow_tune::space::{Distribution, Domain, Param, Space, Value};
use secondrow_tune::{build_named, Direction, Trial};
use std::time::Instant;

fn branin(x: &[f64]) -> f64 {
    let pi = std::f64::consts::PI;
    let (b, c, t) = (5.1 / (4.0 * pi * pi), 5.0 / pi, 1.0 / (8.0 * pi));
    (x[1] - b * x[0] * x[0] + c * x[0] - 6.0).powi(2) + 10.0 * (1.0 - t) * x[0].cos() + 10.0
}

const H_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const H_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

fn hartmann6(x: &[f64]) -> f64 {
    -(0..4)
        .map(|i| H_ALPHA[i] * (-(0..6).map(|j| H_A[i][j] * (x[j] - H_P[i][j]).powi(2)).sum::<f64>()).exp())
        .sum::<f64>()
}

fn space(bounds: &[(f64, f64)]) -> Space {
    Space {
        params: bounds
            .iter()
            .enumerate()
            .map(|(i, &(min, max))| Param {
                name: format!("x{i}"),
                domain: Domain::Double { min, max, step: None, dist: Distribution::Uniform },
            })
            .collect(),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let seeds: u64 = arg("--seeds").and_then(|s| s.parse().ok()).unwrap_or(20);
    let algorithms =
        arg("--algorithms").unwrap_or_else(|| "random,sobol,tpe,multivariate-tpe,bayesianoptimization,cmaes".into());
    type Problem = (&'static str, fn(&[f64]) -> f64, Vec<(f64, f64)>, usize, f64);
    let problems: Vec<Problem> = vec![
        ("branin", branin, vec![(-5.0, 10.0), (0.0, 15.0)], 50, 0.397887),
        ("hartmann6", hartmann6, vec![(0.0, 1.0); 6], 100, -3.32237),
    ];
    for (fname, f, bounds, trials, optimum) in &problems {
        let sp = space(bounds);
        for alg in algorithms.split(',') {
            let (mut bests, mut per_suggest, mut last10) = (vec![], vec![], vec![]);
            for seed in 0..seeds {
                let seed_s = seed.to_string();
                // For sobol, random_state picks the digital shift (scrambling), like Optuna's scrambled QMC.
                let settings = [("random_state", seed_s.as_str())];
                let Ok(s) = build_named(alg, &settings, &sp, Direction::Minimize) else {
                    eprintln!("cannot build {alg}");
                    return;
                };
                let mut history: Vec<Trial> = vec![];
                let mut best = f64::INFINITY;
                for t in 0..*trials {
                    let t0 = Instant::now();
                    let next = s.suggest(&history, 1).ok().and_then(|mut v| v.pop());
                    let dt = t0.elapsed().as_secs_f64();
                    per_suggest.push(dt);
                    if t + 10 >= *trials {
                        last10.push(dt);
                    }
                    let Some(a) = next else { break };
                    let x: Vec<f64> =
                        a.iter().map(|(_, v)| if let Value::Double(x) = v { *x } else { f64::NAN }).collect();
                    let y = f(&x);
                    best = best.min(y);
                    history.push(Trial::finished(a, y));
                }
                bests.push(best);
            }
            let m = mean(&bests);
            let sd = (bests.iter().map(|b| (b - m).powi(2)).sum::<f64>() / (bests.len().max(2) - 1) as f64).sqrt();
            let mut sorted = bests.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            println!(
                "{{\"function\": \"{fname}\", \"dims\": {}, \"trials\": {trials}, \"optimum\": {optimum}, \"sampler\": \"secondrow:{alg}\", \"seeds\": {seeds}, \"mean_best\": {:.5}, \"median_best\": {:.5}, \"stdev_best\": {:.5}, \"best\": {:.5}, \"worst\": {:.5}, \"seconds_per_suggest\": {:.6}, \"seconds_per_suggest_last10\": {:.6}}}",
                bounds.len(),
                m,
                median,
                sd,
                sorted[0],
                sorted[sorted.len() - 1],
                mean(&per_suggest),
                mean(&last10)
            );
        }
    }
}
