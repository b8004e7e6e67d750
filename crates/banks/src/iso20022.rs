//! The iso20022 connector: ISO 20022 files host to host over HTTPS with
//! mutual TLS (docs/families/iso20022.md).
//!
//! Every call is one HTTPS request for one EBICS-like order type (`HTD`,
//! `CCT`, `PSR`, `C52`, `C53`) carrying `X-H2H-Partner: <login>`. The client
//! trusts only the connection's CA (never the system roots) and presents the
//! connection's certificate; plain `http` is refused when the connector is
//! built. Answers are read with a byte cap (`max_response_bytes`) while they
//! arrive; camt documents are then streamed entry by entry
//! (`camt053::StatementReader`, `camt052::ReportReader`) over those bytes.
//!
//! Every failure is sorted into the three [`BankError`] kinds by what it
//! proves about the request ([`classify_refusal`] for the bank's own
//! answers):
//!
//! | what happened | kind |
//! |---|---|
//! | no connection, TLS handshake refused either way (unknown CA, no or wrong client certificate) | `NotProcessed` |
//! | `429`/`503` (and `403`, the partner refused) with an error document saying `processed: false` | `NotProcessed` |
//! | `422` `FILE_REJECTED` on `CCT` | `Rejected` with the ISO reason code |
//! | `409` `DUPLICATE_MESSAGE` on `CCT` | `OutcomeUnknown(Protocol)`: ask `PSR` |
//! | `404` `NOT_FOUND` on `PSR` | [`StatusAnswer::NotFound`] |
//! | `400` about `account` on a balance `C52` (the partner sees none of them) | each account [`BalanceOutcome::Failed`] `AC01` |
//! | a debtor account the bank's `HTD` does not list | `Rejected` `AC01`, nothing uploaded |
//! | timeout after the request was sent | `OutcomeUnknown(Timeout)` |
//! | reset or broken body | `OutcomeUnknown(Transport)` |
//! | any other HTTP status | `OutcomeUnknown(HttpStatus)` |
//! | a body that is not the expected message (garbled, truncated, oversized, UTF-16, another message id) | `OutcomeUnknown(Protocol)` |
//!
//! A TLS 1.3 server checks our certificate after the client has finished
//! its half of the handshake, so a refused client certificate can surface
//! while the request is being written or the answer read; a TLS alert from
//! the server that refuses the handshake (certificate required, bad or
//! unknown certificate, unknown CA, handshake failure, access denied) proves
//! the request never reached the bank's application and is `NotProcessed`
//! wherever it shows up.
//!
//! Payments: a single payment is one `pain.001.001.09` (the version is
//! [`Iso20022Options::pain001_version`]) with one `PmtInf` and one
//! `CdtTrfTxInf` whose `MsgId`, `PmtInfId`, `InstrId` and `EndToEndId` are
//! the business reference, so that `PSR?message_id=<reference>` answers for
//! it. What pain.001 cannot carry is refused at intake ([`intake`]). The
//! debtor agent's BIC comes from the bank's own account list (`HTD`), read
//! once and kept for the connector's life. Status reports (`pain.002`) map
//! by [`map_transaction_status`]. Batches live in [`batch`], balances and
//! transactions in [`statements`].
//!
//! Layout: options and the connector, the transport (request, error
//! mapping; the capped read, metrics and reqwest failures shared with
//! cn-xml in `crate::transport`), accounts, then single payments and their
//! status.

pub mod batch;
pub mod intake;
pub mod statements;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use domain::{AccountNumber, BankReference, BankTimeZone, Bic, Clock, Currency, Iban, SystemClock};
use formats::iso20022::pain001::{
    self, CreditTransfer, CustomerCreditTransferInitiation, PaymentInformation,
};
use formats::iso20022::pain002::{self, Reason, Status, StatusReason, TransactionStatus};
use formats::iso20022::{AccountIdentification, Limits, Party};

use crate::transport::{self, quoted, source_chain};
use crate::{
    mask_account, BalanceOutcome, BalanceQuery, BankAccountInfo, BankConnector, BankError,
    BankPaymentStatus, BatchInstruction, BatchItemInstruction, BatchKind, BatchReceipt,
    BatchStatusAnswer, Capability, ConnectError, ConnectionSettings, DedupeKeyPolicy, Family,
    IntakeProblem, PaymentInstruction, StatusAnswer, SubmitReceipt, TransactionQuery,
    TransactionReport, UnknownCause,
};

pub use formats::iso20022::pain001::Version as Pain001Version;
pub use intake::TextCharset;

/// Why the family has no [`Capability::SignedMessages`]: shown in
/// `/v1/banks` and given by the conformance suite.
pub const LACKS_SIGNED_MESSAGES: &str =
    "iso20022 files are not signed here: mutual TLS authenticates the bank and bankdirect";
/// The order types, as they appear in the URL path and the metrics'
/// `function` label.
pub const ORDER_ACCOUNTS: &str = "HTD";
pub const ORDER_CREDIT_TRANSFER: &str = "CCT";
pub const ORDER_PAYMENT_STATUS: &str = "PSR";
pub const ORDER_INTRADAY: &str = "C52";
pub const ORDER_STATEMENT: &str = "C53";

/// The header naming our subscriber (the connection's `login`).
pub const PARTNER_HEADER: &str = "X-H2H-Partner";
/// The bank's error codes this connector acts on.
pub const ERROR_DUPLICATE_MESSAGE: &str = "DUPLICATE_MESSAGE";
pub const ERROR_FILE_REJECTED: &str = "FILE_REJECTED";
pub const ERROR_NOT_FOUND: &str = "NOT_FOUND";
pub const ERROR_BAD_REQUEST: &str = "BAD_REQUEST";
/// `PmtTpInf/CtgyPurp/Cd` of a payroll chunk (with `BtchBookg` true):
/// ISO's "salary payment".
pub const CATEGORY_PURPOSE_SALARY: &str = "SALA";
/// The `status` of a `CCT` answer that took the file.
pub const STATUS_RECEIVED: &str = "RCVD";
/// The failure code of an account the bank left out of a balance report:
/// ISO's "account unknown" (the partner may not see it).
pub const CODE_ACCOUNT_UNKNOWN: &str = "AC01";
/// `Rsn/Prtry` of a rejected transaction that was settled and then sent
/// back by the creditor's bank.
pub const REASON_RETURNED: &str = "RTRN";

/// Most `account` parameters of one `C52`, whatever `max_accounts_per_query`
/// says: the family documents no limit, and the simulated bank (like real
/// gateways) refuses more than 50 with the same `400` it gives when it sees
/// none of the accounts, which must not be mistaken for that.
pub const MAX_ACCOUNTS_PER_REPORT: usize = 50;
/// Default of [`Iso20022Options::max_batch_items`]: transactions in one
/// uploaded chunk. The gateway cuts batches into chunks of at most this
/// many, each one `CCT` and one `PSR` answer; a thousand keeps both answers
/// well inside the default 4 MiB response cap.
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 1_000;
/// Most [`Iso20022Options::max_batch_items`] a connection may set: a
/// chunk's `PSR` answer (a few hundred bytes a transaction) must still fit
/// the response cap.
pub const MAX_BATCH_ITEMS: usize = 10_000;
/// Default of [`Iso20022Options::max_statement_range_days`]: days asked in
/// one `C53` request (both ends counted). The family documents no limit;
/// a month keeps one request's pages few.
pub const DEFAULT_STATEMENT_RANGE_DAYS: i64 = 31;
/// Most pages one call follows over all its requests (2 million entries at
/// 200 a page); a bank that keeps saying "not the last page" beyond this
/// is broken, not busy.
pub const MAX_PAGES_PER_CALL: u32 = 10_000;
/// Longest range one [`BankConnector::transactions`] call accepts, in days
/// (about ten years); a longer one is refused before anything is sent.
pub const MAX_TRANSACTION_RANGE_DAYS: i64 = 3_660;
/// How long an idle connection to the bank's host is kept (how many:
/// [`crate::ConnectionSettings::max_idle_connections`]).
pub use crate::transport::POOL_IDLE_TIMEOUT_MS;
/// Bytes of an error document read for its JSON; the rest is ignored.
const MAX_ERROR_DOCUMENT_BYTES: usize = 16 * 1024;
const CONTENT_TYPE_XML: &str = "application/xml";

