//! Two WeChat official accounts side by side, over real HTTP both ways:
//! WeChat's server URL check (`GET`), a plain-mode push on one account and
//! a safe-mode (encrypted) push on the other, each answered `success` once
//! durable; agents' replies sent through each account's customer-service
//! API with that account's own access token (fetched once); a retried push
//! stored once; and a reply outside the 48-hour window shown to the agent
//! as WeChat's refusal. The WeChat API is a local server that speaks its
//! documented calls (`/cgi-bin/token`, `/cgi-bin/message/custom/send`).

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actors::{DeliveryState, EventKind, Subscription};
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use channels::ChannelConfig;
use channels::wechat::{crypto, xml};
use common::TestServer;
use engine::channel::Channel;
use engine::ids::{AgentId, SessionId};
use engine::presence::PresenceRequest;
use serde_json::{Value, json};

const TOKEN: &str = "switchboardToken1";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const PLAIN_APP: &str = "wx00000000000000aa";
const SAFE_APP: &str = "wx00000000000000bb";
/// Replies to this openid are outside the 48-hour window.
const SILENT: &str = "o-silent-for-3-days";

/// The WeChat API: tokens per AppID, and what was sent with which token.
#[derive(Clone, Default)]
struct Wechat {
    fetches: Arc<Mutex<BTreeMap<String, u32>>>,
    sent: Arc<Mutex<Vec<(String, Value)>>>,
    /// Sends answered `-1` (system busy) before the API works again.
    busy: Arc<Mutex<u32>>,
}

