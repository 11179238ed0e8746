//! Monitoring figures over time: a window of logged rows split by logged time into equal time spans
//! ("buckets"), with the same statistics per bucket as over the whole window (drift per feature against
//! the training data, the schema-violation rate, and performance against posted labels).

use serde::Serialize;

use crate::drift::{self, FeatureDrift, Reference};
use crate::log::{Column, Values, Window};
use crate::performance::{self, Labels, Performance};

/// The most buckets a window may be split into.
pub const MAX_BUCKETS: usize = 100;

/// The figures of one time span of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// The span, Unix epoch ms: `start_ms` included, `end_ms` excluded (included for the last bucket).
    pub start_ms: i64,
    pub end_ms: i64,
    /// Logged rows in the span.
    pub rows: usize,
    /// Drift per feature (empty without a reference or without rows).
    pub features: Vec<FeatureDrift>,
    /// `None` without a reference or without rows.
    pub schema_violation_rate: Option<f64>,
    /// Share of missing values over every feature value of the span (`None` without rows).
    pub missing_rate: Option<f64>,
    /// `None` when no row of the span has a label.
    pub performance: Option<Performance>,
}

/// The row indices of each of `n` equal time spans from the window's first to its last logged time
/// (an empty window gives no spans; a window logged at one instant gives one span holding every row).
pub fn split(window: &Window, n: usize) -> Vec<(i64, i64, Vec<usize>)> {
    let (Some(lo), Some(hi)) = (window.time_ms.iter().min().copied(), window.time_ms.iter().max().copied()) else {
        return Vec::new();
    };
    let n = if hi == lo { 1 } else { n.clamp(1, MAX_BUCKETS) };
    let span = (hi - lo) as f64 / n as f64;
    let edge = |k: usize| if k == n { hi } else { lo + (span * k as f64).round() as i64 };
    let mut out: Vec<(i64, i64, Vec<usize>)> = (0..n).map(|k| (edge(k), edge(k + 1), Vec::new())).collect();
    for (i, t) in window.time_ms.iter().enumerate() {
        // The bucket whose span holds `t` (the last one holds its end).
        let k = out.iter().position(|(start, end, _)| *t >= *start && *t < *end).unwrap_or(n - 1);
        out[k].2.push(i);
    }
    out
}

/// The rows `indices` of `window`, in that order.
pub fn select(window: &Window, indices: &[usize]) -> Window {
    let pick = |values: &Values| match values {
        Values::Number(v) => Values::Number(indices.iter().map(|i| v.get(*i).copied().flatten()).collect()),
        Values::Text(v) => Values::Text(indices.iter().map(|i| v.get(*i).cloned().flatten()).collect()),
    };
    Window {
        request_ids: indices.iter().filter_map(|i| window.request_ids.get(*i).cloned()).collect(),
        time_ms: indices.iter().filter_map(|i| window.time_ms.get(*i).copied()).collect(),
        rows: indices.iter().filter_map(|i| window.rows.get(*i).copied()).collect(),
        features: window.features.iter().map(|c| Column { name: c.name.clone(), values: pick(&c.values) }).collect(),
        prediction: window.prediction.as_ref().map(pick),
    }
}

/// The figures of each of `buckets` time spans of `window` ([`split`]), drift with `bins` bins for the
/// PSI over raw numbers.
pub fn timeline(
    reference: Option<&Reference>,
    window: &Window,
    labels: &Labels,
    buckets: usize,
    bins: usize,
) -> Vec<Bucket> {
    split(window, buckets)
        .into_iter()
        .map(|(start_ms, end_ms, indices)| {
            let part = select(window, &indices);
            let (features, schema_violation_rate) = match reference {
                Some(r) if !part.is_empty() => {
                    (drift::drift(r, &part.features, bins), Some(drift::schema_violations(r, &part.features)))
                }
                _ => (Vec::new(), None),
            };
            Bucket {
                start_ms,
                end_ms,
                rows: part.len(),
                features,
                schema_violation_rate,
                missing_rate: missing_rate(&part.features),
                performance: performance::performance(&part, labels),
            }
        })
        .collect()
}

