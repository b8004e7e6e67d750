//! The payment state machine against DESIGN.md's drawing, transcribed here
//! independently of `domain::TRANSITIONS`; the cancel, resend and review
//! guards; business references; creditor and remittance intake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::{
    can_cancel, cancel, escalate_to_review, generate_business_reference, generate_request_serial,
    may_resend, requeue_after_none, review_due, transition, BankReference, Bic, CancelRefusal,
    CnapsCode, Creditor, CreditorType, PaymentStatus, RandomSource, ReferenceAlphabet,
    ReferencePolicy, Remittance, SeededRandom, TransitionCause, TransitionError,
    MAX_BANK_REFERENCE_LEN, MIN_REFERENCE_RANDOM_BITS, REFERENCE_RANDOM_BITS_WITH_TIME,
    REFERENCE_TIME_TICK_MS, REQUEST_SERIAL_LEN, TRANSITIONS,
};
use proptest::prelude::*;

use PaymentStatus as S;
use TransitionCause as C;

/// DESIGN.md's drawing, written out again by hand: (from, to, cause,
/// guarded). Guarded rows go through their own function, not `transition`.
const DRAWING: &[(PaymentStatus, PaymentStatus, TransitionCause, bool)] = &[
    (S::Received, S::PendingApproval, C::ApprovalRequired, false),
    (S::Received, S::Queued, C::NoApprovalNeeded, false),
    (S::Received, S::Cancelled, C::CancelledByClient, false),
    (S::PendingApproval, S::Approved, C::ApprovalGranted, false),
    (S::PendingApproval, S::Declined, C::Declined, false),
    (
        S::PendingApproval,
        S::Cancelled,
        C::CancelledByClient,
        false,
    ),
    (S::Approved, S::Queued, C::Released, false),
    (S::Approved, S::Cancelled, C::CancelledByClient, false),
    (S::Queued, S::Submitting, C::Dispatched, false),
    (S::Queued, S::Cancelled, C::CancelledByClient, true),
    (S::Submitting, S::Accepted, C::BankAccepted, false),
    (S::Submitting, S::Failed, C::BankRejected, false),
    (S::Submitting, S::Queued, C::NotProcessed, false),
    (S::Submitting, S::Unknown, C::OutcomeUnknown, false),
    (S::Submitting, S::Unknown, C::LeaseExpired, false),
    (S::Accepted, S::Settled, C::BankSettled, false),
    (S::Accepted, S::Failed, C::BankRejected, false),
    (S::Settled, S::Returned, C::BankReturned, false),
    (S::Unknown, S::Accepted, C::StatusQueryAnswered, false),
    (S::Unknown, S::Failed, C::StatusQueryAnswered, false),
    (S::Unknown, S::Queued, C::BankSaysNone, true),
    (S::Unknown, S::NeedsReview, C::MaxAgeExceeded, true),
    (S::NeedsReview, S::Accepted, C::OperatorDecision, false),
    (S::NeedsReview, S::Failed, C::OperatorDecision, false),
    (S::NeedsReview, S::Queued, C::OperatorDecision, false),
];

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn drawn(from: PaymentStatus, to: PaymentStatus) -> bool {
    DRAWING.iter().any(|(f, t, _, _)| *f == from && *t == to)
}

// ---------------------------------------------------------------------------
// The whole table

