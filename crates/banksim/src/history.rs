//! The statement history of one simulated account: what a `QueryHistory`
//! pages through and what `QueryDayBalance` sums up.
//!
//! A history is generated from `(bank_id, seed, account number)` and the day
//! it is generated on (the ledger's anchor date, "today" by the injected
//! clock): every day from today − [`HISTORY_DAYS`] to today gets 0 to
//! [`MAX_ENTRIES_PER_DAY`] entries, credits and debits with Chinese
//! counterparties (a per-account pool of companies and people, so the same
//! suppliers come back), remittance text, sometimes an end-to-end reference.
//!
//! Balances are never stored. The running balance after an entry and the
//! opening and closing balance of a day are derived, whenever they are
//! asked for, backwards from the account's current booked balance in the
//! ledger over the entries the bank currently shows. So the history is
//! consistent with the ledger by construction: the last shown booked
//! entry's running balance is the booked balance, and for every day the
//! opening balance plus booked credits minus booked debits is the closing
//! balance. Generation walks
//! backwards from the current balance and turns a credit into a debit where
//! the credit would have left the earlier balance below
//! `min(0, current balance)`, so that a healthy account was not overdrawn
//! last month.
//!
//! Realistic quirks, all decided by the same seed:
//! - **identical pairs**: on about [`PAIR_DAY_PERCENT`]% of days two entries
//!   are the same in every field but the serial (and the running balance);
//! - **no serial**: about [`EMPTY_SERIAL_PERCENT`]% of entries have an empty
//!   `TRSSEQ`, and every account has one identical pair on a past day whose
//!   two entries both lack a serial, so a client's fingerprint-plus-occurrence
//!   fallback is exercised;
//! - **serials repeat across days**: a serial is the entry's six-digit number
//!   within its booking day (`000001`…), unique per account and booking date
//!   only, as the family documents;
//! - **late entries**: 1 to [`MAX_LATE_ENTRIES`] booked entries dated 1 to
//!   [`LATE_MAX_AGE_DAYS`] days ago are hidden until the simulator has
//!   answered a `QueryHistory` and after it a `QueryDayBalance` of that
//!   account (one whole sync); they become visible when the next history
//!   session starts (a first page, asked with an empty key). So within one
//!   sync, however many chunks it pages through, the pages and the day
//!   balances read after them agree. Then they appear at the end of their
//!   day, the ledger's balance moves by them, and every derived balance from
//!   their day on follows (running balances of later entries change, as at a
//!   bank that posts late). A first sync misses them, an overlapping later
//!   sync finds them;
//! - **pending entries**: 1 to [`MAX_PENDING_TODAY`] entries of today with
//!   status pending, not in any balance, until booked.
//!
//! Order and paging: entries are kept in booking-date order, and within a day
//! by a per-account sequence number that only grows. Late entries and new
//! ones get the next numbers, so they sort at the end of their day. A page
//! key is "after (date, sequence)", so an entry added while a client pages
//! shows up on a later page if it is in range, and nothing moves under a key:
//! within one paging session no entry is skipped or repeated.

use std::collections::{BTreeMap, HashMap};

use domain::{BusinessDate, Direction, EntryStatus};
use rand::Rng;
use rand_chacha::ChaCha20Rng;

use crate::ledger::{pick, BRANDS, CITIES, COMPANY_FORMS, INDUSTRIES};

/// Days of generated history before today; the history covers
/// today − `HISTORY_DAYS` ..= today.
pub const HISTORY_DAYS: i64 = 100;
/// Most generated entries on one day (besides the forced identical pair,
/// late and pending entries).
pub const MAX_ENTRIES_PER_DAY: u32 = 12;
/// Entries per `QueryHistory` page: the family's maximum.
pub const PAGE_SIZE: usize = formats::cn_xml::messages::MAX_HISTORY_RECORDS_PER_PAGE;
/// Most entries one account holds; [`crate::Ledger::add_entry`] refuses
/// more, so a runaway test cannot grow the simulator without bound.
pub const MAX_ENTRIES_PER_ACCOUNT: usize = 100_000;
/// Longest text of an added entry's field, in characters.
pub const MAX_ENTRY_TEXT_CHARS: usize = 128;
/// Longest serial of an added entry, in bytes (ASCII letters, digits, `-`).
pub const MAX_SERIAL_BYTES: usize = 32;
/// Share of days with an identical pair, in percent.
pub const PAIR_DAY_PERCENT: u32 = 10;
/// Share of entries without a serial, in percent.
pub const EMPTY_SERIAL_PERCENT: u32 = 5;
/// Most late (hidden) entries per account.
pub const MAX_LATE_ENTRIES: u32 = 3;
/// Late entries are dated 1 to this many days ago.
pub const LATE_MAX_AGE_DAYS: i64 = 3;
/// Most pending entries generated for today.
pub const MAX_PENDING_TODAY: u32 = 3;
/// Share of entries whose value date is the day before the booking date.
const EARLIER_VALUE_DATE_PERCENT: u32 = 10;
/// Share of company payments that carry an end-to-end reference.
const E2E_REF_PERCENT: u32 = 30;
/// Counterparties per account: the companies and people it deals with.
const COMPANY_POOL: usize = 8;
const PERSON_POOL: usize = 6;

