//! Payments: the instruction an enterprise gives, its state machine
//! (DESIGN.md, "Payment state machine"), and the vocabulary banks share.
//!
//! (Being extended: `PaymentStatus`, transitions, `Payment` follow.)

use serde::{Deserialize, Serialize};

/// Whom a payment goes to: a company (对公) or a person (对私). Chinese
/// banks route and check them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditorType {
    Corporate,
    Personal,
}

/// How fast the enterprise wants the money to move (加急 vs 普通).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    #[default]
    Normal,
    Urgent,
}
