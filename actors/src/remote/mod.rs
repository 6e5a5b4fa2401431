//! What crosses from this node's runtime to another node's, in a cluster.
//!
//! Every actor runs on one node, chosen by [`Placement`]: a skill group on
//! the rendezvous owner of its id, an agent likewise, a session on the node
//! that minted it (while it is a member). A message for an actor elsewhere
//! leaves through [`Peers`] (the `cluster` crate implements it over
//! ractor_cluster) as a [`Remote`] (a cast) or a [`RemoteCall`] (with an
//! answer), and the receiving node's [`Switchboard::receive`] and
//! [`Switchboard::take`] hand it to its actor there. What crosses is
//! messages (actors' to each other, and the `Switchboard`'s calls, with
//! their reply ports split off); references to actors never do: a message
//! for a session is resolved to the session's node each time it is sent.
//!
//! Without `Peers` (a node alone) every actor is local and nothing here runs.
//!
//! [`Switchboard::receive`]: crate::Switchboard::receive
//! [`Switchboard::take`]: crate::Switchboard::take

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use engine::Millis;
use engine::agent::Agent;
use engine::channel::Channel;
use engine::ids::{AgentId, ArticleId, CustomerId, GroupId, SessionId};
use engine::placement::Placement;
use engine::presence::PresenceRequest;
use engine::queue::MemberStatus;
use engine::routing::{Contact, StepParts};
use serde::{Deserialize, Serialize};

pub mod calls;

pub use calls::{AgentCall, GroupCall, SessionCall};

use crate::agent::AgentMessage;
use crate::error::ApiError;
use crate::event::{Audience, Event};
use crate::group::{GroupMessage, QueueEntry};
use crate::session::SessionMessage;

/// An answer that will come from another node.
pub type RemoteAnswer = Pin<Box<dyn Future<Output = Result<serde_json::Value, ApiError>> + Send>>;

/// The other nodes, as the runtime reaches them.
pub trait Peers: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> u8;
    /// Who runs what, over the members that run actors now.
    fn placement(&self) -> Arc<Placement>;
    /// Casts `message` to node `node`. Messages to one node arrive in the
    /// order sent; to a node that is gone they are lost (its actors are
    /// re-activated elsewhere from the store).
    fn cast(&self, node: u8, message: Remote);
    /// Casts `message` to every other member.
    fn broadcast(&self, message: Remote);
    /// Sends `call` to node `node` at once (in order with this node's other
    /// sends there); the future only waits for its answer as JSON, or why
    /// none came.
    fn call(&self, node: u8, call: RemoteCall) -> RemoteAnswer;
    /// Whether this node delivers the outbox now (the cluster's `workers`
    /// role: one deliverer at a time over a shared store).
    fn delivers_outbox(&self) -> bool {
        true
    }
}

/// A cast to another node's runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Remote {
    /// For skill group `group`'s actor.
    Group {
        /// The group.
        group: GroupId,
        /// What it is told.
        message: Box<GroupCast>,
    },
    /// For agent `agent`'s actor.
    Agent {
        /// The agent.
        agent: AgentId,
        /// What it is told.
        message: AgentCast,
    },
    /// For session `session`'s actor, activated there if it was passivated.
    Session {
        /// The session.
        session: SessionId,
        /// What it is told.
        message: SessionCast,
    },
    /// A group offers `session` (whose node this is) to `agent`: the
    /// session is activated and the agent's node gets the offer.
    Offer {
        /// The agent.
        agent: AgentId,
        /// The session.
        session: SessionId,
        /// Its channel.
        channel: Channel,
        /// The offering group.
        group: GroupId,
    },
    /// An event published on another node, for this node's subscribers
    /// of `audience` (sockets connected here).
    Event {
        /// Who it is for.
        audience: Audience,
        /// The event.
        event: Box<Event>,
        /// Ephemeral (typing, queue positions): a full subscriber misses it.
        ephemeral: bool,
    },
    /// The knowledge base or the reply templates changed in the store
    /// through another node: this node's search index or template library
    /// follows.
    Knowledge(KnowledgeChange),
    /// Another node's routing rules were replaced (`PUT /api/v1/rules`):
    /// this node routes new sessions by them too.
    Rules {
        /// The rules file.
        text: String,
        /// Its name, for errors.
        file: String,
    },
}

/// What changed in the knowledge base or the template library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KnowledgeChange {
    /// An article was written or deleted: read it again from the store.
    Article(ArticleId),
    /// A template was written or deleted: read the library again.
    Templates,
}

/// Follows the changes other nodes make ([`crate::Switchboard::on_knowledge_change`]).
pub type KnowledgeListener = Arc<dyn Fn(KnowledgeChange) + Send + Sync>;