/// What a connection may tune beyond [`ConnectionSettings`]; the defaults
/// are what [`crate::connect`] builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iso20022Options {
    /// The pain.001 version uploaded (`.09` unless the bank wants `.03`).
    pub pain001_version: pain001::Version,
    /// Most items in one batch chunk ([`BankConnector::max_batch_items`]).
    pub max_batch_items: usize,
    /// Most days in one `C53` request; longer ranges are split.
    pub max_statement_range_days: i64,
    /// The characters accepted in the text of a payment.
    pub charset: TextCharset,
}

impl Default for Iso20022Options {
    fn default() -> Iso20022Options {
        Iso20022Options {
            pain001_version: pain001::Version::V09,
            max_batch_items: DEFAULT_MAX_BATCH_ITEMS,
            max_statement_range_days: DEFAULT_STATEMENT_RANGE_DAYS,
            charset: TextCharset::SepaLatin,
        }
    }
}

/// What the bank's account list (`HTD`) says about one of our accounts,
/// kept for building payments (the debtor agent and name).
#[derive(Debug, Clone)]
struct ListedAccount {
    bic: Option<Bic>,
    name: String,
}

/// A connection to one bank's host-to-host gateway.
pub struct Iso20022Connector {
    settings: ConnectionSettings,
    /// The endpoint with a trailing `/`, so order types join under it.
    base: reqwest::Url,
    time_zone: BankTimeZone,
    client: reqwest::Client,
    limits: Limits,
    options: Iso20022Options,
    clock: Arc<dyn Clock>,
    /// IBAN (as listed) → what `HTD` said; filled by every account list.
    listed: Mutex<HashMap<String, ListedAccount>>,
}

