//! `POST /api/v1/inbound` over real HTTP: the brief's envelope is stored and
//! acknowledged, a resend is stored once, bad fields and callers are refused
//! naming what was wrong, and the session it opens is a session like any other.

use crate::common;

use common::TestServer;
use gateway::auth::Role;
use serde_json::{Value, json};

/// Posts `body` to `/api/v1/inbound` with `token`; returns status and JSON.
async fn post_inbound(test: &TestServer, token: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(test.http_url("/api/v1/inbound"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("a JSON answer");
    (status, body)
}

fn briefs_envelope() -> Value {
    json!({
        "channel": "wechat",
        "customer_id": "12345",
        "message": "我的订单何时发货?",
        "timestamp": "2023-10-01T10:00:00Z",
    })
}

#[tokio::test]
async fn the_briefs_envelope_is_stored_and_its_session_is_listed() {
    let test = TestServer::start(|_| {}).await;
    let admin = test.token("wechat-adapter", Role::Admin);

    // WeChat id 12345 is the demo VIP's: the identity resolves to her.
    let (status, ack) = post_inbound(&test, &admin, &briefs_envelope()).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["customer_id"], "cust-vip-001", "{ack}");
    assert_eq!(ack["duplicate"], false, "{ack}");
    let session = ack["session"].as_str().expect("session id as a string");
    assert!(session.parse::<u64>().is_ok(), "{ack}");
    assert!(ack["seq"].as_u64().unwrap() >= 1, "{ack}");

    // A second message of the same customer joins the same session.
    let mut second = briefs_envelope();
    second["message"] = json!("还在吗?");
    let (status, next) = post_inbound(&test, &admin, &second).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["session"], session, "{next}");
    assert!(
        next["seq"].as_u64() > ack["seq"].as_u64(),
        "{next} after {ack}"
    );

    // The session shows up like any other, and holds the message.
    let list = test.get_json("/api/v1/sessions", &admin).await;
    let listed = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|record| record["id"] == session)
        .unwrap_or_else(|| panic!("session {session} not in {list}"));
    assert_eq!(listed["customer_id"], "cust-vip-001");
    assert_eq!(listed["channel"], "wechat");
    let detail = test
        .get_json(&format!("/api/v1/sessions/{session}"), &admin)
        .await;
    let bodies: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["body"].as_str())
        .collect();
    assert_eq!(bodies, ["我的订单何时发货?", "还在吗?"], "{detail}");
    // An unknown identity becomes a new customer `<channel>:<id>`.
    let mut stranger = briefs_envelope();
    stranger["customer_id"] = json!("wx-new-1");
    let (status, ack) = post_inbound(&test, &admin, &stranger).await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["customer_id"], "wechat:wx-new-1", "{ack}");
    assert_ne!(ack["session"], session, "{ack}");
    let customer = test
        .get_json("/api/v1/customers/wechat:wx-new-1", &admin)
        .await;
    assert_eq!(customer["identities"][0]["channel"], "wechat", "{customer}");
    assert_eq!(
        customer["identities"][0]["external_id"], "wx-new-1",
        "{customer}"
    );
    test.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_resend_with_the_same_client_message_id_is_stored_once() {
    let test = TestServer::start(|_| {}).await;
    let admin = test.token("sms-adapter", Role::Admin);
    let envelope = json!({
        "channel": "sms",
        "customer_id": "+8613800000001",
        "message": "退货怎么办?",
        "timestamp": "2023-10-01T10:00:00Z",
        "client_message_id": "sms-777",
        "display_name": "Zhou Min",
    });
    let (status, first) = post_inbound(&test, &admin, &envelope).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = post_inbound(&test, &admin, &envelope).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["seq"], first["seq"], "{again} vs {first}");
    assert_eq!(again["session"], first["session"]);

    let session = first["session"].as_str().unwrap();
    let detail = test
        .get_json(&format!("/api/v1/sessions/{session}"), &admin)
        .await;
    let n_messages = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["body"] == "退货怎么办?")
        .count();
    assert_eq!(n_messages, 1, "{detail}");
    let customer = test
        .get_json("/api/v1/customers/sms:+8613800000001", &admin)
        .await;
    assert_eq!(customer["display_name"], "Zhou Min", "{customer}");
    test.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_fields_are_refused_naming_the_field_and_nothing_is_stored() {
    let test = TestServer::start(|config| config.limits.max_body_chars = 10).await;
    let admin = test.token("adapter", Role::Admin);
    let with = |field: &str, value: Value| {
        let mut envelope = briefs_envelope();
        envelope[field] = value;
        envelope
    };
    let cases = [
        (with("channel", json!("fax")), "unknown_channel", "channel"),
        (with("channel", json!("No Such")), "invalid", "channel"),
        (with("customer_id", json!("")), "invalid", "customer_id"),
        (with("message", json!("  ")), "invalid", "message"),
        (
            with("message", json!("一二三四五六七八九十十一")),
            "body_too_long",
            "message",
        ),
        (
            with("timestamp", json!("yesterday")),
            "invalid",
            "timestamp",
        ),
        (
            with("client_message_id", json!("x".repeat(129))),
            "invalid",
            "client_message_id",
        ),
        (with("extra", json!(1)), "invalid", ""),
    ];
    for (body, code, field) in cases {
        let (status, error) = post_inbound(&test, &admin, &body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["code"], code, "{body}: {error}");
        if !field.is_empty() {
            assert_eq!(error["details"]["field"], field, "{body}: {error}");
            assert!(
                error["message"].as_str().unwrap().contains(field),
                "{error} should name {field}"
            );
        }
    }
    let (_, unknown) = post_inbound(&test, &admin, &with("extra", json!(1))).await;
    assert!(
        unknown["message"].as_str().unwrap().contains("extra"),
        "{unknown}"
    );
    // Nothing of it was stored: no open session.
    let list = test.get_json("/api/v1/sessions", &admin).await;
    assert_eq!(list["sessions"], json!([]), "{list}");
    test.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn only_admin_tokens_may_post_and_the_session_limit_applies() {
    let test = TestServer::start(|config| {
        config.limits.new_sessions_per_customer_per_hour = 1;
    })
    .await;
    for (sub, role) in [
        ("li.na", Role::Agent),
        ("wang.min", Role::Supervisor),
        ("cust-003", Role::Customer),
    ] {
        let token = test.token(sub, role);
        let (status, error) = post_inbound(&test, &token, &briefs_envelope()).await;
        assert_eq!(status, 403, "{role:?}: {error}");
        assert_eq!(error["code"], "forbidden", "{error}");
    }
    let response = reqwest::Client::new()
        .post(test.http_url("/api/v1/inbound"))
        .json(&briefs_envelope())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    // One session per hour: the first opens, and once it ends the next is refused.
    let admin = test.token("adapter", Role::Admin);
    let mut envelope = briefs_envelope();
    envelope["customer_id"] = json!("wx-limited");
    let (status, ack) = post_inbound(&test, &admin, &envelope).await;
    assert_eq!(status, 200, "{ack}");
    let customer = engine::ids::CustomerId::new("wechat:wx-limited");
    let session = engine::ids::SessionId(ack["session"].as_str().unwrap().parse().unwrap());
    test.server
        .switchboard()
        .customer_leave(&customer, session)
        .await
        .unwrap();
    let (status, error) = post_inbound(&test, &admin, &envelope).await;
    assert_eq!(status, 429, "{error}");
    assert_eq!(error["code"], "too_many_sessions", "{error}");
    test.server.shutdown().await.unwrap();
}
