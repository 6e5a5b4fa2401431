//! What the call tests share: a real runtime (`actors::Switchboard` on the
//! in-memory store, the default routing rules), a call flow and SIP
//! endpoint over it, real `sipp` callers and agents' phones, and the
//! test's own RTP sockets.

#![allow(dead_code)] // each test binary uses part of it

#[path = "../sip_common/mod.rs"]
pub mod sip_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actors::{CallEnd, CallEvent, EventKind, RuntimeConfig, Switchboard};
use engine::agent::{Agent, Capacity, Role};
use engine::channel::{Channel, ChannelRegistry};
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::presence::PresenceRequest;
use engine::routing::RuleSet;
use sip_common::{config, eventually, free_udp_port, sipp, sipp_uas, start_with_agents};
use store::{MemoryStore, Store};
use tokio::net::UdpSocket;
use voice::call::CallFlow;
use voice::sip::{SipEndpoint, TrunkConfig};

/// The VIP customer's phone number.
pub const VIP_NUMBER: &str = "+8613900000009";

/// The supervisor of phone_support, who has a phone too.
pub const SUPERVISOR_ID: &str = "sam";

/// The agents' SIP password.
pub const PHONE_PASSWORD: &str = "phone-secret";

pub fn agent(id: &str, groups: &[&str]) -> Agent {
    Agent {
        id: AgentId::new(id),
        display_name: id.to_uppercase(),
        role: Role::Expert,
        skills: Default::default(),
        groups: groups.iter().map(GroupId::new).collect(),
        languages: vec!["zh-CN".into()],
        capacity: Capacity::default(),
        sip: None,
    }
}

/// A runtime with groups phone_support, gold_service and default, one
/// (offline) agent in each, a VIP customer with a phone identity, and
/// the default rules (VIP → gold_service, phone → phone_support).
pub async fn board(store: Arc<dyn Store>, config: RuntimeConfig) -> Switchboard {
    let groups = vec![
        SkillGroup::new("phone_support", "Phone"),
        SkillGroup::new("gold_service", "Gold"),
        SkillGroup::new("default", "Default"),
    ];
    let agents = vec![
        agent("paul", &["phone_support"]),
        agent("pete", &["phone_support"]),
        agent("gina", &["gold_service"]),
        agent("ann", &["default"]),
        Agent {
            role: Role::Supervisor,
            ..agent(SUPERVISOR_ID, &["phone_support"])
        },
    ];
    let mut vip = Customer::new("vip", "Wang Fang");
    vip.tier = "vip".into();
    vip.identities = vec![Identity {
        channel: Channel::Phone,
        external_id: VIP_NUMBER.into(),
    }];
    Switchboard::seed(store.as_ref(), agents, groups, vec![vip])
        .await
        .unwrap();
    Switchboard::start(
        store,
        RuleSet::default_rules(),
        ChannelRegistry::default(),
        config,
    )
    .await
    .unwrap()
}

/// A runtime, a call flow over it and an endpoint taking calls from loopback.
pub struct Rig {
    pub store: Arc<dyn Store>,
    pub board: Switchboard,
    pub flow: CallFlow,
    pub endpoint: SipEndpoint,
}

impl Rig {
    pub async fn start() -> Rig {
        Rig::start_with(RuntimeConfig::default()).await
    }

    pub async fn start_with(runtime: RuntimeConfig) -> Rig {
        Rig::start_on(Arc::new(MemoryStore::new()), runtime).await
    }

    pub async fn start_on(store: Arc<dyn Store>, runtime: RuntimeConfig) -> Rig {
        Rig::start_configured(store, runtime, |_| {}).await
    }

    /// With the IVR menu on (one digit) and rules that route on it: 2 →
    /// gold_service, 3 → default, anything else → phone_support.
    pub async fn start_ivr() -> Rig {
        let rig = Rig::start_configured(
            Arc::new(MemoryStore::new()),
            RuntimeConfig::default(),
            |config| {
                config.ivr.enabled = true;
                config.ivr.first_digit_timeout_ms = 2_000;
            },
        )
        .await;
        let rules = RuleSet::parse(
            "[[rule]]\nname = \"two\"\nfilter = 'contact.digits == \"2\"'\n\
             [[rule.step]]\ngroup = \"gold_service\"\n\
             [[rule]]\nname = \"three\"\nfilter = 'contact.digits == \"3\"'\n\
             [[rule.step]]\ngroup = \"default\"\n\
             [[rule]]\nname = \"rest\"\nfilter = \"true\"\n[[rule.step]]\ngroup = \"phone_support\"\n",
            "ivr.toml",
        )
        .unwrap();
        rig.board.reload_rules(rules).await.unwrap();
        rig
    }

