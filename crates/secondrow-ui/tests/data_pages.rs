//! HTML-level tests of the data pages (repositories, a branch's log, a commit's files, a diff) and of the run
//! page's "Data read" table: real data repositories put from real files into a real SQLite store and object
//! folder, an importer URI resolved by the engine's own resolver, the real routers answering in-process, pages
//! parsed with an HTML parser. Covers escaping of user content and namespaces through tokens.

mod support;
use support::{env, Env};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use scraper::{Html, Selector};
use serde_json::json;
use tower::ServiceExt as _;

use secondrow_store::data::{DataCommit, DataRepos, PutOptions};
use secondrow_store::{NewArtifact, NewRun, RunState, TaskFinish, TaskKind, TaskStart, TaskState};

const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789";
const XSS: &str = "<script>alert(1)</script>";

async fn get(app: &Router, uri: &str, token: &str) -> (StatusCode, String) {
    let req = Request::get(uri)
        .header(header::COOKIE, format!("secondrow_csrf={CSRF}; secondrow_token={token}"))
        .body(Body::empty())
        .unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn texts(body: &str, css: &str) -> Vec<String> {
    let doc = Html::parse_document(body);
    doc.select(&Selector::parse(css).unwrap()).map(|e| e.text().collect::<String>()).collect()
}

fn attrs(body: &str, css: &str, attr: &str) -> Vec<String> {
    let doc = Html::parse_document(body);
    doc.select(&Selector::parse(css).unwrap()).filter_map(|e| e.value().attr(attr).map(str::to_owned)).collect()
}

/// Puts `files` (path, bytes) into `repo` of `ns` as one commit with `message`.
async fn put(e: &Env, ns: &str, repo: &str, files: &[(&str, &[u8])], message: &str) -> DataCommit {
    let repos = DataRepos::new(e.state.store().clone(), e.state.engine.artifacts().clone());
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let opts = PutOptions { message: message.into(), author: XSS.into(), ..PutOptions::default() };
    let out = repos.put(ns, repo, "main", &[dir.path().to_path_buf()], &opts, &|_, _| {}).await.unwrap();
    out.commit.unwrap()
}

/// A finished run in `ns` whose importer task read `uri` (resolved by the engine, as a run does).
async fn run_importing(e: &Env, ns: &str, uri: &str) -> String {
    let store = e.state.store();
    let resolved = secondrow_engine::data_import::resolve(store, e.state.engine.artifacts(), ns, uri).await.unwrap();
    let run = store
        .create_run(&NewRun {
            display_name: "trains".into(),
            namespace: ns.into(),
            pipeline_name: "demo".into(),
            spec: json!({"pipelineInfo": {"name": "demo"}, "root": {"dag": {"tasks": {}}}}),
            options: json!({}),
            ..NewRun::default()
        })
        .await
        .unwrap();
    store.set_run_state(&run.id, RunState::Running, None).await.unwrap();
    let task = store
        .start_task(&TaskStart {
            run_id: &run.id,
            parent_id: None,
            path: "importer",
            task_key: "importer",
            display_name: "importer",
            kind: TaskKind::Importer,
            state: TaskState::Running,
            attempt: 1,
            cache_key: None,
            inputs: None,
        })
        .await
        .unwrap();
    let artifact = NewArtifact {
        id: secondrow_store::new_id(),
        output_name: "artifact".into(),
        name: "artifact".into(),
        uri: resolved.uri,
        schema_title: "system.Dataset".into(),
        schema_version: "0.0.1".into(),
        metadata: json!({ secondrow_engine::data_import::METADATA_KEY: resolved.source }),
    };
    store
        .finish_task(&TaskFinish {
            run_id: &run.id,
            task_id: &task,
            state: TaskState::Succeeded,
            error: None,
            cached: false,
            outputs: None,
            new_artifacts: &[artifact],
            output_artifact_refs: &[],
            input_artifact_refs: &[],
            cache_key_to_record: None,
        })
        .await
        .unwrap();
    store.set_run_state(&run.id, RunState::Succeeded, None).await.unwrap();
    run.id
}

#[tokio::test]
async fn data_pages_show_repos_log_files_and_diffs() {
    let e = env(Some(ADMIN)).await;
    let store = e.state.store();
    store.create_data_repo("", "ds").await.unwrap();
    let first = put(&e, "", "ds", &[("train.csv", b"a,b\n1,2\n"), ("img/<x>.png", &[0u8; 2048])], XSS).await;
    let second = put(&e, "", "ds", &[("train.csv", b"a,b\n1,2\n3,4\n"), ("new.txt", b"hi")], "more rows").await;
    store.create_data_branch("", "ds", "exp/a", &first.id).await.unwrap();

    // The list: the repository with its branches, each linked to its log.
    let (status, body) = get(&e.app, "/data", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(texts(&body, "tr[data-repo] td:first-child"), vec!["ds"]);
    let branch_links = attrs(&body, "tr[data-repo] a", "href");
    assert!(branch_links.contains(&"/data/_/ds?ref=exp%2Fa".to_owned()), "{branch_links:?}");
    assert_eq!(attrs(&body, "nav a[aria-current=page]", "href"), vec!["/data"]);

    // The log of main: newest first, escaped messages and authors, a diff link from the second commit.
    let (status, body) = get(&e.app, "/data/_/ds", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(attrs(&body, "tr[data-commit]", "data-commit"), vec![second.id.clone(), first.id.clone()]);
    assert!(!body.contains(XSS), "user text must be escaped");
    assert_eq!(texts(&body, "tr[data-commit] td:nth-child(2)")[1], XSS, "shown as text");
    assert_eq!(texts(&body, "tr[data-commit] td:nth-child(3)")[0], XSS);
    let diff_link = format!("/data/_/ds/diff?from={}&to={}", first.id, second.id);
    assert!(attrs(&body, "tr[data-commit] a", "href").contains(&diff_link), "{body}");
    // The other branch's log holds only the first commit.
    let (_, body) = get(&e.app, "/data/_/ds?ref=exp%2Fa", ADMIN).await;
    assert_eq!(attrs(&body, "tr[data-commit]", "data-commit"), vec![first.id.clone()]);

    // A commit's files with sizes (by any ref form), names escaped.
    let (status, body) = get(&e.app, "/data/_/ds/commits/main~1", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(texts(&body, "#commit-id"), vec![first.id.clone()]);
    let rows = texts(&body, "tr[data-path]");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].contains("img/<x>.png") && rows[0].contains("2.0 KiB") && rows[0].contains("2048"), "{rows:?}");
    assert!(rows[1].contains("train.csv") && rows[1].contains("8 B"), "{rows:?}");
    assert!(!body.contains("<x>"), "file names are escaped");

    // The diff: added, changed, and nothing else (put adds over the parent's tree).
    let (status, body) = get(&e.app, &format!("/data/_/ds/diff?from={}&to=main", &first.id[..8]), ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(attrs(&body, "tr[data-change]", "data-change"), vec!["added", "changed"]);
    let rows = texts(&body, "tr[data-change]");
    assert!(rows[0].contains("new.txt") && rows[0].contains("2 B"), "{rows:?}");
    assert!(rows[1].contains("train.csv") && rows[1].contains("8 B") && rows[1].contains("12 B"), "{rows:?}");

    // Bad refs and repos are clear 4xx pages.
    let (status, body) = get(&e.app, "/data/_/ds/commits/nope", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("ds@nope"), "{body}");
    let (status, _) = get(&e.app, "/data/_/missing", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&e.app, "/data/_/ds/diff?from=main", ADMIN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = get(&e.app, "/data/_/ds/commits/main~9", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_run_page_shows_the_data_commit_each_importer_read() {
    let e = env(Some(ADMIN)).await;
    let store = e.state.store();
    store.create_data_repo("team-a", "ds").await.unwrap();
    let first = put(&e, "team-a", "ds", &[("train.csv", b"a\n1\n")], "one").await;
    put(&e, "team-a", "ds", &[("train.csv", b"a\n1\n2\n")], "two").await;
    let run_id = run_importing(&e, "team-a", "secondrow://data/ds@main~1/train.csv").await;

    let (status, body) = get(&e.app, &format!("/runs/{run_id}"), ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = texts(&body, "table.data-reads tbody tr");
    assert_eq!(rows.len(), 1, "{body}");
    assert!(rows[0].contains("importer") && rows[0].contains("ds") && rows[0].contains("main~1"), "{rows:?}");
    assert!(rows[0].contains("train.csv") && rows[0].contains(&first.id), "{rows:?}");
    let links = attrs(&body, "table.data-reads a", "href");
    assert!(links.contains(&format!("/data/team-a/ds/commits/{}", first.id)), "{links:?}");
    assert!(links.contains(&"/data/team-a/ds".to_owned()), "{links:?}");
    // The link leads to the commit read.
    let (status, body) = get(&e.app, &format!("/data/team-a/ds/commits/{}", first.id), ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(texts(&body, "tr[data-path]")[0].contains("4 B"));
}

#[tokio::test]
async fn a_namespace_token_sees_only_its_data_repos() {
    let e = env(Some(ADMIN)).await;
    let store = e.state.store();
    for ns in ["team-a", "team-b"] {
        store.create_data_repo(ns, &format!("ds-{ns}")).await.unwrap();
    }
    put(&e, "team-b", "ds-team-b", &[("secret.csv", b"x")], "b").await;
    let (_, token_a) = store.create_api_token("team-a", "t").await.unwrap();

    let (status, body) = get(&e.app, "/data", &token_a).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(texts(&body, "tr[data-repo] td:first-child"), vec!["ds-team-a"]);
    // The admin sees both.
    let (_, body) = get(&e.app, "/data", ADMIN).await;
    assert_eq!(texts(&body, "tr[data-repo] td:first-child"), vec!["ds-team-a", "ds-team-b"]);
    // Another namespace's pages are refused, whatever the page.
    for uri in [
        "/data/team-b/ds-team-b",
        "/data/team-b/ds-team-b/commits/main",
        "/data/team-b/ds-team-b/diff?from=main&to=main",
    ] {
        let (status, body) = get(&e.app, uri, &token_a).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
        assert!(!body.contains("secret.csv"));
    }
    let (status, _) = get(&e.app, "/data?namespace=team-b", &token_a).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Its own empty repository shows how to start.
    let (status, body) = get(&e.app, "/data/team-a/ds-team-a", &token_a).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("No commits yet"), "{body}");
}
