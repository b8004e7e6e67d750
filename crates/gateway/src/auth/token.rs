//! Access tokens: EdDSA-signed JWTs (RFC 7519, RFC 8037) issued to clients
//! and verified on every API call.
//!
//! Verification accepts exactly one algorithm (EdDSA) and one key (our
//! `kid`), so `alg: none`, HMAC-with-the-public-key and foreign keys fail
//! before any signature check. Time comes from the caller (`now`), never from
//! the system clock, so tests and fault runs are reproducible; jsonwebtoken's
//! own `exp`/`nbf` checks (which read the system clock) are switched off and
//! done here.
//!
//! Verified tokens are cached by their exact text until they expire (an
//! exact match: no hash collision can make one token pass as another; the
//! size is bounded by the cache capacity and the token length limit),
//! so a busy client costs one signature check per token rather than per call.
//! A cache hit still re-checks `exp` and `nbf` against `now`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::scope::format_scopes;
use super::{AuthError, Scope};

pub const DEFAULT_TOKEN_TTL_S: u64 = 900;
pub const DEFAULT_LEEWAY_S: u64 = 5;
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// Longest token lifetime allowed in settings: a day. Tokens cannot be
/// revoked, so their lifetime bounds how long a leaked one is useful.
pub const MAX_TOKEN_TTL_S: u64 = 86_400;

/// Largest clock-skew allowance allowed in settings.
pub const MAX_LEEWAY_S: u64 = 300;

/// Longest token text [`TokenService::verify`] looks at; ours are ~450 bytes.
pub const MAX_TOKEN_LEN_BYTES: usize = 4096;

/// The JOSE `alg` value we sign with and the only one we accept.
const JWS_ALG: &str = "EdDSA";

/// How a [`TokenService`] issues and checks tokens.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` claim; must match exactly on verification.
    pub issuer: String,
    /// `aud` claim; must match exactly on verification.
    pub audience: String,
    /// Token lifetime, 1..=[`MAX_TOKEN_TTL_S`].
    pub ttl_s: u64,
    /// Clock skew tolerated on `exp` and `nbf`, 0..=[`MAX_LEEWAY_S`].
    pub leeway_s: u64,
    /// Most verified tokens kept in the cache; 0 disables the cache.
    pub cache_capacity: usize,
}

impl TokenSettings {
    /// Settings with the default TTL (900 s), leeway (5 s) and cache
    /// capacity (100 000).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            ttl_s: DEFAULT_TOKEN_TTL_S,
            leeway_s: DEFAULT_LEEWAY_S,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }

    fn check(&self) -> Result<(), AuthError> {
        let problem = if self.issuer.is_empty() {
            "issuer must not be empty".to_owned()
        } else if self.audience.is_empty() {
            "audience must not be empty".to_owned()
        } else if self.ttl_s == 0 || self.ttl_s > MAX_TOKEN_TTL_S {
            format!("ttl_s must be 1 to {MAX_TOKEN_TTL_S}, got {}", self.ttl_s)
        } else if self.leeway_s > MAX_LEEWAY_S {
            format!(
                "leeway_s must be at most {MAX_LEEWAY_S}, got {}",
                self.leeway_s
            )
        } else {
            return Ok(());
        };
        Err(AuthError::InvalidSettings(problem))
    }
}

/// The token endpoint's success response body (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: &'static str,
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

/// The claims of our access tokens. All are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The client id.
    pub sub: String,
    pub aud: String,
    /// Seconds since the Unix epoch.
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    /// Unique token id (UUID v4), for audit records.
    pub jti: String,
    /// Granted scopes, space-separated.
    pub scope: String,
}

impl Claims {
    /// The granted scopes this build knows; unknown names are skipped.
    pub fn scopes(&self) -> Vec<Scope> {
        self.scope.split(' ').filter_map(Scope::parse).collect()
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scope.split(' ').any(|name| name == scope.as_str())
    }

