//! Concurrent first messages of one customer, over real sockets and real
//! HTTP against a real SQLite store, repeated: however many arrive at once,
//! one session is started, each message is stored once with its own `seq`,
//! every answer tells the truth about what was stored, and every stored
//! message reaches the customer's open sockets live.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Client, TestServer};
use futures_util::future::join_all;
use gateway::auth::Role;
use serde_json::{Value, json};

/// Each scenario is run this many times: the race it guards against showed
/// in 19 of 20 runs, so one run proves little.
const N_TRIALS: usize = 20;
/// Sockets of one visitor sending their first message at once.
const N_SOCKETS: usize = 4;
/// Concurrent `POST /api/v1/inbound` calls for one customer.
const N_POSTS: usize = 14;

/// The answers PROTOCOL.md §10 lists for `POST /api/v1/inbound` that a
/// well-formed request from an admin can get, with whether the message may
/// have been stored.
fn documented_inbound_answer(status: u16, code: &str) -> Option<Stored> {
    match (status, code) {
        (200, _) => Some(Stored::Yes),
        (409, "invalid_state") | (429, "too_many_sessions") => Some(Stored::No),
        (503, "store_unavailable" | "unavailable") => Some(Stored::No),
        (504, "outcome_unknown") => Some(Stored::Maybe),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Yes,
    No,
    Maybe,
}

async fn post(test: &TestServer, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(test.http_url(path)).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("a JSON answer");
    (status, body)
}

/// The ids of the customer's stored sessions.
async fn stored_sessions(test: &TestServer, admin: &str, customer: &str) -> Vec<String> {
    let list = test
        .get_json(&format!("/api/v1/sessions?customer={customer}"), admin)
        .await;
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["id"].as_str().unwrap().to_string())
        .collect()
}

