//! `secondrow server`: the Kubeflow Pipelines v2beta1 API (kfp.Client works against it), with runs
//! executing in this process, recurring runs scheduled, and unfinished runs resumed on start.

use std::process::ExitCode;

use crate::error::{Context as _, Failure, Result};
use clap::Args;

use super::{ExecArgs, Home, Settings};

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8888)]
    port: u16,
    /// Admin bearer token (every namespace); when set, or once `secondrow tokens create` made a token,
    /// every API call but healthz, openapi.json and /metrics needs `Authorization: Bearer <token>`.
    #[arg(long, env = "SECONDROW_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    #[command(flatten)]
    exec: ExecArgs,
    #[command(flatten)]
    serving: super::deploy::ServingArgs,
    #[command(flatten)]
    listener: super::serve::ListenerArgs,
}

pub async fn run(settings: &Settings, args: ServerArgs) -> Result<ExitCode> {
    let stop = crate::shutdown::requested();
    let home = Home::resolve(settings)?;
    let engine = home.engine(&args.exec).await?;
    if args.auth_token.as_ref().is_some_and(|t| t.trim().len() < 16) {
        return Err(Failure::usage("--auth-token (SECONDROW_AUTH_TOKEN) must be at least 16 characters"));
    }
    let state = secondrow_api::AppState::new(engine).with_admin_token(args.auth_token.as_deref().map(str::trim));
    let auth = match (&args.auth_token, state.auth.enforced(state.store()).await) {
        (Some(_), _) => "on (admin token set)",
        (None, Ok(true)) => "on (the store holds API tokens)",
        (None, Ok(false)) => "off (no --auth-token and no API tokens: anyone reaching this port has full access)",
        (None, Err(e)) => return Err(e).context("reading API tokens"),
    };
    eprintln!("secondrow server: access control {auth}");
    let resumed = secondrow_api::recover(&state).await.context("resuming unfinished runs")?;
    let models = super::deploy::start_serving(&state, &args.serving, &args.listener).await?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port.
    println!(
        "secondrow server listening on http://{addr} (resumed {resumed} unfinished runs); deployed models on {models}"
    );
    // The web UI at `/` beside the API (the UI router has no fallback; the API's answers unknown paths).
    let app = secondrow_ui::router(state.clone()).merge(secondrow_api::router(state.clone()));
    secondrow_api::serve_app(listener, state, app, &args.listener.limits(), stop).await.context("serving the API")?;
    Ok(ExitCode::SUCCESS)
}
