//! The cn-xml connector: GBK XML packets over HTTP to a bank's front machine
//! (docs/families/cn-xml.md).
//!
//! One call is one `POST` of one packet with a fresh request serial. The
//! answer is read with a byte cap, decoded strictly as GB18030, checked to
//! echo our function code and serial, and only then believed. Every failure
//! is sorted into the three [`BankError`] kinds by what it proves about the
//! request:
//!
//! | what happened | kind |
//! |---|---|
//! | no connection (refused, name resolution, connect timeout, TLS) | `NotProcessed` |
//! | `RETCODE` `SYSTEM_BUSY` (refused before doing anything) | `NotProcessed` |
//! | any other `RETCODE` but `0` | `Rejected`, the bank's code and message kept |
//! | timeout after the request was sent | `OutcomeUnknown(Timeout)` |
//! | reset or broken body | `OutcomeUnknown(Transport)` |
//! | HTTP status other than 200 | `OutcomeUnknown(HttpStatus)` |
//! | anything in the answer that is not a well-formed packet for our request | `OutcomeUnknown(Protocol)` |
//!
//! A failed record (`RECSTS` `F`) of an accepted balance query is not an
//! error of the call but [`BalanceOutcome::Failed`] for that account.
//!
//! Layout: the currency table, the connector and its settings check, the
//! call (transport, metrics, tracing), then the mapping of each function's
//! answer.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::{
    bank_local_to_utc, AccountNumber, BankTimeZone, BusinessDate, Currency, Money, OsRandom,
    RandomSource,
};
use formats::cn_xml::messages::{
    self, AccountRecord, BalanceQueryItem, BalanceRecord, FUNC_LIST_ACCOUNTS, FUNC_QUERY_BALANCE,
    MAX_ACCOUNTS_PER_BALANCE_QUERY, REC_FAILED, REC_SUCCESS, RET_OK, RET_SYSTEM_BUSY,
};
use formats::cn_xml::{decode, encode, Limits, Packet};

use crate::{
    mask_account, BalanceOutcome, BalanceQuery, BankAccountInfo, BankBalance, BankConnector,
    BankError, Capability, ConnectError, ConnectionSettings, Family, UnknownCause,
};

/// Code of a failed balance record: the family carries no record-level code,
/// only a message.
pub const RECORD_FAILED: &str = "RECORD_FAILED";
/// Idle connections kept per front machine, and for how long. A front
/// machine is one host; a handful of warm connections serves bursts of
/// balance queries without holding sockets the bank may cut anyway.
pub const POOL_MAX_IDLE_PER_HOST: usize = 4;
pub const POOL_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Length of the random part of a request serial, in hex digits.
const SERIAL_HEX_DIGITS: usize = 16;
const CONTENT_TYPE: &str = "text/xml; charset=GBK";

/// The family's currency numbers (`CCYNBR`), both directions from this one
/// table.
const CURRENCY_CODES: &[(Currency, &str)] = &[
    (Currency::CNY, "10"),
    (Currency::HKD, "21"),
    (Currency::USD, "32"),
    (Currency::EUR, "35"),
    (Currency::GBP, "12"),
    (Currency::JPY, "38"),
];

/// The family's number for a currency, if it has one.
pub fn currency_code(currency: Currency) -> Option<&'static str> {
    CURRENCY_CODES
        .iter()
        .find(|(c, _)| *c == currency)
        .map(|(_, code)| *code)
}

/// The currency of a family number, if it is one.
pub fn currency_of_code(code: &str) -> Option<Currency> {
    CURRENCY_CODES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(currency, _)| *currency)
}

/// A connection to one cn-xml front machine.
pub struct CnXmlConnector {
    settings: ConnectionSettings,
    endpoint: reqwest::Url,
    time_zone: BankTimeZone,
    client: reqwest::Client,
    limits: Limits,
    random: OsRandom,
}

