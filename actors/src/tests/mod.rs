//! Actor tests: the whole system over a real store, driven through the
//! [`Switchboard`] handle. Timing tests run on tokio's paused clock over the
//! in-memory store (a file's IO happens outside the runtime, and the paused
//! clock would jump past timers while it is in flight); crash tests use a
//! real SQLite file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use engine::Millis;
use engine::agent::{Agent, Capacity, Role};
use engine::channel::{Channel, ChannelRegistry};
use engine::customer::{Customer, Identity};
use engine::envelope::Envelope;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::presence::PresenceRequest;
use engine::routing::RuleSet;
use engine::session::SessionState;
use engine::store::{
    Interaction, MemoryStore, Sender, SqliteStore, Store, StoreError, StoredMessage, WriteOp,
};
use tokio::sync::watch;
use tokio::time::timeout;

use crate::{Ack, ApiError, Event, EventKind, RuntimeConfig, Switchboard, TransferTarget};

mod conversation;
mod customer;
mod passivation;
mod queue;
mod race;
mod routing;

const RULES: &str = r#"
[[rule]]
name = "vip"
filter = 'customer.tier == "vip"'
  [[rule.step]]
  sticky = true
  group = "gold_service"
  timeout = "20s"
  [[rule.step]]
  group = "gold_service"
  timeout = "30s"
  [[rule.step]]
  group = "default"

[[rule]]
name = "everyone_else"
filter = "true"
  [[rule.step]]
  group = "default"
"#;

fn agent(id: &str, groups: &[&str]) -> Agent {
    Agent {
        id: AgentId::new(id),
        display_name: id.to_uppercase(),
        role: Role::Expert,
        skills: Default::default(),
        groups: groups.iter().map(GroupId::new).collect(),
        languages: vec!["zh-CN".into()],
        capacity: Capacity::default(),
    }
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        offer_timeout: Duration::from_secs(15),
        wrap_up: Duration::ZERO,
        passivate_after: Duration::from_secs(600),
        n_session_shards: 2,
        ..RuntimeConfig::default()
    }
}

/// Groups gold_service and default; ann and bob in default, gina in
/// gold_service; customers: vip (tier vip, on web and wechat) and plain.
async fn start(store: Arc<dyn Store>, config: RuntimeConfig) -> Switchboard {
    let groups = vec![
        SkillGroup::new("gold_service", "Gold"),
        SkillGroup::new("default", "Default"),
    ];
    let agents = vec![
        agent("ann", &["default"]),
        agent("bob", &["default"]),
        agent("gina", &["gold_service"]),
    ];
    let mut vip = Customer::new("vip", "Wang Fang");
    vip.tier = "vip".into();
    vip.identities = vec![
        Identity {
            channel: Channel::Web,
            external_id: "v-web".into(),
        },
        Identity {
            channel: Channel::Wechat,
            external_id: "v-wx".into(),
        },
    ];
    let mut plain = Customer::new("plain", "Li Lei");
    plain.identities = vec![Identity {
        channel: Channel::Web,
        external_id: "p-web".into(),
    }];
    Switchboard::seed(store.as_ref(), agents, groups, vec![vip, plain])
        .await
        .unwrap();
    let rules = RuleSet::parse(RULES, "test.toml").unwrap();
    Switchboard::start(store, rules, ChannelRegistry::default(), config)
        .await
        .unwrap()
}

fn envelope(channel: Channel, external_id: &str, text: &str, client_id: &str) -> Envelope {
    Envelope {
        channel,
        customer_id: external_id.into(),
        message: text.into(),
        timestamp: chrono::Utc::now(),
        client_message_id: Some(client_id.into()),
        display_name: None,
    }
}

fn id(name: &str) -> AgentId {
    AgentId::new(name)
}

async fn available(board: &Switchboard, agents: &[&str]) {
    for agent in agents {
        board
            .set_presence(&id(agent), PresenceRequest::Available)
            .await
            .unwrap();
    }
}

/// The next event matching `wanted`, skipping others; fails after 5 minutes of (paused) time.
async fn next_event(
    events: &mut crate::event::Subscription,
    wanted: impl Fn(&EventKind) -> bool,
) -> Event {
    timeout(Duration::from_secs(300), async {
        loop {
            let event = events.recv().await.expect("subscription open");
            if wanted(&event.kind) {
                return std::sync::Arc::unwrap_or_clone(event);
            }
        }
    })
    .await
    .expect("event arrived")
}

fn is_offer(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Offered { .. })
}

async fn offered_session(events: &mut crate::event::Subscription) -> SessionId {
    next_event(events, is_offer).await.session
}

fn bodies(events: &[Event]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message { body, .. } => Some((e.seq, body.clone())),
            _ => None,
        })
        .collect()
}

/// A memory store whose writes wait while the gate is closed, to see who
/// waits for a write in flight, and that can fail chosen writes.
struct GatedStore {
    inner: MemoryStore,
    open: watch::Sender<bool>,
    n_writes_waiting: AtomicUsize,
    /// A write carrying an op that matches fails, as the failure says.
    failing: std::sync::Mutex<Option<(OpFilter, Failure)>>,
}

/// Picks the ops whose writes fail.
type OpFilter = Box<dyn Fn(&WriteOp) -> bool + Send + Sync>;