/// Share of missing values among all values of `columns` (`None` without values).
pub fn missing_rate(columns: &[Column]) -> Option<f64> {
    let (mut missing, mut all) = (0usize, 0usize);
    for c in columns {
        all += c.values.len();
        missing += match &c.values {
            Values::Number(v) => v.iter().filter(|x| x.is_none_or(f64::is_nan)).count(),
            Values::Text(v) => v.iter().filter(|x| x.is_none()).count(),
        };
    }
    (all > 0).then(|| missing as f64 / all as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 8 rows at times 0..=700 ms: the first four like the training data, the last four shifted.
    fn window() -> Window {
        Window {
            request_ids: (0..8).map(|i| format!("r{i}")).collect(),
            time_ms: (0..8).map(|i| i * 100).collect(),
            rows: vec![0; 8],
            features: vec![
                Column {
                    name: "x".into(),
                    values: Values::Number(vec![
                        Some(0.0),
                        Some(1.0),
                        Some(2.0),
                        Some(3.0),
                        Some(10.0),
                        None,
                        Some(12.0),
                        Some(13.0),
                    ]),
                },
                Column {
                    name: "c".into(),
                    values: Values::Text(
                        ["a", "b", "a", "b", "a", "z", "a", "a"].iter().map(|s| Some((*s).to_owned())).collect(),
                    ),
                },
            ],
            prediction: Some(Values::Text(
                ["1", "0", "1", "0", "1", "1", "1", "1"].iter().map(|s| Some((*s).to_owned())).collect(),
            )),
        }
    }

    fn reference() -> Reference {
        Reference::from_columns(&[
            Column { name: "x".into(), values: Values::Number(vec![Some(0.0), Some(1.0), Some(2.0), Some(3.0)]) },
            Column { name: "c".into(), values: Values::Text(vec![Some("a".into()), Some("b".into())]) },
        ])
    }

    #[test]
    fn split_makes_equal_time_spans_and_the_last_holds_its_end() {
        let w = window();
        let spans = split(&w, 2);
        assert_eq!(spans, vec![(0, 350, vec![0, 1, 2, 3]), (350, 700, vec![4, 5, 6, 7])]);
        let spans = split(&w, 3);
        assert_eq!(spans.iter().map(|s| s.2.len()).sum::<usize>(), 8);
        assert_eq!((spans[2].1, spans[2].2.last()), (700, Some(&7)));
        // One instant: one span, whatever is asked; no rows: no spans.
        let mut at_once = w.clone();
        at_once.time_ms = vec![5; 8];
        assert_eq!(split(&at_once, 4), vec![(5, 5, (0..8).collect())]);
        assert!(split(&Window::default(), 4).is_empty());
    }

    #[test]
    fn each_bucket_has_the_statistics_of_its_rows() {
        let w = window();
        let labels: Labels = (0..8).map(|i| (format!("r{i}"), vec![json!(if i < 6 { "1" } else { "0" })])).collect();
        let buckets = timeline(Some(&reference()), &w, &labels, 2, 4);
        assert_eq!(buckets.len(), 2);
        let (first, second) = (&buckets[0], &buckets[1]);
        assert_eq!((first.rows, second.rows), (4, 4));
        let x = |b: &Bucket| b.features.iter().find(|f| f.feature == "x").cloned().unwrap();
        // The first span is the training data itself: no drift.
        assert_eq!((x(first).psi, x(first).ks), (0.0, Some(0.0)));
        assert_eq!(x(first).missing_rate, 0.0);
        // The second lies wholly above it: KS 1, one value of four missing.
        assert_eq!(x(second).ks, Some(1.0));
        assert_eq!(x(second).missing_rate, 0.25);
        assert!(x(second).psi > 1.0, "{:?}", x(second));
        // Each bucket's figures are those of the drift of its rows alone.
        let rows = select(&w, &[4, 5, 6, 7]);
        assert_eq!(second.features, drift::drift(&reference(), &rows.features, 4));
        // One value of the second span's eight is missing.
        assert_eq!((first.missing_rate, second.missing_rate), (Some(0.0), Some(0.125)));
        // `z` was never seen in training: one row of four breaks the schema.
        assert_eq!((first.schema_violation_rate, second.schema_violation_rate), (Some(0.0), Some(0.25)));
        // Accuracy per span: predictions 1 0 1 0 against labels 1 1 1 1, then 1 1 1 1 against 1 1 0 0.
        let accuracy = |b: &Bucket| b.performance.as_ref().map(|p| (p.metric, p.value, p.labelled));
        assert_eq!(accuracy(first), Some(("accuracy", 0.5, 4)));
        assert_eq!(accuracy(second), Some(("accuracy", 0.5, 4)));
        // Without a reference: performance only.
        let plain = timeline(None, &w, &Labels::new(), 2, 4);
        assert!(plain
            .iter()
            .all(|b| b.features.is_empty() && b.schema_violation_rate.is_none() && b.performance.is_none()));
    }
}
