//! Balances (`C52` with `entries=none`) and transactions (`C53` for the
//! days before today in the bank's time zone, `C52` for today's booked and
//! every pending entry) of the iso20022 connector.
//!
//! Every request's pages are followed by `GrpHdr/MsgPgntn` (`page=PgNb+1`
//! until `LastPgInd`); a message without `MsgPgntn` is one page. Each page
//! is read within `max_response_bytes` and then streamed item by item, so
//! memory holds one page's bytes and one entry's elements, never a parsed
//! statement file.
//!
//! What the connector cannot believe is `OutcomeUnknown(Protocol)`, and a
//! page that fails fails the whole call (the caller re-reads the window):
//! - a page number other than the one asked, a later page without
//!   `MsgPgntn`, more than [`MAX_PAGES_PER_CALL`] pages in one call;
//! - a statement or report for another account or currency, a `C53` day
//!   without `OPBD` and `CLBD`, a day of the range without its `Stmt`, a
//!   day dated outside the asked range, a day
//!   repeated with another `Id` or other balances (a day split across pages
//!   repeats its header unchanged, and is merged);
//! - an entry before any statement header, in another currency, of zero
//!   amount, a booked entry dated outside the asked days (today's, for
//!   `C52`), a pending entry in an end-of-day statement;
//! - the same booked `AcctSvcrRef` twice in one call (references are unique
//!   per account: a repeated page).
//!
//! `INFO` and `FUTR` entries are for information and never booked; they are
//! skipped. An entry's counterparty is the creditor of a debit and the
//! debtor of a credit (`NtryDtls/TxDtls/RltdPties`), its remittance the
//! `Ustrd` lines of all its transaction details joined by a space, its
//! end-to-end id the first one given (`NOTPROVIDED` is none).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use domain::{local_to_utc, BankTimeZone, BusinessDate, Currency, Direction, EntryStatus, Money};
use formats::iso20022::camt052::{ReportItem, ReportReader};
use formats::iso20022::camt053::{
    Balance, BalanceType, CreditDebit, Entry, EntryStatus as CamtStatus, Pagination,
    StatementHeader, StatementItem, StatementReader,
};
use formats::iso20022::AccountIdentification;

use super::{
    quoted, Iso20022Connector, Report, CODE_ACCOUNT_UNKNOWN, MAX_PAGES_PER_CALL,
    MAX_TRANSACTION_RANGE_DAYS, ORDER_INTRADAY, ORDER_STATEMENT,
};
use crate::{
    mask_account, BalanceOutcome, BalanceQuery, BankBalance, BankEntry, BankError, DayBalance,
    TransactionQuery, TransactionReport,
};

/// `EndToEndId` a bank writes when the payer gave none.
const NOT_PROVIDED: &str = "NOTPROVIDED";

/// The text of an account identification, as our account numbers hold it.
fn account_text(id: &AccountIdentification) -> &str {
    match id {
        AccountIdentification::Iban(iban) => iban.as_str(),
        AccountIdentification::Other(other) => other.as_str(),
    }
}

/// A balance with its side as the sign.
fn signed(balance: &Balance) -> Option<Money> {
    match balance.indicator {
        CreditDebit::Credit => Some(balance.amount),
        CreditDebit::Debit => balance.amount.checked_neg().ok(),
    }
}

fn find_balance(balances: &[Balance], kind: BalanceType) -> Option<&Balance> {
    balances.iter().find(|b| b.kind == kind)
}

/// An ISO date-time as an instant: with an offset as written, without one
/// in the bank's own zone.
pub fn parse_date_time(text: &str, zone: BankTimeZone) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| {
        format!(
            "{} is not an ISO date-time; expected e.g. 2026-11-28T10:15:00+08:00",
            quoted(text)
        )
    })?;
    local_to_utc(local, zone).map_err(|e| e.to_string())
}

/// One account's balances as a balance report gave them.
struct Reported {
    currency: Option<Currency>,
    balances: Vec<Balance>,
    created_at: Option<String>,
}

/// What one transactions call has gathered so far.
#[derive(Default)]
struct Gathered {
    entries: Vec<BankEntry>,
    /// Day → (statement id, balances).
    days: BTreeMap<BusinessDate, (String, DayBalance)>,
    /// Booked `AcctSvcrRef`s seen (a repeat means a repeated page).
    booked_refs: HashSet<String>,
    pages: u32,
}

