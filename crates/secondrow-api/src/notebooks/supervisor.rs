//! The notebook processes: one JupyterLab server per up notebook, a child of this server started through
//! `secondrow_engine::process`, in its own process group, bound to loopback on a free port under the base
//! URL `/notebook/NS/NAME/`, accepting only the notebook's secret token (which only the proxy sends).
//!
//! A notebook's tokio task runs the process to its end; its readiness check moves it from `Starting` to
//! `Running`, and an exit nobody asked for makes it `Failed` with the exit and the tail of its log. Stop,
//! cull and delete cancel the task (killing the group) before recording the new state. The culler asks each
//! running notebook's Jupyter REST API for its kernels, as Kubeflow's culler does, and culls a notebook
//! whose kernels were idle for longer than the configured time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use secondrow_engine::process::{kill_processes_naming, run_process, start_time, Exit, ProcessJob};
use secondrow_engine::sandbox::{inherited_env, task_env, TaskSandbox};
use secondrow_engine::CancellationToken;
use secondrow_store::notebooks::{NotebookRecord, NotebookState};
use secondrow_store::now_ms;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// How long a new Jupyter server may take to answer before the notebook is `Failed`.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Where notebooks live and how the server reaches them; set once the server's listener is bound.
#[derive(Debug, Clone)]
pub struct NotebookSettings {
    /// `<root>/<namespace>/<name>/` holds `workspace/`, `home/` and `jupyter.log`.
    pub root: PathBuf,
    /// The KFP API as the notebook reaches it (`http://127.0.0.1:PORT`).
    pub api_url: String,
    /// The model-serving listener (`http://127.0.0.1:PORT`), for `SECONDROW_INFERENCE_ENDPOINT`.
    pub inference_url: Option<String>,
    /// Cull a notebook whose kernels were idle this long (`None`: never).
    pub cull_after: Option<Duration>,
    /// How often the culler looks.
    pub check_every: Duration,
}

type Key = (String, String);

/// The notebooks this server runs.
#[derive(Default)]
pub struct Notebooks {
    settings: OnceLock<NotebookSettings>,
    /// Up notebooks: the cancel switch of their process and the task that owns it.
    running: Mutex<HashMap<Key, (CancellationToken, tokio::task::JoinHandle<()>)>>,
    /// Serialises lifecycle changes (create, start, stop, delete, cull) across notebooks.
    pub(crate) lock: tokio::sync::Mutex<()>,
}

impl Notebooks {
    /// Sets where notebooks live; the first call wins.
    pub fn configure(&self, settings: NotebookSettings) {
        let _ = self.settings.set(settings);
    }

    pub fn settings(&self) -> ApiResult<&NotebookSettings> {
        self.settings.get().ok_or_else(|| ApiError::Unavailable("notebooks are not enabled on this server".to_owned()))
    }

    /// The folder of one notebook.
    pub fn dir(&self, namespace: &str, name: &str) -> ApiResult<PathBuf> {
        Ok(self.settings()?.root.join(namespace).join(name))
    }

    fn take(&self, namespace: &str, name: &str) -> Option<(CancellationToken, tokio::task::JoinHandle<()>)> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&(namespace.to_owned(), name.to_owned()))
    }

    /// Kills a notebook's process (if this server runs it) and waits for its task to end; then its kernels,
    /// which Jupyter starts in sessions of their own.
    pub(crate) async fn kill(&self, namespace: &str, name: &str) {
        if let Some((cancel, task)) = self.take(namespace, name) {
            cancel.cancel();
            let _ = task.await;
        }
        if let Ok(dir) = self.dir(namespace, name) {
            kill_processes_naming(&runtime_dir(&dir));
        }
    }

    /// Kills every notebook process (server shutdown); their rows stay up, so the next start restarts them.
    pub async fn kill_all(&self) {
        let all: Vec<_> = self.running.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for ((namespace, name), (cancel, task)) in all {
            cancel.cancel();
            let _ = task.await;
            if let Ok(dir) = self.dir(&namespace, &name) {
                kill_processes_naming(&runtime_dir(&dir));
            }
        }
    }
}

/// Where Jupyter keeps its runtime files (kernel connection files, which every kernel's command line names).
fn runtime_dir(dir: &Path) -> PathBuf {
    dir.join("home").join("runtime")
}

