//! What the HTTP connectors share about talking to a bank, whatever the
//! family: the metrics and log line around every call, the capped read of
//! an answer, the sorting of reqwest's failures into [`BankError`] kinds,
//! and how bank text and error causes are quoted in messages.
//!
//! Each connector keeps what is its family's own (the cn-xml packet echo
//! checks, the iso20022 TLS alerts and error documents) and calls these
//! with its bank id, so that every family reports the same metrics under
//! the same names and wording.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::exchange::{self, Charset};
use crate::{BankError, ConnectionSettings, UnknownCause};

/// How long an idle connection to a bank is kept (how many:
/// [`ConnectionSettings::max_idle_connections`]): long enough to carry a
/// burst of calls into the next, short enough not to hold sockets the bank
/// may cut anyway.
pub const POOL_IDLE_TIMEOUT_MS: u64 = 30_000;

/// Characters of bank text (an id, a code) quoted in an error.
pub(crate) const MAX_QUOTED_CHARS: usize = 32;
/// Causes followed by [`source_chain`]; chains are short, the bound only
/// guards against a cycle.
const MAX_ERROR_SOURCES: usize = 8;

/// The limits every connection needs whatever its family: both timeouts
/// and the response cap above zero. The message names what is wrong.
pub(crate) fn check_limits(settings: &ConnectionSettings) -> Result<(), String> {
    if settings.connect_timeout.is_zero() || settings.request_timeout.is_zero() {
        return Err("connect and request timeouts must be above zero".into());
    }
    if settings.max_response_bytes == 0 {
        return Err("max_response_bytes is 0; expected a positive byte count".into());
    }
    Ok(())
}

/// An HTTP client with every option that matters set explicitly rather
/// than left to reqwest's defaults: the connection's timeouts, no proxy, no
/// redirects (one would resend a request somewhere we were not told to
/// send it), an idle pool of the connection's size, HTTP/1.1 only, our
/// user agent. A family adds its own (TLS) before building.
pub(crate) fn client_builder(settings: &ConnectionSettings) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(settings.max_idle_connections.max(1))
        .pool_idle_timeout(Duration::from_millis(POOL_IDLE_TIMEOUT_MS))
        .http1_only()
        .tcp_nodelay(true)
        .user_agent(concat!("bankdirect/", env!("CARGO_PKG_VERSION")))
}

/// Counts and times one call (`bank_calls_total` by bank, function and
/// outcome; `bank_call_duration_seconds` by bank and function) and logs its
/// outcome. `function` is the family's name for the call: the cn-xml
/// function code, the iso20022 order type. Under an observed connector
/// ([`crate::exchange::observe`]) the call is also handed to its sink,
/// with the bodies (written in `charset`) masked.
pub(crate) async fn observed<T>(
    bank: &str,
    function: &'static str,
    charset: Charset,
    call: impl Future<Output = Result<T, BankError>>,
) -> Result<T, BankError> {
    let started = Instant::now();
    let result = exchange::recorded(function, charset, call).await;
    let elapsed = started.elapsed();
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) => error.outcome_label(),
    };
    metrics::counter!("bank_calls_total",
        "bank" => bank.to_string(), "function" => function, "outcome" => outcome)
    .increment(1);
    metrics::histogram!("bank_call_duration_seconds",
        "bank" => bank.to_string(), "function" => function)
    .record(elapsed.as_secs_f64());
    match &result {
        Ok(_) => tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "bank call ok"),
        Err(error) => {
            tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, outcome, %error, "bank call failed")
        }
    }
    result
}

/// An answer that is not what was asked for: the request may have been
/// acted on, so the caller must find out.
pub(crate) fn protocol(bank: &str, reason: String) -> BankError {
    BankError::OutcomeUnknown {
        bank: bank.to_string(),
        cause: UnknownCause::Protocol,
        reason,
    }
}

/// Reads the body chunk by chunk so that an answer over `cap` bytes is
/// refused (`OutcomeUnknown(Protocol)`) without being held in memory; a
/// broken body is `transport_error`'s to classify.
pub(crate) async fn read_capped(
    bank: &str,
    mut response: reqwest::Response,
    cap: usize,
    transport_error: impl Fn(&reqwest::Error) -> BankError,
) -> Result<Vec<u8>, BankError> {
    let too_large = |seen: u64| {
        protocol(
            bank,
            format!("answer is at least {seen} bytes; expected at most {cap} (max_response_bytes)"),
        )
    };
    if let Some(length) = response.content_length() {
        if length > cap as u64 {
            return Err(too_large(length));
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        if body.len() + chunk.len() > cap {
            return Err(too_large((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sorts a reqwest failure by what it proves: no connection is
/// `NotProcessed` (`could_not_connect` says to what, in the family's
/// words); a timeout after sending, or a broken connection, is
/// `OutcomeUnknown`. `during` says what was under way ("sending the
/// request", "reading the answer").
pub(crate) fn transport_error(
    bank: &str,
    error: &reqwest::Error,
    during: &str,
    could_not_connect: &str,
    request_timeout: Duration,
) -> BankError {
    // reqwest's Display of an error holds the URL but never the body.
    if error.is_connect() {
        BankError::NotProcessed {
            bank: bank.to_string(),
            reason: format!("{could_not_connect}: {}", source_chain(error)),
        }
    } else if error.is_timeout() {
        BankError::OutcomeUnknown {
            bank: bank.to_string(),
            cause: UnknownCause::Timeout,
            reason: format!(
                "no complete answer within {} ms while {during}",
                request_timeout.as_millis()
            ),
        }
    } else {
        BankError::OutcomeUnknown {
            bank: bank.to_string(),
            cause: UnknownCause::Transport,
            reason: format!("connection failed while {during}: {}", source_chain(error)),
        }
    }
}

/// Bank text for an error message: quoted and cut short.
pub(crate) fn quoted(text: &str) -> String {
    let mut short: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if text.chars().nth(MAX_QUOTED_CHARS).is_some() {
        short.push('…');
    }
    format!("{short:?}")
}

/// The error and its sources on one line: reqwest's own message alone says
/// only "error sending request", the cause ("connection refused") is deeper.
pub(crate) fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    for _ in 0..MAX_ERROR_SOURCES {
        let Some(cause) = source else { break };
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[test]
    fn quoted_bank_text_is_cut_short() {
        assert_eq!(quoted("000001"), "\"000001\"");
        let long = "9".repeat(100);
        let text = quoted(&long);
        assert!(text.chars().count() < 40, "{text}");
        assert!(text.contains('…'));
    }

    #[test]
    fn source_chain_joins_causes() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(Wrapper(inner));
        assert_eq!(source_chain(&outer), "wrapped: refused");
    }

    #[test]
    fn source_chain_stops_after_a_bounded_number_of_causes() {
        let text = source_chain(&Endless);
        assert_eq!(text.matches("endless").count(), 1 + MAX_ERROR_SOURCES);
    }

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// An error that is its own cause.
    #[derive(Debug)]
    struct Endless;
    impl fmt::Display for Endless {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("endless")
        }
    }
    impl std::error::Error for Endless {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&Endless)
        }
    }
}
