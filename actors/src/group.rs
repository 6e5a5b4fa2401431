//! The SkillGroup actor: one queue and the offers made from it.
//!
//! The queue logic is [`engine::queue::GroupQueue`]; this actor feeds it
//! member reports and waiting sessions, and sends the offers it picks to the
//! Agent actors. An Agent actor that cannot take an offer (another group was
//! faster) answers with a lapse and a fresh report.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use engine::Millis;
use engine::agent::Agent;
use engine::channel::Channel;
use engine::group::SkillGroup;
use engine::ids::{AgentId, GroupId, SessionId};

use engine::queue::{Candidate, GroupQueue, MemberStatus};
use engine::routing::{Contact, Step};
use engine::session::SessionState;
use engine::wait::{AnswerPace, estimate_wait};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster_derive::RactorMessage;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::agent::AgentMessage;
use crate::directory::DirectoryMessage;
use crate::event::{Audience, Event, EventKind};
use crate::session::SessionMessage;
use crate::shared::Shared;

/// A waiting session as the queue holds it. No actor reference: the
/// session may be passivated while it waits, so offers go through the
/// Directory, which re-activates it.
pub struct QueueEntry {
    /// What the step's agent expression is evaluated against.
    pub contact: Arc<Contact>,
    /// The routing step the session waits under.
    pub step: Step,
}

impl Candidate for QueueEntry {
    fn channel(&self) -> &Channel {
        &self.contact.channel
    }
    fn admits(&self, agent: &Agent) -> bool {
        self.step.admits(agent, &self.contact)
    }
}

/// Messages of a SkillGroup actor.
#[derive(RactorMessage)]
pub enum GroupMessage {
    /// A session joins (or re-joins, in its original place).
    Enqueue {
        /// The session.
        session: SessionId,
        /// Served first when higher.
        priority: i32,
        /// First time in any queue: the place in line.
        queued_at: Millis,
        /// The session's facts.
        entry: QueueEntry,
    },
    /// A session leaves (answered, abandoned, overflowed).
    Leave {
        /// The session.
        session: SessionId,
    },
    /// A supervisor gave a waiting session another priority; its place in
    /// line and any outstanding offer stay.
    Reprioritise {
        /// The session.
        session: SessionId,
        /// Served first when higher.
        priority: i32,
    },
    /// A member's presence and load changed.
    Member {
        /// Its profile.
        profile: Arc<Agent>,
        /// What it reported.
        status: MemberStatus,
    },
    /// The offer of `session` to `agent` ended without accept.
    OfferLapsed {
        /// The session.
        session: SessionId,
        /// The agent.
        agent: AgentId,
    },
    /// An agent accepted a waiting session: it leaves, and the group's
    /// answer pace (for the estimated wait) takes note.
    Answered {
        /// The session.
        session: SessionId,
    },
    /// Where a waiting session stands, for its customer.
    Status {
        /// The session.
        session: SessionId,
        /// `None` if it is not waiting here.
        reply: RpcReplyPort<Option<QueueStatus>>,
    },
    /// Time to tell waiting customers where they stand: sent by the group
    /// to itself `queue_update` after the first change since the last time,
    /// so changes in between are told once.
    PushPositions,
    /// The queue as supervisors see it.
    View {
        /// Reply port.
        reply: RpcReplyPort<GroupView>,
    },
    /// A recovering group has waited long enough for its waiting sessions
    /// to take their places again: it offers what it has.
    RecoveryOver,
    /// The group is placed on another node now: each waiting session is
    /// told to take its place again (in the group on its new node, as the
    /// session's node places it), then this actor stops. An enqueue that
    /// reached it before is handed over the same way.
    Handover,
}

/// How long a recovering group waits for the waiting sessions the store
/// names to enqueue again before it offers without the missing ones (a
/// session whose node is unreachable comes back later, in its place).
const RECOVERY_GRACE: Duration = Duration::from_secs(2);

/// A group's queue, for supervisors and tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupView {
    /// The group.
    pub group: GroupId,
    /// Waiting sessions in queue order: (session, priority, first queued, offered to).
    pub waiting: Vec<(SessionId, i32, Millis, Option<AgentId>)>,
    /// Members available with free capacity.
    pub n_ready_agents: usize,
    /// How long the oldest waiting session has waited.
    pub longest_wait_ms: Option<Millis>,
}

