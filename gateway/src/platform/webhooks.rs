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
//! `webhooks.timeout_ms`) reschedules it with a doubling backoff and full
//! jitter (a wait drawn between zero and the backoff), until
//! `webhooks.max_attempts` have failed and it is kept, marked dead. Entries
//! survive restarts: a new process delivers what the old one did not.
//!
//! Deliveries run concurrently: up to [`IN_FLIGHT_PER_ENDPOINT`] per
//! endpoint and [`IN_FLIGHT`] in all, so an endpoint that answers slowly (or
//! not at all, until the timeout) holds its own slots and no one else's.
//! Events to one endpoint may therefore arrive out of order, as retries
//! already made them; receivers order by `created_at`.
//!
//! The same worker runs the session-ended jobs in the outbox (endpoint
//! `@session-ended`, see [`super::summaries`]) instead of sending them, with
//! the same retries.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use engine::Millis;
use engine::outbox::{OutboxEntry, RetryPolicy, SESSION_ENDED_JOB};
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use store::{Store, WriteOp};
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::Platform;
use crate::config::WebhooksConfig;

/// Deliveries in flight at once to one endpoint (session-ended jobs count
/// as one more endpoint): a slow endpoint holds at most this many.
pub const IN_FLIGHT_PER_ENDPOINT: usize = 4;
/// Deliveries and jobs in flight at once, every endpoint together.
pub const IN_FLIGHT: usize = 32;
/// Entries a read of the outbox asks for beyond those in flight or skipped.
const BATCH: usize = 64;
/// The most entries one pass reads while it looks past the due entries of
/// endpoints at their limit: a slow endpoint with more due than this delays
/// the others' entries that are due after them until its backlog shrinks.
const MAX_SCAN: usize = 4_096;
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
            "created_at": now,
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
    /// session-ended jobs (see [`super::summaries`]), concurrently within
    /// the limits (see the module doc).
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
        let mut in_flight = InFlight::default();
        let mut attempts = FuturesUnordered::new();
        loop {
            let start = tokio::select! {
                _ = stop.cancelled() => return,
                start = self.next_due(&platform.store, &in_flight) => start,
            };
            for entry in start {
                in_flight.take(&entry);
                attempts.push(self.attempt(platform, &client, entry));
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                Some(done) = attempts.next(), if !attempts.is_empty() => {
                    in_flight.release(&done);
                    // Every other attempt that finished meanwhile, before one read.
                    while let Some(Some(done)) = attempts.next().now_or_never() {
                        in_flight.release(&done);
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// The due entries to start now: neither in flight nor over a limit.
    /// Reads further while endpoints at their limit hide others' entries.
    async fn next_due(&self, store: &Arc<dyn Store>, in_flight: &InFlight) -> Vec<OutboxEntry> {
        let now = engine::now_millis();
        let mut picked = Picked::default();
        loop {
            let limit =
                (in_flight.ids.len() + picked.start.len() + picked.n_skipped + BATCH).min(MAX_SCAN);
            let due = match store.outbox_due(now, limit).await {
                Ok(due) => due,
                Err(err) => {
                    warn!(error = %err, "cannot read the webhook outbox; retrying at the next poll");
                    return picked.start;
                }
            };
            let exhausted = due.len() < limit;
            picked = pick(due, in_flight, picked.start);
            if exhausted || picked.full || limit == MAX_SCAN {
                return picked.start;
            }
        }
    }

    /// Delivers `entry` (or runs it, for a session-ended job) and records
    /// the outcome in the outbox; returns it for [`InFlight::release`].
    async fn attempt(
        &self,
        platform: &Platform,
        client: &reqwest::Client,
        mut entry: OutboxEntry,
    ) -> OutboxEntry {
        let store = &platform.store;
        if entry.endpoint == SESSION_ENDED_JOB {
            match super::summaries::run_job(platform, &entry).await {
                // Its webhook entries are due now.
                Ok(()) => self.wake(),
                Err(error) => {
                    self.failed(&mut entry, error);
                    warn!(job = %entry.id, attempts = entry.attempts, dead = entry.dead, error = entry.last_error.as_deref().unwrap_or(""), "session-ended job failed");
                    self.save(store, WriteOp::PutOutbox(entry.clone())).await;
                }
            }
            return entry;
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
            self.save(store, WriteOp::PutOutbox(entry.clone())).await;
            return entry;
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
            // Without the URL: it may carry credentials (`user:pass@` or a
            // token in the query), and the endpoint's name is logged.
            Err(err) => Some(err.without_url().to_string()),
        };
        match failure {
            None => {
                debug!(event_id = %entry.event_id, endpoint = %entry.endpoint, "webhook delivered");
                metrics::counter!("switchboard_webhook_deliveries_total", "endpoint" => entry.endpoint.clone(), "result" => "delivered").increment(1);
                self.save(store, WriteOp::DeleteOutbox(entry.id.clone()))
                    .await;
            }
            Some(error) => {
                self.failed(&mut entry, error);
                let result = if entry.dead { "dead" } else { "failed" };
                warn!(event_id = %entry.event_id, endpoint = %entry.endpoint, attempts = entry.attempts, error = entry.last_error.as_deref().unwrap_or(""), result, "webhook delivery failed");
                metrics::counter!("switchboard_webhook_deliveries_total", "endpoint" => entry.endpoint.clone(), "result" => result).increment(1);
                self.save(store, WriteOp::PutOutbox(entry.clone())).await;
            }
        }
        entry
    }

    /// Records a failed attempt, rescheduled with full jitter.
    fn failed(&self, entry: &mut OutboxEntry, error: String) {
        entry.failed_with_jitter(error, engine::now_millis(), &self.policy(), random_unit());
    }

    async fn save(&self, store: &Arc<dyn Store>, op: WriteOp) {
        if let Err(err) = store.write_owned(vec![op]).await {
            // The entry stays as it was: delivered again (the receiver dedups
            // by idempotency key) or retried at its old time.
            warn!(error = %err, "cannot update the webhook outbox");
        }
    }
}

/// A draw in `[0, 1)` for the backoff's jitter; 1 (no jitter) without OS
/// randomness.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        // The top 53 bits: every value of an `f64` in [0, 1) at equal spacing.
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 1.0,
    }
}

/// What is being delivered or run now, so a pass neither starts an entry
/// twice nor goes over the limits.
#[derive(Debug, Default)]
struct InFlight {
    /// Outbox ids: they stay due in the store until their attempt ends.
    ids: HashSet<String>,
    /// Attempts per endpoint (`@session-ended` for the jobs).
    per_endpoint: HashMap<String, usize>,
}

impl InFlight {
    fn take(&mut self, entry: &OutboxEntry) {
        self.ids.insert(entry.id.clone());
        *self.per_endpoint.entry(entry.endpoint.clone()).or_default() += 1;
    }

    fn release(&mut self, entry: &OutboxEntry) {
        self.ids.remove(&entry.id);
        if let Some(n) = self.per_endpoint.get_mut(&entry.endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_endpoint.remove(&entry.endpoint);
            }
        }
    }
}

