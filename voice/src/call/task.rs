//! One call after its answer: the caller's leg, the ringing or connected
//! agent's leg, and the session's events, until both legs are down (the
//! tables in the module above say what each thing leads to).
//!
//! The task never decides who has the call: it asks the session (`accept`,
//! `reject`, `call_control`, `end_call`) and acts on the events the session
//! publishes, so a desktop action and a phone action meet in one place.

use std::sync::Arc;
use std::time::Duration;

use actors::{CallControl, CallEnd, CallEvent, Event, EventKind, Subscription, Switchboard};
use engine::ids::{AgentId, SessionId};
use engine::session::SessionState;
use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, TerminatedReason, TransactionHandle,
};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Method, Request, Response, StatusCode};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::browser::{BrowserCallLeg, CallCommand, next_browser_event};
use super::dial::answer_phone_offer;
use super::info::{InfoBody, info_body};
use super::monitor::{SupervisorCallLeg, SupervisorLegEvent, next_supervisor_event};
use super::monitor_browser::{SupervisorBrowserLeg, next_supervisor_browser_event};
use super::{FlowInner, LiveCall};
use crate::media::mix::Monitoring;
use crate::media::{
    AgentLeg, CallMedia, Direction, Dtmf, LocalMedia, LocalSession, RtpSocket, SessionDescription,
    check_answer, negotiate,
};
use crate::sip::metrics::{CallOutcome, call_ended};
use crate::sip::{Dialogs, Registrar};

/// How long a BYE or CANCEL may wait for its answer before it is left.
pub(super) const HANG_UP_WAIT: Duration = Duration::from_secs(5);

/// How often early media repeats its 183 (RFC 3261 Timer C is 3 minutes).
const EARLY_MEDIA_REFRESH: Duration = Duration::from_secs(60);

/// How often a call's end is tried when the session cannot take it now
/// (200 ms doubling to 2 s between tries: about 10 s in all).
const END_ATTEMPTS: u32 = 8;

/// One call's task; built by `run_call` once the caller is answered.
pub(super) struct CallTask {
    pub(super) inner: Arc<FlowInner>,
    pub(super) live: Arc<LiveCall>,
    /// Shown on the agent's phone.
    pub(super) caller_number: String,
    pub(super) caller_name: Option<String>,
    pub(super) caller_events: DialogStateReceiver,
    pub(super) session_events: Subscription,
    pub(super) dtmf: mpsc::UnboundedReceiver<Dtmf>,
    pub(super) dialogs: Dialogs,
    pub(super) registrar: Registrar,
    /// The caller leg's SDP identity and what it last said.
    pub(super) caller_sdp: LocalSession,
    pub(super) caller_media: LocalMedia,
    /// The agent's phone, ringing or connected.
    pub(super) agent: Option<AgentCallLeg>,
    /// The agent's browser as their phone, connecting or connected
    /// (browser.rs).
    pub(super) browser: Option<BrowserCallLeg>,
    /// Whom the session offers the call to now, as its events said.
    pub(super) offered: Option<AgentId>,
    /// Requests from outside (a browser's offer and candidates).
    pub(super) commands: mpsc::UnboundedReceiver<CallCommand>,
    /// A monitoring supervisor's phone, ringing or connected (monitor.rs).
    pub(super) supervisor: Option<SupervisorCallLeg>,
    /// Supervisors whose phone declined, never answered or hung up: not
    /// rung again until they stop following the call.
    pub(super) supervisors_done: Vec<AgentId>,
    /// A monitoring supervisor's browser, connecting or connected
    /// (monitor_browser.rs).
    pub(super) supervisor_browser: Option<SupervisorBrowserLeg>,
    /// Who follows the call, and how, as the session's `monitored` events said.
    pub(super) following: Vec<(AgentId, Monitoring)>,
    /// Whom the session is assigned to, as its events said.
    pub(super) assigned: Option<AgentId>,
    /// The call's end is recorded (or being recorded).
    pub(super) ended: bool,
    /// The caller's leg is up.
    pub(super) caller_up: bool,
    /// The caller has had 183 with early media, not 200 yet.
    pub(super) early: bool,
    /// An agent's phone answered at some point (for the outcome metric).
    pub(super) ever_answered: bool,
    /// Who ended the call, once known.
    pub(super) ended_by: Option<CallEnd>,
    /// The session holds the caller (its `held` and `resumed` events): a
    /// phone that answers later is bridged on hold.
    pub(super) held: bool,
}

