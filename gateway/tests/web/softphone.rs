//! The browser as the agent's phone (issue 21), in a real headless Chromium
//! with fake media devices (`--use-fake-device-for-media-stream`: a beep as
//! the microphone), a `sipp` caller and the test's RTP socket as the
//! caller's audio: the agent takes calls in the browser, answers in the
//! page, the browser's `getStats` shows audio packets flowing both ways,
//! the caller's socket gets the browser's audio from switchboard, and
//! Hang up in the page ends the caller's leg with a BYE. A browser whose
//! microphone is refused says so and keeps the desk phone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gateway::auth::Role;
use serde_json::json;
use tokio::net::UdpSocket;

use crate::common::sipp::{caller_until_bye, phone_server};
use crate::webdriver::Driver;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_answered_and_hung_up_in_the_browser_softphone() {
    const NUMBER: &str = "+8613900000002"; // Zhao Lei's phone (demo data)
    let server = phone_server(|config| {
        config.routing.offer_timeout_ms = 60_000;
        config.routing.queue_update_ms = 500;
    })
    .await;
    let driver = Driver::start().await;
    let desktop = driver.browser_with("en-US", 1500, 1000, &FAKE_MEDIA).await;
    open_desktop(&desktop, &server, "liu.yang", Role::Agent).await;
    desktop.wait_visible("#softphone-pick").await;
    desktop.click("#softphone-toggle").await;
    desktop
        .wait_text(
            "#softphone-state[data-state='ready']",
            "Browser phone: ready",
        )
        .await;
    go_available(&desktop).await;

    let (caller, caller_rtp) = caller_until_bye(&server, NUMBER);
    caller_rtp.set_nonblocking(true).unwrap();
    let caller_rtp = Arc::new(UdpSocket::from_std(caller_rtp).unwrap());
    // Hold audio comes from the call's own port: the caller speaks there.
    let mut buffer = [0u8; 2048];
    let (_, media_port) =
        tokio::time::timeout(Duration::from_secs(15), caller_rtp.recv_from(&mut buffer))
            .await
            .expect("hold audio reaches the caller")
            .unwrap();
    let hold: BTreeSet<u32> = ssrcs_heard(&caller_rtp, Duration::from_millis(300))
        .await
        .into_iter()
        .map(|(ssrc, _)| ssrc)
        .collect();
    let speaking = caller_speaks(caller_rtp.clone(), media_port);

    desktop.wait_text("#offers li.offer", "Zhao Lei").await;
    let session = desktop
        .exec(
            "return document.querySelector('#offers li.offer').dataset.session",
            json!([]),
        )
        .await;
    let session = session.as_str().unwrap().to_string();
    let card = format!("section.session[data-session='{session}']");
    desktop.click("#offers li.offer button.accept").await;
    desktop
        .wait_visible(&format!("{card} .call-state[data-state='talking']"))
        .await;
    // getStats: audio packets in and out, and still rising a second later.
    let quality = format!("{card} .call-quality");
    let packets = "const q = document.querySelector(arguments[0]); \
        return q ? [Number(q.dataset.packetsReceived || 0), Number(q.dataset.packetsSent || 0)] : [0, 0];";
    let flowing = "const q = document.querySelector(arguments[0]); \
        return !!q && Number(q.dataset.packetsReceived || 0) > 25 && Number(q.dataset.packetsSent || 0) > 25;";
    desktop
        .wait(
            "the browser receives and sends audio",
            flowing,
            json!([quality]),
        )
        .await;
    let first = desktop.exec(packets, json!([quality])).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = desktop.exec(packets, json!([quality])).await;
    assert!(
        later[0].as_f64() > first[0].as_f64() && later[1].as_f64() > first[1].as_f64(),
        "packets keep flowing: {first} then {later}"
    );
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
    let heard = ssrcs_heard(&caller_rtp, Duration::from_secs(1)).await;
    let from_browser: usize = heard
        .iter()
        .filter(|(ssrc, _)| !hold.contains(ssrc))
        .map(|(_, n)| n)
        .sum();
    assert!(
        from_browser >= 25,
        "the browser's audio at the caller: {heard:?} (hold {hold:?})"
    );
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
    caller.await.unwrap().assert_success();
    speaking.abort();

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
async fn a_refused_microphone_keeps_the_desk_phone_with_a_notice() {
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
    desktop.quit().await;
    server.server.shutdown().await.unwrap();
}
