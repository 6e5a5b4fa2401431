//! Routing a session through its plan's steps: entering a step's queue,
//! arming its timeout, overflowing to the next step in the original place in
//! line, and re-entering the queue after a restart.
//!
//! A step's timeout is not a timer of the actor: a waiting session may be
//! passivated, so the timeout is delivered through the Directory, which
//! re-activates the session if needed.

use std::time::Duration;

use engine::routing::RoutePlan;
use engine::session::{SessionEvent, SessionState};
use ractor::ActorRef;
use tracing::info;

use super::{SessionActor, SessionActorState, SessionMessage};
use crate::directory::DirectoryMessage;
use crate::error::ApiError;
use crate::event::EventKind;
use crate::group::{GroupMessage, QueueEntry};

impl SessionActor {
    /// Evaluates the rules and enters the first step that applies.
    pub(super) fn route(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
    ) -> Result<(), ApiError> {
        let now = crate::clock::now();
        state.session.apply(SessionEvent::StartRouting, now)?;
        let contact = state.contact.clone().expect("routing needs the contact");
        let plan = self
            .shared
            .rules()
            .route(&contact)
            .unwrap_or_else(RoutePlan::fallback);
        info!(session_id = %state.session.id, rule = %plan.rule, "session routed");
        state.plan = Some(plan);
        state.step_idx = 0;
        self.enter_step(myself, state, true)
    }

    /// Enters step `state.step_idx` or the next one that applies.
    pub(super) fn enter_step(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        record: bool,
    ) -> Result<(), ApiError> {
        let contact = state.contact.clone().expect("routing needs the contact");
        let plan = state.plan.clone().expect("entering a step needs a plan");
        while state.step_idx + 1 < plan.steps.len()
            && !plan.steps[state.step_idx].applies_to(&contact)
        {
            state.step_idx += 1;
        }
        let step = &plan.steps[state.step_idx];
        let now = crate::clock::now();
        state.session.apply(
            SessionEvent::Enqueue {
                group: step.group.clone(),
            },
            now,
        )?;
        state.step_deadline = step.timeout_ms.map(|timeout| now + timeout);
        if let Some(timeout) = step.timeout_ms {
            let step_idx = state.step_idx;
            let session = state.session.id;
            let directory = self.shared.directory().clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(timeout as u64)).await;
                // Gone only when the system stops; then the timeout is moot.
                let _ = directory.cast(DirectoryMessage::ToSession {
                    session,
                    message: SessionMessage::StepTimeout { step_idx },
                });
            });
        }
        if record {
            self.record(
                state,
                EventKind::Queued {
                    group: step.group.clone(),
                },
            );
        }
        self.enqueue_current_step(myself, state)
    }

    /// Puts the session in its current step's group queue, in its original place.
    pub(super) fn enqueue_current_step(
        &self,
        _myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
    ) -> Result<(), ApiError> {
        let (Some(plan), Some(contact)) = (state.plan.clone(), state.contact.clone()) else {
            return Ok(());
        };
        let step = plan.steps[state.step_idx].clone();
        let entry = QueueEntry {
            contact,
            step: step.clone(),
        };
        let queued_at = state.session.times.queued.unwrap_or_else(crate::clock::now);
        self.tell_group(
            &step.group,
            GroupMessage::Enqueue {
                session: state.session.id,
                priority: step.priority,
                queued_at,
                entry,
            },
        );
        Ok(())
    }

    /// Re-enters routing after a crash or a transfer left no plan in memory.
    pub(super) fn requeue(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
    ) -> Result<(), ApiError> {
        self.restore_plan(state);
        if state.session.state == SessionState::Queued {
            self.enqueue_current_step(myself, state)
        } else {
            if state.session.state == SessionState::Routing
                || state.session.state == SessionState::Transferred
            {
                self.enter_step(myself, state, true)?;
            }
            self.flush(myself, state);
            Ok(())
        }
    }

    /// Rebuilds the routing plan of a rehydrated session, at the step of the
    /// group it waits in (if the plan has it).
    pub(super) fn restore_plan(&self, state: &mut SessionActorState) {
        if state.plan.is_some() {
            return;
        }
        let Some(contact) = state.contact.clone() else {
            return;
        };
        let plan = self
            .shared
            .rules()
            .route(&contact)
            .unwrap_or_else(RoutePlan::fallback);
        // The first step of its group that applies: the one it entered,
        // unless a plan has one group in several applying steps, which
        // `adopt_timed_step` settles when a step timer names a later one.
        let group = state.session.group.clone();
        state.step_idx = plan
            .steps
            .iter()
            .position(|step| Some(&step.group) == group.as_ref() && step.applies_to(&contact))
            .or_else(|| {
                plan.steps
                    .iter()
                    .position(|step| Some(&step.group) == group.as_ref())
            })
            .unwrap_or(0);
        state.plan = Some(plan);
    }

    /// A step timer named step `step_idx`, later in the plan than the one a
    /// re-activated session restored but of the group it waits in: the
    /// timer knows which step was entered, so the session is at that step.
    pub(super) fn adopt_timed_step(&self, state: &mut SessionActorState, step_idx: usize) {
        let Some(plan) = &state.plan else {
            return;
        };
        let same_group = plan
            .steps
            .get(step_idx)
            .is_some_and(|step| Some(&step.group) == state.session.group.as_ref());
        if step_idx > state.step_idx && same_group {
            state.step_idx = step_idx;
        }
    }

    /// The current step timed out: move to the next step's group, keeping the place in line.
    pub(super) fn overflow(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
    ) -> Result<(), ApiError> {
        let Some(plan) = state.plan.clone() else {
            return Ok(());
        };
        if state.step_idx + 1 >= plan.steps.len() {
            state.step_deadline = None;
            return Ok(());
        }
        let old_group = state.session.group.clone();
        state.step_idx += 1;
        self.enter_step(myself, state, true)?;
        if let Some(old) = old_group.filter(|old| Some(old) != state.session.group.as_ref()) {
            self.tell_group(
                &old,
                GroupMessage::Leave {
                    session: state.session.id,
                },
            );
        }
        self.flush(myself, state);
        Ok(())
    }
}
