//! The `Authorization: Bearer cai_…` extractor. Scope checks happen in handlers, which know
//! what they need.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use domain::api_key::{AuthError, Principal, Scope};

use crate::error::ApiError;
use crate::state::AppState;

/// The verified caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.has_scope(scope) { Ok(()) } else { Err(ApiError::MissingScope(scope)) }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = state.authenticate(bearer(&parts.headers)?).await?;
        Ok(Caller(principal))
    }
}

/// The key in an `Authorization: Bearer …` header (REST and GraphQL alike).
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, AuthError> {
    let header = headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    header
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or(AuthError::Invalid)
}
