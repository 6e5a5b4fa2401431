//! A supervisor's hand on a waiting session: out of its queue into another
//! group's (or offered to one agent only), or another priority where it
//! waits. Each is a `steered` event of the session (staff only), stored in
//! one batch with its audit entry.
//!
//! A reassigned session keeps its place in line (its first queue time) and
//! leaves its rule: the new step has no timeout, as a transfer's has none,
//! and an offer out when it is reassigned is withdrawn first. A new
//! priority applies to the step it waits in (later steps of its rule keep
//! theirs) and leaves an outstanding offer alone: it counts if that offer
//! lapses. After a restart both are read back from the history.

use engine::ids::GroupId;
use engine::routing::{RoutePlan, Step};
use engine::session::{SessionEvent, SessionState, TransitionError};
use engine::supervision::{Actor, AuditAction, AuditEntry, Steer};
use ractor::ActorRef;
use store::WriteOp;
use tracing::info;

use super::{SessionActor, SessionActorState, SessionMessage, SteerRequest};
use crate::agent::AgentMessage;
use crate::error::ApiError;
use crate::event::EventKind;
use crate::group::GroupMessage;

/// What the history says supervisors did to a session's routing, read back
/// by `rehydrate` in event order.
#[derive(Debug, Default)]
pub(super) struct Steered {
    /// The last reassignment since the session last changed hands.
    reassigned: Option<Steer>,
    /// The last priority set since it last entered a queue.
    priority: Option<i32>,
}

impl Steered {
    /// Follows one stored event.
    pub(super) fn follow(&mut self, kind: &EventKind) {
        match kind {
            EventKind::Transferred { .. } => *self = Steered::default(),
            EventKind::Queued { .. } => self.priority = None,
            EventKind::Steered { steer, .. } => match steer {
                Steer::Reassigned { .. } => {
                    self.reassigned = Some(steer.clone());
                    self.priority = None;
                }
                Steer::Reprioritised { to, .. } => self.priority = Some(*to),
            },
            _ => {}
        }
    }

    /// The plan of a session reassigned into `group`, where it still waits.
    pub(super) fn plan(&self, group: Option<&GroupId>) -> Option<RoutePlan> {
        match &self.reassigned {
            Some(steer @ Steer::Reassigned { group: to, .. }) if Some(to) == group => {
                step_of(steer).map(RoutePlan::single)
            }
            _ => None,
        }
    }

    /// The priority a supervisor set where the session waits now.
    pub(super) fn priority(&self) -> Option<i32> {
        self.priority
    }
}

/// The refusal of an action authorised for `seen_in`, a group the session
/// left meanwhile.
pub(super) fn moved_on(state: &SessionActorState, seen_in: &GroupId) -> ApiError {
    let now_in = state
        .session
        .group
        .as_ref()
        .map_or_else(|| "no group".to_owned(), |group| format!("group `{group}`"));
    ApiError::Invalid(engine::EngineError::Invalid {
        field: "session",
        reason: format!(
            "session {} left group `{seen_in}` meanwhile (it is in {now_in} now); look again",
            state.session.id
        ),
    })
}

/// The step a reassignment puts the session in.
fn step_of(steer: &Steer) -> Option<Step> {
    match steer {
        Steer::Reassigned {
            group,
            agent: Some(agent),
            priority,
        } => Some(Step::to_agent(group.clone(), agent.clone(), *priority)),
        Steer::Reassigned {
            group,
            agent: None,
            priority,
        } => Some(Step::to_group(group.clone(), *priority)),
        Steer::Reprioritised { .. } => None,
    }
}

impl SessionActor {
    /// Carries out `request` for `by`; the `seq` of the `steered` event.
    pub(super) fn steer(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        by: Actor,
        request: SteerRequest,
        reason: String,
        seen_in: GroupId,
    ) -> Result<u64, ApiError> {
        let session = &state.session;
        if !matches!(session.state, SessionState::Queued | SessionState::Offered) {
            return Err(TransitionError {
                session: session.id,
                state: session.state.as_str(),
                event: "reassign or re-prioritise (only a waiting session can be)",
            }
            .into());
        }
        self.restore_plan(state)?;
        // The caller was authorised for the group it saw: an overflow since
        // (or just now, on restoring the plan) makes that moot.
        if state.session.group.as_ref() != Some(&seen_in) {
            return Err(moved_on(state, &seen_in));
        }
        let now = crate::clock::now();
        let from_group = state.session.group.clone();
        let priority_now = state
            .plan
            .as_ref()
            .map_or(0, |cursor| cursor.step().priority);
        let steer = match request {
            SteerRequest::Reassign { group, agent } => Steer::Reassigned {
                group,
                agent,
                priority: priority_now,
            },
            SteerRequest::Priority { priority } => Steer::Reprioritised {
                from: priority_now,
                to: priority,
            },
        };
        let reassigned = step_of(&steer);
        if reassigned.is_some() && state.session.state == SessionState::Offered {
            self.withdraw_offer(state, now)?;
        }
        let seq = self.record_at(
            state,
            EventKind::Steered {
                by: by.clone(),
                steer: steer.clone(),
                reason: reason.clone(),
            },
            now,
        );
        info!(session_id = %state.session.id, by = %by, steer = ?steer, "session steered by a supervisor");
        state.unwritten_ops.push(WriteOp::PutAudit(AuditEntry {
            id: self.shared.audit_id(now),
            at: now,
            by,
            action: AuditAction::SteerSession {
                session: state.session.id,
                group: from_group,
                steer: steer.clone(),
            },
            reason,
        }));
        if let Some(step) = reassigned {
            self.start_plan(state, RoutePlan::single(step))?;
        } else if let Steer::Reprioritised { to, .. } = steer {
            if let Some(cursor) = &mut state.plan {
                cursor.reprioritise(to);
            }
            if let Some(group) = state.session.group.clone() {
                self.tell_group(
                    &group,
                    GroupMessage::Reprioritise {
                        session: state.session.id,
                        priority: to,
                    },
                );
            }
        }
        self.flush(myself, state);
        Ok(seq)
    }

    /// Takes back the offer out for the session: it waits again (the group
    /// hears of it when the session is queued anew).
    fn withdraw_offer(
        &self,
        state: &mut SessionActorState,
        now: engine::Millis,
    ) -> Result<(), ApiError> {
        let agent = state.session.agent.clone();
        state.session.apply(SessionEvent::OfferLapsed, now)?;
        if let Some(agent) = agent {
            self.record_at(
                state,
                EventKind::OfferLapsed {
                    agent: agent.clone(),
                },
                now,
            );
            self.tell_agent(
                &agent,
                AgentMessage::Withdraw {
                    session: state.session.id,
                },
            );
        }
        Ok(())
    }
}
