//! `secondrow deploy apply NAME` and `deploy delete NAME --kubeconfig …`: the objects of
//! [`crate::serve_manifest`] applied to a cluster through kube-rs with server-side apply (field manager
//! `secondrow`, forcing ownership of the fields it writes), and deleted again.
//!
//! The cluster is reached as the Kubernetes executor reaches it (a kubeconfig's current context, else
//! `KUBECONFIG`/`~/.kube/config`/in-cluster); errors are the executor's `KubeError`s: a bad kubeconfig is
//! the caller's (exit 2), a refusal `PermissionDenied` (exit 2), no answer `Unavailable` (exit 1).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Client;
use secondrow_engine::kubernetes::{ConfigSource, KubeError};
use serde_json::Value;

/// How long one call may take before the API server counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A namespace of a cluster.
pub struct Cluster {
    client: Client,
    namespace: String,
    url: String,
}

/// Connects with `kubeconfig` (or the usual search) to `namespace` (or the context's).
pub async fn connect(kubeconfig: Option<&Path>, namespace: Option<&str>) -> Result<Cluster, KubeError> {
    let source = match kubeconfig {
        Some(path) => ConfigSource::Kubeconfig(path.to_path_buf()),
        None => ConfigSource::Infer,
    };
    let config = source.config().await?;
    let namespace = namespace.map(str::to_owned).unwrap_or_else(|| config.default_namespace.clone());
    let url = config.cluster_url.to_string();
    let client =
        Client::try_from(config).map_err(|e| KubeError::Unreachable { url: url.clone(), message: e.to_string() })?;
    Ok(Cluster { client, namespace, url })
}

impl Cluster {
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// One call with a deadline, its errors named by `what`.
    async fn call<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeError> {
        let what = format!("{what} in namespace {}", self.namespace);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(resp))) if resp.code == 401 || resp.code == 403 => {
                Err(KubeError::Forbidden { what, message: resp.message.clone() })
            }
            Ok(Err(kube::Error::Api(resp))) => {
                Err(KubeError::Api { what, message: format!("{} ({})", resp.message, resp.code) })
            }
            Ok(Err(e)) => Err(KubeError::Unreachable { url: self.url.clone(), message: e.to_string() }),
            Err(_) => Err(KubeError::Unreachable {
                url: self.url.clone(),
                message: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Server-side applies each object (Deployments and Services); returns `kind/name` of each.
    pub async fn apply(&self, objects: &[Value]) -> Result<Vec<String>, KubeError> {
        let params = PatchParams::apply("secondrow").force();
        let mut done = Vec::new();
        for o in objects {
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            let kind = o["kind"].as_str().unwrap_or_default();
            let patch = Patch::Apply(o);
            match kind {
                "Deployment" => {
                    let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
                    self.call(&format!("apply Deployment {name}"), api.patch(name, &params, &patch)).await?;
                    done.push(format!("deployment.apps/{name}"));
                }
                "Service" => {
                    let api: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
                    self.call(&format!("apply Service {name}"), api.patch(name, &params, &patch)).await?;
                    done.push(format!("service/{name}"));
                }
                other => {
                    return Err(KubeError::Api {
                        what: format!("apply {name}"),
                        message: format!("unexpected kind {other}"),
                    })
                }
            }
        }
        Ok(done)
    }

    /// Deletes the Deployment and the Service named `object`; returns what was there (absent ones are skipped).
    pub async fn delete(&self, object: &str) -> Result<Vec<String>, KubeError> {
        // Background: the objects go at once and the garbage collector removes the ReplicaSets and Pods
        // (foreground deletion would leave them waiting on it with a finalizer).
        let params = DeleteParams::background();
        let mut done = Vec::new();
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let gone = self
            .call(&format!("delete Deployment {object}"), async {
                match deployments.delete(object, &params).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(resp)) if resp.code == 404 => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if gone {
            done.push(format!("deployment.apps/{object}"));
        }
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let gone = self
            .call(&format!("delete Service {object}"), async {
                match services.delete(object, &params).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(resp)) if resp.code == 404 => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if gone {
            done.push(format!("service/{object}"));
        }
        Ok(done)
    }
}
