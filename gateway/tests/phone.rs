//! The phone channel in the running server: an agent's SIP password set
//! over REST, the agent's phone (the real `sipp`, Debian's sip-tester)
//! registering over UDP, and REST and the agent socket showing the phone
//! registered; a caller on a trunk (sipp again) becoming a phone session;
//! the agent's `call` frames holding, resuming and hanging up a call.

mod common;

use std::time::Duration;

use common::sipp::{SippRun, caller_until_bye, phone, phone_server, sip_addr, sipp};
use common::{Client, TestServer};
use gateway::auth::Role;
use serde_json::{Value, json};

/// Registers `agent`'s phone with the REGISTER scenario.
async fn register(server: std::net::SocketAddr, agent: &str, password: &str) -> SippRun {
    sipp(
        "register.xml",
        server,
        &["-s", agent, "-au", agent, "-ap", password],
    )
    .await
}

#[tokio::test]
async fn an_agents_phone_registers_with_the_password_set_over_rest() {
    let server = TestServer::start(|config| {
        config.voice.enabled = true;
        config.voice.listen = "127.0.0.1:0".parse().unwrap();
    })
    .await;
    let sip = server.server.sip_addr.expect("the SIP endpoint runs");
    let admin = server.token("admin", Role::Admin);
    let client = reqwest::Client::new();
    let detail = server.get_json("/api/v1/agents/chen.jie", &admin).await;
    assert_eq!(detail["phone"], json!({"registered": false}), "{detail}");

    // No password yet: the phone is refused (sipp expects the 200 and fails).
    let refused = register(sip, "chen.jie", "desk-phone-7").await;
    assert!(
        !refused.output.status.success(),
        "registered without a password"
    );

    let status = client
        .put(server.http_url("/api/v1/agents/chen.jie/sip-password"))
        .bearer_auth(&admin)
        .json(&json!({"password": "desk-phone-7"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    register(sip, "chen.jie", "desk-phone-7")
        .await
        .assert_success();
    let detail = server.get_json("/api/v1/agents/chen.jie", &admin).await;
    assert_eq!(detail["phone"], json!({"registered": true}), "{detail}");
    server.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_the_phone_channel_off_no_phone_is_shown() {
    let server = TestServer::start(|_| {}).await;
    assert_eq!(server.server.sip_addr, None);
    let admin = server.token("admin", Role::Admin);
    let detail = server.get_json("/api/v1/agents/chen.jie", &admin).await;
    assert!(detail.get("phone").is_none(), "{detail}");
    let welcome = agent_socket(&server, "chen.jie")
        .await
        .hello(json!({}))
        .await;
    assert!(welcome.get("phone").is_none(), "{welcome}");
}

/// An agent socket, connected, not yet said hello.
async fn agent_socket(server: &TestServer, agent: &str) -> Client {
    Client::connect(&server.ws_url("/ws/agent", &server.token(agent, Role::Agent))).await
}

/// The `phone` frames among what `client` received up to the reply of a
/// `ping` sent now (the server answers frames in order, so a push caused
/// before it is in there).
async fn phone_frames_so_far(client: &mut Client) -> Vec<Value> {
    let pong = client.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
    client
        .take_pending()
        .into_iter()
        .filter(|frame| frame["type"] == "phone")
        .collect()
}

/// `welcome` says whether the agent's phone is registered, and each of the
/// agent's sockets gets a `phone` frame when that changes, once, and none
/// for another agent's phone.
#[tokio::test]
async fn the_agent_socket_tells_the_phones_registration_and_its_changes() {
    let server = phone_server(|_| {}).await;
    let sip = sip_addr(&server);
    common::sipp::set_sip_password(&server, "chen.jie", "desk-phone-7").await;
    common::sipp::set_sip_password(&server, "zhang.wei", "desk-phone-8").await;
    let mut first = agent_socket(&server, "chen.jie").await;
    let welcome = first.hello(json!({})).await;
    assert_eq!(welcome["phone"], json!({"registered": false}), "{welcome}");

    register(sip, "chen.jie", "desk-phone-7")
        .await
        .assert_success();
    let pushed = first.expect("phone").await;
    assert_eq!(pushed, json!({"type": "phone", "registered": true}));
    let mut second = agent_socket(&server, "chen.jie").await;
    let welcome = second.hello(json!({})).await;
    assert_eq!(welcome["phone"], json!({"registered": true}), "{welcome}");

    // Another agent's phone is none of this socket's business.
    register(sip, "zhang.wei", "desk-phone-8")
        .await
        .assert_success();
    assert_eq!(phone_frames_so_far(&mut first).await, Vec::<Value>::new());

    // unregister.xml registers again (no change) and then removes the binding.
    sipp(
        "unregister.xml",
        sip,
        &["-s", "chen.jie", "-au", "chen.jie", "-ap", "desk-phone-7"],
    )
    .await
    .assert_success();
    for socket in [&mut first, &mut second] {
        let pushed = socket.expect("phone").await;
        assert_eq!(pushed, json!({"type": "phone", "registered": false}));
        assert_eq!(phone_frames_so_far(socket).await, Vec::<Value>::new());
    }
    server.server.shutdown().await.unwrap();
}

/// The agent's `call` frames: a call answered on the agent's phone is put
/// on hold (twice: the second changes nothing), resumed and hung up from
/// the socket; the caller and the phone get their BYEs, and the session's
/// history tells the story. Another agent may not touch the call, an
/// unknown action is refused naming the field, and an ended call takes no
/// more actions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_frames_hold_resume_and_hang_up_the_agents_call() {
    let server = phone_server(|config| config.routing.offer_timeout_ms = 30_000).await;
    let phone = phone(&server, "liu.yang", "agent_answer.xml").await;
    let mut agent = server.available_agent("liu.yang").await;
    let (caller, _caller_rtp) = caller_until_bye(&server, "+8613800000031");
    let offer = agent.expect("offer").await;
    let session = offer["session"].as_str().unwrap().to_string();
    agent
        .wait_for("the phone's answer", |frame| {
            frame["type"] == "call" && frame["call"] == "answered"
        })
        .await;
    let call = |action: &str| json!({"type": "call", "session": session, "action": action});

    let mut other = agent_socket(&server, "zhang.wei").await;
    other.hello(json!({})).await;
    let refused = other.request(call("hold")).await;
    assert_eq!(refused["code"], "not_your_session", "{refused}");

    for (action, event) in [
        ("hold", Some("held")),
        ("hold", None),
        ("resume", Some("resumed")),
    ] {
        let reply = agent.request(call(action)).await;
        assert_eq!(reply["type"], "ok", "{action}: {reply}");
        if let Some(event) = event {
            agent
                .wait_for(event, |frame| {
                    frame["type"] == "call" && frame["call"] == event
                })
                .await;
        }
    }
    let refused = agent.request(call("park")).await;
    assert_eq!(refused["code"], "invalid_frame", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("`action`"),
        "{refused}"
    );

    let reply = agent.request(call("hang_up")).await;
    assert_eq!(reply["type"], "ok", "{reply}");
    let ended = agent
        .wait_for("the call's end", |frame| {
            frame["type"] == "call" && frame["call"] == "ended"
        })
        .await;
    assert_eq!(ended["by"], "agent", "{ended}");
    agent.expect("wrap_up").await;
    caller.await.unwrap().assert_success();
    phone.uas.await.unwrap().assert_success();
    let refused = agent.request(call("hold")).await;
    assert_eq!(refused["code"], "invalid_state", "{refused}");

    let supervisor = server.token("wang.min", Role::Supervisor);
    let record = server
        .get_json(&format!("/api/v1/sessions/{session}"), &supervisor)
        .await;
    let story: Vec<String> = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "call")
        .map(|event| {
            let by = event["by"].as_str().map(|by| format!(" by {by}"));
            format!(
                "{}{}",
                event["call"].as_str().unwrap(),
                by.unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        story,
        [
            "started",
            "ringing",
            "answered",
            "held",
            "resumed",
            "ended by agent"
        ],
        "{record}"
    );
    server.server.shutdown().await.unwrap();
}

/// A caller on a trunk: the call becomes a phone session of a new customer
/// (an unknown number), the caller hears hold audio, and their BYE
/// abandons the session, in the running server.
#[tokio::test]
async fn a_trunk_call_becomes_a_phone_session_that_the_callers_bye_abandons() {
    let server = TestServer::start(|config| {
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
    let sip = server.server.sip_addr.expect("the SIP endpoint runs");
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp_port = rtp.local_addr().unwrap().port().to_string();
    let number = "+8613800000077";
    let call = sipp(
        "call_hold.xml",
        sip,
        &["-key", "caller", number, "-key", "rtp_port", &rtp_port],
    )
    .await;
    call.assert_success();
    let mut packet = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), rtp.recv_from(&mut packet))
        .await
        .expect("hold audio reached the caller")
        .unwrap();
    assert_eq!(n, 12 + 160, "one 20 ms G.711 frame");

    let board = server.server.switchboard();
    // The BYE was answered; the session ends right after.
    let sessions = caller_sessions(&server, number, |sessions| {
        !sessions.is_empty() && sessions.iter().all(|session| session.state.is_final())
    })
    .await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = &sessions[0];
    assert_eq!(session.channel, engine::channel::Channel::Phone);
    assert_eq!(session.state, engine::session::SessionState::Abandoned);
    let history = board.history(session.id, 0).await.unwrap();
    assert!(
        matches!(
            &history[0].kind,
            actors::EventKind::Call(actors::CallEvent::Started { from, .. }) if from == number
        ),
        "{history:?}"
    );
    assert!(
        history.iter().any(|event| matches!(
            event.kind,
            actors::EventKind::Call(actors::CallEvent::Ended {
                by: actors::CallEnd::Caller,
                ..
            })
        )),
        "{history:?}"
    );

    // The call is counted on /metrics.
    let abandoned = server
        .metric("switchboard_calls_total", &["outcome=\"abandoned\""])
        .await;
    assert!(abandoned >= 1.0, "{abandoned}");
    let answered_invites = server
        .metric(
            "switchboard_sip_responses_total",
            &["method=\"INVITE\"", "code=\"200\""],
        )
        .await;
    assert!(answered_invites >= 1.0, "{answered_invites}");
    let byes = server
        .metric("switchboard_sip_requests_total", &["method=\"BYE\""])
        .await;
    assert!(byes >= 1.0, "{byes}");
    assert_eq!(
        server.metric("switchboard_calls_active", &[]).await,
        0.0,
        "the call is over"
    );
    server.server.shutdown().await.unwrap();
}

/// `cargo run --release` as a user runs it: the demo runs the phone
/// channel, the banner names the SIP address and the demo agents' phone
/// passwords, a phone registers with them, and the banner's `sipp -sn uac`
/// call goes through (answered with hold audio, then hung up).
#[tokio::test]
async fn the_demo_banner_gives_a_phone_that_registers_and_a_call_that_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let process = common::start_process(dir.path(), &[], None).await;
    let banner = &process.banner;
    let sip: std::net::SocketAddr = banner
        .lines()
        .find_map(|line| line.trim().strip_prefix("SIP (phones)     sip:<agent id>@"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no SIP line in the banner:\n{banner}"))
        .parse()
        .unwrap();
    let password = gateway::demo::sip_password("zhang.wei");
    assert!(
        banner.lines().any(
            |line| line.contains("zhang.wei") && line.contains(&format!("password {password}"))
        ),
        "{banner}"
    );
    let registered = register(sip, "zhang.wei", &password).await;
    assert!(
        registered.output.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&registered.output.stdout)
    );
    let wrong = register(sip, "zhang.wei", "not-the-password").await;
    assert!(
        !wrong.output.status.success(),
        "a wrong password is refused"
    );

    // The VIP's WeChat and web conversations are in her 360° view: what the
    // agent who takes her call sees beside it.
    let admin = common::process_token(dir.path(), "admin", Role::Admin);
    let view: Value = reqwest::Client::new()
        .get(format!(
            "http://{}/api/v1/customers/cust-vip-001/view",
            process.addr
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let channels: Vec<&str> = view["interactions"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"))
        .iter()
        .filter_map(|interaction| interaction["channel"].as_str())
        .collect();
    assert_eq!(channels, ["wechat", "web"], "{view}");

    // The call the banner suggests, word for word.
    let command = banner
        .lines()
        .find_map(|line| {
            let start = line.find("`sipp ")? + 1;
            let end = start + line[start..].find('`')?;
            Some(line[start..end].to_owned())
        })
        .unwrap_or_else(|| panic!("no sipp command in the banner:\n{banner}"));
    let work = tempfile::tempdir().unwrap();
    let words: Vec<&str> = command.split_whitespace().collect();
    let call = tokio::time::timeout(
        Duration::from_secs(40),
        tokio::process::Command::new(words[0])
            .current_dir(work.path())
            .args(&words[1..])
            .args([
                "-i",
                "127.0.0.1",
                "-timeout",
                "20s",
                "-timeout_error",
                "-nostdin",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("sipp ends")
    .expect("sipp runs");
    assert!(
        call.status.success(),
        "`{command}`: {}",
        String::from_utf8_lossy(&call.stdout)
    );
}

/// A graceful stop hangs up the calls that are up: the caller gets a BYE,
/// and the call's end is recorded as dropped (the waiting session
/// abandoned) before the runtime stops, not left for the next start.
#[tokio::test]
async fn a_graceful_stop_hangs_up_live_calls_and_records_them() {
    let server = phone_server(|_| {}).await;
    let number = "+8613800000078";
    let (caller, _rtp) = caller_until_bye(&server, number);
    let sessions = caller_sessions(&server, number, |sessions| !sessions.is_empty()).await;
    let session = sessions.first().expect("the call is a session").id;
    // The call is answered (queued, hold audio) before the stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = server.server.switchboard().store().clone();
    server.server.shutdown().await.unwrap();
    caller.await.unwrap().assert_success();
    let record = store.get_session(session).await.unwrap().unwrap();
    assert_eq!(record.state, engine::session::SessionState::Abandoned);
    let ends: Vec<_> = store
        .messages(session, 0, 100)
        .await
        .unwrap()
        .iter()
        .filter_map(actors::CallEvent::stored_in)
        .filter(|event| matches!(event, actors::CallEvent::Ended { .. }))
        .collect();
    assert_eq!(
        ends,
        vec![actors::CallEvent::Ended {
            by: actors::CallEnd::Dropped,
            talk_ms: 0
        }]
    );
}

/// A peer that never answers the BYE does not hold up a graceful stop:
/// the hang-up is given up after its bound and the server stops.
#[tokio::test]
async fn a_graceful_stop_does_not_wait_forever_for_an_unanswered_bye() {
    let server = phone_server(|_| {}).await;
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = rtp.local_addr().unwrap().port().to_string();
    let sip = sip_addr(&server);
    let caller = tokio::spawn(async move {
        sipp(
            "call_ignores_bye.xml",
            sip,
            &[
                "-key",
                "caller",
                "+8613800000079",
                "-key",
                "rtp_port",
                &rtp_port,
            ],
        )
        .await
    });
    let sessions =
        caller_sessions(&server, "+8613800000079", |sessions| !sessions.is_empty()).await;
    assert!(!sessions.is_empty(), "the call is a session");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(20), server.server.shutdown())
        .await
        .expect("the server stops although the caller never answers the BYE")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    caller.await.unwrap().assert_success();
}

/// The sessions of the caller `number` (customer `phone:<number>`) once
/// `done` holds for them, polling the store for up to 5 s.
async fn caller_sessions(
    server: &TestServer,
    number: &str,
    done: impl Fn(&[engine::session::Session]) -> bool,
) -> Vec<engine::session::Session> {
    let store = server.server.switchboard().store().clone();
    let customer = engine::ids::CustomerId::new(format!("phone:{number}"));
    let mut sessions = Vec::new();
    for _ in 0..500 {
        sessions = store.sessions_of_customer(&customer, 10).await.unwrap();
        if done(&sessions) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sessions
}
