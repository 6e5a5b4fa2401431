//! The adapter end to end: pushes signed (and encrypted) as WeChat signs
//! them, and deliveries to a fake WeChat API on 127.0.0.1 that speaks the
//! documented endpoints (`/cgi-bin/token`, `/cgi-bin/message/custom/send`,
//! `/cgi-bin/media/upload`) and checks the token as WeChat does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use engine::channel::Channel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::adapter::{InboundMessage, Notice};

const APP_ID: &str = "wxb11529c136998cb6";
const APP_SECRET: &str = "3a5f0c1e9b7d4c2a8e6f1b0d9c7a5e3f";
const TOKEN: &str = "pamtest";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const NOW: i64 = 1_700_000_000;
const OPENID: &str = "oia2TjjewbmiOUlr6X-1crbLOvLw";

fn settings(encoding_aes_key: Option<&str>) -> WechatSettings {
    WechatSettings {
        app_id: APP_ID.into(),
        token: Secret::from(TOKEN),
        encoding_aes_key: encoding_aes_key.map(Secret::from),
        ..WechatSettings::default()
    }
}

fn adapter_at(base_url: &str, encoding_aes_key: Option<&str>) -> WechatAdapter {
    WechatAdapter::new(
        ChannelAccount {
            kind: "wechat".into(),
            name: "wx".into(),
            channel: Channel::Wechat,
        },
        Secret::from(APP_SECRET),
        settings(encoding_aes_key),
        InboundLimits {
            max_text_chars: 100,
        },
        base_url,
    )
    .unwrap()
}

fn plain() -> WechatAdapter {
    adapter_at("", None)
}

fn safe() -> WechatAdapter {
    adapter_at("", Some(AES_KEY))
}

fn request(method: &str, query: &str, body: &str) -> InboundRequest {
    InboundRequest {
        method: method.into(),
        query: query.into(),
        headers: vec![("content-type".into(), "text/xml".into())],
        body: body.as_bytes().to_vec(),
        received_at: DateTime::from_timestamp(NOW, 0).unwrap(),
    }
}

/// The query WeChat sends with a plain push signed at `t`.
fn signed_query(t: i64, nonce: &str) -> String {
    let t = t.to_string();
    let signature = crypto::signature(&[TOKEN, &t, nonce]);
    format!("signature={signature}&timestamp={t}&nonce={nonce}&openid={OPENID}")
}

/// A safe-mode push of `inner` as WeChat sends it: the query and the body.
fn encrypted(inner: &str, t: i64, app_id: &str) -> (String, String) {
    let encrypt = SafeMode::new(AES_KEY, app_id).unwrap().encrypt(inner);
    let t = t.to_string();
    let nonce = "1372623149";
    let msg_signature = crypto::signature(&[TOKEN, &t, nonce, &encrypt]);
    let query = format!(
        "{}&encrypt_type=aes&msg_signature={msg_signature}",
        signed_query(t.parse().unwrap(), nonce)
    );
    let body = xml::to_xml(&[("ToUserName", "gh_7f083739789a"), ("Encrypt", &encrypt)]);
    (query, body)
}

fn text_push(content: &str) -> String {
    xml::to_xml(&[
        ("ToUserName", "gh_7f083739789a"),
        ("FromUserName", OPENID),
        ("CreateTime", "1699999990"),
        ("MsgType", "text"),
        ("Content", content),
        ("MsgId", "23466801234567890"),
    ])
}

fn text_message(content: &str) -> InboundMessage {
    InboundMessage {
        external_id: OPENID.into(),
        text: content.into(),
        platform_message_id: "23466801234567890".into(),
        display_name: None,
        sent_at: DateTime::from_timestamp(1_699_999_990, 0).unwrap(),
        reply_context: None,
    }
}

fn platform_error(reason: &str) -> ChannelError {
    ChannelError::BadSignature(SignatureError::Platform(reason.into()))
}

