//! OAuth 2.0 clients: credentials as presented, clients as registered, and
//! authenticating one against the other.
//!
//! Secrets are compared only as keyed hashes ([`crypto::KeyedHasher`]); the
//! registry never holds a plaintext secret. An unknown client id is hashed
//! against a decoy so it takes as long as a wrong secret and does not reveal
//! which ids exist.

use std::collections::HashMap;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use crypto::{KeyedHasher, SecretString, Zeroizing};

use super::{AuthError, Scope};

/// Longest `Authorization` header value [`parse_basic_authorization`] reads.
pub const MAX_BASIC_AUTHORIZATION_LEN_BYTES: usize = 1024;

/// Longest client id accepted, in bytes (after URL-decoding).
pub const MAX_CLIENT_ID_LEN_BYTES: usize = 128;

/// Longest client secret accepted, in bytes. Generated secrets are 43.
pub const MAX_CLIENT_SECRET_LEN_BYTES: usize = 256;

/// The account entitlement that covers every account.
pub const ALL_ACCOUNTS: &str = "*";

/// Standard base64 as RFC 7617 uses it, tolerating clients that drop the
/// padding.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Client id and secret as presented to the token endpoint, either from a
/// Basic `Authorization` header or from the form body (client_secret_post).
/// `Debug` redacts the secret.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Parses an RFC 6749 §2.3.1 client_secret_basic header value:
/// `Basic base64(urlencode(client_id) ":" urlencode(client_secret))`.
///
/// Returns `None` if the scheme is not Basic or anything is malformed (bad
/// base64, no `:`, bad percent-encoding, not UTF-8, empty or over-long id or
/// secret); the caller answers `invalid_client` either way.
pub fn parse_basic_authorization(header_value: &str) -> Option<ClientCredentials> {
    if header_value.len() > MAX_BASIC_AUTHORIZATION_LEN_BYTES {
        return None;
    }
    let (scheme, rest) = header_value.trim().split_once(' ')?;
    // RFC 9110 §11.1: the auth scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(BASIC_BASE64.decode(rest.trim_start_matches(' ')).ok()?);
    let text = std::str::from_utf8(&decoded).ok()?;
    // The id is form-encoded, so a ':' in it would be "%3A": the first raw
    // ':' is the separator and the secret may contain further ones.
    let (raw_id, raw_secret) = text.split_once(':')?;
    let client_id = String::from_utf8(form_urldecode(raw_id)?.to_vec()).ok()?;
    let client_secret =
        SecretString::new(String::from_utf8(form_urldecode(raw_secret)?.to_vec()).ok()?);
    if client_id.is_empty()
        || client_id.len() > MAX_CLIENT_ID_LEN_BYTES
        || client_secret.is_empty()
        || client_secret.expose_secret().len() > MAX_CLIENT_SECRET_LEN_BYTES
    {
        return None;
    }
    Some(ClientCredentials {
        client_id,
        client_secret,
    })
}

/// application/x-www-form-urlencoded decoding of one value: `+` is a space,
/// `%XX` a byte. A `%` not followed by two hex digits is malformed.
fn form_urldecode(encoded: &str) -> Option<Zeroizing<Vec<u8>>> {
    let bytes = encoded.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// A machine client as configured: its secret only as a keyed hash.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub id: String,
    /// `hmac-sha256:…` as produced by [`KeyedHasher::hash`].
    pub secret_hash: String,
    /// Scopes the client may be granted.
    pub scopes: Vec<Scope>,
    /// Account ids the client may see and pay from; `["*"]` means all.
    pub accounts: Vec<String>,
}

impl RegisteredClient {
    pub fn is_entitled_to(&self, account_id: &str) -> bool {
        self.accounts
            .iter()
            .any(|a| a == ALL_ACCOUNTS || a == account_id)
    }
}

/// The configured clients and the key their secrets are hashed with.
#[derive(Debug)]
pub struct ClientRegistry {
    hasher: KeyedHasher,
    clients: HashMap<String, RegisteredClient>,
    /// Hash of a random secret nobody knows; unknown ids are checked against
    /// it so they cost what a wrong secret costs.
    decoy_hash: String,
}

impl ClientRegistry {
    /// A registry of already validated clients (the gateway configuration
    /// refuses duplicate ids and malformed hashes before this is called).
    /// If an id occurs twice anyway, the later entry wins; prefer
    /// [`ClientRegistry::try_new`] where the list has not been validated.
    pub fn new(hasher: KeyedHasher, clients: Vec<RegisteredClient>) -> Self {
        let decoy_hash = hasher.hash(crypto::generate_client_secret().expose_secret());
        let clients = clients
            .into_iter()
            .map(|client| (client.id.clone(), client))
            .collect();
        Self {
            hasher,
            clients,
            decoy_hash,
        }
    }

