//! What supervisors and admins do to the live system through the handle:
//! steer a waiting session, set an agent's presence, read the audit log.
//! Callers check who may (the gateway's access rules); these check what.

use engine::EngineError;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::presence::{Presence, PresenceRequest};
use engine::supervision::{
    Actor, AuditAction, AuditEntry, ForcedPresence, MonitorMode, check_reason,
};
use store::WriteOp;

use super::Switchboard;
use crate::agent::AgentMessage;
use crate::error::ApiError;
use crate::session::{Ack, SessionMessage, SteerRequest};
use crate::store_writer::write_and_wait;

impl Switchboard {
    /// Moves a waiting session to another group or agent, or changes its
    /// priority, for `by`; the ack of its `steered` event, stored with the
    /// audit entry. The target group must exist and a target agent be one
    /// of its members; the session must be waiting (queued or offered).
    pub async fn steer_session(
        &self,
        by: Actor,
        session: SessionId,
        seen_in: GroupId,
        request: SteerRequest,
        reason: &str,
    ) -> Result<Ack, ApiError> {
        let reason = check_reason(reason)?;
        if let SteerRequest::Reassign { group, agent } = &request {
            if !self.shared.groups.contains_key(group) {
                return Err(EngineError::UnknownGroup(group.to_string()).into());
            }
            if let Some(agent) = agent {
                let profile = self
                    .shared
                    .store
                    .get_agent(agent)
                    .await?
                    .ok_or_else(|| EngineError::UnknownAgent(agent.to_string()))?;
                if !profile.groups.contains(group) {
                    return Err(EngineError::Invalid {
                        field: "agent",
                        reason: format!("agent `{agent}` is not a member of group `{group}`"),
                    }
                    .into());
                }
            }
        }
        self.call_session(session, |reply| SessionMessage::Steer {
            by,
            request,
            reason,
            seen_in,
            reply,
        })
        .await?
    }

    /// Sets `agent`'s presence for `by` (a stuck agent forced away, logged
    /// out): as if the agent had asked, so going offline is refused while
    /// they hold sessions. Once it took effect the audit entry is stored;
    /// the presence and the entry are returned.
    pub async fn force_presence(
        &self,
        by: Actor,
        agent: &AgentId,
        presence: ForcedPresence,
        reason: &str,
    ) -> Result<(Presence, AuditEntry), ApiError> {
        let reason = check_reason(reason)?;
        let request = match presence {
            ForcedPresence::Available => PresenceRequest::Available,
            ForcedPresence::Away => PresenceRequest::Away {
                reason: format!("{by}: {reason}"),
            },
            ForcedPresence::Offline => PresenceRequest::Offline,
        };
        let now_presence = self
            .call_agent(agent, |reply| AgentMessage::SetPresence { request, reply })
            .await??;
        let now = crate::clock::now();
        let entry = AuditEntry {
            id: self.shared.audit_id(now),
            at: now,
            by,
            action: AuditAction::SetPresence {
                agent: agent.clone(),
                presence,
            },
            reason,
        };
        write_and_wait(&self.shared.writer, vec![WriteOp::PutAudit(entry.clone())]).await?;
        Ok((now_presence, entry))
    }

    /// Supervisor `by` starts following `session` live, changes how, or
    /// stops (`None`); the ack of the `monitored` event (stored with its
    /// audit entry). The caller checked `by` supervises the session's group.
    pub async fn monitor_session(
        &self,
        by: &AgentId,
        session: SessionId,
        seen_in: Option<GroupId>,
        mode: Option<MonitorMode>,
    ) -> Result<Ack, ApiError> {
        let by = by.clone();
        self.call_session(session, |reply| SessionMessage::Monitor {
            by,
            mode,
            seen_in,
            reply,
        })
        .await?
    }

    /// A note from supervisor `by` to the agent of `session`, which they
    /// follow in `whisper` or `barge` mode; ack once durable. A supervisor
    /// barges in with [`Switchboard::submit_agent_message`], like an agent.
    pub async fn whisper(
        &self,
        by: &AgentId,
        session: SessionId,
        body: String,
        client_message_id: Option<String>,
    ) -> Result<Ack, ApiError> {
        let by = by.clone();
        self.call_session(session, |reply| SessionMessage::Whisper {
            by,
            body,
            client_message_id,
            reply,
        })
        .await?
    }

    /// The agent reply `session`'s customer waits for, if any: first or
    /// next, and when it is due (docs/supervisor.md, "SLA policies").
    pub async fn response_due(
        &self,
        session: SessionId,
    ) -> Result<Option<(engine::routing::ResponseKind, engine::Millis)>, ApiError> {
        self.call_session(session, |reply| SessionMessage::ResponseStatus { reply })
            .await
    }

    /// The audit log: entries with `since <= at < until`, newest first.
    pub async fn audit_log(
        &self,
        since: engine::Millis,
        until: engine::Millis,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, ApiError> {
        Ok(self.shared.store.audit_log(since, until, limit).await?)
    }
}
