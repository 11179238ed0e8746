//! Drift statistics against values computed once with scipy (1.x, from the serving test venv) or by hand.

use secondrow_monitor::drift::{self, FeatureReference, Reference};
use secondrow_monitor::log::{Column, Values};
use secondrow_monitor::stats;
use serde_json::json;

fn close(got: f64, want: f64, tolerance: f64) {
    assert!((got - want).abs() <= tolerance, "got {got}, want {want} (± {tolerance})");
}

#[test]
fn ks_statistic_matches_scipy_ks_2samp() {
    // scipy.stats.ks_2samp(a, b).statistic
    let a = [0.1, 0.5, 0.9, 1.3, 2.0, 2.2, 3.1];
    let b = [0.4, 1.0, 1.5, 2.5, 2.6, 3.5, 4.0, 4.2];
    close(stats::ks_statistic(&a, &b), 0.48214285714285715, 1e-12);

    let mut a: Vec<f64> = (0..600).map(|i| ((i * 37) % 1000) as f64 / 100.0).collect();
    let mut b: Vec<f64> = (0..400).map(|i| ((i * 53) % 1000) as f64 / 100.0 * 0.9 + 1.0).collect();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let d = stats::ks_statistic(&a, &b);
    // ks_2samp(a, b, method="asymp"): statistic 0.10416666666666667, p-value 0.010126344680432756.
    close(d, 0.10416666666666667, 1e-12);
    close(stats::ks_p_value(d, a.len(), b.len()), 0.010126344680432756, 1.5e-3);
    assert_eq!(stats::ks_statistic(&a, &a), 0.0);
}

#[test]
fn ks_against_a_histogram_takes_the_distribution_as_linear_in_each_bin() {
    // Uniform on [0, 10] (F(x) = x / 10); the sample 1, 2, 3, 4 reaches 1.0 at 4 where F is 0.4.
    close(stats::ks_against_histogram(&[1.0, 2.0, 3.0, 4.0], &[0.0, 5.0, 10.0], &[50.0, 50.0]), 0.6, 1e-12);
}

#[test]
fn chi_square_and_its_p_value_match_scipy_chisquare() {
    // scipy.stats.chisquare([30, 50, 20], [40, 40, 20]) and ([10, 20, 30, 40], [25] * 4)
    let (chi, p) = stats::chi_square(&[40.0, 40.0, 20.0], &[30.0, 50.0, 20.0]);
    close(chi, 5.0, 1e-12);
    close(p, 0.0820849986238988, 1e-10);
    let (chi, p) = stats::chi_square(&[1.0; 4], &[10.0, 20.0, 30.0, 40.0]);
    close(chi, 20.0, 1e-12);
    close(p, 0.00016974243555282632, 1e-12);
    // scipy.special.gammaincc
    for (a, x, q) in [
        (0.5, 0.3, 0.4385780260809997),
        (1.5, 5.0, 0.01856613546304325),
        (3.0, 2.0, 0.6766764161830634),
        (10.0, 12.5, 0.2014311049455359),
    ] {
        close(stats::gamma_q(a, x), q, 1e-10);
    }
}

#[test]
fn psi_is_computed_over_proportions_with_a_floor() {
    // (0.3 − 0.5)·ln(0.3/0.5) + 0 + (0.4 − 0.2)·ln(0.4/0.2), by numpy
    close(stats::psi(&[50.0, 30.0, 20.0], &[30.0, 30.0, 40.0]), 0.2407945608651872, 1e-12);
    close(stats::psi(&[1.0, 1.0], &[5.0, 5.0]), 0.0, 1e-15);
    // An empty bin counts as 1e-4, not as zero (which would be infinite).
    assert!(stats::psi(&[1.0, 0.0], &[1.0, 1.0]).is_finite());
    assert_eq!(stats::bin_counts(&[-5.0, 0.0, 1.0, 2.0, 9.0], &[0.0, 1.0, 2.0, 3.0]), [2.0, 1.0, 2.0]);
}

fn numbers(name: &str, values: impl IntoIterator<Item = f64>) -> Column {
    Column { name: name.into(), values: Values::Number(values.into_iter().map(Some).collect()) }
}

