//! What every actor of one switchboard shares: the store, the writer, the
//! event hub, the rules and the configuration.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use engine::EngineError;
use engine::channel::ChannelRegistry;
use engine::group::SkillGroup;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::routing::RuleSet;
use engine::sla::SlaTally;
use ractor::concurrency::{OneshotReceiver, oneshot};
use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use store::Store;

use engine::placement::Placement;
use tracing::{debug, warn};

use crate::agent::AgentMessage;
use crate::directory::DirectoryMessage;
use crate::error::ApiError;
use crate::event::Hub;
use crate::group::GroupMessage;
use crate::refs::{ActorRefs, OpenSessionRefs};
use crate::remote::{
    AgentCall, AgentCast, GroupCall, GroupCast, Peers, Remote, RemoteCall, SessionCast,
};
use crate::session::SessionMessage;
use crate::store_writer::StoreWriterMessage;

/// Run-time knobs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// An offer not accepted within this time goes to the next agent.
    pub offer_timeout: Duration,
    /// Wrap-up after an agent's last session ends, before they are available again.
    pub wrap_up: Duration,
    /// A session with no activity for this long stops its actor (it re-activates from the store).
    pub passivate_after: Duration,
    /// A session waiting in a queue (not offered) with no activity for this
    /// long stops its actor too: its queue entry stays in the SkillGroup,
    /// which re-activates it through the Directory to offer it, and its step
    /// timer runs outside the actor. Short, so that a million waiting
    /// sessions do not need a million live actors.
    pub passivate_waiting_after: Duration,
    /// A SkillGroup tells its waiting customers where they stand at most
    /// this often, after their place or estimate changed.
    pub queue_update: Duration,
    /// How many SessionSupervisors share the sessions.
    pub n_session_shards: usize,
    /// Most operations in one group commit.
    pub max_batch_ops: usize,
    /// This node's id, part of every session id.
    pub node_id: u8,
    /// A session actor that fails more often than this within `restart_window` is not restarted again.
    pub max_restarts: u32,
    /// See `max_restarts`.
    pub restart_window: Duration,
    /// Events buffered per subscriber before it is dropped (and must resume from the store).
    pub subscriber_buffer: usize,
    /// New sessions one customer may open within an hour (a customer has at
    /// most one open session; this bounds open–close churn). 0 turns the limit off.
    pub max_new_sessions_per_customer_per_hour: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            offer_timeout: Duration::from_secs(15),
            wrap_up: Duration::from_secs(30),
            passivate_after: Duration::from_secs(300),
            passivate_waiting_after: Duration::from_secs(10),
            queue_update: Duration::from_secs(5),
            n_session_shards: 8,
            max_batch_ops: 4096,
            node_id: 0,
            max_restarts: 5,
            restart_window: Duration::from_secs(10),
            subscriber_buffer: 1024,
            max_new_sessions_per_customer_per_hour: 30,
        }
    }
}

/// Shared by all actors of one switchboard.
pub struct Shared {
    /// Reads go straight to the store; writes through `writer`.
    pub store: Arc<dyn Store>,
    /// Group commit.
    pub writer: ActorRef<StoreWriterMessage>,
    /// Event fan-out.
    pub hub: Hub,
    /// The routing rules in force; replaced whole on reload.
    pub rules: RwLock<Arc<RuleSet>>,
    /// Accepted channels.
    pub channels: ChannelRegistry,
    /// The skill groups as configured at start: their SLA thresholds, for metrics.
    pub groups: HashMap<GroupId, Arc<SkillGroup>>,
    /// The agents as configured at start, so that an agent whose actor is
    /// not running here at the moment (it is moving between nodes) is told
    /// apart from an agent that does not exist.
    pub agents: HashSet<AgentId>,
    /// Knobs.
    pub config: RuntimeConfig,
    /// Set once the directory runs (it is spawned after this struct exists).
    pub directory: OnceLock<ActorRef<DirectoryMessage>>,
    /// Every Agent actor, registered by itself as it (re)starts.
    pub agent_refs: ActorRefs<AgentId, AgentMessage>,
    /// Every SkillGroup actor, registered by itself as it (re)starts.
    pub group_refs: ActorRefs<GroupId, GroupMessage>,
    /// Each customer's open session actor, kept by the session actors, so
    /// that a customer's next message skips the Directory.
    pub open_sessions: OpenSessionRefs,
    /// Each group's contacts since start, counted with the Prometheus
    /// counters, for the live wallboard. A short lock per answer or abandon.
    pub sla: Mutex<HashMap<GroupId, SlaTally>>,
    /// The same, minute by minute over the last hour, for the wallboard's
    /// rolling service level and sparklines.
    pub sla_windows: Mutex<HashMap<GroupId, engine::sla::SlaWindow>>,
    /// Per session, the `seq`s of events whose write had an unknown outcome
    /// (the store may hold them) when its actor failed: the next incarnation
    /// publishes those the store holds, so that open sockets get them live.
    /// A short lock per unknown outcome and per session rehydration.
    pub maybe_stored: Mutex<HashMap<SessionId, BTreeSet<u64>>>,
    /// Told when a session's write with outbox entries (agents' replies to
    /// channel accounts) is durable: the outbox worker delivers them now
    /// rather than at its next poll.
    pub outbox_written: tokio::sync::Notify,
    /// Turns session events (`message.created`, `session.assigned`,
    /// `session.transferred`) into outbox entries written in the same batch
    /// as the event; set once by the data platform, none before.
    pub events: OnceLock<Arc<dyn crate::platform::EventEncoder>>,
    /// Follows knowledge-base and template changes made through other
    /// nodes; set once by the data platform.
    pub knowledge: OnceLock<crate::remote::KnowledgeListener>,
    /// Hears the rules other nodes put in force; set once by the gateway.
    pub rules_replaced: OnceLock<crate::remote::RulesListener>,
    /// The other nodes of the cluster; `None` when this node runs alone
    /// (every actor is then local).
    pub peers: Option<Arc<dyn Peers>>,
    /// Mints audit entry ids (unique across nodes, like session ids).
    pub audit_ids: Mutex<engine::ids::SessionIdGen>,
}

