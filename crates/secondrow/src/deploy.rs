//! `secondrow deploy`: model deployments served by `secondrow server` on its serving port, and the
//! serving listener itself ([`ServingArgs`], [`start_serving`]).
//!
//! Without `--server` the commands change the local store (after checking that the model file loads);
//! a running server picks the change up within its poll interval. With `--server` they go through the
//! server's REST API (`/apis/v2beta1/deployments`), which loads the file before anything is recorded.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};

use secondrow_api::AppState;
use secondrow_serve::HttpOptions;
use secondrow_store::deployments::{next_version, Canary, ModelSource, NewDeploymentVersion, TrafficUpdate};
use secondrow_store::Store;

use super::client::Client;
use super::error::{Context as _, Failure, Result};
use super::{Home, Settings};

/// Where `secondrow server` serves the deployed models (KServe V1 / Open Inference Protocol V2).
#[derive(Args, Debug)]
pub struct ServingArgs {
    /// Address of the model serving listener.
    #[arg(long, env = "SECONDROW_SERVE_HOST", default_value = "127.0.0.1")]
    serve_host: String,
    /// Port of the model serving listener (0: any free port; the chosen one is printed). Default 8080;
    /// when the default is taken the server runs without serving models (a warning says so).
    #[arg(long, env = "SECONDROW_SERVE_PORT")]
    serve_port: Option<u16>,
}

/// Port of the serving listener when `--serve-port` is not given.
pub const DEFAULT_SERVE_PORT: u16 = 8080;

/// Loads every stored deployment, binds the serving listener, serves the repository on it and keeps it
/// in step with the store. Returns the listener's base URL, or a note saying why models are not served.
pub async fn start_serving(
    state: &AppState,
    args: &ServingArgs,
    listener_args: &super::serve::ListenerArgs,
) -> Result<String> {
    // The prediction log of deployments with `--log-sample`, under the work folder.
    let (log, queue) = secondrow_api::monitoring::PredictionLog::new(
        state.engine.config().work_dir.join("monitoring"),
        secondrow_api::monitoring::QUEUE_CAPACITY,
    );
    state.deployments.install_log(log.clone());
    tokio::spawn(log.write_forever(queue));
    state.deployments.sync(state.store()).await.context("loading deployments")?;
    let port = args.serve_port.unwrap_or(DEFAULT_SERVE_PORT);
    let listener = match tokio::net::TcpListener::bind((args.serve_host.as_str(), port)).await {
        Ok(listener) => listener,
        Err(e) if args.serve_port.is_none() => {
            eprintln!(
                "warning: deployed models are not served: cannot bind {}:{port}: {e} (choose one with --serve-port)",
                args.serve_host
            );
            return Ok("(not served: the serving port is taken)".to_owned());
        }
        Err(e) => return Err(e).context(format!("binding the serving port {}:{port}", args.serve_host)),
    };
    let url = format!("http://{}", listener.local_addr()?);
    state.deployments.set_url(url.clone());
    let repo = state.deployments.repository();
    // The API's access control, applied to the models (see `ServingAccess`).
    let options = HttpOptions {
        auth: Some(std::sync::Arc::new(secondrow_api::deployments::ServingAccess::new(state.clone()))),
        connections: listener_args.limits(),
        ..HttpOptions::default()
    };
    // Ends with the process: the API listener owns the graceful shutdown.
    tokio::spawn(async move {
        if let Err(e) = secondrow_serve::serve(listener, repo, options, std::future::pending()).await {
            tracing::error!(error = %e, "the model serving listener stopped");
        }
    });
    tokio::spawn(secondrow_api::deployments::watch(state.clone()));
    tokio::spawn(secondrow_api::monitoring::watch(state.clone()));
    Ok(url)
}

