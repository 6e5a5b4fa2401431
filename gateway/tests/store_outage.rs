//! The store becomes unreachable while customers and agents are connected:
//! a message sent meanwhile gets an error frame and no ack, nothing acknowledged
//! before is lost, and once the store is back the client's resend (same
//! `client_message_id`) is stored exactly once and delivered — no restart.
//!
//! The store is the real SQLite one behind a switch that makes every call
//! fail after a delay, as a ScyllaDB cluster behind a dead network does
//! (its requests time out); the server sees only `StoreError::Backend`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{accept_offer, session_of, test_config};
use engine::Millis;
use engine::agent::Agent;
use engine::channel::Channel;
use engine::customer::Customer;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, SessionId};
use engine::message::StoredMessage;
use engine::session::Session;
use gateway::Server;
use serde_json::json;
use store::{Interaction, SqliteStore, Store, StoreError, WriteOp};

/// How long a call to the unreachable store takes to fail (a request timeout).
const FAIL_AFTER: Duration = Duration::from_millis(200);

/// A store that can be cut off.
struct Switchable {
    inner: SqliteStore,
    down: AtomicBool,
}

impl Switchable {
    async fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            tokio::time::sleep(FAIL_AFTER).await;
            return Err(StoreError::Backend(
                "test: store unreachable (request timed out)".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Switchable {
    async fn get_ticket(
        &self,
        id: &engine::ids::TicketId,
    ) -> Result<Option<engine::ticket::Ticket>, StoreError> {
        self.check().await?;
        self.inner.get_ticket(id).await
    }
    async fn tickets_of_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<engine::ticket::Ticket>, StoreError> {
        self.check().await?;
        self.inner.tickets_of_customer(customer, limit).await
    }
    async fn ticket_events(
        &self,
        ticket: &engine::ids::TicketId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<engine::ticket::TicketEvent>, StoreError> {
        self.check().await?;
        self.inner.ticket_events(ticket, after_seq, limit).await
    }
    async fn list_articles(&self) -> Result<Vec<engine::kb::Article>, StoreError> {
        self.check().await?;
        self.inner.list_articles().await
    }
    async fn list_templates(&self) -> Result<Vec<engine::assist::ReplyTemplate>, StoreError> {
        self.check().await?;
        self.inner.list_templates().await
    }
    async fn get_summary(
        &self,
        session: SessionId,
    ) -> Result<Option<engine::summary::SessionSummary>, StoreError> {
        self.check().await?;
        self.inner.get_summary(session).await
    }
    async fn outbox_due(
        &self,
        now: engine::Millis,
        limit: usize,
    ) -> Result<Vec<engine::outbox::OutboxEntry>, StoreError> {
        self.check().await?;
        self.inner.outbox_due(now, limit).await
    }
    async fn write(&self, batch: &[WriteOp]) -> Result<(), StoreError> {
        self.check().await?;
        self.inner.write(batch).await
    }
    async fn get_customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        self.check().await?;
        self.inner.get_customer(id).await
    }
    async fn find_customer_by_identity(
        &self,
        channel: &Channel,
        external_id: &str,
    ) -> Result<Option<CustomerId>, StoreError> {
        self.check().await?;
        self.inner
            .find_customer_by_identity(channel, external_id)
            .await
    }
    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.check().await?;
        self.inner.get_session(id).await
    }
    async fn sessions_of_customer(
        &self,
        id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        self.check().await?;
        self.inner.sessions_of_customer(id, limit).await
    }
    async fn open_sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.check().await?;
        self.inner.open_sessions().await
    }
    async fn messages(
        &self,
        session: SessionId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.check().await?;
        self.inner.messages(session, after_seq, limit).await
    }
    async fn interactions(
        &self,
        customer: &CustomerId,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Interaction>, StoreError> {
        self.check().await?;
        self.inner.interactions(customer, now, limit).await
    }
    async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.check().await?;
        self.inner.purge_expired(now).await
    }
    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.check().await?;
        self.inner.list_agents().await
    }
    async fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        self.check().await?;
        self.inner.get_agent(id).await
    }
    async fn list_groups(&self) -> Result<Vec<SkillGroup>, StoreError> {
        self.check().await?;
        self.inner.list_groups().await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_errors_then_recovers_without_losing_or_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir);
    let store = Arc::new(Switchable {
        inner: SqliteStore::open(config.store.sqlite_path()).unwrap(),
        down: AtomicBool::new(false),
    });
    let server = Server::start_on_store(config, store.clone()).await.unwrap();
    let test = common::TestServer { server, dir };

    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    let ack = customer.say(json!({}), "m1", "before the outage").await;
    let session = session_of(&ack);
    accept_offer(&mut agent, &session).await;
    customer.say(json!({}), "m2", "still fine").await;

    store.down.store(true, Ordering::SeqCst);
    let refused = customer
        .request(json!({"type": "message", "client_message_id": "m3", "body": "during the outage"}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "store_unavailable", "{refused}");
    let refused_agent = agent
        .request(json!({"type": "message", "session": session, "client_message_id": "a1", "body": "agent during the outage"}))
        .await;
    assert_eq!(refused_agent["type"], "error", "{refused_agent}");

    store.down.store(false, Ordering::SeqCst);
    // The clients resend what was not acknowledged, on the same sockets.
    let resent = customer.say(json!({}), "m3", "during the outage").await;
    assert_eq!(session_of(&resent), session);
    customer.say(json!({}), "m4", "after the outage").await;
    agent
        .say(json!({"session": session}), "a1", "agent during the outage")
        .await;
    // The agent receives the resent message live.
    agent
        .wait_for("m4 delivered to the agent", |f| {
            f["type"] == "message" && f["body"] == "after the outage"
        })
        .await;

    let session_id = SessionId(session.parse().expect("numeric session id"));
    let bodies: Vec<String> = store
        .messages(session_id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.client_message_id.is_some())
        .map(|m| m.body)
        .collect();
    assert_eq!(
        bodies,
        [
            "before the outage",
            "still fine",
            "during the outage",
            "after the outage",
            "agent during the outage"
        ]
    );
    drop((customer, agent));
    test.server.shutdown().await.unwrap();
}