impl Wechat {
    async fn start() -> (Wechat, String) {
        let wechat = Wechat::default();
        let app = Router::new()
            .route("/cgi-bin/token", get(Wechat::token))
            .route("/cgi-bin/message/custom/send", post(Wechat::send))
            .with_state(wechat.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (wechat, url)
    }

    async fn token(
        State(wechat): State<Wechat>,
        Query(query): Query<BTreeMap<String, String>>,
    ) -> axum::Json<Value> {
        let app = query["appid"].clone();
        assert_eq!(query["secret"], format!("secret-of-{app}"));
        let mut fetches = wechat.fetches.lock().unwrap();
        let n = fetches.entry(app.clone()).or_default();
        *n += 1;
        axum::Json(json!({"access_token": format!("tok-{app}-{n}"), "expires_in": 7200}))
    }

    async fn send(
        State(wechat): State<Wechat>,
        Query(query): Query<BTreeMap<String, String>>,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let token = query["access_token"].clone();
        let silent = body["touser"] == SILENT;
        wechat.sent.lock().unwrap().push((token, body));
        let mut busy = wechat.busy.lock().unwrap();
        if *busy > 0 {
            *busy -= 1;
            return axum::Json(json!({"errcode": -1, "errmsg": "system error"}));
        }
        axum::Json(if silent {
            json!({"errcode": 45015, "errmsg": "response out of time limit or subscription is canceled"})
        } else {
            json!({"errcode": 0, "errmsg": "ok"})
        })
    }
}

fn account(name: &str, app: &str, safe: bool, base_url: &str) -> ChannelConfig {
    let mut settings = toml::Table::new();
    settings.insert("app_id".into(), app.into());
    settings.insert("token".into(), TOKEN.into());
    if safe {
        settings.insert("encoding_aes_key".into(), AES_KEY.into());
    }
    ChannelConfig {
        kind: "wechat".into(),
        name: name.into(),
        channel: Channel::Wechat,
        secret: format!("secret-of-{app}").as_str().into(),
        base_url: base_url.into(),
        settings,
    }
}

/// A text push from `openid`, as WeChat's XML.
fn text_push(openid: &str, msg_id: &str, content: &str) -> String {
    xml::to_xml(&[
        ("ToUserName", "gh_7f083739789a"),
        ("FromUserName", openid),
        ("CreateTime", &chrono::Utc::now().timestamp().to_string()),
        ("MsgType", "text"),
        ("Content", content),
        ("MsgId", msg_id),
    ])
}

/// Posts `inner` to account `name` as WeChat does: signed, and in safe
/// mode encrypted for `safe_app`; the status and the body.
async fn push(test: &TestServer, name: &str, inner: &str, safe_app: Option<&str>) -> (u16, String) {
    let t = chrono::Utc::now().timestamp().to_string();
    let nonce = "1372623149";
    let signature = crypto::signature(&[TOKEN, &t, nonce]);
    let mut query = format!("signature={signature}&timestamp={t}&nonce={nonce}");
    let body = match safe_app {
        None => inner.to_string(),
        Some(app) => {
            let encrypt = crypto::SafeMode::new(AES_KEY, app).unwrap().encrypt(inner);
            let msg_signature = crypto::signature(&[TOKEN, &t, nonce, &encrypt]);
            query.push_str(&format!("&encrypt_type=aes&msg_signature={msg_signature}"));
            xml::to_xml(&[("ToUserName", "gh_7f083739789a"), ("Encrypt", &encrypt)])
        }
    };
    let response = reqwest::Client::new()
        .post(test.http_url(&format!("/api/v1/channels/{name}/inbound?{query}")))
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The final delivery state of agent message `of` in `session`.
async fn settled(events: &mut Subscription, session: SessionId, of: u64) -> actors::DeliveryReport {
    loop {
        let event = common::next_event(events, |event| {
            event.session == session
                && matches!(&event.kind, EventKind::Delivery(report) if report.of == of)
        })
        .await;
        if let EventKind::Delivery(report) = event.kind
            && report.state != DeliveryState::Queued
        {
            return report;
        }
    }
}

#[tokio::test]
async fn two_official_accounts_take_pushes_and_send_replies_each_with_its_own_token() {
    let (wechat, api) = Wechat::start().await;
    let test = TestServer::start(|config| {
        config.channels = vec![
            account("wx-plain", PLAIN_APP, false, &api),
            account("wx-safe", SAFE_APP, true, &api),
        ];
        // No after-call work: chen.jie takes the next chat once one is closed.
        config.routing.wrap_up_ms = 0;
    })
    .await;
    let board = test.server.switchboard().clone();
    let chen = AgentId::new("chen.jie");
    let mut events = board.subscribe_agent(&chen);
    board
        .set_presence(&chen, PresenceRequest::Available)
        .await
        .unwrap();

    // The console's server URL check.
    let t = chrono::Utc::now().timestamp().to_string();
    let signature = crypto::signature(&[TOKEN, &t, "42"]);
    let check = reqwest::get(test.http_url(&format!(
        "/api/v1/channels/wx-plain/inbound?signature={signature}&timestamp={t}&nonce=42&echostr=7312665418553463"
    )))
    .await
    .unwrap();
    assert_eq!(check.status(), 200);
    assert_eq!(check.text().await.unwrap(), "7312665418553463");
    // One hex digit changed, whatever the signature starts with.
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    let forged = reqwest::get(test.http_url(&format!(
        "/api/v1/channels/wx-plain/inbound?signature={flipped}{}&timestamp={t}&nonce=42&echostr=1",
        &signature[1..]
    )))
    .await
    .unwrap();
    assert_eq!(forged.status(), 401);

    // A plain push, answered `success` once durable; WeChat's retry is stored once.
    let first = text_push("o-plain-1", "23466801234567001", "我的订单何时发货?");
    assert_eq!(
        push(&test, "wx-plain", &first, None).await,
        (200, "success".into())
    );
    let plain_session = common::take_offer(&board, &mut events, &chen).await;
    assert_eq!(
        push(&test, "wx-plain", &first, None).await,
        (200, "success".into())
    );
    let history = board.history(plain_session, 0).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|event| matches!(&event.kind, EventKind::Message { body, .. } if body == "我的订单何时发货?"))
            .count(),
        1
    );
    let ack = board
        .agent_message(&chen, plain_session, "今天发货。".into(), None)
        .await
        .unwrap();
    assert_eq!(
        settled(&mut events, plain_session, ack.seq).await.state,
        DeliveryState::Sent
    );

    // An encrypted push on the other account.
    let secret_push = text_push("o-safe-1", "23466801234567002", "退款到账了吗?");
    assert_eq!(
        push(&test, "wx-safe", &secret_push, Some(SAFE_APP)).await,
        (200, "success".into())
    );
    let safe_session = common::take_offer(&board, &mut events, &chen).await;
    let ack = board
        .agent_message(&chen, safe_session, "已到账。".into(), None)
        .await
        .unwrap();
    assert_eq!(
        settled(&mut events, safe_session, ack.seq).await.state,
        DeliveryState::Sent
    );
    // Encrypted for the other account's AppID: refused, nothing stored.
    let (status, _) = push(
        &test,
        "wx-safe",
        &text_push("o-x", "1", "x"),
        Some(PLAIN_APP),
    )
    .await;
    assert_eq!(status, 401);

