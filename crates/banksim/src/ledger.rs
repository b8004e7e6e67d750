//! The simulated bank's books: accounts, their balances and their
//! statement histories.
//!
//! A ledger is generated from `(bank_id, seed)` alone, so a test or a demo
//! that names the same bank and seed gets the same account numbers, names and
//! balances every time (DESIGN.md: randomness is injected and replayable).
//! A cn-xml bank gets Chinese account numbers and names; an iso20022 bank
//! gets German IBANs (valid check digits, [`domain::Iban`]) and German
//! company names, EUR accounts first. After generation the set of accounts
//! is fixed; balances move with entries
//! ([`Ledger::adjust`], [`Ledger::add_entry`], [`Ledger::book_pending`], and
//! late entries becoming visible).
//!
//! Each account's history ([`crate::history`]) is generated from `(bank_id,
//! seed, account number)` and the ledger's anchor date (today by the
//! injected clock when the ledger was made), lazily on first use, so that a
//! bank of thousands of accounts only pays for the histories it is asked
//! about. It is generated against the account's *initial* balance, so it is
//! the same whenever it is first touched. Every balance change goes through
//! an entry in the same critical section, which keeps the history consistent
//! with the balance: the last shown booked entry's running balance is the
//! booked balance.
//!
//! The state sits behind one mutex that is never held across an await, and
//! a poisoned lock is recovered rather than turned into a panic: every
//! update checks before it writes, and writes balance and entry together.
//!
//! Layout: the public types, then generation (word tables, numbering,
//! balances), then the balance methods, then the history methods.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use domain::{BankTimeZone, BusinessDate, Clock, Currency, Direction, EntryStatus, SystemClock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::history::{
    self, AccountHistory, DayTotals, LateStage, NewSimEntry, OriginEntry, Page, PagePosition,
    SimEntry, MAX_ENTRIES_PER_ACCOUNT, MAX_ENTRY_TEXT_CHARS, MAX_SERIAL_BYTES,
};
use crate::{mask, SimBankConfig, SimError};

/// Remittance text of the entry an adjustment books (cn-xml).
pub const ADJUSTMENT_REMITTANCE: &str = "余额调整";
/// Remittance text of the entry an adjustment books at an iso20022 bank.
pub const ISO_ADJUSTMENT_REMITTANCE: &str = "Balance adjustment";

/// Most accounts per currency one simulated bank generates. It keeps the
/// four-digit serial at the end of every account number unique and bounds
/// the memory a mistyped config can ask for.
pub const MAX_ACCOUNTS_PER_CURRENCY: usize = 5_000;

/// Smallest positive balance generated, in minor units (¥10,000.00).
const MIN_BALANCE_MINOR: i64 = 1_000_000;
/// Largest balance generated, in minor units (¥50,000,000.00).
const MAX_BALANCE_MINOR: i64 = 5_000_000_000;
/// Range of the overdrawn account's debt, in minor units (¥1,000.00 to ¥500,000.00).
const MIN_OVERDRAFT_MINOR: i64 = 100_000;
const MAX_OVERDRAFT_MINOR: i64 = 50_000_000;
/// An overdrawn account is generated once a currency has this many accounts.
const OVERDRAFT_FROM_ACCOUNTS: usize = 3;

/// The text an entry of this bank may carry, by family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextRules {
    /// At most [`MAX_ENTRY_TEXT_CHARS`] characters, encodable in GBK.
    Gbk,
    /// At most [`MAX_ISO_ENTRY_TEXT_CHARS`] characters of XML 1.0 text.
    Iso,
}

/// Longest text of an entry field at an iso20022 bank (`Max140Text`).
pub const MAX_ISO_ENTRY_TEXT_CHARS: usize = 140;

/// German bank code (BLZ) of an iso20022 bank's accounts, eight digits,
/// chosen by the seed from these (all in the Bundesbank's test ranges of
/// real-looking codes; none is a real bank's).
const ISO_BANK_CODES: &[&str] = &["50010517", "37040044", "70020270", "10070000", "20050550"];
const ISO_CITIES: &[&str] = &[
    "Frankfurt am Main",
    "München",
    "Hamburg",
    "Köln",
    "Stuttgart",
    "Düsseldorf",
    "Berlin",
    "Leipzig",
];
const ISO_BRANDS: &[&str] = &[
    "Nordwind",
    "Alpenblick",
    "Rheintal",
    "Havelland",
    "Isarwerk",
    "Elbufer",
    "Mainstein",
    "Schwarzwald",
    "Brückner",
    "Lindqvist",
    "Moreau",
    "Van der Berg",
    "Rossi",
    "Kowalski",
];
const ISO_INDUSTRIES: &[&str] = &[
    "Logistik",
    "Maschinenbau",
    "Handel",
    "Software",
    "Pharma",
    "Energie",
    "Bau",
    "Lebensmittel",
    "Consulting",
    "Elektronik",
];
const ISO_COMPANY_FORMS: &[&str] = &["GmbH", "AG", "GmbH & Co. KG", "SE", "KG"];

/// One account of the simulated bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAccount {
    pub number: String,
    /// The holder, a Chinese company name.
    pub name: String,
    pub currency: Currency,
    /// The branch that keeps the account, a Chinese branch name.
    pub branch: String,
    pub booked_minor: i64,
    /// Never above `booked_minor`: the difference is frozen or held funds.
    pub available_minor: i64,
}

