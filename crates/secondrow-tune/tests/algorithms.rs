//! The suggestion algorithms: determinism, every parameter type, grid enumeration, hyperband's plan,
//! medianstop, and each model-based algorithm beating random search on a simple function.

use secondrow_tune::earlystop::MedianStop;
use secondrow_tune::experiment::AlgorithmSpec;
use secondrow_tune::space::{Distribution, Domain, Param, Space, Value};
use secondrow_tune::suggest::Hyperband;
use secondrow_tune::{build_named, Assignment, Direction, Trial, TrialState};

fn double(name: &str, min: f64, max: f64, dist: Distribution) -> Param {
    Param { name: name.into(), domain: Domain::Double { min, max, step: None, dist } }
}

fn square() -> Space {
    Space { params: vec![double("x", -5.0, 5.0, Distribution::Uniform), double("y", -5.0, 5.0, Distribution::Uniform)] }
}

fn mixed() -> Space {
    Space {
        params: vec![
            double("lr", 1e-4, 1.0, Distribution::LogUniform),
            double("mom", 0.0, 1.0, Distribution::Normal),
            double("wd", 1e-6, 1e-2, Distribution::LogNormal),
            Param {
                name: "depth".into(),
                domain: Domain::Int { min: 2, max: 12, step: 2, dist: Distribution::Uniform },
            },
            Param {
                name: "units".into(),
                domain: Domain::Int { min: 8, max: 512, step: 1, dist: Distribution::LogUniform },
            },
            Param {
                name: "opt".into(),
                domain: Domain::Categorical(vec!["sgd".into(), "adam".into(), "rmsprop".into()]),
            },
            Param { name: "batch".into(), domain: Domain::Discrete(vec!["32".into(), "64".into(), "128".into()]) },
        ],
    }
}

fn num(a: &Assignment, i: usize) -> f64 {
    match &a[i].1 {
        Value::Double(x) => *x,
        Value::Int(x) => *x as f64,
        Value::Str(s) => s.parse().unwrap_or(f64::NAN),
    }
}

/// A loss over `mixed` whose optimum is inside the space.
fn mixed_loss(a: &Assignment) -> f64 {
    (num(a, 0).log10() + 2.0).powi(2)
        + (num(a, 1) - 0.7).powi(2)
        + (num(a, 3) - 8.0).abs() / 10.0
        + if a[5].1 == Value::Str("adam".into()) { 0.0 } else { 0.5 }
}

fn sphere(a: &Assignment) -> f64 {
    (num(a, 0) - 1.3).powi(2) + (num(a, 1) + 2.1).powi(2)
}

/// Runs `trials` sequential trials (batches of `batch`) and returns the best loss.
fn run(alg: &str, space: &Space, seed: u64, trials: usize, batch: usize, f: fn(&Assignment) -> f64) -> f64 {
    let seed_s = seed.to_string();
    let s = build_named(alg, &[("random_state", &seed_s)], space, Direction::Minimize).expect("build");
    let mut h: Vec<Trial> = vec![];
    while h.len() < trials {
        let next = s.suggest(&h, batch.min(trials - h.len())).expect("suggest");
        assert!(!next.is_empty(), "{alg} stopped suggesting");
        for a in next {
            let y = f(&a);
            h.push(Trial::finished(a, y));
        }
    }
    h.iter().filter_map(|t| t.value).fold(f64::INFINITY, f64::min)
}

const MODEL_BASED: [&str; 5] = ["sobol", "tpe", "multivariate-tpe", "bayesianoptimization", "cmaes"];

#[test]
fn every_algorithm_is_deterministic_under_random_state() {
    let sp = mixed();
    for alg in ["random", "sobol", "tpe", "multivariate-tpe", "bayesianoptimization", "cmaes"] {
        let s = build_named(alg, &[("random_state", "3")], &sp, Direction::Minimize).expect("build");
        let mut h: Vec<Trial> = vec![];
        for _ in 0..14 {
            let a = s.suggest(&h, 1).expect("suggest").remove(0);
            let y = mixed_loss(&a);
            h.push(Trial::finished(a, y));
        }
        let again = build_named(alg, &[("random_state", "3")], &sp, Direction::Minimize).expect("build");
        assert_eq!(s.suggest(&h, 3).expect("a"), again.suggest(&h, 3).expect("b"), "{alg}");
        if alg != "sobol" {
            let other = build_named(alg, &[("random_state", "4")], &sp, Direction::Minimize).expect("build");
            assert_ne!(s.suggest(&h, 3).expect("a"), other.suggest(&h, 3).expect("c"), "{alg} ignores random_state");
        }
    }
}

