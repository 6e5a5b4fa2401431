//! The browser as the agent's phone through the whole call flow: a real
//! runtime, a `sipp` caller over loopback, and a WebRTC peer (str0m)
//! playing the agent's browser, which negotiates through
//! `CallFlow::browser_offer` / `browser_candidate` as the desktop does over
//! its socket. The browser's keypad tones reach the caller.

mod call_rig;
mod webrtc_peer;

use std::time::Duration;

use actors::{CallControl, EventKind};
use call_rig::*;
use engine::ids::{AgentId, SessionId};
use engine::presence::PresenceRequest;
use tokio::net::UdpSocket;
use voice::call::BrowserCallError;
use voice::media::g711;
use voice::media::rtp::{HEADER_LEN, RtpHeader, RtpPacket, TelephoneEvent};
use webrtc_peer::{TestBrowser, browser};

/// `agent` takes calls in the browser (desktop connection 1) and is available.
async fn browser_agent(rig: &Rig, agent: &str) {
    rig.flow
        .softphones()
        .choose_browser(&AgentId::new(agent), 1);
    rig.board
        .set_presence(&AgentId::new(agent), PresenceRequest::Available)
        .await
        .unwrap();
}

fn offered_to(kinds: &[EventKind], agent: &str) -> bool {
    kinds
        .iter()
        .any(|kind| matches!(kind, EventKind::Offered { agent: to, .. } if to.as_str() == agent))
}

/// The caller's audio: PCMU at level 1000, 20 ms apart, `n` packets.
async fn speak(socket: &UdpSocket, to: std::net::SocketAddr, n: u16) {
    let mut payload = [0u8; 160];
    g711::ulaw_encode_all(&[1000; 160], &mut payload);
    for sequence in 0..n {
        let mut packet = vec![0u8; HEADER_LEN];
        RtpHeader {
            marker: sequence == 0,
            payload_type: 0,
            sequence,
            timestamp: u32::from(sequence) * 160,
            ssrc: 0xCA11E2,
        }
        .write(&mut packet);
        packet.extend_from_slice(&payload);
        socket.send_to(&packet, to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answers_a_call_in_the_browser_and_both_sides_hear_each_other() {
    let rig = Rig::start().await;
    browser_agent(&rig, "paul").await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_until_bye.xml", "+8613800000041", &caller_rtp);
    let session = rig.live_session().await;
    rig.history_until(session, |kinds| offered_to(kinds, "paul"))
        .await;

    // Only the agent offered the call may take it in the browser.
    let (_rtc, _mid, offer, _pending) = browser(true, true);
    let refused = rig
        .flow
        .browser_offer(&AgentId::new("pete"), session, offer.to_sdp_string())
        .await
        .unwrap_err();
    assert_eq!(refused, BrowserCallError::NotYours);
    let unknown = rig
        .flow
        .browser_offer(&AgentId::new("paul"), SessionId(1), offer.to_sdp_string())
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, BrowserCallError::NoSuchCall(_)),
        "{unknown:?}"
    );

    // Paul's desktop answers: offer, answer, candidate; the leg connects.
    let (rtc, mid, offer, pending) = browser(true, true);
    let answer = rig
        .flow
        .browser_offer(&AgentId::new("paul"), session, offer.to_sdp_string())
        .await
        .unwrap();
    assert!(
        answer.contains("PCMU/8000") && !answer.contains("opus"),
        "{answer}"
    );
    let (mut paul, candidate) = TestBrowser::connect(rtc, mid, pending, &answer, 0x55).await;
    rig.flow
        .browser_candidate(&AgentId::new("paul"), session, candidate)
        .await
        .unwrap();
    rig.history_until(session, |kinds| is_answered(kinds, "paul"))
        .await;

    // The browser hears the caller; the caller hears the browser.
    let caller_port = rig.caller_port(session);
    let mut expected = [0u8; 160];
    g711::ulaw_encode_all(&[1000; 160], &mut expected);
    let (_, heard) = tokio::join!(speak(&caller_rtp, caller_port, 25), paul.next_audio());
    assert_eq!(
        heard,
        expected.to_vec(),
        "the caller's audio in the browser"
    );
    // (Hold audio from before the answer may still be queued on the socket.)
    let mut buffer = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (len, source) = tokio::time::timeout_at(deadline, caller_rtp.recv_from(&mut buffer))
            .await
            .expect("the browser's audio reaches the caller")
            .unwrap();
        assert_eq!(source, caller_port, "symmetric rtp");
        if RtpPacket::parse(&buffer[..len]).unwrap().payload == [0x55; 160] {
            break;
        }
    }

    // Hold, then resume: the browser hears the caller again.
    for control in [CallControl::Hold, CallControl::Resume] {
        rig.board
            .call_control(&AgentId::new("paul"), session, control)
            .await
            .unwrap();
    }
    rig.history_until(session, |kinds| {
        kinds.contains(&EventKind::Call(actors::CallEvent::Resumed))
    })
    .await;
    while paul.seen.try_recv().is_ok() {}
    let (_, heard) = tokio::join!(speak(&caller_rtp, caller_port, 25), paul.next_audio());
    assert_eq!(
        heard,
        expected.to_vec(),
        "the caller's audio after the resume"
    );

    // A key on the browser's keypad reaches the caller as telephone-event
    // in the caller's payload type (sipp offered 96), one event to its end.
    paul.press(5);
    let mut reports = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !reports.iter().any(|report: &TelephoneEvent| report.end) {
        let (len, _) = tokio::time::timeout_at(deadline, caller_rtp.recv_from(&mut buffer))
            .await
            .expect("the keypad tone reaches the caller")
            .unwrap();
        let packet = RtpPacket::parse(&buffer[..len]).unwrap();
        if packet.header.payload_type == 96 {
            reports.push(TelephoneEvent::parse(packet.payload).unwrap());
        }
    }
    assert!(
        reports.iter().all(|report| report.event == 5),
        "{reports:?}"
    );
    assert_eq!(reports[0].duration, 160, "from its start: {reports:?}");

    // The agent hangs up in the desktop: the caller gets BYE, the leg closes.
    rig.board
        .call_control(&AgentId::new("paul"), session, CallControl::HangUp)
        .await
        .unwrap();
    caller.await.unwrap().assert_success();
    rig.history_until(session, |kinds| kinds.contains(&EventKind::WrapUp))
        .await;
    assert!(
        sip_common::eventually(Duration::from_secs(5), || rig.flow.live_calls().is_empty()).await,
        "the call is over"
    );
    rig.assert_no_dialogs("the caller's leg is gone").await;
    paul.task.abort();
    rig.stop().await;
}