#[derive(Subcommand)]
pub enum DeployCommand {
    /// Deploy a model file as a new version of NAME (creating the deployment): from an artifact, a run's
    /// task output or a path.
    #[command(group(ArgGroup::new("source").required(true).args(["artifact_id", "run", "path", "model"])))]
    Create {
        name: String,
        /// A `system.Model` artifact id.
        #[arg(long)]
        artifact_id: Option<String>,
        /// A run id (or unique prefix); with --task and --output.
        #[arg(long, requires_all = ["task", "output"])]
        run: Option<String>,
        /// The task (path, key or display name) of --run.
        #[arg(long, requires = "run")]
        task: Option<String>,
        /// The task's output artifact name (for example `model`).
        #[arg(long, requires = "run")]
        output: Option<String>,
        /// A model file (`.onnx` or a SecondRow model file), or its `s3://bucket/key` in the artifact store.
        #[arg(long)]
        path: Option<PathBuf>,
        /// A registered model (`secondrow models`); --version names its version, which is also the
        /// deployment version's name.
        #[arg(long, requires = "version")]
        model: Option<String>,
        /// Version name (default: the next number); with --model, the registered model's version.
        #[arg(long)]
        version: Option<String>,
        /// The namespace of a new deployment (default: the token's namespace; none for the admin and the
        /// local store). A new version of an existing deployment stays in its namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Keep the current default version (the new one serves only when pinned or made the canary).
        #[arg(long)]
        no_default: bool,
        /// Log this share of the deployment's requests and answers for monitoring (0-1; 0: off).
        #[arg(long)]
        log_sample: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Every deployment (the token's namespace's, with a namespace token).
    List {
        /// Only this namespace's deployments.
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One deployment: versions, default, canary and (with --server) what is being served.
    Get {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change the default version or the canary.
    Update {
        name: String,
        #[arg(long)]
        default_version: Option<String>,
        /// A version that gets --percent of the unpinned requests.
        #[arg(long, requires = "percent", conflicts_with = "no_canary")]
        canary: Option<String>,
        #[arg(long, requires = "canary", value_parser = clap::value_parser!(u32).range(0..=100))]
        percent: Option<u32>,
        /// Remove the canary.
        #[arg(long)]
        no_canary: bool,
        /// Log this share of the requests and answers for monitoring (0-1; 0 stops logging).
        #[arg(long)]
        log_sample: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a deployment, or one of its versions; with --kubeconfig (or --kube-namespace) also its
    /// Deployment and Service in the cluster (`deploy apply`), first.
    Delete {
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Print a Deployment and a Service running `secondrow serve` with NAME's versions, as YAML for
    /// `kubectl apply -f -`: versions in S3 are downloaded by the Pods (credentials from --s3-credentials-secret), local
    /// files are read from the server's data volume (--data-claim, mounted read-only).
    Manifest {
        name: String,
        #[command(flatten)]
        manifest: ManifestArgs,
    },
    /// Apply NAME's Deployment and Service (as `deploy manifest` prints them) to a cluster with server-side
    /// apply; `deploy delete NAME --kubeconfig …` removes them.
    Apply {
        name: String,
        #[command(flatten)]
        manifest: ManifestArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// How `deploy manifest` and `deploy apply` build the objects.
#[derive(Args, Debug)]
pub struct ManifestArgs {
    #[arg(long, default_value = "secondrow:latest")]
    image: String,
    /// The Secret with the Pods' S3 credentials (keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; optional
    /// AWS_REGION, AWS_SESSION_TOKEN).
    #[arg(long = "s3-credentials-secret", default_value = "secondrow-s3")]
    s3_secret: String,
    /// The S3 endpoint as the Pods reach it (default: --s3-endpoint).
    #[arg(long)]
    pod_s3_endpoint: Option<String>,
    /// The PersistentVolumeClaim holding the server's home (deploy/kubernetes names it secondrow-data),
    /// for versions that are local files; without it such a version is refused.
    #[arg(long)]
    data_claim: Option<String>,
    /// Where that claim is mounted in the server: the model paths start there.
    #[arg(long, default_value = "/var/lib/secondrow")]
    data_path: String,
    #[arg(long, default_value_t = 1)]
    replicas: u32,
    /// CPU requested per Pod.
    #[arg(long, default_value = "250m")]
    cpu: String,
    /// Memory requested per Pod (also its limit).
    #[arg(long, default_value = "512Mi")]
    memory: String,
}

/// The cluster `deploy apply` and `deploy delete --kubeconfig` reach (flags only, no variables: a plain
/// `deploy delete` never touches a cluster).
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// The kubeconfig file (its current context); default `KUBECONFIG`, `~/.kube/config`, then in-cluster.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The namespace of the objects (default: the kubeconfig context's).
    #[arg(long)]
    kube_namespace: Option<String>,
}

/// The Deployment and Service of deployment document `d`.
fn manifest_objects(settings: &Settings, d: &Value, m: &ManifestArgs) -> Result<Vec<Value>> {
    use crate::serve_manifest::{manifests, ManifestOptions};
    let opts = ManifestOptions {
        image: &m.image,
        data_claim: m.data_claim.as_deref(),
        data_path: &m.data_path,
        replicas: m.replicas,
        s3_endpoint: m.pod_s3_endpoint.as_deref().or(settings.s3_endpoint.as_deref()),
        s3_secret: &m.s3_secret,
        cpu: &m.cpu,
        memory: &m.memory,
    };
    manifests(d, &opts)
}

/// Runs a deploy command; `remote` is `--server` and `--token` when given.
pub async fn run(
    settings: &Settings,
    remote: Option<(&str, Option<String>)>,
    command: DeployCommand,
) -> Result<ExitCode> {
    let target = match remote {
        Some((server, token)) => Target::Remote(Client::new(server, token)?),
        None => {
            let home = Home::resolve(settings)?;
            Target::Local(home.store().await?, super::serve::model_cache(&home))
        }
    };
    match command {
        DeployCommand::Create {
            name, model: Some(model), version, namespace, no_default, log_sample, json, ..
        } => {
            check_log_sample(log_sample)?;
            let version = version.ok_or_else(|| Failure::usage("--model needs --version"))?;
            let registry = json!({"registered_model": model, "model_version": version});
            let doc = match &target {
                Target::Remote(c) => {
                    let mut body = json!({"name": name, "source": registry, "make_default": !no_default});
                    if let Some(ns) = &namespace {
                        body["namespace"] = json!(ns);
                    }
                    if let Some(share) = log_sample {
                        body["log_sample"] = json!(share);
                    }
                    c.post_json("/deployments", &body).await.map_err(Failure::from)?
                }
                Target::Local(store, _) => {
                    let found = secondrow_api::registry::deployment_source(
                        store,
                        &registry,
                        namespace.as_deref().unwrap_or(""),
                    )
                    .await?
                    .ok_or_else(|| Failure::usage("not a registry source"))?;
                    let doc = target
                        .create(
                            &name,
                            &found.source,
                            Some(&version),
                            namespace.as_deref(),
                            !no_default,
                            Some(found.version_id),
                        )
                        .await?;
                    match log_sample {
                        Some(share) => target.set_log_sample(&name, share).await?,
                        None => doc,
                    }
                }
            };
            print_deployment(&doc, json)?;
        }
        DeployCommand::Create {
            name,
            artifact_id,
            run,
            task,
            output,
            path,
            version,
            namespace,
            no_default,
            log_sample,
            json,
            model: None,
        } => {
            check_log_sample(log_sample)?;
            let source = match (artifact_id, run, task, output, path) {
                (Some(artifact_id), ..) => ModelSource::Artifact { artifact_id },
                (None, Some(run_id), Some(task), Some(output), _) => ModelSource::TaskOutput { run_id, task, output },
                (.., Some(path)) => {
                    let given = path.to_string_lossy();
                    if secondrow_store::model_cache::is_remote_model(&given) {
                        ModelSource::Path { path: given.into_owned() }
                    } else {
                        ModelSource::Path { path: std::path::absolute(&path)?.display().to_string() }
                    }
                }
                _ => return Err(Failure::usage("give --artifact-id, --run with --task and --output, or --path")),
            };
            let mut doc =
                target.create(&name, &source, version.as_deref(), namespace.as_deref(), !no_default, None).await?;
            if let Some(share) = log_sample {
                doc = target.set_log_sample(&name, share).await?;
            }
            print_deployment(&doc, json)?;
        }
        DeployCommand::List { namespace, json } => {
            let docs = target.list(namespace.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&docs)?);
            } else {
                println!(
                    "{:<24}  {:<16}  {:<8}  {:<12}  {:<9}  VERSIONS",
                    "NAME", "NAMESPACE", "DEFAULT", "CANARY", "STATE"
                );
                for d in &docs {
                    println!(
                        "{:<24}  {:<16}  {:<8}  {:<12}  {:<9}  {}",
                        text(&d["name"]),
                        text(&d["namespace"]),
                        text(&d["default_version"]),
                        canary(d),
                        state(d),
                        versions(d)
                    );
                }
            }
        }
        DeployCommand::Get { name, json } => print_deployment(&target.get(&name).await?, json)?,
        DeployCommand::Update { name, default_version, canary, percent, no_canary, log_sample, json } => {
            check_log_sample(log_sample)?;
            let canary = match (canary, percent, no_canary) {
                (Some(version), Some(percent), _) => Some(Some(Canary { version, percent })),
                (_, _, true) => Some(None),
                _ => None,
            };
            if default_version.is_none() && canary.is_none() {
                let Some(share) = log_sample else {
                    return Err(Failure::usage(
                        "nothing to change: give --default-version, --canary with --percent, --no-canary or --log-sample",
                    ));
                };
                print_deployment(&target.set_log_sample(&name, share).await?, json)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut doc = target.update(&name, &TrafficUpdate { default_version, canary }).await?;
            if let Some(share) = log_sample {
                doc = target.set_log_sample(&name, share).await?;
            }
            print_deployment(&doc, json)?;
        }
        DeployCommand::Manifest { name, manifest } => {
            let objects = manifest_objects(settings, &target.get(&name).await?, &manifest)?;
            print!("{}", crate::serve_manifest::to_yaml(&objects)?);
        }
        DeployCommand::Apply { name, manifest, cluster } => {
            let objects = manifest_objects(settings, &target.get(&name).await?, &manifest)?;
            let kube =
                crate::serve_apply::connect(cluster.kubeconfig.as_deref(), cluster.kube_namespace.as_deref()).await?;
            for object in kube.apply(&objects).await? {
                eprintln!("{object} applied (namespace {})", kube.namespace());
            }
        }
        DeployCommand::Delete { name, version, cluster } => {
            // The cluster's objects go first: if that fails, the deployment is still recorded.
            if cluster.kubeconfig.is_some() || cluster.kube_namespace.is_some() {
                if version.is_some() {
                    return Err(Failure::usage(
                        "--kubeconfig removes the whole deployment's objects; to drop one version, delete it \
                         without --kubeconfig and run `deploy apply` again",
                    ));
                }
                let object = crate::serve_manifest::object_name(&name)?;
                let kube =
                    crate::serve_apply::connect(cluster.kubeconfig.as_deref(), cluster.kube_namespace.as_deref())
                        .await?;
                let removed = kube.delete(&object).await?;
                if removed.is_empty() {
                    eprintln!("no {object} objects in namespace {}", kube.namespace());
                }
                for object in removed {
                    eprintln!("{object} deleted (namespace {})", kube.namespace());
                }
            }
            target.delete(&name, version.as_deref()).await?;
            match version {
                Some(v) => eprintln!("deleted version {v} of deployment {name}"),
                None => eprintln!("deleted deployment {name}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The local store (and the model cache that checks `s3://` models), or a server's REST API.
enum Target {
    Local(Store, secondrow_store::model_cache::ModelCache),
    Remote(Client),
}

impl Target {
    async fn create(
        &self,
        name: &str,
        source: &ModelSource,
        version: Option<&str>,
        namespace: Option<&str>,
        make_default: bool,
        model_version_id: Option<i64>,
    ) -> Result<Value> {
        match self {
            Target::Remote(c) => {
                let mut body =
                    json!({"name": name, "source": source.to_json(), "version": version, "make_default": make_default});
                if let Some(ns) = namespace {
                    body["namespace"] = json!(ns);
                }
                c.post_json("/deployments", &body).await.map_err(Failure::from)
            }
            Target::Local(store, cache) => {
                let existing = store.find_deployment(name).await?;
                // A new version stays in its deployment's namespace unless another one is asked for.
                let namespace = namespace
                    .map(str::to_owned)
                    .or_else(|| existing.as_ref().map(|d| d.namespace.clone()))
                    .unwrap_or_default();
                let version = version.map(str::to_owned).unwrap_or_else(|| next_version(existing.as_ref()));
                let resolved = store.resolve_model_source(source).await?;
                // What the server will do: refuse a file it cannot load before anything is recorded (a
                // model in an object store is fetched into the model cache the server also uses).
                let recorded = resolved.path.to_string_lossy().into_owned();
                let path = if secondrow_store::model_cache::is_remote_model(&recorded) {
                    cache.fetch(&recorded).await.with_context(|| format!("fetching {recorded}"))?.path
                } else {
                    resolved.path.clone()
                };
                tokio::task::spawn_blocking(move || secondrow_serve::runtime::load(&path).map(|_| ())).await?.map_err(
                    |e| Failure::usage(format!("{} is not a model this server can load: {e}", resolved.path.display())),
                )?;
                let new = NewDeploymentVersion {
                    name,
                    namespace: &namespace,
                    version: &version,
                    resolved: &resolved,
                    make_default,
                    model_version_id,
                };
                Ok(serde_json::to_value(store.add_deployment_version(&new).await?)?)
            }
        }
    }

    async fn list(&self, namespace: Option<&str>) -> Result<Vec<Value>> {
        match self {
            Target::Remote(c) => {
                let path = match namespace {
                    Some(ns) => {
                        format!(
                            "/deployments?{}",
                            url::form_urlencoded::Serializer::new(String::new()).append_pair("namespace", ns).finish()
                        )
                    }
                    None => "/deployments".to_owned(),
                };
                let doc = c.get_json(&path).await.map_err(Failure::from)?;
                Ok(doc["deployments"].as_array().cloned().unwrap_or_default())
            }
            Target::Local(store, _) => {
                let records = store.list_deployments(namespace).await?;
                records.iter().map(|r| Ok(serde_json::to_value(r)?)).collect()
            }
        }
    }

    async fn get(&self, name: &str) -> Result<Value> {
        match self {
            Target::Remote(c) => c.get_json(&format!("/deployments/{name}")).await.map_err(Failure::from),
            Target::Local(store, _) => Ok(serde_json::to_value(store.get_deployment(name).await?)?),
        }
    }

    async fn update(&self, name: &str, update: &TrafficUpdate) -> Result<Value> {
        match self {
            Target::Remote(c) => {
                let mut body = json!({});
                if let Some(v) = &update.default_version {
                    body["default_version"] = json!(v);
                }
                if let Some(canary) = &update.canary {
                    body["canary"] = json!(canary);
                }
                c.patch_json(&format!("/deployments/{name}"), &body).await.map_err(Failure::from)
            }
            Target::Local(store, _) => Ok(serde_json::to_value(store.update_deployment_traffic(name, update).await?)?),
        }
    }

    /// Sets the share of requests logged for monitoring (0: off).
    async fn set_log_sample(&self, name: &str, share: f64) -> Result<Value> {
        match self {
            Target::Remote(c) => c
                .patch_json(&format!("/deployments/{name}"), &json!({"log_sample": share}))
                .await
                .map_err(Failure::from),
            Target::Local(store, _) => {
                Ok(serde_json::to_value(store.set_deployment_log_sample(name, Some(share)).await?)?)
            }
        }
    }

    async fn delete(&self, name: &str, version: Option<&str>) -> Result<()> {
        match self {
            Target::Remote(c) => {
                let path = match version {
                    Some(v) => format!("/deployments/{name}/versions/{v}"),
                    None => format!("/deployments/{name}"),
                };
                c.delete(&path).await.map_err(Failure::from)?;
            }
            Target::Local(store, _) => {
                store.delete_deployment(name, version).await?;
            }
        }
        Ok(())
    }
}

/// `--log-sample` must be a share between 0 and 1 (checked before anything is changed).
fn check_log_sample(share: Option<f64>) -> Result<()> {
    secondrow_store::deployments::check_log_sample(share)
        .map_err(|e| Failure::usage(e.to_string().replacen("log_sample", "--log-sample", 1)))?;
    Ok(())
}

fn print_deployment(d: &Value, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    println!("Deployment: {}", text(&d["name"]));
    if d["namespace"].as_str().is_some_and(|ns| !ns.is_empty()) {
        println!("Namespace:  {}", text(&d["namespace"]));
    }
    println!("Default:    {}", text(&d["default_version"]));
    println!("Canary:     {}", canary(d));
    if let Some(share) = d["log_sample"].as_f64() {
        println!("Logging:    {:.0}% of requests", share * 100.0);
    }
    println!("State:      {}", state(d));
    if let Some(url) = d["url"].as_str() {
        println!("URL:        {}", crate::term::Safe(url));
    }
    println!();
    println!("{:<10}  {:<7}  {:<60}  SOURCE", "VERSION", "LOADED", "PATH");
    for v in d["versions"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let loaded = match &v["loaded"] {
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
            _ => "-".to_owned(),
        };
        let source = crate::term::Safe(&v["source"].to_string()).to_string();
        println!("{:<10}  {:<7}  {:<60}  {source}", text(&v["version"]), loaded, text(&v["path"]));
        if let Some(error) = v["error"].as_str() {
            println!("{:<10}  error: {}", "", crate::term::SafeText(error));
        }
    }
    Ok(())
}

/// A string field for the terminal (control characters escaped), `-` when absent.
fn text(v: &Value) -> String {
    v.as_str().map(|s| crate::term::Safe(s).to_string()).unwrap_or_else(|| "-".to_owned())
}

fn canary(d: &Value) -> String {
    match (d["canary"]["version"].as_str(), d["canary"]["percent"].as_u64()) {
        (Some(v), Some(p)) => format!("{v} ({p}%)"),
        _ => "-".to_owned(),
    }
}

/// The server's view; the local store cannot know what a server is serving.
fn state(d: &Value) -> String {
    d["state"].as_str().unwrap_or("-").to_owned()
}

fn versions(d: &Value) -> String {
    let names: Vec<String> =
        d["versions"].as_array().map(Vec::as_slice).unwrap_or_default().iter().map(|v| text(&v["version"])).collect();
    names.join(",")
}
