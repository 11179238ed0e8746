//! The UI's management pages in a real browser (`browser/ui_manage.py`: Playwright driving Debian's
//! chromium): a pipeline uploaded through the form (and a version as a zip), an experiment created, a
//! recurring run scheduled (a refused cron shown on the form first), a run cloned with a changed parameter,
//! the deployments page reached from the top bar with the keyboard, a canary share set there and served
//! requests seen arriving live. Screenshots go to `target/ui-screenshots/manage-*.png`. Needs
//! `scripts/setup-browser`; `SECONDROW_SKIP_BROWSER=1` skips it where no browser can be installed.

use crate::api::Server;
use crate::support::{repo_root, Home};
use crate::ui::browser_script;

#[test]
fn management_pages_in_chromium() {
    if std::env::var_os("SECONDROW_SKIP_BROWSER").is_some() {
        eprintln!("SECONDROW_SKIP_BROWSER is set: browser test skipped");
        return;
    }
    let home = Home::new();
    let root = std::path::absolute(repo_root()).unwrap();
    let server = Server::start(&home, &[]);
    let shots = root.join("target/ui-screenshots");
    let seen = browser_script(&home, &server, "ui_manage.py", &[]);
    assert_eq!(seen["versions"], 2, "{seen}");
    assert_eq!(seen["recurring_trigger"], "every 86400 s", "{seen}");
    // The clone is a real run of the uploaded version with the changed parameter, in the new experiment.
    assert_eq!(seen["clone_msg"], "second", "{seen}");
    assert_eq!(seen["clone_state"], "SUCCEEDED", "{seen}");
    assert_eq!(seen["clone_has_version"], true, "{seen}");
    assert_eq!(seen["clone_in_experiment"], true, "{seen}");
    // 40 requests split between the default and the 30% canary, both with some.
    let served: Vec<u64> = seen["served"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(served.iter().sum::<u64>(), 40, "{seen}");
    assert!(served.iter().all(|n| *n > 0), "{seen}");
    assert!(seen["latency"].as_str().unwrap().contains("ms mean"), "{seen}");
    for shot in [
        "manage-pipeline.png",
        "manage-experiment.png",
        "manage-recurring-error.png",
        "manage-recurring.png",
        "manage-clone-form.png",
        "manage-clone-run.png",
        "manage-deployments.png",
    ] {
        assert!(shots.join(shot).metadata().is_ok_and(|m| m.len() > 1000), "{shot} missing");
    }
}