/// One entry as the simulated bank holds it. Text fields the bank leaves
/// empty are empty strings, exactly as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimEntry {
    /// `TRSSEQ`; unique per account and booking date, or empty.
    pub serial: String,
    pub booking_date: BusinessDate,
    pub value_date: BusinessDate,
    pub direction: Direction,
    /// Always positive, in the account currency's minor units.
    pub amount_minor: i64,
    pub status: EntryStatus,
    /// Running booked balance after the entry, derived from the ledger's
    /// current balance; `None` for pending and hidden entries.
    pub balance_after_minor: Option<i64>,
    pub counterparty_name: String,
    pub counterparty_account: String,
    pub counterparty_bank: String,
    pub remittance: String,
    pub e2e_ref: String,
    /// False for a late entry the bank does not show yet.
    pub visible: bool,
}

/// An entry to append to an account today (control API and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSimEntry {
    pub direction: Direction,
    /// Positive, in the account currency's minor units.
    pub amount_minor: i64,
    pub status: EntryStatus,
    /// `None` lets the bank number the entry; `Some("")` makes an entry
    /// without serial.
    pub serial: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    pub counterparty_bank: Option<String>,
    pub remittance: Option<String>,
    pub e2e_ref: Option<String>,
}

impl NewSimEntry {
    /// A booked entry without counterparty or text.
    pub fn booked(direction: Direction, amount_minor: i64) -> NewSimEntry {
        NewSimEntry {
            direction,
            amount_minor,
            status: EntryStatus::Booked,
            serial: None,
            counterparty_name: None,
            counterparty_account: None,
            counterparty_bank: None,
            remittance: None,
            e2e_ref: None,
        }
    }

    /// The same entry, pending.
    #[must_use]
    pub fn pending(mut self) -> NewSimEntry {
        self.status = EntryStatus::Pending;
        self
    }
}

/// Where a page starts: at the beginning of the range, or after the entry
/// with this booking date and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PagePosition {
    Start,
    After { date: BusinessDate, seq: u64 },
}

/// Digits of the sequence number in a page key.
const KEY_SEQ_DIGITS: usize = 12;
const KEY_PREFIX: &str = "K";
/// The key of [`PagePosition::Start`]. Never sent on a normal answer (the
/// first page is asked for with an empty key); only the `duplicate_page`
/// fault hands it out, so that a repeated first page is visible to clients.
const KEY_START: &str = "K0";

impl PagePosition {
    /// The opaque `CONTKEY` text.
    pub(crate) fn to_key(self) -> String {
        match self {
            PagePosition::Start => KEY_START.to_string(),
            PagePosition::After { date, seq } => format!(
                "{KEY_PREFIX}{}{seq:0width$}",
                date.to_compact(),
                width = KEY_SEQ_DIGITS
            ),
        }
    }

    /// Reads a key this bank handed out; the empty key is the first page.
    pub(crate) fn from_key(key: &str) -> Option<PagePosition> {
        if key.is_empty() || key == KEY_START {
            return Some(PagePosition::Start);
        }
        let rest = key.strip_prefix(KEY_PREFIX)?;
        if rest.len() != 8 + KEY_SEQ_DIGITS || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let date = BusinessDate::parse_compact(rest.get(..8)?).ok()?;
        let seq = rest.get(8..)?.parse().ok()?;
        Some(PagePosition::After { date, seq })
    }

    fn is_before(self, date: BusinessDate, seq: u64) -> bool {
        match self {
            PagePosition::Start => true,
            PagePosition::After {
                date: after_date,
                seq: after_seq,
            } => (date, seq) > (after_date, after_seq),
        }
    }
}

/// One page of entries and where the next one starts (`None`: last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) entries: Vec<SimEntry>,
    pub(crate) next: Option<PagePosition>,
}

/// An entry with what the iso20022 front needs to name it: its origin
/// (the first sequence number it had, unique per account and kept from
/// pending to booked) and whether it was ever pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OriginEntry {
    pub(crate) origin: u64,
    pub(crate) was_pending: bool,
    pub(crate) entry: SimEntry,
}

/// Opening and closing booked balance of one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DayTotals {
    pub(crate) date: BusinessDate,
    pub(crate) opening_minor: i64,
    pub(crate) closing_minor: i64,
}