/// The accounts of one simulated bank. Shared between the server's handlers
/// and the test or CLI that started it.
#[derive(Debug)]
pub struct Ledger {
    bank_id: String,
    seed: u64,
    clock: Arc<dyn Clock>,
    time_zone: BankTimeZone,
    /// Today when the ledger was made: generated histories end on this day.
    anchor: BusinessDate,
    /// Account number to position in `Books::accounts`; fixed after
    /// generation.
    index: HashMap<String, usize>,
    /// Which family's text rules entries follow: GBK-encodable for cn-xml,
    /// any XML text of ISO's `Max140Text` length for iso20022.
    text_rules: TextRules,
    books: Mutex<Books>,
}

/// Everything that changes, under one lock so that a balance and the entry
/// that moved it change together. The three vectors are parallel.
#[derive(Debug)]
struct Books {
    accounts: Vec<SimAccount>,
    /// Booked balance at generation; histories are generated against it.
    initial_booked_minor: Vec<i64>,
    histories: Vec<Option<AccountHistory>>,
}

/// One account's balance and history, borrowed from the books.
struct AccountBooks<'a> {
    account: &'a mut SimAccount,
    history: &'a mut AccountHistory,
}

/// City, four-digit branch prefix of its account numbers.
pub(crate) const CITIES: &[(&str, &str)] = &[
    ("深圳", "7559"),
    ("上海", "2110"),
    ("北京", "1109"),
    ("广州", "2009"),
    ("杭州", "5719"),
    ("南京", "2509"),
    ("成都", "2809"),
    ("武汉", "2709"),
];
pub(crate) const BRANDS: &[&str] = &[
    "华信", "恒达", "鼎盛", "瑞丰", "中科", "宏远", "金桥", "海纳", "启明", "博远", "嘉禾", "同创",
    "新航", "远景", "汇通", "天成",
];
pub(crate) const INDUSTRIES: &[&str] = &[
    "科技",
    "贸易",
    "实业",
    "电子",
    "物流",
    "医药",
    "建设",
    "信息技术",
    "新能源",
    "食品",
    "供应链管理",
    "投资",
];
pub(crate) const COMPANY_FORMS: &[&str] = &["有限公司", "股份有限公司", "集团有限公司"];
const BRANCH_SUFFIXES: &[&str] = &[
    "分行营业部",
    "分行高新区支行",
    "分行城东支行",
    "分行经济开发区支行",
];
/// Total lengths of account numbers; each bank uses one, chosen by its seed,
/// because real banks differ (12 to 19 digits are all common in China).
const ACCOUNT_NUMBER_LENGTHS: &[usize] = &[12, 15, 16, 19];
/// Digits that are not random: four of branch prefix, two of currency
/// marker, four of serial.
const FIXED_ACCOUNT_DIGITS: usize = 10;

/// A stable 64-bit FNV-1a hash; `std`'s hashers are not promised to be
/// stable across releases, and a ledger must be reproducible from its seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The RNG for one purpose of one bank. Separate streams per purpose keep a
/// new quirk from reshuffling every generated account.
pub(crate) fn bank_rng(bank_id: &str, seed: u64, purpose: &str) -> ChaCha20Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&fnv1a(bank_id.as_bytes()).to_le_bytes());
    key[16..24].copy_from_slice(&fnv1a(purpose.as_bytes()).to_le_bytes());
    // Both lengths go in so that ("ab", "c") and ("a", "bc") differ.
    let lengths = ((bank_id.len() as u64) << 32) ^ purpose.len() as u64;
    key[24..].copy_from_slice(&lengths.to_le_bytes());
    ChaCha20Rng::from_seed(key)
}

pub(crate) fn pick<'a>(rng: &mut ChaCha20Rng, table: &[&'a str]) -> &'a str {
    table[rng.gen_range(0..table.len())]
}

/// The two-digit marker inside an account number, borrowed from the family's
/// currency numbers so a reader can tell a USD account by eye.
fn currency_marker(currency: Currency) -> &'static str {
    if currency == Currency::USD {
        "32"
    } else {
        "10"
    }
}

/// The accounts of an iso20022 bank in one currency: German IBANs (bank
/// code of the bank, ten-digit account number ending in the serial) with
/// valid check digits, German company names, balances as for cn-xml.
fn generate_iso_currency(
    rng: &mut ChaCha20Rng,
    bank_code: &str,
    currency: Currency,
    count: usize,
    first_serial: usize,
) -> Vec<SimAccount> {
    let mut accounts = generate_currency(rng, currency, count, 16, first_serial);
    for (position, account) in accounts.iter_mut().enumerate() {
        let mut account_number = String::with_capacity(10);
        for _ in 0..6 {
            account_number.push(char::from(b'0' + rng.gen_range(0..10u8)));
        }
        account_number.push_str(&format!("{:04}", first_serial + position));
        let bban = format!("{bank_code}{account_number}");
        account.number = match domain::Iban::from_parts("DE", &bban) {
            Ok(iban) => iban.as_str().to_string(),
            // Unreachable for eighteen digits; keep the account usable.
            Err(_) => format!("DE00{bban}"),
        };
        let city = pick(rng, ISO_CITIES);
        account.name = format!(
            "{} {} {}",
            pick(rng, ISO_BRANDS),
            pick(rng, ISO_INDUSTRIES),
            pick(rng, ISO_COMPANY_FORMS)
        );
        account.branch = format!("Filiale {city}");
    }
    accounts
}

