//! Recurring runs (KFP "jobs"): cron (6 fields, seconds first, robfig style) or periodic triggers,
//! `max_concurrency`, `no_catchup`, enable/disable; and the [`scheduler`] that starts their runs.

use std::str::FromStr;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use secondrow_engine::{RunOptions, Submission};
use secondrow_store::{now_ms, ListFilter, NewRecurringRun, RecurringRunRecord};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{split_action, ApiJson, ApiPath, ApiQuery};
use crate::list::{list_request, page_json, sql_page, ListQuery};
use crate::pipelines::spec_document;
use crate::runs::{resolve_experiment, resolve_pipeline, RuntimeConfig, VersionRef};
use crate::{parse_ts, ts, validation, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/recurringruns", post(create).get(list))
        .route("/recurringruns/{id}", get(get_one).delete(delete).post(action))
}

const KEYS: &[&str] = &[
    "recurring_run_id",
    "display_name",
    "description",
    "namespace",
    "experiment_id",
    "status",
    "mode",
    "created_at",
    "updated_at",
];

/// The store column of a listing key (the others, `status` and `mode` included, are named alike).
fn column(key: &str) -> Option<&'static str> {
    (key == "recurring_run_id").then_some("id")
}

fn wire(r: &RecurringRunRecord) -> Value {
    let mut out = json!({
        "recurring_run_id": r.id,
        "display_name": r.display_name,
        "description": r.description,
        "namespace": r.namespace,
        "experiment_id": r.experiment_id,
        "runtime_config": r.runtime_config,
        "trigger": r.trigger,
        "max_concurrency": r.max_concurrency.to_string(),
        "no_catchup": r.no_catchup,
        "mode": if r.enabled { "ENABLE" } else { "DISABLE" },
        "status": if r.enabled { "ENABLED" } else { "DISABLED" },
        "created_at": ts(Some(r.created_at)),
        "updated_at": ts(Some(r.updated_at)),
    });
    if let (Some(p), Some(v)) = (&r.pipeline_id, &r.pipeline_version_id) {
        out["pipeline_version_reference"] = json!({"pipeline_id": p, "pipeline_version_id": v});
    } else {
        out["pipeline_spec"] = r.spec.clone();
    }
    out
}

/// An int64 the client may send as a number or a string.
fn int64(field: &str, v: Option<&Value>) -> ApiResult<Option<i64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| ApiError::invalid(format!("{field} must be an integer")))
        }
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| ApiError::invalid(format!("{field} `{s}` is not an integer")))
        }
        Some(_) => Err(ApiError::invalid(format!("{field} must be an integer"))),
    }
}

/// A parsed trigger.
enum Trigger {
    Cron {
        schedule: Box<cron::Schedule>,
        start: Option<i64>,
        end: Option<i64>,
    },
    Periodic {
        interval_ms: i64,
        start: Option<i64>,
        end: Option<i64>,
    },
    /// A new commit on a data branch (`crate::data::commit_trigger`), not a time.
    DataCommit,
}

fn opt_time(obj: &Value, field: &str) -> ApiResult<Option<i64>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_ts(field, s).map(Some),
        Some(_) => Err(ApiError::invalid(format!("{field} must be an RFC 3339 string"))),
    }
}

/// robfig/cron (KFP) numbers weekdays 0–6 from Sunday and allows `?`; the `cron` crate numbers them
/// 1–7 from Sunday. Translate the day-of-week field.
fn to_cron_crate(expr: &str) -> ApiResult<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(ApiError::invalid(format!(
            "cron `{expr}`: expected 6 fields (seconds minutes hours day-of-month month day-of-week)"
        )));
    }
    let mut out: Vec<String> = fields.iter().map(|f| f.replace('?', "*")).collect();
    let mut dow = String::new();
    let mut num = String::new();
    let mut after_slash = false;
    for c in out[5].chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if !num.is_empty() {
            let n: u32 = num.parse().map_err(|_| ApiError::invalid(format!("cron `{expr}`: bad day of week")))?;
            if after_slash {
                dow.push_str(&num);
            } else if n > 7 {
                return Err(ApiError::invalid(format!("cron `{expr}`: day of week {n} out of range 0-6")));
            } else {
                dow.push_str(&((n % 7) + 1).to_string());
            }
            num.clear();
        }
        after_slash = c == '/';
        if c != '\0' {
            dow.push(c);
        }
    }
    out[5] = dow;
    Ok(out.join(" "))
}

