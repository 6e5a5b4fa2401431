//! Supervisors following a live conversation (docs/supervisor.md): every
//! event of the session goes to each of them; in `whisper` mode they may
//! write notes only the agent sees, in `barge` mode also messages the
//! customer sees, marked as the supervisor's. Starting, changing and
//! stopping are `monitored` events of the session, each stored with its
//! audit entry; a restarted session reads its followers back from them.

use std::collections::HashMap;

use engine::EngineError;
use engine::ids::{AgentId, GroupId};
use engine::message::Sender;
use engine::session::TransitionError;
use engine::supervision::{Actor, AuditAction, AuditEntry, MonitorMode};
use ractor::ActorRef;
use store::WriteOp;
use tracing::info;

use super::{SessionActor, SessionActorState, SessionMessage};
use crate::error::ApiError;
use crate::event::EventKind;

/// Follows one stored event: who monitors the session, and how.
pub(super) fn follow(monitors: &mut HashMap<AgentId, MonitorMode>, kind: &EventKind) {
    if let EventKind::Monitored {
        by: Actor::Supervisor(supervisor),
        mode,
    } = kind
    {
        match mode {
            Some(mode) => monitors.insert(supervisor.clone(), *mode),
            None => monitors.remove(supervisor),
        };
    }
}

impl SessionActor {
    /// `by` starts following the session, changes how, or stops (`None`);
    /// the `seq` of the `monitored` event (the last one when nothing changed).
    pub(super) fn monitor(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        by: AgentId,
        mode: Option<MonitorMode>,
        seen_in: Option<GroupId>,
    ) -> Result<u64, ApiError> {
        if state.monitors.get(&by).copied() == mode {
            return Ok(state.session.last_seq);
        }
        if state.session.state.is_final() {
            // Nothing more happens in it: stopping needs no record.
            if mode.is_none() {
                state.monitors.remove(&by);
                return Ok(state.session.last_seq);
            }
            return Err(TransitionError {
                session: state.session.id,
                state: state.session.state.as_str(),
                event: "monitor",
            }
            .into());
        }
        if let Some(seen_in) = seen_in.filter(|_| mode.is_some())
            && state.session.group.as_ref() != Some(&seen_in)
        {
            return Err(super::steering::moved_on(state, &seen_in));
        }
        let now = crate::clock::now();
        let actor = Actor::Supervisor(by.clone());
        let seq = self.record_at(
            state,
            EventKind::Monitored {
                by: actor.clone(),
                mode,
            },
            now,
        );
        match mode {
            Some(mode) => state.monitors.insert(by.clone(), mode),
            None => state.monitors.remove(&by),
        };
        info!(session_id = %state.session.id, supervisor = %by, mode = mode.map_or("stop", MonitorMode::as_str), "session monitored");
        // A new follower's card counts down too.
        if mode.is_some() {
            self.tell_due(state);
        }
        state.unwritten_ops.push(WriteOp::PutAudit(AuditEntry {
            id: self.shared.audit_id(now),
            at: now,
            by: actor,
            action: AuditAction::Monitor {
                session: state.session.id,
                mode,
            },
            reason: String::new(),
        }));
        self.flush(myself, state);
        Ok(seq)
    }

    /// A note from `by` to the agent; the customer never sees it.
    pub(super) fn whisper(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        by: AgentId,
        body: String,
        client_message_id: Option<String>,
    ) -> Result<(u64, bool), ApiError> {
        if let Some(seq) = self.check_following(
            state,
            &by,
            MonitorMode::may_whisper,
            "whisper or barge",
            &client_message_id,
        )? {
            return Ok((seq, true));
        }
        let seq = self.record(
            state,
            EventKind::Whisper {
                from: by,
                body,
                client_message_id: client_message_id.clone(),
            },
        );
        if let Some(id) = client_message_id {
            state.client_ids.insert(id, seq);
        }
        self.flush(myself, state);
        Ok((seq, false))
    }

    /// A message from `by`, barging in: the customer sees it, marked as the
    /// supervisor's, on their channel too. It is not the agent's reply: it
    /// changes no SLA time.
    pub(super) fn barge(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        by: AgentId,
        body: String,
        client_message_id: Option<String>,
    ) -> Result<(u64, bool), ApiError> {
        if let Some(seq) = self.check_following(
            state,
            &by,
            MonitorMode::may_barge,
            "barge",
            &client_message_id,
        )? {
            return Ok((seq, true));
        }
        let seq = self.write_to_customer(state, Sender::Supervisor(by), body, client_message_id);
        self.flush(myself, state);
        Ok((seq, false))
    }

    /// `by` follows the live session in a mode that `allows` it; the `seq`
    /// already given to `client_message_id` when it is a resend.
    fn check_following(
        &self,
        state: &SessionActorState,
        by: &AgentId,
        allows: fn(MonitorMode) -> bool,
        modes: &str,
        client_message_id: &Option<String>,
    ) -> Result<Option<u64>, ApiError> {
        let session = &state.session;
        if session.state.is_final() {
            return Err(TransitionError {
                session: session.id,
                state: session.state.as_str(),
                event: "write to",
            }
            .into());
        }
        let reason = match state.monitors.get(by) {
            Some(mode) if allows(*mode) => {
                let resent = client_message_id
                    .as_ref()
                    .and_then(|id| state.client_ids.get(id));
                return Ok(resent.copied());
            }
            Some(mode) => format!(
                "you follow session {} in {} mode; send `monitor` with mode {modes} first",
                session.id,
                mode.as_str()
            ),
            None => format!(
                "you do not follow session {}; send `monitor` with mode {modes} first",
                session.id
            ),
        };
        Err(EngineError::Invalid {
            field: "session",
            reason,
        }
        .into())
    }
}

impl SessionActor {
    /// The session entered another group's queue: whoever followed it was
    /// authorised for the group it left, and stops (a `monitored` event
    /// each; they may follow it again where it is now if they supervise it).
    pub(super) fn stop_monitors(&self, state: &mut SessionActorState) {
        let supervisors: Vec<AgentId> = state.monitors.drain().map(|(id, _)| id).collect();
        let now = crate::clock::now();
        let reason = match &state.session.group {
            Some(group) => format!("stopped: the session moved to group `{group}`"),
            None => "stopped: the session moved".to_owned(),
        };
        for supervisor in supervisors {
            let by = Actor::Supervisor(supervisor);
            self.record_at(
                state,
                EventKind::Monitored {
                    by: by.clone(),
                    mode: None,
                },
                now,
            );
            state.unwritten_ops.push(WriteOp::PutAudit(AuditEntry {
                id: self.shared.audit_id(now),
                at: now,
                by,
                action: AuditAction::Monitor {
                    session: state.session.id,
                    mode: None,
                },
                reason: reason.clone(),
            }));
        }
    }
}
