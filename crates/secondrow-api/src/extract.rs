//! Our extractors: the same error JSON for malformed bodies, queries and paths as for everything else.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; an empty body reads as `{}` (action calls send none).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        serde_json::from_slice(bytes).map(ApiJson).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))
    }
}

/// The 413 of a body over [`crate::BODY_LIMIT`].
pub fn too_large() -> ApiError {
    ApiError::TooLarge(format!("the request body is larger than the limit of {} MiB", crate::BODY_LIMIT >> 20))
}

/// A body that could not be read: over the limit is 413 (with the limit in the message), else 400.
pub fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::invalid(format!("reading the body: {}", e.body_text()))
    }
}

/// A multipart body that could not be read: over the limit is 413, else 400.
pub fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::invalid(format!("multipart body: {}", e.body_text()))
    }
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::invalid(format!("query: {}", e.body_text())))
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::invalid(format!("path: {}", e.body_text())))
    }
}

/// Splits `ID:action` (KFP's custom-method paths, `/runs/abc:terminate`).
pub fn split_action(id_action: &str) -> Result<(&str, &str), ApiError> {
    id_action
        .rsplit_once(':')
        .filter(|(id, action)| !id.is_empty() && !action.is_empty())
        .ok_or_else(|| ApiError::NotFound(format!("no method in `{id_action}` (expected `ID:action`)")))
}