/// The session's stored events: client message id → how many messages
/// carry it, after checking that the `seq`s are 1, 2, 3, … without a gap
/// or a repeat.
async fn stored_client_ids(
    test: &TestServer,
    admin: &str,
    session: &str,
    trial: usize,
) -> BTreeMap<String, usize> {
    let detail = test
        .get_json(&format!("/api/v1/sessions/{session}"), admin)
        .await;
    let events = detail["events"].as_array().unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "trial {trial}: seqs not gapless and unique");
    let mut counts = BTreeMap::new();
    for event in events {
        if let Some(id) = event["client_message_id"].as_str() {
            *counts.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Waits until `socket` got a live `message` event for each of `ids`.
async fn receives_live(socket: &mut Client, session: &str, ids: &BTreeSet<String>, what: &str) {
    for id in ids {
        let event = socket
            .wait_for(&format!("{what}: message {id}"), |frame| {
                frame["type"] == "message" && frame["client_message_id"] == id.as_str()
            })
            .await;
        assert_eq!(event["session"], session, "{what}: {event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_of_a_new_visitor_sending_first_messages_at_once_share_one_session() {
    let test = TestServer::start(|_| {}).await;
    let admin = test.token("race-check", Role::Admin);
    for trial in 0..N_TRIALS {
        let (status, visitor) = post(&test, "/api/v1/visitors", None, &json!({})).await;
        assert_eq!(status, 201, "{visitor}");
        let token = visitor["token"].as_str().unwrap();
        let customer = visitor["customer_id"].as_str().unwrap();
        let mut sockets = Vec::new();
        for _ in 0..N_SOCKETS {
            let mut socket = Client::connect(&test.ws_url("/ws/customer", token)).await;
            socket.hello(json!({})).await;
            sockets.push(socket);
        }

        let replies = join_all(sockets.iter_mut().enumerate().map(|(i, socket)| {
            socket.request(json!({
                "type": "message",
                "client_message_id": format!("t{trial}-s{i}"),
                "body": format!("first message of socket {i}"),
            }))
        }))
        .await;

        for reply in &replies {
            assert_eq!(reply["type"], "ack", "trial {trial}: {reply}");
            assert_eq!(reply["duplicate"], false, "trial {trial}: {reply}");
        }
        let sessions: BTreeSet<&str> = replies
            .iter()
            .map(|ack| ack["session"].as_str().unwrap())
            .collect();
        assert_eq!(sessions.len(), 1, "trial {trial}: {replies:?}");
        let session = *sessions.first().unwrap();
        let seqs: BTreeSet<u64> = replies.iter().map(|a| a["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs.len(), N_SOCKETS, "trial {trial}: {replies:?}");
        assert_eq!(
            stored_sessions(&test, &admin, customer).await,
            [session],
            "trial {trial}"
        );
        let stored = stored_client_ids(&test, &admin, session, trial).await;
        let sent: BTreeSet<String> = (0..N_SOCKETS).map(|i| format!("t{trial}-s{i}")).collect();
        for id in &sent {
            assert_eq!(
                stored.get(id),
                Some(&1),
                "trial {trial}: {id} in {stored:?}"
            );
        }
        for (i, socket) in sockets.iter_mut().enumerate() {
            let what = format!("trial {trial}, socket {i}");
            receives_live(socket, session, &sent, &what).await;
        }
        for socket in sockets {
            socket.close().await;
        }
    }
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inbound_posts_for_one_customer_are_stored_once_and_answered_truthfully() {
    let test = TestServer::start(|_| {}).await;
    let admin = test.token("race-adapter", Role::Admin);
    for trial in 0..N_TRIALS {
        let external_id = format!("wx-race-{trial}");
        // Every other trial the burst also creates the customer (an
        // unknown identity); the others have a socket open to watch it.
        let new_identity = trial % 2 == 1;
        let (customer, socket) = if new_identity {
            (format!("wechat:{external_id}"), None)
        } else {
            let customer = format!("race-{trial}");
            let (status, created) = post(
                &test,
                "/api/v1/customers",
                Some(&admin),
                &json!({
                    "id": customer,
                    "display_name": "Race Customer",
                    "identities": [{"channel": "wechat", "external_id": external_id}],
                }),
            )
            .await;
            assert_eq!(status, 201, "{created}");
            let mut socket = test.customer(&customer).await;
            socket.hello(json!({})).await;
            (customer, Some(socket))
        };

        let answers = join_all((0..N_POSTS).map(|i| {
            let body = json!({
                "channel": "wechat",
                "customer_id": external_id,
                "message": format!("burst message {i}"),
                "timestamp": "2023-10-01T10:00:00Z",
                "client_message_id": format!("in-{trial}-{i}"),
            });
            let (test, admin) = (&test, &admin);
            async move { post(test, "/api/v1/inbound", Some(admin), &body).await }
        }))
        .await;

        let mut acked = BTreeSet::new();
        let mut not_stored = BTreeSet::new();
        let mut ack_sessions = BTreeSet::new();
        let mut ack_customers = BTreeSet::new();
        for (i, (status, answer)) in answers.iter().enumerate() {
            let code = answer["code"].as_str().unwrap_or_default();
            let stored = documented_inbound_answer(*status, code).unwrap_or_else(|| {
                panic!("trial {trial}: {status} {answer} is not an answer PROTOCOL.md §10 lists")
            });
            match stored {
                Stored::Yes => {
                    acked.insert(format!("in-{trial}-{i}"));
                    ack_sessions.insert(answer["session"].as_str().unwrap().to_string());
                    ack_customers.insert(answer["customer_id"].as_str().unwrap().to_string());
                }
                Stored::No => {
                    not_stored.insert(format!("in-{trial}-{i}"));
                }
                Stored::Maybe => {}
            }
        }
        assert_eq!(ack_sessions.len(), 1, "trial {trial}: {answers:?}");
        assert_eq!(
            ack_customers,
            BTreeSet::from([customer.clone()]),
            "trial {trial}"
        );
        let session = ack_sessions.first().unwrap().clone();
        assert_eq!(
            stored_sessions(&test, &admin, &customer).await,
            [session.as_str()],
            "trial {trial}"
        );
        let stored = stored_client_ids(&test, &admin, &session, trial).await;
        for id in &acked {
            assert_eq!(
                stored.get(id),
                Some(&1),
                "trial {trial}: {id} in {stored:?}"
            );
        }
        for id in &not_stored {
            assert_eq!(
                stored.get(id),
                None,
                "trial {trial}: {id} was answered `nothing stored` but is stored: {answers:?}"
            );
        }
        // A healthy store refuses nothing.
        assert_eq!(acked.len(), N_POSTS, "trial {trial}: {answers:?}");
        if let Some(mut socket) = socket {
            let stored_ids: BTreeSet<String> = stored.keys().cloned().collect();
            let what = format!("trial {trial}, customer socket");
            receives_live(&mut socket, &session, &stored_ids, &what).await;
            socket.close().await;
        }
    }
    test.server.shutdown().await.unwrap();
}