fn parse_trigger(trigger: &Value) -> ApiResult<Trigger> {
    if let Some(d) = trigger.get("data_commit").filter(|v| !v.is_null()) {
        crate::data::commit_trigger(d)?;
        return Ok(Trigger::DataCommit);
    }
    let cron_spec = trigger.get("cron_schedule").or_else(|| trigger.get("cronSchedule")).filter(|v| !v.is_null());
    let periodic =
        trigger.get("periodic_schedule").or_else(|| trigger.get("periodicSchedule")).filter(|v| !v.is_null());
    match (cron_spec, periodic) {
        (Some(c), None) => {
            let expr = c
                .get("cron")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("cron_schedule.cron is required"))?;
            let schedule = cron::Schedule::from_str(&to_cron_crate(expr)?)
                .map_err(|e| ApiError::invalid(format!("cron `{expr}`: {e}")))?;
            Ok(Trigger::Cron {
                schedule: Box::new(schedule),
                start: opt_time(c, "start_time")?,
                end: opt_time(c, "end_time")?,
            })
        }
        (None, Some(p)) => {
            let secs = int64(
                "periodic_schedule.interval_second",
                p.get("interval_second").or_else(|| p.get("intervalSecond")),
            )?
            .ok_or_else(|| ApiError::invalid("periodic_schedule.interval_second is required"))?;
            // Checked: an interval whose milliseconds do not fit (i64::MAX seconds) is the caller's
            // mistake, not an overflow; one of 100 years is the longest that makes sense.
            let interval_ms =
                secs.checked_mul(1000).filter(|ms| (1..=MAX_INTERVAL_MS).contains(ms)).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "periodic_schedule.interval_second must be between 1 and {} (100 years), got {secs}",
                        MAX_INTERVAL_MS / 1000
                    ))
                })?;
            Ok(Trigger::Periodic { interval_ms, start: opt_time(p, "start_time")?, end: opt_time(p, "end_time")? })
        }
        (Some(_), Some(_)) => {
            Err(ApiError::invalid("trigger: give either cron_schedule or periodic_schedule, not both"))
        }
        (None, None) => Err(ApiError::invalid("trigger: cron_schedule or periodic_schedule is required")),
    }
}

/// The longest periodic interval: 100 years in milliseconds.
const MAX_INTERVAL_MS: i64 = 100 * 366 * 24 * 3600 * 1000;

impl Trigger {
    fn window(&self) -> (Option<i64>, Option<i64>) {
        match self {
            Trigger::Cron { start, end, .. } | Trigger::Periodic { start, end, .. } => (*start, *end),
            Trigger::DataCommit => (None, None),
        }
    }

