//! The gateway attacked the way the OWASP API Security Top 10 (2023) sorts
//! attacks: one module per category, each against the real app on
//! 127.0.0.1:0 with simulated banks on loopback and a fresh SQLite database.
//! `secrets` plants known secrets and looks for them everywhere the gateway
//! writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod api10_unsafe_consumption;
mod api1_object_authorization;
mod api2_authentication;
mod api3_property_authorization;
mod api4_resource_consumption;
mod api5_function_authorization;
mod api6_business_flows;
mod api7_ssrf;
mod api8_misconfiguration;
mod api9_inventory;
mod secrets;
