//! The webhook worker: fans events out of the outbox into deliveries, then claims due
//! deliveries and POSTs them, signed, to their receivers.
//!
//! What it promises (docs/webhooks.md says the same to receivers):
//! - at least once: a delivery is retried until a 2xx answer, with exponential backoff and
//!   jitter (`webhooks.backoff_base_ms` doubling up to `webhooks.backoff_max_ms`), and is
//!   `dead` after `webhooks.max_attempts` failures until re-driven. A duplicate is possible
//!   (a lease that expired mid-request, a 2xx lost on the way back): receivers dedupe by
//!   the event id;
//! - per object in order: the store hands out a delivery only when no earlier delivery of
//!   the same webhook and object is pending, so a receiver sees one object's events in
//!   ascending `sequence` (a re-driven dead one may arrive after later ones: receivers drop
//!   a sequence not above the last they applied);
//! - only to whom may see it: before each send the owner's CURRENT account entitlement (the
//!   client registry, or the `[[users]]` for a webhook a person registered, as for API
//!   calls) is checked; an owner no longer entitled (or no longer configured, or a person
//!   who can no longer log in) gets nothing, and the delivery ends `skipped`;
//! - signed: `Bankdirect-Webhook-Signature: v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`
//!   with `Bankdirect-Webhook-Timestamp: <ts>` (unix seconds) and `Bankdirect-Webhook-Id`
//!   (the event id). The secret is never logged and never leaves in an error;
//! - bounded: at most `webhooks.concurrency` requests at once, each within
//!   `webhooks.request_timeout_ms`, no redirects followed, no proxy;
//! - never to a private address unless allowed (SSRF): the URL was checked as written at
//!   registration; at each delivery its host is resolved by [`CheckedResolver`], which
//!   refuses the delivery when ANY address is loopback, private, link-local, unspecified,
//!   multicast or an IPv4-mapped form of these and not allowed, and hands the HTTP client
//!   exactly the addresses it checked, so a name re-pointed between the check and the
//!   connection (DNS rebinding) cannot slip through. A refused attempt is a failed attempt
//!   whose error says why; nothing is sent.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::RandomSource;
use futures::StreamExt;
use serde_json::json;
use store::{AttemptOutcome, ClaimedDelivery, DeliveryState, FanOutReport, NewAttempt, StoreError};
use tokio::sync::{watch, Notify};

use crate::{
    auth::ClientRegistry,
    config::{UserConfig, WebhooksConfig},
    extract::{Entitlement, USER_SUBJECT_PREFIX},
};

pub const HEADER_ID: &str = "bankdirect-webhook-id";
pub const HEADER_TIMESTAMP: &str = "bankdirect-webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "bankdirect-webhook-signature";

/// The fan-out and delivery worker of this instance.
pub struct WebhookWorker {
    store: Arc<dyn store::Store>,
    clock: Arc<dyn domain::Clock>,
    clients: Arc<ClientRegistry>,
    /// People who may own webhooks (`user:<id>` owners): id → current entitlement, of the
    /// configured users who can log in.
    people: HashMap<String, Entitlement>,
    /// Opens the webhook secrets sealed in the database.
    secret_key: Arc<crypto::sealed::MasterKey>,
    settings: WebhooksConfig,
    http: reqwest::Client,
    /// This instance's name in leases.
    owner: String,
    rng: domain::OsRandom,
    /// Wakes the worker early (a re-drive).
    pub wake: Arc<Notify>,
}

