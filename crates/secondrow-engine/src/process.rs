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
    /// Folders bind-mounted into the process's own mount namespace (kfp-kubernetes volumes); needs root.
    pub mounts: Vec<BindMount>,
    /// Kill the process group after this long (`kubernetes.set_timeout`): [`Exit::TimedOut`].
    pub timeout: Option<Duration>,
    /// Text replaced by `***` in the task's logs (secret values).
    pub redact: Vec<String>,
}

/// A host folder made visible at `target` for one process only.
#[derive(Debug, Clone)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
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
    /// Killed by us because it ran longer than [`ProcessJob::timeout`].
    TimedOut(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("empty command")]
    EmptyCommand,
    #[error("cannot start `{program}`: {source}")]
    Start { program: String, source: std::io::Error },
    #[error("log file {path}: {source}")]
    Log { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Mount(String),
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
    // The child's set-up runs in this order before exec: its own mount namespace with the task's volumes
    // (needs root), then the switch to the task user, then the Landlock restriction (which forbids mounting).
    if !job.mounts.is_empty() {
        mount_namespace(&mut cmd, &job.mounts)?;
    }
    if let Some(sb) = &job.sandbox {
        sandboxed(&mut cmd, sb)?;
    }
    cmd.args(args).current_dir(&job.cwd).envs(job.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
    // Own process group: killing -pgid reaches the shell and everything it started.
    cmd.as_std_mut().process_group(0);
    cmd.kill_on_drop(true);
    // Output goes through SecondRow when tailed live, or when secrets must be redacted before any reader of
    // the log files (the API, the UI) can see a line.
    let piped = job.tail.is_some() || !job.redact.is_empty();
    if piped {
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
    if piped {
        let tail = job.tail.clone();
        if let Some(out) = child.stdout.take() {
            let log = job.stdout_log.clone();
            pumps.push(tokio::spawn(pump(out, log, tail.clone(), false, job.redact.clone())));
        }
        if let Some(err) = child.stderr.take() {
            let log = job.stderr_log.clone();
            pumps.push(tokio::spawn(pump(err, log, tail, true, job.redact.clone())));
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
        _ = deadline(job.timeout) => {
            if let Some(pid) = pid {
                kill_group(pid).await;
            }
            let _ = child.wait().await;
            Exit::TimedOut(job.timeout.unwrap_or_default())
        }
    };
    // The group may have left children holding the pipes: make sure nothing outlives the task.
    if let Some(pid) = pid {
        let _ = killpg(pid, Signal::SIGKILL);
    }
    for p in pumps {
        let _ = p.await;
    }
    // A last pass over the whole files (a secret the program wrote without a line break in between).
    for log in [&job.stdout_log, &job.stderr_log] {
        redact_file(log, &job.redact);
    }
    Ok((exit, started.elapsed()))
}

/// Never resolves without a timeout.
async fn deadline(timeout: Option<Duration>) {
    match timeout {
        Some(t) => tokio::time::sleep(t).await,
        None => std::future::pending().await,
    }
}

/// Replaces every secret value in `line` by `***`.
pub fn redact(line: &str, secrets: &[String]) -> String {
    let mut out = line.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// Rewrites a log file with the secret values replaced (the process wrote it directly).
fn redact_file(path: &std::path::Path, secrets: &[String]) {
    if secrets.iter().all(String::is_empty) {
        return;
    }
    let Ok(bytes) = std::fs::read(path) else { return };
    let text = String::from_utf8_lossy(&bytes);
    let cleaned = redact(&text, secrets);
    if cleaned != text {
        let _ = std::fs::write(path, cleaned);
    }
}

/// Gives the child a private mount namespace with `mounts` bound in, before it executes the program.
/// Only root (CAP_SYS_ADMIN) may do this; the mount points are created on the host beforehand (empty
/// folders, left in place: removing one would detach it from other tasks' namespaces).
/// Confines `cmd` to `sb`: an empty environment (the caller adds the allowed one), the task user, then
/// Landlock, applied in the child right before exec (after any mount namespace set up earlier).
pub(crate) fn sandboxed(cmd: &mut Command, sb: &crate::sandbox::TaskSandbox) -> Result<(), SpawnError> {
    cmd.env_clear();
    if let Some(u) = sb.user {
        let (uid, gid) = (nix::unistd::Uid::from_raw(u.uid), nix::unistd::Gid::from_raw(u.gid));
        // SAFETY: three syscalls in the forked child, no allocation (std's own `uid()` would switch before
        // the mount namespace is made, and a task user may not mount).
        unsafe {
            cmd.as_std_mut().pre_exec(move || {
                nix::unistd::setgroups(&[gid])?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
                Ok(())
            });
        }
    }
    let pending =
        crate::sandbox::PendingRestriction::new(sb.ruleset().map_err(|e| SpawnError::Sandbox(e.to_string()))?);
    // SAFETY: the closure only takes the prepared ruleset out of its mutex and makes two syscalls
    // (prctl, landlock_restrict_self); it runs after the mounts and the user switch, right before exec.
    unsafe {
        cmd.as_std_mut().pre_exec(move || pending.enforce());
    }
    Ok(())
}

fn mount_namespace(cmd: &mut Command, mounts: &[BindMount]) -> Result<(), SpawnError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt as _;
    if !nix::unistd::geteuid().is_root() {
        let targets: Vec<String> = mounts.iter().map(|m| m.target.display().to_string()).collect();
        return Err(SpawnError::Mount(format!(
            "mounting volumes at {} needs root: SecondRow gives the task a private mount namespace with bind \
             mounts, which only root (CAP_SYS_ADMIN) may create; run secondrow as root, or let the component take \
             the folder as a parameter",
            targets.join(", ")
        )));
    }
    let mut prepared = Vec::with_capacity(mounts.len());
    for m in mounts {
        if !m.source.is_dir() {
            return Err(SpawnError::Mount(format!("volume folder {} does not exist", m.source.display())));
        }
        std::fs::create_dir_all(&m.target)
            .map_err(|e| SpawnError::Mount(format!("creating mount point {}: {e}", m.target.display())))?;
        let c = |p: &std::path::Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| SpawnError::Mount(format!("path {} holds a NUL byte", p.display())))
        };
        prepared.push((c(&m.source)?, c(&m.target)?, m.read_only));
    }
    // SAFETY: the closure runs in the forked child before exec; it only makes system calls on
    // C strings prepared above (no allocation, no locks).
    unsafe {
        cmd.as_std_mut().pre_exec(move || {
            use nix::mount::{mount, MsFlags};
            let none: Option<&std::ffi::CStr> = None;
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            // Nothing mounted here propagates back to the host.
            mount(none, c"/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
            for (source, target, read_only) in &prepared {
                mount(Some(source.as_c_str()), target.as_c_str(), none, MsFlags::MS_BIND | MsFlags::MS_REC, none)?;
                if *read_only {
                    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                    mount(none, target.as_c_str(), none, flags, none)?;
                }
            }
            Ok(())
        });
    }
    Ok(())
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

/// Kills (SIGKILL) every process whose command line names a path under `dir`: what a program left in
/// sessions of their own (a Jupyter server's kernels, started with a connection file in its runtime folder)
/// outlives the kill of its process group. Returns how many were killed.
pub fn kill_processes_naming(dir: &std::path::Path) -> usize {
    let needle = dir.as_os_str().as_encoded_bytes();
    if needle.len() < 2 {
        return 0;
    }
    let mine = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
    let mut killed = 0;
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
        if pid <= 1 || pid as u32 == mine {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        if cmdline.windows(needle.len()).any(|w| w == needle)
            && nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
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
    tail: Option<(String, mpsc::UnboundedSender<LogLine>)>,
    stderr: bool,
    secrets: Vec<String>,
) {
    let Ok(mut file) = tokio::fs::OpenOptions::new().create(true).append(true).open(&log).await else {
        return;
    };
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = redact(&line, &secrets);
        let _ = file.write_all(line.as_bytes()).await;
        let _ = file.write_all(b"\n").await;
        if let Some((task_path, tx)) = &tail {
            let _ = tx.send(LogLine { task_path: task_path.clone(), stderr, line });
        }
    }
    let _ = file.flush().await;
}

/// Starts `argv` in the background for good: its own process group, stdin closed, stdout and stderr appended
/// to `log`, not killed when the caller exits (`secondrow job submit` leaves the job's supervisor running).
/// Returns its pid.
pub fn spawn_detached(argv: &[String], env: &[(String, String)], log: &std::path::Path) -> std::io::Result<u32> {
    let (program, args) =
        argv.split_first().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(out).stderr(err);
    cmd.process_group(0);
    let child = cmd.spawn()?;
    Ok(child.id())
}

/// Runs `argv` in the foreground with this process's stdin, stdout, stderr and environment less the
/// variables in `env_remove` (`secondrow launch run`); its exit status, or 128 + the signal that killed it.
pub async fn run_inherited(argv: &[String], env_remove: &[&str]) -> std::io::Result<i32> {
    use std::os::unix::process::ExitStatusExt as _;
    let (program, args) =
        argv.split_first().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = command(program);
    cmd.args(args);
    for name in env_remove {
        cmd.env_remove(name);
    }
    let status = cmd.status().await?;
    Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1))
}

/// Gives SIGPIPE back its default action, so that when whoever reads this process's output stops early
/// (`secondrow runs list | head`) the process ends quietly, as other Unix tools do, instead of panicking in
/// `println!` on the closed pipe (Rust ignores SIGPIPE by default). Only for commands that just print:
/// a process with children or connections (server, run) must keep ignoring it, or a child that exits
/// before reading its stdin would kill it.
pub fn end_quietly_on_closed_stdout() {
    use nix::sys::signal::{signal, SigHandler};
    // SAFETY: SIG_DFL is not a Rust handler; this runs before any other thread is started.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
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
            mounts: Vec::new(),
            timeout: None,
            redact: Vec::new(),
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_group_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = job(dir.path(), "sleep 30");
        j.timeout = Some(Duration::from_millis(200));
        let t = Instant::now();
        let (exit, _) = run_process(j, CancellationToken::new()).await.unwrap();
        assert_eq!(exit, Exit::TimedOut(Duration::from_millis(200)));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_running_task_log_never_holds_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let stop = dir.path().join("stop");
        let script = format!("echo token s3cr3t; while [ ! -e {} ]; do sleep 0.05; done", stop.display());
        let mut j = job(dir.path(), &script);
        j.redact = vec!["s3cr3t".into()];
        let handle = tokio::spawn(run_process(j, CancellationToken::new()));
        let log = dir.path().join("out.log");
        let started = Instant::now();
        // While the task still runs (what the API and UI would read), the line is already redacted.
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(!text.contains("s3cr3t"), "{text}");
            if text.contains("token ***") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no output: {text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::write(&stop, "").unwrap();
        let (exit, _) = handle.await.unwrap().unwrap();
        assert_eq!(exit, Exit::Code(0));
    }

    #[tokio::test]
    async fn secret_values_are_redacted_from_logs() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = job(dir.path(), "echo pw=s3cr3t; echo s3cr3t >&2");
        j.redact = vec!["s3cr3t".into()];
        run_process(j, CancellationToken::new()).await.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("out.log")).unwrap(), "pw=***\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("err.log")).unwrap(), "***\n");
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
