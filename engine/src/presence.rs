//! Agent presence and load: the state machine an Agent actor runs.
//!
//! ```text
//! offline ⇄ available ⇄ away(reason)
//!              │  ↑
//!   offer lapses│  │wrap-up ends (timer or agent)
//!              ↓  │
//!     not_responding   wrap_up(until)  ← last session released
//! ```
//! Offers reserve capacity until they are accepted, rejected or lapse.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Millis;
use crate::agent::{Agent, Load};
use crate::channel::Channel;
use crate::ids::{AgentId, SessionId};

/// Where an agent is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Presence {
    /// Logged out; nothing is offered.
    Offline,
    /// Takes offers on channels with free capacity.
    Available,
    /// Logged in but not taking offers (break, training, meeting).
    Away {
        /// Why, for supervisors and reports.
        reason: String,
    },
    /// Finishing notes after a contact; becomes available at `until` or when the agent says so.
    WrapUp {
        /// When wrap-up ends by itself.
        until: Millis,
    },
    /// Ignored an offer until it lapsed; nothing more is offered until the agent comes back.
    NotResponding,
}

impl Presence {
    /// The name dashboards and the wire use.
    pub fn as_str(&self) -> &'static str {
        match self {
            Presence::Offline => "offline",
            Presence::Available => "available",
            Presence::Away { .. } => "away",
            Presence::WrapUp { .. } => "wrap_up",
            Presence::NotResponding => "not_responding",
        }
    }
}

/// What an agent asks for themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PresenceRequest {
    /// Ready for offers (also ends wrap-up and not-responding).
    Available,
    /// Pause with a reason.
    Away {
        /// Why.
        reason: String,
    },
    /// Log out; refused while sessions are open.
    Offline,
}

/// Something that happens to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The agent changes presence.
    Request(PresenceRequest),
    /// A group offers a session.
    Offer {
        /// The session.
        session: SessionId,
        /// Its channel, for capacity.
        channel: Channel,
    },
    /// The agent accepts an offer.
    Accept {
        /// The session.
        session: SessionId,
    },
    /// The agent rejects an offer.
    Reject {
        /// The session.
        session: SessionId,
    },
    /// The offer deadline passed without an answer.
    OfferTimedOut {
        /// The session.
        session: SessionId,
    },
    /// The offer was withdrawn (customer left, or the group re-routed it).
    OfferWithdrawn {
        /// The session.
        session: SessionId,
    },
    /// A session the agent held ended or was transferred away.
    Release {
        /// The session.
        session: SessionId,
    },
    /// The wrap-up timer fired.
    WrapUpTimer,
}

/// What the Agent actor must do after a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEffect {
    /// Groups must learn the agent's new availability (presence, load, idle time).
    AvailabilityChanged,
    /// Schedule [`AgentEvent::WrapUpTimer`] at this time.
    StartWrapUpTimer(Millis),
    /// The offer is no longer the agent's: the group re-queues the session.
    OfferLapsed(SessionId),
}

/// A refused event; the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AgentError {
    /// The offer does not fit the agent's presence or free capacity.
    #[error("agent {agent} cannot take a {channel} session now ({presence})")]
    NoCapacity {
        /// The agent.
        agent: AgentId,
        /// The session's channel.
        channel: Channel,
        /// The agent's presence.
        presence: &'static str,
    },
    /// Accept/reject of a session that is not offered to the agent.
    #[error("session {session} is not offered to agent {agent}")]
    NotOffered {
        /// The agent.
        agent: AgentId,
        /// The session.
        session: SessionId,
    },
    /// Going offline with sessions still open.
    #[error("agent {agent} still holds {n_sessions} session(s); close or transfer them first")]
    SessionsOpen {
        /// The agent.
        agent: AgentId,
        /// How many.
        n_sessions: usize,
    },
}

/// Everything the engine tracks about an agent at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentState {
    /// Who.
    pub id: AgentId,
    /// Presence.
    pub presence: Presence,
    /// Sessions offered (reserved) and held.
    pub load: Load,
    /// Pending offers.
    pub offers: Vec<(SessionId, Channel)>,
    /// Sessions held.
    pub sessions: Vec<(SessionId, Channel)>,
    /// The last time the agent became available or was routed a contact; the
    /// agent with the oldest value is "longest idle" and is offered first.
    pub idle_since: Millis,
    /// How long wrap-up lasts before the agent is available again by itself.
    pub wrap_up_ms: Millis,
}

impl AgentState {
    /// A logged-out agent.
    pub fn new(id: AgentId, wrap_up_ms: Millis) -> Self {
        AgentState {
            id,
            presence: Presence::Offline,
            load: Load::default(),
            offers: Vec::new(),
            sessions: Vec::new(),
            idle_since: 0,
            wrap_up_ms,
        }
    }

    /// Whether a group may offer a `channel` session to this agent now.
    pub fn can_take(&self, profile: &Agent, channel: &Channel) -> bool {
        self.presence == Presence::Available && profile.capacity.can_take(&self.load, channel)
    }