    /// `Ok` if the token carries `scope`, else [`AuthError::InsufficientScope`].
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(scope))
        }
    }
}

/// Verified tokens and their claims, by the token's text.
type TokenCache = HashMap<Box<str>, Arc<Claims>, TailHash>;

/// The token cache's hasher: keyed SipHash (std's, random keys per process)
/// over the last 64 bytes of the token, which are its signature. A token is
/// about 500 bytes and is looked up on every request; its signature alone
/// tells tokens apart, and only verified tokens are ever stored, so no
/// caller can fill the map with keys of its choosing. Equality still
/// compares the whole text.
#[derive(Debug, Default, Clone)]
struct TailHash(std::collections::hash_map::RandomState);

/// Bytes of a token's end that [`TailHash`] hashes.
const TOKEN_TAIL_HASHED_BYTES: usize = 64;

impl std::hash::BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(std::hash::BuildHasher::build_hasher(&self.0))
    }
}

struct TailHasher(std::collections::hash_map::DefaultHasher);

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let from = bytes.len().saturating_sub(TOKEN_TAIL_HASHED_BYTES);
        std::hash::Hasher::write(&mut self.0, bytes.get(from..).unwrap_or(bytes));
    }

    fn finish(&self) -> u64 {
        std::hash::Hasher::finish(&self.0)
    }
}

