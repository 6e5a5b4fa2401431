//! The browser as the agent's phone (docs/voice.md, "The browser as the
//! phone"): a WebRTC audio leg — ICE, DTLS-SRTP, G.711 — negotiated over the
//! agent's socket and bridged to the call's media task as if it were a SIP
//! phone.
//!
//! ```text
//!  browser ══SRTP══▶ browser socket ─▶ ┌──────────────┐ ─RTP─▶ the call's agent leg (CallMedia) ══▶ caller
//!  browser ◀══SRTP══ browser socket ◀─ │ str0m `Rtc`  │ ◀─RTP─ the call's agent leg (CallMedia) ◀══ caller
//!                                      └── one task ──┘   (loopback, `inner` socket)
//! ```
//!
//! The leg's task decrypts what the browser sends and forwards each audio
//! packet as plain RTP over loopback to the call's media task (its own SSRC
//! and sequence, the browser's timestamps, the call's payload type); the
//! plain RTP the media task sends it goes to the browser through str0m. The
//! call's media task does not know the difference: relaying, hold audio and
//! a supervisor's mix work as for a desk phone. The bridge costs one
//! loopback hop each way and no transcoding (the browser is offered exactly
//! the call's codec, PCMU or PCMA). Keypad tones from the browser
//! (`RTCDTMFSender`, RFC 4733 telephone-event) go on the same way, in the
//! call's telephone-event payload type — offered only when the caller's
//! phone negotiated one.
//!
//! str0m is sans-IO: the task owns the sockets and the clock and feeds it.

pub mod ice_servers;
pub mod metrics;
mod task;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::config::CryptoProvider;
use str0m::format::FormatParams;
use str0m::media::{Frequency, Pt};
use str0m::{Candidate, Rtc, RtcConfig};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::media::{Codec, MediaFormat, RtpSocket};

/// How long ICE and DTLS may take by default before the leg is given up
/// as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Our payload type for keypad tones (telephone-event/8000); an answer
/// takes the browser's own number for it.
const TELEPHONE_EVENT_PT: Pt = Pt::new_with_value(101);

/// Why a browser's offer or candidate is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WebRtcError {
    /// The offer is not SDP str0m can read.
    #[error("unusable sdp offer: {0}")]
    Offer(String),
    /// The offer has no audio in the call's codec.
    #[error("the offer has no {codec} audio (the call's codec)")]
    NoCommonCodec {
        /// PCMU or PCMA.
        codec: &'static str,
    },
    /// A trickled ICE candidate that does not parse.
    #[error("unusable ice candidate: {0}")]
    Candidate(String),
    /// The leg's task has ended.
    #[error("the browser's call leg has ended")]
    Ended,
}

/// What the leg reports to whoever holds the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowserEvent {
    /// ICE and DTLS are up: audio flows.
    Connected,
    /// The leg is over; no more events follow.
    Ended(BrowserEnd),
}

/// How a browser leg ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowserEnd {
    /// ICE or DTLS did not come up in time, or failed.
    Failed(String),
    /// Connected, then the browser went away (ICE disconnected, DTLS closed).
    Disconnected,
    /// [`BrowserLeg::close`], or the leg was dropped.
    Closed,
}

/// The leg's counters, written by its task, read at any time.
#[derive(Debug, Default)]
struct Counters {
    from_browser: AtomicU64,
    to_browser: AtomicU64,
    /// Audio from the media task before the browser's audio was set up.
    dropped_to_browser: AtomicU64,
    /// Interarrival jitter of the browser's audio, RTP units (RFC 3550).
    jitter_units: AtomicU32,
    /// Loss of the browser's audio as seen here, in 1/1000.
    loss_permille: AtomicU32,
    /// Round-trip time from RTCP, µs (0: not known yet).
    rtt_micros: AtomicU64,
    connected: std::sync::atomic::AtomicBool,
}

/// A browser leg's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BrowserStats {
    /// ICE and DTLS are up.
    pub connected: bool,
    /// Audio packets from the browser, forwarded to the call.
    pub from_browser: u64,
    /// Audio packets from the call, sent to the browser.
    pub to_browser: u64,
    /// Audio packets from the call that could not go yet (not connected).
    pub dropped_to_browser: u64,
    /// RFC 3550 interarrival jitter of the browser's audio.
    pub jitter: Duration,
    /// Fraction of the browser's audio lost on the way (0.0–1.0), from RTCP.
    pub loss: f32,
    /// Round-trip time from RTCP; `None` until measured.
    pub rtt: Option<Duration>,
}

impl Counters {
    fn snapshot(&self) -> BrowserStats {
        let rtt_micros = self.rtt_micros.load(Relaxed);
        BrowserStats {
            connected: self.connected.load(Relaxed),
            from_browser: self.from_browser.load(Relaxed),
            to_browser: self.to_browser.load(Relaxed),
            dropped_to_browser: self.dropped_to_browser.load(Relaxed),
            jitter: Duration::from_secs_f64(
                f64::from(self.jitter_units.load(Relaxed)) / f64::from(Codec::CLOCK_RATE),
            ),
            loss: self.loss_permille.load(Relaxed) as f32 / 1000.0,
            rtt: (rtt_micros > 0).then(|| Duration::from_micros(rtt_micros)),
        }
    }
}

/// A command to the leg's task.
#[derive(Debug)]
enum Command {
    Candidate(Candidate),
    Close,
}

