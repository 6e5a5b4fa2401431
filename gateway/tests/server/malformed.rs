//! Malformed input: each case with its expected error and what becomes of
//! the connection. After every case that keeps the socket open, a `ping`
//! must still get its `pong`; at the end the server still serves.

use crate::common;

use common::{Client, TestServer};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// What happens to the connection.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// An error frame with this code; the socket stays open.
    ErrorFrame(&'static str),
    /// The socket is closed with this code.
    Closed(u16),
}

fn text(body: impl Into<String>) -> Message {
    Message::Text(body.into().into())
}

/// A text frame whose payload is not UTF-8, sent as a raw frame so the
/// client library does not refuse it.
fn invalid_utf8() -> Message {
    Message::Frame(Frame::message(
        vec![b'{', 0xff, 0xfe, b'}'],
        OpCode::Data(Data::Text),
        true,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_input_gets_its_error_and_the_server_survives() {
    let test = TestServer::start(|config| {
        // The smallest frame limit 100 characters allow: 100 * 12 + 4096.
        config.limits.max_frame_bytes = 5296;
        config.limits.max_ws_message_bytes = 8 * 1024;
        config.limits.max_body_chars = 100;
        // The flood case: at 1 frame/s no slow machine spreads 50 refusals
        // in a row over enough time to earn a token back.
        config.limits.messages_per_second = 1;
        config.limits.flood_close_after = 50;
    })
    .await;
    let cases: Vec<(&str, Vec<Message>, Fate)> = vec![
        (
            "not JSON",
            vec![text("hello there")],
            Fate::ErrorFrame("bad_json"),
        ),
        (
            "JSON but not an object",
            vec![text("[1,2,3]")],
            Fate::ErrorFrame("missing_type"),
        ),
        (
            "no type",
            vec![text(r#"{"body":"hi"}"#)],
            Fate::ErrorFrame("missing_type"),
        ),
        (
            "type not a string",
            vec![text(r#"{"type":7}"#)],
            Fate::ErrorFrame("missing_type"),
        ),
        (
            "unknown type",
            vec![text(r#"{"type":"teleport"}"#)],
            Fate::ErrorFrame("unknown_type"),
        ),
        (
            "missing field",
            vec![text(r#"{"type":"message","client_message_id":"m1"}"#)],
            Fate::ErrorFrame("invalid_frame"),
        ),
        (
            "wrong type of field",
            vec![text(
                r#"{"type":"message","client_message_id":"m1","body":42}"#,
            )],
            Fate::ErrorFrame("invalid_frame"),
        ),
        (
            "unknown field",
            vec![text(
                r#"{"type":"message","client_message_id":"m1","body":"x","colour":"red"}"#,
            )],
            Fate::ErrorFrame("invalid_frame"),
        ),
        (
            "bad session id",
            vec![text(r#"{"type":"leave","session":"abc"}"#)],
            Fate::ErrorFrame("invalid_frame"),
        ),
        (
            "empty body",
            vec![text(
                r#"{"type":"message","client_message_id":"m1","body":"  "}"#,
            )],
            Fate::ErrorFrame("invalid_frame"),
        ),
        (
            "body over max_body_chars",
            vec![text(
                json!({"type":"message","client_message_id":"m1","body":"字".repeat(101)})
                    .to_string(),
            )],
            Fate::ErrorFrame("body_too_long"),
        ),
        (
            "frame over max_frame_bytes",
            vec![text(
                json!({"type":"ping","pad":"x".repeat(6000)}).to_string(),
            )],
            Fate::ErrorFrame("frame_too_large"),
        ),
        (
            "binary frame",
            vec![Message::Binary(vec![1, 2, 3].into())],
            Fate::ErrorFrame("binary_not_supported"),
        ),
        (
            "unknown session",
            vec![text(r#"{"type":"leave","session":"12345"}"#)],
            Fate::ErrorFrame("unknown_session"),
        ),
        ("invalid UTF-8", vec![invalid_utf8()], Fate::Closed(1007)),
        (
            "message over max_ws_message_bytes",
            vec![text("x".repeat(9 * 1024))],
            Fate::Closed(1009),
        ),
        (
            "flood",
            (0..400).map(|_| text(r#"{"type":"ping"}"#)).collect(),
            Fate::Closed(1008),
        ),
    ];
    for (name, messages, fate) in cases {
        let mut client = test.customer("cust-003").await;
        for message in messages {
            client.send_raw(message).await;
        }
        match fate {
            Fate::ErrorFrame(code) => {
                let error = client.expect("error").await;
                assert_eq!(error["code"], code, "{name}: {error}");
                assert!(!error["message"].as_str().unwrap().is_empty(), "{name}");
                let pong = client.request(json!({"type": "ping"})).await;
                assert_eq!(pong["type"], "pong", "{name}: the socket stays open");
            }
            Fate::Closed(code) => {
                assert_eq!(client.closed().await, Some(code), "{name}");
            }
        }
    }
    // Field errors name the field.
    let mut client = test.customer("cust-003").await;
    client
        .send(json!({"type":"message","client_message_id":"m1","body":42}))
        .await;
    let error = client.expect("error").await;
    assert!(
        error["message"].as_str().unwrap().contains("`body`"),
        "{error}"
    );
    client.send(json!({"type":"message","body":"hi"})).await;
    let error = client.expect("error").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("client_message_id"),
        "{error}"
    );

    // A flood of valid frames is refused with rate_limited before the close.
    let mut flooder = test.customer("cust-003").await;
    for _ in 0..100 {
        flooder.send(json!({"type": "ping"})).await;
    }
    let limited = flooder
        .wait_for("rate_limited", |f| f["code"] == "rate_limited")
        .await;
    assert!(limited["message"].as_str().unwrap().contains("resend"));

    // The server is alive and serving: health, and a fresh conversation works.
    let health = reqwest::get(test.http_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let mut customer = test.customer("cust-002").await;
    customer.hello(json!({})).await;
    customer.say(json!({}), "ok-1", "still working?").await;
    drop(
        Client::connect(&test.ws_url(
            "/ws/customer",
            &test.token("cust-002", gateway::auth::Role::Customer),
        ))
        .await,
    );
    test.server.shutdown().await.unwrap();
}

/// A flood close (1008) comes after the ack of every message the server
/// accepted before it: a client learns which of its messages were stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_close_comes_after_the_acks_of_accepted_messages() {
    let test = TestServer::start(|config| {
        config.limits.messages_per_second = 1;
        config.limits.message_burst = 20;
        config.limits.flood_close_after = 3;
    })
    .await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let first = customer.say(json!({}), "m0", "first").await;
    let session = common::session_of(&first);
    // Four messages the bucket still has room for, then more pings than it
    // holds: the last three are refused, refused, and the flood close; all
    // in one write.
    let mut frames: Vec<_> = (1..=4)
        .map(|n| json!({"type": "message", "client_message_id": format!("m{n}"), "body": format!("message {n}")}))
        .collect();
    frames.extend((0..30).map(|_| json!({"type": "ping"})));
    customer.send_batch(&frames).await;
    let mut acked = std::collections::BTreeSet::new();
    let close = loop {
        match customer.read().await {
            Ok(frame) if frame["type"] == "ack" => {
                acked.insert(frame["client_message_id"].as_str().unwrap().to_string());
            }
            Ok(_) => continue,
            Err((code, _)) => break code,
        }
    };
    assert_eq!(close, Some(1008));
    let stored: std::collections::BTreeSet<String> = test
        .server
        .switchboard()
        .store()
        .messages(
            session.parse::<u64>().map(engine::ids::SessionId).unwrap(),
            0,
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .filter_map(|message| message.client_message_id)
        .filter(|id| id != "m0")
        .collect();
    let expected: std::collections::BTreeSet<String> = (1..=4).map(|n| format!("m{n}")).collect();
    assert_eq!(stored, expected, "every accepted message is stored");
    assert_eq!(
        acked, stored,
        "every stored message was acked before the close"
    );
    test.server.shutdown().await.unwrap();
}

/// Every client frame type of both endpoints refuses a field it does not
/// have with `invalid_frame` naming it (PROTOCOL §2), except `presence`,
/// which the protocol lets ignore them. A valid frame of each type is sent
/// with one field too many; the fields' own checks come first, so a session
/// that does not exist is fine here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_type_refuses_a_field_it_does_not_have() {
    let test = TestServer::start(|_| {}).await;
    let session = "12345";
    let customer_frames = [
        json!({"type": "hello"}),
        json!({"type": "message", "client_message_id": "m1", "body": "hi"}),
        json!({"type": "typing", "session": session}),
        json!({"type": "leave", "session": session}),
        json!({"type": "rate", "session": session, "score": 5}),
        json!({"type": "ping"}),
    ];
    let agent_frames = [
        json!({"type": "hello"}),
        json!({"type": "accept", "session": session}),
        json!({"type": "reject", "session": session}),
        json!({"type": "message", "session": session, "client_message_id": "m1", "body": "hi"}),
        json!({"type": "typing", "session": session}),
        json!({"type": "transfer", "session": session, "group": "default"}),
        json!({"type": "wrap_up", "session": session}),
        json!({"type": "close", "session": session}),
        json!({"type": "queues"}),
        json!({"type": "sessions"}),
        json!({"type": "history", "session": session}),
        json!({"type": "watch_ticket", "ticket_id": "T-1"}),
        json!({"type": "unwatch_ticket", "ticket_id": "T-1"}),
        json!({"type": "ping"}),
    ];
    let mut customer = test.customer("cust-003").await;
    let mut agent = test.available_agent("chen.jie").await;
    for (endpoint, client, frames) in [
        ("customer", &mut customer, &customer_frames[..]),
        ("agent", &mut agent, &agent_frames[..]),
    ] {
        for frame in frames {
            let mut extended = frame.clone();
            extended["extra"] = json!(1);
            let reply = client.request(extended).await;
            assert_eq!(
                (reply["type"].as_str(), reply["code"].as_str()),
                (Some("error"), Some("invalid_frame")),
                "{endpoint} {frame}: {reply}"
            );
            assert!(
                reply["message"].as_str().unwrap().contains("`extra`"),
                "{endpoint} {frame}: {reply}"
            );
        }
    }
    // The documented exception.
    let presence = agent
        .request(json!({"type": "presence", "state": "available", "extra": 1}))
        .await;
    assert_eq!(presence["type"], "presence", "{presence}");
    test.server.shutdown().await.unwrap();
}

/// `body` with every character as a `\uXXXX` escape (Python's `json.dumps`
/// default): UTF-16 units, so a character outside the Basic Multilingual
/// Plane is a surrogate pair, 12 bytes.
fn ascii_escaped_message(client_message_id: &str, body: &str) -> String {
    let escaped: String = body
        .encode_utf16()
        .map(|unit| format!("\\u{unit:04x}"))
        .collect();
    format!(r#"{{"type":"message","client_message_id":"{client_message_id}","body":"{escaped}"}}"#)
}

/// With the default limits, a body of `limits.max_body_chars` characters
/// gets through however verbosely its JSON is escaped; one character more
/// is `body_too_long`, not `frame_too_large`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_valid_body_fits_in_a_frame_however_it_is_escaped() {
    let test = TestServer::start(|_| {}).await;
    let max_chars = test.server.state.config.limits.max_body_chars;
    let chinese: String = "我的订单何时发货".chars().cycle().take(max_chars).collect();
    let emoji: String = "😀🚚📦".chars().cycle().take(max_chars).collect();
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    for (id, body) in [("zh-escaped", &chinese), ("emoji-escaped", &emoji)] {
        let frame = ascii_escaped_message(id, body);
        customer.send_raw(text(frame.clone())).await;
        let reply = customer
            .wait_for(id, |reply| {
                reply["type"] == "ack" || reply["type"] == "error"
            })
            .await;
        assert_eq!(reply["type"], "ack", "{} bytes: {reply}", frame.len());
    }
    let too_long = format!("{chinese}字");
    customer
        .send_raw(text(ascii_escaped_message("zh-too-long", &too_long)))
        .await;
    let error = customer.expect("error").await;
    assert_eq!(error["code"], "body_too_long", "{error}");
    test.server.shutdown().await.unwrap();
}
