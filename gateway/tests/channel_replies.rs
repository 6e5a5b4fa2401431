//! Agents' replies to customers on message platforms, over real HTTP both
//! ways: a customer writes through a webhook channel account, an agent
//! answers, and the reply is posted (signed) to a local platform server
//! through the durable outbox. The agent sees each reply's delivery state
//! (`queued`, `retrying`, `sent`, `delivered`, `failed` with the
//! platform's reason); a platform outage delays a reply without losing or
//! doubling it; a customer who writes from elsewhere gets replies there.

mod common;

use std::time::Duration;

use actors::{DeliveryState, EventKind, Subscription};
use common::TestServer;
use common::platform::Platform;
use engine::channel::Channel;
use engine::ids::{AgentId, SessionId};
use engine::presence::PresenceRequest;
use serde_json::{Value, json};

async fn start(base_url: String) -> TestServer {
    TestServer::start(|config| {
        config.channels = vec![common::platform::account(base_url)];
        // Quick retries, so an outage is over within the test.
        config.webhooks.initial_backoff_ms = 100;
        config.webhooks.max_backoff_ms = 400;
        config.webhooks.max_attempts = 4;
        config.webhooks.poll_ms = 100;
    })
    .await
}

/// Posts `body` as the platform does; the JSON answer, which must be a 200.
async fn post_signed(test: &TestServer, body: &Value) -> Value {
    let (status, answer) = common::platform::post_signed(test, body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// A customer message from `from` through the account; its session.
async fn sms(test: &TestServer, id: &str, from: &str, text: &str) -> SessionId {
    let answer = post_signed(
        test,
        &json!({"id": id, "from": from, "text": text, "sent_at": "2026-01-05T10:00:00Z"}),
    )
    .await;
    SessionId(
        answer["accepted"][0]["session"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    )
}

/// A platform whose reply URL answers with `script` first, a server with
/// its account, and chen.jie holding the session of an SMS `text` from
/// `from` (platform message id `id`), subscribed to chen.jie's events.
struct Conversation {
    platform: Platform,
    test: TestServer,
    board: actors::Switchboard,
    chen: AgentId,
    session: SessionId,
    events: Subscription,
}

async fn conversation(script: &[(u16, Value)], id: &str, from: &str, text: &str) -> Conversation {
    let (platform, url) = Platform::start(script).await;
    let test = start(url).await;
    let board = test.server.switchboard().clone();
    let (chen, session, events) =
        chen_takes(&test, async || sms(&test, id, from, text).await).await;
    Conversation {
        platform,
        test,
        board,
        chen,
        session,
        events,
    }
}

/// chen.jie, available, holding `session` once it is offered; the
/// subscription to chen.jie's events.
async fn chen_takes(
    test: &TestServer,
    session_of: impl AsyncFnOnce() -> SessionId,
) -> (AgentId, SessionId, Subscription) {
    let board = test.server.switchboard().clone();
    let chen = AgentId::new("chen.jie");
    let mut events = board.subscribe_agent(&chen);
    board
        .set_presence(&chen, PresenceRequest::Available)
        .await
        .unwrap();
    let session = session_of().await;
    next(&mut events, |kind| {
        matches!(kind, EventKind::Offered { .. })
    })
    .await;
    board.accept(&chen, session).await.unwrap();
    (chen, session, events)
}

/// The next event of `events` that `wanted` picks (10 s at most).
async fn next(events: &mut Subscription, wanted: impl Fn(&EventKind) -> bool) -> EventKind {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.expect("the agent's events");
            if wanted(&event.kind) {
                return event.kind.clone();
            }
        }
    })
    .await
    .expect("the event comes within 10 s")
}

