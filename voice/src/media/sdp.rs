//! SDP for one phone call: a tolerant parser of the subset a call needs
//! (RFC 8866), offer/answer negotiation (RFC 3264) and the builder of
//! switchboard's own offers and answers.
//!
//! Hand-written (voice/RESEARCH.md §3): the crates found are JSEP-oriented
//! and do not know the static payload types 0 and 8 without `a=rtpmap`.
//! "Tolerant" means: LF or CRLF line ends, blank lines, unknown line types and
//! attributes, and other media sections are skipped; what a call cannot do
//! without (`v=0`, `o=`, a usable `m=audio`, a connection address) is
//! required, and every error names the line and what is wrong with it.
//!
//! switchboard speaks G.711 only (PCMU or PCMA) plus telephone-events, and
//! answers with exactly one codec, so the relay never transcodes.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

mod answer;

pub use answer::{
    Answer, LocalMedia, LocalSession, MediaFormat, NoCommonCodec, PTIME_MS, check_answer, negotiate,
};

/// Longest excerpt of offending input an error quotes.
const EXCERPT_LEN: usize = 40;

/// Why a body is not an SDP switchboard can use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// SDP is text; a binary body is not SDP.
    #[error("sdp is not utf-8 text")]
    NotUtf8,
    /// No lines at all.
    #[error("sdp is empty")]
    Empty,
    /// The first line must be `v=0` (RFC 8866 §5.1).
    #[error("sdp must start with v=0, found {found:?}")]
    NoVersion {
        /// The first line, shortened.
        found: String,
    },
    /// A line that is not `<letter>=<value>`.
    #[error("sdp line {line} is not <letter>=<value>: {found:?}")]
    NotALine {
        /// 1-based line number.
        line: usize,
        /// The line, shortened.
        found: String,
    },
    /// A known line whose value does not parse.
    #[error("sdp line {line}: bad {field}: {reason}")]
    BadField {
        /// 1-based line number.
        line: usize,
        /// What the line is, e.g. `o= (origin)` or `a=rtpmap`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No `o=` line.
    #[error("sdp has no o= (origin) line")]
    NoOrigin,
    /// No `m=audio` section, or none with a non-zero port.
    #[error("sdp has no audio stream (m=audio with a port other than 0)")]
    NoAudio,
    /// The audio stream uses a profile other than plain RTP (e.g. SRTP).
    #[error("sdp audio stream uses {profile:?}, switchboard speaks RTP/AVP only")]
    UnsupportedProfile {
        /// The transport protocol of the first audio stream.
        profile: String,
    },
    /// No `c=` line at session level nor in the audio section.
    #[error("sdp has no c= (connection) line for its audio stream")]
    NoConnection,
}

/// Media direction (RFC 3264 §5.1), from the point of view of the SDP's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both ways (the default when no attribute is given).
    #[default]
    SendRecv,
    /// The author only sends: it puts the other side on hold.
    SendOnly,
    /// The author only receives.
    RecvOnly,
    /// Neither: also a hold.
    Inactive,
}

impl Direction {
    /// The attribute name, as in `a=sendrecv`.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer gives to an offer with this direction
    /// (RFC 3264 §6.1): sendonly is answered recvonly and vice versa.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// The two G.711 codecs switchboard speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static payload type RFC 3551 assigns.
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The `a=rtpmap` encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Sampling rate, also the RTP clock rate.
    pub const CLOCK_RATE: u32 = 8000;

    fn from_static_payload_type(payload_type: u8) -> Option<Codec> {
        match payload_type {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    fn from_rtpmap(rtpmap: &RtpMap) -> Option<Codec> {
        if rtpmap.clock_rate != Codec::CLOCK_RATE || rtpmap.channels.unwrap_or(1) != 1 {
            return None;
        }
        [Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|codec| rtpmap.encoding.eq_ignore_ascii_case(codec.encoding_name()))
    }
}

/// The `o=` line: who made the SDP, and which version of it this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Often `-`.
    pub username: String,
    /// Kept as text: peers use numbers longer than 64 bits.
    pub session_id: String,
    /// Increments when the author changes its SDP (RFC 3264 §8).
    pub session_version: u64,
    /// The author's address as written (may be a host name).
    pub address: String,
}

/// An `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// The payload type it describes.
    pub payload_type: u8,
    /// E.g. `PCMU`, `telephone-event`; compared case-insensitively.
    pub encoding: String,
    /// Hz.
    pub clock_rate: u32,
    /// Audio channels, when given.
    pub channels: Option<u8>,
}

