//! The event outbox: what both backends share.
//!
//! Events are never written on their own. The payment, batch and statement writes build
//! their event here ([`payment_event`], [`entry_booked_event`], [`batch_event`]) and insert
//! it through their backend in the same transaction as the change, so a change that rolls
//! back emits nothing and a committed change always has its event (DESIGN.md, "Payment state
//! machine": "emits an event in the same transaction").
//!
//! An event's id is derived from its object and per-object sequence, `evt_<object id>_<seq>`:
//! one change can never yield two events, and a receiver deduplicates by id. Every event
//! type of one object shares the sequence (a payment's is its history `seq`; a batch's is
//! its own counter; a statement entry has one event, sequence 1, when it is booked).

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::payments::{PaymentChangeFacts, PaymentInstruction};
use crate::statements::EntryRow;
use crate::StoreError;

pub(crate) const EVENTS_TABLE: &str = "events";

/// The column list both backends read events with, in [`EventColumns`] order.
pub(crate) const EVENT_COLUMNS: &str =
    "seq, id, type, version, object_type, object_id, object_seq, account_id, occurred_at, data";

/// Most events one [`crate::Store::list_events`] call returns.
pub const EVENT_QUERY_MAX_LIMIT: u32 = 1000;

/// Largest `data` of one event, in bytes of JSON text (the schema agrees).
pub const EVENT_DATA_MAX_BYTES: usize = 65_536;

/// The event types, with the version of their `data` shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A payment moved in its state machine (one event per history row, except at creation:
    /// one event for the status the payment was created in).
    PaymentStatusChanged,
    /// A batch's aggregate status changed.
    PaymentBatchStatusChanged,
    /// Every item of a batch is final.
    PaymentBatchCompleted,
    /// A statement entry is booked (inserted booked, or pending → booked): the incoming
    /// funds notification (到账通知) for credits, and the debit advice for debits.
    TransactionBooked,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::PaymentStatusChanged,
        EventType::PaymentBatchStatusChanged,
        EventType::PaymentBatchCompleted,
        EventType::TransactionBooked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentStatusChanged => "payment.status_changed",
            EventType::PaymentBatchStatusChanged => "payment_batch.status_changed",
            EventType::PaymentBatchCompleted => "payment_batch.completed",
            EventType::TransactionBooked => "transaction.booked",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The version of this type's `data` shape; a change that could break a receiver
    /// bumps it.
    pub fn version(self) -> i32 {
        1
    }

    /// The kind of object events of this type are about.
    pub fn object_type(self) -> &'static str {
        match self {
            EventType::PaymentStatusChanged => "payment",
            EventType::PaymentBatchStatusChanged | EventType::PaymentBatchCompleted => {
                "payment_batch"
            }
            EventType::TransactionBooked => "transaction",
        }
    }
}

/// An event as stored in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The outbox position (scan order only; not commit order on PostgreSQL).
    pub seq: i64,
    /// `evt_<object id>_<object seq>`: stable, unique, the receiver's deduplication key.
    pub id: String,
    pub event_type: EventType,
    pub version: i32,
    /// `payment`, `payment_batch` or `transaction`.
    pub object_type: String,
    pub object_id: String,
    /// Grows with every event of the object: a receiver drops an event whose sequence is
    /// not above the last it applied for the object.
    pub object_seq: i64,
    /// The account the event is about: who may receive it follows the account entitlement.
    pub account_id: String,
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// Which events [`crate::Store::list_events`] returns: those after `after_seq` matching every
/// given filter, ascending by `seq`, at most `min(limit, EVENT_QUERY_MAX_LIMIT)` (0: the
/// maximum).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub after_seq: i64,
    pub object_id: Option<String>,
    pub event_type: Option<EventType>,
    pub limit: u32,
}

impl EventQuery {
    pub(crate) fn effective_limit(&self) -> u32 {
        if self.limit == 0 {
            EVENT_QUERY_MAX_LIMIT
        } else {
            self.limit.min(EVENT_QUERY_MAX_LIMIT)
        }
    }

    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.after_seq < 0 {
            return Err(StoreError::Invalid {
                reason: format!("event query after_seq {} is negative", self.after_seq),
            });
        }
        Ok(())
    }
}

/// One event to insert, already checked.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub id: String,
    pub event_type: EventType,
    pub object_id: String,
    pub object_seq: i64,
    pub account_id: String,
    pub occurred_at: DateTime<Utc>,
    /// Compact JSON text of the `data` object.
    pub data: String,
}

