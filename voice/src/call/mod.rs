//! The call flow: an incoming call becomes a queued phone session whose
//! caller hears hold audio, and the caller hanging up ends it.
//!
//! ```text
//! IncomingCall ─▶ SDP offer ── garbage / no PCMU or PCMA ──▶ 488, no session
//!              ─▶ PortAllocator::allocate ── no port ───────▶ 503, no session
//!              ─▶ Switchboard::start_call ── refused ───────▶ 503, no session
//!                                         ── CANCEL meanwhile ─▶ call `ended` by caller, abandoned
//!              ─▶ CallMedia::start (Hold) ─▶ 200 OK with the SDP answer
//!              ─▶ LiveCalls[session] until the caller's BYE or CANCEL:
//!                 call `ended` by caller, customer_leave (a waiting session is
//!                 abandoned), media ended, port freed, the dialog removed
//! ```
//!
//! One tokio task per call (on the endpoint's task tracker, so endpoint
//! shutdown waits for it) owns the call from the INVITE to its end; the
//! [`LiveCalls`] map (session → [`LiveCall`]) is how the rest of the
//! system reaches a live call.
//!
//! Not built yet, and therefore absent from this module:
//! - ringing the offered agent's phone (`Dialogs::layer().do_invite_async`
//!   with the caller's negotiated format), `CallEvent::Ringing`/`Answered`,
//!   and `CallMedia::bridge` on the answer;
//! - hold, resume, transfer and hang-up from the desktop, and the agent's
//!   BYE (`CallEnd::Agent`, `talk_ms`);
//! - the caller's re-INVITE (hold from the caller's side) and INFO / RFC
//!   4733 digits (`CallEvent::Digits`); the IVR (`CallStart::digits` is `""`);
//! - ending live calls as dropped when the process stops (the runtime ends
//!   them at the next start).

mod caller;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actors::{CallEnd, CallEvent, CallStart, Switchboard};
use engine::ids::{CustomerId, SessionId};
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, StatusCode};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::media::{
    Answer, CallMedia, CallMediaConfig, Direction, LocalMedia, LocalSession, Mode, PortAllocator,
    PortError, SessionDescription, negotiate,
};
use crate::sip::{CallHandler, IncomingCall, VoiceConfig};

pub use caller::{Caller, caller_of, parse_identity};

/// Why a [`CallFlow`] cannot be built from the configuration.
#[derive(Debug, Error)]
pub enum CallFlowError {
    /// A `[voice]` key is wrong.
    #[error("config key `{key}`: {reason}")]
    Config {
        /// Dotted key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The RTP port range holds no usable port.
    #[error(transparent)]
    Ports(#[from] PortError),
}

/// Takes calls from the SIP endpoint and makes them phone sessions.
#[derive(Clone)]
pub struct CallFlow {
    inner: Arc<FlowInner>,
}

impl std::fmt::Debug for CallFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallFlow")
            .field("public_ip", &self.inner.public_ip)
            .field("n_live_calls", &self.inner.calls.len())
            .finish_non_exhaustive()
    }
}

struct FlowInner {
    switchboard: Switchboard,
    /// RTP sockets bind on the listen address's IP, in the configured range.
    ports: PortAllocator,
    /// Written into SDP answers (behind NAT it is not the bind address).
    public_ip: IpAddr,
    calls: LiveCalls,
}

impl CallFlow {
    /// A call flow over `switchboard` for a validated `config`, binding RTP on `config.listen`'s IP
    /// in `rtp_port_min..=rtp_port_max` and advertising the public address.
    pub fn new(switchboard: Switchboard, config: &VoiceConfig) -> Result<CallFlow, CallFlowError> {
        let config_error = |(key, reason)| CallFlowError::Config { key, reason };
        config.validate().map_err(config_error)?;
        let public_ip = config.public_ip().map_err(config_error)?;
        let ports = PortAllocator::new(
            config.listen.ip(),
            config.rtp_port_min..=config.rtp_port_max,
        )?;
        Ok(CallFlow {
            inner: Arc::new(FlowInner {
                switchboard,
                ports,
                public_ip,
                calls: LiveCalls::default(),
            }),
        })
    }

    /// The calls that are up now, by session.
    pub fn live_calls(&self) -> &LiveCalls {
        &self.inner.calls
    }

    /// RTP ports free now (every call holds one).
    pub fn n_free_ports(&self) -> usize {
        self.inner.ports.n_free()
    }
}

impl CallHandler for CallFlow {
    fn incoming_call(&self, call: IncomingCall) {
        let inner = Arc::clone(&self.inner);
        let dialogs = call.dialogs.clone();
        dialogs.tasks.spawn(
            dialogs
                .cancel
                .clone()
                .run_until_cancelled_owned(run_call(inner, call)),
        );
    }
}

/// The live calls, by the session each one is.
#[derive(Default)]
pub struct LiveCalls {
    calls: Mutex<HashMap<SessionId, Arc<LiveCall>>>,
}

impl LiveCalls {
    /// The call that is `session`, while it is up.
    pub fn get(&self, session: SessionId) -> Option<Arc<LiveCall>> {
        self.lock().get(&session).cloned()
    }

    /// The sessions of the calls that are up.
    pub fn sessions(&self) -> Vec<SessionId> {
        self.lock().keys().copied().collect()
    }

