//! A QQ bot account over real HTTP both ways: the platform's URL
//! validation (op 13) answered with the bot's signature, a one-to-one
//! message and a group @-message signed with the bot's ed25519 key taken
//! in and answered `{"op":12}` once durable, a forged callback refused with
//! nothing stored, and agents' replies sent as passive replies — to the
//! user, or to the group — with the access token fetched once. The QQ API
//! is a local server that speaks its documented calls
//! (`/app/getAppAccessToken`, `/v2/users/{openid}/messages`,
//! `/v2/groups/{group_openid}/messages`).

use crate::common;

use std::sync::{Arc, Mutex};

use actors::{DeliveryState, EventKind, Subscription};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use channels::ChannelConfig;
use channels::qq::sign::BotKey;
use common::TestServer;
use engine::channel::Channel;
use engine::ids::{AgentId, SessionId};
use engine::presence::PresenceRequest;
use serde_json::{Value, json};

const APP_ID: &str = "102000000";
const APP_SECRET: &str = "naOC0ocQE3shWLAfffVLB1rhYPG7";

/// The QQ API: token fetches, and each message sent with its path and
/// `Authorization`.
#[derive(Clone, Default)]
struct Qq {
    fetches: Arc<Mutex<u32>>,
    sent: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl Qq {
    async fn start() -> (Qq, String) {
        let qq = Qq::default();
        let app = Router::new()
            .route("/app/getAppAccessToken", post(Qq::token))
            .route("/v2/users/{openid}/messages", post(Qq::to_user))
            .route("/v2/groups/{group}/messages", post(Qq::to_group))
            .with_state(qq.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (qq, url)
    }

    async fn token(State(qq): State<Qq>, axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
        assert_eq!(body, json!({"appId": APP_ID, "clientSecret": APP_SECRET}));
        *qq.fetches.lock().unwrap() += 1;
        axum::Json(json!({"access_token": "qq-token-1", "expires_in": "7200"}))
    }

    fn record(&self, path: String, headers: &HeaderMap, body: Value) -> axum::Json<Value> {
        let authorization = headers["authorization"].to_str().unwrap().to_string();
        let mut sent = self.sent.lock().unwrap();
        sent.push((path, authorization, body));
        axum::Json(json!({"id": format!("qq-msg-{}", sent.len()), "timestamp": 1_767_600_000}))
    }

    async fn to_user(
        State(qq): State<Qq>,
        Path(openid): Path<String>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        qq.record(format!("/v2/users/{openid}/messages"), &headers, body)
    }

    async fn to_group(
        State(qq): State<Qq>,
        Path(group): Path<String>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        qq.record(format!("/v2/groups/{group}/messages"), &headers, body)
    }
}

fn account(api: &str) -> ChannelConfig {
    let mut settings = toml::Table::new();
    settings.insert("app_id".into(), APP_ID.into());
    settings.insert(
        "token_url".into(),
        format!("{api}/app/getAppAccessToken").into(),
    );
    ChannelConfig {
        kind: "qq".into(),
        name: "qq-bot".into(),
        channel: Channel::Qq,
        secret: APP_SECRET.into(),
        base_url: api.into(),
        settings,
    }
}

/// Posts `body` as the platform does, signed with `key` (the bot's own
/// unless a test forges it); the status and the JSON answer.
async fn callback(test: &TestServer, body: &Value, key: &BotKey) -> (u16, Value) {
    let body = body.to_string();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    // The platform signs the timestamp followed by the body.
    let signature = key.sign_validation(&timestamp, &body);
    let response = reqwest::Client::new()
        .post(test.http_url("/api/v1/channels/qq-bot/inbound"))
        .header("content-type", "application/json")
        .header("x-signature-ed25519", signature)
        .header("x-signature-timestamp", timestamp)
        .header("x-bot-appid", APP_ID)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn c2c(openid: &str, id: &str, content: &str) -> Value {
    json!({"op": 0, "id": format!("C2C_MESSAGE_CREATE:{id}"), "t": "C2C_MESSAGE_CREATE",
           "d": {"author": {"user_openid": openid}, "content": content, "id": id,
                 "timestamp": "2026-01-05T18:00:00+08:00"}})
}

fn group_at(group: &str, member: &str, id: &str, content: &str) -> Value {
    json!({"op": 0, "id": format!("GROUP_AT_MESSAGE_CREATE:{id}"), "t": "GROUP_AT_MESSAGE_CREATE",
           "d": {"author": {"member_openid": member}, "content": content, "group_openid": group,
                 "id": id, "timestamp": "2026-01-05T18:01:00+08:00"}})
}

/// Replies in `session` and waits until the platform took it.
async fn reply(
    board: &actors::Switchboard,
    events: &mut Subscription,
    chen: &AgentId,
    session: SessionId,
    text: &str,
) -> u64 {
    let ack = board
        .agent_message(chen, session, text.into(), None)
        .await
        .unwrap();
    common::next_event(events, |event| {
        matches!(&event.kind, EventKind::Delivery(report)
            if report.of == ack.seq && report.state == DeliveryState::Sent)
    })
    .await;
    ack.seq
}

#[tokio::test]
async fn a_qq_bot_takes_c2c_and_group_messages_and_replies_where_each_came_from() {
    let (qq, api) = Qq::start().await;
    let test = TestServer::start(|config| {
        config.channels = vec![account(&api)];
    })
    .await;
    let board = test.server.switchboard().clone();
    let chen = AgentId::new("chen.jie");
    let mut events = board.subscribe_agent(&chen);
    board
        .set_presence(&chen, PresenceRequest::Available)
        .await
        .unwrap();
    let bot = BotKey::from_secret(APP_SECRET).unwrap();

    // The console's callback URL validation.
    let (status, answer) = callback(
        &test,
        &json!({"op": 13, "d": {"plain_token": "Arq0D5A61EgUu4OxUvOp", "event_ts": "1725442341"}}),
        &bot,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["plain_token"], "Arq0D5A61EgUu4OxUvOp");
    assert_eq!(
        answer["signature"],
        bot.sign_validation("1725442341", "Arq0D5A61EgUu4OxUvOp")
    );

    // A forged callback: refused, nothing stored.
    let forger = BotKey::from_secret("not-the-bots-secret-at-all").unwrap();
    let (status, answer) = callback(&test, &c2c("U-forged", "m-0", "hi"), &forger).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("bad_signature")),
        "{answer}"
    );

    // One to one.
    let (status, answer) = callback(
        &test,
        &c2c("U1", "ROBOT1.0_m1", "where is my parcel?"),
        &bot,
    )
    .await;
    assert_eq!((status, answer), (200, json!({"op": 12, "d": 0})));
    let direct = common::take_offer(&board, &mut events, &chen).await;
    let first = reply(&board, &mut events, &chen, direct, "It ships today.").await;

    // A group @-message: the reply goes to the group.
    let (status, _) = callback(
        &test,
        &group_at("G1", "M1", "ROBOT1.0_m2", " 退款进度?"),
        &bot,
    )
    .await;
    assert_eq!(status, 200);
    let in_group = common::take_offer(&board, &mut events, &chen).await;
    let second = reply(&board, &mut events, &chen, in_group, "退款已到账。").await;

    let sent = qq.sent.lock().unwrap().clone();
    assert_eq!(
        sent,
        [
            (
                "/v2/users/U1/messages".to_string(),
                "QQBot qq-token-1".to_string(),
                json!({"content": "It ships today.", "msg_type": 0, "msg_id": "ROBOT1.0_m1", "msg_seq": first})
            ),
            (
                "/v2/groups/G1/messages".to_string(),
                "QQBot qq-token-1".to_string(),
                json!({"content": "退款已到账。", "msg_type": 0, "msg_id": "ROBOT1.0_m2", "msg_seq": second})
            ),
        ]
    );
    assert_eq!(*qq.fetches.lock().unwrap(), 1, "one token for both replies");
    // The forged sender never became a customer.
    let admin = test.token("admin", gateway::auth::Role::Admin);
    let forged = reqwest::Client::new()
        .get(test.http_url("/api/v1/customers/qq:U-forged"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);
    // The group's member is a customer of their own, by their member openid.
    let member = test.get_json("/api/v1/customers/qq:M1", &admin).await;
    assert_eq!(member["id"], "qq:M1", "{member}");
}