/// The next delivery report on message `of`.
async fn delivery(events: &mut Subscription, of: u64) -> actors::DeliveryReport {
    match next(
        events,
        |kind| matches!(kind, EventKind::Delivery(report) if report.of == of),
    )
    .await
    {
        EventKind::Delivery(report) => report,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_reply_is_posted_to_the_platform_once_and_the_agent_sees_it_sent_then_delivered() {
    let Conversation {
        platform,
        test,
        board,
        chen,
        session,
        mut events,
    } = conversation(&[], "in-1", "+8613912345678", "where is my parcel?").await;

    let ack = board
        .agent_message(
            &chen,
            session,
            "It left the warehouse today.".into(),
            Some("a-1".into()),
        )
        .await
        .unwrap();
    let queued = delivery(&mut events, ack.seq).await;
    assert_eq!(
        (queued.state, queued.account.as_str()),
        (DeliveryState::Queued, "sms-gw")
    );
    let sent = delivery(&mut events, ack.seq).await;
    assert_eq!(sent.state, DeliveryState::Sent, "{sent:?}");
    let delivery_id = format!("reply-{}-{}", session, ack.seq);
    assert_eq!(
        platform.received(),
        [
            json!({"delivery_id": delivery_id, "to": "+8613912345678", "text": "It left the warehouse today."})
        ]
    );
    let headers = platform.received.lock().unwrap()[0].0.clone();
    assert_eq!(headers["idempotency-key"], delivery_id.as_str());

    // The agent's resend (same client id) is the same message: nothing more is sent.
    let again = board
        .agent_message(
            &chen,
            session,
            "It left the warehouse today.".into(),
            Some("a-1".into()),
        )
        .await
        .unwrap();
    assert!(again.duplicate);

    // The platform's receipt: delivered.
    let answer = post_signed(
        &test,
        &json!({"receipts": [{"delivery_id": delivery_id, "status": "delivered"}]}),
    )
    .await;
    assert_eq!(answer, json!({"accepted": []}));
    assert_eq!(
        delivery(&mut events, ack.seq).await.state,
        DeliveryState::Delivered
    );
    // A second copy of the receipt is no news, and a receipt for no reply is dropped.
    post_signed(
        &test,
        &json!({"receipts": [{"delivery_id": delivery_id, "status": "delivered"}, {"delivery_id": "reply-1-1", "status": "delivered"}]}),
    )
    .await;

    // The history holds each state once, for the agent (not for the customer).
    let admin = test.token("admin", gateway::auth::Role::Admin);
    let detail = test
        .get_json(&format!("/api/v1/sessions/{session}"), &admin)
        .await;
    let states: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "delivery")
        .map(|event| event["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["queued", "sent", "delivered"], "{detail}");
    assert_eq!(platform.received().len(), 1);
    // Counted (the recorder is shared by this binary's tests, which run at
    // once: at least this test's reply).
    for (name, labels) in [
        (
            "switchboard_channel_deliveries_total",
            ["account=\"sms-gw\"", "result=\"sent\""],
        ),
        (
            "switchboard_channel_messages_total",
            ["account=\"sms-gw\"", "direction=\"out\""],
        ),
    ] {
        let value = test.metric(name, &labels).await;
        assert!(value >= 1.0, "{name} {labels:?} = {value}");
    }
}

#[tokio::test]
async fn an_outage_delays_a_reply_without_losing_or_doubling_it() {
    let down = (503, json!({"message": "maintenance"}));
    let Conversation {
        platform,
        test,
        board,
        chen,
        session,
        mut events,
    } = conversation(&[down.clone(), down], "in-2", "+8613900000002", "hello?").await;

    let ack = board
        .agent_message(&chen, session, "Hello, how can I help?".into(), None)
        .await
        .unwrap();
    assert_eq!(
        delivery(&mut events, ack.seq).await.state,
        DeliveryState::Queued
    );
    let retrying = delivery(&mut events, ack.seq).await;
    assert_eq!(retrying.state, DeliveryState::Retrying);
    assert!(
        retrying
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("503"),
        "{retrying:?}"
    );
    assert_eq!(
        delivery(&mut events, ack.seq).await.state,
        DeliveryState::Sent
    );
    let received = platform.received();
    assert_eq!(
        received.len(),
        3,
        "two refusals, then the delivery: {received:?}"
    );
    assert!(
        received.iter().all(|body| body == &received[0]),
        "every attempt is the same delivery: {received:?}"
    );
    let retries = test
        .metric(
            "switchboard_channel_deliveries_total",
            &["account=\"sms-gw\"", "result=\"retry\""],
        )
        .await;
    assert!(retries >= 2.0, "{retries}");
}

#[tokio::test]
async fn a_refused_reply_fails_with_the_platforms_reason_and_is_not_sent_again() {
    let refused = (
        422,
        json!({"code": "window_closed", "message": "the customer has not written in 24 hours"}),
    );
    let Conversation {
        platform,
        test: _test,
        board,
        chen,
        session,
        mut events,
    } = conversation(&[refused], "in-3", "+8613900000003", "hi").await;

    let ack = board
        .agent_message(&chen, session, "Sorry for the wait!".into(), None)
        .await
        .unwrap();
    assert_eq!(
        delivery(&mut events, ack.seq).await.state,
        DeliveryState::Queued
    );
    let failed = delivery(&mut events, ack.seq).await;
    assert_eq!(
        (
            failed.state,
            failed.code.as_deref(),
            failed.reason.as_deref()
        ),
        (
            DeliveryState::Failed,
            Some("window_closed"),
            Some("the customer has not written in 24 hours")
        )
    );
    // Nothing is retried: the outbox is empty and the platform got it once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(platform.received().len(), 1);
    let due = board
        .store()
        .outbox_due(engine::now_millis() + 3_600_000, 10)
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");
}

#[tokio::test]
async fn replies_follow_the_customer_to_where_they_last_wrote() {
    let Conversation {
        platform,
        test,
        board,
        chen,
        session,
        mut events,
    } = conversation(&[], "in-4", "+8613900000004", "hi by SMS").await;

    // The same customer writes through the plain inbound API (no account).
    let ack = board
        .customer_message(engine::envelope::Envelope {
            channel: Channel::Sms,
            customer_id: "+8613900000004".into(),
            message: "now from the app".into(),
            timestamp: chrono::Utc::now(),
            client_message_id: None,
            display_name: None,
        })
        .await
        .unwrap();
    assert_eq!(ack.session, session);
    let reply = board
        .agent_message(&chen, session, "Got it.".into(), None)
        .await
        .unwrap();
    // Back through the account: the next reply goes to the platform again.
    sms(&test, "in-5", "+8613900000004", "back on SMS").await;
    let second = board
        .agent_message(&chen, session, "Welcome back.".into(), None)
        .await
        .unwrap();
    assert_eq!(
        delivery(&mut events, second.seq).await.state,
        DeliveryState::Queued
    );
    assert_eq!(
        delivery(&mut events, second.seq).await.state,
        DeliveryState::Sent
    );
    let texts: Vec<Value> = platform
        .received()
        .iter()
        .map(|body| body["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [json!("Welcome back.")],
        "`{}` stayed in the app",
        reply.seq
    );
}

#[tokio::test]
async fn after_an_outage_every_reply_arrives_once_and_in_the_order_written() {
    let down = (503, json!({"message": "maintenance"}));
    // Three refusals: the fourth attempt (the last allowed) gets through.
    // 80 replies: more than one read of the outbox holds, all held back
    // behind the first.
    let Conversation {
        platform,
        test: _test,
        board,
        chen,
        session,
        mut events,
    } = conversation(&vec![down; 3], "in-6", "+8613900000006", "are you there?").await;
    let texts: Vec<String> = (1..=80).map(|n| format!("part {n} of my answer")).collect();
    let mut seqs = Vec::new();
    for text in &texts {
        let ack = board
            .agent_message(&chen, session, text.clone(), None)
            .await
            .unwrap();
        seqs.push(ack.seq);
    }
    for seq in &seqs {
        let report = loop {
            let report = delivery(&mut events, *seq).await;
            if report.state == DeliveryState::Sent {
                break report;
            }
        };
        assert_eq!(report.account, "sms-gw");
    }
    let taken: Vec<Value> = platform
        .taken()
        .iter()
        .map(|body| body["text"].clone())
        .collect();
    assert_eq!(
        taken,
        texts.iter().map(|text| json!(text)).collect::<Vec<_>>()
    );
    // Only the first reply was refused: the later ones waited behind it.
    let received = platform.received();
    assert!(
        received[..4]
            .iter()
            .all(|body| body["text"] == "part 1 of my answer"),
        "{received:?}"
    );
}

#[tokio::test]
async fn a_reply_sent_as_the_agent_closes_still_records_its_delivery() {
    let Conversation {
        platform,
        test: _test,
        board,
        chen,
        session,
        events: _events,
    } = conversation(&[], "in-7", "+8613900000007", "thanks, bye").await;
    let ack = board
        .agent_message(&chen, session, "You're welcome, goodbye!".into(), None)
        .await
        .unwrap();
    board.close(&chen, session, None).await.unwrap();
    // The report comes after the session ended (its actor may have
    // stopped): it is still recorded, in the stored history.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let history = board.history(session, 0).await.unwrap();
        let sent = history.iter().any(|event| {
            matches!(&event.kind, EventKind::Delivery(report)
                if report.of == ack.seq && report.state == DeliveryState::Sent)
        });
        if sent {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `sent` in {history:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(platform.taken().len(), 1);
    assert_eq!(
        board.session(session).await.unwrap().state,
        engine::session::SessionState::Closed
    );
}
