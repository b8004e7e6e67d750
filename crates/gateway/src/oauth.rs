//! `POST /oauth/token` (OAuth 2.0 client credentials, RFC 6749 §4.4, with
//! client_secret_basic or client_secret_post) and `GET /.well-known/jwks.json`.
//!
//! Every token request, granted or denied, is audited. Errors are
//! problem+json documents that also carry RFC 6749's `error` and
//! `error_description` members, so OAuth client libraries understand them.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use store::NewAuditRecord;
use utoipa::ToSchema;

use crate::{
    auth::{grant_scopes, parse_basic_authorization, ClientCredentials, Scope},
    config::{Role, UserConfig},
    extract::{request_id, USER_SUBJECT_PREFIX},
    problem::{ApiError, Problem},
    AppState,
};

/// Longest client id echoed into the audit log; longer ids are cut.
const MAX_AUDITED_CLIENT_ID_CHARS: usize = 64;

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> ApiError {
    let mut e = ApiError::new(status, error, description);
    e.problem.error = Some(error.to_owned());
    e.problem.error_description = Some(description.to_owned());
    e
}

/// Issues an access token for a client (client credentials grant). The
/// body is `application/x-www-form-urlencoded`: `grant_type=client_credentials`,
/// optional `scope`, and either HTTP Basic auth or `client_id` + `client_secret`.
/// People log in with `grant_type=password` (`username`, `password`, and
/// `totp` when they have an authenticator app; docs/approvals.md).
#[utoipa::path(post, path = "/oauth/token", tag = "auth",
    request_body(content_type = "application/x-www-form-urlencoded", description = "grant_type=client_credentials&scope=accounts:read (a client), or grant_type=password&username=approver1&password=…&totp=123456 (a person; totp only with a totp_secret)"),
    responses((status = 200, body = TokenResponse), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match issue(&state, &headers, &body).await {
        Ok(resp) => {
            let mut r = Json(resp).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn issue(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, ApiError> {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(body).map_err(|_| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        )
        .with_field("body")
    })?;
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some("password") => return issue_for_user(state, headers, &form).await,
        Some(_) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be client_credentials (machines) or password (people)",
            )
            .with_field("body.grant_type"))
        }
        None => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required (use client_credentials)",
            )
            .with_field("body.grant_type"))
        }
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| (v, parse_basic_authorization(v)));
    let posted = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => Some(ClientCredentials {
            client_id: id.clone(),
            client_secret: crypto::SecretString::new(secret.clone()),
        }),
        _ => None,
    };
    let (creds, method) = match (basic, posted) {
        (Some(_), Some(_)) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use one client authentication method: HTTP Basic or client_id/client_secret in the body, not both",
            ))
        }
        (Some((_, Some(c))), None) => (c, "client_secret_basic"),
        (Some((_, None)), None) => {
            return Err(deny(state, headers, "", "client_secret_basic", "malformed Authorization header").await)
        }
        (None, Some(c)) => (c, "client_secret_post"),
        (None, None) => {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required: HTTP Basic, or client_id and client_secret in the body",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bankdirect\""),
            ))
        }
    };
    let client = match state.clients.authenticate(&creds) {
        Ok(c) => c.clone(),
        Err(_) => {
            return Err(deny(
                state,
                headers,
                &creds.client_id,
                method,
                "wrong client id or secret",
            )
            .await)
        }
    };
    let scopes =
        grant_scopes(form.get("scope").map(String::as_str), &client.scopes).map_err(|e| {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &e.to_string())
                .with_field("body.scope")
        })?;
    let now = state.clock.now();
    let issued = state
        .tokens
        .issue(&client.id, &scopes, now)
        .map_err(|e| ApiError::internal("token issue", &e))?;
    let audit = NewAuditRecord {
        at: now,
        actor: format!("client:{}", client.id),
        action: "auth.token".to_owned(),
        object: format!("client:{}", client.id),
        request_id: request_id(headers),
        outcome: "granted".to_owned(),
        details: serde_json::json!({ "method": method, "scope": issued.scope }),
    };
    // A token must not be handed out without its audit record.
    state
        .store
        .append_audit(audit)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(TokenResponse {
        access_token: issued.access_token,
        token_type: issued.token_type.to_owned(),
        expires_in: issued.expires_in,
        scope: issued.scope,
    })
}

