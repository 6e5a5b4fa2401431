//! [`TestStore`]: the one store of the actor tests that are about the
//! store's timing or failures. A [`MemoryStore`] with hooks: writes held
//! back at a gate or failed on purpose, reads of a session held back, and
//! reads of a session's record counted (one per start of its actor).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use engine::Millis;
use engine::agent::Agent;
use engine::channel::Channel;
use engine::customer::Customer;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, SessionId};
use engine::message::StoredMessage;
use store::{Interaction, MemoryStore, Store, StoreError, WriteOp};
use tokio::sync::watch;

/// A memory store with hooks on its reads and writes.
pub(super) struct TestStore {
    inner: MemoryStore,
    /// Writes wait while this is false.
    writes_open: watch::Sender<bool>,
    n_writes_waiting: AtomicUsize,
    /// A write carrying an op that matches fails, as the failure says.
    failing: Mutex<Option<(OpFilter, Failure)>>,
    /// Sessions whose record and messages cannot be read for now.
    reads_held: watch::Sender<BTreeSet<SessionId>>,
    n_reads_waiting: AtomicUsize,
    /// Reads of each session's record.
    n_record_reads: Mutex<HashMap<SessionId, usize>>,
}

/// Picks the ops whose writes fail.
type OpFilter = Box<dyn Fn(&WriteOp) -> bool + Send + Sync>;

/// How a chosen write fails.
#[derive(Debug, Clone, Copy)]
pub(super) enum Failure {
    /// Nothing is written (SQLite rolled back, Scylla was not reached).
    Refused,
    /// The batch is written, and its answer is lost (a Scylla request timeout).
    AppliedButUnanswered,
}

impl TestStore {
    pub(super) fn new() -> TestStore {
        TestStore {
            inner: MemoryStore::new(),
            writes_open: watch::Sender::new(true),
            n_writes_waiting: AtomicUsize::new(0),
            failing: Mutex::new(None),
            reads_held: watch::Sender::new(BTreeSet::new()),
            n_reads_waiting: AtomicUsize::new(0),
            n_record_reads: Mutex::new(HashMap::new()),
        }
    }

    /// Fails, from now on, every write that carries a message with `body`.
    pub(super) fn fail_writes_of(&self, body: &str) {
        self.fail_writes_where(Failure::Refused, has_body(body));
    }

    /// Writes, from now on, every write that carries a message with `body`,
    /// and answers that its outcome is unknown.
    pub(super) fn lose_answers_to_writes_of(&self, body: &str) {
        self.fail_writes_where(Failure::AppliedButUnanswered, has_body(body));
    }

    /// Fails, from now on, every write that carries an op `matches` picks.
    pub(super) fn fail_writes_where(
        &self,
        failure: Failure,
        matches: impl Fn(&WriteOp) -> bool + Send + Sync + 'static,
    ) {
        *self.failing.lock().unwrap() = Some((Box::new(matches), failure));
    }

    /// Holds writes back from now on.
    pub(super) fn close_gate(&self) {
        self.writes_open.send_replace(false);
    }

    /// Lets every write through.
    pub(super) fn open_gate(&self) {
        self.writes_open.send_replace(true);
    }

    /// Returns once a write waits at the closed gate.
    pub(super) async fn until_a_write_waits(&self) {
        while self.n_writes_waiting.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Holds reads of `session`'s record and messages back from now on, as
    /// a slow store would: its actor cannot start.
    pub(super) fn hold_reads_of(&self, session: SessionId) {
        self.reads_held.send_modify(|held| {
            held.insert(session);
        });
    }

    /// Lets reads of `session` through again.
    pub(super) fn release_reads_of(&self, session: SessionId) {
        self.reads_held.send_modify(|held| {
            held.remove(&session);
        });
    }

    /// Returns once a read waits because it is held back.
    pub(super) async fn until_a_read_waits(&self) {
        while self.n_reads_waiting.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// How often `session`'s record was read: once per start of its actor
    /// from the store (a new session's first start reads none).
    pub(super) fn n_record_reads(&self, session: SessionId) -> usize {
        self.n_record_reads
            .lock()
            .unwrap()
            .get(&session)
            .copied()
            .unwrap_or(0)
    }

    /// Waits while reads of `session` are held back.
    async fn read_of(&self, session: SessionId) {
        if !self.reads_held.borrow().contains(&session) {
            return;
        }
        self.n_reads_waiting.fetch_add(1, Ordering::SeqCst);
        let mut held = self.reads_held.subscribe();
        // The sender lives in `self`, so the wait cannot fail.
        let _ = held.wait_for(|held| !held.contains(&session)).await;
        self.n_reads_waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Picks the op that appends a message with `body`.
fn has_body(body: &str) -> impl Fn(&WriteOp) -> bool + Send + Sync + 'static {
    let body = body.to_owned();
    move |op| matches!(op, WriteOp::AppendMessage(message) if message.body == body)
}

#[async_trait]
impl Store for TestStore {
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
        let mut open = self.writes_open.subscribe();
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
        *self.n_record_reads.lock().unwrap().entry(id).or_default() += 1;
        self.read_of(id).await;
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
        self.read_of(session).await;
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
