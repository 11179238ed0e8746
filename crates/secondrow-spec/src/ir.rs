//! The KFP pipeline IR (`PipelineSpec`, schema 2.1.0) as serde types.
//!
//! These types mirror what the kfp SDK 2.14 compiler writes, key for key (camelCase).
//! They are *raw* input: nothing here is checked beyond the shape of the document.
//! [`crate::validate`] turns a raw spec into a [`crate::Pipeline`] or a list of every problem.
//! Unknown keys are tolerated, since newer SDKs add fields a local backend can ignore.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    pub pipeline_info: PipelineInfo,
    pub root: ComponentSpec,
    #[serde(default)]
    pub components: BTreeMap<String, ComponentSpec>,
    #[serde(default)]
    pub deployment_spec: DeploymentSpec,
    #[serde(default)]
    pub schema_version: Option<String>,
    #[serde(default)]
    pub sdk_version: Option<String>,
    #[serde(default)]
    pub default_pipeline_root: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineInfo {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    #[serde(default)]
    pub input_definitions: InterfaceDefinitions,
    #[serde(default)]
    pub output_definitions: InterfaceDefinitions,
    #[serde(default)]
    pub dag: Option<DagSpec>,
    #[serde(default)]
    pub executor_label: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceDefinitions {
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterSpec>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterType {
    String,
    NumberInteger,
    NumberDouble,
    Boolean,
    List,
    Struct,
    TaskFinalStatus,
    ParameterTypeEnumUnspecified,
}

impl ParameterType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "STRING",
            ParameterType::NumberInteger => "NUMBER_INTEGER",
            ParameterType::NumberDouble => "NUMBER_DOUBLE",
            ParameterType::Boolean => "BOOLEAN",
            ParameterType::List => "LIST",
            ParameterType::Struct => "STRUCT",
            ParameterType::TaskFinalStatus => "TASK_FINAL_STATUS",
            ParameterType::ParameterTypeEnumUnspecified => "PARAMETER_TYPE_ENUM_UNSPECIFIED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    pub parameter_type: ParameterType,
    #[serde(default)]
    pub is_optional: bool,
    #[serde(default)]
    pub default_value: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSpec {
    pub artifact_type: ArtifactTypeSchema,
    #[serde(default)]
    pub is_artifact_list: bool,
    #[serde(default)]
    pub is_optional: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactTypeSchema {
    #[serde(default = "default_schema_title")]
    pub schema_title: String,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
}

fn default_schema_title() -> String {
    "system.Artifact".to_owned()
}

fn default_schema_version() -> String {
    "0.0.1".to_owned()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagSpec {
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskSpec>,
    #[serde(default)]
    pub outputs: DagOutputsSpec,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputsSpec {
    #[serde(default)]
    pub parameters: BTreeMap<String, DagOutputParameterSpec>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, DagOutputArtifactSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputParameterSpec {
    #[serde(default)]
    pub value_from_parameter: Option<ParameterSelector>,
    #[serde(default)]
    pub value_from_oneof: Option<ParameterSelectorList>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSelectorList {
    #[serde(default)]
    pub parameter_selectors: Vec<ParameterSelector>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSelector {
    pub producer_subtask: String,
    pub output_parameter_key: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputArtifactSpec {
    #[serde(default)]
    pub artifact_selectors: Vec<ArtifactSelector>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSelector {
    pub producer_subtask: String,
    pub output_artifact_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    #[serde(default)]
    pub task_info: TaskInfo,
    pub component_ref: ComponentRef,
    #[serde(default)]
    pub dependent_tasks: Vec<String>,
    #[serde(default)]
    pub inputs: TaskInputsSpec,
    #[serde(default)]
    pub caching_options: Option<CachingOptions>,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    pub trigger_policy: Option<TriggerPolicy>,
    #[serde(default)]
    pub parameter_iterator: Option<ParameterIterator>,
    #[serde(default)]
    pub artifact_iterator: Option<ArtifactIterator>,
    #[serde(default)]
    pub iterator_policy: Option<IteratorPolicy>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInfo {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRef {
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInputsSpec {
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterInputSpec>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactInputSpec>,
}

/// Where a task input parameter's value comes from; exactly one source is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterInputSpec {
    #[serde(default)]
    pub component_input_parameter: Option<String>,
    #[serde(default)]
    pub task_output_parameter: Option<TaskOutputParameterSpec>,
    #[serde(default)]
    pub runtime_value: Option<RuntimeValue>,
    #[serde(default)]
    pub task_final_status: Option<TaskFinalStatusSpec>,
    #[serde(default)]
    pub parameter_expression_selector: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputParameterSpec {
    pub producer_task: String,
    pub output_parameter_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeValue {
    #[serde(default)]
    pub constant: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFinalStatusSpec {
    pub producer_task: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactInputSpec {
    #[serde(default)]
    pub task_output_artifact: Option<TaskOutputArtifactSpec>,
    #[serde(default)]
    pub component_input_artifact: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputArtifactSpec {
    pub producer_task: String,
    pub output_artifact_key: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachingOptions {
    #[serde(default)]
    pub enable_cache: bool,
    #[serde(default)]
    pub cache_key: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    #[serde(default)]
    pub max_retry_count: i64,
    #[serde(default)]
    pub backoff_duration: Option<String>,
    #[serde(default)]
    pub backoff_factor: Option<f64>,
    #[serde(default)]
    pub backoff_max_duration: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerPolicy {
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub strategy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterIterator {
    pub item_input: String,
    pub items: ItemsSpec,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemsSpec {
    #[serde(default)]
    pub raw: Option<String>,
    #[serde(default)]
    pub input_parameter: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactIterator {
    pub item_input: String,
    pub items: ArtifactItemsSpec,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactItemsSpec {
    #[serde(default)]
    pub input_artifact: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IteratorPolicy {
    #[serde(default)]
    pub parallelism_limit: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(default)]
    pub executors: BTreeMap<String, ExecutorSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorSpec {
    #[serde(default)]
    pub container: Option<ContainerSpec>,
    #[serde(default)]
    pub importer: Option<ImporterSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub resources: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImporterSpec {
    pub artifact_uri: ImporterUri,
    #[serde(default = "default_type_schema")]
    pub type_schema: ArtifactTypeSchema,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub reimport: bool,
}

fn default_type_schema() -> ArtifactTypeSchema {
    ArtifactTypeSchema { schema_title: default_schema_title(), schema_version: default_schema_version() }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImporterUri {
    #[serde(default)]
    pub constant: Option<Value>,
    #[serde(default)]
    pub runtime_parameter: Option<String>,
}