/// Which answer an entry comes from, for what is believed about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// End-of-day statement: booked entries of the asked days.
    Statement {
        from: BusinessDate,
        to: BusinessDate,
    },
    /// Intraday report: today's booked entries and every pending one.
    Intraday { today: BusinessDate },
}

impl Iso20022Connector {
    /// Follows the pages of one request; `on_page` reads a page and says
    /// what its `MsgPgntn` was. `Ok(false)` when the bank refused every
    /// asked account on the first page (`C52` only).
    async fn paged<F>(
        &self,
        order: &'static str,
        query: &[(&str, String)],
        pages: &mut u32,
        mut on_page: F,
    ) -> Result<bool, BankError>
    where
        F: FnMut(u32, &[u8]) -> Result<Option<Pagination>, BankError> + Send,
    {
        let mut page: u32 = 1;
        loop {
            if *pages >= MAX_PAGES_PER_CALL {
                return Err(self.protocol(format!(
                    "{order} did not end after {MAX_PAGES_PER_CALL} pages (MAX_PAGES_PER_CALL); expected LastPgInd true"
                )));
            }
            *pages += 1;
            let mut asked = query.to_vec();
            if page > 1 {
                asked.push(("page", page.to_string()));
            }
            let body = if page == 1 && order == ORDER_INTRADAY {
                match self.read_report(order, &asked).await? {
                    Report::Body(body) => body,
                    Report::AccountsUnknown(_) => return Ok(false),
                }
            } else {
                self.read(order, &asked).await?
            };
            match on_page(page, &body)? {
                None if page == 1 => return Ok(true),
                None => {
                    return Err(self.protocol(format!(
                    "{order} page {page} has no MsgPgntn although page 1 had; expected PgNb {page}"
                )))
                }
                Some(p) if p.page_number != page => {
                    return Err(self.protocol(format!(
                        "{order} answered page {} when page {page} was asked",
                        p.page_number
                    )))
                }
                Some(p) if p.last_page => return Ok(true),
                Some(_) => {
                    page = page
                        .checked_add(1)
                        .ok_or_else(|| self.protocol(format!("{order} page numbers overflow")))?;
                }
            }
        }
    }

    /// One balance request for at most `max_accounts_per_query` accounts.
    pub(super) async fn balances_chunk(
        &self,
        chunk: &[BalanceQuery],
    ) -> Result<Vec<BalanceOutcome>, BankError> {
        let mut query: Vec<(&str, String)> = Vec::with_capacity(chunk.len() + 1);
        let mut asked: HashSet<&str> = HashSet::new();
        for account in chunk {
            if asked.insert(account.number.as_str()) {
                query.push(("account", account.number.as_str().to_string()));
            }
        }
        query.push(("entries", "none".to_string()));
        let mut reported: HashMap<String, Reported> = HashMap::new();
        let mut pages = 0;
        // When the bank refuses every account, none is reported: each one
        // fails alone (AC01) below.
        self.paged(ORDER_INTRADAY, &query, &mut pages, |page, bytes| {
            self.balance_page(page, bytes, &asked, &mut reported)
        })
        .await?;
        chunk
            .iter()
            .map(|account| self.balance_outcome(account, reported.get(account.number.as_str())))
            .collect()
    }

    fn balance_page(
        &self,
        page: u32,
        bytes: &[u8],
        asked: &HashSet<&str>,
        reported: &mut HashMap<String, Reported>,
    ) -> Result<Option<Pagination>, BankError> {
        let mut reader = ReportReader::new(bytes, self.limits);
        let mut pagination = None;
        let mut group_created_at = None;
        let mut on_this_page: HashSet<String> = HashSet::new();
        loop {
            let item = reader
                .next_item()
                .map_err(|e| self.protocol(format!("C52 balance answer page {page}: {e}")))?;
            let Some(item) = item else { break };
            match item {
                ReportItem::Group(group) => {
                    pagination = group.pagination;
                    group_created_at = Some(group.created_at);
                }
                ReportItem::Report(header) => {
                    let account = account_text(&header.account).to_string();
                    let masked = mask_account(&account);
                    if !asked.contains(account.as_str()) {
                        return Err(self.protocol(format!(
                            "C52 balance answer page {page} reports account {masked}, which was not asked for"
                        )));
                    }
                    if !on_this_page.insert(account.clone()) {
                        return Err(self.protocol(format!(
                            "C52 balance answer page {page} reports account {masked} twice"
                        )));
                    }
                    let fresh = Reported {
                        currency: header.currency,
                        balances: header.balances,
                        created_at: header.created_at.or_else(|| group_created_at.clone()),
                    };
                    if let Some(earlier) = reported.get(&account) {
                        // A later page repeats the header: it must agree.
                        if earlier.balances != fresh.balances {
                            return Err(self.protocol(format!(
                                "C52 balance answer reports account {masked} again on page {page} with other balances"
                            )));
                        }
                    }
                    reported.insert(account, fresh);
                }
                // entries=none: nothing to read, whatever the bank sends.
                ReportItem::Entry(_) => {}
            }
        }
        Ok(pagination)
    }