    /// Applies `event` at `now`. On error the state is unchanged.
    pub fn apply(
        &mut self,
        profile: &Agent,
        event: AgentEvent,
        now: Millis,
    ) -> Result<Vec<AgentEffect>, AgentError> {
        let mut effects = Vec::new();
        match event {
            AgentEvent::Request(PresenceRequest::Available) => {
                if self.presence != Presence::Available {
                    self.presence = Presence::Available;
                    self.idle_since = now;
                    effects.push(AgentEffect::AvailabilityChanged);
                }
            }
            AgentEvent::Request(PresenceRequest::Away { reason }) => {
                effects.extend(self.lapse_all_offers());
                self.presence = Presence::Away { reason };
                effects.push(AgentEffect::AvailabilityChanged);
            }
            AgentEvent::Request(PresenceRequest::Offline) => {
                if !self.sessions.is_empty() {
                    return Err(AgentError::SessionsOpen {
                        agent: self.id.clone(),
                        n_sessions: self.sessions.len(),
                    });
                }
                effects.extend(self.lapse_all_offers());
                self.presence = Presence::Offline;
                effects.push(AgentEffect::AvailabilityChanged);
            }
            AgentEvent::Offer { session, channel } => {
                if !self.can_take(profile, &channel) {
                    return Err(AgentError::NoCapacity {
                        agent: self.id.clone(),
                        channel,
                        presence: self.presence.as_str(),
                    });
                }
                self.load.add(&channel);
                self.offers.push((session, channel));
                self.idle_since = now;
                effects.push(AgentEffect::AvailabilityChanged);
            }
            AgentEvent::Accept { session } => {
                let channel = self.take_offer(session)?;
                self.sessions.push((session, channel));
            }
            AgentEvent::Reject { session } | AgentEvent::OfferWithdrawn { session } => {
                let channel = self.take_offer(session)?;
                self.load.remove(&channel);
                effects.push(AgentEffect::AvailabilityChanged);
            }
            AgentEvent::OfferTimedOut { session } => {
                let channel = self.take_offer(session)?;
                self.load.remove(&channel);
                effects.extend(self.lapse_all_offers());
                effects.push(AgentEffect::OfferLapsed(session));
                self.presence = Presence::NotResponding;
                effects.push(AgentEffect::AvailabilityChanged);
            }
            AgentEvent::Release { session } => {
                let Some(idx) = self.sessions.iter().position(|(s, _)| *s == session) else {
                    return Err(AgentError::NotOffered {
                        agent: self.id.clone(),
                        session,
                    });
                };
                let (_, channel) = self.sessions.swap_remove(idx);
                self.load.remove(&channel);
                self.idle_since = now;
                if self.presence == Presence::Available
                    && self.sessions.is_empty()
                    && self.wrap_up_ms > 0
                {
                    let until = now + self.wrap_up_ms;
                    self.presence = Presence::WrapUp { until };
                    effects.push(AgentEffect::StartWrapUpTimer(until));
                }
                effects.push(AgentEffect::AvailabilityChanged);
            }
            AgentEvent::WrapUpTimer => {
                if matches!(self.presence, Presence::WrapUp { until } if until <= now) {
                    self.presence = Presence::Available;
                    self.idle_since = now;
                    effects.push(AgentEffect::AvailabilityChanged);
                }
            }
        }
        Ok(effects)
    }

    fn take_offer(&mut self, session: SessionId) -> Result<Channel, AgentError> {
        match self.offers.iter().position(|(s, _)| *s == session) {
            Some(idx) => Ok(self.offers.swap_remove(idx).1),
            None => Err(AgentError::NotOffered {
                agent: self.id.clone(),
                session,
            }),
        }
    }

