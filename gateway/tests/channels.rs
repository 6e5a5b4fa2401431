//! `POST /api/v1/channels/{name}/inbound` over real HTTP with the webhook
//! channel: a signed message opens a session and is acked once durable, a
//! platform retry is a duplicate stored once, the demo VIP's WeChat id is
//! routed to gold_service, and unsigned, replayed or malformed requests are
//! refused with nothing stored.

mod common;

use channels::ChannelConfig;
use channels::signature;
use common::TestServer;
use engine::channel::Channel;
use gateway::auth::Role;
use serde_json::{Value, json};

const SMS_SECRET: &str = "sms-gateway-secret-0123";
const WECHAT_SECRET: &str = "wechat-bridge-secret-456";

fn account(name: &str, channel: Channel, secret: &str) -> ChannelConfig {
    ChannelConfig {
        kind: "webhook".into(),
        name: name.into(),
        channel,
        secret: secret.into(),
        base_url: String::new(),
        settings: toml::Table::new(),
    }
}

async fn start() -> TestServer {
    TestServer::start(|config| {
        config.channels = vec![
            account("sms-gw", Channel::Sms, SMS_SECRET),
            account("wx-bridge", Channel::Wechat, WECHAT_SECRET),
        ];
    })
    .await
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Posts `body` to account `name`'s URL with `signature` (a header value);
/// returns the status and the JSON answer.
async fn post(
    test: &TestServer,
    name: &str,
    body: &str,
    signature: Option<String>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(test.http_url(&format!("/api/v1/channels/{name}/inbound")))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        request = request.header(signature::HEADER, signature);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let answer = response.json::<Value>().await.expect("a JSON answer");
    (status, answer)
}

/// Posts `body` signed now with `secret`.
async fn post_signed(test: &TestServer, name: &str, secret: &str, body: &str) -> (u16, Value) {
    let signature = signature::header_value(secret, now_secs(), body.as_bytes());
    post(test, name, body, Some(signature)).await
}

fn message(id: &str, from: &str, text: &str) -> String {
    json!({"id": id, "from": from, "text": text, "sent_at": "2026-01-05T10:00:00Z"}).to_string()
}

/// The bodies of the customer's messages in `session`.
async fn bodies(test: &TestServer, session: &str) -> Vec<String> {
    let admin = test.token("admin", Role::Admin);
    let detail = test
        .get_json(&format!("/api/v1/sessions/{session}"), &admin)
        .await;
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["sender"] == "customer")
        .filter_map(|event| event["body"].as_str().map(str::to_owned))
        .collect()
}

