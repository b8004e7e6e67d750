//! banks: the contract between the gateway and a bank, and one connector per
//! bank family.
//!
//! A connector turns a domain question ("balances of these accounts") into the
//! family's wire messages (built and parsed by `formats`), carries them over
//! the family's transport, and maps the answer back to domain types. Every
//! failure is one of three kinds that tell the caller what to do next
//! ([`BankError`]): retry (`NotProcessed`), stop (`Rejected`), or find out
//! (`OutcomeUnknown`). When in doubt a connector says `OutcomeUnknown`.
//!
//! Layout:
//! - this file: the [`BankConnector`] trait, capabilities, settings, errors;
//! - [`cn_xml`]: the CMB-style front-machine family (GBK XML over HTTP);
//!   `cn_xml::batch` its batch payments, `cn_xml::signing` its SM2-signed
//!   traffic and the options (password, signing) a connection may add;
//! - [`iso20022`]: host-to-host ISO 20022 files over HTTPS with mutual TLS
//!   (pain.001 up, pain.002 and camt.052/053 down); `iso20022::intake` what
//!   pain.001 can carry, `iso20022::statements` balances and transactions
//!   (C52/C53 paging), `iso20022::batch` batch chunks;
//! - [`exchange`]: every call to a bank handed to an [`ExchangeSink`] the
//!   gateway provides ([`exchange::observe`]), bodies masked in one place
//!   ([`exchange::mask_body`]);
//! - `transport`: what both connectors share about an HTTP call to a bank
//!   (metrics, the capped read, reqwest failures sorted into [`BankError`]
//!   kinds, bank text quoted in errors).
//!
//! Connectors hold no durable state (that lives in `store`); they never log a
//! full account number (see [`mask_account`]).

pub mod cn_xml;
pub mod exchange;
pub mod iso20022;
mod transport;

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    AccountNumber, BankReference, Bic, BusinessDate, CnapsCode, CreditorType, Currency, Direction,
    EntryStatus, Money, Urgency,
};
pub use exchange::{BankExchange, ExchangeSink, ExchangeSubject, MaskedBody};

/// The protocol families bankdirect knows. A bank in the config names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Family {
    /// XML over HTTP to a Chinese bank's front machine, GBK encoded.
    #[serde(rename = "cn-xml")]
    CnXml,
    /// ISO 20022 files (pain.001, pain.002, camt.052/053) host to host over
    /// HTTPS with mutual TLS (docs/families/iso20022.md).
    #[serde(rename = "iso20022")]
    Iso20022,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::CnXml => "cn-xml",
            Family::Iso20022 => "iso20022",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fixed list of things a connector may be able to do (DESIGN.md,
/// "Bank connector contract").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Balances,
    Transactions,
    SinglePayment,
    BatchPayment,
    StatusByReference,
    /// Messages signed over the exact bytes sent and answers verified over
    /// the exact bytes received, under the bank's pinned certificates.
    SignedMessages,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Balances => "balances",
            Capability::Transactions => "transactions",
            Capability::SinglePayment => "single_payment",
            Capability::BatchPayment => "batch_payment",
            Capability::StatusByReference => "status_by_reference",
            Capability::SignedMessages => "signed_messages",
        }
    }
}

/// Everything a connector needs to reach one bank connection. Built by the
/// gateway from the configuration; secrets (when a family needs them) arrive
/// here already opened and must never be logged.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Bank id from the config, used in errors and metric labels.
    pub bank_id: String,
    /// Connection id from the config.
    pub connection_id: String,
    /// Base URL of the bank's endpoint (front machine), e.g. `http://127.0.0.1:8701/`.
    pub endpoint: String,
    /// Login name / enterprise user at the bank.
    pub login: String,
    /// The bank's own time zone, used for dates and times without an offset.
    pub time_zone: chrono_tz::Tz,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Total timeout of one request, connect included.
    pub request_timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// Most accounts asked about in one balance request.
    pub max_accounts_per_query: usize,
    /// Connections kept open to the bank between calls (at least one): the gateway sets
    /// the bank's limit of calls in flight, so calls at that limit reuse connections
    /// instead of each opening and closing one (with 4 kept, a dispatch at 64 calls in
    /// flight opened a connection for almost every call: BENCHMARKS.md, issue 5). Never
    /// more are opened than calls are in flight.
    pub max_idle_connections: usize,
    /// Mutual TLS toward the bank: the CA its server certificate must chain
    /// to (instead of the system roots) and our client certificate and key.
    /// Required by families that speak HTTPS with client certificates
    /// (iso20022); cn-xml does not use it.
    pub tls: Option<ClientTlsSettings>,
}

