//! A supervisor following a phone call (docs/supervisor.md, "Monitoring
//! calls"): the session's `monitored` events ring the supervisor's
//! registered phone as a third leg and switch who hears whom on it.
//!
//! | the session / the phone                     | the supervisor's leg                                  |
//! |---------------------------------------------|-------------------------------------------------------|
//! | `monitored` listen / whisper / barge, no leg | INVITE to the supervisor's phone (the caller's codec) |
//! | the phone answers (200)                     | the media task takes it (`CallMedia::supervise`)      |
//! | `monitored` with another mode               | `CallMedia::monitor`: who hears whom changes at once  |
//! | `monitored` stop, or the call ends          | CANCEL or BYE, the port freed                         |
//! | the phone hangs up (BYE)                    | `monitor_session(stop)`: recorded like the desktop's Stop |
//! | the phone declines, or rings [`RING_TIMEOUT`] unanswered | CANCEL; not rung again for this follow: the supervisor follows in the desktop |
//! | the phone's own hold (re-INVITE)            | answered; nothing is sent to it until it resumes      |
//!
//! A supervisor who takes calls in the browser hears the call there instead
//! (monitor_browser.rs). One supervisor's phone (or browser) per call: a
//! second supervisor following the same call follows it in the desktop
//! (logged). A supervisor whose phone
//! declined (or hung up) is not rung again until they stop following the
//! call and start again.

use std::time::Duration;

use actors::Switchboard;
use engine::ids::{AgentId, SessionId};
use engine::supervision::{Actor, MonitorMode};
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Response, StatusCode};
use tracing::{debug, info, warn};

use super::dial::answer_phone_offer;
use super::task::{CallTask, respond};
use crate::media::mix::Monitoring;
use crate::media::{
    AgentLeg, LocalMedia, LocalSession, RtpSocket, SessionDescription, check_answer,
};

/// How long a supervisor's phone rings before it is taken as unanswered.
pub(super) const RING_TIMEOUT: Duration = Duration::from_secs(30);

/// The leg to a monitoring supervisor's phone.
pub(super) struct SupervisorCallLeg {
    supervisor: AgentId,
    dialog: InviteDialog,
    events: DialogStateReceiver,
    sdp: LocalSession,
    media: LocalMedia,
    /// Offered in the INVITE; the media task's once the phone answers.
    socket: Option<RtpSocket>,
    answered: bool,
    /// Until when it may ring unanswered.
    rings_until: tokio::time::Instant,
    /// How they follow the call, as the session's last `monitored` said.
    monitoring: Monitoring,
}

impl SupervisorCallLeg {
    /// The leg rings or reaches `supervisor`'s phone.
    pub(super) fn is_for(&self, supervisor: &AgentId) -> bool {
        &self.supervisor == supervisor
    }
}

/// The media's name for a mode of the session's.
fn monitoring(mode: MonitorMode) -> Monitoring {
    match mode {
        MonitorMode::Listen => Monitoring::Listen,
        MonitorMode::Whisper => Monitoring::Whisper,
        MonitorMode::Barge => Monitoring::Barge,
    }
}

impl CallTask {
    /// The session's `monitored` event: `by` follows the call as `mode`
    /// says, or stopped (`None`).
    pub(super) fn on_monitored(&mut self, by: &Actor, mode: Option<MonitorMode>) {
        let Actor::Supervisor(supervisor) = by else {
            return;
        };
        self.note_follower(supervisor, mode.map(monitoring));
        if self.on_monitored_in_browser(supervisor, mode.map(monitoring)) {
            return;
        }
        let session = self.session();
        let leg = self.supervisor.as_mut();
        match (mode.map(monitoring), leg) {
            (Some(mode), Some(leg)) if &leg.supervisor == supervisor => {
                leg.monitoring = mode;
                if leg.answered {
                    let switched = self.live.media.monitor(mode);
                    self.media_result(switched);
                }
            }
            (Some(_), Some(leg)) => {
                info!(session_id = %session, supervisor = %supervisor, on_the_call = %leg.supervisor, "another supervisor's phone is on the call: this one follows in the desktop only");
            }
            (Some(_), None) if self.supervisors_done.contains(supervisor) => {
                debug!(session_id = %session, supervisor = %supervisor, "their phone declined or hung up: not rung again until they follow the call anew");
            }
            (Some(mode), None) if !self.ended => self.ring_supervisor(supervisor.clone(), mode),
            // (note_follower took them off `supervisors_done`: following
            // anew later rings their phone again.)
            (None, Some(leg)) if &leg.supervisor == supervisor => {
                info!(session_id = %session, supervisor = %supervisor, "monitoring stopped: hanging up the supervisor's phone");
                self.drop_supervisor_leg();
            }
            _ => {}
        }
    }

    /// The supervisor's phone rang [`RING_TIMEOUT`] unanswered: CANCEL.
    pub(super) fn supervisor_ring_lapsed(&mut self) {
        let Some(leg) = self.supervisor.as_ref() else {
            return;
        };
        info!(session_id = %self.session(), supervisor = %leg.supervisor, timeout = ?RING_TIMEOUT, "the supervisor's phone did not answer: they follow the call in the desktop only");
        self.supervisors_done.push(leg.supervisor.clone());
        self.drop_supervisor_leg();
    }