/// One browser's audio leg of a call. Dropping it ends the leg (and frees
/// its ports); so does [`BrowserLeg::close`].
#[derive(Debug)]
pub struct BrowserLeg {
    commands: mpsc::UnboundedSender<Command>,
    /// Where the call's media task sends the browser's audio.
    inner_addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

/// A browser leg just answered: the leg, the SDP answer for the browser
/// and the leg's events.
#[derive(Debug)]
pub struct Answered {
    /// The leg.
    pub leg: BrowserLeg,
    /// The SDP answer to send to the browser.
    pub answer: String,
    /// [`BrowserEvent`]s, in order.
    pub events: mpsc::UnboundedReceiver<BrowserEvent>,
}

/// Where a browser leg's sockets are, where its audio goes, and how long
/// it may take to connect.
#[derive(Debug)]
pub struct BrowserLegSetup {
    /// The browser-facing socket (from the call's RTP port range).
    pub browser: RtpSocket,
    /// The address written in the host candidate (the public IP behind a
    /// NAT, else the socket's own).
    pub advertised: SocketAddr,
    /// The call's media task's socket for this leg (its agent leg):
    /// where the browser's audio goes as plain RTP.
    pub media_peer: SocketAddr,
    /// ICE and DTLS must be up within this ([`CONNECT_TIMEOUT`] by default).
    pub connect_timeout: Duration,
}

/// One crypto provider for every leg (each leg still makes its own DTLS
/// certificate).
fn crypto() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(str0m::crypto::from_feature_flags()))
        .clone()
}

impl BrowserLeg {
    /// Answers a browser's SDP `offer` for a call whose audio is `format`,
    /// and starts the leg's task on the current runtime. The answer offers
    /// only the call's codec (no transcoding); the browser's ICE
    /// candidates may follow ([`BrowserLeg::add_remote_candidate`]).
    pub fn answer(
        offer: &str,
        format: MediaFormat,
        sockets: BrowserLegSetup,
    ) -> Result<Answered, WebRtcError> {
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|error| WebRtcError::Offer(error.to_string()))?;
        let config = RtcConfig::new()
            .set_crypto_provider(crypto())
            .clear_codecs()
            .set_stats_interval(Some(Duration::from_secs(1)));
        let mut config = match format.codec {
            Codec::Pcmu => config.enable_pcmu(true, false),
            Codec::Pcma => config.enable_pcma(true, false),
        };
        // Keypad tones (RFC 4733) only when the caller's phone takes them:
        // the browser's digits go on to it as they came.
        if format.telephone_event.is_some() {
            config.codec_config().add_config(
                TELEPHONE_EVENT_PT,
                None,
                str0m::format::Codec::Tele,
                Frequency::EIGHT_KHZ,
                None,
                FormatParams {
                    telephone_event_max: Some(15),
                    ..FormatParams::default()
                },
            );
        }
        let mut rtc: Rtc = config.build(Instant::now());
        let candidate = Candidate::host(sockets.advertised, "udp")
            .map_err(|error| WebRtcError::Offer(format!("host candidate: {error}")))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|error| WebRtcError::Offer(error.to_string()))?;
        let answer = answer.to_sdp_string();
        if !answer_has_audio(&answer, format.codec) {
            return Err(WebRtcError::NoCommonCodec {
                codec: format.codec.encoding_name(),
            });
        }
        let inner = std::net::UdpSocket::bind(SocketAddr::new(
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            0,
        ))
        .and_then(|socket| {
            socket.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(socket)
        })
        .map_err(|error| WebRtcError::Offer(format!("no loopback socket: {error}")))?;
        let inner_addr = inner
            .local_addr()
            .map_err(|error| WebRtcError::Offer(error.to_string()))?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let task = task::LegTask::new(
            rtc,
            sockets,
            inner,
            format,
            command_rx,
            event_tx,
            Arc::clone(&counters),
        );
        let task = tokio::spawn(task.run());
        Ok(Answered {
            leg: BrowserLeg {
                commands,
                inner_addr,
                counters,
                task,
            },
            answer,
            events,
        })
    }

    /// Where the call's media task sends this leg's audio (the agent leg's
    /// remote address).
    pub fn media_addr(&self) -> SocketAddr {
        self.inner_addr
    }

    /// A trickled ICE candidate from the browser (`candidate:…`, as
    /// `RTCIceCandidate.candidate`). An empty one (end of candidates) is
    /// taken and ignored; beyond 16 a leg ignores more.
    pub fn add_remote_candidate(&self, candidate: &str) -> Result<(), WebRtcError> {
        let candidate = candidate.trim();
        let candidate = candidate.strip_prefix("a=").unwrap_or(candidate);
        if candidate.is_empty() {
            return Ok(());
        }
        let candidate = Candidate::from_sdp_string(candidate)
            .map_err(|error| WebRtcError::Candidate(error.to_string()))?;
        self.commands
            .send(Command::Candidate(candidate))
            .map_err(|_| WebRtcError::Ended)
    }

    /// The leg's figures now.
    pub fn stats(&self) -> BrowserStats {
        self.counters.snapshot()
    }

    /// Ends the leg: the browser is told (RTCP BYE, DTLS close_notify), the
    /// ports go back.
    pub async fn close(self) {
        let BrowserLeg { commands, task, .. } = self;
        // A task already gone has nothing left to close.
        let _ = commands.send(Command::Close);
        drop(commands);
        if let Err(error) = task.await {
            warn!(%error, "browser leg task failed");
        }
    }
}

/// Whether an SDP answer keeps an audio section with `codec` (str0m
/// answers a section it cannot take with port 0 and no codec of ours).
fn answer_has_audio(answer: &str, codec: Codec) -> bool {
    let rtpmap = format!("{}/8000", codec.encoding_name());
    answer
        .lines()
        .any(|line| line.starts_with("a=rtpmap:") && line.contains(&rtpmap))
}