/// The leg to an agent's phone.
pub(super) struct AgentCallLeg {
    agent: AgentId,
    dialog: InviteDialog,
    events: DialogStateReceiver,
    sdp: LocalSession,
    media: LocalMedia,
    /// The agent-facing RTP socket, offered in the INVITE; handed to the
    /// media task when the phone answers.
    socket: Option<RtpSocket>,
    answered: bool,
}

impl CallTask {
    pub(super) fn session(&self) -> SessionId {
        self.live.session
    }

    pub(super) fn switchboard(&self) -> &Switchboard {
        &self.inner.switchboard
    }

    pub(super) async fn run(mut self) {
        let mut session_open = true;
        // A period that never ticks when the timeout is off.
        let period = self
            .inner
            .rtp_timeout
            .unwrap_or(Duration::from_secs(86_400 * 365));
        let mut silence = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        silence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut caller_packets = self.caller_packets();
        // A proxy cancels an INVITE without a provisional response for 3
        // minutes (RFC 3261 Timer C): early media repeats its 183.
        let mut progress = tokio::time::interval_at(
            tokio::time::Instant::now() + EARLY_MEDIA_REFRESH,
            EARLY_MEDIA_REFRESH,
        );
        while self.caller_up
            || self.agent.is_some()
            || self.browser.is_some()
            || self.supervisor.is_some()
            || self.supervisor_browser.is_some()
        {
            tokio::select! {
                _ = progress.tick(), if self.early && self.caller_up => {
                    let sdp = self.caller_sdp.describe(&self.caller_media).into_bytes();
                    let headers = vec![Header::ContentType("application/sdp".into())];
                    if let Err(error) = self.live.caller_leg.ringing(Some(headers), Some(sdp)) {
                        debug!(session_id = %self.session(), %error, "183 not repeated");
                    }
                }
                state = self.caller_events.recv(), if self.caller_up => match state {
                    Some(state) => self.on_caller(state).await,
                    // The endpoint stopped: the caller's leg is gone with it.
                    None => {
                        self.caller_up = false;
                        self.end(CallEnd::Dropped).await;
                    }
                },
                state = next_agent_state(&mut self.agent) => match state {
                    Some(state) => self.on_agent(state).await,
                    None => self.drop_agent_leg(),
                },
                event = next_browser_event(&mut self.browser) => self.on_browser_event(event).await,
                event = next_supervisor_browser_event(&mut self.supervisor_browser) => {
                    self.on_supervisor_browser_event(event).await;
                }
                Some(command) = self.commands.recv() => self.on_command(command).await,
                event = next_supervisor_event(&mut self.supervisor) => match event {
                    SupervisorLegEvent::State(Some(state)) => self.on_supervisor(state).await,
                    SupervisorLegEvent::State(None) => self.drop_supervisor_leg(),
                    SupervisorLegEvent::RingLapsed => self.supervisor_ring_lapsed(),
                },
                event = self.session_events.recv(), if session_open => match event {
                    Some(event) => self.on_session(&event).await,
                    None => {
                        // The hub dropped a subscriber that fell behind: what
                        // the session does next would go unheard.
                        warn!(session_id = %self.session(), "lost the call's session events: hanging up");
                        session_open = false;
                        self.end(CallEnd::Dropped).await;
                        self.hang_up_all();
                    }
                },
                Some(dtmf) = self.dtmf.recv() => {
                    self.digits(dtmf.digit.to_string()).await;
                }
                // Before the 200 (early media) a carrier may send no RTP.
                _ = silence.tick(), if self.inner.rtp_timeout.is_some() && !self.ended && !self.early => {
                    let packets = self.caller_packets();
                    let sends = matches!(
                        self.caller_media.direction,
                        Direction::SendRecv | Direction::RecvOnly
                    );
                    if packets == caller_packets && sends {
                        warn!(session_id = %self.session(), timeout = ?period, "no rtp from the caller: taking the call as lost");
                        self.end(CallEnd::Dropped).await;
                        self.hang_up_all();
                    }
                    caller_packets = packets;
                }
                () = self.inner.stopping.cancelled(), if !self.ended => {
                    info!(session_id = %self.session(), "the server is stopping: hanging up");
                    self.end(CallEnd::Dropped).await;
                    self.hang_up_all();
                }
            }
        }
        let outcome = match (self.ever_answered, self.ended_by) {
            (true, _) => CallOutcome::Answered,
            (false, Some(CallEnd::Dropped)) => CallOutcome::Dropped,
            (false, _) => CallOutcome::Abandoned,
        };
        call_ended(outcome);
        debug!(session_id = %self.session(), outcome = outcome.as_str(), "call task done");
    }

