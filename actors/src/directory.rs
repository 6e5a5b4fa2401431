//! The Directory actor: finds actors by id with plain `HashMap`s, and
//! activates passivated sessions on demand (virtual-actor style).
//!
//! It is the only place that starts Session actors, so a session never has two
//! live actors. Never `pg::get_members` or the named registry on a hot path:
//! both copy or lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::channel::Channel;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId, SessionIdGen};
use engine::limit::WindowLimit;
use engine::session::Session;
use engine::{EngineError, Millis};
use ractor::{
    Actor, ActorId, ActorProcessingErr, ActorRef, ActorStatus, MessagingErr, RpcReplyPort,
};
use tracing::{debug, warn};

use crate::agent::AgentMessage;
use crate::error::ApiError;
use crate::group::GroupMessage;
use crate::session::{SessionMessage, SessionStart};
use crate::session_supervisor::SessionSupervisorMessage;
use crate::shared::Shared;

/// The window of the sessions-per-customer limit.
const HOUR_MS: Millis = 60 * 60 * 1000;
/// How often the limit's old counts are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(5 * 60);

/// Messages of the Directory.
pub enum DirectoryMessage {
    /// Deliver to a session, activating it if needed.
    ToSession {
        /// The session.
        session: SessionId,
        /// The message.
        message: SessionMessage,
    },
    /// Deliver to an agent.
    ToAgent {
        /// The agent.
        agent: AgentId,
        /// The message.
        message: AgentMessage,
    },
    /// Deliver to a group.
    ToGroup {
        /// The group.
        group: GroupId,
        /// The message.
        message: GroupMessage,
    },
    /// A group offers a waiting session to an agent: the session is
    /// activated if it was passivated, and the agent gets the offer with
    /// the live actor.
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
    /// A session's actor, activated if needed.
    Session {
        /// The session.
        session: SessionId,
        /// Reply port.
        reply: RpcReplyPort<Result<ActorRef<SessionMessage>, ApiError>>,
    },
    /// The customer's open session, or a new one on `channel`.
    OpenSession {
        /// The customer.
        customer: CustomerId,
        /// The channel of the message that opens it.
        channel: Channel,
        /// Reply port.
        reply: RpcReplyPort<Result<ActorRef<SessionMessage>, ApiError>>,
    },
    /// An agent's actor.
    Agent {
        /// The agent.
        agent: AgentId,
        /// Reply port.
        reply: RpcReplyPort<Result<ActorRef<AgentMessage>, ApiError>>,
    },
    /// A group's actor.
    Group {
        /// The group.
        group: GroupId,
        /// Reply port.
        reply: RpcReplyPort<Result<ActorRef<GroupMessage>, ApiError>>,
    },
    /// An agent actor (re)started.
    RegisterAgent {
        /// The agent.
        agent: AgentId,
        /// Its actor.
        actor: ActorRef<AgentMessage>,
    },
    /// A group actor (re)started.
    RegisterGroup {
        /// The group.
        group: GroupId,
        /// Its actor.
        actor: ActorRef<GroupMessage>,
    },
    /// Open sessions found in the store at start-up.
    AdoptOpenSessions {
        /// (session, customer) pairs.
        sessions: Vec<(SessionId, CustomerId)>,
    },
    /// A session actor stopped (passivated, ended) or failed.
    SessionStopped {
        /// The session.
        session: SessionId,
        /// The actor that stopped; ignored if a newer one already runs.
        actor: ActorId,
        /// The session closed or was abandoned: forget the customer's open session.
        ended: bool,
        /// It failed and may be restarted.
        restart: bool,
    },
    /// A session closed or was abandoned and that is durable; sent before
    /// its caller hears so, so the customer's next message opens a new session.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// Its customer.
        customer: CustomerId,
    },
    /// Periodic: forget per-customer session counts older than the limit's
    /// window, and subscriptions whose socket closed.
    PruneLimits,
    /// Counts, for metrics and tests.
    Stats {
        /// Reply port.
        reply: RpcReplyPort<DirectoryStats>,
    },
}

/// Counts of what the directory knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryStats {
    /// Session actors alive.
    pub n_live_sessions: usize,
    /// Open sessions (live or passivated).
    pub n_open_sessions: usize,
    /// Session restarts after failures.
    pub n_restarts: u64,
    /// Customers the sessions-per-customer limit keeps count of: those that
    /// opened a session within the last hour (as of the last prune).
    pub n_customers_counted: usize,
}

/// The Directory actor; config only.
pub struct Directory {
    /// Shared context.
    pub shared: Arc<Shared>,
}

/// Arguments of the Directory.
pub struct DirectoryArgs {
    /// The session supervisors, by shard.
    pub session_shards: Vec<ActorRef<SessionSupervisorMessage>>,
}

