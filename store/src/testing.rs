//! [`TestStore`]: the one store of the tests that are about the store's
//! timing or failures (actors' and gateway's), instead of a hand-written
//! delegating wrapper per test. Any store (a [`MemoryStore`] by default, a
//! real [`crate::SqliteStore`] where the test wants one) with hooks: writes
//! held back at a gate or failed on purpose, reads of a session held back,
//! reads of a session's record counted (one per start of its actor), and
//! the whole store cut off, every call failing after a delay as a database
//! behind a dead network does.
//!
//! Built for this crate's tests and, for other crates, with the `testing`
//! feature (a dev-dependency).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::{Interaction, MemoryStore, Store, StoreError, WriteOp};
use async_trait::async_trait;
use engine::Millis;
use engine::agent::Agent;
use engine::channel::Channel;
use engine::customer::Customer;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, SessionId};
use engine::message::StoredMessage;
use tokio::sync::watch;

/// A store with hooks on its reads and writes.
pub struct TestStore {
    inner: Box<dyn Store>,
    /// Every call fails after this delay while set.
    cut_off: Mutex<Option<Duration>>,
    is_cut_off: AtomicBool,
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
    /// `open_sessions` waits while this is true.
    open_sessions_held: watch::Sender<bool>,
    n_open_sessions_waiting: AtomicUsize,
}

/// Picks the ops whose writes fail.
type OpFilter = Box<dyn Fn(&WriteOp) -> bool + Send + Sync>;

/// How a chosen write fails.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Nothing is written (SQLite rolled back, Scylla was not reached).
    Refused,
    /// The batch is written, and its answer is lost (a Scylla request timeout).
    AppliedButUnanswered,
}

impl Default for TestStore {
    fn default() -> Self {
        TestStore::new()
    }
}

impl TestStore {
    /// A memory store with hooks.
    pub fn new() -> TestStore {
        TestStore::over(MemoryStore::new())
    }

    /// `inner` with hooks.
    pub fn over(inner: impl Store + 'static) -> TestStore {
        TestStore {
            inner: Box::new(inner),
            cut_off: Mutex::new(None),
            is_cut_off: AtomicBool::new(false),
            writes_open: watch::Sender::new(true),
            n_writes_waiting: AtomicUsize::new(0),
            failing: Mutex::new(None),
            reads_held: watch::Sender::new(BTreeSet::new()),
            n_reads_waiting: AtomicUsize::new(0),
            n_record_reads: Mutex::new(HashMap::new()),
            open_sessions_held: watch::Sender::new(false),
            n_open_sessions_waiting: AtomicUsize::new(0),
        }
    }

    /// Cuts the store off: from now on every call fails with
    /// [`StoreError::Backend`] after `fail_after` (a request timeout).
    pub fn cut_off(&self, fail_after: Duration) {
        *self.cut_off.lock().unwrap() = Some(fail_after);
        self.is_cut_off.store(true, Ordering::SeqCst);
    }

    /// Connects the store again after [`TestStore::cut_off`].
    pub fn reconnect(&self) {
        self.is_cut_off.store(false, Ordering::SeqCst);
        *self.cut_off.lock().unwrap() = None;
    }

    /// Fails after the delay while the store is cut off.
    async fn reachable(&self) -> Result<(), StoreError> {
        if !self.is_cut_off.load(Ordering::SeqCst) {
            return Ok(());
        }
        let fail_after = self.cut_off.lock().unwrap().unwrap_or_default();
        tokio::time::sleep(fail_after).await;
        Err(StoreError::Backend(
            "test: store unreachable (request timed out)".into(),
        ))
    }

    /// Fails, from now on, every write that carries a message with `body`.
    pub fn fail_writes_of(&self, body: &str) {
        self.fail_writes_where(Failure::Refused, has_body(body));
    }

    /// Writes, from now on, every write that carries a message with `body`,
    /// and answers that its outcome is unknown.
    pub fn lose_answers_to_writes_of(&self, body: &str) {
        self.fail_writes_where(Failure::AppliedButUnanswered, has_body(body));
    }

    /// Fails, from now on, every write that carries an op `matches` picks.
    pub fn fail_writes_where(
        &self,
        failure: Failure,
        matches: impl Fn(&WriteOp) -> bool + Send + Sync + 'static,
    ) {
        *self.failing.lock().unwrap() = Some((Box::new(matches), failure));
    }

    /// Holds writes back from now on.
    pub fn close_gate(&self) {
        self.writes_open.send_replace(false);
    }

    /// Lets every write through.
    pub fn open_gate(&self) {
        self.writes_open.send_replace(true);
    }

    /// Writes waiting at the closed gate now.
    pub fn n_writes_waiting(&self) -> usize {
        self.n_writes_waiting.load(Ordering::SeqCst)
    }

