//! Injected time and randomness.
//!
//! Nothing in bankdirect reads the system clock or the OS random generator
//! directly: it is handed a [`Clock`] and a [`RandomSource`]. Production uses
//! [`SystemClock`] and [`OsRandom`]; tests and fault runs use [`ManualClock`]
//! and [`SeededRandom`], so a failing run can be replayed from its printed
//! seed.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The current instant.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to. Clones share the same time, so a
/// test can keep one handle and give another to the code under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.lock() = t;
    }

    /// Moves the clock by `d` (backwards if negative), saturating at the
    /// limits of `DateTime<Utc>`.
    pub fn advance(&self, d: chrono::Duration) {
        let mut now = self.lock();
        *now = now
            .checked_add_signed(d)
            .unwrap_or(if d < chrono::Duration::zero() {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            });
    }

    /// A panic elsewhere while holding the lock cannot leave a half-written
    /// `DateTime` (it is `Copy`), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

/// Random bytes. `&self` so that one source can be shared by workers.
pub trait RandomSource: Send + Sync + fmt::Debug {
    fn fill_bytes(&self, buf: &mut [u8]);

    /// Eight bytes of [`RandomSource::fill_bytes`], little-endian.
    fn next_u64(&self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }
}

impl<R: RandomSource + ?Sized> RandomSource for Arc<R> {
    fn fill_bytes(&self, buf: &mut [u8]) {
        (**self).fill_bytes(buf);
    }

    fn next_u64(&self) -> u64 {
        (**self).next_u64()
    }
}

/// The operating system's generator (`getrandom`). If the OS cannot supply
/// entropy it panics rather than hand out predictable bytes for ids and keys.
#[derive(Debug, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill_bytes(&self, buf: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(buf);
    }
}

/// rand's thread-local generator: a ChaCha12 CSPRNG per thread, seeded from
/// the operating system and reseeded from it periodically. For the ids and
/// references made on every request (payment ids, business references):
/// unpredictable like [`OsRandom`], without a `getrandom` system call each.
/// Keys and secrets keep [`OsRandom`].
#[derive(Debug, Default)]
pub struct ThreadRandom;

impl RandomSource for ThreadRandom {
    fn fill_bytes(&self, buf: &mut [u8]) {
        rand::thread_rng().fill_bytes(buf);
    }
}

/// A reproducible generator: ChaCha20 seeded from a `u64`. The same seed
/// gives the same bytes on every platform and rand_chacha 0.3 release.
pub struct SeededRandom {
    rng: Mutex<ChaCha20Rng>,
    seed: u64,
}

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom {
            rng: Mutex::new(ChaCha20Rng::seed_from_u64(seed)),
            seed,
        }
    }

    /// The seed, to print when a seeded run fails.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// Shows the seed only: the generator's state is noise in a log, and the seed
/// is what reproduces a run.
impl fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeededRandom")
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl RandomSource for SeededRandom {
    fn fill_bytes(&self, buf: &mut [u8]) {
        // A panic while filling cannot corrupt ChaCha's state in a way that
        // matters here: the stream only has to stay deterministic per seed.
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fill_bytes(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap()
    }

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::new(t0());
        let handle = clock.clone();
        assert_eq!(clock.now(), t0());
        handle.advance(chrono::Duration::seconds(90));
        assert_eq!(clock.now(), t0() + chrono::Duration::seconds(90));
        handle.set(t0());
        assert_eq!(clock.now(), t0());
        handle.advance(chrono::Duration::seconds(-1));
        assert_eq!(clock.now(), t0() - chrono::Duration::seconds(1));
    }

    #[test]
    fn manual_clock_saturates() {
        let clock = ManualClock::new(DateTime::<Utc>::MAX_UTC);
        clock.advance(chrono::Duration::days(1));
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn manual_clock_survives_a_poisoned_lock() {
        let clock = ManualClock::new(t0());
        let poisoner = clock.clone();
        let joined = std::thread::spawn(move || {
            let _guard = poisoner.now.lock();
            panic!("poison the clock's lock on purpose");
        })
        .join();
        assert!(joined.is_err());
        assert!(clock.now.is_poisoned());
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(clock.now(), t0() + chrono::Duration::seconds(1));
    }

    #[test]
    fn seeded_random_is_reproducible() {
        let a = SeededRandom::new(42);
        let b = SeededRandom::new(42);
        let c = SeededRandom::new(43);
        let (xa, xb, xc) = (a.next_u64(), b.next_u64(), c.next_u64());
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        assert_eq!(a.seed(), 42);
        assert_eq!(format!("{a:?}"), "SeededRandom { seed: 42, .. }");
    }

    #[test]
    fn os_random_fills_the_buffer() {
        // 32 zero bytes from a working OS generator has probability 2^-256.
        let mut buf = [0u8; 32];
        OsRandom.fill_bytes(&mut buf);
        assert!(buf.iter().any(|b| *b != 0));
    }

    #[test]
    fn trait_objects_and_arcs_work() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t0()));
        assert_eq!(clock.now(), t0());
        let rng: Arc<dyn RandomSource> = Arc::new(SeededRandom::new(1));
        let direct = SeededRandom::new(1).next_u64();
        assert_eq!(rng.next_u64(), direct);
    }
}
