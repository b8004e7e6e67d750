//! Statement storage logic shared by both backends: the checks the schema cannot express,
//! the mapping between entries and columns, and the ingest algorithm, written once against
//! [`IngestTx`] so SQLite and PostgreSQL cannot drift apart in what "duplicate" or "booked
//! from pending" means. Each backend supplies the SQL (`sqlite/statements.rs`,
//! `postgres/statements.rs`) and the transaction.
//!
//! Lengths and `amount > 0` are left to the schema's CHECK constraints, in the same
//! statement as the write (one source of truth, as for audit records). Checked here: what
//! spans columns or arguments (the entry's account is the call's, the running balance is in
//! the entry's currency, a break's gap adds up), NUL characters (PostgreSQL TEXT cannot
//! carry them; refusing them on both keeps the backends alike) and date years (the SQLite
//! text form needs four digits).

use async_trait::async_trait;

use crate::events::entry_booked_event;
use chrono::{DateTime, Datelike, Utc};
use domain::{
    AccountId, BusinessDate, Counterparty, Currency, Direction, EntryId, EntryStatus, Money,
    StatementEntry,
};

use crate::codec;
use crate::model::{
    ContinuityBreak, IngestEntry, IngestReport, StoredEntry, SyncState, INGEST_ENTRIES_MAX,
};
use crate::StoreError;

pub(crate) const ENTRIES_TABLE: &str = "statement_entries";
pub(crate) const BREAKS_TABLE: &str = "continuity_breaks";
pub(crate) const SYNC_TABLE: &str = "statement_sync";

/// The columns every entry read selects, in the order both backends use.
pub(crate) const ENTRY_COLUMNS: &str = "id, account_id, seq, change_seq, direction, \
     amount_minor, currency, booking_date, value_date, status, counterparty_name, \
     counterparty_account, counterparty_bank, remittance, bank_transaction_id, end_to_end_id, \
     running_balance_minor, ingested_at, updated_at";

pub(crate) fn direction_text(direction: Direction) -> &'static str {
    match direction {
        Direction::Credit => "credit",
        Direction::Debit => "debit",
    }
}

pub(crate) fn status_text(status: EntryStatus) -> &'static str {
    match status {
        EntryStatus::Pending => "pending",
        EntryStatus::Booked => "booked",
    }
}

fn invalid(reason: String) -> StoreError {
    StoreError::Invalid { reason }
}