    pub async fn start_configured(
        store: Arc<dyn Store>,
        runtime: RuntimeConfig,
        configure: impl FnOnce(&mut voice::sip::VoiceConfig),
    ) -> Rig {
        let board = board(store.clone(), runtime).await;
        let mut config = config();
        configure(&mut config);
        config.trunks.push(TrunkConfig {
            name: "loopback".into(),
            allow: vec!["127.0.0.0/8".into()],
            username: String::new(),
            password: Default::default(),
        });
        let flow = CallFlow::new(board.clone(), &config).expect("call flow");
        let endpoint = start_with_agents(
            config,
            Arc::new(flow.clone()),
            &[
                ("paul", PHONE_PASSWORD),
                ("pete", PHONE_PASSWORD),
                (SUPERVISOR_ID, PHONE_PASSWORD),
            ],
        )
        .await;
        Rig {
            store,
            board,
            flow,
            endpoint,
        }
    }

    pub async fn stop(self) {
        self.endpoint.shutdown().await;
        self.board.shutdown().await;
    }

    /// A sipp caller from `number` playing `scenario` with its RTP on
    /// `rtp`, running in the background.
    pub fn caller(
        &self,
        scenario: &'static str,
        number: &str,
        rtp: &UdpSocket,
    ) -> tokio::task::JoinHandle<sip_common::SippRun> {
        let endpoint = self.endpoint.udp_addr();
        let rtp_port = rtp.local_addr().unwrap().port().to_string();
        let number = number.to_owned();
        tokio::spawn(async move {
            sipp(
                scenario,
                endpoint,
                &["-key", "caller", &number, "-key", "rtp_port", &rtp_port],
            )
            .await
        })
    }

    /// Every dialog is gone from the layer within 5 s (`what` says whose).
    pub async fn assert_no_dialogs(&self, what: &str) {
        assert!(
            eventually(Duration::from_secs(5), || self
                .endpoint
                .dialogs()
                .layer()
                .is_empty())
            .await,
            "{what}"
        );
    }

    /// The session of the one live call, once it is up.
    pub async fn live_session(&self) -> SessionId {
        assert!(
            eventually(Duration::from_secs(10), || self.flow.live_calls().len()
                == 1)
            .await,
            "the call is up"
        );
        self.flow.live_calls().sessions()[0]
    }

    /// Where the caller's RTP goes: the live call's own port.
    pub fn caller_port(&self, session: SessionId) -> std::net::SocketAddr {
        self.flow
            .live_calls()
            .get(session)
            .expect("the call is live")
            .media
            .local_addr()
    }
}

/// An agent's phone: a `sipp` UAS playing a scenario, and the test's RTP
/// socket its SDP points at.
pub struct Phone {
    pub uas: tokio::task::JoinHandle<sip_common::SippRun>,
    pub rtp: UdpSocket,
}

impl Rig {
    /// `agent`'s phone registers (a real REGISTER with digest) and plays
    /// `scenario` for one call; the agent goes available.
    pub async fn phone(&self, agent: &str, scenario: &str) -> Phone {
        let phone = self.registered_phone(agent, scenario).await;
        self.board
            .set_presence(&AgentId::new(agent), PresenceRequest::Available)
            .await
            .unwrap();
        phone
    }

    /// `agent`'s phone registers and plays `scenario` for one call; their
    /// presence stays as it is.
    pub async fn registered_phone(&self, agent: &str, scenario: &str) -> Phone {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rtp_port = rtp.local_addr().unwrap().port().to_string();
        let port = free_udp_port();
        let uas = sipp_uas(
            scenario,
            port,
            &["-s", agent, "-key", "agent_rtp_port", &rtp_port],
        )
        .await;
        sipp(
            "agent_register.xml",
            self.endpoint.udp_addr(),
            &[
                "-au",
                agent,
                "-ap",
                PHONE_PASSWORD,
                "-s",
                agent,
                "-key",
                "contact_port",
                &port.to_string(),
            ],
        )
        .await
        .assert_success();
        assert!(self.endpoint.registrar().is_registered(agent));
        Phone { uas, rtp }
    }

