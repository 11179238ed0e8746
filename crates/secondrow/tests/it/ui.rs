//! The web UI in a real browser (`browser/ui_browser.py`: Playwright driving Debian's chromium): the
//! quickstart pipeline submitted with kfp.Client, watched live on its run page until every task succeeded,
//! a task's logs and the evaluation's confusion matrix and ROC curve opened, a running task's logs followed live
//! (a line printed after its panel opened appears without a reload) and its run's duration counting on, that
//! run terminated from its page, the two runs compared, a run started from the create-run form. Screenshots are
//! kept in `target/ui-screenshots/` (the test's artifacts). Needs `scripts/setup-browser` (run by `scripts/test`);
//! `SECONDROW_SKIP_BROWSER=1` skips it where no browser can be installed.

use std::path::PathBuf;
use std::process::Command;

use crate::api::Server;
use crate::support::{repo_root, Home};

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().map(PathBuf::from).find(|p| p.exists())
}

/// Runs `browser/SCRIPT` (Playwright in `.venv-ui` driving Debian's chromium) against `server` with the server's
/// URL, `args`, the screenshot folder and the browser; asserts it succeeded and gives the JSON object its last
/// line reports.
pub(crate) fn browser_script(home: &Home, server: &Server, script: &str, args: &[PathBuf]) -> serde_json::Value {
    let python = repo_root().join(".venv-ui/bin/python");
    assert!(python.exists(), "{} is missing: run ./scripts/setup-browser", python.display());
    let chromium = chromium().expect("chromium is not installed: run ./scripts/setup-browser");
    let root = std::path::absolute(repo_root()).unwrap();
    let out = Command::new(std::path::absolute(python).unwrap())
        .arg(root.join("crates/secondrow/tests/it/browser").join(script))
        .arg(&server.url)
        .args(args)
        .arg(root.join("target/ui-screenshots"))
        .arg(&chromium)
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("TMPDIR", home.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser test failed\nstdout:\n{stdout}\nstderr:\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(home.path().join("server.log")).unwrap_or_default()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap()
}

#[test]
fn quickstart_run_page_in_chromium() {
    if std::env::var_os("SECONDROW_SKIP_BROWSER").is_some() {
        eprintln!("SECONDROW_SKIP_BROWSER is set: browser test skipped");
        return;
    }
    let home = Home::new();
    let root = std::path::absolute(repo_root()).unwrap();
    // The quickstart's `ingest` reads its CSV by path: the task sandbox lets tasks read the import roots.
    let data = root.join("examples/quickstart/data");
    let server = Server::start(&home, &["--import-root", data.to_str().unwrap()]);
    let shots = root.join("target/ui-screenshots");
    let seen = browser_script(
        &home,
        &server,
        "ui_browser.py",
        &[root.join("examples/quickstart/pipeline.yaml"), root.join("examples/quickstart/data/customers.csv")],
    );
    assert_eq!(seen["nodes"], 9, "{seen}");
    assert!(seen["live_log_tick"].as_u64().is_some_and(|n| n >= 2), "{seen}");
    assert_eq!(seen["duration_ticked"], true, "{seen}");
    for shot in [
        "run.png",
        "run-viewport.png",
        "task-logs.png",
        "classification-metrics.png",
        "runs.png",
        "live-logs.png",
        "terminated.png",
        "compare.png",
    ] {
        assert!(shots.join(shot).metadata().is_ok_and(|m| m.len() > 1000), "{shot} missing");
    }
}