/// The PEM material of one connection's mutual TLS. The key never prints.
#[derive(Clone)]
pub struct ClientTlsSettings {
    /// The CA certificate(s) the bank's server certificate must chain to;
    /// the only roots trusted for this connection.
    pub ca_cert_pem: String,
    /// Our client certificate (chain), presented to the bank.
    pub client_cert_pem: String,
    /// The private key of the client certificate (PKCS#8, SEC1 or PKCS#1 PEM).
    pub client_key_pem: crypto::SecretString,
}

impl fmt::Debug for ClientTlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsSettings")
            .field("ca_cert_pem_bytes", &self.ca_cert_pem.len())
            .field("client_cert_pem_bytes", &self.client_cert_pem.len())
            .field("client_key_pem", &self.client_key_pem)
            .finish()
    }
}

/// An account as the bank lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccountInfo {
    pub number: AccountNumber,
    pub name: String,
    pub currency: Currency,
    pub branch: Option<String>,
    pub active: bool,
}

/// One account (and currency) whose balance is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceQuery {
    pub number: AccountNumber,
    pub currency: Currency,
}

/// A balance as the bank reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankBalance {
    pub number: AccountNumber,
    pub currency: Currency,
    pub booked: Money,
    pub available: Money,
    /// When the bank says the balance was taken (its local time, converted to UTC).
    pub as_of: DateTime<Utc>,
}

/// The answer for one account of a multi-account request: the request as a
/// whole succeeded, but one record may still fail (the family's second
/// status level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalanceOutcome {
    Ok(BankBalance),
    Failed {
        number: AccountNumber,
        currency: Currency,
        code: String,
        message: String,
    },
}

/// The transactions of one account (and currency) over whole days,
/// `from..=to` in the bank's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionQuery {
    pub number: AccountNumber,
    pub currency: Currency,
    pub from: BusinessDate,
    pub to: BusinessDate,
}

impl TransactionQuery {
    /// Days in `from..=to`, both ends counted; a range that is backwards
    /// or longer than `max_days` (the connector's
    /// `MAX_TRANSACTION_RANGE_DAYS`, named so in the message) is refused
    /// before anything is sent.
    pub(crate) fn checked_days(&self, bank: &str, max_days: i64) -> Result<i64, BankError> {
        let refused = |reason: String| BankError::NotProcessed {
            bank: bank.to_string(),
            reason,
        };
        if self.to < self.from {
            return Err(refused(format!(
                "transaction query from {} to {}: the end is before the start; expected from <= to",
                self.from, self.to
            )));
        }
        let days = (self.to.naive() - self.from.naive()).num_days() + 1;
        if days > max_days {
            return Err(refused(format!(
                "transaction query covers {days} days; expected at most {max_days} (MAX_TRANSACTION_RANGE_DAYS)"
            )));
        }
        Ok(days)
    }
}

/// One entry as the bank reported it. Text fields are the bank's, decoded;
/// optional ones are `None` when the bank left them empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankEntry {
    pub direction: Direction,
    /// Always positive.
    pub amount: Money,
    pub booking_date: BusinessDate,
    pub value_date: BusinessDate,
    pub status: EntryStatus,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    pub counterparty_bank: Option<String>,
    pub remittance: Option<String>,
    /// The bank's own id of the entry (serial), when it gives one.
    pub bank_transaction_id: Option<String>,
    pub end_to_end_id: Option<String>,
    /// The account's balance after this entry, where the bank gives one.
    pub running_balance: Option<Money>,
}

/// Opening and closing booked balance of one day, as the bank reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayBalance {
    pub date: BusinessDate,
    pub opening: Money,
    pub closing: Money,
}

/// Everything the bank reported for a [`TransactionQuery`], all pages
/// gathered, entries in the bank's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransactionReport {
    pub entries: Vec<BankEntry>,
    /// Per-day balances for the days of the query, where the bank reports
    /// them (empty if it does not); used for the continuity check.
    pub day_balances: Vec<DayBalance>,
}

/// How a family's entries are told apart (DESIGN.md, "Statements"). An
/// entry without the declared id falls back to its fingerprint plus its
/// occurrence number within the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeKeyPolicy {
    /// The bank's transaction id is unique per account.
    BankIdPerAccount,
    /// The bank's transaction id is unique only per account and booking date.
    BankIdPerAccountAndDate,
    /// The bank's ids are not reliable: always fingerprint plus occurrence.
    Fingerprint,
}

