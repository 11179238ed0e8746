//! Property test: experiments built from hostile numbers and settings are refused with an error or
//! accepted and then suggested from — never a panic, a hang or a value outside the space.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use secondrow_tune::space::Value;
use secondrow_tune::{Experiment, Trial};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sane values first: the strategy draws from the first six more often.
const NUMBERS: [&str; 14] =
    ["0", "1", "0.5", "3", "2.5", "1000000", "-1", "1e-300", "1e300", "-9e18", "9e18", "nan", "inf", "x"];
const STEPS: [&str; 7] = ["1", "1", "0.5", "2", "0", "-1", "1e300"];
const TYPES: [&str; 5] = ["double", "int", "categorical", "discrete", "float"];
const ALGORITHMS: [&str; 9] =
    ["grid", "random", "sobol", "tpe", "multivariate-tpe", "bayesianoptimization", "cmaes", "hyperband", "nope"];
const SETTINGS: [&str; 12] = [
    "random_state",
    "gamma",
    "n_EI_candidates",
    "n_ei_candidates",
    "n_startup_trials",
    "n_initial_points",
    "sigma",
    "resource_name",
    "r_l",
    "eta",
    "acq_func",
    "restart_strategy",
];

fn experiment(
    params: &[(usize, usize, usize, usize)],
    alg: usize,
    settings: &[(usize, usize)],
    max: u8,
    parallel: u8,
) -> String {
    let mut y = format!(
        "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {{name: fuzz}}\nspec:\n  objective: {{type: minimize, objectiveMetricName: loss}}\n  maxTrialCount: {max}\n  parallelTrialCount: {parallel}\n  algorithm:\n    algorithmName: {}\n    algorithmSettings:\n",
        ALGORITHMS[alg]
    );
    for (s, v) in settings {
        let value = if SETTINGS[*s] == "resource_name" { "p0" } else { NUMBERS[*v] };
        y += &format!("      - {{name: {}, value: \"{value}\"}}\n", SETTINGS[*s]);
    }
    y += "  parameters:\n";
    for (i, (t, a, b, st)) in params.iter().enumerate() {
        let fs = match TYPES[*t] {
            "categorical" | "discrete" => format!("{{list: [\"{}\", \"{}\"]}}", NUMBERS[*a], NUMBERS[*b]),
            _ => format!("{{min: \"{}\", max: \"{}\", step: \"{}\"}}", NUMBERS[*a], NUMBERS[*b], STEPS[*st]),
        };
        y += &format!("    - {{name: p{i}, parameterType: {}, feasibleSpace: {fs}}}\n", TYPES[*t]);
    }
    y += "  trialTemplate:\n    primaryContainerName: main\n    trialParameters:\n";
    for i in 0..params.len() {
        y += &format!("      - {{name: t{i}, reference: p{i}}}\n");
    }
    y += "    trialSpec:\n      apiVersion: batch/v1\n      kind: Job\n      spec: {template: {spec: {containers: [{name: main, command: [run";
    for i in 0..params.len() {
        y += &format!(", \"${{trialParameters.t{i}}}\"");
    }
    y += "]}]}}}\n";
    y
}

#[test]
fn hostile_experiments_never_panic() {
    let number = || prop_oneof![4 => 0..6usize, 1 => 0..14usize];
    let strategy = (
        prop::collection::vec((0..5usize, number(), number(), 0..7usize), 1..4),
        0..9usize,
        prop::collection::vec((0..12usize, number()), 0..3),
        1..30u8,
        1..30u8,
    );
    let mut runner = TestRunner::new(ProptestConfig { cases: 5000, ..ProptestConfig::default() });
    let accepted = AtomicUsize::new(0);
    runner
        .run(&strategy, |(params, alg, settings, max, parallel)| {
            let yaml = experiment(&params, alg, &settings, max, parallel);
            let Ok(e) = Experiment::parse(&yaml) else { return Ok(()) };
            accepted.fetch_add(1, Ordering::Relaxed);
            let space = e.space().expect("a validated experiment has a space");
            let s = secondrow_tune::build(&e, &space).expect("a validated experiment builds");
            let mut h: Vec<Trial> = vec![];
            for round in 0..4 {
                for a in s.suggest(&h, 2).expect("suggest") {
                    let u = space.encode(&a).expect("suggestions lie in the space");
                    prop_assert!(u.iter().all(|x| (0.0..=1.0).contains(x)));
                    let y = a
                        .iter()
                        .map(|(_, v)| match v {
                            Value::Double(x) => *x,
                            Value::Int(x) => *x as f64,
                            Value::Str(s) => s.len() as f64,
                        })
                        .sum::<f64>();
                    h.push(Trial::finished(a, if round % 2 == 0 { y } else { f64::NAN }));
                }
            }
            Ok(())
        })
        .expect("no failing case");
    let n = accepted.load(Ordering::Relaxed);
    eprintln!("{n} of the generated experiments were valid");
    assert!(n >= 30, "only {n} generated experiments were valid: the property tests too little");
}

#[test]
fn the_generator_makes_valid_experiments_too() {
    // double [0, 1] step 0.5, int [1, 3], categorical; random and grid.
    let params = [(0, 0, 1, 2), (1, 1, 3, 0), (2, 0, 13, 0)];
    for alg in [0, 1, 5] {
        let yaml = experiment(&params, alg, &[(0, 3)], 5, 2);
        if let Err(e) = Experiment::parse(&yaml) {
            panic!("{e}\n{yaml}");
        }
    }
}