/// An `a=fmtp:<pt> <parameters>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The payload type it describes.
    pub payload_type: u8,
    /// The parameters as written, e.g. `0-15` for telephone-event.
    pub parameters: String,
}

/// The audio stream of an SDP: the first `m=audio` with RTP/AVP and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMedia {
    /// Where the author receives RTP.
    pub port: u16,
    /// Payload types in the author's order of preference.
    pub formats: Vec<u8>,
    /// A media-level `c=`, overriding the session-level one.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines of this section.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines of this section.
    pub fmtps: Vec<Fmtp>,
    /// Packetisation time in ms, when given.
    pub ptime: Option<u32>,
    /// A media-level direction, overriding the session-level one.
    pub direction: Option<Direction>,
}

impl AudioMedia {
    /// The `a=rtpmap` for a payload type, if the section has one.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps
            .iter()
            .find(|rtpmap| rtpmap.payload_type == payload_type)
    }

    /// The codec a payload type stands for: its `a=rtpmap`, else the static
    /// assignment (0 and 8 need no `a=rtpmap`).
    pub(super) fn codec(&self, payload_type: u8) -> Option<Codec> {
        match self.rtpmap(payload_type) {
            Some(rtpmap) => Codec::from_rtpmap(rtpmap),
            None => Codec::from_static_payload_type(payload_type),
        }
    }

    /// The first offered telephone-event payload type at 8 kHz.
    pub(super) fn telephone_event(&self) -> Option<u8> {
        self.formats.iter().copied().find(|&payload_type| {
            self.rtpmap(payload_type).is_some_and(|rtpmap| {
                rtpmap.encoding.eq_ignore_ascii_case("telephone-event")
                    && rtpmap.clock_rate == Codec::CLOCK_RATE
            })
        })
    }
}

/// A parsed SDP: what a phone call needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line.
    pub origin: Origin,
    /// The `s=` line (often `-`).
    pub session_name: String,
    /// The session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// A session-level direction attribute.
    pub direction: Option<Direction>,
    /// The audio stream.
    pub audio: AudioMedia,
}

/// Where and how the author of an SDP wants its audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Where to send RTP; `None` when the author asked for none (connection
    /// address 0.0.0.0, the RFC 2543 hold).
    pub address: Option<SocketAddr>,
    /// The author's direction; `sendonly`/`inactive` (or a 0.0.0.0
    /// address, which reads as `sendonly`) mean the author holds the call.
    pub direction: Direction,
}

impl RemoteMedia {
    /// The author puts the call on hold: it will not listen to us.
    pub fn is_hold(&self) -> bool {
        matches!(self.direction, Direction::SendOnly | Direction::Inactive)
    }
}

impl SessionDescription {
    /// Parses an SDP body (see the module doc for what is tolerated).
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        Parser::default().parse(text)
    }

    /// The audio stream's connection address: media level, else session level.
    pub fn connection_address(&self) -> IpAddr {
        self.audio
            .connection
            .or(self.connection)
            .expect("parse requires a connection address for the audio stream")
    }

    /// The audio stream's direction: media level, else session level, else sendrecv.
    pub fn direction(&self) -> Direction {
        self.audio.direction.or(self.direction).unwrap_or_default()
    }

    /// Where the author wants RTP and in which direction, with a 0.0.0.0
    /// connection address read as hold.
    pub fn remote_media(&self) -> RemoteMedia {
        let ip = self.connection_address();
        let direction = self.direction();
        if ip.is_unspecified() {
            let direction = match direction {
                Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
                Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
            };
            return RemoteMedia {
                address: None,
                direction,
            };
        }
        RemoteMedia {
            address: Some(SocketAddr::new(ip, self.audio.port)),
            direction,
        }
    }

    /// The author puts the call on hold (`sendonly`, `inactive` or c=0.0.0.0).
    pub fn is_hold(&self) -> bool {
        self.remote_media().is_hold()
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(text: &str) -> Result<SessionDescription, SdpError> {
        Parser::default().parse(text)
    }
}

