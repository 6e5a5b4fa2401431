//! The outbox worker: events written to the store's outbox together with
//! the change they report, then delivered by one worker, off the hot path.
//!
//! What goes in and out is the outside world's business, behind two traits
//! the gateway implements:
//! - an [`EventEncoder`] turns a [`PlatformEvent`] (a ticket change, a
//!   session's end) into outbox entries, one per destination that wants it,
//!   written in the same batch as the change;
//! - a [`Courier`] delivers the entries of the endpoints it
//!   [`delivers`](Courier::delivers) (the gateway's webhooks: a signed HTTP
//!   `POST`). A message channel delivers its own outbox entries the same
//!   way: its courier claims its endpoints, and the worker schedules,
//!   retries and limits them like any other.
//!
//! A delivered entry is deleted; a failed one is rescheduled with a doubling
//! backoff and full jitter (a wait drawn between zero and the backoff),
//! until [`RetryPolicy::max_attempts`] have failed and it is kept, marked
//! dead. An entry no courier delivers (its endpoint was removed from the
//! configuration) is parked dead at once. Entries survive restarts: a new
//! process delivers what the old one did not. Every mark (deleted,
//! rescheduled, dead) is written through the StoreWriter.
//!
//! Deliveries run concurrently: up to [`IN_FLIGHT_PER_ENDPOINT`] per
//! endpoint and [`IN_FLIGHT`] in all, so an endpoint that answers slowly (or
//! not at all, until the courier's timeout) holds its own slots and no one
//! else's. Webhook events to one endpoint may therefore arrive out of
//! order, as retries already made them; receivers order by `created_at`.
//! Agents' replies to a channel customer do not: a session's replies go
//! one at a time, in `seq` order, and a reply waiting for a retry holds
//! back the session's later replies (not other sessions'), so a customer
//! reads them in the order the agent wrote them. The worker learns the
//! replies waiting for a retry from the store when it starts.
//!
//! The same worker runs the session-ended jobs in the outbox (endpoint
//! [`SESSION_ENDED_JOB`], see [`super::summaries`]) instead of delivering
//! them, with the same retries.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine::Millis;
use engine::ids::SessionId;
use engine::outbox::{ChannelReply, OutboxEntry, RetryPolicy, SESSION_ENDED_JOB};
use engine::session::Session;
use engine::summary::SessionSummary;
use engine::ticket::{Ticket, TicketEvent};
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use store::WriteOp;
use thiserror::Error;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::Platform;

/// Deliveries in flight at once to one endpoint (session-ended jobs count
/// as one more endpoint): a slow endpoint holds at most this many.
pub const IN_FLIGHT_PER_ENDPOINT: usize = 4;
/// Replies in flight at once to one channel account: a platform's API
/// takes many at once (a session's own replies still go one at a time).
pub const IN_FLIGHT_PER_ACCOUNT: usize = 32;
/// Deliveries and jobs in flight at once, every endpoint together.
pub const IN_FLIGHT: usize = 64;
/// Entries a read of the outbox asks for beyond those in flight or skipped.
const BATCH: usize = 64;
/// The most entries one pass reads while it looks past the due entries of
/// endpoints at their limit: a slow endpoint with more due than this delays
/// the others' entries that are due after them until its backlog shrinks.
const MAX_SCAN: usize = 4_096;

/// Something the platform reports to the outside world.
#[derive(Debug, Clone, Copy)]
pub enum PlatformEvent<'a> {
    /// A ticket was opened (`ticket.created`) or changed (`ticket.updated`).
    Ticket {
        /// `ticket.created` or `ticket.updated`.
        event_type: &'a str,
        /// The ticket after the change.
        ticket: &'a Ticket,
        /// The history entries the change added.
        events: &'a [TicketEvent],
    },
    /// Something happened in a live session: a customer or agent message
    /// (`message.created`), an agent took it (`session.assigned`) or handed
    /// it on (`session.transferred`). Written in the batch that stores it.
    Session {
        /// `message.created`, `session.assigned` or `session.transferred`.
        event_type: &'a str,
        /// The session as the event leaves it.
        session: &'a Session,
        /// The event.
        event: &'a crate::event::Event,
    },
    /// A session ended (`session.closed` or `session.abandoned`).
    SessionEnded {
        /// `session.closed` or `session.abandoned`.
        event_type: &'a str,
        /// The session's final record.
        session: &'a Session,
        /// Its auto-summary, when summaries are on.
        summary: Option<&'a SessionSummary>,
    },
}