#[test]
fn every_pair_of_statuses_is_legal_exactly_when_drawn() {
    let mut checked = 0;
    for from in PaymentStatus::ALL {
        for to in PaymentStatus::ALL {
            assert_eq!(
                from.can_transition_to(to),
                drawn(from, to),
                "{from} -> {to}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 13 * 13);
}

#[test]
fn every_status_pair_and_cause_is_accepted_exactly_on_an_unguarded_row() {
    for from in PaymentStatus::ALL {
        for to in PaymentStatus::ALL {
            for cause in TransitionCause::ALL {
                let row = DRAWING
                    .iter()
                    .find(|(f, t, c, _)| *f == from && *t == to && *c == cause);
                let result = transition(from, to, cause);
                match row {
                    Some((_, _, _, false)) => {
                        let moved = result.unwrap();
                        assert_eq!((moved.from(), moved.to(), moved.cause()), (from, to, cause));
                    }
                    Some((_, _, _, true)) => assert!(
                        matches!(result, Err(TransitionError::GuardNotChecked { .. })),
                        "{from} -> {to} ({cause}): {result:?}"
                    ),
                    None if drawn(from, to) => assert!(
                        matches!(result, Err(TransitionError::WrongCause { .. })),
                        "{from} -> {to} ({cause}): {result:?}"
                    ),
                    None => assert_eq!(
                        result,
                        Err(TransitionError::NoSuchArrow { from, to }),
                        "{from} -> {to} ({cause})"
                    ),
                }
            }
        }
    }
}

#[test]
fn the_table_has_exactly_the_drawn_rows() {
    let table: HashSet<_> = TRANSITIONS
        .iter()
        .map(|(f, t, c, _)| (*f, *t, *c))
        .collect();
    let drawing: HashSet<_> = DRAWING.iter().map(|(f, t, c, _)| (*f, *t, *c)).collect();
    assert_eq!(table, drawing);
    assert_eq!(TRANSITIONS.len(), DRAWING.len(), "a row appears twice");
}

#[test]
fn final_statuses_are_settled_returned_failed_declined_cancelled() {
    let finals: Vec<_> = PaymentStatus::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .collect();
    assert_eq!(
        finals,
        [
            S::Declined,
            S::Settled,
            S::Returned,
            S::Failed,
            S::Cancelled
        ]
    );
    // Only settled leaves finality, and only towards returned.
    for status in finals {
        let next = status.next_statuses();
        if status == S::Settled {
            assert_eq!(next, [S::Returned]);
        } else {
            assert!(next.is_empty(), "{status} -> {next:?}");
        }
    }
}

#[test]
fn statuses_and_causes_round_trip_through_text_and_serde() {
    for status in PaymentStatus::ALL {
        assert_eq!(PaymentStatus::parse(status.as_str()), Ok(status));
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(json, format!("\"{}\"", status.as_str()));
        assert_eq!(
            serde_json::from_str::<PaymentStatus>(&json).unwrap(),
            status
        );
    }
    for cause in TransitionCause::ALL {
        assert_eq!(TransitionCause::parse(cause.as_str()), Ok(cause));
        assert_eq!(
            serde_json::to_string(&cause).unwrap(),
            format!("\"{}\"", cause.as_str())
        );
    }
    assert_eq!(S::NeedsReview.as_str(), "needs_review");
    assert_eq!(S::PendingApproval.to_string(), "pending_approval");
    for bad in ["", "Settled", "settled ", "pending-approval", "paid"] {
        assert_eq!(
            PaymentStatus::parse(bad).unwrap_err().code(),
            "invalid_identifier"
        );
    }
    assert!(TransitionCause::parse("BankAccepted").is_err());
}

#[test]
fn errors_name_what_is_allowed_instead() {
    let err = transition(S::Settled, S::Failed, C::BankRejected).unwrap_err();
    assert_eq!(err.code(), "illegal_transition");
    assert_eq!(
        err.to_string(),
        "a payment cannot move from settled to failed; from settled it may move to returned"
    );
    let err = transition(S::Failed, S::Queued, C::OperatorDecision).unwrap_err();
    assert!(err.to_string().ends_with("nothing (it is final)"), "{err}");
    let err = transition(S::Unknown, S::Accepted, C::BankAccepted).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cause bank_accepted does not move a payment from unknown to accepted; expected status_query_answered"
    );
    let err = transition(S::Queued, S::Cancelled, C::CancelledByClient).unwrap_err();
    assert!(err.to_string().contains("payment::cancel"), "{err}");
}

// ---------------------------------------------------------------------------
// One named test per row of the drawing

fn legal(from: PaymentStatus, to: PaymentStatus, cause: TransitionCause) {
    let moved = transition(from, to, cause).unwrap();
    assert_eq!(moved.to(), to);
}

#[test]
fn received_to_pending_approval_when_approval_is_required() {
    legal(S::Received, S::PendingApproval, C::ApprovalRequired);
}

#[test]
fn received_to_queued_when_no_approval_is_needed() {
    legal(S::Received, S::Queued, C::NoApprovalNeeded);
    assert!(transition(S::Received, S::Queued, C::ApprovalGranted).is_err());
}

#[test]
fn pending_approval_to_approved_when_granted() {
    legal(S::PendingApproval, S::Approved, C::ApprovalGranted);
}

#[test]
fn pending_approval_to_declined_when_the_approver_says_no() {
    legal(S::PendingApproval, S::Declined, C::Declined);
}

#[test]
fn approved_to_queued_when_released() {
    legal(S::Approved, S::Queued, C::Released);
}

#[test]
fn queued_to_submitting_when_dispatched_and_that_marks_it_sent() {
    let moved = transition(S::Queued, S::Submitting, C::Dispatched).unwrap();
    assert!(moved.sets_ever_sent());
    assert!(!transition(S::Submitting, S::Queued, C::NotProcessed)
        .unwrap()
        .sets_ever_sent());
}

#[test]
fn submitting_to_accepted_when_the_bank_accepts() {
    legal(S::Submitting, S::Accepted, C::BankAccepted);
}

#[test]
fn submitting_to_failed_on_the_banks_definitive_rejection() {
    legal(S::Submitting, S::Failed, C::BankRejected);
    assert!(transition(S::Submitting, S::Failed, C::OutcomeUnknown).is_err());
}

#[test]
fn submitting_to_queued_when_nothing_left_the_host() {
    legal(S::Submitting, S::Queued, C::NotProcessed);
    assert!(transition(S::Submitting, S::Queued, C::OutcomeUnknown).is_err());
}

#[test]
fn submitting_to_unknown_on_an_unknown_outcome_or_an_expired_lease() {
    legal(S::Submitting, S::Unknown, C::OutcomeUnknown);
    legal(S::Submitting, S::Unknown, C::LeaseExpired);
}

#[test]
fn submitting_never_jumps_to_settled() {
    assert_eq!(
        transition(S::Submitting, S::Settled, C::BankSettled),
        Err(TransitionError::NoSuchArrow {
            from: S::Submitting,
            to: S::Settled
        })
    );
}

#[test]
fn accepted_to_settled_when_the_bank_settles() {
    legal(S::Accepted, S::Settled, C::BankSettled);
}

#[test]
fn accepted_to_failed_when_the_bank_rejects_later() {
    legal(S::Accepted, S::Failed, C::BankRejected);
}

#[test]
fn settled_to_returned_on_a_return() {
    legal(S::Settled, S::Returned, C::BankReturned);
}

#[test]
fn a_returned_status_answer_walks_through_settled() {
    let path = [
        (S::Unknown, S::Accepted, C::StatusQueryAnswered),
        (S::Accepted, S::Settled, C::BankSettled),
        (S::Settled, S::Returned, C::BankReturned),
    ];
    for (from, to, cause) in path {
        legal(from, to, cause);
    }
    assert!(!S::Accepted.can_transition_to(S::Returned));
    assert!(!S::Unknown.can_transition_to(S::Returned));
}

#[test]
fn unknown_to_accepted_or_failed_when_the_status_query_answers() {
    legal(S::Unknown, S::Accepted, C::StatusQueryAnswered);
    legal(S::Unknown, S::Failed, C::StatusQueryAnswered);
    assert!(transition(S::Unknown, S::Submitting, C::Dispatched).is_err());
}

#[test]
fn needs_review_to_accepted_failed_or_queued_by_an_operator() {
    legal(S::NeedsReview, S::Accepted, C::OperatorDecision);
    legal(S::NeedsReview, S::Failed, C::OperatorDecision);
    legal(S::NeedsReview, S::Queued, C::OperatorDecision);
    assert!(transition(S::NeedsReview, S::Queued, C::BankSaysNone).is_err());
    assert!(transition(S::NeedsReview, S::Cancelled, C::OperatorDecision).is_err());
}

// ---------------------------------------------------------------------------
// Cancel

#[test]
fn cancel_works_before_any_send() {
    for status in [S::Received, S::PendingApproval, S::Approved, S::Queued] {
        assert_eq!(can_cancel(status, false), Ok(()), "{status}");
        let moved = cancel(status, false).unwrap();
        assert_eq!((moved.from(), moved.to()), (status, S::Cancelled));
        assert_eq!(moved.cause(), C::CancelledByClient);
    }
}

#[test]
fn cancel_is_refused_once_sent_even_when_queued_again() {
    let refusal = cancel(S::Queued, true).unwrap_err();
    assert_eq!(
        refusal,
        CancelRefusal::MayHaveReachedBank { status: S::Queued }
    );
    assert_eq!(refusal.code(), "payment_may_have_reached_bank");
    assert!(refusal
        .to_string()
        .starts_with("the payment may already have reached the bank"));
    // The flag wins even where the status alone would allow a cancel.
    assert!(cancel(S::Received, true).is_err());
}

#[test]
fn cancel_is_refused_while_the_bank_may_have_it() {
    for status in [S::Submitting, S::Accepted, S::Unknown, S::NeedsReview] {
        for ever_sent in [false, true] {
            assert_eq!(
                cancel(status, ever_sent),
                Err(CancelRefusal::MayHaveReachedBank { status }),
                "{status}"
            );
        }
    }
}

#[test]
fn cancel_is_refused_for_final_payments() {
    for status in PaymentStatus::ALL.into_iter().filter(|s| s.is_final()) {
        let refusal = can_cancel(status, false).unwrap_err();
        assert_eq!(refusal, CancelRefusal::AlreadyFinal { status });
        assert_eq!(refusal.code(), "payment_already_final");
    }
}

// ---------------------------------------------------------------------------
// Resend after "none", review after the maximum age

#[test]
fn resend_needs_the_minimum_age_since_the_last_send() {
    let min_age = Duration::minutes(10);
    assert!(!may_resend(t(599), t(0), min_age));
    assert!(may_resend(t(600), t(0), min_age));
    assert!(may_resend(t(3_600), t(0), min_age));
    // An answer from before the send says nothing about it.
    assert!(!may_resend(t(0), t(600), Duration::zero()));
    // A negative minimum age is a misconfiguration, not "resend at once".
    assert!(!may_resend(t(600), t(0), Duration::seconds(-1)));
}

#[test]
fn unknown_to_queued_only_after_none_and_the_minimum_age() {
    let min_age = Duration::minutes(10);
    let moved = requeue_after_none(S::Unknown, t(900), Some(t(0)), min_age).unwrap();
    assert_eq!((moved.to(), moved.cause()), (S::Queued, C::BankSaysNone));
    assert_eq!(
        requeue_after_none(S::Unknown, t(300), Some(t(0)), min_age),
        Err(TransitionError::ResendTooEarly {
            age_s: 300,
            min_age_s: 600
        })
    );
    assert_eq!(
        requeue_after_none(S::Unknown, t(900), None, min_age),
        Err(TransitionError::NeverSent {
            cause: C::BankSaysNone
        })
    );
    // Only from unknown.
    for from in PaymentStatus::ALL.into_iter().filter(|s| *s != S::Unknown) {
        assert!(
            requeue_after_none(from, t(900), Some(t(0)), min_age).is_err(),
            "{from}"
        );
    }
}

#[test]
fn unknown_to_needs_review_after_the_maximum_age_since_the_first_send() {
    let max_age = Duration::hours(24);
    assert!(!review_due(t(86_399), t(0), max_age));
    assert!(review_due(t(86_400), t(0), max_age));
    let moved = escalate_to_review(S::Unknown, t(86_400), Some(t(0)), max_age).unwrap();
    assert_eq!(
        (moved.to(), moved.cause()),
        (S::NeedsReview, C::MaxAgeExceeded)
    );
    assert_eq!(
        escalate_to_review(S::Unknown, t(3_600), Some(t(0)), max_age),
        Err(TransitionError::ReviewNotDue {
            age_s: 3_600,
            max_age_s: 86_400
        })
    );
    assert!(escalate_to_review(S::Unknown, t(86_400), None, max_age).is_err());
    for from in PaymentStatus::ALL.into_iter().filter(|s| *s != S::Unknown) {
        assert!(
            escalate_to_review(from, t(86_400), Some(t(0)), max_age).is_err(),
            "{from}"
        );
    }
}

// ---------------------------------------------------------------------------
// References

/// The instant references are made at in these tests.
fn made_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 9, 30, 0).unwrap()
}

