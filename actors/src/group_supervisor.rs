//! The GroupSupervisor: one SkillGroup actor per configured group.
//!
//! ```text
//! GroupSupervisor ── SkillGroup(g)*
//! ```
//! A failed SkillGroup actor is started again with `recovering: true`: it asks
//! its waiting sessions to enqueue again (in their original place) and its
//! members to report their availability. In a cluster only the groups placed
//! on this node run here; after the members change (`Rebalance`) a group
//! placed here now starts the same way, and one placed elsewhere stops.

use engine::ids::GroupId;

use std::collections::HashMap;
use std::sync::Arc;

use engine::agent::Agent;
use engine::group::SkillGroup;
use engine::ids::AgentId;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster_derive::RactorMessage;
use tracing::{info, warn};

use crate::group::{GroupActor, GroupArgs, GroupMessage};
use crate::shared::Shared;

/// Messages of the GroupSupervisor.
#[derive(RactorMessage)]
pub enum GroupSupervisorMessage {
    /// The cluster's members changed: run the groups placed here, and only those.
    Rebalance,
}

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
    /// Every configured group with its members, placed here or not.
    configured: Vec<(SkillGroup, Vec<AgentId>)>,
    /// The running group actors, by group.
    running: HashMap<GroupId, ActorRef<GroupMessage>>,
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
            configured: Vec::new(),
            running: HashMap::new(),
        };
        for group in args.groups {
            let members: Vec<AgentId> = args
                .agents
                .iter()
                .filter(|a| a.groups.contains(&group.id))
                .map(|a| a.id.clone())
                .collect();
            state.configured.push((group.clone(), members.clone()));
            if self.shared.elsewhere(|p| p.group(&group.id)).is_none() {
                self.start_group(&myself, &mut state, group, members, false)
                    .await?;
            }
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
            GroupSupervisorMessage::Rebalance => {
                for (group, members) in state.configured.clone() {
                    let here = self.shared.elsewhere(|p| p.group(&group.id)).is_none();
                    match (here, state.running.remove(&group.id)) {
                        (true, None) => {
                            info!(group = %group.id, "group placed on this node: starting it");
                            self.start_group(&myself, state, group, members, true)
                                .await?;
                        }
                        (true, Some(actor)) => {
                            state.running.insert(group.id, actor);
                        }
                        (false, Some(actor)) => {
                            info!(group = %group.id, "group placed on another node: handing it over");
                            state.children.remove(&actor.get_id());
                            self.shared.group_refs.unregister(&group.id, actor.get_id());
                            // A stopped actor has nothing to hand over.
                            let _ = actor.cast(GroupMessage::Handover);
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
                if let Some((group, members)) = state.children.remove(&cell.get_id()) {
                    state.running.remove(&group.id);
                    warn!(group = %group.id, error = %err, "group actor failed; restarting");
                    metrics::counter!("switchboard_actor_restarts_total", "kind" => "group")
                        .increment(1);
                    self.start_group(&myself, state, group, members, true)
                        .await?;
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some((group, _)) = state.children.remove(&cell.get_id()) {
                    state.running.remove(&group.id);
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
        state.running.insert(group.id.clone(), actor.clone());
        state.children.insert(actor.get_id(), (group, members));
        Ok(())
    }
}
