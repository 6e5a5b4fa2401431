//! Response targets per conversation (docs/supervisor.md, "SLA policies"):
//! a reply is owed — the first of the conversation from when an agent
//! accepted it (docs/sla.md's first response), or a next one from the
//! customer's oldest message after an agent's reply — due by the rule
//! file's `[[response]]` target for the session's group and channel (on
//! its business-hours clock). Phone calls owe none. The agent's desktop hears the due time
//! (`response_due`, ephemeral) whenever it changes; at the due time a reply
//! still owed is a `response_breached` event, stored (with its webhook
//! `sla.breached`) and counted. Only the agent's replies answer: a
//! supervisor barging in does not.
//!
//! The timer is not the actor's: like a step timeout it is delivered
//! through the Directory, which re-activates a passivated session; it is
//! cancelled when the wait ends, so an answered or closed session is not
//! woken for nothing. A restarted or re-activated session reads what is
//! owed back from its history and works its due time out again with the
//! rules in force.

use std::time::Duration;

use engine::Millis;
use engine::message::Sender;
use engine::routing::ResponseKind;

use super::{SessionActor, SessionActorState, SessionMessage};
use crate::event::{Audience, Event, EventKind};

/// A reply the customer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owed {
    /// First or next.
    pub(super) kind: ResponseKind,
    /// When the customer's oldest unanswered message came.
    pub(super) since: Millis,
    /// When it is due.
    pub(super) due: Millis,
    /// A breach was recorded for it.
    pub(super) breached: bool,
}

/// Cancels the armed check, if any (the wait ended or another replaces it).
pub(super) fn cancel_check(state: &mut SessionActorState) {
    if let Some(check) = state.owed_check.take() {
        check.abort();
    }
}

/// What the history says is owed, read back in event order by `rehydrate`.
#[derive(Debug, Default)]
pub(super) struct OwedSoFar {
    call: bool,
    answered_once: bool,
    /// (kind, since) of the wait in progress.
    waiting: Option<(ResponseKind, Millis)>,
    breached_since: Option<Millis>,
    ended: bool,
}

impl OwedSoFar {
    /// Follows one stored event.
    pub(super) fn follow(&mut self, kind: &EventKind, at: Millis) {
        match kind {
            EventKind::Call(crate::event::CallEvent::Started { .. }) => self.call = true,
            // The first reply is owed from the first accept.
            EventKind::Assigned { .. }
                if self.waiting.is_none() && !self.answered_once && !self.ended && !self.call =>
            {
                self.waiting = Some((ResponseKind::First, at));
            }
            EventKind::Message {
                sender: Sender::Customer,
                ..
            } if self.waiting.is_none() && self.answered_once && !self.ended && !self.call => {
                self.waiting = Some((ResponseKind::Next, at));
            }
            EventKind::Message {
                sender: Sender::Agent(_),
                ..
            } => {
                self.answered_once = true;
                self.waiting = None;
            }
            EventKind::ResponseBreached { since, .. } => self.breached_since = Some(*since),
            EventKind::WrapUp | EventKind::Closed { .. } | EventKind::Abandoned => {
                self.ended = true;
                self.waiting = None;
            }
            _ => {}
        }
    }

    /// The wait in progress: (kind, since, already breached).
    pub(super) fn waiting(&self) -> Option<(ResponseKind, Millis, bool)> {
        self.waiting
            .map(|(kind, since)| (kind, since, self.breached_since == Some(since)))
    }
}

impl SessionActor {
    /// The customer wrote at `at`: after an agent's reply, a next reply is
    /// owed from now if none was (the first is owed from the accept).
    pub(super) fn customer_wrote(&self, state: &mut SessionActorState, at: Millis) {
        let live = !state.session.state.is_final()
            && state.session.state != engine::session::SessionState::WrapUp;
        if state.owed.is_none()
            && live
            && !state.call
            && state.session.times.first_response.is_some()
        {
            self.owe(state, ResponseKind::Next, at, false);
        }
    }