fn policy(max_len: usize, alphabet: ReferenceAlphabet, prefix: &str) -> ReferencePolicy {
    ReferencePolicy {
        max_len,
        alphabet,
        prefix: prefix.to_owned(),
    }
}

fn alphabet() -> impl Strategy<Value = ReferenceAlphabet> {
    prop_oneof![
        Just(ReferenceAlphabet::UpperAlnum),
        Just(ReferenceAlphabet::Alnum),
        Just(ReferenceAlphabet::Digits),
    ]
}

fn in_alphabet(text: &str, alphabet: ReferenceAlphabet) -> bool {
    text.chars().all(|ch| match alphabet {
        ReferenceAlphabet::UpperAlnum => ch.is_ascii_digit() || ch.is_ascii_uppercase(),
        ReferenceAlphabet::Alnum => ch.is_ascii_alphanumeric(),
        ReferenceAlphabet::Digits => ch.is_ascii_digit(),
    })
}

proptest! {
    #[test]
    fn references_fit_any_policy_that_is_accepted(
        max_len in 1usize..80,
        alphabet in alphabet(),
        prefix in "[0-9A-Za-z]{0,8}",
        install_id in "[ -~]{1,40}",
        seed in any::<u64>(),
    ) {
        let policy = policy(max_len, alphabet, &prefix);
        let rng = SeededRandom::new(seed);
        match generate_business_reference(&install_id, made_at(), &rng, &policy) {
            Ok(reference) => {
                let text = reference.as_str();
                prop_assert!(policy.validate().is_ok());
                prop_assert!(policy.check(&reference).is_ok());
                prop_assert_eq!(BankReference::parse(text), Ok(reference.clone()));
                prop_assert!(text.starts_with(&prefix));
                prop_assert!(in_alphabet(text, alphabet));
                prop_assert_eq!(text.len(), max_len.min(MAX_BANK_REFERENCE_LEN));
                prop_assert!(policy.random_bits() >= MIN_REFERENCE_RANDOM_BITS);
                // The full length is used, so 64 bits whenever it allows them.
                // Tag lengths and characters needed for 64 bits, worked out
                // by hand: 36^13, 62^11 and 10^20 all exceed 2^64.
                let (tag_len, chars_for_64) = match alphabet {
                    ReferenceAlphabet::UpperAlnum => (4, 13),
                    ReferenceAlphabet::Alnum => (4, 11),
                    ReferenceAlphabet::Digits => (6, 20),
                };
                let room = max_len.min(MAX_BANK_REFERENCE_LEN) - prefix.len();
                if room >= tag_len + chars_for_64 {
                    prop_assert!(policy.random_bits() >= 64, "{:?}", policy);
                }
            }
            Err(err) => {
                prop_assert_eq!(err.code(), "invalid_identifier");
                prop_assert!(
                    !in_alphabet(&prefix, alphabet) || policy.random_bits() < MIN_REFERENCE_RANDOM_BITS,
                    "refused a usable policy {:?}: {}", policy, err
                );
            }
        }
    }

    #[test]
    fn different_installs_get_different_tags(
        a in "[a-z0-9-]{1,36}",
        b in "[a-z0-9-]{1,36}",
        seed in any::<u64>(),
    ) {
        prop_assume!(a != b);
        let policy = policy(35, ReferenceAlphabet::UpperAlnum, "BD");
        // The same random bytes for both, so only the tag can differ.
        let ra = generate_business_reference(&a, made_at(), &SeededRandom::new(seed), &policy).unwrap();
        let rb = generate_business_reference(&b, made_at(), &SeededRandom::new(seed), &policy).unwrap();
        // 4 characters of 36: two given installs share a tag with
        // probability 36^-4, under one in a million.
        prop_assert_ne!(&ra.as_str()[2..6], &rb.as_str()[2..6]);
        prop_assert_eq!(&ra.as_str()[6..], &rb.as_str()[6..]);
    }
}