/// How a chosen write fails.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// Nothing is written (SQLite rolled back, Scylla was not reached).
    Refused,
    /// The batch is written, and its answer is lost (a Scylla request timeout).
    AppliedButUnanswered,
}

impl GatedStore {
    fn new() -> GatedStore {
        GatedStore {
            inner: MemoryStore::new(),
            open: watch::Sender::new(true),
            n_writes_waiting: AtomicUsize::new(0),
            failing: std::sync::Mutex::new(None),
        }
    }

    /// Fails, from now on, every write that carries a message with `body`.
    fn fail_writes_of(&self, body: &str) {
        self.fail_writes_where(Failure::Refused, has_body(body));
    }

    /// Writes, from now on, every write that carries a message with `body`,
    /// and answers that its outcome is unknown.
    fn lose_answers_to_writes_of(&self, body: &str) {
        self.fail_writes_where(Failure::AppliedButUnanswered, has_body(body));
    }

    /// Fails, from now on, every write that carries an op `matches` picks.
    fn fail_writes_where(
        &self,
        failure: Failure,
        matches: impl Fn(&WriteOp) -> bool + Send + Sync + 'static,
    ) {
        *self.failing.lock().unwrap() = Some((Box::new(matches), failure));
    }

    /// Holds writes back from now on.
    fn close_gate(&self) {
        self.open.send_replace(false);
    }

    /// Lets every write through.
    fn open_gate(&self) {
        self.open.send_replace(true);
    }

    /// Returns once a write waits at the closed gate.
    async fn until_a_write_waits(&self) {
        while self.n_writes_waiting.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Picks the op that appends a message with `body`.
fn has_body(body: &str) -> impl Fn(&WriteOp) -> bool + Send + Sync + 'static {
    let body = body.to_owned();
    move |op| matches!(op, WriteOp::AppendMessage(message) if message.body == body)
}

#[async_trait]
impl Store for GatedStore {
    async fn get_ticket(
        &self,
        id: &engine::ids::TicketId,
    ) -> Result<Option<engine::ticket::Ticket>, StoreError> {
        self.inner.get_ticket(id).await
    }
    async fn tickets_of_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<engine::ticket::Ticket>, StoreError> {
        self.inner.tickets_of_customer(customer, limit).await
    }
    async fn ticket_events(
        &self,
        ticket: &engine::ids::TicketId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<engine::ticket::TicketEvent>, StoreError> {
        self.inner.ticket_events(ticket, after_seq, limit).await
    }
    async fn list_articles(&self) -> Result<Vec<engine::kb::Article>, StoreError> {
        self.inner.list_articles().await
    }
    async fn list_templates(&self) -> Result<Vec<engine::assist::ReplyTemplate>, StoreError> {
        self.inner.list_templates().await
    }
    async fn get_summary(
        &self,
        session: SessionId,
    ) -> Result<Option<engine::summary::SessionSummary>, StoreError> {
        self.inner.get_summary(session).await
    }
    async fn outbox_due(
        &self,
        now: engine::Millis,
        limit: usize,
    ) -> Result<Vec<engine::outbox::OutboxEntry>, StoreError> {
        self.inner.outbox_due(now, limit).await
    }
    async fn write(&self, batch: &[WriteOp]) -> Result<(), StoreError> {
        self.n_writes_waiting.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.subscribe();
        // The sender lives in `self`, so the wait cannot fail.
        let _ = open.wait_for(|open| *open).await;
        self.n_writes_waiting.fetch_sub(1, Ordering::SeqCst);
        let failure = match &*self.failing.lock().unwrap() {
            Some((matches, failure)) if batch.iter().any(matches) => Some(*failure),
            _ => None,
        };
        match failure {
            None => self.inner.write(batch).await,
            Some(Failure::Refused) => {
                Err(StoreError::Backend("this write fails on purpose".into()))
            }
            Some(Failure::AppliedButUnanswered) => {
                self.inner.write(batch).await?;
                Err(StoreError::OutcomeUnknown {
                    reason: "this write's answer is lost on purpose".into(),
                })
            }
        }
    }
    async fn get_customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        self.inner.get_customer(id).await
    }
    async fn find_customer_by_identity(
        &self,
        channel: &Channel,
        external_id: &str,
    ) -> Result<Option<CustomerId>, StoreError> {
        self.inner
            .find_customer_by_identity(channel, external_id)
            .await
    }
    async fn get_session(
        &self,
        id: SessionId,
    ) -> Result<Option<engine::session::Session>, StoreError> {
        self.inner.get_session(id).await
    }
    async fn sessions_of_customer(
        &self,
        id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<engine::session::Session>, StoreError> {
        self.inner.sessions_of_customer(id, limit).await
    }
    async fn open_sessions(&self) -> Result<Vec<engine::session::Session>, StoreError> {
        self.inner.open_sessions().await
    }
    async fn messages(
        &self,
        session: SessionId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.inner.messages(session, after_seq, limit).await
    }
    async fn interactions(
        &self,
        customer: &CustomerId,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Interaction>, StoreError> {
        self.inner.interactions(customer, now, limit).await
    }
    async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.inner.purge_expired(now).await
    }
    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.inner.list_agents().await
    }
    async fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        self.inner.get_agent(id).await
    }
    async fn list_groups(&self) -> Result<Vec<SkillGroup>, StoreError> {
        self.inner.list_groups().await
    }
}
