//! Monitor rules over REST (`/deployments/NAME/monitor/rules`, `/monitor/rules/ID`) and their
//! evaluation: [`evaluate`] runs after each monitoring snapshot; a rule whose condition holds for a
//! version claims its firing in the store (once per cool-down), writes the version's logged window as a
//! CSV file into the rule's namespace's own files under the artifact root (`_namespaces/ns-NAMESPACE/
//! monitor-windows/DEPLOYMENT/`, importable by that namespace's runs only) and starts a run of its
//! pipeline version with the file's path in `window_parameter`; the run is recorded with the rule and
//! the deployment version.

use std::fmt::Write as _;
use std::path::Path;

use axum::extract::State;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use secondrow_engine::{RunOptions, Submission};
use secondrow_monitor::log::{self as plog, Values};
use secondrow_monitor::rule::{Condition, Measures};
use secondrow_store::deployments::DeploymentRecord;
use secondrow_store::monitor_rules::{MonitorRule, MonitorRuleRun, NewMonitorRule};

use super::status::{VersionStatus, DEFAULT_WINDOW};
use super::PredictionLog;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

/// Cool-down of a rule when none is given: one hour.
pub const DEFAULT_COOLDOWN_SECONDS: i64 = 3600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/deployments/{name}/monitor/rules", get(list).post(create))
        .route("/monitor/rules/{id}", delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// `psi(feature) > 0.2 or accuracy < 0.8`.
    condition: String,
    /// The pipeline version a firing runs.
    pipeline_version_id: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    /// The run parameter that receives the logged window's file (default `source`).
    #[serde(default)]
    window_parameter: Option<String>,
    #[serde(default)]
    cooldown_seconds: Option<i64>,
    /// Default: the namespace's `Default` experiment.
    #[serde(default)]
    experiment_id: Option<String>,
}

async fn reachable(s: &AppState, caller: &Caller, name: &str) -> ApiResult<DeploymentRecord> {
    let d = s.store().get_deployment(name).await?;
    caller.check("deployment", name, &d.namespace)?;
    Ok(d)
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    let d = reachable(&s, &caller, &name).await?;
    let condition = Condition::parse(&body.condition).map_err(|e| ApiError::invalid(format!("condition: {e}")))?;
    // Features must be the model's: a typo would otherwise never fire.
    let served = s.deployments.repository().resolve(&name, None)?;
    let known: Vec<String> = match served.runtime.column_names() {
        Some(names) => names.to_vec(),
        None => served.runtime.inputs().iter().map(|i| i.name.clone()).collect(),
    };
    if let Some(unknown) = condition.features().into_iter().find(|f| !known.iter().any(|k| k == f)) {
        return Err(ApiError::invalid(format!(
            "condition: unknown feature `{unknown}`: deployment `{name}` takes {}",
            known.join(", ")
        )));
    }
    let cooldown = body.cooldown_seconds.unwrap_or(DEFAULT_COOLDOWN_SECONDS);
    if !(0..=365 * 24 * 3600).contains(&cooldown) {
        return Err(ApiError::invalid(format!("cooldown_seconds: must be between 0 and one year, got {cooldown}")));
    }
    let window_parameter = body.window_parameter.unwrap_or_else(|| "source".to_owned());
    if window_parameter.is_empty() {
        return Err(ApiError::invalid("window_parameter: must not be empty"));
    }
    let pipeline_id = s.store().pipeline_of_version(&body.pipeline_version_id).await?;
    caller.pipeline(&s, &pipeline_id, false).await?;
    let version = s.store().get_pipeline_version(&pipeline_id, &body.pipeline_version_id).await?;
    let pipeline = crate::validation::from_json(version.spec).await?;
    let parameters = body.parameters.unwrap_or_default();
    // The parameters with the window's path must bind (names, types, required ones).
    let mut probe = parameters.clone();
    probe.insert(window_parameter.clone(), json!("window.csv"));
    pipeline.bind_parameters(&probe).map_err(|e| ApiError::invalid(format!("parameters: {e}")))?;
    let (experiment_id, _) = crate::runs::resolve_experiment(&s, &caller, body.experiment_id.as_deref()).await?;
    let parameters = Value::Object(parameters);
    let rule = s
        .store()
        .create_monitor_rule(&NewMonitorRule {
            namespace: &d.namespace,
            deployment: &name,
            condition: &body.condition,
            pipeline_id: &pipeline_id,
            pipeline_version_id: &body.pipeline_version_id,
            experiment_id: &experiment_id,
            parameters: &parameters,
            window_parameter: &window_parameter,
            cooldown_ms: cooldown * 1000,
        })
        .await?;
    Ok(Json(wire(&rule)))
}