/// One payment as sent to a bank. `reference` is our business reference:
/// generated once, stored before the first send, identical on every resend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInstruction {
    pub reference: BankReference,
    pub debtor_account: AccountNumber,
    /// Positive.
    pub amount: Money,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_bank_code: Option<CnapsCode>,
    pub creditor_bic: Option<Bic>,
    pub creditor_bank_name: Option<String>,
    pub creditor_type: CreditorType,
    pub remittance: String,
    pub purpose: Option<String>,
    pub urgency: Urgency,
    pub requested_execution_date: BusinessDate,
}

/// A field of a payment the bank's format cannot carry (a character outside
/// its charset, too many bytes in its encoding), found before anything is
/// stored or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeProblem {
    /// The API field, e.g. `creditor.name`.
    pub field: &'static str,
    pub detail: String,
}

/// The bank's answer to a submission that it took in (a business rejection
/// is `BankError::Rejected`, not this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitReceipt {
    /// Where the bank says the payment stands right after the submission.
    pub status: BankPaymentStatus,
    /// The bank's own id of the payment, when it gives one.
    pub bank_payment_id: Option<String>,
    /// The bank's raw code and message, kept for the payment's history.
    pub bank_code: String,
    pub bank_message: String,
}

/// A payment's state as the bank reports it, already mapped from the
/// family's two-level status (DESIGN.md: the bank's rejected, expired and
/// cancelled are `Failed` with its reason; returned is `Returned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankPaymentStatus {
    /// Accepted, not final yet (being processed, waiting for settlement).
    Processing,
    Settled,
    Failed {
        code: String,
        message: String,
    },
    /// Settled, then sent back by the creditor's bank (退票).
    Returned {
        code: String,
        message: String,
    },
}

/// The answer to "what happened to the payment with this reference?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusAnswer {
    /// The bank positively knows no instruction with this reference.
    NotFound,
    Found {
        status: BankPaymentStatus,
        bank_payment_id: Option<String>,
        bank_code: String,
        bank_message: String,
    },
}

/// What a batch pays: a supplier run (one debit per item) or a payroll run
/// (代发工资: the bank may post one debit for the whole run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    Supplier,
    Payroll,
}

impl BatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchKind::Supplier => "supplier",
            BatchKind::Payroll => "payroll",
        }
    }
}

/// One item of a batch chunk as sent to the bank: the fields of a single
/// payment without debtor, currency and execution date (the batch's).
/// `reference` is the item's own business reference, unique store-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItemInstruction {
    pub reference: BankReference,
    /// Positive, in the batch's currency.
    pub amount: Money,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_bank_code: Option<CnapsCode>,
    pub creditor_bic: Option<Bic>,
    pub creditor_bank_name: Option<String>,
    pub creditor_type: CreditorType,
    pub remittance: String,
    pub purpose: Option<String>,
}

/// One chunk of a batch as sent to the bank in one submission: at most
/// [`BankConnector::max_batch_items`] items. `reference` is the chunk's
/// business reference (the bank's batch reference: generated once, stored
/// before the first send, identical on every resend); `batch_reference` is
/// the whole batch's, carried for the bank's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInstruction {
    pub kind: BatchKind,
    pub reference: BankReference,
    pub batch_reference: BankReference,
    pub debtor_account: AccountNumber,
    pub currency: Currency,
    pub requested_execution_date: BusinessDate,
    pub items: Vec<BatchItemInstruction>,
}

impl BatchInstruction {
    /// Why `item` cannot go in this chunk, as every family sees it: its
    /// reference came before in the chunk (`seen` collects the references
    /// checked so far), or it is not in the chunk's currency.
    pub(crate) fn item_refusal<'a>(
        &self,
        item: &'a BatchItemInstruction,
        seen: &mut std::collections::HashSet<&'a str>,
    ) -> Option<String> {
        if !seen.insert(item.reference.as_str()) {
            return Some(format!(
                "item reference {} appears twice; expected each item once",
                item.reference
            ));
        }
        if item.amount.currency() != self.currency {
            return Some(format!(
                "item {} is in {}; expected the chunk's currency {}",
                item.reference,
                item.amount.currency().code(),
                self.currency.code()
            ));
        }
        None
    }
}

/// The bank took a batch chunk in (a rejection of the whole chunk is
/// `BankError::Rejected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReceipt {
    pub bank_batch_id: Option<String>,
    pub bank_code: String,
    pub bank_message: String,
}

