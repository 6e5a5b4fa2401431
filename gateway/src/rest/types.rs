//! What the REST API sends and receives, converted from the engine's types
//! (the engine knows no wire format), in the conventions of [`crate::wire`]:
//! session ids as decimal strings, times in ms since the Unix epoch, the
//! engine's snake_case names for channels, states, roles and presence.

use std::collections::BTreeMap;

use actors::agent::AgentView;
use actors::group::{GroupView, QueueStatus};
use engine::agent::Agent;
use engine::group::SkillGroup;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::wire::event::{EventFrame, Viewer};
pub use crate::wire::records::PresenceRecord;
use crate::wire::records::{IdentityBody, SessionRecord};
use crate::wire::{PhoneRecord, Time};

/// `POST /api/v1/visitors`: everything is optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVisitor {
    /// How agents will address the visitor; defaults to `Visitor`.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A web visitor's identity and the token to use it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VisitorToken {
    /// The new customer (`web:<visitor id>`, the id the engine itself gives
    /// an unknown web identity).
    pub customer_id: String,
    /// The visitor's id on channel `web`.
    pub visitor_id: String,
    /// A customer token: `Authorization: Bearer <token>` or `?token=`.
    pub token: String,
    /// When the token expires.
    pub expires_at: Time,
}

/// Who the caller is, from their token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// Customer id, agent id, or an admin's name.
    pub sub: String,
    /// What the caller may do.
    pub role: Role,
    /// When the token expires.
    pub expires_at: Time,
    /// The agent profile, for agent and supervisor tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentProfile>,
}

/// `POST /api/v1/customers`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// 1-128 characters of letters, digits, `-`, `_`, `.` and `@`; `:` is
    /// reserved for the ids the engine makes from channel identities.
    #[schema(example = "cust-1001")]
    pub id: String,
    /// 1-200 characters.
    pub display_name: String,
    /// Defaults to `standard`.
    #[serde(default)]
    pub tier: Option<String>,
    /// Labels for routing rules.
    #[serde(default)]
    pub tags: Vec<String>,
    /// BCP 47; defaults to `zh-CN`.
    #[serde(default)]
    pub language: Option<String>,
    /// Channel identities to link now; each must be free.
    #[serde(default)]
    pub identities: Vec<IdentityBody>,
}

/// `GET /api/v1/sessions`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// At most `limit` sessions.
    pub sessions: Vec<SessionRecord>,
    /// More sessions matched than `limit`.
    pub truncated: bool,
}

/// `GET /api/v1/sessions/{id}`: the record and everything that happened, in `seq` order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionDetail {
    /// The record.
    pub session: SessionRecord,
    /// Where it stands in its queue, while it waits in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueuePlace>,
    /// Messages and state changes, as the sockets send them (customers
    /// see what [`crate::wire::event::Viewer::Customer`] allows).
    pub events: Vec<EventFrame>,
}

/// A waiting session's place in its group's queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueuePlace {
    /// The group whose queue holds it (staff only: customers are not told
    /// how they were routed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// 1-based place in line among sessions not yet offered to an agent.
    pub position: usize,
    /// Sessions waiting in the group (offered or not).
    pub n_waiting: usize,
    /// Seconds until an agent is expected to answer (docs/sla.md).
    pub estimated_wait_secs: u32,
}

impl QueuePlace {
    /// `status` as `viewer` may see it.
    pub fn new(status: &QueueStatus, viewer: Viewer) -> QueuePlace {
        QueuePlace {
            group: (viewer == Viewer::Staff).then(|| status.group.to_string()),
            position: status.position,
            n_waiting: status.n_waiting,
            estimated_wait_secs: status.estimated_wait_secs,
        }
    }
}

/// Concurrent-session limits per channel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CapacityRecord {
    /// Most sessions at once per channel; a channel not listed is never offered.
    pub limits: BTreeMap<String, u16>,
    /// Channels that need the agent's whole attention.
    pub exclusive: Vec<String>,
}

/// An agent's profile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentProfile {
    /// Login name.
    pub id: String,
    /// Shown to customers.
    pub display_name: String,
    /// `junior`, `expert` or `supervisor`.
    pub role: String,
    /// Skill → proficiency 1-5.
    pub skills: BTreeMap<String, u8>,
    /// The skill groups whose queues offer to this agent.
    pub groups: Vec<String>,
    /// Languages served.
    pub languages: Vec<String>,
    /// Sessions at once per channel.
    pub capacity: CapacityRecord,
    /// Whether the agent has a SIP phone password (set with `switchboard
    /// import` or `PUT /api/v1/agents/{id}/sip-password`); the password
    /// itself is never shown.
    pub sip_password_set: bool,
}

