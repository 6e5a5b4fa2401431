//! The call flow against a real runtime (`actors::Switchboard` on the
//! in-memory store, the default routing rules), a real `sipp` caller and
//! real `sipp` agents' phones (REGISTER, then a UAS) over loopback UDP:
//! the call becomes a queued phone session, the caller hears hold audio
//! (counted and checked by the test's own RTP sockets), the offered
//! agent's phone rings, and what the phones and the desktop do moves the
//! session.

mod call_rig;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actors::{CallControl, CallEnd, CallEvent, EventKind, RuntimeConfig};
use call_rig::sip_common::{eventually, sipp};
use engine::channel::Channel;
use engine::ids::{AgentId, GroupId};
use engine::presence::PresenceRequest;
use engine::session::SessionState;
use store::MemoryStore;
use store::testing::TestStore;
use tokio::net::UdpSocket;

use call_rig::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_queued_with_hold_audio_and_abandoned_on_bye() {
    let rig = Rig::start().await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let n_free_ports = rig.flow.n_free_ports();
    let number = "+8613800000001";
    let caller = rig.caller("call_hold.xml", number, &rtp);

    let session = rig.live_session().await;
    let record = rig.board.session(session).await.unwrap();
    assert_eq!(record.channel, Channel::Phone);
    assert_eq!(record.group, Some(GroupId::new("phone_support")));
    assert_eq!(record.state, SessionState::Queued);
    let history = rig.board.history(session, 0).await.unwrap();
    assert_eq!(
        history[0].kind,
        EventKind::Call(CallEvent::Started {
            from: number.into(),
            digits: String::new(),
        })
    );
    assert_eq!(
        rig.flow.n_free_ports(),
        n_free_ports - 1,
        "the call holds a port"
    );

    let (headers, source) = receive_rtp(&rtp, 25).await;
    assert_hold_stream(&headers);
    let live = rig.flow.live_calls().get(session).unwrap();
    assert_eq!(
        source,
        live.media.local_addr(),
        "symmetric rtp from the answered port"
    );
    drop(live);

    caller.await.unwrap().assert_success();
    assert!(
        eventually(Duration::from_secs(5), || rig.flow.live_calls().is_empty()).await,
        "the call is gone from the live calls"
    );
    let mut record = rig.board.session(session).await.unwrap();
    for _ in 0..200 {
        if record.state == SessionState::Abandoned {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        record = rig.board.session(session).await.unwrap();
    }
    assert_eq!(record.state, SessionState::Abandoned);
    let history = rig.board.history(session, 0).await.unwrap();
    let ended = history
        .iter()
        .rev()
        .find_map(|event| match &event.kind {
            EventKind::Call(ended @ CallEvent::Ended { .. }) => Some(ended.clone()),
            _ => None,
        })
        .expect("the call's end is in the history");
    assert_eq!(
        ended,
        CallEvent::Ended {
            by: CallEnd::Caller,
            talk_ms: 0
        }
    );
    assert!(
        eventually(Duration::from_secs(5), || rig.flow.n_free_ports()
            == n_free_ports)
        .await,
        "the port is free again"
    );
    rig.assert_no_dialogs("the dialog is removed").await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vip_caller_lands_in_gold_service() {
    let rig = Rig::start().await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let run = {
        let endpoint = &rig.endpoint;
        let rtp = &rtp;
        let caller = call(endpoint, VIP_NUMBER, rtp);
        let check = async {
            let session = rig.live_session().await;
            let record = rig.board.session(session).await.unwrap();
            assert_eq!(record.customer_id.as_str(), "vip", "recognised by number");
            assert_eq!(record.group, Some(GroupId::new("gold_service")));
            let (headers, _) = receive_rtp(rtp, 5).await;
            assert_hold_stream(&headers);
        };
        let (run, ()) = tokio::join!(caller, check);
        run
    };
    run.assert_success();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_sdp_or_no_common_codec_gets_488_and_no_session() {
    let rig = Rig::start().await;
    let number = "+8613800000007";
    for scenario in ["call_garbage_sdp.xml", "call_no_common_codec.xml"] {
        sipp(
            scenario,
            rig.endpoint.udp_addr(),
            &["-key", "caller", number],
        )
        .await
        .assert_success();
    }
    assert!(rig.flow.live_calls().is_empty());
    assert!(
        rig.store.open_sessions().await.unwrap().is_empty(),
        "no session"
    );
    assert_eq!(
        rig.store
            .find_customer_by_identity(&Channel::Phone, number)
            .await
            .unwrap(),
        None,
        "no customer either"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_runtime_refuses_gets_503_and_no_session() {
    let rig = Rig::start_with(RuntimeConfig {
        max_new_sessions_per_customer_per_hour: 1,
        ..RuntimeConfig::default()
    })
    .await;
    let number = "+8613800000008";
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    call(&rig.endpoint, number, &rtp).await.assert_success();
    let customer = rig
        .store
        .find_customer_by_identity(&Channel::Phone, number)
        .await
        .unwrap()
        .expect("the first call made the caller a customer");
    let n_sessions = || async {
        rig.store
            .sessions_of_customer(&customer, 10)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(n_sessions().await, 1);

    // The second call within the hour is over the customer's limit.
    sipp(
        "call_refused.xml",
        rig.endpoint.udp_addr(),
        &["-key", "caller", number],
    )
    .await
    .assert_success();
    assert_eq!(n_sessions().await, 1, "no session for the refused call");
    assert!(rig.flow.live_calls().is_empty());
    rig.assert_no_dialogs("the refused call's dialog is removed")
        .await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_before_the_answer_abandons_the_session() {
    let store = Arc::new(TestStore::new());
    let rig = Rig::start_on(store.clone(), RuntimeConfig::default()).await;
    let n_free_ports = rig.flow.n_free_ports();
    let number = "+8613800000006";
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The runtime is slow: the call's session is not there before the CANCEL.
    store.close_gate();
    let caller = rig.caller("call_cancel.xml", number, &rtp);
    // The INVITE first: a write already waiting (an agent's activity log at
    // start-up) must not pass for the call's.
    assert!(
        eventually(Duration::from_secs(10), || !rig
            .endpoint
            .dialogs()
            .layer()
            .is_empty())
        .await,
        "the INVITE arrives"
    );
    tokio::time::timeout(Duration::from_secs(10), store.until_a_write_waits())
        .await
        .expect("the call reaches the runtime");
    assert!(
        eventually(Duration::from_secs(10), || rig
            .endpoint
            .dialogs()
            .layer()
            .is_empty())
        .await,
        "the CANCEL ends the caller's dialog"
    );
    store.open_gate();
    caller.await.unwrap().assert_success();

    // The call's session comes once the runtime's writes go through.
    let mut sessions = Vec::new();
    let mut abandoned = false;
    for _ in 0..500 {
        if let Some(customer) = rig
            .store
            .find_customer_by_identity(&Channel::Phone, number)
            .await
            .unwrap()
        {
            sessions = rig.store.sessions_of_customer(&customer, 10).await.unwrap();
            abandoned = sessions.len() == 1 && sessions[0].state == SessionState::Abandoned;
            if abandoned {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(abandoned, "{sessions:?}");
    let history = rig.board.history(sessions[0].id, 0).await.unwrap();
    assert!(
        history.iter().any(|event| event.kind
            == EventKind::Call(CallEvent::Ended {
                by: CallEnd::Caller,
                talk_ms: 0
            })),
        "{history:?}"
    );
    assert!(rig.flow.live_calls().is_empty());
    assert!(
        eventually(Duration::from_secs(5), || rig.flow.n_free_ports()
            == n_free_ports)
        .await,
        "the port is free again"
    );
    let mut buffer = [0u8; 2048];
    tokio::time::timeout(Duration::from_millis(300), rtp.recv_from(&mut buffer))
        .await
        .expect_err("no hold audio for a caller who left");
    rig.stop().await;
}

/// An answered call: the agent's phone rings with the caller's codec, its
/// answer bridges the legs (RTP counted at both ends, both ways, through
/// the relay), and the caller's BYE ends the call: the agent's phone gets
/// a BYE and the agent goes to wrap-up with the talk time recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_call_relays_rtp_both_ways_until_the_caller_hangs_up() {
    let rig = Rig::start().await;
    let paul = rig.phone("paul", "agent_answer.xml").await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_talk.xml", "+8613800000020", &caller_rtp);
    let session = rig.live_session().await;
    rig.history_until(session, |kinds| is_answered(kinds, "paul"))
        .await;

    // Caller → agent: every packet arrives, from the port offered to the phone.
    let caller_port = rig
        .flow
        .live_calls()
        .get(session)
        .unwrap()
        .media
        .local_addr();
    let (sent, received) = tokio::join!(
        send_rtp(&caller_rtp, caller_port, 0x1111_1111, 25),
        count_rtp(&paul.rtp, 0x1111_1111, 25)
    );
    let () = sent;
    let (n_to_agent, agent_port) = received;
    assert_eq!(n_to_agent, 25, "caller → agent");
    let agent_port = agent_port.unwrap();
    assert_ne!(
        agent_port, caller_port,
        "the agent's leg has a port of its own"
    );
    // Agent → caller.
    let (sent, received) = tokio::join!(
        send_rtp(&paul.rtp, agent_port, 0x2222_2222, 25),
        count_rtp(&caller_rtp, 0x2222_2222, 25)
    );
    let () = sent;
    assert_eq!(received.0, 25, "agent → caller");
    assert_eq!(received.1, Some(caller_port), "symmetric rtp");

    caller.await.unwrap().assert_success();
    paul.uas.await.unwrap().assert_success();
    let kinds = rig
        .history_until(session, |kinds| kinds.contains(&EventKind::WrapUp))
        .await;
    let (story, talk_ms) = call_story(&kinds);
    assert_eq!(
        story,
        vec![
            ringing("paul"),
            answered("paul"),
            ended(CallEnd::Caller),
            EventKind::WrapUp
        ]
    );
    assert!(talk_ms.unwrap() >= 1_000, "talk_ms {talk_ms:?}");
    assert_eq!(
        rig.board.session(session).await.unwrap().state,
        SessionState::WrapUp
    );
    rig.assert_no_dialogs("both dialogs are removed").await;
    rig.stop().await;
}

/// Nobody picks up: the offer lapses, the ringing phone gets a CANCEL and
/// the next agent's phone rings; that agent answers, holds and resumes
/// with re-INVITEs (recorded as the desktop's buttons would be) and hangs
/// up: the caller gets a BYE, the call ended by the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_rings_the_next_agent_who_holds_and_hangs_up() {
    let rig = Rig::start_with(RuntimeConfig {
        offer_timeout: Duration::from_secs(2),
        ..RuntimeConfig::default()
    })
    .await;
    let paul = rig.phone("paul", "agent_no_answer.xml").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let pete = rig.phone("pete", "agent_hangs_up.xml").await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_until_bye.xml", "+8613800000021", &caller_rtp);
    let session = rig.live_session().await;
    paul.uas.await.unwrap().assert_success();
    pete.uas.await.unwrap().assert_success();
    caller.await.unwrap().assert_success();
    let kinds = rig
        .history_until(session, |kinds| kinds.contains(&EventKind::WrapUp))
        .await;
    let (story, talk_ms) = call_story(&kinds);
    assert_eq!(
        story,
        vec![
            ringing("paul"),
            lapsed("paul"),
            ringing("pete"),
            answered("pete"),
            EventKind::Call(CallEvent::Held),
            EventKind::Call(CallEvent::Resumed),
            ended(CallEnd::Agent),
            EventKind::WrapUp
        ]
    );
    assert!(talk_ms.unwrap() >= 1_500, "talk_ms {talk_ms:?}");
    rig.stop().await;
}

/// The first phone declines (486): the next agent's phone rings at once;
/// that agent answers and hangs up from the desktop, which ends both legs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_call_rings_the_next_agent_and_the_desktop_hangs_up() {
    let rig = Rig::start().await;
    let paul = rig.phone("paul", "agent_decline.xml").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let pete = rig.phone("pete", "agent_answer.xml").await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_until_bye.xml", "+8613800000022", &caller_rtp);
    let session = rig.live_session().await;
    rig.history_until(session, |kinds| is_answered(kinds, "pete"))
        .await;
    rig.board
        .call_control(&AgentId::new("pete"), session, CallControl::HangUp)
        .await
        .unwrap();
    paul.uas.await.unwrap().assert_success();
    pete.uas.await.unwrap().assert_success();
    caller.await.unwrap().assert_success();
    let kinds = rig
        .history_until(session, |kinds| kinds.contains(&EventKind::WrapUp))
        .await;
    assert_eq!(
        call_story(&kinds).0,
        vec![
            ringing("paul"),
            lapsed("paul"),
            ringing("pete"),
            answered("pete"),
            ended(CallEnd::Agent),
            EventKind::WrapUp
        ]
    );
    rig.stop().await;
}

/// A connected call transferred to another agent from the desktop: the
/// first phone gets a BYE, the caller hears hold audio, the second phone
/// rings and answers, and the caller's BYE ends the call there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_moves_the_call_to_the_next_agents_phone() {
    let rig = Rig::start().await;
    let paul = rig.phone("paul", "agent_answer.xml").await;
    let pete = rig.phone("pete", "agent_answer.xml").await;
    // pete is busy elsewhere until the transfer names him.
    rig.board
        .set_presence(
            &AgentId::new("pete"),
            PresenceRequest::Away {
                reason: "lunch".into(),
            },
        )
        .await
        .unwrap();
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_talk.xml", "+8613800000023", &caller_rtp);
    let session = rig.live_session().await;
    rig.history_until(session, |kinds| is_answered(kinds, "paul"))
        .await;
    rig.board
        .set_presence(&AgentId::new("pete"), PresenceRequest::Available)
        .await
        .unwrap();
    rig.board
        .transfer(
            &AgentId::new("paul"),
            session,
            actors::TransferTarget::Agent {
                agent: AgentId::new("pete"),
            },
        )
        .await
        .unwrap();
    paul.uas.await.unwrap().assert_success();
    rig.history_until(session, |kinds| is_answered(kinds, "pete"))
        .await;
    caller.await.unwrap().assert_success();
    pete.uas.await.unwrap().assert_success();
    let kinds = rig
        .history_until(session, |kinds| kinds.contains(&EventKind::WrapUp))
        .await;
    let (story, _) = call_story(&kinds);
    assert_eq!(
        story,
        vec![
            ringing("paul"),
            answered("paul"),
            EventKind::Transferred {
                from: AgentId::new("paul")
            },
            ringing("pete"),
            answered("pete"),
            ended(CallEnd::Caller),
            EventKind::WrapUp
        ]
    );
    rig.stop().await;
}

/// The IVR menu: the caller is answered with the prompt (the bundled
/// prompt clip, checked frame by frame), keys 2 with a SIP INFO, and the
/// call is queued with the digits, which the rules route on; the caller
/// then hears hold audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_menu_takes_a_key_by_sip_info_and_the_rules_route_on_it() {
    use voice::media::hold::{Clip, clip_frames};
    use voice::media::sdp::Codec;
    let rig = Rig::start_ivr().await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_ivr_info.xml", "+8613800000030", &caller_rtp);
    // The prompt, from its first frame, before any session exists. The
    // call is set up by sipp while the file's other calls run: patience
    // for a loaded machine (a CI run once waited more than 5 s).
    let mut buffer = [0u8; 2048];
    let (len, _) = tokio::time::timeout(Duration::from_secs(15), caller_rtp.recv_from(&mut buffer))
        .await
        .expect("the prompt plays")
        .unwrap();
    assert_eq!(
        &buffer[12..len],
        &clip_frames(Clip::Prompt, Codec::Pcmu)[0][..]
    );
    let session = rig.live_session().await;
    let record = rig.board.session(session).await.unwrap();
    assert_eq!(
        record.group,
        Some(GroupId::new("gold_service")),
        "routed on the key"
    );
    let history = rig.board.history(session, 0).await.unwrap();
    assert_eq!(
        history[0].kind,
        EventKind::Call(CallEvent::Started {
            from: "+8613800000030".into(),
            digits: "2".into(),
        })
    );
    caller.await.unwrap().assert_success();
    rig.stop().await;
}

/// The menu takes RFC 4733 telephone-events from the caller's RTP; a caller
/// who keys nothing is queued without digits when the prompt times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_menu_takes_rfc_4733_digits_and_times_out_to_no_digits() {
    let rig = Rig::start_ivr().await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_talk.xml", "+8613800000031", &caller_rtp);
    let mut buffer = [0u8; 2048];
    let (_, media) =
        tokio::time::timeout(Duration::from_secs(5), caller_rtp.recv_from(&mut buffer))
            .await
            .expect("the prompt plays")
            .unwrap();
    // Key 3: telephone-event packets (payload type 96, as offered), one
    // timestamp, the last three with the end bit.
    for (n, end) in [(0u16, false), (1, false), (2, true), (3, true), (4, true)] {
        let mut packet = vec![0x80, 96];
        packet.extend_from_slice(&(100 + n).to_be_bytes());
        packet.extend_from_slice(&8_000u32.to_be_bytes());
        packet.extend_from_slice(&0x3333_3333u32.to_be_bytes());
        packet.extend_from_slice(&[3, if end { 0x80 | 10 } else { 10 }]);
        packet.extend_from_slice(&(160 * (n.min(2) + 1)).to_be_bytes());
        caller_rtp.send_to(&packet, media).await.unwrap();
    }
    let session = rig.live_session().await;
    assert_eq!(
        rig.board.session(session).await.unwrap().group,
        Some(GroupId::new("default"))
    );
    caller.await.unwrap().assert_success();

    // Nothing keyed: queued without digits after the first-digit timeout.
    let silent = sipp(
        "call_talk.xml",
        rig.endpoint.udp_addr(),
        &["-key", "caller", "+8613800000032", "-key", "rtp_port", "9"],
    );
    let (run, ()) = tokio::join!(silent, async {
        assert!(
            eventually(Duration::from_secs(10), || rig.flow.live_calls().len() == 1).await,
            "queued after the timeout"
        );
    });
    run.assert_success();
    let customer = rig
        .store
        .find_customer_by_identity(&Channel::Phone, "+8613800000032")
        .await
        .unwrap()
        .expect("the caller became a customer");
    let sessions = rig.store.sessions_of_customer(&customer, 10).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].group, Some(GroupId::new("phone_support")));
    rig.stop().await;
}

/// A caller whose RTP stops without a BYE (a dead phone or network) is
/// taken as gone after `voice.rtp_timeout_secs`: the call ends as dropped
/// and the caller's leg gets a BYE; while RTP flows, the call stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_rtp_stops_is_hung_up_as_dropped() {
    let rig = Rig::start_configured(
        Arc::new(MemoryStore::new()),
        RuntimeConfig::default(),
        |config| config.rtp_timeout_secs = 1,
    )
    .await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_until_bye.xml", "+8613800000040", &caller_rtp);
    let session = rig.live_session().await;
    let media = rig
        .flow
        .live_calls()
        .get(session)
        .unwrap()
        .media
        .local_addr();
    // 2.5 s of a packet every 100 ms: more than two timeout periods.
    send_rtp_every(&caller_rtp, media, 25, Duration::from_millis(100)).await;
    assert_eq!(
        rig.flow.live_calls().sessions(),
        vec![session],
        "a caller who sends rtp stays"
    );
    // Silence: hung up within two periods.
    caller.await.unwrap().assert_success();
    let kinds = rig
        .history_until(session, |kinds| kinds.contains(&EventKind::Abandoned))
        .await;
    assert_eq!(
        call_story(&kinds).0,
        vec![ended(CallEnd::Dropped), EventKind::Abandoned]
    );
    rig.stop().await;
}

/// Sends `n` PCMU packets from `socket` to `to`, `every` apart.
async fn send_rtp_every(socket: &UdpSocket, to: SocketAddr, n: u16, every: Duration) {
    for sequence in 0..n {
        let mut packet = vec![0x80, 0x00];
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&(u32::from(sequence) * 800).to_be_bytes());
        packet.extend_from_slice(&0x4444_4444u32.to_be_bytes());
        packet.extend_from_slice(&[0xff; 160]);
        socket.send_to(&packet, to).await.unwrap();
        tokio::time::sleep(every).await;
    }
}