    /// The first scheduled time strictly after `after` (epoch ms).
    fn next_after(&self, after: i64) -> Option<i64> {
        match self {
            Trigger::Cron { schedule, .. } => {
                let t = DateTime::<Utc>::from_timestamp_millis(after)?;
                schedule.after(&t).next().map(|t| t.timestamp_millis())
            }
            Trigger::Periodic { interval_ms, .. } => after.checked_add(*interval_ms),
            Trigger::DataCommit => None,
        }
    }
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    experiment_id: Option<String>,
    #[serde(default)]
    pipeline_spec: Option<Value>,
    #[serde(default)]
    pipeline_version_reference: Option<VersionRef>,
    #[serde(default)]
    runtime_config: Option<Value>,
    #[serde(default)]
    max_concurrency: Option<Value>,
    #[serde(default)]
    no_catchup: Option<bool>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    trigger: Option<Value>,
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Json<Value>> {
    if body.display_name.trim().is_empty() {
        return Err(ApiError::invalid("recurring run display_name must not be empty"));
    }
    let trigger = body.trigger.unwrap_or(Value::Null);
    parse_trigger(&trigger)?;
    let max_concurrency = int64("max_concurrency", body.max_concurrency.as_ref())?.unwrap_or(1);
    if !(1..=10).contains(&max_concurrency) {
        return Err(ApiError::invalid(format!("max_concurrency must be between 1 and 10, got {max_concurrency}")));
    }
    let enabled = match body.mode.as_deref() {
        None | Some("ENABLE") | Some("MODE_UNSPECIFIED") | Some("") => true,
        Some("DISABLE") => false,
        Some(other) => return Err(ApiError::invalid(format!("mode `{other}`: expected ENABLE or DISABLE"))),
    };
    let (pipeline, version) =
        resolve_pipeline(&s, &caller, body.pipeline_spec.as_ref(), body.pipeline_version_reference.as_ref()).await?;
    let rc_value = body.runtime_config.unwrap_or_else(|| json!({}));
    let rc: RuntimeConfig =
        serde_json::from_value(rc_value.clone()).map_err(|e| ApiError::invalid(format!("runtime_config: {e}")))?;
    let params = crate::runs::bind_wire_parameters(&pipeline, rc.parameters.unwrap_or_default())?;
    let (experiment_id, namespace) = resolve_experiment(&s, &caller, body.experiment_id.as_deref()).await?;
    let (pipeline_id, pipeline_version_id) = match version {
        Some((p, v)) => (Some(p), Some(v)),
        None => (None, None),
    };
    let rec = s
        .store()
        .create_recurring_run(&NewRecurringRun {
            display_name: body.display_name,
            description: body.description.unwrap_or_default(),
            namespace,
            experiment_id: Some(experiment_id),
            pipeline_id,
            pipeline_version_id,
            spec: spec_document(&pipeline),
            parameters: Value::Object(params),
            runtime_config: rc_value,
            trigger,
            max_concurrency,
            no_catchup: body.no_catchup.unwrap_or(false),
            enabled,
        })
        .await?;
    Ok(Json(wire(&rec)))
}

async fn get_one(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    Ok(Json(wire(&caller.recurring_run(&s, &id).await?)))
}

async fn list(State(s): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<Value>> {
    let experiment = q.experiment_id.as_deref().filter(|e| !e.is_empty());
    let namespace = caller.list_scope(&s, experiment, q.namespace.as_deref()).await?;
    let scope = match (experiment, namespace) {
        (Some(e), _) => vec![ListFilter::eq("experiment_id", e)],
        (None, Some(ns)) => vec![ListFilter::eq("namespace", ns)],
        (None, None) => Vec::new(),
    };
    let (request, offset) = list_request(&q, KEYS, column, scope)?;
    let page = s.store().list_page::<RecurringRunRecord>(&request).await?;
    let items = page.items.iter().map(wire).collect();
    // The client reads this one list key in camelCase.
    Ok(Json(page_json("recurringRuns", sql_page(items, offset, page.more, page.total))))
}

async fn delete(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    caller.recurring_run(&s, &id).await?;
    s.store().delete_recurring_run(&id).await?;
    Ok(Json(json!({})))
}

async fn action(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id_action): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let (id, action) = split_action(&id_action)?;
    caller.recurring_run(&s, id).await?;
    let enabled = match action {
        "enable" => true,
        "disable" => false,
        other => return Err(ApiError::NotFound(format!("unknown recurring run method `{other}`"))),
    };
    s.store().set_recurring_run_enabled(id, enabled).await?;
    Ok(Json(json!({})))
}

/// Starts the runs recurring runs are due for, forever (one tick every 250 ms). A run is started only
/// while fewer than `max_concurrency` of its runs are unfinished; with `no_catchup`, missed times are
/// skipped and only the latest one runs.
pub async fn scheduler(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if let Err(e) = schedule_once(&state).await {
            tracing::warn!(error = %e, "recurring-run scheduler");
        }
    }
}

async fn schedule_once(state: &AppState) -> ApiResult<()> {
    let store = state.store();
    let now = now_ms();
    for rr in store.list_recurring_runs(true).await? {
        let trigger = match parse_trigger(&rr.trigger) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(recurring_run_id = %rr.id, error = %e, "stored trigger is invalid; skipping");
                continue;
            }
        };
        if matches!(trigger, Trigger::DataCommit) {
            if store.count_active_runs_of(&rr.id).await? < rr.max_concurrency {
                if let Some((due, extra)) = crate::data::commit_due(state, &rr).await? {
                    fire(state, &rr, due, extra).await?;
                }
            }
            continue;
        }
        let (start, end) = trigger.window();
        let base = rr.last_fire_at.unwrap_or_else(|| start.map_or(rr.created_at, |s| s - 1));
        let Some(mut due) = trigger.next_after(base) else { continue };
        if due > now || end.is_some_and(|e| due > e) {
            continue;
        }
        if store.count_active_runs_of(&rr.id).await? >= rr.max_concurrency {
            continue;
        }
        if rr.no_catchup {
            // Skip to the latest time that is due.
            for _ in 0..100_000 {
                match trigger.next_after(due) {
                    Some(n) if n <= now && end.is_none_or(|e| n <= e) => due = n,
                    _ => break,
                }
            }
        }
        fire(state, &rr, due, Map::new()).await?;
    }
    Ok(())
}