fn generate_currency(
    rng: &mut ChaCha20Rng,
    currency: Currency,
    count: usize,
    number_length: usize,
    first_serial: usize,
) -> Vec<SimAccount> {
    let overdrawn = if count >= OVERDRAFT_FROM_ACCOUNTS {
        Some(rng.gen_range(0..count))
    } else {
        None
    };
    let random_digits = number_length - FIXED_ACCOUNT_DIGITS;
    let mut accounts = Vec::with_capacity(count);
    for position in 0..count {
        let (city, prefix) = CITIES[rng.gen_range(0..CITIES.len())];
        let mut number = String::with_capacity(number_length);
        number.push_str(prefix);
        number.push_str(currency_marker(currency));
        for _ in 0..random_digits {
            number.push(char::from(b'0' + rng.gen_range(0..10u8)));
        }
        number.push_str(&format!("{:04}", first_serial + position));

        let name = format!(
            "{city}市{}{}{}",
            pick(rng, BRANDS),
            pick(rng, INDUSTRIES),
            pick(rng, COMPANY_FORMS)
        );
        let branch = format!("{city}{}", pick(rng, BRANCH_SUFFIXES));

        let (booked_minor, available_minor) = if overdrawn == Some(position) {
            let booked = -rng.gen_range(MIN_OVERDRAFT_MINOR..=MAX_OVERDRAFT_MINOR);
            (booked, booked)
        } else {
            let booked = rng.gen_range(MIN_BALANCE_MINOR..=MAX_BALANCE_MINOR);
            // About a third of accounts have some funds frozen, as real
            // corporate accounts often do (guarantees, court holds).
            let frozen = if rng.gen_range(0..3u8) == 0 {
                rng.gen_range(0..=booked / 5)
            } else {
                0
            };
            (booked, booked - frozen)
        };
        accounts.push(SimAccount {
            number,
            name,
            currency,
            branch,
            booked_minor,
            available_minor,
        });
    }
    accounts
}

impl Ledger {
    /// Generates the ledger of `cfg`'s bank with the system clock; see
    /// [`Ledger::generate_with_clock`].
    pub fn generate(cfg: &SimBankConfig) -> Ledger {
        Ledger::generate_with_clock(cfg, Arc::new(SystemClock))
    }

    /// Generates the ledger of `cfg`'s bank, deterministically from its
    /// `bank_id` and `seed`: CNY accounts first, then USD. Counts above
    /// [`MAX_ACCOUNTS_PER_CURRENCY`] are cut to it (and logged);
    /// [`SimBankConfig::validate`] rejects such a config up front, as it
    /// rejects an unknown time zone (which would fall back to Shanghai here).
    /// Histories end on today by `clock` in the bank's zone.
    pub fn generate_with_clock(cfg: &SimBankConfig, clock: Arc<dyn Clock>) -> Ledger {
        let cny_count = capped_count(cfg.cny_accounts, "CNY");
        let usd_count = capped_count(cfg.usd_accounts, "USD");
        let eur_count = capped_count(cfg.eur_accounts, "EUR");
        let (accounts, text_rules) = if cfg.is_iso20022() {
            // A stream of its own, so cn-xml ledgers stay exactly as before.
            let mut rng = bank_rng(&cfg.bank_id, cfg.seed, "iso20022 ledger");
            let bank_code = pick(&mut rng, ISO_BANK_CODES);
            let mut accounts =
                generate_iso_currency(&mut rng, bank_code, Currency::EUR, eur_count, 0);
            for (currency, count) in [(Currency::USD, usd_count), (Currency::CNY, cny_count)] {
                let first = accounts.len();
                accounts.extend(generate_iso_currency(
                    &mut rng, bank_code, currency, count, first,
                ));
            }
            (accounts, TextRules::Iso)
        } else {
            let mut rng = bank_rng(&cfg.bank_id, cfg.seed, "ledger");
            let number_length =
                ACCOUNT_NUMBER_LENGTHS[rng.gen_range(0..ACCOUNT_NUMBER_LENGTHS.len())];
            let mut accounts =
                generate_currency(&mut rng, Currency::CNY, cny_count, number_length, 0);
            for (currency, count) in [(Currency::USD, usd_count), (Currency::EUR, eur_count)] {
                let first = accounts.len();
                accounts.extend(generate_currency(
                    &mut rng,
                    currency,
                    count,
                    number_length,
                    first,
                ));
            }
            (accounts, TextRules::Gbk)
        };
        let index = accounts
            .iter()
            .enumerate()
            .map(|(position, account)| (account.number.clone(), position))
            .collect();
        let time_zone = BankTimeZone::parse(&cfg.time_zone).unwrap_or_else(|error| {
            tracing::warn!(%error, "simulated bank time zone invalid; using Asia/Shanghai");
            BankTimeZone::SHANGHAI
        });
        let anchor = BusinessDate::today(clock.as_ref(), time_zone);
        let books = Books {
            initial_booked_minor: accounts.iter().map(|a| a.booked_minor).collect(),
            histories: vec![None; accounts.len()],
            accounts,
        };
        Ledger {
            bank_id: cfg.bank_id.clone(),
            seed: cfg.seed,
            clock,
            time_zone,
            anchor,
            index,
            text_rules,
            books: Mutex::new(books),
        }
    }

    pub fn bank_id(&self) -> &str {
        &self.bank_id
    }

    /// Whether this is an iso20022 bank's ledger (IBANs, ISO text rules,
    /// English texts for the entries the bank books itself).
    pub fn is_iso20022(&self) -> bool {
        self.text_rules == TextRules::Iso
    }

    /// Today in the bank's time zone, by the injected clock.
    pub fn today(&self) -> BusinessDate {
        BusinessDate::today(self.clock.as_ref(), self.time_zone)
    }

    /// The day generated histories end on: today when the ledger was made.
    pub fn anchor_date(&self) -> BusinessDate {
        self.anchor
    }

    fn lock(&self) -> MutexGuard<'_, Books> {
        self.books
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// All accounts, in generation order.
    pub fn accounts(&self) -> Vec<SimAccount> {
        self.lock().accounts.clone()
    }

    pub fn account(&self, number: &str) -> Option<SimAccount> {
        let position = *self.index.get(number)?;
        self.lock().accounts.get(position).cloned()
    }