    /// Returns once a write waits at the closed gate.
    pub async fn until_a_write_waits(&self) {
        while self.n_writes_waiting.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Holds reads of `session`'s record and messages back from now on, as
    /// a slow store would: its actor cannot start.
    pub fn hold_reads_of(&self, session: SessionId) {
        self.reads_held.send_modify(|held| {
            held.insert(session);
        });
    }

    /// Lets reads of `session` through again.
    pub fn release_reads_of(&self, session: SessionId) {
        self.reads_held.send_modify(|held| {
            held.remove(&session);
        });
    }

    /// Returns once a read waits because it is held back.
    pub async fn until_a_read_waits(&self) {
        while self.n_reads_waiting.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// How often `session`'s record was read: once per start of its actor
    /// from the store (a new session's first start reads none).
    pub fn n_record_reads(&self, session: SessionId) -> usize {
        self.n_record_reads
            .lock()
            .unwrap()
            .get(&session)
            .copied()
            .unwrap_or(0)
    }

    /// Holds `open_sessions` back from now on, as a slow store would.
    pub fn hold_open_sessions(&self) {
        self.open_sessions_held.send_replace(true);
    }

    /// Lets `open_sessions` through again.
    pub fn release_open_sessions(&self) {
        self.open_sessions_held.send_replace(false);
    }

    /// Returns once an `open_sessions` waits because it is held back.
    pub async fn until_open_sessions_waits(&self) {
        while self.n_open_sessions_waiting.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
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
        self.reachable().await?;
        self.inner.get_ticket(id).await
    }
    async fn tickets_of_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<engine::ticket::Ticket>, StoreError> {
        self.reachable().await?;
        self.inner.tickets_of_customer(customer, limit).await
    }
    async fn ticket_events(
        &self,
        ticket: &engine::ids::TicketId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<engine::ticket::TicketEvent>, StoreError> {
        self.reachable().await?;
        self.inner.ticket_events(ticket, after_seq, limit).await
    }
    async fn list_articles(&self) -> Result<Vec<engine::kb::Article>, StoreError> {
        self.reachable().await?;
        self.inner.list_articles().await
    }
    async fn list_templates(&self) -> Result<Vec<engine::assist::ReplyTemplate>, StoreError> {
        self.reachable().await?;
        self.inner.list_templates().await
    }
    async fn get_summary(
        &self,
        session: SessionId,
    ) -> Result<Option<engine::summary::SessionSummary>, StoreError> {
        self.reachable().await?;
        self.inner.get_summary(session).await
    }
    async fn audit_log(
        &self,
        since: engine::Millis,
        until: engine::Millis,
        limit: usize,
    ) -> Result<Vec<engine::supervision::AuditEntry>, StoreError> {
        self.reachable().await?;
        self.inner.audit_log(since, until, limit).await
    }
    async fn sessions_queued(
        &self,
        from: engine::Millis,
        to: engine::Millis,
        after: Option<(engine::Millis, engine::ids::SessionId)>,
        limit: usize,
    ) -> Result<Vec<engine::session::Session>, StoreError> {
        self.reachable().await?;
        self.inner.sessions_queued(from, to, after, limit).await
    }
    async fn agent_log(
        &self,
        from: engine::Millis,
        to: engine::Millis,
        after: Option<(engine::Millis, u64)>,
        limit: usize,
    ) -> Result<Vec<engine::sla::report::AgentLogEntry>, StoreError> {
        self.reachable().await?;
        self.inner.agent_log(from, to, after, limit).await
    }
    async fn agent_activity_before(
        &self,
        agent: &engine::ids::AgentId,
        at: engine::Millis,
    ) -> Result<Option<engine::sla::report::AgentLogEntry>, StoreError> {
        self.reachable().await?;
        self.inner.agent_activity_before(agent, at).await
    }
    async fn outbox_due(
        &self,
        now: engine::Millis,
        limit: usize,
    ) -> Result<Vec<engine::outbox::OutboxEntry>, StoreError> {
        self.reachable().await?;
        self.inner.outbox_due(now, limit).await
    }
    async fn write(&self, batch: &[WriteOp]) -> Result<(), StoreError> {
        self.reachable().await?;
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
        self.reachable().await?;
        self.inner.get_customer(id).await
    }
    async fn find_customer_by_identity(
        &self,
        channel: &Channel,
        external_id: &str,
    ) -> Result<Option<CustomerId>, StoreError> {
        self.reachable().await?;
        self.inner
            .find_customer_by_identity(channel, external_id)
            .await
    }
    async fn get_session(
        &self,
        id: SessionId,
    ) -> Result<Option<engine::session::Session>, StoreError> {
        self.reachable().await?;
        *self.n_record_reads.lock().unwrap().entry(id).or_default() += 1;
        self.read_of(id).await;
        self.inner.get_session(id).await
    }
    async fn sessions_of_customer(
        &self,
        id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<engine::session::Session>, StoreError> {
        self.reachable().await?;
        self.inner.sessions_of_customer(id, limit).await
    }
    async fn open_sessions(&self) -> Result<Vec<engine::session::Session>, StoreError> {
        self.reachable().await?;
        if *self.open_sessions_held.borrow() {
            self.n_open_sessions_waiting.fetch_add(1, Ordering::SeqCst);
            let mut held = self.open_sessions_held.subscribe();
            // The sender lives in `self`, so the wait cannot fail.
            let _ = held.wait_for(|held| !*held).await;
            self.n_open_sessions_waiting.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.open_sessions().await
    }
    async fn messages(
        &self,
        session: SessionId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.reachable().await?;
        self.read_of(session).await;
        self.inner.messages(session, after_seq, limit).await
    }
    async fn interactions(
        &self,
        customer: &CustomerId,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Interaction>, StoreError> {
        self.reachable().await?;
        self.inner.interactions(customer, now, limit).await
    }
    async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.reachable().await?;
        self.inner.purge_expired(now).await
    }
    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.reachable().await?;
        self.inner.list_agents().await
    }
    async fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        self.reachable().await?;
        self.inner.get_agent(id).await
    }
    async fn list_groups(&self) -> Result<Vec<SkillGroup>, StoreError> {
        self.reachable().await?;
        self.inner.list_groups().await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_cut_off_store_fails_every_call_after_the_delay_until_reconnected() {
        let store = TestStore::new();
        assert_eq!(store.list_agents().await.unwrap(), []);
        store.cut_off(Duration::from_millis(200));
        let started = tokio::time::Instant::now();
        let err = store.list_agents().await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        assert!(store.write(&[]).await.is_err());
        store.reconnect();
        assert!(store.write(&[]).await.is_ok());
        assert_eq!(store.list_agents().await.unwrap(), []);
    }
}
