//! The call flow against a real runtime (`actors::Switchboard` on the
//! in-memory store, the default routing rules) and a real `sipp` caller
//! over loopback UDP: the call becomes a queued phone session, the caller
//! hears hold audio (counted and checked by the test's own RTP socket),
//! and the caller's BYE abandons the session.

mod sip_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actors::{CallEnd, CallEvent, EventKind, RuntimeConfig, Switchboard};
use engine::agent::{Agent, Capacity, Role};
use engine::channel::{Channel, ChannelRegistry};
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::routing::RuleSet;
use engine::session::SessionState;
use sip_common::{config, eventually, sipp, start};
use store::testing::TestStore;
use store::{MemoryStore, Store};
use tokio::net::UdpSocket;
use voice::call::CallFlow;
use voice::sip::{SipEndpoint, TrunkConfig};

/// The VIP customer's phone number.
const VIP_NUMBER: &str = "+8613900000009";

fn agent(id: &str, groups: &[&str]) -> Agent {
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
async fn board(store: Arc<dyn Store>, config: RuntimeConfig) -> Switchboard {
    let groups = vec![
        SkillGroup::new("phone_support", "Phone"),
        SkillGroup::new("gold_service", "Gold"),
        SkillGroup::new("default", "Default"),
    ];
    let agents = vec![
        agent("paul", &["phone_support"]),
        agent("gina", &["gold_service"]),
        agent("ann", &["default"]),
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
struct Rig {
    store: Arc<dyn Store>,
    board: Switchboard,
    flow: CallFlow,
    endpoint: SipEndpoint,
}

impl Rig {
    async fn start() -> Rig {
        Rig::start_with(RuntimeConfig::default()).await
    }

    async fn start_with(runtime: RuntimeConfig) -> Rig {
        Rig::start_on(Arc::new(MemoryStore::new()), runtime).await
    }

    async fn start_on(store: Arc<dyn Store>, runtime: RuntimeConfig) -> Rig {
        let board = board(store.clone(), runtime).await;
        let mut config = config();
        config.trunks.push(TrunkConfig {
            name: "loopback".into(),
            allow: vec!["127.0.0.0/8".into()],
            username: String::new(),
            password: Default::default(),
        });
        let flow = CallFlow::new(board.clone(), &config).expect("call flow");
        let endpoint = start(config, Arc::new(flow.clone())).await;
        Rig {
            store,
            board,
            flow,
            endpoint,
        }
    }

    async fn stop(self) {
        self.endpoint.shutdown().await;
        self.board.shutdown().await;
    }

    /// The session of the one live call, once it is up.
    async fn live_session(&self) -> SessionId {
        assert!(
            eventually(Duration::from_secs(10), || self.flow.live_calls().len()
                == 1)
            .await,
            "the call is up"
        );
        self.flow.live_calls().sessions()[0]
    }
}

/// RTP header fields of one packet.
#[derive(Debug, Clone, Copy)]
struct Header {
    version: u8,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload_len: usize,
}

fn header(packet: &[u8]) -> Header {
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
async fn receive_rtp(socket: &UdpSocket, n: usize) -> (Vec<Header>, SocketAddr) {
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
fn assert_hold_stream(headers: &[Header]) {
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
async fn call(endpoint: &SipEndpoint, number: &str, rtp: &UdpSocket) -> sip_common::SippRun {
    let rtp_port = rtp.local_addr().unwrap().port().to_string();
    sipp(
        "call_hold.xml",
        endpoint.udp_addr(),
        &["-key", "caller", number, "-key", "rtp_port", &rtp_port],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_queued_with_hold_audio_and_abandoned_on_bye() {
    let rig = Rig::start().await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let n_free_ports = rig.flow.n_free_ports();
    let number = "+8613800000001";
    let caller = {
        let endpoint_addr = rig.endpoint.udp_addr();
        let rtp_port = rtp.local_addr().unwrap().port().to_string();
        let number = number.to_owned();
        tokio::spawn(async move {
            sipp(
                "call_hold.xml",
                endpoint_addr,
                &["-key", "caller", &number, "-key", "rtp_port", &rtp_port],
            )
            .await
        })
    };

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
    assert!(
        eventually(Duration::from_secs(5), || rig
            .endpoint
            .dialogs()
            .layer()
            .is_empty())
        .await,
        "the dialog is removed"
    );
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
    assert!(
        eventually(Duration::from_secs(5), || rig
            .endpoint
            .dialogs()
            .layer()
            .is_empty())
        .await,
        "the refused call's dialog is removed"
    );
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
    let caller = {
        let endpoint_addr = rig.endpoint.udp_addr();
        let rtp_port = rtp.local_addr().unwrap().port().to_string();
        tokio::spawn(async move {
            sipp(
                "call_cancel.xml",
                endpoint_addr,
                &["-key", "caller", number, "-key", "rtp_port", &rtp_port],
            )
            .await
        })
    };
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
