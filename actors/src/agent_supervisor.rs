//! The AgentSupervisor: one Agent actor per configured agent.
//!
//! ```text
//! AgentSupervisor ── Agent(a)*
//! ```
//! At start-up one scan of the open sessions tells each agent what it holds
//! from before a restart. A failed Agent actor is started again with
//! `recovering: true`: it picks up the sessions it holds from the store and
//! reports itself to its groups. In a cluster only the agents placed on this
//! node run here; after the members change (`Rebalance`) an agent placed
//! here now starts the same way, and one placed elsewhere stops.

use std::collections::HashMap;
use std::sync::Arc;

use engine::agent::Agent;
use engine::channel::Channel;
use engine::ids::{AgentId, SessionId};
use engine::session::SessionState;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster_derive::RactorMessage;
use tracing::{info, warn};

use crate::agent::{AgentActor, AgentArgs, AgentMessage};
use crate::shared::Shared;

/// Why an Agent actor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// With the system.
    Cold,
    /// After its actor failed.
    Restart,
    /// The cluster placed it here now.
    Moved,
}

/// Messages of the AgentSupervisor.
#[derive(RactorMessage)]
pub enum AgentSupervisorMessage {
    /// The cluster's members changed: run the agents placed here, and only those.
    Rebalance,
}

/// The AgentSupervisor; config only.
pub struct AgentSupervisor {
    /// Shared context.
    pub shared: Arc<Shared>,
}

/// The AgentSupervisor's state.
pub struct AgentSupervisorState {
    children: HashMap<ActorId, Arc<Agent>>,
    /// Every configured agent, placed here or not.
    configured: Vec<Arc<Agent>>,
    /// The running agent actors, by agent.
    running: HashMap<AgentId, ActorRef<AgentMessage>>,
}

impl Actor for AgentSupervisor {
    type Msg = AgentSupervisorMessage;
    type State = AgentSupervisorState;
    type Arguments = Vec<Agent>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        agents: Vec<Agent>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = AgentSupervisorState {
            children: HashMap::new(),
            configured: agents.iter().cloned().map(Arc::new).collect(),
            running: HashMap::new(),
        };
        let mut held: HashMap<AgentId, Vec<(SessionId, Channel)>> = HashMap::new();
        for session in self.shared.store.open_sessions().await? {
            let holding = matches!(session.state, SessionState::Assigned | SessionState::WrapUp);
            if let (true, Some(agent)) = (holding, session.agent) {
                held.entry(agent)
                    .or_default()
                    .push((session.id, session.channel));
            }
        }
        for agent in agents {
            if self.shared.elsewhere(|p| p.agent(&agent.id)).is_some() {
                continue;
            }
            let sessions = held.remove(&agent.id).unwrap_or_default();
            self.start_agent(&myself, &mut state, Arc::new(agent), Start::Cold, sessions)
                .await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AgentSupervisorMessage::Rebalance => {
                for profile in state.configured.clone() {
                    let here = self.shared.elsewhere(|p| p.agent(&profile.id)).is_none();
                    match (here, state.running.remove(&profile.id)) {
                        (true, None) => {
                            info!(agent_id = %profile.id, "agent placed on this node: starting it");
                            self.start_agent(&myself, state, profile, Start::Moved, Vec::new())
                                .await?;
                        }
                        (true, Some(actor)) => {
                            state.running.insert(profile.id.clone(), actor);
                        }
                        (false, Some(actor)) => {
                            info!(agent_id = %profile.id, "agent placed on another node: stopping it here");
                            state.children.remove(&actor.get_id());
                            self.shared
                                .agent_refs
                                .unregister(&profile.id, actor.get_id());
                            // A stopped actor has no presence to hand over.
                            let _ = actor.cast(AgentMessage::HandOver);
                        }
                        (false, None) => {}
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(profile) = state.children.remove(&cell.get_id()) {
                    state.running.remove(&profile.id);
                    warn!(agent_id = %profile.id, error = %err, "agent actor failed; restarting");
                    metrics::counter!("switchboard_actor_restarts_total", "kind" => "agent")
                        .increment(1);
                    self.start_agent(&myself, state, profile, Start::Restart, Vec::new())
                        .await?;
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(profile) = state.children.remove(&cell.get_id()) {
                    state.running.remove(&profile.id);
                    info!(agent_id = %profile.id, reason = ?reason, "agent actor stopped");
                }
            }
            SupervisionEvent::ActorStarted(_)
            | SupervisionEvent::ProcessGroupChanged(_)
            | SupervisionEvent::PidLifecycleEvent(_) => {}
        }
        Ok(())
    }
}

impl AgentSupervisor {
    async fn start_agent(
        &self,
        myself: &ActorRef<AgentSupervisorMessage>,
        state: &mut AgentSupervisorState,
        profile: Arc<Agent>,
        start: Start,
        held: Vec<(SessionId, Channel)>,
    ) -> Result<(), ActorProcessingErr> {
        let args = AgentArgs {
            profile: profile.clone(),
            recovering: start != Start::Cold,
            moved: start == Start::Moved,
            held,
        };
        let (actor, _) = Actor::spawn_linked(
            None,
            AgentActor {
                shared: self.shared.clone(),
            },
            args,
            myself.get_cell(),
        )
        .await?;
        // The agent registered itself in `shared.agent_refs` in its `pre_start`.
        state.running.insert(profile.id.clone(), actor.clone());
        state.children.insert(actor.get_id(), profile);
        Ok(())
    }
}
