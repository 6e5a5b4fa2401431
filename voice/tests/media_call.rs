//! `voice::media::CallMedia` over real UDP on loopback: hold audio, the
//! bridge with latching, mode switches, DTMF, and port release.
//!
//! 127.0.0.1 plays the signalled peers; 127.0.0.2 is a foreign source.
//! Assertions are on counts and header fields, never on wall-clock upper
//! bounds, so a loaded machine does not fail them.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use voice::media::hold::{self, FRAME_SAMPLES};
use voice::media::rtp::{HEADER_LEN, RtpHeader, RtpPacket, TelephoneEvent};
use voice::media::{
    AgentLeg, CallMedia, CallMediaConfig, Codec, Dtmf, MediaFormat, Mode, PortAllocator, RtpSocket,
};

const WAIT: Duration = Duration::from_secs(5);

/// The SSRC of the stream the test's agent phone sends.
const AGENT_SSRC: u32 = 0xA6E47;

/// Polls `condition` until it holds or `limit` passes.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}

async fn peer(ip: &str) -> UdpSocket {
    UdpSocket::bind(format!("{ip}:0")).await.unwrap()
}

fn address(socket: &UdpSocket) -> SocketAddr {
    socket.local_addr().unwrap()
}

/// The next datagram, or a failed test after [`WAIT`].
async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buffer = [0u8; 2048];
    let (len, source) = timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .expect("a datagram in time")
        .unwrap();
    (buffer[..len].to_vec(), source)
}

fn header(datagram: &[u8]) -> RtpHeader {
    RtpPacket::parse(datagram).expect("rtp").header
}

fn format(codec: Codec, telephone_event: Option<u8>) -> MediaFormat {
    MediaFormat {
        codec,
        payload_type: codec.static_payload_type(),
        telephone_event,
    }
}

fn start(caller: Option<SocketAddr>, format: MediaFormat, mode: Mode) -> CallMedia {
    let socket = RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    CallMedia::start(
        socket,
        CallMediaConfig {
            format,
            caller,
            mode,
        },
        None,
    )
}

/// An RTP packet as a phone would send it.
fn rtp(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0u8; HEADER_LEN];
    RtpHeader {
        marker: false,
        payload_type,
        sequence,
        timestamp,
        ssrc,
    }
    .write(&mut packet);
    packet.extend_from_slice(payload);
    packet
}

#[tokio::test]
async fn hold_plays_the_clip_in_20_ms_packets_in_both_codecs() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let caller = peer("127.0.0.1").await;
        let media = start(Some(address(&caller)), format(codec, None), Mode::Hold);
        let frames = hold::frames(codec);
        let started = Instant::now();
        let mut first: Option<RtpHeader> = None;
        let n_packets = 30u16;
        for n in 0..n_packets {
            let (datagram, source) = recv(&caller).await;
            assert_eq!(
                source,
                media.local_addr(),
                "symmetric rtp: sent from the advertised port"
            );
            let packet = RtpPacket::parse(&datagram).unwrap();
            let header = packet.header;
            let first = *first.get_or_insert(header);
            assert_eq!(header.payload_type, codec.static_payload_type());
            assert_eq!(header.ssrc, first.ssrc);
            assert_eq!(header.sequence, first.sequence.wrapping_add(n));
            assert_eq!(
                header.timestamp,
                first.timestamp.wrapping_add(160 * u32::from(n))
            );
            assert_eq!(header.marker, n == 0, "marker on the first packet only");
            assert_eq!(packet.payload.len(), FRAME_SAMPLES);
            assert_eq!(
                packet.payload,
                &frames[usize::from(n)][..],
                "frame {n} of the clip"
            );
        }
        // Paced, not bursted: 30 packets cover at least 29 intervals of 20 ms
        // (a lower bound only, which load cannot break).
        assert!(
            started.elapsed() >= Duration::from_millis(29 * 20 - 5),
            "{:?}",
            started.elapsed()
        );
        let stats = media.end().await;
        assert!(stats.hold_sent >= u64::from(n_packets), "{stats:?}");
        assert_eq!(stats.mode, Mode::Hold);
    }
}

