//! The RootSupervisor and start-up order.
//!
//! ```text
//! RootSupervisor
//! ├── StoreWriter            (group commit)
//! ├── Directory              (HashMap of session actors; starts sessions)
//! ├── SessionSupervisor[k] ── Session(s)*
//! ├── GroupSupervisor ── SkillGroup(g)*
//! └── AgentSupervisor ── Agent(a)*
//! ```
//! Groups start before agents so that every agent's first report finds its
//! groups registered. A direct child that fails (the StoreWriter, the
//! Directory, a supervisor) is a bug that stops the whole system rather than
//! leave it half-working: everything durable is in the store, and the next
//! start resumes from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use engine::agent::Agent;
use engine::channel::{Channel, ChannelRegistry};
use engine::group::SkillGroup;
use engine::ids::SessionId;
use engine::routing::RuleSet;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster_derive::RactorMessage;
use store::{Store, StoreError};
use tracing::{error, info, warn};

use crate::agent_supervisor::{AgentSupervisor, AgentSupervisorMessage};
use crate::directory::{Directory, DirectoryArgs, DirectoryMessage};
use crate::event::{CallEvent, Hub};
use crate::group_supervisor::{GroupSupervisor, GroupSupervisorArgs, GroupSupervisorMessage};
use crate::refs::{ActorRefs, OpenSessionRefs};
use crate::remote::Peers;
use crate::session_supervisor::SessionSupervisor;
use crate::shared::{RuntimeConfig, Shared};
use crate::store_writer::{StoreWriter, StoreWriterArgs};

/// Messages of the RootSupervisor.
#[derive(RactorMessage)]
pub enum RootMessage {
    /// The cluster's members changed: the supervisors run what is placed
    /// here now, and only that.
    Rebalance,
}

/// The RootSupervisor; config only.
pub struct RootSupervisor;

/// What the system starts with.
pub struct RootArgs {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Routing rules.
    pub rules: RuleSet,
    /// Accepted channels.
    pub channels: ChannelRegistry,
    /// Knobs.
    pub config: RuntimeConfig,
    /// Receives the shared context once everything runs.
    pub shared_out: Arc<OnceLock<Arc<Shared>>>,
    /// The other nodes, in a cluster.
    pub peers: Option<Arc<dyn Peers>>,
}

/// The RootSupervisor's state.
pub struct RootState {
    /// Kept so that the shared context lives as long as the root.
    _shared: Arc<Shared>,
    group_supervisor: ActorRef<GroupSupervisorMessage>,
    agent_supervisor: ActorRef<AgentSupervisorMessage>,
}

impl Actor for RootSupervisor {
    type Msg = RootMessage;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RootArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let config = args.config;
        let writer_args = StoreWriterArgs {
            store: args.store.clone(),
            max_batch_ops: config.max_batch_ops,
        };
        let (writer, _) =
            Actor::spawn_linked(None, StoreWriter, writer_args, myself.get_cell()).await?;
        let groups: Vec<SkillGroup> = args.store.list_groups().await?;
        let agents: Vec<Agent> = args.store.list_agents().await?;
        let shared = Arc::new(Shared {
            agents: agents.iter().map(|agent| agent.id.clone()).collect(),
            groups: groups
                .iter()
                .map(|group| (group.id.clone(), Arc::new(group.clone())))
                .collect(),
            store: args.store.clone(),
            writer: writer.clone(),
            hub: Hub::default(),
            rules: RwLock::new(Arc::new(args.rules)),
            channels: args.channels,
            config: config.clone(),
            directory: OnceLock::new(),
            agent_refs: ActorRefs::new("agent"),
            group_refs: ActorRefs::new("group"),
            open_sessions: OpenSessionRefs::default(),
            sla: Mutex::new(HashMap::new()),
            sla_windows: Mutex::new(HashMap::new()),
            maybe_stored: Mutex::new(HashMap::new()),
            outbox_written: tokio::sync::Notify::new(),
            events: std::sync::OnceLock::new(),
            knowledge: std::sync::OnceLock::new(),
            rules_replaced: std::sync::OnceLock::new(),
            peers: args.peers.clone(),
            audit_ids: Mutex::new(engine::ids::SessionIdGen::new(config.node_id)),
        });
        if let Some(peers) = args.peers.clone() {
            shared
                .hub
                .forward_to(Box::new(move |audience, event, ephemeral| {
                    peers.broadcast(crate::remote::Remote::Event {
                        audience: audience.clone(),
                        event: Box::new(event.clone()),
                        ephemeral,
                    });
                }));
        }
        let mut shards = Vec::with_capacity(config.n_session_shards.max(1));
        for _ in 0..config.n_session_shards.max(1) {
            let (shard, _) = Actor::spawn_linked(
                None,
                SessionSupervisor {
                    shared: shared.clone(),
                },
                (),
                myself.get_cell(),
            )
            .await?;
            shards.push(shard);
        }
        let (directory, _) = Actor::spawn_linked(
            None,
            Directory {
                shared: shared.clone(),
            },
            DirectoryArgs {
                session_shards: shards,
            },
            myself.get_cell(),
        )
        .await?;
        shared
            .directory
            .set(directory.clone())
            .map_err(|_| "directory set twice")?;

