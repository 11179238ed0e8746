//! The artifact panel (with its visualization), CSV and Parquet pages, statistics reports, sandboxed HTML
//! artifacts and downloads.

use std::path::{Path, PathBuf};

use askama::Template;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::Response;

use secondrow_api::auth::Caller;
use secondrow_store::{ArtifactRecord, EventRecord, RunRecord, TaskRecord};

use crate::dataset;
use crate::graph::url_part;
use crate::viz::{self, esc};
use crate::{Ui, UiError};

use super::actions::forward;
use super::UiResult;

const CSV_PAGE: usize = 50;

#[derive(Template)]
#[template(path = "artifact.html")]
struct ArtifactPanel {
    id: String,
    name: String,
    kind: String,
    uri: String,
    metadata: String,
    producer: Vec<(String, String, String)>,
    consumers: Vec<(String, String, String)>,
    viz: String,
}

/// The artifact's file, if it lies under the artifact root (symlinks followed); a folder yields its first
/// regular file by name.
fn artifact_file(root: &Path, a: &ArtifactRecord) -> Result<PathBuf, String> {
    let root = root.canonicalize().map_err(|_| "no artifact folder yet".to_owned())?;
    let real = Path::new(&a.uri).canonicalize().map_err(|_| "the artifact has no file".to_owned())?;
    if !real.starts_with(&root) {
        return Err("the artifact's file is outside the artifact root".into());
    }
    if real.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&real)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        let first = entries.into_iter().next().ok_or("the artifact folder is empty")?;
        let first = first.canonicalize().map_err(|e| e.to_string())?;
        if !first.starts_with(&root) {
            return Err("the artifact's file is outside the artifact root".into());
        }
        return Ok(first);
    }
    Ok(real)
}

/// With an S3 artifact root: the artifact as its local mirror's path, fetched from the bucket first when it is
/// missing there and at most `max` bytes (larger ones are for downloading). A local root's record as is.
async fn localized(ui: &Ui, a: &ArtifactRecord, max: u64) -> Result<ArtifactRecord, String> {
    let store = ui.app.engine.artifacts();
    let mut a = a.clone();
    if !store.is_remote() {
        return Ok(a);
    }
    let local = store.local_path(&a.uri).ok_or("the artifact's file is outside the artifact root")?;
    if std::fs::symlink_metadata(&local).is_err() {
        let size: u64 = store.list_files(&a.uri).await.map_err(|e| e.to_string())?.iter().map(|(_, n)| n).sum();
        if size > max {
            return Err(format!("the artifact is {size} bytes; shown up to {max}: download it instead"));
        }
        secondrow_engine::staging::fetch(store, &a.uri, &local).await.map_err(|e| e.to_string())?;
    }
    a.uri = local.to_string_lossy().into_owned();
    Ok(a)
}