impl fmt::Debug for Iso20022Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iso20022Connector")
            .field("bank_id", &self.settings.bank_id)
            .field("connection_id", &self.settings.connection_id)
            .field("endpoint", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Iso20022Connector {
    /// Checks the settings and builds the mutual-TLS client once, with the
    /// default [`Iso20022Options`] and the system clock.
    pub fn new(settings: ConnectionSettings) -> Result<Iso20022Connector, ConnectError> {
        Self::with_options(settings, Iso20022Options::default())
    }

    /// As [`Iso20022Connector::new`] with the given options.
    pub fn with_options(
        settings: ConnectionSettings,
        options: Iso20022Options,
    ) -> Result<Iso20022Connector, ConnectError> {
        let invalid = |message: String| ConnectError {
            connection: settings.connection_id.clone(),
            message,
        };
        let mut base = reqwest::Url::parse(&settings.endpoint).map_err(|e| {
            invalid(format!(
                "endpoint is not a URL ({e}); expected e.g. https://h2h.bank.example/"
            ))
        })?;
        if base.scheme() != "https" {
            return Err(invalid(format!(
                "endpoint scheme is {:?}; the iso20022 family speaks https only (mutual TLS)",
                base.scheme()
            )));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                "endpoint has a query or fragment; expected a base URL such as https://h2h.bank.example/".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if settings.login.trim().is_empty() {
            return Err(invalid(
                "login is empty; expected the partner id at the bank (X-H2H-Partner)".into(),
            ));
        }
        transport::check_limits(&settings).map_err(invalid)?;
        if settings.max_accounts_per_query == 0 {
            return Err(invalid(
                "max_accounts_per_query is 0; expected at least 1".into(),
            ));
        }
        if !(1..=MAX_BATCH_ITEMS).contains(&options.max_batch_items) {
            return Err(invalid(format!(
                "max_batch_items is {}; expected 1..={MAX_BATCH_ITEMS}",
                options.max_batch_items
            )));
        }
        if !(1..=MAX_TRANSACTION_RANGE_DAYS).contains(&options.max_statement_range_days) {
            return Err(invalid(format!(
                "max_statement_range_days is {}; expected 1..={MAX_TRANSACTION_RANGE_DAYS}",
                options.max_statement_range_days
            )));
        }
        let Some(tls) = &settings.tls else {
            return Err(invalid(
                "no tls settings; the iso20022 family needs the bank's CA certificate and our client certificate and key (connections[].tls)".into(),
            ));
        };
        let roots = reqwest::Certificate::from_pem_bundle(tls.ca_cert_pem.as_bytes())
            .map_err(|e| invalid(format!("tls.ca_cert is not PEM certificates: {e}")))?;
        if roots.is_empty() {
            return Err(invalid(
                "tls.ca_cert holds no PEM certificate; expected the bank's CA certificate".into(),
            ));
        }
        // Identity::from_pem wants the certificate and key in one buffer;
        // the buffer is a SecretString so that it is wiped when dropped.
        let identity_pem = crypto::SecretString::new(format!(
            "{}\n{}\n",
            tls.client_cert_pem.trim_end(),
            tls.client_key_pem.expose_secret().trim_end()
        ));
        let identity = reqwest::Identity::from_pem(identity_pem.expose_secret().as_bytes())
            .map_err(|e| {
                invalid(format!(
                    "tls.client_cert and tls.client_key are not a PEM certificate and private key: {e}"
                ))
            })?;
        let time_zone = BankTimeZone::parse(settings.time_zone.name())
            .map_err(|e| invalid(format!("time zone: {e}")))?;
        let mut builder = transport::client_builder(&settings)
            .use_rustls_tls()
            // Only the bank's CA: a certificate some public CA issued for the
            // bank's name is not the bank.
            .tls_built_in_root_certs(false);
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        let client = builder
            .identity(identity)
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .https_only(true)
            .build()
            .map_err(|e| invalid(format!("HTTPS client could not be built: {e}")))?;
        let limits = Limits {
            max_bytes: settings.max_response_bytes,
            ..Limits::default()
        };
        Ok(Iso20022Connector {
            settings,
            base,
            time_zone,
            client,
            limits,
            options,
            clock: Arc::new(SystemClock),
            listed: Mutex::new(HashMap::new()),
        })
    }

    /// The same connector reading "today" and stamping files from `clock`
    /// (tests and simulations).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Iso20022Connector {
        self.clock = clock;
        self
    }

    pub fn options(&self) -> &Iso20022Options {
        &self.options
    }

    fn bank(&self) -> String {
        self.settings.bank_id.clone()
    }

    fn protocol(&self, reason: String) -> BankError {
        transport::protocol(&self.settings.bank_id, reason)
    }

    fn url(&self, order: &str, query: &[(&str, String)]) -> Result<reqwest::Url, BankError> {
        let mut url =
            self.base
                .join(&format!("h2h/{order}"))
                .map_err(|e| BankError::NotProcessed {
                    bank: self.bank(),
                    reason: format!("the URL of order type {order} cannot be built: {e}"),
                })?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        Ok(url)
    }

    /// Counts and times one call and logs its outcome, under the same
    /// metric names as every connector (`function` is the order type).
    async fn observed<T>(
        &self,
        order: &'static str,
        call: impl std::future::Future<Output = Result<T, BankError>>,
    ) -> Result<T, BankError> {
        transport::observed(
            &self.settings.bank_id,
            order,
            crate::exchange::Charset::Utf8,
            call,
        )
        .await
    }

    /// Sends one request and reads the whole answer under the byte cap.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), BankError> {
        let response = request
            .header(PARTNER_HEADER, &self.settings.login)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, "sending the request"))?;
        let status = response.status();
        let cap = if status == reqwest::StatusCode::OK {
            self.settings.max_response_bytes
        } else {
            self.settings
                .max_response_bytes
                .min(MAX_ERROR_DOCUMENT_BYTES)
        };
        let body = self.read_capped(response, cap).await;
        if let Ok(body) = &body {
            crate::exchange::note_response(body);
        }
        match body {
            Ok(body) => Ok((status, body)),
            // An error document too large to be one is still the answer
            // of that status; its text does not matter.
            Err(_) if status != reqwest::StatusCode::OK => Ok((status, Vec::new())),
            Err(e) => Err(e),
        }
    }

    /// Reads the body chunk by chunk so that an oversized answer is refused
    /// without being held in memory.
    async fn read_capped(
        &self,
        response: reqwest::Response,
        cap: usize,
    ) -> Result<Vec<u8>, BankError> {
        transport::read_capped(&self.settings.bank_id, response, cap, |e| {
            self.transport_error(e, "reading the answer")
        })
        .await
    }

    fn transport_error(&self, error: &reqwest::Error, during: &str) -> BankError {
        if let Some(alert) = refused_handshake(error) {
            return BankError::NotProcessed {
                bank: self.bank(),
                reason: format!(
                    "the bank refused the TLS handshake ({alert:?}) while {during}: check connections[].tls (client certificate and key, CA): {}",
                    source_chain(error)
                ),
            };
        }
        transport::transport_error(
            &self.settings.bank_id,
            error,
            during,
            "could not connect to the bank (connection or TLS handshake failed)",
            self.settings.request_timeout,
        )
    }

    /// A GET of one order type; 200 gives the body, anything else is
    /// classified by [`classify_refusal`].
    async fn get(&self, order: &'static str, query: &[(&str, String)]) -> Result<Vec<u8>, Answer> {
        let url = self.url(order, query).map_err(Answer::Error)?;
        // A GET has no body: what identifies the request is its path and query.
        crate::exchange::note_request(
            format!("GET {}?{}", url.path(), url.query().unwrap_or_default()).as_bytes(),
        );
        let (status, body) = self
            .exchange(self.client.get(url))
            .await
            .map_err(Answer::Error)?;
        if status == reqwest::StatusCode::OK {
            Ok(body)
        } else {
            Err(self.refusal(order, status.as_u16(), &body))
        }
    }

    /// The answer of a non-200 status.
    fn refusal(&self, order: &str, status: u16, body: &[u8]) -> Answer {
        let document = ErrorDocument::parse(body);
        match classify_refusal(order, status, document.as_ref()) {
            Refusal::NotFound => Answer::NotFound,
            Refusal::AccountsUnknown => {
                Answer::AccountsUnknown(document.map(|d| d.message).unwrap_or_default())
            }
            Refusal::NotProcessed => Answer::Error(BankError::NotProcessed {
                bank: self.bank(),
                reason: format!(
                    "{order} answered HTTP {status} {} (processed: false): {}",
                    describe_document(document.as_ref()),
                    quoted_message(document.as_ref())
                ),
            }),
            Refusal::Rejected { code } => Answer::Error(BankError::Rejected {
                bank: self.bank(),
                code,
                message: document.map(|d| d.message).unwrap_or_default(),
            }),
            Refusal::Duplicate => Answer::Error(self.protocol(format!(
                "{order} answered HTTP {status} {}: a file with this message id was taken before (order {}); ask PSR for its result",
                describe_document(document.as_ref()),
                quoted(
                    document
                        .as_ref()
                        .and_then(|d| d.order_id.as_deref())
                        .unwrap_or_default()
                )
            ))),
            Refusal::Unknown => Answer::Error(BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::HttpStatus(status),
                reason: format!(
                    "{order} answered HTTP {status} {}: {}; expected 200",
                    describe_document(document.as_ref()),
                    quoted_message(document.as_ref())
                ),
            }),
        }
    }

    /// A read: a GET whose every non-200 answer is an error (a "not found"
    /// too, where the order type has none).
    async fn read(
        &self,
        order: &'static str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, BankError> {
        match self.read_report(order, query).await? {
            Report::Body(body) => Ok(body),
            Report::AccountsUnknown(message) => Err(BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::HttpStatus(400),
                reason: format!(
                    "{order} refused the account parameter: {}",
                    quoted(&message)
                ),
            }),
        }
    }

    /// A read that may also answer "none of these accounts".
    async fn read_report(
        &self,
        order: &'static str,
        query: &[(&str, String)],
    ) -> Result<Report, BankError> {
        self.observed(order, async {
            match self.get(order, query).await {
                Ok(body) => Ok(Report::Body(body)),
                Err(Answer::AccountsUnknown(message)) => Ok(Report::AccountsUnknown(message)),
                Err(Answer::Error(e)) => Err(e),
                Err(Answer::NotFound) => Err(BankError::OutcomeUnknown {
                    bank: self.bank(),
                    cause: UnknownCause::HttpStatus(404),
                    reason: format!("{order} answered 404 NOT_FOUND; expected 200"),
                }),
            }
        })
        .await
    }

    /// The accounts the bank lists for our partner id; remembers each
    /// one's BIC and name for the payments built later.
    async fn fetch_accounts(&self) -> Result<Vec<(BankAccountInfo, ListedAccount)>, BankError> {
        let body = self.read(ORDER_ACCOUNTS, &[]).await?;
        let list: AccountList = serde_json::from_slice(&body).map_err(|e| {
            self.protocol(format!(
                "HTD answer is not the account list JSON ({e}); expected {{\"accounts\":[…]}}"
            ))
        })?;
        let mut accounts = Vec::with_capacity(list.accounts.len());
        for (position, record) in list.accounts.iter().enumerate() {
            accounts.push(self.account_info(position + 1, record)?);
        }
        if let Ok(mut listed) = self.listed.lock() {
            for (info, account) in &accounts {
                listed.insert(info.number.as_str().to_string(), account.clone());
            }
        }
        Ok(accounts)
    }

    fn account_info(
        &self,
        position: usize,
        record: &AccountRecord,
    ) -> Result<(BankAccountInfo, ListedAccount), BankError> {
        let at = format!("HTD account {position}");
        let number = AccountNumber::parse(record.iban.trim())
            .map_err(|e| self.protocol(format!("{at}: iban: {e}")))?;
        let masked = mask_account(number.as_str());
        let currency = Currency::from_code(record.currency.trim()).map_err(|e| {
            self.protocol(format!(
                "{at} ({masked}): currency {}: {e}",
                quoted(&record.currency)
            ))
        })?;
        let bic = match record.bic.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(Bic::parse(text).map_err(|e| {
                self.protocol(format!("{at} ({masked}): bic {}: {e}", quoted(text)))
            })?),
        };
        Ok((
            BankAccountInfo {
                number,
                name: record.name.clone(),
                currency,
                branch: bic.as_ref().map(|b| b.as_str().to_string()),
                active: record.active,
            },
            ListedAccount {
                bic,
                name: record.name.clone(),
            },
        ))
    }

    /// What `HTD` says about the debtor account, asked once per connector.
    /// Nothing of the payment has been sent when this fails.
    async fn debtor_listing(
        &self,
        debtor: &AccountNumber,
        what: &str,
    ) -> Result<ListedAccount, BankError> {
        let cached = self
            .listed
            .lock()
            .ok()
            .and_then(|listed| listed.get(debtor.as_str()).cloned());
        let listing = match cached {
            Some(listing) => listing,
            None => {
                self.fetch_accounts().await.map_err(|e| BankError::NotProcessed {
                    bank: self.bank(),
                    reason: format!(
                        "{what} not sent: the bank's account list (HTD, for the debtor agent's BIC) could not be read: {e}"
                    ),
                })?;
                self.listed
                    .lock()
                    .ok()
                    .and_then(|listed| listed.get(debtor.as_str()).cloned())
                    .ok_or_else(|| BankError::Rejected {
                        bank: self.bank(),
                        code: CODE_ACCOUNT_UNKNOWN.to_string(),
                        message: format!(
                            "{what} not sent: the bank does not list debtor account {} for partner {} (HTD)",
                            debtor.masked(),
                            self.settings.login
                        ),
                    })?
            }
        };
        if listing.bic.is_none() {
            return Err(BankError::NotProcessed {
                bank: self.bank(),
                reason: format!(
                    "{what} not sent: the bank lists debtor account {} without a BIC; pain.001 needs the debtor agent's BIC",
                    debtor.masked()
                ),
            });
        }
        Ok(listing)
    }

    /// `CreDtTm` of a file we upload: now, in the bank's zone with offset.
    fn created_at(&self) -> String {
        self.clock
            .now()
            .with_timezone(&self.time_zone.tz())
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }

    /// The group header and payment information around `transactions`,
    /// rendered in the connection's pain.001 version; a refusal is
    /// `NotProcessed` (nothing was sent).
    fn render_file(&self, file: FileParts<'_>) -> Result<Vec<u8>, BankError> {
        let debtor_account = account_identification(file.debtor.as_str()).map_err(|detail| {
            BankError::NotProcessed {
                bank: self.bank(),
                reason: format!("{} not sent: debtor account: {detail}", file.what),
            }
        })?;
        let debtor_name = Some(file.listing.name.trim().to_string())
            .filter(|n| !n.is_empty() && n.chars().count() <= formats::iso20022::MAX140);
        let Some(debtor_agent) = file.listing.bic.clone() else {
            return Err(BankError::NotProcessed {
                bank: self.bank(),
                reason: format!("{} not sent: no debtor agent BIC", file.what),
            });
        };
        let message = CustomerCreditTransferInitiation {
            message_id: file.message_id.to_string(),
            created_at: self.created_at(),
            initiating_party: Party {
                name: Some(self.settings.login.clone()),
                address_lines: Vec::new(),
            },
            payments: vec![PaymentInformation {
                id: file.message_id.to_string(),
                // A payroll run is booked as one debit, for salaries; other
                // files leave both to the bank, as they always have.
                batch_booking: file.payroll.then_some(true),
                category_purpose: file.payroll.then(|| CATEGORY_PURPOSE_SALARY.to_string()),
                requested_execution_date: file.execution_date,
                debtor: Party {
                    name: debtor_name,
                    address_lines: Vec::new(),
                },
                debtor_account,
                debtor_agent,
                transactions: file.transactions,
            }],
        };
        pain001::render_version(&message, self.options.pain001_version).map_err(|e| {
            BankError::NotProcessed {
                bank: self.bank(),
                reason: format!("{} not sent: pain.001 cannot carry it: {e}", file.what),
            }
        })
    }

    /// Uploads one pain.001 (`CCT`) and classifies the answer strictly:
    /// only `200 RCVD` for our message id is taken.
    async fn upload(&self, message_id: &str, file: Vec<u8>) -> Result<Upload, BankError> {
        self.observed(ORDER_CREDIT_TRANSFER, async {
            let url = self.url(ORDER_CREDIT_TRANSFER, &[])?;
            crate::exchange::note_request(&file);
            let request = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE_XML)
                .body(file);
            let (status, body) = self.exchange(request).await?;
            if status != reqwest::StatusCode::OK {
                return match self.refusal(ORDER_CREDIT_TRANSFER, status.as_u16(), &body) {
                    Answer::Error(e) => Err(e),
                    Answer::AccountsUnknown(_) => Err(BankError::OutcomeUnknown {
                        bank: self.bank(),
                        cause: UnknownCause::HttpStatus(status.as_u16()),
                        reason: "CCT answered an account refusal; expected 200 RCVD".into(),
                    }),
                    // CCT has no "not found": an unexplained 404 after the
                    // upload may have been taken.
                    Answer::NotFound => Err(BankError::OutcomeUnknown {
                        bank: self.bank(),
                        cause: UnknownCause::HttpStatus(404),
                        reason: "CCT answered 404 NOT_FOUND; expected 200 RCVD".into(),
                    }),
                };
            }
            let receipt: UploadReceipt = serde_json::from_slice(&body).map_err(|e| {
                self.protocol(format!(
                    "CCT answer is not the receipt JSON ({e}); expected {{\"order_id\",\"message_id\",\"status\"}}"
                ))
            })?;
            if receipt.message_id != message_id {
                return Err(self.protocol(format!(
                    "CCT answer is for message {}; expected {message_id}",
                    quoted(&receipt.message_id)
                )));
            }
            if receipt.status != STATUS_RECEIVED {
                return Err(self.protocol(format!(
                    "CCT answer has status {}; expected RCVD",
                    quoted(&receipt.status)
                )));
            }
            Ok(Upload {
                order_id: Some(receipt.order_id).filter(|id| !id.trim().is_empty()),
                status: receipt.status,
            })
        })
        .await
    }

    /// The pain.002 report on one uploaded file, or `None` when the bank
    /// positively knows no file with that message id.
    async fn status_report(
        &self,
        message_id: &str,
    ) -> Result<Option<pain002::CustomerPaymentStatusReport>, BankError> {
        self.observed(ORDER_PAYMENT_STATUS, async {
            let query = [
                ("message_id", message_id.to_string()),
                ("version", "12".to_string()),
            ];
            let body = match self.get(ORDER_PAYMENT_STATUS, &query).await {
                Ok(body) => body,
                Err(Answer::NotFound) => return Ok(None),
                Err(Answer::Error(e)) => return Err(e),
                Err(Answer::AccountsUnknown(message)) => {
                    return Err(BankError::OutcomeUnknown {
                        bank: self.bank(),
                        cause: UnknownCause::HttpStatus(400),
                        reason: format!("PSR answered an account refusal: {}", quoted(&message)),
                    })
                }
            };
            let (_, report) = pain002::parse_with_limits(&body, &self.limits).map_err(|e| {
                self.protocol(format!("PSR answer is not a pain.002 status report: {e}"))
            })?;
            if report.original_group.original_message_id != message_id {
                return Err(self.protocol(format!(
                    "PSR answer reports on message {}; expected {message_id}",
                    quoted(&report.original_group.original_message_id)
                )));
            }
            Ok(Some(report))
        })
        .await
    }

    /// The status of the single payment `reference` from its report.
    fn payment_answer(
        &self,
        reference: &BankReference,
        report: &pain002::CustomerPaymentStatusReport,
    ) -> Result<StatusAnswer, BankError> {
        let mut found: Option<&TransactionStatus> = None;
        for tx in report
            .original_payments
            .iter()
            .flat_map(|p| p.transactions.iter())
        {
            let id = tx
                .original_instruction_id
                .as_deref()
                .or(tx.original_end_to_end_id.as_deref());
            match id {
                Some(id) if id == reference.as_str() => {
                    if found.is_some() {
                        return Err(self
                            .protocol(format!("PSR answer lists transaction {reference} twice")));
                    }
                    found = Some(tx);
                }
                other => {
                    return Err(self.protocol(format!(
                        "PSR answer for payment {reference} lists another transaction {}",
                        quoted(other.unwrap_or_default())
                    )))
                }
            }
        }
        let (status, reasons) = match found {
            Some(tx) => (tx.status.as_ref(), tx.reasons.as_slice()),
            // A report on the group only: the file as a whole.
            None => (
                report.original_group.status.as_ref(),
                report.original_group.reasons.as_slice(),
            ),
        };
        Ok(StatusAnswer::Found {
            status: map_transaction_status(status, reasons),
            bank_payment_id: None,
            bank_code: raw_status_code(status, reasons),
            bank_message: additional_info(reasons),
        })
    }
}