    /// Runs `work` on one account and its history (generated on first use)
    /// under the lock.
    fn with_books<T>(
        &self,
        number: &str,
        work: impl FnOnce(AccountBooks<'_>) -> Result<T, SimError>,
    ) -> Result<T, SimError> {
        let unknown = || SimError::UnknownAccount {
            masked: mask(number),
        };
        let position = *self.index.get(number).ok_or_else(unknown)?;
        let mut guard = self.lock();
        let books = &mut *guard;
        let account = books.accounts.get_mut(position).ok_or_else(unknown)?;
        let initial = books
            .initial_booked_minor
            .get(position)
            .copied()
            .ok_or_else(unknown)?;
        let slot = books.histories.get_mut(position).ok_or_else(unknown)?;
        let history = slot.get_or_insert_with(|| {
            let purpose = format!("history {number}");
            let mut rng = bank_rng(&self.bank_id, self.seed, &purpose);
            history::generate(&mut rng, self.anchor, initial)
        });
        work(AccountBooks { account, history })
    }

    /// Moves booked and available balance of one account together by
    /// `delta_minor` (negative for a debit), and books an entry for it today
    /// (remittance [`ADJUSTMENT_REMITTANCE`], no counterparty) so that the
    /// history stays consistent with the balance. Overdrafts are allowed; an
    /// amount that no longer fits an i64 is refused and changes nothing. A
    /// zero delta changes nothing.
    pub fn adjust(&self, number: &str, delta_minor: i64) -> Result<(), SimError> {
        if delta_minor == 0 {
            return self.with_books(number, |_| Ok(()));
        }
        let direction = if delta_minor > 0 {
            Direction::Credit
        } else {
            Direction::Debit
        };
        let amount_minor =
            i64::try_from(delta_minor.unsigned_abs()).map_err(|_| SimError::AmountOverflow {
                masked: mask(number),
            })?;
        let mut entry = NewSimEntry::booked(direction, amount_minor);
        entry.remittance = Some(
            if self.is_iso20022() {
                ISO_ADJUSTMENT_REMITTANCE
            } else {
                ADJUSTMENT_REMITTANCE
            }
            .to_string(),
        );
        self.add_entry(number, entry).map(|_| ())
    }

    /// Per currency, in order of first appearance: the sums of booked and of
    /// available balances. i128 cannot overflow for any count of i64s this
    /// ledger can hold.
    pub fn totals(&self) -> Vec<(Currency, i128, i128)> {
        let mut totals: Vec<(Currency, i128, i128)> = Vec::new();
        for account in self.lock().accounts.iter() {
            let booked = i128::from(account.booked_minor);
            let available = i128::from(account.available_minor);
            match totals.iter_mut().find(|(c, _, _)| *c == account.currency) {
                Some(entry) => {
                    entry.1 += booked;
                    entry.2 += available;
                }
                None => totals.push((account.currency, booked, available)),
            }
        }
        totals
    }

    // -----------------------------------------------------------------------
    // history
    // -----------------------------------------------------------------------

    /// What the bank holds for the account, booked in `from..=to`, hidden
    /// late entries included (with `visible` false), in the bank's order.
    pub fn entries(
        &self,
        number: &str,
        from: BusinessDate,
        to: BusinessDate,
    ) -> Result<Vec<SimEntry>, SimError> {
        self.entries_between(number, Some(from), Some(to))
    }

    /// [`Ledger::entries`] with open ends.
    pub fn entries_between(
        &self,
        number: &str,
        from: Option<BusinessDate>,
        to: Option<BusinessDate>,
    ) -> Result<Vec<SimEntry>, SimError> {
        self.with_books(number, |books| {
            books
                .history
                .entries_between(from, to, books.account.booked_minor)
                .ok_or_else(|| overflow(number))
        })
    }

    /// Appends an entry dated today, at the end of the day. A booked one
    /// moves booked and available balance; a pending one moves nothing until
    /// [`Ledger::book_pending`]. Returns the entry as the bank now shows it.
    pub fn add_entry(&self, number: &str, new: NewSimEntry) -> Result<SimEntry, SimError> {
        let today = self.today();
        self.with_books(number, |books| {
            let invalid = |message: String| SimError::InvalidEntry {
                masked: mask(number),
                message,
            };
            if new.amount_minor <= 0 {
                return Err(invalid(format!(
                    "amount is {} minor units; expected a positive amount",
                    new.amount_minor
                )));
            }
            if books.history.len() >= MAX_ENTRIES_PER_ACCOUNT {
                return Err(invalid(format!(
                    "the account already holds {MAX_ENTRIES_PER_ACCOUNT} entries, the simulator's limit"
                )));
            }
            let texts = [
                ("counterparty_name", &new.counterparty_name),
                ("counterparty_account", &new.counterparty_account),
                ("counterparty_bank", &new.counterparty_bank),
                ("remittance", &new.remittance),
                ("e2e_ref", &new.e2e_ref),
            ];
            for (field, text) in texts {
                check_entry_text(self.text_rules, field, text.as_deref().unwrap_or_default())
                    .map_err(invalid)?;
            }
            let serial = match &new.serial {
                None => books.history.next_serial(today),
                Some(serial) => {
                    check_serial(serial).map_err(invalid)?;
                    if books.history.serial_taken(today, serial) {
                        return Err(invalid(format!(
                            "serial {serial:?} is already used on {today}; expected one unique per account and booking date"
                        )));
                    }
                    serial.clone()
                }
            };
            let booked = if new.status == EntryStatus::Booked {
                Some(moved_balances(books.account, new.direction, new.amount_minor)
                    .ok_or_else(|| overflow(number))?)
            } else {
                None
            };
            let text = |value: Option<String>| value.unwrap_or_default();
            let seq = books.history.insert(SimEntry {
                serial,
                booking_date: today,
                value_date: today,
                direction: new.direction,
                amount_minor: new.amount_minor,
                status: new.status,
                balance_after_minor: None,
                counterparty_name: text(new.counterparty_name),
                counterparty_account: text(new.counterparty_account),
                counterparty_bank: text(new.counterparty_bank),
                remittance: text(new.remittance),
                e2e_ref: text(new.e2e_ref),
                visible: true,
            });
            if let Some((booked, available)) = booked {
                books.account.booked_minor = booked;
                books.account.available_minor = available;
            }
            books
                .history
                .by_seq(seq, books.account.booked_minor)
                .ok_or_else(|| overflow(number))
        })
    }

    /// Books the pending entry with this serial today: it keeps its serial
    /// and value date, its booking date becomes today, it moves to the end of
    /// today's entries, and booked and available balance move by it.
    pub fn book_pending(&self, number: &str, serial: &str) -> Result<SimEntry, SimError> {
        let today = self.today();
        self.with_books(number, |books| {
            let not_found = || SimError::NoPendingEntry {
                masked: mask(number),
                serial: serial.chars().take(MAX_SERIAL_BYTES).collect(),
            };
            if serial.is_empty() {
                return Err(not_found());
            }
            let position = books.history.pending_position(serial).ok_or_else(not_found)?;
            let (booked, available) = books
                .history
                .direction_and_amount(position)
                .and_then(|(direction, amount)| moved_balances(books.account, direction, amount))
                .ok_or_else(|| overflow(number))?;
            let (origin, was_pending, mut entry) =
                books.history.remove_kept(position).ok_or_else(not_found)?;
            if books.history.serial_taken(today, serial) {
                // Only possible when the entry was pending since an earlier
                // day and today already has this serial: put it back.
                books.history.insert_kept(entry, Some(origin), was_pending);
                return Err(SimError::InvalidEntry {
                    masked: mask(number),
                    message: format!(
                        "serial {serial:?} is already used on {today}; the pending entry cannot be booked today"
                    ),
                });
            }
            entry.status = EntryStatus::Booked;
            entry.booking_date = today;
            let seq = books.history.insert_kept(entry, Some(origin), was_pending);
            books.account.booked_minor = booked;
            books.account.available_minor = available;
            books
                .history
                .by_seq(seq, booked)
                .ok_or_else(|| overflow(number))
        })
    }

    /// One `QueryHistory` page of visible entries. A page that
    /// `starts_session` (asked with an empty key) after a whole sync of the
    /// account first makes its late entries visible (see
    /// [`crate::history`]'s `LateStage`).
    pub(crate) fn history_page(
        &self,
        number: &str,
        from: BusinessDate,
        to: BusinessDate,
        position: PagePosition,
        starts_session: bool,
        omit_latest_booked: bool,
    ) -> Result<Page, SimError> {
        self.with_books(number, |mut books| {
            match books.history.late_stage {
                LateStage::SyncServed if starts_session => {
                    let revealed = reveal_hidden(&mut books, number)?;
                    if revealed > 0 {
                        tracing::info!(bank = %self.bank_id, account = %mask(number), revealed,
                            "late entries are now visible");
                    }
                }
                LateStage::Untouched => books.history.late_stage = LateStage::HistoryServed,
                _ => {}
            }
            books
                .history
                .page(
                    from,
                    to,
                    position,
                    omit_latest_booked,
                    history::PAGE_SIZE,
                    books.account.booked_minor,
                )
                .ok_or_else(|| overflow(number))
        })
    }

    /// Opening and closing balances of the days in `from..=to`, over the
    /// visible entries, as a `QueryDayBalance` answers them (which completes
    /// a sync for the late entries).
    pub(crate) fn day_totals(
        &self,
        number: &str,
        from: BusinessDate,
        to: BusinessDate,
    ) -> Result<Vec<DayTotals>, SimError> {
        self.with_books(number, |books| {
            let totals = books
                .history
                .day_totals(from, to, books.account.booked_minor)
                .ok_or_else(|| overflow(number))?;
            if books.history.late_stage == LateStage::HistoryServed {
                books.history.late_stage = LateStage::SyncServed;
            }
            Ok(totals)
        })
    }
}

/// What an iso20022 report reads of one account at one moment.
#[derive(Debug, Clone)]
pub(crate) struct IsoSnapshot {
    pub(crate) account: SimAccount,
    /// Visible entries booked (or, for pending ones, dated) in the range.
    pub(crate) entries: Vec<OriginEntry>,
    /// Every visible pending entry of the account, whatever its date.
    pub(crate) pending: Vec<OriginEntry>,
    /// Opening and closing balance of each day of the range.
    pub(crate) days: Vec<DayTotals>,
}

impl Ledger {
    /// Everything an iso20022 report (C52, C53, C54) needs of one account,
    /// read under one lock so entries and balances agree. A report's first
    /// page (`starts_session`) counts as a whole sync for the late entries:
    /// the first one leaves them hidden, the next one shows them (see
    /// [`crate::history`]).
    pub(crate) fn iso_snapshot(
        &self,
        number: &str,
        from: BusinessDate,
        to: BusinessDate,
        starts_session: bool,
    ) -> Result<IsoSnapshot, SimError> {
        self.with_books(number, |mut books| {
            if starts_session {
                match books.history.late_stage {
                    LateStage::SyncServed => {
                        let revealed = reveal_hidden(&mut books, number)?;
                        if revealed > 0 {
                            tracing::info!(bank = %self.bank_id, account = %mask(number), revealed,
                                "late entries are now visible");
                        }
                    }
                    LateStage::Untouched | LateStage::HistoryServed => {
                        books.history.late_stage = LateStage::SyncServed;
                    }
                }
            }
            let booked_now = books.account.booked_minor;
            let all = books
                .history
                .entries_with_origin(None, None, booked_now)
                .ok_or_else(|| overflow(number))?;
            let days = books
                .history
                .day_totals(from, to, booked_now)
                .ok_or_else(|| overflow(number))?;
            let (mut entries, mut pending) = (Vec::new(), Vec::new());
            for item in all.into_iter().filter(|e| e.entry.visible) {
                if item.entry.status == EntryStatus::Pending {
                    pending.push(item.clone());
                }
                if item.entry.booking_date >= from && item.entry.booking_date <= to {
                    entries.push(item);
                }
            }
            Ok(IsoSnapshot {
                account: books.account.clone(),
                entries,
                pending,
                days,
            })
        })
    }
}

/// Shows the account's late entries and moves its balance by them; returns
/// how many became visible. Nothing changes on overflow.
fn reveal_hidden(books: &mut AccountBooks<'_>, number: &str) -> Result<usize, SimError> {
    let net = books.history.hidden_net();
    let apply =
        |balance: i64| i64::try_from(i128::from(balance) + net).map_err(|_| overflow(number));
    let booked = apply(books.account.booked_minor)?;
    let available = apply(books.account.available_minor)?;
    let revealed = books.history.reveal_hidden();
    books.account.booked_minor = booked;
    books.account.available_minor = available;
    Ok(revealed)
}

fn overflow(number: &str) -> SimError {
    SimError::AmountOverflow {
        masked: mask(number),
    }
}

/// Booked and available balance after an entry, or `None` on overflow.
fn moved_balances(
    account: &SimAccount,
    direction: Direction,
    amount_minor: i64,
) -> Option<(i64, i64)> {
    let delta = match direction {
        Direction::Credit => amount_minor,
        Direction::Debit => amount_minor.checked_neg()?,
    };
    Some((
        account.booked_minor.checked_add(delta)?,
        account.available_minor.checked_add(delta)?,
    ))
}

/// An added entry's text must fit the family: for cn-xml at most
/// [`MAX_ENTRY_TEXT_CHARS`] characters, and encodable in GBK (else every
/// later history answer of the account would fail to encode); for iso20022
/// at most [`MAX_ISO_ENTRY_TEXT_CHARS`] characters XML 1.0 can carry.
fn check_entry_text(rules: TextRules, field: &str, text: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if rules == TextRules::Iso {
        if chars > MAX_ISO_ENTRY_TEXT_CHARS {
            return Err(format!(
                "{field} is {chars} characters long; expected at most {MAX_ISO_ENTRY_TEXT_CHARS}"
            ));
        }
        return match text.chars().find(|c| !is_xml_char(*c)) {
            Some(c) => Err(format!(
                "{field} holds U+{:04X}, which XML 1.0 cannot carry",
                u32::from(c)
            )),
            None => Ok(()),
        };
    }
    if chars > MAX_ENTRY_TEXT_CHARS {
        return Err(format!(
            "{field} is {chars} characters long; expected at most {MAX_ENTRY_TEXT_CHARS}"
        ));
    }
    let probe = formats::cn_xml::Packet {
        head: formats::cn_xml::Head {
            func: "F".to_string(),
            serial: "S".to_string(),
            ..formats::cn_xml::Head::default()
        },
        body: vec![formats::cn_xml::Block::new("E").with("V", text)],
    };
    formats::cn_xml::encode(&probe)
        .map(|_| ())
        .map_err(|e| format!("{field} cannot be sent by a GBK front machine ({e})"))
}

/// Whether XML 1.0 text may hold the character.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn check_serial(serial: &str) -> Result<(), String> {
    if serial.len() > MAX_SERIAL_BYTES
        || !serial
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "serial must be at most {MAX_SERIAL_BYTES} ASCII letters, digits or '-' (empty for an entry without serial)"
        ));
    }
    Ok(())
}