impl Shared {
    /// A new audit entry id.
    pub fn audit_id(&self, now: engine::Millis) -> u64 {
        let mut ids = self.audit_ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.next(now).0
    }

    /// The directory; panics only if used before start-up finished, which is a bug.
    pub fn directory(&self) -> &ActorRef<DirectoryMessage> {
        self.directory
            .get()
            .expect("directory is set during start-up")
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().expect("rules lock").clone()
    }

    /// The node `pick` places an actor on, with the way there, when that is
    /// another node; `None` when the actor runs here (always, alone).
    pub fn elsewhere(&self, pick: impl FnOnce(&Placement) -> u8) -> Option<(u8, &dyn Peers)> {
        let peers = self.peers.as_deref()?;
        let node = pick(&peers.placement());
        (node != peers.node_id()).then_some((node, peers))
    }

    /// Tells skill group `group`, here or on its node.
    pub fn tell_group(&self, group: &GroupId, message: GroupMessage) {
        let Some((node, peers)) = self.elsewhere(|placement| placement.group(group)) else {
            if self.peers.is_some() && self.group_refs.get(group).is_none() {
                // Placed here a moment ago, and starting: it collects its
                // queue and its members' reports when it runs.
                debug!(group = %group, "message for a group not running here yet dropped");
                return;
            }
            self.group_refs.tell(group, message);
            return;
        };
        match GroupCast::from_message(&message) {
            Some(message) => peers.cast(
                node,
                Remote::Group {
                    group: group.clone(),
                    message: Box::new(message),
                },
            ),
            None => warn!(group = %group, node, "a group's own message for another node dropped"),
        }
    }

    /// Tells agent `agent`, here or on its node.
    pub fn tell_agent(&self, agent: &AgentId, message: AgentMessage) {
        let Some((node, peers)) = self.elsewhere(|placement| placement.agent(agent)) else {
            if !self.agents.contains(agent) {
                warn!(agent_id = %agent, "message for an agent that is not configured dropped");
                return;
            }
            // Held until the actor runs, when it was placed here a moment
            // ago and is starting (`ActorRefs::tell`).
            self.agent_refs.tell(agent, message);
            return;
        };
        let Some(message) = AgentCast::from_message(message) else {
            warn!(agent_id = %agent, node, "an agent's own message for another node dropped");
            return;
        };
        peers.cast(
            node,
            Remote::Agent {
                agent: agent.clone(),
                message,
            },
        );
    }

    /// Tells session `session`, through this node's Directory or on the
    /// session's node.
    pub fn tell_session(&self, session: SessionId, message: SessionMessage) {
        let Some((node, peers)) = self.elsewhere(|placement| placement.session(session)) else {
            // The directory lives as long as the system.
            let _ = self
                .directory()
                .cast(DirectoryMessage::ToSession { session, message });
            return;
        };
        match SessionCast::from_message(&message) {
            Some(message) => peers.cast(node, Remote::Session { session, message }),
            None => {
                warn!(session_id = %session, node, "a session's own message for another node dropped")
            }
        }
    }
}