    /// How many calls are up.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No call is up.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn insert(&self, call: Arc<LiveCall>) {
        self.lock().insert(call.session, call);
    }

    fn remove(&self, session: SessionId) -> Option<Arc<LiveCall>> {
        self.lock().remove(&session)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<LiveCall>>> {
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One answered call: what the next steps (ringing the agent, bridging,
/// hold and hang-up from the desktop) act on.
pub struct LiveCall {
    /// The session the call is.
    pub session: SessionId,
    /// The caller as a customer.
    pub customer: CustomerId,
    /// The caller's leg (UAS).
    pub caller_leg: InviteDialog,
    /// The call's media task: hold audio now, the bridge later.
    pub media: CallMedia,
    /// The negotiated codec and telephone-event payload type, which the
    /// agent's phone will be offered exactly.
    pub answer: Answer,
}

impl std::fmt::Debug for LiveCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCall")
            .field("session", &self.session)
            .field("customer", &self.customer)
            .field("caller_leg", &self.caller_leg.id())
            .field("media", &self.media.local_addr())
            .finish_non_exhaustive()
    }
}

/// Removes a call from the map when its task ends, however it ends (the
/// endpoint's shutdown cancels the task); dropping the last `Arc` ends
/// the media task and frees the port.
struct Registration<'a> {
    calls: &'a LiveCalls,
    session: SessionId,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.calls.remove(self.session);
    }
}

/// The whole life of one call.
async fn run_call(inner: Arc<FlowInner>, call: IncomingCall) {
    let IncomingCall {
        dialog,
        mut events,
        trunk,
        source,
        ..
    } = call;
    let invite = dialog.initial_request();
    let answer = match SessionDescription::parse(&invite.body) {
        Ok(offer) => match negotiate(&offer) {
            Ok(answer) => answer,
            Err(error) => {
                info!(%trunk, %source, %error, "call rejected: no common codec");
                return reject(&dialog, StatusCode::NotAcceptableHere);
            }
        },
        Err(error) => {
            info!(%trunk, %source, %error, "call rejected: unusable sdp offer");
            return reject(&dialog, StatusCode::NotAcceptableHere);
        }
    };
    // Before the session: a call that cannot have media is not queued.
    let socket = match inner.ports.allocate() {
        Ok(socket) => socket,
        Err(error) => {
            warn!(%trunk, %source, %error, "call rejected: no rtp port");
            return reject(&dialog, StatusCode::ServiceUnavailable);
        }
    };
    let caller = caller_of(&invite);
    let start = CallStart {
        number: caller
            .as_ref()
            .map(|caller| caller.number.clone())
            .unwrap_or_default(),
        display_name: caller.and_then(|caller| caller.display_name),
        digits: String::new(),
    };
    let number = start.number.clone();
    let (customer, call_session) = match inner.switchboard.start_call(start).await {
        Ok(started) => started,
        Err(error) => {
            warn!(%trunk, %source, %number, code = error.code(), %error, "call rejected: the runtime refused it");
            return reject(&dialog, StatusCode::ServiceUnavailable);
        }
    };
    let session = call_session.session;
    if let DialogState::Terminated(_, reason) = dialog.state() {
        // The caller gave up (CANCEL) while the runtime took the call.
        return end_session(&inner, &customer, session, end_of(&reason)).await;
    }
    let local = LocalMedia {
        address: std::net::SocketAddr::new(inner.public_ip, socket.local_addr().port()),
        format: answer.format,
        direction: answer.direction,
    };
    let media = CallMedia::start(
        socket,
        CallMediaConfig {
            format: answer.format,
            caller: answer.remote.address,
            mode: if answer.direction == Direction::Inactive {
                Mode::Stopped
            } else {
                Mode::Hold
            },
        },
        None,
    );
    let sdp = LocalSession::new().describe(&local);
    inner.calls.insert(Arc::new(LiveCall {
        session,
        customer: customer.clone(),
        caller_leg: dialog.clone(),
        media,
        answer,
    }));
    let registration = Registration {
        calls: &inner.calls,
        session,
    };
    info!(session_id = %session, customer_id = %customer, %number, %trunk, media = %local.address, "call queued");
    if let Err(error) = dialog.accept(
        Some(vec![Header::ContentType("application/sdp".into())]),
        Some(sdp.into_bytes()),
    ) {
        // A CANCEL won the race: its Terminated is on `events`.
        debug!(session_id = %session, %error, "failed to answer the call");
    }
    let by = loop {
        match events.recv().await {
            Some(DialogState::Terminated(_, reason)) => break end_of(&reason),
            Some(state) => debug!(session_id = %session, ?state, "caller leg state"),
            // The endpoint stopped: the call is gone with it.
            None => break CallEnd::Dropped,
        }
    };
    drop(registration);
    end_session(&inner, &customer, session, by).await;
}

/// Who ended a call, from how its caller leg terminated.
fn end_of(reason: &TerminatedReason) -> CallEnd {
    match reason {
        // BYE or CANCEL from the caller.
        TerminatedReason::UacBye | TerminatedReason::UacCancel => CallEnd::Caller,
        // No ACK, a transport failure, or our own answer: the call was lost.
        _ => CallEnd::Dropped,
    }
}

/// Records the end and lets the customer leave the session (a waiting
/// session is abandoned). The media and port went with the map entry.
async fn end_session(inner: &FlowInner, customer: &CustomerId, session: SessionId, by: CallEnd) {
    let ended = CallEvent::Ended { by, talk_ms: 0 };
    if let Err(error) = inner.switchboard.call_event(session, ended).await {
        warn!(session_id = %session, %error, "failed to record the call's end");
    }
    if let Err(error) = inner.switchboard.customer_leave(customer, session).await {
        warn!(session_id = %session, %error, "failed to close the call's session");
    }
    info!(session_id = %session, ?by, "call ended");
}

fn reject(dialog: &InviteDialog, status: StatusCode) {
    if let Err(error) = dialog.reject(Some(status), None) {
        // The caller cancelled meanwhile: the dialog is already over.
        debug!(%error, "failed to reject the call");
    }
}
