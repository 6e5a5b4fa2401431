//! A supervisor following a phone call through their own SIP phone
//! (docs/supervisor.md, "Monitoring calls"), with real `sipp` phones for
//! the caller, the agent and the supervisor over loopback UDP: each party's
//! RTP socket speaks a tone of its own, and what each receives shows whom
//! it hears in listen, whisper and barge modes.

mod call_rig;
mod rtp_tones;

use std::time::Duration;

use actors::{CallControl, EventKind};
use call_rig::sip_common::eventually;
use call_rig::*;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::supervision::{Actor, MonitorMode};
use rtp_tones::{AGENT, CALLER, SUPERVISOR, Speaker};
use tokio::net::UdpSocket;
use voice::media::mix::Monitoring;

const SETTLE: Duration = Duration::from_millis(300);
const WINDOW: Duration = Duration::from_millis(800);
/// Packets a party hearing anyone gets in [`WINDOW`] at the least (40 are sent).
const MIN_PACKETS: u32 = 20;

/// The `monitored` events of a history: who, and how (`None`: stopped).
fn monitoring_story(kinds: &[EventKind]) -> Vec<(String, Option<MonitorMode>)> {
    kinds
        .iter()
        .filter_map(|kind| match kind {
            EventKind::Monitored {
                by: Actor::Supervisor(by),
                mode,
            } => Some((by.to_string(), *mode)),
            _ => None,
        })
        .collect()
}

impl Rig {
    async fn monitor(&self, session: SessionId, mode: Option<MonitorMode>) {
        self.board
            .monitor_session(
                &AgentId::new(SUPERVISOR_ID),
                session,
                Some(GroupId::new("phone_support")),
                mode,
            )
            .await
            .unwrap();
    }

    /// Waits until the call's media follows `monitoring`.
    async fn media_monitoring(&self, session: SessionId, monitoring: Option<Monitoring>) {
        let call = self.flow.live_calls().get(session).unwrap();
        assert!(
            eventually(Duration::from_secs(10), || call.media.stats().monitoring
                == monitoring)
            .await,
            "the media follows {monitoring:?}: {:?}",
            call.media.stats()
        );
    }
}

/// A caller on the line until switchboard hangs up, answered by paul;
/// returns the caller's sipp, its speaker and the session.
async fn answered_call(
    rig: &Rig,
    number: &str,
) -> (
    tokio::task::JoinHandle<sip_common::SippRun>,
    Speaker,
    SessionId,
) {
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_until_bye.xml", number, &caller_rtp);
    let session = rig.live_session().await;
    rig.history_until(session, |kinds| is_answered(kinds, "paul"))
        .await;
    (caller, Speaker::new(caller_rtp), session)
}

