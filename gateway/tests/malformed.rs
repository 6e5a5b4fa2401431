//! Malformed input: each case with its expected error and what becomes of
//! the connection. After every case that keeps the socket open, a `ping`
//! must still get its `pong`; at the end the server still serves.

mod common;

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
        config.limits.max_frame_bytes = 1024;
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
                json!({"type":"ping","pad":"x".repeat(2000)}).to_string(),
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