/// The Directory's state.
pub struct DirectoryState {
    shards: Vec<ActorRef<SessionSupervisorMessage>>,
    sessions: HashMap<SessionId, ActorRef<SessionMessage>>,
    open_by_customer: HashMap<CustomerId, SessionId>,
    customer_of: HashMap<SessionId, CustomerId>,
    agents: HashMap<AgentId, ActorRef<AgentMessage>>,
    groups: HashMap<GroupId, ActorRef<GroupMessage>>,
    ids: SessionIdGen,
    n_restarts: u64,
    /// When each customer opened their recent sessions, for the per-customer limit.
    new_sessions: WindowLimit<CustomerId>,
}

impl Actor for Directory {
    type Msg = DirectoryMessage;
    type State = DirectoryState;
    type Arguments = DirectoryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: DirectoryArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(PRUNE_EVERY, || DirectoryMessage::PruneLimits);
        let limit = self.shared.config.max_new_sessions_per_customer_per_hour;
        Ok(DirectoryState {
            shards: args.session_shards,
            sessions: HashMap::new(),
            open_by_customer: HashMap::new(),
            customer_of: HashMap::new(),
            agents: HashMap::new(),
            groups: HashMap::new(),
            ids: SessionIdGen::new(self.shared.config.node_id),
            n_restarts: 0,
            new_sessions: WindowLimit::new(limit, HOUR_MS),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DirectoryMessage::ToSession { session, message } => {
                self.to_session(state, session, message).await
            }
            DirectoryMessage::ToAgent { agent, message } => match state.agents.get(&agent) {
                // A stopped agent is being restarted; it re-reports on start.
                Some(actor) => drop(actor.cast(message)),
                None => warn!(agent_id = %agent, "message for unknown agent dropped"),
            },
            DirectoryMessage::ToGroup { group, message } => match state.groups.get(&group) {
                // A stopped group is being restarted; it re-collects its queue on start.
                Some(actor) => drop(actor.cast(message)),
                None => warn!(group = %group, "message for unknown group dropped"),
            },
            DirectoryMessage::Offer {
                agent,
                session,
                channel,
                group,
            } => {
                let session_ref = match self.activate(state, session).await {
                    Ok(session_ref) => session_ref,
                    Err(err) => {
                        warn!(session_id = %session, error = %err, "offered session cannot be activated");
                        let message = GroupMessage::OfferLapsed {
                            session,
                            agent: agent.clone(),
                        };
                        if let Some(actor) = state.groups.get(&group) {
                            // A stopped group is being restarted and re-collects its queue.
                            drop(actor.cast(message));
                        }
                        return Ok(());
                    }
                };
                let message = AgentMessage::Offer {
                    session,
                    channel,
                    group,
                    session_ref,
                };
                match state.agents.get(&agent) {
                    // A stopped agent is being restarted; it re-reports on start.
                    Some(actor) => drop(actor.cast(message)),
                    None => warn!(agent_id = %agent, "offer for unknown agent dropped"),
                }
            }
            DirectoryMessage::Session { session, reply } => {
                let result = self.activate(state, session).await;
                // The caller may have given up waiting.
                let _ = reply.send(result);
            }
            DirectoryMessage::OpenSession {
                customer,
                channel,
                reply,
            } => {
                let result = match state.open_by_customer.get(&customer).copied() {
                    Some(session) => match self.activate(state, session).await {
                        // Its first write failed, so it was never stored:
                        // the customer has no open session after all.
                        Err(ApiError::Invalid(EngineError::UnknownSession(_))) => {
                            state.open_by_customer.remove(&customer);
                            state.customer_of.remove(&session);
                            self.create(state, customer, channel).await
                        }
                        activated => activated,
                    },
                    None => self.create(state, customer, channel).await,
                };
                // The caller may have given up waiting.
                let _ = reply.send(result);
            }
            DirectoryMessage::Agent { agent, reply } => {
                let result = state
                    .agents
                    .get(&agent)
                    .cloned()
                    .ok_or_else(|| EngineError::UnknownAgent(agent.to_string()).into());
                // The caller may have given up waiting.
                let _ = reply.send(result);
            }
            DirectoryMessage::Group { group, reply } => {
                let result = state
                    .groups
                    .get(&group)
                    .cloned()
                    .ok_or_else(|| EngineError::UnknownGroup(group.to_string()).into());
                // The caller may have given up waiting.
                let _ = reply.send(result);
            }
            DirectoryMessage::RegisterAgent { agent, actor } => {
                state.agents.insert(agent, actor);
            }
            DirectoryMessage::RegisterGroup { group, actor } => {
                state.groups.insert(group, actor);
            }
            DirectoryMessage::AdoptOpenSessions { sessions } => {
                for (session, customer) in sessions {
                    state.open_by_customer.insert(customer.clone(), session);
                    state.customer_of.insert(session, customer);
                }
            }
            DirectoryMessage::SessionStopped {
                session,
                actor,
                ended,
                restart,
            } => {
                let current = state
                    .sessions
                    .get(&session)
                    .is_some_and(|live| live.get_id() == actor);
                if current {
                    state.sessions.remove(&session);
                }
                if ended {
                    if let Some(customer) = state.customer_of.remove(&session) {
                        state.open_by_customer.remove(&customer);
                    }
                } else if restart && current {
                    state.n_restarts += 1;
                    metrics::counter!("switchboard_actor_restarts_total", "kind" => "session")
                        .increment(1);
                    let restarted = self
                        .spawn(state, session, SessionStart::Rehydrate(session))
                        .await;
                    if let Err(err) = restarted {
                        warn!(session_id = %session, error = %err, "session could not be restarted");
                    }
                }
            }
            DirectoryMessage::SessionEnded { session, customer } => {
                if state.open_by_customer.get(&customer) == Some(&session) {
                    state.open_by_customer.remove(&customer);
                }
                state.customer_of.remove(&session);
            }
            DirectoryMessage::PruneLimits => {
                state.new_sessions.prune(crate::clock::now());
                let n_pruned = self.shared.hub.prune_closed();
                if n_pruned > 0 {
                    debug!(n_pruned, "closed subscriptions dropped");
                }
            }
            DirectoryMessage::Stats { reply } => {
                let stats = DirectoryStats {
                    n_live_sessions: state.sessions.len(),
                    n_open_sessions: state.open_by_customer.len(),
                    n_restarts: state.n_restarts,
                    n_customers_counted: state.new_sessions.n_keys(),
                };
                // The caller may have given up waiting.
                let _ = reply.send(stats);
            }
        }
        Ok(())
    }
}