/// Hears the source of rules another node put in force ([`crate::Switchboard::on_rules_replaced`]).
pub type RulesListener = Arc<dyn Fn(String) + Send + Sync>;

/// What a skill group is told from another node ([`GroupMessage`]'s casts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupCast {
    /// See [`GroupMessage::Enqueue`].
    Enqueue {
        /// The session.
        session: SessionId,
        /// Served first when higher.
        priority: i32,
        /// The place in line.
        queued_at: Millis,
        /// The session's facts.
        contact: Contact,
        /// The step it waits under.
        step: StepParts,
    },
    /// See [`GroupMessage::Leave`].
    Leave {
        /// The session.
        session: SessionId,
    },
    /// See [`GroupMessage::Reprioritise`].
    Reprioritise {
        /// The session.
        session: SessionId,
        /// Its priority now.
        priority: i32,
    },
    /// See [`GroupMessage::Member`].
    Member {
        /// The agent's profile.
        profile: Agent,
        /// Its availability and load.
        status: MemberStatus,
    },
    /// See [`GroupMessage::OfferLapsed`].
    OfferLapsed {
        /// The session.
        session: SessionId,
        /// The agent.
        agent: AgentId,
    },
    /// See [`GroupMessage::Answered`].
    Answered {
        /// The session.
        session: SessionId,
    },
}

/// What an agent is told from another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AgentCast {
    /// A group offers a session, which runs on another node.
    Offer {
        /// The session.
        session: SessionId,
        /// Its channel.
        channel: Channel,
        /// The offering group.
        group: GroupId,
    },
    /// The session no longer wants the offer.
    Withdraw {
        /// The session.
        session: SessionId,
    },
    /// A held session ended or moved away.
    Release {
        /// The session.
        session: SessionId,
    },
    /// A group (re)started and wants the agent's availability.
    ReportStatus,
    /// See [`AgentMessage::Resume`].
    Resume {
        /// The presence handed over.
        request: PresenceRequest,
    },
}

/// What a session is told from another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SessionCast {
    /// See [`SessionMessage::Requeue`].
    Requeue,
    /// See [`SessionMessage::StepTimeout`].
    StepTimeout {
        /// The step whose timer fired.
        step_idx: usize,
    },
    /// See [`SessionMessage::ResponseCheck`].
    ResponseCheck {
        /// When the wait began.
        since: Millis,
    },
    /// See [`SessionMessage::Offered`].
    Offered {
        /// The agent.
        agent: AgentId,
        /// When the offer lapses.
        deadline: Millis,
        /// The group that offered.
        group: GroupId,
    },
    /// See [`SessionMessage::OfferLapsed`].
    OfferLapsed {
        /// The agent.
        agent: AgentId,
    },
}

/// A request to another node's actor, answered: the message with its
/// reply port split off ([`calls`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RemoteCall {
    /// For session `session`'s actor, activated there if passivated.
    Session {
        /// The session.
        session: SessionId,
        /// The message.
        call: SessionCall,
    },
    /// A customer's message for their open session, opened there if they
    /// have none.
    OpenSession {
        /// The customer.
        customer: CustomerId,
        /// The channel of the message.
        channel: Channel,
        /// The message ([`SessionCall::CustomerMessage`]).
        call: SessionCall,
    },
    /// For agent `agent`'s actor.
    Agent {
        /// The agent.
        agent: AgentId,
        /// The message.
        call: AgentCall,
    },
    /// For skill group `group`'s actor.
    Group {
        /// The group.
        group: GroupId,
        /// The message.
        call: GroupCall,
    },
    /// Drop these customers from the customer cache: another node changed
    /// them.
    ForgetCustomers {
        /// The customers.
        customers: Vec<CustomerId>,
    },
}

/// An [`ApiError`] as it crosses: its stable code and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// [`ApiError::code`].
    pub code: String,
    /// What it said.
    pub message: String,
}

impl From<&ApiError> for RemoteError {
    fn from(err: &ApiError) -> RemoteError {
        // The limit's name is not in its code; the one limit there is has
        // its own code on the wire.
        let code = match err {
            ApiError::Limited {
                what: "sessions_per_customer",
                message,
            } => {
                return RemoteError {
                    code: "too_many_sessions".into(),
                    message: message.clone(),
                };
            }
            other => other.code(),
        };
        RemoteError {
            code: code.to_string(),
            message: err.to_string(),
        }
    }
}