#[test]
fn the_install_tag_is_stable_for_one_install() {
    let policy = policy(20, ReferenceAlphabet::Digits, "");
    let first =
        generate_business_reference("prod-sh-01", made_at(), &SeededRandom::new(1), &policy)
            .unwrap();
    let second =
        generate_business_reference("prod-sh-01", made_at(), &SeededRandom::new(2), &policy)
            .unwrap();
    assert_eq!(&first.as_str()[..6], &second.as_str()[..6]);
    assert_ne!(first, second);
}

#[test]
fn no_collisions_in_100k_references() {
    let policy = policy(20, ReferenceAlphabet::UpperAlnum, "BD");
    assert!(policy.random_bits() >= 64);
    let rng = SeededRandom::new(20_261_128);
    let mut seen = HashSet::with_capacity(100_000);
    for _ in 0..100_000 {
        let reference = generate_business_reference("install-a", made_at(), &rng, &policy).unwrap();
        assert!(seen.insert(reference.clone()), "collision: {reference}");
    }
}

#[test]
fn references_sort_by_the_time_they_were_made_when_there_is_room() {
    // The shipped default: 30 characters, "BD", upper-case alphanumerics:
    // 2 + 4 (tag) + 7 (time) + 17 random characters, 87 bits.
    let shipped = policy(30, ReferenceAlphabet::UpperAlnum, "BD");
    assert_eq!(shipped.time_len(), 7);
    assert_eq!(shipped.random_bits(), 87);
    let rng = SeededRandom::new(7);
    let mut previous: Option<BankReference> = None;
    for step in 0..200 {
        let at = made_at() + Duration::milliseconds(REFERENCE_TIME_TICK_MS * step);
        let reference = generate_business_reference("install-a", at, &rng, &shipped).unwrap();
        assert_eq!(reference.as_str().len(), 30);
        if let Some(before) = &previous {
            assert!(
                before.as_str() < reference.as_str(),
                "{before} then {reference}, one tick later"
            );
        }
        previous = Some(reference);
    }
    // The time part is the tick count in base 36, most significant first.
    let at = made_at();
    let reference = generate_business_reference("install-a", at, &rng, &shipped).unwrap();
    let ticks = at.timestamp_millis() / REFERENCE_TIME_TICK_MS;
    let digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let decoded = reference.as_str()[6..13].chars().fold(0i64, |n, ch| {
        n * 36 + i64::try_from(digits.find(ch).unwrap()).unwrap()
    });
    assert_eq!(decoded, ticks % 36i64.pow(7));
    // Within one tick only the random part differs.
    let again = generate_business_reference("install-a", at, &rng, &shipped).unwrap();
    assert_eq!(&reference.as_str()[..13], &again.as_str()[..13]);
    assert_ne!(reference, again);
}

