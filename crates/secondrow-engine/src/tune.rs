//! Runs a Katib v1beta1 Experiment (`secondrow tune`): asks the experiment's algorithm for assignments, runs
//! up to `parallelTrialCount` trials at once, collects their metrics, stops the hopeless ones early
//! (`medianstop`) and ends the experiment the way Katib does.
//!
//! **Every trial is a run.** A batch/v1 Job trial becomes a one-task pipeline whose container is the primary
//! container's command and args after `${trialParameters.x}` substitution (the image is ignored, as for any
//! container task); a `secondrow/v1 Pipeline` trial is a run of the given compiled kfp pipeline with the
//! trial parameters bound to pipeline parameters. So `secondrow logs RUN`/`artifacts RUN` reach a trial, the
//! engine executes and kills its processes (process groups), and a trial's record names its run.
//!
//! Metrics: StdOut (the trial task's stdout then stderr, Katib's TEXT filters), File (the trial writes the
//! collector's path, which is rewritten to a file of the trial's own wherever it appears in the trial's
//! command, args or env), and for pipeline trials the run's `system.Metrics` artifacts.
//!
//! Durability: experiments and trials live in the store (`secondrow_store::tuning`); the algorithms are
//! stateless, so [`run_experiment`] on an experiment that was interrupted continues from its trials: finished
//! trials stay as they are, trials left open are run again on their own run (resumed), and the trial cap is
//! enforced by the transaction that adds trials.
//!
//! Katib's ending rules, checked after every change in this order: the best objective reached the goal
//! (Succeeded, `ExperimentGoalReached`); failed + metrics-unavailable trials exceed `maxFailedTrialCount`
//! (Failed, `ExperimentFailed`); completed trials reach `maxTrialCount` (Succeeded,
//! `ExperimentMaxTrialsReached`); the algorithm has nothing more and nothing runs (Succeeded,
//! `ExperimentSuggestionEndReached`). Trials still running when the experiment ends are killed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value as Json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use secondrow_spec::Pipeline;
use secondrow_store::tuning::{
    ExperimentState, Observation, ParameterAssignment, TrialOutcome, TrialState, TuningExperiment, TuningTrial,
};
use secondrow_store::{RunState, SecretKind, Store};
use secondrow_tune::earlystop::{MedianStop, StopRule};
use secondrow_tune::experiment::{is_pipeline_trial, is_training_job_trial, CollectorKind};
use secondrow_tune::metrics::{self, MetricLog};
use secondrow_tune::space::{Domain, Space};
use secondrow_tune::{suggest, Assignment, Direction, Experiment, Suggester, Value};

use crate::{Engine, EngineError, RunControl, RunOptions, Submission};

/// The task that runs a Job trial's command inside its one-task pipeline.
pub const TRIAL_TASK: &str = "trial";

const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// The experiment breaks a rule (names the field).
    #[error(transparent)]
    Invalid(#[from] secondrow_tune::TuneError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] secondrow_store::StoreError),
    #[error("{0}")]
    InvalidTrialTemplate(String),
    #[error("experiment `{0}` has already ended ({1}); nothing to resume")]
    AlreadyEnded(String, ExperimentState),
}

impl TuningError {
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        match self {
            TuningError::Invalid(e) => e.kind(),
            TuningError::Engine(e) => e.kind(),
            TuningError::Store(e) => e.kind(),
            TuningError::InvalidTrialTemplate(_) => secondrow_error::ErrorKind::InvalidInput,
            TuningError::AlreadyEnded(..) => secondrow_error::ErrorKind::FailedPrecondition,
        }
    }
}

pub type Result<T, E = TuningError> = std::result::Result<T, E>;

/// Live events for progress displays.
#[derive(Debug, Clone)]
pub enum TuneEvent {
    TrialStarted { name: String, run_id: String, assignments: Vec<ParameterAssignment> },
    TrialFinished { name: String, state: TrialState, objective: Option<f64>, message: Option<String> },
    Status(TuneStatus),
}

/// Katib's counters and the best trial so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TuneStatus {
    pub trials: usize,
    pub pending: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub early_stopped: usize,
    pub metrics_unavailable: usize,
    pub killed: usize,
    /// The best trial's name and objective value.
    pub best: Option<(String, f64)>,
}

impl TuneStatus {
    pub fn of(trials: &[TuningTrial], direction: Direction) -> TuneStatus {
        let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
        TuneStatus {
            trials: trials.len(),
            pending: count(TrialState::Created),
            running: count(TrialState::Running),
            succeeded: count(TrialState::Succeeded),
            failed: count(TrialState::Failed),
            early_stopped: count(TrialState::EarlyStopped),
            metrics_unavailable: count(TrialState::MetricsUnavailable),
            killed: count(TrialState::Killed),
            best: best_trial(trials, direction).map(|t| (t.name.clone(), t.objective.unwrap_or(f64::NAN))),
        }
    }

    /// Trials that ended, whatever the way (Katib's completed count).
    pub fn completed(&self) -> usize {
        self.succeeded + self.failed + self.early_stopped + self.metrics_unavailable + self.killed
    }
}

/// Katib's `currentOptimalTrial`: the succeeded or early-stopped trial with the best objective.
pub fn best_trial(trials: &[TuningTrial], direction: Direction) -> Option<&TuningTrial> {
    trials
        .iter()
        .filter(|t| matches!(t.state, TrialState::Succeeded | TrialState::EarlyStopped))
        .filter(|t| t.objective.is_some_and(|v| !v.is_nan()))
        .min_by(|a, b| {
            let (x, y) = (direction.loss(a.objective.unwrap_or(0.0)), direction.loss(b.objective.unwrap_or(0.0)));
            x.total_cmp(&y).then(a.seq.cmp(&b.seq))
        })
}

