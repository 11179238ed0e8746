//! `secondrow serve`: the standalone model server. Parses `--model NAME=PATH[:VERSION]` flags, loads
//! every file into a `secondrow_serve::Repository` (the last listed version of a model is its default)
//! and serves KServe V1 / Open Inference Protocol V2 until SIGINT (Ctrl-C) or SIGTERM, then finishes the
//! requests in flight and exits 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Context as _, Failure, Result};
use clap::Args;
use secondrow_serve::{HttpOptions, ModelOptions, Repository};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A model file to serve, `NAME=PATH[:VERSION]` (`.onnx` files run on ONNX, others are SecondRow model
    /// files); repeat it for more models or versions.
    #[arg(long = "model", short = 'm', value_parser = parse_model, required = true)]
    models: Vec<ModelFlag>,
    #[arg(long, env = "SECONDROW_SERVE_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "SECONDROW_SERVE_PORT", default_value_t = 8080)]
    port: u16,
    /// Dynamic batching: rows per batch (0 or 1: off).
    #[arg(long, env = "SECONDROW_SERVE_MAX_BATCH_SIZE", default_value_t = 0)]
    max_batch_size: usize,
    /// Dynamic batching: milliseconds the first request of a batch waits for others.
    #[arg(long, env = "SECONDROW_SERVE_MAX_QUEUE_DELAY_MS", default_value_t = 2.0)]
    max_queue_delay_ms: f64,
    /// Requests predicted at once per model (0: no limit).
    #[arg(long, env = "SECONDROW_SERVE_MAX_CONCURRENCY", default_value_t = 0)]
    max_concurrency: usize,
    /// Largest request body in bytes (larger ones get 413).
    #[arg(long, env = "SECONDROW_SERVE_MAX_BODY_BYTES", default_value_t = secondrow_serve::http::DEFAULT_BODY_LIMIT)]
    max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct ModelFlag {
    name: String,
    path: PathBuf,
    version: Option<String>,
}

fn parse_model(s: &str) -> Result<ModelFlag, String> {
    let (name, rest) = s
        .split_once('=')
        .filter(|(n, r)| !n.is_empty() && !r.is_empty())
        .ok_or_else(|| format!("expected NAME=PATH[:VERSION], got `{s}`"))?;
    let (path, version) = match rest.rsplit_once(':') {
        Some((path, version)) if !path.is_empty() && !version.is_empty() && !version.contains('/') => {
            (path, Some(version.to_owned()))
        }
        _ => (rest, None),
    };
    Ok(ModelFlag { name: name.to_owned(), path: PathBuf::from(path), version })
}

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    let stop = crate::shutdown::requested();
    if !(0.0..=60_000.0).contains(&args.max_queue_delay_ms) {
        return Err(Failure::usage("--max-queue-delay-ms must be between 0 and 60000"));
    }
    let options = ModelOptions {
        max_batch_size: args.max_batch_size,
        max_queue_delay: Duration::from_secs_f64(args.max_queue_delay_ms / 1000.0),
        max_concurrency: args.max_concurrency,
    };
    let repo = Arc::new(Repository::new(options));
    for flag in args.models {
        let r = repo.clone();
        let f = flag.clone();
        let version = tokio::task::spawn_blocking(move || r.load(&f.name, f.version.as_deref(), &f.path, true))
            .await
            .context("loading task failed")?
            .with_context(|| format!("loading model `{}` from {}", flag.name, flag.path.display()))?;
        eprintln!("loaded model `{}` version {} from {}", flag.name, version, flag.path.display());
    }
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    eprintln!(
        "serving {} model(s) on http://{local} (KServe V1, Open Inference Protocol V2, /metrics)",
        repo.model_names().len()
    );
    secondrow_serve::serve(listener, repo, HttpOptions { body_limit: args.max_body_bytes }, stop)
        .await
        .context("serving")?;
    Ok(ExitCode::SUCCESS)
}