fn capped_count(requested: usize, currency: &str) -> usize {
    if requested > MAX_ACCOUNTS_PER_CURRENCY {
        tracing::warn!(
            requested,
            max = MAX_ACCOUNTS_PER_CURRENCY,
            currency,
            "simulated bank asked for too many accounts; generating the maximum"
        );
        MAX_ACCOUNTS_PER_CURRENCY
    } else {
        requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bank_id: &str, seed: u64, cny: usize, usd: usize) -> SimBankConfig {
        SimBankConfig {
            bank_id: bank_id.to_string(),
            family: "cn-xml".to_string(),
            seed,
            login: "DEMO01".to_string(),
            cny_accounts: cny,
            usd_accounts: usd,
            eur_accounts: 0,
            time_zone: "Asia/Shanghai".to_string(),
        }
    }

    #[test]
    fn same_bank_and_seed_give_the_same_ledger() {
        let a = Ledger::generate(&config("cmb", 7, 5, 2)).accounts();
        let b = Ledger::generate(&config("cmb", 7, 5, 2)).accounts();
        assert_eq!(a, b);
    }

    #[test]
    fn another_seed_or_bank_gives_another_ledger() {
        let base = Ledger::generate(&config("cmb", 7, 5, 2)).accounts();
        let other_seed = Ledger::generate(&config("cmb", 8, 5, 2)).accounts();
        let other_bank = Ledger::generate(&config("icbc", 7, 5, 2)).accounts();
        assert_ne!(base, other_seed);
        assert_ne!(base, other_bank);
    }

    #[test]
    fn accounts_are_realistic() {
        for seed in 0..20 {
            let ledger = Ledger::generate(&config("cmb", seed, 6, 3));
            let accounts = ledger.accounts();
            assert_eq!(accounts.len(), 9);
            assert_eq!(
                accounts
                    .iter()
                    .filter(|a| a.currency == Currency::CNY)
                    .count(),
                6
            );
            for account in &accounts {
                let len = account.number.len();
                assert!((12..=19).contains(&len), "length {len}");
                assert!(account.number.bytes().all(|b| b.is_ascii_digit()));
                assert!(account.name.ends_with("公司"), "{}", account.name);
                assert!(account.branch.contains("分行"), "{}", account.branch);
                assert!(account.available_minor <= account.booked_minor);
                if account.booked_minor >= 0 {
                    assert!((MIN_BALANCE_MINOR..=MAX_BALANCE_MINOR).contains(&account.booked_minor));
                }
            }
            for currency in [Currency::CNY, Currency::USD] {
                assert!(
                    accounts
                        .iter()
                        .any(|a| a.currency == currency && a.booked_minor < 0),
                    "seed {seed}: no overdrawn {currency:?} account"
                );
            }
            let mut numbers: Vec<_> = accounts.iter().map(|a| a.number.clone()).collect();
            numbers.sort();
            numbers.dedup();
            assert_eq!(numbers.len(), 9, "account numbers must be unique");
        }
    }

    #[test]
    fn adjust_moves_both_balances_and_refuses_overflow() {
        // (Also books an entry; see adjust_and_added_entries_keep_the_history_consistent.)
        let ledger = Ledger::generate(&config("cmb", 1, 2, 0));
        let before = ledger.accounts()[0].clone();
        ledger.adjust(&before.number, -12_345).unwrap();
        let after = ledger.account(&before.number).unwrap();
        assert_eq!(after.booked_minor, before.booked_minor - 12_345);
        assert_eq!(after.available_minor, before.available_minor - 12_345);

        let err = ledger.adjust(&before.number, i64::MAX).unwrap_err();
        assert!(matches!(err, SimError::AmountOverflow { .. }), "{err}");
        assert_eq!(ledger.account(&before.number).unwrap(), after);

        let err = ledger.adjust("000000000000", 1).unwrap_err();
        assert!(matches!(err, SimError::UnknownAccount { .. }), "{err}");
    }

    #[test]
    fn totals_sum_per_currency() {
        let ledger = Ledger::generate(&config("cmb", 3, 4, 2));
        let accounts = ledger.accounts();
        let totals = ledger.totals();
        assert_eq!(totals.len(), 2);
        for (currency, booked, available) in totals {
            let of = |f: fn(&SimAccount) -> i64| -> i128 {
                accounts
                    .iter()
                    .filter(|a| a.currency == currency)
                    .map(|a| i128::from(f(a)))
                    .sum()
            };
            assert_eq!(booked, of(|a| a.booked_minor));
            assert_eq!(available, of(|a| a.available_minor));
        }
    }

    fn fixed_clock() -> Arc<dyn Clock> {
        use chrono::TimeZone;
        // 01:30 on the 29th in Shanghai, still the 28th in UTC.
        Arc::new(domain::ManualClock::new(
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 28, 17, 30, 0)
                .single()
                .unwrap(),
        ))
    }

    /// Every day's opening + Σ booked − closing is zero over the visible
    /// entries, days chain, running balances chain, and the last visible
    /// booked entry ends at the booked balance.
    fn assert_consistent(ledger: &Ledger, number: &str) {
        let today = ledger.today();
        let from = today.add_days(-history::HISTORY_DAYS).unwrap();
        let account = ledger.account(number).unwrap();
        let entries = ledger.entries(number, from, today).unwrap();
        let shown: Vec<&SimEntry> = entries
            .iter()
            .filter(|e| e.visible && e.status == EntryStatus::Booked)
            .collect();
        assert_eq!(
            shown.last().unwrap().balance_after_minor,
            Some(account.booked_minor)
        );
        for pair in shown.windows(2) {
            let signed = match pair[1].direction {
                Direction::Credit => pair[1].amount_minor,
                Direction::Debit => -pair[1].amount_minor,
            };
            assert_eq!(
                pair[0].balance_after_minor.unwrap() + signed,
                pair[1].balance_after_minor.unwrap()
            );
        }
        let days = ledger.day_totals(number, from, today).unwrap();
        assert_eq!(days.len(), 101);
        assert_eq!(days.last().unwrap().closing_minor, account.booked_minor);
        for pair in days.windows(2) {
            assert_eq!(pair[0].closing_minor, pair[1].opening_minor);
        }
        for day in &days {
            let net: i64 = shown
                .iter()
                .filter(|e| e.booking_date == day.date)
                .map(|e| match e.direction {
                    Direction::Credit => e.amount_minor,
                    Direction::Debit => -e.amount_minor,
                })
                .sum();
            assert_eq!(day.opening_minor + net, day.closing_minor, "{}", day.date);
        }
        for entry in entries
            .iter()
            .filter(|e| !e.visible || e.status == EntryStatus::Pending)
        {
            assert_eq!(entry.balance_after_minor, None);
        }
    }

    #[test]
    fn every_history_is_consistent_with_its_balance_before_and_after_late_entries() {
        for seed in 0..4 {
            let ledger = Ledger::generate_with_clock(&config("cmb", seed, 6, 3), fixed_clock());
            for account in ledger.accounts() {
                assert_consistent(&ledger, &account.number);
                let before = ledger.account(&account.number).unwrap();
                let hidden: Vec<SimEntry> = ledger
                    .entries_between(&account.number, None, None)
                    .unwrap()
                    .into_iter()
                    .filter(|e| !e.visible)
                    .collect();
                assert!(!hidden.is_empty(), "every account has late entries");
                let net: i64 = hidden
                    .iter()
                    .map(|e| match e.direction {
                        Direction::Credit => e.amount_minor,
                        Direction::Debit => -e.amount_minor,
                    })
                    .sum();
                let today = ledger.today();
                // A whole sync (pages, then day balances) leaves them hidden;
                // the next session's first page reveals them.
                let page = || {
                    ledger
                        .history_page(
                            &account.number,
                            today,
                            today,
                            PagePosition::Start,
                            true,
                            false,
                        )
                        .unwrap()
                };
                page();
                ledger.day_totals(&account.number, today, today).unwrap();
                page();
                let after = ledger.account(&account.number).unwrap();
                assert_eq!(after.booked_minor, before.booked_minor + net);
                assert_eq!(after.available_minor, before.available_minor + net);
                assert!(ledger
                    .entries_between(&account.number, None, None)
                    .unwrap()
                    .iter()
                    .all(|e| e.visible));
                assert_consistent(&ledger, &account.number);
            }
        }
    }

    #[test]
    fn histories_are_deterministic_and_differ_by_seed() {
        let a = Ledger::generate_with_clock(&config("cmb", 9, 2, 1), fixed_clock());
        let b = Ledger::generate_with_clock(&config("cmb", 9, 2, 1), fixed_clock());
        let c = Ledger::generate_with_clock(&config("cmb", 10, 2, 1), fixed_clock());
        for account in a.accounts() {
            let all = |l: &Ledger| l.entries_between(&account.number, None, None).unwrap();
            assert_eq!(all(&a), all(&b));
        }
        let first = |l: &Ledger| {
            let number = l.accounts()[0].number.clone();
            l.entries_between(&number, None, None).unwrap()
        };
        assert_ne!(first(&a), first(&c));
    }

    #[test]
    fn adjust_and_added_entries_keep_the_history_consistent() {
        let ledger = Ledger::generate_with_clock(&config("cmb", 2, 2, 0), fixed_clock());
        let number = ledger.accounts()[0].number.clone();
        ledger.adjust(&number, -12_345).unwrap();
        let last = ledger
            .entries_between(&number, None, None)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(last.remittance, ADJUSTMENT_REMITTANCE);
        assert_eq!(last.amount_minor, 12_345);
        assert_eq!(last.direction, Direction::Debit);
        assert_consistent(&ledger, &number);

        let pending = ledger
            .add_entry(
                &number,
                NewSimEntry::booked(Direction::Credit, 500).pending(),
            )
            .unwrap();
        assert_eq!(pending.balance_after_minor, None);
        assert_consistent(&ledger, &number);
        let booked = ledger.book_pending(&number, &pending.serial).unwrap();
        assert_eq!(booked.status, EntryStatus::Booked);
        assert_eq!(booked.serial, pending.serial);
        assert_eq!(
            booked.balance_after_minor,
            Some(ledger.account(&number).unwrap().booked_minor)
        );
        assert_consistent(&ledger, &number);
    }

    #[test]
    fn an_iso_bank_has_valid_ibans_eur_first_and_takes_latin_text() {
        let cfg = SimBankConfig::iso20022_demo("euro", 4);
        let ledger = Ledger::generate_with_clock(&cfg, fixed_clock());
        let accounts = ledger.accounts();
        assert_eq!(accounts.len(), 5);
        assert!(ledger.is_iso20022());
        let currencies: Vec<Currency> = accounts.iter().map(|a| a.currency).collect();
        assert_eq!(
            currencies,
            vec![
                Currency::EUR,
                Currency::EUR,
                Currency::EUR,
                Currency::USD,
                Currency::USD
            ]
        );
        for account in &accounts {
            let iban = domain::Iban::parse(&account.number).unwrap();
            assert_eq!(iban.as_str(), account.number);
            assert!(account.number.starts_with("DE") && account.number.len() == 22);
            assert!(account.name.is_ascii() || account.name.contains(['ü', 'ö', 'ä']));
        }
        assert_eq!(
            Ledger::generate_with_clock(&cfg, fixed_clock()).accounts(),
            accounts
        );
        let number = &accounts[0].number;
        let mut entry = NewSimEntry::booked(Direction::Credit, 100);
        entry.counterparty_name = Some("Søren Ødegård Straße AS".to_string());
        entry.remittance = Some("x".repeat(MAX_ISO_ENTRY_TEXT_CHARS));
        ledger.add_entry(number, entry).unwrap();
        let mut too_long = NewSimEntry::booked(Direction::Credit, 100);
        too_long.remittance = Some("x".repeat(MAX_ISO_ENTRY_TEXT_CHARS + 1));
        assert!(ledger.add_entry(number, too_long).is_err());
        ledger.adjust(number, 1).unwrap();
        let last = ledger
            .entries_between(number, None, None)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(last.remittance, ISO_ADJUSTMENT_REMITTANCE);
        assert_consistent(&ledger, number);
    }

    #[test]
    fn cn_xml_ledgers_take_eur_accounts_after_usd() {
        let mut cfg = config("cmb", 7, 2, 1);
        let before = Ledger::generate(&cfg).accounts();
        cfg.eur_accounts = 2;
        let after = Ledger::generate(&cfg).accounts();
        assert_eq!(after[..3], before[..]);
        assert_eq!(after.len(), 5);
        assert!(after[3..].iter().all(|a| a.currency == Currency::EUR));
    }

    #[test]
    fn oversized_counts_are_capped() {
        let ledger = Ledger::generate(&config("cmb", 3, MAX_ACCOUNTS_PER_CURRENCY + 1, 0));
        assert_eq!(ledger.accounts().len(), MAX_ACCOUNTS_PER_CURRENCY);
    }
}