/// Which section the parser is in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Before the first `m=`.
    #[default]
    Session,
    /// Inside the audio section we use.
    Audio,
    /// Inside any other media section: its lines are skipped.
    Other,
}

/// Parsing state, one line at a time.
#[derive(Debug, Default)]
struct Parser {
    section: Section,
    origin: Option<Origin>,
    session_name: String,
    connection: Option<IpAddr>,
    direction: Option<Direction>,
    audio: Option<AudioMedia>,
    /// The profile of the first audio stream that was not RTP/AVP, for the
    /// error when no usable one follows.
    unsupported_profile: Option<String>,
}

impl Parser {
    fn parse(mut self, text: &str) -> Result<SessionDescription, SdpError> {
        let mut lines = text
            .split('\n')
            .map(|line| line.trim_end_matches(['\r', ' ', '\t']))
            .enumerate()
            .map(|(index, line)| (index + 1, line))
            .filter(|(_, line)| !line.is_empty());
        let (_, first) = lines.next().ok_or(SdpError::Empty)?;
        if first.trim() != "v=0" {
            return Err(SdpError::NoVersion {
                found: excerpt(first),
            });
        }
        for (number, line) in lines {
            let bytes = line.as_bytes();
            if bytes.len() < 2 || !bytes[0].is_ascii_lowercase() || bytes[1] != b'=' {
                return Err(SdpError::NotALine {
                    line: number,
                    found: excerpt(line),
                });
            }
            self.line(number, bytes[0], &line[2..])?;
        }
        let origin = self.origin.ok_or(SdpError::NoOrigin)?;
        let audio = match (self.audio, self.unsupported_profile) {
            (Some(audio), _) => audio,
            (None, Some(profile)) => return Err(SdpError::UnsupportedProfile { profile }),
            (None, None) => return Err(SdpError::NoAudio),
        };
        if audio.connection.is_none() && self.connection.is_none() {
            return Err(SdpError::NoConnection);
        }
        Ok(SessionDescription {
            origin,
            session_name: self.session_name,
            connection: self.connection,
            direction: self.direction,
            audio,
        })
    }

    fn line(&mut self, number: usize, kind: u8, value: &str) -> Result<(), SdpError> {
        let bad = |field, reason| SdpError::BadField {
            line: number,
            field,
            reason,
        };
        match (kind, self.section) {
            (b'm', _) => self
                .media(value)
                .map_err(|reason| bad("m= (media)", reason)),
            (_, Section::Other) => Ok(()),
            (b'o', Section::Session) => {
                self.origin = Some(origin(value).map_err(|reason| bad("o= (origin)", reason))?);
                Ok(())
            }
            (b's', Section::Session) => {
                self.session_name = value.to_owned();
                Ok(())
            }
            (b'c', section) => {
                let address = connection(value).map_err(|reason| bad("c= (connection)", reason))?;
                match (section, self.audio.as_mut()) {
                    (Section::Audio, Some(audio)) => audio.connection = Some(address),
                    _ => self.connection = Some(address),
                }
                Ok(())
            }
            (b'a', section) => self.attribute(number, section, value),
            // t=, b=, i=, k=, … say nothing a call needs.
            _ => Ok(()),
        }
    }

