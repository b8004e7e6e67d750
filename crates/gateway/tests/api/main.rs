//! End-to-end tests of the gateway API: the real app on 127.0.0.1:0, real
//! simulated banks on loopback, tokens over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod accounts;
mod approvals;
mod auth;
mod bad_input;
mod balances;
mod batches;
mod dispatch;
mod exchanges;
mod hardening;
mod ops;
mod payments;
mod resolutions;
mod tls;
mod totp;
mod transactions;
mod webhooks;