impl From<&Agent> for AgentProfile {
    fn from(agent: &Agent) -> AgentProfile {
        AgentProfile {
            id: agent.id.to_string(),
            display_name: agent.display_name.clone(),
            role: agent.role.as_str().to_string(),
            skills: agent.skills.clone(),
            groups: agent.groups.iter().map(ToString::to_string).collect(),
            languages: agent.languages.clone(),
            sip_password_set: agent.sip.is_some(),
            capacity: CapacityRecord {
                limits: agent
                    .capacity
                    .limits
                    .iter()
                    .map(|(channel, limit)| (channel.to_string(), *limit))
                    .collect(),
                exclusive: agent
                    .capacity
                    .exclusive
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
        }
    }
}

/// `GET /api/v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    /// Every agent, by id.
    pub agents: Vec<AgentProfile>,
}

/// `GET /api/v1/agents/{id}`: the profile and the live state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentDetail {
    /// The profile.
    pub agent: AgentProfile,
    /// Presence now.
    pub presence: PresenceRecord,
    /// Sessions the agent holds (decimal strings).
    pub sessions: Vec<String>,
    /// Sessions offered to the agent, not yet accepted (decimal strings).
    pub offers: Vec<String>,
    /// The agent's SIP phone; absent when the phone channel is off
    /// (`voice.enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneRecord>,
}

impl AgentDetail {
    /// The profile with its live view and, when the phone channel is on,
    /// whether the agent's phone is registered.
    pub fn new(agent: &Agent, view: &AgentView, phone_registered: Option<bool>) -> AgentDetail {
        AgentDetail {
            agent: AgentProfile::from(agent),
            presence: PresenceRecord::from(&view.presence),
            sessions: view.sessions.iter().map(ToString::to_string).collect(),
            offers: view.offers.iter().map(ToString::to_string).collect(),
            phone: phone_registered.map(|registered| PhoneRecord { registered }),
        }
    }
}

/// A skill group's profile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupProfile {
    /// The name routing rules use.
    pub id: String,
    /// Shown on dashboards.
    pub display_name: String,
    /// Answer within this many seconds to count as in service level.
    pub sla_threshold_secs: u32,
    /// Per-channel overrides of the threshold.
    pub sla_threshold_by_channel: BTreeMap<String, u32>,
    /// The target, in percent.
    pub sla_target_pct: f64,
    /// Contacts abandoned sooner than this are left out of service level.
    pub short_abandon_secs: u32,
}

impl From<&SkillGroup> for GroupProfile {
    fn from(group: &SkillGroup) -> GroupProfile {
        GroupProfile {
            id: group.id.to_string(),
            display_name: group.display_name.clone(),
            sla_threshold_secs: group.sla_threshold_secs,
            sla_threshold_by_channel: group
                .sla_threshold_by_channel
                .iter()
                .map(|(channel, secs)| (channel.to_string(), *secs))
                .collect(),
            sla_target_pct: group.sla_target_pct,
            short_abandon_secs: group.short_abandon_secs,
        }
    }
}

/// `GET /api/v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    /// Every group, by id.
    pub groups: Vec<GroupProfile>,
}

/// One session waiting in a queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaitingSession {
    /// Decimal string.
    pub session_id: String,
    /// Higher is served first.
    pub priority: i32,
    /// When it first queued (its place in line).
    pub queued_at: Time,
    /// The agent it is offered to right now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_to: Option<String>,
}

/// A group's queue now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueRecord {
    /// Waiting sessions in queue order.
    pub waiting: Vec<WaitingSession>,
    /// Members available with free capacity.
    pub n_ready_agents: usize,
    /// How long the oldest waiting session has waited, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_wait_ms: Option<i64>,
}

impl From<&GroupView> for QueueRecord {
    fn from(view: &GroupView) -> QueueRecord {
        QueueRecord {
            waiting: view
                .waiting
                .iter()
                .map(
                    |(session, priority, queued_at, offered_to)| WaitingSession {
                        session_id: session.to_string(),
                        priority: *priority,
                        queued_at: Time(*queued_at),
                        offered_to: offered_to.as_ref().map(ToString::to_string),
                    },
                )
                .collect(),
            n_ready_agents: view.n_ready_agents,
            longest_wait_ms: view.longest_wait_ms,
        }
    }
}

/// `GET /api/v1/groups/{id}`: the profile and the live queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupDetail {
    /// The profile.
    pub group: GroupProfile,
    /// The queue now.
    pub queue: QueueRecord,
}

/// `PUT /api/v1/rules` succeeded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RulesReplaced {
    /// The groups the new rules route to, first appearance first.
    pub groups: Vec<String>,
}

/// Where a rules file is wrong (`details` of a `422 invalid_rules`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleErrorDetails {
    /// The file name the error refers to.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}
