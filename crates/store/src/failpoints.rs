//! Store failpoints: a test arms one for ONE object and ONE target status, and the next
//! write that would move that object there fails with [`StoreError::Injected`] after all of
//! its rows (events included) were written and before its commit, so the whole write rolls
//! back. This is how the tests show that a change that rolls back emits nothing.
//!
//! Scoped by object id so tests running side by side in one process cannot trip each
//! other's failpoints. Unarmed, a hit is one relaxed atomic load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::StoreError;

/// In `transition_payment`, after the history row and the event.
pub const PAYMENT_TRANSITION_BEFORE_COMMIT: &str = "payment_transition_before_commit";

static ANY_ARMED: AtomicBool = AtomicBool::new(false);
/// (failpoint, object id, target status)
type Armed = HashSet<(&'static str, String, String)>;

static ARMED: OnceLock<Mutex<Armed>> = OnceLock::new();

fn armed() -> &'static Mutex<Armed> {
    ARMED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Fails the next write at `point` that moves `object_id` to `to_status`, once.
pub fn fail_once(point: &'static str, object_id: &str, to_status: &str) {
    let mut set = armed().lock().unwrap_or_else(|e| e.into_inner());
    set.insert((point, object_id.to_owned(), to_status.to_owned()));
    ANY_ARMED.store(true, Ordering::Release);
}

/// True while the failpoint is armed (not yet hit).
pub fn is_armed(point: &'static str, object_id: &str, to_status: &str) -> bool {
    let set = armed().lock().unwrap_or_else(|e| e.into_inner());
    set.contains(&(point, object_id.to_owned(), to_status.to_owned()))
}

pub(crate) fn hit(point: &'static str, object_id: &str, to_status: &str) -> Result<(), StoreError> {
    if !ANY_ARMED.load(Ordering::Acquire) {
        return Ok(());
    }
    let mut set = armed().lock().unwrap_or_else(|e| e.into_inner());
    if set.remove(&(point, object_id.to_owned(), to_status.to_owned())) {
        tracing::warn!(
            point,
            object_id,
            to_status,
            "store failpoint: failing the write"
        );
        return Err(StoreError::Injected { point });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_for_its_object_and_status_only() {
        fail_once(PAYMENT_TRANSITION_BEFORE_COMMIT, "pay_a", "cancelled");
        assert!(hit(PAYMENT_TRANSITION_BEFORE_COMMIT, "pay_b", "cancelled").is_ok());
        assert!(hit(PAYMENT_TRANSITION_BEFORE_COMMIT, "pay_a", "queued").is_ok());
        assert!(is_armed(
            PAYMENT_TRANSITION_BEFORE_COMMIT,
            "pay_a",
            "cancelled"
        ));
        assert!(matches!(
            hit(PAYMENT_TRANSITION_BEFORE_COMMIT, "pay_a", "cancelled"),
            Err(StoreError::Injected { .. })
        ));
        assert!(hit(PAYMENT_TRANSITION_BEFORE_COMMIT, "pay_a", "cancelled").is_ok());
    }
}
