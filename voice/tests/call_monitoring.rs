//! A supervisor following a phone call through their own SIP phone
//! (docs/supervisor.md, "Monitoring calls"), with real `sipp` phones for
//! the caller, the agent and the supervisor over loopback UDP: each party's
//! RTP socket speaks a tone of its own, and what each receives shows whom
//! it hears in listen, whisper and barge modes. A supervisor whose browser
//! is their phone (a str0m peer) hears the call there instead.

mod call_rig;
mod rtp_tones;
mod webrtc_peer;

use std::time::Duration;

use actors::{CallControl, EventKind};
use call_rig::sip_common::eventually;
use call_rig::*;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::supervision::{Actor, MonitorMode};
use rtp_tones::{AGENT, CALLER, Heard, SUPERVISOR, Speaker};
use tokio::net::UdpSocket;
use voice::media::mix::Monitoring;

const SETTLE: Duration = Duration::from_millis(300);
const WINDOW: Duration = Duration::from_millis(800);
/// Packets a party hearing anyone gets in [`WINDOW`] at the least (40 are sent).
const MIN_PACKETS: u32 = 20;

/// Each mode, and whom the caller and the agent hear in it (the
/// supervisor hears both in every mode).
const MODES: [(MonitorMode, Monitoring, u8, u8); 3] = [
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

/// A call answered on paul's phone, with sam's phone registered to play
/// its scenario when monitoring rings it; each party's RTP socket is a
/// [`Speaker`].
struct MonitoredCall {
    rig: Rig,
    session: SessionId,
    /// The caller's sipp, on the line until switchboard hangs up.
    caller: tokio::task::JoinHandle<sip_common::SippRun>,
    paul_phone: tokio::task::JoinHandle<sip_common::SippRun>,
    sam_phone: tokio::task::JoinHandle<sip_common::SippRun>,
    caller_speaker: Speaker,
    agent: Speaker,
    supervisor: Speaker,
}

impl MonitoredCall {
    async fn start(supervisor_scenario: &str, number: &str) -> MonitoredCall {
        let rig = Rig::start().await;
        let paul = rig.phone("paul", "agent_answer.xml").await;
        let sam = rig
            .registered_phone(SUPERVISOR_ID, supervisor_scenario)
            .await;
        let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let caller = rig.caller("call_until_bye.xml", number, &caller_rtp);
        let session = rig.live_session().await;
        rig.history_until(session, |kinds| is_answered(kinds, "paul"))
            .await;
        MonitoredCall {
            rig,
            session,
            caller,
            paul_phone: paul.uas,
            sam_phone: sam.uas,
            caller_speaker: Speaker::new(caller_rtp),
            agent: Speaker::new(paul.rtp),
            supervisor: Speaker::new(sam.rtp),
        }
    }

    async fn monitor(&self, mode: Option<MonitorMode>) {
        self.rig.monitor(self.session, mode).await;
    }

    async fn media_monitoring(&self, monitoring: Option<Monitoring>) {
        self.rig.media_monitoring(self.session, monitoring).await;
    }

    /// What the caller, the agent and the supervisor hear now.
    async fn listen(&self) -> (Heard, Heard, Heard) {
        tokio::join!(
            self.caller_speaker.listen(SETTLE, WINDOW),
            self.agent.listen(SETTLE, WINDOW),
            self.supervisor.listen(SETTLE, WINDOW)
        )
    }

    /// The session's history once `done` holds for it.
    async fn history_until(&self, done: impl Fn(&[EventKind]) -> bool) -> Vec<EventKind> {
        self.rig.history_until(self.session, done).await
    }

    /// paul hangs up in the desktop: the caller's and paul's phones get
    /// their BYE, and no leg is left.
    async fn hang_up(mut self) {
        self.rig
            .board
            .call_control(&AgentId::new("paul"), self.session, CallControl::HangUp)
            .await
            .unwrap();
        self.caller.await.unwrap().assert_success();
        self.paul_phone.await.unwrap().assert_success();
        // Hung up phones send no more (their ports go back to the pool).
        self.caller_speaker.stop();
        self.agent.stop();
        self.rig.assert_no_dialogs("every leg is hung up").await;
        self.rig.stop().await;
    }
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
    let mut call = MonitoredCall::start("agent_answer.xml", "+8613800000031").await;
    let caller_port = call.rig.caller_port(call.session);
    call.caller_speaker.speak(CALLER, caller_port);
    let agent_port = port_heard_from(&call.agent, CALLER).await;
    call.agent.speak(AGENT, agent_port);

    // Listening rings the supervisor's phone; once it answers, they hear both.
    call.monitor(Some(MonitorMode::Listen)).await;
    call.media_monitoring(Some(Monitoring::Listen)).await;
    let supervisor_port = port_heard_from(&call.supervisor, CALLER | AGENT).await;
    assert!(
        ![caller_port, agent_port].contains(&supervisor_port),
        "the supervisor's leg has a port of its own"
    );
    call.supervisor.speak(SUPERVISOR, supervisor_port);

    for (mode, monitoring, caller_hears, agent_hears) in MODES {
        call.monitor(Some(mode)).await;
        call.media_monitoring(Some(monitoring)).await;
        let (heard_by_caller, heard_by_agent, heard_by_supervisor) = call.listen().await;
        let what = |who: &str| format!("{mode:?}: the {who}");
        heard_by_caller.assert_hears(&what("caller"), caller_hears, MIN_PACKETS);
        heard_by_agent.assert_hears(&what("agent"), agent_hears, MIN_PACKETS);
        heard_by_supervisor.assert_hears(&what("supervisor"), CALLER | AGENT, MIN_PACKETS);
    }

    // Stop: the supervisor's phone gets its BYE; caller and agent talk on.
    call.monitor(None).await;
    (&mut call.sam_phone).await.unwrap().assert_success();
    // A phone hung up sends no more: its leg's port is free again, and a
    // call of a test running beside this one may take it and latch onto
    // a sender still at it (same IP), sending it that call's audio.
    call.supervisor.stop();
    call.media_monitoring(None).await;
    let (heard_by_caller, heard_by_agent, heard_by_supervisor) = call.listen().await;
    heard_by_caller.assert_hears("the caller, after", AGENT, MIN_PACKETS);
    heard_by_agent.assert_hears("the agent, after", CALLER, MIN_PACKETS);
    assert_eq!(
        heard_by_supervisor.n_packets(),
        0,
        "{heard_by_supervisor:?}"
    );

    let kinds = call
        .history_until(|kinds| monitoring_story(kinds).len() == 4)
        .await;
    let sam = SUPERVISOR_ID.to_owned();
    assert_eq!(
        monitoring_story(&kinds),
        vec![
            (sam.clone(), Some(MonitorMode::Listen)),
            (sam.clone(), Some(MonitorMode::Whisper)),
            (sam.clone(), Some(MonitorMode::Barge)),
            (sam, None),
        ]
    );
    call.hang_up().await;
}

/// The supervisor's phone holds and resumes (re-INVITEs answered, not the
/// call's hold) and hangs up: monitoring stops as if they had pressed Stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_hanging_up_their_phone_stops_monitoring() {
    let mut call = MonitoredCall::start("agent_hangs_up.xml", "+8613800000032").await;
    call.monitor(Some(MonitorMode::Whisper)).await;
    call.media_monitoring(Some(Monitoring::Whisper)).await;
    (&mut call.sam_phone).await.unwrap().assert_success();
    let kinds = call
        .history_until(|kinds| monitoring_story(kinds).len() == 2)
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
    call.media_monitoring(None).await;
    call.hang_up().await;
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
    let mut call = MonitoredCall::start("agent_no_answer.xml", "+8613800000034").await;
    call.monitor(Some(MonitorMode::Listen)).await;
    let rig = &call.rig;
    assert!(
        eventually(Duration::from_secs(10), || rig.n_dialogs() == 3).await,
        "the supervisor's phone rings: {} dialogs",
        rig.n_dialogs()
    );
    call.monitor(None).await;
    (&mut call.sam_phone).await.unwrap().assert_success();
    let rig = &call.rig;
    assert!(
        eventually(Duration::from_secs(5), || rig.n_dialogs() == 2).await,
        "caller and agent only"
    );
    let media = &rig.flow.live_calls().get(call.session).unwrap().media;
    assert_eq!(media.stats().monitoring, None);
    assert_eq!(media.stats().mixed_sent, [0, 0, 0]);
    call.hang_up().await;
}