/// The parts of one uploaded file that differ between a payment and a
/// batch chunk.
struct FileParts<'a> {
    what: &'a str,
    message_id: &'a str,
    debtor: &'a AccountNumber,
    listing: &'a ListedAccount,
    execution_date: domain::BusinessDate,
    transactions: Vec<CreditTransfer>,
    payroll: bool,
}

/// A taken upload.
struct Upload {
    order_id: Option<String>,
    status: String,
}

/// What a report request gave.
enum Report {
    Body(Vec<u8>),
    /// `C52`: none of the asked accounts is visible; the bank's message.
    AccountsUnknown(String),
}

/// The bank's answer to a GET that did not give a body.
enum Answer {
    NotFound,
    /// `C52`: none of the asked accounts is visible to the partner.
    AccountsUnknown(String),
    Error(BankError),
}

/// The JSON error document of every non-200 answer the bank gives on
/// purpose. Fields beyond the documented three are read where a reason
/// code may hide (`reason`, `reason_code`, `code`): the family does not
/// name the field that carries `FILE_REJECTED`'s ISO code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ErrorDocument {
    pub error: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub processed: Option<bool>,
    #[serde(default, alias = "reason_code", alias = "code")]
    pub reason: Option<String>,
    #[serde(default)]
    pub order_id: Option<String>,
    /// The request parameter a `400` is about.
    #[serde(default)]
    pub parameter: Option<String>,
}

