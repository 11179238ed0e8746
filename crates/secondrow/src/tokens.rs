//! `secondrow tokens`: namespace-scoped bearer tokens for `secondrow server`, kept in the local store
//! (only their SHA-256 digests). Once any token exists the server requires one on every API call.

use std::process::ExitCode;

use crate::error::Result;
use clap::Subcommand;
use serde_json::json;

use super::{fmt_time, Home, Settings};

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token for one namespace; the token is printed once and cannot be shown again.
    Create {
        /// The namespace the token may reach (a DNS label: lowercase letters, digits, `-`).
        #[arg(long)]
        namespace: String,
        /// A label to recognise the token by in `tokens list`.
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Every token (never the secret): id, namespace, label, created, revoked.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; a running server refuses it from the next request on.
    Revoke { id: String },
}

pub async fn run(settings: &Settings, cmd: TokensCommand) -> Result<ExitCode> {
    let store = Home::resolve(settings)?.store().await?;
    match cmd {
        TokensCommand::Create { namespace, name, json } => {
            let (token, secret) = store.create_api_token(&namespace, &name).await?;
            if json {
                let mut doc = serde_json::to_value(&token)?;
                doc["token"] = json!(secret);
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                eprintln!("token {} for namespace `{}` (shown once; keep it now):", token.id, token.namespace);
                println!("{secret}");
            }
        }
        TokensCommand::List { json } => {
            let tokens = store.list_api_tokens().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                println!("{:<12}  {:<20}  {:<19}  {:<19}  NAME", "ID", "NAMESPACE", "CREATED", "REVOKED");
                for t in &tokens {
                    let revoked = t.revoked_at.map(fmt_time).unwrap_or_else(|| "-".into());
                    println!(
                        "{:<12}  {:<20}  {:<19}  {:<19}  {}",
                        t.id,
                        t.namespace,
                        fmt_time(t.created_at),
                        revoked,
                        crate::term::Safe(&t.name)
                    );
                }
            }
        }
        TokensCommand::Revoke { id } => {
            let token = store.revoke_api_token(&id).await?;
            eprintln!("token {} for namespace `{}` is revoked", token.id, token.namespace);
        }
    }
    Ok(ExitCode::SUCCESS)
}