#[tokio::test]
async fn hold_reads_the_callers_packets_and_drops_foreign_ones() {
    let caller = peer("127.0.0.1").await;
    let foreign = peer("127.0.0.2").await;
    let media = start(
        Some(address(&caller)),
        format(Codec::Pcmu, None),
        Mode::Hold,
    );
    for sequence in 0..5 {
        let packet = rtp(0, sequence, 160 * u32::from(sequence), 7, &[0xFF; 160]);
        caller.send_to(&packet, media.local_addr()).await.unwrap();
        foreign.send_to(&packet, media.local_addr()).await.unwrap();
    }
    caller
        .send_to(b"not rtp", media.local_addr())
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || {
            let stats = media.stats().from_caller;
            stats.absorbed == 5 && stats.dropped_source == 5 && stats.dropped_malformed == 1
        })
        .await,
        "{:?}",
        media.stats()
    );
    assert_eq!(media.stats().from_caller.relayed, 0);
    // Nothing ever goes to the foreign source.
    timeout(Duration::from_millis(100), recv(&foreign))
        .await
        .unwrap_err();
}

#[tokio::test]
async fn stopped_sends_nothing() {
    let caller = peer("127.0.0.1").await;
    let media = start(
        Some(address(&caller)),
        format(Codec::Pcmu, None),
        Mode::Stopped,
    );
    timeout(Duration::from_millis(200), recv(&caller))
        .await
        .unwrap_err();
    assert_eq!(media.stats().hold_sent, 0);
    assert_eq!(media.stats().mode, Mode::Stopped);
    // And hold starts it.
    media.hold().unwrap();
    let (datagram, _) = recv(&caller).await;
    assert!(header(&datagram).marker);
}

/// The caller signals one port and sends from another on the same IP (a
/// NAT): the relay latches to the observed port and sends back there.
#[tokio::test]
async fn bridge_relays_unchanged_both_ways_with_latching() {
    let caller_signalled = peer("127.0.0.1").await;
    let caller = peer("127.0.0.1").await;
    let agent = peer("127.0.0.1").await;
    let foreign = peer("127.0.0.2").await;
    let media = start(
        Some(address(&caller_signalled)),
        format(Codec::Pcma, Some(101)),
        Mode::Hold,
    );
    let agent_leg = RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let agent_facing = agent_leg.local_addr();
    media
        .bridge(AgentLeg {
            socket: agent_leg,
            remote: Some(address(&agent)),
        })
        .unwrap();
    assert!(eventually(WAIT, || media.stats().mode == Mode::Bridge).await);

    let n_packets = 20u16;
    for sequence in 0..n_packets {
        let payload = [sequence as u8; 160];
        let from_caller = rtp(
            8,
            sequence,
            1000 + 160 * u32::from(sequence),
            0xCA11E5,
            &payload,
        );
        caller
            .send_to(&from_caller, media.local_addr())
            .await
            .unwrap();
        let (relayed, source) = recv(&agent).await;
        assert_eq!(relayed, from_caller, "caller → agent byte for byte");
        assert_eq!(
            source, agent_facing,
            "sent from the port offered to the agent"
        );

        let from_agent = rtp(
            8,
            500 + sequence,
            9000 + 160 * u32::from(sequence),
            AGENT_SSRC,
            &payload,
        );
        agent.send_to(&from_agent, agent_facing).await.unwrap();
        let (relayed, source) = recv(&caller).await;
        assert_eq!(relayed, from_agent, "agent → caller byte for byte");
        assert_eq!(source, media.local_addr());
    }

    // From another IP, and from the caller's IP but not the latched port:
    // dropped and counted, on both legs.
    let stray = rtp(8, 1, 1, 0xBAD, &[0; 160]);
    foreign.send_to(&stray, media.local_addr()).await.unwrap();
    caller_signalled
        .send_to(&stray, media.local_addr())
        .await
        .unwrap();
    foreign.send_to(&stray, agent_facing).await.unwrap();
    caller
        .send_to(b"\x00garbage", media.local_addr())
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || {
            let stats = media.stats();
            stats.from_caller.dropped_source == 2
                && stats.from_agent.dropped_source == 1
                && stats.from_caller.dropped_malformed == 1
        })
        .await,
        "{:?}",
        media.stats()
    );
    // The latched caller still gets through afterwards, and nothing stray was relayed.
    let last = rtp(8, 99, 99, 0xCA11E5, &[9; 160]);
    caller.send_to(&last, media.local_addr()).await.unwrap();
    assert_eq!(recv(&agent).await.0, last);
    timeout(Duration::from_millis(100), recv(&caller_signalled))
        .await
        .unwrap_err();

    let stats = media.end().await;
    assert_eq!(stats.from_caller.relayed, u64::from(n_packets) + 1);
    assert_eq!(stats.from_agent.relayed, u64::from(n_packets));
    let latency = stats.relay_latency.summary();
    assert_eq!(latency.count, 2 * u64::from(n_packets) + 1);
    assert!(latency.max > Duration::ZERO);
    assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    assert_eq!(
        stats.from_caller.send_failed + stats.from_agent.send_failed,
        0
    );
}