impl ErrorDocument {
    /// The document, if the body is one.
    pub fn parse(body: &[u8]) -> Option<ErrorDocument> {
        serde_json::from_slice(body).ok()
    }
}

/// What a non-200 answer means, before it is put into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The bank promises nothing was taken: retry later.
    NotProcessed,
    /// The bank's documented refusal of a file, with its ISO reason code.
    Rejected { code: String },
    /// A file with this message id was taken before.
    Duplicate,
    /// `PSR`: no file with this message id (yet).
    NotFound,
    /// `C52`: the `account` parameters were refused: the partner sees none
    /// of the accounts asked.
    AccountsUnknown,
    /// Anything else: the bank may have acted.
    Unknown,
}

/// Classifies a non-200 answer to `order` (docs/families/iso20022.md,
/// "Mapping to bankdirect's errors"). Only a well-formed error document
/// can make an answer anything but [`Refusal::Unknown`]:
/// - `429`/`503` with `processed: false` → `NotProcessed` (busy);
/// - `403` with `processed: false` → `NotProcessed`: the partner was refused
///   before anything was looked at (a configuration problem an operator must
///   fix; the error says which);
/// - `CCT` `422` `FILE_REJECTED` → `Rejected` with the reason code (the
///   document's `reason`, else its `error`);
/// - `CCT` `409` `DUPLICATE_MESSAGE` → `Duplicate`;
/// - `PSR` `404` `NOT_FOUND` → `NotFound`;
/// - `C52` `400` `BAD_REQUEST` about the `account` parameter →
///   `AccountsUnknown`: the family leaves accounts the partner may not see
///   out of a report, and a report with none left is refused this way
///   (docs/families/iso20022.md, "Simulator notes"), so every asked account
///   is unknown (`AC01`), not the call failed.
pub fn classify_refusal(order: &str, status: u16, document: Option<&ErrorDocument>) -> Refusal {
    let Some(document) = document else {
        return Refusal::Unknown;
    };
    let not_taken = document.processed == Some(false);
    match (order, status, document.error.as_str()) {
        (_, 429 | 503 | 403, _) if not_taken => Refusal::NotProcessed,
        (ORDER_CREDIT_TRANSFER, 422, ERROR_FILE_REJECTED) => Refusal::Rejected {
            code: document
                .reason
                .as_deref()
                .map(str::trim)
                .filter(|code| !code.is_empty())
                .unwrap_or(ERROR_FILE_REJECTED)
                .to_string(),
        },
        (ORDER_CREDIT_TRANSFER, 409, ERROR_DUPLICATE_MESSAGE) => Refusal::Duplicate,
        (ORDER_PAYMENT_STATUS, 404, ERROR_NOT_FOUND) => Refusal::NotFound,
        (ORDER_INTRADAY, 400, ERROR_BAD_REQUEST)
            if document.parameter.as_deref() == Some("account") =>
        {
            Refusal::AccountsUnknown
        }
        _ => Refusal::Unknown,
    }
}

fn describe_document(document: Option<&ErrorDocument>) -> String {
    match document {
        Some(d) => quoted(&d.error),
        None => "without an error document".to_string(),
    }
}

fn quoted_message(document: Option<&ErrorDocument>) -> String {
    quoted(document.map(|d| d.message.as_str()).unwrap_or_default())
}

/// `HTD`'s answer.
#[derive(Debug, serde::Deserialize)]
struct AccountList {
    accounts: Vec<AccountRecord>,
}

#[derive(Debug, serde::Deserialize)]
struct AccountRecord {
    iban: String,
    currency: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    bic: Option<String>,
    #[serde(default = "active_by_default")]
    active: bool,
}

fn active_by_default() -> bool {
    true
}

/// `CCT`'s answer when the file was taken.
#[derive(Debug, serde::Deserialize)]
struct UploadReceipt {
    #[serde(default)]
    order_id: String,
    message_id: String,
    status: String,
}

/// An account as pain.001 identifies it: an IBAN when it is one (checked),
/// else `Othr/Id`. Text that starts like an IBAN (two letters, two digits)
/// but fails its check is refused rather than sent as another id: it is
/// much more likely a mistyped IBAN than a domestic number.
pub fn account_identification(text: &str) -> Result<AccountIdentification, String> {
    if let Ok(iban) = Iban::parse(text) {
        if iban.as_str() == text {
            return Ok(AccountIdentification::Iban(iban));
        }
    }
    let bytes = text.as_bytes();
    let iban_like = bytes.len() > 4
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..4].iter().all(u8::is_ascii_digit);
    if iban_like {
        return Err(match Iban::parse(text) {
            Ok(_) => {
                "an IBAN must be written in its electronic form (upper case, no spaces)".to_string()
            }
            Err(e) => format!("looks like an IBAN but is not a valid one: {e}"),
        });
    }
    if text.is_empty() || text.chars().count() > formats::iso20022::MAX34 {
        return Err(format!(
            "{} characters; expected an IBAN or an account id of 1 to {} characters",
            text.chars().count(),
            formats::iso20022::MAX34
        ));
    }
    if !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(
            "an account id other than an IBAN may hold only ASCII letters, digits and '-'"
                .to_string(),
        );
    }
    Ok(AccountIdentification::Other(text.to_string()))
}

