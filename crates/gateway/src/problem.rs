//! The one mapping from errors to RFC 9457 problem+json responses.
//!
//! Every handler returns `Result<_, ApiError>`. An `ApiError` carries a
//! stable machine `code`, an HTTP status, a human `detail` and, where it is
//! about one input, the offending `field`. Bank failures keep the bank's id,
//! code and message. The full cause chain is logged once, here, for 5xx.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:bankdirect:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    /// Stable machine-readable code, e.g. `account_not_found`.
    pub code: String,
    pub detail: String,
    /// The offending input, when the problem is about one (`path.id`, `query.limit`, `body.amount`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The bank involved, for bank failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_id: Option<String>,
    /// The bank's own result code, kept as the bank sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_code: Option<String>,
    /// The bank's own message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_message: Option<String>,
    /// OAuth 2.0 error code (RFC 6749 §5.2), on token endpoint errors only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// Every problem found when there was more than one (`field` names the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// One field's problem in a response that lists several.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub detail: String,
}

/// An error on its way to becoming a problem+json response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: errors travel in `Result`s on every path and should stay small.
    pub problem: Box<Problem>,
    /// Extra response header, e.g. `WWW-Authenticate` or `Retry-After`.
    pub header: Option<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            problem: Box::new(Problem {
                type_uri: format!("urn:bankdirect:problem:{code}"),
                title: status.canonical_reason().unwrap_or("Error").to_owned(),
                status: status.as_u16(),
                code: code.to_owned(),
                detail: detail.into(),
                field: None,
                bank_id: None,
                bank_code: None,
                bank_message: None,
                error: None,
                error_description: None,
                errors: None,
            }),
            header: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.problem.field = Some(field.into());
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> ApiError {
        self.header = Some((name, value));
        self
    }

    pub fn bad_request(code: &str, field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail).with_field(field)
    }

    pub fn not_found(code: &str, field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, detail).with_field(field)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"bankdirect\", error=\"invalid_token\""),
        )
    }

    pub fn forbidden(code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, detail)
    }

    pub fn internal(context: &str, err: &dyn std::error::Error) -> ApiError {
        // The cause chain goes to the log, once; the client gets no internals.
        let mut chain = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(context, error = %chain, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the gateway failed to handle this request; it has been logged — retry later or tell the operator",
        )
    }

    /// An internal inconsistency with no error value to chain.
    pub fn internal_msg(context: &str) -> ApiError {
        tracing::error!(context, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the gateway failed to handle this request; it has been logged — retry later or tell the operator",
        )
    }

    /// A storage failure: the database is unreachable or refused the write.
    pub fn storage(err: &store::StoreError) -> ApiError {
        tracing::error!(error = %err, "storage failure");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the gateway's database is not available; nothing was changed — retry later",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    /// Maps a bank failure: 503 when nothing reached the bank, 504 on a
    /// timeout, 502 for a rejection or an answer we could not use. The
    /// bank's code and message are kept.
    pub fn bank(err: &banks::BankError) -> ApiError {
        use banks::{BankError, UnknownCause};
        let (status, code, bank, bank_code, bank_message, detail) = match err {
            BankError::NotProcessed { bank, reason } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "bank_unavailable",
                bank,
                None,
                None,
                format!("bank {bank} could not be reached ({reason}); retry later"),
            ),
            BankError::Rejected {
                bank,
                code,
                message,
            } => (
                StatusCode::BAD_GATEWAY,
                "bank_rejected",
                bank,
                Some(code.clone()),
                Some(message.clone()),
                format!("bank {bank} refused the request with code {code}"),
            ),
            BankError::OutcomeUnknown {
                bank,
                cause: UnknownCause::Timeout,
                ..
            } => (
                StatusCode::GATEWAY_TIMEOUT,
                "bank_timeout",
                bank,
                None,
                None,
                format!("bank {bank} did not answer in time; retry later"),
            ),
            BankError::OutcomeUnknown {
                bank,
                cause,
                reason,
            } => {
                let bank_code = match cause {
                    UnknownCause::HttpStatus(s) => Some(format!("HTTP {s}")),
                    _ => None,
                };
                (
                    StatusCode::BAD_GATEWAY,
                    "bank_bad_response",
                    bank,
                    bank_code,
                    None,
                    format!("bank {bank} gave an answer that could not be used: {reason}"),
                )
            }
        };
        let mut e = ApiError::new(status, code, detail);
        e.problem.bank_id = Some(bank.clone());
        e.problem.bank_code = bank_code;
        e.problem.bank_message = bank_message;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            e.header = Some((header::RETRY_AFTER, HeaderValue::from_static("10")));
        }
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(*self.problem)).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some((name, value)) = self.header {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.problem.code,
            self.problem.detail
        )
    }
}
