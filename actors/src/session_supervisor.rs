//! A SessionSupervisor: one shard of the Session actors.
//!
//! ```text
//! SessionSupervisor[k] ── Session(s)*   (s.id % n_shards == k)
//! ```
//! Sharding by session id keeps any one supervisor from seeing every start and
//! stop. Each start runs in a task of its own (a session's `pre_start` reads
//! the store, and a slow read must hold up no other start), which hands the
//! spawned actor back to the supervisor; the supervisor tells the Directory
//! (`Started`) before it reports that child's exit, so the Directory never
//! hears of an actor's stop before its start. A child that stops normally
//! (passivated, ended) is reported to the Directory; a child that fails is
//! reported too, and the Directory starts a new one that rehydrates from the
//! store, unless it failed more than `max_restarts` times within
//! `restart_window`.

use std::collections::HashMap;
use std::sync::Arc;

use engine::ids::SessionId;
use engine::{EngineError, Millis};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use ractor_cluster_derive::RactorMessage;
use store::StoreError;
use tracing::{error, warn};

use crate::directory::DirectoryMessage;
use crate::error::ApiError;
use crate::session::{STOP_ENDED, SessionActor, SessionMessage, SessionStart};
use crate::shared::{Shared, millis};

/// Messages of a SessionSupervisor.
#[derive(RactorMessage)]
pub enum SessionSupervisorMessage {
    /// Start a Session actor (sent by the Directory only, which hears
    /// `DirectoryMessage::Started`).
    Start {
        /// The session.
        session: SessionId,
        /// New, rehydrate or reactivate.
        start: SessionStart,
    },
    /// A start's task is done: the actor was spawned (and linked to this
    /// supervisor), or why not.
    Spawned {
        /// The session.
        session: SessionId,
        /// The actor, or why it did not start.
        result: Result<ActorRef<SessionMessage>, ApiError>,
    },
}

/// The SessionSupervisor; config only.
pub struct SessionSupervisor {
    /// Shared context.
    pub shared: Arc<Shared>,
}

/// The SessionSupervisor's state.
pub struct SessionSupervisorState {
    children: HashMap<ActorId, SessionId>,
    /// Exits of children whose `Spawned` has not arrived yet: supervision
    /// events overtake messages, and a child may stop right after its spawn.
    early_exits: HashMap<ActorId, SupervisionEvent>,
    /// Recent failure times per session, for the restart budget.
    failures: HashMap<SessionId, Vec<Millis>>,
}

impl Actor for SessionSupervisor {
    type Msg = SessionSupervisorMessage;
    type State = SessionSupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SessionSupervisorState {
            children: HashMap::new(),
            early_exits: HashMap::new(),
            failures: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SessionSupervisorMessage::Start { session, start } => {
                let actor = SessionActor {
                    shared: self.shared.clone(),
                };
                tokio::spawn(async move {
                    let spawned = Actor::spawn_linked(None, actor, start, myself.get_cell()).await;
                    let result = spawned
                        .map(|(actor, _)| actor)
                        .map_err(|err| start_error(session, err));
                    // This supervisor is gone only when the system stops;
                    // nobody waits for the session then.
                    let _ = myself.cast(SessionSupervisorMessage::Spawned { session, result });
                });
            }
            SessionSupervisorMessage::Spawned { session, result } => {
                let actor_id = result.as_ref().ok().map(|actor| actor.get_id());
                if let Some(actor_id) = actor_id {
                    state.children.insert(actor_id, session);
                }
                self.tell_directory(DirectoryMessage::Started { session, result });
                if let Some(exit) = actor_id.and_then(|id| state.early_exits.remove(&id)) {
                    self.child_exited(state, exit);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let exited = match &event {
            SupervisionEvent::ActorTerminated(cell, ..)
            | SupervisionEvent::ActorFailed(cell, _) => cell.get_id(),
            SupervisionEvent::ActorStarted(_)
            | SupervisionEvent::ProcessGroupChanged(_)
            | SupervisionEvent::PidLifecycleEvent(_) => {
                return Ok(());
            }
        };
        if state.children.contains_key(&exited) {
            self.child_exited(state, event);
        } else {
            // A child is linked only once its spawn succeeded, so its
            // `Spawned` is on its way.
            state.early_exits.insert(exited, event);
        }
        Ok(())
    }
}

impl SessionSupervisor {
    /// A child stopped or failed: the Directory hears of it, and whether to
    /// restart it.
    fn child_exited(&self, state: &mut SessionSupervisorState, event: SupervisionEvent) {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let Some(session) = state.children.remove(&cell.get_id()) else {
                    return;
                };
                let ended = reason.as_deref() == Some(STOP_ENDED);
                if ended {
                    state.failures.remove(&session);
                }
                self.tell_directory(DirectoryMessage::SessionStopped {
                    session,
                    actor: cell.get_id(),
                    ended,
                    restart: false,
                });
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(session) = state.children.remove(&cell.get_id()) else {
                    return;
                };
                let now = crate::clock::now();
                let window = millis(self.shared.config.restart_window);
                let failures = state.failures.entry(session).or_default();
                failures.retain(|at| now - at < window);
                failures.push(now);
                let restart = failures.len() as u32 <= self.shared.config.max_restarts;
                if restart {
                    warn!(session_id = %session, error = %err, "session actor failed; restarting from the store");
                } else {
                    error!(session_id = %session, error = %err, n_failures = failures.len(), "session actor keeps failing; left stopped until its next event");
                }
                self.tell_directory(DirectoryMessage::SessionStopped {
                    session,
                    actor: cell.get_id(),
                    ended: false,
                    restart,
                });
            }
            SupervisionEvent::ActorStarted(_)
            | SupervisionEvent::ProcessGroupChanged(_)
            | SupervisionEvent::PidLifecycleEvent(_) => {}
        }
    }

    fn tell_directory(&self, message: DirectoryMessage) {
        // The directory lives as long as the system.
        let _ = self.shared.directory().cast(message);
    }
}

/// Why a session could not start, as its caller should see it: a session
/// that does not exist is an unknown session, and a failed store read is a
/// store failure, not an actor that might answer if asked again.
fn start_error(session: SessionId, err: SpawnErr) -> ApiError {
    if let SpawnErr::StartupFailed(cause) = &err {
        if let Some(engine) = cause.downcast_ref::<EngineError>() {
            return engine.clone().into();
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            return store.clone().into();
        }
    }
    ApiError::Unavailable(format!("session {session} ({err})"))
}
