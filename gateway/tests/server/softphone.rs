//! The agent socket's softphone frames (PROTOCOL.md §5.1 `softphone`,
//! `webrtc_offer`, `webrtc_candidate`) against a real server with the phone
//! channel on, a `sipp` caller and the agent's `sipp` desk phone: choosing
//! the browser keeps the desk phone quiet, every refusal names its cause,
//! and giving the choice back rings the desk phone again. (The audio of a
//! browser leg is tested in voice/tests/call_browser.rs with a WebRTC peer.)

use crate::common;

use std::time::Duration;

use common::sipp::{caller_until_bye, phone, phone_server};
use common::{Client, TestServer};
use gateway::auth::Role;
use serde_json::json;

#[derive(serde::Deserialize)]
struct IceServers {
    ice_servers: Vec<voice::webrtc::ice_servers::IceServerConfig>,
}

async fn agent_socket(server: &TestServer, agent: &str) -> Client {
    Client::connect(&server.ws_url("/ws/agent", &server.token(agent, Role::Agent))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_as_the_phone_is_chosen_refused_clearly_and_given_back() {
    let server = phone_server(|config| {
        config.routing.offer_timeout_ms = 30_000;
        config.voice.ice_servers = toml::from_str::<IceServers>(
            r#"
            [[ice_servers]]
            urls = ["stun:stun.example.com:3478"]
            [[ice_servers]]
            urls = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]
            shared_secret = "north"
            credential_ttl_secs = 3600
            "#,
        )
        .unwrap()
        .ice_servers;
    })
    .await;
    let desk_phone = phone(&server, "liu.yang", "agent_answer.xml").await;
    let mut agent = server.available_agent("liu.yang").await;
    let chosen = agent
        .request(json!({"type": "softphone", "on": true}))
        .await;
    // The browser's STUN/TURN servers, TURN credentials minted for Liu Yang
    // for an hour.
    let turn = &chosen["ice_servers"][1];
    let username = turn["username"].as_str().unwrap();
    let (expiry, agent_id) = username.split_once(':').unwrap();
    let expiry: u64 = expiry.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 3_590..=now + 3_600).contains(&expiry), "{username}");
    assert_eq!(agent_id, "liu.yang");
    assert_eq!(turn["credential"].as_str().unwrap().len(), 28, "{turn}");
    // The page asks again before the credentials expire.
    assert_eq!(chosen["ice_expires_at"].as_u64().unwrap() / 1000, expiry);
    assert_eq!(
        chosen,
        json!({"type": "softphone", "request_id": chosen["request_id"], "on": true,
            "ice_servers": [
                {"urls": ["stun:stun.example.com:3478"]},
                {"urls": ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"],
                 "username": username, "credential": turn["credential"]},
            ],
            "ice_transport_policy": "all",
            "ice_expires_at": chosen["ice_expires_at"]})
    );

    let (caller, _caller_rtp) = caller_until_bye(&server, "+8613800000051");
    let offer = agent.expect("offer").await;
    let session = offer["session"].as_str().unwrap().to_string();
    // The desk phone is not rung: no `ringing` on the call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pong = agent.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    let ringing = agent
        .take_pending()
        .into_iter()
        .find(|frame| frame["type"] == "call" && frame["call"] == "ringing");
    assert_eq!(ringing, None, "the desk phone stays quiet");

    // Refusals, each naming its cause.
    let offer_frame =
        |session: &str, sdp: &str| json!({"type": "webrtc_offer", "session": session, "sdp": sdp});
    let garbage = agent.request(offer_frame(&session, "v=0\r\nnot sdp")).await;
    assert_eq!(garbage["code"], "invalid_message", "{garbage}");
    assert!(
        garbage["message"].as_str().unwrap().contains("sdp"),
        "{garbage}"
    );
    let huge = agent
        .request(offer_frame(&session, &"a".repeat(17 * 1024)))
        .await;
    assert_eq!(huge["code"], "invalid_message", "{huge}");
    assert!(
        huge["message"].as_str().unwrap().contains("`sdp`"),
        "{huge}"
    );
    let unknown = agent
        .request(offer_frame("7530934589636739072", "v=0"))
        .await;
    assert_eq!(unknown["code"], "not_found", "{unknown}");
    let no_leg = agent
        .request(json!({"type": "webrtc_candidate", "session": session,
            "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"}))
        .await;
    assert_eq!(no_leg["code"], "invalid_state", "{no_leg}");
    let mut other = agent_socket(&server, "zhang.wei").await;
    other.hello(json!({})).await;
    other
        .request(json!({"type": "softphone", "on": true}))
        .await;
    let not_theirs = other.request(offer_frame(&session, "v=0")).await;
    assert_eq!(not_theirs["code"], "not_your_session", "{not_theirs}");
    // Liu Yang's second desktop did not choose the browser: not his phone.
    let mut second = agent_socket(&server, "liu.yang").await;
    second.hello(json!({})).await;
    let not_the_phone = second.request(offer_frame(&session, "v=0")).await;
    assert_eq!(not_the_phone["code"], "invalid_state", "{not_the_phone}");
    assert!(
        not_the_phone["message"]
            .as_str()
            .unwrap()
            .contains("softphone"),
        "{not_the_phone}"
    );

    // The desk phone again: accepting in the desktop rings it, it answers.
    let given_back = agent
        .request(json!({"type": "softphone", "on": false}))
        .await;
    assert_eq!(
        given_back,
        json!({"type": "softphone", "request_id": given_back["request_id"], "on": false, "ice_servers": [], "ice_transport_policy": "all"})
    );
    let accepted = agent
        .request(json!({"type": "accept", "session": session}))
        .await;
    assert_eq!(accepted["type"], "ok", "{accepted}");
    agent
        .wait_for("the desk phone's answer", |frame| {
            frame["type"] == "call" && frame["call"] == "answered"
        })
        .await;
    let hung_up = agent
        .request(json!({"type": "call", "session": session, "action": "hang_up"}))
        .await;
    assert_eq!(hung_up["type"], "ok", "{hung_up}");
    caller.await.unwrap().assert_success();
    desk_phone.uas.await.unwrap().assert_success();
}

#[tokio::test]
async fn with_the_phone_channel_off_the_softphone_is_unavailable() {
    let server = TestServer::start(|_| {}).await;
    let mut agent = agent_socket(&server, "chen.jie").await;
    agent.hello(json!({})).await;
    let refused = agent
        .request(json!({"type": "softphone", "on": true}))
        .await;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("voice.enabled"),
        "{refused}"
    );
}
