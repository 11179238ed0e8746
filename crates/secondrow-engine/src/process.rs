//! The one module that constructs child processes (`clippy.toml` forbids `Command::new` anywhere else).
//!
//! [`run_process`] runs a task attempt: its own process group (so a cancel kills the whole tree), stdout and
//! stderr appended to per-task log files — or, in verbose mode, piped through and tailed live. The image of
//! the container spec is ignored: commands run on the host. [`command`] gives the engine's helpers (the
//! Python probe, environment creation, warm workers) a command with the settings every child gets here:
//! no stdin, killed when its handle is dropped.

#![allow(clippy::disallowed_methods)]

use std::ffi::OsStr;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A helper process (not a task attempt): stdin closed, killed when dropped. Callers add arguments, output
/// handling and environment, then `output()` or `spawn()` it.
pub(crate) fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// A fully resolved process to run.
#[derive(Debug, Clone)]
pub struct ProcessJob {
    pub argv: Vec<String>,
    /// Variables added to (or overriding) the inherited environment.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// When set, the task runs sandboxed: `env` is its whole environment (see [`crate::sandbox::task_env`]),
    /// the Landlock ruleset is enforced and the user switched in the child before exec.
    pub sandbox: Option<crate::sandbox::TaskSandbox>,
    /// Told the process group id as soon as the process runs (the engine records it for crash recovery).
    pub on_start: Option<mpsc::UnboundedSender<u32>>,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
    /// When set, each output line is also sent here (the CLI's `-v`).
    pub tail: Option<(String, mpsc::UnboundedSender<LogLine>)>,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub task_path: String,
    pub stderr: bool,
    pub line: String,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed by us because the run was canceled.
    Canceled,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("empty command")]
    EmptyCommand,
    #[error("cannot start `{program}`: {source}")]
    Start { program: String, source: std::io::Error },
    #[error("log file {path}: {source}")]
    Log { path: PathBuf, source: std::io::Error },
    #[error("building the task sandbox: {0}")]
    Sandbox(String),
    #[error("waiting for the process: {0}")]
    Wait(std::io::Error),
    /// The warm worker could not run the task (it crashed, or could not start).
    #[error(transparent)]
    Worker(#[from] crate::warm::WarmError),
}

/// Runs `job` to completion, or until `cancel` is cancelled (then kills its process group).
pub async fn run_process(job: ProcessJob, cancel: CancellationToken) -> Result<(Exit, Duration), SpawnError> {
    let (program, args) = job.argv.split_first().ok_or(SpawnError::EmptyCommand)?;
    let open_log = |path: &PathBuf| -> Result<std::fs::File, SpawnError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SpawnError::Log { path: path.clone(), source })
    };
    let mut cmd = Command::new(program);
    if let Some(sb) = &job.sandbox {
        cmd.env_clear();
        if let Some(u) = sb.user {
            cmd.as_std_mut().uid(u.uid).gid(u.gid);
        }
        let pending =
            crate::sandbox::PendingRestriction::new(sb.ruleset().map_err(|e| SpawnError::Sandbox(e.to_string()))?);
        // SAFETY: the closure only takes the prepared ruleset out of its mutex and makes two syscalls
        // (prctl, landlock_restrict_self); it runs after the user switch and right before exec.
        unsafe {
            cmd.as_std_mut().pre_exec(move || pending.enforce());
        }
    }
    cmd.args(args).current_dir(&job.cwd).envs(job.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
    // Own process group: killing -pgid reaches the shell and everything it started.
    cmd.as_std_mut().process_group(0);
    cmd.kill_on_drop(true);
    if job.tail.is_some() {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        cmd.stdout(open_log(&job.stdout_log)?).stderr(open_log(&job.stderr_log)?);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| SpawnError::Start { program: program.clone(), source })?;
    let pid = child.id().map(|p| Pid::from_raw(p as i32));
    if let (Some(tx), Some(p)) = (&job.on_start, child.id()) {
        let _ = tx.send(p);
    }

    let mut pumps = Vec::new();
    if let Some((path, tx)) = &job.tail {
        if let Some(out) = child.stdout.take() {
            pumps.push(tokio::spawn(pump(out, job.stdout_log.clone(), path.clone(), false, tx.clone())));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(tokio::spawn(pump(err, job.stderr_log.clone(), path.clone(), true, tx.clone())));
        }
    }

    let exit = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(SpawnError::Wait)?;
            use std::os::unix::process::ExitStatusExt as _;
            match (status.code(), status.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                (None, None) => Exit::Code(-1),
            }
        }
        _ = cancel.cancelled() => {
            if let Some(pid) = pid {
                kill_group(pid).await;
            }
            let _ = child.wait().await;
            Exit::Canceled
        }
    };
    // The group may have left children holding the pipes: make sure nothing outlives the task.
    if let Some(pid) = pid {
        let _ = killpg(pid, Signal::SIGKILL);
    }
    for p in pumps {
        let _ = p.await;
    }
    Ok((exit, started.elapsed()))
}

