//! `secondrow monitor DEPLOYMENT`: drift of a deployment's logged requests against its training data,
//! and its performance against posted labels, as a table, as plot-friendly JSON, or as a drift report
//! (Markdown and HTML files). With `--server` it asks the server's API; without, it reads the local
//! home's store and prediction log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use secondrow_api::monitoring::status::{self, DEFAULT_WINDOW, MAX_WINDOW};
use secondrow_api::monitoring::PredictionLog;
use secondrow_monitor::drift::{FeatureDrift, DEFAULT_BINS};
use secondrow_monitor::report::{self, ReportInput};
use secondrow_monitor::timeline::MAX_BUCKETS;

use super::client::Client;
use super::error::{Failure, Result};
use super::{Home, Settings};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct MonitorArgs {
    #[command(subcommand)]
    command: Option<MonitorCommand>,
    /// The deployment.
    #[arg(required = true)]
    deployment: Option<String>,
    /// Rows of the newest logged requests to compare with the training data.
    #[arg(long, default_value_t = DEFAULT_WINDOW)]
    window: usize,
    /// Bins of the PSI over numbers.
    #[arg(long, default_value_t = DEFAULT_BINS)]
    bins: usize,
    /// Also split the window into this many equal time spans and give each one's figures (`timeline`
    /// in the JSON: drift and performance over time).
    #[arg(long)]
    buckets: Option<usize>,
    /// PSI above this is reported as drift.
    #[arg(long, default_value_t = 0.2)]
    psi_threshold: f64,
    /// Print JSON: per version, one object per feature (plot-friendly).
    #[arg(long)]
    json: bool,
    /// Write the drift report (`drift-report-VERSION.md` and `.html`) into this folder.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum MonitorCommand {
    /// Monitor rules: a condition on a deployment's figures that starts a pipeline run (needs --server).
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Print the prediction log as CloudEvents, one JSON object a line, in KServe's inference logger layout
    /// (a request and a response event per logged request, `id` = the request id).
    Export {
        deployment: String,
        /// The only format: structured CloudEvents (JSON).
        #[arg(long, default_value = "cloudevents", value_parser = ["cloudevents"])]
        format: String,
        /// Only requests logged at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum RuleCommand {
    /// A rule: when CONDITION holds for a version of the deployment, run PIPELINE_VERSION with the logged
    /// window (a CSV file path) in --window-param, at most once per --cooldown.
    Create {
        #[arg(long)]
        deployment: String,
        /// `psi(FEATURE) > 0.2 or accuracy < 0.8` (per feature: psi, ks, chi_square_p_value,
        /// missing_rate; per version: accuracy, rmse, schema_violation_rate, rows).
        #[arg(long = "when")]
        condition: String,
        /// The pipeline version id to run.
        #[arg(long = "run")]
        pipeline_version: String,
        /// Run parameters, `name=value`.
        #[arg(short = 'p', long = "param", value_parser = parse_pair)]
        params: Vec<(String, String)>,
        /// The run parameter that receives the window's file path.
        #[arg(long, default_value = "source")]
        window_param: String,
        /// Least time between two runs of the rule: `90s`, `10m`, `1h`, `2d` or seconds.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        cooldown: i64,
        /// The experiment of the runs (default: the namespace's `Default`).
        #[arg(long)]
        experiment: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The rules of a deployment and the runs they started.
    List {
        #[arg(long)]
        deployment: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a rule.
    Delete { id: String },
}

fn parse_pair(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected name=value, got `{text}`"))
}

/// Seconds of `90s`, `10m`, `1h`, `2d` or a plain number of seconds.
fn parse_duration(text: &str) -> std::result::Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: i64 = number.parse().map_err(|_| format!("expected a duration such as 90s, 10m, 1h or 2d, got `{text}`"))?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use s, m, h or d)")),
    };
    n.checked_mul(scale).filter(|s| *s >= 0).ok_or_else(|| format!("`{text}` is out of range"))
}