/// Where a waiting session stands, as its customer is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// The group whose queue holds it.
    pub group: GroupId,
    /// 1-based place in line among sessions not yet offered to an agent.
    pub position: usize,
    /// Sessions waiting in the group (offered or not).
    pub n_waiting: usize,
    /// Seconds until an agent is expected to answer ([`engine::wait`]).
    pub estimated_wait_secs: u32,
}

/// The SkillGroup actor; config only.
pub struct GroupActor {
    /// Shared context.
    pub shared: Arc<Shared>,
}

/// Arguments of a SkillGroup actor.
pub struct GroupArgs {
    /// The group's profile.
    pub group: SkillGroup,
    /// Its members, asked to report on start.
    pub members: Vec<AgentId>,
    /// Started after a failure: ask waiting sessions to enqueue again.
    pub recovering: bool,
}

/// The SkillGroup actor's state.
pub struct GroupState {
    group: SkillGroup,
    queue: GroupQueue<QueueEntry>,
    /// How fast the group answers, for the estimated wait; starts afresh on restart.
    pace: AnswerPace,
    /// What each waiting session's customer was last told, so that a push
    /// goes only to those whose place or estimate changed.
    told: HashMap<SessionId, QueueStatus>,
    /// A [`GroupMessage::PushPositions`] is on its way.
    push_scheduled: bool,
    /// Recovering: the waiting sessions the store names that have not
    /// enqueued again yet. Nothing is offered until they did (or the grace
    /// is over), so that the first offers go to the longest waiting, not to
    /// whoever happened to answer first.
    awaiting: HashSet<SessionId>,
}