/// Registered once, on first use (after the recorder is installed).
struct Metrics {
    delivered: metrics::Counter,
    retried: metrics::Counter,
    dead: metrics::Counter,
    skipped: metrics::Counter,
    refused: metrics::Counter,
    dead_letters: metrics::Counter,
    attempt_seconds: metrics::Histogram,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        delivered: metrics::counter!("webhook_deliveries_total", "outcome" => "delivered"),
        retried: metrics::counter!("webhook_deliveries_total", "outcome" => "retry"),
        dead: metrics::counter!("webhook_deliveries_total", "outcome" => "dead"),
        skipped: metrics::counter!("webhook_deliveries_total", "outcome" => "skipped"),
        refused: metrics::counter!("webhook_attempts_refused_total"),
        dead_letters: metrics::counter!("webhook_dead_letters_total"),
        attempt_seconds: metrics::histogram!("webhook_attempt_duration_seconds"),
    })
}

/// Lowercase hex of `HMAC-SHA256(secret, "<timestamp>.<body>")`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut message = Vec::with_capacity(body.len() + 21);
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    let mac = crypto::hmac_sha256(secret.as_bytes(), &message);
    let mut out = String::with_capacity(64);
    for b in mac {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 0x0f)]));
    }
    out
}

/// The JSON body of an event's delivery, as sent (and signed).
pub fn payload(event: &store::StoredEvent) -> Vec<u8> {
    json!({
        "id": event.id,
        "type": event.event_type.as_str(),
        "version": event.version,
        "object": {"type": event.object_type, "id": event.object_id},
        "sequence": event.object_seq,
        "occurred_at": crate::timefmt::rfc3339_micros(&event.occurred_at),
        "account_id": event.account_id,
        "data": event.data,
    })
    .to_string()
    .into_bytes()
}

/// How one HTTP attempt ended.
enum Sent {
    Answered(u16),
    Failed(String),
    /// Not sent: the host is or resolves to an address that is not allowed.
    Refused(String),
}

/// A host that is, or resolves to, an address a webhook may not reach.
#[derive(Debug, thiserror::Error)]
#[error("not sent: {host} is or resolves to {address}, a loopback, private, link-local or otherwise internal address; the operator must allow it (webhooks.allow_private_urls or webhooks.allowed_hosts)")]
pub struct RefusedAddress {
    host: String,
    address: IpAddr,
}

/// Whether a webhook may reach `address`, which `host` (as written in its URL) is or
/// resolves to: a public address, or one the operator allowed by the host's name, by the
/// address itself, or wholesale.
fn check_address(
    settings: &WebhooksConfig,
    host: &str,
    address: IpAddr,
) -> Result<(), RefusedAddress> {
    if !crate::webhooks::is_private(address)
        || settings.allow_private_urls
        || crate::webhooks::host_listed(settings, host)
        || crate::webhooks::host_listed(settings, &address.to_string())
    {
        Ok(())
    } else {
        Err(RefusedAddress {
            host: host.to_owned(),
            address,
        })
    }
}

/// The webhook client's DNS resolver: resolves with the system's resolver, refuses the
/// name when any of its addresses is not allowed ([`check_address`]), and returns the
/// checked addresses, the only ones the client will connect to.
pub struct CheckedResolver {
    settings: Arc<WebhooksConfig>,
}

impl CheckedResolver {
    pub fn new(settings: &WebhooksConfig) -> CheckedResolver {
        CheckedResolver {
            settings: Arc::new(settings.clone()),
        }
    }

