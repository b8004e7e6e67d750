//! The fixed list of OAuth scopes and how a token request is granted them.
//!
//! Scopes are an enum, not strings, so a typo in a route's required scope is
//! a compile error. On the wire they are the RFC 6749 space-separated
//! strings (`"accounts:read payments:write"`).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::AuthError;

/// Longest `scope` request parameter accepted; all five scopes take 66 bytes.
pub const MAX_SCOPE_PARAM_LEN_BYTES: usize = 1024;

/// Longest piece of an unknown scope echoed back in an error.
const MAX_SCOPE_IN_ERROR_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "accounts:read")]
    AccountsRead,
    #[serde(rename = "payments:write")]
    PaymentsWrite,
    #[serde(rename = "payments:approve")]
    PaymentsApprove,
    #[serde(rename = "audit:read")]
    AuditRead,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::AccountsRead,
        Scope::PaymentsWrite,
        Scope::PaymentsApprove,
        Scope::AuditRead,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AccountsRead => "accounts:read",
            Scope::PaymentsWrite => "payments:write",
            Scope::PaymentsApprove => "payments:approve",
            Scope::AuditRead => "audit:read",
            Scope::Admin => "admin",
        }
    }

    /// The scope spelled exactly `s` (case-sensitive, as RFC 6749 requires).
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Space-separated wire form, sorted and without duplicates.
pub fn format_scopes(scopes: &[Scope]) -> String {
    let unique: BTreeSet<Scope> = scopes.iter().copied().collect();
    unique
        .into_iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scopes to put in a token (RFC 6749 §3.3), sorted, without duplicates.
///
/// `requested` is the space-separated `scope` parameter. Absent or blank, the
/// client gets all of `allowed`. Otherwise every requested scope must be
/// known and in `allowed`, or the request fails with
/// [`AuthError::InvalidScope`] naming the first that is not: silently
/// narrowing a request would hand the client a token it did not ask for.
pub fn grant_scopes(requested: Option<&str>, allowed: &[Scope]) -> Result<Vec<Scope>, AuthError> {
    let requested = requested.unwrap_or("");
    if requested.len() > MAX_SCOPE_PARAM_LEN_BYTES {
        return Err(AuthError::InvalidScope(format!(
            "scope parameter longer than {MAX_SCOPE_PARAM_LEN_BYTES} bytes"
        )));
    }
    // Several spaces in a row are tolerated; RFC 6749 separates by %x20 only,
    // so a tab stays part of a (then unknown) scope name.
    let mut names = requested
        .split(' ')
        .filter(|name| !name.is_empty())
        .peekable();
    if names.peek().is_none() {
        return Ok(allowed
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect());
    }
    let mut granted = BTreeSet::new();
    for name in names {
        match Scope::parse(name) {
            Some(scope) if allowed.contains(&scope) => {
                granted.insert(scope);
            }
            _ => return Err(AuthError::InvalidScope(printable_scope(name))),
        }
    }
    Ok(granted.into_iter().collect())
}

/// A client-supplied scope name made safe to echo in an error and a log:
/// characters outside RFC 6749's scope-token set become `?`, and the length
/// is capped.
fn printable_scope(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(MAX_SCOPE_IN_ERROR_CHARS)
        .map(|c| match c {
            '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e' => c,
            _ => '?',
        })
        .collect();
    if name.chars().count() > MAX_SCOPE_IN_ERROR_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_strings_round_trip_through_parse_and_serde() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        }
        assert_eq!(Scope::parse("ADMIN"), None);
        assert_eq!(Scope::parse("accounts:read "), None);
        assert_eq!(Scope::parse(""), None);
        assert!(serde_json::from_str::<Scope>("\"AccountsRead\"").is_err());
    }

    #[test]
    fn no_scope_or_blank_scope_grants_everything_allowed() {
        let allowed = [
            Scope::PaymentsWrite,
            Scope::AccountsRead,
            Scope::PaymentsWrite,
        ];
        let all = vec![Scope::AccountsRead, Scope::PaymentsWrite];
        assert_eq!(grant_scopes(None, &allowed).unwrap(), all);
        assert_eq!(grant_scopes(Some(""), &allowed).unwrap(), all);
        assert_eq!(grant_scopes(Some("   "), &allowed).unwrap(), all);
    }

    #[test]
    fn requested_scopes_are_granted_sorted_and_deduplicated() {
        let granted = grant_scopes(
            Some("payments:write  accounts:read payments:write"),
            &Scope::ALL,
        )
        .unwrap();
        assert_eq!(granted, vec![Scope::AccountsRead, Scope::PaymentsWrite]);
    }

    #[test]
    fn scope_not_allowed_for_the_client_is_refused_by_name() {
        let err = grant_scopes(Some("accounts:read admin"), &[Scope::AccountsRead]).unwrap_err();
        assert!(
            matches!(&err, AuthError::InvalidScope(name) if name == "admin"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_scope_is_refused_by_name() {
        let err = grant_scopes(Some("accounts:read accounts:write"), &Scope::ALL).unwrap_err();
        assert!(matches!(&err, AuthError::InvalidScope(name) if name == "accounts:write"));
        let err = grant_scopes(Some("accounts:read\tadmin"), &Scope::ALL).unwrap_err();
        assert!(matches!(&err, AuthError::InvalidScope(name) if name == "accounts:read?admin"));
    }

    #[test]
    fn oversized_scope_parameter_is_refused_and_errors_stay_short() {
        let long = "a".repeat(MAX_SCOPE_PARAM_LEN_BYTES + 1);
        assert!(matches!(
            grant_scopes(Some(&long), &Scope::ALL),
            Err(AuthError::InvalidScope(_))
        ));
        let name = "x".repeat(500);
        let err = grant_scopes(Some(&name), &Scope::ALL).unwrap_err();
        let AuthError::InvalidScope(echoed) = err else {
            panic!("expected InvalidScope");
        };
        assert_eq!(echoed.chars().count(), MAX_SCOPE_IN_ERROR_CHARS + 1);
    }

    #[test]
    fn format_scopes_is_sorted_space_separated() {
        assert_eq!(
            format_scopes(&[Scope::Admin, Scope::AccountsRead, Scope::Admin]),
            "accounts:read admin"
        );
        assert_eq!(format_scopes(&[]), "");
    }
}