/// How a run of [`run_experiment`] is controlled.
#[derive(Default)]
pub struct TuneOptions {
    /// Overrides `parallelTrialCount`.
    pub parallel: Option<usize>,
    pub progress: Option<mpsc::UnboundedSender<TuneEvent>>,
    /// Interrupts: running trials are killed and left open, the experiment stays Running (resumable).
    pub cancel: CancellationToken,
}

/// Parses and validates an Experiment document (YAML or JSON), as [`create_experiment`] does.
pub fn parse_experiment(text: &str) -> Result<Experiment> {
    let e = Experiment::parse(text)?;
    // Everything the runner will need later must work now: the space, the algorithm, early stopping, filters.
    let space = e.space()?;
    suggest::build(&e, &space)?;
    if let Some(es) = &e.spec.early_stopping {
        MedianStop::from_spec(es)?;
    }
    e.metric_filters()?;
    match e.collector() {
        CollectorKind::StdOut | CollectorKind::File { .. } => {}
        other => {
            return Err(TuneError::Unsupported {
                path: "spec.metricsCollectorSpec.collector.kind".into(),
                message: format!("the {other:?} collector"),
            }
            .into())
        }
    }
    if let Some(spec) = e.spec.trial_template.as_ref().and_then(|t| t.trial_spec.as_ref()) {
        if is_pipeline_trial(spec) {
            pipeline_of(spec)?;
        }
    }
    Ok(e)
}

use secondrow_tune::TuneError;

/// Validates the document and records a new experiment (state Created) in `namespace` (the document's own
/// `metadata.namespace` when `None`, else `default`). Nothing is written when anything is invalid.
pub async fn create_experiment(store: &Store, namespace: Option<&str>, text: &str) -> Result<TuningExperiment> {
    let e = parse_experiment(text)?;
    let ns = namespace.map(str::to_owned).or(e.metadata.namespace.clone()).unwrap_or_else(|| "default".into());
    // The template must resolve (a config map's too) and render for one assignment before anything is written.
    if let Template::Job(spec) = template(store, &ns, &e).await? {
        let space = e.space()?;
        let sample = space.decode(&vec![0.5; space.dim()]);
        let rendered = e.render_trial_spec(&sample, &format!("{}-check", e.metadata.name), Some(&spec))?;
        e.trial_command(&rendered, "check")?;
    }
    Ok(store.create_tuning_experiment(&ns, &e.metadata.name, text).await?)
}

/// The compiled pipeline of a `secondrow/v1 Pipeline` trial spec (`spec.pipelineSpec`, inline).
fn pipeline_of(spec: &serde_yaml_ng::Value) -> Result<Pipeline> {
    let path = "spec.trialTemplate.trialSpec.spec.pipelineSpec";
    let doc = spec.get("spec").and_then(|s| s.get("pipelineSpec")).ok_or_else(|| {
        TuningError::InvalidTrialTemplate(format!(
            "{path}: is required (the compiled pipeline; `secondrow tune` inlines a `pipelineFile`)"
        ))
    })?;
    let json: Json =
        serde_json::to_value(doc).map_err(|e| TuningError::InvalidTrialTemplate(format!("{path}: {e}")))?;
    Pipeline::from_json(&json).map_err(|e| TuningError::InvalidTrialTemplate(format!("{path}: {e}")))
}

/// Replaces `spec.pipelineFile` of a pipeline trial with the compiled pipeline read from it (relative to
/// `base`), so the stored experiment needs no file later. Other documents come back unchanged.
pub fn inline_pipeline_file(text: &str, base: &std::path::Path) -> Result<String> {
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| TuneError::Parse(e.to_string()))?;
    let Some(spec) = doc
        .get_mut("spec")
        .and_then(|s| s.get_mut("trialTemplate"))
        .and_then(|t| t.get_mut("trialSpec"))
        .and_then(|t| t.get_mut("spec"))
        .and_then(|s| s.as_mapping_mut())
    else {
        return Ok(text.to_owned());
    };
    let Some(file) = spec.remove("pipelineFile") else { return Ok(text.to_owned()) };
    let path_field = "spec.trialTemplate.trialSpec.spec.pipelineFile";
    let file =
        file.as_str().ok_or_else(|| TuningError::InvalidTrialTemplate(format!("{path_field}: must be a file name")))?;
    let path = base.join(file);
    let pipeline = std::fs::read_to_string(&path)
        .map_err(|e| TuningError::InvalidTrialTemplate(format!("{path_field}: reading {}: {e}", path.display())))?;
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&pipeline)
        .map_err(|e| TuningError::InvalidTrialTemplate(format!("{path_field}: {}: {e}", path.display())))?;
    spec.insert("pipelineSpec".into(), value);
    serde_yaml_ng::to_string(&doc).map_err(|e| TuneError::Parse(e.to_string()).into())
}