/// Early media: the queued caller gets 183 with the SDP and hears hold
/// audio before any answer; the 200 comes when the agent's phone answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_media_answers_the_caller_only_when_the_agent_does() {
    let rig = Rig::start_configured(
        Arc::new(MemoryStore::new()),
        RuntimeConfig::default(),
        |config| config.early_media = true,
    )
    .await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_early.xml", "+8613800000050", &caller_rtp);
    let session = rig.live_session().await;
    // Hold audio on early media, and nobody has answered.
    let (headers, _) = receive_rtp(&caller_rtp, 10).await;
    assert_hold_stream(&headers);
    let history = rig.board.history(session, 0).await.unwrap();
    assert!(
        !history
            .iter()
            .any(|event| matches!(event.kind, EventKind::Call(CallEvent::Answered { .. }))),
        "{history:?}"
    );
    // The agent's phone registers and answers: the caller's 200 follows.
    let paul = rig.phone("paul", "agent_answer.xml").await;
    caller.await.unwrap().assert_success();
    paul.uas.await.unwrap().assert_success();
    let kinds = rig
        .history_until(session, |kinds| kinds.contains(&EventKind::WrapUp))
        .await;
    assert_eq!(
        call_story(&kinds).0,
        vec![
            ringing("paul"),
            answered("paul"),
            ended(CallEnd::Caller),
            EventKind::WrapUp
        ]
    );
    rig.stop().await;
}
