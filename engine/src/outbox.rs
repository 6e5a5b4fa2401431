//! The webhook outbox: events waiting to be delivered to an outbound
//! webhook, stored so that a restart loses none.
//!
//! An event is written to the outbox in the same store batch as the change
//! it reports, once per configured endpoint. A delivery worker sends what is
//! due, deletes what was delivered, and reschedules the rest with
//! [`backoff`]; an entry that failed [`OutboxEntry::attempts`] times past the
//! limit is kept, marked dead, for an operator to inspect.
//!
//! The outbox also holds the server's own follow-up work on a session that
//! ended ([`OutboxEntry::session_ended`], endpoint [`SESSION_ENDED_JOB`]):
//! it is written in the batch that stores the session's final state, so a
//! crash right after the end loses neither the summary nor the
//! `session.closed` webhook. The worker runs it like a delivery, with the
//! same retries.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::ids::SessionId;
use crate::session::ReplyRoute;

/// The endpoint of a session-ended job: the session's summary and its
/// `session.*` webhook events, made by the server itself. Configured
/// endpoint names cannot start with `@`.
pub const SESSION_ENDED_JOB: &str = "@session-ended";

/// The endpoint of agents' replies through a channel account:
/// `@channel/<account name>`. The account's courier delivers them.
pub const CHANNEL_ENDPOINT_PREFIX: &str = "@channel/";

/// The event type of an agent's reply waiting for its channel account.
pub const CHANNEL_REPLY_EVENT: &str = "message.deliver";

/// An agent's reply to a customer on a message platform, as the outbox
/// keeps it for the account's adapter (the entry's JSON payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelReply {
    /// The session the reply is in.
    pub session: SessionId,
    /// The reply's `seq` in it.
    pub seq: u64,
    /// The customer's id on the platform.
    pub to: String,
    /// The text.
    pub text: String,
    /// The route's context for the adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl ChannelReply {
    /// The delivery's id, `reply-<session>-<seq>`: the same on every
    /// retry, sent to the platform as its idempotency key.
    pub fn delivery_id(&self) -> String {
        format!("reply-{}-{}", self.session, self.seq)
    }

    /// The session and `seq` a delivery id names, if it is one.
    pub fn parse_delivery_id(id: &str) -> Option<(SessionId, u64)> {
        let (session, seq) = id.strip_prefix("reply-")?.split_once('-')?;
        Some((SessionId(session.parse().ok()?), seq.parse().ok()?))
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// `<event_id>/<endpoint>`: unique per event and endpoint.
    pub id: String,
    /// The event's id, sent as the idempotency key: the same on every retry,
    /// so a receiver recognises a duplicate.
    pub event_id: String,
    /// The configured webhook it goes to (by name).
    pub endpoint: String,
    /// `ticket.created`, `ticket.updated`, `session.closed`, …
    pub event_type: String,
    /// The JSON body to send.
    pub payload: String,
    /// When the event happened.
    pub created_at: Millis,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// Not sent before this time.
    pub next_attempt_at: Millis,
    /// What the last failure was.
    pub last_error: Option<String>,
    /// Given up on: not sent again.
    pub dead: bool,
}

impl OutboxEntry {
    /// A new entry for `endpoint`, due at once.
    pub fn new(
        event_id: &str,
        endpoint: &str,
        event_type: &str,
        payload: String,
        now: Millis,
    ) -> Self {
        OutboxEntry {
            id: format!("{event_id}/{endpoint}"),
            event_id: event_id.to_owned(),
            endpoint: endpoint.to_owned(),
            event_type: event_type.to_owned(),
            payload,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            dead: false,
        }
    }

    /// The job for a session that ended (closed, or abandoned when
    /// `abandoned`): one per session, its id `ended-<session>`, the session
    /// id as payload.
    pub fn session_ended(session: SessionId, abandoned: bool, now: Millis) -> Self {
        let event_type = if abandoned {
            "session.abandoned"
        } else {
            "session.closed"
        };
        OutboxEntry::new(
            &format!("ended-{session}"),
            SESSION_ENDED_JOB,
            event_type,
            session.to_string(),
            now,
        )
    }

    /// The entry that takes `reply` to the customer through `route`'s account.
    pub fn channel_reply(route: &ReplyRoute, reply: &ChannelReply, now: Millis) -> Self {
        OutboxEntry::new(
            &reply.delivery_id(),
            &format!("{CHANNEL_ENDPOINT_PREFIX}{}", route.account),
            CHANNEL_REPLY_EVENT,
            serde_json::to_string(reply).expect("a reply serializes"),
            now,
        )
    }

    /// The channel account of an agent's reply; `None` for anything else.
    pub fn channel_account(&self) -> Option<&str> {
        self.endpoint.strip_prefix(CHANNEL_ENDPOINT_PREFIX)
    }

    /// The session of a session-ended job; `None` for a webhook delivery.
    pub fn ended_session(&self) -> Option<SessionId> {
        if self.endpoint != SESSION_ENDED_JOB {
            return None;
        }
        self.payload.parse().ok().map(SessionId)
    }

    /// Records a failed attempt: due again after the backoff, or dead once
    /// `max_attempts` have failed.
    pub fn failed(&mut self, error: String, now: Millis, policy: &RetryPolicy) {
        self.attempts += 1;
        self.last_error = Some(error);
        self.dead = self.attempts >= policy.max_attempts;
        self.next_attempt_at = now + backoff(self.attempts, policy);
    }

    /// [`Self::failed`] with full jitter: due again after a wait drawn
    /// uniformly between zero and the backoff, `roll` being the draw in
    /// `[0, 1]`. Endpoints that failed together (an outage) then retry
    /// spread out instead of all at once.
    pub fn failed_with_jitter(
        &mut self,
        error: String,
        now: Millis,
        policy: &RetryPolicy,
        roll: f64,
    ) {
        self.failed(error, now, policy);
        self.next_attempt_at = now + full_jitter(backoff(self.attempts, policy), roll);
    }
}