#[derive(Debug, Clone)]
struct StoredEntry {
    /// Orders entries within a booking day; grows with every entry added.
    seq: u64,
    /// The `seq` the entry got when it was first added; kept when a pending
    /// entry is booked (and moves), so the iso20022 front's entry reference
    /// (`AcctSvcrRef`) stays the same from pending to booked.
    origin: u64,
    /// Whether the entry was ever pending.
    was_pending: bool,
    /// `balance_after_minor` is always `None` here; it is derived on output.
    entry: SimEntry,
}

/// Every entry of one account, in booking-date then sequence order.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccountHistory {
    entries: Vec<StoredEntry>,
    next_seq: u64,
    /// How many entries use each non-empty serial of each booking day, kept with
    /// `entries`: a payment's new serial is then found without reading the whole day
    /// (a day of a dispatch benchmark holds thousands of entries, and reading them for
    /// each payment was the simulator's largest cost: BENCHMARKS.md, issue 5).
    serials: HashMap<(BusinessDate, String), usize>,
    /// How far the account's first sync has got; see [`LateStage`].
    pub(crate) late_stage: LateStage,
}

/// When late entries become visible. A sync (as the connector does it)
/// reads every history page of its range, in one or more sessions, then the
/// day balances. Revealing at the start of the first session after a whole
/// sync — never between its sessions or between its pages and its day
/// balances — keeps every sync consistent in itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum LateStage {
    /// No `QueryHistory` of the account answered yet.
    #[default]
    Untouched,
    /// A `QueryHistory` page answered, no `QueryDayBalance` since.
    HistoryServed,
    /// A `QueryDayBalance` answered after a `QueryHistory`: the next history
    /// session shows the late entries.
    SyncServed,
}

fn signed(entry: &SimEntry) -> i128 {
    match entry.direction {
        Direction::Credit => i128::from(entry.amount_minor),
        Direction::Debit => -i128::from(entry.amount_minor),
    }
}

/// Whether an entry is in the balance the bank shows.
fn counts(entry: &SimEntry) -> bool {
    entry.visible && entry.status == EntryStatus::Booked
}

impl AccountHistory {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, newest first, with its running balance when it counts in
    /// the balance: walked back from `booked_now`, each counted entry taken
    /// off after it is passed.
    fn newest_first(&self, booked_now: i64) -> impl Iterator<Item = (&StoredEntry, Option<i128>)> {
        let mut after = i128::from(booked_now);
        self.entries.iter().rev().map(move |stored| {
            if !counts(&stored.entry) {
                return (stored, None);
            }
            let balance = after;
            after -= signed(&stored.entry);
            (stored, Some(balance))
        })
    }

    /// Running balances aligned with `entries`, backwards from `booked_now`;
    /// `None` when one does not fit an i64.
    fn balances_after(&self, booked_now: i64) -> Option<Vec<Option<i64>>> {
        let mut balances = self
            .newest_first(booked_now)
            .map(|(_, balance)| balance.map(i64::try_from).transpose().ok())
            .collect::<Option<Vec<_>>>()?;
        balances.reverse();
        Some(balances)
    }

    fn output(stored: &StoredEntry, balance: Option<i64>) -> SimEntry {
        SimEntry {
            balance_after_minor: balance,
            ..stored.entry.clone()
        }
    }

    /// Every entry (hidden ones too) booked within the bounds.
    pub(crate) fn entries_between(
        &self,
        from: Option<BusinessDate>,
        to: Option<BusinessDate>,
        booked_now: i64,
    ) -> Option<Vec<SimEntry>> {
        let balances = self.balances_after(booked_now)?;
        Some(
            self.entries
                .iter()
                .zip(balances)
                .filter(|(stored, _)| {
                    let date = stored.entry.booking_date;
                    from.is_none_or(|from| date >= from) && to.is_none_or(|to| date <= to)
                })
                .map(|(stored, balance)| Self::output(stored, balance))
                .collect(),
        )
    }

    /// The visible entries booked in `from..=to` after `position`, at most
    /// `page_size`. With `omit_latest_booked` the last visible booked entry
    /// of the range is left out (the `continuity_break` fault).
    pub(crate) fn page(
        &self,
        from: BusinessDate,
        to: BusinessDate,
        position: PagePosition,
        omit_latest_booked: bool,
        page_size: usize,
        booked_now: i64,
    ) -> Option<Page> {
        let balances = self.balances_after(booked_now)?;
        let in_range = |stored: &&StoredEntry| {
            let date = stored.entry.booking_date;
            stored.entry.visible && date >= from && date <= to
        };
        let omitted = if omit_latest_booked {
            self.entries
                .iter()
                .filter(in_range)
                .filter(|stored| stored.entry.status == EntryStatus::Booked)
                .map(|stored| stored.seq)
                .next_back()
        } else {
            None
        };
        let mut selected: Vec<(&StoredEntry, Option<i64>)> = self
            .entries
            .iter()
            .zip(balances)
            .filter(|(stored, _)| in_range(stored))
            .filter(|(stored, _)| position.is_before(stored.entry.booking_date, stored.seq))
            .filter(|(stored, _)| Some(stored.seq) != omitted)
            .take(page_size.saturating_add(1))
            .collect();
        let next = if selected.len() > page_size {
            selected.truncate(page_size);
            selected.last().map(|(stored, _)| PagePosition::After {
                date: stored.entry.booking_date,
                seq: stored.seq,
            })
        } else {
            None
        };
        Some(Page {
            entries: selected
                .into_iter()
                .map(|(stored, balance)| Self::output(stored, balance))
                .collect(),
            next,
        })
    }