fn texts(name: &str, values: &[Option<&str>]) -> Column {
    Column { name: name.into(), values: Values::Text(values.iter().map(|v| v.map(str::to_owned)).collect()) }
}

#[test]
fn a_shifted_feature_drifts_and_an_unchanged_one_does_not() {
    let training = vec![
        numbers("x", (0..1000).map(|i| (i % 100) as f64)),
        numbers("y", (0..1000).map(|i| (i % 50) as f64)),
        texts("color", &[Some("red"), Some("blue")].repeat(500)),
    ];
    let reference = Reference::from_columns(&training);
    let window = vec![
        numbers("x", (0..500).map(|i| (i % 100) as f64 + 40.0)),
        numbers("y", (0..500).map(|i| (i % 50) as f64)),
        texts("color", &[&[Some("red")][..], &[Some("red"), Some("blue"), None]].concat().repeat(125)),
    ];
    let report = drift::drift(&reference, &window, drift::DEFAULT_BINS);
    let by_name = |n: &str| report.iter().find(|d| d.feature == n).unwrap();
    assert!(by_name("x").psi > 0.2, "{:?}", by_name("x"));
    close(by_name("x").ks.unwrap(), 0.4, 1e-12);
    assert!(by_name("x").ks_p_value.unwrap() < 1e-6);
    assert!(by_name("y").psi < 0.01, "{:?}", by_name("y"));
    assert_eq!(by_name("y").ks, Some(0.0));
    let color = by_name("color");
    assert_eq!(color.kind, "string");
    close(color.missing_rate, 0.25, 1e-12);
    // Present values: 250 red, 125 blue against 50/50.
    let (chi, _) = stats::chi_square(&[500.0, 500.0], &[125.0, 250.0]);
    close(color.chi_square.unwrap(), chi, 1e-12);
    assert!(color.chi_square_p_value.unwrap() < 0.001);

    // An unknown feature and a new category are schema violations; a known layout is not.
    close(drift::schema_violations(&reference, &window[..2]), 0.0, 1e-12);
    let odd = vec![numbers("x", [1.0, 2.0]), texts("color", &[Some("green"), Some("red")])];
    close(drift::schema_violations(&reference, &odd), 0.5, 1e-12);
    close(drift::schema_violations(&reference, &[numbers("z", [1.0])]), 1.0, 1e-12);
}

#[test]
fn statistics_json_is_a_reference_and_bad_json_is_a_clear_error() {
    let statistics = json!({"rows": 100, "columns": [
        {"name": "x", "type": "number", "count": 100, "missing": 0, "distinct": 100, "top_values": [],
         "min": 0.0, "max": 10.0, "histogram": {"edges": [0.0, 5.0, 10.0], "counts": [50, 50]}},
        {"name": "color", "type": "string", "count": 90, "missing": 10, "distinct": 3,
         "top_values": [["red", 60], ["blue", 20]]}
    ]});
    let reference = Reference::from_statistics(&statistics).unwrap();
    assert_eq!(reference.names(), ["x", "color"]);
    match reference.feature("color").unwrap() {
        FeatureReference::Categories { counts, other, missing } => {
            assert_eq!((counts.len(), *other, *missing), (2, 10.0, 10));
        }
        other => panic!("{other:?}"),
    }
    let report = drift::drift(&reference, &[numbers("x", [1.0, 2.0, 3.0, 4.0])], 10);
    close(report[0].ks.unwrap(), 0.6, 1e-12);
    // All four in the first bin against 50/50.
    close(report[0].psi, stats::psi(&[50.0, 50.0], &[4.0, 0.0]), 1e-12);

    for (bad, message) in [
        (json!({}), "no `columns` list"),
        (json!({"columns": [{"type": "number", "count": 1}]}), "columns[0]: no `name`"),
        (json!({"columns": [{"name": "x", "type": "number", "count": 3}]}), "column `x`: no usable `histogram`"),
        (json!({"columns": [{"name": "x", "type": "date", "count": 3}]}), "column `x`: unknown type"),
    ] {
        let e = Reference::from_statistics(&bad).unwrap_err();
        assert!(e.to_string().contains(message), "{e}");
        assert_eq!(e.kind(), secondrow_error::ErrorKind::InvalidInput);
    }
}