async fn list(State(s): State<AppState>, caller: Caller, ApiPath(name): ApiPath<String>) -> ApiResult<Json<Value>> {
    reachable(&s, &caller, &name).await?;
    let rules = s.store().list_monitor_rules(Some(&name), None).await?;
    let runs = s.store().list_monitor_rule_runs(&name).await?;
    Ok(Json(json!({
        "rules": rules.iter().map(wire).collect::<Vec<_>>(),
        "runs": runs,
    })))
}

async fn remove(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    let rule = s.store().get_monitor_rule(&id).await?;
    caller.check("monitor rule", &id, &rule.namespace)?;
    s.store().delete_monitor_rule(&id).await?;
    Ok(Json(json!({})))
}

fn wire(r: &MonitorRule) -> Value {
    json!({
        "id": r.id,
        "namespace": r.namespace,
        "deployment": r.deployment,
        "condition": r.condition,
        "pipeline_id": r.pipeline_id,
        "pipeline_version_id": r.pipeline_version_id,
        "experiment_id": r.experiment_id,
        "parameters": r.parameters,
        "window_parameter": r.window_parameter,
        "cooldown_seconds": r.cooldown_ms / 1000,
        "last_fired_at": r.last_fired_at.map(|t| crate::ts(Some(t))),
        "created_at": crate::ts(Some(r.created_at)),
    })
}

/// A version's figures as rule measures.
struct Figures<'a>(&'a VersionStatus);

impl Measures for Figures<'_> {
    fn measure(&self, measure: &str, feature: Option<&str>) -> Option<f64> {
        let v = self.0;
        match feature {
            Some(name) => {
                let f = v.features.iter().find(|f| f.feature == name)?;
                match measure {
                    "psi" => Some(f.psi),
                    "ks" => f.ks,
                    "chi_square_p_value" => f.chi_square_p_value,
                    "missing_rate" => Some(f.missing_rate),
                    _ => None,
                }
            }
            None => match measure {
                "accuracy" => v.performance.as_ref().filter(|p| p.metric == "accuracy").map(|p| p.value),
                "rmse" => v.performance.as_ref().filter(|p| p.metric == "rmse").map(|p| p.value),
                "schema_violation_rate" => v.schema_violation_rate,
                "rows" => Some(v.rows as f64),
                _ => None,
            },
        }
    }
}

/// Evaluates the rules of deployment `name` against its latest figures; fires those that hold.
pub async fn evaluate(state: &AppState, log: &PredictionLog, name: &str, versions: &[VersionStatus]) {
    let rules = match state.store().list_monitor_rules(Some(name), None).await {
        Ok(rules) => rules,
        Err(e) => {
            tracing::warn!(deployment = name, error = %e, "monitor: listing rules");
            return;
        }
    };
    for rule in rules {
        let Ok(condition) = Condition::parse(&rule.condition) else {
            tracing::warn!(rule = %rule.id, "monitor: a stored rule does not parse");
            continue;
        };
        let Some(version) = versions.iter().find(|v| condition.holds(&Figures(v))) else { continue };
        if let Err(e) = fire(state, log, &rule, &version.version).await {
            tracing::warn!(rule = %rule.id, deployment = name, error = %e, "monitor: a rule could not start its run");
        }
    }
}

