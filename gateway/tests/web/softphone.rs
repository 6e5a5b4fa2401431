//! The browser as the agent's phone (issue 21), in a real headless Chromium
//! with fake media devices (`--use-fake-device-for-media-stream`: a beep as
//! the microphone), a `sipp` caller and the test's RTP socket as the
//! caller's audio: the agent takes calls in the browser, answers in the
//! page, the browser's `getStats` shows audio packets flowing both ways,
//! the caller's socket gets the browser's audio and the keypad's tones
//! from switchboard, and Hang up in the page ends the caller's leg with a
//! BYE. A browser whose microphone is refused, or that has no WebRTC,
//! says so and keeps the desk phone. A call goes on through a drop of the page's socket (a proxy the
//! test cuts), and hangs up without it. With `ice_transport_policy =
//! "relay"` the audio goes through a real TURN server (coturn) with the
//! credentials switchboard minted. A supervisor whose browser is their
//! phone hears a followed call in the page and barges in.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gateway::auth::Role;
use serde_json::json;
use tokio::net::UdpSocket;

use crate::common::TestServer;
use crate::common::sipp::{SippRun, caller_until_bye, phone, phone_server};
use crate::proxy::CutProxy;
use crate::webdriver::{Browser, Driver};
use crate::{go_available, open_desktop, screenshot, unlabelled_controls};

/// Chromium's switches for a page that may use a (fake) microphone and
/// talk WebRTC over loopback.
const FAKE_MEDIA: [&str; 3] = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
];

/// The caller's audio: PCMU at a steady level, 20 ms apart, until aborted
/// (at most 30 s).
fn caller_speaks(socket: Arc<UdpSocket>, to: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        for sequence in 0..1_500u16 {
            every.tick().await;
            let mut packet = vec![0x80, 0x00];
            packet.extend_from_slice(&sequence.to_be_bytes());
            packet.extend_from_slice(&(u32::from(sequence) * 160).to_be_bytes());
            packet.extend_from_slice(&0xCA11_E200u32.to_be_bytes());
            packet.extend_from_slice(&[0xA5; 160]);
            if socket.send_to(&packet, to).await.is_err() {
                return;
            }
        }
    })
}

/// SSRCs of the RTP packets `socket` receives in `window`, with counts.
async fn ssrcs_heard(socket: &UdpSocket, window: Duration) -> Vec<(u32, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    let mut buffer = [0u8; 2048];
    let until = tokio::time::Instant::now() + window;
    while let Ok(Ok((len, _))) = tokio::time::timeout_at(until, socket.recv_from(&mut buffer)).await
    {
        if len >= 12 {
            let ssrc = u32::from_be_bytes([buffer[8], buffer[9], buffer[10], buffer[11]]);
            *counts.entry(ssrc).or_insert(0) += 1;
        }
    }
    counts.into_iter().collect()
}

/// The keypad tones `socket` receives (telephone-event in `payload_type`):
/// the event of each that ended, in order, until `n` have (within 10 s).
async fn keypad_tones(socket: &UdpSocket, payload_type: u8, n: usize) -> Vec<u8> {
    let mut ended = Vec::new();
    let mut ended_at = Vec::new();
    let mut buffer = [0u8; 2048];
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while ended.len() < n {
        let Ok(Ok((len, _))) = tokio::time::timeout_at(until, socket.recv_from(&mut buffer)).await
        else {
            panic!("keypad tones at the caller: {ended:?}, expected {n}");
        };
        // RFC 4733 payload after a 12-byte header: event, E|R|volume, duration.
        if len < 16 || buffer[1] & 0x7f != payload_type || buffer[13] & 0x80 == 0 {
            continue;
        }
        // The end is sent three times: one event per RTP timestamp.
        let timestamp = u32::from_be_bytes([buffer[4], buffer[5], buffer[6], buffer[7]]);
        if !ended_at.contains(&timestamp) {
            ended_at.push(timestamp);
            ended.push(buffer[12]);
        }
    }
    ended
}

