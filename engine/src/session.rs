//! Sessions: one conversation and its state machine.
//!
//! ```text
//! new → routing → queued ⇄ offered → assigned → wrap_up → closed
//!                   ↑                    │
//!                   └──── transferred ←──┘        (queued/offered/routing → abandoned)
//! ```
//!
//! Once in wrap-up or closed, the customer may rate the conversation, once.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Millis;
use crate::channel::Channel;
use crate::error::EngineError;
use crate::ids::{AgentId, CustomerId, GroupId, SessionId};

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Created by the first message, not yet routed.
    New,
    /// Rules are being evaluated.
    Routing,
    /// Waiting in a skill group's queue.
    Queued,
    /// Offered to one agent, waiting for accept.
    Offered,
    /// An agent is working it.
    Assigned,
    /// The conversation is over; the agent is finishing notes.
    WrapUp,
    /// Done.
    Closed,
    /// The customer left before an agent answered.
    Abandoned,
    /// Handed from an agent to another group or agent; re-enters a queue next.
    Transferred,
}

impl SessionState {
    /// Closed or abandoned: nothing more happens.
    pub fn is_final(self) -> bool {
        matches!(self, SessionState::Closed | SessionState::Abandoned)
    }

    /// Waiting for an agent: routing, queued, offered or between groups.
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            SessionState::Routing
                | SessionState::Queued
                | SessionState::Offered
                | SessionState::Transferred
        )
    }

    /// The wire/storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::New => "new",
            SessionState::Routing => "routing",
            SessionState::Queued => "queued",
            SessionState::Offered => "offered",
            SessionState::Assigned => "assigned",
            SessionState::WrapUp => "wrap_up",
            SessionState::Closed => "closed",
            SessionState::Abandoned => "abandoned",
            SessionState::Transferred => "transferred",
        }
    }

    /// Parses [`SessionState::as_str`].
    pub fn parse(name: &str) -> Option<SessionState> {
        use SessionState::*;
        [
            New,
            Routing,
            Queued,
            Offered,
            Assigned,
            WrapUp,
            Closed,
            Abandoned,
            Transferred,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// The clocks SLA arithmetic needs ([`crate::sla`]); each is set once, when
/// the session first reaches that point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTimes {
    /// First message.
    pub created: Option<Millis>,
    /// First entered a queue (the place in line; kept across overflow).
    pub queued: Option<Millis>,
    /// First offered to an agent.
    pub offered: Option<Millis>,
    /// First accepted by an agent.
    pub answered: Option<Millis>,
    /// First agent message.
    pub first_response: Option<Millis>,
    /// Entered wrap-up.
    pub wrap_up: Option<Millis>,
    /// Closed or abandoned.
    pub closed: Option<Millis>,
}

/// A session record, as stored and as the Session actor holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// Who the conversation is with.
    pub customer_id: CustomerId,
    /// The channel it started on.
    pub channel: Channel,
    /// Current state.
    pub state: SessionState,
    /// The group whose queue holds it, or held it last.
    pub group: Option<GroupId>,
    /// The group the contact counts in for its SLA figures (docs/sla.md,
    /// "Which group"): the group whose queue held it last before an agent
    /// first accepted it (or, never answered, the one holding it now). A
    /// transfer after the answer does not move it. `None` until it queues;
    /// records written before this field read [`Session::group`] instead
    /// ([`Session::sla_group`]).
    #[serde(default)]
    pub sla_group: Option<GroupId>,
    /// The agent it is offered or assigned to.
    pub agent: Option<AgentId>,
    /// Timestamps for SLA.
    pub times: SessionTimes,
    /// Highest sequence number used by a message or event of this session.
    pub last_seq: u64,
    /// How many times it was transferred.
    pub transfers: u32,
    /// The agent's wrap-up note.
    pub summary: Option<String>,
    /// The customer's satisfaction score ([`RATING_SCORES`]), once they gave one;
    /// kept on the record so that reports need not read the messages.
    #[serde(default)]
    pub rating: Option<u8>,
    /// Where agents' replies go besides the customer's open sockets: the
    /// channel account the customer last wrote through (`None` when they
    /// last wrote from a socket or the plain inbound API).
    #[serde(default)]
    pub reply_route: Option<ReplyRoute>,
    /// The routing steps it waited in before an agent first accepted it (or
    /// it was left), in order: what the per-rule report counts
    /// ([`crate::sla::report`]). At most [`MAX_ROUTE_STEPS`]; empty on
    /// records from before the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteStep>,
}