/// Where one item of a batch stands at the bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItemResult {
    pub reference: BankReference,
    pub status: BankPaymentStatus,
}

/// The answer to "what happened to the batch chunk with this reference?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchStatusAnswer {
    /// The bank positively knows no batch with this reference.
    NotFound,
    Found {
        /// True when the bank says it has finished with every item (each is
        /// then `Settled`, `Failed` or `Returned`; a `Settled` item may still
        /// be returned later).
        finished: bool,
        /// One per item the bank reports, any order; an item the bank does
        /// not list yet is still being processed.
        items: Vec<BatchItemResult>,
        bank_batch_id: Option<String>,
        bank_code: String,
        bank_message: String,
    },
}

/// Why the outcome of a call is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownCause {
    /// No complete answer within the timeout.
    Timeout,
    /// The connection failed after the request may have been written.
    Transport,
    /// An answer came, but it is not a well-formed message of the family
    /// (malformed or truncated XML, wrong encoding, oversized, missing fields).
    Protocol,
    /// The bank answered with an HTTP status that is not a business answer.
    HttpStatus(u16),
    /// The answer's signature is missing or does not verify under the
    /// bank's certificates: nothing in it is believed.
    Signature,
}

/// What went wrong talking to a bank, in the three kinds that tell the
/// caller what to do next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BankError {
    /// Provably nothing reached the bank (refused, name resolution, TLS
    /// handshake). Safe to retry with backoff.
    #[error("bank {bank}: request not processed: {reason}")]
    NotProcessed { bank: String, reason: String },
    /// The bank's documented business rejection, with its code and message.
    #[error("bank {bank}: rejected with code {code}: {message}")]
    Rejected {
        bank: String,
        code: String,
        message: String,
    },
    /// Anything else: the bank may or may not have acted.
    #[error("bank {bank}: outcome unknown ({cause:?}): {reason}")]
    OutcomeUnknown {
        bank: String,
        cause: UnknownCause,
        reason: String,
    },
}

impl BankError {
    /// The short outcome label used in metrics and audit records.
    pub fn outcome_label(&self) -> &'static str {
        match self {
            BankError::NotProcessed { .. } => "not_processed",
            BankError::Rejected { .. } => "rejected",
            BankError::OutcomeUnknown {
                cause: UnknownCause::Timeout,
                ..
            } => "timeout",
            BankError::OutcomeUnknown { .. } => "unknown",
        }
    }
}

/// One bank connection, speaking its family's protocol.
#[async_trait]
pub trait BankConnector: Send + Sync + fmt::Debug + 'static {
    fn family(&self) -> Family;
    /// The capabilities this connector implements; the rest of the fixed list
    /// it does not.
    fn capabilities(&self) -> &'static [Capability];
    /// The capabilities of the fixed list this connector does not have,
    /// each with the reason (shown in `/v1/banks`, and the same reason the
    /// conformance suite gives). Empty when it has them all.
    fn lacking_capabilities(&self) -> &'static [(Capability, &'static str)] {
        &[]
    }
    /// The accounts the bank lists for this connection's login.
    async fn list_accounts(&self) -> Result<Vec<BankAccountInfo>, BankError>;
    /// Balances of several accounts; split into as many requests as the
    /// bank's per-request limit needs. The outcomes come back in the order
    /// asked.
    async fn balances(&self, accounts: &[BalanceQuery]) -> Result<Vec<BalanceOutcome>, BankError>;
    /// How this family's entries are deduplicated.
    fn dedupe_policy(&self) -> DedupeKeyPolicy;
    /// The entries of one account over whole days, following the bank's
    /// continuation paging until the last page and splitting ranges longer
    /// than the bank allows. A failure on any page fails the whole call (the
    /// caller re-reads the window later; nothing partial is returned).
    async fn transactions(&self, query: &TransactionQuery) -> Result<TransactionReport, BankError>;
    /// Checks that the bank's format can carry the payment as it is (charset,
    /// lengths in the bank's bytes), so a payment that could never be sent
    /// is refused at intake naming the field, never stored.
    fn check_payment(&self, payment: &PaymentInstruction) -> Result<(), Vec<IntakeProblem>>;
    /// Submits one payment. A reused reference must never execute twice:
    /// banks answer it with the original result or a "duplicate" error,
    /// which the connector reports as `OutcomeUnknown` so the caller queries.
    async fn submit_payment(
        &self,
        payment: &PaymentInstruction,
    ) -> Result<SubmitReceipt, BankError>;
    /// Asks for the payments with these references (in one call where the
    /// bank allows several); answers in the order asked.
    async fn payment_status(
        &self,
        debtor_account: &AccountNumber,
        references: &[BankReference],
    ) -> Result<Vec<StatusAnswer>, BankError>;
    /// Most items the bank takes in one batch submission; the gateway splits
    /// a batch into chunks of at most this many. 0 when the family has no
    /// batch capability.
    fn max_batch_items(&self) -> usize {
        0
    }
    /// Like [`BankConnector::check_payment`], for one item of a batch of
    /// this kind (the fields are named relative to the item, e.g.
    /// `creditor.name`).
    fn check_batch_item(
        &self,
        kind: BatchKind,
        item: &BatchItemInstruction,
    ) -> Result<(), Vec<IntakeProblem>> {
        let _ = (kind, item);
        Err(vec![IntakeProblem {
            field: "kind",
            detail: "this bank family takes no batch payments".to_owned(),
        }])
    }
    /// Submits one chunk of a batch. A reused chunk reference must never
    /// execute twice (answered like a reused payment reference:
    /// `OutcomeUnknown`, so the caller queries).
    async fn submit_batch(&self, batch: &BatchInstruction) -> Result<BatchReceipt, BankError> {
        Err(BankError::NotProcessed {
            bank: String::new(),
            reason: format!(
                "family {} takes no batch payments (batch {})",
                self.family(),
                batch.reference
            ),
        })
    }
    /// Asks where a batch chunk and its items stand, by the chunk reference.
    async fn batch_status(
        &self,
        debtor_account: &AccountNumber,
        reference: &BankReference,
    ) -> Result<BatchStatusAnswer, BankError> {
        let _ = debtor_account;
        Err(BankError::NotProcessed {
            bank: String::new(),
            reason: format!(
                "family {} takes no batch payments (batch {reference})",
                self.family()
            ),
        })
    }
}