/// The one address `speaker` heard from in a window: the port of its leg.
async fn port_heard_from(speaker: &Speaker, parties: u8) -> std::net::SocketAddr {
    let heard = speaker.listen(Duration::ZERO, WINDOW).await;
    heard.assert_hears("the first packets", parties, 1);
    assert_eq!(heard.sources.len(), 1, "{heard:?}");
    *heard.sources.first().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_listens_whispers_and_barges_in_on_a_call_from_their_phone() {
    let rig = Rig::start().await;
    let paul = rig.phone("paul", "agent_answer.xml").await;
    let sam = rig
        .registered_phone(SUPERVISOR_ID, "agent_answer.xml")
        .await;
    let (caller, mut caller_speaker, session) = answered_call(&rig, "+8613800000031").await;
    let caller_port = rig
        .flow
        .live_calls()
        .get(session)
        .unwrap()
        .media
        .local_addr();
    let mut agent = Speaker::new(paul.rtp);
    caller_speaker.speak(CALLER, caller_port);
    let agent_port = port_heard_from(&agent, CALLER).await;
    agent.speak(AGENT, agent_port);

    // Listening rings the supervisor's phone; once it answers, they hear both.
    rig.monitor(session, Some(MonitorMode::Listen)).await;
    rig.media_monitoring(session, Some(Monitoring::Listen))
        .await;
    let mut supervisor = Speaker::new(sam.rtp);
    let supervisor_port = port_heard_from(&supervisor, CALLER | AGENT).await;
    assert!(
        ![caller_port, agent_port].contains(&supervisor_port),
        "the supervisor's leg has a port of its own"
    );
    supervisor.speak(SUPERVISOR, supervisor_port);

    let modes = [
        (MonitorMode::Listen, Monitoring::Listen, AGENT, CALLER),
        (
            MonitorMode::Whisper,
            Monitoring::Whisper,
            AGENT,
            CALLER | SUPERVISOR,
        ),
        (
            MonitorMode::Barge,
            Monitoring::Barge,
            AGENT | SUPERVISOR,
            CALLER | SUPERVISOR,
        ),
    ];
    for (mode, monitoring, caller_hears, agent_hears) in modes {
        rig.monitor(session, Some(mode)).await;
        rig.media_monitoring(session, Some(monitoring)).await;
        let (heard_by_caller, heard_by_agent, heard_by_supervisor) = tokio::join!(
            caller_speaker.listen(SETTLE, WINDOW),
            agent.listen(SETTLE, WINDOW),
            supervisor.listen(SETTLE, WINDOW)
        );
        let what = |who: &str| format!("{mode:?}: the {who}");
        heard_by_caller.assert_hears(&what("caller"), caller_hears, MIN_PACKETS);
        heard_by_agent.assert_hears(&what("agent"), agent_hears, MIN_PACKETS);
        heard_by_supervisor.assert_hears(&what("supervisor"), CALLER | AGENT, MIN_PACKETS);
    }

    // Stop: the supervisor's phone gets its BYE; caller and agent talk on.
    rig.monitor(session, None).await;
    sam.uas.await.unwrap().assert_success();
    rig.media_monitoring(session, None).await;
    let (heard_by_caller, heard_by_agent, heard_by_supervisor) = tokio::join!(
        caller_speaker.listen(SETTLE, WINDOW),
        agent.listen(SETTLE, WINDOW),
        supervisor.listen(SETTLE, WINDOW)
    );
    heard_by_caller.assert_hears("the caller, after", AGENT, MIN_PACKETS);
    heard_by_agent.assert_hears("the agent, after", CALLER, MIN_PACKETS);
    assert_eq!(
        heard_by_supervisor.n_packets(),
        0,
        "{heard_by_supervisor:?}"
    );

    // The agent hangs up from the desktop: both phones get their BYE.
    rig.board
        .call_control(&AgentId::new("paul"), session, CallControl::HangUp)
        .await
        .unwrap();
    caller.await.unwrap().assert_success();
    paul.uas.await.unwrap().assert_success();
    let kinds = rig
        .history_until(session, |kinds| kinds.contains(&EventKind::WrapUp))
        .await;
    let sam_id = SUPERVISOR_ID.to_owned();
    assert_eq!(
        monitoring_story(&kinds),
        vec![
            (sam_id.clone(), Some(MonitorMode::Listen)),
            (sam_id.clone(), Some(MonitorMode::Whisper)),
            (sam_id.clone(), Some(MonitorMode::Barge)),
            (sam_id, None),
        ]
    );
    rig.assert_no_dialogs("every leg is hung up").await;
    rig.stop().await;
}

/// The supervisor's phone holds and resumes (re-INVITEs answered, not the
/// call's hold) and hangs up: monitoring stops as if they had pressed Stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_hanging_up_their_phone_stops_monitoring() {
    let rig = Rig::start().await;
    let paul = rig.phone("paul", "agent_answer.xml").await;
    let sam = rig
        .registered_phone(SUPERVISOR_ID, "agent_hangs_up.xml")
        .await;
    let (caller, _caller_speaker, session) = answered_call(&rig, "+8613800000032").await;
    rig.monitor(session, Some(MonitorMode::Whisper)).await;
    rig.media_monitoring(session, Some(Monitoring::Whisper))
        .await;
    sam.uas.await.unwrap().assert_success();
    let kinds = rig
        .history_until(session, |kinds| monitoring_story(kinds).len() == 2)
        .await;
    assert_eq!(
        monitoring_story(&kinds),
        vec![
            (SUPERVISOR_ID.to_owned(), Some(MonitorMode::Whisper)),
            (SUPERVISOR_ID.to_owned(), None),
        ]
    );
    assert!(
        !kinds
            .iter()
            .any(|kind| matches!(kind, EventKind::Call(actors::CallEvent::Held))),
        "the supervisor's hold is not the call's: {kinds:#?}"
    );
    rig.media_monitoring(session, None).await;

    rig.board
        .call_control(&AgentId::new("paul"), session, CallControl::HangUp)
        .await
        .unwrap();
    caller.await.unwrap().assert_success();
    paul.uas.await.unwrap().assert_success();
    rig.assert_no_dialogs("every leg is hung up").await;
    rig.stop().await;
}