/// The supervisor's phone declines (486): they follow in the desktop, and
/// changing the mode does not ring it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declining_supervisors_phone_is_not_rung_again_on_a_mode_change() {
    let mut call = MonitoredCall::start("agent_decline.xml", "+8613800000035").await;
    call.monitor(Some(MonitorMode::Listen)).await;
    (&mut call.sam_phone).await.unwrap().assert_success();
    let rig = &call.rig;
    assert!(
        eventually(Duration::from_secs(5), || rig.n_dialogs() == 2).await,
        "the declined leg is gone"
    );
    call.monitor(Some(MonitorMode::Whisper)).await;
    // The mode change reached the call (its event comes after the
    // session's reply), and nothing rang.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(call.rig.n_dialogs(), 2, "not rung again");
    let media = &call.rig.flow.live_calls().get(call.session).unwrap().media;
    assert_eq!(media.stats().monitoring, None);
    let kinds = call
        .history_until(|kinds| monitoring_story(kinds).len() == 2)
        .await;
    assert_eq!(
        monitoring_story(&kinds),
        vec![
            (SUPERVISOR_ID.to_owned(), Some(MonitorMode::Listen)),
            (SUPERVISOR_ID.to_owned(), Some(MonitorMode::Whisper)),
        ],
        "the desktop follows on"
    );
    call.hang_up().await;
}