/// Most entries [`Session::route`] keeps: a contact bounced between steps
/// more often than this (a supervisor moving it back and forth) keeps its
/// first ones.
pub const MAX_ROUTE_STEPS: usize = 16;

/// One routing step a contact waited in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStep {
    /// The rule's name (`direct` for a supervisor's reassignment,
    /// `fallback` when no rule matched).
    pub rule: String,
    /// The step's index in the rule, from 0.
    pub step: u32,
    /// The group whose queue held it in that step.
    pub group: GroupId,
}

/// How an agent's reply reaches a customer on a message platform: the
/// `[[channels]]` account the customer's latest message came through, and
/// their address there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRoute {
    /// The account's name (`wx-main`).
    pub account: String,
    /// The customer's id on the platform (an openid, a phone number).
    pub to: String,
    /// What the account's adapter needs to reply besides `to` (a QQ
    /// group and the message a reply cites); opaque to the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// The satisfaction scores a customer can give.
pub const RATING_SCORES: RangeInclusive<u8> = 1..=5;

/// Refuses a satisfaction score outside [`RATING_SCORES`], naming the field.
pub fn check_score(score: u8) -> Result<u8, EngineError> {
    if RATING_SCORES.contains(&score) {
        Ok(score)
    } else {
        Err(EngineError::Invalid {
            field: "score",
            reason: format!(
                "must be {} to {}, got {score}",
                RATING_SCORES.start(),
                RATING_SCORES.end()
            ),
        })
    }
}

/// Something that happens to a session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Rules start evaluating.
    StartRouting,
    /// The session joins (or, on overflow, moves to) `group`'s queue.
    Enqueue {
        /// The target group.
        group: GroupId,
    },
    /// The group offers it to `agent`.
    Offer {
        /// Who gets the offer.
        agent: AgentId,
    },
    /// The offer was rejected or timed out; the session is waiting again.
    OfferLapsed,
    /// `agent` accepted the offer.
    Accept {
        /// Who accepted.
        agent: AgentId,
    },
    /// The assigned agent sent a message.
    AgentReplied,
    /// The agent hands the session on; an [`SessionEvent::Enqueue`] follows.
    Transfer,
    /// The conversation is over; the agent writes notes.
    WrapUp {
        /// The note, if any yet.
        summary: Option<String>,
    },
    /// Done.
    Close {
        /// The note, if any.
        summary: Option<String>,
    },
    /// The customer went away.
    CustomerLeft,
    /// The customer rates the conversation (after it ended for them: wrap-up
    /// or closed). Only once; check the score with [`check_score`] first.
    Rate {
        /// The score.
        score: u8,
    },
}

/// What the owner of the session must do after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEffect {
    /// Remove the session from this group's queue.
    LeaveQueue(GroupId),
    /// Take back the pending offer from this agent.
    WithdrawOffer(AgentId),
    /// The agent no longer holds the session; free their capacity.
    ReleaseAgent(AgentId),
}

/// An event that makes no sense in the session's current state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("session {session}: cannot {event} while {state}")]
pub struct TransitionError {
    /// The session.
    pub session: SessionId,
    /// Its state.
    pub state: &'static str,
    /// What was attempted.
    pub event: &'static str,
}

impl SessionEvent {
    fn name(&self) -> &'static str {
        match self {
            SessionEvent::StartRouting => "start routing",
            SessionEvent::Enqueue { .. } => "enqueue",
            SessionEvent::Offer { .. } => "offer",
            SessionEvent::OfferLapsed => "lapse an offer",
            SessionEvent::Accept { .. } => "accept",
            SessionEvent::AgentReplied => "record an agent reply",
            SessionEvent::Transfer => "transfer",
            SessionEvent::WrapUp { .. } => "wrap up",
            SessionEvent::Close { .. } => "close",
            SessionEvent::CustomerLeft => "abandon",
            SessionEvent::Rate { .. } => "rate",
        }
    }
}

impl Session {
    /// The group the contact counts in for its SLA figures (see
    /// [`Session::sla_group`] the field).
    pub fn sla_group(&self) -> Option<&GroupId> {
        self.sla_group.as_ref().or(self.group.as_ref())
    }