impl Directory {
    async fn to_session(
        &self,
        state: &mut DirectoryState,
        session: SessionId,
        message: SessionMessage,
    ) {
        let message = match state.sessions.get(&session) {
            Some(actor) => match actor.cast(message) {
                Ok(()) => return,
                // Stopped between its last message and now: activate it again.
                Err(MessagingErr::SendErr(message)) => message,
                Err(_) => return,
            },
            None => message,
        };
        state.sessions.remove(&session);
        match self.activate(state, session).await {
            // Just started; if it stopped again already the message is moot.
            Ok(actor) => drop(actor.cast(message)),
            Err(err) => {
                warn!(session_id = %session, error = %err, "message for a session that cannot be activated dropped")
            }
        }
    }

    /// The live actor of `session`, started from the store if it is not running.
    async fn activate(
        &self,
        state: &mut DirectoryState,
        session: SessionId,
    ) -> Result<ActorRef<SessionMessage>, ApiError> {
        // Live from its spawn on: an actor stays `Starting` until its
        // `post_start` has run, after `spawn` returned. Starting another
        // then would give the session a second `seq` writer (or, before
        // its first write is durable, fail: the store has no such session).
        if let Some(actor) = state.sessions.get(&session)
            && matches!(
                actor.get_status(),
                ActorStatus::Starting | ActorStatus::Running | ActorStatus::Upgrading
            )
        {
            return Ok(actor.clone());
        }
        let actor = self
            .spawn(state, session, SessionStart::Reactivate(session))
            .await?;
        Ok(actor)
    }

    async fn create(
        &self,
        state: &mut DirectoryState,
        customer: CustomerId,
        channel: Channel,
    ) -> Result<ActorRef<SessionMessage>, ApiError> {
        let now = crate::clock::now();
        if let Err(reached) = state.new_sessions.check(&customer, now) {
            let retry_in_secs = ((reached.retry_at - now).max(0) as u64).div_ceil(1000);
            return Err(ApiError::Limited {
                what: "sessions_per_customer",
                message: format!(
                    "customer `{customer}` opened {} new sessions within the last hour; \
                     the next is allowed in {retry_in_secs} s",
                    reached.n_recent
                ),
            });
        }
        let session = state.ids.next(now);
        let record = Session::new(session, customer.clone(), channel, now);
        let actor = self
            .spawn(state, session, SessionStart::New(Box::new(record)))
            .await?;
        state.new_sessions.record(&customer, now);
        state.open_by_customer.insert(customer.clone(), session);
        state.customer_of.insert(session, customer);
        Ok(actor)
    }

    async fn spawn(
        &self,
        state: &mut DirectoryState,
        session: SessionId,
        start: SessionStart,
    ) -> Result<ActorRef<SessionMessage>, ApiError> {
        let shard = &state.shards[(session.0 as usize) % state.shards.len()];
        let outcome = shard
            .call(
                |reply| SessionSupervisorMessage::Start {
                    session,
                    start,
                    reply,
                },
                Some(std::time::Duration::from_secs(30)),
            )
            .await?;
        let actor = match outcome {
            ractor::rpc::CallResult::Success(result) => result?,
            _ => {
                return Err(ApiError::Unavailable(format!(
                    "session supervisor for {session}"
                )));
            }
        };
        state.sessions.insert(session, actor.clone());
        Ok(actor)
    }
}
