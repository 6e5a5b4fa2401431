//! The QQ adapter end to end: callbacks signed as the platform signs them,
//! its configuration through the registry, and replies to a fake platform
//! on 127.0.0.1 (token endpoint and message API in one).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use engine::channel::Channel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::adapter::InboundMessage;
use crate::registry::Registry;

const SECRET: &str = "qq-test-app-secret";
const NOW: i64 = 1_725_442_341;
const LIMITS: InboundLimits = InboundLimits {
    max_text_chars: 4000,
};

/// The platform's key, derived independently of [`BotKey`] as botgo does:
/// the secret doubled until it has 32 bytes, cut to 32.
fn platform_key() -> SigningKey {
    let mut seed = SECRET.to_string();
    while seed.len() < 32 {
        seed = seed.repeat(2);
    }
    SigningKey::from_bytes(seed.as_bytes()[..32].try_into().unwrap())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn account() -> ChannelAccount {
    ChannelAccount {
        kind: "qq".into(),
        name: "qq-bot".into(),
        channel: Channel::Qq,
    }
}

fn adapter_at(base_url: &str, token_url: &str) -> QqAdapter {
    QqAdapter::new(
        account(),
        Secret::from(SECRET),
        QqSettings {
            app_id: "102000000".into(),
            token_url: token_url.into(),
            ..QqSettings::default()
        },
        LIMITS,
        base_url,
    )
    .unwrap()
}

fn adapter() -> QqAdapter {
    adapter_at("", DEFAULT_TOKEN_URL)
}

fn request(body: &str, headers: &[(&str, &str)]) -> InboundRequest {
    InboundRequest {
        method: "POST".into(),
        query: String::new(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .chain([("User-Agent".to_string(), "QQBot-Callback".to_string())])
            .collect(),
        body: body.as_bytes().to_vec(),
        received_at: DateTime::from_timestamp(NOW, 0).unwrap(),
    }
}

/// `body` signed as the platform signs a callback.
fn signed(body: &str) -> InboundRequest {
    let timestamp = NOW.to_string();
    let signature = hex(&platform_key()
        .sign(format!("{timestamp}{body}").as_bytes())
        .to_bytes());
    request(
        body,
        &[
            ("x-signature-timestamp", &timestamp),
            ("x-signature-ed25519", &signature),
            ("x-signature-method", "Ed25519"),
            ("x-bot-appid", "102000000"),
        ],
    )
}

const C2C: &str = r#"{"op":0,"id":"C2C_MESSAGE_CREATE:x1","d":{"author":{"user_openid":"U1"},"content":"where is my parcel?","id":"ROBOT1.0_m1","timestamp":"2026-01-05T18:00:00+08:00"},"t":"C2C_MESSAGE_CREATE"}"#;
const GROUP: &str = r#"{"op":0,"id":"GROUP_AT_MESSAGE_CREATE:x2","d":{"author":{"member_openid":"M1"},"content":" 退款进度?","group_openid":"G1","id":"ROBOT1.0_m2","timestamp":"2026-01-05T18:01:00+08:00"},"t":"GROUP_AT_MESSAGE_CREATE"}"#;

#[test]
fn signed_messages_are_read() {
    let received = adapter().receive(&signed(C2C)).unwrap();
    assert_eq!(
        received.messages,
        vec![InboundMessage {
            external_id: "U1".into(),
            text: "where is my parcel?".into(),
            platform_message_id: "ROBOT1.0_m1".into(),
            display_name: None,
            sent_at: DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            reply_context: Some(r#"{"msg_id":"ROBOT1.0_m1"}"#.into()),
        }]
    );
    assert_eq!(received.immediate_answer, None);
    let received = adapter().receive(&signed(GROUP)).unwrap();
    assert_eq!(received.messages[0].external_id, "M1");
    assert_eq!(received.messages[0].text, "退款进度?");
    assert_eq!(
        received.messages[0].reply_context.as_deref(),
        Some(r#"{"group_openid":"G1","msg_id":"ROBOT1.0_m2"}"#)
    );
}

#[test]
fn unsigned_or_wrongly_signed_callbacks_are_refused_before_reading() {
    let adapter = adapter();
    let check = |request: InboundRequest, message: &str| {
        let err = adapter.receive(&request).unwrap_err();
        assert_eq!((err.status(), err.code()), (401, "bad_signature"), "{err}");
        assert_eq!(err.to_string(), message);
    };
    let mismatch = "bad signature: `X-Signature-Ed25519` does not match the timestamp and body (a wrong AppSecret, or the body was changed)";
    let mut tampered = signed(C2C);
    tampered.body = C2C.replace("parcel", "refund").into_bytes();
    check(tampered, mismatch);
    // A bad signature on a malformed body is a bad signature: nothing is read.
    let mut garbage = signed(C2C);
    garbage.body = b"{".to_vec();
    check(garbage, mismatch);
    let mut later = signed(C2C);
    later.headers[0].1 = (NOW + 1).to_string();
    check(later, mismatch);
    check(
        request(C2C, &[]),
        "bad signature: `X-Signature-Ed25519` is missing",
    );
    check(
        request("{", &[]),
        "bad signature: `X-Signature-Ed25519` is missing",
    );
    let mut no_timestamp = signed(C2C);
    no_timestamp.headers.remove(0);
    check(
        no_timestamp,
        "bad signature: `X-Signature-Timestamp` is missing",
    );
    let mut short = signed(C2C);
    short.headers[1].1 = "abc".into();
    check(
        short,
        "bad signature: `X-Signature-Ed25519` is not 128 hex digits",
    );
    // A signed body that is not a payload names the field.
    let err = adapter.receive(&signed(r#"{"op":0}"#)).unwrap_err();
    assert_eq!((err.status(), err.field()), (400, Some("t")));
}

#[test]
fn the_url_validation_is_answered_with_a_signature_of_the_bots_key() {
    let body = r#"{"d":{"plain_token":"Arq0D5A61EgUu4OxUvOp","event_ts":"1725442341"},"op":13}"#;
    // Signed, as the platform sends it; and unsigned, as its example shows it.
    for request in [signed(body), request(body, &[("x-bot-appid", "102000000")])] {
        let received = adapter().receive(&request).unwrap();
        assert!(received.messages.is_empty());
        let answer = received.immediate_answer.expect("answered at once");
        assert_eq!(
            (answer.status, answer.content_type.as_str()),
            (200, "application/json")
        );
        let answer: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(answer["plain_token"], "Arq0D5A61EgUu4OxUvOp");
        let signature: Vec<u8> = (0..128)
            .step_by(2)
            .map(|at| {
                u8::from_str_radix(&answer["signature"].as_str().unwrap()[at..at + 2], 16).unwrap()
            })
            .collect();
        platform_key()
            .verifying_key()
            .verify(
                b"1725442341Arq0D5A61EgUu4OxUvOp",
                &ed25519_dalek::Signature::from_slice(&signature).unwrap(),
            )
            .expect("the platform's public key verifies the answer");
    }
    // Unsigned, a token that could make the bot sign an event is refused.
    let forged = serde_json::json!({
        "op": 13,
        "d": {"plain_token": C2C, "event_ts": "1725442341"},
    });
    let err = adapter()
        .receive(&request(&forged.to_string(), &[]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad signature: `X-Signature-Ed25519` is missing"
    );
    // Signed by the platform, any token is answered.
    assert!(adapter().receive(&signed(&forged.to_string())).is_ok());
}

#[test]
fn events_are_acknowledged_with_op_12() {
    let answer = adapter().answer(&[]);
    assert_eq!(
        (answer.status, answer.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(answer.body, br#"{"op":12,"d":0}"#);
}

fn build(settings_and_more: &str) -> Result<(), String> {
    #[derive(Deserialize)]
    struct File {
        channels: Vec<ChannelConfig>,
    }
    let text = format!(
        "[[channels]]\nkind = \"qq\"\nname = \"qq-bot\"\nchannel = \"qq\"\n{settings_and_more}"
    );
    let file: File = toml::from_str(&text).unwrap();
    Registry::build(&file.channels, LIMITS)
        .map(|_| ())
        .map_err(|err| err.to_string())
}

#[test]
fn configuration_errors_name_the_key() {
    let ok = "secret = \"s\"\nsettings = { app_id = \"102000000\" }\n";
    assert_eq!(build(ok), Ok(()));
    assert_eq!(
        build(
            "secret = \"s\"\nbase_url = \"http://127.0.0.1:1/\"\nsettings = { app_id = \"1\", token_url = \"http://127.0.0.1:1/t\", timeout_ms = 100 }\n"
        ),
        Ok(())
    );
    let check = |settings_and_more: &str, message: &str| {
        assert_eq!(
            build(settings_and_more),
            Err(message.to_string()),
            "{settings_and_more}"
        );
    };
    check(
        "settings = { app_id = \"1\" }\n",
        "channels[0] (`qq-bot`).secret: must be set: the bot's AppSecret (QQ bot console, 开发设置)",
    );
    check(
        "secret = \"s\"\n",
        "channels[0] (`qq-bot`).settings.app_id: must be set: the bot's AppID (QQ bot console, 开发设置)",
    );
    check(
        "secret = \"s\"\nsettings = { app_id = 102000000 }\n",
        "channels[0] (`qq-bot`).settings.app_id: invalid type: integer `102000000`, expected a string",
    );
    check(
        "secret = \"s\"\nsettings = { appid = \"1\" }\n",
        "channels[0] (`qq-bot`).settings.appid: unknown field `appid`, expected one of `app_id`, `token_url`, `timeout_ms`",
    );
    check(
        "secret = \"s\"\nsettings = { app_id = \"1\", token_url = \"ftp://x\" }\n",
        "channels[0] (`qq-bot`).settings.token_url: `ftp://x` must start with http:// or https://",
    );
    check(
        "secret = \"s\"\nsettings = { app_id = \"1\", timeout_ms = 0 }\n",
        "channels[0] (`qq-bot`).settings.timeout_ms: must be greater than 0",
    );
}

/// One request the fake platform got.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    authorization: Option<String>,
    body: String,
}

/// A fake QQ platform: `answer(request)` gives each request's status and
/// body; token requests (`/app/…`) are answered after `token_delay`, so that
/// concurrent deliveries overlap.
struct Platform {
    base_url: String,
    token_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Platform {
    async fn start(
        token_delay: Duration,
        answer: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static,
    ) -> Platform {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let recorded = requests.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let (answer, recorded) = (answer.clone(), recorded.clone());
                tokio::spawn(async move {
                    serve(socket, token_delay, &*answer, &recorded).await;
                });
            }
        });
        Platform {
            base_url: format!("http://{address}"),
            token_url: format!("http://{address}/app/getAppAccessToken"),
            requests,
        }
    }

    fn adapter(&self) -> QqAdapter {
        adapter_at(&self.base_url, &self.token_url)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn n_token_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|request| request.path.starts_with("/app/"))
            .count()
    }

    fn sends(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|request| request.path.starts_with("/v2/"))
            .collect()
    }
}

/// Reads one request from `socket`, records it and answers it.
async fn serve(
    mut socket: tokio::net::TcpStream,
    token_delay: Duration,
    answer: &(dyn Fn(&Recorded) -> (u16, String) + Send + Sync),
    recorded: &Mutex<Vec<Recorded>>,
) {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head, body) = loop {
        let n = socket.read(&mut buffer).await.unwrap();
        bytes.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length || n == 0 {
                break (head.to_string(), body.to_string());
            }
        }
    };
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let request = Recorded {
        path: head.split(' ').nth(1).unwrap_or_default().to_string(),
        authorization: header("authorization"),
        body,
    };
    recorded.lock().unwrap().push(request.clone());
    if request.path.starts_with("/app/") {
        tokio::time::sleep(token_delay).await;
    }
    let (status, body) = answer(&request);
    let answer = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // The client may have given up (a timeout test): nothing to do then.
    let _ = socket.write_all(answer.as_bytes()).await;
}

fn token_answer(token: &str, expires_in: &str) -> (u16, String) {
    (
        200,
        format!(r#"{{"access_token":"{token}","expires_in":"{expires_in}"}}"#),
    )
}

fn reply(external_id: &str, reply_context: Option<&str>, seq: u64) -> OutboundMessage {
    OutboundMessage {
        delivery_id: format!("d{seq}"),
        external_id: external_id.into(),
        text: "Your parcel left today.".into(),
        image_url: None,
        seq,
        reply_context: reply_context.map(str::to_owned),
    }
}

#[tokio::test]
async fn replies_go_to_the_chat_or_group_with_the_access_token() {
    let platform = Platform::start(Duration::ZERO, |request| match request.path.as_str() {
        "/app/getAppAccessToken" => token_answer("TOKEN-1", "7200"),
        _ => (200, r#"{"id":"P1","timestamp":1767600000}"#.into()),
    })
    .await;
    let adapter = platform.adapter();
    let delivery = adapter
        .deliver(reply("U1", Some(r#"{"msg_id":"ROBOT1.0_m1"}"#), 3))
        .await
        .unwrap();
    assert_eq!(delivery.platform_message_id.as_deref(), Some("P1"));
    adapter
        .deliver(reply(
            "M1",
            Some(r#"{"group_openid":"G1","msg_id":"ROBOT1.0_m2"}"#),
            4,
        ))
        .await
        .unwrap();
    let requests = platform.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[0].path, "/app/getAppAccessToken");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&requests[0].body).unwrap(),
        serde_json::json!({"appId": "102000000", "clientSecret": SECRET})
    );
    let sends = platform.sends();
    assert_eq!(sends[0].path, "/v2/users/U1/messages");
    assert_eq!(
        sends[0].body,
        r#"{"content":"Your parcel left today.","msg_id":"ROBOT1.0_m1","msg_seq":3,"msg_type":0}"#
    );
    assert_eq!(sends[1].path, "/v2/groups/G1/messages");
    assert_eq!(
        sends[1].body,
        r#"{"content":"Your parcel left today.","msg_id":"ROBOT1.0_m2","msg_seq":4,"msg_type":0}"#
    );
    for send in &sends {
        assert_eq!(send.authorization.as_deref(), Some("QQBot TOKEN-1"));
    }
}

#[tokio::test]
async fn concurrent_deliveries_share_one_token_request() {
    let platform = Platform::start(Duration::from_millis(100), |request| {
        match request.path.as_str() {
            "/app/getAppAccessToken" => token_answer("TOKEN-1", "7200"),
            _ => (200, r#"{"id":"P"}"#.into()),
        }
    })
    .await;
    let adapter = Arc::new(platform.adapter());
    let mut deliveries = tokio::task::JoinSet::new();
    for seq in 0..8 {
        let adapter = adapter.clone();
        deliveries.spawn(async move {
            adapter
                .deliver(reply("U1", Some(r#"{"msg_id":"m"}"#), seq))
                .await
        });
    }
    while let Some(delivered) = deliveries.join_next().await {
        delivered.unwrap().unwrap();
    }
    assert_eq!(platform.n_token_requests(), 1);
    assert_eq!(platform.sends().len(), 8);
}

#[tokio::test]
async fn an_expiring_token_is_replaced_before_use() {
    let n_tokens = AtomicUsize::new(0);
    let platform = Platform::start(Duration::ZERO, move |request| {
        match request.path.as_str() {
            // The first token is at the end of its life: refreshed at once.
            "/app/getAppAccessToken" => match n_tokens.fetch_add(1, Ordering::SeqCst) {
                0 => token_answer("TOKEN-1", "0"),
                _ => token_answer("TOKEN-2", "7200"),
            },
            _ => (200, r#"{"id":"P"}"#.into()),
        }
    })
    .await;
    let adapter = platform.adapter();
    for seq in 0..3 {
        adapter
            .deliver(reply("U1", Some(r#"{"msg_id":"m"}"#), seq))
            .await
            .unwrap();
    }
    assert_eq!(platform.n_token_requests(), 2);
    let used: Vec<Option<String>> = platform
        .sends()
        .into_iter()
        .map(|send| send.authorization)
        .collect();
    assert_eq!(
        used,
        [
            Some("QQBot TOKEN-1".to_string()),
            Some("QQBot TOKEN-2".to_string()),
            Some("QQBot TOKEN-2".to_string())
        ]
    );
}

#[tokio::test]
async fn a_refused_token_is_replaced_and_the_post_made_once_more() {
    let n_tokens = AtomicUsize::new(0);
    let platform = Platform::start(Duration::ZERO, move |request| {
        match (request.path.as_str(), request.authorization.as_deref()) {
            ("/app/getAppAccessToken", _) => {
                let n = n_tokens.fetch_add(1, Ordering::SeqCst) + 1;
                token_answer(&format!("TOKEN-{n}"), "7200")
            }
            // TOKEN-1 was revoked; TOKEN-2 works for users only.
            (path, Some("QQBot TOKEN-2")) if path.starts_with("/v2/users/") => {
                (200, r#"{"id":"P2"}"#.into())
            }
            _ => (
                401,
                r#"{"message":"token not exist or expire","code":11244}"#.into(),
            ),
        }
    })
    .await;
    let adapter = platform.adapter();
    let delivery = adapter
        .deliver(reply("U1", Some(r#"{"msg_id":"m"}"#), 1))
        .await
        .unwrap();
    assert_eq!(delivery.platform_message_id.as_deref(), Some("P2"));
    assert_eq!(platform.n_token_requests(), 2);
    // Refused again with the new token: one more token, one more post, then a retry later.
    let failure = adapter
        .deliver(reply(
            "M1",
            Some(r#"{"group_openid":"G1","msg_id":"m"}"#),
            2,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        failure,
        DeliveryFailure::Retry {
            reason: "QQ refused a new access token too (401: token not exist or expire)".into()
        }
    );
    assert_eq!(platform.n_token_requests(), 3);
    assert_eq!(platform.sends().len(), 4);
}

#[tokio::test]
async fn failures_are_reported_without_the_secret_or_the_token() {
    const TOKEN: &str = "TOKEN-very-private";
    let platform = Platform::start(Duration::ZERO, |request| {
        match request.path.as_str() {
            "/app/getAppAccessToken" => token_answer(TOKEN, "7200"),
            // A platform that echoes what it got.
            "/v2/users/EXPIRED/messages" => (
                400,
                format!(
                    r#"{{"message":"回复消息msg_id已过期 ({TOKEN})","code":40034005,"err_code":40034005,"trace_id":"t"}}"#
                ),
            ),
            _ => (503, format!("overloaded, {TOKEN}")),
        }
    })
    .await;
    let adapter = platform.adapter();
    let expired = adapter
        .deliver(reply("EXPIRED", Some(r#"{"msg_id":"old"}"#), 1))
        .await
        .unwrap_err();
    assert_eq!(
        expired,
        DeliveryFailure::Refused {
            code: "40034005".into(),
            reason: "the customer's message is too old to reply to: QQ takes replies within 60 minutes of a one-to-one message and 5 minutes of a group message (QQ: 回复消息msg_id已过期 (<redacted>))".into()
        }
    );
    let down = adapter
        .deliver(reply("U1", Some(r#"{"msg_id":"m"}"#), 2))
        .await
        .unwrap_err();
    assert_eq!(
        down,
        DeliveryFailure::Retry {
            reason: "QQ answered 503: overloaded, <redacted>".into()
        }
    );

    // A wrong AppSecret, echoed by the token endpoint.
    let wrong = Platform::start(Duration::ZERO, |_| {
        (
            200,
            format!(r#"{{"code":100016,"message":"invalid appid or secret {SECRET}"}}"#),
        )
    })
    .await;
    let refused = wrong
        .adapter()
        .deliver(reply("U1", None, 1))
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        DeliveryFailure::Refused {
            code: "100016".into(),
            reason: "the AppID or AppSecret is wrong (check `settings.app_id` and `secret`) (QQ: invalid appid or secret <redacted>)".into()
        }
    );
    assert!(wrong.sends().is_empty());

    // Nobody listens: worth a retry.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = adapter_at(&url, &format!("{url}/app/getAppAccessToken"))
        .deliver(reply("U1", None, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&unreachable, DeliveryFailure::Retry { reason } if reason.starts_with("no answer from QQ's access token endpoint")),
        "{unreachable:?}"
    );

    for failure in [expired, down, refused, unreachable] {
        let text = format!("{failure} {failure:?}");
        assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
    }
    assert!(!format!("{:?}", platform.adapter()).contains(SECRET));
}

#[tokio::test]
async fn a_reply_without_context_is_an_active_one_to_one_message() {
    let platform = Platform::start(Duration::ZERO, |request| match request.path.as_str() {
        "/app/getAppAccessToken" => token_answer("TOKEN-1", "7200"),
        _ => (
            400,
            r#"{"code":40034102,"message":"主动消息失败, 无权限"}"#.into(),
        ),
    })
    .await;
    let failure = platform
        .adapter()
        .deliver(reply("U1", None, 1))
        .await
        .unwrap_err();
    assert_eq!(platform.sends()[0].path, "/v2/users/U1/messages");
    assert_eq!(
        platform.sends()[0].body,
        r#"{"content":"Your parcel left today.","msg_type":0}"#
    );
    assert!(
        matches!(&failure, DeliveryFailure::Refused { code, reason } if code == "40034102" && reason.contains("the customer must write first")),
        "{failure:?}"
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A signed request's outcome: read, or refused with a 400 naming a
    /// field, or a 415 for an `op` the adapter does not take.
    fn is_clear(result: Result<Received, ChannelError>) -> Result<(), TestCaseError> {
        if let Err(err) = result {
            match err.status() {
                400 => prop_assert!(
                    err.field().is_some_and(|field| !field.is_empty()),
                    "{}",
                    err
                ),
                415 => {}
                status => prop_assert!(false, "{status}: {err}"),
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_headers_are_accepted_or_refused_without_panicking(
            timestamp in proptest::option::of(".{0,20}"),
            signature in proptest::option::of("[0-9a-f]{0,130}|.{0,130}"),
            body in ".{0,64}",
        ) {
            let mut headers = Vec::new();
            if let Some(timestamp) = &timestamp {
                headers.push(("x-signature-timestamp", timestamp.as_str()));
            }
            if let Some(signature) = &signature {
                headers.push(("x-signature-ed25519", signature.as_str()));
            }
            if let Err(err) = adapter().receive(&request(&body, &headers)) {
                prop_assert!(matches!(err.status(), 400 | 401 | 415), "{}", err);
            }
        }

        #[test]
        fn any_signed_body_is_read_or_refused_naming_a_field(body in ".{0,256}") {
            is_clear(adapter().receive(&signed(&body)))?;
        }

        #[test]
        fn any_signed_payload_is_read_or_refused_naming_a_field(
            op in prop::sample::select(vec![0i64, 1, 13]),
            t in proptest::option::of(prop::sample::select(vec![
                payload::C2C_MESSAGE_CREATE, payload::GROUP_AT_MESSAGE_CREATE, "FRIEND_ADD", "GROUP_ADD_ROBOT", "AT_MESSAGE_CREATE",
            ])),
            keys in prop::collection::vec(prop::sample::select(vec![
                "id", "author", "content", "timestamp", "group_openid", "attachments",
                "plain_token", "event_ts", "openid", "op_member_openid",
            ]), 0..8),
            values in prop::collection::vec(prop_oneof![
                Just(serde_json::json!("a")),
                Just(serde_json::json!("")),
                Just(serde_json::json!("2026-01-05T18:00:00+08:00")),
                Just(serde_json::json!({"user_openid": "U", "member_openid": "M"})),
                Just(serde_json::json!({})),
                Just(serde_json::json!([{"content_type": "image/png", "url": "https://q/a.png"}])),
                Just(serde_json::json!([{}])),
                Just(serde_json::json!(5)),
                Just(serde_json::json!(null)),
            ], 8),
        ) {
            let d: serde_json::Map<String, serde_json::Value> = keys
                .iter()
                .zip(values)
                .map(|(key, value)| (key.to_string(), value))
                .collect();
            let mut payload = serde_json::json!({"op": op, "d": d});
            if let Some(t) = t {
                payload["t"] = t.into();
            }
            is_clear(adapter().receive(&signed(&payload.to_string())))?;
        }

        #[test]
        fn a_valid_message_round_trips(
            id in "[!-~]{1,128}",
            openid in "[0-9A-F]{32}",
            content in "[^<\\s]\\PC{0,50}[a-z]",
            is_group in any::<bool>(),
        ) {
            let author = if is_group { "member_openid" } else { "user_openid" };
            let payload = serde_json::json!({
                "op": 0,
                "t": if is_group { payload::GROUP_AT_MESSAGE_CREATE } else { payload::C2C_MESSAGE_CREATE },
                "d": {
                    "id": id,
                    "author": {author: openid},
                    "content": format!(" {content} "),
                    "group_openid": "G1",
                    "timestamp": "2026-01-05T18:00:00+08:00",
                },
            });
            let received = adapter().receive(&signed(&payload.to_string())).unwrap();
            prop_assert_eq!(received.messages.len(), 1);
            let message = &received.messages[0];
            prop_assert_eq!(&message.platform_message_id, &id);
            prop_assert_eq!(&message.external_id, &openid);
            prop_assert_eq!(&message.text, content.trim());
            let context: serde_json::Value =
                serde_json::from_str(message.reply_context.as_deref().unwrap()).unwrap();
            prop_assert_eq!(&context["msg_id"], &serde_json::json!(id));
            prop_assert_eq!(context.get("group_openid").is_some(), is_group);
        }
    }
}