/// The scopes a person's roles allow (docs/approvals.md).
pub fn scopes_of_roles(roles: &[Role]) -> Vec<Scope> {
    let mut scopes = Vec::new();
    for role in roles {
        match role {
            Role::Viewer => scopes.push(Scope::AccountsRead),
            Role::Maker => scopes.push(Scope::PaymentsWrite),
            Role::Approver => scopes.push(Scope::PaymentsApprove),
            Role::Admin => scopes.extend(Scope::ALL),
        }
    }
    scopes.sort();
    scopes.dedup();
    scopes
}

/// A person's login (RFC 6749 §4.3): `username`, `password`, optional
/// `scope`, checked against the argon2id hash of `[[users]]`, and `totp`
/// (the authenticator app's 6-digit code) when the user has a
/// `totp_secret`. The token is the same kind as a client's, with `sub` =
/// `user:<id>`. A refusal is audited with its reason and answers the same
/// 401 whatever failed: it never says whether the user exists or which
/// factor was wrong; an unknown user costs the same hash verification as a
/// known one.
async fn issue_for_user(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<TokenResponse, ApiError> {
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type=password needs username and password",
        )
        .with_field("body"));
    };
    let password = crypto::SecretString::new(password.clone());
    let user = state
        .config
        .users
        .iter()
        .find(|u| u.id.as_str() == username.as_str());
    let hash = user.and_then(|u| u.password_hash.clone());
    let candidate = password.expose_secret().to_owned();
    let verified = tokio::task::spawn_blocking(move || {
        let candidate = crypto::Zeroizing::new(candidate);
        match hash {
            Some(h) => crypto::password::verify_password(&candidate, &h),
            None => {
                // Same work as a real check, so timing does not tell who exists.
                let _ = crypto::password::verify_password(&candidate, dummy_hash());
                false
            }
        }
    })
    .await
    .unwrap_or(false);
    let user = match user {
        Some(u) if verified => u,
        _ => return Err(deny_user(state, headers, username, "wrong username or password").await),
    };
    if let Err(reason) = check_totp(state, user, form.get("totp").map(String::as_str)) {
        return Err(deny_user(state, headers, username, reason).await);
    }
    let allowed = scopes_of_roles(&user.roles);
    let scopes = grant_scopes(form.get("scope").map(String::as_str), &allowed).map_err(|e| {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &e.to_string())
            .with_field("body.scope")
    })?;
    let subject = format!("{USER_SUBJECT_PREFIX}{}", user.id);
    let now = state.clock.now();
    let issued = state
        .tokens
        .issue(&subject, &scopes, now)
        .map_err(|e| ApiError::internal("token issue", &e))?;
    state
        .store
        .append_audit(NewAuditRecord {
            at: now,
            actor: subject.clone(),
            action: "auth.token".to_owned(),
            object: subject,
            request_id: request_id(headers),
            outcome: "granted".to_owned(),
            details: serde_json::json!({ "method": "password", "scope": issued.scope }),
        })
        .await
        .map_err(|e| ApiError::storage(&e))?;
    Ok(TokenResponse {
        access_token: issued.access_token,
        token_type: issued.token_type.to_owned(),
        expires_in: issued.expires_in,
        scope: issued.scope,
    })
}

/// Checks the second factor of a user whose password is right. `Err` is the
/// reason for the audit log (never the code): `totp missing`, `totp
/// malformed`, `totp wrong` or `totp replayed`. A user without a
/// `totp_secret` passes.
fn check_totp(state: &AppState, user: &UserConfig, code: Option<&str>) -> Result<(), &'static str> {
    let Some(secret) = &user.totp_secret else {
        return Ok(());
    };
    let params = crypto::totp::AUTHENTICATOR;
    let code = code.ok_or("totp missing")?;
    if code.len() != params.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err("totp malformed");
    }
    // Validated when the configuration was loaded; fail closed regardless.
    let key = crypto::totp::TotpKey::from_base32(secret.expose_secret())
        .map_err(|_| "totp secret unusable")?;
    let step = key
        .verify(code, state.clock.now().timestamp(), params)
        .ok_or("totp wrong")?;
    if !state.totp_steps.claim(user.id.as_str(), step) {
        return Err("totp replayed");
    }
    Ok(())
}

