//! Outbound webhooks: the gateway's [`EventEncoder`] and [`Courier`] for
//! the data platform's outbox worker (`actors::platform::outbox`, which
//! schedules, retries and limits the deliveries and writes every outcome
//! through the StoreWriter). What is here is the wire: the JSON body of an
//! event, the HMAC signature and the HTTP request.
//!
//! Each delivery is a `POST` of the event's JSON with:
//! - `Idempotency-Key`: the event id, the same on every retry (and for every
//!   endpoint), so a receiver can drop a duplicate;
//! - `X-Switchboard-Event`: the event type (`ticket.updated`);
//! - `X-Switchboard-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
//!   "<t>.<body>" with the endpoint's secret>` (`channels::signature`, the
//!   same construction the webhook channel checks inbound);
//! - `X-Switchboard-Attempt`: 1 for the first try.
//!
//! A 2xx answer is a delivery; anything else (or no answer within
//! `webhooks.timeout_ms`) is a failure the worker retries with
//! `webhooks.initial_backoff_ms`, `max_backoff_ms` and `max_attempts`.

use std::time::Duration;

use actors::platform::{Courier, DeliveryError, EventEncoder, PlatformEvent, PlatformSettings};
use async_trait::async_trait;
use engine::Millis;
use engine::outbox::{OutboxEntry, RetryPolicy};

use crate::config::{Config, WebhooksConfig};
use crate::wire::event::Viewer;
use crate::wire::platform::{SummaryRecord, TicketEventRecord, TicketRecord};
use crate::wire::records::SessionRecord;

/// Header names.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";
/// See the module doc.
pub const EVENT_HEADER: &str = "x-switchboard-event";
/// See the module doc.
pub const ATTEMPT_HEADER: &str = "x-switchboard-attempt";
/// See the module doc.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The configured endpoints: which events each wants, and their JSON.
pub struct Webhooks {
    config: WebhooksConfig,
}

/// Delivers to the configured endpoints over HTTP.
pub struct WebhookCourier {
    config: WebhooksConfig,
    client: reqwest::Client,
}

/// `v1` signature of `body` at unix time `t` with `secret`, hex: the one
/// construction the webhook channel also checks on what platforms post in.
pub use channels::signature::sign;

/// A new event id: `evt_` and 128 random bits in hex.
fn event_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to time and a counter, still unique per process.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&engine::now_millis().to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

impl Webhooks {
    /// Webhooks as configured.
    pub fn new(config: WebhooksConfig) -> Self {
        Webhooks { config }
    }

    /// The outbox entries for one event (one per endpoint that wants it),
    /// to write in the same batch as the change; empty without endpoints.
    pub fn outbox_entries(
        &self,
        event_type: &str,
        data: serde_json::Value,
        now: Millis,
    ) -> Vec<OutboxEntry> {
        let wanted: Vec<_> = self
            .config
            .endpoints
            .iter()
            .filter(|e| e.wants(event_type))
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let id = event_id();
        let body = serde_json::json!({
            "id": id,
            "type": event_type,
            "created_at": now,
            "data": data,
        })
        .to_string();
        wanted
            .into_iter()
            .map(|endpoint| OutboxEntry::new(&id, &endpoint.name, event_type, body.clone(), now))
            .collect()
    }
}

/// The data platform's settings from `[platform]` and `[webhooks]`.
pub fn platform_settings(config: &Config) -> PlatformSettings {
    let webhooks = &config.webhooks;
    PlatformSettings {
        summaries: config.platform.summaries,
        retry: RetryPolicy {
            initial_ms: webhooks.initial_backoff_ms as Millis,
            max_ms: webhooks.max_backoff_ms as Millis,
            max_attempts: webhooks.max_attempts,
        },
        poll: Duration::from_millis(webhooks.poll_ms),
    }
}

impl EventEncoder for Webhooks {
    /// The event's `data`: the ticket and its new history entries; the
    /// session (as staff see it) and the event (as the agent socket sends
    /// it); or the session and its summary.
    fn entries_for(&self, event: &PlatformEvent<'_>, now: Millis) -> Vec<OutboxEntry> {
        if !self.wants(event.event_type()) {
            return Vec::new();
        }
        let data = match event {
            PlatformEvent::Session { session, event, .. } => serde_json::json!({
                "session": SessionRecord::new(session, Viewer::Staff),
                "event": crate::wire::event::event_frame(event, Viewer::Staff),
            }),
            PlatformEvent::Ticket { ticket, events, .. } => serde_json::json!({
                "ticket": TicketRecord::from(*ticket),
                "events": events.iter().map(TicketEventRecord::from).collect::<Vec<_>>(),
            }),
            PlatformEvent::SessionEnded {
                session, summary, ..
            } => serde_json::json!({
                "session": SessionRecord::new(session, Viewer::Staff),
                "summary": summary.map(SummaryRecord::from),
            }),
        };
        self.outbox_entries(event.event_type(), data, now)
    }