/// Zhao Lei calling (demo data): a `sipp` caller on the line until
/// switchboard hangs up, the test's socket its RTP, which speaks a steady
/// level to the call's port once hold audio shows where that is.
struct Caller {
    sipp: tokio::task::JoinHandle<SippRun>,
    rtp: Arc<UdpSocket>,
    /// The SSRCs of hold audio (what the caller heard before the answer).
    hold: BTreeSet<u32>,
    speaking: tokio::task::JoinHandle<()>,
}

impl Caller {
    async fn call(server: &TestServer) -> Caller {
        let (sipp, rtp) = caller_until_bye(server, "+8613900000002");
        rtp.set_nonblocking(true).unwrap();
        let rtp = Arc::new(UdpSocket::from_std(rtp).unwrap());
        let mut buffer = [0u8; 2048];
        let (_, media_port) =
            tokio::time::timeout(Duration::from_secs(15), rtp.recv_from(&mut buffer))
                .await
                .expect("hold audio reaches the caller")
                .unwrap();
        let hold: BTreeSet<u32> = ssrcs_heard(&rtp, Duration::from_millis(300))
            .await
            .into_iter()
            .map(|(ssrc, _)| ssrc)
            .collect();
        let speaking = caller_speaks(rtp.clone(), media_port);
        Caller {
            sipp,
            rtp,
            hold,
            speaking,
        }
    }

    /// The caller's leg ends with switchboard's BYE `within` this long;
    /// the caller stops speaking.
    async fn hung_up(self, within: Duration) {
        let run = tokio::time::timeout(within, self.sipp)
            .await
            .expect("the caller gets its BYE in time");
        run.unwrap().assert_success();
        self.speaking.abort();
    }
}

/// A call from the [`Caller`] answered in the desktop's browser phone, with
/// audio flowing both ways.
struct BrowserCall {
    /// The session card's selector.
    card: String,
    caller: Caller,
}

/// A server with the phone channel, offers that wait a minute; `tweak`
/// adjusts the rest.
async fn call_server(tweak: impl FnOnce(&mut gateway::Config)) -> TestServer {
    phone_server(|config| {
        config.routing.offer_timeout_ms = 60_000;
        config.routing.queue_update_ms = 500;
        tweak(config);
    })
    .await
}

impl BrowserCall {
    /// Turns the browser phone on in the open desktop, goes available, and
    /// answers a call in the page; returns once `getStats` counts audio
    /// packets both ways.
    async fn answer(desktop: &Browser, server: &TestServer) -> BrowserCall {
        desktop.wait_visible("#softphone-pick").await;
        desktop.click("#softphone-toggle").await;
        desktop
            .wait_text(
                "#softphone-state[data-state='ready']",
                "Browser phone: ready",
            )
            .await;
        go_available(desktop).await;
        let caller = Caller::call(server).await;

        desktop.wait_text("#offers li.offer", "Zhao Lei").await;
        let session = desktop
            .exec(
                "return document.querySelector('#offers li.offer').dataset.session",
                json!([]),
            )
            .await;
        let card = format!(
            "section.session[data-session='{}']",
            session.as_str().unwrap()
        );
        desktop.click("#offers li.offer button.accept").await;
        desktop
            .wait_visible(&format!("{card} .call-state[data-state='talking']"))
            .await;
        let flowing = "const q = document.querySelector(arguments[0]); \
            return !!q && Number(q.dataset.packetsReceived || 0) > 25 && Number(q.dataset.packetsSent || 0) > 25;";
        desktop
            .wait(
                "the browser receives and sends audio",
                flowing,
                json!([format!("{card} .call-quality")]),
            )
            .await;
        BrowserCall { card, caller }
    }

    /// `getStats`' audio packets received and sent, as the card shows them.
    async fn packets(&self, desktop: &Browser) -> (f64, f64) {
        let counts = desktop
            .exec(
                "const q = document.querySelector(arguments[0]); \
                 return q ? [Number(q.dataset.packetsReceived || 0), Number(q.dataset.packetsSent || 0)] : [0, 0];",
                json!([format!("{} .call-quality", self.card)]),
            )
            .await;
        (counts[0].as_f64().unwrap(), counts[1].as_f64().unwrap())
    }