/// The Python a notebook runs: the given interpreter, else the cached environment of jupyterlab plus its
/// packages (made once per package set, on top of the server's Python).
pub(crate) async fn notebook_python(s: &AppState, python: Option<&str>, packages: &[String]) -> ApiResult<PathBuf> {
    if let Some(p) = python {
        let path = PathBuf::from(p);
        if !path.is_absolute() || !path.is_file() {
            return Err(ApiError::invalid(format!("python: `{p}` is not an absolute path to an interpreter")));
        }
        if !packages.is_empty() {
            return Err(ApiError::invalid(
                "packages: give either packages (installed with jupyterlab into a cached environment) or python \
                 (an interpreter that has jupyterlab), not both",
            ));
        }
        return Ok(path);
    }
    let base = s.engine.config().python.clone().unwrap_or_else(|| PathBuf::from("python3"));
    let mut wanted = vec!["jupyterlab".to_owned()];
    wanted.extend(packages.iter().cloned());
    let req = secondrow_spec::lightweight::PipRequirements { packages: wanted, index_args: Vec::new() };
    s.engine.envs().ensure(&base, &req).await.map_err(|e| {
        ApiError::invalid(format!(
            "the notebook environment (jupyterlab {}) could not be made: {e}",
            packages.join(" ")
        ))
    })
}

/// Checks that `python` can run a Jupyter server (`import jupyterlab`), with the error's last lines. It
/// runs confined like the notebook (the interpreter is the caller's choice).
pub(crate) async fn check_python(s: &AppState, python: &Path, scratch: &Path) -> ApiResult<()> {
    let log = scratch.join(format!("python-check-{}.log", std::process::id()));
    let mut job = job(
        vec![python.to_string_lossy().into_owned(), "-c".into(), "import jupyterlab, jupyter_server".into()],
        Vec::new(),
        scratch,
        &log,
    );
    confine(s, &mut job, python, scratch, scratch, Vec::new());
    let result = run_process(job, CancellationToken::new()).await;
    let tail = log_tail(&log, 5);
    let _ = std::fs::remove_file(&log);
    match result {
        Ok((Exit::Code(0), _)) => Ok(()),
        Ok((exit, _)) => {
            Err(ApiError::invalid(format!("python: `{}` cannot run JupyterLab ({exit:?}): {tail}", python.display())))
        }
        Err(e) => Err(ApiError::invalid(format!("python: `{}`: {e}", python.display()))),
    }
}

/// Confines a notebook's process when the server runs tasks sandboxed: like a task, the allow-listed
/// environment (no server secrets) plus `explicit`, the task user, and Landlock letting it write only
/// `writable` (HOME is `home`). Otherwise the server's environment plus `explicit`, HOME `home`.
fn confine(
    s: &AppState,
    job: &mut ProcessJob,
    python: &Path,
    writable: &Path,
    home: &Path,
    mut explicit: Vec<(String, String)>,
) {
    let config = &s.engine.config().sandbox;
    if config.enabled {
        let mut sb = TaskSandbox::base(config.task_user);
        sb.add_python(python);
        sb.write.push(writable.to_path_buf());
        job.env = task_env(inherited_env(), home, &explicit);
        job.sandbox = Some(sb);
    } else {
        explicit.push(("HOME".to_owned(), home.to_string_lossy().into_owned()));
        job.env = explicit;
    }
}

fn job(argv: Vec<String>, env: Vec<(String, String)>, cwd: &Path, log: &Path) -> ProcessJob {
    ProcessJob {
        argv,
        env,
        cwd: cwd.to_path_buf(),
        sandbox: None,
        on_start: None,
        stdout_log: log.to_path_buf(),
        stderr_log: log.to_path_buf(),
        tail: None,
        mounts: Vec::new(),
        timeout: None,
        redact: Vec::new(),
    }
}

/// The last `n` lines of a log file, on one line.
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A free loopback port (the kernel picks it; Jupyter binds it a moment later).
fn free_port() -> ApiResult<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| ApiError::Unavailable(format!("no free loopback port: {e}")))?;
    Ok(listener.local_addr().map_err(|e| ApiError::Internal(e.to_string()))?.port())
}

/// The base URL Jupyter serves under.
pub fn base_url(namespace: &str, name: &str) -> String {
    format!("/notebook/{namespace}/{name}/")
}