    /// Like [`ClientRegistry::new`], but refuses an empty or over-long id, a
    /// duplicate id, and a secret hash that is not in `hmac-sha256:` form, so
    /// a configuration mistake stops start-up instead of locking a client out
    /// (or, for a duplicate, silently picking one of two entries).
    pub fn try_new(hasher: KeyedHasher, clients: Vec<RegisteredClient>) -> Result<Self, AuthError> {
        let mut by_id = HashMap::with_capacity(clients.len());
        for client in clients {
            if client.id.is_empty() || client.id.len() > MAX_CLIENT_ID_LEN_BYTES {
                return Err(AuthError::InvalidSettings(format!(
                    "client id must be 1 to {MAX_CLIENT_ID_LEN_BYTES} bytes, got {} bytes",
                    client.id.len()
                )));
            }
            if !KeyedHasher::is_well_formed_hash(&client.secret_hash) {
                return Err(AuthError::InvalidSettings(format!(
                    "client {:?}: secret hash is not an \"hmac-sha256:\" keyed hash",
                    client.id
                )));
            }
            if let Some(duplicate) = by_id.insert(client.id.clone(), client) {
                return Err(AuthError::InvalidSettings(format!(
                    "client {:?} is configured more than once",
                    duplicate.id
                )));
            }
        }
        let decoy_hash = hasher.hash(crypto::generate_client_secret().expose_secret());
        Ok(Self {
            hasher,
            clients: by_id,
            decoy_hash,
        })
    }

    /// The registered client whose id and secret these are.
    ///
    /// Unknown id and wrong secret both give [`AuthError::InvalidClient`]
    /// after the same keyed-hash work.
    pub fn authenticate(&self, creds: &ClientCredentials) -> Result<&RegisteredClient, AuthError> {
        let secret = creds.client_secret.expose_secret();
        // Length is not secret; refusing early bounds the hashing work per
        // request independently of the body limit.
        if secret.len() > MAX_CLIENT_SECRET_LEN_BYTES {
            return Err(AuthError::InvalidClient);
        }
        match self.clients.get(&creds.client_id) {
            Some(client) if self.hasher.verify(secret, &client.secret_hash) => Ok(client),
            Some(_) => Err(AuthError::InvalidClient),
            None => {
                std::hint::black_box(self.hasher.verify(secret, &self.decoy_hash));
                Err(AuthError::InvalidClient)
            }
        }
    }

    /// A short keyed fingerprint of text that must not be stored as typed
    /// (an unknown login name, which may be a password typed in the wrong
    /// field): equal inputs give equal fingerprints, so repeated attempts
    /// correlate in the audit log, and without the key none can be checked
    /// against a guess.
    pub fn fingerprint(&self, text: &str) -> String {
        let hash = self.hasher.hash(text);
        let digest = hash.rsplit(':').next().unwrap_or_default();
        digest.chars().take(16).collect()
    }