/// How deliveries are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; it doubles after each further one.
    pub initial_ms: Millis,
    /// The longest wait.
    pub max_ms: Millis,
    /// Failures before an entry is given up.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_ms: 1_000,
            max_ms: 10 * 60 * 1_000,
            max_attempts: 20,
        }
    }
}

/// The wait after `attempts` failures: `initial_ms` doubled per further
/// failure, at most `max_ms`.
pub fn backoff(attempts: u32, policy: &RetryPolicy) -> Millis {
    let doublings = attempts.saturating_sub(1).min(30);
    policy
        .initial_ms
        .saturating_mul(1 << doublings)
        .min(policy.max_ms)
}

/// `wait` scaled by `roll`, clamped to `[0, 1]` (a NaN roll waits the
/// whole `wait`).
pub fn full_jitter(wait: Millis, roll: f64) -> Millis {
    let roll = if roll.is_nan() {
        1.0
    } else {
        roll.clamp(0.0, 1.0)
    };
    (wait as f64 * roll).round() as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_reply_names_its_account_and_its_delivery_id_its_message() {
        let route = ReplyRoute {
            account: "wx-main".into(),
            to: "o6_bmjrPTlm6".into(),
            context: None,
        };
        let reply = ChannelReply {
            session: SessionId(7412),
            seq: 9,
            to: route.to.clone(),
            text: "您好".into(),
            context: None,
        };
        let entry = OutboxEntry::channel_reply(&route, &reply, 5);
        assert_eq!(entry.endpoint, "@channel/wx-main");
        assert_eq!(entry.channel_account(), Some("wx-main"));
        assert_eq!(entry.event_id, "reply-7412-9");
        assert_eq!(
            ChannelReply::parse_delivery_id(&entry.event_id),
            Some((SessionId(7412), 9))
        );
        assert_eq!(
            serde_json::from_str::<ChannelReply>(&entry.payload).unwrap(),
            reply
        );
        for bad in ["reply-x-1", "reply-1", "ended-1-2", "reply-1-", ""] {
            assert_eq!(ChannelReply::parse_delivery_id(bad), None, "{bad}");
        }
        let webhook = OutboxEntry::new("evt", "crm", "ticket.created", "{}".into(), 5);
        assert_eq!(webhook.channel_account(), None);
    }

    #[test]
    fn full_jitter_draws_between_zero_and_the_backoff() {
        let check = |wait: Millis, roll: f64, expected: Millis| {
            assert_eq!(full_jitter(wait, roll), expected, "{wait} × {roll}");
        };
        check(1_000, 0.0, 0);
        check(1_000, 0.25, 250);
        check(1_000, 1.0, 1_000);
        check(1_000, -3.0, 0);
        check(1_000, 7.0, 1_000);
        check(1_000, f64::NAN, 1_000);
        check(600_000, 0.5, 300_000);
    }

    #[test]
    fn a_jittered_failure_is_due_within_the_backoff() {
        let policy = RetryPolicy {
            initial_ms: 100,
            max_ms: 1_000,
            max_attempts: 3,
        };
        let mut entry = OutboxEntry::new("evt-1", "crm", "ticket.created", "{}".into(), 5);
        entry.failed_with_jitter("500".into(), 10, &policy, 0.5);
        assert_eq!((entry.attempts, entry.next_attempt_at), (1, 60));
        entry.failed_with_jitter("500".into(), 100, &policy, 0.5);
        assert_eq!((entry.attempts, entry.next_attempt_at), (2, 200));
        entry.failed_with_jitter("500".into(), 300, &policy, 0.0);
        assert_eq!(
            (entry.attempts, entry.dead, entry.next_attempt_at),
            (3, true, 300)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            initial_ms: 100,
            max_ms: 1_000,
            max_attempts: 4,
        };
        let waits: Vec<Millis> = (1..=6).map(|n| backoff(n, &policy)).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff(u32::MAX, &RetryPolicy::default()), 600_000);
    }

    #[test]
    fn a_session_ended_job_names_its_session_and_event() {
        let job = OutboxEntry::session_ended(SessionId(42), false, 7);
        assert_eq!(
            (
                job.id.as_str(),
                job.endpoint.as_str(),
                job.event_type.as_str()
            ),
            (
                "ended-42/@session-ended",
                SESSION_ENDED_JOB,
                "session.closed"
            )
        );
        assert_eq!(
            (job.ended_session(), job.next_attempt_at),
            (Some(SessionId(42)), 7)
        );
        let abandoned = OutboxEntry::session_ended(SessionId(43), true, 7);
        assert_eq!(abandoned.event_type, "session.abandoned");
        let delivery = OutboxEntry::new("evt-1", "crm", "session.closed", "42".into(), 5);
        assert_eq!(delivery.ended_session(), None);
    }

    #[test]
    fn entries_die_after_the_last_attempt() {
        let policy = RetryPolicy {
            initial_ms: 100,
            max_ms: 1_000,
            max_attempts: 2,
        };
        let mut entry = OutboxEntry::new("evt-1", "crm", "ticket.created", "{}".into(), 5);
        assert_eq!((entry.id.as_str(), entry.next_attempt_at), ("evt-1/crm", 5));
        entry.failed("connection refused".into(), 10, &policy);
        assert_eq!(
            (entry.attempts, entry.dead, entry.next_attempt_at),
            (1, false, 110)
        );
        entry.failed("500".into(), 200, &policy);
        assert_eq!((entry.attempts, entry.dead), (2, true));
        assert_eq!(entry.last_error.as_deref(), Some("500"));
    }
}
