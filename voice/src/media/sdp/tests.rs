use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

/// sipp 3.6.1's caller offer (voice/RESEARCH.md §5), LF line ends as the
/// scenario file has them.
const SIPP_OFFER: &str = "v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 8 96
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-15
a=ptime:20
";

/// sipp's built-in `uac` scenario: PCMU without telephone-events.
const SIPP_UAC_OFFER: &str = "v=0\r
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 127.0.0.1\r
t=0 0\r
m=audio 6000 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
";

/// baresip 1.0.0 (libre 1.1) with the g711 module, A-law preferred: CRLF,
/// bandwidth and RTCP lines, session-level tool attribute.
const BARESIP_OFFER: &str = "v=0\r
o=- 2890844526 2890842807 IN IP4 192.0.2.10\r
s=-\r
c=IN IP4 192.0.2.10\r
t=0 0\r
a=tool:baresip 1.0.0\r
m=audio 10206 RTP/AVP 8 0 101\r
b=AS:64\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=rtcp-rsize\r
a=ptime:20\r
a=sendrecv\r
";

/// A PBX offering Opus first, G.711 without rtpmap (static types), a video
/// stream and the audio connection at media level.
const PBX_OFFER: &str = "v=0\r
o=pbx 7 9 IN IP4 pbx.example.net\r
s=call\r
t=0 0\r
m=audio 4000 RTP/AVP 111 9 8 0 101\r
c=IN IP4 198.51.100.7\r
a=rtpmap:111 opus/48000/2\r
a=rtpmap:9 G722/8000\r
a=rtpmap:101 telephone-event/8000\r
m=video 4002 RTP/AVP 96\r
c=IN IP4 198.51.100.8\r
a=rtpmap:96 VP8/90000\r
a=sendonly\r
";

fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    SessionDescription::parse(text.as_bytes())
}

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

#[test]
fn real_offers_parse() {
    let sipp = parse(SIPP_OFFER).unwrap();
    assert_eq!(sipp.origin.session_version, 1);
    assert_eq!(sipp.audio.formats, [0, 8, 96]);
    assert_eq!(sipp.audio.ptime, Some(20));
    assert_eq!(sipp.audio.fmtps[0].parameters, "0-15");
    assert_eq!(
        sipp.remote_media().address,
        Some(addr([127, 0, 0, 1], 6000))
    );
    assert!(!sipp.is_hold());

    let uac = parse(SIPP_UAC_OFFER).unwrap();
    assert_eq!(uac.origin.username, "user1");
    assert_eq!(uac.origin.session_version, 2_353_687_637);

    let baresip = parse(BARESIP_OFFER).unwrap();
    assert_eq!(baresip.audio.formats, [8, 0, 101]);
    assert_eq!(baresip.direction(), Direction::SendRecv);
    assert_eq!(baresip.audio.rtpmaps.len(), 3);

    let pbx = parse(PBX_OFFER).unwrap();
    assert_eq!(pbx.origin.address, "pbx.example.net");
    assert_eq!(pbx.connection, None);
    // The video section's c= and a=sendonly do not touch the audio.
    assert_eq!(
        pbx.remote_media().address,
        Some(addr([198, 51, 100, 7], 4000))
    );
    assert_eq!(pbx.direction(), Direction::SendRecv);
    assert_eq!(
        pbx.audio.rtpmap(111).map(|rtpmap| rtpmap.channels),
        Some(Some(2))
    );
}