/// Sets fixed pipeline parameters (`secondrow tune -p NAME=VALUE`) in a pipeline trial's
/// `spec.parameters`, beside the ones mapped from trial parameters (a given name replaces the document's).
pub fn set_pipeline_parameters(text: &str, pairs: &[(String, String)]) -> Result<String> {
    if pairs.is_empty() {
        return Ok(text.to_owned());
    }
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| TuneError::Parse(e.to_string()))?;
    let trial = doc.get_mut("spec").and_then(|s| s.get_mut("trialTemplate")).and_then(|t| t.get_mut("trialSpec"));
    let Some(trial) = trial.filter(|t| is_pipeline_trial(t)) else {
        return Err(TuningError::InvalidTrialTemplate(
            "--param: only a secondrow/v1 Pipeline trial has pipeline parameters".into(),
        ));
    };
    let Some(spec) = trial.get_mut("spec").and_then(|s| s.as_mapping_mut()) else {
        return Err(TuningError::InvalidTrialTemplate("spec.trialTemplate.trialSpec.spec: is required".into()));
    };
    let params = spec.entry("parameters".into()).or_insert_with(|| serde_yaml_ng::Mapping::new().into());
    let Some(params) = params.as_mapping_mut() else {
        return Err(TuningError::InvalidTrialTemplate(
            "spec.trialTemplate.trialSpec.spec.parameters: must be a mapping".into(),
        ));
    };
    for (k, v) in pairs {
        params.insert(k.as_str().into(), v.as_str().into());
    }
    serde_yaml_ng::to_string(&doc).map_err(|e| TuneError::Parse(e.to_string()).into())
}

/// The trial template in the form the runner executes.
enum Template {
    /// A batch/v1 Job (inline or from a config map): rendered per trial.
    Job(serde_yaml_ng::Value),
    /// A kfp pipeline and the rendered-per-trial map of pipeline parameters.
    Pipeline(Arc<Pipeline>, serde_yaml_ng::Value),
    /// A kubeflow.org/v1 training job (PyTorchJob, TFJob, …): rendered per trial, named after the trial and
    /// run by a one-task pipeline as `secondrow job submit --follow` (what `components/training/
    /// training_job.yaml` runs), so the trial is still a run; metrics come from rank 0's replica.
    TrainingJob(serde_yaml_ng::Value),
}

struct Ctx {
    engine: Engine,
    record: TuningExperiment,
    exp: Experiment,
    template: Template,
    names: Vec<String>,
    filters: metrics::Filters,
    collector: CollectorKind,
    events: Option<mpsc::UnboundedSender<TuneEvent>>,
    /// Per-trial folders (File collector targets).
    trials_dir: PathBuf,
}

impl Ctx {
    fn emit(&self, e: TuneEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }
}

/// Runs (or continues) an experiment until it ends or `opts.cancel` interrupts it; returns its record.
/// A Succeeded or Failed experiment is `AlreadyEnded`; a Stopped one continues (its killed trials stay).
pub async fn run_experiment(engine: &Engine, record: TuningExperiment, opts: TuneOptions) -> Result<TuningExperiment> {
    let store = engine.store().clone();
    let exp = parse_experiment(&record.spec)?;
    let template = template(&store, &record.namespace, &exp).await?;
    let space = exp.space()?;
    let suggester = suggest::build(&exp, &space)?;
    let early = exp.spec.early_stopping.as_ref().map(MedianStop::from_spec).transpose()?;
    let parallel = opts.parallel.unwrap_or_else(|| exp.parallel_trial_count()).max(1);
    let Some(record) = store
        .transition_tuning_experiment(
            &record.id,
            &[ExperimentState::Created, ExperimentState::Running, ExperimentState::Stopped],
            ExperimentState::Running,
            None,
            None,
        )
        .await?
    else {
        let now = store.get_tuning_experiment(&record.namespace, &record.name).await?;
        return Err(TuningError::AlreadyEnded(record.name.clone(), now.state));
    };
    let ctx = Arc::new(Ctx {
        trials_dir: engine.config().work_dir.join("tuning").join(&record.id),
        names: exp.metric_names(),
        filters: exp.metric_filters()?,
        collector: exp.collector(),
        engine: engine.clone(),
        exp,
        template,
        events: opts.progress.clone(),
        record,
    });
    drive(ctx, suggester.as_ref(), &space, early, parallel, opts.cancel).await
}

async fn template(store: &Store, namespace: &str, exp: &Experiment) -> Result<Template> {
    let t = exp
        .spec
        .trial_template
        .as_ref()
        .ok_or_else(|| TuningError::InvalidTrialTemplate("spec.trialTemplate: is required".into()))?;
    let spec = match (&t.trial_spec, &t.config_map) {
        (Some(spec), _) => spec.clone(),
        (None, Some(cm)) => {
            // Katib reads the template from a ConfigMap: here, a config map of the experiment's namespace.
            let ns = cm.config_map_namespace.clone().unwrap_or_else(|| namespace.to_owned());
            let mut data = store.get_secret_data(&ns, SecretKind::ConfigMap, &cm.config_map_name).await?;
            if data.is_none() && ns == "default" {
                // `secondrow configmaps create` without --namespace stores under "" (shown as `default`).
                data = store.get_secret_data("", SecretKind::ConfigMap, &cm.config_map_name).await?;
            }
            let data = data.ok_or_else(|| {
                TuningError::InvalidTrialTemplate(format!(
                    "spec.trialTemplate.configMap.configMapName: no config map `{}` in namespace `{ns}`",
                    cm.config_map_name
                ))
            })?;
            let text = data.get(&cm.template_path).ok_or_else(|| {
                TuningError::InvalidTrialTemplate(format!(
                    "spec.trialTemplate.configMap.templatePath: config map `{}` has no key `{}`",
                    cm.config_map_name, cm.template_path
                ))
            })?;
            serde_yaml_ng::from_str(text).map_err(|e| {
                TuningError::InvalidTrialTemplate(format!(
                    "spec.trialTemplate.configMap: the template is not YAML: {e}"
                ))
            })?
        }
        (None, None) => return Err(TuningError::InvalidTrialTemplate("spec.trialTemplate: no trialSpec".into())),
    };
    if is_pipeline_trial(&spec) {
        let pipeline = pipeline_of(&spec)?;
        let params = spec.get("spec").and_then(|s| s.get("parameters")).cloned().unwrap_or_default();
        // Only the parameters are rendered per trial, not the (large) pipeline.
        return Ok(Template::Pipeline(Arc::new(pipeline), params));
    }
    if is_training_job_trial(&spec) {
        return Ok(Template::TrainingJob(spec));
    }
    Ok(Template::Job(spec))
}