/// Issues and verifies access tokens with one Ed25519 key.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// JWK `x`: the public key, base64url.
    public_x: String,
    /// RFC 7638 thumbprint of the public JWK.
    kid: String,
    settings: TokenSettings,
    /// Token text → its verified claims.
    cache: Mutex<TokenCache>,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService")
            .field("kid", &self.kid)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// Checks `settings`, then proves the key works by signing and verifying
    /// a probe token, so a key the JWT library cannot use fails at start-up
    /// rather than on the first token request.
    pub fn new(key: &crypto::Ed25519Key, settings: TokenSettings) -> Result<Self, AuthError> {
        settings.check()?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| AuthError::Internal(format!("token signing key: {e}")))?;
        let public = key.public_key_bytes();
        let public_x = URL_SAFE_NO_PAD.encode(public);
        let kid = jwk_thumbprint(&public_x);

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.reject_tokens_expiring_in_less_than = 0;
        validation.required_spec_claims = ["exp", "nbf", "iss", "aud", "sub"]
            .into_iter()
            .map(str::to_owned)
            .collect::<HashSet<_>>();
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.validate_aud = true;

        let service = Self {
            encoding: EncodingKey::from_ed_der(&der),
            decoding: DecodingKey::from_ed_der(&public),
            validation,
            public_x,
            kid,
            settings,
            cache: Mutex::new(TokenCache::default()),
        };
        // A fixed instant: the probe checks the key, not the clock.
        let probe_time = DateTime::<Utc>::UNIX_EPOCH;
        let probe = service.issue("token-service-self-test", &[], probe_time)?;
        service
            .verify_uncached(&probe.access_token, probe_time)
            .map_err(|e| AuthError::Internal(format!("token key self-test failed: {e}")))?;
        Ok(service)
    }

    /// The key id (RFC 7638 thumbprint) put in every token header and in the
    /// JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The claims [`TokenService::issue`] would sign for `subject` at `now`
    /// (with a fresh `jti`). Tests alter these to forge bad tokens.
    pub fn claims_for(
        &self,
        subject: &str,
        scopes: &[Scope],
        now: DateTime<Utc>,
    ) -> Result<Claims, AuthError> {
        let iat = now.timestamp();
        let exp = i64::try_from(self.settings.ttl_s)
            .ok()
            .and_then(|ttl_s| iat.checked_add(ttl_s))
            .ok_or_else(|| AuthError::Internal("token expiry overflows i64 seconds".to_owned()))?;
        Ok(Claims {
            iss: self.settings.issuer.clone(),
            sub: subject.to_owned(),
            aud: self.settings.audience.clone(),
            exp,
            nbf: iat,
            iat,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: format_scopes(scopes),
        })
    }

    /// Signs a token for `subject` (the client id) with `scopes`, valid from
    /// `now` for `ttl_s` seconds.
    pub fn issue(
        &self,
        subject: &str,
        scopes: &[Scope],
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, AuthError> {
        if subject.is_empty() {
            return Err(AuthError::Internal(
                "token subject must not be empty".to_owned(),
            ));
        }
        let claims = self.claims_for(subject, scopes, now)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("signing access token failed: {e}")))?;
        Ok(IssuedToken {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.ttl_s,
            scope: claims.scope,
        })
    }

    /// The claims of `token` if it is ours and valid at `now`.
    ///
    /// Errors are [`AuthError::InvalidToken`] with a short reason: "malformed",
    /// "unsupported algorithm", "unknown key", "bad signature", "wrong
    /// issuer", "wrong audience", "expired", "not yet valid".
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, AuthError> {
        self.verify_shared(token, now).map(|c| (*c).clone())
    }

    /// As [`TokenService::verify`], sharing the cached claims instead of
    /// copying them (the per-request path of the API).
    pub fn verify_shared(&self, token: &str, now: DateTime<Utc>) -> Result<Arc<Claims>, AuthError> {
        if token.len() > MAX_TOKEN_LEN_BYTES {
            return Err(AuthError::InvalidToken("malformed"));
        }
        if self.settings.cache_capacity > 0 {
            let mut cache = self.lock_cache();
            if let Some(claims) = cache.get(token) {
                return match self.check_times(claims, now) {
                    Ok(()) => Ok(Arc::clone(claims)),
                    Err(err) => {
                        // Past exp it can never become valid again; "not yet
                        // valid" can, so that entry stays.
                        if matches!(err, AuthError::InvalidToken("expired")) {
                            cache.remove(token);
                        }
                        Err(err)
                    }
                };
            }
        }
        let claims = Arc::new(self.verify_uncached(token, now)?);
        self.remember(token, &claims, now);
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, AuthError> {
        self.check_header(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::InvalidToken(reason_for(e.kind())))?;
        self.check_times(&data.claims, now)?;
        Ok(data.claims)
    }

    /// Checks the JOSE header ourselves before the JWT library sees it, so
    /// the reason is precise and nothing but EdDSA under our kid ever reaches
    /// a signature check.
    fn check_header(&self, token: &str) -> Result<(), AuthError> {
        const MALFORMED: AuthError = AuthError::InvalidToken("malformed");
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MALFORMED);
        };
        let header_json = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| MALFORMED)?;
        let serde_json::Value::Object(header) =
            serde_json::from_slice::<serde_json::Value>(&header_json).map_err(|_| MALFORMED)?
        else {
            return Err(MALFORMED);
        };
        match header.get("alg") {
            Some(serde_json::Value::String(alg)) if alg == JWS_ALG => {}
            Some(serde_json::Value::String(_)) => {
                return Err(AuthError::InvalidToken("unsupported algorithm"))
            }
            _ => return Err(MALFORMED),
        }
        // RFC 7515 §4.1.11: we understand no critical extensions, so any
        // "crit" means we cannot process the token correctly.
        if header.contains_key("crit") {
            return Err(MALFORMED);
        }
        match header.get("typ") {
            None => {}
            Some(serde_json::Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => {}
            Some(_) => return Err(MALFORMED),
        }
        match header.get("kid") {
            Some(serde_json::Value::String(kid)) if *kid == self.kid => Ok(()),
            _ => Err(AuthError::InvalidToken("unknown key")),
        }
    }

    /// RFC 7519: valid while `now < exp` and from `nbf` on, each widened by
    /// the leeway.
    fn check_times(&self, claims: &Claims, now: DateTime<Utc>) -> Result<(), AuthError> {
        let now_s = now.timestamp();
        // leeway_s is at most MAX_LEEWAY_S (checked in new), so this fits.
        let leeway_s = i64::try_from(self.settings.leeway_s).unwrap_or(0);
        if now_s >= claims.exp.saturating_add(leeway_s) {
            return Err(AuthError::InvalidToken("expired"));
        }
        if now_s.saturating_add(leeway_s) < claims.nbf {
            return Err(AuthError::InvalidToken("not yet valid"));
        }
        Ok(())
    }

    fn remember(&self, token: &str, claims: &Arc<Claims>, now: DateTime<Utc>) {
        let capacity = self.settings.cache_capacity;
        if capacity == 0 {
            return;
        }
        let now_s = now.timestamp();
        let leeway_s = i64::try_from(self.settings.leeway_s).unwrap_or(0);
        let mut cache = self.lock_cache();
        if cache.len() >= capacity {
            cache.retain(|_, cached| now_s < cached.exp.saturating_add(leeway_s));
            if cache.len() >= capacity {
                // Every entry is still live. Drop an arbitrary eighth, not
                // just one, so the next inserts do not each pay for a full
                // sweep; an evicted token is merely verified again.
                let evict = (cache.len() + 1 - capacity).max(capacity / 8);
                let victims: Vec<Box<str>> = cache.keys().take(evict).cloned().collect();
                for victim in victims {
                    cache.remove(&victim);
                }
            }
        }
        cache.insert(token.into(), Arc::clone(claims));
    }

    /// A panic while the lock was held cannot leave the map half-updated in
    /// a way that matters (entries are whole verified claims), so a poisoned
    /// lock is used as is rather than failing every request from then on.
    fn lock_cache(&self) -> MutexGuard<'_, TokenCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn cached_len(&self) -> usize {
        self.lock_cache().len()
    }

    /// The JSON Web Key Set (RFC 7517) with our one public key.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": self.public_x,
                "kid": self.kid,
                "alg": JWS_ALG,
                "use": "sig",
            }]
        })
    }
}

