//! An account balance as a bank reports it at one instant.
//!
//! Booked is what has been posted; available adds overdraft lines and
//! subtracts holds. Both may be negative (an overdraft is not an error), but
//! they are always in one currency.

use chrono::{DateTime, Utc};

use crate::error::DomainError;
use crate::money::{Currency, Money};

/// Booked and available amounts of one account, in one currency, as of an
/// instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    booked: Money,
    available: Money,
    as_of: DateTime<Utc>,
}

impl Balance {
    /// Fails with `currency_mismatch` when the two amounts differ in currency;
    /// either may be negative (overdraft).
    pub fn new(
        booked: Money,
        available: Money,
        as_of: DateTime<Utc>,
    ) -> Result<Balance, DomainError> {
        if booked.currency() != available.currency() {
            return Err(DomainError::CurrencyMismatch {
                expected: booked.currency(),
                found: available.currency(),
            });
        }
        Ok(Balance {
            booked,
            available,
            as_of,
        })
    }

    pub fn booked(&self) -> Money {
        self.booked
    }

    pub fn available(&self) -> Money {
        self.available
    }

    pub fn currency(&self) -> Currency {
        self.booked.currency()
    }

    pub fn as_of(&self) -> DateTime<Utc> {
        self.as_of
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn overdraft_is_allowed() {
        let as_of = Utc.with_ymd_and_hms(2026, 11, 28, 1, 0, 0).unwrap();
        let balance = Balance::new(
            Money::from_minor(-5_000, Currency::CNY),
            Money::from_minor(95_000, Currency::CNY),
            as_of,
        )
        .unwrap();
        assert!(balance.booked().is_negative());
        assert_eq!(balance.available().minor(), 95_000);
        assert_eq!(balance.currency(), Currency::CNY);
        assert_eq!(balance.as_of(), as_of);
    }

    #[test]
    fn currencies_must_match() {
        let err = Balance::new(
            Money::zero(Currency::CNY),
            Money::zero(Currency::USD),
            Utc.with_ymd_and_hms(2026, 11, 28, 1, 0, 0).unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "currency_mismatch");
    }
}