    /// An agent accepted at `at`: the first reply is owed from now, unless
    /// one was sent or owed before (a transfer keeps the first wait) or the
    /// session is a phone call. Either way the agent hears what is owed.
    pub(super) fn accepted(&self, state: &mut SessionActorState, at: Millis) {
        let first = state.owed.is_none() && state.session.times.first_response.is_none();
        if first && !state.call {
            self.owe(state, ResponseKind::First, at, false);
        } else {
            self.tell_due(state);
        }
    }

    /// A reply of `kind` is owed since `since`: remember it, arm its check
    /// and tell the desktops when it is due.
    pub(super) fn owe(
        &self,
        state: &mut SessionActorState,
        kind: ResponseKind,
        since: Millis,
        breached: bool,
    ) {
        let policy = self
            .shared
            .rules()
            .response_policy(state.session.group.as_ref(), &state.session.channel);
        let due = policy.due(kind, since);
        state.owed = Some(Owed {
            kind,
            since,
            due,
            breached,
        });
        if breached {
            cancel_check(state);
        } else {
            self.arm_check(state, since, due);
        }
        self.tell_due(state);
    }

    /// Delivers the check of the wait since `since` at `due` (wherever the
    /// session runs by then), replacing any check armed before.
    fn arm_check(&self, state: &mut SessionActorState, since: Millis, due: Millis) {
        cancel_check(state);
        let wait = due.saturating_sub(crate::clock::now()).max(0);
        let session = state.session.id;
        let shared = self.shared.clone();
        let check = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            shared.tell_session(session, SessionMessage::ResponseCheck { since });
        });
        state.owed_check = Some(check.abort_handle());
    }

    /// The agent answered, or the conversation ended: nothing is owed.
    pub(super) fn answered(&self, state: &mut SessionActorState) {
        cancel_check(state);
        if state.owed.take().is_some() {
            self.tell_due(state);
        }
    }

    /// The check armed for the wait since `since` fired: still owed, it is
    /// a breach.
    pub(super) fn check_response(
        &self,
        myself: &ractor::ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        since: Millis,
    ) {
        let Some(owed) = state.owed.as_mut() else {
            return;
        };
        if owed.since != since || owed.breached || state.session.state.is_final() {
            return;
        }
        let now = crate::clock::now();
        if now < owed.due {
            // The timer fired early (another process's clock): check again.
            let due = owed.due;
            self.arm_check(state, since, due);
            return;
        }
        owed.breached = true;
        let (kind, due) = (owed.kind, owed.due);
        state.owed_check = None;
        self.record_at(
            state,
            EventKind::ResponseBreached {
                kind,
                due,
                since,
                group: state.session.group.clone(),
            },
            now,
        );
        self.flush(myself, state);
    }

    /// Sends the agent and the supervisors following the session when the
    /// owed reply is due (or that none is), without storing anything.
    pub(super) fn tell_due(&self, state: &SessionActorState) {
        let event = Event {
            session: state.session.id,
            seq: self.published_seq(state),
            at: crate::clock::now(),
            kind: EventKind::ResponseDue {
                kind: state.owed.map(|owed| owed.kind),
                due: state.owed.map(|owed| owed.due),
            },
        };
        let hub = &self.shared.hub;
        if let Some(agent) = &state.session.agent {
            hub.publish_ephemeral(&Audience::Agent(agent.clone()), &event);
        }
        for supervisor in state.monitors.keys() {
            if Some(supervisor) != state.session.agent.as_ref() {
                hub.publish_ephemeral(&Audience::Agent(supervisor.clone()), &event);
            }
        }
    }

    /// What is owed now, for a desktop's card: (kind, due).
    pub(super) fn owed_now(state: &SessionActorState) -> Option<(ResponseKind, Millis)> {
        state.owed.map(|owed| (owed.kind, owed.due))
    }
}
