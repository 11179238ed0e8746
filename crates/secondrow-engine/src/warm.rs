//! Warm workers: one long-lived fork server per Python environment (`python/forkserver.py`), which has
//! already imported kfp and forks a fresh, isolated child per task.
//!
//! A task talks to its worker over a Unix socket: it sends the request, learns the child's pid (the leader
//! of its own process group, so cancel kills it the same way as a cold process) and waits for the exit
//! status. If the worker dies, its running tasks fail with a clear message (and are retried per policy by
//! the driver); the next task starts a new worker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::Child;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use crate::process::{self, Exit, LogLine};

const FORKSERVER: &str = include_str!("../python/forkserver.py");

/// Why a warm worker could not start or could not run a task (it crashed, or cannot import kfp).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct WarmError {
    message: String,
}

impl WarmError {
    /// `Unavailable`: the next task starts a new worker, so trying again may work.
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        secondrow_error::ErrorKind::Unavailable
    }
}

impl From<String> for WarmError {
    fn from(message: String) -> WarmError {
        WarmError { message }
    }
}

/// One task for a warm worker.
#[derive(Debug, Clone)]
pub struct WarmJob {
    /// The component's Python source (the last element of its command).
    pub code: String,
    /// `--executor_input … --function_to_execute …`.
    pub args: Vec<String>,
    /// The complete environment of the task.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
    /// Where the child writes `ephemeral_component.py`.
    pub program_dir: PathBuf,
    /// The task sandbox the child applies before running the component (its worker then starts with the
    /// allow-listed environment only, and preloads nothing).
    pub sandbox: Option<crate::sandbox::TaskSandbox>,
    /// Told the child's process group id once it runs (see [`crate::process::ProcessJob::on_start`]).
    pub on_start: Option<mpsc::UnboundedSender<u32>>,
    pub tail: Option<(String, mpsc::UnboundedSender<LogLine>)>,
}

struct Worker {
    child: Child,
    socket: PathBuf,
}

/// The warm workers of this process, one per Python executable.
pub struct WarmPool {
    work_dir: PathBuf,
    workers: Mutex<HashMap<PathBuf, Worker>>,
}

impl WarmPool {
    pub fn new(work_dir: PathBuf) -> WarmPool {
        WarmPool { work_dir, workers: Mutex::new(HashMap::new()) }
    }

    /// The socket of a live worker for `python`, starting one if needed.
    async fn socket_for(&self, python: &Path, env: &[(String, String)]) -> Result<PathBuf, String> {
        let mut workers = self.workers.lock().await;
        if let Some(w) = workers.get_mut(python) {
            if matches!(w.child.try_wait(), Ok(None)) && w.socket.exists() {
                return Ok(w.socket.clone());
            }
            workers.remove(python);
        }
        std::fs::create_dir_all(&self.work_dir).map_err(|e| format!("creating {}: {e}", self.work_dir.display()))?;
        let script = self.work_dir.join("forkserver.py");
        if std::fs::read_to_string(&script).ok().as_deref() != Some(FORKSERVER) {
            let tmp = self.work_dir.join(format!(".forkserver.py.{}", std::process::id()));
            std::fs::write(&tmp, FORKSERVER).map_err(|e| format!("writing the fork server: {e}"))?;
            std::fs::rename(&tmp, &script).map_err(|e| format!("writing the fork server: {e}"))?;
        }
        // Unix socket paths are short (108 bytes): keep them in the temp dir, unique per process and Python.
        let tag = format!("{:x}", fxhash(python.as_os_str().as_encoded_bytes()));
        let socket = std::env::temp_dir().join(format!("secondrow-{}-{tag}.sock", std::process::id()));
        let mut child = process::command(python)
            .arg(&script)
            .arg(&socket)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the warm worker ({}): {e}", python.display()))?;
        let stdout = child.stdout.take().ok_or("warm worker has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        match ready {
            Ok(Ok(Some(l))) if l == "ready" => {}
            other => {
                let _ = child.kill().await;
                return Err(format!("the warm worker ({}) did not start: {other:?}", python.display()));
            }
        }
        workers.insert(python.to_path_buf(), Worker { child, socket: socket.clone() });
        Ok(socket)
    }

    /// Starts the worker for `python` unless it runs already; an error means it cannot import kfp.
    pub async fn start(&self, python: &Path, env: &[(String, String)]) -> Result<(), WarmError> {
        self.socket_for(python, env).await.map(|_| ()).map_err(WarmError::from)
    }

    /// Forgets (and kills) the worker for `python` after it failed, so the next task starts a new one.
    async fn discard(&self, python: &Path) {
        if let Some(mut w) = self.workers.lock().await.remove(python) {
            let _ = w.child.kill().await;
        }
    }

    /// Runs one task in a warm child; `cancel` kills the child's process group. A worker that fails is
    /// discarded: the task fails (the driver retries it per policy) and the next task gets a new worker.
    pub async fn run(
        &self,
        python: &Path,
        job: WarmJob,
        cancel: CancellationToken,
    ) -> Result<(Exit, Duration), WarmError> {
        let result = self.run_on_worker(python, job, cancel).await;
        if result.is_err() {
            self.discard(python).await;
        }
        result.map_err(WarmError::from)
    }