impl PlatformEvent<'_> {
    /// `ticket.created`, `session.closed`, …
    pub fn event_type(&self) -> &str {
        match self {
            PlatformEvent::Ticket { event_type, .. }
            | PlatformEvent::Session { event_type, .. }
            | PlatformEvent::SessionEnded { event_type, .. } => event_type,
        }
    }
}

/// Turns platform events into outbox entries (the gateway: one signed JSON
/// webhook per configured endpoint that wants the event).
pub trait EventEncoder: Send + Sync {
    /// The entries that report `event`, to write in the same batch as the
    /// change; empty when nobody wants it.
    fn entries_for(&self, event: &PlatformEvent<'_>, now: Millis) -> Vec<OutboxEntry>;

    /// Whether anybody wants events of `event_type`: a cheap check before
    /// an event on the hot path (every message) is encoded. Yes by default.
    fn wants(&self, event_type: &str) -> bool {
        let _ = event_type;
        true
    }
}

/// Delivers outbox entries of the endpoints it knows.
#[async_trait]
pub trait Courier: Send + Sync {
    /// Whether this courier delivers the entries of `endpoint`.
    fn delivers(&self, endpoint: &str) -> bool;
    /// One attempt at delivering `entry` (`entry.attempts` failed before
    /// it). An error is retried with backoff.
    async fn deliver(&self, entry: &OutboxEntry) -> Result<(), DeliveryError>;
    /// `entry` failed its last allowed attempt and is parked dead (already
    /// marked so in the store): a courier that reports deliveries to
    /// someone says so here. Nothing by default.
    async fn gave_up(&self, entry: &OutboxEntry) {
        let _ = entry;
    }
}

/// Why a delivery failed, for the entry's `last_error` and the log: for
/// people, and free of credentials (no URL with a password in it).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// What reports events, what delivers them, and the worker's wake-up.
pub struct Outbox {
    encoder: Arc<dyn EventEncoder>,
    couriers: Vec<Arc<dyn Courier>>,
    policy: RetryPolicy,
    poll: Duration,
    wake: Notify,
    /// Endpoints whose entries are due now, backoff or not (see [`Outbox::hurry`]).
    hurried: std::sync::Mutex<HashSet<String>>,
}

impl Outbox {
    /// An outbox over `encoder` and `couriers`.
    pub fn new(
        encoder: Arc<dyn EventEncoder>,
        couriers: Vec<Arc<dyn Courier>>,
        policy: RetryPolicy,
        poll: Duration,
    ) -> Self {
        Outbox {
            encoder,
            couriers,
            policy,
            poll,
            wake: Notify::new(),
            hurried: std::sync::Mutex::new(HashSet::new()),
        }
    }

    /// The entries that report `event` (see [`EventEncoder::entries_for`]).
    pub fn entries_for(&self, event: &PlatformEvent<'_>, now: Millis) -> Vec<OutboxEntry> {
        self.encoder.entries_for(event, now)
    }

    /// Something was written to the outbox: deliver now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// `endpoint` can take deliveries again (an out-of-process adapter
    /// connected): its entries waiting for a retry go at the next pass,
    /// not when their backoff ends.
    pub fn hurry(&self, endpoint: &str) {
        self.hurried
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_owned());
        self.wake();
    }

    fn courier_for(&self, endpoint: &str) -> Option<&dyn Courier> {
        self.couriers
            .iter()
            .find(|courier| courier.delivers(endpoint))
            .map(|courier| courier.as_ref())
    }

    /// Records a failed attempt, rescheduled with full jitter.
    fn failed(&self, entry: &mut OutboxEntry, error: String) {
        entry.failed_with_jitter(error, engine::now_millis(), &self.policy, random_unit());
    }
}

/// How long a cluster node that becomes the outbox's deliverer waits
/// before it delivers: the member that delivered until then hears of it
/// within a heartbeat or two and stops.
const TAKEOVER_PAUSE: Duration = Duration::from_secs(1);

