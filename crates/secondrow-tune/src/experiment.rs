//! Katib's `Experiment` (kubeflow.org/v1beta1): the serde model, Katib's validation rules (each error
//! names its field path) and `${trialParameters.x}` substitution into the trial template.

use crate::error::{Result, TuneError};
use crate::space::{Assignment, Distribution, Domain, Param, Space};
use crate::{earlystop, metrics, suggest};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, HashSet};

/// A string that YAML may also spell as a bare number (`min: 0.1` as well as `min: "0.1"`).
fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(Option::<serde_yaml_ng::Value>::deserialize(d)?.and_then(|v| scalar_string(&v)))
}

fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Vec<String>>, D::Error> {
    let v = Option::<Vec<serde_yaml_ng::Value>>::deserialize(d)?;
    Ok(v.map(|l| l.iter().map(|x| scalar_string(x).unwrap_or_default()).collect()))
}

fn scalar_string(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: ExperimentSpec,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    #[serde(default)]
    pub objective: Objective,
    #[serde(default)]
    pub algorithm: AlgorithmSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<AlgorithmSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_trial_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trial_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_trial_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_policy: Option<String>,
    #[serde(default)]
    pub parameters: Vec<ParameterSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_collector_spec: Option<MetricsCollectorSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_template: Option<TrialTemplate>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<f64>,
    #[serde(default)]
    pub objective_metric_name: String,
    #[serde(default)]
    pub additional_metric_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_strategies: Vec<NameValue>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlgorithmSpec {
    #[serde(default)]
    pub algorithm_name: String,
    #[serde(default)]
    pub algorithm_settings: Vec<NameValue>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NameValue {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub parameter_type: String,
    #[serde(default)]
    pub feasible_space: FeasibleSpace,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FeasibleSpace {
    #[serde(default, deserialize_with = "de_opt_string", skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string", skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string", skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, deserialize_with = "de_string_list", skip_serializing_if = "Option::is_none")]
    pub list: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsCollectorSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<Collector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<MetricsSource>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Collector {
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_collector: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_path: Option<FileSystemPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileSystemPath {
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub metrics_format: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrialTemplate {
    #[serde(default)]
    pub primary_container_name: String,
    #[serde(default)]
    pub trial_parameters: Vec<TrialParameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_spec: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_pod_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TrialParameter {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub reference: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapRef {
    #[serde(default)]
    pub config_map_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_namespace: Option<String>,
    #[serde(default)]
    pub template_path: String,
}

/// minimize or maximize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Minimize,
    Maximize,
}

impl Direction {
    /// The value as a loss (lower is better) for the algorithms.
    pub fn loss(self, v: f64) -> f64 {
        match self {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        }
    }
}

/// The metrics collector as the runner needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectorKind {
    StdOut,
    File { path: String, json: bool },
    TensorFlowEvent,
    PrometheusMetric,
    Custom,
    Push,
}

/// The primary container's command line after substitution.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrialCommand {
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
}

const META_REFERENCES: [&str; 4] =
    ["${trialSpec.Name}", "${trialSpec.Namespace}", "${trialSpec.Kind}", "${trialSpec.APIVersion}"];
const PLACEHOLDER: &str = "${trialParameters.";

impl Experiment {
    /// Parse YAML (or JSON, a subset) into the model, without validating it.
    pub fn from_yaml(text: &str) -> Result<Experiment> {
        serde_yaml_ng::from_str(text).map_err(|e| TuneError::Parse(e.to_string()))
    }

    /// Parse and validate.
    pub fn parse(text: &str) -> Result<Experiment> {
        let e = Experiment::from_yaml(text)?;
        e.validate()?;
        Ok(e)
    }

    pub fn direction(&self) -> Direction {
        if self.spec.objective.kind == "maximize" {
            Direction::Maximize
        } else {
            Direction::Minimize
        }
    }

    /// Katib's default 3.
    pub fn parallel_trial_count(&self) -> usize {
        self.spec.parallel_trial_count.unwrap_or(3).max(1) as usize
    }

    /// The strategy (`min`/`max`/`latest`) for a metric, after Katib's defaulting.
    pub fn metric_strategy(&self, name: &str) -> String {
        self.spec
            .objective
            .metric_strategies
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.value.clone())
            .unwrap_or_else(|| if self.direction() == Direction::Maximize { "max" } else { "min" }.to_string())
    }

    /// The typed search space (call after `validate`; errors name the field).
    pub fn space(&self) -> Result<Space> {
        let params =
            self.spec.parameters.iter().enumerate().map(|(i, p)| parameter(i, p)).collect::<Result<Vec<_>>>()?;
        Ok(Space { params })
    }

    /// The metrics collector kind, with Katib's defaults.
    pub fn collector(&self) -> CollectorKind {
        let spec = self.spec.metrics_collector_spec.as_ref();
        let kind = spec.and_then(|m| m.collector.as_ref()).map(|c| c.kind.as_str()).unwrap_or("StdOut");
        let fsp = spec.and_then(|m| m.source.as_ref()).and_then(|s| s.file_system_path.as_ref());
        match kind {
            "File" => CollectorKind::File {
                path: fsp
                    .map(|f| f.path.clone())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/var/log/katib/metrics.log".into()),
                json: fsp.and_then(|f| f.format.as_deref()) == Some("JSON"),
            },
            "TensorFlowEvent" => CollectorKind::TensorFlowEvent,
            "PrometheusMetric" => CollectorKind::PrometheusMetric,
            "Custom" => CollectorKind::Custom,
            "Push" => CollectorKind::Push,
            _ => CollectorKind::StdOut,
        }
    }

    /// The TEXT filters (custom `metricsFormat` or Katib's default).
    pub fn metric_filters(&self) -> Result<metrics::Filters> {
        let custom = self
            .spec
            .metrics_collector_spec
            .as_ref()
            .and_then(|m| m.source.as_ref())
            .and_then(|s| s.filter.as_ref())
            .map(|f| f.metrics_format.clone())
            .unwrap_or_default();
        if custom.is_empty() {
            Ok(metrics::Filters::default_filter())
        } else {
            metrics::Filters::new(&custom, "spec.metricsCollectorSpec.source.filter.metricsFormat")
        }
    }

    /// All metric names (objective first).
    pub fn metric_names(&self) -> Vec<String> {
        let o = &self.spec.objective;
        std::iter::once(o.objective_metric_name.clone()).chain(o.additional_metric_names.iter().cloned()).collect()
    }

    /// Katib's rules. The first broken rule is returned, naming its field.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != "kubeflow.org/v1beta1" {
            return Err(TuneError::invalid(
                "apiVersion",
                format!("must be kubeflow.org/v1beta1, got {:?}", self.api_version),
            ));
        }
        if self.kind != "Experiment" {
            return Err(TuneError::invalid("kind", format!("must be Experiment, got {:?}", self.kind)));
        }
        validate_name(&self.metadata.name)?;
        let s = &self.spec;
        self.validate_objective()?;
        // Counts.
        if let Some(m) = s.max_trial_count {
            if m <= 0 {
                return Err(TuneError::invalid("spec.maxTrialCount", "must be greater than 0"));
            }
        }
        if let Some(p) = s.parallel_trial_count {
            if p <= 0 {
                return Err(TuneError::invalid("spec.parallelTrialCount", "must be greater than 0"));
            }
        }
        if let (Some(p), Some(m)) = (Some(self.parallel_trial_count() as i64), s.max_trial_count) {
            if p > m && s.parallel_trial_count.is_some() {
                return Err(TuneError::invalid(
                    "spec.parallelTrialCount",
                    format!("{p} is greater than maxTrialCount {m}"),
                ));
            }
        }
        if let Some(f) = s.max_failed_trial_count {
            if f < 0 {
                return Err(TuneError::invalid("spec.maxFailedTrialCount", "must not be negative"));
            }
            if let Some(m) = s.max_trial_count {
                if f > m {
                    return Err(TuneError::invalid(
                        "spec.maxFailedTrialCount",
                        format!("{f} is greater than maxTrialCount {m}"),
                    ));
                }
            }
        }
        if let Some(r) = &s.resume_policy {
            if !["Never", "LongRunning", "FromVolume", ""].contains(&r.as_str()) {
                return Err(TuneError::invalid(
                    "spec.resumePolicy",
                    format!("{r:?} is not one of Never, LongRunning, FromVolume"),
                ));
            }
        }
        // Parameters.
        if s.parameters.is_empty() {
            return Err(TuneError::invalid("spec.parameters", "at least one parameter is required"));
        }
        let mut names = HashSet::new();
        for (i, p) in s.parameters.iter().enumerate() {
            if !names.insert(p.name.as_str()) {
                return Err(TuneError::invalid(
                    format!("spec.parameters[{i}].name"),
                    format!("duplicate parameter {:?}", p.name),
                ));
            }
        }
        let space = self.space()?;
        // Algorithm and early stopping (settings checked by building them).
        suggest::build(self, &space)?;
        if let Some(es) = &s.early_stopping {
            earlystop::MedianStop::from_spec(es)?;
        }
        self.validate_collector()?;
        self.validate_template()?;
        Ok(())
    }

    fn validate_objective(&self) -> Result<()> {
        let o = &self.spec.objective;
        if o.kind != "minimize" && o.kind != "maximize" {
            return Err(TuneError::invalid(
                "spec.objective.type",
                format!("must be minimize or maximize, got {:?}", o.kind),
            ));
        }
        if o.objective_metric_name.is_empty() {
            return Err(TuneError::invalid("spec.objective.objectiveMetricName", "is required"));
        }
        let mut seen = HashSet::new();
        for (i, m) in o.additional_metric_names.iter().enumerate() {
            let path = format!("spec.objective.additionalMetricNames[{i}]");
            if m == &o.objective_metric_name {
                return Err(TuneError::invalid(path, format!("{m:?} repeats the objective metric")));
            }
            if m.is_empty() || !seen.insert(m) {
                return Err(TuneError::invalid(path, format!("{m:?} is empty or repeated")));
            }
        }
        let names = self.metric_names();
        for (i, st) in o.metric_strategies.iter().enumerate() {
            if !names.contains(&st.name) {
                return Err(TuneError::invalid(
                    format!("spec.objective.metricStrategies[{i}].name"),
                    format!("{:?} is not a metric of the objective", st.name),
                ));
            }
            if !matches!(st.value.as_deref(), Some("min" | "max" | "latest")) {
                return Err(TuneError::invalid(
                    format!("spec.objective.metricStrategies[{i}].value"),
                    "must be min, max or latest",
                ));
            }
        }
        Ok(())
    }

    fn validate_collector(&self) -> Result<()> {
        let Some(m) = &self.spec.metrics_collector_spec else { return Ok(()) };
        let kind = m.collector.as_ref().map(|c| c.kind.as_str()).unwrap_or("StdOut");
        let known = ["StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "Push", ""];
        if !known.contains(&kind) {
            return Err(TuneError::invalid(
                "spec.metricsCollectorSpec.collector.kind",
                format!("unknown collector {kind:?}"),
            ));
        }
        if kind == "Custom" && m.collector.as_ref().and_then(|c| c.custom_collector.as_ref()).is_none() {
            return Err(TuneError::invalid(
                "spec.metricsCollectorSpec.collector.customCollector",
                "is required for kind Custom",
            ));
        }
        let src = m.source.as_ref();
        if let Some(f) = src.and_then(|s| s.file_system_path.as_ref()) {
            if kind == "File" && !f.path.is_empty() && !f.path.starts_with('/') {
                return Err(TuneError::invalid(
                    "spec.metricsCollectorSpec.source.fileSystemPath.path",
                    "must be an absolute path",
                ));
            }
            if let Some(fmt) = &f.format {
                if fmt != "TEXT" && fmt != "JSON" {
                    return Err(TuneError::invalid(
                        "spec.metricsCollectorSpec.source.fileSystemPath.format",
                        "must be TEXT or JSON",
                    ));
                }
                if fmt == "JSON" && src.and_then(|s| s.filter.as_ref()).is_some_and(|f| !f.metrics_format.is_empty()) {
                    return Err(TuneError::invalid(
                        "spec.metricsCollectorSpec.source.filter",
                        "is not allowed with the JSON format",
                    ));
                }
            }
        }
        self.metric_filters().map(|_| ())
    }

    fn validate_template(&self) -> Result<()> {
        let Some(t) = &self.spec.trial_template else {
            return Err(TuneError::invalid("spec.trialTemplate", "is required"));
        };
        match (&t.trial_spec, &t.config_map) {
            (Some(_), Some(_)) => {
                return Err(TuneError::invalid("spec.trialTemplate", "give trialSpec or configMap, not both"))
            }
            (None, None) => return Err(TuneError::invalid("spec.trialTemplate", "trialSpec or configMap is required")),
            (None, Some(c)) => {
                if c.config_map_name.is_empty() {
                    return Err(TuneError::invalid("spec.trialTemplate.configMap.configMapName", "is required"));
                }
                if c.template_path.is_empty() {
                    return Err(TuneError::invalid("spec.trialTemplate.configMap.templatePath", "is required"));
                }
            }
            (Some(spec), None) => validate_trial_spec(spec, "spec.trialTemplate.trialSpec", &t.primary_container_name)?,
        }
        let pipeline_trial = t.trial_spec.as_ref().is_some_and(is_pipeline_trial);
        if t.primary_container_name.is_empty() && !pipeline_trial {
            return Err(TuneError::invalid("spec.trialTemplate.primaryContainerName", "is required"));
        }
        let params: HashSet<&str> = self.spec.parameters.iter().map(|p| p.name.as_str()).collect();
        let (mut names, mut refs) = (HashSet::new(), HashSet::new());
        for (i, tp) in t.trial_parameters.iter().enumerate() {
            let path = format!("spec.trialTemplate.trialParameters[{i}]");
            if tp.name.is_empty() || tp.name.contains('{') || tp.name.contains('}') {
                return Err(TuneError::invalid(
                    format!("{path}.name"),
                    format!("{:?} must be non-empty and without braces", tp.name),
                ));
            }
            if !names.insert(tp.name.as_str()) {
                return Err(TuneError::invalid(
                    format!("{path}.name"),
                    format!("duplicate trial parameter {:?}", tp.name),
                ));
            }
            if !refs.insert(tp.reference.as_str()) {
                return Err(TuneError::invalid(
                    format!("{path}.reference"),
                    format!("duplicate reference {:?}", tp.reference),
                ));
            }
            if !params.contains(tp.reference.as_str()) && !is_meta_reference(&tp.reference) {
                return Err(TuneError::invalid(
                    format!("{path}.reference"),
                    format!("{:?} is neither a parameter in spec.parameters nor trial metadata", tp.reference),
                ));
            }
        }
        for (i, p) in self.spec.parameters.iter().enumerate() {
            if !refs.contains(p.name.as_str()) {
                return Err(TuneError::invalid(
                    format!("spec.parameters[{i}].name"),
                    format!("{:?} is referenced by no trialTemplate.trialParameters entry", p.name),
                ));
            }
        }
        if let Some(spec) = &t.trial_spec {
            let used = placeholders(spec);
            for u in &used {
                if !names.contains(u.as_str()) {
                    return Err(TuneError::invalid(
                        "spec.trialTemplate.trialSpec",
                        format!("${{trialParameters.{u}}} is not declared in trialParameters"),
                    ));
                }
            }
            for (i, tp) in t.trial_parameters.iter().enumerate() {
                if !used.contains(&tp.name) {
                    return Err(TuneError::invalid(
                        format!("spec.trialTemplate.trialParameters[{i}].name"),
                        format!("{:?} is not used in trialSpec", tp.name),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The trial spec with every `${trialParameters.x}` replaced, given the assignment and trial name.
    /// `trial_spec` overrides the inline one (for a configMap template read by the caller).
    pub fn render_trial_spec(
        &self,
        assignment: &Assignment,
        trial_name: &str,
        trial_spec: Option<&serde_yaml_ng::Value>,
    ) -> Result<serde_yaml_ng::Value> {
        let t = self
            .spec
            .trial_template
            .as_ref()
            .ok_or_else(|| TuneError::Substitution("the experiment has no trialTemplate".into()))?;
        let spec = trial_spec
            .or(t.trial_spec.as_ref())
            .ok_or_else(|| TuneError::Substitution("no trialSpec to render".into()))?;
        for (name, _) in assignment {
            if !t.trial_parameters.iter().any(|tp| &tp.reference == name) {
                return Err(TuneError::Substitution(format!("parameter {name:?} is covered by no trial parameter")));
            }
        }
        let mut values = BTreeMap::new();
        for tp in &t.trial_parameters {
            let v = if let Some((_, v)) = assignment.iter().find(|(n, _)| n == &tp.reference) {
                v.to_string()
            } else {
                self.meta_value(&tp.reference, trial_name, spec).ok_or_else(|| {
                    TuneError::Substitution(format!(
                        "trial parameter {:?}: no value for reference {:?}",
                        tp.name, tp.reference
                    ))
                })?
            };
            values.insert(tp.name.clone(), v);
        }
        let mut out = spec.clone();
        substitute(&mut out, &values)?;
        Ok(out)
    }

    fn meta_value(&self, reference: &str, trial_name: &str, spec: &serde_yaml_ng::Value) -> Option<String> {
        let get = |k: &str| spec.get(k).and_then(|v| v.as_str()).map(str::to_string);
        match reference {
            "${trialSpec.Name}" => Some(trial_name.to_string()),
            "${trialSpec.Namespace}" => Some(self.metadata.namespace.clone().unwrap_or_else(|| "default".into())),
            "${trialSpec.Kind}" => get("kind"),
            "${trialSpec.APIVersion}" => get("apiVersion"),
            r => {
                let (field, key) = r.strip_prefix("${trialSpec.")?.strip_suffix("]}")?.split_once('[')?;
                let map = if field == "Labels" { "labels" } else { "annotations" };
                spec.get("metadata")?.get(map)?.get(key)?.as_str().map(str::to_string)
            }
        }
    }

    /// The primary container's command, args, env of a rendered batch/v1 Job, with `KATIB_TRIAL_NAME`.
    pub fn trial_command(&self, rendered: &serde_yaml_ng::Value, trial_name: &str) -> Result<TrialCommand> {
        let primary = self.spec.trial_template.as_ref().map(|t| t.primary_container_name.as_str()).unwrap_or_default();
        let c = primary_container(rendered, primary).ok_or_else(|| {
            TuneError::Substitution(format!("no container named {primary:?} in spec.template.spec.containers"))
        })?;
        let strings = |k: &str| -> Vec<String> {
            c.get(k)
                .and_then(|v| v.as_sequence())
                .map(|s| s.iter().filter_map(scalar_string).collect())
                .unwrap_or_default()
        };
        let mut env: Vec<(String, String)> = c
            .get("env")
            .and_then(|v| v.as_sequence())
            .map(|s| {
                s.iter()
                    .filter_map(|e| {
                        Some((
                            e.get("name")?.as_str()?.to_string(),
                            e.get("value").and_then(scalar_string).unwrap_or_default(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        env.push(("KATIB_TRIAL_NAME".into(), trial_name.into()));
        let command = strings("command");
        let args = strings("args");
        if command.is_empty() && args.is_empty() {
            return Err(TuneError::Substitution(format!("container {primary:?} has neither command nor args")));
        }
        Ok(TrialCommand {
            command,
            args,
            env,
            working_dir: c.get("workingDir").and_then(|v| v.as_str()).map(str::to_string),
        })
    }
}

fn is_meta_reference(r: &str) -> bool {
    META_REFERENCES.contains(&r)
        || ((r.starts_with("${trialSpec.Labels[") || r.starts_with("${trialSpec.Annotations[")) && r.ends_with("]}"))
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_lowercase()
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(TuneError::invalid(
            "metadata.name",
            format!("{name:?} must be 1–40 characters of a-z, 0-9 and '-', start with a letter and not end with '-'"),
        ))
    }
}

fn primary_container<'a>(spec: &'a serde_yaml_ng::Value, name: &str) -> Option<&'a serde_yaml_ng::Value> {
    spec.get("spec")?
        .get("template")?
        .get("spec")?
        .get("containers")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(name))
}

/// The Training Operator kinds a trial may be (Katib runs them with `primaryContainerName` and the job's
/// conditions): each trial is then a distributed training job.
pub const TRAINING_JOB_KINDS: [&str; 5] = ["PyTorchJob", "TFJob", "MPIJob", "JAXJob", "XGBoostJob"];

/// Whether a trial spec is a `kubeflow.org/v1` training job (see [`TRAINING_JOB_KINDS`]).
pub fn is_training_job_trial(spec: &serde_yaml_ng::Value) -> bool {
    spec.get("apiVersion").and_then(|v| v.as_str()) == Some("kubeflow.org/v1")
        && spec.get("kind").and_then(|v| v.as_str()).is_some_and(|k| TRAINING_JOB_KINDS.contains(&k))
}

/// The containers named `name` in a training job's replica specs (`spec.<x>ReplicaSpecs.<Type>.template`).
fn job_containers<'a>(spec: &'a serde_yaml_ng::Value, name: &'a str) -> impl Iterator<Item = &'a serde_yaml_ng::Value> {
    spec.get("spec")
        .and_then(|s| s.as_mapping())
        .into_iter()
        .flat_map(|m| m.iter())
        .filter(|(k, _)| k.as_str().is_some_and(|k| k.ends_with("ReplicaSpecs")))
        .filter_map(|(_, v)| v.as_mapping())
        .flat_map(|groups| groups.values())
        .filter_map(|g| g.get("template")?.get("spec")?.get("containers")?.as_sequence())
        .flatten()
        .filter(move |c| c.get("name").and_then(|n| n.as_str()) == Some(name))
}

/// SecondRow's own trial kind: a compiled kfp pipeline run per trial (`apiVersion: secondrow/v1`,
/// `kind: Pipeline`, `spec: {pipelineFile | pipelineSpec, parameters: {NAME: "${trialParameters.x}"}}`).
pub fn is_pipeline_trial(spec: &serde_yaml_ng::Value) -> bool {
    spec.get("apiVersion").and_then(|v| v.as_str()) == Some("secondrow/v1")
        && spec.get("kind").and_then(|v| v.as_str()) == Some("Pipeline")
}

fn validate_pipeline_trial(spec: &serde_yaml_ng::Value, path: &str) -> Result<()> {
    let Some(inner) = spec.get("spec").filter(|s| s.is_mapping()) else {
        return Err(TuneError::invalid(
            format!("{path}.spec"),
            "is required: pipelineFile or pipelineSpec, and parameters",
        ));
    };
    match (inner.get("pipelineFile"), inner.get("pipelineSpec")) {
        (Some(_), Some(_)) => {
            return Err(TuneError::invalid(format!("{path}.spec"), "give pipelineFile or pipelineSpec, not both"))
        }
        (None, None) => {
            return Err(TuneError::invalid(
                format!("{path}.spec.pipelineFile"),
                "pipelineFile or pipelineSpec is required",
            ))
        }
        (Some(f), None) if f.as_str().is_none_or(str::is_empty) => {
            return Err(TuneError::invalid(format!("{path}.spec.pipelineFile"), "must be a file name"))
        }
        (None, Some(s)) if !s.is_mapping() => {
            return Err(TuneError::invalid(
                format!("{path}.spec.pipelineSpec"),
                "must be a compiled pipeline (a mapping)",
            ))
        }
        _ => {}
    }
    if let Some(p) = inner.get("parameters") {
        let ok =
            p.as_mapping().is_some_and(|m| m.iter().all(|(k, v)| k.is_string() && !v.is_mapping() && !v.is_sequence()));
        if !ok {
            return Err(TuneError::invalid(
                format!("{path}.spec.parameters"),
                "must map pipeline parameter names to values (text with ${trialParameters.x})",
            ));
        }
    }
    Ok(())
}

fn validate_trial_spec(spec: &serde_yaml_ng::Value, path: &str, primary: &str) -> Result<()> {
    for k in ["apiVersion", "kind"] {
        if spec.get(k).and_then(|v| v.as_str()).is_none_or(str::is_empty) {
            return Err(TuneError::invalid(format!("{path}.{k}"), "is required"));
        }
    }
    if let Some(meta) = spec.get("metadata") {
        for k in ["name", "namespace"] {
            if meta.get(k).is_some() {
                return Err(TuneError::invalid(
                    format!("{path}.metadata.{k}"),
                    "must not be set: the trial's name and namespace are given by the experiment",
                ));
            }
        }
    }
    if is_pipeline_trial(spec) {
        return validate_pipeline_trial(spec, path);
    }
    if is_training_job_trial(spec) {
        // The job itself is validated (as the operator's webhook does) when each trial submits it.
        if !primary.is_empty() && job_containers(spec, primary).next().is_none() {
            return Err(TuneError::invalid(
                format!("{path}.spec"),
                format!("no replica has a container named {primary:?} (the primaryContainerName)"),
            ));
        }
        return Ok(());
    }
    let is_job = spec.get("apiVersion").and_then(|v| v.as_str()) == Some("batch/v1")
        && spec.get("kind").and_then(|v| v.as_str()) == Some("Job");
    if !is_job {
        return Err(TuneError::unsupported(
            format!("{path}.kind"),
            "a trialSpec other than batch/v1 Job, a kubeflow.org/v1 training job or secondrow/v1 Pipeline",
        ));
    }
    if !primary.is_empty() && primary_container(spec, primary).is_none() {
        return Err(TuneError::invalid(
            format!("{path}.spec.template.spec.containers"),
            format!("no container named {primary:?} (the primaryContainerName)"),
        ));
    }
    Ok(())
}

/// Every `${trialParameters.NAME}` in the template's strings (keys included).
pub fn placeholders(v: &serde_yaml_ng::Value) -> HashSet<String> {
    let mut out = HashSet::new();
    walk_strings(v, &mut |s| {
        let mut rest = s;
        while let Some(i) = rest.find(PLACEHOLDER) {
            let after = &rest[i + PLACEHOLDER.len()..];
            match after.find('}') {
                Some(j) => {
                    out.insert(after[..j].to_string());
                    rest = &after[j + 1..];
                }
                None => break,
            }
        }
    });
    out
}

fn walk_strings(v: &serde_yaml_ng::Value, f: &mut impl FnMut(&str)) {
    match v {
        serde_yaml_ng::Value::String(s) => f(s),
        serde_yaml_ng::Value::Sequence(s) => s.iter().for_each(|x| walk_strings(x, f)),
        serde_yaml_ng::Value::Mapping(m) => m.iter().for_each(|(k, x)| {
            walk_strings(k, f);
            walk_strings(x, f)
        }),
        serde_yaml_ng::Value::Tagged(t) => walk_strings(&t.value, f),
        _ => {}
    }
}

/// Replace every placeholder in every string of `v`; an undeclared name is an error.
pub fn substitute(v: &mut serde_yaml_ng::Value, values: &BTreeMap<String, String>) -> Result<()> {
    match v {
        serde_yaml_ng::Value::String(s) => *s = substitute_str(s, values)?,
        serde_yaml_ng::Value::Sequence(s) => s.iter_mut().try_for_each(|x| substitute(x, values))?,
        serde_yaml_ng::Value::Mapping(m) => m.iter_mut().try_for_each(|(_, x)| substitute(x, values))?,
        serde_yaml_ng::Value::Tagged(t) => substitute(&mut t.value, values)?,
        _ => {}
    }
    Ok(())
}

/// Replace `${trialParameters.x}` in one string.
pub fn substitute_str(s: &str, values: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(PLACEHOLDER) {
        out.push_str(&rest[..i]);
        let after = &rest[i + PLACEHOLDER.len()..];
        let j = after.find('}').ok_or_else(|| TuneError::Substitution(format!("unterminated placeholder in {s:?}")))?;
        let name = &after[..j];
        let v = values.get(name).ok_or_else(|| {
            TuneError::Substitution(format!(
                "${{trialParameters.{name}}} names no trial parameter (known: {})",
                values.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        out.push_str(v);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parameter(i: usize, p: &ParameterSpec) -> Result<Param> {
    let path = format!("spec.parameters[{i}]");
    let fs = &p.feasible_space;
    let fpath = format!("{path}.feasibleSpace");
    if p.name.is_empty() {
        return Err(TuneError::invalid(format!("{path}.name"), "is required"));
    }
    let dist = match fs.distribution.as_deref() {
        None | Some("") | Some("uniform") => Distribution::Uniform,
        Some("logUniform") => Distribution::LogUniform,
        Some("normal") => Distribution::Normal,
        Some("logNormal") => Distribution::LogNormal,
        Some(d) => {
            return Err(TuneError::invalid(
                format!("{fpath}.distribution"),
                format!("{d:?} is not one of uniform, logUniform, normal, logNormal"),
            ))
        }
    };
    let domain = match p.parameter_type.as_str() {
        "double" | "int" => {
            if fs.list.is_some() {
                return Err(TuneError::invalid(
                    format!("{fpath}.list"),
                    format!("is not allowed for a {} parameter", p.parameter_type),
                ));
            }
            let num = |field: &str, v: &Option<String>| -> Result<f64> {
                let s = v.as_deref().ok_or_else(|| TuneError::invalid(format!("{fpath}.{field}"), "is required"))?;
                let x: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| TuneError::invalid(format!("{fpath}.{field}"), format!("{s:?} is not a number")))?;
                if !x.is_finite() {
                    return Err(TuneError::invalid(format!("{fpath}.{field}"), "must be finite"));
                }
                if p.parameter_type == "int" && x.fract() != 0.0 {
                    return Err(TuneError::invalid(format!("{fpath}.{field}"), format!("{s:?} is not an integer")));
                }
                Ok(x)
            };
            let (min, max) = (num("min", &fs.min)?, num("max", &fs.max)?);
            // Ints are handled as i64 and their range as f64: keep both exact and overflow-free.
            const LIMIT: f64 = 4_503_599_627_370_496.0; // 2^52
            for (field, x) in [("min", min), ("max", max)] {
                if x.abs() > LIMIT || (p.parameter_type == "double" && x.abs() > f64::MAX / 4.0) {
                    return Err(TuneError::invalid(
                        format!("{fpath}.{field}"),
                        format!("{x} is out of the supported range ±2^52"),
                    ));
                }
            }
            if min > max {
                return Err(TuneError::invalid(format!("{fpath}.min"), format!("min {min} is greater than max {max}")));
            }
            if min == max && p.parameter_type == "double" {
                return Err(TuneError::invalid(format!("{fpath}.max"), "must be greater than min"));
            }
            let step = match &fs.step {
                Some(s) if !s.is_empty() => {
                    let st = num("step", &fs.step)?;
                    if st <= 0.0 {
                        return Err(TuneError::invalid(format!("{fpath}.step"), format!("{s} must be greater than 0")));
                    }
                    if st > max - min && max > min {
                        return Err(TuneError::invalid(
                            format!("{fpath}.step"),
                            format!("{s} is larger than max − min"),
                        ));
                    }
                    Some(st)
                }
                _ => None,
            };
            if matches!(dist, Distribution::LogUniform | Distribution::LogNormal) && min <= 0.0 {
                return Err(TuneError::invalid(
                    format!("{fpath}.min"),
                    "must be greater than 0 for a log distribution",
                ));
            }
            if p.parameter_type == "double" {
                Domain::Double { min, max, step, dist }
            } else {
                Domain::Int { min: min as i64, max: max as i64, step: step.map(|s| s as i64).unwrap_or(1).max(1), dist }
            }
        }
        "categorical" | "discrete" => {
            for (f, v) in [("min", &fs.min), ("max", &fs.max), ("step", &fs.step)] {
                if v.is_some() {
                    return Err(TuneError::invalid(
                        format!("{fpath}.{f}"),
                        format!("is not allowed for a {} parameter", p.parameter_type),
                    ));
                }
            }
            let list = fs.list.clone().unwrap_or_default();
            if list.is_empty() {
                return Err(TuneError::invalid(format!("{fpath}.list"), "must not be empty"));
            }
            let mut seen = HashSet::new();
            for (j, x) in list.iter().enumerate() {
                if !seen.insert(x) {
                    return Err(TuneError::invalid(format!("{fpath}.list[{j}]"), format!("duplicate value {x:?}")));
                }
                if p.parameter_type == "discrete" && x.trim().parse::<f64>().is_err() {
                    return Err(TuneError::invalid(
                        format!("{fpath}.list[{j}]"),
                        format!("{x:?} is not a number (discrete values are numbers)"),
                    ));
                }
            }
            if p.parameter_type == "categorical" {
                Domain::Categorical(list)
            } else {
                Domain::Discrete(list)
            }
        }
        t => {
            return Err(TuneError::invalid(
                format!("{path}.parameterType"),
                format!("{t:?} is not one of double, int, categorical, discrete"),
            ))
        }
    };
    Ok(Param { name: p.name.clone(), domain })
}