    fn lapse_all_offers(&mut self) -> Vec<AgentEffect> {
        let lapsed: Vec<_> = self.offers.drain(..).collect();
        lapsed
            .into_iter()
            .map(|(session, channel)| {
                self.load.remove(&channel);
                AgentEffect::OfferLapsed(session)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Capacity, Role};

    fn profile() -> Agent {
        Agent {
            id: AgentId::new("ann"),
            display_name: "Ann".into(),
            role: Role::Expert,
            skills: Default::default(),
            groups: vec![],
            languages: vec![],
            capacity: Capacity::default(),
            sip: None,
        }
    }

    /// Events (event, at), then the expected presence, load and last outcome.
    type Case = (
        Vec<(AgentEvent, Millis)>,
        &'static str,
        u32,
        Result<Vec<AgentEffect>, &'static str>,
    );

    /// Runs `events` (event, at) from an agent that just became available at
    /// t=0 and checks presence, load and the last event's outcome.
    fn check(
        events: &[(AgentEvent, Millis)],
        expected_presence: &str,
        expected_load: u32,
        expected_last: Result<Vec<AgentEffect>, &str>,
    ) {
        let profile = profile();
        let mut state = AgentState::new(profile.id.clone(), 10_000);
        state
            .apply(&profile, AgentEvent::Request(PresenceRequest::Available), 0)
            .unwrap();
        let mut last = Ok(vec![]);
        for (event, at) in events {
            last = state
                .apply(&profile, event.clone(), *at)
                .map_err(|e| e.to_string());
        }
        assert_eq!(
            state.presence.as_str(),
            expected_presence,
            "after {events:?}"
        );
        assert_eq!(state.load.total(), expected_load, "after {events:?}");
        assert_eq!(
            last,
            expected_last.map_err(str::to_owned),
            "after {events:?}"
        );
    }

    #[test]
    fn presence_transitions() {
        use AgentEffect::*;
        use AgentEvent::*;
        let s = SessionId;
        let offer = |n, channel| Offer {
            session: s(n),
            channel,
        };
        let web = || Channel::Web;
        let away = |r: &str| Request(PresenceRequest::Away { reason: r.into() });
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            (vec![(offer(1, web()), 5)], "available", 1, Ok(vec![AvailabilityChanged])),
            (vec![(offer(1, web()), 5), (Accept { session: s(1) }, 6)], "available", 1, Ok(vec![])),
            (vec![(offer(1, web()), 5), (Reject { session: s(1) }, 6)], "available", 0, Ok(vec![AvailabilityChanged])),
            (vec![(offer(1, web()), 5), (OfferTimedOut { session: s(1) }, 20)], "not_responding", 0,
                Ok(vec![OfferLapsed(s(1)), AvailabilityChanged])),
            // Not responding: nothing more is offered until the agent is back.
            (vec![(offer(1, web()), 5), (OfferTimedOut { session: s(1) }, 20), (offer(2, web()), 21)], "not_responding", 0,
                Err("agent ann cannot take a web session now (not_responding)")),
            (vec![(offer(1, web()), 5), (OfferTimedOut { session: s(1) }, 20), (Request(PresenceRequest::Available), 30)], "available", 0,
                Ok(vec![AvailabilityChanged])),
            // Capacity: three chats, a call blocks chats.
            (vec![(offer(1, web()), 1), (offer(2, web()), 2), (offer(3, web()), 3), (offer(4, web()), 4)], "available", 3,
                Err("agent ann cannot take a web session now (available)")),
            (vec![(offer(1, Channel::Phone), 1), (offer(2, web()), 2)], "available", 1,
                Err("agent ann cannot take a web session now (available)")),
            // Last session released: wrap-up with a timer, then available.
            (vec![(offer(1, web()), 1), (Accept { session: s(1) }, 2), (Release { session: s(1) }, 100)], "wrap_up", 0,
                Ok(vec![StartWrapUpTimer(10_100), AvailabilityChanged])),
            (vec![(offer(1, web()), 1), (Accept { session: s(1) }, 2), (Release { session: s(1) }, 100), (WrapUpTimer, 10_100)], "available", 0,
                Ok(vec![AvailabilityChanged])),
            // A stale timer (wrap-up ended early and began again) changes nothing.
            (vec![(offer(1, web()), 1), (Accept { session: s(1) }, 2), (Release { session: s(1) }, 100), (WrapUpTimer, 5_000)], "wrap_up", 0,
                Ok(vec![])),
            (vec![(offer(1, web()), 1), (Accept { session: s(1) }, 2), (Request(PresenceRequest::Offline), 3)], "available", 1,
                Err("agent ann still holds 1 session(s); close or transfer them first")),
            (vec![(offer(1, web()), 1), (away("lunch"), 2)], "away", 0, Ok(vec![OfferLapsed(s(1)), AvailabilityChanged])),
            (vec![(Accept { session: s(9) }, 1)], "available", 0, Err("session 9 is not offered to agent ann")),
            (vec![(Request(PresenceRequest::Offline), 1)], "offline", 0, Ok(vec![AvailabilityChanged])),
        ];
        for (events, presence, load, last) in cases {
            check(&events, presence, load, last);
        }
    }

    #[test]
    fn idle_since_tracks_the_last_routing() {
        let profile = profile();
        let mut state = AgentState::new(profile.id.clone(), 0);
        state
            .apply(
                &profile,
                AgentEvent::Request(PresenceRequest::Available),
                10,
            )
            .unwrap();
        assert_eq!(state.idle_since, 10);
        state
            .apply(
                &profile,
                AgentEvent::Offer {
                    session: SessionId(1),
                    channel: Channel::Web,
                },
                50,
            )
            .unwrap();
        assert_eq!(state.idle_since, 50);
        state
            .apply(
                &profile,
                AgentEvent::Accept {
                    session: SessionId(1),
                },
                60,
            )
            .unwrap();
        state
            .apply(
                &profile,
                AgentEvent::Release {
                    session: SessionId(1),
                },
                90,
            )
            .unwrap();
        // No wrap-up configured: straight back to available, idle from the release.
        assert_eq!(
            (state.presence.as_str(), state.idle_since),
            ("available", 90)
        );
    }
}
