//! `GET /healthz`: what `kfp.Client()` calls once on construction.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz() -> Json<Value> {
    Json(json!({
        "multi_user": false,
        "pipeline_store": "database",
        "commit_sha": "",
        "tag_name": concat!("secondrow-", env!("CARGO_PKG_VERSION")),
    }))
}