    /// Opening and closing balance of every day in `from..=to`, over the
    /// visible booked entries, backwards from `booked_now`. `None` when a
    /// balance does not fit an i64.
    pub(crate) fn day_totals(
        &self,
        from: BusinessDate,
        to: BusinessDate,
        booked_now: i64,
    ) -> Option<Vec<DayTotals>> {
        let mut net_by_day: BTreeMap<BusinessDate, i128> = BTreeMap::new();
        for stored in self.entries.iter().filter(|s| counts(&s.entry)) {
            *net_by_day.entry(stored.entry.booking_date).or_default() += signed(&stored.entry);
        }
        let after_range: i128 = net_by_day
            .iter()
            .filter(|(date, _)| **date > to)
            .map(|(_, net)| *net)
            .sum();
        let mut closing = i128::from(booked_now) - after_range;
        let mut totals = Vec::new();
        let mut date = to;
        while date >= from {
            let opening = closing - net_by_day.get(&date).copied().unwrap_or_default();
            totals.push(DayTotals {
                date,
                opening_minor: i64::try_from(opening).ok()?,
                closing_minor: i64::try_from(closing).ok()?,
            });
            closing = opening;
            match date.add_days(-1) {
                Ok(previous) => date = previous,
                Err(_) => break,
            }
        }
        totals.reverse();
        Some(totals)
    }

    /// The net of the hidden booked entries, which revealing them adds to
    /// the booked balance.
    pub(crate) fn hidden_net(&self) -> i128 {
        self.entries
            .iter()
            .filter(|s| !s.entry.visible && s.entry.status == EntryStatus::Booked)
            .map(|s| signed(&s.entry))
            .sum()
    }

    /// Shows every hidden entry; returns how many there were.
    pub(crate) fn reveal_hidden(&mut self) -> usize {
        let mut revealed = 0;
        for stored in self.entries.iter_mut().filter(|s| !s.entry.visible) {
            stored.entry.visible = true;
            revealed += 1;
        }
        revealed
    }

    /// The entries booked on `date`: a run, since entries are kept in
    /// (booking date, sequence) order.
    fn on_day(&self, date: BusinessDate) -> &[StoredEntry] {
        let from = self
            .entries
            .partition_point(|s| s.entry.booking_date < date);
        let to = self
            .entries
            .partition_point(|s| s.entry.booking_date <= date);
        self.entries.get(from..to).unwrap_or_default()
    }

    /// Whether a non-empty serial is already used on `date`.
    pub(crate) fn serial_taken(&self, date: BusinessDate, serial: &str) -> bool {
        !serial.is_empty() && self.serials.contains_key(&(date, serial.to_owned()))
    }

    /// The next free six-digit serial of `date`.
    pub(crate) fn next_serial(&self, date: BusinessDate) -> String {
        let mut number = self.on_day(date).len() + 1;
        loop {
            let serial = format!("{number:06}");
            if !self.serial_taken(date, &serial) {
                return serial;
            }
            number += 1;
        }
    }