    fn media(&mut self, value: &str) -> Result<(), &'static str> {
        let mut fields = value.split_ascii_whitespace();
        let media = fields.next().ok_or("empty")?;
        let port = fields.next().ok_or("no port")?;
        let profile = fields.next().ok_or("no transport protocol")?;
        self.section = Section::Other;
        if media != "audio" || self.audio.is_some() {
            return Ok(());
        }
        // `<port>/<count>`: the count does not matter for one audio stream.
        let port: u16 = port
            .split('/')
            .next()
            .and_then(|port| port.parse().ok())
            .ok_or("port is not a number from 0 to 65535")?;
        if !profile.eq_ignore_ascii_case("RTP/AVP") {
            self.unsupported_profile
                .get_or_insert_with(|| profile.to_owned());
            return Ok(());
        }
        let formats = fields
            .map(|format| format.parse::<u8>().ok().filter(|&pt| pt < 128))
            .collect::<Option<Vec<u8>>>()
            .ok_or("payload type is not a number from 0 to 127")?;
        if formats.is_empty() {
            return Err("no payload types");
        }
        if port == 0 {
            // A rejected or disabled stream: look for another.
            return Ok(());
        }
        self.section = Section::Audio;
        self.audio = Some(AudioMedia {
            port,
            formats,
            connection: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            direction: None,
        });
        Ok(())
    }

    fn attribute(&mut self, number: usize, section: Section, value: &str) -> Result<(), SdpError> {
        let (name, argument) = value.split_once(':').unwrap_or((value, ""));
        if let Some(direction) = Direction::from_attribute(name) {
            match (section, self.audio.as_mut()) {
                (Section::Audio, Some(audio)) => audio.direction = Some(direction),
                _ => self.direction = Some(direction),
            }
            return Ok(());
        }
        let Some(audio) = self.audio.as_mut().filter(|_| section == Section::Audio) else {
            return Ok(());
        };
        let bad = |field, reason| SdpError::BadField {
            line: number,
            field,
            reason,
        };
        match name {
            "rtpmap" => audio
                .rtpmaps
                .push(rtpmap(argument).map_err(|reason| bad("a=rtpmap", reason))?),
            "fmtp" => {
                let (payload_type, parameters) = argument.split_once(' ').unwrap_or((argument, ""));
                let payload_type = payload_type
                    .parse()
                    .map_err(|_| bad("a=fmtp", "payload type is not a number"))?;
                audio.fmtps.push(Fmtp {
                    payload_type,
                    parameters: parameters.trim().to_owned(),
                });
            }
            "ptime" => {
                let ptime = argument
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&ms| ms > 0)
                    .ok_or_else(|| bad("a=ptime", "not a positive number of milliseconds"))?;
                audio.ptime = Some(ptime);
            }
            _ => {}
        }
        Ok(())
    }
}

fn origin(value: &str) -> Result<Origin, &'static str> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [
        username,
        session_id,
        session_version,
        network,
        _address_type,
        address,
    ] = fields[..]
    else {
        return Err("expected 6 fields: username id version IN IP4 address");
    };
    if network != "IN" {
        return Err("network type is not IN");
    }
    Ok(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        session_version: session_version
            .parse()
            .map_err(|_| "session version is not a number")?,
        address: address.to_owned(),
    })
}

fn connection(value: &str) -> Result<IpAddr, &'static str> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [network, address_type, address] = fields[..] else {
        return Err("expected 3 fields: IN IP4 address");
    };
    if network != "IN" {
        return Err("network type is not IN");
    }
    // Multicast `address/ttl[/count]`: only the address matters.
    let address = address.split('/').next().unwrap_or(address);
    let ip: IpAddr = address
        .parse()
        .map_err(|_| "address is not an IP address")?;
    match (address_type, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        ("IP4" | "IP6", _) => Err("address does not match its address type"),
        _ => Err("address type is not IP4 or IP6"),
    }
}

fn rtpmap(argument: &str) -> Result<RtpMap, &'static str> {
    let (payload_type, encoding) = argument
        .split_once(' ')
        .ok_or("expected <payload type> <encoding>/<clock rate>")?;
    let payload_type = payload_type
        .parse::<u8>()
        .ok()
        .filter(|&pt| pt < 128)
        .ok_or("payload type is not a number from 0 to 127")?;
    let mut parts = encoding.trim().split('/');
    let name = parts
        .next()
        .filter(|name| !name.is_empty())
        .ok_or("no encoding name")?;
    let clock_rate = parts
        .next()
        .and_then(|rate| rate.parse().ok())
        .ok_or("clock rate is not a number")?;
    let channels = parts
        .next()
        .map(|channels| {
            channels
                .parse()
                .map_err(|_| "channel count is not a number")
        })
        .transpose()?;
    Ok(RtpMap {
        payload_type,
        encoding: name.to_owned(),
        clock_rate,
        channels,
    })
}

fn excerpt(text: &str) -> String {
    text.chars().take(EXCERPT_LEN).collect()
}

#[cfg(test)]
mod tests;