    /// The session's history once `done` holds for it (within 15 s).
    pub async fn history_until(
        &self,
        session: SessionId,
        done: impl Fn(&[EventKind]) -> bool,
    ) -> Vec<EventKind> {
        let mut kinds = Vec::new();
        for _ in 0..1500 {
            kinds = self
                .board
                .history(session, 0)
                .await
                .unwrap()
                .into_iter()
                .map(|event| event.kind)
                .collect();
            if done(&kinds) {
                return kinds;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("history of {session} never got there: {kinds:#?}");
    }
}

/// The call events of a history, in order, with `ended`'s talk time zeroed
/// (returned apart) and the session events that matter to a call.
pub fn call_story(kinds: &[EventKind]) -> (Vec<EventKind>, Option<u64>) {
    let mut talk = None;
    let story = kinds
        .iter()
        .filter_map(|kind| match kind {
            EventKind::Call(CallEvent::Ended { by, talk_ms }) => {
                talk = Some(*talk_ms);
                Some(EventKind::Call(CallEvent::Ended {
                    by: *by,
                    talk_ms: 0,
                }))
            }
            EventKind::Call(CallEvent::Started { .. }) => None,
            EventKind::Call(_)
            | EventKind::OfferLapsed { .. }
            | EventKind::Transferred { .. }
            | EventKind::WrapUp
            | EventKind::Abandoned => Some(kind.clone()),
            _ => None,
        })
        .collect();
    (story, talk)
}

pub fn is_answered(kinds: &[EventKind], agent: &str) -> bool {
    kinds.contains(&EventKind::Call(CallEvent::Answered {
        agent: AgentId::new(agent),
    }))
}

pub fn ringing(agent: &str) -> EventKind {
    EventKind::Call(CallEvent::Ringing {
        agent: AgentId::new(agent),
    })
}

pub fn answered(agent: &str) -> EventKind {
    EventKind::Call(CallEvent::Answered {
        agent: AgentId::new(agent),
    })
}

pub fn lapsed(agent: &str) -> EventKind {
    EventKind::OfferLapsed {
        agent: AgentId::new(agent),
    }
}

pub fn ended(by: CallEnd) -> EventKind {
    EventKind::Call(CallEvent::Ended { by, talk_ms: 0 })
}

/// Sends `n` PCMU packets of SSRC `ssrc` from `socket` to `to`, 20 ms apart.
pub async fn send_rtp(socket: &UdpSocket, to: SocketAddr, ssrc: u32, n: u16) {
    for sequence in 0..n {
        let mut packet = vec![0x80, 0x00];
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&(u32::from(sequence) * 160).to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend_from_slice(&[0xff; 160]);
        socket.send_to(&packet, to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts the packets of SSRC `ssrc` arriving on `socket` until `n` came
/// or 3 s passed; returns the count and where the last one came from.
pub async fn count_rtp(socket: &UdpSocket, ssrc: u32, n: usize) -> (usize, Option<SocketAddr>) {
    let mut buffer = [0u8; 2048];
    let mut count = 0;
    let mut source = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while count < n {
        let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await
        else {
            break;
        };
        let (len, from) = received.unwrap();
        if len >= 12 && header(&buffer[..len]).ssrc == ssrc {
            count += 1;
            source = Some(from);
        }
    }
    (count, source)
}

/// RTP header fields of one packet.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub version: u8,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload_len: usize,
}

pub fn header(packet: &[u8]) -> Header {
    assert!(packet.len() >= 12, "an rtp packet: {packet:?}");
    Header {
        version: packet[0] >> 6,
        payload_type: packet[1] & 0x7f,
        sequence: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        payload_len: packet.len() - 12,
    }
}

/// Receives `n` packets on `socket` (within 5 s) and returns their headers
/// and the address they came from.
pub async fn receive_rtp(socket: &UdpSocket, n: usize) -> (Vec<Header>, SocketAddr) {
    let mut buffer = [0u8; 2048];
    let mut headers = Vec::with_capacity(n);
    let mut source = None;
    while headers.len() < n {
        let (len, from) =
            tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
                .await
                .expect("hold audio keeps coming")
                .unwrap();
        source = Some(from);
        headers.push(header(&buffer[..len]));
    }
    (headers, source.unwrap())
}

/// Hold audio as a caller that chose PCMU hears it: one SSRC, sequence +1
/// and timestamp +160 per packet, 160 bytes of payload.
pub fn assert_hold_stream(headers: &[Header]) {
    for pair in headers.windows(2) {
        let (previous, next) = (pair[0], pair[1]);
        assert_eq!(next.version, 2);
        assert_eq!(next.payload_type, 0, "PCMU, the first codec offered");
        assert_eq!(next.ssrc, previous.ssrc, "one SSRC");
        assert_eq!(next.sequence, previous.sequence.wrapping_add(1), "{pair:?}");
        assert_eq!(
            next.timestamp,
            previous.timestamp.wrapping_add(160),
            "{pair:?}"
        );
        assert_eq!(next.payload_len, 160);
    }
}

/// sipp calls from `number` with its SDP pointing at `rtp`.
pub async fn call(endpoint: &SipEndpoint, number: &str, rtp: &UdpSocket) -> sip_common::SippRun {
    let rtp_port = rtp.local_addr().unwrap().port().to_string();
    sipp(
        "call_hold.xml",
        endpoint.udp_addr(),
        &["-key", "caller", number, "-key", "rtp_port", &rtp_port],
    )
    .await
}
