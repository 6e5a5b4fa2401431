//! The call flow: an incoming call becomes a phone session whose caller
//! hears hold audio while it waits; the offered agent's phone rings; the
//! answer bridges caller and agent; hold, transfer and hang-up follow the
//! session, whoever asked for them.
//!
//! ```text
//! IncomingCall ─▶ SDP offer ── garbage / no PCMU or PCMA ──▶ 488, no session
//!              ─▶ PortAllocator::allocate ── no port ───────▶ 503, no session
//!              ─▶ [voice.ivr] 200 OK, prompt, digits (ivr.rs) ── hang-up ─▶ no session
//!              ─▶ Switchboard::start_call ── refused ───────▶ 503 (BYE after the menu), no session
//!                                         ── CANCEL meanwhile ─▶ call `ended` by caller, abandoned
//!              ─▶ CallMedia::start (Hold) ─▶ 200 OK with the SDP answer
//!              ─▶ the call's task (task.rs) until both legs are down
//! ```
//!
//! The session is the one source of truth for who has the call: the
//! call's task acts on the session's own events ([`actors::Audience::Call`])
//! and tells the session what the SIP legs did.
//!
//! | session event                  | the call's task                                        |
//! |--------------------------------|--------------------------------------------------------|
//! | `offered` to an agent          | INVITEs the agent's registered phone, records `ringing` |
//! | `offer_lapsed` (timeout, reject) | CANCELs that phone                                   |
//! | `assigned` (desktop accept)    | keeps ringing; the phone's answer connects             |
//! | `transferred`                  | BYE to the agent's phone, hold audio, rings the next   |
//! | `call: held` / `resumed`       | hold audio / relay again                               |
//! | `call: ended`                  | BYE to whichever legs are up                           |
//! | `monitored` (a supervisor)     | rings their phone as a third leg, switches the mix, BYE on stop (monitor.rs) |
//!
//! | SIP                                   | the session                                      |
//! |---------------------------------------|--------------------------------------------------|
//! | the phone answers (200)               | `accept` (unless already assigned to it), `answered` |
//! | the phone declines (486, 603, …)      | `reject`: the next agent                         |
//! | the phone hangs up (BYE)              | `call_control(HangUp)`: `ended` by agent, wrap-up |
//! | the phone's re-INVITE holds / resumes | `call_control(Hold / Resume)`                    |
//! | the caller's BYE or CANCEL            | `end_call(Caller)`: abandoned, or wrap-up        |
//! | DTMF (RFC 4733 or INFO)               | `call: digits`                                   |
//!
//! One tokio task per call (on the endpoint's task tracker, so endpoint
//! shutdown waits for it) owns the call from the INVITE to its end; the
//! [`LiveCalls`] map (session → [`LiveCall`]) is how the rest of the
//! system sees a live call.
//!
//! [`CallFlow::hang_up_all`] ends every call when the process stops; a call
//! whose caller's RTP stops for `voice.rtp_timeout_secs` ends as dropped.

mod browser;
mod caller;
mod dial;
mod info;
mod ivr;
mod monitor;
mod monitor_browser;
mod task;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actors::{CallStart, Switchboard};
use engine::ids::{CustomerId, SessionId};
use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, StatusCode};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::media::{
    Answer, CallMedia, CallMediaConfig, Direction, LocalMedia, LocalSession, Mode, PortAllocator,
    PortError, SessionDescription, negotiate,
};
use crate::sip::metrics::{CALLS_ACTIVE, CallOutcome, call_ended};
use crate::sip::{CallHandler, IncomingCall, IvrConfig, VoiceConfig};