#[test]
fn a_tight_policy_keeps_every_free_character_random() {
    // 20 characters, "BD": 14 after the tag; 7 of them for time would leave
    // 36 random bits, under 64, so none are: 72 random bits as before.
    let tight = policy(20, ReferenceAlphabet::UpperAlnum, "BD");
    assert_eq!(tight.time_len(), 0);
    assert_eq!(tight.random_bits(), 72);
    let digits = policy(35, ReferenceAlphabet::Digits, "");
    // 29 digits after the tag: 11 for time leave 18 digits, 59 bits: none.
    assert_eq!(digits.time_len(), 0);
    let a = generate_business_reference("i", made_at(), &SeededRandom::new(1), &tight).unwrap();
    let b = generate_business_reference(
        "i",
        made_at() + Duration::days(400),
        &SeededRandom::new(1),
        &tight,
    )
    .unwrap();
    assert_eq!(
        a, b,
        "no time part: the same random draws make the same reference"
    );
    // Where there is room, every alphabet gets one and keeps 64 bits beside it.
    for alphabet in [
        ReferenceAlphabet::UpperAlnum,
        ReferenceAlphabet::Alnum,
        ReferenceAlphabet::Digits,
    ] {
        let roomy = policy(MAX_BANK_REFERENCE_LEN, alphabet, "");
        if roomy.time_len() > 0 {
            assert!(
                roomy.random_bits() >= REFERENCE_RANDOM_BITS_WITH_TIME,
                "{roomy:?}"
            );
        }
    }
}