    fn ring_supervisor(&mut self, supervisor: AgentId, monitoring: Monitoring) {
        let display_name = format!("Monitor: {}", self.caller_display_name());
        let Some(dialled) = self.dial(&supervisor, "supervisor", display_name) else {
            return;
        };
        info!(session_id = %self.session(), supervisor = %supervisor, phone = %dialled.phone, ?monitoring, "ringing the supervisor's phone");
        self.supervisor = Some(SupervisorCallLeg {
            supervisor,
            dialog: dialled.dialog,
            events: dialled.events,
            sdp: dialled.sdp,
            media: dialled.media,
            socket: Some(dialled.socket),
            answered: false,
            rings_until: tokio::time::Instant::now() + RING_TIMEOUT,
            monitoring,
        });
    }

    pub(super) async fn on_supervisor(&mut self, state: DialogState) {
        let Some(leg) = self.supervisor.as_ref() else {
            return;
        };
        match state {
            DialogState::Confirmed(_, response) if !leg.answered => {
                self.supervisor_answered(&response);
            }
            DialogState::Updated(_, request, handle) => {
                let session = self.session();
                let Some(leg) = self.supervisor.as_mut() else {
                    return;
                };
                let offer =
                    answer_phone_offer(session, &mut leg.sdp, &mut leg.media, &request, handle)
                        .await;
                if let Some(offer) = offer {
                    // On its own hold the phone gets nothing (RFC 3264),
                    // and what it sends (its hold music) reaches nobody.
                    let address = match offer.remote.is_hold() {
                        true => None,
                        false => offer.remote.address,
                    };
                    let updated = self.live.media.update_supervisor(address);
                    self.media_result(updated);
                }
            }
            DialogState::Info(_, _, handle) | DialogState::Options(_, _, handle) => {
                respond(&handle, StatusCode::OK, None).await;
            }
            DialogState::Terminated(_, reason) => self.supervisor_leg_ended(reason).await,
            other => debug!(session_id = %self.session(), state = %other, "supervisor leg"),
        }
    }

    /// The supervisor's phone answered: the media task takes the leg.
    fn supervisor_answered(&mut self, response: &Response) {
        let session = self.session();
        let Some(leg) = self.supervisor.as_mut() else {
            return;
        };
        let remote = SessionDescription::parse(&response.body)
            .map_err(|error| error.to_string())
            .and_then(|answer| {
                check_answer(&leg.media.format, &answer).map_err(|error| error.to_string())
            });
        let remote = match remote {
            Ok(remote) => remote,
            Err(error) => {
                warn!(session_id = %session, supervisor = %leg.supervisor, %error, "the supervisor's phone answered with unusable sdp: hanging up");
                self.drop_supervisor_leg();
                return;
            }
        };
        leg.answered = true;
        let monitoring = leg.monitoring;
        info!(session_id = %session, supervisor = %leg.supervisor, ?monitoring, "the supervisor's phone answered: monitoring the call");
        if let Some(socket) = leg.socket.take() {
            let supervised = self.live.media.supervise(
                AgentLeg {
                    socket,
                    remote: remote.address,
                },
                monitoring,
            );
            self.media_result(supervised);
        }
    }

    /// The supervisor's leg ended on the phone's side (or failed).
    async fn supervisor_leg_ended(&mut self, reason: TerminatedReason) {
        let Some(leg) = self.supervisor.take() else {
            return;
        };
        let session = self.session();
        if !leg.answered {
            if !matches!(reason, TerminatedReason::UacCancel) {
                info!(session_id = %session, supervisor = %leg.supervisor, ?reason, "the supervisor's phone declined: they follow the call in the desktop only");
                self.supervisors_done.push(leg.supervisor);
            }
            return;
        }
        // A mode change on its way must not ring the phone that just hung up.
        self.supervisors_done.push(leg.supervisor.clone());
        self.media_result(self.live.media.release_supervisor());
        if self.ended {
            return;
        }
        info!(session_id = %session, supervisor = %leg.supervisor, ?reason, "the supervisor hung up: monitoring stops");
        stop_monitoring(self.switchboard(), &leg.supervisor, session).await;
    }

    /// Hangs up the supervisor's leg (CANCEL while it rings, BYE once
    /// answered) without waiting; its end is not reported back.
    pub(super) fn drop_supervisor_leg(&mut self) {
        let Some(leg) = self.supervisor.take() else {
            return;
        };
        if leg.answered {
            self.media_result(self.live.media.release_supervisor());
        }
        let SupervisorCallLeg { dialog, socket, .. } = leg;
        drop(socket);
        self.hang_up_phone(dialog, "supervisor");
    }
}

/// Records that `supervisor` stopped following `session` (their phone or
/// browser hung up), as the desktop's Stop would.
pub(super) async fn stop_monitoring(
    switchboard: &Switchboard,
    supervisor: &AgentId,
    session: SessionId,
) {
    if let Err(error) = switchboard
        .monitor_session(supervisor, session, None, None)
        .await
    {
        debug!(session_id = %session, supervisor = %supervisor, %error, "monitoring stop not recorded");
    }
}

/// What the supervisor's leg did next (one at a time, on the call task's
/// stack: its size does not matter).
#[allow(clippy::large_enum_variant)]
pub(super) enum SupervisorLegEvent {
    /// Its dialog's next state; `None`: the dialog layer is gone.
    State(Option<DialogState>),
    /// It rang [`RING_TIMEOUT`] unanswered.
    RingLapsed,
}

/// The supervisor leg's next event; pending while there is no leg.
pub(super) async fn next_supervisor_event(
    leg: &mut Option<SupervisorCallLeg>,
) -> SupervisorLegEvent {
    let Some(leg) = leg else {
        return std::future::pending().await;
    };
    let ringing = !leg.answered;
    tokio::select! {
        state = leg.events.recv() => SupervisorLegEvent::State(state),
        () = tokio::time::sleep_until(leg.rings_until), if ringing => SupervisorLegEvent::RingLapsed,
    }
}