async fn fire(state: &AppState, log: &PredictionLog, rule: &MonitorRule, version: &str) -> ApiResult<()> {
    let now = chrono::Utc::now().timestamp_millis();
    // Claim first: a crash between the claim and the run loses one run rather than starting two.
    if !state.store().claim_monitor_rule_fire(&rule.id, now).await? {
        return Ok(());
    }
    let dir = log.dir(&rule.deployment, version);
    // The window goes into the rule's namespace's own files under the artifact root, which that namespace's
    // runs (and no other's) may import: no import root has to open the prediction log to every namespace.
    let own = secondrow_engine::sandbox::namespace_files(state.engine.artifacts().root(), &rule.namespace)
        .ok_or_else(|| ApiError::Internal(format!("namespace `{}` is not a plain folder name", rule.namespace)))?;
    let file = own.join("monitor-windows").join(&rule.deployment).join(format!("{}-{now}.csv", rule.id));
    let written = file.clone();
    let rows = tokio::task::spawn_blocking(move || write_window_csv(&dir, &written))
        .await
        .map_err(|e| ApiError::Internal(format!("writing the window: {e}")))??;
    let version_record = state.store().get_pipeline_version(&rule.pipeline_id, &rule.pipeline_version_id).await?;
    let pipeline = crate::validation::from_json(version_record.spec).await?;
    let mut params = rule.parameters.as_object().cloned().unwrap_or_default();
    params.insert(rule.window_parameter.clone(), json!(file.display().to_string()));
    let params = pipeline.bind_parameters(&params)?;
    let sub = Submission {
        display_name: Some(format!("monitor-{}-{}", rule.deployment, &rule.id[..rule.id.len().min(8)])),
        description: format!(
            "Started by monitor rule {} (`{}`) of deployment {} version {version}, on {rows} logged rows.",
            rule.id, rule.condition, rule.deployment
        ),
        namespace: rule.namespace.clone(),
        experiment_id: Some(rule.experiment_id.clone()),
        pipeline_id: Some(rule.pipeline_id.clone()),
        pipeline_version_id: Some(rule.pipeline_version_id.clone()),
        recurring_run_id: None,
        options: RunOptions::default(),
    };
    let run = state.submit(&pipeline, params, sub).await?;
    state
        .store()
        .record_monitor_rule_run(&MonitorRuleRun {
            rule_id: rule.id.clone(),
            run_id: run.id.clone(),
            deployment: rule.deployment.clone(),
            version: version.to_owned(),
            window_uri: file.display().to_string(),
            fired_at: now,
        })
        .await?;
    state.supervisor.start(&run.id, false);
    tracing::info!(rule = %rule.id, run_id = %run.id, deployment = %rule.deployment, "monitor rule started a run");
    Ok(())
}

/// Writes the newest [`DEFAULT_WINDOW`] logged rows of `dir` as CSV (features, then `prediction`).
fn write_window_csv(dir: &Path, file: &Path) -> ApiResult<usize> {
    let window = plog::read_window(dir, Some(DEFAULT_WINDOW)).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut columns: Vec<(&str, &Values)> = window.features.iter().map(|c| (c.name.as_str(), &c.values)).collect();
    if let Some(p) = &window.prediction {
        columns.push(("prediction", p));
    }
    let mut out = String::new();
    let header: Vec<String> = columns.iter().map(|(n, _)| csv_cell(n)).collect();
    let _ = writeln!(out, "{}", header.join(","));
    for i in 0..window.len() {
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, v)| match v {
                Values::Number(v) => v.get(i).copied().flatten().map(|x| x.to_string()).unwrap_or_default(),
                Values::Text(v) => v.get(i).cloned().flatten().map(|s| csv_cell(&s)).unwrap_or_default(),
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join(","));
    }
    let parent = file.parent().ok_or_else(|| ApiError::Internal("window file has no folder".into()))?;
    std::fs::create_dir_all(parent).map_err(|e| ApiError::Internal(format!("writing the window: {e}")))?;
    let temporary = file.with_extension("csv.tmp");
    std::fs::write(&temporary, out)
        .and_then(|()| std::fs::rename(&temporary, file))
        .map_err(|e| ApiError::Internal(format!("writing the window {}: {e}", file.display())))?;
    Ok(window.len())
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