/// Malformed and unusable bodies, each with the error it must give.
#[test]
fn malformed_table() {
    fn check(body: &[u8], expected: SdpError) {
        assert_eq!(
            SessionDescription::parse(body),
            Err(expected),
            "body {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let bad = |line, field, reason| SdpError::BadField {
        line,
        field,
        reason,
    };
    let sdp = |media: &str| {
        format!("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n{media}")
    };
    check(b"", SdpError::Empty);
    check(b"\r\n\r\n", SdpError::Empty);
    check(&[0x76, 0x3D, 0xFF, 0xFE], SdpError::NotUtf8);
    check(
        b"garbage SDP",
        SdpError::NoVersion {
            found: "garbage SDP".into(),
        },
    );
    check(
        b"v=1\no=- 1 1 IN IP4 10.0.0.1\n",
        SdpError::NoVersion {
            found: "v=1".into(),
        },
    );
    check(
        b"v=0\nthis is not sdp\n",
        SdpError::NotALine {
            line: 2,
            found: "this is not sdp".into(),
        },
    );
    check(
        b"v=0\nM=audio 1 RTP/AVP 0\n",
        SdpError::NotALine {
            line: 2,
            found: "M=audio 1 RTP/AVP 0".into(),
        },
    );
    check(
        b"v=0\no=- 1 IN IP4 10.0.0.1\n",
        bad(
            2,
            "o= (origin)",
            "expected 6 fields: username id version IN IP4 address",
        ),
    );
    check(
        b"v=0\no=- 1 x IN IP4 10.0.0.1\n",
        bad(2, "o= (origin)", "session version is not a number"),
    );
    check(
        b"v=0\no=- 1 1 IN IP4 10.0.0.1\nc=IN IP4 phone.example\n",
        bad(3, "c= (connection)", "address is not an IP address"),
    );
    check(
        b"v=0\no=- 1 1 IN IP4 10.0.0.1\nc=IN IP6 10.0.0.1\n",
        bad(
            3,
            "c= (connection)",
            "address does not match its address type",
        ),
    );
    check(
        b"v=0\no=- 1 1 IN IP4 10.0.0.1\nc=ATM NSAP 47.0005\n",
        bad(3, "c= (connection)", "network type is not IN"),
    );
    check(
        sdp("m=audio 70000 RTP/AVP 0\n").as_bytes(),
        bad(6, "m= (media)", "port is not a number from 0 to 65535"),
    );
    check(
        sdp("m=audio 4000 RTP/AVP PCMU\n").as_bytes(),
        bad(
            6,
            "m= (media)",
            "payload type is not a number from 0 to 127",
        ),
    );
    check(
        sdp("m=audio 4000 RTP/AVP\n").as_bytes(),
        bad(6, "m= (media)", "no payload types"),
    );
    check(
        sdp("m=audio 4000\n").as_bytes(),
        bad(6, "m= (media)", "no transport protocol"),
    );
    check(
        sdp("m=audio 4000 RTP/AVP 0\na=rtpmap:0 PCMU\n").as_bytes(),
        bad(7, "a=rtpmap", "clock rate is not a number"),
    );
    check(
        sdp("m=audio 4000 RTP/AVP 0\na=rtpmap:300 PCMU/8000\n").as_bytes(),
        bad(7, "a=rtpmap", "payload type is not a number from 0 to 127"),
    );
    check(
        sdp("m=audio 4000 RTP/AVP 0\na=ptime:0\n").as_bytes(),
        bad(7, "a=ptime", "not a positive number of milliseconds"),
    );
    check(
        sdp("m=audio 4000 RTP/AVP 0\na=fmtp:x 0-15\n").as_bytes(),
        bad(7, "a=fmtp", "payload type is not a number"),
    );
    check(
        b"v=0\ns=-\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\n",
        SdpError::NoOrigin,
    );
    check(sdp("").as_bytes(), SdpError::NoAudio);
    check(
        sdp("m=video 4000 RTP/AVP 96\n").as_bytes(),
        SdpError::NoAudio,
    );
    check(sdp("m=audio 0 RTP/AVP 0\n").as_bytes(), SdpError::NoAudio);
    check(
        sdp("m=audio 4000 RTP/SAVP 0\n").as_bytes(),
        SdpError::UnsupportedProfile {
            profile: "RTP/SAVP".into(),
        },
    );
    check(
        b"v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nm=audio 4000 RTP/AVP 0\n",
        SdpError::NoConnection,
    );
    // The video section's c= is not the audio's.
    check(
        b"v=0\no=- 1 1 IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\nm=video 1 RTP/AVP 9\nc=IN IP4 10.0.0.1\n",
        SdpError::NoConnection,
    );
}

#[test]
fn errors_read_well() {
    assert_eq!(
        parse("garbage SDP").unwrap_err().to_string(),
        "sdp must start with v=0, found \"garbage SDP\""
    );
    assert_eq!(
        parse("v=0\no=- 1 x IN IP4 10.0.0.1\n")
            .unwrap_err()
            .to_string(),
        "sdp line 2: bad o= (origin): session version is not a number"
    );
    let long = "x".repeat(500);
    let SdpError::NoVersion { found } = parse(&long).unwrap_err() else {
        panic!("a long first line is not v=0");
    };
    assert_eq!(found.len(), EXCERPT_LEN);
}

/// One `check(offer, expected)`: codec choice, telephone-event echo,
/// answer direction.
#[test]
fn negotiation_table() {
    fn check(offer: &str, expected: Result<(Codec, u8, Option<u8>, Direction), Vec<u8>>) {
        let answer = negotiate(&parse(offer).unwrap());
        let answer = answer
            .map(|answer| {
                (
                    answer.format.codec,
                    answer.format.payload_type,
                    answer.format.telephone_event,
                    answer.direction,
                )
            })
            .map_err(|err| err.offered);
        assert_eq!(answer, expected, "offer {offer:?}");
    }
    let offer = |media: &str| {
        format!("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n{media}")
    };
    use Codec::{Pcma, Pcmu};
    use Direction::{Inactive, RecvOnly, SendOnly, SendRecv};
    check(SIPP_OFFER, Ok((Pcmu, 0, Some(96), SendRecv)));
    check(SIPP_UAC_OFFER, Ok((Pcmu, 0, None, SendRecv)));
    check(BARESIP_OFFER, Ok((Pcma, 8, Some(101), SendRecv)));
    // Opus and G.722 are skipped; PCMA is the first G.711.
    check(PBX_OFFER, Ok((Pcma, 8, Some(101), SendRecv)));
    // Static types need no rtpmap.
    check(
        &offer("m=audio 4000 RTP/AVP 8 0\n"),
        Ok((Pcma, 8, None, SendRecv)),
    );
    // A dynamic type mapped to PCMU is PCMU on that type.
    check(
        &offer("m=audio 4000 RTP/AVP 97\na=rtpmap:97 pcmu/8000\n"),
        Ok((Pcmu, 97, None, SendRecv)),
    );
    // telephone-event at 48 kHz is not ours.
    check(
        &offer(
            "m=audio 4000 RTP/AVP 0 100 101\na=rtpmap:100 telephone-event/48000\na=rtpmap:101 telephone-event/8000\n",
        ),
        Ok((Pcmu, 0, Some(101), SendRecv)),
    );
    // Hold offers.
    check(
        &offer("m=audio 4000 RTP/AVP 0\na=sendonly\n"),
        Ok((Pcmu, 0, None, RecvOnly)),
    );
    check(
        &offer("m=audio 4000 RTP/AVP 0\na=inactive\n"),
        Ok((Pcmu, 0, None, Inactive)),
    );
    check(
        &offer("m=audio 4000 RTP/AVP 0\na=recvonly\n"),
        Ok((Pcmu, 0, None, SendOnly)),
    );
    // No G.711: 488.
    check(
        &offer("m=audio 4000 RTP/AVP 9 18 101\na=rtpmap:101 telephone-event/8000\n"),
        Err(vec![9, 18, 101]),
    );
    check(
        &offer("m=audio 4000 RTP/AVP 111\na=rtpmap:111 opus/48000/2\n"),
        Err(vec![111]),
    );
    // PCMU at 16 kHz is not G.711.
    check(
        &offer("m=audio 4000 RTP/AVP 96\na=rtpmap:96 PCMU/16000\n"),
        Err(vec![96]),
    );
}

#[test]
fn no_common_codec_reads_well() {
    let err = negotiate(&parse(&PBX_OFFER.replace("9 8 0 101", "9 101")).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no common codec: offered payload types [111, 9, 101], switchboard speaks PCMU (0) and PCMA (8)"
    );
}

/// One `check(offer, expected)`: hold is sendonly, inactive or 0.0.0.0, at
/// media or session level.
#[test]
fn hold_detection_table() {
    fn check(session: &str, media: &str, expected: RemoteMedia) {
        let text = format!(
            "v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\n{session}t=0 0\nm=audio 4000 RTP/AVP 0\n{media}"
        );
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.remote_media(), expected, "sdp {text:?}");
        assert_eq!(parsed.is_hold(), expected.is_hold(), "sdp {text:?}");
    }
    let to = Some(addr([10, 0, 0, 2], 4000));
    let remote = |address, direction| RemoteMedia { address, direction };
    let c = "c=IN IP4 10.0.0.2\n";
    check(c, "", remote(to, Direction::SendRecv));
    check(c, "a=sendrecv\n", remote(to, Direction::SendRecv));
    check(c, "a=sendonly\n", remote(to, Direction::SendOnly));
    check(c, "a=inactive\n", remote(to, Direction::Inactive));
    check(c, "a=recvonly\n", remote(to, Direction::RecvOnly));
    check(
        &format!("{c}a=sendonly\n"),
        "",
        remote(to, Direction::SendOnly),
    );
    // The media level wins over the session level.
    check(
        &format!("{c}a=sendonly\n"),
        "a=sendrecv\n",
        remote(to, Direction::SendRecv),
    );
    // RFC 2543 hold.
    check("c=IN IP4 0.0.0.0\n", "", remote(None, Direction::SendOnly));
    check(
        "c=IN IP4 0.0.0.0\n",
        "a=inactive\n",
        remote(None, Direction::Inactive),
    );
    check(c, "c=IN IP4 0.0.0.0\n", remote(None, Direction::SendOnly));
    assert!(!remote(to, Direction::RecvOnly).is_hold());
}

