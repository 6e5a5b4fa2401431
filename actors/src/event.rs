//! What subscribers (the gateway's sockets) receive, and the hub that fans
//! events out per customer and per agent.
//!
//! Every event carries the session's sequence number: messages and state
//! changes share one counter, and both are stored, so a client that resumes
//! from its last seen `seq` gets everything it missed from the store.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use engine::Millis;
use engine::channel::Channel;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::message::{Sender, StoredMessage};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::group::QueueStatus;

/// One event of one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The session.
    pub session: SessionId,
    /// The session's sequence number of this event.
    pub seq: u64,
    /// When it happened.
    pub at: Millis,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A customer or agent message.
    Message {
        /// Who wrote it.
        sender: Sender,
        /// The text.
        body: String,
        /// The sender's id for it, for the sender's own dedup.
        client_message_id: Option<String>,
        /// The channel it travelled on.
        channel: Channel,
    },
    /// The session waits in a group's queue.
    Queued {
        /// The group.
        group: GroupId,
    },
    /// The session is offered to an agent, who must accept before `deadline`.
    Offered {
        /// The agent.
        agent: AgentId,
        /// Accept by this time.
        deadline: Millis,
    },
    /// The offer lapsed or was rejected; the session waits again.
    OfferLapsed {
        /// The agent that had it.
        agent: AgentId,
    },
    /// An agent took the session.
    Assigned {
        /// The agent.
        agent: AgentId,
        /// The agent's name, for the customer.
        display_name: String,
    },
    /// The session moved on to another group or agent.
    Transferred {
        /// The agent that handed it on.
        from: AgentId,
    },
    /// The conversation ended; the agent writes notes.
    WrapUp,
    /// Done.
    Closed {
        /// The agent's note.
        summary: Option<String>,
    },
    /// The customer left before an agent answered.
    Abandoned,
    /// The other party is typing. Ephemeral: never stored, it does not take a
    /// `seq` of its own but carries the last one published before it, and a
    /// subscriber that cannot keep up misses it rather than being dropped.
    Typing {
        /// Who is typing.
        sender: Sender,
    },
    /// Where a waiting session stands in its group's queue, pushed by the
    /// SkillGroup to the customer when it changed. Ephemeral like `Typing`
    /// but not from the session: its `seq` is 0, and a socket gives it the
    /// last `seq` it sent of the session.
    QueuePosition(QueueStatus),
    /// The customer rated the conversation (after wrap-up started); stored.
    Rated {
        /// Satisfaction, 1 (worst) to 5 (best).
        score: u8,
        /// What the customer wrote with it.
        comment: Option<String>,
    },
    /// Something happened to the phone call a session is (stored).
    Call(CallEvent),
    /// What became of an agent's message on its way to the customer's
    /// message platform (a channel account); stored, for agents only.
    Delivery(DeliveryReport),
    /// A supervisor moved the waiting session or changed its priority;
    /// stored, for staff only.
    Steered {
        /// Who.
        by: engine::supervision::Actor,
        /// What changed.
        steer: engine::supervision::Steer,
        /// Why, in their words.
        reason: String,
    },
    /// A supervisor started following the session live, changed how, or
    /// stopped (`mode` none); stored, for staff only.
    Monitored {
        /// Who.
        by: engine::supervision::Actor,
        /// How they follow it now; none: they stopped.
        mode: Option<engine::supervision::MonitorMode>,
    },
    /// A reply the customer waited for was not sent by its due time
    /// (`[[response]]` targets, docs/supervisor.md); stored, for staff only.
    ResponseBreached {
        /// First reply or a next one.
        kind: engine::routing::ResponseKind,
        /// When it was due.
        due: Millis,
        /// When the customer's unanswered message came.
        since: Millis,
        /// The group the session was in.
        group: Option<GroupId>,
    },
    /// When the reply the customer waits for is due, or that none is owed
    /// (both `None`). Ephemeral like `Typing`: never stored, carrying the
    /// last published `seq`; for the agent and supervisors following.
    ResponseDue {
        /// First reply or a next one.
        kind: Option<engine::routing::ResponseKind>,
        /// When it is due.
        due: Option<Millis>,
    },
    /// A supervisor's note to the agent, which the customer never sees; stored.
    Whisper {
        /// The supervisor.
        from: AgentId,
        /// The text.
        body: String,
        /// The supervisor's id for it, for their own dedup.
        client_message_id: Option<String>,
    },
}

