//! Carrying out a session's routing plan: the decisions (which step, when it
//! times out, overflow keeping the place in line, restoring after a restart)
//! are [`PlanCursor`]'s; here its [`PlanEffect`]s become queue messages,
//! recorded events and timers.
//!
//! A step's timeout is not a timer of the actor: a waiting session may be
//! passivated, so the timeout is delivered through the Directory, which
//! re-activates the session if needed.

use std::time::Duration;

use engine::Millis;
use engine::routing::{PlanCursor, PlanEffect, RoutePlan, Step};
use engine::session::{SessionEvent, SessionState};
use ractor::ActorRef;
use tracing::info;

use super::{SessionActor, SessionActorState, SessionMessage};
use crate::error::ApiError;
use crate::event::EventKind;
use crate::group::{GroupMessage, QueueEntry};

impl SessionActor {
    /// Evaluates the rules and enters the first step that applies.
    pub(super) fn route(&self, state: &mut SessionActorState) -> Result<(), ApiError> {
        let now = crate::clock::now();
        let effects = state.session.apply(SessionEvent::StartRouting, now)?;
        self.run_effects(state, effects);
        let contact = state.contact.clone().expect("routing needs the contact");
        let plan = self
            .shared
            .rules()
            .route(&contact)
            .unwrap_or_else(RoutePlan::fallback);
        info!(session_id = %state.session.id, rule = %plan.rule, "session routed");
        self.start_plan(state, plan)
    }

    /// Starts `plan` (the rules' or a transfer's) at its first step that
    /// applies, keeping the session's first queue time if it has one.
    pub(super) fn start_plan(
        &self,
        state: &mut SessionActorState,
        plan: RoutePlan,
    ) -> Result<(), ApiError> {
        let contact = state.contact.clone().expect("routing needs the contact");
        let now = crate::clock::now();
        let place_in_line = state.session.times.queued.unwrap_or(now);
        let (cursor, effects) = PlanCursor::start(plan, &contact, place_in_line, now);
        state.plan = Some(cursor);
        self.run_plan_effects(state, effects)
    }

    /// Puts the session in its current step's group queue again, in its original place.
    pub(super) fn rejoin_queue(&self, state: &mut SessionActorState) -> Result<(), ApiError> {
        let Some(cursor) = &state.plan else {
            return Ok(());
        };
        let effect = cursor.rejoin();
        self.run_plan_effects(state, vec![effect])
    }

    /// Re-enters routing after a crash or a transfer left no plan in memory.
    pub(super) fn requeue(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
    ) -> Result<(), ApiError> {
        self.restore_plan(state)?;
        if state.session.state == SessionState::Queued {
            self.rejoin_queue(state)
        } else {
            if matches!(
                state.session.state,
                SessionState::Routing | SessionState::Transferred
            ) && let (Some(cursor), Some(contact)) = (&mut state.plan, &state.contact)
            {
                let effects = cursor.reenter(contact, crate::clock::now());
                self.run_plan_effects(state, effects)?;
            }
            self.flush(myself, state);
            Ok(())
        }
    }

    /// Rebuilds the routing plan of a rehydrated session, at the step of the
    /// group it waits in (if the plan has it).
    pub(super) fn restore_plan(&self, state: &mut SessionActorState) -> Result<(), ApiError> {
        if state.plan.is_some() {
            return Ok(());
        }
        let Some(contact) = state.contact.clone() else {
            return Ok(());
        };
        // A session a supervisor reassigned follows its new step, not its rule.
        let plan = state
            .steered
            .plan(state.session.group.as_ref())
            .or_else(|| self.shared.rules().route(&contact))
            .unwrap_or_else(RoutePlan::fallback);
        let now = crate::clock::now();
        let place_in_line = state.session.times.queued.unwrap_or(now);
        // On the node that minted the session, the step's timer is still in
        // flight (through the Directory, which re-activates a passivated
        // session): it names its step and settles it. A session taken over
        // from another node lost that timer with the node: its step's
        // timeout is re-armed from when it entered the queue (its `queued`
        // event). A later timer finds the step settled.
        let minted_here = engine::ids::node_of(state.session.id) == self.shared.config.node_id;
        let step_entered = state.step_entered.filter(|_| !minted_here);
        let (mut cursor, effects) = PlanCursor::restore(
            plan,
            &contact,
            state.session.group.as_ref(),
            place_in_line,
            step_entered,
            now,
        );
        if let Some(priority) = state.steered.priority() {
            cursor.reprioritise(priority);
        }
        state.plan = Some(cursor);
        self.run_plan_effects(state, effects)
    }

