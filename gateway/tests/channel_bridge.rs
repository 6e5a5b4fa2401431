//! Out-of-process adapters (kind `bridge`) with the real example adapter,
//! `examples/channel-bridge/adapter.py`, run by Debian's Python
//! (`/usr/bin/python3` with `python3-websockets`; `SWITCHBOARD_PYTHON`
//! names another): killed with SIGKILL in the middle of its messages and of
//! agents' replies, restarted, and nothing is lost or stored, or delivered,
//! twice. Also the endpoint's refusals, over real HTTP and WebSocket.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use actors::{DeliveryState, EventKind, Subscription};
use channels::ChannelConfig;
use common::TestServer;
use engine::channel::Channel;
use engine::ids::{AgentId, SessionId};
use engine::presence::PresenceRequest;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "bridge-token-0123456789";

/// How long a phase of a test may take before it fails.
const PHASE: Duration = Duration::from_secs(60);

/// A bridge account named `name` on the SMS channel (the demo agents take
/// SMS sessions). Each test has its own name: the metrics are the process's.
fn bridge_account(name: &str) -> ChannelConfig {
    ChannelConfig {
        kind: "bridge".into(),
        name: name.into(),
        channel: Channel::Sms,
        secret: TOKEN.into(),
        base_url: String::new(),
        settings: toml::from_str("ack_timeout_ms = 2000").unwrap(),
    }
}

async fn start(account: &str) -> TestServer {
    TestServer::start(|config| {
        config.channels = vec![
            bridge_account(account),
            common::platform::account(String::new()),
        ];
        // Quick retries, so a reply waiting for the adapter goes out soon after it is back.
        config.webhooks.initial_backoff_ms = 100;
        config.webhooks.max_backoff_ms = 400;
        config.webhooks.max_attempts = 50;
        config.webhooks.poll_ms = 100;
    })
    .await
}

fn bridge_url(test: &TestServer, account: &str) -> String {
    format!("ws://{}/api/v1/channels/{account}/bridge", test.server.addr)
}

/// The Python that runs the example: `SWITCHBOARD_PYTHON`, or Debian's,
/// which must import `websockets`.
fn python() -> String {
    let python = std::env::var("SWITCHBOARD_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let imports = std::process::Command::new(&python)
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        imports,
        "{python} cannot import `websockets`: install Debian's python3-websockets \
         (apt-get install python3-websockets) or set SWITCHBOARD_PYTHON"
    );
    python
}

/// The example adapter, running.
struct Adapter {
    child: tokio::process::Child,
}

impl Adapter {
    fn start(test: &TestServer, account: &str, state_dir: &Path, delay_ms: u64) -> Adapter {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/channel-bridge/adapter.py");
        let child = tokio::process::Command::new(python())
            .arg(script)
            .args(["--url", &bridge_url(test, account), "--token", TOKEN])
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--delay-ms", &delay_ms.to_string()])
            .kill_on_drop(true)
            .spawn()
            .expect("the example adapter starts");
        Adapter { child }
    }

    /// SIGKILL: no goodbye, no flush.
    async fn kill(mut self) {
        self.child.kill().await.expect("kill -9 the adapter");
    }

    /// SIGTERM; it must exit cleanly.
    async fn stop(mut self) {
        let pid = self.child.id().expect("running") as i32;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the adapter stops within 10 s of SIGTERM")
            .unwrap();
        assert!(exit.success(), "the adapter exits cleanly: {exit:?}");
    }
}