async fn run_rule(remote: Option<(&str, Option<String>)>, command: RuleCommand) -> Result<ExitCode> {
    let Some((server, token)) = remote else {
        return Err(Failure::usage("monitor rules live on a server: give --server"));
    };
    let client = Client::new(server, token)?;
    match command {
        RuleCommand::Create {
            deployment,
            condition,
            pipeline_version,
            params,
            window_param,
            cooldown,
            experiment,
            json,
        } => {
            let parameters: serde_json::Map<String, Value> = params.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let mut body = json!({
                "condition": condition,
                "pipeline_version_id": pipeline_version,
                "parameters": parameters,
                "window_parameter": window_param,
                "cooldown_seconds": cooldown,
            });
            if let Some(e) = experiment {
                body["experiment_id"] = json!(e);
            }
            let rule = client
                .post_json(&format!("/deployments/{deployment}/monitor/rules"), &body)
                .await
                .map_err(Failure::from)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rule)?);
            } else {
                println!("{}", text(&rule["id"]));
            }
        }
        RuleCommand::List { deployment, json } => {
            let doc =
                client.get_json(&format!("/deployments/{deployment}/monitor/rules")).await.map_err(Failure::from)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("{:<36}  {:<10}  {:<24}  CONDITION", "ID", "COOLDOWN", "LAST FIRED");
                for r in doc["rules"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    println!(
                        "{:<36}  {:<10}  {:<24}  {}",
                        text(&r["id"]),
                        format!("{}s", r["cooldown_seconds"]),
                        text(&r["last_fired_at"]),
                        text(&r["condition"])
                    );
                }
                let runs = doc["runs"].as_array().map(Vec::as_slice).unwrap_or_default();
                if !runs.is_empty() {
                    println!("\nRuns started by rules:");
                    for r in runs {
                        println!(
                            "{}  rule {}  version {}",
                            text(&r["run_id"]),
                            text(&r["rule_id"]),
                            text(&r["version"])
                        );
                    }
                }
            }
        }
        RuleCommand::Delete { id } => {
            client.delete(&format!("/monitor/rules/{id}")).await.map_err(Failure::from)?;
            eprintln!("deleted monitor rule {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(settings: &Settings, remote: Option<(&str, Option<String>)>, args: MonitorArgs) -> Result<ExitCode> {
    match args.command {
        Some(MonitorCommand::Rule(command)) => return run_rule(remote, command).await,
        Some(MonitorCommand::Export { deployment, format, since }) => {
            return export(settings, remote, &deployment, &format, since.as_deref()).await
        }
        None => {}
    }
    let deployment = args.deployment.clone().ok_or_else(|| Failure::usage("give a deployment"))?;
    if args.window == 0 || args.window > MAX_WINDOW {
        return Err(Failure::usage(format!("--window must be between 1 and {MAX_WINDOW}, got {}", args.window)));
    }
    if !(2..=1000).contains(&args.bins) {
        return Err(Failure::usage(format!("--bins must be between 2 and 1000, got {}", args.bins)));
    }
    if let Some(b) = args.buckets.filter(|b| !(1..=MAX_BUCKETS).contains(b)) {
        return Err(Failure::usage(format!("--buckets must be between 1 and {MAX_BUCKETS}, got {b}")));
    }
    let doc = match remote {
        Some((server, token)) => {
            let client = Client::new(server, token)?;
            let mut query = vec![("window", args.window.to_string()), ("bins", args.bins.to_string())];
            if let Some(b) = args.buckets {
                query.push(("buckets", b.to_string()));
            }
            client.get_json_query(&format!("/deployments/{deployment}/monitor"), &query).await.map_err(Failure::from)?
        }
        None => {
            let home = Home::resolve(settings)?;
            let store = home.store().await?;
            let d = store.get_deployment(&deployment).await?;
            let (log, _queue) = PredictionLog::new(home.root.join("work").join("monitoring"), 1);
            let versions = status::status_of(&store, &log, &d, args.window, args.bins, args.buckets).await?;
            json!({"deployment": d.name, "log_sample": d.log_sample, "window": args.window, "versions": versions})
        }
    };
    if let Some(dir) = &args.report {
        write_reports(dir, &doc, args.psi_threshold)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_table(&doc, args.psi_threshold);
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(
    settings: &Settings,
    remote: Option<(&str, Option<String>)>,
    deployment: &str,
    format: &str,
    since: Option<&str>,
) -> Result<ExitCode> {
    let events = match remote {
        Some((server, token)) => {
            let client = Client::new(server, token)?;
            let mut query = vec![("format", format.to_owned())];
            if let Some(t) = since {
                query.push(("since", t.to_owned()));
            }
            let doc = client
                .get_json_query(&format!("/deployments/{deployment}/monitor/events"), &query)
                .await
                .map_err(Failure::from)?;
            doc["events"].as_array().cloned().unwrap_or_default()
        }
        None => {
            let since = match since {
                Some(t) => Some(
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map_err(|e| Failure::usage(format!("--since: `{t}` is not an RFC 3339 time: {e}")))?
                        .timestamp_millis(),
                ),
                None => None,
            };
            let home = Home::resolve(settings)?;
            let store = home.store().await?;
            let d = store.get_deployment(deployment).await?;
            let (log, _queue) = PredictionLog::new(home.root.join("work").join("monitoring"), 1);
            secondrow_api::monitoring::export::events_of(&log, &d, since).await?
        }
    };
    let mut out = std::io::stdout().lock();
    for e in events {
        use std::io::Write as _;
        writeln!(out, "{e}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn text(v: &Value) -> String {
    v.as_str().map(|s| crate::term::Safe(s).to_string()).unwrap_or_else(|| "-".to_owned())
}

fn number(v: &Value) -> String {
    v.as_f64().map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".to_owned())
}

fn print_table(doc: &Value, threshold: f64) {
    let versions = doc["versions"].as_array().map(Vec::as_slice).unwrap_or_default();
    if versions.is_empty() {
        println!(
            "No logged requests for deployment {} (log some with `secondrow deploy update {} --log-sample 0.1`).",
            text(&doc["deployment"]),
            text(&doc["deployment"])
        );
        return;
    }
    for v in versions {
        println!("Deployment {} version {}: {} rows", text(&doc["deployment"]), text(&v["version"]), v["rows"]);
        println!("Reference:  {}", text(&v["reference"]));
        println!("Schema violation rate: {}", number(&v["schema_violation_rate"]));
        match v["performance"]["metric"].as_str() {
            Some(metric) => {
                println!(
                    "{metric}: {} over {} labelled rows",
                    number(&v["performance"]["value"]),
                    v["performance"]["labelled"]
                )
            }
            None => println!("Performance: no labelled rows (post labels to /deployments/NAME/feedback)"),
        }
        println!();
        println!(
            "{:<24}  {:<6}  {:>8}  {:>8}  {:>10}  {:>8}  STATUS",
            "FEATURE", "TYPE", "PSI", "KS/CHI2", "P-VALUE", "MISSING"
        );
        for f in v["features"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let stat = if f["ks"].is_null() { &f["chi_square"] } else { &f["ks"] };
            let p = if f["ks_p_value"].is_null() { &f["chi_square_p_value"] } else { &f["ks_p_value"] };
            let drifted = f["psi"].as_f64().is_some_and(|x| x > threshold);
            println!(
                "{:<24}  {:<6}  {:>8}  {:>8}  {:>10}  {:>8}  {}",
                text(&f["feature"]),
                text(&f["kind"]),
                number(&f["psi"]),
                number(stat),
                number(p),
                number(&f["missing_rate"]),
                if drifted { "DRIFT" } else { "ok" }
            );
        }
        println!();
    }
}

fn write_reports(dir: &std::path::Path, doc: &Value, threshold: f64) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let deployment = doc["deployment"].as_str().unwrap_or_default();
    for v in doc["versions"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let features: Vec<FeatureDrift> =
            v["features"].as_array().map(Vec::as_slice).unwrap_or_default().iter().filter_map(feature_of).collect();
        let version = v["version"].as_str().unwrap_or_default();
        let input = ReportInput {
            deployment,
            version,
            reference: v["reference"].as_str().unwrap_or("none found"),
            rows: v["rows"].as_u64().unwrap_or(0) as usize,
            features: &features,
            schema_violation_rate: v["schema_violation_rate"].as_f64().unwrap_or(0.0),
            psi_threshold: threshold,
        };
        // Version names are plain file names (letters, digits, `.`, `_`, `-`).
        let stem = dir.join(format!("drift-report-{}", version.replace(['/', '\\'], "_")));
        std::fs::write(stem.with_extension("md"), report::markdown(&input))?;
        std::fs::write(stem.with_extension("html"), report::html(&input))?;
        eprintln!("wrote {}.md and .html", stem.display());
    }
    Ok(())
}

fn feature_of(f: &Value) -> Option<FeatureDrift> {
    Some(FeatureDrift {
        feature: f["feature"].as_str()?.to_owned(),
        kind: if f["kind"] == "string" { "string" } else { "number" },
        count: f["count"].as_u64().unwrap_or(0) as usize,
        psi: f["psi"].as_f64()?,
        ks: f["ks"].as_f64(),
        ks_p_value: f["ks_p_value"].as_f64(),
        chi_square: f["chi_square"].as_f64(),
        chi_square_p_value: f["chi_square_p_value"].as_f64(),
        missing_rate: f["missing_rate"].as_f64().unwrap_or(0.0),
        reference_missing_rate: f["reference_missing_rate"].as_f64().unwrap_or(0.0),
    })
}