#[test]
fn the_url_check_is_answered_with_echostr_when_signed() {
    let query = format!(
        "{}&echostr=2958099473294221495",
        signed_query(NOW, "3234762544")
    );
    for adapter in [plain(), safe()] {
        let received = adapter.receive(&request("GET", &query, "")).unwrap();
        assert_eq!(
            received.immediate_answer,
            Some(PlatformAnswer {
                status: 200,
                content_type: "text/plain".into(),
                body: b"2958099473294221495".to_vec(),
            })
        );
        assert!(received.messages.is_empty());
    }
    let wrong = query.replace("signature=", "signature=0");
    let err = plain().receive(&request("GET", &wrong, "")).unwrap_err();
    assert_eq!(
        err,
        platform_error(
            "`signature` does not match (a Token other than settings.token, or the request was changed)"
        )
    );
    assert_eq!((err.status(), err.code()), (401, "bad_signature"));
    let unsigned = "timestamp=1&nonce=2&echostr=3";
    assert_eq!(
        plain().receive(&request("GET", unsigned, "")).unwrap_err(),
        platform_error("no `signature` in the query")
    );
    let no_echo = signed_query(NOW, "1");
    let err = plain().receive(&request("GET", &no_echo, "")).unwrap_err();
    assert_eq!(err.to_string(), "invalid `echostr`: is missing");
}

#[test]
fn a_signed_plain_push_becomes_a_message_or_a_notice() {
    let query = signed_query(NOW, "486452656");
    let received = plain()
        .receive(&request("POST", &query, &text_push("我的订单何时发货?")))
        .unwrap();
    assert_eq!(received.messages, vec![text_message("我的订单何时发货?")]);
    assert_eq!(received.immediate_answer, None);

    let follow = xml::to_xml(&[
        ("ToUserName", "gh_7f083739789a"),
        ("FromUserName", OPENID),
        ("CreateTime", "1699999990"),
        ("MsgType", "event"),
        ("Event", "subscribe"),
    ]);
    let received = plain().receive(&request("POST", &query, &follow)).unwrap();
    assert!(received.messages.is_empty());
    assert_eq!(
        received.notices,
        vec![Notice {
            external_id: OPENID.into(),
            what: "subscribe".into()
        }]
    );
    // `+`, `%2B` and friends in the query are decoded before checking.
    let encoded = query.replace("openid=", "openid=a%2Bb+c&x=");
    assert!(
        plain()
            .receive(&request("POST", &encoded, &text_push("hi")))
            .is_ok()
    );
}

#[test]
fn unsigned_stale_or_changed_pushes_are_refused() {
    let body = text_push("hi");
    let check = |query: &str, body: &str, expected: &str, code: &str| {
        let err = plain().receive(&request("POST", query, body)).unwrap_err();
        assert_eq!(err.to_string(), expected, "{query}");
        assert_eq!(err.code(), code, "{query}");
    };
    check(
        &signed_query(NOW, "1").replace("signature=", "signature=f"),
        &body,
        "bad signature: `signature` does not match (a Token other than settings.token, or the request was changed)",
        "bad_signature",
    );
    check(
        &format!("timestamp={NOW}&nonce=1"),
        &body,
        "bad signature: no `signature` in the query",
        "bad_signature",
    );
    check(
        &signed_query(NOW - 301, "1"),
        &body,
        "signature timestamp is 301 s old, over the 300 s tolerance (a replayed or delayed request)",
        "stale_timestamp",
    );
    check(
        &signed_query(NOW + 301, "1"),
        &body,
        "signature timestamp is 301 s in the future, over the 300 s tolerance (check the sender's clock)",
        "future_timestamp",
    );
    check(
        &signed_query(NOW, "1"),
        "<xml><Content>",
        "invalid `Content`: the body ends before the element is closed",
        "invalid",
    );
    check(
        &signed_query(NOW, "1"),
        &text_push(&"x".repeat(101)),
        "field `Content`: 101 characters is over the limit of 100 (limits.max_body_chars)",
        "body_too_long",
    );
    let err = plain()
        .receive(&request("PUT", &signed_query(NOW, "1"), &body))
        .unwrap_err();
    assert_eq!(err.status(), 415);
}

