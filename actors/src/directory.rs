//! The Directory actor: finds session actors by id with a plain `HashMap`,
//! and activates passivated sessions on demand (virtual-actor style).
//!
//! It is the only place that starts Session actors, so a session never has
//! two live actors. It never awaits: a start runs in the session's
//! SessionSupervisor shard, which reports back with `Started`; messages and
//! lookups for that session wait for it (concurrent ones join the one start)
//! while every other session is served. Agents and groups are not found
//! here: their actors register in [`Shared`](crate::shared::Shared) and are
//! cast to directly. Never `pg::get_members` or the named registry on a hot
//! path: both copy or lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::channel::Channel;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId, SessionIdGen};
use engine::limit::WindowLimit;
use engine::session::Session;
use engine::{EngineError, Millis};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use ractor_cluster_derive::RactorMessage;
use tracing::{debug, info, warn};

use crate::agent::AgentMessage;
use crate::error::ApiError;
use crate::group::GroupMessage;
use crate::refs::is_live;
use crate::remote::{Remote, SessionCall, SessionCast};
use crate::session::{SessionMessage, SessionStart};
use crate::session_supervisor::SessionSupervisorMessage;
use crate::shared::{SessionRef, Shared};

/// The window of the sessions-per-customer limit.
const HOUR_MS: Millis = 60 * 60 * 1000;
/// How often the limit's old counts are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(5 * 60);

/// Messages of the Directory.
#[derive(RactorMessage)]
pub enum DirectoryMessage {
    /// Deliver to a session, activating it if needed.
    ToSession {
        /// The session.
        session: SessionId,
        /// The message.
        message: SessionMessage,
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
    /// [`DirectoryMessage::ToSession`] from another node, which placed the
    /// session here: delivered here whatever this node's placement says
    /// (two views of the members may differ for a moment; a message must
    /// not bounce between them).
    ToSessionHere {
        /// The session.
        session: SessionId,
        /// The message.
        message: SessionMessage,
    },
    /// A customer's message for their open session (opened if they have
    /// none), which this node knows, from this node's callers or another
    /// node's: delivered in the order such messages arrive, to the session
    /// here or on the node that runs it.
    OpenSessionHere {
        /// The customer.
        customer: CustomerId,
        /// The channel of the message.
        channel: Channel,
        /// The message, with its reply port.
        message: SessionMessage,
    },
    /// [`DirectoryMessage::Offer`] from another node, likewise.
    OfferHere {
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
    /// A new session for a phone call of `customer`, on `phone`: never the
    /// customer's open session (their chat messages do not go to a call).
    OpenCall {
        /// The caller.
        customer: CustomerId,
        /// Reply port.
        reply: RpcReplyPort<Result<ActorRef<SessionMessage>, ApiError>>,
    },
    /// A start the Directory asked of a SessionSupervisor is over: the
    /// actor was spawned (it may still be `Starting`), or it could not be.
    Started {
        /// The session.
        session: SessionId,
        /// Its actor, or why it did not start.
        result: Result<ActorRef<SessionMessage>, ApiError>,
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
    /// The cluster's members changed: the actors of sessions placed on
    /// another node now stop here once they have taken what is in their
    /// mailbox (that node re-activates them from the store), and the open
    /// sessions of customers whose index is elsewhere now are forgotten.
    /// An `AdoptOpenSessions` follows; until it comes, a customer without a
    /// known open session waits rather than opening a new one.
    Rebalance,
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
    /// Session actors, live from their spawn on (the last one may have
    /// stopped since: `SessionStopped` is on its way).
    sessions: HashMap<SessionId, ActorRef<SessionMessage>>,
    /// Sessions whose actor a shard is starting, with what waits for it.
    /// A session is in `sessions` or here, never in both: one start at a
    /// time, so one actor and one `seq` writer per session.
    starting: HashMap<SessionId, Starting>,
    open_by_customer: HashMap<CustomerId, SessionId>,
    customer_of: HashMap<SessionId, CustomerId>,
    ids: SessionIdGen,
    n_restarts: u64,
    /// When each customer opened their recent sessions, for the per-customer limit.
    new_sessions: WindowLimit<CustomerId>,
    /// Rebalances whose open sessions (`AdoptOpenSessions`) have not come
    /// yet: meanwhile a customer this node has just become the index of
    /// may have an open session it does not know of.
    n_adopting: usize,
    /// What came meanwhile for customers without a known open session:
    /// opened (or delivered to the adopted session) once the sessions are in.
    held_opens: Vec<(CustomerId, Channel, Waiting)>,
}

/// A session actor being started.
struct Starting {
    why: StartReason,
    /// Answered, delivered or given up, in arrival order, when the start is over.
    waiting: Vec<Waiting>,
}

/// Why a session actor is being started: what its failure undoes or says.
enum StartReason {
    /// A new session of `customer`, opened at `at`: it counts against the
    /// customer's limit once it runs, and a failed start leaves the
    /// customer without an open session.
    New { customer: CustomerId, at: Millis },
    /// Something was sent to a session with no running actor.
    Reactivate,
    /// Its actor failed; the new one rehydrates from the store.
    Restart,
}

/// What waits for a session actor that is being started.
enum Waiting {
    /// A caller wants the actor (`DirectoryMessage::Session`).
    Lookup(RpcReplyPort<Result<ActorRef<SessionMessage>, ApiError>>),
    /// A message for the session.
    Deliver(SessionMessage),
    /// A customer's message for their open session, opened if need be.
    OpenDeliver {
        customer: CustomerId,
        channel: Channel,
        message: SessionMessage,
    },
    /// A group's offer of the session to an agent.
    Offer {
        agent: AgentId,
        channel: Channel,
        group: GroupId,
    },
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
            starting: HashMap::new(),
            open_by_customer: HashMap::new(),
            customer_of: HashMap::new(),
            ids: SessionIdGen::new(self.shared.config.node_id),
            n_restarts: 0,
            new_sessions: WindowLimit::new(limit, HOUR_MS),
            n_adopting: 0,
            held_opens: Vec::new(),
        })
    }