    fn balance_outcome(
        &self,
        query: &BalanceQuery,
        reported: Option<&Reported>,
    ) -> Result<BalanceOutcome, BankError> {
        let masked = query.number.masked();
        let Some(reported) = reported else {
            return Ok(BalanceOutcome::Failed {
                number: query.number.clone(),
                currency: query.currency,
                code: CODE_ACCOUNT_UNKNOWN.to_string(),
                message: format!(
                    "the bank left account {masked} out of its balance report (not visible to partner {})",
                    self.settings.login
                ),
            });
        };
        if let Some(currency) = reported.currency {
            if currency != query.currency {
                return Err(self.protocol(format!(
                    "account {masked} reported in {}; expected {}",
                    currency.code(),
                    query.currency.code()
                )));
            }
        }
        let amount = |kind: BalanceType| -> Result<Option<Money>, BankError> {
            let Some(balance) = find_balance(&reported.balances, kind) else {
                return Ok(None);
            };
            if balance.amount.currency() != query.currency {
                return Err(self.protocol(format!(
                    "{} of account {masked} is in {}; expected {}",
                    kind.code(),
                    balance.amount.currency().code(),
                    query.currency.code()
                )));
            }
            signed(balance).map(Some).ok_or_else(|| {
                self.protocol(format!("{} of account {masked} overflows", kind.code()))
            })
        };
        let booked = match amount(BalanceType::InterimBooked)? {
            Some(booked) => booked,
            None => match amount(BalanceType::ClosingBooked)? {
                Some(booked) => booked,
                None => amount(BalanceType::OpeningBooked)?.ok_or_else(|| {
                    self.protocol(format!(
                        "account {masked} has no ITBD, CLBD or OPBD balance; expected a booked balance"
                    ))
                })?,
            },
        };
        let available = amount(BalanceType::InterimAvailable)?.unwrap_or(booked);
        let created_at = reported.created_at.as_deref().ok_or_else(|| {
            self.protocol(format!(
                "the report of account {masked} has no CreDtTm; expected when the balance was taken"
            ))
        })?;
        let as_of = parse_date_time(created_at, self.time_zone)
            .map_err(|e| self.protocol(format!("CreDtTm of account {masked}: {e}")))?;
        Ok(BalanceOutcome::Ok(BankBalance {
            number: query.number.clone(),
            currency: query.currency,
            booked,
            available,
            as_of,
        }))
    }

    /// `from..=to` in chunks of at most `max_statement_range_days`.
    pub(super) fn statement_chunks(
        &self,
        from: BusinessDate,
        to: BusinessDate,
    ) -> Vec<(BusinessDate, BusinessDate)> {
        let mut chunks = Vec::new();
        let mut start = from;
        while start <= to {
            let end = start
                .add_days(self.options.max_statement_range_days - 1)
                .map_or(to, |end| end.min(to));
            chunks.push((start, end));
            match end.add_days(1) {
                Ok(next) if end < to => start = next,
                _ => break,
            }
        }
        chunks
    }