    /// The addresses of `host`, all of them checked.
    pub async fn resolve_checked(
        &self,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        for address in &addresses {
            check_address(&self.settings, host, address.ip())?;
        }
        Ok(addresses)
    }
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = CheckedResolver {
            settings: self.settings.clone(),
        };
        Box::pin(async move {
            let addresses = resolver.resolve_checked(name.as_str()).await?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The refusal somewhere in an error's causes, if that is why the request failed.
fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a RefusedAddress> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<RefusedAddress>() {
            return Some(refused);
        }
        cause = e.source();
    }
    None
}

impl WebhookWorker {
    pub fn new(
        settings: &WebhooksConfig,
        store: Arc<dyn store::Store>,
        clock: Arc<dyn domain::Clock>,
        clients: Arc<ClientRegistry>,
        users: &[UserConfig],
        secret_key: Arc<crypto::sealed::MasterKey>,
    ) -> Result<WebhookWorker, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver::new(settings)))
            .pool_max_idle_per_host(4)
            .user_agent("bankdirect-webhooks/1")
            .build()?;
        Ok(WebhookWorker {
            store,
            clock,
            clients,
            people: users
                .iter()
                .filter(|u| u.password_hash.is_some())
                .map(|u| {
                    (
                        u.id.as_str().to_owned(),
                        Entitlement::from_list(&u.accounts),
                    )
                })
                .collect(),
            settings: settings.clone(),
            secret_key,
            http,
            owner: format!("gw-{}", uuid::Uuid::new_v4().simple()),
            rng: domain::OsRandom,
            wake: Arc::new(Notify::new()),
        })
    }

    pub fn settings(&self) -> &WebhooksConfig {
        &self.settings
    }

    /// Exponential backoff with jitter: base·2^(attempts−1), capped, then a random
    /// 50–100 % of it so retries to one receiver spread out.
    fn backoff(&self, attempts: i32) -> ChronoDuration {
        let exp = u32::try_from(attempts.clamp(1, 31) - 1).unwrap_or(0);
        let full = self
            .settings
            .backoff_base_ms
            .saturating_mul(1u64 << exp.min(40))
            .min(self.settings.backoff_max_ms);
        let jitter = self.rng.next_u64() % (full / 2 + 1);
        ChronoDuration::milliseconds(i64::try_from(full / 2 + jitter).unwrap_or(i64::MAX))
    }

    /// One fan-out round: events not yet fanned out become deliveries.
    pub async fn fan_out_round(&self) -> Result<FanOutReport, StoreError> {
        self.store
            .fan_out_events(self.clock.now(), self.settings.fan_out_batch)
            .await
    }

    /// One delivery round: claims up to `concurrency` due deliveries and sends them, at
    /// most `concurrency` at once. Returns how many it claimed.
    pub async fn deliver_round(&self) -> Result<usize, StoreError> {
        let claimed = self
            .store
            .claim_webhook_deliveries(
                self.clock.now(),
                &self.owner,
                self.settings.lease_duration_ms,
                self.settings.concurrency,
            )
            .await?;
        let n = claimed.len();
        let limit = usize::try_from(self.settings.concurrency).unwrap_or(1);
        futures::stream::iter(claimed)
            .for_each_concurrent(limit, |c| async move {
                let (delivery_id, event_id) = (c.delivery_id, c.event.id.clone());
                if let Err(e) = self.deliver_one(c).await {
                    tracing::error!(delivery_id, event_id, error = %e, "recording a webhook attempt failed; the lease will expire and it is tried again");
                }
            })
            .await;
        Ok(n)
    }

    fn entitled(&self, c: &ClaimedDelivery) -> Result<(), &'static str> {
        if let Some(person) = c.client_id.strip_prefix(USER_SUBJECT_PREFIX) {
            return match self.people.get(person) {
                None => Err("the webhook's person is no longer configured or cannot log in"),
                Some(e) if !e.allows(&c.event.account_id) => {
                    Err("the webhook's person is not entitled to the event's account")
                }
                Some(_) => Ok(()),
            };
        }
        match self.clients.get(&c.client_id) {
            None => Err("the webhook's client is no longer configured"),
            Some(client) if !client.is_entitled_to(&c.event.account_id) => {
                Err("the webhook's client is not entitled to the event's account")
            }
            Some(_) => Ok(()),
        }
    }

    async fn send(&self, c: &ClaimedDelivery, body: Vec<u8>) -> Sent {
        // An IP literal is not resolved, so the resolver never sees it: check it here
        // (the registration check ran under the configuration of its day).
        if let Some(host) = reqwest::Url::parse(&c.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
        {
            if let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                if let Err(refused) = check_address(&self.settings, &host, ip) {
                    return Sent::Refused(refused.to_string());
                }
            }
        }
        // Stored sealed under the data key; a webhook registered before secrets were
        // sealed still holds it as given.
        let secret = if crypto::sealed::is_sealed(&c.secret) {
            match self.secret_key.open(&c.secret) {
                Ok(secret) => secret,
                // The reason names key ids only, never the secret.
                Err(e) => {
                    return Sent::Failed(format!("the webhook's secret cannot be opened: {e}"))
                }
            }
        } else {
            crypto::SecretString::new(c.secret.clone())
        };
        let timestamp = self.clock.now().timestamp();
        let sig = signature(secret.expose_secret(), timestamp, &body);
        let result = self
            .http
            .post(&c.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_ID, &c.event.id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, format!("v1={sig}"))
            .body(body)
            .send()
            .await;
        match result {
            Ok(resp) => Sent::Answered(resp.status().as_u16()),
            Err(e) if refusal_in(&e).is_some() => {
                Sent::Refused(refusal_in(&e).map(ToString::to_string).unwrap_or_default())
            }
            // The kind only: reqwest's text carries the URL, which may carry a token.
            Err(e) if e.is_timeout() => Sent::Failed(format!(
                "no answer within {} ms",
                self.settings.request_timeout_ms
            )),
            Err(e) if e.is_connect() => Sent::Failed("could not connect".to_owned()),
            Err(e) if e.is_builder() => Sent::Failed("the URL cannot be requested".to_owned()),
            Err(_) => Sent::Failed("the request failed".to_owned()),
        }
    }

    async fn deliver_one(&self, c: ClaimedDelivery) -> Result<(), StoreError> {
        let m = metrics();
        if let Err(reason) = self.entitled(&c) {
            let state = self
                .store
                .record_webhook_attempt(
                    c.delivery_id,
                    c.lease_token,
                    NewAttempt {
                        at: self.clock.now(),
                        duration_ms: 0,
                        response_status: None,
                        error: Some(reason.to_owned()),
                        outcome: AttemptOutcome::Skipped,
                        max_attempts: self.settings.max_attempts,
                    },
                )
                .await?;
            if state.is_some() {
                m.skipped.increment(1);
                tracing::info!(
                    delivery_id = c.delivery_id,
                    webhook_id = c.webhook_id,
                    event_id = c.event.id,
                    reason,
                    "webhook delivery skipped"
                );
            }
            return Ok(());
        }
        let started = Instant::now();
        let sent = self.send(&c, payload(&c.event)).await;
        let elapsed = started.elapsed();
        m.attempt_seconds.record(elapsed.as_secs_f64());
        let now = self.clock.now();
        let (status, error, outcome) = match sent {
            Sent::Answered(s) if (200..300).contains(&s) => {
                (Some(s), None, AttemptOutcome::Delivered)
            }
            Sent::Answered(s) => (
                Some(s),
                None,
                AttemptOutcome::Failed {
                    retry_at: retry_time(now, self.backoff(c.attempts.saturating_add(1))),
                },
            ),
            Sent::Failed(e) => (
                None,
                Some(e),
                AttemptOutcome::Failed {
                    retry_at: retry_time(now, self.backoff(c.attempts.saturating_add(1))),
                },
            ),
            // Failed, not skipped: retried with backoff (a name may be re-pointed back)
            // and dead after max_attempts, re-drivable once the operator allows the host.
            Sent::Refused(e) => {
                m.refused.increment(1);
                tracing::warn!(
                    delivery_id = c.delivery_id,
                    webhook_id = c.webhook_id,
                    reason = e,
                    "webhook delivery refused: its host is an internal address"
                );
                (
                    None,
                    Some(e),
                    AttemptOutcome::Failed {
                        retry_at: retry_time(now, self.backoff(c.attempts.saturating_add(1))),
                    },
                )
            }
        };
        let state = self
            .store
            .record_webhook_attempt(
                c.delivery_id,
                c.lease_token,
                NewAttempt {
                    at: now,
                    duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                    response_status: status,
                    error: error.clone(),
                    outcome,
                    max_attempts: self.settings.max_attempts,
                },
            )
            .await?;
        match state {
            Some(DeliveryState::Delivered) => m.delivered.increment(1),
            Some(DeliveryState::Pending) => m.retried.increment(1),
            Some(DeliveryState::Dead) => {
                m.dead.increment(1);
                m.dead_letters.increment(1);
                tracing::warn!(
                    delivery_id = c.delivery_id,
                    webhook_id = c.webhook_id,
                    event_id = c.event.id,
                    status,
                    error,
                    "webhook delivery is dead after its last allowed attempt"
                );
            }
            Some(DeliveryState::Skipped) => m.skipped.increment(1),
            None => tracing::warn!(
                delivery_id = c.delivery_id,
                "the delivery's lease was taken over during the attempt; its outcome is not recorded"
            ),
        }
        Ok(())
    }
}

