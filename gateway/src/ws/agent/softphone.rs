//! The browser as the agent's phone (docs/voice.md, "The browser as the
//! phone"; PROTOCOL.md §5.1): `softphone` chooses it for this socket's
//! agent, `webrtc_offer` and `webrtc_candidate` negotiate a call's WebRTC
//! leg with the call flow, which answers with `webrtc_answer` — the agent's
//! answer to a call, or (`monitor: true`) a supervisor's ear on a call they
//! follow.
//!
//! The choice belongs to the socket that made it: when that socket closes,
//! the agent's desk phone rings again (a call already connected in the
//! browser goes on: its audio does not pass through the socket).

use std::sync::atomic::{AtomicU64, Ordering};

use engine::ids::AgentId;
use serde::{Deserialize, Serialize};
use voice::call::{BrowserCallError, CallFlow};
use voice::webrtc::ice_servers::{self, IceServer, IceTransportPolicy};

use super::{AgentHandler, listing};
use crate::wire::WireSession;
use crate::ws::frames::ClientFrame;
use crate::ws::link::{Flow, Link};
use crate::ws::replies::Replier;

/// Longest SDP offer taken (a browser's audio-only offer is ~2–4 KiB).
pub const MAX_SDP_BYTES: usize = 16 * 1024;
/// Longest ICE candidate line taken.
pub const MAX_CANDIDATE_BYTES: usize = 1024;

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct Softphone {
    /// True: calls ring this browser; false: the desk phone again.
    on: bool,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct WebRtcOffer {
    session: WireSession,
    sdp: String,
    /// True: a supervisor's browser hears a call they follow (`monitor`),
    /// rather than the agent's answering it.
    #[serde(default)]
    monitor: bool,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
pub(super) struct WebRtcCandidate {
    session: WireSession,
    candidate: String,
}

#[derive(Serialize)]
struct WebRtcAnswer {
    session: WireSession,
    sdp: String,
}

#[derive(Serialize)]
struct SoftphoneBody {
    on: bool,
    /// The STUN/TURN servers the browser uses (`voice.ice_servers`), TURN
    /// credentials minted for this agent; empty when off.
    ice_servers: Vec<IceServer>,
    /// `relay`: the browser uses only TURN relays (`voice.ice_transport_policy`).
    ice_transport_policy: IceTransportPolicy,
    /// When the soonest minted TURN credentials expire (ms since the Unix
    /// epoch): the page asks again before then.
    #[serde(skip_serializing_if = "Option::is_none")]
    ice_expires_at: Option<u64>,
}

/// One socket's choice of the browser as its agent's phone, given back
/// when dropped (the socket closed, or `softphone` off).
pub(super) struct SoftphoneChoice {
    calls: CallFlow,
    agent: AgentId,
    connection: u64,
}

impl SoftphoneChoice {
    fn choose(calls: &CallFlow, agent: &AgentId) -> SoftphoneChoice {
        static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);
        let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        calls.softphones().choose_browser(agent, connection);
        SoftphoneChoice {
            calls: calls.clone(),
            agent: agent.clone(),
            connection,
        }
    }
}

impl Drop for SoftphoneChoice {
    fn drop(&mut self) {
        self.calls
            .softphones()
            .release(&self.agent, self.connection);
    }
}

/// The refusal when the phone channel is off.
const PHONE_OFF: &str = "the phone channel is off on this server (voice.enabled)";

/// The refusal of a socket that is not the agent's phone (now).
const NOT_THE_PHONE: &str = "this browser is not your phone now: send `softphone` on first (another of your desktops may have taken it)";

impl AgentHandler {
    /// Whether this socket is its agent's phone now (the last to choose).
    fn is_the_phone(&self, calls: &CallFlow) -> bool {
        self.softphone
            .as_ref()
            .is_some_and(|choice| calls.softphones().holds(&choice.agent, choice.connection))
    }

    /// The call flow; `None` when the phone channel is off.
    fn call_flow(&self) -> Option<CallFlow> {
        self.state.calls.clone()
    }

    /// The call flow for a negotiation frame whose `field` is `len` bytes
    /// (at most `limit`) — or the refusal's code and message.
    fn negotiation(
        &self,
        field: &str,
        len: usize,
        limit: usize,
    ) -> Result<CallFlow, (&'static str, String)> {
        if len > limit {
            let message = format!("field `{field}`: {len} bytes is over the limit of {limit}");
            return Err(("invalid_message", message));
        }
        let calls = self
            .call_flow()
            .ok_or(("unavailable", PHONE_OFF.to_owned()))?;
        if !self.is_the_phone(&calls) {
            return Err(("invalid_state", NOT_THE_PHONE.to_owned()));
        }
        Ok(calls)
    }

    pub(super) async fn on_softphone(
        &mut self,
        link: &mut Link,
        replier: &Replier,
        frame: ClientFrame,
    ) -> Flow {
        let (softphone, request_id) = match frame.fields::<Softphone>() {
            Ok(fields) => fields,
            Err(err) => return link.send_error(err).await,
        };
        let Some(calls) = self.call_flow() else {
            return replier.refuse(link, "unavailable", PHONE_OFF.into()).await;
        };
        // Dropping an earlier choice first gives it back.
        self.softphone = None;
        if softphone.on {
            self.softphone = Some(SoftphoneChoice::choose(&calls, &self.profile.id));
        }
        let voice = &self.state.config.voice;
        let now = std::time::SystemTime::now();
        let (ice_servers, ice_expires_at) = match softphone.on {
            true => (
                ice_servers::for_agent(&voice.ice_servers, self.profile.id.as_str(), now),
                ice_servers::minted_expiry(&voice.ice_servers, now).map(unix_ms),
            ),
            false => (Vec::new(), None),
        };
        let body = SoftphoneBody {
            on: softphone.on,
            ice_servers,
            ice_transport_policy: voice.ice_transport_policy,
            ice_expires_at,
        };
        link.send(&listing("softphone", request_id, body)).await
    }

    pub(super) async fn on_webrtc_offer(
        &mut self,
        link: &mut Link,
        replier: &Replier,
        frame: ClientFrame,
    ) -> Flow {
        let (offer, request_id) = match frame.fields::<WebRtcOffer>() {
            Ok(fields) => fields,
            Err(err) => return link.send_error(err).await,
        };
        let calls = match self.negotiation("sdp", offer.sdp.len(), MAX_SDP_BYTES) {
            Ok(calls) => calls,
            Err((code, message)) => return replier.refuse(link, code, message).await,
        };
        let session = offer.session;
        let answered = match offer.monitor {
            true => {
                calls
                    .monitor_offer(&self.profile.id, session.0, offer.sdp)
                    .await
            }
            false => {
                calls
                    .browser_offer(&self.profile.id, session.0, offer.sdp)
                    .await
            }
        };
        match answered {
            Ok(sdp) => {
                let body = WebRtcAnswer { session, sdp };
                link.send(&listing("webrtc_answer", request_id, body)).await
            }
            Err(error) => refuse(link, replier, error).await,
        }
    }

    pub(super) async fn on_webrtc_candidate(
        &mut self,
        link: &mut Link,
        replier: &Replier,
        frame: ClientFrame,
    ) -> Flow {
        let (candidate, _) = match frame.fields::<WebRtcCandidate>() {
            Ok(fields) => fields,
            Err(err) => return link.send_error(err).await,
        };
        let size = candidate.candidate.len();
        let calls = match self.negotiation("candidate", size, MAX_CANDIDATE_BYTES) {
            Ok(calls) => calls,
            Err((code, message)) => return replier.refuse(link, code, message).await,
        };
        match calls
            .browser_candidate(&self.profile.id, candidate.session.0, candidate.candidate)
            .await
        {
            Ok(()) => replier.result(link, Ok(())).await,
            Err(error) => refuse(link, replier, error).await,
        }
    }
}

/// An error frame for a refused offer or candidate.
async fn refuse(link: &mut Link, replier: &Replier, error: BrowserCallError) -> Flow {
    replier.refuse(link, error.code(), error.to_string()).await
}

/// A time as milliseconds since the Unix epoch (PROTOCOL.md §2).
fn unix_ms(at: std::time::SystemTime) -> u64 {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}