#[test]
fn the_minimum_random_bits_are_enforced() {
    // 14 digits minus a 6-digit tag leave 8 digits, 26 bits.
    let tight = policy(14, ReferenceAlphabet::Digits, "");
    let err =
        generate_business_reference("i", made_at(), &SeededRandom::new(1), &tight).unwrap_err();
    assert!(
        err.to_string().contains("expected at least 40 bits"),
        "{err}"
    );
    // 6 + 13 digits: 13 × 3.32 = 43 bits.
    let enough = policy(19, ReferenceAlphabet::Digits, "");
    assert_eq!(enough.random_bits(), 43);
    assert!(generate_business_reference("i", made_at(), &SeededRandom::new(1), &enough).is_ok());
    // A long prefix eats the room.
    let crowded = policy(16, ReferenceAlphabet::UpperAlnum, "PAYMENTS");
    assert!(crowded.validate().is_err());
}

#[test]
fn bad_prefixes_and_install_ids_are_refused() {
    let rng = SeededRandom::new(1);
    for (prefix, alphabet) in [
        ("bd", ReferenceAlphabet::UpperAlnum),
        ("BD-", ReferenceAlphabet::UpperAlnum),
        ("A1", ReferenceAlphabet::Digits),
        ("参考", ReferenceAlphabet::Alnum),
    ] {
        let err = generate_business_reference("i", made_at(), &rng, &policy(35, alphabet, prefix))
            .unwrap_err();
        assert!(err.to_string().contains("prefix character"), "{err}");
    }
    let fine = policy(35, ReferenceAlphabet::UpperAlnum, "BD");
    assert!(generate_business_reference("", made_at(), &rng, &fine).is_err());
    assert!(generate_business_reference("   ", made_at(), &rng, &fine).is_err());
    assert!(generate_business_reference(&"i".repeat(257), made_at(), &rng, &fine).is_err());
    assert!(generate_business_reference(&"i".repeat(256), made_at(), &rng, &fine).is_ok());
}

