//! The simulated bank's books: accounts and their balances.
//!
//! A ledger is generated from `(bank_id, seed)` alone, so a test or a demo
//! that names the same bank and seed gets the same account numbers, names and
//! balances every time (DESIGN.md: randomness is injected and replayable).
//! After generation the set of accounts is fixed; only balances move
//! ([`Ledger::adjust`]). The state sits behind one mutex that is never held
//! across an await, and a poisoned lock is recovered rather than turned into
//! a panic: the data is plain numbers that a panicking writer cannot leave
//! half-updated (booked and available are written together).
//!
//! Layout: the public types, then generation (word tables, numbering,
//! balances), then the mutation and query methods.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use domain::Currency;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::{SimBankConfig, SimError};

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
    /// Account number to position in `accounts`; fixed after generation.
    index: HashMap<String, usize>,
    accounts: Mutex<Vec<SimAccount>>,
}

/// City, four-digit branch prefix of its account numbers.
const CITIES: &[(&str, &str)] = &[
    ("深圳", "7559"),
    ("上海", "2110"),
    ("北京", "1109"),
    ("广州", "2009"),
    ("杭州", "5719"),
    ("南京", "2509"),
    ("成都", "2809"),
    ("武汉", "2709"),
];
const BRANDS: &[&str] = &[
    "华信", "恒达", "鼎盛", "瑞丰", "中科", "宏远", "金桥", "海纳", "启明", "博远", "嘉禾", "同创",
    "新航", "远景", "汇通", "天成",
];
const INDUSTRIES: &[&str] = &[
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
const COMPANY_FORMS: &[&str] = &["有限公司", "股份有限公司", "集团有限公司"];
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

fn pick<'a>(rng: &mut ChaCha20Rng, table: &[&'a str]) -> &'a str {
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
    /// Generates the ledger of `cfg`'s bank, deterministically from its
    /// `bank_id` and `seed`: CNY accounts first, then USD. Counts above
    /// [`MAX_ACCOUNTS_PER_CURRENCY`] are cut to it (and logged);
    /// [`SimBankConfig::validate`] rejects such a config up front.
    pub fn generate(cfg: &SimBankConfig) -> Ledger {
        let cny_count = capped_count(cfg.cny_accounts, "CNY");
        let usd_count = capped_count(cfg.usd_accounts, "USD");
        let mut rng = bank_rng(&cfg.bank_id, cfg.seed, "ledger");
        let number_length = ACCOUNT_NUMBER_LENGTHS[rng.gen_range(0..ACCOUNT_NUMBER_LENGTHS.len())];
        let mut accounts = generate_currency(&mut rng, Currency::CNY, cny_count, number_length, 0);
        accounts.extend(generate_currency(
            &mut rng,
            Currency::USD,
            usd_count,
            number_length,
            cny_count,
        ));
        let index = accounts
            .iter()
            .enumerate()
            .map(|(position, account)| (account.number.clone(), position))
            .collect();
        Ledger {
            bank_id: cfg.bank_id.clone(),
            index,
            accounts: Mutex::new(accounts),
        }
    }

    pub fn bank_id(&self) -> &str {
        &self.bank_id
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SimAccount>> {
        self.accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// All accounts, in generation order.
    pub fn accounts(&self) -> Vec<SimAccount> {
        self.lock().clone()
    }

    pub fn account(&self, number: &str) -> Option<SimAccount> {
        let position = *self.index.get(number)?;
        self.lock().get(position).cloned()
    }

    /// Moves booked and available balance of one account together by
    /// `delta_minor` (negative for a debit). Overdrafts are allowed; an
    /// amount that no longer fits an i64 is refused and changes nothing.
    pub fn adjust(&self, number: &str, delta_minor: i64) -> Result<(), SimError> {
        let position = *self
            .index
            .get(number)
            .ok_or_else(|| SimError::UnknownAccount {
                masked: crate::mask(number),
            })?;
        let mut accounts = self.lock();
        let account = accounts
            .get_mut(position)
            .ok_or_else(|| SimError::UnknownAccount {
                masked: crate::mask(number),
            })?;
        let overflow = || SimError::AmountOverflow {
            masked: crate::mask(number),
        };
        let booked = account
            .booked_minor
            .checked_add(delta_minor)
            .ok_or_else(overflow)?;
        let available = account
            .available_minor
            .checked_add(delta_minor)
            .ok_or_else(overflow)?;
        account.booked_minor = booked;
        account.available_minor = available;
        Ok(())
    }

    /// Per currency, in order of first appearance: the sums of booked and of
    /// available balances. i128 cannot overflow for any count of i64s this
    /// ledger can hold.
    pub fn totals(&self) -> Vec<(Currency, i128, i128)> {
        let mut totals: Vec<(Currency, i128, i128)> = Vec::new();
        for account in self.lock().iter() {
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

    #[test]
    fn oversized_counts_are_capped() {
        let ledger = Ledger::generate(&config("cmb", 3, MAX_ACCOUNTS_PER_CURRENCY + 1, 0));
        assert_eq!(ledger.accounts().len(), MAX_ACCOUNTS_PER_CURRENCY);
    }
}