/// Hold, bridge, hold again, resume, release: the generated stream keeps
/// its SSRC, its sequence continues by one, and each hold starts with a
/// marker and a timestamp that covers the time in between.
#[tokio::test]
async fn mode_switches_keep_one_hold_stream() {
    let caller = peer("127.0.0.1").await;
    let agent = peer("127.0.0.1").await;
    let media = start(
        Some(address(&caller)),
        format(Codec::Pcmu, None),
        Mode::Hold,
    );
    let agent_leg = RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let agent_facing = agent_leg.local_addr();
    // Held headers, and the index of each packet that began a hold period.
    let mut held: Vec<RtpHeader> = Vec::new();
    let mut hold_starts = vec![0usize];

    // Receives until `n_hold` more hold packets arrived or, with
    // `until_agent`, until that relayed agent packet arrived.
    async fn collect(
        caller: &UdpSocket,
        held: &mut Vec<RtpHeader>,
        n_hold: usize,
        until_agent: Option<&[u8]>,
    ) {
        let target = held.len() + n_hold;
        loop {
            let (datagram, _) = recv(caller).await;
            let header = header(&datagram);
            if header.ssrc == AGENT_SSRC {
                if Some(&datagram[..]) == until_agent {
                    return;
                }
                continue;
            }
            held.push(header);
            if until_agent.is_none() && held.len() >= target {
                return;
            }
        }
    }

    collect(&caller, &mut held, 10, None).await;
    media
        .bridge(AgentLeg {
            socket: agent_leg,
            remote: Some(address(&agent)),
        })
        .unwrap();
    assert!(eventually(WAIT, || media.stats().mode == Mode::Bridge).await);
    // The caller sends, so its leg latches to its own address.
    caller
        .send_to(&rtp(0, 1, 1, 0xCA11E5, &[1; 160]), media.local_addr())
        .await
        .unwrap();
    recv(&agent).await;
    let marker_packet = rtp(0, 7, 7, AGENT_SSRC, &[7; 160]);
    agent.send_to(&marker_packet, agent_facing).await.unwrap();
    // Every hold packet sent before the bridge arrives before this one.
    collect(&caller, &mut held, 0, Some(&marker_packet)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    hold_starts.push(held.len());
    media.hold().unwrap();
    collect(&caller, &mut held, 10, None).await;
    // Resume the bridge with the same agent leg, then release the agent:
    // hold again.
    media.resume().unwrap();
    assert!(eventually(WAIT, || media.stats().mode == Mode::Bridge).await);
    let marker_packet = rtp(0, 8, 8, AGENT_SSRC, &[8; 160]);
    agent.send_to(&marker_packet, agent_facing).await.unwrap();
    collect(&caller, &mut held, 0, Some(&marker_packet)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    hold_starts.push(held.len());
    media.release_agent().unwrap();
    collect(&caller, &mut held, 10, None).await;

    let ssrc = held[0].ssrc;
    for (index, pair) in held.windows(2).enumerate() {
        let (previous, header) = (pair[0], pair[1]);
        let starts_hold = hold_starts.contains(&(index + 1));
        assert_eq!(header.ssrc, ssrc, "one ssrc for the hold stream");
        assert_eq!(
            header.sequence,
            previous.sequence.wrapping_add(1),
            "packet {}",
            index + 1
        );
        assert_eq!(header.marker, starts_hold, "marker of packet {}", index + 1);
        let advance = header.timestamp.wrapping_sub(previous.timestamp);
        if starts_hold {
            // At least 100 ms in bridge mode: five packets' worth or more.
            assert!(
                advance >= 5 * 160 && advance % 160 == 0,
                "advance {advance}"
            );
        } else {
            assert_eq!(advance, 160, "packet {}", index + 1);
        }
    }
    assert!(held[0].marker);
    let stats = media.end().await;
    // The agent leg was released: its packets are no longer read.
    assert_eq!(stats.from_agent.relayed, 2);
}

fn telephone_event(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let mut payload = [0u8; 4];
    TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    }
    .write(&mut payload);
    payload
}

#[tokio::test]
async fn dtmf_digits_arrive_once_each_in_hold_and_in_bridge() {
    let caller = peer("127.0.0.1").await;
    let agent = peer("127.0.0.1").await;
    let (dtmf_tx, mut dtmf_rx) = mpsc::unbounded_channel();
    let socket = RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let media = CallMedia::start(
        socket,
        CallMediaConfig {
            format: format(Codec::Pcmu, Some(96)),
            caller: Some(address(&caller)),
            mode: Mode::Hold,
        },
        Some(dtmf_tx),
    );
    let mut sequence = 0u16;
    let mut press = |digit_event: u8, timestamp: u32| {
        // Three progress packets, then the end bit three times, as phones send.
        let mut packets = Vec::new();
        for (end, duration) in [
            (false, 160),
            (false, 320),
            (false, 480),
            (true, 640),
            (true, 640),
            (true, 640),
        ] {
            sequence += 1;
            packets.push(rtp(
                96,
                sequence,
                timestamp,
                0xD7F,
                &telephone_event(digit_event, end, duration),
            ));
        }
        packets
    };
    for packet in press(2, 16000) {
        caller.send_to(&packet, media.local_addr()).await.unwrap();
    }
    let digit = timeout(WAIT, dtmf_rx.recv()).await.unwrap().unwrap();
    assert_eq!(
        digit,
        Dtmf {
            digit: '2',
            duration: 640
        }
    );

    let agent_leg = RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    media
        .bridge(AgentLeg {
            socket: agent_leg,
            remote: Some(address(&agent)),
        })
        .unwrap();
    assert!(eventually(WAIT, || media.stats().mode == Mode::Bridge).await);
    let packets: Vec<Vec<u8>> = [press(11, 32000), press(0, 48000)].concat();
    for packet in &packets {
        caller.send_to(packet, media.local_addr()).await.unwrap();
        // Relayed to the agent's phone as well, unchanged.
        assert_eq!(&recv(&agent).await.0, packet);
    }
    let digits: String = [
        timeout(WAIT, dtmf_rx.recv()).await.unwrap().unwrap().digit,
        timeout(WAIT, dtmf_rx.recv()).await.unwrap().unwrap().digit,
    ]
    .iter()
    .collect();
    assert_eq!(digits, "#0");
    timeout(Duration::from_millis(100), dtmf_rx.recv())
        .await
        .unwrap_err();
    assert_eq!(media.end().await.dtmf_digits, 3);
}

#[tokio::test]
async fn a_callers_reinvite_moves_hold_audio_and_latching() {
    let caller = peer("127.0.0.1").await;
    let moved = peer("127.0.0.3").await;
    let media = start(
        Some(address(&caller)),
        format(Codec::Pcmu, None),
        Mode::Hold,
    );
    let (first, _) = recv(&caller).await;
    // Held by the caller with c=0.0.0.0: nothing is sent.
    media.update_caller(None).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    while timeout(Duration::from_millis(60), recv(&caller))
        .await
        .is_ok()
    {}
    media.update_caller(Some(address(&moved))).unwrap();
    let (datagram, _) = recv(&moved).await;
    let (first, resumed) = (header(&first), header(&datagram));
    assert!(resumed.marker);
    assert_eq!(resumed.ssrc, first.ssrc);
    // Packets from the old address are now foreign.
    caller
        .send_to(&rtp(0, 1, 1, 1, &[0; 160]), media.local_addr())
        .await
        .unwrap();
    assert!(eventually(WAIT, || media.stats().from_caller.dropped_source == 1).await);
}

#[tokio::test]
async fn ending_a_call_frees_its_ports() {
    let ports = PortAllocator::new("127.0.31.1".parse().unwrap(), 41000..=41003).unwrap();
    let caller = ports.allocate().unwrap();
    let agent = ports.allocate().unwrap();
    assert!(ports.allocate().is_err());
    let media = CallMedia::start(
        caller,
        CallMediaConfig {
            format: format(Codec::Pcmu, None),
            caller: None,
            mode: Mode::Hold,
        },
        None,
    );
    media
        .bridge(AgentLeg {
            socket: agent,
            remote: None,
        })
        .unwrap();
    assert!(eventually(WAIT, || media.stats().mode == Mode::Bridge).await);
    // Releasing the agent frees its port while the call goes on.
    media.release_agent().unwrap();
    assert!(eventually(WAIT, || ports.n_free() == 1).await);
    media.end().await;
    assert_eq!(ports.n_free(), 2);
}

/// Audio packets 20 ms apart in RTP time that arrive back to back: each
/// transit differs by about 160 units, so RFC 3550 jitter climbs towards
/// 20 ms; telephone-events (one timestamp per key press) do not count.
#[tokio::test]
async fn jitter_is_measured_on_audio_packets_only() {
    let caller = peer("127.0.0.1").await;
    let media = start(
        Some(address(&caller)),
        format(Codec::Pcmu, Some(101)),
        Mode::Stopped,
    );
    for sequence in 0..10u16 {
        let event = telephone_event(4, sequence >= 7, 160 * (sequence + 1));
        let packet = rtp(101, sequence, 8000, 5, &event);
        caller.send_to(&packet, media.local_addr()).await.unwrap();
        // 10 ms apart with one timestamp: 80 units of |D| each, were they
        // counted.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(eventually(WAIT, || media.stats().dtmf_digits == 1).await);
    assert_eq!(media.stats().from_caller.jitter, Duration::ZERO);
    for sequence in 0..30u16 {
        let packet = rtp(
            0,
            100 + sequence,
            160 * u32::from(sequence),
            5,
            &[0xFF; 160],
        );
        caller.send_to(&packet, media.local_addr()).await.unwrap();
    }
    assert!(eventually(WAIT, || media.stats().from_caller.absorbed == 40).await);
    let jitter = media.stats().from_caller.jitter;
    assert!(
        (Duration::from_millis(5)..Duration::from_millis(100)).contains(&jitter),
        "{jitter:?}"
    );
}

#[tokio::test]
async fn starting_in_bridge_mode_without_an_agent_is_silent_until_bridged() {
    let caller = peer("127.0.0.1").await;
    let agent = peer("127.0.0.1").await;
    let media = start(
        Some(address(&caller)),
        format(Codec::Pcmu, None),
        Mode::Bridge,
    );
    assert!(eventually(WAIT, || media.stats().mode == Mode::Stopped).await);
    caller
        .send_to(&rtp(0, 1, 1, 1, &[0; 160]), media.local_addr())
        .await
        .unwrap();
    assert!(eventually(WAIT, || media.stats().from_caller.absorbed == 1).await);
    let agent_leg = RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    media
        .bridge(AgentLeg {
            socket: agent_leg,
            remote: Some(address(&agent)),
        })
        .unwrap();
    assert!(eventually(WAIT, || media.stats().mode == Mode::Bridge).await);
    let packet = rtp(0, 2, 161, 1, &[1; 160]);
    caller.send_to(&packet, media.local_addr()).await.unwrap();
    assert_eq!(recv(&agent).await.0, packet);
    timeout(Duration::from_millis(100), recv(&caller))
        .await
        .unwrap_err();
}