/// The outcome of [`pick`].
#[derive(Debug, Default)]
struct Picked {
    /// Entries to start, oldest due first.
    start: Vec<OutboxEntry>,
    /// Due entries left because their endpoint is at its limit.
    n_skipped: usize,
    /// [`IN_FLIGHT`] is reached: nothing more can start.
    full: bool,
}

/// From `due` (oldest first), the entries to start on top of `in_flight`
/// and of `start` (picked by an earlier read of the same pass): not already
/// taken, at most [`IN_FLIGHT_PER_ENDPOINT`] per endpoint and [`IN_FLIGHT`]
/// in all.
fn pick(due: Vec<OutboxEntry>, in_flight: &InFlight, start: Vec<OutboxEntry>) -> Picked {
    let mut per_endpoint = in_flight.per_endpoint.clone();
    let mut taken: HashSet<String> = in_flight.ids.clone();
    for entry in &start {
        *per_endpoint.entry(entry.endpoint.clone()).or_default() += 1;
        taken.insert(entry.id.clone());
    }
    let mut picked = Picked {
        start,
        ..Picked::default()
    };
    for entry in due {
        if taken.contains(&entry.id) {
            continue;
        }
        if in_flight.ids.len() + picked.start.len() >= IN_FLIGHT {
            picked.full = true;
            break;
        }
        let n_endpoint = per_endpoint.entry(entry.endpoint.clone()).or_default();
        if *n_endpoint >= IN_FLIGHT_PER_ENDPOINT {
            picked.n_skipped += 1;
            continue;
        }
        *n_endpoint += 1;
        taken.insert(entry.id.clone());
        picked.start.push(entry);
    }
    picked
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

    fn entries(endpoint: &str, n: usize) -> Vec<OutboxEntry> {
        (0..n)
            .map(|i| {
                OutboxEntry::new(
                    &format!("evt-{i}"),
                    endpoint,
                    "ticket.created",
                    "{}".into(),
                    5,
                )
            })
            .collect()
    }

    #[test]
    fn a_busy_endpoint_is_skipped_and_the_others_start() {
        let mut due = entries("slow", 10);
        due.extend(entries("fast", 2));
        let picked = pick(due, &InFlight::default(), Vec::new());
        let endpoints: Vec<&str> = picked.start.iter().map(|e| e.endpoint.as_str()).collect();
        assert_eq!(
            endpoints,
            [&["slow"; IN_FLIGHT_PER_ENDPOINT][..], &["fast"; 2][..]].concat()
        );
        assert_eq!(
            (picked.n_skipped, picked.full),
            (10 - IN_FLIGHT_PER_ENDPOINT, false)
        );
    }

    #[test]
    fn entries_in_flight_are_not_started_again_and_count_against_the_limits() {
        let mut in_flight = InFlight::default();
        let slow = entries("slow", 6);
        for entry in &slow[..3] {
            in_flight.take(entry);
        }
        let picked = pick(slow.clone(), &in_flight, Vec::new());
        let ids: Vec<&str> = picked.start.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt-3/slow"]);
        assert_eq!(picked.n_skipped, 2);
        // A second read of the same pass sees the same entries again.
        let again = pick(slow.clone(), &in_flight, picked.start);
        assert_eq!(again.start.len(), 1);
        assert_eq!(again.n_skipped, 2);
        for entry in &slow[..3] {
            in_flight.release(entry);
        }
        assert!(in_flight.ids.is_empty() && in_flight.per_endpoint.is_empty());
    }

    #[test]
    fn nothing_starts_past_the_overall_limit() {
        let due: Vec<OutboxEntry> = (0..IN_FLIGHT + 5)
            .flat_map(|i| entries(&format!("endpoint-{i}"), 1))
            .collect();
        let picked = pick(due, &InFlight::default(), Vec::new());
        assert_eq!(picked.start.len(), IN_FLIGHT);
        assert!(picked.full);
    }

    #[test]
    fn jitter_draws_are_in_the_unit_interval_and_differ() {
        let draws: Vec<f64> = (0..32).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)), "{draws:?}");
        assert!(draws.iter().any(|d| *d != draws[0]), "{draws:?}");
    }
}
