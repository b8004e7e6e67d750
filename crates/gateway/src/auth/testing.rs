//! For tests: builds deliberately bad tokens (unsigned, HMAC-signed with a
//! public key, signed by another key or with altered claims) to prove that
//! [`TokenService::verify`](super::TokenService::verify) refuses them.
//!
//! Nothing here is used by the running gateway. It is an ordinary module
//! rather than a test-only one because the end-to-end tests in other crates
//! need it too; every function only builds strings and cannot weaken
//! verification.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::Claims;

fn claims_json(claims: &Claims) -> Value {
    let mut map = Map::new();
    map.insert("iss".to_owned(), Value::from(claims.iss.as_str()));
    map.insert("sub".to_owned(), Value::from(claims.sub.as_str()));
    map.insert("aud".to_owned(), Value::from(claims.aud.as_str()));
    map.insert("exp".to_owned(), Value::from(claims.exp));
    map.insert("nbf".to_owned(), Value::from(claims.nbf));
    map.insert("iat".to_owned(), Value::from(claims.iat));
    map.insert("jti".to_owned(), Value::from(claims.jti.as_str()));
    map.insert("scope".to_owned(), Value::from(claims.scope.as_str()));
    Value::Object(map)
}

fn header_json(alg: &str, kid: Option<&str>) -> Value {
    let mut map = Map::new();
    map.insert("alg".to_owned(), Value::from(alg));
    map.insert("typ".to_owned(), Value::from("JWT"));
    if let Some(kid) = kid {
        map.insert("kid".to_owned(), Value::from(kid));
    }
    Value::Object(map)
}

/// `base64url(header) "." base64url(claims)`: the JWS signing input.
fn signing_input(header: &Value, claims: &Claims) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims_json(claims).to_string())
    )
}

/// An unsecured JWT (`"alg":"none"`, empty signature, RFC 7519 §6).
pub fn forge_alg_none(claims: &Claims) -> String {
    format!("{}.", signing_input(&header_json("none", None), claims))
}

/// A token whose header says HS256, MACed with `key` — typically the
/// server's public key, the classic algorithm-confusion attack.
pub fn forge_hs256_with_key(claims: &Claims, key: &[u8], kid: &str) -> String {
    let input = signing_input(&header_json("HS256", Some(kid)), claims);
    let mac = crypto::hmac_sha256(key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// A well-formed EdDSA token over `claims` signed by `key` under `kid`: with
/// the service's own key and kid it verifies exactly when the claims do, so
/// it makes expired, not-yet-valid, wrong-issuer and wrong-audience tokens;
/// with another key it makes a wrongly signed one.
pub fn sign_with(key: &crypto::Ed25519Key, kid: &str, claims: &Claims) -> String {
    let input = signing_input(&header_json("EdDSA", Some(kid)), claims);
    let signature = key.sign_bytes(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