fn refuse_nul(what: &str, text: Option<&str>) -> Result<(), StoreError> {
    if text.is_some_and(|t| t.contains('\0')) {
        return Err(invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
}

/// Refuses dates outside years 1–9999 (only reachable through `BusinessDate::from_naive`):
/// the SQLite text form, and so its order, needs four-digit years.
pub(crate) fn check_date(what: &str, date: BusinessDate) -> Result<(), StoreError> {
    let year = date.naive().year();
    if (domain::MIN_BUSINESS_YEAR..=domain::MAX_BUSINESS_YEAR).contains(&year) {
        Ok(())
    } else {
        Err(invalid(format!("{what}: year {year} is outside 0001-9999")))
    }
}

/// One entry checked and converted for binding.
#[derive(Debug, Clone)]
pub(crate) struct EntryRow {
    pub id: String,
    pub account_id: String,
    pub dedupe_key: String,
    pub pending_match_key: Option<String>,
    pub direction: &'static str,
    pub amount_minor: i64,
    pub currency: &'static str,
    pub booking_date: BusinessDate,
    pub value_date: BusinessDate,
    pub status: EntryStatus,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    pub counterparty_bank: Option<String>,
    pub remittance: Option<String>,
    pub bank_transaction_id: Option<String>,
    pub end_to_end_id: Option<String>,
    pub running_balance_minor: Option<i64>,
}

impl EntryRow {
    fn new(
        account_id: &AccountId,
        index: usize,
        item: IngestEntry,
    ) -> Result<EntryRow, StoreError> {
        let IngestEntry {
            entry,
            dedupe_key,
            pending_match_key,
        } = item;
        let at = |what: &str| format!("entry {index} ({what})");
        if entry.account_id != *account_id {
            return Err(invalid(format!(
                "entry {index} belongs to account {}, not to {account_id}, the account of the call",
                entry.account_id
            )));
        }
        let currency = entry.amount.currency();
        if let Some(balance) = entry.running_balance {
            if balance.currency() != currency {
                return Err(invalid(format!(
                    "entry {index}: the running balance is in {} but the amount is in {}",
                    balance.currency().code(),
                    currency.code()
                )));
            }
        }
        check_date(&at("booking date"), entry.booking_date)?;
        check_date(&at("value date"), entry.value_date)?;
        let texts = [
            ("dedupe key", Some(dedupe_key.as_str())),
            ("pending match key", pending_match_key.as_deref()),
            ("counterparty name", entry.counterparty.name.as_deref()),
            (
                "counterparty account",
                entry.counterparty.account.as_deref(),
            ),
            ("counterparty bank", entry.counterparty.bank.as_deref()),
            ("remittance", entry.remittance.as_deref()),
            ("bank transaction id", entry.bank_transaction_id.as_deref()),
            ("end-to-end id", entry.end_to_end_id.as_deref()),
        ];
        for (what, text) in texts {
            refuse_nul(&at(what), text)?;
        }
        Ok(EntryRow {
            id: entry.id.as_str().to_owned(),
            account_id: account_id.as_str().to_owned(),
            dedupe_key,
            pending_match_key,
            direction: direction_text(entry.direction),
            amount_minor: entry.amount.minor(),
            currency: currency.code(),
            booking_date: entry.booking_date,
            value_date: entry.value_date,
            status: entry.status,
            counterparty_name: entry.counterparty.name,
            counterparty_account: entry.counterparty.account,
            counterparty_bank: entry.counterparty.bank,
            remittance: entry.remittance,
            bank_transaction_id: entry.bank_transaction_id,
            end_to_end_id: entry.end_to_end_id,
            running_balance_minor: entry.running_balance.map(|m| m.minor()),
        })
    }
}

/// Checks and converts a whole `ingest_entries` call before anything is written.
pub(crate) fn entry_rows(
    account_id: &AccountId,
    entries: Vec<IngestEntry>,
) -> Result<Vec<EntryRow>, StoreError> {
    if entries.len() > INGEST_ENTRIES_MAX {
        return Err(invalid(format!(
            "{} entries in one ingest, more than the limit of {INGEST_ENTRIES_MAX}",
            entries.len()
        )));
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(index, item)| EntryRow::new(account_id, index, item))
        .collect()
}

/// A stored entry as the ingest algorithm needs to see it.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub id: String,
    pub status: EntryStatus,
}

/// A stored entry's id and status, as `(id, status)` columns read.
pub(crate) fn found(row: Option<(String, String)>) -> Result<Option<Found>, StoreError> {
    row.map(|(id, status)| {
        let status = match status.as_str() {
            "pending" => EntryStatus::Pending,
            "booked" => EntryStatus::Booked,
            _ => {
                return Err(corrupt(
                    ENTRIES_TABLE,
                    "status",
                    "neither pending nor booked".to_owned(),
                ))
            }
        };
        Ok(Found { id, status })
    })
    .transpose()
}

/// The next values of the two store-wide counters, read once per ingest and written back
/// at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    pub seq: i64,
    pub change_seq: i64,
}

impl Counters {
    fn bump(value: &mut i64, name: &str) -> Result<i64, StoreError> {
        *value = value.checked_add(1).ok_or_else(|| StoreError::Corrupt {
            table: "statement_counters",
            column: "value",
            reason: format!("the {name} counter is exhausted"),
        })?;
        Ok(*value)
    }

    fn next_seq(&mut self) -> Result<i64, StoreError> {
        Self::bump(&mut self.seq, "seq")
    }

    fn next_change_seq(&mut self) -> Result<i64, StoreError> {
        Self::bump(&mut self.change_seq, "change_seq")
    }
}

/// The two counters from their rows; a missing row means the migration did not run.
pub(crate) fn counters_from(rows: Vec<(String, i64)>) -> Result<Counters, StoreError> {
    let mut seq = None;
    let mut change_seq = None;
    for (name, value) in rows {
        match name.as_str() {
            "seq" => seq = Some(value),
            "change_seq" => change_seq = Some(value),
            _ => {}
        }
    }
    match (seq, change_seq) {
        (Some(seq), Some(change_seq)) => Ok(Counters { seq, change_seq }),
        _ => Err(StoreError::Uninitialised {
            what: "statement counters",
        }),
    }
}

/// The booking update touched exactly the pending row the algorithm just read; anything
/// else means the row changed under the writer, which the single writer (SQLite) or the
/// advisory lock (PostgreSQL) rules out.
pub(crate) fn booked_one(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            table: ENTRIES_TABLE,
            column: "status",
            reason: format!(
                "booking a pending entry changed {rows_affected} rows instead of 1; nothing of this ingest was stored"
            ),
        })
    }
}