    /// A new session created by a first message at `at`.
    pub fn new(id: SessionId, customer_id: CustomerId, channel: Channel, at: Millis) -> Self {
        Session {
            id,
            customer_id,
            channel,
            state: SessionState::New,
            group: None,
            sla_group: None,
            agent: None,
            times: SessionTimes {
                created: Some(at),
                ..SessionTimes::default()
            },
            last_seq: 0,
            transfers: 0,
            summary: None,
            rating: None,
            reply_route: None,
            route: Vec::new(),
        }
    }

    /// Notes that the contact entered `step` of `rule`, waiting in `group`:
    /// kept until an agent first accepts it, then the route is final (a
    /// transfer after the answer is not routing of this contact). Entering
    /// the step it is in again (a restart) adds nothing.
    pub fn note_route_step(&mut self, rule: &str, step: u32, group: &GroupId) {
        if self.times.answered.is_some() || self.route.len() >= MAX_ROUTE_STEPS {
            return;
        }
        let entry = RouteStep {
            rule: rule.to_owned(),
            step,
            group: group.clone(),
        };
        if self.route.last() != Some(&entry) {
            self.route.push(entry);
        }
    }

    /// Applies `event` at time `at`. On error the session is unchanged.
    pub fn apply(
        &mut self,
        event: SessionEvent,
        at: Millis,
    ) -> Result<Vec<SessionEffect>, TransitionError> {
        use SessionState as S;
        let refuse = |session: &Session, event: &SessionEvent| TransitionError {
            session: session.id,
            state: session.state.as_str(),
            event: event.name(),
        };
        let mut effects = Vec::new();
        match (self.state, &event) {
            (S::New, SessionEvent::StartRouting) => self.state = S::Routing,
            (S::Routing | S::Transferred | S::Queued, SessionEvent::Enqueue { group }) => {
                if self.state == S::Queued
                    && let Some(old) = self.group.take()
                    && &old != group
                {
                    effects.push(SessionEffect::LeaveQueue(old));
                }
                if self.sla_group.is_none() {
                    // A record from before the field counted in its group.
                    self.sla_group = self.group.clone();
                }
                self.group = Some(group.clone());
                if self.times.answered.is_none() {
                    self.sla_group = Some(group.clone());
                }
                self.state = S::Queued;
                self.times.queued.get_or_insert(at);
            }
            (S::Queued, SessionEvent::Offer { agent }) => {
                self.agent = Some(agent.clone());
                self.state = S::Offered;
                self.times.offered.get_or_insert(at);
            }
            (S::Offered, SessionEvent::OfferLapsed) => {
                self.agent = None;
                self.state = S::Queued;
            }
            (S::Offered, SessionEvent::Accept { agent }) if self.agent.as_ref() == Some(agent) => {
                self.state = S::Assigned;
                self.times.answered.get_or_insert(at);
            }
            (S::Assigned, SessionEvent::AgentReplied) => {
                self.times.first_response.get_or_insert(at);
            }
            (S::Assigned, SessionEvent::Transfer) => {
                effects.extend(self.agent.take().map(SessionEffect::ReleaseAgent));
                self.transfers += 1;
                self.state = S::Transferred;
            }
            (S::Assigned, SessionEvent::WrapUp { summary }) => {
                self.summary = summary.clone().or(self.summary.take());
                self.state = S::WrapUp;
                self.times.wrap_up = Some(at);
            }
            (S::Assigned | S::WrapUp, SessionEvent::Close { summary }) => {
                self.summary = summary.clone().or(self.summary.take());
                if self.state == S::Assigned {
                    self.times.wrap_up = Some(at);
                }
                effects.extend(self.agent.clone().map(SessionEffect::ReleaseAgent));
                self.state = S::Closed;
                self.times.closed = Some(at);
            }
            (S::New | S::Routing | S::Transferred, SessionEvent::CustomerLeft) => {
                self.state = S::Abandoned;
                self.times.closed = Some(at);
            }
            (S::Queued | S::Offered, SessionEvent::CustomerLeft) => {
                effects.extend(self.group.clone().map(SessionEffect::LeaveQueue));
                if self.state == S::Offered {
                    effects.extend(self.agent.take().map(SessionEffect::WithdrawOffer));
                }
                self.state = S::Abandoned;
                self.times.closed = Some(at);
            }
            (S::WrapUp | S::Closed, SessionEvent::Rate { .. }) if self.rating.is_some() => {
                return Err(TransitionError {
                    session: self.id,
                    state: self.state.as_str(),
                    event: "rate again",
                });
            }
            (S::WrapUp | S::Closed, SessionEvent::Rate { score }) => self.rating = Some(*score),
            _ => return Err(refuse(self, &event)),
        }
        Ok(effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str) -> AgentId {
        AgentId::new(id)
    }
    fn group(id: &str) -> GroupId {
        GroupId::new(id)
    }

    /// Runs `events` (event, at) from a fresh session and compares the final
    /// state, the effects of the last event and the error, if any.
    fn check(
        events: &[(SessionEvent, Millis)],
        expected_state: SessionState,
        expected_last: Result<Vec<SessionEffect>, &str>,
    ) {
        let mut session = Session::new(SessionId(7), CustomerId::new("c1"), Channel::Web, 0);
        let mut last = Ok(Vec::new());
        for (event, at) in events {
            last = session.apply(event.clone(), *at).map_err(|e| e.to_string());
        }
        assert_eq!(session.state, expected_state, "after {events:?}");
        assert_eq!(
            last,
            expected_last.map_err(str::to_owned),
            "after {events:?}"
        );
    }

    /// Events (event, at), then the expected state and outcome of the last event.
    type Case = (
        Vec<(SessionEvent, Millis)>,
        SessionState,
        Result<Vec<SessionEffect>, &'static str>,
    );

    #[test]
    fn transitions() {
        use SessionEffect::*;
        use SessionEvent::*;
        use SessionState as S;
        let to_queue = vec![
            (StartRouting, 1),
            (
                Enqueue {
                    group: group("default"),
                },
                2,
            ),
        ];
        let offered = [
            to_queue.clone(),
            vec![(
                Offer {
                    agent: agent("ann"),
                },
                3,
            )],
        ]
        .concat();
        let assigned = [
            offered.clone(),
            vec![(
                Accept {
                    agent: agent("ann"),
                },
                4,
            )],
        ]
        .concat();
        let cases: Vec<Case> = vec![
            (vec![(StartRouting, 1)], S::Routing, Ok(vec![])),
            (to_queue.clone(), S::Queued, Ok(vec![])),
            (offered.clone(), S::Offered, Ok(vec![])),
            (assigned.clone(), S::Assigned, Ok(vec![])),
            (
                [offered.clone(), vec![(OfferLapsed, 5)]].concat(),
                S::Queued,
                Ok(vec![]),
            ),
            (
                [
                    offered.clone(),
                    vec![(
                        Accept {
                            agent: agent("bob"),
                        },
                        5,
                    )],
                ]
                .concat(),
                S::Offered,
                Err("session 7: cannot accept while offered"),
            ),
            (
                [
                    to_queue.clone(),
                    vec![(
                        Enqueue {
                            group: group("gold_service"),
                        },
                        5,
                    )],
                ]
                .concat(),
                S::Queued,
                Ok(vec![LeaveQueue(group("default"))]),
            ),
            (
                [assigned.clone(), vec![(Transfer, 5)]].concat(),
                S::Transferred,
                Ok(vec![ReleaseAgent(agent("ann"))]),
            ),
            (
                [
                    assigned.clone(),
                    vec![
                        (Transfer, 5),
                        (
                            Enqueue {
                                group: group("phone_support"),
                            },
                            6,
                        ),
                    ],
                ]
                .concat(),
                S::Queued,
                Ok(vec![]),
            ),
            (
                [
                    assigned.clone(),
                    vec![
                        (WrapUp { summary: None }, 5),
                        (
                            Close {
                                summary: Some("ok".into()),
                            },
                            6,
                        ),
                    ],
                ]
                .concat(),
                S::Closed,
                Ok(vec![ReleaseAgent(agent("ann"))]),
            ),
            (
                [assigned.clone(), vec![(Close { summary: None }, 5)]].concat(),
                S::Closed,
                Ok(vec![ReleaseAgent(agent("ann"))]),
            ),
            (
                to_queue
                    .clone()
                    .into_iter()
                    .chain([(CustomerLeft, 9)])
                    .collect(),
                S::Abandoned,
                Ok(vec![LeaveQueue(group("default"))]),
            ),
            (
                [offered.clone(), vec![(CustomerLeft, 9)]].concat(),
                S::Abandoned,
                Ok(vec![
                    LeaveQueue(group("default")),
                    WithdrawOffer(agent("ann")),
                ]),
            ),
            (
                [assigned.clone(), vec![(CustomerLeft, 9)]].concat(),
                S::Assigned,
                Err("session 7: cannot abandon while assigned"),
            ),
            (
                vec![(
                    Offer {
                        agent: agent("ann"),
                    },
                    1,
                )],
                S::New,
                Err("session 7: cannot offer while new"),
            ),
            (
                [
                    assigned.clone(),
                    vec![(Close { summary: None }, 5), (AgentReplied, 6)],
                ]
                .concat(),
                S::Closed,
                Err("session 7: cannot record an agent reply while closed"),
            ),
            // Rating: in wrap-up or closed, once.
            (
                [
                    assigned.clone(),
                    vec![(WrapUp { summary: None }, 5), (Rate { score: 4 }, 6)],
                ]
                .concat(),
                S::WrapUp,
                Ok(vec![]),
            ),
            (
                [
                    assigned.clone(),
                    vec![(Close { summary: None }, 5), (Rate { score: 5 }, 6)],
                ]
                .concat(),
                S::Closed,
                Ok(vec![]),
            ),
            (
                [
                    assigned.clone(),
                    vec![
                        (WrapUp { summary: None }, 5),
                        (Rate { score: 4 }, 6),
                        (Close { summary: None }, 7),
                        (Rate { score: 1 }, 8),
                    ],
                ]
                .concat(),
                S::Closed,
                Err("session 7: cannot rate again while closed"),
            ),
            (
                [assigned.clone(), vec![(Rate { score: 3 }, 5)]].concat(),
                S::Assigned,
                Err("session 7: cannot rate while assigned"),
            ),
            (
                [
                    to_queue.clone(),
                    vec![(CustomerLeft, 5), (Rate { score: 3 }, 6)],
                ]
                .concat(),
                S::Abandoned,
                Err("session 7: cannot rate while abandoned"),
            ),
        ];
        for (events, state, last) in cases {
            check(&events, state, last);
        }
    }

    #[test]
    fn a_rating_is_kept_once_and_scores_outside_one_to_five_are_refused() {
        let mut session = Session::new(SessionId(3), CustomerId::new("c1"), Channel::Web, 0);
        session.state = SessionState::Closed;
        session.apply(SessionEvent::Rate { score: 2 }, 10).unwrap();
        session
            .apply(SessionEvent::Rate { score: 5 }, 11)
            .unwrap_err();
        assert_eq!(session.rating, Some(2));

        let cases: [(u8, Result<u8, &str>); 5] = [
            (0, Err("invalid `score`: must be 1 to 5, got 0")),
            (1, Ok(1)),
            (3, Ok(3)),
            (5, Ok(5)),
            (6, Err("invalid `score`: must be 1 to 5, got 6")),
        ];
        for (score, expected) in cases {
            let got = check_score(score).map_err(|err| err.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "score {score}");
        }
    }

    #[test]
    fn clocks_are_set_once_and_overflow_keeps_the_place_in_line() {
        use SessionEvent::*;
        let mut session = Session::new(SessionId(1), CustomerId::new("c1"), Channel::Phone, 100);
        session.apply(StartRouting, 100).unwrap();
        session
            .apply(
                Enqueue {
                    group: group("gold_service"),
                },
                110,
            )
            .unwrap();
        session
            .apply(
                Enqueue {
                    group: group("default"),
                },
                30_110,
            )
            .unwrap();
        session
            .apply(
                Offer {
                    agent: agent("ann"),
                },
                30_500,
            )
            .unwrap();
        session.apply(OfferLapsed, 45_500).unwrap();
        session
            .apply(
                Offer {
                    agent: agent("bob"),
                },
                46_000,
            )
            .unwrap();
        session
            .apply(
                Accept {
                    agent: agent("bob"),
                },
                47_000,
            )
            .unwrap();
        session.apply(AgentReplied, 50_000).unwrap();
        session.apply(AgentReplied, 60_000).unwrap();
        session
            .apply(
                WrapUp {
                    summary: Some("refund issued".into()),
                },
                200_000,
            )
            .unwrap();
        session.apply(Close { summary: None }, 230_000).unwrap();
        let times = &session.times;
        assert_eq!(
            (
                times.created,
                times.queued,
                times.offered,
                times.answered,
                times.first_response,
                times.wrap_up,
                times.closed
            ),
            (
                Some(100),
                Some(110),
                Some(30_500),
                Some(47_000),
                Some(50_000),
                Some(200_000),
                Some(230_000)
            )
        );
        assert_eq!(session.summary.as_deref(), Some("refund issued"));
        assert_eq!(session.group, Some(group("default")));
    }
}