/// An agent who chose the browser is not rung on their desk phone; a
/// browser that never connects is an offer that lapses: the next agent's
/// browser takes the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_phone_stays_quiet_and_a_browser_that_never_connects_moves_the_call_on() {
    let rig = Rig::start_with(actors::RuntimeConfig {
        offer_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    // Paul's desk phone is registered, but he chose the browser.
    let paul_phone = rig.phone("paul", "agent_answer.xml").await;
    rig.flow
        .softphones()
        .choose_browser(&AgentId::new("paul"), 7);
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_until_bye.xml", "+8613800000042", &caller_rtp);
    let session = rig.live_session().await;
    rig.history_until(session, |kinds| offered_to(kinds, "paul"))
        .await;
    // His browser answers the offer but never connects.
    let (_rtc, _mid, offer, _pending) = browser(true, false);
    rig.flow
        .browser_offer(&AgentId::new("paul"), session, offer.to_sdp_string())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rig.endpoint.dialogs().layer().len(),
        1,
        "only the caller's leg: the desk phone is not rung"
    );

    // Pete comes available in the browser; paul's offer lapses to him.
    browser_agent(&rig, "pete").await;
    let kinds = rig
        .history_until(session, |kinds| offered_to(kinds, "pete"))
        .await;
    assert!(
        !kinds
            .iter()
            .any(|kind| matches!(kind, EventKind::Call(actors::CallEvent::Ringing { .. }))),
        "no desk phone rang: {kinds:#?}"
    );
    let stale = rig
        .flow
        .browser_candidate(
            &AgentId::new("paul"),
            session,
            "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        stale,
        BrowserCallError::NoLeg,
        "paul's leg closed with his offer"
    );

    let (rtc, mid, offer, pending) = browser(true, false);
    let answer = rig
        .flow
        .browser_offer(&AgentId::new("pete"), session, offer.to_sdp_string())
        .await
        .unwrap();
    let (pete, candidate) = TestBrowser::connect(rtc, mid, pending, &answer, 0x22).await;
    rig.flow
        .browser_candidate(&AgentId::new("pete"), session, candidate)
        .await
        .unwrap();
    rig.history_until(session, |kinds| is_answered(kinds, "pete"))
        .await;

    rig.board
        .call_control(&AgentId::new("pete"), session, CallControl::HangUp)
        .await
        .unwrap();
    caller.await.unwrap().assert_success();
    rig.assert_no_dialogs("the caller's leg is gone").await;
    paul_phone.uas.abort();
    pete.task.abort();
    rig.stop().await;
}

/// A browser that answers the offer but never connects: after the leg's
/// connect timeout (10 s) the offer counts as declined and the call goes
/// to the next agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_cannot_connect_passes_the_call_on() {
    let rig = Rig::start_with(actors::RuntimeConfig {
        offer_timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .await;
    browser_agent(&rig, "paul").await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_until_bye.xml", "+8613800000043", &caller_rtp);
    let session = rig.live_session().await;
    rig.history_until(session, |kinds| offered_to(kinds, "paul"))
        .await;
    let (_rtc, _mid, offer, _pending) = browser(true, false);
    rig.flow
        .browser_offer(&AgentId::new("paul"), session, offer.to_sdp_string())
        .await
        .unwrap();
    browser_agent(&rig, "pete").await;
    let started = std::time::Instant::now();
    let kinds = rig
        .history_until(session, |kinds| offered_to(kinds, "pete"))
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "passed on by the connect timeout, not before: {:?}",
        started.elapsed()
    );
    assert!(
        kinds.iter().any(
            |kind| matches!(kind, EventKind::OfferLapsed { agent } if agent.as_str() == "paul")
        ),
        "paul's offer ended: {kinds:#?}"
    );
    rig.board
        .reject(&AgentId::new("pete"), session)
        .await
        .unwrap();
    caller.abort();
    rig.stop().await;
}