    fn count_serial(&mut self, entry: &SimEntry, added: bool) {
        if entry.serial.is_empty() {
            return;
        }
        let key = (entry.booking_date, entry.serial.clone());
        if added {
            *self.serials.entry(key).or_insert(0) += 1;
        } else if let Some(n) = self.serials.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.serials.remove(&key);
            }
        }
    }

    /// Adds an entry after every entry of its booking day; returns its
    /// sequence number.
    pub(crate) fn insert(&mut self, entry: SimEntry) -> u64 {
        let was_pending = entry.status == EntryStatus::Pending;
        self.insert_kept(entry, None, was_pending)
    }

    /// [`AccountHistory::insert`] keeping an earlier origin (see
    /// [`StoredEntry`]); `None` makes the new sequence number the origin.
    pub(crate) fn insert_kept(
        &mut self,
        entry: SimEntry,
        origin: Option<u64>,
        was_pending: bool,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = (entry.booking_date, seq);
        let at = self
            .entries
            .partition_point(|s| (s.entry.booking_date, s.seq) < key);
        self.count_serial(&entry, true);
        self.entries.insert(
            at,
            StoredEntry {
                seq,
                origin: origin.unwrap_or(seq),
                was_pending,
                entry,
            },
        );
        seq
    }

    /// Removes the entry at `position`; returns its origin, whether it was
    /// ever pending, and the entry.
    pub(crate) fn remove_kept(&mut self, position: usize) -> Option<(u64, bool, SimEntry)> {
        (position < self.entries.len()).then(|| {
            let stored = self.entries.remove(position);
            self.count_serial(&stored.entry, false);
            (stored.origin, stored.was_pending, stored.entry)
        })
    }

    /// Every entry booked within the bounds (hidden ones too), with its
    /// origin and whether it was ever pending.
    pub(crate) fn entries_with_origin(
        &self,
        from: Option<BusinessDate>,
        to: Option<BusinessDate>,
        booked_now: i64,
    ) -> Option<Vec<OriginEntry>> {
        let balances = self.balances_after(booked_now)?;
        Some(
            self.entries
                .iter()
                .zip(balances)
                .filter(|(stored, _)| {
                    let date = stored.entry.booking_date;
                    from.is_none_or(|from| date >= from) && to.is_none_or(|to| date <= to)
                })
                .map(|(stored, balance)| OriginEntry {
                    origin: stored.origin,
                    was_pending: stored.was_pending,
                    entry: Self::output(stored, balance),
                })
                .collect(),
        )
    }

    /// The position of the visible pending entry with this serial (the
    /// earliest, should the clock have moved and a serial repeat).
    pub(crate) fn pending_position(&self, serial: &str) -> Option<usize> {
        self.entries.iter().position(|s| {
            s.entry.status == EntryStatus::Pending && s.entry.visible && s.entry.serial == serial
        })
    }

    /// Direction and amount of the entry at `position`.
    pub(crate) fn direction_and_amount(&self, position: usize) -> Option<(Direction, i64)> {
        self.entries
            .get(position)
            .map(|s| (s.entry.direction, s.entry.amount_minor))
    }

    /// The entry with sequence number `seq`, with its running balance.
    pub(crate) fn by_seq(&self, seq: u64, booked_now: i64) -> Option<SimEntry> {
        // Stopped at the one asked for (usually the newest: an entry just
        // added), instead of a balance for every entry.
        let (stored, balance) = self
            .newest_first(booked_now)
            .find(|(stored, _)| stored.seq == seq)?;
        let balance = balance.map(i64::try_from).transpose().ok()?;
        Some(Self::output(stored, balance))
    }
}

// ---------------------------------------------------------------------------
// generation
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Company,
    Person,
    /// The bank itself (interest, fees): no counterparty fields.
    Bank,
}

/// A kind of entry: its remittance text, direction, counterparty and amount
/// range in minor units.
struct Kind {
    remittance: &'static str,
    direction: Direction,
    party: Party,
    min_minor: i64,
    max_minor: i64,
}

const fn kind(
    remittance: &'static str,
    direction: Direction,
    party: Party,
    min_minor: i64,
    max_minor: i64,
) -> Kind {
    Kind {
        remittance,
        direction,
        party,
        min_minor,
        max_minor,
    }
}

const CREDIT_KINDS: &[Kind] = &[
    kind(
        "货款",
        Direction::Credit,
        Party::Company,
        100_000,
        50_000_000,
    ),
    kind("货款", Direction::Credit, Party::Company, 10_000, 2_000_000),
    kind(
        "服务费",
        Direction::Credit,
        Party::Company,
        50_000,
        5_000_000,
    ),
    kind("退款", Direction::Credit, Party::Company, 5_000, 2_000_000),
    kind("退款", Direction::Credit, Party::Person, 1_000, 200_000),
    kind("利息", Direction::Credit, Party::Bank, 100, 500_000),
];

const DEBIT_KINDS: &[Kind] = &[
    kind(
        "货款",
        Direction::Debit,
        Party::Company,
        100_000,
        30_000_000,
    ),
    kind("工资", Direction::Debit, Party::Person, 500_000, 5_000_000),
    kind(
        "房租",
        Direction::Debit,
        Party::Company,
        1_000_000,
        20_000_000,
    ),
    kind(
        "服务费",
        Direction::Debit,
        Party::Company,
        50_000,
        5_000_000,
    ),
    kind("报销", Direction::Debit, Party::Person, 5_000, 500_000),
    kind(
        "水电费",
        Direction::Debit,
        Party::Company,
        10_000,
        2_000_000,
    ),
    kind("手续费", Direction::Debit, Party::Bank, 100, 20_000),
];

const PERSONS: &[&str] = &[
    "张伟", "李娜", "王芳", "刘洋", "陈静", "杨磊", "赵敏", "黄勇", "周杰", "吴霞", "徐涛", "孙丽",
];

const BANKS: &[&str] = &[
    "中国工商银行上海分行",
    "中国建设银行北京朝阳支行",
    "中国银行深圳分行",
    "中国农业银行广州天河支行",
    "交通银行杭州分行",
    "招商银行南京分行",
    "浦发银行成都分行",
    "兴业银行武汉分行",
];

