//! Where a waiting session is in its [`RoutePlan`]: which step it waits in,
//! when that step times out, and its place in line.
//!
//! ```text
//! start ──▶ enter first applying step ──timeout──▶ next applying step ──▶ … last step
//!               (Enqueue, ArmStepTimeout)   (while queued; when offered,
//!                                            at the lapse of the offer)
//! ```
//!
//! Every step is entered at the session's first queue time, so overflowing
//! to the next step keeps its place in line. The owner carries out the
//! [`PlanEffect`]s: it queues the session and delivers
//! [`PlanCursor::step_timed_out`] when an armed timer fires. Timers name their
//! step, so a stale one (the session moved on meanwhile) changes nothing.

use crate::Millis;
use crate::ids::GroupId;
use crate::session::SessionState;

use super::{Contact, RoutePlan, Step};

/// A session's progress through its plan.
#[derive(Debug, Clone)]
pub struct PlanCursor {
    plan: RoutePlan,
    step_idx: usize,
    /// When the current step times out; `None` for a step without timeout,
    /// and for a restored step whose entry time is unknown (its timer, still
    /// in flight, settles it).
    step_deadline: Option<Millis>,
    /// The session's first queue time, used in every step it enters.
    place_in_line: Millis,
}

/// What the owner of a [`PlanCursor`] must do.
#[derive(Debug, Clone)]
pub enum PlanEffect {
    /// The session enters `step`: it joins (or moves to) the step's group
    /// queue at `place_in_line`, with the step's priority and agent expression.
    EnterStep {
        /// Index of the step in the plan, for the timer.
        step_idx: usize,
        /// The step entered.
        step: Step,
        /// The queue time it keeps in every step.
        place_in_line: Millis,
    },
    /// The group lost the session's queue entry (restart): queue it again in
    /// the current step, without entering a new one.
    Rejoin {
        /// The current step.
        step: Step,
        /// The queue time it keeps in every step.
        place_in_line: Millis,
    },
    /// Call [`PlanCursor::step_timed_out`] with `step_idx` at `at`.
    ArmStepTimeout {
        /// The step the timer is for.
        step_idx: usize,
        /// When it fires.
        at: Millis,
    },
}

impl PlanCursor {
    /// Starts `plan` for `contact` at `now`: the first step that applies is
    /// entered. `place_in_line` is the session's first queue time (`now`
    /// unless it queued before, e.g. before a transfer).
    pub fn start(
        plan: RoutePlan,
        contact: &Contact,
        place_in_line: Millis,
        now: Millis,
    ) -> (PlanCursor, Vec<PlanEffect>) {
        let mut cursor = PlanCursor {
            plan,
            step_idx: 0,
            step_deadline: None,
            place_in_line,
        };
        let effects = cursor.enter(contact, now);
        (cursor, effects)
    }

    /// Rebuilds the cursor of a rehydrated session that waits in `group`: at
    /// the first step of that group that applies (else of that group, else
    /// the first step). With `step_entered`, when the session entered that
    /// step, the timeout is re-armed, or, if it already passed, the session
    /// overflows at once (a queued session). Without it, nothing is armed:
    /// the step's timer still in flight names its step and settles it (see
    /// [`PlanCursor::step_timed_out`]).
    pub fn restore(
        plan: RoutePlan,
        contact: &Contact,
        group: Option<&GroupId>,
        place_in_line: Millis,
        step_entered: Option<Millis>,
        now: Millis,
    ) -> (PlanCursor, Vec<PlanEffect>) {
        let in_group = |step: &Step| Some(&step.group) == group;
        let step_idx = plan
            .steps
            .iter()
            .position(|step| in_group(step) && step.applies_to(contact))
            .or_else(|| plan.steps.iter().position(in_group))
            .unwrap_or(0);
        let step_deadline = step_entered
            .zip(plan.steps[step_idx].timeout_ms)
            .map(|(entered, timeout)| entered + timeout);
        let mut cursor = PlanCursor {
            plan,
            step_idx,
            step_deadline,
            place_in_line,
        };
        let effects = match step_deadline {
            Some(deadline) if deadline <= now => cursor.overflow(contact, now),
            Some(deadline) => vec![PlanEffect::ArmStepTimeout {
                step_idx,
                at: deadline,
            }],
            None => Vec::new(),
        };
        (cursor, effects)
    }