/// Where an agent's message to a platform customer stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// The `seq` of the agent's message.
    pub of: u64,
    /// The channel account it goes through.
    pub account: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// The platform's error code, for `retrying` and `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why, for `retrying` and `failed`: the platform's reason in words an
    /// agent can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The states of a delivery, in the order they can follow each other;
/// `delivered` and `failed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// In the outbox, stored with the message, not sent yet.
    Queued,
    /// A first attempt failed for now (the platform is down, slow or
    /// limiting); the outbox tries again with backoff.
    Retrying,
    /// The platform took it.
    Sent,
    /// The platform reports it reached the customer (a delivery receipt).
    Delivered,
    /// It will not be delivered: the platform refused it (outside its reply
    /// window, a blocked user) or every retry failed.
    Failed,
}

impl DeliveryState {
    /// `queued`, `retrying`, `sent`, `delivered` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// Nothing follows it.
    pub fn is_final(self) -> bool {
        matches!(self, DeliveryState::Delivered | DeliveryState::Failed)
    }

    /// Whether a report of `next` after this one is news: a state is
    /// reported once, a final one is never followed, and a late report of
    /// an earlier state (a retry that raced the success) is dropped. A
    /// failure may follow `sent` (a platform's receipt says it failed).
    pub fn is_followed_by(self, next: DeliveryState) -> bool {
        !self.is_final() && next > self
    }
}

/// What happens to a phone call, as recorded in its session's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "call")]
pub enum CallEvent {
    /// The call came in: always a session's first event.
    Started {
        /// The caller's number as signalled (P-Asserted-Identity, else From).
        from: String,
        /// What the caller keyed in the IVR menu before queueing; `""` for none.
        digits: String,
    },
    /// An agent's phone rings with the call's offer.
    Ringing {
        /// Whose phone.
        agent: AgentId,
    },
    /// The agent's phone answered: caller and agent are connected.
    Answered {
        /// Who answered.
        agent: AgentId,
    },
    /// The caller is put on hold (hears hold audio).
    Held,
    /// The caller is back from hold.
    Resumed,
    /// Digits keyed during the call.
    Digits {
        /// The keys, in order.
        digits: String,
    },
    /// The call ended.
    Ended {
        /// Who or what ended it.
        by: CallEnd,
        /// How long caller and agent were connected, in ms (0 if never).
        talk_ms: u64,
    },
}

/// Who or what ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEnd {
    /// The caller hung up (BYE or CANCEL).
    Caller,
    /// The agent hung up (from the phone or the desktop).
    Agent,
    /// The process holding the call stopped; found open at the next start.
    Dropped,
}

/// What the assigned agent does to a call, from the desktop or the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallControl {
    /// Put the caller on hold (they hear hold audio).
    Hold,
    /// Take the caller off hold.
    Resume,
    /// Hang up: the call ends (`ended` by agent) and the session goes to wrap-up.
    HangUp,
}

impl EventKind {
    /// Live only: never stored, it carries the last `seq` published of its
    /// session (or 0), not one of its own.
    pub fn is_ephemeral(&self) -> bool {
        matches!(
            self,
            EventKind::Typing { .. } | EventKind::QueuePosition(_) | EventKind::ResponseDue { .. }
        )
    }
}

impl CallEvent {
    /// The caller's IVR digits, if this is a call's first event.
    pub fn started_digits(&self) -> Option<&str> {
        match self {
            CallEvent::Started { digits, .. } => Some(digits),
            _ => None,
        }
    }

    /// The call event a stored row records, if it records one.
    pub fn stored_in(message: &StoredMessage) -> Option<CallEvent> {
        if message.sender != Sender::System {
            return None;
        }
        match Event::from_stored(message).kind {
            EventKind::Call(call) => Some(call),
            _ => None,
        }
    }
}