#[test]
fn safe_mode_pushes_are_decrypted_after_their_msg_signature_is_checked() {
    let (query, body) = encrypted(&text_push("加密的消息"), NOW, APP_ID);
    let received = safe().receive(&request("POST", &query, &body)).unwrap();
    assert_eq!(received.messages, vec![text_message("加密的消息")]);

    // A changed `Encrypt`: its msg_signature no longer matches.
    let (_, other_body) = encrypted(&text_push("another"), NOW, APP_ID);
    let err = safe()
        .receive(&request("POST", &query, &other_body))
        .unwrap_err();
    assert_eq!(
        err,
        platform_error(
            "`msg_signature` does not match (a Token other than settings.token, or the request was changed)"
        )
    );
    let tampered = query.replace("msg_signature=", "msg_signature=0");
    let err = safe()
        .receive(&request("POST", &tampered, &body))
        .unwrap_err();
    assert_eq!(err.code(), "bad_signature");

    // Encrypted with this key for another account.
    let (query, body) = encrypted(&text_push("hi"), NOW, "wx0000000000000000");
    let err = safe().receive(&request("POST", &query, &body)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad signature: the push's `Encrypt` is for AppID `wx0000000000000000`, not this account's `wxb11529c136998cb6`"
    );

    let (query, body) = encrypted(&text_push("hi"), NOW - 400, APP_ID);
    let err = safe().receive(&request("POST", &query, &body)).unwrap_err();
    assert_eq!(err.code(), "stale_timestamp");

    // A plain push to a safe-mode account is a downgrade; an encrypted one
    // to a plain account cannot be read.
    let err = safe()
        .receive(&request("POST", &signed_query(NOW, "1"), &text_push("hi")))
        .unwrap_err();
    assert_eq!(err.code(), "bad_signature");
    let (query, body) = encrypted(&text_push("hi"), NOW, APP_ID);
    let err = plain()
        .receive(&request("POST", &query, &body))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported: the push is encrypted (`encrypt_type=aes`) but channel account `wx` has no settings.encoding_aes_key"
    );
    let no_encrypt = xml::to_xml(&[("ToUserName", "gh_1")]);
    let err = safe()
        .receive(&request("POST", &query, &no_encrypt))
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid `Encrypt`: is missing");
}

#[test]
fn the_answer_is_success() {
    let answer = plain().answer(&[Accepted {
        platform_message_id: "1".into(),
        session: "2".into(),
        seq: 3,
        duplicate: false,
    }]);
    assert_eq!(
        answer,
        PlatformAnswer {
            status: 200,
            content_type: "text/plain".into(),
            body: b"success".to_vec(),
        }
    );
}

/// What the fake WeChat API does and has seen.
#[derive(Default)]
struct FakeState {
    /// `expires_in` of the tokens it gives.
    expires_in: u64,
    n_token_fetches: u64,
    /// The one token `custom/send` and `media/upload` take.
    valid_token: String,
    /// The next send is refused with 40001 and the token ended, as when
    /// another system fetched a new one.
    end_token_at_next_send: bool,
    /// Every token is refused with 40001.
    refuse_every_token: bool,
    /// The token endpoint answers this errcode, its errmsg echoing the secret.
    token_errcode: Option<i64>,
    /// Sends to these openids are refused with this errcode.
    refused_openids: HashMap<String, i64>,
    /// `custom/send` answers this HTTP status.
    send_status: Option<u16>,
    n_send_attempts: u64,
    /// The bodies of the sends taken.
    sent: Vec<serde_json::Value>,
    /// The bodies of the uploads taken.
    uploads: Vec<String>,
}

struct FakeWechat {
    url: String,
    state: Arc<Mutex<FakeState>>,
}

/// A PNG's first bytes: enough for an upload.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\nfake image";

impl FakeWechat {
    async fn start() -> FakeWechat {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(FakeState {
            expires_in: 7200,
            ..FakeState::default()
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                tokio::spawn(serve(socket, shared.clone()));
            }
        });
        FakeWechat { url, state }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    fn adapter(&self) -> WechatAdapter {
        adapter_at(&self.url, None)
    }
}

/// One HTTP/1.1 request in, one answer out, connection closed.
async fn serve(mut socket: tokio::net::TcpStream, state: Arc<Mutex<FakeState>>) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 8192];
    let (head, body) = loop {
        let n = socket.read(&mut buffer).await.unwrap();
        request.extend_from_slice(&buffer[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..at]).to_string();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if request.len() >= at + 4 + length || n == 0 {
                break (head, request[at + 4..].to_vec());
            }
        }
        assert!(n > 0, "the request ended early");
    };
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = Query::parse(query);
    let (status, content_type, answer) = answer(&state, path, &query, &body);
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.len()
    );
    // The client may have given up (a test of timeouts); nothing to do then.
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(&answer).await;
}