fn retry_time(now: DateTime<Utc>, delay: ChronoDuration) -> DateTime<Utc> {
    now.checked_add_signed(delay).unwrap_or(now)
}

/// Runs fan-out then delivery rounds until shutdown; a round that found work is followed
/// at once by another, else the worker sleeps `poll_interval_ms` (or until woken).
pub async fn run_webhook_worker(worker: Arc<WebhookWorker>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(worker.settings.poll_interval_ms);
    loop {
        let fanned = match worker.fan_out_round().await {
            Ok(r) => r.events > 0,
            Err(e) => {
                tracing::error!(error = %e, "webhook fan-out round failed");
                false
            }
        };
        let delivered = match worker.deliver_round().await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::error!(error = %e, "webhook delivery round failed");
                false
            }
        };
        if *shutdown.borrow() {
            return;
        }
        if !fanned && !delivered {
            tokio::select! {
                _ = worker.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(allowed_hosts: &[&str]) -> WebhooksConfig {
        WebhooksConfig {
            allowed_hosts: allowed_hosts.iter().map(|h| (*h).to_owned()).collect(),
            ..WebhooksConfig::default()
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_its_name_or_address_is_allowed() {
        let refused = CheckedResolver::new(&settings(&[]))
            .resolve_checked("localhost")
            .await
            .unwrap_err();
        let text = refused.to_string();
        assert!(
            text.starts_with("not sent: localhost is or resolves to "),
            "{text}"
        );
        assert!(refusal_in(refused.as_ref()).is_some());
        for allowed in [&["localhost"][..], &["127.0.0.1", "::1"][..]] {
            let addresses = CheckedResolver::new(&settings(allowed))
                .resolve_checked("localhost")
                .await
                .unwrap();
            assert!(!addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback()));
        }
        let open = WebhooksConfig {
            allow_private_urls: true,
            ..WebhooksConfig::default()
        };
        assert!(CheckedResolver::new(&open)
            .resolve_checked("localhost")
            .await
            .is_ok());
    }

    #[test]
    fn every_internal_address_form_is_refused_and_public_ones_pass() {
        let s = settings(&[]);
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.251",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd12::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = internal.parse().unwrap();
            assert!(
                check_address(&s, "hooks.example.com", ip).is_err(),
                "{internal}"
            );
        }
        for public in ["203.0.113.9", "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8"] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(
                check_address(&s, "hooks.example.com", ip).is_ok(),
                "{public}"
            );
        }
    }

    #[test]
    fn the_signature_is_hex_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 ("Jefe", "what do ya want for nothing?"), split at the dot.
        let sig = signature("Jefe", 0, b"");
        assert_eq!(sig.len(), 64);
        let expected = crypto::hmac_sha256(b"Jefe", b"0.");
        assert_eq!(
            sig,
            expected
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let rfc = crypto::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            rfc.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