impl GroupCast {
    /// The cast form of `message`; `None` for what only this node's own
    /// callers ask a group (views, statuses, its own timer).
    pub fn from_message(message: &GroupMessage) -> Option<GroupCast> {
        Some(match message {
            GroupMessage::Enqueue {
                session,
                priority,
                queued_at,
                entry,
            } => GroupCast::Enqueue {
                session: *session,
                priority: *priority,
                queued_at: *queued_at,
                contact: (*entry.contact).clone(),
                step: entry.step.parts(),
            },
            GroupMessage::Leave { session } => GroupCast::Leave { session: *session },
            GroupMessage::Reprioritise { session, priority } => GroupCast::Reprioritise {
                session: *session,
                priority: *priority,
            },
            GroupMessage::Member { profile, status } => GroupCast::Member {
                profile: (**profile).clone(),
                status: status.clone(),
            },
            GroupMessage::OfferLapsed { session, agent } => GroupCast::OfferLapsed {
                session: *session,
                agent: agent.clone(),
            },
            GroupMessage::Answered { session } => GroupCast::Answered { session: *session },
            GroupMessage::Status { .. }
            | GroupMessage::PushPositions
            | GroupMessage::View { .. }
            | GroupMessage::RecoveryOver
            | GroupMessage::Handover => {
                return None;
            }
        })
    }

    /// The group's message; `rules` compile the step's agent expression.
    pub fn into_message(self, rules: &engine::routing::RuleSet) -> Result<GroupMessage, String> {
        Ok(match self {
            GroupCast::Enqueue {
                session,
                priority,
                queued_at,
                contact,
                step,
            } => GroupMessage::Enqueue {
                session,
                priority,
                queued_at,
                entry: QueueEntry {
                    contact: Arc::new(contact),
                    step: rules.step_from_parts(step)?,
                },
            },
            GroupCast::Leave { session } => GroupMessage::Leave { session },
            GroupCast::Reprioritise { session, priority } => {
                GroupMessage::Reprioritise { session, priority }
            }
            GroupCast::Member { profile, status } => GroupMessage::Member {
                profile: Arc::new(profile),
                status,
            },
            GroupCast::OfferLapsed { session, agent } => {
                GroupMessage::OfferLapsed { session, agent }
            }
            GroupCast::Answered { session } => GroupMessage::Answered { session },
        })
    }
}

impl AgentCast {
    /// The cast form of `message`; `None` for what an agent is only told by
    /// its own node (calls go as [`RemoteCall`]s, its timers stay with it).
    pub fn from_message(message: AgentMessage) -> Option<AgentCast> {
        Some(match message {
            AgentMessage::Offer {
                session,
                channel,
                group,
                ..
            } => AgentCast::Offer {
                session,
                channel,
                group,
            },
            AgentMessage::Withdraw { session } => AgentCast::Withdraw { session },
            AgentMessage::Release { session } => AgentCast::Release { session },
            AgentMessage::ReportStatus => AgentCast::ReportStatus,
            AgentMessage::Resume { request } => AgentCast::Resume { request },
            _ => return None,
        })
    }

    /// The agent's message; an offered session is reached on its node.
    pub fn into_message(self) -> AgentMessage {
        match self {
            AgentCast::Offer {
                session,
                channel,
                group,
            } => AgentMessage::Offer {
                session,
                channel,
                group,
                session_ref: crate::shared::SessionRef::Elsewhere(session),
            },
            AgentCast::Withdraw { session } => AgentMessage::Withdraw { session },
            AgentCast::Release { session } => AgentMessage::Release { session },
            AgentCast::ReportStatus => AgentMessage::ReportStatus,
            AgentCast::Resume { request } => AgentMessage::Resume { request },
        }
    }
}

impl SessionCast {
    /// The cast form of `message`; `None` for what is never sent to a
    /// session on another node (calls go as [`RemoteCall`]s, the actor's
    /// own timers and writes stay with it).
    pub fn from_message(message: &SessionMessage) -> Option<SessionCast> {
        Some(match message {
            SessionMessage::Requeue => SessionCast::Requeue,
            SessionMessage::StepTimeout { step_idx } => SessionCast::StepTimeout {
                step_idx: *step_idx,
            },
            SessionMessage::ResponseCheck { since } => SessionCast::ResponseCheck { since: *since },
            SessionMessage::Offered {
                agent,
                deadline,
                group,
            } => SessionCast::Offered {
                agent: agent.clone(),
                deadline: *deadline,
                group: group.clone(),
            },
            SessionMessage::OfferLapsed { agent } => SessionCast::OfferLapsed {
                agent: agent.clone(),
            },
            _ => return None,
        })
    }

    /// The session's message.
    pub fn into_message(self) -> SessionMessage {
        match self {
            SessionCast::Requeue => SessionMessage::Requeue,
            SessionCast::StepTimeout { step_idx } => SessionMessage::StepTimeout { step_idx },
            SessionCast::ResponseCheck { since } => SessionMessage::ResponseCheck { since },
            SessionCast::Offered {
                agent,
                deadline,
                group,
            } => SessionMessage::Offered {
                agent,
                deadline,
                group,
            },
            SessionCast::OfferLapsed { agent } => SessionMessage::OfferLapsed { agent },
        }
    }
}