/// The outbox loop, until the platform stops: deliveries and session-ended
/// jobs, concurrently within the limits (see the module doc).
pub async fn run(platform: &Platform) {
    let outbox = &platform.outbox;
    let stop = platform.stopping();
    let mut in_flight = InFlight {
        waiting: waiting_replies(platform).await,
        ..InFlight::default()
    };
    let mut attempts = FuturesUnordered::new();
    let mut depth = Depth::default();
    // A pass reads past the head of the outbox (for entries that held
    // back ones hide) at most every LONG_READ_EVERY: a long backlog behind
    // endpoints at their limit is read a few times a second, not once per
    // attempt, and the head's entries still start as slots free up.
    let mut long_read_at: Option<tokio::time::Instant> = None;
    // Alone, this node delivers from the start; in a cluster it takes over.
    let mut delivering = !platform.switchboard.clustered();
    loop {
        // In a cluster one node with the `workers` role delivers at a time
        // (docs/cluster.md, "Roles"); the others only finish what they
        // started. One that takes over first waits for the member that
        // delivered until now to hear of it, then reads the waiting
        // replies as a new process would.
        let mut delivers = platform.switchboard.delivers_outbox();
        if delivers && !delivering {
            tokio::select! {
                _ = stop.cancelled() => return,
                () = tokio::time::sleep(TAKEOVER_PAUSE) => {}
            }
            delivers = platform.switchboard.delivers_outbox();
            if delivers {
                info!("this node delivers the outbox now");
                in_flight.waiting.extend(waiting_replies(platform).await);
            }
        }
        delivering = delivers;
        let (start, read_far) = if delivering {
            depth.measure_if_due(platform).await;
            let may_read_far = long_read_at.is_none_or(|at| at.elapsed() >= LONG_READ_EVERY);
            tokio::select! {
                _ = stop.cancelled() => return,
                due = next_due(platform, &in_flight, may_read_far) => due,
            }
        } else {
            (Vec::new(), false)
        };
        if read_far {
            long_read_at = Some(tokio::time::Instant::now());
        }
        for entry in start {
            in_flight.take(&entry);
            attempts.push(attempt(platform, entry));
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            Some((done, pending)) = attempts.next(), if !attempts.is_empty() => {
                in_flight.release(&done, pending);
                // Every other attempt that finished meanwhile, before one read.
                while let Some(Some((done, pending))) = attempts.next().now_or_never() {
                    in_flight.release(&done, pending);
                }
            }
            _ = outbox.wake.notified() => {}
            _ = tokio::time::sleep(outbox.poll) => {}
        }
    }
}

/// How often a pass may read past the head of the outbox.
const LONG_READ_EVERY: Duration = Duration::from_millis(50);