    // ── the session ───────────────────────────────────────────────────

    async fn on_session(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Offered { agent, .. } => {
                self.offered = Some(agent.clone());
                if self.agent.as_ref().is_some_and(|leg| !leg.answered) {
                    // A leg left over from an earlier offer.
                    self.drop_agent_leg();
                }
                if self
                    .browser
                    .as_ref()
                    .is_some_and(|_| !self.browser_ringing_for(agent))
                {
                    self.drop_browser_leg();
                }
                if self.agent.is_none() {
                    self.ring(agent.clone()).await;
                }
            }
            EventKind::OfferLapsed { agent } if self.browser_ringing_for(agent) => {
                info!(session_id = %self.session(), agent_id = %agent, "offer lapsed: closing the agent's browser leg");
                self.offered = None;
                self.drop_browser_leg();
            }
            EventKind::OfferLapsed { agent } => {
                if self.offered.as_ref() == Some(agent) {
                    self.offered = None;
                }
                if self
                    .agent
                    .as_ref()
                    .is_some_and(|leg| &leg.agent == agent && !leg.answered)
                {
                    info!(session_id = %self.session(), agent_id = %agent, "offer lapsed: cancelling the agent's phone");
                    self.drop_agent_leg();
                }
            }
            EventKind::Assigned { agent, .. } => {
                self.assigned = Some(agent.clone());
                self.offered = None;
                // Accepted in the desktop: a phone that is not ringing yet
                // rings now to connect the call — unless their browser
                // takes it.
                let in_browser = self.browser.as_ref().is_some_and(|leg| leg.is_for(agent));
                if self.agent.is_none() && !in_browser && !self.ended {
                    self.ring(agent.clone()).await;
                }
            }
            EventKind::Transferred { .. } => {
                self.assigned = None;
                self.offered = None;
                self.held = false;
                self.drop_agent_leg();
                self.drop_browser_leg();
                self.media_result(self.live.media.release_agent());
            }
            EventKind::Call(CallEvent::Held) => {
                self.held = true;
                self.media_result(self.live.media.hold());
            }
            EventKind::Call(CallEvent::Resumed) => {
                self.held = false;
                let answered = self.agent.as_ref().is_some_and(|leg| leg.answered)
                    || self.browser.as_ref().is_some_and(|leg| leg.is_answered());
                if answered {
                    self.media_result(self.live.media.resume());
                }
            }
            EventKind::Call(CallEvent::Ended { by, .. }) => {
                self.ended_by.get_or_insert(*by);
                self.ended = true;
                self.hang_up_all();
            }
            EventKind::Closed { .. } | EventKind::Abandoned => {
                self.ended = true;
                self.hang_up_all();
            }
            EventKind::Monitored { by, mode } => self.on_monitored(by, *mode),
            _ => {}
        }
    }

    /// `agent`'s answered phone (desk or browser) went away: their hang-up.
    pub(super) async fn agent_hung_up(&mut self, agent: &AgentId) {
        let session = self.session();
        let hung_up = self
            .switchboard()
            .call_control(agent, session, CallControl::HangUp)
            .await;
        match hung_up {
            Ok(_) => {}
            // Transferred meanwhile: the call is no longer this agent's.
            Err(error) if error.code() == "not_your_session" => {
                debug!(session_id = %session, %error, "the phone's hang-up came after a transfer");
            }
            // The session cannot take it now: the call ends anyway
            // (retried), and every leg goes down.
            Err(error) => {
                warn!(session_id = %session, %error, "the phone's hang-up not taken: ending the call");
                self.end_and_hang_up(CallEnd::Agent).await;
            }
        }
    }

    /// Records the call's end and hangs every leg up.
    pub(super) async fn end_and_hang_up(&mut self, by: CallEnd) {
        self.end(by).await;
        self.hang_up_all();
    }

    /// Whether `agent`'s desk phone rings for the call (not answered).
    pub(super) fn agent_leg_ringing_for(&self, agent: &AgentId) -> bool {
        self.agent
            .as_ref()
            .is_some_and(|leg| &leg.agent == agent && !leg.answered)
    }

    /// Records the call's end (once).
    async fn end(&mut self, by: CallEnd) {
        if !self.ended {
            self.ended = true;
            self.ended_by.get_or_insert(by);
            record_end(self.switchboard(), self.session(), by).await;
        }
    }

    async fn digits(&self, digits: String) {
        debug!(session_id = %self.session(), %digits, "caller keyed digits");
        if let Err(error) = self
            .switchboard()
            .call_event(self.session(), CallEvent::Digits { digits })
            .await
        {
            debug!(session_id = %self.session(), %error, "digits not recorded");
        }
    }

    /// RTP packets taken from the caller so far (whatever became of them).
    fn caller_packets(&self) -> u64 {
        let from_caller = self.live.media.stats().from_caller;
        from_caller.relayed + from_caller.mixed + from_caller.absorbed + from_caller.send_failed
    }

    pub(super) fn media_result(&self, result: Result<(), crate::media::CallMediaEnded>) {
        if let Err(error) = result {
            warn!(session_id = %self.session(), %error, "call media gone");
        }
    }

    // ── the caller's leg ──────────────────────────────────────────────

    async fn on_caller(&mut self, state: DialogState) {
        match state {
            DialogState::Terminated(_, reason) => {
                self.caller_up = false;
                self.drop_agent_leg();
                self.drop_browser_leg();
                self.drop_supervisor_leg();
                self.drop_supervisor_browser_leg();
                self.end(caller_end(&reason)).await;
                info!(session_id = %self.session(), ?reason, "caller leg ended");
            }
            DialogState::Updated(_, request, handle) => {
                self.caller_offer(&request, handle).await;
            }
            DialogState::Info(_, request, handle) => match info_body(&request) {
                InfoBody::Digits(digits) => {
                    respond(&handle, StatusCode::OK, None).await;
                    self.digits(digits).await;
                }
                InfoBody::Empty => respond(&handle, StatusCode::OK, None).await,
                InfoBody::Unsupported(reason) => {
                    debug!(session_id = %self.session(), %reason, "INFO refused");
                    respond(&handle, StatusCode::UnsupportedMediaType, None).await;
                }
                InfoBody::Bad(reason) => {
                    debug!(session_id = %self.session(), %reason, "bad INFO");
                    respond(&handle, StatusCode::BadRequest, None).await;
                }
            },
            DialogState::Options(_, _, handle) => respond(&handle, StatusCode::OK, None).await,
            other => debug!(session_id = %self.session(), state = %other, "caller leg"),
        }
    }

    async fn caller_offer(&mut self, request: &Request, handle: TransactionHandle) {
        answer_caller_offer(
            self.session().to_string(),
            &mut self.caller_sdp,
            &mut self.caller_media,
            &self.live.media,
            request,
            handle,
        )
        .await;
    }

    // ── the agent's leg ───────────────────────────────────────────────

    /// INVITEs `agent`'s registered phone with the caller's codec.
    async fn ring(&mut self, agent: AgentId) {
        let session = self.session();
        if self.inner.softphones.prefers_browser(&agent) {
            debug!(session_id = %session, agent_id = %agent, "the agent takes calls in the browser: their desktop rings");
            return;
        }
        let display_name = self.caller_display_name();
        let Some(dialled) = self.dial(&agent, "agent", display_name) else {
            return;
        };
        info!(session_id = %session, agent_id = %agent, phone = %dialled.phone, "ringing the agent's phone");
        self.agent = Some(AgentCallLeg {
            agent: agent.clone(),
            dialog: dialled.dialog,
            events: dialled.events,
            sdp: dialled.sdp,
            media: dialled.media,
            socket: Some(dialled.socket),
            answered: false,
        });
        if let Err(error) = self
            .switchboard()
            .call_event(session, CallEvent::Ringing { agent })
            .await
        {
            debug!(session_id = %session, %error, "ringing not recorded");
        }
    }

    async fn on_agent(&mut self, state: DialogState) {
        let Some(leg) = self.agent.as_ref() else {
            return;
        };
        match state {
            DialogState::Confirmed(_, response) if !leg.answered => {
                self.agent_answered(&response).await;
            }
            DialogState::Updated(_, request, handle) => self.agent_offer(&request, handle).await,
            DialogState::Info(_, _, handle) | DialogState::Options(_, _, handle) => {
                respond(&handle, StatusCode::OK, None).await;
            }
            DialogState::Terminated(_, reason) => self.agent_leg_ended(reason).await,
            other => debug!(session_id = %self.session(), state = %other, "agent leg"),
        }
    }

    /// The agent's phone answered: the session takes the answer as the
    /// agent's accept, then the legs are bridged.
    async fn agent_answered(&mut self, response: &Response) {
        let session = self.session();
        let Some(leg) = self.agent.as_ref() else {
            return;
        };
        let agent = leg.agent.clone();
        let remote = SessionDescription::parse(&response.body)
            .map_err(|error| error.to_string())
            .and_then(|answer| {
                check_answer(&leg.media.format, &answer).map_err(|error| error.to_string())
            });
        let remote = match remote {
            Ok(remote) => remote,
            Err(error) => {
                warn!(session_id = %session, agent_id = %agent, %error, "the agent's phone answered with unusable sdp: hanging up");
                self.drop_agent_leg();
                self.reject(&agent).await;
                return;
            }
        };
        if !self.answer_is_accept(&agent).await {
            self.drop_agent_leg();
            return;
        }
        let Some(leg) = self.agent.as_mut() else {
            return;
        };
        leg.answered = true;
        self.ever_answered = true;
        self.answer_early_media_caller();
        let Some(leg) = self.agent.as_mut() else {
            return;
        };
        if let Some(socket) = leg.socket.take() {
            self.media_result(self.live.media.bridge(AgentLeg {
                socket,
                remote: remote.address,
            }));
            if self.held {
                // Held from the desktop while the phone rang.
                self.media_result(self.live.media.hold());
            }
        }
        info!(session_id = %session, agent_id = %agent, "call answered");
        if !self.record_answered(agent).await {
            self.drop_agent_leg();
        }
    }

    /// A phone of `agent`'s (desk or browser) answered: that is their
    /// accept, unless the desktop's accept won the race (its `assigned` not
    /// here yet). Whether the call is theirs; if not (the offer lapsed or
    /// the caller left meanwhile), the caller hangs that phone up.
    pub(super) async fn answer_is_accept(&mut self, agent: &AgentId) -> bool {
        if self.assigned.as_ref() == Some(agent) {
            return true;
        }
        let session = self.session();
        if let Err(error) = self.switchboard().accept(agent, session).await {
            let record = self.switchboard().session(session).await;
            let theirs = record.is_ok_and(|record| {
                record.state == SessionState::Assigned && record.agent.as_ref() == Some(agent)
            });
            if !theirs {
                info!(session_id = %session, agent_id = %agent, %error, "a phone answered an offer that is gone: hanging it up");
                return false;
            }
        }
        self.assigned = Some(agent.clone());
        true
    }

    /// Records `answered` by `agent`; false when the call is no longer
    /// theirs (transferred or ended meanwhile): the caller hangs their phone
    /// up, and the session's own event follows.
    pub(super) async fn record_answered(&self, agent: AgentId) -> bool {
        let session = self.session();
        let recorded = self
            .switchboard()
            .call_event(session, CallEvent::Answered { agent })
            .await;
        match recorded {
            Ok(_) => true,
            Err(error) if matches!(error.code(), "invalid_state" | "not_your_session") => {
                info!(session_id = %session, %error, "the answer came too late: hanging the phone up");
                false
            }
            Err(error) => {
                warn!(session_id = %session, %error, "answer not recorded");
                true
            }
        }
    }

    /// Early media until now: the caller's 200 goes with the agent's answer.
    pub(super) fn answer_early_media_caller(&mut self) {
        if !self.early {
            return;
        }
        self.early = false;
        let sdp = self.caller_sdp.describe(&self.caller_media).into_bytes();
        let headers = vec![Header::ContentType("application/sdp".into())];
        if let Err(error) = self.live.caller_leg.accept(Some(headers), Some(sdp)) {
            debug!(session_id = %self.session(), %error, "the caller's 200 not sent: the caller left");
        }
    }

    /// Whether `agent`'s desk phone answered the call.
    pub(super) fn agent_leg_answered_by(&self, agent: &AgentId) -> bool {
        self.agent
            .as_ref()
            .is_some_and(|leg| &leg.agent == agent && leg.answered)
    }

    /// The agent's phone's re-INVITE or UPDATE: hold and resume (as the
    /// desktop's buttons do), or its media moved.
    async fn agent_offer(&mut self, request: &Request, handle: TransactionHandle) {
        let session = self.session();
        let Some(leg) = self.agent.as_mut() else {
            return;
        };
        let Some(offer) =
            answer_phone_offer(session, &mut leg.sdp, &mut leg.media, request, handle).await
        else {
            return;
        };
        let (agent, answered) = (leg.agent.clone(), leg.answered);
        self.media_result(self.live.media.update_agent(offer.remote.address));
        if answered && offer.changed {
            let control = if offer.remote.is_hold() {
                CallControl::Hold
            } else {
                CallControl::Resume
            };
            if let Err(error) = self
                .switchboard()
                .call_control(&agent, session, control)
                .await
            {
                debug!(session_id = %session, %error, ?control, "phone's hold not recorded");
            }
        }
    }

    /// The agent's leg ended on the phone's side (or failed).
    async fn agent_leg_ended(&mut self, reason: TerminatedReason) {
        let Some(leg) = self.agent.take() else {
            return;
        };
        let session = self.session();
        let agent = leg.agent;
        if leg.answered {
            info!(session_id = %session, agent_id = %agent, ?reason, "the agent's phone hung up");
            self.media_result(self.live.media.release_agent());
            if self.ended {
                return;
            }
            self.agent_hung_up(&agent).await;
            return;
        }
        match reason {
            // Our own CANCEL, already accounted for.
            TerminatedReason::UacCancel => {}
            _ if self.assigned.as_ref() == Some(&agent) => {
                warn!(session_id = %session, agent_id = %agent, ?reason, "the assigned agent's phone did not answer: the caller waits on hold");
            }
            _ => {
                info!(session_id = %session, agent_id = %agent, ?reason, "the agent's phone declined: next agent");
                self.reject(&agent).await;
            }
        }
    }

    async fn reject(&self, agent: &AgentId) {
        if self.assigned.as_ref() == Some(agent) {
            return;
        }
        if let Err(error) = self.switchboard().reject(agent, self.session()).await {
            // The offer lapsed or the caller left meanwhile.
            debug!(session_id = %self.session(), agent_id = %agent, %error, "reject not taken");
        }
    }

    /// Hangs up the agent's leg (CANCEL while it rings, BYE once answered)
    /// without waiting; its end is not reported back.
    pub(super) fn drop_agent_leg(&mut self) {
        let Some(leg) = self.agent.take() else {
            return;
        };
        if leg.answered {
            self.media_result(self.live.media.release_agent());
        }
        // The port goes back now, not when the phone answers the CANCEL.
        let AgentCallLeg { dialog, socket, .. } = leg;
        drop(socket);
        self.hang_up_phone(dialog, "agent");
    }

    /// CANCEL (ringing) or BYE (answered) to a phone we rang, in the
    /// background; `role` names whose in logs.
    pub(super) fn hang_up_phone(&self, dialog: InviteDialog, role: &'static str) {
        let session = self.session();
        self.spawn_hang_up(async move {
            if let Err(error) = dialog.hangup().await {
                debug!(session_id = %session, role, %error, "failed to hang up the phone");
            }
        });
    }

    /// Runs a BYE or CANCEL in the background: bounded in time, stopped with
    /// the endpoint, and waited for by [`super::CallFlow::hang_up_all`].
    fn spawn_hang_up(&self, hang_up: impl std::future::Future<Output = ()> + Send + 'static) {
        let bounded = async move {
            // A peer that never answers: the transaction's own timeout is 32 s.
            let _ = tokio::time::timeout(HANG_UP_WAIT, hang_up).await;
        };
        let tracked = self.inner.hang_ups.track_future(bounded);
        self.dialogs.tasks.spawn(
            self.dialogs
                .cancel
                .clone()
                .run_until_cancelled_owned(tracked),
        );
    }

    /// The call is over: both legs go down, without waiting.
    fn hang_up_all(&mut self) {
        self.drop_agent_leg();
        self.drop_browser_leg();
        self.drop_supervisor_leg();
        self.drop_supervisor_browser_leg();
        self.media_result(self.live.media.stop());
        if self.caller_up {
            self.caller_up = false;
            let caller = self.live.caller_leg.clone();
            let session = self.session();
            if self.early {
                // Never answered: the INVITE ends with a final response.
                if let Err(error) = caller.reject(Some(StatusCode::TemporarilyUnavailable), None) {
                    debug!(session_id = %session, %error, "failed to end the caller's INVITE");
                }
                return;
            }
            self.spawn_hang_up(async move {
                if let Err(error) = caller.bye().await {
                    debug!(session_id = %session, %error, "failed to hang up the caller");
                }
            });
        }
    }
}