    let sent = wechat.sent.lock().unwrap().clone();
    assert_eq!(
        sent,
        [
            (
                format!("tok-{PLAIN_APP}-1"),
                json!({"touser": "o-plain-1", "msgtype": "text", "text": {"content": "今天发货。"}})
            ),
            (
                format!("tok-{SAFE_APP}-1"),
                json!({"touser": "o-safe-1", "msgtype": "text", "text": {"content": "已到账。"}})
            ),
        ]
    );

    // Outside the 48-hour window: WeChat's refusal, in words, for the agent
    // (who has room for one more chat once these two are closed).
    for session in [plain_session, safe_session] {
        board.close(&chen, session, None).await.unwrap();
    }
    let late = text_push(SILENT, "23466801234567003", "还在吗?");
    assert_eq!(
        push(&test, "wx-plain", &late, None).await,
        (200, "success".into())
    );
    let late_session = common::take_offer(&board, &mut events, &chen).await;
    let ack = board
        .agent_message(&chen, late_session, "在的。".into(), None)
        .await
        .unwrap();
    let refused = settled(&mut events, late_session, ack.seq).await;
    assert_eq!(
        (refused.state, refused.code.as_deref()),
        (DeliveryState::Failed, Some("45015"))
    );
    assert!(
        refused
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("48 hours"),
        "{refused:?}"
    );
    // One token per account for every reply.
    let fetches = wechat.fetches.lock().unwrap().clone();
    assert_eq!(
        fetches,
        BTreeMap::from([(PLAIN_APP.to_string(), 1), (SAFE_APP.to_string(), 1)])
    );
}

#[tokio::test]
async fn the_vip_is_routed_by_openid_and_replies_survive_a_wechat_outage_in_order() {
    let (wechat, api) = Wechat::start().await;
    *wechat.busy.lock().unwrap() = 2;
    let test = TestServer::start(|config| {
        config.channels = vec![account("wx-plain", PLAIN_APP, false, &api)];
        config.webhooks.initial_backoff_ms = 100;
        config.webhooks.max_backoff_ms = 400;
        config.webhooks.poll_ms = 100;
    })
    .await;
    let board = test.server.switchboard().clone();
    // WeChat openid 12345 is the demo VIP's (cust-vip-001): gold_service,
    // where Li Na works.
    let li = AgentId::new("li.na");
    let mut events = board.subscribe_agent(&li);
    board
        .set_presence(&li, PresenceRequest::Available)
        .await
        .unwrap();
    let push_vip = text_push("12345", "23466801234567100", "我的订单何时发货?");
    assert_eq!(
        push(&test, "wx-plain", &push_vip, None).await,
        (200, "success".into())
    );
    let session = common::take_offer(&board, &mut events, &li).await;
    let record = board.session(session).await.unwrap();
    assert_eq!(record.customer_id.as_str(), "cust-vip-001");
    assert_eq!(
        record.group.as_ref().map(|g| g.as_str()),
        Some("gold_service")
    );

    // WeChat is busy for the first two sends: both replies wait, then
    // arrive once each, in the order written.
    let mut seqs = Vec::new();
    for text in ["您好，王女士。", "订单今天发出。"] {
        seqs.push(
            board
                .agent_message(&li, session, text.into(), None)
                .await
                .unwrap()
                .seq,
        );
    }
    for seq in seqs {
        let report = loop {
            let report = settled(&mut events, session, seq).await;
            if report.state != DeliveryState::Retrying {
                break report;
            }
        };
        assert_eq!(report.state, DeliveryState::Sent, "{report:?}");
    }
    let sent: Vec<Value> = wechat
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| body["text"]["content"].clone())
        .collect();
    assert_eq!(
        sent,
        [
            json!("您好，王女士。"),
            json!("您好，王女士。"),
            json!("您好，王女士。"),
            json!("订单今天发出。")
        ]
    );

    // Malformed XML: a clear error naming what is wrong, nothing stored.
    let before = board.history(session, 0).await.unwrap().len();
    let (status, answer) = push(
        &test,
        "wx-plain",
        "<xml><ToUserName>gh_1</ToUserName><MsgType>text",
        None,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("invalid"), "{answer}");
    assert_eq!(board.history(session, 0).await.unwrap().len(), before);
}
