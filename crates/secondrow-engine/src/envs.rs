//! Cached Python environments for `packages_to_install` (docs/kfp-contract.md §2.1).
//!
//! A component's requirements get a virtual environment created once and reused, keyed by the normalized
//! requirement set, the index options and the base Python (version and site-packages). The base Python's
//! site-packages are linked in with a `.pth` file, so kfp (and what the base already has) stays importable
//! while the environment's own packages take precedence. Concurrent tasks wanting the same environment
//! wait for one creation (in-process: a `OnceCell` per key; across processes: an exclusive `flock` on a lock
//! file, which the kernel releases if its holder dies).
//! `uv` is used when it is on PATH, pip otherwise.
//!
//! Under the task sandbox ([`EnvManager::sandboxed`], what `secondrow server` sets) the installer runs like a
//! task, because a package built from source runs code of the pipeline author's choosing: with the
//! allow-listed environment, as the task user, and under Landlock that lets it write only the new
//! environment and its own scratch folder (HOME, TMPDIR and the installer's cache). The finished
//! environment is handed back to the server's user, so tasks can read it but not change it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::process;
use crate::sandbox::{chown_tree, inherited_env, task_env, TaskSandbox, TaskUser};

use secondrow_spec::lightweight::PipRequirements;

/// What is recorded about an environment (`metadata.json` in its folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvInfo {
    pub key: String,
    pub packages: Vec<String>,
    pub index_args: Vec<String>,
    pub base_python: String,
    pub python_version: String,
    pub installer: String,
    pub created_at_ms: i64,
    #[serde(default)]
    pub path: PathBuf,
    #[serde(default)]
    pub last_used_ms: i64,
}

/// Why a `packages_to_install` environment could not be created: probing the base Python, creating the
/// virtual environment or installing into it failed (the message carries the tool's stderr tail).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct EnvError {
    message: String,
}

impl EnvError {
    /// `Unavailable`: the package index or the base Python may work on a later try (the engine does not
    /// cache failed environments).
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        secondrow_error::ErrorKind::Unavailable
    }
}

impl From<String> for EnvError {
    fn from(message: String) -> EnvError {
        EnvError { message }
    }
}

type Cell = Arc<OnceCell<Result<PathBuf, EnvError>>>;

pub struct EnvManager {
    root: PathBuf,
    cells: Mutex<HashMap<String, Cell>>,
    /// Run the installer in the task sandbox, as this user (`Some(None)`: the server's own user).
    sandbox: Option<Option<TaskUser>>,
}

impl EnvManager {
    pub fn new(root: PathBuf) -> EnvManager {
        EnvManager { root, cells: Mutex::new(HashMap::new()), sandbox: None }
    }

    /// Installs packages inside the task sandbox, as `user` when given.
    pub fn sandboxed(mut self, user: Option<TaskUser>) -> EnvManager {
        self.sandbox = Some(user);
        self
    }

    /// Returns the Python of the environment for `req` on top of `base`, creating it if needed.
    pub async fn ensure(&self, base: &Path, req: &PipRequirements) -> Result<PathBuf, EnvError> {
        let probe = probe_python(base).await?;
        let key = hex::encode(Sha256::digest(
            format!("{}\n{}\n{}", req.normalized(), probe.version, probe.purelib).as_bytes(),
        ));
        let key = key[..24].to_owned();
        let cell = {
            let mut cells =
                self.cells.lock().map_err(|_| EnvError::from("environment registry poisoned".to_owned()))?;
            cells.entry(key.clone()).or_default().clone()
        };
        let result = cell
            .get_or_init(|| async { self.create(base, req, &key, probe.clone()).await.map_err(EnvError::from) })
            .await
            .clone();
        if result.is_err() {
            // Do not cache failures: a later task may succeed (e.g. after the index comes back).
            if let Ok(mut cells) = self.cells.lock() {
                cells.remove(&key);
            }
        }
        let python = result?;
        let _ = std::fs::write(self.root.join(&key).join("last_used"), now_ms().to_string());
        Ok(python)
    }

