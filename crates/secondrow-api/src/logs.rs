//! Task logs: `GET /runs/ID/logs?task=NAME` answers exactly the text `secondrow logs ID [NAME]` prints
//! (the same selection and layout as [`render`]), streamed from the files in constant memory whatever
//! their size. Options: `tail=N` keeps the last N lines of each log (found by reading the file backwards
//! in blocks), `offset=B` and `limit_bytes=N` cut a byte window out of the whole answer (its headers
//! included), so a client can page through a large log.
//!
//! Log files are found from store records only (run id and task path), never from request text; every
//! path component must be a plain name and the file's real path must lie under the logs root.

use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
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
    /// Only the last N lines of each log.
    tail: Option<u64>,
    /// Skip this many bytes of the answer.
    offset: Option<u64>,
    /// At most this many bytes of the answer.
    limit_bytes: Option<u64>,
}

/// A part of the answer: a header line, or a byte range of a log file.
enum Piece {
    Text(Bytes),
    File { path: PathBuf, start: u64, len: u64 },
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Text(b) => b.len() as u64,
            Piece::File { len, .. } => *len,
        }
    }
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
    let task = q.task.clone();
    let tail = q.tail;
    let pieces = tokio::task::spawn_blocking(move || plan(&root, &run.id, &tasks, task.as_deref(), tail))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let pieces = window(pieces, q.offset.unwrap_or(0), q.limit_bytes.unwrap_or(u64::MAX));
    let stream = futures::stream::iter(pieces)
        .then(|piece| async move {
            match piece {
                Piece::Text(bytes) => futures::stream::once(async move { Ok(bytes) }).boxed(),
                Piece::File { path, start, len } => match open_at(&path, start).await {
                    Ok(file) => tokio_util::io::ReaderStream::new(tokio::io::AsyncReadExt::take(file, len)).boxed(),
                    Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
                },
            }
        })
        .flatten();
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}

async fn open_at(path: &Path, start: u64) -> std::io::Result<tokio::fs::File> {
    use tokio::io::AsyncSeekExt;
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(start)).await?;
    Ok(file)
}

/// The answer as pieces: for each selected non-empty log, its header line, the file (from the start of
/// its last `tail` lines) and a newline when the file does not end with one — [`render`]'s layout.
fn plan(
    logs_root: &Path,
    run_id: &str,
    tasks: &[TaskRecord],
    task: Option<&str>,
    tail: Option<u64>,
) -> ApiResult<Vec<Piece>> {
    let mut pieces = Vec::new();
    for (t, stream, path) in select(logs_root, run_id, tasks, task)? {
        let Ok(file) = std::fs::File::open(&path) else { continue };
        let Ok(len) = file.metadata().map(|m| m.len()) else { continue };
        let start = match tail {
            Some(n) => tail_start(&file, len, n).map_err(|e| ApiError::Internal(format!("reading a log: {e}")))?,
            None => 0,
        };
        if start >= len {
            continue;
        }
        let last = read_byte(&file, len - 1).map_err(|e| ApiError::Internal(format!("reading a log: {e}")))?;
        pieces.push(Piece::Text(Bytes::from(format!("==> {} [{stream}] <==\n", t.path))));
        pieces.push(Piece::File { path, start, len: len - start });
        if last != b'\n' {
            pieces.push(Piece::Text(Bytes::from_static(b"\n")));
        }
    }
    Ok(pieces)
}

fn read_byte(file: &std::fs::File, at: u64) -> std::io::Result<u8> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at)?;
    Ok(b[0])
}

