//! Media: SDP offers and answers, RTP packets, G.711, hold audio, the relay.
//!
//! Everything about a call's audio and nothing about SIP. The SIP side
//! negotiates with [`sdp`], takes a socket from [`ports`], and hands it to a
//! [`CallMedia`]: one tokio task per call that plays hold audio to the caller
//! or relays RTP between the caller and the agent's phone, switched by
//! commands at any time.
//!
//! ```text
//!  INVITE offer ─▶ sdp::negotiate ─▶ Answer (codec, telephone-event, caller address)
//!  PortAllocator::allocate ─▶ RtpSocket ─▶ CallMedia::start (Hold) ─▶ 200 OK answer (LocalSession::describe)
//!  agent answers ─▶ CallMedia::bridge(AgentLeg)      re-INVITE hold ─▶ CallMedia::hold / resume
//!  BYE ─▶ CallMedia::end ─▶ CallStatsSnapshot        DTMF digits ─▶ the channel given to start
//! ```
//!
//! **Invariant:** the relay forwards datagrams byte for byte. It never
//! transcodes nor rewrites headers; that is why the agent is offered exactly
//! the caller's negotiated codec and telephone-event payload type. The one
//! exception is a party that hears two others while a supervisor is on the
//! call ([`mix`]): it gets their G.711 audio summed, in a stream of its own.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod call;
pub mod g711;
pub mod hold;
mod latch;
pub mod metrics;
pub mod mix;
pub mod ports;
pub mod rtp;
pub mod sdp;
mod stats;

pub use call::{AgentLeg, CallMedia, CallMediaConfig, CallMediaEnded, Mode};
pub use ports::{PortAllocator, PortError, RtpSocket};
pub use rtp::Dtmf;
pub use sdp::{
    Answer, Codec, Direction, LocalMedia, LocalSession, MediaFormat, NoCommonCodec, RemoteMedia,
    SdpError, SessionDescription, check_answer, negotiate,
};
pub use stats::{CallStatsSnapshot, InboundSnapshot, LatencyHistogramSnapshot, LatencySummary};

/// 32 random bits for SSRCs and initial sequence numbers and timestamps,
/// from the OS; without OS randomness, from the clock and a counter, which
/// keeps streams of one process apart.
pub(crate) fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_ok() {
        return u32::from_be_bytes(bytes);
    }
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    nanos ^ COUNTER.fetch_add(0x9E37_79B9, std::sync::atomic::Ordering::Relaxed)
}
