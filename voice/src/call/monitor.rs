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
//! | the phone declines or never answers         | nothing more: the supervisor follows in the desktop   |
//!
//! One supervisor's phone per call: a second supervisor following the same
//! call follows it in the desktop (logged).

use actors::Switchboard;
use engine::ids::{AgentId, SessionId};
use engine::supervision::{Actor, MonitorMode};
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Response, StatusCode};
use tracing::{debug, info, warn};

use super::task::{CallTask, answer_phone_offer, respond};
use crate::media::mix::Monitoring;
use crate::media::{
    AgentLeg, LocalMedia, LocalSession, RtpSocket, SessionDescription, check_answer,
};

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
    /// How they follow the call, as the session's last `monitored` said.
    monitoring: Monitoring,
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
            (Some(mode), None) if !self.ended => self.ring_supervisor(supervisor.clone(), mode),
            (None, Some(leg)) if &leg.supervisor == supervisor => {
                info!(session_id = %session, supervisor = %supervisor, "monitoring stopped: hanging up the supervisor's phone");
                self.drop_supervisor_leg();
            }
            _ => {}
        }
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
                    let updated = self.live.media.update_supervisor(offer.remote.address);
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
                info!(session_id = %session, supervisor = %leg.supervisor, ?reason, "the supervisor's phone did not answer: they follow the call in the desktop only");
            }
            return;
        }
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
        let session = self.session();
        let SupervisorCallLeg { dialog, socket, .. } = leg;
        drop(socket);
        self.spawn_hang_up(async move {
            if let Err(error) = dialog.hangup().await {
                debug!(session_id = %session, %error, "failed to hang up the supervisor's phone");
            }
        });
    }
}

/// Records that `supervisor` stopped following `session` (their phone hung
/// up), as the desktop's Stop would.
async fn stop_monitoring(switchboard: &Switchboard, supervisor: &AgentId, session: SessionId) {
    if let Err(error) = switchboard
        .monitor_session(supervisor, session, None, None)
        .await
    {
        debug!(session_id = %session, supervisor = %supervisor, %error, "monitoring stop not recorded");
    }
}

/// The supervisor leg's next state; pending while there is no leg.
pub(super) async fn next_supervisor_state(
    leg: &mut Option<SupervisorCallLeg>,
) -> Option<DialogState> {
    match leg {
        Some(leg) => leg.events.recv().await,
        None => std::future::pending().await,
    }
}
