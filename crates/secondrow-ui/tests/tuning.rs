//! The tuning pages over a real store: the experiments list and an experiment's page (trials table, the
//! objective by trial, parameters against the objective), and the namespace check a token gets.

mod support;
use support::env;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use scraper::{Html, Selector};
use tower::ServiceExt as _;

use secondrow_store::tuning::{Observation, ParameterAssignment, TrialOutcome, TrialState};

const EXPERIMENT: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: quad}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  maxTrialCount: 3
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "2"}}
    - {name: kind, parameterType: categorical, feasibleSpace: {list: [a, b]}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {name: x, reference: x}
      - {name: kind, reference: kind}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: none
                command: [train, "${trialParameters.x}", "${trialParameters.kind}"]
"#;

async fn get(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let r = app.clone().oneshot(b.body(Body::empty()).unwrap()).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn texts(html: &str, css: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    doc.select(&Selector::parse(css).unwrap()).map(|e| e.text().collect::<String>()).collect()
}

#[tokio::test]
async fn an_experiment_page_shows_trials_and_plots_and_keeps_namespaces() {
    let e = env(Some("admin-secret")).await;
    let store = e.state.store();
    let exp = store.create_tuning_experiment("team-a", "quad", EXPERIMENT).await.unwrap();
    let assign = |x: &str, k: &str| {
        vec![
            ParameterAssignment { name: "x".into(), value: x.into() },
            ParameterAssignment { name: "kind".into(), value: k.into() },
        ]
    };
    let trials = store
        .add_tuning_trials(
            &exp.id,
            &[
                ("quad-1".into(), assign("0.5", "a")),
                ("quad-2".into(), assign("1", "b")),
                ("quad-3".into(), assign("2", "a")),
            ],
            Some(3),
        )
        .await
        .unwrap();
    for (t, loss) in trials.iter().zip([0.25, 0.0]) {
        store.start_tuning_trial(&t.id, &format!("run-{}", t.seq)).await.unwrap();
        let outcome = TrialOutcome {
            state: TrialState::Succeeded,
            objective: Some(loss),
            observations: vec![Observation { name: "loss".into(), value: loss, step: 1 }],
            reason: None,
            message: None,
        };
        store.finish_tuning_trial(&t.id, &outcome).await.unwrap();
    }
    let failed = TrialOutcome {
        state: TrialState::MetricsUnavailable,
        objective: None,
        observations: vec![],
        reason: Some("MetricsUnavailable".into()),
        message: Some("the objective metric `loss` was never reported".into()),
    };
    store.finish_tuning_trial(&trials[2].id, &failed).await.unwrap();
    store.set_optimal_trial(&exp.id, Some("quad-2")).await.unwrap();

    let (status, list) = get(&e.app, "/tuning", Some("admin-secret")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&list, "tr[data-experiment] a"), vec!["quad"]);

    let (status, page) = get(&e.app, "/tuning/team-a/quad", Some("admin-secret")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let rows = texts(&page, "table.trials tbody tr");
    assert_eq!(rows.len(), 3);
    assert!(rows[1].contains("quad-2") && rows[1].contains("best") && rows[1].contains("kind=b"), "{rows:?}");
    assert!(rows[2].contains("MetricsUnavailable") && rows[2].contains("never reported"), "{rows:?}");
    let doc = Html::parse_document(&page);
    // The objective plot: one dot per trial with a value; the parallel plot: x, kind and loss axes.
    assert_eq!(doc.select(&Selector::parse("svg.tuning-objective circle").unwrap()).count(), 2);
    let parallel = doc.select(&Selector::parse("figure.chart svg").unwrap()).nth(1).expect("a parallel plot").html();
    for axis in ["x", "kind", "loss"] {
        assert!(parallel.contains(&format!(">{axis}<")), "axis {axis} in {parallel}");
    }
    assert!(doc.select(&Selector::parse("a[href='/runs/run-2']").unwrap()).next().is_some());

    // A token of another namespace is refused; one of team-a sees it.
    let other = store.create_api_token("team-b", "b").await.unwrap().1;
    let (status, _) = get(&e.app, "/tuning/team-a/quad", Some(&other)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = get(&e.app, "/tuning", Some(&other)).await;
    assert!(texts(&list, "tr[data-experiment]").is_empty());
    let mine = store.create_api_token("team-a", "a").await.unwrap().1;
    let (status, _) = get(&e.app, "/tuning/team-a/quad", Some(&mine)).await;
    assert_eq!(status, StatusCode::OK);
}