/// The start time of process `pid` (clock ticks since boot, field 22 of `/proc/PID/stat`): with the pid, it
/// names one process for good (ids are reused, start times of a reused id differ).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Kills what is left of a process group a previous engine started (it crashed while a task ran): the group
/// of leader `pgid` started at `started`. A leader alive with another start time is a different process and
/// is left alone; a gone leader with members left means those are ours (the id of a live group is never
/// handed to a new process). Returns once the group is gone (or after 5 s); true when something was killed.
pub async fn kill_orphan_group(pgid: u32, started: u64) -> bool {
    let Ok(raw) = i32::try_from(pgid) else { return false };
    if raw <= 1 {
        return false;
    }
    if let Some(t) = start_time(pgid) {
        if t != started {
            return false;
        }
    }
    let group = Pid::from_raw(raw);
    if killpg(group, Signal::SIGKILL).is_err() {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    // Until no member is left (a killed member that is a zombie of its gone parent is reaped by init).
    while Instant::now() < deadline && group_has_live_member(raw) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Whether any live (not zombie) process has process group `pgid`.
fn group_has_live_member(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else { return false };
    dir.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { return false };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return false };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|p| p.parse::<i32>().ok());
        pgrp == Some(pgid) && state != Some("Z")
    })
}

/// SIGTERM the group, give it a moment, then SIGKILL.
async fn kill_group(pid: Pid) {
    if killpg(pid, Signal::SIGTERM).is_err() {
        return;
    }
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if killpg(pid, None).is_err() {
            return;
        }
    }
    let _ = killpg(pid, Signal::SIGKILL);
}

async fn pump(
    stream: impl tokio::io::AsyncRead + Unpin,
    log: PathBuf,
    task_path: String,
    stderr: bool,
    tx: mpsc::UnboundedSender<LogLine>,
) {
    let Ok(mut file) = tokio::fs::OpenOptions::new().create(true).append(true).open(&log).await else {
        return;
    };
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let _ = file.write_all(line.as_bytes()).await;
        let _ = file.write_all(b"\n").await;
        let _ = tx.send(LogLine { task_path: task_path.clone(), stderr, line });
    }
    let _ = file.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dir: &std::path::Path, script: &str) -> ProcessJob {
        ProcessJob {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("GREETING".into(), "hola".into())],
            cwd: dir.to_path_buf(),
            stdout_log: dir.join("out.log"),
            stderr_log: dir.join("err.log"),
            sandbox: None,
            on_start: None,
            tail: None,
        }
    }

    #[tokio::test]
    async fn captures_output_env_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let (exit, _) = run_process(job(dir.path(), "echo $GREETING; echo bad >&2; exit 3"), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(exit, Exit::Code(3));
        assert_eq!(std::fs::read_to_string(dir.path().join("out.log")).unwrap(), "hola\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("err.log")).unwrap(), "bad\n");
    }

    #[tokio::test]
    async fn cancel_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let marker = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let handle = tokio::spawn(run_process(job(dir.path(), &script), cancel.clone()));
        for _ in 0..100 {
            if marker.exists() && !std::fs::read_to_string(&marker).unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = Instant::now();
        cancel.cancel();
        let (exit, _) = handle.await.unwrap().unwrap();
        assert_eq!(exit, Exit::Canceled);
        assert!(t.elapsed() < Duration::from_secs(2));
        let child: i32 = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The grandchild `sleep` is gone too (or a zombie awaiting reaping by init).
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z "), "grandchild still alive: {stat}");
    }

    #[tokio::test]
    async fn an_orphan_group_is_killed_only_when_its_start_time_matches() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut j = job(dir.path(), "sleep 30 & wait");
        j.on_start = Some(tx);
        let handle = tokio::spawn(run_process(j, CancellationToken::new()));
        let pgid = rx.recv().await.unwrap();
        let started = start_time(pgid).unwrap();
        assert!(!kill_orphan_group(pgid, started + 1).await, "a different start time is another process");
        assert!(group_has_live_member(pgid as i32));
        assert!(kill_orphan_group(pgid, started).await);
        assert!(!group_has_live_member(pgid as i32));
        let (exit, _) = handle.await.unwrap().unwrap();
        assert_eq!(exit, Exit::Signal(9));
    }

    #[tokio::test]
    async fn missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = job(dir.path(), "");
        j.argv = vec!["/no/such/program".into()];
        let e = run_process(j, CancellationToken::new()).await.unwrap_err();
        assert!(e.to_string().contains("cannot start `/no/such/program`"), "{e}");
    }
}