    /// The timer of step `step_idx` fired.
    pub(super) fn step_timed_out(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        step_idx: usize,
    ) -> Result<(), ApiError> {
        let (Some(cursor), Some(contact)) = (&mut state.plan, &state.contact) else {
            return Ok(());
        };
        let effects = cursor.step_timed_out(
            step_idx,
            state.session.state,
            state.session.group.as_ref(),
            contact,
            crate::clock::now(),
        );
        self.run_plan_effects(state, effects)?;
        self.flush(myself, state);
        Ok(())
    }

    /// The offer lapsed: overflow if the step's timeout passed meanwhile.
    pub(super) fn overflow_if_due(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
    ) -> Result<(), ApiError> {
        let (Some(cursor), Some(contact)) = (&mut state.plan, &state.contact) else {
            return Ok(());
        };
        let effects = cursor.offer_lapsed(contact, crate::clock::now());
        self.run_plan_effects(state, effects)?;
        self.flush(myself, state);
        Ok(())
    }

    /// Carries out what the plan decided.
    fn run_plan_effects(
        &self,
        state: &mut SessionActorState,
        effects: Vec<PlanEffect>,
    ) -> Result<(), ApiError> {
        for effect in effects {
            match effect {
                PlanEffect::EnterStep {
                    step_idx,
                    step,
                    place_in_line,
                } => {
                    let group = step.group.clone();
                    let now = crate::clock::now();
                    let moved = state.session.group.as_ref() != Some(&group);
                    let effects = state.session.apply(
                        SessionEvent::Enqueue {
                            group: group.clone(),
                        },
                        now,
                    )?;
                    if let Some(cursor) = &state.plan {
                        let step_idx = u32::try_from(step_idx).unwrap_or(u32::MAX);
                        state
                            .session
                            .note_route_step(&cursor.plan().rule, step_idx, &group);
                    }
                    // Moving groups on overflow: leave the old group's queue.
                    self.run_effects(state, effects);
                    self.record(state, EventKind::Queued { group });
                    if moved && !state.monitors.is_empty() {
                        self.stop_monitors(state);
                    }
                    self.tell_group_enqueue(state, step, place_in_line);
                }
                PlanEffect::Rejoin {
                    step,
                    place_in_line,
                } => self.tell_group_enqueue(state, step, place_in_line),
                PlanEffect::ArmStepTimeout { step_idx, at } => {
                    let wait = at.saturating_sub(crate::clock::now()).max(0);
                    let session = state.session.id;
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                        // Wherever the session runs by then; when the system
                        // stopped meanwhile, the timeout is moot.
                        shared.tell_session(session, SessionMessage::StepTimeout { step_idx });
                    });
                }
            }
        }
        Ok(())
    }

    /// Queues the session in `step`'s group at `place_in_line`.
    fn tell_group_enqueue(&self, state: &SessionActorState, step: Step, place_in_line: Millis) {
        let Some(contact) = state.contact.clone() else {
            return;
        };
        let group = step.group.clone();
        let priority = step.priority;
        self.tell_group(
            &group,
            GroupMessage::Enqueue {
                session: state.session.id,
                priority,
                queued_at: place_in_line,
                entry: QueueEntry { contact, step },
            },
        );
    }
}