pub use browser::{BrowserCallError, Softphones};
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
    /// Agents who take calls in their browser.
    softphones: Softphones,
    /// The menu before the queue.
    ivr: IvrConfig,
    /// `voice.early_media`: 183 with SDP while queued, 200 on the answer.
    early_media: bool,
    /// `voice.rtp_timeout_secs`; `None` = never.
    rtp_timeout: Option<std::time::Duration>,
    /// Fired by [`CallFlow::hang_up_all`]: every call ends.
    stopping: tokio_util::sync::CancellationToken,
    /// BYEs and CANCELs on their way, which `hang_up_all` waits for.
    hang_ups: tokio_util::task::TaskTracker,
    /// Calls past the stopping check and not yet in `calls` (the menu, the
    /// runtime taking the call), which `hang_up_all` waits for too.
    setting_up: std::sync::Arc<std::sync::atomic::AtomicUsize>,
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
                ivr: config.ivr.clone(),
                early_media: config.early_media,
                rtp_timeout: (config.rtp_timeout_secs > 0)
                    .then(|| std::time::Duration::from_secs(config.rtp_timeout_secs)),
                stopping: tokio_util::sync::CancellationToken::new(),
                hang_ups: tokio_util::task::TaskTracker::new(),
                setting_up: Default::default(),
                softphones: Softphones::default(),
            }),
        })
    }

    /// The calls that are up now, by session.
    pub fn live_calls(&self) -> &LiveCalls {
        &self.inner.calls
    }

    /// Which agents take calls in their browser (their desktops say so).
    pub fn softphones(&self) -> &Softphones {
        &self.inner.softphones
    }

    /// RTP ports free now (every call holds one).
    pub fn n_free_ports(&self) -> usize {
        self.inner.ports.n_free()
    }

    /// The process is stopping: every call up ends now (`ended` by
    /// dropped, recorded while the runtime still runs; BYE to the caller
    /// and the agent's phone) and new calls are refused with 503. Waits
    /// up to `within` for the calls to be gone; returns how many were left.
    pub async fn hang_up_all(&self, within: std::time::Duration) -> usize {
        use std::sync::atomic::Ordering;
        self.inner.stopping.cancel();
        let deadline = tokio::time::Instant::now() + within;
        let up = || self.inner.calls.len() + self.inner.setting_up.load(Ordering::Acquire);
        while up() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The BYEs the calls sent on their way out, answered or given up.
        self.inner.hang_ups.close();
        let _ = tokio::time::timeout_at(deadline, self.inner.hang_ups.wait()).await;
        up()
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
        if self.lock().insert(call.session, call).is_none() {
            metrics::gauge!(CALLS_ACTIVE).increment(1.0);
        }
    }

    fn remove(&self, session: SessionId) -> Option<Arc<LiveCall>> {
        let removed = self.lock().remove(&session);
        if removed.is_some() {
            metrics::gauge!(CALLS_ACTIVE).decrement(1.0);
        }
        removed
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
    /// Requests to the call's task (a browser's offer and candidates).
    commands: tokio::sync::mpsc::UnboundedSender<browser::CallCommand>,
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

/// The whole life of one call: its setup here, then [`task::CallTask`].
async fn run_call(inner: Arc<FlowInner>, call: IncomingCall) {
    let IncomingCall {
        dialog,
        events,
        trunk,
        source,
        dialogs,
        registrar,
        ..
    } = call;
    if inner.stopping.is_cancelled() {
        info!(%trunk, %source, "call refused: the server is stopping");
        return reject(&dialog, StatusCode::ServiceUnavailable);
    }
    // Counted until the call is in `calls` (or gone), for `hang_up_all`.
    let setting_up = SettingUp::new(&inner.setting_up);
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
    let number = caller
        .as_ref()
        .map(|caller| caller.number.clone())
        .unwrap_or_default();
    let display_name = caller.and_then(|caller| caller.display_name);
    let local = LocalMedia {
        address: std::net::SocketAddr::new(inner.public_ip, socket.local_addr().port()),
        format: answer.format,
        direction: answer.direction,
    };
    let (dtmf_tx, mut dtmf) = tokio::sync::mpsc::unbounded_channel();
    let silent = answer.direction == Direction::Inactive;
    let mut sdp_session = LocalSession::new();
    let mut events = events;
    let mut local = local;

    // With the IVR, the caller is answered first and keys a choice; the
    // session starts with it. Without, the session starts first and the
    // answer follows.
    let start_media = |socket, dtmf_tx, mode| {
        CallMedia::start(
            socket,
            CallMediaConfig {
                format: answer.format,
                caller: answer.remote.address,
                mode: if silent { Mode::Stopped } else { mode },
            },
            Some(dtmf_tx),
        )
    };
    let (digits, media) = if inner.ivr.enabled {
        let media = start_media(socket, dtmf_tx, Mode::Prompt);
        let sdp = sdp_session.describe(&local);
        if let Err(error) = dialog.accept(
            Some(vec![Header::ContentType("application/sdp".into())]),
            Some(sdp.into_bytes()),
        ) {
            debug!(%trunk, %error, "failed to answer the call for the menu");
        }
        let collect = ivr::collect(
            &inner.ivr,
            ivr::MenuCall {
                events: &mut events,
                dtmf: &mut dtmf,
                sdp: &mut sdp_session,
                local: &mut local,
                media: &media,
                name: format!("{trunk}/{number}"),
            },
        );
        let menu = tokio::select! {
            menu = collect => menu,
            () = inner.stopping.cancelled() => {
                info!(%trunk, %number, "the server is stopping: hanging up a caller in the menu");
                call_ended(CallOutcome::Dropped);
                let _ = tokio::time::timeout(task::HANG_UP_WAIT, dialog.bye()).await;
                return;
            }
        };
        match menu {
            ivr::Menu::Keyed(digits) => (digits, MediaStage::Started(media)),
            ivr::Menu::HungUp => {
                info!(%trunk, %number, "caller hung up in the menu");
                call_ended(CallOutcome::Abandoned);
                return;
            }
        }
    } else {
        (String::new(), MediaStage::Pending(socket, dtmf_tx))
    };
    let start = CallStart {
        number: number.clone(),
        display_name: display_name.clone(),
        digits,
    };
    let asked = std::time::Instant::now();
    let started = inner.switchboard.start_call(start).await;
    let took = asked.elapsed();
    if took > SLOW_START {
        // The caller waits without a final answer meanwhile (a carrier
        // gives up after 32 s): say so, with what the runtime was doing.
        warn!(%trunk, %number, took_ms = took.as_millis() as u64, ok = started.is_ok(), "the runtime was slow to take a call");
    }
    let (customer, call_session) = match started {
        Ok(started) => started,
        Err(error) => {
            warn!(%trunk, %source, %number, code = error.code(), %error, "call rejected: the runtime refused it");
            if matches!(media, MediaStage::Started(_)) {
                // Answered for the menu: too late for a 503.
                call_ended(CallOutcome::Refused);
                if let Err(error) = dialog.bye().await {
                    debug!(%error, "failed to hang up a refused call");
                }
                return;
            }
            return reject(&dialog, StatusCode::ServiceUnavailable);
        }
    };
    let session = call_session.session;
    if let DialogState::Terminated(_, reason) = dialog.state() {
        // The caller gave up (CANCEL, or BYE after the menu) while the
        // runtime took the call.
        let by = task::caller_end(&reason);
        task::record_end(&inner.switchboard, session, by).await;
        call_ended(if by == actors::CallEnd::Dropped {
            CallOutcome::Dropped
        } else {
            CallOutcome::Abandoned
        });
        return;
    }
    let answered = matches!(media, MediaStage::Started(_));
    let media = match media {
        MediaStage::Started(media) => {
            if !silent && let Err(error) = media.hold() {
                warn!(session_id = %session, %error, "call media gone");
            }
            media
        }
        MediaStage::Pending(socket, dtmf_tx) => start_media(socket, dtmf_tx, Mode::Hold),
    };
    let (commands, command_rx) = tokio::sync::mpsc::unbounded_channel();
    let live = Arc::new(LiveCall {
        session,
        customer: customer.clone(),
        caller_leg: dialog.clone(),
        media,
        answer,
        commands,
    });
    inner.calls.insert(live.clone());
    let _registration = Registration {
        calls: &inner.calls,
        session,
    };
    drop(setting_up);
    info!(session_id = %session, customer_id = %customer, %number, %trunk, media = %local.address, "call queued");
    let early = !answered && inner.early_media;
    if !answered {
        let sdp = Some(sdp_session.describe(&local).into_bytes());
        let headers = Some(vec![Header::ContentType("application/sdp".into())]);
        // 183 with the SDP (early media) or 200; a CANCEL that won the race
        // is a Terminated on `events`.
        let sent = match early {
            true => dialog.ringing(headers, sdp),
            false => dialog.accept(headers, sdp),
        };
        if let Err(error) = sent {
            debug!(session_id = %session, %error, "failed to answer the call");
        }
    }
    task::CallTask {
        inner: inner.clone(),
        live,
        caller_number: number,
        caller_name: display_name,
        caller_events: events,
        session_events: call_session.events,
        dtmf,
        dialogs,
        registrar,
        caller_sdp: sdp_session,
        caller_media: local,
        agent: None,
        browser: None,
        offered: None,
        commands: command_rx,
        supervisor: None,
        supervisors_done: Vec::new(),
        supervisor_browser: None,
        following: Vec::new(),
        assigned: None,
        ended: false,
        caller_up: true,
        early,
        ever_answered: false,
        ended_by: None,
        held: false,
    }
    .run()
    .await;
}

/// A call whose session takes longer than this to start is logged.
const SLOW_START: std::time::Duration = std::time::Duration::from_secs(2);

/// One call being set up, counted in [`FlowInner::setting_up`] until dropped.
struct SettingUp(Arc<std::sync::atomic::AtomicUsize>);

impl SettingUp {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> SettingUp {
        count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        SettingUp(Arc::clone(count))
    }
}

impl Drop for SettingUp {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The caller's media before the session exists: started for the menu, or
/// its socket waiting for the answer.
enum MediaStage {
    Started(CallMedia),
    Pending(
        crate::media::RtpSocket,
        tokio::sync::mpsc::UnboundedSender<crate::media::Dtmf>,
    ),
}

/// Refuses a call before it is queued.
fn reject(dialog: &InviteDialog, status: StatusCode) {
    call_ended(CallOutcome::Refused);
    if let Err(error) = dialog.reject(Some(status), None) {
        // The caller cancelled meanwhile: the dialog is already over.
        debug!(%error, "failed to reject the call");
    }
}
