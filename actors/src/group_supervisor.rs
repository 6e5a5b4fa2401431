//! The GroupSupervisor: one SkillGroup actor per configured group.
//!
//! ```text
//! GroupSupervisor ── SkillGroup(g)*
//! ```
//! A failed SkillGroup actor is started again with `recovering: true`: it asks
//! its waiting sessions to enqueue again (in their original place) and its
//! members to report their availability.

use std::collections::HashMap;
use std::sync::Arc;

use engine::agent::Agent;
use engine::group::SkillGroup;
use engine::ids::AgentId;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster_derive::RactorMessage;
use tracing::{info, warn};

use crate::group::{GroupActor, GroupArgs};
use crate::shared::Shared;

/// The GroupSupervisor has no messages of its own; it only supervises.
#[derive(RactorMessage)]
pub enum GroupSupervisorMessage {}

/// The GroupSupervisor; config only.
pub struct GroupSupervisor {
    /// Shared context.
    pub shared: Arc<Shared>,
}

/// Arguments: the groups and the agents (for membership).
pub struct GroupSupervisorArgs {
    /// Groups to run.
    pub groups: Vec<SkillGroup>,
    /// All agents; each group's members are those listing it.
    pub agents: Vec<Agent>,
}

/// The GroupSupervisor's state.
pub struct GroupSupervisorState {
    children: HashMap<ActorId, (SkillGroup, Vec<AgentId>)>,
}

impl Actor for GroupSupervisor {
    type Msg = GroupSupervisorMessage;
    type State = GroupSupervisorState;
    type Arguments = GroupSupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: GroupSupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = GroupSupervisorState {
            children: HashMap::new(),
        };
        for group in args.groups {
            let members = args
                .agents
                .iter()
                .filter(|a| a.groups.contains(&group.id))
                .map(|a| a.id.clone())
                .collect();
            self.start_group(&myself, &mut state, group, members, false)
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
                if let Some((group, members)) = state.children.remove(&cell.get_id()) {
                    warn!(group = %group.id, error = %err, "group actor failed; restarting");
                    metrics::counter!("switchboard_actor_restarts_total", "kind" => "group")
                        .increment(1);
                    self.start_group(&myself, state, group, members, true)
                        .await?;
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some((group, _)) = state.children.remove(&cell.get_id()) {
                    info!(group = %group.id, reason = ?reason, "group actor stopped");
                }
            }
            SupervisionEvent::ActorStarted(_)
            | SupervisionEvent::ProcessGroupChanged(_)
            | SupervisionEvent::PidLifecycleEvent(_) => {}
        }
        Ok(())
    }
}

impl GroupSupervisor {
    async fn start_group(
        &self,
        myself: &ActorRef<GroupSupervisorMessage>,
        state: &mut GroupSupervisorState,
        group: SkillGroup,
        members: Vec<AgentId>,
        recovering: bool,
    ) -> Result<(), ActorProcessingErr> {
        let args = GroupArgs {
            group: group.clone(),
            members: members.clone(),
            recovering,
        };
        let (actor, _) = Actor::spawn_linked(
            None,
            GroupActor {
                shared: self.shared.clone(),
            },
            args,
            myself.get_cell(),
        )
        .await?;
        // The group registered itself in `shared.group_refs` in its `pre_start`.
        state.children.insert(actor.get_id(), (group, members));
        Ok(())
    }
}
