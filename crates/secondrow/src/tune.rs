//! `secondrow tune`: run a Katib v1beta1 Experiment here (`secondrow tune EXPERIMENT.yaml`), and list,
//! inspect, resume and stop experiments. The runner is `secondrow_engine::tune`; every trial is a run, so
//! `secondrow logs RUN` and `secondrow artifacts RUN` reach it (`tune trials NAME` names the runs).
//!
//! Exit codes: 0 the experiment succeeded (goal reached, maxTrialCount trials, or the algorithm had no more),
//! 1 it failed (more than maxFailedTrialCount failed trials) or was stopped or interrupted, 2 invalid input
//! (the message names the field, as Katib's validation does).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tokio::sync::mpsc;

use secondrow_engine::tune::{self, TuneEvent, TuneOptions, TuneStatus};
use secondrow_error::ErrorKind;
use secondrow_store::tuning::{ExperimentState, TrialState, TuningExperiment, TuningTrial};
use secondrow_store::Store;

use crate::error::{Context as _, Failure, Result};
use crate::term::{Safe, SafeText};

use super::{fmt_time, ExecArgs, Home, Settings};

mod remote;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TuneArgs {
    #[command(subcommand)]
    command: Option<TuneCommand>,
    /// A Katib Experiment (kubeflow.org/v1beta1, YAML or JSON) to run to completion.
    #[arg(required = true)]
    experiment: Option<PathBuf>,
    #[command(flatten)]
    run: RunFlags,
}

#[derive(Args)]
pub struct RunFlags {
    /// Trials at once (overrides the experiment's parallelTrialCount).
    #[arg(long)]
    parallel: Option<usize>,
    /// A fixed pipeline parameter of a `secondrow/v1 Pipeline` trial, `name=value` (beside the tuned ones).
    #[arg(long = "param", short = 'p', value_parser = super::parse_param)]
    params: Vec<(String, String)>,
    /// The namespace of the experiment and its trial runs (default: metadata.namespace, else `default`).
    #[arg(long)]
    namespace: Option<String>,
    #[command(flatten)]
    exec: ExecArgs,
}

