//! What supervisors do to the live system — force an agent's presence, move
//! a waiting session to another group or agent, change its priority — and
//! the audit record each action leaves (who, when, what, why).
//!
//! A session action is also an event of the session's own history
//! ([`Steer`]); every action, session or agent, is one [`AuditEntry`] in the
//! audit log admins read.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::ids::{AgentId, GroupId, SessionId};
use crate::{Millis, text};

/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// The reason a supervisor gives, trimmed; refused when empty or longer
/// than [`MAX_REASON_CHARS`] characters.
pub fn check_reason(reason: &str) -> Result<String, EngineError> {
    text::required("reason", reason, MAX_REASON_CHARS)
}

/// Who acted: a supervisor (their agent id) or an admin (the token's name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A supervisor.
    Supervisor(AgentId),
    /// An admin.
    Admin(String),
}

impl std::fmt::Display for Actor {
    /// `supervisor:<agent id>` or `admin:<name>`, as the wire shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Supervisor(agent) => write!(f, "supervisor:{agent}"),
            Actor::Admin(name) => write!(f, "admin:{name}"),
        }
    }
}

/// What a supervisor changed about a waiting session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Steer {
    /// Taken out of its queue and queued in `group`, for `agent` only if set
    /// (in their queue of `group`), keeping its place in line; its rule's
    /// later steps no longer apply.
    Reassigned {
        /// The group it waits in now.
        group: GroupId,
        /// The one agent it is offered to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentId>,
        /// Its priority there.
        priority: i32,
    },
    /// Its priority in the queue it waits in (higher is served first).
    Reprioritised {
        /// The priority before.
        from: i32,
        /// The priority now.
        to: i32,
    },
}

/// The presence a supervisor may set for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForcedPresence {
    /// Ready for offers.
    Available,
    /// No new offers (the reason is the supervisor's).
    Away,
    /// Logged out; refused while the agent holds sessions.
    Offline,
}

impl ForcedPresence {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ForcedPresence::Available => "available",
            ForcedPresence::Away => "away",
            ForcedPresence::Offline => "offline",
        }
    }
}

/// How a supervisor follows a live conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorMode {
    /// Reads along, silently: nobody else sees anything of it.
    Listen,
    /// Reads along and may write notes only the agent sees.
    Whisper,
    /// Also writes to the customer, whose page marks it as the supervisor's.
    Barge,
}

impl MonitorMode {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }

    /// May whisper to the agent.
    pub fn may_whisper(self) -> bool {
        matches!(self, MonitorMode::Whisper | MonitorMode::Barge)
    }

    /// May write to the customer.
    pub fn may_barge(self) -> bool {
        self == MonitorMode::Barge
    }
}

/// What an audited action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AuditAction {
    /// An agent's presence set by someone else.
    SetPresence {
        /// The agent.
        agent: AgentId,
        /// What it was set to.
        presence: ForcedPresence,
    },
    /// A waiting session moved or re-prioritised.
    SteerSession {
        /// The session.
        session: SessionId,
        /// The group it waited in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<GroupId>,
        /// What changed.
        steer: Steer,
    },
    /// A supervisor started following a session live, changed how, or
    /// stopped (`mode` none).
    Monitor {
        /// The session.
        session: SessionId,
        /// How they follow it now; none: they stopped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<MonitorMode>,
    },
}

/// One audited supervisor action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unique and ordered like `at` (minted like a session id).
    pub id: u64,
    /// When it took effect.
    pub at: Millis,
    /// Who did it.
    pub by: Actor,
    /// What it did.
    pub action: AuditAction,
    /// Why, in the actor's words.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_trimmed_and_bounded() {
        assert_eq!(
            check_reason("  stuck in wrap-up \n").unwrap(),
            "stuck in wrap-up"
        );
        for bad in ["", "   ", &"x".repeat(MAX_REASON_CHARS + 1)] {
            let err = check_reason(bad).unwrap_err();
            assert!(err.to_string().contains("`reason`"), "{err}");
        }
        assert!(check_reason(&"字".repeat(MAX_REASON_CHARS)).is_ok());
    }

    #[test]
    fn entries_read_back_as_written() {
        let entry = AuditEntry {
            id: 42,
            at: 1_000,
            by: Actor::Supervisor(AgentId::new("li.na")),
            action: AuditAction::SteerSession {
                session: SessionId(7),
                group: Some(GroupId::new("general")),
                steer: Steer::Reassigned {
                    group: GroupId::new("vip"),
                    agent: Some(AgentId::new("chen.jie")),
                    priority: 0,
                },
            },
            reason: "VIP waiting".into(),
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(serde_json::from_str::<AuditEntry>(&json).unwrap(), entry);
        assert_eq!(entry.by.to_string(), "supervisor:li.na");
    }
}
