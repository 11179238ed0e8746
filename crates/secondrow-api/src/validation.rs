//! Parsing and validating a pipeline spec that a request carries: CPU work on the blocking pool, never on the
//! async workers, and bounded in time, so no spec can stall the server's other requests.
//! (`secondrow_spec::limits` bounds the text's size and nesting before the parser sees it.)

use std::time::Duration;

use serde_json::Value;

use secondrow_spec::{Pipeline, SpecError};

use crate::error::{ApiError, ApiResult};

/// The longest a spec may take to parse and validate.
pub const TIME_LIMIT: Duration = Duration::from_secs(10);

/// Validates YAML text (a pipeline upload).
pub async fn from_yaml(text: String) -> ApiResult<Pipeline> {
    bounded(move || Pipeline::from_yaml(&text)).await?.map_err(ApiError::from)
}

/// Validates a JSON spec (`pipeline_spec` of a run body, or a stored version).
pub async fn from_json(value: Value) -> ApiResult<Pipeline> {
    bounded(move || Pipeline::from_json(&value)).await?.map_err(ApiError::from)
}

/// Validates a JSON spec a body carries in `field`; the field names the spec's problems.
pub async fn from_json_at(field: &str, value: Value) -> ApiResult<Pipeline> {
    bounded(move || Pipeline::from_json(&value)).await?.map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

async fn bounded(
    work: impl FnOnce() -> Result<Pipeline, SpecError> + Send + 'static,
) -> ApiResult<Result<Pipeline, SpecError>> {
    match tokio::time::timeout(TIME_LIMIT, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(join)) => Err(ApiError::Internal(format!("validating the spec failed: {join}"))),
        Err(_) => Err(ApiError::invalid(format!(
            "the pipeline spec took longer than {} s to validate; simplify it",
            TIME_LIMIT.as_secs()
        ))),
    }
}
