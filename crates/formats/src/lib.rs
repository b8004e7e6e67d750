//! Every wire codec bankdirect speaks, pure and fuzzable.
//!
//! Bytes in, typed messages out, and back again. Nothing in this crate does IO,
//! spawns tasks or knows about transports, so every parser can be fed arbitrary
//! bytes by a property test or a fuzzer (see `fuzz/` at the workspace root).
//!
//! Layout, one module per format family:
//!
//! - [`cn_xml`]: the GBK XML packets of the `cn-xml` bank family (a front
//!   machine answering one XML packet per HTTP POST). [`cn_xml::encode`] and
//!   [`cn_xml::decode`] handle the generic packet; [`cn_xml::messages`] holds
//!   the typed requests and responses per function.
//! - [`iso20022`]: ISO 20022 host-to-host messages in UTF-8 XML:
//!   [`iso20022::pain001`] (credit transfer initiation, .09 and .03, render
//!   and parse), [`iso20022::pain002`] (status reports, .03 and .12),
//!   [`iso20022::camt052`], [`iso20022::camt053`] and [`iso20022::camt054`]
//!   (reports, statements and notifications, streamed entry by entry, and
//!   render).
//!
//! Codecs keep the bank's text as text: turning "1234.5000" into money or
//! "20240131" into a date depends on the bank's quirks and is the connector's
//! job (the `banks` crate), not the codec's.

pub mod cn_xml;
pub mod iso20022;

#[cfg(test)]
mod hostile_xml_tests;
