//! The Python that runs kfp lightweight components.
//!
//! A lightweight component's program calls `python3` by name, so the chosen interpreter must come first on
//! `PATH` under that name. When it already has kfp installed, the compiler's `pip install kfp` prelude is
//! dropped (docs/kfp-contract.md §2.1): it costs ~0.8 s per task and would reach for the network.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the engine learned about its Python, once per process.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// The interpreter.
    pub python: PathBuf,
    /// Directory to put first on `PATH` (holds a `python3` that is the chosen interpreter).
    pub path_prefix: Option<PathBuf>,
    /// Whether `import kfp` works there.
    pub has_kfp: bool,
    /// Why it does not, for the log.
    pub note: Option<String>,
}

impl PythonEnv {
    /// Where `python` is and what goes first on PATH, without starting it.
    pub fn locate(python: Option<&Path>, work_dir: &Path) -> PythonEnv {
        let (exe, path_prefix) = match python {
            None => (PathBuf::from("python3"), None),
            Some(p) => {
                let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
                let dir = p.parent().map(Path::to_path_buf);
                let sibling = dir.as_ref().map(|d| d.join("python3"));
                let prefix = match sibling {
                    // A venv's bin/ already holds python3 (and its pip); use the folder as is.
                    Some(s) if s.exists() && same_interpreter(&s, &p) => dir,
                    _ => write_shim(&p, work_dir).ok(),
                };
                (p, prefix)
            }
        };
        PythonEnv { python: exe, path_prefix, has_kfp: false, note: None }
    }

    /// Inspects `python` (or `python3` from PATH): can it import kfp's executor?
    pub async fn detect(python: Option<&Path>, work_dir: &Path) -> PythonEnv {
        let PythonEnv { python: exe, path_prefix, .. } = PythonEnv::locate(python, work_dir);
        let probe = crate::process::command(&exe)
            .args(["-c", "import kfp.dsl.executor_main"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output();
        let (has_kfp, note) = match tokio::time::timeout(Duration::from_secs(60), probe).await {
            Ok(Ok(out)) if out.status.success() => (true, None),
            Ok(Ok(out)) => (
                false,
                Some(format!("{} cannot import kfp: {}", exe.display(), String::from_utf8_lossy(&out.stderr).trim())),
            ),
            Ok(Err(e)) => (false, Some(format!("cannot start {}: {e}", exe.display()))),
            Err(_) => (false, Some(format!("{} did not answer within 60 s", exe.display()))),
        };
        PythonEnv { python: exe, path_prefix, has_kfp, note }
    }
}

fn same_interpreter(a: &Path, b: &Path) -> bool {
    a == b || a.canonicalize().ok() == b.canonicalize().ok()
}

/// A `python3` script that execs the configured interpreter (a symlink would lose a venv's identity).
fn write_shim(python: &Path, work_dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = work_dir.join("python-shim");
    std::fs::create_dir_all(&dir)?;
    let shim = dir.join("python3");
    let quoted = python.to_string_lossy().replace('\'', r"'\''");
    let tmp = dir.join(format!(".python3.{}", std::process::id()));
    std::fs::write(&tmp, format!("#!/bin/sh\nexec '{quoted}' \"$@\"\n"))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &shim)?;
    Ok(dir)
}