/// The experiment loop.
async fn drive(
    ctx: Arc<Ctx>,
    suggester: &dyn Suggester,
    space: &Space,
    early: Option<MedianStop>,
    parallel: usize,
    interrupt: CancellationToken,
) -> Result<TuningExperiment> {
    let store = ctx.engine.store().clone();
    let id = ctx.record.id.clone();
    let direction = ctx.exp.direction();
    let max_trials = ctx.exp.spec.max_trial_count;
    let max_failed = ctx.exp.spec.max_failed_trial_count;
    // This process's running trials: trial id → its kill switch.
    let mut live: HashMap<String, CancellationToken> = HashMap::new();
    let mut set: JoinSet<(String, Result<Option<TrialOutcome>>)> = JoinSet::new();
    let mut exhausted = false;
    let mut last_status = None;
    loop {
        let trials = store.list_tuning_trials(&id).await?;
        let status = TuneStatus::of(&trials, direction);
        let best = best_trial(&trials, direction);
        if last_status.as_ref() != Some(&status) {
            store.set_optimal_trial(&id, best.map(|t| t.name.as_str())).await?;
            ctx.emit(TuneEvent::Status(status.clone()));
            last_status = Some(status.clone());
        }
        // Stopped from elsewhere (`secondrow tune stop`): kill what runs here and return.
        let now = store.get_tuning_experiment(&ctx.record.namespace, &ctx.record.name).await?;
        if now.state != ExperimentState::Running {
            return wind_down(&ctx, live, set, now).await;
        }
        if interrupt.is_cancelled() {
            for t in live.values() {
                t.cancel();
            }
            while set.join_next().await.is_some() {}
            return Ok(store.get_tuning_experiment(&ctx.record.namespace, &ctx.record.name).await?);
        }
        let goal = ctx.exp.spec.objective.goal;
        let end = if let (Some(goal), Some(v)) = (goal, best.and_then(|b| b.objective)) {
            let reached = match direction {
                Direction::Maximize => v >= goal,
                Direction::Minimize => v <= goal,
            };
            reached
                .then(|| (ExperimentState::Succeeded, "ExperimentGoalReached", format!("the goal {goal} was reached")))
        } else {
            None
        }
        .or_else(|| {
            let failed = status.failed + status.metrics_unavailable;
            max_failed.filter(|m| failed as i64 > *m).map(|m| {
                (
                    ExperimentState::Failed,
                    "ExperimentFailed",
                    format!("{failed} trials failed, more than maxFailedTrialCount {m}"),
                )
            })
        })
        .or_else(|| {
            max_trials.filter(|m| status.completed() as i64 >= *m).map(|m| {
                (
                    ExperimentState::Succeeded,
                    "ExperimentMaxTrialsReached",
                    format!("maxTrialCount {m} trials completed"),
                )
            })
        })
        .or_else(|| {
            (exhausted && live.is_empty() && status.pending + status.running == 0).then(|| {
                (
                    ExperimentState::Succeeded,
                    "ExperimentSuggestionEndReached",
                    "the algorithm has no more suggestions".to_string(),
                )
            })
        });
        if let Some((state, reason, message)) = end {
            for t in live.values() {
                t.cancel();
            }
            while let Some(joined) = set.join_next().await {
                if let Ok((trial_id, _)) = joined {
                    kill_trial(&store, &trial_id, "the experiment ended").await?;
                }
            }
            // Open trials of an earlier process that never started here end too.
            for t in trials.iter().filter(|t| t.state.is_open()) {
                kill_trial(&store, &t.id, "the experiment ended").await?;
            }
            let trials = store.list_tuning_trials(&id).await?;
            store.set_optimal_trial(&id, best_trial(&trials, direction).map(|t| t.name.as_str())).await?;
            ctx.emit(TuneEvent::Status(TuneStatus::of(&trials, direction)));
            let done = store
                .transition_tuning_experiment(&id, &[ExperimentState::Running], state, Some(reason), Some(&message))
                .await?;
            return match done {
                Some(d) => Ok(d),
                None => Ok(store.get_tuning_experiment(&ctx.record.namespace, &ctx.record.name).await?),
            };
        }

        // Trials left open by an earlier process (or created but not started): run them again.
        let rule_now = |trials: &[TuningTrial]| early_rule(early, &ctx.names[0], trials, direction);
        let leftover: Vec<TuningTrial> =
            trials.iter().filter(|t| t.state.is_open() && !live.contains_key(&t.id)).cloned().collect();
        for t in leftover {
            if live.len() >= parallel {
                break;
            }
            start(&ctx, &mut set, &mut live, t, rule_now(&trials), space);
        }
        // New suggestions for the free slots, never past maxTrialCount in total.
        let room = max_trials.map(|m| (m as usize).saturating_sub(trials.len())).unwrap_or(usize::MAX);
        let want = parallel.saturating_sub(live.len()).min(room);
        if want > 0 && !exhausted {
            let history = history(space, &trials);
            let assignments = suggester.suggest(&history, want)?;
            if assignments.len() < want && live.is_empty() {
                exhausted = assignments.is_empty();
            }
            if !assignments.is_empty() {
                let batch: Vec<(String, Vec<ParameterAssignment>)> =
                    assignments.iter().map(|a| (trial_name(&ctx.record.name), to_stored(a))).collect();
                let added = store.add_tuning_trials(&id, &batch, max_trials).await?;
                let rule = rule_now(&trials);
                for t in added {
                    start(&ctx, &mut set, &mut live, t, rule, space);
                }
                continue;
            }
        }
        // Wait for a trial to end, an interrupt, or the next look at the store.
        tokio::select! {
            Some(joined) = set.join_next(), if !set.is_empty() => {
                let (trial_id, result) = joined.map_err(|e| EngineError::AttemptPanicked(e.to_string()))?;
                live.remove(&trial_id);
                if let Some(outcome) = result? {
                    store.finish_tuning_trial(&trial_id, &outcome).await?;
                    if let Some(t) = store.list_tuning_trials(&id).await?.into_iter().find(|t| t.id == trial_id) {
                        ctx.emit(TuneEvent::TrialFinished {
                            name: t.name,
                            state: t.state,
                            objective: t.objective,
                            message: t.message,
                        });
                    }
                }
            }
            _ = interrupt.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn kill_trial(store: &Store, trial_id: &str, why: &str) -> Result<()> {
    let outcome = TrialOutcome {
        state: TrialState::Killed,
        objective: None,
        observations: Vec::new(),
        reason: Some("TrialKilled".into()),
        message: Some(why.into()),
    };
    store.finish_tuning_trial(trial_id, &outcome).await?;
    Ok(())
}

/// The experiment left Running under us (stopped): kill this process's trials and report it as it is.
async fn wind_down(
    ctx: &Ctx,
    live: HashMap<String, CancellationToken>,
    mut set: JoinSet<(String, Result<Option<TrialOutcome>>)>,
    now: TuningExperiment,
) -> Result<TuningExperiment> {
    for t in live.values() {
        t.cancel();
    }
    while let Some(joined) = set.join_next().await {
        if let Ok((trial_id, _)) = joined {
            kill_trial(ctx.engine.store(), &trial_id, "the experiment was stopped").await?;
        }
    }
    Ok(now)
}

/// The medianstop rule for a trial created now.
fn early_rule(
    early: Option<MedianStop>,
    objective: &str,
    trials: &[TuningTrial],
    direction: Direction,
) -> Option<StopRule> {
    let m = early?;
    let succeeded: Vec<Vec<f64>> = trials
        .iter()
        .filter(|t| t.state == TrialState::Succeeded)
        .map(|t| t.observations.iter().filter(|o| o.name == objective).map(|o| o.value).collect())
        .collect();
    m.rule(&succeeded, direction)
}

fn start(
    ctx: &Arc<Ctx>,
    set: &mut JoinSet<(String, Result<Option<TrialOutcome>>)>,
    live: &mut HashMap<String, CancellationToken>,
    trial: TuningTrial,
    rule: Option<StopRule>,
    space: &Space,
) {
    let kill = CancellationToken::new();
    live.insert(trial.id.clone(), kill.clone());
    let ctx = ctx.clone();
    let assignment = from_stored(space, &trial.assignments);
    set.spawn(async move {
        let id = trial.id.clone();
        let result = run_trial(&ctx, trial, assignment, rule, kill).await;
        (id, result)
    });
}

/// The algorithms' view of the trials, in creation order.
fn history(space: &Space, trials: &[TuningTrial]) -> Vec<suggest::Trial> {
    trials
        .iter()
        .map(|t| suggest::Trial {
            assignment: from_stored(space, &t.assignments),
            state: match t.state {
                TrialState::Created | TrialState::Running => suggest::TrialState::Pending,
                TrialState::Succeeded => suggest::TrialState::Succeeded,
                TrialState::EarlyStopped => suggest::TrialState::EarlyStopped,
                TrialState::Failed | TrialState::MetricsUnavailable | TrialState::Killed => suggest::TrialState::Failed,
            },
            value: t.objective,
        })
        .collect()
}

fn to_stored(a: &Assignment) -> Vec<ParameterAssignment> {
    a.iter().map(|(n, v)| ParameterAssignment { name: n.clone(), value: v.to_string() }).collect()
}

/// Stored (text) assignments back to typed values, after the space's parameter types.
fn from_stored(space: &Space, stored: &[ParameterAssignment]) -> Assignment {
    stored
        .iter()
        .map(|p| {
            let domain = space.params.iter().find(|q| q.name == p.name).map(|q| &q.domain);
            let v = match domain {
                Some(Domain::Double { .. }) => {
                    p.value.parse().map(Value::Double).unwrap_or(Value::Str(p.value.clone()))
                }
                Some(Domain::Int { .. }) => p.value.parse().map(Value::Int).unwrap_or(Value::Str(p.value.clone())),
                _ => Value::Str(p.value.clone()),
            };
            (p.name.clone(), v)
        })
        .collect()
}

/// Katib's trial names: `<experiment>-<8 random characters>`.
fn trial_name(experiment: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{experiment}-{}", &id[..8])
}

/// What one trial executes: the pipeline, its parameters, and the File collector's file if any.
struct TrialRun {
    pipeline: Pipeline,
    params: Map<String, Json>,
    metrics_file: Option<PathBuf>,
    no_cache: bool,
    /// A training job trial's job name (the trial's), in the experiment's namespace.
    job: Option<String>,
}

/// The File collector's per-trial file: created folder, no stale file from an earlier attempt.
fn trial_metrics_file(ctx: &Ctx, trial: &TuningTrial) -> Result<PathBuf, String> {
    let dir = ctx.trials_dir.join(&trial.name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let file = dir.join("metrics.log");
    // A re-run starts from a clean file.
    let _ = std::fs::remove_file(&file);
    Ok(file)
}

/// Replaces `from` by `to` in every string of a YAML document (the File collector's path in a job's
/// commands, args and env, whichever replica they belong to).
fn replace_strings(v: &mut serde_yaml_ng::Value, from: &str, to: &str) {
    match v {
        serde_yaml_ng::Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        serde_yaml_ng::Value::Sequence(items) => items.iter_mut().for_each(|i| replace_strings(i, from, to)),
        serde_yaml_ng::Value::Mapping(m) => m.values_mut().for_each(|i| replace_strings(i, from, to)),
        _ => {}
    }
}

/// The one-task pipeline of a trial whose task runs `command` + `args` with `env`.
fn one_task_pipeline(
    ctx: &Ctx,
    trial: &TuningTrial,
    command: Vec<String>,
    args: Vec<String>,
    env: Vec<Json>,
) -> Result<Pipeline, String> {
    let doc = json!({
        "pipelineInfo": {"name": ctx.record.name, "description": format!("trial {} of experiment {}", trial.name, ctx.record.name)},
        "schemaVersion": "2.1.0",
        "sdkVersion": "secondrow-tune",
        "root": {"dag": {"tasks": {TRIAL_TASK: {
            "taskInfo": {"name": TRIAL_TASK},
            "componentRef": {"name": "comp-trial"},
        }}}},
        "components": {"comp-trial": {"executorLabel": "exec-trial"}},
        "deploymentSpec": {"executors": {"exec-trial": {"container": {
            "image": "katib-trial",
            "command": command,
            "args": args,
            "env": env,
        }}}},
    });
    Pipeline::from_json(&doc).map_err(|e| format!("the trial's command: {e}"))
}

fn prepare(ctx: &Ctx, trial: &TuningTrial, assignment: &Assignment) -> Result<TrialRun, String> {
    match &ctx.template {
        Template::Job(spec) => {
            let rendered = ctx.exp.render_trial_spec(assignment, &trial.name, Some(spec)).map_err(|e| e.to_string())?;
            let mut cmd = ctx.exp.trial_command(&rendered, &trial.name).map_err(|e| e.to_string())?;
            let mut metrics_file = None;
            if let CollectorKind::File { path, .. } = &ctx.collector {
                let file = trial_metrics_file(ctx, trial)?;
                let local = file.to_string_lossy().into_owned();
                for s in cmd.command.iter_mut().chain(cmd.args.iter_mut()).chain(cmd.env.iter_mut().map(|(_, v)| v)) {
                    *s = s.replace(path.as_str(), &local);
                }
                cmd.env.push(("KATIB_METRICS_FILE".into(), local));
                metrics_file = Some(file);
            }
            let (command, args) = match &cmd.working_dir {
                // kfp containers have no working directory: change into it first.
                Some(dir) => {
                    let mut args = vec!["cd \"$0\" && exec \"$@\"".to_string(), dir.clone()];
                    args.extend(cmd.command.iter().cloned());
                    args.extend(cmd.args.iter().cloned());
                    (vec!["sh".to_string(), "-c".to_string()], args)
                }
                None => (cmd.command.clone(), cmd.args.clone()),
            };
            let env: Vec<Json> = cmd.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
            let pipeline = one_task_pipeline(ctx, trial, command, args, env)?;
            Ok(TrialRun { pipeline, params: Map::new(), metrics_file, no_cache: true, job: None })
        }
        Template::TrainingJob(spec) => {
            let mut rendered =
                ctx.exp.render_trial_spec(assignment, &trial.name, Some(spec)).map_err(|e| e.to_string())?;
            // Katib names a trial's job after the trial.
            let Some(doc) = rendered.as_mapping_mut() else { return Err("the trial's job is not a mapping".into()) };
            let meta = doc
                .entry("metadata".into())
                .or_insert_with(|| serde_yaml_ng::Value::Mapping(serde_yaml_ng::Mapping::new()));
            if let Some(meta) = meta.as_mapping_mut() {
                meta.insert("name".into(), trial.name.clone().into());
            }
            let mut metrics_file = None;
            if let CollectorKind::File { path, .. } = &ctx.collector {
                let file = trial_metrics_file(ctx, trial)?;
                replace_strings(&mut rendered, path, &file.to_string_lossy());
                metrics_file = Some(file);
            }
            let yaml = serde_yaml_ng::to_string(&rendered).map_err(|e| format!("the trial's job: {e}"))?;
            let command = ["secondrow", "job", "submit", "--follow"].map(String::from).to_vec();
            let args = vec!["--yaml".to_string(), yaml, "--namespace".to_string(), ctx.record.namespace.clone()];
            let env = vec![json!({"name": "KATIB_TRIAL_NAME", "value": trial.name})];
            let pipeline = one_task_pipeline(ctx, trial, command, args, env)?;
            Ok(TrialRun { pipeline, params: Map::new(), metrics_file, no_cache: true, job: Some(trial.name.clone()) })
        }
        Template::Pipeline(pipeline, params) => {
            let rendered = ctx
                .exp
                .render_trial_spec(assignment, &trial.name, Some(&wrap_params(params)))
                .map_err(|e| e.to_string())?;
            let mut pairs = Vec::new();
            if let Some(m) = rendered.get("spec").and_then(|s| s.get("parameters")).and_then(|p| p.as_mapping()) {
                for (k, v) in m {
                    let k = k.as_str().unwrap_or_default().to_string();
                    let v = match v {
                        serde_yaml_ng::Value::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
                    };
                    pairs.push((k, v));
                }
            }
            let params = pipeline.bind_cli_parameters(&pairs).map_err(|e| format!("pipeline parameters: {e}"))?;
            Ok(TrialRun { pipeline: (**pipeline).clone(), params, metrics_file: None, no_cache: false, job: None })
        }
    }
}

/// A trial spec of only the parameters, for rendering (its kind keeps `${trialSpec.Kind}` working).
fn wrap_params(params: &serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    let mut m = serde_yaml_ng::Mapping::new();
    m.insert("apiVersion".into(), "secondrow/v1".into());
    m.insert("kind".into(), "Pipeline".into());
    let mut spec = serde_yaml_ng::Mapping::new();
    spec.insert("parameters".into(), params.clone());
    m.insert("spec".into(), serde_yaml_ng::Value::Mapping(spec));
    serde_yaml_ng::Value::Mapping(m)
}

fn failed(state: TrialState, reason: &str, message: String, observations: Vec<Observation>) -> TrialOutcome {
    TrialOutcome { state, objective: None, observations, reason: Some(reason.into()), message: Some(message) }
}

/// Runs one trial on its run (resuming the run a trial left open already has). `None`: interrupted (the
/// trial stays open for a later resume).
async fn run_trial(
    ctx: &Ctx,
    trial: TuningTrial,
    assignment: Assignment,
    rule: Option<StopRule>,
    kill: CancellationToken,
) -> Result<Option<TrialOutcome>> {
    let store = ctx.engine.store();
    let plan = match prepare(ctx, &trial, &assignment) {
        Ok(p) => p,
        Err(message) => return Ok(Some(failed(TrialState::Failed, "TrialFailed", message, Vec::new()))),
    };
    let previous = match &trial.run_id {
        Some(r) => store.get_run(r).await.ok(),
        None => None,
    };
    let run_id = match &previous {
        Some(r) => r.id.clone(),
        None => {
            let submission = Submission {
                display_name: Some(trial.name.clone()),
                description: format!("trial {} of tuning experiment {}", trial.name, ctx.record.name),
                namespace: ctx.record.namespace.clone(),
                options: RunOptions { no_cache: plan.no_cache, ..RunOptions::default() },
                ..Submission::default()
            };
            match ctx.engine.submit(&plan.pipeline, plan.params.clone(), submission).await {
                Ok(r) => r.id,
                Err(e) => return Ok(Some(failed(TrialState::Failed, "TrialFailed", e.to_string(), Vec::new()))),
            }
        }
    };
    if let (Some(job), Some(p)) = (&plan.job, &previous) {
        // The trial runs again on its run: a job the interrupted attempt left goes first (its processes too).
        if p.state != RunState::Succeeded {
            if let Ok(rec) = store.get_training_job(&ctx.record.namespace, job).await {
                if let Err(e) = crate::training::delete(store, &rec).await {
                    return Ok(Some(failed(TrialState::Failed, "TrialFailed", e.to_string(), Vec::new())));
                }
            }
        }
    }
    if !store.start_tuning_trial(&trial.id, &run_id).await? {
        return Ok(None);
    }
    ctx.emit(TuneEvent::TrialStarted {
        name: trial.name.clone(),
        run_id: run_id.clone(),
        assignments: trial.assignments.clone(),
    });
    let run_cancel = CancellationToken::new();
    let engine = ctx.engine.clone();
    let (rid, rc) = (run_id.clone(), run_cancel.clone());
    let already_done = previous.as_ref().is_some_and(|r| r.state == RunState::Succeeded);
    let mut handle = tokio::spawn(async move {
        if already_done {
            return engine.store().get_run(&rid).await.map_err(EngineError::from);
        }
        if let Some(p) = previous {
            if p.state != RunState::Pending {
                return engine.resume(&rid, RunControl::new(rc), true).await;
            }
        }
        engine.execute(&rid, RunControl::new(rc)).await
    });
    let mut stopped_early: Option<String> = None;
    let mut interrupted = false;
    let mut checked = false;
    let mut seen = 0usize;
    let result = loop {
        tokio::select! {
            r = &mut handle => break r,
            _ = kill.cancelled(), if !interrupted => {
                interrupted = true;
                run_cancel.cancel();
            }
            _ = tokio::time::sleep(POLL) => {
                let obs = collect(ctx, &plan, &run_id).await;
                if obs.len() != seen {
                    seen = obs.len();
                    store.record_trial_observations(&trial.id, &obs).await?;
                }
                if let (Some(rule), false) = (rule, checked) {
                    let series: Vec<f64> = obs.iter().filter(|o| o.name == ctx.names[0]).map(|o| o.value).collect();
                    if series.len() >= rule.start_step {
                        checked = true;
                        if rule.should_stop(&series[..rule.start_step]) {
                            stopped_early = Some(format!(
                                "medianstop: the best {} of the first {} steps is worse than the median {}",
                                ctx.names[0], rule.start_step, rule.threshold
                            ));
                            run_cancel.cancel();
                        }
                    }
                }
            }
        }
    };
    let run = result.map_err(|e| EngineError::AttemptPanicked(e.to_string()))?;
    let observations = collect(ctx, &plan, &run_id).await;
    if let Some(message) = stopped_early {
        let objective = objective(ctx, &observations);
        return Ok(Some(TrialOutcome {
            state: TrialState::EarlyStopped,
            objective,
            observations,
            reason: Some("TrialEarlyStopped".into()),
            message: Some(message),
        }));
    }
    if interrupted {
        return Ok(None);
    }
    let run = match run {
        Ok(r) => r,
        Err(e) => return Ok(Some(failed(TrialState::Failed, "TrialFailed", e.to_string(), observations))),
    };
    if run.state != RunState::Succeeded {
        let why = run.error.clone().unwrap_or_else(|| format!("its run ended {}", run.state));
        return Ok(Some(failed(
            TrialState::Failed,
            "TrialFailed",
            format!("{why} (logs: secondrow logs {run_id})"),
            observations,
        )));
    }
    match objective(ctx, &observations) {
        Some(v) => Ok(Some(TrialOutcome {
            state: TrialState::Succeeded,
            objective: Some(v),
            observations,
            reason: Some("TrialSucceeded".into()),
            message: None,
        })),
        None => {
            let place = match (&ctx.template, &ctx.collector) {
                (Template::Pipeline(..), _) => "in the run's Metrics artifacts".to_string(),
                (Template::TrainingJob(_), CollectorKind::File { path, .. }) => format!("in the metrics file {path}"),
                (Template::TrainingJob(_), _) => "as name=value in rank 0's output".to_string(),
                (_, CollectorKind::File { path, .. }) => format!("in the metrics file {path}"),
                _ => "as name=value in the trial's output".to_string(),
            };
            Ok(Some(failed(
                TrialState::MetricsUnavailable,
                "MetricsUnavailable",
                format!(
                    "the objective metric `{}` was never reported {place} (logs: secondrow logs {run_id})",
                    ctx.names[0]
                ),
                observations,
            )))
        }
    }
}

/// The objective after its strategy.
fn objective(ctx: &Ctx, obs: &[Observation]) -> Option<f64> {
    let name = &ctx.names[0];
    let values: Vec<f64> = obs.iter().filter(|o| &o.name == name).map(|o| o.value).collect();
    let latest = *values.last()?;
    Some(match ctx.exp.metric_strategy(name).as_str() {
        "min" => values.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        _ => latest,
    })
}

/// Every value of the experiment's metrics the trial reported so far, objective first, steps from 1.
async fn collect(ctx: &Ctx, plan: &TrialRun, run_id: &str) -> Vec<Observation> {
    let logs: Vec<MetricLog> = match (&ctx.template, &ctx.collector) {
        (Template::Pipeline(..), _) => metrics_artifacts(ctx.engine.store(), run_id, &ctx.names).await,
        (_, CollectorKind::File { json, .. }) => {
            let text = plan.metrics_file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).unwrap_or_default();
            if *json {
                metrics::parse_json_lines(&text, &ctx.names).unwrap_or_default()
            } else {
                metrics::parse_text(&text, &ctx.names, &ctx.filters)
            }
        }
        // A training job trial: its primary replica's output (rank 0's log: stdout and stderr together).
        (Template::TrainingJob(_), _) => {
            let rec = match &plan.job {
                Some(name) => ctx.engine.store().get_training_job(&ctx.record.namespace, name).await.ok(),
                None => None,
            };
            let text = rec
                .and_then(|r| r.replicas.first().map(|r| r.log_path.clone()))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            metrics::parse_text(&text, &ctx.names, &ctx.filters)
        }
        _ => {
            let dir = ctx.engine.config().logs_root.join(run_id).join(TRIAL_TASK);
            let mut text = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default());
            metrics::parse_text(&text, &ctx.names, &ctx.filters)
        }
    };
    let mut out = Vec::new();
    for name in &ctx.names {
        for (i, v) in metrics::series(&logs, name).into_iter().enumerate() {
            out.push(Observation { name: name.clone(), value: v, step: i as i64 + 1 });
        }
    }
    out
}

/// Metric values from the run's `system.Metrics` artifacts (their metadata is `{name: number}`).
async fn metrics_artifacts(store: &Store, run_id: &str, names: &[String]) -> Vec<MetricLog> {
    let Ok(artifacts) = store.list_artifacts(run_id).await else { return Vec::new() };
    let mut out = Vec::new();
    for a in artifacts.iter().filter(|a| a.schema_title == "system.Metrics") {
        let Some(m) = a.metadata.as_object() else { continue };
        for name in names {
            if let Some(v) = m.get(name) {
                let value = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push(MetricLog { name: name.clone(), value, timestamp: None });
            }
        }
    }
    out
}

/// The trial list as Katib's `parameterAssignments` text, for displays: `lr=0.1, layers=3`.
pub fn assignments_text(a: &[ParameterAssignment]) -> String {
    a.iter().map(|p| format!("{}={}", p.name, p.value)).collect::<Vec<_>>().join(", ")
}