#[test]
fn a_policy_checks_references_it_did_not_make() {
    let policy = policy(16, ReferenceAlphabet::UpperAlnum, "BD");
    assert!(policy
        .check(&BankReference::parse("BDAB12").unwrap())
        .is_ok());
    for text in ["XXAB12", "BDab12", "BD-AB12", "BD12345678901234X"] {
        assert!(
            policy.check(&BankReference::parse(text).unwrap()).is_err(),
            "{text}"
        );
    }
}

#[test]
fn request_serials_are_fresh_and_shaped_like_the_connectors_expect() {
    let rng = SeededRandom::new(5);
    let first = generate_request_serial(&rng);
    let second = generate_request_serial(&rng);
    assert_ne!(first, second);
    for serial in [&first, &second] {
        assert_eq!(serial.len(), REQUEST_SERIAL_LEN);
        assert!(serial.starts_with('R'));
        assert!(serial[1..]
            .chars()
            .all(|ch| ch.is_ascii_digit() || ('A'..='F').contains(&ch)));
    }
    #[derive(Debug)]
    struct Zeros;
    impl RandomSource for Zeros {
        fn fill_bytes(&self, buf: &mut [u8]) {
            buf.fill(0);
        }
    }
    assert_eq!(generate_request_serial(&Zeros), "R0000000000000000");
}

// ---------------------------------------------------------------------------
// Intake

fn cnaps() -> Option<CnapsCode> {
    Some(CnapsCode::parse("308584000013").unwrap())
}

#[test]
fn creditors_are_trimmed_and_accounts_lose_their_spaces() {
    let creditor = Creditor::new(
        "  上海某某贸易有限公司 ",
        "6214 8301 2345 6789",
        cnaps(),
        None,
        Some(" 招商银行上海分行 "),
        CreditorType::Corporate,
    )
    .unwrap();
    assert_eq!(creditor.name(), "上海某某贸易有限公司");
    assert_eq!(creditor.account(), "6214830123456789");
    assert_eq!(creditor.bank_name(), Some("招商银行上海分行"));
    assert_eq!(creditor.kind(), CreditorType::Corporate);
    assert_eq!(creditor.masked_account(), "************6789");
    let debug = format!("{creditor:?}");
    assert!(!debug.contains("62148301"), "{debug}");
}

