//! bankdirect's domain: the values every other crate speaks in.
//!
//! Pure: no IO, no async, no global state. Everything here is a validated
//! newtype with private fields and a fallible constructor, so a value that
//! exists is a value that is well formed.
//!
//! - [`money`] holds [`Currency`] (ISO 4217 with exponents), [`Money`] (`i64` minor
//!   units; strict API parsing, quirk-tolerant bank parsing, never rounds),
//!   [`MoneyTotal`] (`i128` sums).
//! - [`ids`] holds [`Iban`], [`Bic`], [`CnapsCode`], [`AccountNumber`] (masked in
//!   `Debug`), [`PaymentId`], [`BankReference`], [`EndToEndId`] and the
//!   configuration slugs [`BankId`], [`ConnectionId`], [`AccountId`],
//!   [`ClientId`], [`UserId`].
//! - [`time`] holds [`BankTimeZone`], [`BusinessDate`] and [`bank_local_to_utc`].
//! - [`balance`] holds [`Balance`].
//! - [`statement`] holds [`StatementEntry`] with its [`EntryId`], [`Direction`],
//!   [`EntryStatus`] and [`Counterparty`], the dedupe [`fingerprint`] and the
//!   continuity rule ([`continuity_gap`]).
//! - [`clock`] holds the injected [`Clock`] and [`RandomSource`] with their
//!   system and reproducible implementations.
//! - [`error`] holds [`DomainError`], the one error of this crate, with stable codes.
//!
//! Everything public is re-exported at the crate root (`domain::Money`).

pub mod balance;
pub mod batch;
pub mod clock;
pub mod error;
pub mod ids;
pub mod money;
pub mod payment;
pub mod statement;
pub mod time;

pub use balance::Balance;
pub use batch::{aggregate as aggregate_batch_status, BatchCounts, BatchStatus, ItemStatus};
pub use clock::{
    Clock, ManualClock, OsRandom, RandomSource, SeededRandom, SystemClock, ThreadRandom,
};
pub use error::DomainError;
pub use ids::{
    AccountId, AccountNumber, BankId, BankReference, BatchId, BatchItemId, Bic, ClientId,
    CnapsCode, ConnectionId, EndToEndId, Iban, PaymentId, UserId, CN_ACCOUNT_NUMBER_LEN_MAX,
    CN_ACCOUNT_NUMBER_LEN_MIN, MAX_ACCOUNT_NUMBER_LEN, MAX_BANK_REFERENCE_LEN,
    MAX_END_TO_END_ID_LEN, MAX_IBAN_INPUT_LEN, MAX_IBAN_LEN, MAX_SLUG_LEN,
};
pub use money::{Currency, Money, MoneyTotal, MAX_AMOUNT_TEXT_LEN, MAX_CURRENCY_EXPONENT};
pub use payment::{
    can_cancel, cancel, escalate_to_review, generate_business_reference, generate_request_serial,
    may_resend, requeue_after_none, review_due, transition, CancelRefusal, Creditor, CreditorType,
    Guard, PaymentStatus, ReferenceAlphabet, ReferencePolicy, Remittance, Transition,
    TransitionCause, TransitionError, Urgency, MAX_CREDITOR_ACCOUNT_CHARS,
    MAX_CREDITOR_BANK_NAME_CHARS, MAX_CREDITOR_NAME_CHARS, MAX_INSTALL_ID_LEN,
    MAX_PAYMENT_REMITTANCE_CHARS, MIN_REFERENCE_RANDOM_BITS, REFERENCE_RANDOM_BITS_WITH_TIME,
    REFERENCE_TIME_TICK_MS, REQUEST_SERIAL_LEN, TRANSITIONS,
};
pub use statement::{
    continuity_gap, fingerprint, net_movement, non_empty_trimmed, Counterparty, Direction, EntryId,
    EntryStatus, StatementEntry, MAX_BANK_TRANSACTION_ID_CHARS, MAX_COUNTERPARTY_ACCOUNT_CHARS,
    MAX_COUNTERPARTY_BANK_CHARS, MAX_COUNTERPARTY_NAME_CHARS, MAX_ENTRY_END_TO_END_ID_CHARS,
    MAX_REMITTANCE_CHARS,
};
pub use time::{
    bank_local_to_utc, local_to_utc, parse_hhmmss, BankTimeZone, BusinessDate, MAX_BUSINESS_YEAR,
    MAX_TIME_ZONE_NAME_LEN, MIN_BUSINESS_YEAR,
};