/// How many sessions the store holds, for "nothing was stored".
async fn n_sessions(test: &TestServer) -> usize {
    let admin = test.token("admin", Role::Admin);
    let list = test.get_json("/api/v1/sessions?limit=1000", &admin).await;
    list["sessions"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_signed_message_opens_a_session_and_a_retry_is_stored_once() {
    let test = start().await;
    let body = message("sms-1", "+8613912345678", "where is my parcel?");
    let (status, answer) = post_signed(&test, "sms-gw", SMS_SECRET, &body).await;
    assert_eq!(status, 200, "{answer}");
    let ack = &answer["accepted"][0];
    assert_eq!(ack["id"], "sms-1", "{answer}");
    assert_eq!(ack["duplicate"], false, "{answer}");
    let session = ack["session"].as_str().expect("a session id").to_string();
    let seq = ack["seq"].as_u64().expect("a seq");

    // The platform did not see the answer and sends the same message again.
    let (status, again) = post_signed(&test, "sms-gw", SMS_SECRET, &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["accepted"],
        json!([{"id": "sms-1", "session": session, "seq": seq, "duplicate": true}])
    );
    assert_eq!(bodies(&test, &session).await, ["where is my parcel?"]);

    // A batch: a new message and the old one again, answered in order.
    let batch = format!(
        r#"{{"messages":[{},{body}]}}"#,
        message("sms-2", "+8613912345678", "hello?")
    );
    let (status, answer) = post_signed(&test, "sms-gw", SMS_SECRET, &batch).await;
    assert_eq!(status, 200, "{answer}");
    let acks = answer["accepted"].as_array().unwrap();
    assert_eq!(
        acks.iter()
            .map(|ack| (
                ack["id"].as_str().unwrap(),
                ack["duplicate"].as_bool().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("sms-2", false), ("sms-1", true)],
        "{answer}"
    );
    assert_eq!(
        bodies(&test, &session).await,
        ["where is my parcel?", "hello?"]
    );

    // The session closes; the platform's late retry of the first message
    // is still a duplicate of it, not a new session.
    let board = test.server.switchboard().clone();
    let session_id = engine::ids::SessionId(session.parse().unwrap());
    board
        .customer_leave(
            &engine::ids::CustomerId::new("sms:+8613912345678"),
            session_id,
        )
        .await
        .expect("the customer's session ends");
    let n_before = n_sessions(&test).await;
    let (status, late) = post_signed(&test, "sms-gw", SMS_SECRET, &body).await;
    assert_eq!(status, 200, "{late}");
    assert_eq!(
        late["accepted"],
        json!([{"id": "sms-1", "session": session, "seq": seq, "duplicate": true}])
    );
    assert_eq!(n_sessions(&test).await, n_before);

    // The customer is `sms:<number>`, a customer like any other.
    let admin = test.token("admin", Role::Admin);
    let customer = test
        .get_json("/api/v1/customers/sms:+8613912345678", &admin)
        .await;
    assert_eq!(customer["id"], "sms:+8613912345678", "{customer}");

    // Counted on /metrics: two new messages (duplicates are not), three
    // accepted requests (other tests of this file may add to both).
    let messages = test
        .metric(
            "switchboard_channel_messages_total",
            &["account=\"sms-gw\"", "channel=\"sms\"", "direction=\"in\""],
        )
        .await;
    assert!(messages >= 2.0, "{messages}");
    let accepted = test
        .metric(
            "switchboard_channel_requests_total",
            &["account=\"sms-gw\"", "outcome=\"accepted\""],
        )
        .await;
    assert!(accepted >= 3.0, "{accepted}");
}

#[tokio::test]
async fn the_vips_wechat_id_is_routed_to_gold_service() {
    let test = start().await;
    // WeChat id 12345 is the demo VIP's identity (cust-vip-001).
    let body = message("wx-1", "12345", "我的订单何时发货?");
    let (status, answer) = post_signed(&test, "wx-bridge", WECHAT_SECRET, &body).await;
    assert_eq!(status, 200, "{answer}");
    let session = answer["accepted"][0]["session"].as_str().unwrap();
    let admin = test.token("admin", Role::Admin);
    let detail = test
        .get_json(&format!("/api/v1/sessions/{session}"), &admin)
        .await;
    assert_eq!(detail["session"]["customer_id"], "cust-vip-001", "{detail}");
    assert_eq!(detail["session"]["channel"], "wechat", "{detail}");
    assert_eq!(detail["session"]["group"], "gold_service", "{detail}");
}

#[tokio::test]
async fn refused_requests_store_nothing_and_say_why() {
    let test = start().await;
    let n_before = n_sessions(&test).await;
    let body = message("sms-9", "+8613900000009", "hi");

    // Signed with another account's secret.
    let (status, answer) = post_signed(&test, "sms-gw", WECHAT_SECRET, &body).await;
    assert_eq!(
        (status, &answer["code"]),
        (401, &json!("bad_signature")),
        "{answer}"
    );
    let refused = test
        .metric(
            "switchboard_channel_requests_total",
            &["account=\"sms-gw\"", "outcome=\"bad_signature\""],
        )
        .await;
    assert!(refused >= 1.0, "refusals are counted by code: {refused}");
    // No signature at all.
    let (status, answer) = post(&test, "sms-gw", &body, None).await;
    assert_eq!(
        (status, &answer["code"]),
        (401, &json!("bad_signature")),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("no `X-Switchboard-Signature` header"),
        "{answer}"
    );
    // A captured request replayed ten minutes later.
    let old = signature::header_value(SMS_SECRET, now_secs() - 600, body.as_bytes());
    let (status, answer) = post(&test, "sms-gw", &body, Some(old)).await;
    assert_eq!(
        (status, &answer["code"]),
        (401, &json!("stale_timestamp")),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("over the 300 s tolerance"),
        "{answer}"
    );
    // Signed, but not the schema.
    let no_from =
        json!({"id": "sms-9", "text": "hi", "sent_at": "2026-01-05T10:00:00Z"}).to_string();
    let (status, answer) = post_signed(&test, "sms-gw", SMS_SECRET, &no_from).await;
    assert_eq!(
        (status, &answer["code"]),
        (400, &json!("invalid")),
        "{answer}"
    );
    assert_eq!(answer["details"]["field"], "from", "{answer}");
    let (status, answer) = post_signed(&test, "sms-gw", SMS_SECRET, "{\"id\": ").await;
    assert_eq!(
        (status, &answer["details"]["field"]),
        (400, &json!("body")),
        "{answer}"
    );
    // A batch with one bad message: none of it is stored.
    let batch = format!(
        r#"{{"messages":[{body},{}]}}"#,
        json!({"id": "sms-10", "from": "+8613900000009", "text": "", "sent_at": "2026-01-05T10:00:00Z"})
    );
    let (status, answer) = post_signed(&test, "sms-gw", SMS_SECRET, &batch).await;
    assert_eq!(
        (status, &answer["details"]["field"]),
        (400, &json!("messages[1].text")),
        "{answer}"
    );
    // No such account.
    let (status, answer) = post_signed(&test, "fax", SMS_SECRET, &body).await;
    assert_eq!(
        (status, &answer["code"]),
        (404, &json!("unknown_channel_account")),
        "{answer}"
    );

    assert_eq!(n_sessions(&test).await, n_before, "nothing was stored");
    let admin = test.token("admin", Role::Admin);
    let response = reqwest::Client::new()
        .get(test.http_url("/api/v1/customers/sms:+8613900000009"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404, "no customer was created");
}

#[tokio::test]
async fn an_account_on_a_custom_channel_declares_it_and_bodies_keep_the_api_limit() {
    let test = TestServer::start(|config| {
        config.channels = vec![account(
            "line-bridge",
            Channel::parse("line").unwrap(),
            SMS_SECRET,
        )];
    })
    .await;
    let body = message("line-1", "U4af4980629", "hello from LINE");
    let (status, answer) = post_signed(&test, "line-bridge", SMS_SECRET, &body).await;
    assert_eq!(status, 200, "{answer}");
    let session = answer["accepted"][0]["session"].as_str().unwrap();
    let admin = test.token("admin", Role::Admin);
    let detail = test
        .get_json(&format!("/api/v1/sessions/{session}"), &admin)
        .await;
    assert_eq!(detail["session"]["channel"], "line", "{detail}");
    assert_eq!(
        detail["session"]["customer_id"], "line:U4af4980629",
        "{detail}"
    );

    // Over limits.max_http_body_bytes, as on every REST route.
    let huge = message("line-2", "U4af4980629", &"x".repeat(300 * 1024));
    let (status, answer) = post_signed(&test, "line-bridge", SMS_SECRET, &huge).await;
    assert_eq!(
        (status, &answer["code"]),
        (413, &json!("too_large")),
        "{answer}"
    );
}

/// The cross-channel promise, end to end: a customer writes on WeChat
/// (through a webhook channel account), an agent answers and closes; later
/// the same person calls (the number linked to them) and the call is their
/// session, with the WeChat conversation in the 360° view the agent on the
/// call sees.
#[tokio::test]
async fn a_wechat_conversation_is_in_the_360_view_of_the_customers_later_call() {
    let test = TestServer::start(|config| {
        config.channels = vec![account("wx-bridge", Channel::Wechat, WECHAT_SECRET)];
        config.voice.enabled = true;
        config.voice.listen = "127.0.0.1:0".parse().unwrap();
        config.voice.trunks = vec![voice::sip::TrunkConfig::new(
            "loopback",
            &["127.0.0.0/8"],
            "",
            "",
        )];
    })
    .await;
    let board = test.server.switchboard().clone();
    let chen = engine::ids::AgentId::new("chen.jie");
    let mut offers = board.subscribe_agent(&chen);
    board
        .set_presence(&chen, engine::presence::PresenceRequest::Available)
        .await
        .unwrap();

    // On WeChat.
    let body = message("wx-77", "o-openid-77", "我的包裹到哪里了？");
    let (status, answer) = post_signed(&test, "wx-bridge", WECHAT_SECRET, &body).await;
    assert_eq!(status, 200, "{answer}");
    let session: u64 = answer["accepted"][0]["session"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let session = engine::ids::SessionId(session);
    let offered = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let event = offers.recv().await.expect("chen.jie's events");
            if event.session == session && matches!(event.kind, actors::EventKind::Offered { .. }) {
                return;
            }
        }
    })
    .await;
    assert!(offered.is_ok(), "chen.jie is offered the WeChat session");
    board.accept(&chen, session).await.unwrap();
    board
        .close(
            &chen,
            session,
            Some("parcel A88 delayed; told her tomorrow".into()),
        )
        .await
        .unwrap();

    // The same person's number, linked to her.
    let admin = test.token("admin", Role::Admin);
    let linked = reqwest::Client::new()
        .post(test.http_url("/api/v1/customers/wechat:o-openid-77/identities"))
        .bearer_auth(&admin)
        .json(&json!({"channel": "phone", "external_id": "+8613700000077"}))
        .send()
        .await
        .unwrap();
    assert!(linked.status().is_success(), "{}", linked.status());

    // She calls: the call is her session, and her WeChat is in her view.
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = rtp.local_addr().unwrap().port().to_string();
    let sip = test.server.sip_addr.expect("the SIP endpoint runs");
    common::sipp::sipp(
        "call_hold.xml",
        sip,
        &[
            "-key",
            "caller",
            "+8613700000077",
            "-key",
            "rtp_port",
            &rtp_port,
        ],
    )
    .await
    .assert_success();
    let customer = engine::ids::CustomerId::new("wechat:o-openid-77");
    let sessions = board
        .store()
        .sessions_of_customer(&customer, 10)
        .await
        .unwrap();
    let channels: Vec<&Channel> = sessions.iter().map(|session| &session.channel).collect();
    assert!(
        channels.contains(&&Channel::Phone) && channels.contains(&&Channel::Wechat),
        "{sessions:?}"
    );
    let view = test
        .get_json("/api/v1/customers/wechat:o-openid-77/view", &admin)
        .await;
    let wechat = view["interactions"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"))
        .iter()
        .find(|interaction| interaction["channel"] == "wechat")
        .unwrap_or_else(|| panic!("no WeChat interaction in {view}"));
    assert_eq!(
        wechat["summary"], "parcel A88 delayed; told her tomorrow",
        "{view}"
    );
}