impl Actor for GroupActor {
    type Msg = GroupMessage;
    type State = GroupState;
    type Arguments = GroupArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: GroupArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Before its members and sessions hear of it: their reports and
        // enqueues wait in its mailbox until it runs.
        self.shared
            .group_refs
            .register(args.group.id.clone(), myself.clone());
        let mut awaiting = HashSet::new();
        if args.recovering {
            for agent in &args.members {
                self.shared.tell_agent(agent, AgentMessage::ReportStatus);
            }
            for session in self.shared.store.open_sessions().await? {
                let waiting = matches!(session.state, SessionState::Queued | SessionState::Offered);
                if waiting && session.group.as_ref() == Some(&args.group.id) {
                    // Wherever the session runs.
                    self.shared
                        .tell_session(session.id, SessionMessage::Requeue);
                    awaiting.insert(session.id);
                }
            }
            if !awaiting.is_empty() {
                myself.send_after(RECOVERY_GRACE, || GroupMessage::RecoveryOver);
            }
        }
        Ok(GroupState {
            group: args.group,
            queue: GroupQueue::default(),
            pace: AnswerPace::default(),
            told: HashMap::new(),
            push_scheduled: false,
            awaiting,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Whether the queue may have changed (a member's report changes it
        // only if it leads to an offer, which `dispatch` says).
        let mut queue_changed = true;
        match message {
            GroupMessage::Enqueue {
                session,
                priority,
                queued_at,
                entry,
            } => {
                if state.queue.is_empty() {
                    state.pace.queue_started(crate::clock::now());
                }
                state.queue.enqueue(session, priority, queued_at, entry);
                state.awaiting.remove(&session);
            }
            GroupMessage::Reprioritise { session, priority } => {
                if let Some(waiting) = state.queue.reprioritise(session, priority) {
                    waiting.entry.step.priority = priority;
                }
            }
            GroupMessage::Leave { session } => {
                state.queue.remove(session);
                state.told.remove(&session);
                state.awaiting.remove(&session);
            }
            GroupMessage::Handover => {
                let waiting: Vec<SessionId> =
                    state.queue.iter().map(|(session, _)| session).collect();
                info!(group = %state.group.id, n_waiting = waiting.len(), "handing the queue over to the group's new node");
                for session in waiting {
                    self.shared.tell_session(session, SessionMessage::Requeue);
                }
                myself.stop(Some("placed on another node".into()));
                return Ok(());
            }
            GroupMessage::RecoveryOver => {
                if !state.awaiting.is_empty() {
                    warn!(group = %state.group.id, n_missing = state.awaiting.len(), "waiting sessions not back after the recovery grace; offering without them");
                    state.awaiting.clear();
                }
            }
            GroupMessage::Answered { session } => {
                state.awaiting.remove(&session);
                if state.queue.remove(session).is_some() {
                    state.pace.answered(crate::clock::now());
                }
                state.told.remove(&session);
            }
            GroupMessage::PushPositions => {
                state.push_scheduled = false;
                self.push_positions(state);
                return Ok(());
            }
            GroupMessage::Status { session, reply } => {
                // The caller may have given up waiting.
                let _ = reply.send(self.status(state, session));
                return Ok(());
            }
            GroupMessage::Member { profile, status } => {
                state.queue.update_member(profile, status);
                queue_changed = false;
            }
            GroupMessage::OfferLapsed { session, agent } => {
                state.queue.offer_lapsed(session, &agent);
            }
            GroupMessage::View { reply } => {
                let now = crate::clock::now();
                let view = GroupView {
                    group: state.group.id.clone(),
                    waiting: state
                        .queue
                        .iter()
                        .map(|(s, w)| (s, w.priority, w.queued_at, w.offered_to.clone()))
                        .collect(),
                    n_ready_agents: state.queue.n_ready(),
                    longest_wait_ms: state.queue.oldest_queued_at().map(|at| (now - at).max(0)),
                };
                // The caller may have given up waiting.
                let _ = reply.send(view);
                return Ok(());
            }
        }
        let n_offers = self.dispatch(state);
        if (queue_changed || n_offers > 0) && !state.push_scheduled && !state.queue.is_empty() {
            state.push_scheduled = true;
            myself.send_after(self.shared.config.queue_update, || {
                GroupMessage::PushPositions
            });
        }
        Ok(())
    }
}

impl GroupState {
    /// What a session on `channel` at `position` in this queue is told.
    fn status_at(&self, channel: &Channel, position: usize, now: Millis) -> QueueStatus {
        let threshold_secs = self.group.threshold_secs(channel);
        let interval_ms = self
            .pace
            .expected_interval_ms(now, Millis::from(threshold_secs) * 1000);
        QueueStatus {
            group: self.group.id.clone(),
            position,
            n_waiting: self.queue.len(),
            estimated_wait_secs: estimate_wait(position, interval_ms),
        }
    }
}

impl GroupActor {
    fn status(&self, state: &GroupState, session: SessionId) -> Option<QueueStatus> {
        let waiting = state.queue.get(session)?;
        let position = state.queue.position(session)?;
        Some(state.status_at(
            &waiting.entry.contact.channel,
            position,
            crate::clock::now(),
        ))
    }

    /// Publishes to each waiting session's customer where it stands, if
    /// that changed since they were last told. Ephemeral and without a
    /// session actor: a waiting session may be passivated meanwhile.
    fn push_positions(&self, state: &mut GroupState) {
        let now = crate::clock::now();
        // One pass in queue order: a place counts sessions not yet offered.
        let mut n_not_offered_ahead = 0;
        for (session, waiting) in state.queue.iter() {
            let position = n_not_offered_ahead + 1;
            if waiting.offered_to.is_none() {
                n_not_offered_ahead += 1;
            }
            // Only customers with an open socket are told (one who connects
            // later asks once after `welcome`), so a queue of a million
            // sessions opened over REST keeps no entry per session here.
            let audience = Audience::Customer(waiting.entry.contact.customer.id.clone());
            if !self.shared.hub.has_subscribers(&audience) {
                state.told.remove(&session);
                continue;
            }
            let status = state.status_at(&waiting.entry.contact.channel, position, now);
            if state.told.get(&session) == Some(&status) {
                continue;
            }
            let event = Event {
                session,
                // Not a session event: the socket gives it the seq of the
                // last event it sent (PROTOCOL.md §3).
                seq: 0,
                at: now,
                kind: EventKind::QueuePosition(status.clone()),
            };
            self.shared.hub.publish_ephemeral(&audience, &event);
            state.told.insert(session, status);
        }
    }

    /// Sends the offers the queue picks; returns how many.
    fn dispatch(&self, state: &mut GroupState) -> usize {
        if !state.awaiting.is_empty() {
            return 0;
        }
        let offers = state.queue.dispatch(crate::clock::now());
        let n_offers = offers.len();
        for offer in offers {
            let waiting = state
                .queue
                .get(offer.session)
                .expect("offered sessions are waiting");
            debug!(group = %state.group.id, session_id = %offer.session, agent_id = %offer.agent, "offering");
            // The directory lives as long as the system.
            let _ = self.shared.directory().cast(DirectoryMessage::Offer {
                agent: offer.agent,
                session: offer.session,
                channel: waiting.entry.contact.channel.clone(),
                group: state.group.id.clone(),
            });
        }
        n_offers
    }
}