#[test]
fn suggestions_respect_every_parameter_type() {
    let sp = mixed();
    for alg in ["random", "sobol", "tpe", "multivariate-tpe", "bayesianoptimization", "cmaes"] {
        let s = build_named(alg, &[("random_state", "1")], &sp, Direction::Minimize).expect("build");
        let mut h: Vec<Trial> = vec![];
        for _ in 0..16 {
            for a in s.suggest(&h, 2).expect("suggest") {
                assert!((1e-4..=1.0).contains(&num(&a, 0)), "{alg} lr");
                assert!((0.0..=1.0).contains(&num(&a, 1)), "{alg} mom");
                assert!((1e-6..=1e-2).contains(&num(&a, 2)), "{alg} wd");
                let depth = num(&a, 3) as i64;
                assert!((2..=12).contains(&depth) && depth % 2 == 0, "{alg} depth {depth}");
                assert!((8.0..=512.0).contains(&num(&a, 4)), "{alg} units");
                assert!(
                    matches!(&a[5].1, Value::Str(s) if ["sgd", "adam", "rmsprop"].contains(&s.as_str())),
                    "{alg} opt"
                );
                assert!(matches!(&a[6].1, Value::Str(s) if ["32", "64", "128"].contains(&s.as_str())), "{alg} batch");
                assert_eq!(sp.encode(&a).map(|u| u.len()), Some(7));
                let y = mixed_loss(&a);
                h.push(Trial::finished(a, y));
            }
        }
    }
}

#[test]
fn normal_priors_concentrate_in_the_middle() {
    let sp = Space {
        params: vec![double("m", 0.0, 6.0, Distribution::Normal), double("u", 0.0, 6.0, Distribution::Uniform)],
    };
    let s = build_named("random", &[("random_state", "5")], &sp, Direction::Minimize).expect("build");
    let draws = s.suggest(&[], 2000).expect("draws");
    let central = |i: usize| draws.iter().filter(|a| (2.0..=4.0).contains(&num(a, i))).count() as f64 / 2000.0;
    // N(3, 1) puts 68 % within one σ; the uniform a third.
    assert!((0.62..0.75).contains(&central(0)), "{}", central(0));
    assert!((0.28..0.39).contains(&central(1)), "{}", central(1));
}

#[test]
fn model_based_algorithms_beat_random_search() {
    for (space, f, trials) in
        [(square(), sphere as fn(&Assignment) -> f64, 30), (mixed(), mixed_loss as fn(&Assignment) -> f64, 40)]
    {
        let seeds = 6;
        let random: f64 = (0..seeds).map(|s| run("random", &space, s, trials, 1, f)).sum::<f64>() / seeds as f64;
        for alg in MODEL_BASED {
            let mean: f64 = (0..seeds).map(|s| run(alg, &space, s, trials, 1, f)).sum::<f64>() / seeds as f64;
            assert!(
                mean < random,
                "{alg}: mean best {mean} is not better than random's {random} ({} parameters)",
                space.dim()
            );
        }
    }
}

#[test]
fn batches_are_distinct_and_maximize_is_honoured() {
    let sp = square();
    for alg in ["tpe", "multivariate-tpe", "bayesianoptimization", "cmaes"] {
        let s = build_named(alg, &[("random_state", "2")], &sp, Direction::Maximize).expect("build");
        let mut h: Vec<Trial> = vec![];
        while h.len() < 36 {
            let batch = s.suggest(&h, 3).expect("suggest");
            assert_eq!(batch.len(), 3);
            assert!(batch[0] != batch[1] && batch[1] != batch[2], "{alg} repeats itself within a batch");
            for a in batch {
                let y = -sphere(&a);
                h.push(Trial::finished(a, y));
            }
        }
        let best = h.iter().filter_map(|t| t.value).fold(f64::NEG_INFINITY, f64::max);
        assert!(best > -2.0, "{alg} maximising −sphere reached only {best}");
        let mean = |ts: &[Trial]| ts.iter().filter_map(|t| t.value).sum::<f64>() / ts.len() as f64;
        assert!(mean(&h[24..]) > mean(&h[..12]), "{alg} does not move towards the maximum");
    }
}