fn format(codec: Codec, telephone_event: Option<u8>) -> MediaFormat {
    MediaFormat {
        codec,
        payload_type: codec.static_payload_type(),
        telephone_event,
    }
}

#[test]
fn built_answer_looks_like_the_research_says() {
    let mut session = LocalSession::with_id(42, 1);
    let media = LocalMedia {
        address: addr([203, 0, 113, 5], 20000),
        format: format(Codec::Pcmu, Some(101)),
        direction: Direction::SendRecv,
    };
    assert_eq!(
        session.describe(&media),
        "v=0\r\n\
         o=switchboard 42 1 IN IP4 203.0.113.5\r\n\
         s=switchboard\r\n\
         c=IN IP4 203.0.113.5\r\n\
         t=0 0\r\n\
         m=audio 20000 RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
    let without_events = LocalMedia {
        format: format(Codec::Pcma, None),
        address: "[2001:db8::5]:20002".parse().unwrap(),
        ..media
    };
    let sdp = LocalSession::with_id(7, 3).describe(&without_events);
    assert!(
        sdp.contains("o=switchboard 7 3 IN IP6 2001:db8::5\r\n"),
        "{sdp}"
    );
    assert!(
        sdp.contains("m=audio 20002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime"),
        "{sdp}"
    );
}

#[test]
fn session_version_increments_per_changed_reoffer() {
    let mut session = LocalSession::with_id(42, 5);
    let talking = LocalMedia {
        address: addr([203, 0, 113, 5], 20000),
        format: format(Codec::Pcmu, Some(96)),
        direction: Direction::SendRecv,
    };
    let holding = LocalMedia {
        direction: Direction::SendOnly,
        ..talking
    };
    let versions: Vec<u64> = [talking, talking, holding, talking, talking]
        .iter()
        .map(|media| {
            parse(&session.describe(media))
                .unwrap()
                .origin
                .session_version
        })
        .collect();
    assert_eq!(versions, [5, 5, 6, 7, 7]);
    assert_eq!(session.session_version(), 7);
    assert_eq!(session.session_id(), 42);
    assert_ne!(
        LocalSession::new().session_id(),
        LocalSession::new().session_id()
    );
}

/// The B2BUA offers the agent the caller's negotiated format, and accepts an
/// answer only if it keeps that codec.
#[test]
fn agent_offer_carries_the_callers_format_and_checks_the_answer() {
    let caller = negotiate(&parse(SIPP_OFFER).unwrap()).unwrap();
    let offer = LocalSession::new().describe(&LocalMedia {
        address: addr([127, 0, 0, 1], 20002),
        format: caller.format,
        direction: Direction::SendRecv,
    });
    let parsed = parse(&offer).unwrap();
    assert_eq!(parsed.audio.formats, [0, 96]);
    assert_eq!(negotiate(&parsed).unwrap().format, caller.format);

    let phone = |formats: &str| {
        parse(&format!(
            "v=0\r\no=- 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP {formats}\r\n"
        ))
        .unwrap()
    };
    assert_eq!(
        check_answer(&caller.format, &phone("0 96")),
        Ok(RemoteMedia {
            address: Some(addr([127, 0, 0, 1], 7000)),
            direction: Direction::SendRecv,
        })
    );
    assert!(check_answer(&caller.format, &phone("0")).is_ok());
    assert_eq!(
        check_answer(&caller.format, &phone("8")),
        Err(NoCommonCodec { offered: vec![8] })
    );
}

fn arbitrary_media() -> impl Strategy<Value = LocalMedia> {
    (
        any::<[u8; 4]>(),
        1u16..,
        prop_oneof![Just(Codec::Pcmu), Just(Codec::Pcma)],
        proptest::option::of(96u8..128),
        prop_oneof![
            Just(Direction::SendRecv),
            Just(Direction::SendOnly),
            Just(Direction::RecvOnly),
            Just(Direction::Inactive)
        ],
    )
        .prop_map(|(ip, port, codec, telephone_event, direction)| LocalMedia {
            // 0.0.0.0 is the hold address; switchboard never advertises it.
            address: addr([ip[0] | 1, ip[1], ip[2], ip[3]], port),
            format: format(codec, telephone_event),
            direction,
        })
}

/// Lines that reach every branch of the parser, in any order.
fn sdp_lines() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("v=0".to_owned()),
        Just("o=- 1 1 IN IP4 10.0.0.1".to_owned()),
        Just("c=IN IP4 10.0.0.1".to_owned()),
        Just("c=IN IP4 0.0.0.0".to_owned()),
        Just("m=audio 4000 RTP/AVP 0 8 101".to_owned()),
        Just("m=video 4002 RTP/AVP 96".to_owned()),
        Just("a=rtpmap:101 telephone-event/8000".to_owned()),
        Just("a=sendonly".to_owned()),
        "[a-z]=[ -~]{0,30}",
        "[acmo]=[ -~]{0,30}",
        "a=(rtpmap|fmtp|ptime):[ -~]{0,20}",
        "m=audio [0-9]{1,6} RTP/AVP[ 0-9]{0,12}",
        "[ -~]{0,40}",
    ];
    proptest::collection::vec(line, 0..14).prop_map(|lines| lines.join("\r\n"))
}

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_cleanly(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(parsed) = SessionDescription::parse(&body) {
            let _ = negotiate(&parsed);
        }
    }

    #[test]
    fn any_line_soup_parses_or_fails_cleanly(text in sdp_lines()) {
        match parse(&format!("v=0\r\n{text}")) {
            Ok(parsed) => {
                // Whatever parsed has what a call needs.
                let _ = parsed.connection_address();
                let _ = negotiate(&parsed);
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn built_sdp_parses_back(media in arbitrary_media(), id: u32, version in 0u64..1 << 40) {
        let mut session = LocalSession::with_id(u64::from(id), version);
        let parsed = parse(&session.describe(&media)).unwrap();
        prop_assert_eq!(&parsed.origin.session_id, &id.to_string());
        prop_assert_eq!(parsed.origin.session_version, version);
        prop_assert_eq!(parsed.remote_media(), RemoteMedia { address: Some(media.address), direction: media.direction });
        prop_assert_eq!(parsed.audio.ptime, Some(PTIME_MS));
        let answer = negotiate(&parsed).unwrap();
        prop_assert_eq!(answer.format, media.format);
        prop_assert_eq!(check_answer(&media.format, &parsed).map(|remote| remote.address), Ok(Some(media.address)));
    }
}
