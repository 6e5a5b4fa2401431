//! Authorization on the sockets: what must be refused, with which status
//! (at the upgrade) or error code (on an open socket).

use crate::common;

use common::{Client, TestServer, session_of};
use gateway::auth::{Claims, Role, TokenSigner, unix_now};
use serde_json::json;
use tokio_tungstenite::tungstenite;

/// The HTTP status of a refused upgrade.
async fn upgrade_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => panic!("upgrade to {url} should be refused"),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(err) => panic!("unexpected error for {url}: {err}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_without_a_valid_token_for_the_endpoint_are_refused() {
    let test = TestServer::start(|_| {}).await;
    let addr = test.server.addr;
    let expired = test.server.state.signer.mint(&Claims {
        sub: "cust-003".into(),
        role: Role::Customer,
        exp: unix_now() - 1,
    });
    let forged = TokenSigner::new(*b"not-the-server-secret-0123456789").mint(&Claims {
        sub: "cust-003".into(),
        role: Role::Customer,
        exp: unix_now() + 3600,
    });
    let customer = test.token("cust-003", Role::Customer);
    let agent = test.token("chen.jie", Role::Agent);
    let fake_supervisor = test.token("chen.jie", Role::Supervisor);
    let ghost = test.token("nobody", Role::Agent);
    let cases = [
        (format!("ws://{addr}/ws/customer"), 401, "no token"),
        (
            format!("ws://{addr}/ws/customer?token={expired}"),
            401,
            "expired token",
        ),
        (
            format!("ws://{addr}/ws/customer?token={forged}"),
            401,
            "forged signature",
        ),
        (
            format!("ws://{addr}/ws/customer?token=garbage"),
            401,
            "malformed token",
        ),
        (
            format!("ws://{addr}/ws/agent?token={customer}"),
            403,
            "customer on the agent socket",
        ),
        (
            format!("ws://{addr}/ws/customer?token={agent}"),
            403,
            "agent on the customer socket",
        ),
        (
            format!("ws://{addr}/ws/agent?token={ghost}"),
            401,
            "agent who does not exist",
        ),
        (
            format!("ws://{addr}/ws/agent?token={fake_supervisor}"),
            401,
            "supervisor token for a junior",
        ),
        (
            format!("ws://{addr}/ws/customer?token={customer}&channel=wechat"),
            400,
            "channel not web or app",
        ),
        // PROTOCOL §1: the channel is checked before the token.
        (
            format!("ws://{addr}/ws/customer?channel=wechat"),
            400,
            "bad channel, no token",
        ),
        (
            format!("ws://{addr}/ws/customer?token=garbage&channel=wechat"),
            400,
            "bad channel, malformed token",
        ),
        (
            format!("ws://{addr}/ws/customer?token={agent}&channel=wechat"),
            400,
            "bad channel, agent token",
        ),
    ];
    for (url, status, name) in cases {
        assert_eq!(upgrade_status(&url).await, status, "{name}");
    }
    // The `Bearer` scheme is case-insensitive, with any spaces after it.
    for authorization in [format!("bearer {customer}"), format!("BEARER   {customer}")] {
        use tungstenite::client::IntoClientRequest as _;
        let mut request = format!("ws://{addr}/ws/customer")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", authorization.parse().unwrap());
        let result = tokio_tungstenite::connect_async(request).await;
        assert!(result.is_ok(), "{authorization}: {:?}", result.err());
    }
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_act_only_on_their_sessions_and_customers_only_on_theirs() {
    let test = TestServer::start(|_| {}).await;
    let mut chen = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer.say(json!({}), "c-1", "hi").await;
    let session = session_of(&ack);
    chen.expect("offer").await;

    // liu.yang was not offered the session: accepting or writing is refused.
    let mut liu =
        Client::connect(&test.ws_url("/ws/agent", &test.token("liu.yang", Role::Agent))).await;
    liu.hello(json!({})).await;
    let cases = [
        json!({"type": "accept", "session": session}),
        json!({"type": "message", "session": session, "client_message_id": "x", "body": "hijack"}),
        json!({"type": "wrap_up", "session": session}),
        json!({"type": "close", "session": session}),
        json!({"type": "transfer", "session": session, "group": "default"}),
        json!({"type": "history", "session": session}),
    ];
    for frame in cases {
        eprintln!("liu sends {frame}");
        let reply = liu.request(frame.clone()).await;
        assert_eq!(reply["type"], "error", "{frame}: {reply}");
        assert!(
            ["not_your_session", "invalid_state"].contains(&reply["code"].as_str().unwrap()),
            "{frame}: {reply}"
        );
    }
    // Writing to a session merely offered (not yet accepted) is refused too.
    let early = chen
        .request(json!({"type": "message", "session": session, "client_message_id": "e", "body": "early"}))
        .await;
    assert_eq!(early["type"], "error", "{early}");

    // Another customer cannot leave, rate or type in this session.
    let mut other = test.customer("cust-002").await;
    other.hello(json!({})).await;
    for frame in [
        json!({"type": "leave", "session": session}),
        json!({"type": "rate", "session": session, "score": 1}),
        json!({"type": "typing", "session": session}),
    ] {
        let reply = other.request(frame.clone()).await;
        assert_eq!(reply["type"], "error", "{frame}: {reply}");
        assert_eq!(reply["code"], "unknown_session", "{frame}: {reply}");
    }
    // And does not receive its events: their welcome lists no session.
    let welcome = other.hello(json!({})).await;
    assert_eq!(welcome["sessions"], json!([]));
    test.server.shutdown().await.unwrap();
}