fn answer(
    state: &Mutex<FakeState>,
    path: &str,
    query: &Query,
    body: &[u8],
) -> (u16, &'static str, Vec<u8>) {
    let json = |value: serde_json::Value| (200, "application/json", value.to_string().into_bytes());
    let mut state = state.lock().unwrap();
    let token_ok = |state: &FakeState| {
        !state.refuse_every_token && query.get("access_token") == Some(state.valid_token.as_str())
    };
    let bad_token = serde_json::json!({
        "errcode": 40001,
        "errmsg": "invalid credential, access_token is invalid or not latest rid: 1",
    });
    match path {
        "/cgi-bin/token" => {
            assert_eq!(query.get("grant_type"), Some("client_credential"));
            assert_eq!(query.get("appid"), Some(APP_ID));
            if let Some(errcode) = state.token_errcode {
                return json(serde_json::json!({
                    "errcode": errcode,
                    "errmsg": format!("invalid ip 203.0.113.9, not in whitelist, secret {}", query.get("secret").unwrap_or_default()),
                }));
            }
            if query.get("secret") != Some(APP_SECRET) {
                return json(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
            }
            state.n_token_fetches += 1;
            state.valid_token = format!("token-{}", state.n_token_fetches);
            json(serde_json::json!({
                "access_token": state.valid_token,
                "expires_in": state.expires_in,
            }))
        }
        "/cgi-bin/message/custom/send" => {
            state.n_send_attempts += 1;
            if let Some(status) = state.send_status {
                return (status, "text/html", b"<html>bad gateway</html>".to_vec());
            }
            if !token_ok(&state) {
                return json(bad_token);
            }
            if state.end_token_at_next_send {
                state.end_token_at_next_send = false;
                state.valid_token.clear();
                return json(bad_token);
            }
            let body: serde_json::Value = serde_json::from_slice(body).unwrap();
            let touser = body["touser"].as_str().unwrap_or_default();
            if let Some(&errcode) = state.refused_openids.get(touser) {
                return json(serde_json::json!({
                    "errcode": errcode,
                    "errmsg": "response out of time limit or subscription is canceled rid: 2",
                }));
            }
            state.sent.push(body);
            json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
        }
        "/cgi-bin/media/upload" => {
            if !token_ok(&state) {
                return json(bad_token);
            }
            assert_eq!(query.get("type"), Some("image"));
            let body = String::from_utf8_lossy(body).to_string();
            assert!(
                body.contains("name=\"media\"; filename=\"image.png\""),
                "{body}"
            );
            assert!(body.contains("fake image"), "{body}");
            state.uploads.push(body);
            json(serde_json::json!({
                "type": "image",
                "media_id": format!("media-{}", state.uploads.len()),
                "created_at": 1_700_000_000,
            }))
        }
        "/image.png" => (200, "image/png", PNG.to_vec()),
        "/page.html" => (200, "text/html", b"<html></html>".to_vec()),
        _ => (404, "text/plain", b"not found".to_vec()),
    }
}

fn reply(to: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        delivery_id: "d1".into(),
        external_id: to.into(),
        text: text.into(),
        image_url: None,
        seq: 4,
        reply_context: None,
    }
}