    pub fn get(&self, id: &str) -> Option<&RegisteredClient> {
        self.clients.get(id)
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn parses_basic_credentials() {
        let creds = parse_basic_authorization(&basic("erp:s3cret")).unwrap();
        assert_eq!(creds.client_id, "erp");
        assert_eq!(creds.client_secret.expose_secret(), "s3cret");
    }

    #[test]
    fn basic_scheme_is_case_insensitive_and_padding_optional() {
        let encoded = STANDARD.encode("erp:abc");
        assert!(encoded.ends_with('='));
        for value in [
            format!("basic {encoded}"),
            format!("BASIC   {encoded}"),
            format!("Basic {}", encoded.trim_end_matches('=')),
        ] {
            let creds = parse_basic_authorization(&value).unwrap();
            assert_eq!(creds.client_secret.expose_secret(), "abc", "{value}");
        }
    }

    #[test]
    fn url_encoded_colon_and_plus_in_basic_credentials_are_decoded() {
        // Secret "a:b c+d%", id "erp:1", form-encoded per RFC 6749 §2.3.1.
        let creds = parse_basic_authorization(&basic("erp%3A1:a%3Ab+c%2Bd%25")).unwrap();
        assert_eq!(creds.client_id, "erp:1");
        assert_eq!(creds.client_secret.expose_secret(), "a:b c+d%");
        // A raw ':' in the secret is still part of the secret.
        let creds = parse_basic_authorization(&basic("erp:a:b")).unwrap();
        assert_eq!(creds.client_secret.expose_secret(), "a:b");
    }

    #[test]
    fn malformed_basic_headers_are_refused() {
        let too_long = basic(&format!(
            "erp:{}",
            "x".repeat(MAX_BASIC_AUTHORIZATION_LEN_BYTES)
        ));
        let long_secret = basic(&format!(
            "erp:{}",
            "x".repeat(MAX_CLIENT_SECRET_LEN_BYTES + 1)
        ));
        for value in [
            "".to_owned(),
            "Basic".to_owned(),
            "Basic ".to_owned(),
            format!("Bearer {}", STANDARD.encode("erp:s")),
            "Basic !!!not-base64!!!".to_owned(),
            basic("no-colon"),
            basic(":secret"),
            basic("erp:"),
            basic("erp:bad%zzescape"),
            basic("erp:truncated%4"),
            basic("erp:%FF%FE"),
            format!("Basic {}", STANDARD.encode([b'e', b':', 0xff])),
            too_long,
            long_secret,
        ] {
            assert!(
                parse_basic_authorization(&value).is_none(),
                "accepted {value:?}"
            );
        }
    }

    #[test]
    fn credentials_debug_redacts_the_secret() {
        let creds = parse_basic_authorization(&basic("erp:s3cret")).unwrap();
        let printed = format!("{creds:?}");
        assert!(printed.contains("erp"));
        assert!(!printed.contains("s3cret"), "{printed}");
    }

    fn registry() -> (ClientRegistry, SecretString) {
        let hasher = KeyedHasher::generate();
        let secret = crypto::generate_client_secret();
        let client = RegisteredClient {
            id: "erp".to_owned(),
            secret_hash: hasher.hash(secret.expose_secret()),
            scopes: vec![Scope::AccountsRead],
            accounts: vec!["acc-1".to_owned()],
        };
        (
            ClientRegistry::try_new(hasher, vec![client]).unwrap(),
            secret,
        )
    }

    fn creds(id: &str, secret: &str) -> ClientCredentials {
        ClientCredentials {
            client_id: id.to_owned(),
            client_secret: SecretString::new(secret.to_owned()),
        }
    }

    #[test]
    fn right_secret_authenticates() {
        let (registry, secret) = registry();
        let client = registry
            .authenticate(&creds("erp", secret.expose_secret()))
            .unwrap();
        assert_eq!(client.id, "erp");
        assert!(client.is_entitled_to("acc-1"));
        assert!(!client.is_entitled_to("acc-2"));
        assert_eq!(
            registry.get("erp").map(|c| c.scopes.clone()),
            Some(vec![Scope::AccountsRead])
        );
        assert!(registry.get("nobody").is_none());
    }

    #[test]
    fn wrong_secret_and_unknown_client_are_both_invalid_client() {
        let (registry, secret) = registry();
        let wrong = format!("{}x", secret.expose_secret());
        assert!(matches!(
            registry.authenticate(&creds("erp", &wrong)),
            Err(AuthError::InvalidClient)
        ));
        assert!(matches!(
            registry.authenticate(&creds("erp", "")),
            Err(AuthError::InvalidClient)
        ));
        assert!(matches!(
            registry.authenticate(&creds("ERP", secret.expose_secret())),
            Err(AuthError::InvalidClient)
        ));
        assert!(matches!(
            registry.authenticate(&creds("erp", &"x".repeat(MAX_CLIENT_SECRET_LEN_BYTES + 1))),
            Err(AuthError::InvalidClient)
        ));
    }

    #[test]
    fn unchecked_registry_authenticates_the_same_way() {
        let hasher = KeyedHasher::generate();
        let client = RegisteredClient {
            id: "erp".to_owned(),
            secret_hash: hasher.hash("right"),
            scopes: vec![Scope::Admin],
            accounts: vec![],
        };
        let registry = ClientRegistry::new(hasher, vec![client]);
        assert_eq!(registry.len(), 1);
        assert!(registry.authenticate(&creds("erp", "right")).is_ok());
        assert!(matches!(
            registry.authenticate(&creds("erp", "wrong")),
            Err(AuthError::InvalidClient)
        ));
        assert!(matches!(
            registry.authenticate(&creds("nobody", "right")),
            Err(AuthError::InvalidClient)
        ));
    }

    #[test]
    fn wildcard_entitlement_covers_every_account() {
        let client = RegisteredClient {
            id: "treasury".to_owned(),
            secret_hash: String::new(),
            scopes: vec![],
            accounts: vec![ALL_ACCOUNTS.to_owned()],
        };
        assert!(client.is_entitled_to("anything"));
    }

    #[test]
    fn registry_refuses_duplicate_ids_and_malformed_hashes() {
        let hasher = KeyedHasher::generate();
        let client = RegisteredClient {
            id: "erp".to_owned(),
            secret_hash: hasher.hash("s"),
            scopes: vec![],
            accounts: vec![],
        };
        let err = ClientRegistry::try_new(hasher.clone(), vec![client.clone(), client.clone()])
            .unwrap_err();
        assert!(matches!(&err, AuthError::InvalidSettings(m) if m.contains("more than once")));
        let plaintext = RegisteredClient {
            secret_hash: "s3cret".to_owned(),
            ..client.clone()
        };
        let err = ClientRegistry::try_new(hasher.clone(), vec![plaintext]).unwrap_err();
        assert!(matches!(&err, AuthError::InvalidSettings(m) if !m.contains("s3cret")));
        let empty_id = RegisteredClient {
            id: String::new(),
            ..client
        };
        assert!(ClientRegistry::try_new(hasher, vec![empty_id]).is_err());
    }
}