/// Starts one run of `rr` for time `due`, with `extra` parameters over the stored ones.
async fn fire(state: &AppState, rr: &RecurringRunRecord, due: i64, extra: Map<String, Value>) -> ApiResult<()> {
    let pipeline = validation::from_json(rr.spec.clone()).await?;
    let mut params: Map<String, Value> = rr.parameters.as_object().cloned().unwrap_or_default();
    params.extend(extra);
    let when =
        DateTime::<Utc>::from_timestamp_millis(due).map(|t| t.format("%Y%m%d%H%M%S").to_string()).unwrap_or_default();
    let sub = Submission {
        display_name: Some(format!("{}-{when}", rr.display_name)),
        description: rr.description.clone(),
        namespace: rr.namespace.clone(),
        experiment_id: rr.experiment_id.clone(),
        pipeline_id: rr.pipeline_id.clone(),
        pipeline_version_id: rr.pipeline_version_id.clone(),
        recurring_run_id: Some(rr.id.clone()),
        options: RunOptions { scheduled_at: Some(due), ..RunOptions::default() },
    };
    // Mark the time first: a crash between the two loses one run rather than starting it twice.
    state.store().set_recurring_run_fired(&rr.id, due).await?;
    let run = state.submit(&pipeline, params, sub).await?;
    tracing::info!(recurring_run_id = %rr.id, run_id = %run.id, "recurring run started a run");
    state.supervisor.start(&run.id, false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robfig_weekdays_become_cron_crate_weekdays() {
        assert_eq!(to_cron_crate("0 0 9 ? * 2-6").unwrap(), "0 0 9 * * 3-7");
        assert_eq!(to_cron_crate("*/2 * * * * *").unwrap(), "*/2 * * * * *");
        assert_eq!(to_cron_crate("0 0 0 * * 0,6").unwrap(), "0 0 0 * * 1,7");
        assert_eq!(to_cron_crate("0 0 0 * * */2").unwrap(), "0 0 0 * * */2");
        assert!(to_cron_crate("* * * * *").is_err());
        assert!(parse_trigger(&json!({"cron_schedule": {"cron": "*/2 * * * * *"}})).is_ok());
        assert!(parse_trigger(&json!({"cron_schedule": {"cron": "nonsense a b c d e"}})).is_err());
        assert!(parse_trigger(&json!({"periodic_schedule": {"interval_second": "0"}})).is_err());
        // Intervals whose milliseconds would overflow are a 400, not a wrap or a panic.
        for secs in [json!(i64::MAX), json!(i64::MAX.to_string()), json!(i64::MAX / 1000 + 1)] {
            let err = parse_trigger(&json!({"periodic_schedule": {"interval_second": secs}})).err();
            assert!(matches!(err, Some(ApiError::InvalidArgument(_))), "{secs}: {err:?}");
        }
        let t = parse_trigger(&json!({"periodic_schedule": {"interval_second": 3_153_600_000_i64}})).unwrap();
        assert_eq!(t.next_after(i64::MAX - 5), None, "the next fire time saturates to none");
    }

    #[test]
    fn cron_next_after_is_seconds_level() {
        let t = parse_trigger(&json!({"cron_schedule": {"cron": "*/2 * * * * *"}})).unwrap();
        let next = t.next_after(1_000).unwrap();
        assert_eq!(next, 2_000);
    }

    /// Fuzzing the trigger parser: any cron text and any interval give a trigger or a 400, never a panic, and a
    /// parsed trigger's next fire time is later than the time asked about (`PROPTEST_CASES` runs more cases).
    #[test]
    fn triggers_from_any_text_never_panic() {
        use proptest::prelude::*;
        #[rustfmt::skip]
        const PIECES: &[&str] = &[
            "*", "?", "/", "-", ",", " ", "0", "1", "7", "8", "59", "60", "99", "4294967296", "L", "W", "#", "MON",
            "JAN", "@daily", "\t", "é",
        ];
        let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512);
        let config = proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() };
        // Mostly five to seven space-separated fields (so the cron crate sees them), each a few pieces long.
        const FIELDS: &[&str] = &["*", "?", "0", "5", "*/2", "1-5", "0,6", "2-6/2", "7"];
        let field = prop_oneof![
            3 => (0..FIELDS.len()).prop_map(|i| FIELDS[i].to_owned()),
            1 => prop::collection::vec(0..PIECES.len(), 1..5)
                .prop_map(|ix| ix.into_iter().map(|i| PIECES[i]).collect::<String>()),
        ];
        let text = prop::collection::vec(field, 5..8).prop_map(|fields| fields.join(" "));
        proptest!(config, |(cron in text, interval in any::<i64>(), after in any::<i64>())| {
            for trigger in [
                json!({"cron_schedule": {"cron": cron}}),
                json!({"periodic_schedule": {"interval_second": interval}}),
            ] {
                if let Ok(t) = parse_trigger(&trigger) {
                    if let Some(next) = t.next_after(after) {
                        prop_assert!(next > after);
                    }
                }
            }
        });
    }
}
