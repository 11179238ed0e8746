//! Task logs: `GET /runs/ID/logs?task=NAME` answers exactly the text `secondrow logs ID [NAME]` prints
//! (both call [`render`]).
//!
//! Log files are found from store records only (run id and task path), never from request text; every
//! path component must be a plain name and the file's real path must lie under the logs root.

use std::path::{Component, Path, PathBuf};

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use secondrow_store::TaskRecord;

use crate::artifacts::load_run;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/runs/{id}/logs", get(logs))
}

#[derive(Deserialize, Default)]
struct LogsQuery {
    task: Option<String>,
}

async fn logs(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Response> {
    let run = load_run(&s, &caller, &id).await?;
    let tasks = s.store().list_tasks(&run.id).await?;
    let root = s.engine.config().logs_root.clone();
    let text = tokio::task::spawn_blocking(move || render(&root, &run.id, &tasks, q.task.as_deref()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}

/// The logs of a run's container tasks (all, or the one whose path, key or display name is `task`): each
/// non-empty stdout then stderr under a `==> PATH [stream] <==` line, each ending with a newline.
pub fn render(logs_root: &Path, run_id: &str, tasks: &[TaskRecord], task: Option<&str>) -> ApiResult<String> {
    if let Some(q) = task {
        if q.is_empty()
            || q.starts_with('/')
            || q.split('/').any(|part| part == ".." || part == ".")
            || q.contains('\0')
        {
            return Err(ApiError::invalid(format!("task `{q}`: expected a task path, key or name")));
        }
    }
    let selected: Vec<&TaskRecord> = tasks
        .iter()
        .filter(|t| t.kind.as_str() == "container")
        .filter(|t| task.is_none_or(|q| t.path == q || t.task_key == q || t.display_name == q))
        .collect();
    if let (true, Some(q)) = (selected.is_empty(), task) {
        return Err(ApiError::NotFound(format!("run `{run_id}` has no task `{q}`")));
    }
    let canonical_root = match logs_root.canonicalize() {
        Ok(r) => r,
        // No logs folder yet: no task has written anything.
        Err(_) => return Ok(String::new()),
    };
    let mut out = String::new();
    for t in selected {
        for stream in ["stdout", "stderr"] {
            let Some(path) = log_file(&canonical_root, run_id, &t.path, stream)? else { continue };
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            if text.is_empty() {
                continue;
            }
            out.push_str(&format!("==> {} [{stream}] <==\n", t.path));
            out.push_str(&text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// `ROOT/RUN/TASK_PATH/STREAM.log` if it exists; an error if any part would leave the root.
fn log_file(root: &Path, run_id: &str, task_path: &str, stream: &str) -> ApiResult<Option<PathBuf>> {
    let mut path = root.to_path_buf();
    for part in std::iter::once(run_id).chain(task_path.split('/')) {
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) => path.push(part),
            _ => {
                return Err(ApiError::PermissionDenied(format!("log path `{run_id}/{task_path}` leaves the logs root")))
            }
        }
    }
    path.push(format!("{stream}.log"));
    match path.canonicalize() {
        Ok(real) if real.starts_with(root) => Ok(Some(real)),
        Ok(_) => Err(ApiError::PermissionDenied(format!("log file of `{task_path}` resolves outside the logs root"))),
        Err(_) => Ok(None),
    }
}