/// Polls `condition` every 20 ms until it holds; fails after [`PHASE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PHASE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited too long for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `acked.json`: message id → its session (empty until written).
fn acked(dir: &Path) -> BTreeMap<String, Value> {
    std::fs::read_to_string(dir.join("acked.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// `delivered.jsonl`, line by line.
fn delivered(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("delivered.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// Writes `inbox.jsonl`: `n_per_customer` messages from each of `customers`,
/// interleaved; returns each customer's texts in order.
fn write_inbox(
    dir: &Path,
    customers: &[String],
    n_per_customer: usize,
) -> BTreeMap<String, Vec<String>> {
    let mut lines = Vec::new();
    let mut texts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for idx in 0..n_per_customer {
        for customer in customers {
            let text = format!("{customer} message {idx}");
            lines.push(
                json!({"id": format!("{customer}-m{idx}"), "from": customer, "text": text, "sent_at": "2026-01-05T10:00:00Z"})
                    .to_string(),
            );
            texts.entry(customer.clone()).or_default().push(text);
        }
    }
    std::fs::write(dir.join("inbox.jsonl"), lines.join("\n") + "\n").unwrap();
    texts
}

/// The customer messages stored in `session`, by text, in order.
async fn customer_texts(test: &TestServer, session: &str) -> Vec<String> {
    let admin = test.token("admin", gateway::auth::Role::Admin);
    let detail = test
        .get_json(&format!("/api/v1/sessions/{session}"), &admin)
        .await;
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "message" && event["sender"] == "customer")
        .map(|event| event["body"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_killed_mid_stream_resends_and_nothing_is_lost_or_stored_twice() {
    let test = start("line-in").await;
    let state = tempfile::tempdir().unwrap();
    let customers: Vec<String> = (0..30).map(|idx| format!("U{idx:02}")).collect();
    let expected = write_inbox(state.path(), &customers, 10);

    let adapter = Adapter::start(&test, "line-in", state.path(), 5);
    eventually("50 acks", || acked(state.path()).len() >= 50).await;
    adapter.kill().await;
    let at_kill = acked(state.path()).len();
    assert!(
        at_kill < 300,
        "killed mid-stream, not after: {at_kill} acked"
    );

    let adapter = Adapter::start(&test, "line-in", state.path(), 0);
    eventually("300 acks", || acked(state.path()).len() == 300).await;
    adapter.stop().await;

    // One session per customer, holding each of their messages once, in order.
    let acks = acked(state.path());
    for customer in &customers {
        let sessions: BTreeSet<&str> = (0..10)
            .map(|idx| {
                acks[&format!("{customer}-m{idx}")]["session"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(sessions.len(), 1, "{customer}: {sessions:?}");
        let session = sessions.into_iter().next().unwrap();
        assert_eq!(
            customer_texts(&test, session).await,
            expected[customer],
            "{customer}'s messages in session {session}"
        );
    }
    assert_eq!(
        test.metric(
            "switchboard_channel_messages_total",
            &["account=\"line-in\"", "direction=\"in\""]
        )
        .await,
        300.0
    );
    assert_eq!(
        test.metric(
            "switchboard_channel_bridge_connected",
            &["account=\"line-in\""]
        )
        .await,
        0.0
    );
}

/// Waits until each reply of `waiting` (session, seq) is reported `sent`, once.
async fn sent_reports(events: &mut Subscription, mut waiting: BTreeSet<(SessionId, u64)>) {
    tokio::time::timeout(PHASE, async {
        while !waiting.is_empty() {
            let event = events.recv().await.expect("the agent's events");
            if let EventKind::Delivery(report) = &event.kind
                && report.state == DeliveryState::Sent
            {
                assert!(
                    waiting.remove(&(event.session, report.of)),
                    "a second `sent` (or an unknown one) for {} {}",
                    event.session,
                    report.of
                );
            }
        }
    })
    .await
    .expect("every reply is reported sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_reach_the_adapter_once_each_across_a_kill_and_restart() {
    let test = start("line-out").await;
    let board = test.server.switchboard().clone();
    let state = tempfile::tempdir().unwrap();
    let customers = vec!["V1".to_string(), "V2".to_string()];
    write_inbox(state.path(), &customers, 1);

    let chen = AgentId::new("chen.jie");
    let mut events = board.subscribe_agent(&chen);
    board
        .set_presence(&chen, PresenceRequest::Available)
        .await
        .unwrap();
    let adapter = Adapter::start(&test, "line-out", state.path(), 20);
    eventually("2 acks", || acked(state.path()).len() == 2).await;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let session = tokio::time::timeout(PHASE, async {
            loop {
                let event = events.recv().await.expect("the agent's events");
                if matches!(event.kind, EventKind::Offered { .. }) {
                    return event.session;
                }
            }
        })
        .await
        .expect("an offer");
        board.accept(&chen, session).await.unwrap();
        sessions.push(session);
    }

    // 60 replies; the adapter is killed after some are delivered and restarted.
    let mut replies = BTreeSet::new();
    let mut texts = BTreeMap::new();
    let mut adapter = Some(adapter);
    for idx in 0..60 {
        let session = sessions[idx % 2];
        let text = format!("reply {idx}");
        let ack = board
            .agent_message(&chen, session, text.clone(), Some(format!("a-{idx}")))
            .await
            .unwrap();
        replies.insert((session, ack.seq));
        texts.insert(format!("reply-{session}-{}", ack.seq), text);
        if idx == 30 {
            eventually("10 deliveries", || delivered(state.path()).len() >= 10).await;
            adapter.take().unwrap().kill().await;
        }
        if idx == 45 {
            adapter = Some(Adapter::start(&test, "line-out", state.path(), 0));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sent_reports(&mut events, replies).await;
    eventually("60 deliveries", || delivered(state.path()).len() >= 60).await;
    adapter.take().unwrap().stop().await;

    let lines = delivered(state.path());
    let got: BTreeMap<String, String> = lines
        .iter()
        .map(|line| {
            (
                line["delivery_id"].as_str().unwrap().to_string(),
                line["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(lines.len(), 60, "each reply once: {lines:?}");
    assert_eq!(got, texts);
    let to: BTreeSet<&str> = lines
        .iter()
        .map(|line| line["to"].as_str().unwrap())
        .collect();
    assert_eq!(to, BTreeSet::from(["V1", "V2"]));
}

/// The status and JSON error of an upgrade to `account` with `token`.
async fn refused_upgrade(test: &TestServer, account: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = bridge_url(test, account).into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        }
        other => panic!("the upgrade should be refused: {other:?}"),
    }
}

#[tokio::test]
async fn the_endpoint_refuses_a_wrong_token_an_unknown_account_and_another_kind() {
    let test = start("line").await;
    for (account, token, status, code) in [
        ("line", Some("bridge-token-0123456780"), 401, "unauthorized"),
        ("line", None, 401, "unauthorized"),
        ("nope", Some(TOKEN), 404, "unknown_channel_account"),
        ("sms-gw", Some(TOKEN), 409, "not_a_bridge"),
    ] {
        let (got, body) = refused_upgrade(&test, account, token).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{account} {token:?}: {body}"
        );
    }
    // The HTTP route of a bridge account points at its socket.
    let response = reqwest::Client::new()
        .post(test.http_url("/api/v1/channels/line/inbound"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/channels/line/bridge"),
        "{body}"
    );
}

#[tokio::test]
async fn an_invalid_frame_is_refused_naming_the_field_and_nothing_is_stored() {
    let test = start("line").await;
    let mut request = bridge_url(&test, "line").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let frames = [
        json!({"type": "message", "id": "m1", "from": "W1", "text": "hi", "sent_at": "yesterday"}),
        json!({"type": "message", "id": "m2", "from": "W1", "sent_at": "2026-01-05T10:00:00Z"}),
        json!({"type": "message", "id": "m3", "from": "W1", "text": "hi", "sent_at": "2026-01-05T10:00:00Z"}),
        json!({"type": "message", "id": "m3", "from": "W1", "text": "hi", "sent_at": "2026-01-05T10:00:00Z"}),
    ];
    let mut answers = Vec::new();
    for frame in frames {
        ws.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
        let answer = loop {
            let message = tokio::time::timeout(common::PATIENCE, ws.next())
                .await
                .expect("an answer")
                .expect("open")
                .expect("a frame");
            if let Message::Text(text) = message {
                break serde_json::from_str::<Value>(&text).unwrap();
            }
        };
        answers.push(answer);
    }
    assert_eq!(
        (
            &answers[0]["type"],
            &answers[0]["id"],
            &answers[0]["code"],
            &answers[0]["field"],
            &answers[0]["retry"]
        ),
        (
            &json!("error"),
            &json!("m1"),
            &json!("invalid"),
            &json!("sent_at"),
            &json!(false)
        ),
        "{}",
        answers[0]
    );
    assert_eq!(answers[1]["field"], "text", "{}", answers[1]);
    assert_eq!(
        (&answers[2]["type"], &answers[2]["duplicate"]),
        (&json!("ack"), &json!(false)),
        "{}",
        answers[2]
    );
    assert_eq!(
        (
            &answers[3]["session"],
            &answers[3]["seq"],
            &answers[3]["duplicate"]
        ),
        (&answers[2]["session"], &answers[2]["seq"], &json!(true)),
        "{}",
        answers[3]
    );
    // Only m3 was stored, once.
    let session = answers[2]["session"].as_str().unwrap();
    assert_eq!(customer_texts(&test, session).await, ["hi"]);
    assert_eq!(
        test.metric(
            "switchboard_channel_requests_total",
            &["account=\"line\"", "outcome=\"invalid\""]
        )
        .await,
        2.0
    );
    assert_eq!(
        test.metric(
            "switchboard_channel_bridge_connected",
            &["account=\"line\""]
        )
        .await,
        1.0
    );

    // A second connection replaces the first, which is closed with 4009.
    let mut request = bridge_url(&test, "line").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (second, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let closed = loop {
        match tokio::time::timeout(common::PATIENCE, ws.next())
            .await
            .expect("a close")
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|frame| u16::from(frame.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame: {other:?}"),
        }
    };
    assert_eq!(closed, Some(4009));
    drop(second);
}

/// A bridge adapter written here: a socket with the account's token.
async fn connect_adapter(
    test: &TestServer,
    account: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = bridge_url(test, account).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The next text frame of `ws`, as JSON.
async fn next_frame(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(PHASE, ws.next())
            .await
            .expect("a frame")
            .expect("open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_backing_off_goes_as_soon_as_the_adapter_connects() {
    // A long backoff: without the adapter's connection hurrying it, a
    // reply that failed while no adapter was there waits minutes.
    let test = TestServer::start(|config| {
        config.channels = vec![bridge_account("tg")];
        config.webhooks.initial_backoff_ms = 600_000;
        config.webhooks.max_backoff_ms = 600_000;
        config.webhooks.poll_ms = 100;
    })
    .await;
    let board = test.server.switchboard().clone();
    let chen = AgentId::new("chen.jie");
    let mut events = board.subscribe_agent(&chen);
    board
        .set_presence(&chen, PresenceRequest::Available)
        .await
        .unwrap();
    let mut ws = connect_adapter(&test, "tg").await;
    let message = json!({"type": "message", "id": "t1", "from": "T1", "text": "hello?", "sent_at": "2026-01-05T10:00:00Z"});
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut ws).await["type"], "ack");
    ws.close(None).await.unwrap();
    drop(ws);
    let session = common::take_offer(&board, &mut events, &chen).await;

    // No adapter: the reply fails for now and backs off.
    let reply = board
        .agent_message(&chen, session, "Yes, how can I help?".into(), None)
        .await
        .unwrap();
    common::next_event(&mut events, |event| {
        matches!(&event.kind, EventKind::Delivery(report)
            if report.of == reply.seq && report.state == DeliveryState::Retrying)
    })
    .await;
    // The failed attempt is recorded (after the report) with its backoff.
    let waiting = tokio::time::timeout(PHASE, async {
        loop {
            let entry = board
                .store()
                .outbox_due(i64::MAX, 10)
                .await
                .unwrap()
                .into_iter()
                .find(|entry| entry.endpoint == "@channel/tg" && entry.attempts >= 1);
            match entry {
                Some(entry) => return entry,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the reply waits in the outbox");

    // The adapter connects: the reply comes at once, before its backoff ends.
    let mut ws = connect_adapter(&test, "tg").await;
    let deliver = next_frame(&mut ws).await;
    assert!(
        engine::now_millis() < waiting.next_attempt_at,
        "delivered at its backoff's end, not when the adapter came"
    );
    assert_eq!(
        (&deliver["type"], &deliver["text"]),
        (&json!("deliver"), &json!("Yes, how can I help?")),
        "{deliver}"
    );
    let answer = json!({"type": "delivered", "delivery_id": deliver["delivery_id"]});
    ws.send(Message::Text(answer.to_string().into()))
        .await
        .unwrap();
    sent_reports(&mut events, BTreeSet::from([(session, reply.seq)])).await;
}
