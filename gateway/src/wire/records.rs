//! The records that both the REST API and the data platform send (a
//! customer, a session), converted from the engine's types (the engine knows
//! no wire format). Channels, states, roles and presence are the engine's
//! snake_case names; times follow [`super`]: ms since the Unix epoch.

use engine::customer::{Customer, Identity};
use engine::presence::Presence;
use engine::session::{Session, SessionTimes};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Time;
use super::event::Viewer;

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
    pub created_at: Option<Time>,
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
            created_at: (customer.created_at != 0).then_some(Time(customer.created_at)),
        }
    }
}

/// When a session reached each point; absent until it does.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SessionTimesRecord {
    /// First message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
    /// First queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<Time>,
    /// First offered to an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered: Option<Time>,
    /// First accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered: Option<Time>,
    /// First agent message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response: Option<Time>,
    /// Entered wrap-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_up: Option<Time>,
    /// Closed or abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Time>,
}

impl From<&SessionTimes> for SessionTimesRecord {
    fn from(times: &SessionTimes) -> SessionTimesRecord {
        SessionTimesRecord {
            created: times.created.map(Time),
            queued: times.queued.map(Time),
            offered: times.offered.map(Time),
            answered: times.answered.map(Time),
            first_response: times.first_response.map(Time),
            wrap_up: times.wrap_up.map(Time),
            closed: times.closed.map(Time),
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

impl SessionRecord {
    /// The record of `session` as `viewer` may see it: customers get no
    /// `group`, `agent` or `summary` (the rule of [`Viewer::Customer`]).
    pub fn new(session: &Session, viewer: Viewer) -> SessionRecord {
        let staff = viewer == Viewer::Staff;
        SessionRecord {
            id: session.id.to_string(),
            customer_id: session.customer_id.to_string(),
            channel: session.channel.to_string(),
            state: session.state.as_str().to_string(),
            group: session
                .group
                .as_ref()
                .filter(|_| staff)
                .map(ToString::to_string),
            agent: session
                .agent
                .as_ref()
                .filter(|_| staff)
                .map(ToString::to_string),
            times: SessionTimesRecord::from(&session.times),
            last_seq: session.last_seq,
            transfers: session.transfers,
            summary: session.summary.clone().filter(|_| staff),
            rating: session.rating,
        }
    }
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
    pub until: Option<Time>,
}

impl From<&Presence> for PresenceRecord {
    fn from(presence: &Presence) -> PresenceRecord {
        let (reason, until) = match presence {
            Presence::Away { reason } => (Some(reason.clone()), None),
            Presence::WrapUp { until } => (None, Some(Time(*until))),
            _ => (None, None),
        };
        PresenceRecord {
            state: presence.as_str().to_string(),
            reason,
            until,
        }
    }
}
