//! Webhooks survive the receiver being down and a switchboard restart:
//! events written while nothing listens are retried from the store's outbox,
//! the server is restarted on the same data, the receiver comes up, and every
//! event arrives, signed, with duplicates recognisable by their idempotency key.
//! And a session-ended job left in the store by a process that stopped before
//! running it is run by the next one: the summary and the webhook event.
//! And an endpoint that does not answer holds up no other endpoint.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::{Client, session_of, test_config};
use engine::outbox::OutboxEntry;
use gateway::auth::{Claims, Role, unix_now};
use gateway::config::{Config, WebhookEndpoint};
use gateway::server::Server;
use gateway::webhooks::sign;
use serde_json::{Value, json};
use store::WriteOp;

const SECRET: &str = "webhook-secret-0123456789";

/// What the receiver got: (idempotency key, event type, body).
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

fn config(dir: &tempfile::TempDir, port: u16) -> Config {
    let mut config = test_config(dir);
    config.webhooks.endpoints = vec![WebhookEndpoint {
        name: "crm".into(),
        url: format!("http://127.0.0.1:{port}/hooks"),
        secret: SECRET.into(),
        events: vec!["ticket.*".into(), "session.*".into()],
    }];
    config.webhooks.initial_backoff_ms = 100;
    config.webhooks.max_backoff_ms = 400;
    config.webhooks.poll_ms = 50;
    config.webhooks.timeout_ms = 2_000;
    config
}

/// A receiver that checks each signature, records each delivery, and
/// answers 500 to the very first one (so one event is sent twice).
async fn receiver(listener: tokio::net::TcpListener, received: Received) {
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let received = received.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let signature = header("x-switchboard-signature");
                let (t, v1) = signature.split_once(",v1=").expect("t=…,v1=…");
                let t: i64 = t.trim_start_matches("t=").parse().unwrap();
                assert_eq!(v1, sign(SECRET, t, body.as_bytes()), "signature checks");
                let mut received = received.lock().unwrap();
                let first = received.is_empty();
                received.push((
                    header("idempotency-key"),
                    header("x-switchboard-event"),
                    serde_json::from_str(&body).unwrap(),
                ));
                if first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    axum::serve(listener, app).await.unwrap();
}

