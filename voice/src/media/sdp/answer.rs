//! Offer/answer (RFC 3264): choosing the call's codec from an offer,
//! checking the answer to switchboard's own offer, and writing
//! switchboard's SDP with its session id and version.

use std::fmt::Write as _;
use std::net::SocketAddr;

use thiserror::Error;

use super::{Codec, Direction, RemoteMedia, SessionDescription};

/// What a call's RTP carries once negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFormat {
    /// The one audio codec.
    pub codec: Codec,
    /// Its payload type on the wire (0 or 8, unless the peer mapped it dynamically).
    pub payload_type: u8,
    /// The telephone-event payload type, echoed from the offer when present.
    pub telephone_event: Option<u8>,
}

/// The offer had neither PCMU nor PCMA: answer 488 Not Acceptable Here.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "no common codec: offered payload types {offered:?}, switchboard speaks PCMU (0) and PCMA (8)"
)]
pub struct NoCommonCodec {
    /// The payload types of the offer's audio stream.
    pub offered: Vec<u8>,
}

/// The outcome of negotiating an offer: what to answer and where to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The codec and telephone-event payload type the call uses.
    pub format: MediaFormat,
    /// Where the offerer wants RTP, and whether it holds the call.
    pub remote: RemoteMedia,
    /// The direction to put in the answer.
    pub direction: Direction,
}

/// Negotiates an offer: the first offered of PCMU and PCMA (static or
/// mapped), the offer's telephone-event payload type if any, and the answer
/// direction that matches the offer's.
pub fn negotiate(offer: &SessionDescription) -> Result<Answer, NoCommonCodec> {
    let audio = &offer.audio;
    let (payload_type, codec) = audio
        .formats
        .iter()
        .find_map(|&payload_type| audio.codec(payload_type).map(|codec| (payload_type, codec)))
        .ok_or_else(|| NoCommonCodec {
            offered: audio.formats.clone(),
        })?;
    let remote = offer.remote_media();
    Ok(Answer {
        format: MediaFormat {
            codec,
            payload_type,
            telephone_event: audio.telephone_event(),
        },
        remote,
        direction: remote.direction.answer(),
    })
}

/// Checks the answer to an offer switchboard made (to an agent's phone):
/// it must accept the one codec offered. Returns where the answerer wants RTP.
pub fn check_answer(
    offered: &MediaFormat,
    answer: &SessionDescription,
) -> Result<RemoteMedia, NoCommonCodec> {
    let audio = &answer.audio;
    let accepted = audio.formats.iter().any(|&payload_type| {
        payload_type == offered.payload_type && audio.codec(payload_type) == Some(offered.codec)
    });
    if !accepted {
        return Err(NoCommonCodec {
            offered: audio.formats.clone(),
        });
    }
    Ok(answer.remote_media())
}

/// What switchboard puts in one SDP it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    /// The advertised (public) address and the RTP socket's port.
    pub address: SocketAddr,
    /// The one codec and the telephone-event payload type.
    pub format: MediaFormat,
    /// sendrecv normally; sendonly to hold the peer, recvonly/inactive to
    /// answer its hold.
    pub direction: Direction,
}

/// Packetisation time switchboard sends and asks for: 160 samples.
pub const PTIME_MS: u32 = 20;

/// switchboard's side of one SDP session (one per dialog leg): the `o=`
/// identity and version.
///
/// RFC 3264 §8: every SDP sent after the first carries the version plus
/// one when it changed (hold, resume, another codec or port), and the same
/// version when it did not.
#[derive(Debug, Clone)]
pub struct LocalSession {
    session_id: u64,
    session_version: u64,
    /// The media of the last SDP written, to tell a change from a repeat.
    last: Option<LocalMedia>,
}

impl LocalSession {
    /// A new session with a random id; versions start at 1.
    pub fn new() -> LocalSession {
        let session_id =
            (u64::from(crate::media::random_u32()) << 32) | u64::from(crate::media::random_u32());
        // NTP-sized and positive in every peer's integer type.
        LocalSession::with_id(session_id >> 2, 1)
    }

    /// A session with a given id and first version (tests, restarts).
    pub fn with_id(session_id: u64, first_version: u64) -> LocalSession {
        LocalSession {
            session_id,
            session_version: first_version,
            last: None,
        }
    }

    /// The `o=` session id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The version of the last SDP written (the first one's before any).
    pub fn session_version(&self) -> u64 {
        self.session_version
    }

    /// Writes the SDP for an offer or an answer, bumping the version when
    /// the media changed since the last one written.
    pub fn describe(&mut self, media: &LocalMedia) -> String {
        if self.last.is_some_and(|last| last != *media) {
            self.session_version += 1;
        }
        self.last = Some(*media);
        let ip = media.address.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let format = &media.format;
        let mut sdp = String::with_capacity(256);
        // Writing to a String cannot fail.
        let _ = write!(
            sdp,
            "v=0\r\n\
             o=switchboard {id} {version} IN {family} {ip}\r\n\
             s=switchboard\r\n\
             c=IN {family} {ip}\r\n\
             t=0 0\r\n\
             m=audio {port} RTP/AVP {pt}",
            id = self.session_id,
            version = self.session_version,
            port = media.address.port(),
            pt = format.payload_type,
        );
        if let Some(event) = format.telephone_event {
            let _ = write!(sdp, " {event}");
        }
        let _ = write!(
            sdp,
            "\r\na=rtpmap:{pt} {name}/{rate}\r\n",
            pt = format.payload_type,
            name = format.codec.encoding_name(),
            rate = Codec::CLOCK_RATE,
        );
        if let Some(event) = format.telephone_event {
            let _ = write!(
                sdp,
                "a=rtpmap:{event} telephone-event/{rate}\r\na=fmtp:{event} 0-15\r\n",
                rate = Codec::CLOCK_RATE,
            );
        }
        let _ = write!(
            sdp,
            "a=ptime:{PTIME_MS}\r\na={direction}\r\n",
            direction = media.direction.attribute()
        );
        sdp
    }
}

impl Default for LocalSession {
    fn default() -> LocalSession {
        LocalSession::new()
    }
}