#[derive(Debug, Clone)]
struct Counterparty {
    name: String,
    account: String,
    bank: String,
}

struct Pool {
    companies: Vec<Counterparty>,
    persons: Vec<Counterparty>,
}

fn digits(rng: &mut ChaCha20Rng, count: usize) -> String {
    (0..count)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

impl Pool {
    fn new(rng: &mut ChaCha20Rng) -> Pool {
        let companies = (0..COMPANY_POOL)
            .map(|_| {
                let (city, _) = CITIES[rng.gen_range(0..CITIES.len())];
                let name = format!(
                    "{city}市{}{}{}",
                    pick(rng, BRANDS),
                    pick(rng, INDUSTRIES),
                    pick(rng, COMPANY_FORMS)
                );
                let length = rng.gen_range(12..=19);
                let account = format!("{}{}", rng.gen_range(1..10u8), digits(rng, length - 1));
                Counterparty {
                    name,
                    account,
                    bank: pick(rng, BANKS).to_string(),
                }
            })
            .collect();
        let persons = (0..PERSON_POOL)
            .map(|_| Counterparty {
                name: pick(rng, PERSONS).to_string(),
                // Debit cards: 19 digits starting with 62 (UnionPay).
                account: format!("62{}", digits(rng, 17)),
                bank: pick(rng, BANKS).to_string(),
            })
            .collect();
        Pool { companies, persons }
    }

    fn of(&self, rng: &mut ChaCha20Rng, party: Party) -> Counterparty {
        let from = |list: &[Counterparty], rng: &mut ChaCha20Rng| {
            list.get(rng.gen_range(0..list.len().max(1)))
                .cloned()
                .unwrap_or_else(|| Counterparty {
                    name: String::new(),
                    account: String::new(),
                    bank: String::new(),
                })
        };
        match party {
            Party::Company => from(&self.companies, rng),
            Party::Person => from(&self.persons, rng),
            Party::Bank => Counterparty {
                name: String::new(),
                account: String::new(),
                bank: String::new(),
            },
        }
    }
}

/// An entry before it has a date, serial and sequence number.
#[derive(Debug, Clone)]
struct Draft {
    direction: Direction,
    amount_minor: i64,
    counterparty: Counterparty,
    remittance: &'static str,
    /// The random part of an end-to-end reference, decided with the draft
    /// so that an identical pair shares it.
    e2e_digits: Option<String>,
    value_day_earlier: bool,
}

fn draw(rng: &mut ChaCha20Rng, pool: &Pool, kinds: &[Kind]) -> Draft {
    let Some(kind) = kinds.get(rng.gen_range(0..kinds.len().max(1))) else {
        // The tables are constants and never empty; a fee keeps this total.
        return Draft {
            direction: Direction::Debit,
            amount_minor: 100,
            counterparty: pool.of(rng, Party::Bank),
            remittance: "手续费",
            e2e_digits: None,
            value_day_earlier: false,
        };
    };
    // Two uniform draws, the second below the first: small amounts are
    // common and large ones rare, without floating point.
    let upper = rng.gen_range(kind.min_minor..=kind.max_minor);
    let mut amount_minor = rng.gen_range(kind.min_minor..=upper);
    // Salaries and rents are often whole yuan.
    if matches!(kind.remittance, "工资" | "房租") && amount_minor >= 100 {
        amount_minor -= amount_minor % 100;
    }
    Draft {
        direction: kind.direction,
        amount_minor,
        counterparty: pool.of(rng, kind.party),
        remittance: kind.remittance,
        e2e_digits: (kind.party == Party::Company && rng.gen_range(0..100) < E2E_REF_PERCENT)
            .then(|| digits(rng, 8)),
        value_day_earlier: rng.gen_range(0..100) < EARLIER_VALUE_DATE_PERCENT,
    }
}

/// A draft that, taken `times` times, does not push the balance before it
/// below `floor` (walking backwards, a credit lowers the earlier balance).
/// `balance` becomes the balance before the drafted entries.
fn draw_within_floor(
    rng: &mut ChaCha20Rng,
    pool: &Pool,
    balance: &mut i128,
    floor: i128,
    times: i128,
) -> Draft {
    let kinds = if rng.gen_range(0..2u8) == 0 {
        CREDIT_KINDS
    } else {
        DEBIT_KINDS
    };
    let mut draft = draw(rng, pool, kinds);
    if draft.direction == Direction::Credit
        && *balance - i128::from(draft.amount_minor) * times < floor
    {
        draft = draw(rng, pool, DEBIT_KINDS);
    }
    let sign = match draft.direction {
        Direction::Credit => 1,
        Direction::Debit => -1,
    };
    *balance -= sign * i128::from(draft.amount_minor) * times;
    draft
}

/// A drafted entry placed on a day; `no_serial` forces an empty serial.
struct Placed {
    date: BusinessDate,
    draft: Draft,
    no_serial: bool,
    status: EntryStatus,
    visible: bool,
}

/// Generates the history of an account whose booked balance is
/// `booked_now_minor` on `today`.
pub(crate) fn generate(
    rng: &mut ChaCha20Rng,
    today: BusinessDate,
    booked_now_minor: i64,
) -> AccountHistory {
    let pool = Pool::new(rng);
    let floor = i128::from(booked_now_minor.min(0));
    let mut balance = i128::from(booked_now_minor);
    // The identical pair without serials, on a past day no late entry uses.
    let serial_less_pair_day = rng.gen_range(LATE_MAX_AGE_DAYS + 1..=HISTORY_DAYS);

    // Walk backwards from today so that the floor can be kept, then turn
    // each day (and the days) around.
    let mut days: Vec<Vec<Placed>> = Vec::new();
    for back in 0..=HISTORY_DAYS {
        let Ok(date) = today.add_days(-back) else {
            break;
        };
        let mut day: Vec<Placed> = Vec::new();
        let count = rng.gen_range(0..=MAX_ENTRIES_PER_DAY);
        let pair_at = (count >= 2 && rng.gen_range(0..100) < PAIR_DAY_PERCENT)
            .then(|| rng.gen_range(0..count - 1));
        let mut made = 0;
        while made < count {
            let times = if Some(made) == pair_at { 2 } else { 1 };
            let draft = draw_within_floor(rng, &pool, &mut balance, floor, i128::from(times));
            for _ in 0..times {
                day.push(Placed {
                    date,
                    draft: draft.clone(),
                    no_serial: false,
                    status: EntryStatus::Booked,
                    visible: true,
                });
            }
            made += times;
        }
        if back == serial_less_pair_day {
            let draft = draw_within_floor(rng, &pool, &mut balance, floor, 2);
            for _ in 0..2 {
                day.push(Placed {
                    date,
                    draft: draft.clone(),
                    no_serial: true,
                    status: EntryStatus::Booked,
                    visible: true,
                });
            }
        }
        day.reverse();
        days.push(day);
    }
    days.reverse();
    let mut placed: Vec<Placed> = days.into_iter().flatten().collect();

    for _ in 0..rng.gen_range(1..=MAX_LATE_ENTRIES) {
        let back = rng.gen_range(1..=LATE_MAX_AGE_DAYS);
        let Ok(date) = today.add_days(-back) else {
            continue;
        };
        let kinds = if rng.gen_range(0..2u8) == 0 {
            CREDIT_KINDS
        } else {
            DEBIT_KINDS
        };
        let mut draft = draw(rng, &pool, kinds);
        draft.value_day_earlier = false;
        placed.push(Placed {
            date,
            draft,
            no_serial: false,
            status: EntryStatus::Booked,
            visible: false,
        });
    }
    for _ in 0..rng.gen_range(1..=MAX_PENDING_TODAY) {
        let kinds = if rng.gen_range(0..2u8) == 0 {
            CREDIT_KINDS
        } else {
            DEBIT_KINDS
        };
        let mut draft = draw(rng, &pool, kinds);
        draft.value_day_earlier = false;
        placed.push(Placed {
            date: today,
            draft,
            no_serial: false,
            status: EntryStatus::Pending,
            visible: true,
        });
    }

    // Serials number the entries of a day in order (late and pending ones
    // after the rest, since they were added later); a skipped serial leaves
    // a gap, as when a front end does not report it.
    let mut numbers: HashMap<BusinessDate, u32> = HashMap::new();
    let mut history = AccountHistory::default();
    for item in placed {
        let number = numbers.entry(item.date).or_insert(0);
        *number += 1;
        let empty = item.no_serial || rng.gen_range(0..100) < EMPTY_SERIAL_PERCENT;
        let serial = if empty {
            String::new()
        } else {
            format!("{:06}", *number)
        };
        let value_date = if item.draft.value_day_earlier {
            item.date.add_days(-1).unwrap_or(item.date)
        } else {
            item.date
        };
        let e2e_ref = item
            .draft
            .e2e_digits
            .as_ref()
            .map(|digits| format!("E{}{digits}", item.date.to_compact()))
            .unwrap_or_default();
        history.insert(SimEntry {
            serial,
            booking_date: item.date,
            value_date,
            direction: item.draft.direction,
            amount_minor: item.draft.amount_minor,
            status: item.status,
            balance_after_minor: None,
            counterparty_name: item.draft.counterparty.name,
            counterparty_account: item.draft.counterparty.account,
            counterparty_bank: item.draft.counterparty.bank,
            remittance: item.draft.remittance.to_string(),
            e2e_ref,
            visible: item.visible,
        });
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::bank_rng;

    fn today() -> BusinessDate {
        BusinessDate::from_ymd(2026, 11, 29).unwrap()
    }

    fn history(seed: u64, booked: i64) -> AccountHistory {
        generate(&mut bank_rng("cmb", seed, "history test"), today(), booked)
    }

    #[test]
    fn page_keys_round_trip_and_refuse_anything_else() {
        let after = PagePosition::After {
            date: today(),
            seq: 42,
        };
        assert_eq!(after.to_key(), "K20261129000000000042");
        assert_eq!(PagePosition::from_key(&after.to_key()), Some(after));
        assert_eq!(PagePosition::from_key(""), Some(PagePosition::Start));
        assert_eq!(
            PagePosition::from_key(&PagePosition::Start.to_key()),
            Some(PagePosition::Start)
        );
        for bad in [
            "K",
            "K2026",
            "X20261129000000000042",
            "K20261399000000000042",
            "K2026112900000000004a",
        ] {
            assert_eq!(PagePosition::from_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn healthy_accounts_are_not_overdrawn_in_the_past() {
        for seed in 0..20 {
            let h = history(seed, 1_000_000);
            let days = h
                .day_totals(today().add_days(-HISTORY_DAYS).unwrap(), today(), 1_000_000)
                .unwrap();
            assert!(days
                .iter()
                .all(|d| d.opening_minor >= 0 && d.closing_minor >= 0));
        }
    }

    #[test]
    fn serials_are_unique_per_day_and_repeat_across_days() {
        let h = history(3, 50_000_000);
        let mut seen = std::collections::HashSet::new();
        for stored in &h.entries {
            let e = &stored.entry;
            if !e.serial.is_empty() {
                assert!(seen.insert((e.booking_date, e.serial.clone())), "{e:?}");
            }
        }
        let first_serials = h
            .entries
            .iter()
            .filter(|s| s.entry.serial == "000001")
            .count();
        assert!(first_serials > 10, "serials restart every day");
    }

    #[test]
    fn paging_skips_nothing_and_repeats_nothing() {
        let mut h = history(5, 50_000_000);
        h.reveal_hidden();
        let from = today().add_days(-HISTORY_DAYS).unwrap();
        let all = h
            .entries_between(Some(from), Some(today()), 50_000_000)
            .unwrap();
        let mut paged = Vec::new();
        let mut position = PagePosition::Start;
        loop {
            let page = h
                .page(from, today(), position, false, 7, 50_000_000)
                .unwrap();
            assert!(page.entries.len() <= 7);
            paged.extend(page.entries);
            match page.next {
                Some(next) => position = next,
                None => break,
            }
        }
        assert_eq!(paged, all);
    }

    #[test]
    fn lookups_by_day_and_by_seq_agree_with_a_walk_of_the_whole_history() {
        let booked = 50_000_000;
        let mut h = history(7, booked);
        // Hidden and pending entries are in it: `by_seq` must skip them in
        // the balance as `balances_after` does.
        assert!(h.entries.iter().any(|s| !counts(&s.entry)));
        let everyone = h.balances_after(booked).unwrap();
        for (stored, balance) in h.entries.iter().zip(&everyone) {
            let found = h.by_seq(stored.seq, booked).unwrap();
            assert_eq!(found.balance_after_minor, *balance, "seq {}", stored.seq);
            assert_eq!(found.serial, stored.entry.serial);
        }
        assert_eq!(h.by_seq(u64::MAX, booked), None);
        for back in 0..=HISTORY_DAYS {
            let date = today().add_days(-back).unwrap();
            let on_day: Vec<&str> = h
                .entries
                .iter()
                .filter(|s| s.entry.booking_date == date)
                .map(|s| s.entry.serial.as_str())
                .collect();
            for serial in &on_day {
                assert_eq!(h.serial_taken(date, serial), !serial.is_empty());
            }
            let next = h.next_serial(date);
            assert!(!on_day.contains(&next.as_str()), "{date} {next}");
            assert!(!h.serial_taken(date, &next));
        }
        // An entry added today is found by its seq with today's balance.
        let seq = h.insert(SimEntry {
            serial: h.next_serial(today()),
            booking_date: today(),
            value_date: today(),
            direction: Direction::Credit,
            amount_minor: 100,
            status: EntryStatus::Booked,
            balance_after_minor: None,
            counterparty_name: String::new(),
            counterparty_account: String::new(),
            counterparty_bank: String::new(),
            remittance: String::new(),
            e2e_ref: String::new(),
            visible: true,
        });
        let added = h.by_seq(seq, booked + 100).unwrap();
        assert_eq!(added.balance_after_minor, Some(booked + 100));
        assert!(h.serial_taken(today(), &added.serial));
        // Removed, its serial is free again, and the next one is it.
        let at = h.entries.iter().position(|s| s.seq == seq).unwrap();
        h.remove_kept(at).unwrap();
        assert!(!h.serial_taken(today(), &added.serial));
        assert_eq!(h.next_serial(today()), added.serial);
    }
}