    /// Panics unless the browser's packets in and out rise over 1.5 s.
    async fn assert_audio_flows(&self, desktop: &Browser, when: &str) {
        let first = self.packets(desktop).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later = self.packets(desktop).await;
        assert!(
            later.0 > first.0 && later.1 > first.1,
            "{when}: packets keep flowing: {first:?} then {later:?}"
        );
    }

    /// Panics unless the caller's socket gets ≥ 25 packets of the browser's
    /// audio (not hold audio) in a second.
    async fn assert_caller_hears_the_browser(&self, when: &str) {
        let heard = ssrcs_heard(&self.caller.rtp, Duration::from_secs(1)).await;
        let from_browser: usize = heard
            .iter()
            .filter(|(ssrc, _)| !self.caller.hold.contains(ssrc))
            .map(|(_, n)| n)
            .sum();
        assert!(
            from_browser >= 25,
            "{when}: the browser's audio at the caller: {heard:?} (hold {:?})",
            self.caller.hold
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_answered_and_hung_up_in_the_browser_softphone() {
    let server = call_server(|_| {}).await;
    let driver = Driver::start().await;
    let desktop = driver.browser_with("en-US", 1500, 1000, &FAKE_MEDIA).await;
    open_desktop(&desktop, &server, "liu.yang", Role::Agent).await;
    let call = BrowserCall::answer(&desktop, &server).await;
    let (card, caller_rtp) = (call.card.clone(), call.caller.rtp.clone());
    let quality = format!("{card} .call-quality");
    call.assert_audio_flows(&desktop, "in the call").await;
    // The browser plays sound (the caller's steady level), and the card
    // shows a measured jitter.
    desktop
        .wait(
            "the caller's audio has energy in the browser",
            "const q = document.querySelector(arguments[0]); return !!q && Number(q.dataset.audioEnergy || 0) > 0;",
            json!([quality]),
        )
        .await;
    desktop
        .wait(
            "a jitter figure on the card",
            "const q = document.querySelector(arguments[0]); return !!q && /Jitter [0-9]+ ms/.test(q.textContent);",
            json!([quality]),
        )
        .await;
    // The caller hears the browser: RTP from switchboard that is not hold audio.
    call.assert_caller_hears_the_browser("in the call").await;
    // The keypad: 7 then # go to the caller as keypad tones
    // (telephone-event, the payload type sipp offered: 96), and show as sent.
    desktop
        .click(&format!("{card} button.call-keypad:not([disabled])"))
        .await;
    desktop
        .click(&format!("{card} .call-keypad-pad button[data-key='7']"))
        .await;
    desktop
        .click(&format!("{card} .call-keypad-pad button[data-key='#']"))
        .await;
    desktop
        .wait_text(&format!("{card} .call-keypad-sent"), "7#")
        .await;
    let tones = keypad_tones(&caller_rtp, 96, 2).await;
    assert_eq!(tones, vec![7, 11], "keypad tones at the caller, in order");
    assert_eq!(unlabelled_controls(&desktop).await, Vec::<String>::new());
    desktop
        .screenshot(&screenshot("desktop-softphone.png"))
        .await;

    // Mute silences the microphone's track; Hang up ends the call.
    desktop.click(&format!("{card} button.call-mute")).await;
    desktop
        .wait_visible(&format!("{card} button.call-mute[aria-pressed='true']"))
        .await;
    desktop.click(&format!("{card} button.call-hang-up")).await;
    desktop
        .wait_visible(&format!("{card} .call-state[data-state='ended']"))
        .await;
    call.caller.hung_up(Duration::from_secs(30)).await;

    // The line's quality as switchboard measured it (RTCP), on /metrics.
    let metrics = reqwest::get(format!("http://{}/metrics", server.server.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} on /metrics"))
    };
    assert!(value("switchboard_webrtc_legs_total{outcome=\"connected\"}") >= 1.0);
    assert!(
        value("switchboard_webrtc_jitter_seconds_count") >= 1.0,
        "jitter sampled"
    );
    desktop.quit().await;
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_microphone_or_no_webrtc_keeps_the_desk_phone_with_a_notice() {
    let server = phone_server(|_| {}).await;
    let driver = Driver::start().await;
    let desktop = driver
        .browser_with(
            "en-US",
            1200,
            800,
            &[
                "--use-fake-device-for-media-stream",
                "--deny-permission-prompts",
            ],
        )
        .await;
    open_desktop(&desktop, &server, "liu.yang", Role::Agent).await;
    desktop.wait_visible("#softphone-pick").await;
    desktop.click("#softphone-toggle").await;
    desktop
        .wait_text(
            "#softphone-notice",
            "Microphone refused: calls ring your SIP phone.",
        )
        .await;
    desktop
        .wait_visible("#softphone-state[data-state='refused']")
        .await;
    let checked = desktop
        .exec(
            "return document.getElementById('softphone-toggle').checked",
            json!([]),
        )
        .await;
    assert_eq!(checked, json!(false), "the choice is not taken");

    // A browser without WebRTC says so too, and keeps the desk phone.
    desktop
        .exec(
            "window.RTCPeerConnection = undefined; return true;",
            json!([]),
        )
        .await;
    desktop.click("#softphone-toggle").await;
    desktop
        .wait_text(
            "#softphone-notice",
            "This browser cannot take calls (no WebRTC): calls ring your SIP phone.",
        )
        .await;
    desktop
        .wait_visible("#softphone-state[data-state='unsupported']")
        .await;
    let checked = desktop
        .exec(
            "return document.getElementById('softphone-toggle').checked",
            json!([]),
        )
        .await;
    assert_eq!(checked, json!(false), "no choice without WebRTC");
    desktop.quit().await;
    server.server.shutdown().await.unwrap();
}

/// The socket drops in the middle of a call in the browser (the page's
/// connection through a proxy that the test cuts): the audio goes on both
/// ways and the call bar says so; the page reconnects and the call is as
/// before. Dropped again, Hang up closes the audio in the page and
/// switchboard ends the call from that (the caller gets its BYE while the
/// socket is still down); back, the bar shows the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_call_goes_on_through_a_socket_drop_and_hangs_up_without_the_socket() {
    let server = call_server(|_| {}).await;
    let proxy = CutProxy::start(server.server.addr).await;
    let driver = Driver::start().await;
    let desktop = driver.browser_with("en-US", 1500, 1000, &FAKE_MEDIA).await;
    let token = server.token("liu.yang", Role::Agent);
    desktop
        .goto(&format!("http://{}/desktop?token={token}", proxy.addr))
        .await;
    desktop.wait_visible("#connection[data-state='open']").await;
    let call = BrowserCall::answer(&desktop, &server).await;
    let card = call.card.clone();
    let link_note = format!("{card} .call-link[data-state='reconnecting']");

    // Down: the page says the call goes on, and it does.
    proxy.cut();
    desktop
        .wait_text(
            &link_note,
            "Connection to switchboard lost: the call goes on",
        )
        .await;
    call.assert_audio_flows(&desktop, "socket down").await;
    call.assert_caller_hears_the_browser("socket down").await;

    // Back: the note goes, the call is still talking, the audio flows.
    proxy.restore();
    desktop.wait_visible("#connection[data-state='open']").await;
    desktop
        .wait(
            "the note to go",
            "const el = document.querySelector(arguments[0]); return !!el && el.hidden;",
            json!([format!("{card} .call-link")]),
        )
        .await;
    desktop
        .wait_visible(&format!("{card} .call-state[data-state='talking']"))
        .await;
    call.assert_audio_flows(&desktop, "socket back").await;

    // Down again: Hang up closes the audio here; switchboard sees the
    // browser's leg close and ends the call.
    proxy.cut();
    desktop.wait_visible(&link_note).await;
    desktop.click(&format!("{card} button.call-hang-up")).await;
    desktop
        .wait_text("#softphone-notice", "Hung up in this browser")
        .await;
    // Promptly: the page's close is the browser's goodbye (DTLS
    // close_notify), not an ICE timeout.
    call.caller.hung_up(Duration::from_secs(5)).await;
    proxy.restore();
    desktop
        .wait_visible(&format!("{card} .call-state[data-state='ended']"))
        .await;
    desktop.quit().await;
    server.server.shutdown().await.unwrap();
}

/// A real TURN server (coturn's `turnserver`) on loopback that takes the
/// credentials switchboard mints from `secret` (`use-auth-secret`, the TURN
/// REST API), and may relay to loopback peers.
struct Coturn {
    port: u16,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Coturn {
    async fn start(secret: &str) -> Coturn {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let in_dir = |name: &str| dir.path().join(name).display().to_string();
        let child = tokio::process::Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=switchboard.test",
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--fingerprint",
                &format!("--pidfile={}", in_dir("turnserver.pid")),
                &format!("--userdb={}", in_dir("turndb")),
                &format!("--log-file={}", in_dir("turn.log")),
                "--no-stdout-log",
            ])
            .kill_on_drop(true)
            .spawn()
            .expect("coturn's turnserver runs (scripts/test installs coturn)");
        // Up when its TCP listener takes a connection.
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < until,
                "turnserver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Coturn {
            port,
            _child: child,
            _dir: dir,
        }
    }
}

#[derive(serde::Deserialize)]
struct VoiceIce {
    ice_servers: Vec<voice::webrtc::ice_servers::IceServerConfig>,
    ice_transport_policy: voice::webrtc::ice_servers::IceTransportPolicy,
}

/// `voice.ice_transport_policy = "relay"` with a real TURN server: the
/// browser connects only through coturn, with the credentials switchboard
/// minted for the agent from the shared secret; the card says the audio is
/// relayed, and it flows both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_relay_only_the_call_goes_through_a_real_turn_server() {
    let turn = Coturn::start("north-relay-secret").await;
    let ice: VoiceIce = toml::from_str(&format!(
        r#"
        ice_transport_policy = "relay"
        [[ice_servers]]
        urls = ["turn:127.0.0.1:{}?transport=udp"]
        shared_secret = "north-relay-secret"
        "#,
        turn.port
    ))
    .unwrap();
    let server = call_server(|config| {
        config.voice.ice_servers = ice.ice_servers;
        config.voice.ice_transport_policy = ice.ice_transport_policy;
    })
    .await;
    let driver = Driver::start().await;
    let desktop = driver.browser_with("en-US", 1500, 1000, &FAKE_MEDIA).await;
    open_desktop(&desktop, &server, "liu.yang", Role::Agent).await;
    let call = BrowserCall::answer(&desktop, &server).await;
    let quality = format!("{} .call-quality", call.card);
    desktop
        .wait(
            "the audio's path to be the relay",
            "const q = document.querySelector(arguments[0]); return !!q && q.dataset.path === 'relay';",
            json!([quality]),
        )
        .await;
    desktop.wait_text(&quality, "relayed (TURN)").await;
    call.assert_audio_flows(&desktop, "through the relay").await;
    call.assert_caller_hears_the_browser("through the relay")
        .await;
    desktop
        .click(&format!("{} button.call-hang-up", call.card))
        .await;
    call.caller.hung_up(Duration::from_secs(30)).await;
    desktop.quit().await;
    server.server.shutdown().await.unwrap();
}

