//! Which values are replaced by `***` in a Pod's log as it is copied into the log store (the same
//! replacement as local tasks' logs, [`crate::process::redact`]):
//!
//! - literal env values of the Pod's containers whose variable names a credential (`*SECRET*`,
//!   `*PASSWORD*`, `*TOKEN*`, `*ACCESS_KEY*`, `*CREDENTIAL*`, `*PRIVATE_KEY*`, `*API_KEY*`);
//! - the object-store credentials of the engine's own environment (`AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `AWS_ACCESS_KEY_ID` and the other credential-named variables), which a launcher
//!   Pod may be given;
//! - the values of the Secrets the Pod refers to (`secretKeyRef`, `envFrom`, secret volumes: kfp-kubernetes'
//!   `use_secret_as_env` / `use_secret_as_volume`) when the engine's account may `get` Secrets. The
//!   deploy manifests' Role does not grant it (least privilege); a cluster that wants those values
//!   redacted grants `get` on `secrets` to the server's account. Without it they are not known, and not
//!   redacted.
//!
//! Values shorter than [`MIN_LEN`] characters taken from environments are not redacted (a flag such as
//! `1` would blank every digit of the log).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;

use super::KubeExecutor;

pub const MIN_LEN: usize = 4;

const CREDENTIAL_WORDS: &[&str] =
    &["SECRET", "PASSWORD", "PASSWD", "TOKEN", "ACCESS_KEY", "CREDENTIAL", "PRIVATE_KEY", "API_KEY", "APIKEY"];

/// Whether an environment variable's name says its value is a credential.
pub fn is_credential_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    CREDENTIAL_WORDS.iter().any(|w| upper.contains(w))
}

/// Where one Pod's secret values come from, read off its spec.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Literal env values under credential names.
    pub literal: Vec<String>,
    /// (Secret, key): one key, or every key when `None`.
    pub secrets: BTreeSet<(String, Option<String>)>,
}

impl Sources {
    pub fn of(pod: &Pod) -> Sources {
        let mut out = Sources::default();
        let Some(spec) = &pod.spec else { return out };
        let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
        for c in containers {
            for e in c.env.iter().flatten() {
                if let Some(v) = e.value.as_ref().filter(|v| v.len() >= MIN_LEN && is_credential_name(&e.name)) {
                    out.literal.push(v.clone());
                }
                if let Some(r) = e.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()) {
                    out.secrets.insert((r.name.clone(), Some(r.key.clone())));
                }
            }
            for f in c.env_from.iter().flatten() {
                if let Some(r) = &f.secret_ref {
                    out.secrets.insert((r.name.clone(), None));
                }
            }
        }
        for v in spec.volumes.iter().flatten() {
            if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.as_ref()) {
                out.secrets.insert((name.clone(), None));
            }
        }
        out
    }

    /// Every value to redact: the literal ones, the engine's own credentials, and the Secrets' values the
    /// API lets the engine read.
    pub async fn values(&self, kube: &KubeExecutor) -> Vec<String> {
        let mut values = self.literal.clone();
        values.extend(kube.own_credentials.iter().cloned());
        if !self.secrets.is_empty() {
            let api: Api<Secret> = Api::namespaced(kube.pods.clone().into_client(), &kube.namespace);
            let mut names: Vec<&String> = self.secrets.iter().map(|(n, _)| n).collect();
            names.dedup();
            for name in names {
                let secret = match api.get_opt(name).await {
                    Ok(Some(s)) => s,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::debug!("reading Secret {name} to redact its values from logs: {e}");
                        continue;
                    }
                };
                let data = secret.data.unwrap_or_default();
                for (n, key) in &self.secrets {
                    if n != name {
                        continue;
                    }
                    let picked: Vec<_> = match key {
                        Some(k) => data.get(k).into_iter().collect(),
                        None => data.values().collect(),
                    };
                    values.extend(picked.into_iter().map(|b| String::from_utf8_lossy(&b.0).into_owned()));
                }
            }
        }
        crate::platform::redaction_list(values)
    }
}

/// The credential values of an environment (the engine's own: its object-store keys).
pub fn own_credentials(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    vars.filter(|(k, v)| v.len() >= MIN_LEN && is_credential_name(k)).map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credential_names_and_secret_references_are_found() {
        assert!(is_credential_name("AWS_SECRET_ACCESS_KEY") && is_credential_name("db_password"));
        assert!(is_credential_name("API_TOKEN") && !is_credential_name("GREETING"));
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "main", "env": [
                    {"name": "API_TOKEN", "value": "tok-12345"},
                    {"name": "SHORT_TOKEN", "value": "1"},
                    {"name": "GREETING", "value": "hola"},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
                ], "envFrom": [{"secretRef": {"name": "all"}}]}],
                "volumes": [{"name": "v", "secret": {"secretName": "files"}}]
            }
        }))
        .unwrap();
        let s = Sources::of(&pod);
        assert_eq!(s.literal, ["tok-12345"]);
        let refs: Vec<_> = s.secrets.iter().cloned().collect();
        assert_eq!(
            refs,
            [("all".to_owned(), None), ("db".to_owned(), Some("password".to_owned())), ("files".to_owned(), None)]
        );
        let env = [("AWS_SECRET_ACCESS_KEY", "k3y-value"), ("PATH", "/usr/bin"), ("X_TOKEN", "no")];
        let own = own_credentials(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(own, ["k3y-value"]);
        let list = crate::platform::redaction_list(vec!["ab\ncd-long".into(), "tok-12345".into(), "tok-12345".into()]);
        assert_eq!(list, ["ab\ncd-long", "tok-12345", "cd-long", "ab"]);
    }
}