impl Event {
    /// Turns a stored row back into the event it recorded.
    pub fn from_stored(message: &StoredMessage) -> Event {
        let kind = match &message.sender {
            Sender::System => {
                serde_json::from_str(&message.body).unwrap_or_else(|_| EventKind::Message {
                    sender: Sender::System,
                    body: message.body.clone(),
                    client_message_id: None,
                    channel: message.channel.clone(),
                })
            }
            sender => EventKind::Message {
                sender: sender.clone(),
                body: message.body.clone(),
                client_message_id: message.client_message_id.clone(),
                channel: message.channel.clone(),
            },
        };
        Event {
            session: message.session_id,
            seq: message.seq,
            at: message.at,
            kind,
        }
    }

    /// The stored row that records this event.
    pub fn to_stored(&self, channel: &Channel) -> StoredMessage {
        let (sender, body, client_message_id) = match &self.kind {
            EventKind::Message {
                sender,
                body,
                client_message_id,
                ..
            } => (sender.clone(), body.clone(), client_message_id.clone()),
            other => (
                Sender::System,
                serde_json::to_string(other).expect("event kinds serialize"),
                None,
            ),
        };
        StoredMessage {
            session_id: self.session,
            seq: self.seq,
            sender,
            body,
            client_message_id,
            channel: channel.clone(),
            at: self.at,
        }
    }
}

/// Who an event is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Audience {
    /// All of one customer's connections.
    Customer(CustomerId),
    /// All of one agent's desktops.
    Agent(AgentId),
    /// The end (closed or abandoned) of every session: for work that follows
    /// a conversation off the hot path (summaries, webhooks).
    Ended,
    /// Every durable event of one phone call's session: what the process
    /// holding the call's legs acts on (ring the offered agent, hang up,
    /// hold), whoever asked for it.
    Call(SessionId),
}

const N_SHARDS: usize = 64;

/// A subscription: one audience's events (or other items, for a `Hub<T>`),
/// each shared by all its subscribers.
pub type Subscription<T = Event> = mpsc::Receiver<Arc<T>>;

/// One shard of the Hub: each audience's live subscribers.
type Subscribers<T> = HashMap<Audience, Vec<mpsc::Sender<Arc<T>>>>;

/// Per-customer and per-agent subscriptions. Sharded so that publishing from
/// many session actors does not contend on one lock; a subscriber whose
/// channel is full or closed is dropped (it resumes from the store by `seq`).
///
/// Session events use `Hub<Event>`; the data platform keeps a second hub,
/// `Hub<Notice>`, for what is not a session event (ticket changes, the 360°
/// view pushed with an offer).
pub struct Hub<T = Event> {
    shards: Vec<Mutex<Subscribers<T>>>,
    /// In a cluster: hands every published event (but `Ended`s, which the
    /// session's own node follows up) to the other nodes, whose sockets
    /// may subscribe to its audience.
    forward: std::sync::OnceLock<Forward<T>>,
}

/// See [`Hub::forward_to`].
type Forward<T> = Box<dyn Fn(&Audience, &T, bool) + Send + Sync>;

impl<T> Default for Hub<T> {
    fn default() -> Self {
        Hub {
            shards: (0..N_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            forward: std::sync::OnceLock::new(),
        }
    }
}

impl<T: Clone> Hub<T> {
    fn shard(&self, audience: &Audience) -> &Mutex<Subscribers<T>> {
        let mut hasher = DefaultHasher::new();
        audience.hash(&mut hasher);
        &self.shards[hasher.finish() as usize % N_SHARDS]
    }

    /// A new subscription with room for `capacity` undelivered events.
    pub fn subscribe(&self, audience: Audience, capacity: usize) -> Subscription<T> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let mut shard = self.shard(&audience).lock().expect("hub shard lock");
        shard.entry(audience).or_default().push(sender);
        receiver
    }

