//! A supervisor's phone on a call's media (`CallMedia::supervise`) over
//! real UDP on loopback: each party speaks a tone of its own and tells
//! from what it receives whom it hears, in listen, whisper and barge
//! modes, on hold, and after the supervisor leaves.

mod rtp_tones;

use std::time::Duration;

use rtp_tones::{AGENT, CALLER, SUPERVISOR, Speaker};
use tokio::net::UdpSocket;
use voice::media::mix::Monitoring;
use voice::media::{AgentLeg, CallMedia, CallMediaConfig, Codec, MediaFormat, Mode, RtpSocket};

const SETTLE: Duration = Duration::from_millis(200);
const WINDOW: Duration = Duration::from_millis(600);
/// Packets a party hearing anyone gets in [`WINDOW`] at the least (30 are sent).
const MIN_PACKETS: u32 = 15;

async fn party() -> Speaker {
    Speaker::new(UdpSocket::bind("127.0.0.1:0").await.unwrap())
}

fn leg(remote: &Speaker) -> AgentLeg {
    AgentLeg {
        socket: RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap(),
        remote: Some(remote.socket.local_addr().unwrap()),
    }
}

/// The SSRC the party's own stream has (rtp_tones).
fn ssrc_of(party: u8) -> u32 {
    0x5000_0000 | u32::from(party)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_party_hears_whom_the_supervisors_mode_says() {
    let (mut caller, mut agent, mut supervisor) = (party().await, party().await, party().await);
    let media = CallMedia::start(
        RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap(),
        CallMediaConfig {
            format: MediaFormat {
                codec: Codec::Pcmu,
                payload_type: 0,
                telephone_event: Some(101),
            },
            caller: Some(caller.socket.local_addr().unwrap()),
            mode: Mode::Hold,
        },
        None,
    );
    let agent_leg = leg(&agent);
    let agent_port = agent_leg.socket.local_addr();
    media.bridge(agent_leg).unwrap();
    caller.speak(CALLER, media.local_addr());
    agent.speak(AGENT, agent_port);

    // Before the supervisor: the plain bridge, each hearing the other.
    let (heard_by_caller, heard_by_agent) =
        tokio::join!(caller.listen(SETTLE, WINDOW), agent.listen(SETTLE, WINDOW));
    heard_by_caller.assert_hears("caller", AGENT, MIN_PACKETS);
    heard_by_agent.assert_hears("agent", CALLER, MIN_PACKETS);

    let supervisor_leg = leg(&supervisor);
    let supervisor_port = supervisor_leg.socket.local_addr();
    media.supervise(supervisor_leg, Monitoring::Listen).unwrap();
    supervisor.speak(SUPERVISOR, supervisor_port);

    let modes = [
        (Monitoring::Listen, AGENT, CALLER),
        (Monitoring::Whisper, AGENT, CALLER | SUPERVISOR),
        (Monitoring::Barge, AGENT | SUPERVISOR, CALLER | SUPERVISOR),
    ];
    for (mode, caller_hears, agent_hears) in modes {
        media.monitor(mode).unwrap();
        let (heard_by_caller, heard_by_agent, heard_by_supervisor) = tokio::join!(
            caller.listen(SETTLE, WINDOW),
            agent.listen(SETTLE, WINDOW),
            supervisor.listen(SETTLE, WINDOW)
        );
        let what = |who: &str| format!("{mode:?}: the {who}");
        heard_by_caller.assert_hears(&what("caller"), caller_hears, MIN_PACKETS);
        heard_by_agent.assert_hears(&what("agent"), agent_hears, MIN_PACKETS);
        heard_by_supervisor.assert_hears(&what("supervisor"), CALLER | AGENT, MIN_PACKETS);
        // One party heard: its own packets, relayed; two: a stream of the mix.
        for (who, heard, hears) in [
            ("caller", &heard_by_caller, caller_hears),
            ("agent", &heard_by_agent, agent_hears),
        ] {
            let relayed = heard.ssrcs.iter().all(|ssrc| *ssrc == ssrc_of(hears));
            assert_eq!(
                relayed,
                hears.count_ones() == 1,
                "{mode:?}: the {who}'s stream {:x?}",
                heard.ssrcs
            );
        }
        assert_eq!(media.stats().monitoring, Some(mode));
    }

    // On hold the caller hears hold audio, the agent nothing, and only the
    // supervisor hears — both of them still.
    media.hold().unwrap();
    let (heard_by_agent, heard_by_supervisor) = tokio::join!(
        agent.listen(SETTLE, WINDOW),
        supervisor.listen(SETTLE, WINDOW)
    );
    heard_by_agent.assert_hears_nobody("the agent on hold");
    assert_eq!(heard_by_agent.n_packets(), 0);
    heard_by_supervisor.assert_hears("the supervisor on hold", CALLER | AGENT, MIN_PACKETS);
    media.resume().unwrap();

    // The supervisor leaves: the bridge as before, their port freed.
    media.release_supervisor().unwrap();
    let (heard_by_caller, heard_by_agent, heard_by_supervisor) = tokio::join!(
        caller.listen(SETTLE, WINDOW),
        agent.listen(SETTLE, WINDOW),
        supervisor.listen(SETTLE, WINDOW)
    );
    heard_by_caller.assert_hears("caller, after", AGENT, MIN_PACKETS);
    heard_by_agent.assert_hears("agent, after", CALLER, MIN_PACKETS);
    assert_eq!(
        heard_by_supervisor.n_packets(),
        0,
        "{heard_by_supervisor:?}"
    );
    assert!(
        RtpSocket::bind(supervisor_port).is_ok(),
        "the supervisor's port is free again"
    );

    let stats = media.end().await;
    assert_eq!(stats.monitoring, None);
    assert!(stats.from_supervisor.mixed > 0, "{stats:?}");
    assert!(
        stats.mixed_sent.iter().all(|sent| *sent > 0),
        "every party got a mix at some point: {stats:?}"
    );
    assert!(stats.from_caller.relayed > 0 && stats.from_agent.relayed > 0);
}

/// A caller whose SDP mapped PCMU to a dynamic payload type (97): the
/// phones were offered 97, and the mix goes out as 97 too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_keeps_a_dynamic_payload_type() {
    let socket = || async { UdpSocket::bind("127.0.0.1:0").await.unwrap() };
    let mut caller = Speaker::with_payload_type(socket().await, 97);
    let mut agent = Speaker::with_payload_type(socket().await, 97);
    let mut supervisor = Speaker::with_payload_type(socket().await, 97);
    let media = CallMedia::start(
        RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap(),
        CallMediaConfig {
            format: MediaFormat {
                codec: Codec::Pcmu,
                payload_type: 97,
                telephone_event: None,
            },
            caller: Some(caller.socket.local_addr().unwrap()),
            mode: Mode::Stopped,
        },
        None,
    );
    let agent_leg = leg(&agent);
    let agent_port = agent_leg.socket.local_addr();
    media.bridge(agent_leg).unwrap();
    let supervisor_leg = leg(&supervisor);
    let supervisor_port = supervisor_leg.socket.local_addr();
    media.supervise(supervisor_leg, Monitoring::Barge).unwrap();
    caller.speak(CALLER, media.local_addr());
    agent.speak(AGENT, agent_port);
    supervisor.speak(SUPERVISOR, supervisor_port);
    let (heard_by_caller, heard_by_agent, heard_by_supervisor) = tokio::join!(
        caller.listen(SETTLE, WINDOW),
        agent.listen(SETTLE, WINDOW),
        supervisor.listen(SETTLE, WINDOW)
    );
    heard_by_caller.assert_hears("the caller", AGENT | SUPERVISOR, MIN_PACKETS);
    heard_by_agent.assert_hears("the agent", CALLER | SUPERVISOR, MIN_PACKETS);
    heard_by_supervisor.assert_hears("the supervisor", CALLER | AGENT, MIN_PACKETS);
    for heard in [&heard_by_caller, &heard_by_agent, &heard_by_supervisor] {
        assert_eq!(heard.other_payload_types, 0, "{heard:?}");
    }
    media.end().await;
}