#[test]
fn a_creditor_needs_a_bank_code_or_a_bic() {
    let bic = Some(Bic::parse("CMBCCNBS").unwrap());
    let make = |code, bic| {
        Creditor::new(
            "Li Lei",
            "62148301",
            code,
            bic,
            None,
            CreditorType::Personal,
        )
    };
    assert!(make(cnaps(), None).is_ok());
    assert!(make(None, bic.clone()).is_ok());
    assert!(make(cnaps(), bic).is_ok());
    let err = make(None, None).unwrap_err();
    assert!(
        err.to_string().contains("bank_code (CNAPS) nor bic"),
        "{err}"
    );
}

#[test]
fn creditor_names_are_checked() {
    let make = |name: &str| Creditor::new(name, "1", cnaps(), None, None, CreditorType::Personal);
    assert!(make(&"名".repeat(200)).is_ok());
    for bad in [
        String::new(),
        "   ".to_owned(),
        "名".repeat(201),
        "Li\nLei".to_owned(),
        "Li\u{0}Lei".to_owned(),
        "Li\u{202E}ieL".to_owned(),
    ] {
        let err = make(&bad).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid creditor name"),
            "{err}"
        );
    }
    let bank_name = Creditor::new("Li", "1", cnaps(), None, Some(""), CreditorType::Personal);
    assert!(bank_name
        .unwrap_err()
        .to_string()
        .contains("creditor bank name"));
}

#[test]
fn creditor_accounts_are_checked_without_showing_them() {
    let make =
        |account: &str| Creditor::new("Li", account, cnaps(), None, None, CreditorType::Personal);
    assert_eq!(make("GB-12 34").unwrap().account(), "GB-1234");
    assert!(make(&"1".repeat(64)).is_ok());
    for bad in [
        "",
        "    ",
        &"1".repeat(65),
        "6214_8301",
        "62148301/9",
        "６２１４８３０１",
    ] {
        let err = make(bad).unwrap_err();
        assert_eq!(err.code(), "invalid_account_number", "{bad:?}");
        assert!(!err.to_string().contains("8301"), "{err}");
    }
}

#[test]
fn creditors_deserialize_from_the_api_shape() {
    let json =
        r#"{"name":" ACME ","account":"6214 8301","bank_code":"308584000013","type":"corporate"}"#;
    let creditor: Creditor = serde_json::from_str(json).unwrap();
    assert_eq!(creditor.name(), "ACME");
    assert_eq!(creditor.account(), "62148301");
    let back = serde_json::to_value(&creditor).unwrap();
    assert_eq!(back["type"], "corporate");
    assert_eq!(back["account"], "62148301");
    assert!(back.get("bic").is_none());
    for bad in [
        r#"{"name":"ACME","account":"1","type":"corporate"}"#,
        r#"{"name":"","account":"1","bank_code":"308584000013","type":"corporate"}"#,
        r#"{"name":"A","account":"1","bank_code":"308584000013","type":"company"}"#,
        r#"{"name":"A","account":"1","bic":"CMBCCNBS","type":"personal","iban":"x"}"#,
    ] {
        assert!(serde_json::from_str::<Creditor>(bad).is_err(), "{bad}");
    }
}

#[test]
fn remittance_is_short_text_without_control_characters() {
    assert_eq!(
        Remittance::parse(" 货款 INV-42 ").unwrap().as_str(),
        "货款 INV-42"
    );
    assert!(Remittance::parse(&"货".repeat(140)).is_ok());
    for bad in [
        String::new(),
        " ".to_owned(),
        "货".repeat(141),
        "a\tb".to_owned(),
        "a\u{7f}".to_owned(),
    ] {
        let err = Remittance::parse(&bad).unwrap_err();
        assert!(err.to_string().starts_with("invalid remittance"), "{err}");
    }
    assert!(serde_json::from_str::<Remittance>("\"a\\u0000b\"").is_err());
}