#[tokio::test]
async fn a_reply_is_a_customer_service_text_message() {
    let wechat = FakeWechat::start().await;
    let delivery = wechat
        .adapter()
        .deliver(reply(OPENID, "您的包裹今天发出"))
        .await
        .unwrap();
    assert_eq!(delivery.platform_message_id, None);
    let state = wechat.state();
    assert_eq!(
        state.sent,
        vec![serde_json::json!({
            "touser": OPENID,
            "msgtype": "text",
            "text": {"content": "您的包裹今天发出"},
        })]
    );
    assert_eq!(state.n_token_fetches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_deliveries_fetch_the_token_once() {
    let wechat = FakeWechat::start().await;
    let adapter = Arc::new(wechat.adapter());
    let deliveries: Vec<_> = (0..20)
        .map(|n| {
            let adapter = adapter.clone();
            tokio::spawn(async move { adapter.deliver(reply(OPENID, &format!("m{n}"))).await })
        })
        .collect();
    for delivery in deliveries {
        delivery.await.unwrap().unwrap();
    }
    let state = wechat.state();
    assert_eq!(state.n_token_fetches, 1);
    assert_eq!(state.sent.len(), 20);
}

#[tokio::test]
async fn a_token_is_fetched_again_once_it_is_near_its_end() {
    let wechat = FakeWechat::start().await;
    // A token that lives 0 s is near its end at once: each delivery
    // fetches. (The 80% rule itself: token::tests.)
    wechat.state().expires_in = 0;
    let adapter = wechat.adapter();
    adapter.deliver(reply(OPENID, "one")).await.unwrap();
    adapter.deliver(reply(OPENID, "two")).await.unwrap();
    assert_eq!(wechat.state().n_token_fetches, 2);
    wechat.state().expires_in = 7200;
    adapter.deliver(reply(OPENID, "three")).await.unwrap();
    adapter.deliver(reply(OPENID, "four")).await.unwrap();
    assert_eq!(wechat.state().n_token_fetches, 3);
}

#[tokio::test]
async fn a_refused_token_is_fetched_again_and_the_send_tried_once_more() {
    let wechat = FakeWechat::start().await;
    let adapter = wechat.adapter();
    adapter.deliver(reply(OPENID, "one")).await.unwrap();
    wechat.state().end_token_at_next_send = true;
    adapter.deliver(reply(OPENID, "two")).await.unwrap();
    {
        let state = wechat.state();
        assert_eq!(state.n_token_fetches, 2);
        assert_eq!(state.n_send_attempts, 3);
        assert_eq!(state.sent.len(), 2);
    }
    // Refused again with the new token: a retry for later, no third fetch.
    wechat.state().refuse_every_token = true;
    let failure = adapter.deliver(reply(OPENID, "three")).await.unwrap_err();
    assert_eq!(
        failure,
        DeliveryFailure::Retry {
            reason: "WeChat refused a freshly fetched access token too (errcode 40001: invalid credential, access_token is invalid or not latest rid: 1); is another system fetching tokens for this AppID?".into()
        }
    );
    let state = wechat.state();
    assert_eq!(state.n_token_fetches, 3);
    assert_eq!(state.n_send_attempts, 5);
}

#[tokio::test]
async fn refusals_are_explained_and_outages_retried() {
    let wechat = FakeWechat::start().await;
    for (openid, errcode) in [
        ("o-quiet", 45015),
        ("o-flooded", 45047),
        ("o-gone", 43004),
        ("o-other", 40003),
        ("o-odd", 48001),
        ("o-busy", -1),
        ("o-quota", 45009),
    ] {
        wechat
            .state()
            .refused_openids
            .insert(openid.to_string(), errcode);
    }
    let adapter = wechat.adapter();
    let refused = |code: &str, reason: &str| {
        Err(DeliveryFailure::Refused {
            code: code.into(),
            reason: reason.into(),
        })
    };
    let retry = |reason: &str| {
        Err(DeliveryFailure::Retry {
            reason: reason.into(),
        })
    };
    for (openid, expected) in [
        (
            "o-quiet",
            refused(
                "45015",
                "WeChat refuses: the customer has not written in the last 48 hours, so the account may not reply (errcode 45015)",
            ),
        ),
        (
            "o-flooded",
            refused(
                "45047",
                "WeChat refuses: the account has sent this customer as many messages as it may until the customer writes again (errcode 45047)",
            ),
        ),
        (
            "o-gone",
            refused(
                "43004",
                "WeChat refuses: the customer no longer follows the account (errcode 43004)",
            ),
        ),
        (
            "o-other",
            refused(
                "40003",
                "WeChat refuses: the customer's id is not an openid of this account (errcode 40003)",
            ),
        ),
        (
            "o-odd",
            refused(
                "48001",
                "WeChat refuses (errcode 48001): response out of time limit or subscription is canceled rid: 2",
            ),
        ),
        (
            "o-busy",
            retry("WeChat is busy (errcode -1): trying again later"),
        ),
        (
            "o-quota",
            retry(
                "the account is over WeChat's API call quota (errcode 45009): trying again later",
            ),
        ),
    ] {
        let got = adapter.deliver(reply(openid, "hi")).await;
        assert_eq!(got, expected, "{openid}");
    }
    wechat.state().send_status = Some(502);
    let failure = adapter.deliver(reply(OPENID, "hi")).await.unwrap_err();
    assert_eq!(
        failure,
        DeliveryFailure::Retry {
            reason: "WeChat answered HTTP 502: <html>bad gateway</html>".into()
        }
    );
}

#[tokio::test]
async fn no_error_holds_the_app_secret_or_a_token() {
    // Nobody listens: the token fetch fails, and reqwest's error would
    // name the URL, which holds the secret.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let failure = adapter_at(&url, None)
        .deliver(reply(OPENID, "hi"))
        .await
        .unwrap_err();
    let DeliveryFailure::Retry { reason } = &failure else {
        panic!("{failure:?}");
    };
    assert!(
        reason.starts_with("cannot get an access token from WeChat: no answer from WeChat"),
        "{reason}"
    );
    assert!(!reason.contains(APP_SECRET), "{reason}");

    // WeChat's own words echoing the secret are scrubbed; the reason says
    // what to fix.
    let wechat = FakeWechat::start().await;
    wechat.state().token_errcode = Some(40164);
    let failure = wechat
        .adapter()
        .deliver(reply(OPENID, "hi"))
        .await
        .unwrap_err();
    assert_eq!(
        failure,
        DeliveryFailure::Retry {
            reason: "WeChat gives no access token (errcode 40164: invalid ip 203.0.113.9, not in whitelist, secret <redacted>): add this server's public IP address to the account's IP whitelist in the WeChat console".into()
        }
    );

    let wechat = FakeWechat::start().await;
    let wrong_secret = WechatAdapter::new(
        plain().account.clone(),
        Secret::from("not-the-app-secret"),
        settings(None),
        InboundLimits {
            max_text_chars: 100,
        },
        &wechat.url,
    )
    .unwrap();
    let failure = wrong_secret.deliver(reply(OPENID, "hi")).await.unwrap_err();
    assert_eq!(
        failure.to_string(),
        "delivery failed for now: WeChat gives no access token (errcode 40125: invalid appsecret): check `secret` (the AppSecret) of channel account `wx`"
    );
    // The adapter's Debug shows neither.
    let debug = format!("{:?}", wechat.adapter());
    assert!(
        !debug.contains(APP_SECRET) && !debug.contains(TOKEN),
        "{debug}"
    );
}

#[tokio::test]
async fn an_image_link_is_uploaded_and_sent_as_an_image_or_else_as_text() {
    let wechat = FakeWechat::start().await;
    let adapter = wechat.adapter();
    let image_url = format!("{}/image.png", wechat.url);
    let mut message = reply(OPENID, &image_url);
    message.image_url = Some(image_url.clone());
    adapter.deliver(message.clone()).await.unwrap();
    {
        let state = wechat.state();
        assert_eq!(state.uploads.len(), 1);
        assert_eq!(
            state.sent,
            vec![serde_json::json!({
                "touser": OPENID,
                "msgtype": "image",
                "image": {"media_id": "media-1"},
            })]
        );
    }
    // Not there, not an image, not http: the link goes as text.
    for broken in ["/missing.png", "/page.html"] {
        let url = format!("{}{broken}", wechat.url);
        let mut message = reply(OPENID, &url);
        message.image_url = Some(url.clone());
        adapter.deliver(message).await.unwrap();
        let state = wechat.state();
        assert_eq!(
            state.sent.last().unwrap(),
            &serde_json::json!({"touser": OPENID, "msgtype": "text", "text": {"content": url}})
        );
        assert_eq!(state.uploads.len(), 1);
    }
    let mut message = reply(OPENID, "file:///etc/passwd");
    message.image_url = Some("file:///etc/passwd".into());
    adapter.deliver(message).await.unwrap();
    assert_eq!(wechat.state().sent.len(), 4);
}

#[tokio::test]
async fn an_image_over_the_limit_is_not_downloaded_whole() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/huge.png", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 4096];
        // The request's head fits in one read here.
        let _ = socket.read(&mut buffer).await;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: {}\r\n\r\n",
            api::MAX_IMAGE_BYTES + 1
        );
        // The client hangs up once it sees the length; that ends the test's server.
        let _ = socket.write_all(head.as_bytes()).await;
    });
    let err = plain().api.download_image(&url).await.unwrap_err();
    assert_eq!(
        err,
        format!("the image is over {} bytes", api::MAX_IMAGE_BYTES)
    );
}