impl Shared {
    /// Calls session `session` with the message `build` makes: through this
    /// node's Directory (activating it), or on the session's node. Its
    /// reply, or why none came within `patience`.
    pub async fn call_session<T: Send + 'static>(
        &self,
        session: SessionId,
        build: impl FnOnce(RpcReplyPort<T>) -> SessionMessage,
        patience: Duration,
    ) -> Result<T, ApiError> {
        match self.elsewhere(|placement| placement.session(session)) {
            None => {
                let actor = call_actor(
                    self.directory(),
                    |reply| DirectoryMessage::Session { session, reply },
                    patience,
                )
                .await??;
                call_actor(&actor, build, patience).await
            }
            Some((node, peers)) => {
                let (sender, receiver) = oneshot();
                let message = build(sender.into());
                crate::remote::call_session_elsewhere(peers, node, session, message)?;
                wait_for(
                    receiver,
                    patience,
                    &format!("session {session} on node {node}"),
                )
                .await
            }
        }
    }

    /// Calls agent `agent` with the message `build` makes, here or on its
    /// node; its reply, or why none came within `patience`.
    pub async fn call_agent<T: Send + 'static>(
        &self,
        agent: &AgentId,
        build: impl FnOnce(RpcReplyPort<T>) -> AgentMessage,
        patience: Duration,
    ) -> Result<T, ApiError> {
        match self.elsewhere(|placement| placement.agent(agent)) {
            None => {
                let actor = self
                    .agent_refs
                    .get(agent)
                    .ok_or_else(|| self.not_running_agent(agent))?;
                call_actor(&actor, build, patience).await
            }
            Some((node, peers)) => {
                let (sender, receiver) = oneshot();
                let Some((call, replier)) = AgentCall::split(build(sender.into())) else {
                    return Err(ApiError::Unavailable(format!(
                        "agent {agent} runs on node {node}"
                    )));
                };
                let call = RemoteCall::Agent {
                    agent: agent.clone(),
                    call,
                };
                crate::remote::answer_later(peers.call(node, call), replier);
                wait_for(receiver, patience, &format!("agent {agent} on node {node}")).await
            }
        }
    }

    /// Calls skill group `group` with the message `build` makes, here or on
    /// its node; its reply, or why none came within `patience`.
    pub async fn call_group<T: Send + 'static>(
        &self,
        group: &GroupId,
        build: impl FnOnce(RpcReplyPort<T>) -> GroupMessage,
        patience: Duration,
    ) -> Result<T, ApiError> {
        match self.elsewhere(|placement| placement.group(group)) {
            None => {
                let actor = self
                    .group_refs
                    .get(group)
                    .ok_or_else(|| self.not_running_group(group))?;
                call_actor(&actor, build, patience).await
            }
            Some((node, peers)) => {
                let (sender, receiver) = oneshot();
                let Some((call, replier)) = GroupCall::split(build(sender.into())) else {
                    return Err(ApiError::Unavailable(format!(
                        "group {group} runs on node {node}"
                    )));
                };
                let call = RemoteCall::Group {
                    group: group.clone(),
                    call,
                };
                crate::remote::answer_later(peers.call(node, call), replier);
                wait_for(receiver, patience, &format!("group {group} on node {node}")).await
            }
        }
    }
}

impl Shared {
    /// Why agent `agent` has no actor here: it does not exist, or (in a
    /// cluster) it is moving between nodes.
    pub fn not_running_agent(&self, agent: &AgentId) -> ApiError {
        if self.peers.is_some() && self.agents.contains(agent) {
            ApiError::Unavailable(format!(
                "agent {agent} is moving between cluster nodes; retry"
            ))
        } else {
            EngineError::UnknownAgent(agent.to_string()).into()
        }
    }

    /// Why skill group `group` has no actor here, as for agents.
    pub fn not_running_group(&self, group: &GroupId) -> ApiError {
        if self.peers.is_some() && self.groups.contains_key(group) {
            ApiError::Unavailable(format!(
                "group {group} is moving between cluster nodes; retry"
            ))
        } else {
            EngineError::UnknownGroup(group.to_string()).into()
        }
    }
}

/// Calls a local actor and turns every way the call can fail into an
/// [`ApiError`].
pub async fn call_actor<M: ractor::Message, T: Send + 'static>(
    actor: &ActorRef<M>,
    message: impl FnOnce(RpcReplyPort<T>) -> M,
    patience: Duration,
) -> Result<T, ApiError> {
    match actor.call(message, Some(patience)).await? {
        CallResult::Success(value) => Ok(value),
        CallResult::Timeout => Err(ApiError::Unavailable(format!(
            "actor {} (timed out)",
            actor.get_id()
        ))),
        CallResult::SenderError => Err(ApiError::Unavailable(format!(
            "actor {} (stopped before replying)",
            actor.get_id()
        ))),
    }
}

/// The reply a port of `receiver` gets from another node, within `patience`.
async fn wait_for<T>(
    receiver: OneshotReceiver<T>,
    patience: Duration,
    what: &str,
) -> Result<T, ApiError> {
    match tokio::time::timeout(patience, receiver).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(_)) => Err(ApiError::Unavailable(format!("{what} (no answer)"))),
        Err(_) => Err(ApiError::Unavailable(format!("{what} (timed out)"))),
    }
}

/// How an agent reaches a session it was offered: its actor here, or its id
/// when it runs on another node (resolved to that node at each send).
#[derive(Clone)]
pub enum SessionRef {
    /// The session's actor on this node.
    Local(ActorRef<SessionMessage>),
    /// The session runs elsewhere.
    Elsewhere(SessionId),
}

impl SessionRef {
    /// Casts `message` to the session. A session that stopped drops it.
    pub fn cast(&self, shared: &Shared, message: SessionMessage) {
        match self {
            // A stopped session's timers and re-activation cover what it missed.
            SessionRef::Local(actor) => drop(actor.cast(message)),
            SessionRef::Elsewhere(session) => shared.tell_session(*session, message),
        }
    }
}

/// Converts a `Duration` to engine milliseconds.
pub fn millis(duration: Duration) -> engine::Millis {
    duration.as_millis() as engine::Millis
}