impl fmt::Debug for CnXmlConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CnXmlConnector")
            .field("bank_id", &self.settings.bank_id)
            .field("connection_id", &self.settings.connection_id)
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl CnXmlConnector {
    /// Checks the settings and builds the HTTP client once; every option that
    /// matters is set explicitly rather than left to reqwest's defaults.
    pub fn new(settings: ConnectionSettings) -> Result<CnXmlConnector, ConnectError> {
        let invalid = |message: String| ConnectError {
            connection: settings.connection_id.clone(),
            message,
        };
        let endpoint = reqwest::Url::parse(&settings.endpoint).map_err(|e| {
            invalid(format!(
                "endpoint is not a URL ({e}); expected e.g. http://127.0.0.1:8701/"
            ))
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "endpoint scheme is {:?}; expected http or https",
                endpoint.scheme()
            )));
        }
        if settings.login.is_empty() {
            return Err(invalid(
                "login is empty; expected the enterprise user name at the bank".into(),
            ));
        }
        if settings.connect_timeout.is_zero() || settings.request_timeout.is_zero() {
            return Err(invalid(
                "connect and request timeouts must be above zero".into(),
            ));
        }
        if settings.max_response_bytes == 0 {
            return Err(invalid(
                "max_response_bytes is 0; expected a positive byte count".into(),
            ));
        }
        if !(1..=MAX_ACCOUNTS_PER_BALANCE_QUERY).contains(&settings.max_accounts_per_query) {
            return Err(invalid(format!(
                "max_accounts_per_query is {}; expected 1..={MAX_ACCOUNTS_PER_BALANCE_QUERY}, the family's limit",
                settings.max_accounts_per_query
            )));
        }
        let time_zone = BankTimeZone::parse(settings.time_zone.name())
            .map_err(|e| invalid(format!("time zone: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .no_proxy()
            // A redirect would resend the packet somewhere we were not told
            // to send it.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_idle_timeout(Duration::from_millis(POOL_IDLE_TIMEOUT_MS))
            // Front machines speak HTTP/1.1; never negotiate anything else.
            .http1_only()
            .tcp_nodelay(true)
            .user_agent(concat!("bankdirect/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("HTTP client could not be built: {e}")))?;
        let limits = Limits {
            max_bytes: settings.max_response_bytes,
            ..Limits::default()
        };
        Ok(CnXmlConnector {
            settings,
            endpoint,
            time_zone,
            client,
            limits,
            random: OsRandom,
        })
    }

    fn bank(&self) -> String {
        self.settings.bank_id.clone()
    }

    fn protocol(&self, reason: String) -> BankError {
        BankError::OutcomeUnknown {
            bank: self.bank(),
            cause: UnknownCause::Protocol,
            reason,
        }
    }

    /// A fresh request serial: `R` and 16 upper-case hex digits.
    fn new_serial(&self) -> String {
        format!(
            "R{:0width$X}",
            self.random.next_u64(),
            width = SERIAL_HEX_DIGITS
        )
    }

    /// Sends one packet and returns the bank's accepted answer (`RETCODE`
    /// `0`), with metrics and a trace span around it.
    #[tracing::instrument(skip_all, fields(bank = %self.settings.bank_id, function = function))]
    async fn call(&self, function: &'static str, request: Packet) -> Result<Packet, BankError> {
        let started = Instant::now();
        let result = self.exchange(function, request).await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.outcome_label(),
        };
        metrics::counter!("bank_calls_total",
            "bank" => self.bank(), "function" => function, "outcome" => outcome)
        .increment(1);
        metrics::histogram!("bank_call_duration_seconds",
            "bank" => self.bank(), "function" => function)
        .record(elapsed.as_secs_f64());
        match &result {
            Ok(_) => tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "bank call ok"),
            Err(error) => {
                tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, outcome, %error, "bank call failed")
            }
        }
        result
    }

    async fn exchange(&self, function: &'static str, request: Packet) -> Result<Packet, BankError> {
        let serial = request.head.serial.clone();
        let body = encode(&request).map_err(|e| BankError::NotProcessed {
            bank: self.bank(),
            reason: format!("{function} request cannot be encoded as GBK: {e}"),
        })?;
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, "sending the request"))?;

        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::HttpStatus(status.as_u16()),
                reason: format!("front machine answered HTTP {status}; expected 200 with a packet"),
            });
        }
        let bytes = self.read_capped(response).await?;
        let answer = decode(&bytes, &self.limits).map_err(|e| {
            self.protocol(format!("answer is not a well-formed cn-xml packet: {e}"))
        })?;

        if answer.head.func != function {
            return Err(self.protocol(format!(
                "answer echoes function {:?}; expected {function}",
                answer.head.func
            )));
        }
        if answer.head.serial != serial {
            return Err(self.protocol(
                "answer echoes another request serial; expected the serial we sent".into(),
            ));
        }
        match answer.head.ret_code.as_deref() {
            Some(RET_OK) => Ok(answer),
            Some(RET_SYSTEM_BUSY) => Err(BankError::NotProcessed {
                bank: self.bank(),
                reason: format!(
                    "front machine busy: {}",
                    answer.head.ret_msg.as_deref().unwrap_or_default()
                ),
            }),
            Some(code) => Err(BankError::Rejected {
                bank: self.bank(),
                code: code.to_string(),
                message: answer.head.ret_msg.clone().unwrap_or_default(),
            }),
            None => Err(self.protocol("answer has no RETCODE; expected a request status".into())),
        }
    }

    /// Reads the body chunk by chunk so that an oversized answer is refused
    /// without being held in memory.
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, BankError> {
        let cap = self.settings.max_response_bytes;
        let too_large = |seen: u64| {
            self.protocol(format!(
                "answer is at least {seen} bytes; expected at most {cap} (max_response_bytes)"
            ))
        };
        if let Some(length) = response.content_length() {
            if length > cap as u64 {
                return Err(too_large(length));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e, "reading the answer"))?
        {
            if body.len() + chunk.len() > cap {
                return Err(too_large((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, error: &reqwest::Error, during: &str) -> BankError {
        // reqwest's Display of an error holds the URL but never the body.
        if error.is_connect() {
            BankError::NotProcessed {
                bank: self.bank(),
                reason: format!(
                    "could not connect to the front machine: {}",
                    source_chain(error)
                ),
            }
        } else if error.is_timeout() {
            BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::Timeout,
                reason: format!(
                    "no complete answer within {} ms while {during}",
                    self.settings.request_timeout.as_millis()
                ),
            }
        } else {
            BankError::OutcomeUnknown {
                bank: self.bank(),
                cause: UnknownCause::Transport,
                reason: format!("connection failed while {during}: {}", source_chain(error)),
            }
        }
    }

    /// The request items of a whole query, checked before anything is sent
    /// so that a bad currency late in the list does not waste earlier calls.
    fn balance_items(&self, accounts: &[BalanceQuery]) -> Result<Vec<BalanceQueryItem>, BankError> {
        accounts
            .iter()
            .map(|query| {
                let code = currency_code(query.currency).ok_or_else(|| BankError::NotProcessed {
                    bank: self.bank(),
                    reason: format!(
                        "currency {} has no cn-xml currency number; expected one of CNY, HKD, USD, EUR, GBP, JPY",
                        query.currency.code()
                    ),
                })?;
                Ok(BalanceQueryItem {
                    acc_no: query.number.as_str().to_string(),
                    currency_code: Some(code.to_string()),
                })
            })
            .collect()
    }

    async fn balances_chunk(
        &self,
        chunk: &[BalanceQuery],
        items: &[BalanceQueryItem],
    ) -> Result<Vec<BalanceOutcome>, BankError> {
        let request = messages::balance_request(&self.settings.login, &self.new_serial(), items);
        let answer = self.call(FUNC_QUERY_BALANCE, request).await?;
        let response = messages::parse_balances(&answer)
            .map_err(|e| self.protocol(format!("balance answer: {e}")))?;
        self.match_balances(chunk, response.records)
    }

    /// Pairs each asked account with its record. The bank may answer in any
    /// order; an account asked twice gets its records in order.
    fn match_balances(
        &self,
        chunk: &[BalanceQuery],
        records: Vec<BalanceRecord>,
    ) -> Result<Vec<BalanceOutcome>, BankError> {
        let mut by_account: HashMap<String, VecDeque<BalanceRecord>> = HashMap::new();
        for record in records {
            by_account
                .entry(record.acc_no.clone())
                .or_default()
                .push_back(record);
        }
        let mut outcomes = Vec::with_capacity(chunk.len());
        for query in chunk {
            let record = by_account
                .get_mut(query.number.as_str())
                .and_then(VecDeque::pop_front)
                .ok_or_else(|| {
                    self.protocol(format!(
                        "balance answer has no record for account {}; expected one per account asked",
                        mask_account(query.number.as_str())
                    ))
                })?;
            outcomes.push(self.balance_outcome(query, &record)?);
        }
        if let Some((acc_no, _)) = by_account.iter().find(|(_, left)| !left.is_empty()) {
            return Err(self.protocol(format!(
                "balance answer has a record for account {} that was not asked for",
                mask_account(acc_no)
            )));
        }
        Ok(outcomes)
    }

    fn balance_outcome(
        &self,
        query: &BalanceQuery,
        record: &BalanceRecord,
    ) -> Result<BalanceOutcome, BankError> {
        let masked = mask_account(query.number.as_str());
        match record.rec_status.as_str() {
            REC_SUCCESS => {}
            REC_FAILED => {
                return Ok(BalanceOutcome::Failed {
                    number: query.number.clone(),
                    currency: query.currency,
                    code: RECORD_FAILED.to_string(),
                    message: record.rec_msg.clone(),
                })
            }
            other => {
                return Err(self.protocol(format!(
                    "RECSTS of account {masked} is {other:?}; expected S or F"
                )))
            }
        }
        let currency = currency_of_code(&record.currency_code).ok_or_else(|| {
            self.protocol(format!(
                "CCYNBR of account {masked} is {:?}; expected a known currency number",
                record.currency_code
            ))
        })?;
        if currency != query.currency {
            return Err(self.protocol(format!(
                "account {masked} answered in {}; expected {}",
                currency.code(),
                query.currency.code()
            )));
        }
        let amount = |field: &str, text: &str| {
            Money::parse_bank_decimal(text, currency)
                .map_err(|e| self.protocol(format!("{field} of account {masked}: {e}")))
        };
        let booked = amount("ONLBAL", &record.booked)?;
        let available = amount("AVLBAL", &record.available)?;
        let date = BusinessDate::parse_compact(&record.date)
            .map_err(|e| self.protocol(format!("BALDAT of account {masked}: {e}")))?;
        let as_of = bank_local_to_utc(date, &record.time, self.time_zone)
            .map_err(|e| self.protocol(format!("BALTIM of account {masked}: {e}")))?;
        Ok(BalanceOutcome::Ok(BankBalance {
            number: query.number.clone(),
            currency,
            booked,
            available,
            as_of,
        }))
    }

    fn account_info(
        &self,
        position: usize,
        record: &AccountRecord,
    ) -> Result<BankAccountInfo, BankError> {
        let number = AccountNumber::parse(&record.acc_no)
            .map_err(|e| self.protocol(format!("ACCNO of account record {position}: {e}")))?;
        let masked = mask_account(&record.acc_no);
        let currency = currency_of_code(&record.currency_code).ok_or_else(|| {
            self.protocol(format!(
                "CCYNBR of account {masked} is {:?}; expected a known currency number",
                record.currency_code
            ))
        })?;
        let active = match record.status.as_str() {
            "A" => true,
            "C" => false,
            other => {
                return Err(self.protocol(format!(
                    "ACCSTS of account {masked} is {other:?}; expected A (active) or C (closed)"
                )))
            }
        };
        Ok(BankAccountInfo {
            number,
            name: record.name.clone(),
            currency,
            branch: Some(record.branch.clone()).filter(|b| !b.is_empty()),
            active,
        })
    }
}

/// The error and its sources on one line: reqwest's own message alone says
/// only "error sending request", the cause ("connection refused") is deeper.
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Causes chains are short; the bound only guards against a cycle.
    for _ in 0..8 {
        let Some(cause) = source else { break };
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl BankConnector for CnXmlConnector {
    fn family(&self) -> Family {
        Family::CnXml
    }

    fn capabilities(&self) -> &'static [Capability] {
        &[Capability::Balances]
    }

    async fn list_accounts(&self) -> Result<Vec<BankAccountInfo>, BankError> {
        let request = messages::list_accounts_request(&self.settings.login, &self.new_serial());
        let answer = self.call(FUNC_LIST_ACCOUNTS, request).await?;
        let response = messages::parse_list_accounts(&answer)
            .map_err(|e| self.protocol(format!("account list answer: {e}")))?;
        response
            .records
            .iter()
            .enumerate()
            .map(|(position, record)| self.account_info(position, record))
            .collect()
    }

    async fn balances(&self, accounts: &[BalanceQuery]) -> Result<Vec<BalanceOutcome>, BankError> {
        let mut outcomes = Vec::with_capacity(accounts.len());
        // Sequential on purpose: per-bank concurrency is the gateway's to
        // spend, and a front machine counts each request against its limits.
        let items = self.balance_items(accounts)?;
        let size = self.settings.max_accounts_per_query;
        for (chunk, chunk_items) in accounts.chunks(size).zip(items.chunks(size)) {
            outcomes.extend(self.balances_chunk(chunk, chunk_items).await?);
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_table_goes_both_ways() {
        for (currency, code) in CURRENCY_CODES {
            assert_eq!(currency_code(*currency), Some(*code));
            assert_eq!(currency_of_code(code), Some(*currency));
        }
        assert_eq!(currency_of_code("99"), None);
        assert_eq!(currency_of_code(""), None);
    }

    #[test]
    fn source_chain_joins_causes() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(Wrapper(inner));
        assert!(source_chain(&outer).contains("refused"));
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
}
