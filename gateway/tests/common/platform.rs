//! A message platform's side of a webhook channel account (`sms-gw`): the
//! endpoint switchboard posts agents' replies to, recording what it gets
//! (each checked for its signature) and answering with scripted statuses;
//! and the signed requests the platform posts in.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use channels::{ChannelConfig, signature};
use engine::channel::Channel;
use serde_json::{Value, json};

use super::TestServer;

/// The account's shared secret.
pub const SECRET: &str = "sms-gateway-secret-0123";

/// The `sms-gw` webhook account on the SMS channel, replying to `base_url`.
pub fn account(base_url: String) -> ChannelConfig {
    ChannelConfig {
        kind: "webhook".into(),
        name: "sms-gw".into(),
        channel: Channel::Sms,
        secret: SECRET.into(),
        base_url,
        settings: toml::Table::new(),
    }
}

/// Posts `body` to the account's URL, signed now, as the platform does;
/// the status and the JSON answer.
pub async fn post_signed(test: &TestServer, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let signature =
        signature::header_value(SECRET, chrono::Utc::now().timestamp(), body.as_bytes());
    let response = reqwest::Client::new()
        .post(test.http_url("/api/v1/channels/sms-gw/inbound"))
        .header("content-type", "application/json")
        .header(signature::HEADER, signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A platform's reply endpoint: records what it is sent, answers with the
/// scripted statuses in turn, then 200.
#[derive(Clone, Default)]
pub struct Platform {
    pub received: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    pub script: Arc<Mutex<VecDeque<(u16, Value)>>>,
    /// The status each request was answered with, in order.
    pub answered: Arc<Mutex<Vec<u16>>>,
}

impl Platform {
    /// Listens on loopback; its reply URL.
    pub async fn start(script: &[(u16, Value)]) -> (Platform, String) {
        let platform = Platform::default();
        platform
            .script
            .lock()
            .unwrap()
            .extend(script.iter().cloned());
        let app = Router::new()
            .route("/replies", post(Platform::take))
            .with_state(platform.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/replies", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (platform, url)
    }

    async fn take(
        State(platform): State<Platform>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        let json: Value = serde_json::from_slice(&body).expect("a JSON reply");
        let n = {
            let mut received = platform.received.lock().unwrap();
            received.push((headers.clone(), json));
            received.len()
        };
        let timestamp = headers[signature::HEADER].to_str().unwrap();
        let t: i64 = timestamp[2..timestamp.find(',').unwrap()].parse().unwrap();
        signature::verify(SECRET, Some(timestamp), &body, t, 60).expect("signed by switchboard");
        let (status, answer) = platform
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, json!({"id": format!("p-{n}")})));
        platform.answered.lock().unwrap().push(status);
        (StatusCode::from_u16(status).unwrap(), answer.to_string())
    }

    /// The bodies it took (answered 2xx), in order.
    pub fn taken(&self) -> Vec<Value> {
        let answered = self.answered.lock().unwrap().clone();
        self.received()
            .into_iter()
            .zip(answered)
            .filter(|(_, status)| (200..300).contains(status))
            .map(|(body, _)| body)
            .collect()
    }

    /// The bodies it was sent, in order.
    pub fn received(&self) -> Vec<Value> {
        let received = self.received.lock().unwrap();
        received.iter().map(|(_, body)| body.clone()).collect()
    }
}
