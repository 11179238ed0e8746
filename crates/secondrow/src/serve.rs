//! `secondrow serve`: the standalone model server. Parses `--model NAME=PATH[:VERSION]` flags, loads
//! every file into a `secondrow_serve::Repository` (the last listed version of a model is its default;
//! `--canary` gives another version a share) and serves KServe V1 / Open Inference Protocol V2 until
//! SIGINT (Ctrl-C) or SIGTERM, then finishes the requests in flight and exits 0.
//!
//! A PATH may be `s3://bucket/key`: the file is downloaded into the home folder's model cache (keyed by
//! URI, ETag and size, so a restart reuses it), with the endpoint of `--s3-endpoint` and the `AWS_*`
//! credentials, as the server reaches its artifact root. Every model is loaded before the port is bound:
//! one that cannot be fetched or loaded fails the command and nothing is served.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Context as _, Failure, Result};
use clap::Args;
use secondrow_serve::http::{ConnectionLimits, SingleToken};
use secondrow_serve::{HttpOptions, ModelOptions, Repository};
use secondrow_store::model_cache::{is_remote_model, ModelCache};

/// Limits of a listening port (`serve`, and both ports of `server`).
#[derive(Args, Debug, Clone)]
pub struct ListenerArgs {
    /// Milliseconds a client has to send a request head (and the longest idle time between requests
    /// on a kept-alive connection); slower connections are closed.
    #[arg(long, env = "SECONDROW_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    header_read_timeout_ms: u64,
    /// Connections served at once per port; more wait until one closes.
    #[arg(long, env = "SECONDROW_MAX_CONNECTIONS", default_value_t = secondrow_serve::http::listen::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    max_connections: usize,
}