/// Maps a pain.002 status and its reasons onto [`BankPaymentStatus`]
/// (docs/families/iso20022.md, "PSR"):
/// `ACSC` is `Settled`; `RJCT` with `Rsn/Prtry` `RTRN` is `Returned` (settled,
/// then sent back) with the additional information; any other `RJCT` is
/// `Failed` with its `Rsn/Cd` (or `Prtry`, or `RJCT` when the bank gives no
/// reason); everything else — the documented in-flight codes, codes this
/// connector does not know, no status at all — is `Processing`, asked again
/// later.
pub fn map_transaction_status(
    status: Option<&Status>,
    reasons: &[StatusReason],
) -> BankPaymentStatus {
    match status {
        Some(Status::AcceptedSettlementCompleted) => BankPaymentStatus::Settled,
        Some(Status::Rejected) => {
            let message = additional_info(reasons);
            let reason = reasons.iter().find_map(|r| r.reason.as_ref());
            match reason {
                Some(Reason::Proprietary(code)) if code.trim() == REASON_RETURNED => {
                    BankPaymentStatus::Returned {
                        code: REASON_RETURNED.to_string(),
                        message,
                    }
                }
                Some(Reason::Code(code) | Reason::Proprietary(code)) if !code.trim().is_empty() => {
                    BankPaymentStatus::Failed {
                        code: code.trim().to_string(),
                        message,
                    }
                }
                _ => BankPaymentStatus::Failed {
                    code: Status::Rejected.code().to_string(),
                    message,
                },
            }
        }
        _ => BankPaymentStatus::Processing,
    }
}

/// True for the statuses after which a transaction does not change any
/// more (a settled one may still be returned).
pub fn is_final_status(status: Option<&Status>) -> bool {
    matches!(
        status,
        Some(Status::AcceptedSettlementCompleted | Status::Rejected)
    )
}

/// The bank's raw status as kept in a payment's history: the status code
/// and, when given, the reason code (`RJCT/AM04`, `ACSC`, `RJCT/RTRN`).
pub fn raw_status_code(status: Option<&Status>, reasons: &[StatusReason]) -> String {
    let code = status.map_or("NONE", Status::code);
    match reasons.iter().find_map(|r| r.reason.as_ref()) {
        Some(Reason::Code(reason) | Reason::Proprietary(reason)) => {
            format!("{code}/{}", reason.trim())
        }
        None => code.to_string(),
    }
}