#[test]
fn grid_enumerates_every_combination_once_then_stops() {
    let sp = Space {
        params: vec![
            Param {
                name: "d".into(),
                domain: Domain::Double { min: 0.1, max: 0.3, step: Some(0.1), dist: Distribution::Uniform },
            },
            Param { name: "n".into(), domain: Domain::Int { min: 1, max: 5, step: 2, dist: Distribution::Uniform } },
            Param { name: "c".into(), domain: Domain::Categorical(vec!["a".into(), "b".into()]) },
        ],
    };
    assert_eq!(sp.grid_size(), Some(18));
    let g = build_named("grid", &[], &sp, Direction::Minimize).expect("grid");
    let mut h: Vec<Trial> = vec![];
    loop {
        let next = g.suggest(&h, 4).expect("suggest");
        if next.is_empty() {
            break;
        }
        h.extend(next.into_iter().map(|a| Trial::finished(a, 0.0)));
    }
    assert_eq!(h.len(), 18);
    let mut seen: Vec<String> = h.iter().map(|t| format!("{:?}", t.assignment)).collect();
    assert_eq!(
        h[0].assignment,
        vec![("d".into(), Value::Double(0.1)), ("n".into(), Value::Int(1)), ("c".into(), Value::Str("a".into()))]
    );
    assert_eq!(h[1].assignment[2].1, Value::Str("b".into()), "the last parameter varies fastest");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 18);
    let last = &h[17].assignment;
    assert!(matches!(last[0].1, Value::Double(x) if (x - 0.3).abs() < 1e-9) && last[1].1 == Value::Int(5));
    // With random_state the order is a permutation of the same grid.
    let shuffled = build_named("grid", &[("random_state", "1")], &sp, Direction::Minimize).expect("grid");
    let all = shuffled.suggest(&[], 100).expect("all");
    assert_eq!(all.len(), 18);
    assert_ne!(all[0..3], h.iter().take(3).map(|t| t.assignment.clone()).collect::<Vec<_>>()[..]);
}

#[test]
fn sobol_fills_the_cube_evenly() {
    let sp = Space { params: (0..5).map(|i| double(&format!("x{i}"), 0.0, 1.0, Distribution::Uniform)).collect() };
    let s = build_named("sobol", &[], &sp, Direction::Minimize).expect("sobol");
    let pts = s.suggest(&[], 63).expect("points");
    // Together with the skipped origin, 64 points put exactly 32 in each half of every dimension.
    for d in 0..5 {
        let low = pts.iter().filter(|a| num(a, d) < 0.5).count();
        assert_eq!(low, 31, "dimension {d}");
    }
}

fn hb_space() -> Space {
    Space {
        params: vec![
            Param {
                name: "epochs".into(),
                domain: Domain::Int { min: 1, max: 9, step: 1, dist: Distribution::Uniform },
            },
            double("lr", 0.0, 1.0, Distribution::Uniform),
        ],
    }
}

#[test]
fn hyperband_plans_brackets_and_promotes_the_best_of_each_rung() {
    let sp = hb_space();
    let s = build_named(
        "hyperband",
        &[("resource_name", "epochs"), ("r_l", "9"), ("eta", "3"), ("random_state", "1")],
        &sp,
        Direction::Minimize,
    )
    .expect("hb");
    // r_l 9, eta 3: s_max 2; brackets 9@1 → 3@3 → 1@9, then 5@3 → 1@9, then 3@9.
    let first = s.suggest(&[], 20).expect("rung 0");
    assert_eq!(first.len(), 9);
    assert!(first.iter().all(|a| a[0].1 == Value::Int(1)));
    let mut h: Vec<Trial> = first.iter().cloned().map(Trial::pending).collect();
    assert!(s.suggest(&h, 5).expect("wait").is_empty(), "the next rung waits for this one");
    for t in &mut h {
        let lr = num(&t.assignment, 1);
        t.state = TrialState::Succeeded;
        t.value = Some(lr);
    }
    let rung1 = s.suggest(&h, 20).expect("rung 1");
    assert_eq!(rung1.len(), 3);
    let mut lrs: Vec<f64> = h.iter().map(|t| num(&t.assignment, 1)).collect();
    lrs.sort_by(f64::total_cmp);
    for (a, want) in rung1.iter().zip(&lrs) {
        assert_eq!(a[0].1, Value::Int(3));
        assert_eq!(num(a, 1), *want, "the three smallest losses are promoted");
    }
    let mut sizes = vec![9, 3];
    h.extend(rung1.into_iter().map(|a| Trial::finished(a, 0.5)));
    loop {
        let next = s.suggest(&h, 100).expect("next");
        if next.is_empty() {
            break;
        }
        sizes.push(next.len());
        h.extend(next.into_iter().map(|a| Trial::finished(a, 0.5)));
    }
    assert_eq!(sizes, [9, 3, 1, 5, 1, 3]);
}