        let group_args = GroupSupervisorArgs {
            groups,
            agents: agents.clone(),
        };
        let (group_supervisor, _) = Actor::spawn_linked(
            None,
            GroupSupervisor {
                shared: shared.clone(),
            },
            group_args,
            myself.get_cell(),
        )
        .await?;
        let (agent_supervisor, _) = Actor::spawn_linked(
            None,
            AgentSupervisor {
                shared: shared.clone(),
            },
            agents,
            myself.get_cell(),
        )
        .await?;

        // Sessions that were open when the last run stopped: customers find
        // them again, and waiting ones take their place in line again.
        // Calls cannot outlive the process that held their media: they end
        // as dropped, and free their agents.
        let mut open = args.store.open_sessions().await?;
        let mut calls = Vec::new();
        for session in open.iter().filter(|s| s.channel == Channel::Phone) {
            if is_call(args.store.as_ref(), session.id).await? {
                calls.push(session.id);
            }
        }
        open.retain(|session| !calls.contains(&session.id));
        // In a cluster this node knows the open sessions of the customers it
        // is the index of, and resumes the sessions (and ends the calls) it
        // runs; the other members do the rest. Alone, it does all.
        calls.retain(|session| shared.elsewhere(|p| p.session(*session)).is_none());
        for session in calls {
            info!(session_id = %session, "call found open at start: ending it as dropped");
            directory.cast(DirectoryMessage::ToSession {
                session,
                message: crate::session::SessionMessage::DropCall,
            })?;
        }
        let adopted = open
            .iter()
            .filter(|s| shared.elsewhere(|p| p.customer(&s.customer_id)).is_none())
            .map(|s| (s.id, s.customer_id.clone()))
            .collect();
        directory.cast(DirectoryMessage::AdoptOpenSessions { sessions: adopted })?;
        open.retain(|session| shared.elsewhere(|p| p.session(session.id)).is_none());
        for session in open.iter().filter(|s| s.state.is_waiting()) {
            directory.cast(DirectoryMessage::ToSession {
                session: session.id,
                message: crate::session::SessionMessage::Requeue,
            })?;
        }
        // Only one root per `Switchboard::start`, which reads this once.
        let _ = args.shared_out.set(shared.clone());
        Ok(RootState {
            _shared: shared,
            group_supervisor,
            agent_supervisor,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMessage::Rebalance => {
                // Both live as long as the root.
                let _ = state
                    .group_supervisor
                    .cast(GroupSupervisorMessage::Rebalance);
                let _ = state
                    .agent_supervisor
                    .cast(AgentSupervisorMessage::Rebalance);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                error!(actor = %cell.get_id(), error = %err, "a top-level actor failed; stopping");
                myself.stop(Some(format!("top-level actor failed: {err}")));
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                warn!(actor = %cell.get_id(), reason = ?reason, "a top-level actor stopped");
            }
            SupervisionEvent::ActorStarted(_)
            | SupervisionEvent::ProcessGroupChanged(_)
            | SupervisionEvent::PidLifecycleEvent(_) => {}
        }
        Ok(())
    }
}

/// Whether `session` is a phone call: its first event is the call's start.
pub(crate) async fn is_call(store: &dyn Store, session: SessionId) -> Result<bool, StoreError> {
    let first = store.messages(session, 0, 1).await?;
    Ok(first
        .first()
        .and_then(CallEvent::stored_in)
        .is_some_and(|call| matches!(call, CallEvent::Started { .. })))
}
