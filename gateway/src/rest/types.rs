//! What the REST API sends and receives, converted from the engine's types
//! (the engine knows no wire format).
//!
//! Wire conventions:
//! - session ids are decimal **strings**: they exceed 2^53, past which
//!   JavaScript numbers lose digits;
//! - timestamps are RFC 3339 strings in UTC with milliseconds
//!   (`2026-11-24T09:19:05.123Z`); a time the engine does not know is absent;
//! - channels, states, roles and presence are the engine's snake_case names.

use std::collections::BTreeMap;

use actors::agent::AgentView;
use actors::event::{Event, EventKind};
use actors::group::{GroupView, QueueStatus};
use chrono::{DateTime, SecondsFormat};
use engine::Millis;
use engine::agent::Agent;
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::message::Sender;
use engine::presence::Presence;
use engine::session::{Session, SessionTimes};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn timestamp(millis: Millis) -> String {
    DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Unix seconds as RFC 3339 (UTC).
pub fn timestamp_from_secs(secs: i64) -> String {
    timestamp(secs.saturating_mul(1000))
}

fn optional_timestamp(millis: Option<Millis>) -> Option<String> {
    millis.map(timestamp)
}

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
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Who the caller is, from their token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// Customer id, agent id, or an admin's name.
    pub sub: String,
    /// What the caller may do.
    pub role: Role,
    /// When the token expires.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// The agent profile, for agent and supervisor tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentProfile>,
}

/// One channel identity of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    /// A built-in channel (`web`, `app`, `phone`, `wechat`, `qq`, `sms`,
    /// `email`) or a declared custom one.
    #[schema(example = "wechat")]
    pub channel: String,
    /// The customer's id on that channel (openid, phone number, visitor id).
    #[schema(example = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M")]
    pub external_id: String,
}

impl From<&Identity> for IdentityBody {
    fn from(identity: &Identity) -> IdentityBody {
        IdentityBody {
            channel: identity.channel.to_string(),
            external_id: identity.external_id.clone(),
        }
    }
}

/// A customer profile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomerRecord {
    /// Stable id, the same on every channel.
    pub id: String,
    /// How agents address the customer.
    pub display_name: String,
    /// Service tier (`standard`, `vip`, …); routing rules test it.
    pub tier: String,
    /// Labels routing rules can test with `HAS`.
    pub tags: Vec<String>,
    /// Preferred language (BCP 47).
    pub language: String,
    /// The customer's ids on each channel.
    pub identities: Vec<IdentityBody>,
    /// The agent who last served the customer (sticky routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_agent: Option<String>,
    /// When the profile was created; absent for profiles loaded without a date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
}

impl From<&Customer> for CustomerRecord {
    fn from(customer: &Customer) -> CustomerRecord {
        CustomerRecord {
            id: customer.id.to_string(),
            display_name: customer.display_name.clone(),
            tier: customer.tier.clone(),
            tags: customer.tags.clone(),
            language: customer.language.clone(),
            identities: customer.identities.iter().map(IdentityBody::from).collect(),
            last_agent: customer.last_agent.as_ref().map(ToString::to_string),
            created_at: (customer.created_at != 0).then(|| timestamp(customer.created_at)),
        }
    }
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

/// When a session reached each point; absent until it does.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SessionTimesRecord {
    /// First message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub created: Option<String>,
    /// First queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub queued: Option<String>,
    /// First offered to an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub offered: Option<String>,
    /// First accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub answered: Option<String>,
    /// First agent message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub first_response: Option<String>,
    /// Entered wrap-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub wrap_up: Option<String>,
    /// Closed or abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub closed: Option<String>,
}

impl From<&SessionTimes> for SessionTimesRecord {
    fn from(times: &SessionTimes) -> SessionTimesRecord {
        SessionTimesRecord {
            created: optional_timestamp(times.created),
            queued: optional_timestamp(times.queued),
            offered: optional_timestamp(times.offered),
            answered: optional_timestamp(times.answered),
            first_response: optional_timestamp(times.first_response),
            wrap_up: optional_timestamp(times.wrap_up),
            closed: optional_timestamp(times.closed),
        }
    }
}

