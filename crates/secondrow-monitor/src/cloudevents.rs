//! The prediction log as CloudEvents (structured JSON, spec version 1.0) in the layout of KServe's
//! inference logger: per logged request, one `org.kubeflow.serving.inference.request` event whose data is
//! the request as a V2 inference request, and one `org.kubeflow.serving.inference.response` event whose data
//! is the V2 answer; both carry the request id as `id`, with KServe's extension attributes
//! (`inferenceservicename`, `namespace`, `component`, `endpoint`).

use serde_json::{json, Map, Value};

use crate::log::{Values, Window};

pub const REQUEST_TYPE: &str = "org.kubeflow.serving.inference.request";
pub const RESPONSE_TYPE: &str = "org.kubeflow.serving.inference.response";

/// Where the events come from.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub deployment: &'a str,
    pub version: &'a str,
    pub namespace: &'a str,
}

/// A column's rows `from..to` as a V2 tensor named `name`.
fn tensor(name: &str, values: &Values, from: usize, to: usize) -> Value {
    let (datatype, data): (&str, Vec<Value>) = match values {
        Values::Number(v) => ("FP64", v[from..to].iter().map(|x| json!(x)).collect()),
        Values::Text(v) => ("BYTES", v[from..to].iter().map(|x| json!(x)).collect()),
    };
    json!({"name": name, "datatype": datatype, "shape": [to - from], "data": data})
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The events of every request of `window` logged at or after `since_ms`, oldest first (a request's rows
/// are consecutive in the log).
pub fn events(window: &Window, origin: &Origin, since_ms: Option<i64>) -> Vec<Value> {
    let mut out = Vec::new();
    let source = format!("/deployments/{}/versions/{}", origin.deployment, origin.version);
    let mut start = 0;
    while start < window.len() {
        let id = &window.request_ids[start];
        let mut end = start + 1;
        while end < window.len() && &window.request_ids[end] == id && window.rows[end] > window.rows[end - 1] {
            end += 1;
        }
        let time_ms = window.time_ms[start];
        if since_ms.is_none_or(|s| time_ms >= s) {
            let envelope = |kind: &str, data: Value| {
                let mut e = Map::new();
                e.insert("specversion".into(), json!("1.0"));
                e.insert("id".into(), json!(id));
                e.insert("source".into(), json!(source));
                e.insert("type".into(), json!(kind));
                e.insert("time".into(), json!(rfc3339(time_ms)));
                e.insert("datacontenttype".into(), json!("application/json"));
                e.insert("inferenceservicename".into(), json!(origin.deployment));
                e.insert("namespace".into(), json!(origin.namespace));
                e.insert("component".into(), json!("predictor"));
                e.insert("endpoint".into(), json!(origin.version));
                e.insert("data".into(), data);
                Value::Object(e)
            };
            let inputs: Vec<Value> = window.features.iter().map(|c| tensor(&c.name, &c.values, start, end)).collect();
            out.push(envelope(REQUEST_TYPE, json!({"id": id, "inputs": inputs})));
            let outputs: Vec<Value> = window.prediction.iter().map(|p| tensor("prediction", p, start, end)).collect();
            out.push(envelope(
                RESPONSE_TYPE,
                json!({"id": id, "model_name": origin.deployment, "model_version": origin.version, "outputs": outputs}),
            ));
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Column;

    #[test]
    fn each_request_is_a_request_and_a_response_event_with_its_id() {
        let window = Window {
            request_ids: vec!["a".into(), "a".into(), "b".into()],
            time_ms: vec![1_700_000_000_000, 1_700_000_000_000, 1_700_000_001_500],
            rows: vec![0, 1, 0],
            features: vec![
                Column { name: "x".into(), values: Values::Number(vec![Some(1.5), None, Some(3.0)]) },
                Column { name: "c".into(), values: Values::Text(vec![Some("u".into()), Some("v".into()), None]) },
            ],
            prediction: Some(Values::Text(vec![Some("1".into()), Some("0".into()), Some("1".into())])),
        };
        let origin = Origin { deployment: "churn", version: "2", namespace: "team-a" };
        let all = events(&window, &origin, None);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0]["type"], REQUEST_TYPE);
        assert_eq!(all[1]["type"], RESPONSE_TYPE);
        assert_eq!(
            (all[0]["id"].as_str(), all[1]["id"].as_str(), all[2]["id"].as_str()),
            (Some("a"), Some("a"), Some("b"))
        );
        assert_eq!(all[0]["specversion"], "1.0");
        assert_eq!(all[0]["source"], "/deployments/churn/versions/2");
        assert_eq!(all[0]["time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(
            (all[0]["inferenceservicename"].as_str(), all[0]["namespace"].as_str()),
            (Some("churn"), Some("team-a"))
        );
        assert_eq!(
            all[0]["data"]["inputs"],
            json!([{"name": "x", "datatype": "FP64", "shape": [2], "data": [1.5, null]},
                   {"name": "c", "datatype": "BYTES", "shape": [2], "data": ["u", "v"]}])
        );
        assert_eq!(
            all[3]["data"],
            json!({"id": "b", "model_name": "churn", "model_version": "2",
                   "outputs": [{"name": "prediction", "datatype": "BYTES", "shape": [1], "data": ["1"]}]})
        );
        // Since a time: only the requests logged from then on.
        let later = events(&window, &origin, Some(1_700_000_001_000));
        assert_eq!(later.iter().map(|e| e["id"].as_str().unwrap()).collect::<Vec<_>>(), ["b", "b"]);
    }
}