/// A supervisor whose browser is their phone follows a call there: the
/// agent answers on a `sipp` desk phone, the supervisor (Wang Min, in
/// Chromium) listens from the control panel and hears the call in the page
/// (`getStats` counts the audio), barges in and the caller hears the
/// supervisor's microphone mixed in, then Stop closes the audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_hears_a_followed_call_in_the_browser_and_barges_in() {
    let server = call_server(|_| {}).await;
    let desk_phone = phone(&server, "liu.yang", "agent_answer.xml").await;
    let mut agent = server.available_agent("liu.yang").await;
    let caller = Caller::call(&server).await;
    let (caller_rtp, hold) = (caller.rtp.clone(), caller.hold.clone());
    // The desk phone rings with the offer and answers: that is the accept.
    let offer = agent.expect("offer").await;
    let session = offer["session"].as_str().unwrap().to_string();
    agent
        .wait_for("the desk phone's answer", |frame| {
            frame["type"] == "call" && frame["call"] == "answered"
        })
        .await;

    // Wang Min's browser is his phone; he listens from the control panel.
    let driver = Driver::start().await;
    let supervisor = driver.browser_with("en-US", 1500, 1100, &FAKE_MEDIA).await;
    open_desktop(&supervisor, &server, "wang.min", Role::Supervisor).await;
    supervisor.wait_visible("#softphone-pick").await;
    supervisor.click("#softphone-toggle").await;
    supervisor
        .wait_visible("#softphone-state[data-state='ready']")
        .await;
    supervisor
        .wait(
            "the call in the live list",
            "return !!document.querySelector(`#control-live option[value='${arguments[0]}']`)",
            json!([session]),
        )
        .await;
    supervisor.choose("#control-live", &session).await;
    supervisor.choose("#control-monitor-mode", "listen").await;
    supervisor.click("#control-monitor").await;
    let card = format!("section.session[data-session='{session}']");
    supervisor
        .wait_text(
            &format!("{card} .monitor-phone"),
            "You hear this call in this browser",
        )
        .await;
    let quality = format!("{card} .call-quality");
    supervisor
        .wait(
            "the call's audio in the supervisor's browser",
            "const q = document.querySelector(arguments[0]); return !!q && Number(q.dataset.packetsReceived || 0) > 25 && Number(q.dataset.audioEnergy || 0) > 0;",
            json!([quality]),
        )
        .await;
    let before: BTreeSet<u32> = ssrcs_heard(&caller_rtp, Duration::from_secs(1))
        .await
        .into_iter()
        .map(|(ssrc, _)| ssrc)
        .collect();

    // Barge: the caller hears a new stream, the agent's line and the
    // supervisor's microphone mixed.
    supervisor
        .choose(&format!("{card} .monitor-mode"), "barge")
        .await;
    supervisor
        .wait_visible(&format!("{card} .badge.monitoring[data-mode='barge']"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let heard = ssrcs_heard(&caller_rtp, Duration::from_secs(1)).await;
    let mixed: usize = heard
        .iter()
        .filter(|(ssrc, _)| !hold.contains(ssrc) && !before.contains(ssrc))
        .map(|(_, n)| n)
        .sum();
    assert!(
        mixed >= 25,
        "the barging supervisor at the caller: {heard:?} (before {before:?}, hold {hold:?})"
    );

    // Stop: the browser's audio closes; the caller no longer gets the mix.
    supervisor
        .click(&format!("{card} button.monitor-stop"))
        .await;
    supervisor
        .wait(
            "the card to go",
            "const el = document.querySelector(arguments[0]); return !el || el.offsetParent === null;",
            json!([card]),
        )
        .await;
    // (What the mix sent before the stop reached the call may still come.)
    let mut after = Vec::new();
    for _ in 0..10 {
        after = ssrcs_heard(&caller_rtp, Duration::from_millis(500)).await;
        if after
            .iter()
            .all(|(ssrc, _)| hold.contains(ssrc) || before.contains(ssrc))
        {
            break;
        }
    }
    assert!(
        after
            .iter()
            .all(|(ssrc, _)| hold.contains(ssrc) || before.contains(ssrc)),
        "no mix after Stop: {after:?}"
    );

    let hung_up = agent
        .request(json!({"type": "call", "session": session, "action": "hang_up"}))
        .await;
    assert_eq!(hung_up["type"], "ok", "{hung_up}");
    caller.hung_up(Duration::from_secs(30)).await;
    desk_phone.uas.await.unwrap().assert_success();
    supervisor.quit().await;
    server.server.shutdown().await.unwrap();
}
