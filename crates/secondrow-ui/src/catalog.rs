//! Experiments and pipelines: lists, and a pipeline's versions with the static graph and the spec as YAML.

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::response::Response;
use serde::Deserialize;

use secondrow_api::auth::Caller;
use secondrow_spec::PipelineSpec;

use crate::graph::{self, Target};
use crate::pages::rfc3339;
use crate::viz::esc;
use crate::{html, Chrome, Csrf, Ui, UiError};

pub struct ExperimentRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub archived: bool,
    pub created: String,
}

#[derive(Template)]
#[template(path = "experiments.html")]
struct ExperimentsPage {
    c: Chrome,
    rows: Vec<ExperimentRow>,
}

pub async fn experiments(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
) -> Result<Response, UiError> {
    let list = ui.app.store().list_experiments(caller.list_namespace(None)?).await?;
    let rows = list
        .into_iter()
        .rev()
        .map(|e| ExperimentRow {
            archived: e.storage_state == "ARCHIVED",
            id: e.id,
            name: e.display_name,
            description: e.description,
            namespace: e.namespace,
            created: rfc3339(e.created_at),
        })
        .collect();
    Ok(html(ExperimentsPage { c: Chrome::new("Experiments", &csrf, Some(&caller), "experiments"), rows }.render()))
}

pub struct PipelineRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub shared: bool,
    pub created: String,
}

#[derive(Template)]
#[template(path = "pipelines.html")]
struct PipelinesPage {
    c: Chrome,
    rows: Vec<PipelineRow>,
}

pub async fn pipelines(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
) -> Result<Response, UiError> {
    let list = ui.app.store().list_pipelines(None).await?;
    let rows = list
        .into_iter()
        .rev()
        .filter(|p| caller.sees(&p.namespace, true))
        .map(|p| PipelineRow {
            shared: p.namespace.is_empty(),
            id: p.id,
            name: p.display_name,
            description: p.description,
            created: rfc3339(p.created_at),
        })
        .collect();
    Ok(html(PipelinesPage { c: Chrome::new("Pipelines", &csrf, Some(&caller), "pipelines"), rows }.render()))
}

#[derive(Deserialize, Default)]
pub struct PipelineQuery {
    version: Option<String>,
}

pub struct VersionRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct PipelinePage {
    c: Chrome,
    id: String,
    name: String,
    description: String,
    versions: Vec<VersionRow>,
    graph: String,
    params: Vec<(String, String, String)>,
    yaml: String,
}

pub async fn pipeline(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<PipelineQuery>,
) -> Result<Response, UiError> {
    let p = caller.pipeline(&ui.app, &id, false).await?;
    let store = ui.app.store();
    let mut versions = store.list_pipeline_versions(&p.id).await?;
    versions.reverse();
    let chosen = q.version.clone().or_else(|| versions.first().map(|v| v.id.clone()));
    let (graph_html, params, yaml) = match &chosen {
        Some(v) => {
            let version = store.get_pipeline_version(&p.id, v).await?;
            let yaml = serde_yaml::to_string(&version.spec).unwrap_or_default();
            match serde_json::from_value::<PipelineSpec>(version.spec) {
                Ok(spec) => {
                    let graph_html = match graph::resolve(&spec, "") {
                        Ok(Target::Dag(root)) => graph::svg_with(&graph::dag_view(&spec, root, "", &[]), None),
                        _ => String::new(),
                    };
                    let params = spec
                        .root
                        .input_definitions
                        .parameters
                        .iter()
                        .map(|(k, d)| {
                            let default = d.default_value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                            (k.clone(), d.parameter_type.as_str().to_owned(), default)
                        })
                        .collect();
                    (graph_html, params, yaml)
                }
                Err(e) => (format!("<p class=\"error\">{}</p>", esc(&e.to_string())), Vec::new(), yaml),
            }
        }
        None => ("<p class=\"empty\">This pipeline has no versions yet.</p>".to_owned(), Vec::new(), String::new()),
    };
    let page = PipelinePage {
        c: Chrome::new(format!("Pipeline {}", p.display_name), &csrf, Some(&caller), "pipelines"),
        versions: versions
            .into_iter()
            .map(|v| VersionRow {
                current: chosen.as_deref() == Some(v.id.as_str()),
                id: v.id,
                name: v.display_name,
                created: rfc3339(v.created_at),
            })
            .collect(),
        id: p.id,
        name: p.display_name,
        description: p.description,
        graph: graph_html,
        params,
        yaml,
    };
    Ok(html(page.render()))
}
