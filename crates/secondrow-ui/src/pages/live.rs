//! Live updates over Server-Sent Events: an open run page's graph, and an open task panel's logs.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use secondrow_api::auth::Caller;
use secondrow_spec::PipelineSpec;
use secondrow_store::RunState;
use serde::Deserialize;

use crate::viz::esc;
use crate::Ui;

use super::run::{parse_spec, view_html, RunQuery, MAX_INLINE};
use super::{duration, UiResult};

struct Live {
    ui: Ui,
    id: String,
    dag: String,
    spec: Option<PipelineSpec>,
    last: Option<(RunState, Vec<(String, i64)>)>,
    done: bool,
}

/// Server-Sent Events for an open run page: an `update` (JSON: run state, view HTML, finished flag, the
/// duration so far with the start time to count on from while it runs) whenever
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
                // The run's times as of this change: the page shows the duration, and while the run runs
                // counts it on from `started_ms` (against `now_ms`, the server's clock) every second.
                let (started, finished) =
                    store.get_run(&st.id).await.map(|r| (r.started_at, r.finished_at)).unwrap_or((None, None));
                let data = serde_json::json!({
                    "state": state.as_str(), "view": view, "done": st.done,
                    "duration": duration(started, finished),
                    "started_ms": if st.done { None } else { started },
                    "now_ms": secondrow_store::now_ms(),
                });
                return Some((Ok(Event::default().event("update").data(data.to_string())), st));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// How often a live log stream looks for new bytes and for the task's end.
const LOG_POLL: Duration = Duration::from_millis(150);
/// The most one `log` event carries.
const LOG_CHUNK: u64 = 256 * 1024;

/// Bytes read from a log file: their text, the range they came from, and whether they restart the view
/// (the reader was more than [`MAX_INLINE`] behind, or the file was cut shorter: only the tail is sent).
#[derive(Debug, Default)]
pub(super) struct LogChunk {
    pub text: String,
    pub start: u64,
    pub end: u64,
    pub reset: bool,
}

/// What `path` holds after `offset`: everything up to its end (`whole`, for a page's first render) or at most
/// [`LOG_CHUNK`] bytes; never more than the last [`MAX_INLINE`] bytes (then from a line start, `reset`).
/// A character cut at the end is left for the next read, so text is never split inside a UTF-8 sequence.
pub(super) fn read_log(path: &Path, offset: u64, whole: bool) -> std::io::Result<LogChunk> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let max = MAX_INLINE as u64;
    let (mut start, reset) =
        if len < offset || len - offset > max { (len.saturating_sub(max), true) } else { (offset, false) };
    let end = if whole { len } else { len.min(start + LOG_CHUNK) };
    let mut bytes = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
    file.read_exact_at(&mut bytes, start)?;
    if reset && start > 0 {
        let from = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.drain(..from);
        start += from as u64;
    }
    let keep = match std::str::from_utf8(&bytes) {
        Ok(_) => bytes.len(),
        // An incomplete character at the end: wait for the rest of it (unless the file ends there for good).
        Err(e) if e.error_len().is_none() && !whole => e.valid_up_to(),
        Err(_) => bytes.len(),
    };
    bytes.truncate(keep);
    let end = start + keep as u64;
    Ok(LogChunk { text: String::from_utf8_lossy(&bytes).into_owned(), start, end, reset })
}

#[derive(Deserialize)]
pub struct LogEventsQuery {
    task: String,
    #[serde(default)]
    stdout: u64,
    #[serde(default)]
    stderr: u64,
}

struct Follow {
    ui: Ui,
    run_id: String,
    task: String,
    /// Where each stream (stdout, stderr) continues.
    offsets: [u64; 2],
    pending: VecDeque<Event>,
    /// The task has ended: what is left is sent, then `end`.
    finishing: bool,
    done: bool,
}

/// Server-Sent Events that follow one task's logs from the given byte offsets (where the page's render ended):
/// a `log` event (JSON: stream, text, reset) whenever a stream grows, polled every 150 ms; after the task (or
/// its run) has ended, the last bytes and then `end`, and the stream closes. A reader far behind gets only
/// the last 512 KiB (`reset`).
pub async fn log_events(
    State(ui): State<Ui>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<LogEventsQuery>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let run = caller.run(&ui.app, &id).await?;
    let root = ui.app.engine.config().logs_root.clone();
    // Refuses task paths that would leave the logs root before anything is read.
    secondrow_api::logs::stream_path(&root, &run.id, &q.task, "stdout")?;
    if ui.app.store().task_state(&run.id, &q.task).await?.is_none() {
        return Err(secondrow_api::ApiError::NotFound(format!("run `{id}` has no task `{}`", q.task)).into());
    }
    let follow = Follow {
        ui,
        run_id: run.id,
        task: q.task,
        offsets: [q.stdout, q.stderr],
        pending: VecDeque::new(),
        finishing: false,
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((Ok(ev), st));
            }
            if st.done {
                return None;
            }
            if st.finishing {
                st.done = true;
                return Some((Ok(Event::default().event("end").data("{}")), st));
            }
            // The state first, then the files: once the task is seen ended, every byte it wrote is there.
            let store = st.ui.app.store();
            let ended = match store.task_state(&st.run_id, &st.task).await {
                Ok(Some(s)) if s.is_terminal() => true,
                Ok(Some(_)) => store.run_state(&st.run_id).await.map_or(true, RunState::is_terminal),
                _ => true,
            };
            let root = st.ui.app.engine.config().logs_root.clone();
            let (run_id, task, offsets) = (st.run_id.clone(), st.task.clone(), st.offsets);
            let read = tokio::task::spawn_blocking(move || new_log_bytes(&root, &run_id, &task, offsets, ended)).await;
            for (i, chunk) in read.unwrap_or_default().into_iter().enumerate() {
                let Some((name, chunk)) = chunk else { continue };
                st.offsets[i] = chunk.end;
                if chunk.text.is_empty() && !chunk.reset {
                    continue;
                }
                let data = serde_json::json!({"stream": name, "text": chunk.text, "reset": chunk.reset});
                st.pending.push_back(Event::default().event("log").data(data.to_string()));
            }
            st.finishing = ended;
            if st.pending.is_empty() && !ended {
                tokio::time::sleep(LOG_POLL).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Each stream's new bytes after its offset (all of them, chunk by chunk, once the task has ended).
fn new_log_bytes(
    root: &Path,
    run_id: &str,
    task: &str,
    offsets: [u64; 2],
    to_end: bool,
) -> Vec<Option<(&'static str, LogChunk)>> {
    ["stdout", "stderr"]
        .into_iter()
        .zip(offsets)
        .map(|(name, offset)| {
            let path: PathBuf = secondrow_api::logs::stream_path(root, run_id, task, name).ok()??;
            let chunk = read_log(&path, offset, to_end).ok()?;
            (chunk.end != offset || chunk.reset).then_some((name, chunk))
        })
        .collect()
}