#[derive(Subcommand)]
pub enum TuneCommand {
    /// Experiments, oldest first (one namespace with `--namespace`).
    List {
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One experiment: state, reason, counts and the best trial.
    Get {
        name: String,
        #[arg(long, default_value = "default")]
        namespace: String,
        #[arg(long)]
        json: bool,
    },
    /// An experiment's trials: parameters, state, objective and the run of each.
    Trials {
        name: String,
        #[arg(long, default_value = "default")]
        namespace: String,
        #[arg(long)]
        json: bool,
    },
    /// Continue an interrupted (or stopped) experiment: finished trials are kept, open ones run again.
    Resume {
        name: String,
        #[arg(long)]
        parallel: Option<usize>,
        #[arg(long, default_value = "default")]
        namespace: String,
        #[command(flatten)]
        exec: ExecArgs,
    },
    /// Stop an experiment: its running trials are killed (also those of another process running it).
    Stop {
        name: String,
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

/// The experiment file as it is stored: read, `pipelineFile` inlined, `-p` parameters set, validated.
fn load_experiment(path: &std::path::Path, params: &[(String, String)]) -> Result<(String, Option<String>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(ErrorKind::of_io(&e), e))
        .with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().map(PathBuf::from).unwrap_or_default();
    let text = tune::inline_pipeline_file(&text, &base).with_context(|| path.display().to_string())?;
    let text = tune::set_pipeline_parameters(&text, params)?;
    let e = tune::parse_experiment(&text).with_context(|| path.display().to_string())?;
    Ok((text, e.metadata.namespace))
}

pub async fn run(settings: &Settings, args: TuneArgs) -> Result<ExitCode> {
    if let Some(server) = &settings.server {
        let client = crate::client::Client::new(server, settings.token.clone())?;
        return match args.command {
            None => {
                let path = args.experiment.ok_or_else(|| Failure::usage("an EXPERIMENT file is required"))?;
                let (text, ns) = load_experiment(&path, &args.run.params)?;
                let ns = args.run.namespace.or(ns).unwrap_or_else(|| "default".into());
                remote::create(&client, &ns, &text, args.run.exec.json).await
            }
            Some(cmd) => remote::command(&client, cmd).await,
        };
    }
    match args.command {
        None => {
            let path = args.experiment.ok_or_else(|| Failure::usage("an EXPERIMENT file is required"))?;
            // Validate everything before touching the home folder or the store.
            let (text, _) = load_experiment(&path, &args.run.params)?;
            let home = Home::resolve(settings)?;
            let engine = home.engine(&args.run.exec).await?;
            let record = tune::create_experiment(engine.store(), args.run.namespace.as_deref(), &text).await?;
            eprintln!("experiment {} (namespace {}) created", Safe(&record.name), Safe(&record.namespace));
            execute(&engine, record, args.run.parallel, args.run.exec.json).await
        }
        Some(TuneCommand::Resume { name, parallel, namespace, exec }) => {
            let home = Home::resolve(settings)?;
            let engine = home.engine(&exec).await?;
            let record = engine.store().get_tuning_experiment(&namespace, &name).await?;
            eprintln!("resuming experiment {}", Safe(&record.name));
            execute(&engine, record, parallel, exec.json).await
        }
        Some(TuneCommand::Stop { name, namespace }) => {
            let store = Home::resolve(settings)?.store().await?;
            let record = store.get_tuning_experiment(&namespace, &name).await?;
            match store.stop_tuning_experiment(&record.id, "stopped by `secondrow tune stop`").await? {
                Some(_) => {
                    eprintln!("experiment {} stopped", Safe(&name));
                    Ok(ExitCode::SUCCESS)
                }
                None => Err(Failure::new(
                    ErrorKind::FailedPrecondition,
                    anyhow::anyhow!("experiment `{name}` has already ended ({})", record.state),
                )),
            }
        }
        Some(TuneCommand::List { namespace, json }) => {
            let store = Home::resolve(settings)?.store().await?;
            let list = store.list_tuning_experiments(namespace.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<16}  {:<32}  {:<10}  {:<19}  BEST TRIAL", "NAMESPACE", "NAME", "STATE", "CREATED");
            for e in &list {
                println!(
                    "{:<16}  {:<32}  {:<10}  {:<19}  {}",
                    Safe(&e.namespace),
                    Safe(&e.name),
                    e.state,
                    fmt_time(e.created_at),
                    Safe(e.optimal_trial.as_deref().unwrap_or("-"))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(TuneCommand::Get { name, namespace, json }) => {
            let store = Home::resolve(settings)?.store().await?;
            let (record, trials, status) = load(&store, &namespace, &name).await?;
            if json {
                let doc = json!({"experiment": record, "status": status, "trials": trials});
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("Experiment: {} (namespace {})", Safe(&record.name), Safe(&record.namespace));
            println!("State:      {}", record.state);
            if let Some(r) = &record.reason {
                println!("Reason:     {} {}", Safe(r), SafeText(record.message.as_deref().unwrap_or("")));
            }
            println!("Created:    {}", fmt_time(record.created_at));
            println!("Trials:     {}", counts(&status));
            if let Some(best) = trials.iter().find(|t| Some(&t.name) == record.optimal_trial.as_ref()) {
                println!(
                    "Best trial: {}  {}  objective {}  (run {})",
                    Safe(&best.name),
                    Safe(&tune::assignments_text(&best.assignments)),
                    best.objective.map(|v| v.to_string()).unwrap_or_default(),
                    Safe(best.run_id.as_deref().unwrap_or("-"))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(TuneCommand::Trials { name, namespace, json }) => {
            let store = Home::resolve(settings)?.store().await?;
            let (_, trials, _) = load(&store, &namespace, &name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&trials)?);
                return Ok(ExitCode::SUCCESS);
            }
            print_trials(&trials);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn load(store: &Store, namespace: &str, name: &str) -> Result<(TuningExperiment, Vec<TuningTrial>, TuneStatus)> {
    let record = store.get_tuning_experiment(namespace, name).await?;
    let trials = store.list_tuning_trials(&record.id).await?;
    let direction = tune::parse_experiment(&record.spec)?.direction();
    let status = TuneStatus::of(&trials, direction);
    Ok((record, trials, status))
}

pub(crate) fn print_trials(trials: &[TuningTrial]) {
    println!("{:<4}  {:<28}  {:<18}  {:>12}  {:<36}  PARAMETERS", "#", "TRIAL", "STATE", "OBJECTIVE", "RUN");
    for t in trials {
        println!(
            "{:<4}  {:<28}  {:<18}  {:>12}  {:<36}  {}",
            t.seq,
            Safe(&t.name),
            t.state,
            t.objective.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into()),
            Safe(t.run_id.as_deref().unwrap_or("-")),
            Safe(&tune::assignments_text(&t.assignments))
        );
        if let (Some(m), false) = (&t.message, t.state == TrialState::Succeeded) {
            println!("      {}", SafeText(m));
        }
    }
}

fn counts(s: &TuneStatus) -> String {
    format!(
        "{} running, {} succeeded, {} failed, {} early-stopped, {} metrics unavailable, {} killed ({} in all)",
        s.running, s.succeeded, s.failed, s.early_stopped, s.metrics_unavailable, s.killed, s.trials
    )
}

/// Runs the experiment with Ctrl-C handling and live progress; the exit code reflects how it ended.
async fn execute(
    engine: &secondrow_engine::Engine,
    record: TuningExperiment,
    parallel: Option<usize>,
    json_out: bool,
) -> Result<ExitCode> {
    let (cancel, signals) = crate::shutdown::cancel_on_signal(Some("\ninterrupted: killing the running trials…"));
    let (tx, rx) = mpsc::unbounded_channel();
    let display = tokio::spawn(render(rx));
    let name = record.name.clone();
    let result = tune::run_experiment(engine, record, TuneOptions { parallel, progress: Some(tx), cancel }).await;
    signals.abort();
    let _ = display.await;
    let done = result?;
    let trials = engine.store().list_tuning_trials(&done.id).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&json!({"experiment": done, "trials": trials}))?);
    }
    let best = trials.iter().find(|t| Some(&t.name) == done.optimal_trial.as_ref());
    if done.state == ExperimentState::Running {
        eprintln!("experiment {} interrupted; `secondrow tune resume {}` continues it", Safe(&name), Safe(&name));
        return Ok(ExitCode::from(1));
    }
    eprintln!(
        "experiment {} {}: {}",
        Safe(&name),
        done.state,
        SafeText(done.message.as_deref().or(done.reason.as_deref()).unwrap_or(""))
    );
    if let Some(b) = best {
        eprintln!(
            "best trial {}: objective {}  ({})  run {}",
            Safe(&b.name),
            b.objective.map(|v| v.to_string()).unwrap_or_default(),
            Safe(&tune::assignments_text(&b.assignments)),
            Safe(b.run_id.as_deref().unwrap_or("-"))
        );
    }
    Ok(match done.state {
        ExperimentState::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// One spinner line with the counters and the best so far, and one line per finished trial.
async fn render(mut rx: mpsc::UnboundedReceiver<TuneEvent>) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let line = |text: String| {
        if bar.is_hidden() {
            eprintln!("{text}");
        } else {
            bar.println(text);
        }
    };
    while let Some(e) = rx.recv().await {
        match e {
            TuneEvent::TrialStarted { name, run_id, assignments } => {
                line(format!(
                    "  started   {} ({})  run {}",
                    Safe(&name),
                    Safe(&tune::assignments_text(&assignments)),
                    Safe(&run_id)
                ));
            }
            TuneEvent::TrialFinished { name, state, objective, message } => {
                let mut text = format!("  {:<9} {}", state.as_str(), Safe(&name));
                if let Some(v) = objective {
                    text.push_str(&format!("  objective {v}"));
                }
                if let (Some(m), false) = (message, state == TrialState::Succeeded) {
                    text.push_str(&format!(": {}", SafeText(&m)));
                }
                line(text);
            }
            TuneEvent::Status(s) => {
                let best = s.best.as_ref().map(|(n, v)| format!(" · best {} = {v}", Safe(n))).unwrap_or_default();
                let msg = format!(
                    "trials: {} running, {} succeeded, {} failed, {} early-stopped{best}",
                    s.running,
                    s.succeeded,
                    s.failed + s.metrics_unavailable,
                    s.early_stopped
                );
                if bar.is_hidden() {
                    eprintln!("{msg}");
                }
                bar.set_message(msg);
            }
        }
    }
    bar.finish_and_clear();
}
