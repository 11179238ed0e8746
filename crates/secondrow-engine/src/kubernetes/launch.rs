//! The launcher: `secondrow launch`, the same binary inside each task Pod (as KFP's launcher is).
//!
//! With `--launcher-image IMAGE` a Pod gets an init container from the SecondRow image that copies the binary
//! into an `emptyDir` at [`BIN_DIR`] ([`install`]); the main container then runs
//! `BIN_DIR/secondrow launch run -- CMD ARGS…` ([`run`]): stage the task's inputs in, run the user command, stage
//! its outputs (output files and `executor_output.json`) out. Built-in components (`secondrow component …`)
//! call the copied binary, so they work in any image.

use std::path::{Path, PathBuf};

/// Where the init container puts the binary, in every container of the Pod.
pub const BIN_DIR: &str = "/secondrow-bin";

/// The binary's path inside the Pod.
pub fn binary_in_pod() -> String {
    format!("{BIN_DIR}/secondrow")
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("copying the launcher to {}: {source}", path.display())]
    Install { path: PathBuf, source: std::io::Error },
    #[error("starting the task's command `{program}`: {source}")]
    Start { program: String, source: std::io::Error },
}

impl LaunchError {
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        match self {
            LaunchError::Install { .. } => secondrow_error::ErrorKind::Internal,
            LaunchError::Start { .. } => secondrow_error::ErrorKind::InvalidInput,
        }
    }
}

/// Copies this binary to `dir/secondrow` (executable); its path.
pub fn install(dir: &Path) -> Result<PathBuf, LaunchError> {
    use std::os::unix::fs::PermissionsExt as _;
    let target = dir.join("secondrow");
    let err = |source| LaunchError::Install { path: target.clone(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    let me = std::env::current_exe().map_err(err)?;
    // A temporary name first: a half-copied binary is never found under the final name.
    let partial = dir.join(".secondrow.partial");
    std::fs::copy(&me, &partial).map_err(err)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    std::fs::rename(&partial, &target).map_err(err)?;
    Ok(target)
}

/// Artifact staging, the one place where a task's files move between the artifact store and the Pod.
///
/// With a local artifact root, the Pod mounts that root at the same path (the executor adds the volume), so
/// the command reads its inputs and writes its outputs and `executor_output.json` in place and nothing moves:
/// both steps have nothing to copy. A remote artifact store downloads inputs in [`stage_inputs`] and uploads
/// outputs in [`stage_outputs`].
mod staging {
    pub(super) fn stage_inputs() -> Result<(), String> {
        Ok(())
    }

    pub(super) fn stage_outputs() -> Result<(), String> {
        Ok(())
    }
}

/// Runs the task's command in the Pod between staging its inputs in and its outputs out; the command's exit
/// status (a failed staging step is exit status 1, with the reason on stderr).
pub async fn run(argv: &[String]) -> Result<i32, LaunchError> {
    if let Err(e) = staging::stage_inputs() {
        eprintln!("secondrow launch: staging the inputs: {e}");
        return Ok(1);
    }
    let program = argv.first().cloned().unwrap_or_default();
    let code = crate::process::run_inherited(argv).await.map_err(|source| LaunchError::Start { program, source })?;
    if code == 0 {
        if let Err(e) = staging::stage_outputs() {
            eprintln!("secondrow launch: staging the outputs: {e}");
            return Ok(1);
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_copies_an_executable_binary() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = install(&dir.path().join("bin")).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(meta.len(), std::fs::metadata(std::env::current_exe().unwrap()).unwrap().len());
    }

    #[tokio::test]
    async fn run_returns_the_commands_status() {
        let argv = |s: &str| vec!["sh".to_owned(), "-c".to_owned(), s.to_owned()];
        assert_eq!(run(&argv("exit 0")).await.unwrap(), 0);
        assert_eq!(run(&argv("exit 7")).await.unwrap(), 7);
        assert!(run(&["/no/such/program".to_owned()]).await.unwrap_err().to_string().contains("/no/such/program"));
    }
}
