//! Live updates: the Server-Sent Events stream of an open run page.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use secondrow_api::auth::Caller;
use secondrow_spec::PipelineSpec;
use secondrow_store::RunState;

use crate::viz::esc;
use crate::Ui;

use super::run::{parse_spec, view_html, RunQuery};
use super::UiResult;

struct Live {
    ui: Ui,
    id: String,
    dag: String,
    spec: Option<PipelineSpec>,
    last: Option<(RunState, Vec<(String, i64)>)>,
    done: bool,
}

/// Server-Sent Events for an open run page: an `update` (JSON: run state, view HTML, finished flag) whenever
/// the run's state or its tasks' state counts change; the stream ends after the run's final state.
pub async fn events(
    State(ui): State<Ui>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<RunQuery>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let run = caller.run(&ui.app, &id).await?;
    let live =
        Live { spec: parse_spec(&run).ok(), ui, id: run.id, dag: q.dag.unwrap_or_default(), last: None, done: false };
    let stream = futures::stream::unfold(live, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let store = st.ui.app.store();
            let state = match store.run_state(&st.id).await {
                Ok(s) => s,
                Err(_) => return None,
            };
            let counts = store.task_state_counts(&st.id).await.unwrap_or_default();
            let fp = (state, counts);
            if st.last.as_ref() != Some(&fp) {
                st.last = Some(fp);
                let tasks = store.list_tasks(&st.id).await.unwrap_or_default();
                let view = match &st.spec {
                    Some(spec) => view_html(spec, &st.dag, &tasks, &st.id).unwrap_or_else(|e| esc(&e)),
                    None => String::new(),
                };
                st.done = state.is_terminal();
                let data = serde_json::json!({"state": state.as_str(), "view": view, "done": st.done});
                return Some((Ok(Event::default().event("update").data(data.to_string())), st));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