    /// Enters the current step again, or the next one that applies: a
    /// restored session that was between queues (routing, transferred)
    /// when its actor stopped.
    pub fn reenter(&mut self, contact: &Contact, now: Millis) -> Vec<PlanEffect> {
        self.enter(contact, now)
    }

    /// The timer of step `timed_step_idx` fired; the session is in `state`,
    /// waiting in `group`. A queued session overflows to the next step that
    /// applies; an offered one overflows if its offer lapses
    /// ([`PlanCursor::offer_lapsed`]); a timer of a step the session already
    /// left does nothing. A timer of a later step of the group it waits in
    /// moves a restored cursor there: the timer knows which step was entered.
    pub fn step_timed_out(
        &mut self,
        timed_step_idx: usize,
        state: SessionState,
        group: Option<&GroupId>,
        contact: &Contact,
        now: Millis,
    ) -> Vec<PlanEffect> {
        let same_group = self
            .plan
            .steps
            .get(timed_step_idx)
            .is_some_and(|step| Some(&step.group) == group);
        if timed_step_idx > self.step_idx && same_group {
            self.step_idx = timed_step_idx;
        }
        if timed_step_idx != self.step_idx {
            return Vec::new();
        }
        match state {
            SessionState::Queued => self.overflow(contact, now),
            SessionState::Offered => {
                self.step_deadline = Some(now);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The session's offer lapsed at `now`: it overflows if its step's
    /// timeout passed while the offer was out.
    pub fn offer_lapsed(&mut self, contact: &Contact, now: Millis) -> Vec<PlanEffect> {
        if self.step_deadline.is_some_and(|deadline| deadline <= now) {
            self.overflow(contact, now)
        } else {
            Vec::new()
        }
    }

    /// An agent took the session: no step times out any more.
    pub fn answered(&mut self) {
        self.step_deadline = None;
    }

    /// The session's group lost its entry: queue it again where it was.
    pub fn rejoin(&self) -> PlanEffect {
        PlanEffect::Rejoin {
            step: self.plan.steps[self.step_idx].clone(),
            place_in_line: self.place_in_line,
        }
    }

    /// The step the session waits in (or last waited in).
    pub fn step(&self) -> &Step {
        &self.plan.steps[self.step_idx]
    }

    /// A supervisor gave the session another priority where it waits: the
    /// current step keeps it (a later step has its own).
    pub fn reprioritise(&mut self, priority: i32) {
        // The rule's steps are shared: this session gets its own copy.
        let mut steps = self.plan.steps.to_vec();
        steps[self.step_idx].priority = priority;
        self.plan.steps = steps.into();
    }

    /// The plan, for logs.
    pub fn plan(&self) -> &RoutePlan {
        &self.plan
    }

    /// Moves on to the next step that applies; in the last step the session
    /// stays, with no timeout any more.
    fn overflow(&mut self, contact: &Contact, now: Millis) -> Vec<PlanEffect> {
        if self.step_idx + 1 >= self.plan.steps.len() {
            self.step_deadline = None;
            return Vec::new();
        }
        self.step_idx += 1;
        self.enter(contact, now)
    }

    /// Enters the current step, or the next one that applies (the last
    /// step is entered in any case).
    fn enter(&mut self, contact: &Contact, now: Millis) -> Vec<PlanEffect> {
        let steps = &self.plan.steps;
        while self.step_idx + 1 < steps.len() && !steps[self.step_idx].applies_to(contact) {
            self.step_idx += 1;
        }
        let step = &steps[self.step_idx];
        self.step_deadline = step.timeout_ms.map(|timeout| now + timeout);
        let mut effects = vec![PlanEffect::EnterStep {
            step_idx: self.step_idx,
            step: step.clone(),
            place_in_line: self.place_in_line,
        }];
        effects.extend(self.step_deadline.map(|at| PlanEffect::ArmStepTimeout {
            step_idx: self.step_idx,
            at,
        }));
        effects
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::channel::Channel;
    use crate::customer::Customer;
    use crate::ids::AgentId;

    /// One thing that happens to the cursor, at a time.
    enum Input {
        Start {
            place_in_line: Millis,
        },
        Restore {
            group: &'static str,
            place_in_line: Millis,
            step_entered: Option<Millis>,
        },
        TimedOut {
            step_idx: usize,
            state: SessionState,
            group: &'static str,
        },
        OfferLapsed,
        Answered,
        Rejoin,
        Reenter,
    }
    use Input::*;

    /// VIP-like plan: the last agent for 20 s, then the group for 30 s, then
    /// `default` until answered.
    fn sticky_plan() -> RoutePlan {
        let gold = GroupId::new("gold_service");
        plan(vec![
            Step {
                sticky: true,
                timeout_ms: Some(20_000),
                ..Step::to_group(gold.clone(), 5)
            },
            Step {
                timeout_ms: Some(30_000),
                ..Step::to_group(gold, 5)
            },
            Step::to_group(GroupId::new("default"), 0),
        ])
    }

    /// Two timed steps; the last one times out too.
    fn timed_last_plan() -> RoutePlan {
        plan(vec![
            Step {
                timeout_ms: Some(10_000),
                ..Step::to_group(GroupId::new("phone_support"), 1)
            },
            Step {
                timeout_ms: Some(5_000),
                ..Step::to_group(GroupId::new("default"), 0)
            },
        ])
    }

    fn plan(steps: Vec<Step>) -> RoutePlan {
        RoutePlan {
            rule: Arc::from("test"),
            steps: Arc::from(steps),
        }
    }

    fn contact(last_agent: Option<&str>) -> Contact {
        let mut customer = Customer::new("c-1", "Li Lei");
        customer.last_agent = last_agent.map(AgentId::new);
        Contact {
            channel: Channel::Web,
            customer,
            message: String::new(),
            digits: String::new(),
            at: 0,
        }
    }

    /// Runs `script` (time, input) and compares, per input, the effects and
    /// then the cursor: `enter <idx> <group> @<place>`, `rejoin <group>
    /// @<place>`, `arm <idx> at <ms>`, `| step <idx> until <deadline|->`.
    fn check(
        plan: RoutePlan,
        last_agent: Option<&str>,
        script: &[(Millis, Input)],
        expected: &[&str],
    ) {
        let contact = contact(last_agent);
        let mut cursor: Option<PlanCursor> = None;
        let mut lines = Vec::new();
        for (now, input) in script {
            let effects = match input {
                Start { place_in_line } => {
                    let (started, effects) =
                        PlanCursor::start(plan.clone(), &contact, *place_in_line, *now);
                    cursor = Some(started);
                    effects
                }
                Restore {
                    group,
                    place_in_line,
                    step_entered,
                } => {
                    let group = GroupId::new(*group);
                    let (restored, effects) = PlanCursor::restore(
                        plan.clone(),
                        &contact,
                        Some(&group),
                        *place_in_line,
                        *step_entered,
                        *now,
                    );
                    cursor = Some(restored);
                    effects
                }
                TimedOut {
                    step_idx,
                    state,
                    group,
                } => {
                    let group = GroupId::new(*group);
                    let cursor = cursor.as_mut().expect("started");
                    cursor.step_timed_out(*step_idx, *state, Some(&group), &contact, *now)
                }
                OfferLapsed => cursor
                    .as_mut()
                    .expect("started")
                    .offer_lapsed(&contact, *now),
                Answered => {
                    cursor.as_mut().expect("started").answered();
                    Vec::new()
                }
                Rejoin => vec![cursor.as_ref().expect("started").rejoin()],
                Reenter => cursor.as_mut().expect("started").reenter(&contact, *now),
            };
            let cursor = cursor.as_ref().expect("started");
            let mut line: Vec<String> = effects.iter().map(render).collect();
            let deadline = cursor
                .step_deadline
                .map_or("-".to_owned(), |at| at.to_string());
            line.push(format!("| step {} until {deadline}", cursor.step_idx));
            lines.push(line.join(" "));
        }
        assert_eq!(lines, expected);
    }

    fn render(effect: &PlanEffect) -> String {
        match effect {
            PlanEffect::EnterStep {
                step_idx,
                step,
                place_in_line,
            } => {
                format!("enter {step_idx} {} @{place_in_line}", step.group)
            }
            PlanEffect::Rejoin {
                step,
                place_in_line,
            } => format!("rejoin {} @{place_in_line}", step.group),
            PlanEffect::ArmStepTimeout { step_idx, at } => format!("arm {step_idx} at {at}"),
        }
    }

    const QUEUED: SessionState = SessionState::Queued;
    const OFFERED: SessionState = SessionState::Offered;

    #[test]
    fn step_choice_skips_a_sticky_step_without_last_agent() {
        check(
            sticky_plan(),
            None,
            &[(100, Start { place_in_line: 100 })],
            &["enter 1 gold_service @100 arm 1 at 30100 | step 1 until 30100"],
        );
        // A transfer keeps the first queue time.
        check(
            sticky_plan(),
            None,
            &[(900, Start { place_in_line: 100 })],
            &["enter 1 gold_service @100 arm 1 at 30900 | step 1 until 30900"],
        );
        // A plan of one step without timeout arms nothing.
        check(
            RoutePlan::fallback(),
            None,
            &[(5, Start { place_in_line: 5 })],
            &["enter 0 default @5 | step 0 until -"],
        );
    }

    #[test]
    fn sticky_step_waits_for_the_last_agent_for_its_timeout() {
        check(
            sticky_plan(),
            Some("gina"),
            &[
                (0, Start { place_in_line: 0 }),
                (
                    20_000,
                    TimedOut {
                        step_idx: 0,
                        state: QUEUED,
                        group: "gold_service",
                    },
                ),
                (
                    50_000,
                    TimedOut {
                        step_idx: 1,
                        state: QUEUED,
                        group: "gold_service",
                    },
                ),
            ],
            &[
                "enter 0 gold_service @0 arm 0 at 20000 | step 0 until 20000",
                "enter 1 gold_service @0 arm 1 at 50000 | step 1 until 50000",
                "enter 2 default @0 | step 2 until -",
            ],
        );
    }

    #[test]
    fn overflow_keeps_the_place_in_line_and_stale_timers_do_nothing() {
        check(
            sticky_plan(),
            None,
            &[
                (7, Start { place_in_line: 7 }),
                (
                    30_007,
                    TimedOut {
                        step_idx: 1,
                        state: QUEUED,
                        group: "gold_service",
                    },
                ),
                // The sticky step's timer of an earlier life, and a repeat.
                (
                    30_010,
                    TimedOut {
                        step_idx: 0,
                        state: QUEUED,
                        group: "default",
                    },
                ),
                (
                    30_011,
                    TimedOut {
                        step_idx: 1,
                        state: QUEUED,
                        group: "default",
                    },
                ),
            ],
            &[
                "enter 1 gold_service @7 arm 1 at 30007 | step 1 until 30007",
                "enter 2 default @7 | step 2 until -",
                "| step 2 until -",
                "| step 2 until -",
            ],
        );
    }

    #[test]
    fn the_last_steps_timeout_leaves_the_session_there() {
        check(
            timed_last_plan(),
            None,
            &[
                (0, Start { place_in_line: 0 }),
                (
                    10_000,
                    TimedOut {
                        step_idx: 0,
                        state: QUEUED,
                        group: "phone_support",
                    },
                ),
                (
                    15_000,
                    TimedOut {
                        step_idx: 1,
                        state: QUEUED,
                        group: "default",
                    },
                ),
                (16_000, Rejoin),
            ],
            &[
                "enter 0 phone_support @0 arm 0 at 10000 | step 0 until 10000",
                "enter 1 default @0 arm 1 at 15000 | step 1 until 15000",
                "| step 1 until -",
                "rejoin default @0 | step 1 until -",
            ],
        );
    }

    #[test]
    fn an_offered_session_overflows_when_its_offer_lapses() {
        check(
            timed_last_plan(),
            None,
            &[
                (0, Start { place_in_line: 0 }),
                (
                    10_000,
                    TimedOut {
                        step_idx: 0,
                        state: OFFERED,
                        group: "phone_support",
                    },
                ),
                (12_000, OfferLapsed),
            ],
            &[
                "enter 0 phone_support @0 arm 0 at 10000 | step 0 until 10000",
                "| step 0 until 10000",
                "enter 1 default @0 arm 1 at 17000 | step 1 until 17000",
            ],
        );
        // Lapsed before the timeout: it stays; answered: nothing times out.
        check(
            timed_last_plan(),
            None,
            &[
                (0, Start { place_in_line: 0 }),
                (3_000, OfferLapsed),
                (4_000, Answered),
            ],
            &[
                "enter 0 phone_support @0 arm 0 at 10000 | step 0 until 10000",
                "| step 0 until 10000",
                "| step 0 until -",
            ],
        );
    }

    #[test]
    fn restore_after_rehydration() {
        let restore = |step_entered| Restore {
            group: "gold_service",
            place_in_line: 7,
            step_entered,
        };
        // Entry time unknown: the step of its group, nothing armed...
        check(
            sticky_plan(),
            None,
            &[(40_000, restore(None))],
            &["| step 1 until -"],
        );
        // ...the first applying one, so the sticky step with a last agent...
        check(
            sticky_plan(),
            Some("gina"),
            &[(9_000, restore(None))],
            &["| step 0 until -"],
        );
        // ...and the timer in flight moves it to the later step it names.
        check(
            sticky_plan(),
            Some("gina"),
            &[
                (40_000, restore(None)),
                (
                    50_000,
                    TimedOut {
                        step_idx: 1,
                        state: QUEUED,
                        group: "gold_service",
                    },
                ),
            ],
            &["| step 0 until -", "enter 2 default @7 | step 2 until -"],
        );
        // Entry time known, deadline ahead: the remaining time is re-armed.
        check(
            sticky_plan(),
            None,
            &[(20_000, restore(Some(7)))],
            &["arm 1 at 30007 | step 1 until 30007"],
        );
        // Deadline passed while nobody was watching: overflow at once.
        check(
            sticky_plan(),
            None,
            &[(40_000, restore(Some(7)))],
            &["enter 2 default @7 | step 2 until -"],
        );
        // Between queues when it stopped: it enters the restored step again.
        check(
            sticky_plan(),
            Some("gina"),
            &[(9_000, restore(None)), (9_001, Reenter)],
            &[
                "| step 0 until -",
                "enter 0 gold_service @7 arm 0 at 29001 | step 0 until 29001",
            ],
        );
        // A group the plan does not have (after a transfer): the first step.
        check(
            sticky_plan(),
            None,
            &[(
                1,
                Restore {
                    group: "sales",
                    place_in_line: 1,
                    step_entered: None,
                },
            )],
            &["| step 0 until -"],
        );
    }
}