/// A session record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionRecord {
    /// Decimal string: ids exceed 2^53.
    #[schema(example = "7412286335123456000")]
    pub id: String,
    /// Who the conversation is with.
    pub customer_id: String,
    /// The channel it started on.
    pub channel: String,
    /// `new`, `routing`, `queued`, `offered`, `assigned`, `wrap_up`,
    /// `closed`, `abandoned` or `transferred`.
    pub state: String,
    /// The group whose queue holds it or held it last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The agent it is offered or assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When it reached each point.
    pub times: SessionTimesRecord,
    /// Highest sequence number as of the last state change (the events of
    /// `GET /api/v1/sessions/{id}` are always current).
    pub last_seq: u64,
    /// How many times it was transferred.
    pub transfers: u32,
    /// The agent's wrap-up note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The customer's satisfaction score (1-5), once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
}

impl From<&Session> for SessionRecord {
    fn from(session: &Session) -> SessionRecord {
        SessionRecord {
            id: session.id.to_string(),
            customer_id: session.customer_id.to_string(),
            channel: session.channel.to_string(),
            state: session.state.as_str().to_string(),
            group: session.group.as_ref().map(ToString::to_string),
            agent: session.agent.as_ref().map(ToString::to_string),
            times: SessionTimesRecord::from(&session.times),
            last_seq: session.last_seq,
            transfers: session.transfers,
            summary: session.summary.clone(),
            rating: session.rating,
        }
    }
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
    /// Messages and state changes.
    pub events: Vec<SessionEvent>,
}

/// A waiting session's place in its group's queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueuePlace {
    /// The group whose queue holds it.
    pub group: String,
    /// 1-based place in line among sessions not yet offered to an agent.
    pub position: usize,
    /// Sessions waiting in the group (offered or not).
    pub n_waiting: usize,
    /// Seconds until an agent is expected to answer (docs/sla.md).
    pub estimated_wait_secs: u32,
}

impl From<&QueueStatus> for QueuePlace {
    fn from(status: &QueueStatus) -> QueuePlace {
        QueuePlace {
            group: status.group.to_string(),
            position: status.position,
            n_waiting: status.n_waiting,
            estimated_wait_secs: status.estimated_wait_secs,
        }
    }
}

/// One message or state change of a session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionEvent {
    /// The session's sequence number of this event; messages and state
    /// changes share one counter.
    pub seq: u64,
    /// When the engine recorded it.
    #[schema(format = DateTime)]
    pub at: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: SessionEventKind,
}

