//! Outbound webhooks: events written to the store's outbox together with the
//! change they report, then delivered by one worker, off the hot path.
//!
//! Each delivery is a `POST` of the event's JSON with:
//! - `Idempotency-Key`: the event id, the same on every retry (and for every
//!   endpoint), so a receiver can drop a duplicate;
//! - `X-Switchboard-Event`: the event type (`ticket.updated`);
//! - `X-Switchboard-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
//!   "<t>.<body>" with the endpoint's secret>`;
//! - `X-Switchboard-Attempt`: 1 for the first try.
//!
//! A 2xx answer deletes the entry; anything else (or no answer within
//! `webhooks.timeout_ms`) reschedules it with a doubling backoff, until
//! `webhooks.max_attempts` have failed and it is kept, marked dead. Entries
//! survive restarts: a new process delivers what the old one did not.
//!
//! The same worker runs the session-ended jobs in the outbox (endpoint
//! `@session-ended`, see [`super::summaries`]) instead of sending them, with
//! the same retries.

use std::sync::Arc;
use std::time::Duration;

use engine::Millis;
use engine::outbox::{OutboxEntry, RetryPolicy, SESSION_ENDED_JOB};
use engine::store::{Store, WriteOp};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::Platform;
use crate::config::WebhooksConfig;

/// Entries sent per pass.
const BATCH: usize = 64;
/// Header names.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";
/// See the module doc.
pub const EVENT_HEADER: &str = "x-switchboard-event";
/// See the module doc.
pub const ATTEMPT_HEADER: &str = "x-switchboard-attempt";
/// See the module doc.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The configured endpoints and the worker's wake-up.
pub struct Webhooks {
    config: WebhooksConfig,
    wake: Notify,
}

/// `v1` signature of `body` at unix time `t` with `secret`, hex.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

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
        Webhooks {
            config,
            wake: Notify::new(),
        }
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial_ms: self.config.initial_backoff_ms as Millis,
            max_ms: self.config.max_backoff_ms as Millis,
            max_attempts: self.config.max_attempts,
        }
    }

    /// The outbox entries for one event (one per endpoint that wants it),
    /// to write in the same batch as the change; empty without endpoints.
    pub fn outbox_ops(
        &self,
        event_type: &str,
        data: serde_json::Value,
        now: Millis,
    ) -> Vec<WriteOp> {
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
            "created_at": crate::rest::types::timestamp(now),
            "data": data,
        })
        .to_string();
        wanted
            .into_iter()
            .map(|endpoint| {
                WriteOp::PutOutbox(OutboxEntry::new(
                    &id,
                    &endpoint.name,
                    event_type,
                    body.clone(),
                    now,
                ))
            })
            .collect()
    }

    /// Something was written to the outbox: deliver now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The outbox loop, until the platform stops: webhook deliveries and
    /// session-ended jobs (see [`super::summaries`]).
    pub async fn run(&self, platform: &Platform) {
        let stop = platform.stopping();
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .build()
        {
            Ok(client) => client,
            Err(err) => {
                warn!(error = %err, "cannot build the webhook HTTP client; webhooks and session summaries stay in the outbox");
                return;
            }
        };
        let poll = Duration::from_millis(self.config.poll_ms);
        loop {
            let n_sent = tokio::select! {
                _ = stop.cancelled() => return,
                n_sent = self.deliver_due(platform, &client) => n_sent,
            };
            if n_sent == BATCH {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Sends or runs what is due; returns how many entries it tried.
    async fn deliver_due(&self, platform: &Platform, client: &reqwest::Client) -> usize {
        let store = &platform.store;
        let due = match store.outbox_due(engine::now_millis(), BATCH).await {
            Ok(due) => due,
            Err(err) => {
                warn!(error = %err, "cannot read the webhook outbox; retrying at the next poll");
                return 0;
            }
        };
        let n_due = due.len();
        for mut entry in due {
            if platform.stopping().is_cancelled() {
                break;
            }
            if entry.endpoint == SESSION_ENDED_JOB {
                match super::summaries::run_job(platform, &entry).await {
                    // Its webhook entries are due now.
                    Ok(()) => self.wake(),
                    Err(error) => {
                        entry.failed(error, engine::now_millis(), &self.policy());
                        warn!(job = %entry.id, attempts = entry.attempts, dead = entry.dead, error = entry.last_error.as_deref().unwrap_or(""), "session-ended job failed");
                        self.save(store, WriteOp::PutOutbox(entry)).await;
                    }
                }
                continue;
            }
            let Some(endpoint) = self
                .config
                .endpoints
                .iter()
                .find(|e| e.name == entry.endpoint)
            else {
                // The endpoint was removed from the configuration: park the entry.
                entry.dead = true;
                entry.last_error = Some(format!(
                    "endpoint `{}` is no longer configured",
                    entry.endpoint
                ));
                self.save(store, WriteOp::PutOutbox(entry)).await;
                continue;
            };
            let t = engine::now_millis() / 1000;
            let signature = format!(
                "t={t},v1={}",
                sign(endpoint.secret.expose(), t, entry.payload.as_bytes())
            );
            let sent = client
                .post(&endpoint.url)
                .header("content-type", "application/json")
                .header(IDEMPOTENCY_HEADER, &entry.event_id)
                .header(EVENT_HEADER, &entry.event_type)
                .header(SIGNATURE_HEADER, signature)
                .header(ATTEMPT_HEADER, (entry.attempts + 1).to_string())
                .body(entry.payload.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some(format!("HTTP {}", response.status())),
                // Without the URL: it may carry credentials (`user:pass@`
                // or a token in the query), and the endpoint's name is logged.
                Err(err) => Some(err.without_url().to_string()),
            };
            match failure {
                None => {
                    debug!(event_id = %entry.event_id, endpoint = %entry.endpoint, "webhook delivered");
                    metrics::counter!("switchboard_webhook_deliveries_total", "endpoint" => entry.endpoint.clone(), "result" => "delivered").increment(1);
                    self.save(store, WriteOp::DeleteOutbox(entry.id)).await;
                }
                Some(error) => {
                    entry.failed(error, engine::now_millis(), &self.policy());
                    let result = if entry.dead { "dead" } else { "failed" };
                    warn!(event_id = %entry.event_id, endpoint = %entry.endpoint, attempts = entry.attempts, error = entry.last_error.as_deref().unwrap_or(""), result, "webhook delivery failed");
                    metrics::counter!("switchboard_webhook_deliveries_total", "endpoint" => entry.endpoint.clone(), "result" => result).increment(1);
                    self.save(store, WriteOp::PutOutbox(entry)).await;
                }
            }
        }
        n_due
    }

    async fn save(&self, store: &Arc<dyn Store>, op: WriteOp) {
        if let Err(err) = store.write_owned(vec![op]).await {
            // The entry stays as it was: delivered again (the receiver dedups
            // by idempotency key) or retried at its old time.
            warn!(error = %err, "cannot update the webhook outbox");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebhookEndpoint;

    #[test]
    fn signature_is_hmac_sha256_of_time_dot_body() {
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
        let ops = webhooks.outbox_ops("ticket.created", serde_json::json!({"x": 1}), 5);
        let entries: Vec<&OutboxEntry> = ops
            .iter()
            .map(|op| match op {
                WriteOp::PutOutbox(entry) => entry,
                other => panic!("{other:?}"),
            })
            .collect();
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
                .outbox_ops("ticket.created", serde_json::json!({}), 5)
                .is_empty()
        );
    }
}