#[test]
fn hyperband_parallelism_and_plan() {
    let sp = hb_space();
    let s = build_named("hyperband", &[("resource_name", "epochs"), ("r_l", "27")], &sp, Direction::Minimize);
    assert!(s.is_ok());
    assert!(build_named("hyperband", &[("resource_name", "nope"), ("r_l", "9")], &sp, Direction::Minimize).is_err());
    assert!(build_named(
        "hyperband",
        &[("resource_name", "epochs"), ("r_l", "9"), ("eta", "1")],
        &sp,
        Direction::Minimize
    )
    .is_err());
    let _ = Hyperband::s_max;
}

#[test]
fn algorithm_settings_are_validated_per_algorithm() {
    let sp = square();
    let bad: [(&str, &[(&str, &str)]); 12] = [
        ("tpe", &[("gamma", "0")]),
        ("tpe", &[("prior_weight", "-1")]),
        ("tpe", &[("n_EI_candidates", "0")]),
        ("tpe", &[("n_startup_trials", "3")]),
        ("multivariate-tpe", &[("n_ei_candidates", "x")]),
        ("bayesianoptimization", &[("acq_func", "UCB")]),
        ("bayesianoptimization", &[("acq_optimizer", "adam")]),
        ("bayesianoptimization", &[("base_estimator", "RF")]),
        ("bayesianoptimization", &[("n_initial_points", "0")]),
        ("cmaes", &[("restart_strategy", "sometimes")]),
        ("cmaes", &[("sigma", "0")]),
        ("random", &[("gamma", "0.2")]),
    ];
    for (alg, settings) in bad {
        assert!(build_named(alg, settings, &sp, Direction::Minimize).is_err(), "{alg} accepted {settings:?}");
    }
    let good: [(&str, &[(&str, &str)]); 5] = [
        ("tpe", &[("gamma", "0.3"), ("prior_weight", "2"), ("n_EI_candidates", "10")]),
        ("multivariate-tpe", &[("n_startup_trials", "5"), ("n_ei_candidates", "12")]),
        (
            "bayesianoptimization",
            &[("base_estimator", "GP"), ("acq_func", "LCB"), ("acq_optimizer", "lbfgs"), ("n_initial_points", "4")],
        ),
        ("cmaes", &[("restart_strategy", "ipop"), ("sigma", "0.3")]),
        ("cmaes", &[("restart_strategy", "bipop")]),
    ];
    for (alg, settings) in good {
        let s = build_named(alg, settings, &sp, Direction::Minimize).expect("valid settings");
        let mut h: Vec<Trial> = vec![];
        for _ in 0..12 {
            let a = s.suggest(&h, 1).expect("suggest").remove(0);
            let y = sphere(&a);
            h.push(Trial::finished(a, y));
        }
    }
}

#[test]
fn cmaes_restarts_keep_suggesting_inside_the_space() {
    let sp = square();
    let s = build_named(
        "cmaes",
        &[("restart_strategy", "ipop"), ("sigma", "0.5"), ("random_state", "9")],
        &sp,
        Direction::Minimize,
    )
    .expect("cmaes");
    let mut h: Vec<Trial> = vec![];
    for _ in 0..300 {
        let a = s.suggest(&h, 1).expect("suggest").remove(0);
        assert!(num(&a, 0).abs() <= 5.0 && num(&a, 1).abs() <= 5.0);
        // A flat function collapses the spread, which triggers restarts.
        h.push(Trial::finished(a, 1.0));
    }
}