/// Sends `message` (which has a reply port) to session `session` on node
/// `node`; the port is filled when the answer comes.
pub fn call_session_elsewhere(
    peers: &dyn Peers,
    node: u8,
    session: SessionId,
    message: SessionMessage,
) -> Result<(), ApiError> {
    let Some((call, replier)) = SessionCall::split(message) else {
        return Err(ApiError::Unavailable(format!(
            "session {session} runs on node {node}, and this message has no way there"
        )));
    };
    answer_later(
        peers.call(node, RemoteCall::Session { session, call }),
        replier,
    );
    Ok(())
}

/// How long a write waits for another node to drop changed customers from
/// its cache; a node that does not answer is hung or gone, and is about to
/// leave the cluster (and its cache with it).
const FORGET_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// The other nodes' customer caches, for the `CachedStore` of a node in a
/// cluster: a write that changes customers returns once every ready member
/// dropped them.
pub struct ClusterCaches {
    peers: Arc<dyn Peers>,
}

impl ClusterCaches {
    /// The caches of the members `peers` reaches.
    pub fn new(peers: Arc<dyn Peers>) -> ClusterCaches {
        ClusterCaches { peers }
    }
}

impl store::cache::PeerCaches for ClusterCaches {
    fn forget(&self, customers: Vec<CustomerId>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let me = self.peers.node_id();
        // Sent now, to every member at once; then the answers are awaited.
        let answers: Vec<(u8, RemoteAnswer)> = self
            .peers
            .placement()
            .members()
            .iter()
            .filter(|node| **node != me)
            .map(|node| {
                let call = RemoteCall::ForgetCustomers {
                    customers: customers.clone(),
                };
                (*node, self.peers.call(*node, call))
            })
            .collect();
        Box::pin(async move {
            for (node, answer) in answers {
                match tokio::time::timeout(FORGET_PATIENCE, answer).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => {
                        tracing::warn!(node, error = %err, "a node did not drop changed customers from its cache")
                    }
                    Err(_) => {
                        tracing::warn!(
                            node,
                            "a node did not drop changed customers from its cache in time"
                        )
                    }
                }
            }
        })
    }
}

/// Fills the caller's port when `answer` comes, without holding the caller
/// up: the call was sent already, in order with the caller's other sends.
pub fn answer_later(answer: RemoteAnswer, replier: calls::Replier) {
    tokio::spawn(async move { replier(answer.await) });
}

#[cfg(test)]
mod tests {
    use engine::customer::Customer;
    use engine::routing::{RuleSet, Step};

    use super::*;

    fn through_the_wire<T: Serialize + for<'de> Deserialize<'de>>(value: &T) -> T {
        serde_json::from_slice(&serde_json::to_vec(value).unwrap()).unwrap()
    }

    #[test]
    fn a_queue_entry_crosses_with_its_step_and_contact() {
        let rules = RuleSet::default_rules();
        let contact = Contact {
            channel: Channel::Web,
            customer: Customer::new("cust-1", "李雷"),
            message: "我的订单何时发货?".into(),
            digits: String::new(),
            at: 1_000,
        };
        let message = GroupMessage::Enqueue {
            session: SessionId(42),
            priority: 10,
            queued_at: 900,
            entry: QueueEntry {
                contact: Arc::new(contact.clone()),
                step: Step::to_agent(GroupId::new("default"), AgentId::new("li.na"), 10),
            },
        };
        let cast = through_the_wire(&GroupCast::from_message(&message).unwrap());
        let GroupMessage::Enqueue {
            session,
            priority,
            queued_at,
            entry,
        } = cast.into_message(&rules).unwrap()
        else {
            panic!("an enqueue stays an enqueue");
        };
        assert_eq!((session, priority, queued_at), (SessionId(42), 10, 900));
        assert_eq!(*entry.contact, contact);
        assert_eq!(entry.step.only_agent, Some(AgentId::new("li.na")));
    }

    #[test]
    fn only_casts_cross_as_casts() {
        let (reply, _) = ractor::concurrency::oneshot();
        let view = GroupMessage::View {
            reply: reply.into(),
        };
        assert!(GroupCast::from_message(&view).is_none());
        let lapsed = SessionMessage::OfferLapsed {
            agent: AgentId::new("a"),
        };
        let cast = through_the_wire(&SessionCast::from_message(&lapsed).unwrap());
        assert!(matches!(
            cast.into_message(),
            SessionMessage::OfferLapsed { agent } if agent.as_str() == "a"
        ));
    }
}