/// RFC 7638 thumbprint of an Ed25519 OKP JWK (RFC 8037 §2): SHA-256 over the
/// required members in lexicographic order with no whitespace, base64url.
fn jwk_thumbprint(public_x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{public_x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn reason_for(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "unsupported algorithm",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testing::{forge_alg_none, forge_hs256_with_key, sign_with};
    use chrono::{Duration, TimeZone as _};
    use crypto::Ed25519Key;

    const ISSUER: &str = "https://bankdirect.test";
    const AUDIENCE: &str = "bankdirect-api";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53).unwrap()
    }

    fn key() -> Ed25519Key {
        Ed25519Key::from_seed([7; 32])
    }

    fn service_with(settings: TokenSettings) -> TokenService {
        TokenService::new(&key(), settings).unwrap()
    }

    #[test]
    fn the_token_cache_tells_apart_tokens_that_end_alike() {
        // Only the tail is hashed; equality is the whole text, so tokens
        // that differ before their last 64 bytes are different entries.
        let tail = "s".repeat(TOKEN_TAIL_HASHED_BYTES);
        let (a, b) = (
            format!("header.claims-a.{tail}"),
            format!("header.claims-b.{tail}"),
        );
        let mut cache = TokenCache::default();
        let claims = |sub: &str| {
            Arc::new(Claims {
                iss: ISSUER.to_owned(),
                sub: sub.to_owned(),
                aud: AUDIENCE.to_owned(),
                exp: 2,
                nbf: 0,
                iat: 0,
                jti: "j".to_owned(),
                scope: String::new(),
            })
        };
        cache.insert(a.clone().into_boxed_str(), claims("a"));
        assert!(!cache.contains_key(b.as_str()));
        cache.insert(b.clone().into_boxed_str(), claims("b"));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache[a.as_str()].sub, "a");
        assert_eq!(cache[b.as_str()].sub, "b");
        // A token shorter than the tail is hashed whole.
        cache.insert("short".into(), claims("short"));
        assert_eq!(cache["short"].sub, "short");
        // Only the tail is hashed: tokens that end alike hash alike, and a
        // change in the tail changes the hash.
        use std::hash::BuildHasher as _;
        let hasher = cache.hasher();
        assert_eq!(hasher.hash_one(a.as_str()), hasher.hash_one(b.as_str()));
        let other_tail = format!("header.claims-a.{}", "t".repeat(TOKEN_TAIL_HASHED_BYTES));
        assert_ne!(
            hasher.hash_one(a.as_str()),
            hasher.hash_one(other_tail.as_str())
        );
    }

    fn service() -> TokenService {
        service_with(TokenSettings::new(ISSUER, AUDIENCE))
    }

    fn reason(result: Result<Claims, AuthError>) -> &'static str {
        match result {
            Err(AuthError::InvalidToken(reason)) => reason,
            other => panic!("expected InvalidToken, got {other:?}"),
        }
    }

    fn header_of(token: &str) -> serde_json::Value {
        let header = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
    }

    #[test]
    fn token_service_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TokenService>();
        assert_send_sync::<crate::auth::ClientRegistry>();
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint_from_rfc8037() {
        // RFC 8037 Appendix A.1 (key) and A.3 (thumbprint).
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let key = Ed25519Key::from_seed(d.try_into().unwrap());
        let service = TokenService::new(&key, TokenSettings::new(ISSUER, AUDIENCE)).unwrap();
        assert_eq!(service.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let jwks = service.jwks();
        assert_eq!(
            jwks,
            serde_json::json!({"keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
                "alg": "EdDSA",
                "use": "sig",
            }]})
        );
    }

    #[test]
    fn issued_token_verifies_with_all_claims() {
        let service = service();
        let issued = service
            .issue("erp", &[Scope::PaymentsWrite, Scope::AccountsRead], now())
            .unwrap();
        assert_eq!(issued.token_type, "Bearer");
        assert_eq!(issued.expires_in, 900);
        assert_eq!(issued.scope, "accounts:read payments:write");
        let header = header_of(&issued.access_token);
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], service.kid());

        let claims = service.verify(&issued.access_token, now()).unwrap();
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, AUDIENCE);
        assert_eq!(claims.sub, "erp");
        assert_eq!(claims.iat, now().timestamp());
        assert_eq!(claims.nbf, now().timestamp());
        assert_eq!(claims.exp, now().timestamp() + 900);
        assert_eq!(
            uuid::Uuid::parse_str(&claims.jti)
                .unwrap()
                .get_version_num(),
            4
        );
        assert_eq!(
            claims.scopes(),
            vec![Scope::AccountsRead, Scope::PaymentsWrite]
        );
        assert!(claims.has_scope(Scope::PaymentsWrite));
        assert!(!claims.has_scope(Scope::PaymentsApprove));
        assert!(claims.require(Scope::AccountsRead).is_ok());
        assert!(matches!(
            claims.require(Scope::Admin),
            Err(AuthError::InsufficientScope(Scope::Admin))
        ));

        let again = service.issue("erp", &[Scope::AccountsRead], now()).unwrap();
        let again = service.verify(&again.access_token, now()).unwrap();
        assert_ne!(again.jti, claims.jti);
    }

    #[test]
    fn token_is_valid_until_exp_plus_leeway() {
        let service = service_with(TokenSettings {
            cache_capacity: 0,
            ..TokenSettings::new(ISSUER, AUDIENCE)
        });
        let token = service.issue("erp", &[], now()).unwrap().access_token;
        let exp = now() + Duration::seconds(900);
        assert!(service.verify(&token, exp - Duration::seconds(1)).is_ok());
        assert!(service.verify(&token, exp + Duration::seconds(4)).is_ok());
        assert_eq!(
            reason(service.verify(&token, exp + Duration::seconds(5))),
            "expired"
        );
    }

    #[test]
    fn expired_token_is_rejected() {
        let service = service();
        let mut claims = service.claims_for("erp", &[], now()).unwrap();
        claims.iat -= 3600;
        claims.nbf -= 3600;
        claims.exp = now().timestamp() - 60;
        let token = sign_with(&key(), service.kid(), &claims);
        assert_eq!(reason(service.verify(&token, now())), "expired");
    }

    #[test]
    fn not_yet_valid_token_is_rejected() {
        let service = service();
        let mut claims = service.claims_for("erp", &[], now()).unwrap();
        claims.nbf = now().timestamp() + 60;
        claims.exp = now().timestamp() + 960;
        let token = sign_with(&key(), service.kid(), &claims);
        assert_eq!(reason(service.verify(&token, now())), "not yet valid");
        // Within the leeway it is accepted.
        assert!(service
            .verify(&token, now() + Duration::seconds(56))
            .is_ok());
    }

    #[test]
    fn token_signed_by_another_key_is_rejected() {
        let service = service();
        let claims = service.claims_for("erp", &Scope::ALL, now()).unwrap();
        let token = sign_with(&Ed25519Key::generate(), service.kid(), &claims);
        assert_eq!(reason(service.verify(&token, now())), "bad signature");
    }

    #[test]
    fn token_with_tampered_claims_is_rejected() {
        let service = service();
        let token = service
            .issue("erp", &[Scope::AccountsRead], now())
            .unwrap()
            .access_token;
        let mut claims = service.verify(&token, now()).unwrap();
        claims.scope = "accounts:read admin".to_owned();
        let forged_payload = sign_with(&key(), service.kid(), &claims);
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = forged_payload.split('.').nth(1).unwrap();
        assert_eq!(
            reason(service.verify(&parts.join("."), now())),
            "bad signature"
        );
    }

    #[test]
    fn sign_with_the_service_key_produces_a_token_the_service_accepts() {
        // Keeps testing::sign_with honest: its "bad" tokens differ from a
        // good one only in what each test changes.
        let service = service();
        let claims = service
            .claims_for("erp", &[Scope::AuditRead], now())
            .unwrap();
        let token = sign_with(&key(), service.kid(), &claims);
        assert_eq!(service.verify(&token, now()).unwrap(), claims);
    }

    #[test]
    fn alg_none_is_rejected() {
        let service = service();
        let claims = service.claims_for("erp", &Scope::ALL, now()).unwrap();
        let token = forge_alg_none(&claims);
        assert!(token.ends_with('.'));
        assert_eq!(
            reason(service.verify(&token, now())),
            "unsupported algorithm"
        );
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_rejected() {
        let service = service();
        let claims = service.claims_for("erp", &Scope::ALL, now()).unwrap();
        let public = key().public_key_bytes();
        let token = forge_hs256_with_key(&claims, &public, service.kid());
        assert_eq!(
            reason(service.verify(&token, now())),
            "unsupported algorithm"
        );
        let x = service.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
        let token = forge_hs256_with_key(&claims, x.as_bytes(), service.kid());
        assert_eq!(
            reason(service.verify(&token, now())),
            "unsupported algorithm"
        );
    }

    #[test]
    fn wrong_issuer_is_rejected() {
        let service = service();
        let mut claims = service.claims_for("erp", &[], now()).unwrap();
        claims.iss = "https://evil.test".to_owned();
        let token = sign_with(&key(), service.kid(), &claims);
        assert_eq!(reason(service.verify(&token, now())), "wrong issuer");
    }

    #[test]
    fn wrong_audience_is_rejected() {
        let service = service();
        let mut claims = service.claims_for("erp", &[], now()).unwrap();
        claims.aud = "some-other-api".to_owned();
        let token = sign_with(&key(), service.kid(), &claims);
        assert_eq!(reason(service.verify(&token, now())), "wrong audience");
    }

    #[test]
    fn token_from_another_service_with_the_same_key_but_other_audience_is_rejected() {
        let other = service_with(TokenSettings::new(ISSUER, "another-api"));
        let token = other.issue("erp", &[], now()).unwrap().access_token;
        assert_eq!(reason(service().verify(&token, now())), "wrong audience");
    }

    #[test]
    fn wrong_or_missing_kid_is_rejected() {
        let service = service();
        let claims = service.claims_for("erp", &[], now()).unwrap();
        let token = sign_with(&key(), "some-other-kid", &claims);
        assert_eq!(reason(service.verify(&token, now())), "unknown key");
        let token = sign_with(&key(), "", &claims);
        assert_eq!(reason(service.verify(&token, now())), "unknown key");
    }

    fn jws(header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = key().sign_bytes(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn garbage_and_malformed_tokens_are_rejected() {
        let service = service();
        let kid = service.kid().to_owned();
        let good = service.issue("erp", &[], now()).unwrap().access_token;
        let claims =
            serde_json::to_string(&service.claims_for("erp", &[], now()).unwrap()).unwrap();
        let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#);
        let cases = [
            String::new(),
            "garbage".to_owned(),
            "a.b".to_owned(),
            "a.b.c".to_owned(),
            "a.b.c.d".to_owned(),
            format!("{good}.extra"),
            format!("{good}x"),
            "x".repeat(MAX_TOKEN_LEN_BYTES + 1),
            jws("[1,2]", &claims),
            jws("not json", &claims),
            jws(&format!(r#"{{"typ":"JWT","kid":"{kid}"}}"#), &claims),
            jws(
                &format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":["exp"]}}"#),
                &claims,
            ),
            jws(
                &format!(r#"{{"alg":"EdDSA","typ":"JOSE+JSON","kid":"{kid}"}}"#),
                &claims,
            ),
            jws(&header, "not json"),
            jws(&header, r#"{"iss":"https://bankdirect.test"}"#),
            jws(
                &header,
                &claims.replace(r#""aud":"bankdirect-api""#, r#""aud":["bankdirect-api"]"#),
            ),
        ];
        for token in cases {
            let shown: String = token.chars().take(80).collect();
            assert_eq!(
                reason(service.verify(&token, now())),
                "malformed",
                "{shown}"
            );
        }
    }

    #[test]
    fn errors_never_contain_the_token() {
        let service = service();
        let claims = service.claims_for("erp", &[], now()).unwrap();
        let token = sign_with(&Ed25519Key::generate(), service.kid(), &claims);
        let err = service.verify(&token, now()).unwrap_err();
        let signature = token.rsplit('.').next().unwrap();
        assert!(!format!("{err} {err:?}").contains(signature));
    }

    #[test]
    fn cached_token_verifies_to_the_same_claims() {
        let service = service();
        let token = service
            .issue("erp", &[Scope::AccountsRead], now())
            .unwrap()
            .access_token;
        let first = service.verify(&token, now()).unwrap();
        assert_eq!(service.cached_len(), 1);
        let second = service
            .verify(&token, now() + Duration::seconds(10))
            .unwrap();
        assert_eq!(first, second);
        assert_eq!(service.cached_len(), 1);
    }

    #[test]
    fn cached_token_past_exp_is_rejected_and_dropped() {
        let service = service();
        let token = service.issue("erp", &[], now()).unwrap().access_token;
        service.verify(&token, now()).unwrap();
        assert_eq!(service.cached_len(), 1);
        let later = now() + Duration::seconds(900 + 5);
        assert_eq!(reason(service.verify(&token, later)), "expired");
        // Only the cache-hit path removes entries, so this shows the hit
        // path itself re-checked exp.
        assert_eq!(service.cached_len(), 0);
    }

    #[test]
    fn cached_token_is_rejected_before_nbf() {
        let service = service();
        let token = service.issue("erp", &[], now()).unwrap().access_token;
        service.verify(&token, now()).unwrap();
        let earlier = now() - Duration::seconds(60);
        assert_eq!(reason(service.verify(&token, earlier)), "not yet valid");
        assert!(service.verify(&token, now()).is_ok());
    }

    #[test]
    fn cache_stays_within_capacity() {
        let service = service_with(TokenSettings {
            cache_capacity: 3,
            ..TokenSettings::new(ISSUER, AUDIENCE)
        });
        let tokens: Vec<String> = (0..10)
            .map(|i| {
                service
                    .issue(&format!("client-{i}"), &[], now())
                    .unwrap()
                    .access_token
            })
            .collect();
        for token in &tokens {
            service.verify(token, now()).unwrap();
            assert!(service.cached_len() <= 3);
        }
        // Evicted tokens are verified again, not refused.
        for token in &tokens {
            service.verify(token, now()).unwrap();
        }
    }

    #[test]
    fn full_cache_evicts_expired_entries_first() {
        let service = service_with(TokenSettings {
            cache_capacity: 2,
            ..TokenSettings::new(ISSUER, AUDIENCE)
        });
        let mut short = service.claims_for("short", &[], now()).unwrap();
        short.exp = now().timestamp() + 10;
        let short = sign_with(&key(), service.kid(), &short);
        let long = service.issue("long", &[], now()).unwrap().access_token;
        service.verify(&short, now()).unwrap();
        service.verify(&long, now()).unwrap();
        let later = now() + Duration::seconds(60);
        let newer = service.issue("newer", &[], later).unwrap().access_token;
        service.verify(&newer, later).unwrap();
        let cache = service.lock_cache();
        assert!(!cache.contains_key(short.as_str()));
        assert!(cache.contains_key(long.as_str()));
        assert!(cache.contains_key(newer.as_str()));
    }

    #[test]
    fn zero_capacity_disables_the_cache() {
        let service = service_with(TokenSettings {
            cache_capacity: 0,
            ..TokenSettings::new(ISSUER, AUDIENCE)
        });
        let token = service.issue("erp", &[], now()).unwrap().access_token;
        service.verify(&token, now()).unwrap();
        assert_eq!(service.cached_len(), 0);
    }

    #[test]
    fn poisoned_cache_lock_does_not_break_verification() {
        let service = service();
        let token = service.issue("erp", &[], now()).unwrap().access_token;
        service.verify(&token, now()).unwrap();
        let panicked = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _guard = service.cache.lock();
                    panic!("deliberate panic while holding the cache lock");
                })
                .join()
                .is_err()
        });
        assert!(panicked);
        assert!(service.cache.is_poisoned());
        assert!(service.verify(&token, now()).is_ok());
    }

    #[test]
    fn invalid_settings_are_refused() {
        let base = TokenSettings::new(ISSUER, AUDIENCE);
        for settings in [
            TokenSettings {
                ttl_s: 0,
                ..base.clone()
            },
            TokenSettings {
                ttl_s: MAX_TOKEN_TTL_S + 1,
                ..base.clone()
            },
            TokenSettings {
                leeway_s: MAX_LEEWAY_S + 1,
                ..base.clone()
            },
            TokenSettings {
                issuer: String::new(),
                ..base.clone()
            },
            TokenSettings {
                audience: String::new(),
                ..base.clone()
            },
        ] {
            assert!(matches!(
                TokenService::new(&key(), settings),
                Err(AuthError::InvalidSettings(_))
            ));
        }
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let printed = format!("{:?}", service());
        let pem = key().to_pkcs8_pem().unwrap();
        let der_b64 = pem.expose_secret().lines().nth(1).unwrap().to_owned();
        assert!(printed.contains("kid"));
        assert!(!printed.contains(&der_b64));
    }
}