/// The last accepted TOTP step of each user of this running app (a field of
/// `AppParts`). In memory only: with several gateway instances, or after a
/// restart, a code can be used once more within its window
/// (docs/approvals.md).
#[derive(Debug, Default)]
pub struct TotpSteps(Mutex<HashMap<String, u64>>);

impl TotpSteps {
    /// Records `step` as `user`'s last accepted one if it is later than the
    /// last; `false` means the code's step (or a later one) was already
    /// used: a replay, refused (RFC 6238 §5.2).
    pub fn claim(&self, user: &str, step: u64) -> bool {
        // A panic while holding the lock leaves a whole map behind: still usable.
        let mut steps = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match steps.get(user) {
            Some(&last) if step <= last => false,
            _ => {
                steps.insert(user.to_owned(), step);
                true
            }
        }
    }
}

/// A valid argon2id hash of nothing anyone knows, made once.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        crypto::password::hash_password(crypto::generate_client_secret().expose_secret())
            .unwrap_or_default()
    })
}

/// Audits a refused token request (`auth.token`, outcome `denied`) made in
/// the name of `name` (`prefix` + name as actor and object). A configured
/// name (`known`) is named; any other is kept only as a keyed fingerprint
/// under `fingerprint_key` in the details, since it may be a password or a
/// secret typed in the wrong field. Never the credential itself.
async fn audit_denied(
    state: &AppState,
    headers: &HeaderMap,
    prefix: &str,
    name: &str,
    known: bool,
    fingerprint_key: &str,
    mut details: serde_json::Value,
) {
    let shown: String = if known {
        name.chars()
            .filter(|c| !c.is_control())
            .take(MAX_AUDITED_CLIENT_ID_CHARS)
            .collect()
    } else {
        details[fingerprint_key] = serde_json::json!(state.clients.fingerprint(name));
        "?".to_owned()
    };
    let audit = NewAuditRecord {
        at: state.clock.now(),
        actor: format!("{prefix}{shown}"),
        action: "auth.token".to_owned(),
        object: format!("{prefix}{shown}"),
        request_id: request_id(headers),
        outcome: "denied".to_owned(),
        details,
    };
    if let Err(e) = state.store.append_audit(audit).await {
        tracing::error!(error = %e, "could not audit a refused token request");
    }
}

/// Audits a refused login with its reason (never the password or code) and
/// builds the 401, the same whatever the reason.
async fn deny_user(
    state: &AppState,
    headers: &HeaderMap,
    username: &str,
    reason: &'static str,
) -> ApiError {
    let known = state.config.users.iter().any(|u| u.id.as_str() == username);
    let reason = if known { reason } else { "unknown user" };
    audit_denied(
        state,
        headers,
        USER_SUBJECT_PREFIX,
        username,
        known,
        "username_fingerprint",
        serde_json::json!({ "method": "password", "reason": reason }),
    )
    .await;
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_grant",
        "login failed: check the username, the password and, if you use one, the authenticator code",
    )
}

/// Audits a refused client authentication and builds the 401.
async fn deny(
    state: &AppState,
    headers: &HeaderMap,
    client_id: &str,
    method: &str,
    reason: &str,
) -> ApiError {
    audit_denied(
        state,
        headers,
        "client:",
        client_id,
        state.clients.get(client_id).is_some(),
        "client_id_fingerprint",
        serde_json::json!({ "method": method, "reason": reason }),
    )
    .await;
    let mut err = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed: check the client id and secret",
    );
    if method == "client_secret_basic" {
        err = err.with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"bankdirect\""),
        );
    }
    err
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.tokens.jwks())
}