/// Where the last `n` lines of a file of `len` bytes start, reading backwards in 64 KiB blocks (a final
/// newline ends the last line; it does not start another).
fn tail_start(file: &std::fs::File, len: u64, n: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    if n == 0 {
        return Ok(len);
    }
    let mut end = len;
    if end > 0 && read_byte(file, end - 1)? == b'\n' {
        end -= 1;
    }
    let mut found = 0;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        for (i, b) in chunk.iter().enumerate().rev() {
            if *b == b'\n' {
                found += 1;
                if found == n {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

/// The byte window `[offset, offset + limit)` of the pieces laid end to end.
fn window(pieces: Vec<Piece>, mut offset: u64, mut limit: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    for piece in pieces {
        let len = piece.len();
        if offset >= len {
            offset -= len;
            continue;
        }
        if limit == 0 {
            break;
        }
        let take = (len - offset).min(limit);
        out.push(match piece {
            Piece::Text(b) => Piece::Text(b.slice(offset as usize..(offset + take) as usize)),
            Piece::File { path, start, .. } => Piece::File { path, start: start + offset, len: take },
        });
        limit -= take;
        offset = 0;
    }
    out
}

/// The selected tasks' existing log files, in [`render`]'s order, after the same checks.
fn select<'t>(
    logs_root: &Path,
    run_id: &str,
    tasks: &'t [TaskRecord],
    task: Option<&str>,
) -> ApiResult<Vec<(&'t TaskRecord, &'static str, PathBuf)>> {
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
    let Ok(canonical_root) = logs_root.canonicalize() else {
        // No logs folder yet: no task has written anything.
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for t in selected {
        for stream in ["stdout", "stderr"] {
            if let Some(path) = log_file(&canonical_root, run_id, &t.path, stream)? {
                files.push((t, stream, path));
            }
        }
    }
    Ok(files)
}

/// The logs of a run's container tasks (all, or the one whose path, key or display name is `task`): each
/// non-empty stdout then stderr under a `==> PATH [stream] <==` line, each ending with a newline.
pub fn render(logs_root: &Path, run_id: &str, tasks: &[TaskRecord], task: Option<&str>) -> ApiResult<String> {
    render_tail(logs_root, run_id, tasks, task, u64::MAX).map(|(text, _)| text)
}

/// [`render`], reading at most the last `max_bytes` of each file (from the first whole line in them), so that
/// showing a huge log costs no more memory than that; the flag says whether anything was left out.
pub fn render_tail(
    logs_root: &Path,
    run_id: &str,
    tasks: &[TaskRecord],
    task: Option<&str>,
    max_bytes: u64,
) -> ApiResult<(String, bool)> {
    let mut out = String::new();
    let mut clipped = false;
    for (t, stream, path) in select(logs_root, run_id, tasks, task)? {
        let Ok((text, cut)) = read_tail(&path, max_bytes) else { continue };
        if text.is_empty() {
            continue;
        }
        clipped |= cut;
        out.push_str(&format!("==> {} [{stream}] <==\n", t.path));
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok((out, clipped))
}

/// The file of one stream (`stdout` or `stderr`) of one task's log, if it exists, after the same checks as
/// [`render`] (no part of the path may leave the logs root, symlinks included): what the UI follows live.
pub fn stream_path(logs_root: &Path, run_id: &str, task_path: &str, stream: &str) -> ApiResult<Option<PathBuf>> {
    if !matches!(stream, "stdout" | "stderr") {
        return Err(ApiError::invalid(format!("log stream `{stream}`: expected stdout or stderr")));
    }
    let Ok(canonical_root) = logs_root.canonicalize() else { return Ok(None) };
    log_file(&canonical_root, run_id, task_path, stream)
}

/// The last `max_bytes` of a file as text, starting at a line boundary when cut; true when cut.
fn read_tail(path: &Path, max_bytes: u64) -> std::io::Result<(String, bool)> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    let mut bytes = vec![0u8; usize::try_from(len - start).unwrap_or(usize::MAX)];
    file.read_exact_at(&mut bytes, start)?;
    if start > 0 {
        let from = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.drain(..from);
    }
    Ok((String::from_utf8_lossy(&bytes).into_owned(), start > 0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_finds_the_last_lines_across_blocks() {
        let dir = tempfile_dir("tail-lines");
        let path = dir.join("log");
        let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let len = text.len() as u64;
        let from = |n| &text[tail_start(&file, len, n).unwrap() as usize..];
        assert_eq!(from(2), "line 49998\nline 49999\n");
        assert_eq!(from(0), "");
        assert_eq!(from(10_000).lines().count(), 10_000);
        assert_eq!(from(1_000_000), text);
        std::fs::write(&path, "a\nb").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(tail_start(&file, 3, 1).unwrap(), 2, "a last line without a newline");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn windows_cut_across_pieces() {
        let text = |s: &'static str| Piece::Text(Bytes::from_static(s.as_bytes()));
        let pieces = vec![text("abc"), Piece::File { path: PathBuf::from("f"), start: 10, len: 5 }, text("xy")];
        let cut = window(pieces, 2, 5);
        let shapes: Vec<String> = cut
            .iter()
            .map(|p| match p {
                Piece::Text(b) => String::from_utf8_lossy(b).into_owned(),
                Piece::File { start, len, .. } => format!("file {start}+{len}"),
            })
            .collect();
        assert_eq!(shapes, ["c", "file 10+4"]);
    }

    #[test]
    fn a_tail_of_a_big_log_reads_only_its_end_from_a_line_start() {
        let dir = tempfile_dir("tail-bytes");
        let path = dir.join("stdout.log");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let (tail, cut) = read_tail(&path, 100).unwrap();
        assert!(cut && tail.len() <= 100 && tail.ends_with("line 99999\n"), "{tail}");
        assert!(tail.starts_with("line "), "starts at a whole line: {tail}");
        let (all, cut) = read_tail(&path, u64::MAX).unwrap();
        assert!(!cut && all == text);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A folder of the test's own (tests run in parallel and each removes its folder at the end).
    fn tempfile_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("secondrow-logs-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
