//! The AgentSupervisor: one Agent actor per configured agent.
//!
//! ```text
//! AgentSupervisor ── Agent(a)*
//! ```
//! At start-up one scan of the open sessions tells each agent what it holds
//! from before a restart. A failed Agent actor is started again with
//! `recovering: true`: it picks up the sessions it holds from the store and
//! reports itself to its groups.

use std::collections::HashMap;
use std::sync::Arc;

use engine::agent::Agent;
use engine::channel::Channel;
use engine::ids::{AgentId, SessionId};
use engine::session::SessionState;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster_derive::RactorMessage;
use tracing::{info, warn};

use crate::agent::{AgentActor, AgentArgs};
use crate::shared::Shared;

/// The AgentSupervisor has no messages of its own; it only supervises.
#[derive(RactorMessage)]
pub enum AgentSupervisorMessage {}

/// The AgentSupervisor; config only.
pub struct AgentSupervisor {
    /// Shared context.
    pub shared: Arc<Shared>,
}

/// The AgentSupervisor's state.
pub struct AgentSupervisorState {
    children: HashMap<ActorId, Arc<Agent>>,
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
            let sessions = held.remove(&agent.id).unwrap_or_default();
            self.start_agent(&myself, &mut state, Arc::new(agent), false, sessions)
                .await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
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
                    warn!(agent_id = %profile.id, error = %err, "agent actor failed; restarting");
                    metrics::counter!("switchboard_actor_restarts_total", "kind" => "agent")
                        .increment(1);
                    self.start_agent(&myself, state, profile, true, Vec::new())
                        .await?;
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(profile) = state.children.remove(&cell.get_id()) {
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
        recovering: bool,
        held: Vec<(SessionId, Channel)>,
    ) -> Result<(), ActorProcessingErr> {
        let args = AgentArgs {
            profile: profile.clone(),
            recovering,
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
        state.children.insert(actor.get_id(), profile);
        Ok(())
    }
}