/// The agent leg's next state; pending while there is no leg.
async fn next_agent_state(leg: &mut Option<AgentCallLeg>) -> Option<DialogState> {
    match leg {
        Some(leg) => leg.events.recv().await,
        None => std::future::pending().await,
    }
}

/// The caller's re-INVITE or UPDATE: a session refresh, a hold, or its
/// media moved. Answered with our SDP; the codec stays. `call` names the
/// call in logs.
pub(super) async fn answer_caller_offer(
    call: String,
    sdp: &mut LocalSession,
    local: &mut LocalMedia,
    media: &CallMedia,
    request: &Request,
    handle: TransactionHandle,
) {
    if request.body.is_empty() {
        // A refresh without an offer: a re-INVITE gets our SDP as the
        // offer (the ACK answers it), an UPDATE a bare 200.
        let body = (request.method == Method::Invite).then(|| sdp.describe(local));
        return respond(&handle, StatusCode::OK, body).await;
    }
    let offer = match SessionDescription::parse(&request.body) {
        Ok(offer) => offer,
        Err(error) => {
            info!(%call, %error, "caller's new offer refused (488)");
            return respond(&handle, StatusCode::NotAcceptableHere, None).await;
        }
    };
    let accepted = negotiate(&offer)
        .ok()
        .filter(|answer| answer.format.codec == local.format.codec);
    let Some(answer) = accepted else {
        info!(%call, "caller's new offer drops the call's codec (488)");
        return respond(&handle, StatusCode::NotAcceptableHere, None).await;
    };
    local.direction = answer.direction;
    let body = sdp.describe(local);
    respond(&handle, StatusCode::OK, Some(body)).await;
    if let Err(error) = media.update_caller(answer.remote.address) {
        warn!(%call, %error, "call media gone");
    }
}

