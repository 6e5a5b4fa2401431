//! A browser leg against a real WebRTC peer over loopback: a second str0m
//! `Rtc` plays the browser (ICE, DTLS-SRTP, G.711 — what Chromium does,
//! without Chromium), and a UDP socket plays the call's media task.

mod webrtc_peer;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use voice::media::rtp::{HEADER_LEN, RtpHeader, RtpPacket};
use voice::media::{Codec, MediaFormat, RtpSocket};
use voice::webrtc::{Answered, BrowserEnd, BrowserEvent, BrowserLeg, BrowserLegSetup, WebRtcError};
use webrtc_peer::{TestBrowser, browser};

const PCMU: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    payload_type: 0,
    telephone_event: Some(101),
};

async fn loopback() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn browser_socket() -> RtpSocket {
    RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap()
}

fn setup(media_peer: SocketAddr) -> BrowserLegSetup {
    let browser = browser_socket();
    let advertised = browser.local_addr();
    BrowserLegSetup {
        browser,
        advertised,
        media_peer,
        connect_timeout: Duration::from_secs(5),
    }
}

/// One plain RTP packet as the call's media task sends it.
fn rtp(sequence: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0u8; HEADER_LEN];
    RtpHeader {
        marker: sequence == 0,
        payload_type: 0,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc: 0xCA11,
    }
    .write(&mut packet);
    packet.extend_from_slice(payload);
    packet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_flows_both_ways_between_a_browser_and_the_call() {
    let media = loopback().await;
    let (rtc, mid, offer, pending) = browser(true, true);
    let Answered {
        leg,
        answer,
        mut events,
    } = BrowserLeg::answer(
        &offer.to_sdp_string(),
        PCMU,
        setup(media.local_addr().unwrap()),
    )
    .unwrap();
    assert!(answer.contains("a=rtpmap:0 PCMU/8000"), "{answer}");
    assert!(!answer.contains("opus"), "only the call's codec: {answer}");
    assert!(answer.contains("a=fingerprint:sha-256"), "dtls: {answer}");
    assert!(answer.contains("typ host"), "our host candidate: {answer}");

    let (mut browser, candidate) = TestBrowser::connect(rtc, mid, pending, &answer, 0x55).await;
    // Trickled as the browser's page would send it.
    leg.add_remote_candidate(&candidate).unwrap();

    let connected = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
    assert_eq!(connected.unwrap(), Some(BrowserEvent::Connected));

    // Browser → call: plain RTP on loopback, the call's payload type, one
    // SSRC, consecutive sequence numbers, the browser's audio unchanged.
    let mut buffer = [0u8; 2048];
    let mut headers = Vec::new();
    while headers.len() < 10 {
        let (len, source) =
            tokio::time::timeout(Duration::from_secs(5), media.recv_from(&mut buffer))
                .await
                .expect("the browser's audio reaches the call")
                .unwrap();
        assert_eq!(source, leg.media_addr());
        let packet = RtpPacket::parse(&buffer[..len]).unwrap();
        assert_eq!(packet.header.payload_type, 0);
        assert_eq!(packet.payload, &[0x55; 160][..]);
        headers.push(packet.header);
    }
    for pair in headers.windows(2) {
        assert_eq!(pair[1].ssrc, pair[0].ssrc);
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
    }

    // Call → browser: what the media task sends arrives decrypted.
    for sequence in 0..10u16 {
        media
            .send_to(&rtp(sequence, &[0xAA; 160]), leg.media_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(browser.next_audio().await, vec![0xAA; 160]);

    let stats = leg.stats();
    assert!(stats.connected);
    assert!(stats.from_browser >= 10, "{stats:?}");
    assert!(stats.to_browser >= 1, "{stats:?}");
    leg.close().await;
    assert_eq!(
        events.recv().await,
        Some(BrowserEvent::Ended(BrowserEnd::Closed))
    );
    browser.task.abort();
}

#[tokio::test]
async fn an_offer_without_the_calls_codec_or_garbage_is_refused() {
    let media = loopback().await;
    let (_rtc, _mid, opus_only, _pending) = browser(false, true);
    let refused = BrowserLeg::answer(
        &opus_only.to_sdp_string(),
        PCMU,
        setup(media.local_addr().unwrap()),
    )
    .unwrap_err();
    assert_eq!(refused, WebRtcError::NoCommonCodec { codec: "PCMU" });
    let garbage =
        BrowserLeg::answer("v=0\r\nnot sdp", PCMU, setup(media.local_addr().unwrap())).unwrap_err();
    assert!(matches!(garbage, WebRtcError::Offer(_)), "{garbage:?}");
}

#[tokio::test]
async fn a_bad_candidate_is_refused_and_an_unanswered_leg_fails_in_time() {
    let media = loopback().await;
    let (_rtc, _mid, offer, _pending) = browser(true, false);
    let mut setup = setup(media.local_addr().unwrap());
    setup.connect_timeout = Duration::from_millis(300);
    let Answered {
        leg, mut events, ..
    } = BrowserLeg::answer(&offer.to_sdp_string(), PCMU, setup).unwrap();
    let refused = leg.add_remote_candidate("candidate:garbage").unwrap_err();
    assert!(matches!(refused, WebRtcError::Candidate(_)), "{refused:?}");
    leg.add_remote_candidate("").unwrap();
    // Nobody ever connects: the leg fails on its own.
    let ended = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap();
    assert!(
        matches!(ended, Some(BrowserEvent::Ended(BrowserEnd::Failed(_)))),
        "{ended:?}"
    );
    assert!(!leg.stats().connected);
}

/// The leg bridged into a call's real media task: the caller (plain RTP on
/// loopback) and the browser (SRTP) hear each other, as a desk phone would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_and_a_browser_talk_through_the_calls_media_task() {
    use voice::media::{AgentLeg, CallMedia, CallMediaConfig, Mode};

    let caller = loopback().await;
    let media = CallMedia::start(
        RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap(),
        CallMediaConfig {
            format: PCMU,
            caller: Some(caller.local_addr().unwrap()),
            mode: Mode::Stopped,
        },
        None,
    );
    let agent_socket = RtpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (rtc, mid, offer, pending) = browser(true, false);
    let Answered {
        leg,
        answer,
        mut events,
    } = BrowserLeg::answer(
        &offer.to_sdp_string(),
        PCMU,
        setup(agent_socket.local_addr()),
    )
    .unwrap();
    media
        .bridge(AgentLeg {
            socket: agent_socket,
            remote: Some(leg.media_addr()),
        })
        .unwrap();
    let (mut browser, candidate) = TestBrowser::connect(rtc, mid, pending, &answer, 0x33).await;
    leg.add_remote_candidate(&candidate).unwrap();
    let connected = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
    assert_eq!(connected.unwrap(), Some(BrowserEvent::Connected));

    // The browser's tone reaches the caller, from the call's own port.
    let mut buffer = [0u8; 2048];
    let (len, source) = tokio::time::timeout(Duration::from_secs(5), caller.recv_from(&mut buffer))
        .await
        .expect("the browser's audio reaches the caller")
        .unwrap();
    assert_eq!(source, media.local_addr(), "symmetric rtp");
    assert_eq!(
        RtpPacket::parse(&buffer[..len]).unwrap().payload,
        &[0x33; 160][..]
    );

    // The caller's audio reaches the browser.
    for sequence in 0..10u16 {
        caller
            .send_to(&rtp(sequence, &[0x77; 160]), media.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(browser.next_audio().await, vec![0x77; 160]);
    assert!(media.stats().from_agent.relayed > 0);
    assert!(media.stats().from_caller.relayed > 0);
    leg.close().await;
    media.end().await;
    browser.task.abort();
}

/// An audio offer as Chromium makes it (Opus, RED, G.722, PCMU, PCMA, CN
/// and telephone-event at 48 and 8 kHz).
const CHROMIUM_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Zq5s\r\n\
a=ice-pwd:3mYg0n4E0o3c4X9nQk1fQy8A\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=msid:stream track\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1001 cname:chromium\r\n\
a=ssrc:1001 msid:stream track\r\n";

/// Keypad tones are answered at 8 kHz (the browser's payload type) when the
/// caller's phone takes them, and not at all when it does not.
#[tokio::test]
async fn chromiums_offer_gets_keypad_tones_only_when_the_caller_has_them() {
    let media = loopback().await;
    let Answered { answer, leg, .. } =
        BrowserLeg::answer(CHROMIUM_OFFER, PCMU, setup(media.local_addr().unwrap())).unwrap();
    let audio = answer
        .lines()
        .find(|line| line.starts_with("m=audio"))
        .unwrap();
    assert!(audio.ends_with(" 0 126"), "{answer}");
    assert!(
        answer.contains("a=rtpmap:126 telephone-event/8000"),
        "{answer}"
    );
    assert!(
        !answer.contains("opus") && !answer.contains("48000"),
        "{answer}"
    );
    leg.close().await;
    let no_keypad = MediaFormat {
        telephone_event: None,
        ..PCMU
    };
    let Answered { answer, leg, .. } = BrowserLeg::answer(
        CHROMIUM_OFFER,
        no_keypad,
        setup(media.local_addr().unwrap()),
    )
    .unwrap();
    assert!(!answer.contains("telephone-event"), "{answer}");
    leg.close().await;
}