impl ListenerArgs {
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            max_connections: self.max_connections,
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A model file to serve, `NAME=PATH[:VERSION]` (`.onnx` files run on ONNX, others are SecondRow model
    /// files); PATH may be `s3://bucket/key` (downloaded into the model cache). Repeat it for more models or
    /// versions; the last version of a model is its default.
    #[arg(long = "model", short = 'm', value_parser = parse_model, required = true)]
    models: Vec<ModelFlag>,
    /// A canary: `NAME=VERSION:PERCENT` sends PERCENT of NAME's unpinned requests to VERSION.
    #[arg(long = "canary", value_parser = parse_canary)]
    canaries: Vec<CanaryFlag>,
    /// Where models from `s3://` are downloaded (default: `model-cache/` in the home folder).
    #[arg(long, env = "SECONDROW_MODEL_CACHE")]
    model_cache: Option<PathBuf>,
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
    /// Requests predicted at once per model (0: no limit; default: one per core).
    #[arg(long, env = "SECONDROW_SERVE_MAX_CONCURRENCY")]
    max_concurrency: Option<usize>,
    /// Largest request body in bytes (larger ones get 413).
    #[arg(long, env = "SECONDROW_SERVE_MAX_BODY_BYTES", default_value_t = secondrow_serve::http::DEFAULT_BODY_LIMIT)]
    max_body_bytes: usize,
    /// Bytes of request bodies held at once, all models together (at least --max-body-bytes); further
    /// requests wait for room, then get 503.
    #[arg(long, env = "SECONDROW_SERVE_BODY_BUDGET_BYTES", default_value_t = secondrow_serve::http::DEFAULT_BODY_BUDGET)]
    body_budget_bytes: usize,
    /// A file holding the bearer token every call but the health probes must present (`Authorization:
    /// Bearer <token>`, at least 16 characters); the token can also come from the `SECONDROW_SERVE_AUTH_TOKEN`
    /// variable, never from the command line (where every local user sees it).
    #[arg(long, env = "SECONDROW_SERVE_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// Refused: a token on the command line is visible to every process (`/proc/PID/cmdline`).
    #[arg(long, hide = true)]
    auth_token: Option<String>,
    #[command(flatten)]
    listener: ListenerArgs,
}

#[derive(Debug, Clone)]
pub struct ModelFlag {
    name: String,
    path: PathBuf,
    version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CanaryFlag {
    name: String,
    version: String,
    percent: u32,
}

fn parse_canary(s: &str) -> Result<CanaryFlag, String> {
    let bad = || format!("expected NAME=VERSION:PERCENT (PERCENT 0-100), got `{s}`");
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let (version, percent) = rest.rsplit_once(':').ok_or_else(bad)?;
    let percent: u32 = percent.parse().ok().filter(|p| *p <= 100).ok_or_else(bad)?;
    if name.is_empty() || version.is_empty() {
        return Err(bad());
    }
    Ok(CanaryFlag { name: name.to_owned(), version: version.to_owned(), percent })
}

/// The model cache of `home` (`serve` and the server's deployments), reaching S3 as the artifact root does.
pub(crate) fn model_cache(home: &super::Home) -> ModelCache {
    ModelCache::new(home.root.join("model-cache"), s3_options(home.s3_endpoint.clone()))
}

/// How the model cache reaches S3: `--s3-endpoint`, the rest from the `AWS_*` variables.
fn s3_options(endpoint: Option<String>) -> secondrow_store::S3Options {
    secondrow_store::S3Options { endpoint, ..Default::default() }
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

pub async fn run(settings: &super::Settings, args: ServeArgs) -> Result<ExitCode> {
    let stop = crate::shutdown::requested();
    if !(0.0..=60_000.0).contains(&args.max_queue_delay_ms) {
        return Err(Failure::usage("--max-queue-delay-ms must be between 0 and 60000"));
    }
    let options = ModelOptions {
        max_batch_size: args.max_batch_size,
        max_queue_delay: Duration::from_secs_f64(args.max_queue_delay_ms / 1000.0),
        max_concurrency: args.max_concurrency.unwrap_or_else(secondrow_serve::repository::default_max_concurrency),
    };
    let token = super::server::token_from(
        args.auth_token.is_some(),
        args.auth_token_file.as_deref(),
        "SECONDROW_SERVE_AUTH_TOKEN",
    )?;
    let auth = token.map(|t| Arc::new(SingleToken::new(&t)) as Arc<dyn secondrow_serve::http::Authorizer>);
    let repo = Arc::new(Repository::new(options));
    // Models in S3 go through the model cache (made only when one is listed).
    let cache = if args.models.iter().any(|m| is_remote_model(&m.path.to_string_lossy())) {
        let dir = match &args.model_cache {
            Some(dir) => dir.clone(),
            None => super::Home::resolve(settings)?.root.join("model-cache"),
        };
        Some(ModelCache::new(dir, s3_options(settings.s3_endpoint.clone())))
    } else {
        None
    };
    for flag in args.models {
        let source = flag.path.to_string_lossy().into_owned();
        let (local, note) = match &cache {
            Some(c) if is_remote_model(&source) => {
                let got =
                    c.fetch(&source).await.with_context(|| format!("loading model `{}` from {source}", flag.name))?;
                let how = if got.downloaded { "downloaded" } else { "cached" };
                (got.path.clone(), format!(" ({how}: {} bytes at {})", got.size, got.path.display()))
            }
            _ => (flag.path.clone(), String::new()),
        };
        let r = repo.clone();
        let f = flag.clone();
        let version = tokio::task::spawn_blocking(move || r.load(&f.name, f.version.as_deref(), &local, true))
            .await
            .context("loading task failed")?
            .with_context(|| format!("loading model `{}` from {source}", flag.name))?;
        eprintln!("loaded model `{}` version {version} from {source}{note}", flag.name);
    }
    for c in &args.canaries {
        repo.set_traffic(&c.name, None, Some(Some((c.version.as_str(), c.percent))))
            .with_context(|| format!("--canary {}={}:{}", c.name, c.version, c.percent))?;
        eprintln!("canary: {}% of `{}` goes to version {}", c.percent, c.name, c.version);
    }
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    eprintln!(
        "serving {} model(s) on http://{local} (KServe V1, Open Inference Protocol V2, /metrics); access control {}",
        repo.model_names().len(),
        if auth.is_some() {
            "on"
        } else {
            "off (no --auth-token-file: anyone reaching this port may load and unload models)"
        }
    );
    let options = HttpOptions {
        body_limit: args.max_body_bytes,
        body_budget: args.body_budget_bytes,
        auth,
        connections: args.listener.limits(),
    };
    secondrow_serve::serve(listener, repo, options, stop).await.context("serving")?;
    Ok(ExitCode::SUCCESS)
}