/// Starts (or, `restart`, restarts after a server restart) the process of a recorded notebook: picks a port,
/// records `Starting`, and hands the process to a task of its own. Returns the record in `Starting`.
pub(crate) async fn launch(s: &AppState, nb: &NotebookRecord, restart: bool) -> ApiResult<NotebookRecord> {
    let settings = s.notebooks.settings()?.clone();
    let python = notebook_python(s, nb.python.as_deref(), &nb.packages).await?;
    let dir = settings.root.join(&nb.namespace).join(&nb.name);
    let home = dir.join("home");
    for d in [&home, &PathBuf::from(&nb.workspace)] {
        std::fs::create_dir_all(d).map_err(|e| ApiError::Internal(format!("creating {}: {e}", d.display())))?;
    }
    let port = free_port()?;
    let nb = s.store().notebook_starting(&nb.namespace, &nb.name, port, restart).await?;
    let log = dir.join("jupyter.log");
    let base = base_url(&nb.namespace, &nb.name);
    let argv = vec![
        python.to_string_lossy().into_owned(),
        "-m".into(),
        "jupyterlab".into(),
        "--no-browser".into(),
        "--ip=127.0.0.1".into(),
        format!("--port={port}"),
        "--ServerApp.port_retries=0".into(),
        format!("--ServerApp.base_url={base}"),
        format!("--ServerApp.root_dir={}", nb.workspace),
        // As Kubeflow's images do: the proxy in front decides who gets in (by the API's token, not cookies).
        "--ServerApp.allow_origin=*".into(),
        "--allow-root".into(),
    ];
    // The token reaches Jupyter through its environment (the command line is readable by every local user).
    let mut explicit = vec![
        ("JUPYTER_TOKEN".to_owned(), nb.secret.clone()),
        ("NB_PREFIX".to_owned(), base.trim_end_matches('/').to_owned()),
        ("KF_PIPELINES_ENDPOINT".to_owned(), super::kfp_endpoint(&settings.api_url, &nb)),
        ("JUPYTER_CONFIG_DIR".to_owned(), home.join(".jupyter").to_string_lossy().into_owned()),
        ("JUPYTER_RUNTIME_DIR".to_owned(), runtime_dir(&dir).to_string_lossy().into_owned()),
    ];
    if let Some(url) = &settings.inference_url {
        explicit.push(("SECONDROW_INFERENCE_ENDPOINT".to_owned(), url.clone()));
    }
    let mut job = job(argv, Vec::new(), Path::new(&nb.workspace), &log);
    confine(s, &mut job, &python, &dir, &home, explicit);
    job.redact = vec![nb.secret.clone()];
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    job.on_start = Some(tx);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(supervise(s.clone(), nb.clone(), job, rx, cancel.clone(), log));
    s.notebooks
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((nb.namespace.clone(), nb.name.clone()), (cancel, task));
    Ok(nb)
}

/// Owns one notebook process until it ends.
async fn supervise(
    s: AppState,
    nb: NotebookRecord,
    job: ProcessJob,
    mut started: tokio::sync::mpsc::UnboundedReceiver<u32>,
    cancel: CancellationToken,
    log: PathBuf,
) {
    let (ns, name) = (nb.namespace.clone(), nb.name.clone());
    let port = nb.port.unwrap_or_default();
    let process = run_process(job, cancel.clone());
    tokio::pin!(process);
    let mut ready_check = Box::pin(async {
        let Some(pid) = started.recv().await else { return Err("the process did not start".to_owned()) };
        let start = start_time(pid).unwrap_or_default();
        s.store().notebook_process(&ns, &name, pid, start).await.map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if let Ok((200, _)) =
                super::proxy::get(port, &format!("{}api/status", base_url(&ns, &name)), &nb.secret).await
            {
                s.store().notebook_running(&ns, &name).await.map_err(|e| e.to_string())?;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("JupyterLab did not answer within {} s", READY_TIMEOUT.as_secs()))
    });
    let mut ready_done = false;
    let result = loop {
        tokio::select! {
            r = &mut process => break r,
            r = &mut ready_check, if !ready_done => {
                ready_done = true;
                if let Err(reason) = r {
                    if !cancel.is_cancelled() {
                        cancel.cancel();
                        let _ = (&mut process).await;
                        fail(&s, &ns, &name, &reason, &log).await;
                        s.notebooks.take(&ns, &name);
                    }
                    return;
                }
            }
        }
    };
    if cancel.is_cancelled() {
        // Stopped, culled, deleted or the server is shutting down: whoever cancelled records the state.
        return;
    }
    let reason = match result {
        Ok((Exit::Code(c), _)) => format!("JupyterLab exited with code {c}"),
        Ok((Exit::Signal(sig), _)) => format!("JupyterLab was killed by signal {sig}"),
        Ok((other, _)) => format!("JupyterLab ended: {other:?}"),
        Err(e) => format!("JupyterLab could not start: {e}"),
    };
    fail(&s, &ns, &name, &reason, &log).await;
    s.notebooks.take(&ns, &name);
}

async fn fail(s: &AppState, ns: &str, name: &str, reason: &str, log: &Path) {
    let tail = log_tail(log, 8);
    let reason = if tail.is_empty() { reason.to_owned() } else { format!("{reason}; log: {tail}") };
    tracing::warn!(namespace = ns, notebook = name, %reason, "notebook failed");
    if let Err(e) = s.store().notebook_down(ns, name, NotebookState::Failed, Some(&reason)).await {
        tracing::warn!(namespace = ns, notebook = name, error = %e, "recording a failed notebook");
    }
}

