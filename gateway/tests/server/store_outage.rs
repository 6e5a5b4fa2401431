//! The store becomes unreachable while customers and agents are connected:
//! a message sent meanwhile gets an error frame and no ack, nothing acknowledged
//! before is lost, and once the store is back the client's resend (same
//! `client_message_id`) is stored exactly once and delivered — no restart.
//!
//! The store is the real SQLite one behind `store::testing::TestStore`, cut
//! off so that every call fails after a delay, as a ScyllaDB cluster behind a
//! dead network does (its requests time out); the server sees only
//! `StoreError::Backend`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{accept_offer, session_of, test_config};
use engine::ids::SessionId;
use gateway::Server;
use serde_json::json;
use store::testing::TestStore;
use store::{SqliteStore, Store};

/// How long a call to the unreachable store takes to fail (a request timeout).
const FAIL_AFTER: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_errors_then_recovers_without_losing_or_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir);
    let store = Arc::new(TestStore::over(
        SqliteStore::open(config.store.sqlite_path()).unwrap(),
    ));
    let server = Server::start_on_store(config, store.clone()).await.unwrap();
    let test = common::TestServer { server, dir };

    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    let ack = customer.say(json!({}), "m1", "before the outage").await;
    let session = session_of(&ack);
    accept_offer(&mut agent, &session).await;
    customer.say(json!({}), "m2", "still fine").await;

    store.cut_off(FAIL_AFTER);
    let refused = customer
        .request(json!({"type": "message", "client_message_id": "m3", "body": "during the outage"}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "store_unavailable", "{refused}");
    let refused_agent = agent
        .request(json!({"type": "message", "session": session, "client_message_id": "a1", "body": "agent during the outage"}))
        .await;
    assert_eq!(refused_agent["type"], "error", "{refused_agent}");

    store.reconnect();
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
