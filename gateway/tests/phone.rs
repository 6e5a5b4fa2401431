//! The phone channel in the running server: an agent's SIP password set
//! over REST, the agent's phone (the real `sipp`, Debian's sip-tester)
//! registering over UDP, and REST showing the phone registered; a caller
//! on a trunk (sipp again) becoming a phone session.

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestServer;
use gateway::auth::Role;
use serde_json::json;

/// Runs `sipp` with one of the voice crate's scenarios against `server`.
async fn sipp(scenario: &str, server: std::net::SocketAddr, args: &[&str]) -> std::process::Output {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../voice/tests/sipp")
        .join(scenario);
    let dir = tempfile::tempdir().unwrap();
    let media = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port().to_string();
    drop(media);
    let mut command = tokio::process::Command::new("sipp");
    command
        .current_dir(dir.path())
        .arg("-sf")
        .arg(&scenario)
        .arg(server.to_string())
        .args(["-i", "127.0.0.1", "-mp", &media_port, "-m", "1"])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .args(args)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(40), command.output())
        .await
        .expect("sipp ends within its own timeout")
        .expect("sipp runs (Debian package sip-tester; scripts/test installs it)")
}

/// Registers `agent`'s phone with the REGISTER scenario.
async fn register(
    server: std::net::SocketAddr,
    agent: &str,
    password: &str,
) -> std::process::Output {
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
    assert!(!refused.status.success(), "registered without a password");

    let status = client
        .put(server.http_url("/api/v1/agents/chen.jie/sip-password"))
        .bearer_auth(&admin)
        .json(&json!({"password": "desk-phone-7"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let registered = register(sip, "chen.jie", "desk-phone-7").await;
    assert!(
        registered.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&registered.stderr)
    );
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
    assert!(
        call.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&call.stderr)
    );
    let mut packet = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), rtp.recv_from(&mut packet))
        .await
        .expect("hold audio reached the caller")
        .unwrap();
    assert_eq!(n, 12 + 160, "one 20 ms G.711 frame");

    let board = server.server.switchboard();
    let customer = engine::ids::CustomerId::new(format!("phone:{number}"));
    // The BYE was answered; the session ends right after.
    let mut sessions = Vec::new();
    for _ in 0..500 {
        sessions = board
            .store()
            .sessions_of_customer(&customer, 10)
            .await
            .unwrap();
        if sessions.iter().all(|session| session.state.is_final()) && !sessions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    let url = format!("http://{}/metrics", server.server.admin_addr);
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let value = |name: &str, labels: &[&str]| -> f64 {
        text.lines()
            .find(|line| {
                (line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
                    && labels.iter().all(|label| line.contains(label))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} {labels:?} not on /metrics"))
    };
    assert!(value("switchboard_calls_total", &["outcome=\"abandoned\""]) >= 1.0);
    assert!(
        value(
            "switchboard_sip_responses_total",
            &["method=\"INVITE\"", "code=\"200\""]
        ) >= 1.0
    );
    assert!(value("switchboard_sip_requests_total", &["method=\"BYE\""]) >= 1.0);
    assert_eq!(
        value("switchboard_calls_active", &[]),
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
        registered.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&registered.stdout)
    );
    let wrong = register(sip, "zhang.wei", "not-the-password").await;
    assert!(!wrong.status.success(), "a wrong password is refused");

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