/// Stops an up notebook's process and records `to` (`Stopped`, `Culled`) with `reason`.
pub(crate) async fn stop(
    s: &AppState,
    ns: &str,
    name: &str,
    to: NotebookState,
    reason: Option<&str>,
) -> ApiResult<NotebookRecord> {
    let nb = s.store().get_notebook(ns, name).await?;
    if !nb.state.is_up() {
        return Err(ApiError::FailedPrecondition(format!("notebook `{ns}/{name}` is {}, not running", nb.state)));
    }
    s.notebooks.kill(ns, name).await;
    Ok(s.store().notebook_down(ns, name, to, reason).await?)
}

/// On server start: every notebook left up by the previous server is restarted (what is left of its old
/// process group is killed first); its workspace is where it was.
pub async fn recover(s: &AppState) -> ApiResult<usize> {
    let mut restarted = 0;
    for nb in s.store().list_notebooks(None).await? {
        if !nb.state.is_up() {
            continue;
        }
        if let (Some(pid), Some(started)) = (nb.pid, nb.pid_started) {
            secondrow_engine::process::kill_orphan_group(pid, started).await;
        }
        // Its kernels, in sessions of their own, outlived the group.
        kill_processes_naming(&runtime_dir(&s.notebooks.dir(&nb.namespace, &nb.name)?));
        match launch(s, &nb, true).await {
            Ok(_) => restarted += 1,
            Err(e) => {
                let reason = format!("restarting after a server restart failed: {e}");
                let _ = s.store().notebook_down(&nb.namespace, &nb.name, NotebookState::Failed, Some(&reason)).await;
            }
        }
    }
    Ok(restarted)
}

/// The culler: every `check_every`, records each running notebook's kernel activity (Kubeflow's rule: now
/// when a kernel is busy, else the newest kernel `last_activity`) and culls those idle past `cull_after`.
pub async fn culler(s: AppState) {
    let Ok(settings) = s.notebooks.settings().cloned() else { return };
    let Some(cull_after) = settings.cull_after else { return };
    loop {
        tokio::time::sleep(settings.check_every).await;
        let Ok(all) = s.store().list_notebooks(None).await else { continue };
        for nb in all.into_iter().filter(|n| n.state == NotebookState::Running) {
            let Some(port) = nb.port else { continue };
            let path = format!("{}api/kernels", base_url(&nb.namespace, &nb.name));
            if let Ok((200, body)) = super::proxy::get(port, &path, &nb.secret).await {
                if let Some(at) = kernel_activity(&body) {
                    let _ = s.store().notebook_activity(&nb.namespace, &nb.name, at).await;
                }
            }
            let Ok(nb) = s.store().get_notebook(&nb.namespace, &nb.name).await else { continue };
            let idle = now_ms() - nb.last_activity;
            if nb.state == NotebookState::Running && idle > cull_after.as_millis() as i64 {
                let _guard = s.notebooks.lock.lock().await;
                let reason = format!("no kernel activity for {} s", idle / 1000);
                match stop(&s, &nb.namespace, &nb.name, NotebookState::Culled, Some(&reason)).await {
                    Ok(_) => tracing::info!(namespace = %nb.namespace, notebook = %nb.name, %reason, "notebook culled"),
                    Err(e) => tracing::warn!(namespace = %nb.namespace, notebook = %nb.name, error = %e, "culling"),
                }
            }
        }
    }
}

/// The last activity a `GET /api/kernels` answer shows: now if any kernel is not idle, else the newest
/// `last_activity`; `None` for no kernels or an answer that is not a kernel list.
pub fn kernel_activity(body: &[u8]) -> Option<i64> {
    let kernels: Vec<serde_json::Value> = serde_json::from_slice(body).ok()?;
    if kernels.is_empty() {
        return None;
    }
    if kernels.iter().any(|k| k.get("execution_state").and_then(|v| v.as_str()) != Some("idle")) {
        return Some(now_ms());
    }
    kernels
        .iter()
        .filter_map(|k| k.get("last_activity")?.as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .max()
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_activity_follows_kubeflows_culler() {
        use super::kernel_activity;
        assert_eq!(kernel_activity(b"[]"), None);
        assert_eq!(kernel_activity(b"{}"), None);
        let idle = br#"[{"execution_state":"idle","last_activity":"2026-01-01T00:00:00.000000Z"},
                        {"execution_state":"idle","last_activity":"2026-01-02T00:00:00Z"}]"#;
        assert_eq!(kernel_activity(idle), Some(1_767_312_000_000));
        let busy = br#"[{"execution_state":"busy","last_activity":"2026-01-01T00:00:00Z"}]"#;
        assert!(kernel_activity(busy).unwrap() > 1_767_312_000_000);
    }
}