    /// Drops subscriptions whose receiver is gone (closed sockets of an
    /// audience that nothing was published to since); returns how many.
    pub fn prune_closed(&self) -> usize {
        let mut n_pruned = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().expect("hub shard lock");
            shard.retain(|_, senders| {
                let before = senders.len();
                senders.retain(|sender| !sender.is_closed());
                n_pruned += before - senders.len();
                !senders.is_empty()
            });
        }
        n_pruned
    }

    /// Whether `audience` has a subscriber. One whose socket closed counts
    /// until the next publish to it or prune.
    pub fn has_subscribers(&self, audience: &Audience) -> bool {
        self.shard(audience)
            .lock()
            .expect("hub shard lock")
            .contains_key(audience)
    }

    /// Delivers `event` to every live subscriber of `audience`. A subscriber
    /// that is full is dropped: it resumes from the store by `seq`.
    pub fn publish(&self, audience: &Audience, event: &T) {
        self.deliver_here(audience, event, false);
        self.forward(audience, event, false);
    }

    /// Delivers an ephemeral event (typing), which no store can replay: a
    /// subscriber that is full misses it but stays subscribed.
    pub fn publish_ephemeral(&self, audience: &Audience, event: &T) {
        self.deliver_here(audience, event, true);
        self.forward(audience, event, true);
    }

    /// From now on every event published here but an `Ended` is also handed
    /// to `forward` (once: a node joins one cluster).
    pub fn forward_to(&self, forward: Forward<T>) {
        if self.forward.set(forward).is_err() {
            tracing::warn!("events are forwarded already");
        }
    }

    fn forward(&self, audience: &Audience, event: &T, ephemeral: bool) {
        if let Some(forward) = self.forward.get()
            && *audience != Audience::Ended
        {
            forward(audience, event, ephemeral);
        }
    }

    /// Delivers an event to this node's subscribers only: one published on
    /// another node, or the local half of [`Hub::publish`]; `ephemeral` as
    /// in [`Hub::publish_ephemeral`].
    pub fn deliver_here(&self, audience: &Audience, event: &T, ephemeral: bool) {
        self.deliver(audience, event, ephemeral);
    }

    fn deliver(&self, audience: &Audience, event: &T, keep_when_full: bool) {
        let mut shard = self.shard(audience).lock().expect("hub shard lock");
        let Some(senders) = shard.get_mut(audience) else {
            return;
        };
        // One copy for every subscriber: a queue slot is a pointer, so an
        // idle subscription's first block of slots stays small.
        let event = Arc::new(event.clone());
        senders.retain(|sender| match sender.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => keep_when_full,
            Err(TrySendError::Closed(_)) => false,
        });
        if senders.is_empty() {
            shard.remove(audience);
        }
    }
}

#[cfg(test)]
mod hub_tests {
    use super::*;

    #[test]
    fn an_audience_has_subscribers_while_one_is_open() {
        let hub: Hub = Hub::default();
        let audience = Audience::Customer(CustomerId::new("a"));
        assert!(!hub.has_subscribers(&audience));
        let subscription = hub.subscribe(audience.clone(), 4);
        assert!(hub.has_subscribers(&audience));
        assert!(!hub.has_subscribers(&Audience::Customer(CustomerId::new("b"))));
        drop(subscription);
        hub.prune_closed();
        assert!(!hub.has_subscribers(&audience));
    }

    #[test]
    fn closed_subscriptions_are_pruned_even_without_a_publish() {
        let hub: Hub = Hub::default();
        let kept = hub.subscribe(Audience::Customer(CustomerId::new("a")), 4);
        drop(hub.subscribe(Audience::Customer(CustomerId::new("a")), 4));
        drop(hub.subscribe(Audience::Agent(AgentId::new("gone")), 4));
        assert_eq!(hub.prune_closed(), 2);
        assert_eq!(hub.prune_closed(), 0);
        let event = Event {
            session: SessionId(1),
            seq: 1,
            at: 0,
            kind: EventKind::WrapUp,
        };
        hub.publish(&Audience::Customer(CustomerId::new("a")), &event);
        drop(kept);
    }
}