    async fn create(&self, base: &Path, req: &PipRequirements, key: &str, probe: Probe) -> Result<PathBuf, String> {
        let dir = self.root.join(key);
        let python = dir.join("bin/python");
        let ready = dir.join("ready");
        if ready.exists() {
            return Ok(python);
        }
        std::fs::create_dir_all(&self.root).map_err(|e| format!("creating {}: {e}", self.root.display()))?;
        // Across processes: an exclusive advisory lock, released by the kernel when its holder exits (so a
        // crashed creator never blocks the next one). Whoever waited finds the environment ready.
        let lock = lock_exclusive(self.root.join(format!("{key}.lock"))).await?;
        if ready.exists() {
            return Ok(python);
        }
        let result = self.build(base, req, key, &dir, &probe).await;
        if result.is_ok() {
            let _ = std::fs::write(&ready, "");
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        drop(lock);
        result.map(|_| python)
    }

    async fn build(
        &self,
        base: &Path,
        req: &PipRequirements,
        key: &str,
        dir: &Path,
        probe: &Probe,
    ) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(dir);
        let uv = which("uv");
        let installer = if uv.is_some() { "uv" } else { "pip" };
        match &uv {
            Some(uv) => {
                run(process::command(uv).arg("venv").arg("--quiet").arg("--python").arg(base).arg(dir), "uv venv")
                    .await?
            }
            None => run(process::command(base).args(["-m", "venv"]).arg(dir), "python -m venv").await?,
        }
        let python = dir.join("bin/python");
        let site = python_output(&python, "import sysconfig; print(sysconfig.get_paths()['purelib'])").await?;
        // Keep the base's packages (kfp) importable, after the environment's own.
        std::fs::write(Path::new(site.trim()).join("_secondrow_base.pth"), format!("{}\n", probe.purelib))
            .map_err(|e| format!("linking the base site-packages: {e}"))?;
        let mut cmd = match &uv {
            Some(uv) => {
                let mut c = process::command(uv);
                c.args(["pip", "install", "--quiet", "--python"]).arg(&python);
                c
            }
            None => {
                let mut c = process::command(&python);
                c.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-script-location"]);
                c
            }
        };
        cmd.args(&req.index_args).args(&req.packages);
        let scratch = self.root.join(format!("{key}.tmp"));
        if let Some(user) = self.sandbox {
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
            let mut sb = TaskSandbox::base(user);
            sb.add_python(base);
            sb.read.extend(local_find_links(&req.index_args));
            sb.write.extend([dir.to_path_buf(), scratch.clone()]);
            if let Some(u) = user {
                chown_tree(dir, Some(u)).map_err(|e| format!("handing {} to the task user: {e}", dir.display()))?;
                chown_tree(&scratch, Some(u))
                    .map_err(|e| format!("handing {} to the task user: {e}", scratch.display()))?;
            }
            process::sandboxed(&mut cmd, &sb).map_err(|e| format!("pip install: {e}"))?;
            cmd.envs(task_env(inherited_env(), &scratch, &[]));
        }
        let installed = run(&mut cmd, "pip install").await;
        if self.sandbox.is_some() {
            let _ = std::fs::remove_dir_all(&scratch);
            // Back to the server's user: tasks of every namespace read this environment, none may change it.
            if let Some(Some(_)) = self.sandbox {
                chown_tree(dir, None).map_err(|e| format!("taking {} back from the task user: {e}", dir.display()))?;
            }
        }
        installed?;
        let info = EnvInfo {
            key: key.to_owned(),
            packages: req.packages.clone(),
            index_args: req.index_args.clone(),
            base_python: base.to_string_lossy().into_owned(),
            python_version: probe.version.clone(),
            installer: installer.to_owned(),
            created_at_ms: now_ms(),
            path: dir.to_path_buf(),
            last_used_ms: now_ms(),
        };
        let json = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("metadata.json"), json).map_err(|e| format!("writing metadata: {e}"))?;
        Ok(())
    }

    /// Every complete environment.
    pub fn list(&self) -> Vec<EnvInfo> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Vec::new() };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let dir = e.path();
            if !dir.join("ready").exists() {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(dir.join("metadata.json")) else { continue };
            let Ok(mut info) = serde_json::from_str::<EnvInfo>(&text) else { continue };
            info.path = dir.clone();
            info.last_used_ms = std::fs::read_to_string(dir.join("last_used"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(info.created_at_ms);
            out.push(info);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Removes environments not used for `older_than` (all when `None`); returns what was removed.
    pub fn prune(&self, older_than: Option<Duration>) -> Result<Vec<EnvInfo>, String> {
        let cutoff = older_than.map(|d| now_ms() - d.as_millis() as i64);
        let mut removed = Vec::new();
        for info in self.list() {
            if cutoff.is_none_or(|c| info.last_used_ms < c) {
                std::fs::remove_dir_all(&info.path).map_err(|e| format!("removing {}: {e}", info.path.display()))?;
                removed.push(info);
            }
        }
        Ok(removed)
    }
}

#[derive(Debug, Clone)]
struct Probe {
    version: String,
    purelib: String,
}

async fn probe_python(python: &Path) -> Result<Probe, String> {
    let out = python_output(
        python,
        "import sys, sysconfig; print(sys.version.split()[0]); print(sysconfig.get_paths()['purelib'])",
    )
    .await?;
    let mut lines = out.lines();
    match (lines.next(), lines.next()) {
        (Some(v), Some(p)) => Ok(Probe { version: v.to_owned(), purelib: p.to_owned() }),
        _ => Err(format!("unexpected answer from {}: {out}", python.display())),
    }
}

async fn python_output(python: &Path, code: &str) -> Result<String, String> {
    let out = process::command(python)
        .args(["-c", code])
        .output()
        .await
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", python.display(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Local folders named by `--find-links`/`-f` in a component's index options (the installer reads them).
fn local_find_links(index_args: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut args = index_args.iter();
    while let Some(a) = args.next() {
        let value = match a.as_str() {
            "--find-links" | "-f" => args.next().map(String::as_str),
            other => other.strip_prefix("--find-links="),
        };
        if let Some(v) = value {
            let path = Path::new(v.strip_prefix("file://").unwrap_or(v));
            if path.is_absolute() {
                found.push(path.to_path_buf());
            }
        }
    }
    if let Some(links) = std::env::var_os("PIP_FIND_LINKS") {
        found.extend(std::env::split_paths(&links).filter(|p| p.is_absolute()));
    }
    found
}

async fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().await.map_err(|e| format!("{what}: cannot start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
    Err(format!("{what} failed ({}):\n{}", out.status, tail.join("\n")))
}

/// Opens (creating) `path` and takes an exclusive `flock` on it, waiting as long as another holds it.
async fn lock_exclusive(path: PathBuf) -> Result<std::fs::File, String> {
    let shown = path.display().to_string();
    let locked = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(|e| format!("locking {shown}: {e}"))?;
    locked.map_err(|e| format!("locking {shown}: {e}"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_environment_lock_is_exclusive_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.lock");
        let held = lock_exclusive(path.clone()).await.unwrap();
        let other = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        drop(held);
        let again = lock_exclusive(path.clone()).await.unwrap();
        drop(again);
        other.try_lock().unwrap();
    }
}