/// The caller hangs up while the supervisor listens: every phone gets its
/// BYE, the supervisor's too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_end_hangs_up_the_supervisors_phone() {
    let rig = Rig::start().await;
    let paul = rig.phone("paul", "agent_answer.xml").await;
    let sam = rig
        .registered_phone(SUPERVISOR_ID, "agent_answer.xml")
        .await;
    // call_talk: the caller hangs up 5 s after the answer.
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_talk.xml", "+8613800000033", &caller_rtp);
    let session = rig.live_session().await;
    rig.history_until(session, |kinds| is_answered(kinds, "paul"))
        .await;
    rig.monitor(session, Some(MonitorMode::Listen)).await;
    rig.media_monitoring(session, Some(Monitoring::Listen))
        .await;
    caller.await.unwrap().assert_success();
    paul.uas.await.unwrap().assert_success();
    sam.uas.await.unwrap().assert_success();
    rig.assert_no_dialogs("every leg is hung up").await;
    rig.stop().await;
}

impl Rig {
    /// Dialogs in the endpoint's layer (each leg of a call is one).
    fn n_dialogs(&self) -> usize {
        self.endpoint.dialogs().layer().len()
    }
}

/// Stop while the supervisor's phone still rings: it gets a CANCEL, and
/// the call's media never had a supervisor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_the_supervisors_phone_rings_cancels_it() {
    let rig = Rig::start().await;
    let paul = rig.phone("paul", "agent_answer.xml").await;
    let sam = rig
        .registered_phone(SUPERVISOR_ID, "agent_no_answer.xml")
        .await;
    let (caller, _caller_speaker, session) = answered_call(&rig, "+8613800000034").await;
    rig.monitor(session, Some(MonitorMode::Listen)).await;
    assert!(
        eventually(Duration::from_secs(10), || rig.n_dialogs() == 3).await,
        "the supervisor's phone rings: {} dialogs",
        rig.n_dialogs()
    );
    rig.monitor(session, None).await;
    sam.uas.await.unwrap().assert_success();
    assert!(
        eventually(Duration::from_secs(5), || rig.n_dialogs() == 2).await,
        "caller and agent only"
    );
    let call = rig.flow.live_calls().get(session).unwrap();
    assert_eq!(call.media.stats().monitoring, None);
    assert_eq!(call.media.stats().mixed_sent, [0, 0, 0]);

    rig.board
        .call_control(&AgentId::new("paul"), session, CallControl::HangUp)
        .await
        .unwrap();
    caller.await.unwrap().assert_success();
    paul.uas.await.unwrap().assert_success();
    rig.assert_no_dialogs("every leg is hung up").await;
    rig.stop().await;
}

/// The supervisor's phone declines (486): they follow in the desktop, and
/// changing the mode does not ring it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declining_supervisors_phone_is_not_rung_again_on_a_mode_change() {
    let rig = Rig::start().await;
    let paul = rig.phone("paul", "agent_answer.xml").await;
    let sam = rig
        .registered_phone(SUPERVISOR_ID, "agent_decline.xml")
        .await;
    let (caller, _caller_speaker, session) = answered_call(&rig, "+8613800000035").await;
    rig.monitor(session, Some(MonitorMode::Listen)).await;
    sam.uas.await.unwrap().assert_success();
    assert!(
        eventually(Duration::from_secs(5), || rig.n_dialogs() == 2).await,
        "the declined leg is gone"
    );
    rig.monitor(session, Some(MonitorMode::Whisper)).await;
    // The mode change reached the call (its event comes after the
    // session's reply), and nothing rang.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.n_dialogs(), 2, "not rung again");
    let call = rig.flow.live_calls().get(session).unwrap();
    assert_eq!(call.media.stats().monitoring, None);
    let kinds = rig
        .history_until(session, |kinds| monitoring_story(kinds).len() == 2)
        .await;
    assert_eq!(
        monitoring_story(&kinds),
        vec![
            (SUPERVISOR_ID.to_owned(), Some(MonitorMode::Listen)),
            (SUPERVISOR_ID.to_owned(), Some(MonitorMode::Whisper)),
        ],
        "the desktop follows on"
    );

    rig.board
        .call_control(&AgentId::new("paul"), session, CallControl::HangUp)
        .await
        .unwrap();
    caller.await.unwrap().assert_success();
    paul.uas.await.unwrap().assert_success();
    rig.assert_no_dialogs("every leg is hung up").await;
    rig.stop().await;
}