/// Every `AddtlInf` of the reasons, joined.
fn additional_info(reasons: &[StatusReason]) -> String {
    reasons
        .iter()
        .flat_map(|r| r.additional_info.iter())
        .map(|line| line.trim())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The TLS alert with which the bank refused our handshake, if that is
/// what this error comes down to. Alerts that only a server refusing the
/// handshake sends are recognised; anything else is not proof that the
/// request never reached the bank.
fn refused_handshake(
    error: &(dyn std::error::Error + 'static),
) -> Option<rustls::AlertDescription> {
    use rustls::AlertDescription as A;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    // Cause chains are short; the bound only guards against a cycle.
    for _ in 0..16 {
        let err = current?;
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::AlertReceived(alert)) = tls {
            if matches!(
                alert,
                A::CertificateRequired
                    | A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::HandshakeFailure
                    | A::AccessDenied
                    | A::DecryptError
            ) {
                return Some(*alert);
            }
        }
        current = err.source();
    }
    None
}

#[async_trait]
impl BankConnector for Iso20022Connector {
    fn family(&self) -> Family {
        Family::Iso20022
    }

    fn capabilities(&self) -> &'static [Capability] {
        &[
            Capability::Balances,
            Capability::Transactions,
            Capability::SinglePayment,
            Capability::BatchPayment,
            Capability::StatusByReference,
        ]
    }

    fn lacking_capabilities(&self) -> &'static [(Capability, &'static str)] {
        &[(Capability::SignedMessages, LACKS_SIGNED_MESSAGES)]
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id))]
    async fn list_accounts(&self) -> Result<Vec<BankAccountInfo>, BankError> {
        Ok(self
            .fetch_accounts()
            .await?
            .into_iter()
            .map(|(info, _)| info)
            .collect())
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id, accounts = accounts.len()))]
    async fn balances(&self, accounts: &[BalanceQuery]) -> Result<Vec<BalanceOutcome>, BankError> {
        let mut outcomes = Vec::with_capacity(accounts.len());
        // Sequential on purpose: per-bank concurrency is the gateway's.
        let size = self
            .settings
            .max_accounts_per_query
            .min(MAX_ACCOUNTS_PER_REPORT);
        for chunk in accounts.chunks(size) {
            outcomes.extend(self.balances_chunk(chunk).await?);
        }
        Ok(outcomes)
    }

    fn dedupe_policy(&self) -> DedupeKeyPolicy {
        // AcctSvcrRef is unique per account; entries without one fall back
        // to fingerprint plus occurrence in the gateway.
        DedupeKeyPolicy::BankIdPerAccount
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        account = %query.number.masked(), from = %query.from, to = %query.to))]
    async fn transactions(&self, query: &TransactionQuery) -> Result<TransactionReport, BankError> {
        self.read_transactions(query).await
    }

    fn check_payment(&self, payment: &PaymentInstruction) -> Result<(), Vec<IntakeProblem>> {
        let problems = intake::payment_problems(payment, &self.options);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        reference = %payment.reference, debtor = %payment.debtor_account.masked()))]
    async fn submit_payment(
        &self,
        payment: &PaymentInstruction,
    ) -> Result<SubmitReceipt, BankError> {
        let what = format!("payment {}", payment.reference);
        // Checked before anything is sent: a refusal here is provably
        // NotProcessed.
        let problems = intake::payment_problems(payment, &self.options);
        if !problems.is_empty() {
            return Err(BankError::NotProcessed {
                bank: self.bank(),
                reason: format!("{what} not sent: {}", intake::describe(&problems)),
            });
        }
        let listing = self.debtor_listing(&payment.debtor_account, &what).await?;
        let transfer = intake::credit_transfer(
            &payment.reference,
            payment.amount,
            &payment.creditor_name,
            &payment.creditor_account,
            payment.creditor_bic.as_ref(),
            &payment.remittance,
        )
        .map_err(|detail| BankError::NotProcessed {
            bank: self.bank(),
            reason: format!("{what} not sent: {detail}"),
        })?;
        let file = self.render_file(FileParts {
            what: &what,
            message_id: payment.reference.as_str(),
            debtor: &payment.debtor_account,
            listing: &listing,
            execution_date: payment.requested_execution_date,
            transactions: vec![transfer],
            payroll: false,
        })?;
        let upload = self.upload(payment.reference.as_str(), file).await?;
        Ok(SubmitReceipt {
            status: BankPaymentStatus::Processing,
            bank_payment_id: upload.order_id,
            bank_code: upload.status,
            bank_message: String::new(),
        })
    }

    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id,
        debtor = %debtor_account.masked(), references = references.len()))]
    async fn payment_status(
        &self,
        debtor_account: &AccountNumber,
        references: &[BankReference],
    ) -> Result<Vec<StatusAnswer>, BankError> {
        // PSR asks by message id, one file at a time; the debtor account
        // only names the payments in logs.
        let mut answers = Vec::with_capacity(references.len());
        for reference in references {
            let answer = match self.status_report(reference.as_str()).await? {
                None => StatusAnswer::NotFound,
                Some(report) => self.payment_answer(reference, &report)?,
            };
            answers.push(answer);
        }
        Ok(answers)
    }

    fn max_batch_items(&self) -> usize {
        self.options.max_batch_items
    }

    fn check_batch_item(
        &self,
        kind: BatchKind,
        item: &BatchItemInstruction,
    ) -> Result<(), Vec<IntakeProblem>> {
        let problems = intake::item_problems(kind, item, &self.options);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    async fn submit_batch(&self, batch: &BatchInstruction) -> Result<BatchReceipt, BankError> {
        self.submit_batch_chunk(batch).await
    }

    async fn batch_status(
        &self,
        debtor_account: &AccountNumber,
        reference: &BankReference,
    ) -> Result<BatchStatusAnswer, BankError> {
        self.batch_status_of(debtor_account, reference).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    /// A self-signed P-256 certificate and its key, for building
    /// connectors in unit tests only (they never connect anywhere).
    pub(crate) const TEST_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBlDCCATugAwIBAgIUF4D51MLN3asK9SqmC/r0o59Wdh4wCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUYmFua2RpcmVjdCB1bml0IHRlc3QwIBcNMjYxMTI5MDI0MjI5
WhgPMjEyNjExMDUwMjQyMjlaMB8xHTAbBgNVBAMMFGJhbmtkaXJlY3QgdW5pdCB0
ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERY9KMMCpDe8eWee2bAgm5QM2
iYlKz5jnpkcReBvVm391pZ/nozsOUbWmZ/TwIYZnW7+cFEfWuTHpaq/ZiUbpmaNT
MFEwHQYDVR0OBBYEFGbUktSsZyfZ061CozWkKKzfST/gMB8GA1UdIwQYMBaAFGbU
ktSsZyfZ061CozWkKKzfST/gMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
RwAwRAIgdCfkQMbsO6VOKl5icf9fmKDyXWnEFTKpo0eKFlZk1GcCIBOlpZY8uotr
BXRv9KGCRgG0oSfS4kjpkbV3gTAwD6KQ
-----END CERTIFICATE-----
";
    pub(crate) const TEST_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgc7iwJz1QZ2+N4WRX
kUTrdFyLVeilKiaWVwZkvuJc5vOhRANCAARFj0owwKkN7x5Z57ZsCCblAzaJiUrP
mOemRxF4G9Wbf3Wln+ejOw5RtaZn9PAhhmdbv5wUR9a5Melqr9mJRumZ
-----END PRIVATE KEY-----
";

    pub(crate) fn test_settings() -> ConnectionSettings {
        ConnectionSettings {
            bank_id: "unit".into(),
            connection_id: "unit-h2h".into(),
            endpoint: "https://127.0.0.1:9/".into(),
            login: "PARTNER1".into(),
            time_zone: chrono_tz::Europe::Berlin,
            connect_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_millis(100),
            max_response_bytes: 1024,
            max_accounts_per_query: 20,
            max_idle_connections: 4,
            tls: Some(crate::ClientTlsSettings {
                ca_cert_pem: TEST_CERT_PEM.into(),
                client_cert_pem: TEST_CERT_PEM.into(),
                client_key_pem: crypto::SecretString::new(TEST_KEY_PEM.into()),
            }),
        }
    }

    pub(crate) fn test_connector() -> Iso20022Connector {
        Iso20022Connector::new(test_settings()).unwrap()
    }

    #[test]
    fn settings_that_cannot_work_are_refused_naming_the_connection() {
        assert_eq!(test_connector().base.as_str(), "https://127.0.0.1:9/");
        let mut no_slash = test_settings();
        no_slash.endpoint = "https://bank.example/h2h-gw".into();
        let connector = Iso20022Connector::new(no_slash).unwrap();
        assert_eq!(
            connector.url(ORDER_ACCOUNTS, &[]).unwrap().as_str(),
            "https://bank.example/h2h-gw/h2h/HTD"
        );
        type Spoil = fn(&mut ConnectionSettings);
        let cases: Vec<(Spoil, &str)> = vec![
            ((|s: &mut ConnectionSettings| s.tls = None), "tls"),
            (
                (|s: &mut ConnectionSettings| s.endpoint = "http://127.0.0.1:9/".into()),
                "https only",
            ),
            (
                (|s: &mut ConnectionSettings| s.endpoint = "not a url".into()),
                "not a URL",
            ),
            ((|s: &mut ConnectionSettings| s.login = " ".into()), "login"),
            (
                (|s: &mut ConnectionSettings| s.max_response_bytes = 0),
                "max_response_bytes",
            ),
            (
                (|s: &mut ConnectionSettings| {
                    if let Some(tls) = &mut s.tls {
                        tls.ca_cert_pem = "garbage".into();
                    }
                }),
                "ca_cert",
            ),
            (
                (|s: &mut ConnectionSettings| {
                    if let Some(tls) = &mut s.tls {
                        tls.client_key_pem = crypto::SecretString::new(String::new());
                    }
                }),
                "client_key",
            ),
        ];
        for (spoil, mentions) in cases {
            let mut settings = test_settings();
            spoil(&mut settings);
            let Err(error) = Iso20022Connector::new(settings) else {
                panic!("settings spoiled for {mentions} were accepted");
            };
            assert_eq!(error.connection, "unit-h2h");
            assert!(error.message.contains(mentions), "{}", error.message);
        }
    }

    #[test]
    fn query_parameters_are_encoded() {
        let url = test_connector()
            .url(
                ORDER_STATEMENT,
                &[
                    ("account", "DE89 3704".into()),
                    ("from", "2026-11-01".into()),
                ],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://127.0.0.1:9/h2h/C53?account=DE89+3704&from=2026-11-01"
        );
    }

    fn document(error: &str, processed: Option<bool>, reason: Option<&str>) -> ErrorDocument {
        ErrorDocument {
            error: error.into(),
            message: "m".into(),
            processed,
            reason: reason.map(str::to_string),
            order_id: None,
            parameter: None,
        }
    }

    #[test]
    fn refusals_map_per_the_family_doc() {
        let busy = document("SYSTEM_BUSY", Some(false), None);
        for status in [429, 503] {
            for order in [ORDER_CREDIT_TRANSFER, ORDER_PAYMENT_STATUS, ORDER_STATEMENT] {
                assert_eq!(
                    classify_refusal(order, status, Some(&busy)),
                    Refusal::NotProcessed
                );
            }
        }
        // Busy without the promise is not proof of anything.
        let unsure = document("SYSTEM_BUSY", None, None);
        assert_eq!(
            classify_refusal(ORDER_CREDIT_TRANSFER, 503, Some(&unsure)),
            Refusal::Unknown
        );
        let taken = document("SYSTEM_BUSY", Some(true), None);
        assert_eq!(
            classify_refusal(ORDER_CREDIT_TRANSFER, 503, Some(&taken)),
            Refusal::Unknown
        );
        assert_eq!(
            classify_refusal(ORDER_CREDIT_TRANSFER, 503, None),
            Refusal::Unknown
        );
        assert_eq!(
            classify_refusal(
                ORDER_CREDIT_TRANSFER,
                403,
                Some(&document("UNKNOWN_PARTNER", Some(false), None))
            ),
            Refusal::NotProcessed
        );
        assert_eq!(
            classify_refusal(
                ORDER_CREDIT_TRANSFER,
                422,
                Some(&document(ERROR_FILE_REJECTED, Some(false), Some(" AM10 ")))
            ),
            Refusal::Rejected {
                code: "AM10".into()
            }
        );
        assert_eq!(
            classify_refusal(
                ORDER_CREDIT_TRANSFER,
                422,
                Some(&document(ERROR_FILE_REJECTED, Some(false), None))
            ),
            Refusal::Rejected {
                code: ERROR_FILE_REJECTED.into()
            }
        );
        assert_eq!(
            classify_refusal(
                ORDER_CREDIT_TRANSFER,
                409,
                Some(&document(ERROR_DUPLICATE_MESSAGE, Some(false), None))
            ),
            Refusal::Duplicate
        );
        assert_eq!(
            classify_refusal(
                ORDER_PAYMENT_STATUS,
                404,
                Some(&document(ERROR_NOT_FOUND, Some(false), None))
            ),
            Refusal::NotFound
        );
        // A 404 without the document, or on another order type, proves nothing.
        assert_eq!(
            classify_refusal(ORDER_PAYMENT_STATUS, 404, None),
            Refusal::Unknown
        );
        assert_eq!(
            classify_refusal(
                ORDER_STATEMENT,
                404,
                Some(&document(ERROR_NOT_FOUND, Some(false), None))
            ),
            Refusal::Unknown
        );
        let mut about_accounts = document(ERROR_BAD_REQUEST, Some(false), None);
        about_accounts.parameter = Some("account".into());
        assert_eq!(
            classify_refusal(ORDER_INTRADAY, 400, Some(&about_accounts)),
            Refusal::AccountsUnknown
        );
        for order in [ORDER_STATEMENT, ORDER_CREDIT_TRANSFER] {
            assert_eq!(
                classify_refusal(order, 400, Some(&about_accounts)),
                Refusal::Unknown
            );
        }
        about_accounts.parameter = Some("page".into());
        assert_eq!(
            classify_refusal(ORDER_INTRADAY, 400, Some(&about_accounts)),
            Refusal::Unknown
        );
        for status in [400, 500, 502, 504] {
            assert_eq!(
                classify_refusal(
                    ORDER_CREDIT_TRANSFER,
                    status,
                    Some(&document("X", Some(false), None))
                ),
                Refusal::Unknown
            );
        }
    }

    #[test]
    fn error_documents_parse_leniently_and_never_panic() {
        let doc = ErrorDocument::parse(
            br#"{"error":"FILE_REJECTED","message":"control sum","processed":false,"reason":"AM10","extra":1}"#,
        )
        .unwrap();
        assert_eq!(doc.reason.as_deref(), Some("AM10"));
        assert_eq!(doc.processed, Some(false));
        let doc = ErrorDocument::parse(br#"{"error":"X","reason_code":"FF01"}"#).unwrap();
        assert_eq!(doc.reason.as_deref(), Some("FF01"));
        for junk in [
            &b""[..],
            b"<xml/>",
            b"{",
            b"\xff\xfe",
            b"[]",
            b"{\"message\":\"no error\"}",
        ] {
            assert_eq!(ErrorDocument::parse(junk), None);
        }
    }

    fn reason(code: Option<Reason>, info: &[&str]) -> StatusReason {
        StatusReason {
            reason: code,
            additional_info: info.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn transaction_statuses_map_per_the_table() {
        for code in [
            "RCVD", "PDNG", "ACTC", "ACCP", "ACSP", "ACWC", "PART", "XXXX",
        ] {
            let status = Status::from_code(code);
            assert_eq!(
                map_transaction_status(Some(&status), &[]),
                BankPaymentStatus::Processing,
                "{code}"
            );
            assert!(!is_final_status(Some(&status)), "{code}");
        }
        assert_eq!(
            map_transaction_status(None, &[]),
            BankPaymentStatus::Processing
        );
        assert_eq!(
            map_transaction_status(Some(&Status::AcceptedSettlementCompleted), &[]),
            BankPaymentStatus::Settled
        );
        for code in ["AC01", "AC04", "AM04", "BE01", "AM05"] {
            let reasons = [reason(Some(Reason::Code(code.into())), &["why", " more "])];
            assert_eq!(
                map_transaction_status(Some(&Status::Rejected), &reasons),
                BankPaymentStatus::Failed {
                    code: code.into(),
                    message: "why more".into()
                }
            );
            assert_eq!(
                raw_status_code(Some(&Status::Rejected), &reasons),
                format!("RJCT/{code}")
            );
        }
        let returned = [reason(
            Some(Reason::Proprietary("RTRN".into())),
            &["account closed at the creditor's bank"],
        )];
        assert_eq!(
            map_transaction_status(Some(&Status::Rejected), &returned),
            BankPaymentStatus::Returned {
                code: "RTRN".into(),
                message: "account closed at the creditor's bank".into()
            }
        );
        assert_eq!(
            map_transaction_status(Some(&Status::Rejected), &[]),
            BankPaymentStatus::Failed {
                code: "RJCT".into(),
                message: String::new()
            }
        );
        let other_proprietary = [reason(Some(Reason::Proprietary("X9".into())), &[])];
        assert_eq!(
            map_transaction_status(Some(&Status::Rejected), &other_proprietary),
            BankPaymentStatus::Failed {
                code: "X9".into(),
                message: String::new()
            }
        );
        assert!(is_final_status(Some(&Status::Rejected)));
        assert!(is_final_status(Some(&Status::AcceptedSettlementCompleted)));
        assert_eq!(
            raw_status_code(Some(&Status::AcceptedSettlementCompleted), &[]),
            "ACSC"
        );
        assert_eq!(raw_status_code(None, &[]), "NONE");
    }

    #[test]
    fn accounts_are_ibans_when_they_look_like_one() {
        assert!(matches!(
            account_identification("DE89370400440532013000"),
            Ok(AccountIdentification::Iban(_))
        ));
        assert!(account_identification("DE89370400440532013001")
            .unwrap_err()
            .contains("IBAN"));
        assert!(account_identification("de89370400440532013000")
            .is_ok_and(|id| matches!(id, AccountIdentification::Other(_))));
        assert!(matches!(
            account_identification("755900012310001"),
            Ok(AccountIdentification::Other(_))
        ));
        assert!(account_identification("").is_err());
        assert!(account_identification(&"1".repeat(35)).is_err());
        assert!(account_identification("12 34").is_err());
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection error")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_handshake_refused_by_the_bank_is_recognised_under_io_errors() {
        use rustls::AlertDescription as A;
        let wrapped = |error: rustls::Error| {
            Outer(std::io::Error::new(std::io::ErrorKind::InvalidData, error))
        };
        for alert in [
            A::CertificateRequired,
            A::BadCertificate,
            A::UnknownCA,
            A::DecryptError,
        ] {
            let error = wrapped(rustls::Error::AlertReceived(alert));
            assert_eq!(refused_handshake(&error), Some(alert));
        }
        // Alerts that do not prove a refused handshake, and other errors.
        for error in [
            wrapped(rustls::Error::AlertReceived(A::CloseNotify)),
            wrapped(rustls::Error::AlertReceived(A::InternalError)),
            wrapped(rustls::Error::DecryptError),
        ] {
            assert_eq!(refused_handshake(&error), None);
        }
        let plain = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert_eq!(refused_handshake(&plain), None);
    }
}