async fn patch(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    path: &str,
    body: Value,
) -> Value {
    let response = http
        .request(
            reqwest::Method::from_bytes(if path.ends_with("tickets") {
                b"POST"
            } else {
                b"PATCH"
            })
            .unwrap(),
            format!("http://{}{path}", server.addr),
        )
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_across_a_receiver_outage_and_a_restart() {
    // A port held for the receiver but not listening yet: connections to it
    // are refused, and nothing else can take it meanwhile.
    let receiver_socket = tokio::net::TcpSocket::new_v4().unwrap();
    receiver_socket
        .bind("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let port = receiver_socket.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&dir, port)).await.unwrap();
    let token = server.state.signer.mint(&Claims {
        sub: "cust-003".into(),
        role: Role::Customer,
        exp: unix_now() + 3600,
    });
    let http = reqwest::Client::new();
    let ticket = patch(
        &http,
        &server,
        &token,
        "/api/v1/tickets",
        json!({"subject": "Refund not received"}),
    )
    .await;
    let id = ticket["id"].as_str().unwrap().to_string();
    patch(
        &http,
        &server,
        &token,
        &format!("/api/v1/tickets/{id}"),
        json!({"comment": "It has been 10 days"}),
    )
    .await;
    patch(
        &http,
        &server,
        &token,
        &format!("/api/v1/tickets/{id}"),
        json!({"status": "closed"}),
    )
    .await;

    // The same customer leaves the queue: `session.abandoned`.
    let session = abandoned_session(&server, &token).await;

    // The receiver is down: entries stay in the outbox and are retried.
    let store = server.state.platform.store.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = store.outbox_due(i64::MAX, 100).await.unwrap();
        if pending.len() == 4 && pending.iter().all(|entry| entry.attempts >= 2) {
            assert!(pending.iter().all(|e| e.last_error.is_some() && !e.dead));
            break;
        }
        assert!(Instant::now() < deadline, "no retries seen: {pending:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await.unwrap();

    // Receiver up, switchboard restarted on the same data.
    let received: Received = Arc::default();
    let listener = receiver_socket.listen(128).unwrap();
    tokio::spawn(receiver(listener, received.clone()));
    let server = Server::start(config(&dir, port)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let by_key = loop {
        let by_key: BTreeMap<String, (String, Value)> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(key, kind, body)| (key.clone(), (kind.clone(), body.clone())))
            .collect();
        let drained = outbox_drained(&server).await;
        if by_key.len() == 4 && drained {
            break by_key;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries so far: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deliveries = received.lock().unwrap().clone();
    // The refused first delivery came again with the same key.
    assert_eq!(deliveries.len(), 5, "{deliveries:?}");
    assert_eq!(
        deliveries
            .iter()
            .filter(|(key, ..)| *key == deliveries[0].0)
            .count(),
        2
    );
    let mut kinds: Vec<&str> = by_key.values().map(|(kind, _)| kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "session.abandoned",
            "ticket.created",
            "ticket.updated",
            "ticket.updated"
        ]
    );
    for (key, (kind, body)) in &by_key {
        assert_eq!(body["id"], key.as_str());
        assert_eq!(body["type"], kind.as_str());
        if kind.starts_with("ticket.") {
            assert_eq!(body["data"]["ticket"]["id"], id.as_str());
        } else {
            assert_abandoned(body, &session);
        }
    }
    server.shutdown().await.unwrap();
}

/// Whether nothing is left to deliver or run.
async fn outbox_drained(server: &Server) -> bool {
    let store = &server.state.platform.store;
    store.outbox_due(i64::MAX, 10).await.unwrap().is_empty()
}

/// `cust-003` writes and leaves the queue; returns the session id.
async fn abandoned_session(server: &Server, token: &str) -> String {
    let mut customer =
        Client::connect(&format!("ws://{}/ws/customer?token={token}", server.addr)).await;
    customer.hello(json!({})).await;
    let ack = customer
        .say(json!({}), "m-1", "Is anyone there? My refund is missing.")
        .await;
    let session = session_of(&ack);
    let left = customer
        .request(json!({"type": "leave", "session": session}))
        .await;
    assert_eq!(left["type"], "ok", "{left}");
    session
}

/// A `session.abandoned` body for `session`, with its summary.
fn assert_abandoned(body: &Value, session: &str) {
    assert_eq!(body["type"], "session.abandoned", "{body}");
    assert_eq!(body["data"]["session"]["id"], session, "{body}");
    assert_eq!(body["data"]["session"]["state"], "abandoned", "{body}");
    assert_eq!(body["data"]["summary"]["session_id"], session, "{body}");
    assert_eq!(body["data"]["summary"]["outcome"], "abandoned", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_job_left_in_the_store_is_run_by_the_next_process() {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(receiver(listener, received.clone()));
    let dir = tempfile::tempdir().unwrap();

    // First process: no summaries and no endpoints, so the session's job
    // leaves nothing behind but its deletion.
    let mut first = test_config(&dir);
    first.platform.summaries = false;
    let server = Server::start(first.clone()).await.unwrap();
    let token = server.state.signer.mint(&Claims {
        sub: "cust-003".into(),
        role: Role::Customer,
        exp: unix_now() + 3600,
    });
    let session = abandoned_session(&server, &token).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !outbox_drained(&server).await {
        assert!(Instant::now() < deadline, "the job was not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();

    // The store as a process killed right after the session's end leaves it:
    // the end is stored with its job, and nothing came of the job yet.
    let store = first.store.open().await.unwrap();
    let id = engine::ids::SessionId(session.parse().unwrap());
    store
        .write_owned(vec![WriteOp::PutOutbox(OutboxEntry::session_ended(
            id,
            true,
            engine::now_millis(),
        ))])
        .await
        .unwrap();
    assert!(store.get_summary(id).await.unwrap().is_none());
    store.close().await.unwrap();
    drop(store);

    // The next process, with summaries and an endpoint, runs it.
    let server = Server::start(config(&dir, port)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let events = loop {
        let events: BTreeMap<String, Value> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(key, _, body)| (key.clone(), body.clone()))
            .collect();
        let drained = outbox_drained(&server).await;
        if !events.is_empty() && drained {
            break events;
        }
        assert!(Instant::now() < deadline, "received: {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // One event (the receiver refused its first delivery, so it came twice).
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(received.lock().unwrap().len(), 2);
    assert_abandoned(events.values().next().unwrap(), &session);
    let summary = server
        .state
        .platform
        .store
        .get_summary(id)
        .await
        .unwrap()
        .expect("the summary is stored");
    assert_eq!(summary.outcome.as_str(), "abandoned");
    server.shutdown().await.unwrap();
}

/// What one receiver saw: idempotency keys of requests that arrived, and
/// how many it has answered.
#[derive(Default)]
struct Seen {
    arrived: Vec<String>,
    answered: usize,
}

/// A receiver that answers 200 once `release` is true: at once when it
/// starts true, never before it turns true otherwise.
async fn held_receiver(
    listener: tokio::net::TcpListener,
    seen: Arc<Mutex<Seen>>,
    release: tokio::sync::watch::Receiver<bool>,
) {
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap| {
            let seen = seen.clone();
            let mut release = release.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                seen.lock().unwrap().arrived.push(key);
                release.wait_for(|released| *released).await.unwrap();
                seen.lock().unwrap().answered += 1;
                StatusCode::OK
            }
        }),
    );
    axum::serve(listener, app).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_hold_up_another() {
    const N_EVENTS: usize = 8;
    let slow_seen: Arc<Mutex<Seen>> = Arc::default();
    let fast_seen: Arc<Mutex<Seen>> = Arc::default();
    let (release_slow, slow_released) = tokio::sync::watch::channel(false);
    let (_fast_release, fast_released) = tokio::sync::watch::channel(true);
    let slow_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fast_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = |name: &str, listener: &tokio::net::TcpListener| WebhookEndpoint {
        name: name.into(),
        url: format!("http://{}/hooks", listener.local_addr().unwrap()),
        secret: SECRET.into(),
        events: vec!["ticket.*".into()],
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir, 1);
    config.webhooks.endpoints = vec![
        endpoint("slow", &slow_listener),
        endpoint("fast", &fast_listener),
    ];
    // The slow endpoint never times out during the test: it answers only
    // when released.
    config.webhooks.timeout_ms = 60_000;
    tokio::spawn(held_receiver(
        slow_listener,
        slow_seen.clone(),
        slow_released,
    ));
    tokio::spawn(held_receiver(
        fast_listener,
        fast_seen.clone(),
        fast_released,
    ));
    let server = Server::start(config).await.unwrap();
    let token = server.state.signer.mint(&Claims {
        sub: "cust-003".into(),
        role: Role::Customer,
        exp: unix_now() + 3600,
    });
    let http = reqwest::Client::new();
    for n in 0..N_EVENTS {
        patch(
            &http,
            &server,
            &token,
            "/api/v1/tickets",
            json!({"subject": format!("Ticket {n}")}),
        )
        .await;
    }

    // Every event reaches the fast endpoint while the slow one has answered
    // nothing at all (it cannot: it is not released yet).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fast: std::collections::BTreeSet<String> =
            fast_seen.lock().unwrap().arrived.iter().cloned().collect();
        if fast.len() == N_EVENTS && !slow_seen.lock().unwrap().arrived.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fast endpoint got {} of {N_EVENTS} events while the slow one held its deliveries",
            fast.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let slow = slow_seen.lock().unwrap();
        assert_eq!(slow.answered, 0);
        // The slow endpoint holds at most its own share of deliveries.
        assert!(
            (1..=actors::platform::outbox::IN_FLIGHT_PER_ENDPOINT).contains(&slow.arrived.len()),
            "{} deliveries in flight to the slow endpoint",
            slow.arrived.len()
        );
    }

    // Released, the slow endpoint gets every event too.
    release_slow.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let slow: std::collections::BTreeSet<String> =
            slow_seen.lock().unwrap().arrived.iter().cloned().collect();
        if slow.len() == N_EVENTS && outbox_drained(&server).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow endpoint got {} of {N_EVENTS} events after its release",
            slow.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_reports_its_messages_its_assignment_and_its_transfer() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Received = Arc::default();
    tokio::spawn(receiver(listener, received.clone()));
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir, port);
    config.webhooks.endpoints[0].events = vec![
        "message.created".into(),
        "session.assigned".into(),
        "session.transferred".into(),
    ];
    let server = Server::start(config).await.unwrap();
    let board = server.switchboard().clone();
    let chen = engine::ids::AgentId::new("chen.jie");
    let session = chen_takes(&board, &chen, "Where is my refund?").await;
    let reply = board
        .agent_message(&chen, session, "Let me look.".into(), None)
        .await
        .unwrap();
    board
        .transfer(
            &chen,
            session,
            actors::TransferTarget::Group {
                group: engine::ids::GroupId::new("phone_support"),
            },
        )
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    let by_key = loop {
        let by_key: BTreeMap<String, (String, Value)> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(key, kind, body)| (key.clone(), (kind.clone(), body.clone())))
            .collect();
        if by_key.len() == 4 && outbox_drained(&server).await {
            break by_key;
        }
        assert!(Instant::now() < deadline, "deliveries so far: {by_key:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Ordered as they happened (receivers order by the event's seq).
    let mut seen: Vec<(u64, String, Value)> = by_key
        .into_values()
        .map(|(kind, body)| {
            let event = &body["data"]["event"];
            assert_eq!(body["data"]["session"]["id"], session.to_string());
            (event["seq"].as_u64().unwrap(), kind, event.clone())
        })
        .collect();
    seen.sort_by_key(|(seq, ..)| *seq);
    let summary: Vec<(&str, &str)> = seen
        .iter()
        .map(|(_, kind, event)| (kind.as_str(), event["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("message.created", "message"),
            ("session.assigned", "assigned"),
            ("message.created", "message"),
            ("session.transferred", "transferred"),
        ]
    );
    assert_eq!(seen[0].2["body"], "Where is my refund?");
    assert_eq!(seen[0].2["sender"], "customer");
    assert_eq!(seen[1].2["agent"], "chen.jie");
    assert_eq!(seen[2].0, reply.seq);
    assert_eq!(seen[2].2["sender"], "agent:chen.jie");
    assert_eq!(seen[3].2["from"], "chen.jie");
    server.shutdown().await.unwrap();
}

/// A reply not sent by its due time (the rule file's `[[response]]`
/// target) is delivered as `sla.breached`, once, with the breach event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_not_sent_in_time_is_reported_as_sla_breached() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Received = Arc::default();
    tokio::spawn(receiver(listener, received.clone()));
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "{}\n[[response]]\ngroup = \"default\"\nfirst = \"1s\"\n",
            include_str!("../../../engine/rules/default.toml")
        ),
    )
    .unwrap();
    let mut config = config(&dir, port);
    config.routing.rules_file = rules;
    config.webhooks.endpoints[0].events = vec!["sla.breached".into()];
    let server = Server::start(config).await.unwrap();
    let board = server.switchboard().clone();
    let chen = engine::ids::AgentId::new("chen.jie");
    let session = chen_takes(&board, &chen, "Hello?").await;

    // The receiver refuses the first delivery: it comes again, same key.
    let deadline = Instant::now() + Duration::from_secs(15);
    let deliveries = loop {
        let deliveries = received.lock().unwrap().clone();
        if deliveries.len() >= 2 && outbox_drained(&server).await {
            break deliveries;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries so far: {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let keys: std::collections::BTreeSet<&str> =
        deliveries.iter().map(|(key, ..)| key.as_str()).collect();
    assert_eq!(keys.len(), 1, "one breach: {deliveries:?}");
    let (_, kind, body) = &deliveries[1];
    assert_eq!(kind, "sla.breached");
    let event = &body["data"]["event"];
    assert_eq!(event["type"], "response_breached");
    assert_eq!(event["kind"], "first");
    assert_eq!(event["group"], "default");
    assert_eq!(body["data"]["session"]["id"], session.to_string());
    let history = board.history(session, 0).await.unwrap();
    let assigned_at = history
        .iter()
        .find(|event| matches!(event.kind, actors::EventKind::Assigned { .. }))
        .unwrap()
        .at;
    assert_eq!(
        event["due"],
        assigned_at + 1_000,
        "due a second after the accept"
    );
    server.shutdown().await.unwrap();
}

/// `cust-003` writes `text` on the web; `chen`, made available, is offered
/// the session and accepts it. The session.
async fn chen_takes(
    board: &actors::Switchboard,
    chen: &engine::ids::AgentId,
    text: &str,
) -> engine::ids::SessionId {
    let mut events = board.subscribe_agent(chen);
    board
        .set_presence(chen, engine::presence::PresenceRequest::Available)
        .await
        .unwrap();
    let ack = board
        .customer_message(engine::envelope::Envelope {
            channel: engine::channel::Channel::Web,
            customer_id: "cust-003".into(),
            message: text.into(),
            timestamp: chrono::Utc::now(),
            client_message_id: None,
            display_name: None,
        })
        .await
        .unwrap();
    let session = ack.session;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.unwrap();
            if event.session == session && matches!(event.kind, actors::EventKind::Offered { .. }) {
                return;
            }
        }
    })
    .await
    .expect("chen.jie is offered the session");
    board.accept(chen, session).await.unwrap();
    session
}