/// The due entries to start now: neither in flight nor over a limit, and
/// whether the pass read past the head. With `may_read_far`, reads further
/// (up to [`MAX_SCAN`]) while entries held back (endpoints at their limit,
/// a session's later replies) hide others.
async fn next_due(
    platform: &Platform,
    in_flight: &InFlight,
    may_read_far: bool,
) -> (Vec<OutboxEntry>, bool) {
    let now = engine::now_millis();
    let hurried = std::mem::take(
        &mut *platform
            .outbox
            .hurried
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    // With hurried endpoints, entries backing off are read too, and those
    // of other endpoints left for their time.
    let until = if hurried.is_empty() { now } else { Millis::MAX };
    let mut picked = Picked::default();
    let mut last_limit = 0;
    loop {
        // At least twice the last read: entries held back (endpoints at
        // their limit, a session's later replies) hid what may start, and
        // a long backlog costs a few reads, not many.
        let limit = (in_flight.ids.len() + picked.start.len() + picked.n_skipped + BATCH)
            .max(2 * last_limit)
            .min(MAX_SCAN);
        last_limit = limit;
        let due: Vec<OutboxEntry> = match platform.store.outbox_due(until, limit).await {
            Ok(due) => due
                .into_iter()
                .filter(|entry| entry.next_attempt_at <= now || hurried.contains(&entry.endpoint))
                .collect(),
            Err(err) => {
                warn!(error = %err, "cannot read the webhook outbox; retrying at the next poll");
                return (picked.start, last_limit > BATCH + in_flight.ids.len());
            }
        };
        let exhausted = due.len() < limit;
        picked = pick(due, in_flight, picked.start);
        let read_far = limit > in_flight.ids.len() + BATCH;
        if exhausted || picked.full || limit == MAX_SCAN || !may_read_far {
            return (picked.start, read_far);
        }
    }
}

/// How often the worker counts what waits in the outbox.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// The gauge of entries waiting in the outbox (due or not; not dead), by
/// endpoint.
pub const DEPTH: &str = "switchboard_outbox_depth";

/// The outbox's depth per endpoint, measured every [`DEPTH_EVERY`] (up to
/// `MAX_SCAN` entries in all).
#[derive(Default)]
struct Depth {
    last: Option<std::time::Instant>,
    /// Endpoints given a value, so that one that empties reads 0.
    endpoints: HashSet<String>,
}

impl Depth {
    async fn measure_if_due(&mut self, platform: &Platform) {
        if self.last.is_some_and(|last| last.elapsed() < DEPTH_EVERY) {
            return;
        }
        self.last = Some(std::time::Instant::now());
        let entries = match platform.store.outbox_due(Millis::MAX, MAX_SCAN).await {
            Ok(entries) => entries,
            Err(err) => {
                debug!(error = %err, "cannot count the outbox");
                return;
            }
        };
        let mut counts: HashMap<String, usize> = HashMap::new();
        for entry in entries {
            *counts.entry(entry.endpoint).or_default() += 1;
        }
        for endpoint in self.endpoints.iter() {
            if !counts.contains_key(endpoint) {
                metrics::gauge!(DEPTH, "endpoint" => endpoint.clone()).set(0.0);
            }
        }
        for (endpoint, n) in &counts {
            metrics::gauge!(DEPTH, "endpoint" => endpoint.clone()).set(*n as f64);
        }
        self.endpoints.extend(counts.into_keys());
    }
}

/// The agents' replies in the outbox (waiting for a retry, or left by an
/// earlier process), by session: the later replies of those sessions wait
/// for them.
async fn waiting_replies(platform: &Platform) -> HashMap<SessionId, BTreeSet<u64>> {
    let mut waiting: HashMap<SessionId, BTreeSet<u64>> = HashMap::new();
    match platform.store.outbox_due(Millis::MAX, MAX_SCAN).await {
        Ok(entries) => {
            for (session, seq) in entries.iter().filter_map(reply_of) {
                waiting.entry(session).or_default().insert(seq);
            }
        }
        Err(err) => {
            warn!(error = %err, "cannot read the outbox at start; replies waiting for a retry may be overtaken by later ones")
        }
    }
    waiting
}

/// The session and `seq` of an agent's reply to a channel account.
fn reply_of(entry: &OutboxEntry) -> Option<(SessionId, u64)> {
    entry.channel_account()?;
    ChannelReply::parse_delivery_id(&entry.event_id)
}

/// Delivers `entry` (or runs it, for a session-ended job) and records the
/// outcome in the outbox; returns it for [`InFlight::release`], with
/// whether it stays in the outbox for a retry.
async fn attempt(platform: &Platform, entry: OutboxEntry) -> (OutboxEntry, bool) {
    let pending_before = entry.attempts;
    let entry = attempt_once(platform, entry).await;
    let pending = !entry.dead && entry.attempts > pending_before;
    (entry, pending)
}

/// [`attempt`]'s work.
async fn attempt_once(platform: &Platform, mut entry: OutboxEntry) -> OutboxEntry {
    let outbox = &platform.outbox;
    if entry.endpoint == SESSION_ENDED_JOB {
        match super::summaries::run_job(platform, &entry).await {
            // Its outbox entries are due now.
            Ok(()) => outbox.wake(),
            Err(error) => {
                outbox.failed(&mut entry, error);
                warn!(job = %entry.id, attempts = entry.attempts, dead = entry.dead, error = entry.last_error.as_deref().unwrap_or(""), "session-ended job failed");
                save(platform, WriteOp::PutOutbox(entry.clone())).await;
            }
        }
        return entry;
    }
    let Some(courier) = outbox.courier_for(&entry.endpoint) else {
        // The endpoint was removed from the configuration: park the entry.
        entry.dead = true;
        entry.last_error = Some(format!(
            "endpoint `{}` is no longer configured",
            entry.endpoint
        ));
        save(platform, WriteOp::PutOutbox(entry.clone())).await;
        return entry;
    };
    // Channel accounts' couriers count and log their own deliveries.
    let webhook = entry.channel_account().is_none();
    match courier.deliver(&entry).await {
        Ok(()) => {
            if webhook {
                debug!(event_id = %entry.event_id, endpoint = %entry.endpoint, "webhook delivered");
                metrics::counter!("switchboard_webhook_deliveries_total", "endpoint" => entry.endpoint.clone(), "result" => "delivered").increment(1);
            }
            save(platform, WriteOp::DeleteOutbox(entry.id.clone())).await;
        }
        Err(DeliveryError(error)) => {
            outbox.failed(&mut entry, error);
            let result = if entry.dead { "dead" } else { "failed" };
            if webhook {
                warn!(event_id = %entry.event_id, endpoint = %entry.endpoint, attempts = entry.attempts, error = entry.last_error.as_deref().unwrap_or(""), result, "webhook delivery failed");
                metrics::counter!("switchboard_webhook_deliveries_total", "endpoint" => entry.endpoint.clone(), "result" => result).increment(1);
            }
            save(platform, WriteOp::PutOutbox(entry.clone())).await;
            if entry.dead {
                courier.gave_up(&entry).await;
            }
        }
    }
    entry
}

/// Writes one outbox mark through the StoreWriter.
async fn save(platform: &Platform, op: WriteOp) {
    if let Err(err) = platform.write(vec![op]).await {
        // The entry stays as it was: delivered again (the receiver dedups
        // by idempotency key) or retried at its old time.
        warn!(error = %err, "cannot update the webhook outbox");
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
/// twice nor goes over the limits, and what holds back a session's replies.
#[derive(Debug, Default)]
struct InFlight {
    /// Outbox ids: they stay due in the store until their attempt ends.
    ids: HashSet<String>,
    /// Attempts per endpoint (`@session-ended` for the jobs).
    per_endpoint: HashMap<String, usize>,
    /// Sessions with a reply being delivered now: one at a time each.
    sessions: HashSet<SessionId>,
    /// Replies waiting for a retry, by session: a later reply of the
    /// session waits for them.
    waiting: HashMap<SessionId, BTreeSet<u64>>,
}

impl InFlight {
    fn take(&mut self, entry: &OutboxEntry) {
        self.ids.insert(entry.id.clone());
        *self.per_endpoint.entry(entry.endpoint.clone()).or_default() += 1;
        if let Some((session, _)) = reply_of(entry) {
            self.sessions.insert(session);
        }
    }

    /// `entry`'s attempt ended; `pending`: it stays for a retry.
    fn release(&mut self, entry: &OutboxEntry, pending: bool) {
        self.ids.remove(&entry.id);
        if let Some(n) = self.per_endpoint.get_mut(&entry.endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_endpoint.remove(&entry.endpoint);
            }
        }
        if let Some((session, seq)) = reply_of(entry) {
            self.sessions.remove(&session);
            let seqs = self.waiting.entry(session).or_default();
            if pending {
                seqs.insert(seq);
            } else {
                seqs.remove(&seq);
            }
            if seqs.is_empty() {
                self.waiting.remove(&session);
            }
        }
    }

    /// Whether reply `seq` of `session` must wait: another of the session's
    /// replies is being delivered, or an earlier one waits for a retry.
    fn holds_back(&self, session: SessionId, seq: u64) -> bool {
        self.sessions.contains(&session)
            || self
                .waiting
                .get(&session)
                .and_then(|seqs| seqs.first())
                .is_some_and(|first| *first < seq)
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
/// in all, and of a session's replies only its earliest, when nothing
/// holds it back ([`InFlight::holds_back`]).
fn pick(due: Vec<OutboxEntry>, in_flight: &InFlight, start: Vec<OutboxEntry>) -> Picked {
    let mut per_endpoint = in_flight.per_endpoint.clone();
    let mut taken: HashSet<String> = in_flight.ids.clone();
    let mut sessions: HashSet<SessionId> = HashSet::new();
    for entry in &start {
        *per_endpoint.entry(entry.endpoint.clone()).or_default() += 1;
        taken.insert(entry.id.clone());
        if let Some((session, _)) = reply_of(entry) {
            sessions.insert(session);
        }
    }
    // The earliest due reply of each session: only it may go now.
    let mut earliest: HashMap<SessionId, u64> = HashMap::new();
    for (session, seq) in due.iter().filter_map(reply_of) {
        earliest
            .entry(session)
            .and_modify(|first| *first = (*first).min(seq))
            .or_insert(seq);
    }
    let mut picked = Picked {
        start,
        ..Picked::default()
    };
    for entry in due {
        if taken.contains(&entry.id) {
            continue;
        }
        // Held back behind the session's earlier replies: not counted as
        // skipped, which would read further for other endpoints' entries.
        if let Some((session, seq)) = reply_of(&entry)
            && (sessions.contains(&session)
                || earliest.get(&session) != Some(&seq)
                || in_flight.holds_back(session, seq))
        {
            continue;
        }
        if in_flight.ids.len() + picked.start.len() >= IN_FLIGHT {
            picked.full = true;
            break;
        }
        let endpoint_limit = if entry.channel_account().is_some() {
            IN_FLIGHT_PER_ACCOUNT
        } else {
            IN_FLIGHT_PER_ENDPOINT
        };
        let n_endpoint = per_endpoint.entry(entry.endpoint.clone()).or_default();
        if *n_endpoint >= endpoint_limit {
            picked.n_skipped += 1;
            continue;
        }
        *n_endpoint += 1;
        taken.insert(entry.id.clone());
        if let Some((session, _)) = reply_of(&entry) {
            sessions.insert(session);
        }
        picked.start.push(entry);
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

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
            in_flight.release(entry, false);
        }
        assert!(in_flight.ids.is_empty() && in_flight.per_endpoint.is_empty());
    }

    /// Reply `seq` of `session` to account `wx`.
    fn reply(session: u64, seq: u64) -> OutboxEntry {
        let route = engine::session::ReplyRoute {
            account: "wx".into(),
            to: "openid".into(),
            context: None,
        };
        OutboxEntry::channel_reply(
            &route,
            &ChannelReply {
                session: SessionId(session),
                seq,
                to: "openid".into(),
                text: format!("reply {seq}"),
                context: None,
            },
            5,
        )
    }

    fn started(picked: &Picked) -> Vec<&str> {
        picked.start.iter().map(|e| e.event_id.as_str()).collect()
    }

    #[test]
    fn a_sessions_replies_go_one_at_a_time_in_seq_order() {
        // Due out of order (a retried reply is due later than it was
        // written): only each session's earliest starts.
        let due = vec![reply(1, 7), reply(2, 3), reply(1, 5), reply(1, 9)];
        let picked = pick(due.clone(), &InFlight::default(), Vec::new());
        assert_eq!(started(&picked), ["reply-2-3", "reply-1-5"]);
        // Held back, not skipped: no reason to read further.
        assert_eq!(picked.n_skipped, 0);

        // While 1/5 is delivered, nothing else of session 1 starts.
        let mut in_flight = InFlight::default();
        in_flight.take(&reply(1, 5));
        let picked = pick(vec![reply(1, 7)], &in_flight, Vec::new());
        assert_eq!(started(&picked), Vec::<&str>::new());

        // 1/5 failed and waits for its retry: 1/7 waits too, session 2 goes.
        in_flight.release(&reply(1, 5), true);
        let picked = pick(vec![reply(1, 7), reply(2, 4)], &in_flight, Vec::new());
        assert_eq!(started(&picked), ["reply-2-4"]);

        // 1/5 is due again and goes first; once it is delivered, 1/7 goes.
        let picked = pick(vec![reply(1, 5), reply(1, 7)], &in_flight, Vec::new());
        assert_eq!(started(&picked), ["reply-1-5"]);
        in_flight.take(&reply(1, 5));
        in_flight.release(&reply(1, 5), false);
        let picked = pick(vec![reply(1, 7)], &in_flight, Vec::new());
        assert_eq!(started(&picked), ["reply-1-7"]);
        assert!(in_flight.waiting.is_empty() && in_flight.sessions.is_empty());
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