impl EventRow {
    fn new(
        event_type: EventType,
        object_id: &str,
        object_seq: i64,
        account_id: &str,
        occurred_at: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Result<EventRow, StoreError> {
        let data = data.to_string();
        if data.len() > EVENT_DATA_MAX_BYTES {
            return Err(StoreError::Invalid {
                reason: format!(
                    "event data of {object_id} is {} bytes; at most {EVENT_DATA_MAX_BYTES}",
                    data.len()
                ),
            });
        }
        Ok(EventRow {
            id: format!("evt_{object_id}_{object_seq}"),
            event_type,
            object_id: object_id.to_owned(),
            object_seq,
            account_id: account_id.to_owned(),
            occurred_at: crate::codec::instant(occurred_at, "event occurred_at")?,
            data,
        })
    }
}

/// The `payment.status_changed` event of payment `p` just written (created or moved) into
/// `status` at `at`, whose newest history row has `seq` `history_seq`. The rest of what the
/// event says never changes after the create, so it needs no stored payment.
pub(crate) fn payment_event(
    p: &PaymentInstruction,
    status: &str,
    at: DateTime<Utc>,
    history_seq: i64,
    facts: &PaymentChangeFacts<'_>,
) -> Result<EventRow, StoreError> {
    let data = json!({
        "payment_id": p.id.as_str(),
        "status": status,
        "previous_status": facts.from_status,
        "cause": facts.cause,
        "bank_code": facts.bank_code,
        "bank_message": facts.bank_message,
        "amount": p.amount.to_decimal_string(),
        "currency": p.amount.currency().code(),
        "debtor_account_id": p.debtor_account_id.as_str(),
        "business_reference": p.business_reference.as_str(),
        "end_to_end_id": p.end_to_end_id.as_ref().map(|e| e.as_str()),
        "client_id": p.client_id,
    });
    EventRow::new(
        EventType::PaymentStatusChanged,
        p.id.as_str(),
        history_seq,
        p.debtor_account_id.as_str(),
        at,
        data,
    )
}

/// The `transaction.booked` event of an entry stored booked (inserted so, or booked from
/// pending; `id` is the stored entry's id, which a booking from pending keeps).
pub(crate) fn entry_booked_event(
    id: &str,
    row: &EntryRow,
    at: DateTime<Utc>,
) -> Result<EventRow, StoreError> {
    let currency = domain::Currency::from_code(row.currency).map_err(|e| StoreError::Invalid {
        reason: format!("entry {id}: currency: {e}"),
    })?;
    let amount = domain::Money::from_minor(row.amount_minor, currency);
    let data = json!({
        "transaction_id": id,
        "account_id": row.account_id,
        "direction": row.direction,
        "amount": amount.to_decimal_string(),
        "currency": row.currency,
        "booking_date": row.booking_date.to_string(),
        "value_date": row.value_date.to_string(),
        "counterparty_name": row.counterparty_name,
        "counterparty_account": row.counterparty_account,
        "counterparty_bank": row.counterparty_bank,
        "remittance": row.remittance,
        "bank_transaction_id": row.bank_transaction_id,
        "end_to_end_id": row.end_to_end_id,
    });
    EventRow::new(
        EventType::TransactionBooked,
        id,
        1,
        &row.account_id,
        at,
        data,
    )
}

/// A batch event (`payment_batch.status_changed` or `payment_batch.completed`).
pub(crate) fn batch_event(
    event_type: EventType,
    batch_id: &str,
    object_seq: i64,
    account_id: &str,
    at: DateTime<Utc>,
    data: serde_json::Value,
) -> Result<EventRow, StoreError> {
    EventRow::new(event_type, batch_id, object_seq, account_id, at, data)
}

/// Column values of one `events` row as read; the instant already decoded by the backend.
pub(crate) struct EventColumns {
    pub seq: i64,
    pub id: String,
    pub event_type: String,
    pub version: i32,
    pub object_type: String,
    pub object_id: String,
    pub object_seq: i64,
    pub account_id: String,
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

impl EventColumns {
    pub(crate) fn into_domain(self) -> Result<StoredEvent, StoreError> {
        let event_type = EventType::parse(&self.event_type).ok_or_else(|| StoreError::Corrupt {
            table: EVENTS_TABLE,
            column: "type",
            reason: format!("unknown event type {:?}", self.event_type),
        })?;
        Ok(StoredEvent {
            seq: self.seq,
            id: self.id,
            event_type,
            version: self.version,
            object_type: self.object_type,
            object_id: self.object_id,
            object_seq: self.object_seq,
            account_id: self.account_id,
            occurred_at: self.occurred_at,
            data: self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_and_name_their_object() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert!(t.as_str().starts_with(t.object_type()) || t.object_type() == "transaction");
        }
        assert_eq!(EventType::parse("payment.created"), None);
    }

    #[test]
    fn ids_come_from_object_and_sequence() {
        let row = EventRow::new(
            EventType::PaymentStatusChanged,
            "pay_X",
            3,
            "acc",
            Utc::now(),
            json!({}),
        )
        .unwrap();
        assert_eq!(row.id, "evt_pay_X_3");
    }

    #[test]
    fn oversized_data_is_refused() {
        let big = "x".repeat(EVENT_DATA_MAX_BYTES);
        assert!(EventRow::new(
            EventType::TransactionBooked,
            "e",
            1,
            "acc",
            Utc::now(),
            json!({ "r": big }),
        )
        .is_err());
    }
}