/// Answers an in-dialog request; a body is SDP.
pub(super) async fn respond(handle: &TransactionHandle, status: StatusCode, sdp: Option<String>) {
    let (headers, body) = match sdp {
        Some(sdp) => (
            Some(vec![Header::ContentType("application/sdp".into())]),
            Some(sdp.into_bytes()),
        ),
        None => (None, None),
    };
    if let Err(error) = handle.respond(status, headers, body).await {
        debug!(%error, "in-dialog answer not sent: the transaction is gone");
    }
}

/// Who ended a call, from how its caller leg terminated.
pub(super) fn caller_end(reason: &TerminatedReason) -> CallEnd {
    match reason {
        // BYE or CANCEL from the caller.
        TerminatedReason::UacBye | TerminatedReason::UacCancel => CallEnd::Caller,
        // No ACK, a transport failure, or our own answer: the call was lost.
        _ => CallEnd::Dropped,
    }
}

/// Records a call's end, trying again while the session recovers from a
/// failed write.
pub(super) async fn record_end(switchboard: &Switchboard, session: SessionId, by: CallEnd) {
    for attempt in 1..=END_ATTEMPTS {
        match switchboard.end_call(session, by).await {
            Ok(_) => return,
            Err(error)
                if attempt < END_ATTEMPTS
                    && matches!(
                        error.code(),
                        "unavailable" | "store_unavailable" | "outcome_unknown"
                    ) =>
            {
                debug!(session_id = %session, %error, attempt, "call end not taken yet");
                let backoff =
                    Duration::from_millis(200 << (attempt - 1).min(3)).min(Duration::from_secs(2));
                tokio::time::sleep(backoff).await;
            }
            Err(error) => {
                // The session keeps the call open until the next start
                // ends it as dropped.
                warn!(session_id = %session, ?by, %error, "failed to record the call's end");
                return;
            }
        }
    }
}