/// What happened, tagged by `type`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEventKind {
    /// A customer, agent or system message.
    Message {
        /// `customer`, `agent` or `system`.
        sender: String,
        /// The agent, when `sender` is `agent`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// The text.
        body: String,
        /// The sender's own id for the message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
        /// The channel it travelled on.
        channel: String,
    },
    /// The session waits in a group's queue.
    Queued {
        /// The group.
        group: String,
    },
    /// Offered to an agent (not shown to customers; `offer` on the agent socket too).
    #[serde(rename = "offer")]
    Offered {
        /// The agent.
        agent: String,
        /// Accept by this time.
        #[schema(format = DateTime)]
        deadline: String,
    },
    /// The offer lapsed or was rejected (not shown to customers; `offer_withdrawn` on the agent socket too).
    #[serde(rename = "offer_withdrawn")]
    OfferLapsed {
        /// The agent that had it.
        agent: String,
    },
    /// An agent took the session.
    Assigned {
        /// The agent.
        agent: String,
        /// The agent's name, as the customer sees it (`agent_name`, as on the sockets).
        agent_name: String,
    },
    /// Handed on to another group or agent.
    Transferred {
        /// The agent that handed it on.
        from: String,
    },
    /// The conversation ended; the agent writes notes.
    WrapUp,
    /// Done.
    Closed {
        /// The agent's note.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// The customer left before an agent answered.
    Abandoned,
    /// The other party is typing (live only: never in a session's history).
    Typing {
        /// `customer`, `agent` or `system`.
        sender: String,
    },
    /// The customer rated the conversation.
    Rated {
        /// Satisfaction, 1 (worst) to 5 (best).
        score: u8,
        /// What the customer wrote with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
}

impl SessionEvent {
    /// The wire form of an engine event; `None` for a queue position,
    /// which is never stored (REST gives it as the session's `queue`).
    pub fn from_event(event: &Event) -> Option<SessionEvent> {
        let kind = match &event.kind {
            EventKind::QueuePosition(_) => return None,
            EventKind::Message {
                sender,
                body,
                client_message_id,
                channel,
            } => {
                let (sender, agent) = sender_name(sender);
                SessionEventKind::Message {
                    sender: sender.to_string(),
                    agent,
                    body: body.clone(),
                    client_message_id: client_message_id.clone(),
                    channel: channel.to_string(),
                }
            }
            EventKind::Queued { group } => SessionEventKind::Queued {
                group: group.to_string(),
            },
            EventKind::Offered { agent, deadline } => SessionEventKind::Offered {
                agent: agent.to_string(),
                deadline: timestamp(*deadline),
            },
            EventKind::OfferLapsed { agent } => SessionEventKind::OfferLapsed {
                agent: agent.to_string(),
            },
            EventKind::Assigned {
                agent,
                display_name,
            } => SessionEventKind::Assigned {
                agent: agent.to_string(),
                agent_name: display_name.clone(),
            },
            EventKind::Transferred { from } => SessionEventKind::Transferred {
                from: from.to_string(),
            },
            EventKind::WrapUp => SessionEventKind::WrapUp,
            EventKind::Closed { summary } => SessionEventKind::Closed {
                summary: summary.clone(),
            },
            EventKind::Abandoned => SessionEventKind::Abandoned,
            EventKind::Typing { sender } => SessionEventKind::Typing {
                sender: sender_name(sender).0.to_string(),
            },
            EventKind::Rated { score, comment } => SessionEventKind::Rated {
                score: *score,
                comment: comment.clone(),
            },
        };
        Some(SessionEvent {
            seq: event.seq,
            at: timestamp(event.at),
            kind,
        })
    }

    /// Whether customers see this event (offers are between the engine and agents).
    pub fn is_for_customers(&self) -> bool {
        !matches!(
            self.kind,
            SessionEventKind::Offered { .. } | SessionEventKind::OfferLapsed { .. }
        )
    }
}

/// `customer`, `agent` (with the agent) or `system`.
fn sender_name(sender: &Sender) -> (&'static str, Option<String>) {
    match sender {
        Sender::Customer => ("customer", None),
        Sender::Agent(agent) => ("agent", Some(agent.to_string())),
        Sender::System => ("system", None),
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

/// An agent's presence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PresenceRecord {
    /// `offline`, `available`, `away`, `wrap_up` or `not_responding`.
    pub state: String,
    /// Why the agent is away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When wrap-up ends by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

impl From<&Presence> for PresenceRecord {
    fn from(presence: &Presence) -> PresenceRecord {
        let (reason, until) = match presence {
            Presence::Away { reason } => (Some(reason.clone()), None),
            Presence::WrapUp { until } => (None, Some(timestamp(*until))),
            _ => (None, None),
        };
        PresenceRecord {
            state: presence.as_str().to_string(),
            reason,
            until,
        }
    }
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
}

impl AgentDetail {
    /// The profile with its live view.
    pub fn new(agent: &Agent, view: &AgentView) -> AgentDetail {
        AgentDetail {
            agent: AgentProfile::from(agent),
            presence: PresenceRecord::from(&view.presence),
            sessions: view.sessions.iter().map(ToString::to_string).collect(),
            offers: view.offers.iter().map(ToString::to_string).collect(),
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
    #[schema(format = DateTime)]
    pub queued_at: String,
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
                        queued_at: timestamp(*queued_at),
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
