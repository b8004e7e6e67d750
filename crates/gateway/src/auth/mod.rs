//! Authentication and authorisation: OAuth 2.0 client credentials and the
//! JWT access tokens they buy. Pure logic; the axum token endpoint, the JWKS
//! route and the bearer extractor live elsewhere in the gateway and call in
//! here.
//!
//! Layout:
//! - [`scope`]: the fixed [`Scope`] list and RFC 6749 §3.3 scope granting.
//! - [`client`]: client credentials (Basic header parsing), registered
//!   clients and [`ClientRegistry::authenticate`].
//! - [`token`]: [`TokenService`], which issues EdDSA-signed JWTs, verifies
//!   them against an injected clock and caches verified tokens until expiry,
//!   and publishes the JWKS.
//! - [`testing`]: builders of deliberately bad tokens for tests.
//!
//! Invariants: only EdDSA with our own key id is ever accepted; no error,
//! log or `Debug` output contains a token or a secret; an unknown client id
//! costs the same keyed hash as a wrong secret.

pub mod client;
pub mod scope;
pub mod testing;
pub mod token;

pub use client::{parse_basic_authorization, ClientCredentials, ClientRegistry, RegisteredClient};
pub use scope::{grant_scopes, Scope};
pub use token::{Claims, IssuedToken, TokenService, TokenSettings};

/// Why authentication or authorisation failed.
///
/// Maps onto OAuth 2.0 errors: `InvalidClient` → 401 `invalid_client`,
/// `InvalidScope` → 400 `invalid_scope`, `InvalidToken` → 401
/// `invalid_token`, `InsufficientScope` → 403 `insufficient_scope`,
/// `InvalidSettings` and `Internal` → 500. No variant ever carries a token
/// or a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown client id or wrong secret; deliberately not told apart.
    #[error("client authentication failed: unknown client or wrong secret")]
    InvalidClient,
    /// A requested scope is unknown or not granted to the client; names it.
    #[error("scope {0:?} is unknown or not allowed for this client")]
    InvalidScope(String),
    /// The access token is missing, malformed or fails verification.
    #[error("invalid access token: {0}")]
    InvalidToken(&'static str),
    /// A valid token that lacks the scope the operation needs.
    #[error("access token lacks the required scope {0}")]
    InsufficientScope(Scope),
    /// Token or client settings that cannot work (empty issuer, zero TTL,
    /// duplicate client id…): a configuration error at start-up.
    #[error("invalid auth settings: {0}")]
    InvalidSettings(String),
    /// A failure that is not the caller's fault (signing failed).
    #[error("internal auth error: {0}")]
    Internal(String),
}