/// What turns a stored pending entry into a booked one.
#[derive(Debug)]
pub(crate) struct Booking<'a> {
    pub id: &'a str,
    /// `Some` when the entry was found by its pending match key: it takes the booked
    /// report's dedupe key. `None` keeps the stored one.
    pub new_dedupe_key: Option<&'a str>,
    pub pending_match_key: Option<&'a str>,
    pub booking_date: BusinessDate,
    pub value_date: BusinessDate,
    pub running_balance_minor: Option<i64>,
    pub change_seq: i64,
    pub updated_at: DateTime<Utc>,
}

/// The statements one ingest needs from its backend, all inside the one transaction.
#[async_trait]
pub(crate) trait IngestTx: Send {
    /// Takes whatever makes the counters ascend in commit order (PostgreSQL: an advisory
    /// lock held until commit; SQLite: nothing, the single writer does it) and reads them.
    async fn lock_counters(&mut self) -> Result<Counters, StoreError>;
    async fn save_counters(&mut self, counters: Counters) -> Result<(), StoreError>;
    async fn find_by_dedupe_key(
        &mut self,
        account_id: &str,
        dedupe_key: &str,
    ) -> Result<Option<Found>, StoreError>;
    /// The oldest (lowest seq) entry of the account with this pending match key, among
    /// pending ones only when `pending_only`.
    async fn find_by_match_key(
        &mut self,
        account_id: &str,
        pending_match_key: &str,
        pending_only: bool,
    ) -> Result<Option<Found>, StoreError>;
    async fn book(&mut self, booking: &Booking<'_>) -> Result<(), StoreError>;
    /// Appends an event to the outbox (events.rs).
    async fn insert_event(&mut self, row: &crate::events::EventRow) -> Result<(), StoreError>;
    async fn insert(
        &mut self,
        row: &EntryRow,
        seq: i64,
        change_seq: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// The ingest algorithm of `Store::ingest_entries`, entry by entry in order (see the trait's
/// documentation). `at` is the time of the call (the audit record's).
pub(crate) async fn ingest(
    tx: &mut dyn IngestTx,
    rows: &[EntryRow],
    at: DateTime<Utc>,
) -> Result<IngestReport, StoreError> {
    let start = tx.lock_counters().await?;
    let mut counters = start;
    // At most INGEST_ENTRIES_MAX rows (checked by `entry_rows`): the counts fit u32.
    let mut report = IngestReport::default();
    for row in rows {
        let booked = row.status == EntryStatus::Booked;
        if let Some(found) = tx
            .find_by_dedupe_key(&row.account_id, &row.dedupe_key)
            .await?
        {
            if found.status == EntryStatus::Pending && booked {
                let change_seq = counters.next_change_seq()?;
                tx.book(&booking(&found, row, None, change_seq, at)).await?;
                tx.insert_event(&entry_booked_event(&found.id, row, at)?)
                    .await?;
                report.booked_from_pending += 1;
            } else {
                report.unchanged += 1;
            }
            continue;
        }
        if let Some(match_key) = row.pending_match_key.as_deref() {
            let found = tx
                .find_by_match_key(&row.account_id, match_key, booked)
                .await?;
            match found {
                Some(found) if booked => {
                    let change_seq = counters.next_change_seq()?;
                    tx.book(&booking(&found, row, Some(&row.dedupe_key), change_seq, at))
                        .await?;
                    tx.insert_event(&entry_booked_event(&found.id, row, at)?)
                        .await?;
                    report.booked_from_pending += 1;
                    continue;
                }
                // A pending report of a transaction the store already has, pending or
                // booked (a late intraday report after the end-of-day statement).
                Some(_) => {
                    report.unchanged += 1;
                    continue;
                }
                None => {}
            }
        }
        let seq = counters.next_seq()?;
        let change_seq = counters.next_change_seq()?;
        tx.insert(row, seq, change_seq, at).await?;
        if booked {
            tx.insert_event(&entry_booked_event(&row.id, row, at)?)
                .await?;
        }
        report.inserted += 1;
    }
    if counters != start {
        tx.save_counters(counters).await?;
    }
    Ok(report)
}

fn booking<'a>(
    found: &'a Found,
    row: &'a EntryRow,
    new_dedupe_key: Option<&'a str>,
    change_seq: i64,
    at: DateTime<Utc>,
) -> Booking<'a> {
    Booking {
        id: &found.id,
        new_dedupe_key,
        pending_match_key: row.pending_match_key.as_deref(),
        booking_date: row.booking_date,
        value_date: row.value_date,
        running_balance_minor: row.running_balance_minor,
        change_seq,
        updated_at: at,
    }
}

// ---------------------------------------------------------------------------------------
// Reading entries back

/// Column values of one `statement_entries` row, as read; dates already decoded by the
/// backend (TEXT on SQLite, DATE on PostgreSQL). The five short texts that are parsed, not
/// kept, are generic so a reader can lend them (SQLite's JSON page, `sqlite/statements.rs`)
/// instead of allocating a `String` for each; [`EntryColumns`] is the owned form.
pub(crate) struct EntryColumnsOf<S> {
    pub id: S,
    pub account_id: S,
    pub seq: i64,
    pub change_seq: i64,
    pub direction: S,
    pub amount_minor: i64,
    pub currency: S,
    pub booking_date: BusinessDate,
    pub value_date: BusinessDate,
    pub status: S,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    pub counterparty_bank: Option<String>,
    pub remittance: Option<String>,
    pub bank_transaction_id: Option<String>,
    pub end_to_end_id: Option<String>,
    pub running_balance_minor: Option<i64>,
    pub ingested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Column values of one `statement_entries` row, every text owned.
pub(crate) type EntryColumns = EntryColumnsOf<String>;

fn corrupt(table: &'static str, column: &'static str, reason: String) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        reason,
    }
}