async fn read_text(ui: &Ui, a: &ArtifactRecord, max: u64) -> Result<String, String> {
    let root = ui.app.engine.artifacts().root().to_path_buf();
    let a = localized(ui, a, max).await?;
    tokio::task::spawn_blocking(move || {
        let path = artifact_file(&root, &a)?;
        let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        if len > max {
            return Err(format!("the file is {len} bytes; shown up to {max}: download it instead"));
        }
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
    .await
    .map_err(|e| e.to_string())?
}

pub(super) async fn artifact_panel(
    ui: &Ui,
    run: &RunRecord,
    a: &ArtifactRecord,
    tasks: &[TaskRecord],
    events: &[EventRecord],
    page: usize,
) -> String {
    let path_of = |tid: &str| tasks.iter().find(|t| t.id == tid).map(|t| t.path.clone()).unwrap_or_default();
    let lineage = |kind: &str| {
        events
            .iter()
            .filter(|e| e.artifact_id == a.id && e.kind == kind)
            .map(|e| {
                let p = path_of(&e.task_id);
                (format!("/runs/{}/tasks/{}", url_part(&run.id, false), url_part(&p, true)), p, e.name.clone())
            })
            .collect::<Vec<_>>()
    };
    let viz = match a.schema_title.as_str() {
        "system.Metrics" => {
            let rows = viz::scalar_metrics(&a.metadata);
            if rows.is_empty() {
                "<p class=\"empty\">No scalar metrics were logged.</p>".to_owned()
            } else {
                let mut s = String::from("<table class=\"metrics\"><thead><tr><th>Metric</th><th>Value</th></tr></thead><tbody>");
                for (k, v) in rows {
                    s.push_str(&format!("<tr><td>{}</td><td class=\"num\">{}</td></tr>", esc(&k), esc(&v)));
                }
                s.push_str("</tbody></table>");
                s
            }
        }
        "system.ClassificationMetrics" => {
            let mut s = String::new();
            if let Some(c) = viz::confusion(&a.metadata) {
                s.push_str("<figure><figcaption>Confusion matrix</figcaption>");
                s.push_str(&viz::confusion_svg(&c));
                s.push_str("</figure>");
            }
            let pts = viz::roc_points(&a.metadata);
            if !pts.is_empty() {
                s.push_str("<figure><figcaption>ROC curve</figcaption>");
                s.push_str(&viz::roc_svg(&[(a.name.clone(), pts)]));
                s.push_str("</figure>");
            }
            if s.is_empty() {
                s.push_str("<p class=\"empty\">No confusion matrix or ROC points in this artifact.</p>");
            }
            format!("<div class=\"charts\">{s}</div>")
        }
        "system.HTML" => format!(
            "<iframe class=\"html-artifact\" sandbox=\"\" referrerpolicy=\"no-referrer\" src=\"/artifacts/{}/view\" title=\"{}\"></iframe>",
            url_part(&a.id, false),
            esc(&a.name)
        ),
        "system.Markdown" => match read_text(ui, a, 4 << 20).await {
            Ok(text) => format!("<div class=\"markdown\">{}</div>", viz::markdown(&text)),
            Err(e) => format!("<p class=\"error\">{}</p>", esc(&e)),
        },
        "system.Dataset" => match parquet_view(ui, a, page).await {
            Some(Ok(p)) => format!("{}{}", dataset::schema_html(&p), csv_table(&run.id, &a.id, &p.page, page)),
            Some(Err(e)) => format!("<p class=\"error\">{}</p>", esc(&e)),
            None => match read_text(ui, a, 64 << 20).await {
                Ok(text) if text.contains(',') => {
                    let p = viz::csv_page(&text, page * CSV_PAGE, CSV_PAGE);
                    csv_table(&run.id, &a.id, &p, page)
                }
                Ok(_) => "<p class=\"empty\">Neither CSV nor Parquet: download it to look inside.</p>".to_owned(),
                Err(e) => format!("<p class=\"error\">{}</p>", esc(&e)),
            },
        },
        // The built-in `statistics` component's JSON (it also records `rows` and `columns` as metadata).
        "system.Artifact" if a.metadata.get("rows").is_some_and(|v| v.is_u64()) && a.metadata.get("columns").is_some_and(|v| v.is_u64()) => {
            match read_text(ui, a, 16 << 20).await {
                Ok(text) => dataset::parse_stats(&text).map(|s| dataset::stats_html(&s)).unwrap_or_else(|| {
                    "<p class=\"empty\">Not a statistics report this page can read: download it to look inside.</p>"
                        .to_owned()
                }),
                Err(e) => format!("<p class=\"error\">{}</p>", esc(&e)),
            }
        }
        other => format!(
            "<p class=\"empty\">The UI has no view for {} artifacts: download it to look inside.</p>",
            esc(other)
        ),
    };
    let p = ArtifactPanel {
        id: a.id.clone(),
        name: a.name.clone(),
        kind: a.schema_title.clone(),
        uri: a.uri.clone(),
        metadata: serde_json::to_string_pretty(&a.metadata).unwrap_or_default(),
        producer: lineage("OUTPUT"),
        consumers: lineage("INPUT"),
        viz,
    };
    p.render().unwrap_or_else(|e| format!("<p class=\"error\">{}</p>", esc(&e.to_string())))
}

/// A Parquet dataset's page (`None` when the file is not Parquet), read on the blocking pool.
async fn parquet_view(ui: &Ui, a: &ArtifactRecord, page: usize) -> Option<Result<dataset::ParquetPage, String>> {
    let root = ui.app.engine.artifacts().root().to_path_buf();
    let a = localized(ui, a, 256 << 20).await.ok()?;
    tokio::task::spawn_blocking(move || {
        let path = artifact_file(&root, &a).ok()?;
        dataset::is_parquet(&path).then(|| dataset::parquet_page(&path, page * CSV_PAGE, CSV_PAGE))
    })
    .await
    .ok()
    .flatten()
}

fn csv_table(run_id: &str, aid: &str, p: &viz::CsvPage, page: usize) -> String {
    let link = |n: usize| format!("/runs/{}/artifacts/{}?page={n}", url_part(run_id, false), url_part(aid, false));
    if p.rows.is_empty() {
        return if page == 0 {
            let columns: Vec<String> = p.header.iter().map(|h| esc(h)).collect();
            format!("<p class=\"empty\" id=\"no-rows\">This dataset has no rows (columns: {}).</p>", columns.join(", "))
        } else {
            format!(
                "<p class=\"empty\" id=\"no-rows\">No rows on this page: the dataset is shorter. \
                 <a href=\"{}\">Back to its first rows</a>.</p>",
                link(0)
            )
        };
    }
    let mut s = String::from("<table class=\"dataset\"><thead><tr>");
    for (h, t) in p.header.iter().zip(&p.types) {
        s.push_str(&format!("<th>{}<small>{t}</small></th>", esc(h)));
    }
    s.push_str("</tr></thead><tbody>");
    for row in &p.rows {
        s.push_str("<tr>");
        for v in row {
            s.push_str(&format!("<td>{}</td>", esc(v)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table><nav class=\"pager\">");
    if page > 0 {
        s.push_str(&format!("<a href=\"{}\">← previous</a> ", link(page - 1)));
    }
    s.push_str(&format!("<span>rows {}–{}</span>", page * CSV_PAGE + 1, page * CSV_PAGE + p.rows.len()));
    if p.more {
        s.push_str(&format!(" <a href=\"{}\">next →</a>", link(page + 1)));
    }
    s.push_str("</nav>");
    s
}

/// An HTML artifact's own bytes, for the sandboxed iframe: `sandbox` CSP (an opaque origin that cannot reach
/// the UI's cookies or pages), no scripts, no network.
pub async fn artifact_html(State(ui): State<Ui>, caller: Caller, UrlPath(aid): UrlPath<String>) -> UiResult<Response> {
    let a = ui.app.store().get_artifact(&aid).await?;
    caller.run(&ui.app, &a.run_id).await?;
    if a.schema_title != "system.HTML" {
        return Err(UiError::BadRequest(format!("artifact `{aid}` is {}, not system.HTML", a.schema_title)));
    }
    let text = read_text(&ui, &a, 16 << 20).await.map_err(UiError::BadRequest)?;
    let mut r = Response::new(Body::from(text));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:",
        ),
    );
    Ok(r)
}

pub async fn download(State(ui): State<Ui>, headers: HeaderMap, UrlPath(aid): UrlPath<String>) -> Response {
    forward(&ui, Method::GET, &format!("/apis/v2beta1/artifacts/{}:download", url_part(&aid, false)), &headers).await
}