    async fn run_on_worker(
        &self,
        python: &Path,
        job: WarmJob,
        cancel: CancellationToken,
    ) -> Result<(Exit, Duration), String> {
        let started = Instant::now();
        let worker_env = match &job.sandbox {
            Some(_) => crate::sandbox::allowed_env(),
            None => job.env.clone(),
        };
        let socket = self.socket_for(python, &worker_env).await?;
        let mut stream = UnixStream::connect(&socket).await.map_err(|e| format!("the warm worker crashed: {e}"))?;
        let req = json!({
            "code": job.code,
            "args": job.args,
            "env": job.env.iter().cloned().collect::<HashMap<_, _>>(),
            "cwd": job.cwd,
            "stdout": job.stdout_log,
            "stderr": job.stderr_log,
            "program_dir": job.program_dir,
            "preload": if job.sandbox.is_some() { Vec::new() } else { imported_modules(&job.code) },
            "sandbox": job.sandbox.as_ref().map(crate::sandbox::to_json),
        });
        let mut line = req.to_string();
        line.push('\n');
        stream.write_all(line.as_bytes()).await.map_err(|e| format!("the warm worker crashed: {e}"))?;
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        reader.read_line(&mut first).await.map_err(|e| format!("the warm worker crashed: {e}"))?;
        let pid = serde_json::from_str::<Value>(&first)
            .ok()
            .and_then(|v| v["pid"].as_i64())
            .ok_or_else(|| "the warm worker crashed before starting the task".to_owned())?;
        if let (Some(tx), Ok(p)) = (&job.on_start, u32::try_from(pid)) {
            let _ = tx.send(p);
        }
        let pid = Pid::from_raw(pid as i32);
        let tailer = job
            .tail
            .clone()
            .map(|(path, tx)| tokio::spawn(tail_files(job.stdout_log.clone(), job.stderr_log.clone(), path, tx)));
        let mut second = String::new();
        let exit = tokio::select! {
            read = reader.read_line(&mut second) => {
                match read {
                    Ok(n) if n > 0 => match serde_json::from_str::<Value>(&second).ok().and_then(|v| v["exit"].as_i64()) {
                        Some(c) if c >= 0 => Exit::Code(c as i32),
                        Some(c) => Exit::Signal(-c as i32),
                        None => Exit::Code(-1),
                    },
                    _ => {
                        let _ = killpg(pid, Signal::SIGKILL);
                        if let Some(t) = tailer { t.abort(); }
                        return Err("the warm worker crashed while running the task".into());
                    }
                }
            }
            _ = cancel.cancelled() => {
                let _ = killpg(pid, Signal::SIGTERM);
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = killpg(pid, Signal::SIGKILL);
                Exit::Canceled
            }
        };
        // Nothing the task started may outlive it.
        let _ = killpg(pid, Signal::SIGKILL);
        if let Some(t) = tailer {
            tokio::time::sleep(Duration::from_millis(60)).await;
            t.abort();
        }
        Ok((exit, started.elapsed()))
    }

    /// Stops every worker (tests use this to simulate a crash).
    pub async fn kill_all(&self) {
        let mut workers = self.workers.lock().await;
        for (_, mut w) in workers.drain() {
            let _ = w.child.kill().await;
            let _ = std::fs::remove_file(&w.socket);
        }
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        if let Ok(mut workers) = self.workers.try_lock() {
            for (_, w) in workers.drain() {
                let _ = std::fs::remove_file(&w.socket);
            }
        }
    }
}

/// Top-level module names a component imports (to pre-import them in the worker).
fn imported_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let l = line.trim();
        let names: Vec<&str> = if let Some(rest) = l.strip_prefix("import ") {
            rest.split(',').map(|s| s.split_whitespace().next().unwrap_or("")).collect()
        } else if let Some(rest) = l.strip_prefix("from ") {
            vec![rest.split_whitespace().next().unwrap_or("")]
        } else {
            continue;
        };
        for n in names {
            let top = n.split('.').next().unwrap_or("");
            if !top.is_empty() && !top.starts_with('_') && top != "kfp" && !out.iter().any(|o| o == top) {
                out.push(top.to_owned());
            }
        }
    }
    out
}

fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

/// Follows the two log files and forwards new lines until aborted.
async fn tail_files(stdout: PathBuf, stderr: PathBuf, task_path: String, tx: mpsc::UnboundedSender<LogLine>) {
    let mut offsets = [0u64, 0u64];
    let mut partial = [String::new(), String::new()];
    loop {
        for (i, path) in [&stdout, &stderr].into_iter().enumerate() {
            let Ok(bytes) = tokio::fs::read(path).await else { continue };
            if (bytes.len() as u64) <= offsets[i] {
                continue;
            }
            let new = String::from_utf8_lossy(&bytes[offsets[i] as usize..]).into_owned();
            offsets[i] = bytes.len() as u64;
            partial[i].push_str(&new);
            while let Some(pos) = partial[i].find('\n') {
                let line: String = partial[i].drain(..=pos).collect();
                let _ =
                    tx.send(LogLine { task_path: task_path.clone(), stderr: i == 1, line: line.trim_end().to_owned() });
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_imports() {
        let code =
            "import kfp\nfrom kfp import dsl\ndef f():\n    import numpy as np, json\n    from pandas.io import x\n";
        assert_eq!(imported_modules(code), ["numpy", "json", "pandas"]);
    }
}