pub(crate) fn account_from_text(text: &str, table: &'static str) -> Result<AccountId, StoreError> {
    AccountId::parse(text).map_err(|err| {
        corrupt(
            table,
            "account_id",
            format!("not a valid account id ({err})"),
        )
    })
}

pub(crate) fn currency_from_text(text: &str, table: &'static str) -> Result<Currency, StoreError> {
    Currency::from_code(text)
        .map_err(|err| corrupt(table, "currency", format!("not a known currency ({err})")))
}

/// The SQLite text form of a date, `YYYY-MM-DD`.
pub(crate) fn date_text(date: BusinessDate) -> String {
    date.to_string()
}

pub(crate) fn date_from_text(
    text: &str,
    table: &'static str,
    column: &'static str,
) -> Result<BusinessDate, StoreError> {
    BusinessDate::parse_iso(text)
        .map_err(|err| corrupt(table, column, format!("not a date ({err})")))
}

impl<S: AsRef<str>> EntryColumnsOf<S> {
    pub(crate) fn into_domain(self) -> Result<StoredEntry, StoreError> {
        const T: &str = ENTRIES_TABLE;
        let id = EntryId::parse(self.id.as_ref())
            .map_err(|err| corrupt(T, "id", format!("not a valid entry id ({err})")))?;
        let direction = match self.direction.as_ref() {
            "credit" => Direction::Credit,
            "debit" => Direction::Debit,
            other => {
                return Err(corrupt(
                    T,
                    "direction",
                    format!(
                        "unknown direction {:?}",
                        other.chars().take(16).collect::<String>()
                    ),
                ))
            }
        };
        let status = match self.status.as_ref() {
            "pending" => EntryStatus::Pending,
            "booked" => EntryStatus::Booked,
            other => {
                return Err(corrupt(
                    T,
                    "status",
                    format!(
                        "unknown status {:?}",
                        other.chars().take(16).collect::<String>()
                    ),
                ))
            }
        };
        let currency = currency_from_text(self.currency.as_ref(), T)?;
        let entry = StatementEntry {
            id,
            account_id: account_from_text(self.account_id.as_ref(), T)?,
            direction,
            amount: Money::from_minor(self.amount_minor, currency),
            booking_date: self.booking_date,
            value_date: self.value_date,
            status,
            counterparty: Counterparty {
                name: self.counterparty_name,
                account: self.counterparty_account,
                bank: self.counterparty_bank,
            },
            remittance: self.remittance,
            bank_transaction_id: self.bank_transaction_id,
            end_to_end_id: self.end_to_end_id,
            running_balance: self
                .running_balance_minor
                .map(|minor| Money::from_minor(minor, currency)),
        };
        Ok(StoredEntry {
            entry,
            seq: self.seq,
            change_seq: self.change_seq,
            ingested_at: self.ingested_at,
            updated_at: self.updated_at,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Continuity breaks and sync state

/// A continuity break checked and converted for binding.
#[derive(Debug, Clone)]
pub(crate) struct BreakRow {
    pub account_id: String,
    pub date: BusinessDate,
    pub currency: &'static str,
    pub opening_minor: i64,
    pub closing_minor: i64,
    pub entries_sum_minor: i64,
    pub gap_minor: i64,
    pub detected_at: DateTime<Utc>,
}

impl BreakRow {
    /// Refuses a break for another account or day than the call's, amounts in several
    /// currencies, or a gap that is zero or does not equal `closing − (opening + sum)`.
    pub(crate) fn new(
        account_id: &AccountId,
        date: BusinessDate,
        b: &ContinuityBreak,
    ) -> Result<BreakRow, StoreError> {
        if b.account_id != *account_id || b.date != date {
            return Err(invalid(format!(
                "the continuity break is for {} on {}, not for {account_id} on {date}, the account and day of the call",
                b.account_id, b.date
            )));
        }
        check_date("continuity break date", date)?;
        let currency = b.opening.currency();
        for (what, amount) in [
            ("closing", b.closing),
            ("entries sum", b.entries_sum),
            ("gap", b.gap),
        ] {
            if amount.currency() != currency {
                return Err(invalid(format!(
                    "continuity break: the {what} is in {} but the opening is in {}",
                    amount.currency().code(),
                    currency.code()
                )));
            }
        }
        let expected = i128::from(b.closing.minor())
            - i128::from(b.opening.minor())
            - i128::from(b.entries_sum.minor());
        if expected != i128::from(b.gap.minor()) || expected == 0 {
            return Err(invalid(format!(
                "continuity break: the gap is {} but closing − (opening + entries sum) is {expected} minor units; a break has a non-zero gap that adds up",
                b.gap.minor()
            )));
        }
        Ok(BreakRow {
            account_id: account_id.as_str().to_owned(),
            date,
            currency: currency.code(),
            opening_minor: b.opening.minor(),
            closing_minor: b.closing.minor(),
            entries_sum_minor: b.entries_sum.minor(),
            gap_minor: b.gap.minor(),
            detected_at: codec::instant(b.detected_at, "continuity break detected_at")?,
        })
    }
}

/// Column values of one `continuity_breaks` row, as read.
pub(crate) struct BreakColumns {
    pub account_id: String,
    pub date: BusinessDate,
    pub currency: String,
    pub opening_minor: i64,
    pub closing_minor: i64,
    pub entries_sum_minor: i64,
    pub gap_minor: i64,
    pub detected_at: DateTime<Utc>,
}

impl BreakColumns {
    pub(crate) fn into_domain(self) -> Result<ContinuityBreak, StoreError> {
        let currency = currency_from_text(&self.currency, BREAKS_TABLE)?;
        let money = |minor| Money::from_minor(minor, currency);
        Ok(ContinuityBreak {
            account_id: account_from_text(&self.account_id, BREAKS_TABLE)?,
            date: self.date,
            opening: money(self.opening_minor),
            closing: money(self.closing_minor),
            entries_sum: money(self.entries_sum_minor),
            gap: money(self.gap_minor),
            detected_at: self.detected_at,
        })
    }
}

/// A sync state checked and converted for binding. The error's length is the schema's.
#[derive(Debug, Clone)]
pub(crate) struct SyncRow {
    pub account_id: String,
    pub synced_through: Option<BusinessDate>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl SyncRow {
    pub(crate) fn new(state: &SyncState) -> Result<SyncRow, StoreError> {
        refuse_nul("sync state last_error", state.last_error.as_deref())?;
        if let Some(date) = state.synced_through {
            check_date("sync state synced_through", date)?;
        }
        Ok(SyncRow {
            account_id: state.account_id.as_str().to_owned(),
            synced_through: state.synced_through,
            last_success_at: state
                .last_success_at
                .map(|at| codec::instant(at, "sync state last_success_at"))
                .transpose()?,
            last_error: state.last_error.clone(),
        })
    }
}

pub(crate) fn sync_from_columns(
    account_id: &str,
    synced_through: Option<BusinessDate>,
    last_success_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
) -> Result<SyncState, StoreError> {
    Ok(SyncState {
        account_id: account_from_text(account_id, SYNC_TABLE)?,
        synced_through,
        last_success_at,
        last_error,
    })
}

/// Limit + 1 rows are fetched so "exactly at the limit" and "over it" differ.
pub(crate) fn within_limit<T>(
    rows: &[T],
    what: &'static str,
    limit: usize,
) -> Result<(), StoreError> {
    if rows.len() > limit {
        return Err(StoreError::TooManyRows { what, limit });
    }
    Ok(())
}

/// `limit + 1` as a bound parameter.
pub(crate) fn fetch_bound(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}