/// `supervisor`'s browser (a str0m peer speaking at the supervisor's
/// level) offers to hear `session` and connects.
async fn connect_monitoring_browser(
    rig: &Rig,
    supervisor: &AgentId,
    session: SessionId,
) -> webrtc_peer::TestBrowser {
    let (rtc, mid, offer, pending) = webrtc_peer::browser(true, false);
    let answer = rig
        .flow
        .monitor_offer(supervisor, session, offer.to_sdp_string())
        .await
        .unwrap();
    let mut tone = [0u8; 1];
    voice::media::g711::ulaw_encode_all(&[i16::from(SUPERVISOR) * 1000], &mut tone);
    let (browser, candidate) =
        webrtc_peer::TestBrowser::connect(rtc, mid, pending, &answer, tone[0]).await;
    rig.flow
        .browser_candidate(supervisor, session, candidate)
        .await
        .unwrap();
    browser
}

/// The parties in a frame the browser received (its level / 1000 as bits).
fn parties_in(payload: &[u8]) -> u8 {
    let level = i32::from(voice::media::g711::ulaw_decode(payload[0]));
    ((level + 500) / 1000).clamp(0, 7) as u8
}

/// A supervisor who takes calls in the browser hears a call they follow
/// there (a str0m peer plays the browser, speaking at the supervisor's
/// level): their SIP phone is not rung, who hears whom follows the mode as
/// with a phone, an offer from someone not following is refused, Stop
/// closes the browser's leg, and the browser closing the connection stops
/// the monitoring as Stop would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_who_takes_calls_in_the_browser_hears_the_call_there() {
    let rig = Rig::start().await;
    let paul = rig.phone("paul", "agent_answer.xml").await;
    // Sam's SIP phone is registered, but his browser is his phone.
    let sam_phone = rig
        .registered_phone(SUPERVISOR_ID, "agent_answer.xml")
        .await;
    let sam = AgentId::new(SUPERVISOR_ID);
    rig.flow.softphones().choose_browser(&sam, 9);
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let caller = rig.caller("call_until_bye.xml", "+8613800000036", &caller_rtp);
    let session = rig.live_session().await;
    rig.history_until(session, |kinds| is_answered(kinds, "paul"))
        .await;
    let mut caller_speaker = Speaker::new(caller_rtp);
    let mut agent = Speaker::new(paul.rtp);
    let caller_port = rig.caller_port(session);
    caller_speaker.speak(CALLER, caller_port);
    let agent_port = port_heard_from(&agent, CALLER).await;
    agent.speak(AGENT, agent_port);

    // Not following: refused.
    let (_rtc, _mid, offer, _pending) = webrtc_peer::browser(true, false);
    let refused = rig
        .flow
        .monitor_offer(&sam, session, offer.to_sdp_string())
        .await
        .unwrap_err();
    assert_eq!(refused, voice::call::BrowserCallError::NotFollowing);

    // Listen: the desktop offers at once (before the call has heard of the
    // follow: the offer waits for it), the leg connects, nothing rings.
    rig.monitor(session, Some(MonitorMode::Listen)).await;
    let mut sam_browser = connect_monitoring_browser(&rig, &sam, session).await;
    rig.media_monitoring(session, Some(Monitoring::Listen))
        .await;
    assert_eq!(
        rig.n_dialogs(),
        2,
        "caller and agent only: sam's phone is quiet"
    );
    let mut heard = [0u32; 8];
    for _ in 0..25 {
        heard[usize::from(parties_in(&sam_browser.next_audio().await))] += 1;
    }
    let everyone = (0u8..8)
        .filter(|p| heard[usize::from(*p)] > 0)
        .fold(0, |all, p| all | p);
    assert_eq!(
        everyone & SUPERVISOR,
        0,
        "sam never hears himself: {heard:?}"
    );
    assert!(
        heard[usize::from(CALLER | AGENT)] >= 15,
        "sam hears both: {heard:?}"
    );

    // Whisper, then barge: as with a phone.
    for (mode, monitoring, caller_hears, agent_hears) in MODES.into_iter().skip(1) {
        rig.monitor(session, Some(mode)).await;
        rig.media_monitoring(session, Some(monitoring)).await;
        let (by_caller, by_agent) = tokio::join!(
            caller_speaker.listen(SETTLE, WINDOW),
            agent.listen(SETTLE, WINDOW)
        );
        by_caller.assert_hears(&format!("{mode:?}: the caller"), caller_hears, MIN_PACKETS);
        by_agent.assert_hears(&format!("{mode:?}: the agent"), agent_hears, MIN_PACKETS);
    }

    // Stop in the desktop closes the browser's leg (its connection ends).
    rig.monitor(session, None).await;
    rig.media_monitoring(session, None).await;
    tokio::time::timeout(Duration::from_secs(5), &mut sam_browser.task)
        .await
        .expect("the browser is told the leg is closed")
        .unwrap();

    // Following anew connects anew; the browser closing the connection
    // stops the monitoring, recorded as sam's.
    rig.monitor(session, Some(MonitorMode::Listen)).await;
    let sam_browser = connect_monitoring_browser(&rig, &sam, session).await;
    rig.media_monitoring(session, Some(Monitoring::Listen))
        .await;
    sam_browser.close();
    rig.media_monitoring(session, None).await;
    let kinds = rig
        .history_until(session, |kinds| monitoring_story(kinds).len() == 6)
        .await;
    assert_eq!(
        monitoring_story(&kinds)[3..],
        [
            (SUPERVISOR_ID.to_string(), None),
            (SUPERVISOR_ID.to_string(), Some(MonitorMode::Listen)),
            (SUPERVISOR_ID.to_string(), None)
        ],
        "Stop, the follow anew, and the stop the browser's leaving recorded"
    );
    let by_agent = agent.listen(SETTLE, WINDOW).await;
    by_agent.assert_hears("the agent, after", CALLER, MIN_PACKETS);

    rig.board
        .call_control(&AgentId::new("paul"), session, CallControl::HangUp)
        .await
        .unwrap();
    caller.await.unwrap().assert_success();
    paul.uas.await.unwrap().assert_success();
    caller_speaker.stop();
    agent.stop();
    assert!(!sam_phone.uas.is_finished(), "sam's phone never got a call");
    sam_phone.uas.abort();
    rig.stop().await;
}
