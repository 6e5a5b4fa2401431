//! A demo server on a temporary store, requests through the router, and
//! sessions in known states.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use engine::channel::Channel;
use engine::envelope::Envelope;
use engine::ids::{AgentId, SessionId};
use engine::presence::PresenceRequest;
use engine::session::SessionState;
use gateway::auth::{Claims, Role, unix_now};
use gateway::{Config, Server};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt as _;

const SECRET: &str = "rest-tests-secret-0123456789abcdef";

/// A server on a temporary store, with demo data.
pub struct TestServer {
    /// The running server.
    pub server: Server,
    _data_dir: TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.admin_listen = "127.0.0.1:0".parse().unwrap();
        config.server.admin_listen = "127.0.0.1:0".parse().unwrap();
        config.store.data_dir = data_dir.path().to_owned();
        config.auth.secret = SECRET.into();
        config.demo.enabled = true;
        config.limits.max_connections = 64;
        config.limits.reserved_fds = 0;
        adjust(&mut config);
        let server = Server::start(config).await.unwrap();
        TestServer {
            server,
            _data_dir: data_dir,
        }
    }

    pub fn token(&self, sub: &str, role: Role) -> String {
        self.server.state.signer.mint(&Claims {
            sub: sub.into(),
            role,
            exp: unix_now() + 3600,
        })
    }

    /// Sends a request through the router; the body is JSON unless
    /// `content_type` says otherwise. Returns the status and the body
    /// (JSON when it parses, else a JSON string).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some((content_type, body)) => request
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = gateway::router(self.server.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A `GET` with this exact `Authorization` header value.
    pub async fn get_with_authorization(
        &self,
        path: &str,
        authorization: &str,
    ) -> (StatusCode, Value) {
        let request = Request::get(path)
            .header(header::AUTHORIZATION, authorization)
            .body(Body::empty())
            .unwrap();
        let response = gateway::router(self.server.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let body = Some(("application/json", body.to_string()));
        self.send(Method::POST, path, token, body).await
    }

    pub async fn put_rules(&self, token: &str, rules: &str) -> (StatusCode, Value) {
        let body = Some(("application/toml", rules.to_string()));
        self.send(Method::PUT, "/api/v1/rules", Some(token), body)
            .await
    }

    /// A customer message from `external_id` on `channel`; returns its session.
    pub async fn message(&self, channel: Channel, external_id: &str, text: &str) -> SessionId {
        let envelope = Envelope {
            channel,
            customer_id: external_id.into(),
            message: text.into(),
            timestamp: chrono::Utc::now(),
            client_message_id: Some(format!("{external_id}-{text}")),
            display_name: None,
        };
        self.server
            .switchboard()
            .customer_message(envelope)
            .await
            .unwrap()
            .session
    }

    /// Waits until the stored record of `session` is in `state`; returns it.
    pub async fn stored_in(
        &self,
        session: SessionId,
        state: SessionState,
    ) -> engine::session::Session {
        for _ in 0..500 {
            if let Ok(record) = self.server.switchboard().session(session).await
                && record.state == state
            {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("session {session} never reached {state:?}");
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await.unwrap();
    }
}

/// Sessions for the authorization tests: `assigned` (cust-vip-001 on web,
/// gold_service, assigned to li.na, who replied) and `queued` (cust-002 on
/// phone, waiting in phone_support with nobody available).
pub struct Sessions {
    /// Assigned to li.na.
    pub assigned: SessionId,
    /// Waiting in phone_support.
    pub queued: SessionId,
}

pub async fn two_sessions(server: &TestServer) -> Sessions {
    let switchboard = server.server.switchboard();
    let li_na = AgentId::new("li.na");
    let mut offers = switchboard.subscribe_agent(&li_na);
    switchboard
        .set_presence(&li_na, PresenceRequest::Available)
        .await
        .unwrap();
    let assigned = server
        .message(Channel::Web, "wf-visitor-77", "where is my order")
        .await;
    let offer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = offers.recv().await.expect("subscription open");
            if matches!(event.kind, actors::EventKind::Offered { .. }) {
                return event;
            }
        }
    })
    .await
    .expect("an offer within 10 s");
    assert_eq!(offer.session, assigned);
    switchboard.accept(&li_na, assigned).await.unwrap();
    switchboard
        .agent_message(&li_na, assigned, "on its way".into(), Some("a1".into()))
        .await
        .unwrap();
    let queued = server
        .message(Channel::Phone, "+8613900000002", "hello?")
        .await;
    server.stored_in(queued, SessionState::Queued).await;
    server.stored_in(assigned, SessionState::Assigned).await;
    Sessions { assigned, queued }
}

/// The `code` of an error body.
pub fn code(body: &Value) -> &str {
    body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {body}"))
}

/// The ids of a session list.
pub fn session_ids(body: &Value) -> BTreeSet<String> {
    body["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions in {body}"))
        .iter()
        .map(|session| session["id"].as_str().unwrap().to_string())
        .collect()
}