    pub(super) async fn read_transactions(
        &self,
        query: &TransactionQuery,
    ) -> Result<TransactionReport, BankError> {
        query.checked_days(&self.settings.bank_id, MAX_TRANSACTION_RANGE_DAYS)?;
        let today = BusinessDate::today(&*self.clock, self.time_zone);
        let mut gathered = Gathered::default();
        // Sequential on purpose: pages must be read in order, and per-bank
        // concurrency is the gateway's to spend.
        if query.from < today {
            let last = match today.add_days(-1) {
                Ok(yesterday) => yesterday.min(query.to),
                Err(_) => query.to,
            };
            for (from, to) in self.statement_chunks(query.from, last) {
                let asked = [
                    ("account", query.number.as_str().to_string()),
                    ("from", from.to_string()),
                    ("to", to.to_string()),
                ];
                let mut pages = gathered.pages;
                let source = Source::Statement { from, to };
                let result = self
                    .paged(ORDER_STATEMENT, &asked, &mut pages, |page, bytes| {
                        self.statement_page(query, source, page, bytes, &mut gathered)
                    })
                    .await;
                gathered.pages = pages;
                result?;
                self.check_every_day(query, (from, to), &gathered)?;
            }
        }
        if query.from <= today && today <= query.to {
            let asked = [("account", query.number.as_str().to_string())];
            let mut pages = gathered.pages;
            let source = Source::Intraday { today };
            let result = self
                .paged(ORDER_INTRADAY, &asked, &mut pages, |page, bytes| {
                    self.intraday_page(query, source, page, bytes, &mut gathered)
                })
                .await;
            gathered.pages = pages;
            if !result? {
                return Err(self.protocol(format!(
                    "C52 says partner {} may not see account {}; expected its intraday report",
                    self.settings.login,
                    query.number.masked()
                )));
            }
        }
        tracing::debug!(
            pages = gathered.pages,
            entries = gathered.entries.len(),
            days = gathered.days.len(),
            "transactions read"
        );
        Ok(TransactionReport {
            entries: gathered.entries,
            day_balances: gathered.days.into_values().map(|(_, day)| day).collect(),
        })
    }