#[test]
fn failed_and_pending_trials_do_not_break_the_models() {
    let sp = square();
    for alg in ["tpe", "multivariate-tpe", "bayesianoptimization", "cmaes"] {
        let s = build_named(alg, &[("random_state", "0")], &sp, Direction::Minimize).expect("build");
        let mut h: Vec<Trial> = vec![];
        for i in 0..24 {
            let a = s.suggest(&h, 1).expect("suggest").remove(0);
            let t = match i % 4 {
                0 => Trial { assignment: a, state: TrialState::Failed, value: None },
                1 => Trial::pending(a),
                _ => {
                    let y = sphere(&a);
                    Trial {
                        assignment: a,
                        state: if i % 4 == 2 { TrialState::Succeeded } else { TrialState::EarlyStopped },
                        value: Some(y),
                    }
                }
            };
            h.push(t);
        }
        assert_eq!(s.suggest(&h, 2).expect("suggest").len(), 2);
    }
}

fn medianstop(settings: &[(&str, &str)]) -> Result<MedianStop, secondrow_tune::TuneError> {
    MedianStop::from_spec(&AlgorithmSpec {
        algorithm_name: "medianstop".into(),
        algorithm_settings: settings
            .iter()
            .map(|(n, v)| secondrow_tune::experiment::NameValue { name: (*n).into(), value: Some((*v).into()) })
            .collect(),
    })
}

#[test]
fn medianstop_rule_needs_enough_successes_and_checks_once_at_start_step() {
    let m = medianstop(&[("min_trials_required", "2"), ("start_step", "3")]).expect("valid");
    assert_eq!(m, MedianStop { min_trials_required: 2, start_step: 3 });
    assert_eq!(medianstop(&[]).expect("defaults"), MedianStop { min_trials_required: 3, start_step: 4 });
    assert!(m.rule(&[vec![0.5, 0.6, 0.7, 0.9]], Direction::Maximize).is_none(), "one success is not enough");
    // Averages of the first three values: 0.6 and 0.8 → threshold 0.7.
    let rule = m.rule(&[vec![0.5, 0.6, 0.7, 0.99], vec![0.7, 0.8, 0.9]], Direction::Maximize).expect("rule");
    assert!((rule.threshold - 0.7).abs() < 1e-12);
    assert!(!rule.should_stop(&[0.1, 0.2]), "not before start_step");
    assert!(rule.should_stop(&[0.1, 0.2, 0.3]), "best 0.3 < 0.7");
    assert!(!rule.should_stop(&[0.1, 0.75, 0.3]), "best so far 0.75 ≥ 0.7");
    assert!(!rule.should_stop(&[0.1, 0.2, 0.3, 0.3]), "checked only once, at start_step");
    let min_rule = m.rule(&[vec![1.0, 1.0, 1.0], vec![3.0, 3.0, 3.0]], Direction::Minimize).expect("rule");
    assert!(min_rule.should_stop(&[5.0, 4.0, 2.5]));
    assert!(!min_rule.should_stop(&[5.0, 1.5, 2.5]));
    for bad in [[("min_trials_required", "0")], [("start_step", "0")], [("start_step", "two")], [("patience", "3")]] {
        assert!(medianstop(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn cmaes_converges_on_a_smooth_bowl() {
    let sp = Space { params: (0..4).map(|i| double(&format!("x{i}"), -1.0, 1.0, Distribution::Uniform)).collect() };
    let f = |a: &Assignment| (0..4).map(|i| (num(a, i) - 0.2 * i as f64).powi(2)).sum::<f64>();
    let s = build_named("cmaes", &[("random_state", "4")], &sp, Direction::Minimize).expect("cmaes");
    let mut h: Vec<Trial> = vec![];
    for _ in 0..400 {
        let a = s.suggest(&h, 1).expect("suggest").remove(0);
        let y = f(&a);
        h.push(Trial::finished(a, y));
    }
    let best = h.iter().filter_map(|t| t.value).fold(f64::INFINITY, f64::min);
    assert!(best < 1e-4, "CMA-ES should converge on a bowl; best {best}");
}
