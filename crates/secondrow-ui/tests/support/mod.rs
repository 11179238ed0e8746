//! What every HTML-level test of the UI starts from: the real UI and API routers over a real SQLite store,
//! artifact folder and engine in a temporary folder.

// Each test file uses a part of this.
#![allow(dead_code)]
use axum::Router;

use secondrow_api::AppState;
use secondrow_engine::{Engine, EngineConfig};
use secondrow_store::{ArtifactStore, Store};

/// One test's server state; the folder lives as long as it.
pub struct Env {
    pub _dir: tempfile::TempDir,
    pub root: std::path::PathBuf,
    pub state: AppState,
    pub app: Router,
}

/// A fresh store and engine; `admin` turns tokens on with that admin token.
pub async fn env(admin: Option<&str>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let store = Store::open(&format!("sqlite://{}", root.join("db.sqlite").display())).await.unwrap();
    std::fs::create_dir_all(root.join("artifacts")).unwrap();
    let artifacts = ArtifactStore::open_local(&root.join("artifacts")).unwrap();
    let config = EngineConfig {
        logs_root: root.join("logs"),
        work_dir: root.join("work"),
        parallelism: 1,
        python: None,
        python_mode: Default::default(),
        envs_dir: root.join("envs"),
        sandbox: Default::default(),
        max_loop_items: secondrow_engine::DEFAULT_MAX_LOOP_ITEMS,
    };
    let state = AppState::new(Engine::new(store, artifacts, config)).with_admin_token(admin);
    let app = secondrow_ui::router(state.clone()).merge(secondrow_api::router(state.clone()));
    Env { _dir: dir, root, state, app }
}