    /// `C53` has one `Stmt` per day of the range, a day without entries
    /// included; a missing one means pages or statements were lost.
    fn check_every_day(
        &self,
        query: &TransactionQuery,
        (from, to): (BusinessDate, BusinessDate),
        gathered: &Gathered,
    ) -> Result<(), BankError> {
        let mut day = from;
        while day <= to {
            if !gathered.days.contains_key(&day) {
                return Err(self.protocol(format!(
                    "C53 for account {} from {from} to {to} has no statement for {day}; expected one per day",
                    query.number.masked()
                )));
            }
            match day.add_days(1) {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn statement_page(
        &self,
        query: &TransactionQuery,
        source: Source,
        page: u32,
        bytes: &[u8],
        gathered: &mut Gathered,
    ) -> Result<Option<Pagination>, BankError> {
        let mut reader = StatementReader::new(bytes, self.limits);
        let mut pagination = None;
        let mut day: Option<BusinessDate> = None;
        let mut position = 0usize;
        loop {
            let item = reader
                .next_item()
                .map_err(|e| self.protocol(format!("C53 answer page {page}: {e}")))?;
            let Some(item) = item else { break };
            match item {
                StatementItem::Group(group) => pagination = group.pagination,
                StatementItem::Statement(header) => {
                    day = Some(self.statement_day(query, source, page, &header, gathered)?);
                }
                StatementItem::Entry(entry) => {
                    position += 1;
                    let at = format!("C53 page {page} entry {position}");
                    let Some(day) = day else {
                        return Err(self.protocol(format!("{at} comes before any Stmt header")));
                    };
                    self.gather_entry(query, source, day, &entry, &at, gathered)?;
                }
            }
        }
        Ok(pagination)
    }

    /// The day of one `Stmt` (its `CLBD` date), merged with the same day
    /// from an earlier page.
    fn statement_day(
        &self,
        query: &TransactionQuery,
        source: Source,
        page: u32,
        header: &StatementHeader,
        gathered: &mut Gathered,
    ) -> Result<BusinessDate, BankError> {
        let at = format!("C53 page {page} Stmt {}", quoted(&header.id));
        self.check_account(query, header, &at)?;
        let balance = |kind: BalanceType| -> Result<(BusinessDate, Money), BankError> {
            let found = find_balance(&header.balances, kind).ok_or_else(|| {
                self.protocol(format!(
                    "{at} has no {} balance; expected OPBD and CLBD for every day",
                    kind.code()
                ))
            })?;
            if found.amount.currency() != query.currency {
                return Err(self.protocol(format!(
                    "{at}: {} is in {}; expected {}",
                    kind.code(),
                    found.amount.currency().code(),
                    query.currency.code()
                )));
            }
            let amount = signed(found)
                .ok_or_else(|| self.protocol(format!("{at}: {} overflows", kind.code())))?;
            Ok((found.date, amount))
        };
        let (_, opening) = balance(BalanceType::OpeningBooked)?;
        let (date, closing) = balance(BalanceType::ClosingBooked)?;
        let Source::Statement { from, to } = source else {
            return Err(self.protocol(format!("{at}: a statement outside C53")));
        };
        if date < from || date > to {
            return Err(self.protocol(format!(
                "{at}: CLBD is dated {date}, outside the asked days {from} to {to}"
            )));
        }
        let day = DayBalance {
            date,
            opening,
            closing,
        };
        match gathered.days.get(&date) {
            Some((id, earlier)) if *id == header.id && *earlier == day => {}
            Some((id, _)) => {
                return Err(self.protocol(format!(
                    "{at}: day {date} was reported before (Stmt {}) with other balances or another id; a day split across pages must repeat its header unchanged",
                    quoted(id)
                )))
            }
            None => {
                gathered.days.insert(date, (header.id.clone(), day));
            }
        }
        Ok(date)
    }

    fn check_account(
        &self,
        query: &TransactionQuery,
        header: &StatementHeader,
        at: &str,
    ) -> Result<(), BankError> {
        let account = account_text(&header.account);
        if account != query.number.as_str() {
            return Err(self.protocol(format!(
                "{at} is for account {}; expected {}",
                mask_account(account),
                query.number.masked()
            )));
        }
        if let Some(currency) = header.currency {
            if currency != query.currency {
                return Err(self.protocol(format!(
                    "{at} is in {}; expected {}",
                    currency.code(),
                    query.currency.code()
                )));
            }
        }
        Ok(())
    }

    fn intraday_page(
        &self,
        query: &TransactionQuery,
        source: Source,
        page: u32,
        bytes: &[u8],
        gathered: &mut Gathered,
    ) -> Result<Option<Pagination>, BankError> {
        let Source::Intraday { today } = source else {
            return Err(self.protocol("an intraday page outside C52".into()));
        };
        let mut reader = ReportReader::new(bytes, self.limits);
        let mut pagination = None;
        let mut in_report = false;
        let mut position = 0usize;
        loop {
            let item = reader
                .next_item()
                .map_err(|e| self.protocol(format!("C52 answer page {page}: {e}")))?;
            let Some(item) = item else { break };
            match item {
                ReportItem::Group(group) => pagination = group.pagination,
                ReportItem::Report(header) => {
                    let at = format!("C52 page {page} Rpt {}", quoted(&header.id));
                    self.check_account(query, &header, &at)?;
                    in_report = true;
                }
                ReportItem::Entry(entry) => {
                    position += 1;
                    let at = format!("C52 page {page} entry {position}");
                    if !in_report {
                        return Err(self.protocol(format!("{at} comes before any Rpt header")));
                    }
                    self.gather_entry(query, source, today, &entry, &at, gathered)?;
                }
            }
        }
        Ok(pagination)
    }

    /// Maps one entry and keeps it, unless it is for information only.
    fn gather_entry(
        &self,
        query: &TransactionQuery,
        source: Source,
        day: BusinessDate,
        entry: &Entry,
        at: &str,
        gathered: &mut Gathered,
    ) -> Result<(), BankError> {
        let Some(mapped) = self.bank_entry(query.currency, source, day, entry, at)? else {
            return Ok(());
        };
        if mapped.status == EntryStatus::Booked {
            if let Some(reference) = &mapped.bank_transaction_id {
                if !gathered.booked_refs.insert(reference.clone()) {
                    return Err(self.protocol(format!(
                        "{at}: AcctSvcrRef {} appears twice for account {}; expected references unique per account (a repeated page?)",
                        quoted(reference),
                        query.number.masked()
                    )));
                }
            }
        }
        gathered.entries.push(mapped);
        Ok(())
    }

    /// One `Ntry` as a [`BankEntry`]; `None` for `INFO` and `FUTR`.
    fn bank_entry(
        &self,
        currency: Currency,
        source: Source,
        day: BusinessDate,
        entry: &Entry,
        at: &str,
    ) -> Result<Option<BankEntry>, BankError> {
        let status = match (entry.status, source) {
            (CamtStatus::Booked, _) => EntryStatus::Booked,
            (CamtStatus::Pending, Source::Intraday { .. }) => EntryStatus::Pending,
            (CamtStatus::Pending, Source::Statement { .. }) => {
                return Err(self.protocol(format!(
                    "{at}: a pending entry in an end-of-day statement; expected booked entries only"
                )))
            }
            (CamtStatus::Information | CamtStatus::Future, _) => return Ok(None),
        };
        if entry.amount.currency() != currency {
            return Err(self.protocol(format!(
                "{at}: amount in {}; expected {}",
                entry.amount.currency().code(),
                currency.code()
            )));
        }
        if !entry.amount.is_positive() {
            return Err(self.protocol(format!(
                "{at}: amount is {}; expected a positive amount (CdtDbtInd carries the side)",
                entry.amount
            )));
        }
        let direction = match entry.indicator {
            CreditDebit::Credit => Direction::Credit,
            CreditDebit::Debit => Direction::Debit,
        };
        let booking_date = match status {
            EntryStatus::Booked => entry.booking_date.unwrap_or(day),
            EntryStatus::Pending => entry.booking_date.or(entry.value_date).unwrap_or(day),
        };
        if status == EntryStatus::Booked {
            let (from, to) = match source {
                Source::Statement { from, to } => (from, to),
                Source::Intraday { today } => (today, today),
            };
            if booking_date < from || booking_date > to {
                return Err(self.protocol(format!(
                    "{at}: booked on {booking_date}, outside the asked days {from} to {to}"
                )));
            }
        }
        let value_date = entry.value_date.unwrap_or(booking_date);
        let counterparty_name = entry
            .transactions
            .iter()
            .filter_map(|tx| match direction {
                Direction::Debit => tx.creditor.name.as_deref(),
                Direction::Credit => tx.debtor.name.as_deref(),
            })
            .map(str::trim)
            .find(|name| !name.is_empty())
            .map(str::to_string);
        let lines: Vec<&str> = entry
            .transactions
            .iter()
            .flat_map(|tx| tx.remittance.iter())
            .map(|line| line.trim())
            .filter(|line| !line.is_empty())
            .collect();
        let remittance = Some(lines.join(" ")).filter(|r| !r.is_empty());
        let end_to_end_id = entry
            .transactions
            .iter()
            .filter_map(|tx| tx.end_to_end_id.as_deref())
            .map(str::trim)
            .find(|id| !id.is_empty() && *id != NOT_PROVIDED)
            .map(str::to_string);
        let bank_transaction_id = entry
            .account_servicer_reference
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        Ok(Some(BankEntry {
            direction,
            amount: entry.amount,
            booking_date,
            value_date,
            status,
            counterparty_name,
            counterparty_account: None,
            counterparty_bank: None,
            remittance,
            bank_transaction_id,
            end_to_end_id,
            running_balance: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use formats::iso20022::camt053::TransactionDetails;
    use formats::iso20022::Party;

    fn date(y: i32, m: u32, d: u32) -> BusinessDate {
        BusinessDate::from_ymd(y, m, d).unwrap()
    }

    #[test]
    fn date_times_with_and_without_offset() {
        let zone = BankTimeZone::parse("Europe/Berlin").unwrap();
        let expected = Utc.with_ymd_and_hms(2026, 11, 28, 9, 15, 0).unwrap();
        for text in [
            "2026-11-28T10:15:00+01:00",
            "2026-11-28T09:15:00Z",
            "2026-11-28T10:15:00",
            " 2026-11-28T10:15:00.000 ",
        ] {
            assert_eq!(parse_date_time(text, zone), Ok(expected), "{text}");
        }
        for bad in ["", "2026-11-28", "yesterday", "2026-02-30T10:15:00"] {
            assert!(parse_date_time(bad, zone).is_err(), "{bad}");
        }
    }

    fn connector() -> Iso20022Connector {
        super::super::tests::test_connector()
    }

    fn entry(status: CamtStatus, indicator: CreditDebit, minor: i64) -> Entry {
        Entry {
            reference: None,
            amount: Money::from_minor(minor, Currency::EUR),
            indicator,
            status,
            booking_date: Some(date(2026, 11, 27)),
            value_date: Some(date(2026, 11, 26)),
            account_servicer_reference: Some(" REF-1 ".into()),
            bank_transaction_code: None,
            transactions: vec![
                TransactionDetails {
                    end_to_end_id: Some("NOTPROVIDED".into()),
                    debtor: Party {
                        name: Some("Payer AG".into()),
                        address_lines: vec![],
                    },
                    creditor: Party {
                        name: Some("Payee SA".into()),
                        address_lines: vec![],
                    },
                    remittance: vec!["Invoice 1".into(), " ".into()],
                },
                TransactionDetails {
                    end_to_end_id: Some("E2E-9".into()),
                    remittance: vec!["part 2".into()],
                    ..TransactionDetails::default()
                },
            ],
        }
    }

    fn history() -> Source {
        Source::Statement {
            from: date(2026, 11, 20),
            to: date(2026, 11, 28),
        }
    }

    #[test]
    fn entries_map_counterparty_by_direction_and_join_remittance() {
        let c = connector();
        let day = date(2026, 11, 27);
        let debit = c
            .bank_entry(
                Currency::EUR,
                history(),
                day,
                &entry(CamtStatus::Booked, CreditDebit::Debit, 500),
                "e",
            )
            .unwrap()
            .unwrap();
        assert_eq!(debit.direction, Direction::Debit);
        assert_eq!(debit.counterparty_name.as_deref(), Some("Payee SA"));
        assert_eq!(debit.remittance.as_deref(), Some("Invoice 1 part 2"));
        assert_eq!(debit.end_to_end_id.as_deref(), Some("E2E-9"));
        assert_eq!(debit.bank_transaction_id.as_deref(), Some("REF-1"));
        assert_eq!(debit.booking_date, day);
        assert_eq!(debit.value_date, date(2026, 11, 26));
        let credit = c
            .bank_entry(
                Currency::EUR,
                history(),
                day,
                &entry(CamtStatus::Booked, CreditDebit::Credit, 500),
                "e",
            )
            .unwrap()
            .unwrap();
        assert_eq!(credit.counterparty_name.as_deref(), Some("Payer AG"));
    }

    #[test]
    fn entries_the_connector_cannot_believe_are_protocol_errors() {
        let c = connector();
        let day = date(2026, 11, 27);
        let cases = [
            (entry(CamtStatus::Pending, CreditDebit::Debit, 5), "pending"),
            (entry(CamtStatus::Booked, CreditDebit::Debit, 0), "positive"),
            (
                Entry {
                    booking_date: Some(date(2026, 11, 29)),
                    ..entry(CamtStatus::Booked, CreditDebit::Debit, 5)
                },
                "outside",
            ),
            (
                Entry {
                    amount: Money::from_minor(5, Currency::USD),
                    ..entry(CamtStatus::Booked, CreditDebit::Debit, 5)
                },
                "USD",
            ),
        ];
        for (bad, mentions) in cases {
            match c.bank_entry(Currency::EUR, history(), day, &bad, "e") {
                Err(BankError::OutcomeUnknown { reason, .. }) => {
                    assert!(reason.contains(mentions), "{reason}")
                }
                other => panic!("expected a protocol error about {mentions}, got {other:?}"),
            }
        }
        for skipped in [CamtStatus::Information, CamtStatus::Future] {
            assert_eq!(
                c.bank_entry(
                    Currency::EUR,
                    history(),
                    day,
                    &entry(skipped, CreditDebit::Debit, 5),
                    "e"
                )
                .unwrap(),
                None
            );
        }
        // Intraday: pending entries of any date, booked ones of today only.
        let today = date(2026, 11, 29);
        let intraday = Source::Intraday { today };
        let pending = c
            .bank_entry(
                Currency::EUR,
                intraday,
                today,
                &entry(CamtStatus::Pending, CreditDebit::Debit, 5),
                "e",
            )
            .unwrap()
            .unwrap();
        assert_eq!(pending.status, EntryStatus::Pending);
        assert!(c
            .bank_entry(
                Currency::EUR,
                intraday,
                today,
                &entry(CamtStatus::Booked, CreditDebit::Debit, 5),
                "e"
            )
            .is_err());
    }

    #[test]
    fn long_ranges_split_into_contiguous_chunks() {
        let c = connector();
        let chunks = c.statement_chunks(date(2026, 1, 1), date(2026, 3, 10));
        assert_eq!(
            chunks,
            vec![
                (date(2026, 1, 1), date(2026, 1, 31)),
                (date(2026, 2, 1), date(2026, 3, 3)),
                (date(2026, 3, 4), date(2026, 3, 10)),
            ]
        );
        assert_eq!(
            c.statement_chunks(date(2026, 1, 1), date(2026, 1, 1)),
            vec![(date(2026, 1, 1), date(2026, 1, 1))]
        );
    }
}