    /// Never awaits: a session that needs an actor is started by its shard,
    /// which answers with `Started`; meanwhile everything else is served.
    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DirectoryMessage::ToSession { session, message } => {
                if let Some((node, peers)) = self.shared.elsewhere(|p| p.session(session)) {
                    match SessionCast::from_message(&message) {
                        Some(message) => peers.cast(node, Remote::Session { session, message }),
                        None => {
                            warn!(session_id = %session, node, "a session's own message for another node dropped")
                        }
                    }
                    return Ok(());
                }
                self.reach(state, session, Waiting::Deliver(message));
            }
            DirectoryMessage::Offer {
                agent,
                session,
                channel,
                group,
            } => {
                if let Some((node, peers)) = self.shared.elsewhere(|p| p.session(session)) {
                    let offer = Remote::Offer {
                        agent,
                        session,
                        channel,
                        group,
                    };
                    peers.cast(node, offer);
                    return Ok(());
                }
                let offer = Waiting::Offer {
                    agent,
                    channel,
                    group,
                };
                self.reach(state, session, offer);
            }
            DirectoryMessage::ToSessionHere { session, message } => {
                self.reach(state, session, Waiting::Deliver(message));
            }
            DirectoryMessage::OpenSessionHere {
                customer,
                channel,
                message,
            } => {
                let waiting = Waiting::OpenDeliver {
                    customer: customer.clone(),
                    channel: channel.clone(),
                    message,
                };
                self.open(state, customer, channel, waiting);
            }
            DirectoryMessage::OfferHere {
                agent,
                session,
                channel,
                group,
            } => {
                let offer = Waiting::Offer {
                    agent,
                    channel,
                    group,
                };
                self.reach(state, session, offer);
            }
            DirectoryMessage::Session { session, reply } => {
                if let Some((node, _)) = self.shared.elsewhere(|p| p.session(session)) {
                    // Never a second actor for a session another node runs.
                    // The caller may have given up waiting.
                    let _ = reply.send(Err(ApiError::Unavailable(format!(
                        "session {session} runs on node {node}"
                    ))));
                    return Ok(());
                }
                self.reach(state, session, Waiting::Lookup(reply));
            }
            DirectoryMessage::OpenCall { customer, reply } => {
                // A call's caller waits for this session only: should its
                // start fail, they hear why, and are never handed the
                // customer's chat.
                self.create(
                    state,
                    customer,
                    Channel::Phone,
                    Waiting::Lookup(reply),
                    false,
                );
            }
            DirectoryMessage::Started { session, result } => {
                self.started(state, session, result);
            }
            DirectoryMessage::AdoptOpenSessions { sessions } => {
                for (session, customer) in sessions {
                    state.open_by_customer.insert(customer.clone(), session);
                    state.customer_of.insert(session, customer);
                }
                state.n_adopting = state.n_adopting.saturating_sub(1);
                if state.n_adopting == 0 {
                    for (customer, channel, waiting) in std::mem::take(&mut state.held_opens) {
                        self.open(state, customer, channel, waiting);
                    }
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
                    let start = SessionStart::Rehydrate(session);
                    self.start(state, session, start, StartReason::Restart, Vec::new());
                }
            }
            DirectoryMessage::SessionEnded { session, customer } => {
                if state.open_by_customer.get(&customer) == Some(&session) {
                    state.open_by_customer.remove(&customer);
                }
                state.customer_of.remove(&session);
            }
            DirectoryMessage::Rebalance => {
                // `Switchboard::rebalance` sends the open sessions next.
                state.n_adopting += 1;
                let shared = &self.shared;
                let mut n_moved = 0;
                for (session, actor) in &state.sessions {
                    if shared.elsewhere(|p| p.session(*session)).is_some() && is_live(actor) {
                        // A stopping actor needs no second stop.
                        let _ = actor.drain();
                        n_moved += 1;
                    }
                }
                state
                    .open_by_customer
                    .retain(|customer, _| shared.elsewhere(|p| p.customer(customer)).is_none());
                let open = &state.open_by_customer;
                state
                    .customer_of
                    .retain(|_, customer| open.contains_key(customer));
                if n_moved > 0 {
                    info!(
                        n_sessions = n_moved,
                        "sessions placed on another node: stopping them here"
                    );
                }
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
    /// Serves `waiting` with the live actor of `session`, or has it wait
    /// for the actor's start: joining the one in progress, or asking for one.
    fn reach(&self, state: &mut DirectoryState, session: SessionId, waiting: Waiting) {
        if let Some(starting) = state.starting.get_mut(&session) {
            starting.waiting.push(waiting);
            return;
        }
        let waiting = match state.sessions.get(&session) {
            // Live from its spawn on (`is_live`): starting another would give
            // the session a second `seq` writer.
            Some(actor) if is_live(actor) => {
                match self.serve(actor, session, waiting) {
                    None => return,
                    // Stopped between its last message and now: activate it again.
                    Some(waiting) => waiting,
                }
            }
            _ => waiting,
        };
        state.sessions.remove(&session);
        let start = SessionStart::Reactivate(session);
        self.start(
            state,
            session,
            start,
            StartReason::Reactivate,
            vec![waiting],
        );
    }

    /// Serves `waiting` (an `OpenDeliver`) with the customer's open session,
    /// or a new one; a customer whose session is being started joins that
    /// start.
    fn open(
        &self,
        state: &mut DirectoryState,
        customer: CustomerId,
        channel: Channel,
        waiting: Waiting,
    ) {
        match state.open_by_customer.get(&customer).copied() {
            Some(session) => match self.shared.elsewhere(|p| p.session(session)) {
                // The open session runs on another node (its own node, or
                // the one that took it over): never a second actor here.
                Some((node, peers)) => match waiting {
                    Waiting::OpenDeliver { message, .. } => {
                        if let Err(err) =
                            crate::remote::call_session_elsewhere(peers, node, session, message)
                        {
                            warn!(session_id = %session, error = %err, "customer message for a session on another node not delivered");
                        }
                    }
                    other => fail(
                        other,
                        ApiError::Unavailable(format!("session {session} runs on node {node}")),
                    ),
                },
                None => self.reach(state, session, waiting),
            },
            // The customer's open session may be among those being read
            // from the store after a rebalance: not a second one.
            None if state.n_adopting > 0 => state.held_opens.push((customer, channel, waiting)),
            None => self.create(state, customer, channel, waiting, true),
        }
    }

    /// Opens a new session for `customer`, within the per-customer limit,
    /// for `waiting`. Unless it is a call (`open` false), it is the
    /// customer's open session from now on, while it starts.
    fn create(
        &self,
        state: &mut DirectoryState,
        customer: CustomerId,
        channel: Channel,
        waiting: Waiting,
        open: bool,
    ) {
        let now = crate::clock::now();
        if let Err(reached) = state.new_sessions.check(&customer, now) {
            let retry_in_secs = ((reached.retry_at - now).max(0) as u64).div_ceil(1000);
            let limited = ApiError::Limited {
                what: "sessions_per_customer",
                message: format!(
                    "customer `{customer}` opened {} new sessions within the last hour; \
                     the next is allowed in {retry_in_secs} s",
                    reached.n_recent
                ),
            };
            fail(waiting, limited);
            return;
        }
        let session = state.ids.next(now);
        let record = Session::new(session, customer.clone(), channel, now);
        if open {
            state.open_by_customer.insert(customer.clone(), session);
            state.customer_of.insert(session, customer.clone());
        }
        let why = StartReason::New { customer, at: now };
        let start = SessionStart::New(Box::new(record));
        self.start(state, session, start, why, vec![waiting]);
    }

    /// Asks `session`'s shard for an actor; `Started` comes back.
    fn start(
        &self,
        state: &mut DirectoryState,
        session: SessionId,
        start: SessionStart,
        why: StartReason,
        waiting: Vec<Waiting>,
    ) {
        state.starting.insert(session, Starting { why, waiting });
        let shard = &state.shards[(session.0 as usize) % state.shards.len()];
        if shard
            .cast(SessionSupervisorMessage::Start { session, start })
            .is_err()
        {
            let unavailable = ApiError::Unavailable(format!("session supervisor for {session}"));
            self.started(state, session, Err(unavailable));
        }
    }

    /// A start is over: what waited for it is served, or told why not.
    fn started(
        &self,
        state: &mut DirectoryState,
        session: SessionId,
        result: Result<ActorRef<SessionMessage>, ApiError>,
    ) {
        let Some(Starting { why, waiting }) = state.starting.remove(&session) else {
            warn!(session_id = %session, "start that nobody asked for ignored");
            return;
        };
        let err = match result {
            Ok(actor) => {
                if let StartReason::New { customer, at } = &why {
                    state.new_sessions.record(customer, *at);
                }
                for waiting in waiting {
                    // Just started; if it stopped again already the message is moot.
                    drop(self.serve(&actor, session, waiting));
                }
                state.sessions.insert(session, actor);
                return;
            }
            Err(err) => err,
        };
        match &why {
            StartReason::New { customer, .. } => {
                if state.open_by_customer.get(customer) == Some(&session) {
                    state.open_by_customer.remove(customer);
                }
                state.customer_of.remove(&session);
            }
            StartReason::Restart => {
                warn!(session_id = %session, error = %err, "session could not be restarted");
            }
            StartReason::Reactivate => {}
        }
        let unknown = matches!(&err, ApiError::Invalid(EngineError::UnknownSession(_)));
        if unknown && let Some(customer) = state.customer_of.remove(&session) {
            // Its first write failed, so it was never stored: the customer
            // has no open session after all.
            if state.open_by_customer.get(&customer) == Some(&session) {
                state.open_by_customer.remove(&customer);
            }
        }
        for waiting in waiting {
            match waiting {
                Waiting::Lookup(reply) => {
                    // The caller may have given up waiting.
                    let _ = reply.send(Err(err.clone()));
                }
                // The session it was told about does not exist: a new one.
                Waiting::OpenDeliver {
                    customer,
                    channel,
                    message,
                } if unknown => {
                    let waiting = Waiting::OpenDeliver {
                        customer: customer.clone(),
                        channel: channel.clone(),
                        message,
                    };
                    self.open(state, customer, channel, waiting);
                }
                waiting @ (Waiting::Deliver(_) | Waiting::OpenDeliver { .. }) => {
                    warn!(session_id = %session, error = %err, "message for a session that cannot be activated not delivered");
                    fail(waiting, err.clone());
                }
                Waiting::Offer { agent, group, .. } => {
                    warn!(session_id = %session, error = %err, "offered session cannot be activated");
                    let lapsed = GroupMessage::OfferLapsed { session, agent };
                    self.shared.tell_group(&group, lapsed);
                    if unknown {
                        // Queued in memory, never stored (its first write
                        // failed): nobody is waiting behind this entry.
                        self.shared
                            .tell_group(&group, GroupMessage::Leave { session });
                    }
                }
            }
        }
    }

    /// Serves `waiting` with `actor`; gives it back if the actor stopped
    /// before it could take a message.
    fn serve(
        &self,
        actor: &ActorRef<SessionMessage>,
        session: SessionId,
        waiting: Waiting,
    ) -> Option<Waiting> {
        match waiting {
            Waiting::Lookup(reply) => {
                // The caller may have given up waiting.
                let _ = reply.send(Ok(actor.clone()));
            }
            Waiting::Deliver(message) => match actor.cast(message) {
                Ok(()) => {}
                Err(MessagingErr::SendErr(message)) => return Some(Waiting::Deliver(message)),
                // Not a session's message type: cannot happen with a typed ref.
                Err(_) => {}
            },
            Waiting::OpenDeliver {
                customer,
                channel,
                message,
            } => match actor.cast(message) {
                Ok(()) => {}
                Err(MessagingErr::SendErr(message)) => {
                    return Some(Waiting::OpenDeliver {
                        customer,
                        channel,
                        message,
                    });
                }
                // As above.
                Err(_) => {}
            },
            Waiting::Offer {
                agent,
                channel,
                group,
            } => {
                let offer = AgentMessage::Offer {
                    session,
                    channel,
                    group,
                    session_ref: SessionRef::Local(actor.clone()),
                };
                self.shared.tell_agent(&agent, offer);
            }
        }
        None
    }
}

/// Tells whoever waits in `waiting` that it cannot be served: a caller's
/// port gets `err`; a message with a reply port answers it with `err` (when
/// its reply has room for an error); an offer is not here (see `started`).
fn fail(waiting: Waiting, err: ApiError) {
    match waiting {
        Waiting::Lookup(reply) => {
            // The caller may have given up waiting.
            let _ = reply.send(Err(err));
        }
        Waiting::Deliver(message) | Waiting::OpenDeliver { message, .. } => {
            if let Some((_, replier)) = SessionCall::split(message) {
                replier(Err(err));
            }
        }
        Waiting::Offer { .. } => {}
    }
}
