//! Performance of a model version over a window: its logged predictions joined with ground-truth
//! labels posted later by request id. Accuracy when the predictions are labels (text), root mean squared
//! error when they are numbers.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::log::{Values, Window};

/// The measure and how many window rows had a label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Performance {
    /// `accuracy` or `rmse`.
    pub metric: &'static str,
    pub value: f64,
    /// Window rows with a ground-truth label.
    pub labelled: usize,
}

/// Labels per request id: one per row of the request (a JSON string or number each).
pub type Labels = HashMap<String, Vec<Value>>;

/// Joins the window's predictions with `labels`; `None` when no row has both.
pub fn performance(window: &Window, labels: &Labels) -> Option<Performance> {
    let prediction = window.prediction.as_ref()?;
    let label_of = |i: usize| -> Option<&Value> {
        let row = usize::try_from(*window.rows.get(i)?).ok()?;
        labels.get(window.request_ids.get(i)?)?.get(row)
    };
    match prediction {
        Values::Text(predicted) => {
            let (mut right, mut labelled) = (0usize, 0usize);
            for (i, p) in predicted.iter().enumerate() {
                let (Some(p), Some(label)) = (p, label_of(i)) else { continue };
                labelled += 1;
                if text_of(label).as_deref() == Some(p.as_str()) {
                    right += 1;
                }
            }
            (labelled > 0).then(|| Performance { metric: "accuracy", value: right as f64 / labelled as f64, labelled })
        }
        Values::Number(predicted) => {
            let (mut squares, mut labelled) = (0.0, 0usize);
            for (i, p) in predicted.iter().enumerate() {
                let (Some(p), Some(truth)) = (p, label_of(i).and_then(number_of)) else { continue };
                labelled += 1;
                squares += (p - truth) * (p - truth);
            }
            (labelled > 0).then(|| Performance { metric: "rmse", value: (squares / labelled as f64).sqrt(), labelled })
        }
    }
}

/// A label as the text a classifier predicts (`1` and `"1"` are the same label).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn window(prediction: Values) -> Window {
        Window {
            request_ids: vec!["a".into(), "a".into(), "b".into(), "c".into()],
            time_ms: vec![0; 4],
            rows: vec![0, 1, 0, 0],
            features: Vec::new(),
            prediction: Some(prediction),
        }
    }

    #[test]
    fn accuracy_joins_labels_by_request_and_row() {
        let w = window(Values::Text(["1", "0", "1", "0"].iter().map(|s| Some((*s).to_owned())).collect()));
        let labels: Labels = [("a".to_owned(), vec![json!(1), json!(1)]), ("b".to_owned(), vec![json!("1")])].into();
        // a/0 right, a/1 wrong, b/0 right; c has no label.
        assert_eq!(performance(&w, &labels), Some(Performance { metric: "accuracy", value: 2.0 / 3.0, labelled: 3 }));
        assert_eq!(performance(&w, &Labels::new()), None);
    }

    #[test]
    fn rmse_for_numeric_predictions() {
        let w = window(Values::Number(vec![Some(1.0), Some(2.0), Some(3.0), None]));
        let labels: Labels = [("a".to_owned(), vec![json!(2.0), json!(2.0)]), ("b".to_owned(), vec![json!(5)])].into();
        // errors 1, 0, 2 → sqrt(5 / 3)
        let p = performance(&w, &labels).unwrap();
        assert_eq!((p.metric, p.labelled), ("rmse", 3));
        assert!((p.value - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
