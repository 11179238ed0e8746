//! `secondrow secrets` and `secondrow configmaps`: the local stand-ins for the Kubernetes secrets and
//! config maps that kfp-kubernetes pipelines read (`use_secret_as_env`, `use_config_map_as_volume`, …),
//! kept in the metadata store per namespace. Values are never printed: `list` shows keys only.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Subcommand;
use secondrow_store::SecretKind;

use crate::error::{Failure, Result};

use super::{fmt_time, Home, Settings};

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Create one from `--from-literal KEY=VALUE` pairs (like `kubectl create secret generic`).
    Create {
        /// A Kubernetes object name: lowercase letters, digits, `-`, `.`.
        name: String,
        /// A key and its value; repeat for more keys.
        #[arg(long = "from-literal", value_parser = parse_literal)]
        literals: Vec<(String, String)>,
        /// A key and a file holding its value (`KEY=PATH`), which keeps the value off the command line.
        #[arg(long = "from-file", value_parser = parse_literal)]
        files: Vec<(String, String)>,
        /// The namespace whose runs may read it; the default namespace (local runs) when omitted.
        #[arg(long, default_value = "")]
        namespace: String,
    },
    /// Names and keys (never values), in one namespace or, with `--all-namespaces`, in every one.
    List {
        #[arg(long, default_value = "")]
        namespace: String,
        #[arg(long, short = 'A')]
        all_namespaces: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete one by name.
    Delete {
        name: String,
        #[arg(long, default_value = "")]
        namespace: String,
    },
}

fn parse_literal(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

fn shown(namespace: &str) -> &str {
    if namespace.is_empty() {
        "default"
    } else {
        namespace
    }
}

pub async fn run(settings: &Settings, kind: SecretKind, cmd: SecretsCommand) -> Result<ExitCode> {
    let store = Home::resolve(settings)?.store().await?;
    let noun = kind.noun();
    match cmd {
        SecretsCommand::Create { name, literals, files, namespace } => {
            let mut data = BTreeMap::new();
            let mut pairs = literals;
            for (k, path) in files {
                let value = std::fs::read_to_string(&path)
                    .map_err(|e| Failure::usage(format!("--from-file {k}={path}: {e}")))?;
                pairs.push((k, value));
            }
            for (k, v) in pairs {
                if data.insert(k.clone(), v).is_some() {
                    return Err(Failure::usage(format!("key `{k}` is given twice")));
                }
            }
            let info = store.create_secret(&namespace, kind, &name, &data).await?;
            eprintln!(
                "{noun} `{}` created in namespace `{}` (keys: {})",
                info.name,
                shown(&namespace),
                info.keys.join(", ")
            );
        }
        SecretsCommand::List { namespace, all_namespaces, json } => {
            let list = store.list_secrets((!all_namespaces).then_some(namespace.as_str()), kind).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<20}  {:<30}  {:<19}  KEYS", "NAMESPACE", "NAME", "CREATED");
                for s in &list {
                    println!(
                        "{:<20}  {:<30}  {:<19}  {}",
                        shown(&s.namespace),
                        s.name,
                        fmt_time(s.created_at),
                        s.keys.join(",")
                    );
                }
            }
        }
        SecretsCommand::Delete { name, namespace } => {
            store.delete_secret(&namespace, kind, &name).await?;
            eprintln!("{noun} `{name}` deleted from namespace `{}`", shown(&namespace));
        }
    }
    Ok(ExitCode::SUCCESS)
}