/// What a connection may tune beyond [`ConnectionSettings`], for one
/// family only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FamilyOptions {
    /// The family's defaults (cn-xml has no options).
    #[default]
    Defaults,
    /// Options of an iso20022 connection.
    Iso20022(iso20022::Iso20022Options),
}

/// Builds the connector for a family with its defaults.
pub fn connect(
    family: Family,
    settings: ConnectionSettings,
) -> Result<Arc<dyn BankConnector>, ConnectError> {
    connect_with(family, settings, FamilyOptions::Defaults)
}

/// Builds the connector for a family with `options`; options of another
/// family are refused.
pub fn connect_with(
    family: Family,
    settings: ConnectionSettings,
    options: FamilyOptions,
) -> Result<Arc<dyn BankConnector>, ConnectError> {
    match (family, options) {
        (Family::CnXml, FamilyOptions::Defaults) => {
            Ok(Arc::new(cn_xml::CnXmlConnector::new(settings)?))
        }
        (Family::Iso20022, FamilyOptions::Defaults) => {
            Ok(Arc::new(iso20022::Iso20022Connector::new(settings)?))
        }
        (Family::Iso20022, FamilyOptions::Iso20022(options)) => Ok(Arc::new(
            iso20022::Iso20022Connector::with_options(settings, options)?,
        )),
        (family, FamilyOptions::Iso20022(_)) => Err(ConnectError {
            connection: settings.connection_id,
            message: format!(
                "iso20022 options given for a connection of family {family}; only an iso20022 bank takes them"
            ),
        }),
    }
}

/// A connector could not be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("connection {connection}: {message}")]
pub struct ConnectError {
    pub connection: String,
    pub message: String,
}

/// Masks an account number for logs: all but the last four characters
/// become `*`.
pub fn mask_account(number: &str) -> String {
    let count = number.chars().count();
    number
        .chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < count { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_names_round_trip() {
        for family in [Family::CnXml, Family::Iso20022] {
            let json = format!("\"{}\"", family.as_str());
            let back: Family = serde_json::from_str(&json).unwrap();
            assert_eq!(back, family);
        }
    }

    #[test]
    fn tls_settings_never_print_the_key() {
        let tls = ClientTlsSettings {
            ca_cert_pem: "CA".into(),
            client_cert_pem: "CERT".into(),
            client_key_pem: crypto::SecretString::new("PRIVATE KEY".into()),
        };
        let text = format!("{tls:?}");
        assert!(!text.contains("PRIVATE"), "{text}");
    }

    #[test]
    fn mask_keeps_last_four() {
        assert_eq!(mask_account("6225880012345678"), "************5678");
        assert_eq!(mask_account("123"), "123");
    }
}