    fn wants(&self, event_type: &str) -> bool {
        self.config
            .endpoints
            .iter()
            .any(|endpoint| endpoint.wants(event_type))
    }
}

impl WebhookCourier {
    /// A courier for the configured endpoints, with an HTTP client that
    /// gives up after `webhooks.timeout_ms`.
    pub fn new(config: WebhooksConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()?;
        Ok(WebhookCourier { config, client })
    }
}

#[async_trait]
impl Courier for WebhookCourier {
    /// The configured endpoints (by name).
    fn delivers(&self, endpoint: &str) -> bool {
        self.config.endpoints.iter().any(|e| e.name == endpoint)
    }

    async fn deliver(&self, entry: &OutboxEntry) -> Result<(), DeliveryError> {
        let Some(endpoint) = self
            .config
            .endpoints
            .iter()
            .find(|e| e.name == entry.endpoint)
        else {
            return Err(DeliveryError(format!(
                "endpoint `{}` is no longer configured",
                entry.endpoint
            )));
        };
        let t = engine::now_millis() / 1000;
        let signature = format!(
            "t={t},v1={}",
            sign(endpoint.secret.expose(), t, entry.payload.as_bytes())
        );
        let sent = self
            .client
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_HEADER, &entry.event_id)
            .header(EVENT_HEADER, &entry.event_type)
            .header(SIGNATURE_HEADER, signature)
            .header(ATTEMPT_HEADER, (entry.attempts + 1).to_string())
            .body(entry.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(DeliveryError(format!("HTTP {}", response.status()))),
            // Without the URL: it may carry credentials (`user:pass@` or a
            // token in the query), and the endpoint's name is logged.
            Err(err) => Err(DeliveryError(err.without_url().to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebhookEndpoint;

    #[test]
    fn signature_is_hmac_sha256_of_time_dot_body() {
        use hmac::{Hmac, Mac};
        use sha2::Sha256;
        // RFC 4231 style check against an independent computation.
        let signature = sign("0123456789abcdef", 1_700_000_000, b"{\"a\":1}");
        assert_eq!(signature.len(), 64);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        mac.verify_slice(
            &(0..32)
                .map(|i| u8::from_str_radix(&signature[2 * i..2 * i + 2], 16).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_ne!(
            signature,
            sign("another secret!!", 1_700_000_000, b"{\"a\":1}")
        );
    }

    #[test]
    fn one_entry_per_interested_endpoint_sharing_the_event_id() {
        let endpoint = |name: &str, events: &[&str]| WebhookEndpoint {
            name: name.into(),
            url: "http://127.0.0.1:1/".into(),
            secret: "0123456789abcdef".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
        };
        let webhooks = Webhooks::new(WebhooksConfig {
            endpoints: vec![
                endpoint("crm", &["ticket.*"]),
                endpoint("bi", &["session.closed"]),
                endpoint("all", &[]),
            ],
            ..WebhooksConfig::default()
        });
        let entries = webhooks.outbox_entries("ticket.created", serde_json::json!({"x": 1}), 5);
        assert_eq!(
            entries
                .iter()
                .map(|e| e.endpoint.as_str())
                .collect::<Vec<_>>(),
            vec!["crm", "all"]
        );
        assert_eq!(entries[0].event_id, entries[1].event_id);
        assert!(entries[0].event_id.starts_with("evt_") && entries[0].event_id.len() == 36);
        let body: serde_json::Value = serde_json::from_str(&entries[0].payload).unwrap();
        assert_eq!(body["type"], "ticket.created");
        assert_eq!(body["id"], entries[0].event_id.as_str());
        assert_eq!(body["data"]["x"], 1);
        assert!(
            Webhooks::new(WebhooksConfig::default())
                .outbox_entries("ticket.created", serde_json::json!({}), 5)
                .is_empty()
        );
    }
}
