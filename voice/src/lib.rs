//! The phone channel: switchboard as a SIP endpoint.
//!
//! ```text
//! carrier / PBX ──INVITE──▶ sip (trunk policy, B2BUA) ──▶ a phone session in the runtime
//! agent's phone ─REGISTER─▶ sip::registrar (digest, bindings with expiry)
//! the offer ────────────────▶ sip rings the agent's phone; the answer bridges the call
//! caller RTP ◀──hold audio── media::hold        caller RTP ◀──relay──▶ agent RTP (media::relay)
//! ```
//!
//! `call` is the call flow: an INVITE becomes a phone session in the
//! runtime (`actors::Switchboard`) and the caller hears hold audio.
//! `media` is pure RTP and SDP work on UDP sockets; `sip` is signalling on
//! top of rsipstack; `webrtc` is the browser as the agent's phone (str0m).
//! None of them holds routing logic: a call is a session, and
//! the runtime decides where it goes.

pub mod call;
pub mod media;
pub mod sip;
pub mod webrtc;
