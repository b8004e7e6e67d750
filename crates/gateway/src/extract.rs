//! Request extractors whose failures are problem+json, never axum's plain
//! text: the authenticated caller, query strings, and path ids.

use std::{collections::BTreeSet, sync::Arc};

use axum::{
    extract::{FromRequestParts, Query},
    http::{header, request::Parts, HeaderValue, StatusCode},
};
use serde::de::DeserializeOwned;

use crate::{
    auth::{Claims, Scope},
    hardening::VerifiedBearer,
    problem::ApiError,
    AppState,
};

/// Which accounts a caller may see.
#[derive(Debug, Clone)]
pub enum Entitlement {
    All,
    Only(BTreeSet<String>),
}

impl Entitlement {
    pub fn from_list(list: &[String]) -> Entitlement {
        if list.iter().any(|a| a == "*") {
            Entitlement::All
        } else {
            Entitlement::Only(list.iter().cloned().collect())
        }
    }

    pub fn allows(&self, account_id: &str) -> bool {
        match self {
            Entitlement::All => true,
            Entitlement::Only(set) => set.contains(account_id),
        }
    }
}

/// The prefix of a person's token subject (`user:<id>`); a client's is its
/// bare id (client ids cannot contain `:`).
pub const USER_SUBJECT_PREFIX: &str = "user:";

/// The authenticated caller of a request: a verified bearer token of a
/// client, or of a person (`sub` = `user:<id>`), that still exists in the
/// configuration.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's `sub`: a client id, or `user:<id>` for a person.
    pub subject: String,
    /// The person's id when the token is a user's.
    pub user: Option<String>,
    /// Shared with the verified-token cache: no copy per request.
    pub claims: std::sync::Arc<Claims>,
    pub entitlement: Entitlement,
}

impl Caller {
    /// 403 unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.claims.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "insufficient_scope",
                format!(
                    "this call needs the `{}` scope; request a token with it (the client must be allowed it)",
                    scope.as_str()
                ),
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&format!(
                    "Bearer realm=\"bankdirect\", error=\"insufficient_scope\", scope=\"{}\"",
                    scope.as_str()
                ))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer")),
            ))
        }
    }

    pub fn actor(&self) -> String {
        if self.user.is_some() {
            self.subject.clone()
        } else {
            format!("client:{}", self.subject)
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "no bearer token: get one from POST /oauth/token and send `Authorization: Bearer <token>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        // The edge verified this very header a moment ago when the token
        // was valid (crate::edge); verify here otherwise, for the reason.
        let claims = match parts.extensions.get::<VerifiedBearer>() {
            Some(VerifiedBearer(claims)) => Arc::clone(claims),
            None => state
                .tokens
                .verify_shared(token, state.clock.now())
                .map_err(|e| {
                    ApiError::unauthorized(format!("the bearer token was not accepted: {e}"))
                })?,
        };
        if let Some(user_id) = claims.sub.strip_prefix(USER_SUBJECT_PREFIX) {
            let Some(user) = state
                .config
                .users
                .iter()
                .find(|u| u.id.as_str() == user_id && u.password_hash.is_some())
            else {
                return Err(ApiError::unauthorized(
                    "the token's user is no longer configured; ask the operator",
                ));
            };
            return Ok(Caller {
                subject: claims.sub.clone(),
                user: Some(user.id.as_str().to_owned()),
                entitlement: Entitlement::from_list(&user.accounts),
                claims,
            });
        }
        let Some(client) = state.clients.get(&claims.sub) else {
            return Err(ApiError::unauthorized(
                "the token's client is no longer configured; ask the operator",
            ));
        };
        Ok(Caller {
            subject: claims.sub.clone(),
            user: None,
            entitlement: Entitlement::from_list(&client.accounts),
            claims,
        })
    }
}

/// Like axum's `Query`, with problem+json rejections that name the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The same deserializer axum's `Query` runs, without the path
        // tracking it wraps around it for its error message (an allocation
        // per parameter); a query that does not deserialize is run through
        // `Query` for that message.
        if let Ok(value) = serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()) {
            return Ok(ApiQuery(value));
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => {
                let text = rejection.body_text();
                let field = text
                    .split('`')
                    .nth(1)
                    .map(|f| format!("query.{f}"))
                    .unwrap_or_else(|| "query".to_owned());
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", text).with_field(field))
            }
        }
    }
}

/// The request id of a request (set by the request-id layer, or the
/// client's own), for audit records.
pub fn request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
