//! The conformance suite: one set of cases every bank family runs against
//! its simulator, so that no family can pass by claiming less.
//!
//! The capability list is fixed ([`rig::CAPABILITIES`]); a family either has
//! each capability and passes its cases, or names it in [`rig::Fam::lacks`]
//! with a reason that `/v1/banks` shows too. Each case runs for every family
//! in [`rig::FAMILIES`], in turn, and names the family in every assertion.
//!
//! - [`reads`]: capabilities, balances, transactions (paging, dedupe across
//!   repeated and overlapping syncs, continuity and a detected break);
//! - [`payments`]: single payment, batch payment with a partial rejection,
//!   status by reference, a reused reference answered with the original
//!   result and never executed twice;
//! - [`faults`]: every injected fault kind on a payment submission mapped
//!   to the right final state (never paid twice), and every malformed,
//!   oversized, garbled or otherwise broken answer to every read mapped to
//!   the right error kind, without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod faults;
mod payments;
mod reads;
mod rig;
