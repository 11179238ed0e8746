//! Page handlers: the runs list (`runs.rs`), a run (graph, parameters, artifacts) with an optional side panel
//! (a task with its logs in `run.rs`, or an artifact with its visualization in `artifacts.rs`), the live-update
//! streams of the graph and of a running task's logs (`live.rs`), actions and forwarding to the API (`actions.rs`); shared formatting helpers here.

use serde_json::Value;

mod actions;
mod artifacts;
mod live;
mod run;
mod runs;

pub(crate) use actions::{action, api_message, forward_body};
pub(crate) use artifacts::{artifact_html, download};
pub(crate) use live::{events, log_events};
pub(crate) use run::{artifact, logs, run, task};
pub(crate) use runs::runs;

type UiResult<T> = Result<T, crate::UiError>;

/// Epoch ms as RFC 3339 (the browser shows it in its own time zone).
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// How long a run or task ran (`…` after it while it still runs); empty before it started.
pub(crate) fn duration(start: Option<i64>, end: Option<i64>) -> String {
    let (Some(s), end) = (start, end) else { return String::new() };
    let ms = end.unwrap_or_else(secondrow_store::now_ms) - s;
    let secs = ms.max(0) / 1000;
    let text = if secs >= 3600 {
        format!("{}h {:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", ms.max(0) as f64 / 1000.0)
    };
    if end.is_none() {
        format!("{text}…")
    } else {
        text
    }
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
