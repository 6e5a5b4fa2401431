//! The Agent actor: presence, capacity and offers of one agent.
//!
//! The state machine is [`engine::presence::AgentState`]; this actor adds the
//! offer timers and tells the agent's groups whenever availability changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::agent::Agent;
use engine::channel::Channel;
use engine::ids::{AgentId, GroupId, SessionId};

use engine::presence::{AgentEffect, AgentEvent, AgentState, Presence, PresenceRequest};
use engine::queue::MemberStatus;
use engine::session::SessionState;
use engine::sla::AgentActivity;
use engine::sla::report::{AgentLogEntry, AgentLogKind};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster_derive::RactorMessage;
use serde::{Deserialize, Serialize};
use store::WriteOp;
use tracing::{debug, info, warn};

use crate::error::ApiError;
use crate::group::GroupMessage;
use crate::session::SessionMessage;
use crate::shared::{SessionRef, Shared, millis};
use crate::store_writer::StoreWriterMessage;

/// The away reason of an agent whose actor moved to another node.
pub const MOVED: &str = "moved to another cluster node";

/// How long an accept waits for the session to take the assignment.
const ACCEPT_PATIENCE: Duration = Duration::from_secs(10);

/// Messages of an Agent actor.
#[derive(RactorMessage)]
pub enum AgentMessage {
    /// The agent changes presence.
    SetPresence {
        /// What they ask for.
        request: PresenceRequest,
        /// The resulting presence.
        reply: RpcReplyPort<Result<Presence, ApiError>>,
    },
    /// A group offers a session.
    Offer {
        /// The session.
        session: SessionId,
        /// Its channel.
        channel: Channel,
        /// The offering group.
        group: GroupId,
        /// The session's actor, or its id when it runs on another node.
        session_ref: SessionRef,
    },
    /// The offer deadline passed.
    OfferTimeout {
        /// The session.
        session: SessionId,
    },
    /// The agent accepts an offer.
    Accept {
        /// The session.
        session: SessionId,
        /// Ok once the assignment is durable.
        reply: RpcReplyPort<Result<(), ApiError>>,
    },
    /// The agent rejects an offer.
    Reject {
        /// The session.
        session: SessionId,
        /// Ok once done.
        reply: RpcReplyPort<Result<(), ApiError>>,
    },
    /// The session no longer wants the offer (customer left).
    Withdraw {
        /// The session.
        session: SessionId,
    },
    /// A held session ended or moved away.
    Release {
        /// The session.
        session: SessionId,
    },
    /// Wrap-up may be over.
    WrapUpTimer,
    /// A group (re)started and wants to know the agent's availability.
    ReportStatus,
    /// Writing the agent's activity to their log failed: write it again.
    RelogActivity,
    /// The agent is placed on another node now, and this one is alive: its
    /// presence goes to the agent's new actor ([`AgentMessage::Resume`]),
    /// then this actor stops.
    HandOver,
    /// The presence the agent's actor on the node before had (a hand-over).
    Resume {
        /// The presence, as the agent would ask for it.
        request: PresenceRequest,
    },
    /// The agent as supervisors see it.
    View {
        /// Reply port.
        reply: RpcReplyPort<AgentView>,
    },
}

/// An agent's live state, for supervisors and tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentView {
    /// Presence.
    pub presence: Presence,
    /// Sessions held.
    pub sessions: Vec<SessionId>,
    /// Sessions offered.
    pub offers: Vec<SessionId>,
}

/// The Agent actor; config only.
pub struct AgentActor {
    /// Shared context.
    pub shared: Arc<Shared>,
}

/// Arguments of an Agent actor.
pub struct AgentArgs {
    /// The profile.
    pub profile: Arc<Agent>,
    /// Started after a failure: pick up the sessions the agent holds.
    pub recovering: bool,
    /// Started because the cluster placed the agent on this node now (its
    /// node left, or another joined): as `recovering`, but the agent comes
    /// back away ([`MOVED`]) rather than available, since nothing here
    /// knows what their presence was.
    pub moved: bool,
    /// At a cold start, the sessions the store says this agent holds (one
    /// scan by the supervisor for all agents). The agent comes back away
    /// ("server restarted") if it holds any, so the desktop finds them.
    pub held: Vec<(SessionId, Channel)>,
}

/// The Agent actor's state.
pub struct AgentActorState {
    profile: Arc<Agent>,
    state: AgentState,
    /// Session actors of pending offers.
    offered: HashMap<SessionId, SessionRef>,
    /// The activity last written to the agent's log (the reports' time in
    /// each state); `None` before the first.
    logged: Option<AgentActivity>,
    /// Stopped because the agent moved to another node, whose actor logs
    /// from then on.
    handed_over: bool,
}

impl Actor for AgentActor {
    type Msg = AgentMessage;
    type State = AgentActorState;
    type Arguments = AgentArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AgentArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Before anything can offer it a session: its report to its groups
        // (in `post_start`) is what makes them offer. Messages sent to it
        // meanwhile wait in its mailbox.
        self.shared
            .agent_refs
            .register(args.profile.id.clone(), myself);
        let mut state =
            AgentState::new(args.profile.id.clone(), millis(self.shared.config.wrap_up));
        if args.recovering {
            for session in self.shared.store.open_sessions().await? {
                let held = matches!(session.state, SessionState::Assigned | SessionState::WrapUp);
                if held && session.agent.as_ref() == Some(&args.profile.id) {
                    state.load.add(&session.channel);
                    state.sessions.push((session.id, session.channel.clone()));
                }
            }
            state.presence = if args.moved {
                Presence::Away {
                    reason: MOVED.into(),
                }
            } else {
                Presence::Available
            };
            state.idle_since = crate::clock::now();
            info!(agent_id = %args.profile.id, n_sessions = state.sessions.len(), "agent recovered");
        } else if !args.held.is_empty() {
            for (session, channel) in args.held {
                state.load.add(&channel);
                state.sessions.push((session, channel));
            }
            state.presence = Presence::Away {
                reason: "server restarted".into(),
            };
            info!(agent_id = %args.profile.id, n_sessions = state.sessions.len(), "agent holds sessions from before the restart");
        }
        Ok(AgentActorState {
            profile: args.profile,
            state,
            offered: HashMap::new(),
            logged: None,
            handed_over: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.report(state);
        self.log_activity(&myself, state);
        Ok(())
    }

    /// The agent's actor stops (the node shuts down, or the supervisor
    /// restarts it): from now on nobody here serves them, so their log says
    /// offline — unless they moved to another node, which logs for them.
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !state.handed_over && state.logged != Some(AgentActivity::Offline) {
            self.write_activity(None, &state.profile.id, AgentActivity::Offline);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let now = crate::clock::now();
        match message {
            AgentMessage::SetPresence { request, reply } => {
                let result = self.apply(&myself, state, AgentEvent::Request(request));
                // The caller may have given up waiting.
                let _ = reply.send(result.map(|()| state.state.presence.clone()));
            }
            AgentMessage::Offer {
                session,
                channel,
                group,
                session_ref,
            } => {
                match self.apply(&myself, state, AgentEvent::Offer { session, channel }) {
                    Ok(()) => {
                        let timeout = self.shared.config.offer_timeout;
                        state.offered.insert(session, session_ref.clone());
                        myself.send_after(timeout, move || AgentMessage::OfferTimeout { session });
                        // If the session stopped meanwhile its timer here lapses the offer.
                        session_ref.cast(
                            &self.shared,
                            SessionMessage::Offered {
                                agent: state.profile.id.clone(),
                                deadline: now + millis(timeout),
                                group: group.clone(),
                            },
                        );
                    }
                    Err(err) => {
                        debug!(agent_id = %state.profile.id, session_id = %session, error = %err, "offer refused");
                        self.tell_group(
                            &group,
                            GroupMessage::OfferLapsed {
                                session,
                                agent: state.profile.id.clone(),
                            },
                        );
                        self.report_to(state, &group);
                    }
                }
            }
            AgentMessage::OfferTimeout { session } => {
                if state.offered.contains_key(&session) {
                    info!(agent_id = %state.profile.id, session_id = %session, "offer timed out; agent not responding");
                    // Not offered any more (accepted or withdrawn) is the usual case: nothing to do.
                    let _ = self.apply(&myself, state, AgentEvent::OfferTimedOut { session });
                }
            }
            AgentMessage::Accept { session, reply } => {
                let result = self.accept(&myself, state, session).await;
                // The caller may have given up waiting.
                let _ = reply.send(result);
            }
            AgentMessage::Reject { session, reply } => {
                let session_ref = state.offered.get(&session).cloned();
                let result = self.apply(&myself, state, AgentEvent::Reject { session });
                if let (Ok(()), Some(session_ref)) = (&result, session_ref) {
                    // A stopped session has nothing to lapse.
                    session_ref.cast(
                        &self.shared,
                        SessionMessage::OfferLapsed {
                            agent: state.profile.id.clone(),
                        },
                    );
                }
                // The caller may have given up waiting.
                let _ = reply.send(result);
            }
            AgentMessage::Withdraw { session } => {
                // Withdrawing an offer that already ended is fine.
                let _ = self.apply(&myself, state, AgentEvent::OfferWithdrawn { session });
            }
            AgentMessage::Release { session } => {
                // Releasing twice (a retried close) is fine.
                let _ = self.apply(&myself, state, AgentEvent::Release { session });
            }
            AgentMessage::WrapUpTimer => {
                // A stale timer is refused by the state machine without effect.
                let _ = self.apply(&myself, state, AgentEvent::WrapUpTimer);
            }
            AgentMessage::ReportStatus => self.report(state),
            AgentMessage::RelogActivity => {
                state.logged = None;
                self.log_activity(&myself, state);
            }
            AgentMessage::HandOver => {
                let request = match &state.state.presence {
                    Presence::Available => Some(PresenceRequest::Available),
                    Presence::Away { reason } => Some(PresenceRequest::Away {
                        reason: reason.clone(),
                    }),
                    // Wrap-up, not responding, offline: the new actor's
                    // away ("moved") asks the agent to come back themselves.
                    _ => None,
                };
                if let Some(request) = request {
                    self.shared
                        .tell_agent(&state.profile.id, AgentMessage::Resume { request });
                }
                state.handed_over = true;
                myself.stop(Some("placed on another node".into()));
            }
            AgentMessage::Resume { request } => {
                if let Err(err) = self.apply(&myself, state, AgentEvent::Request(request)) {
                    debug!(agent_id = %state.profile.id, error = %err, "presence handed over not taken");
                }
            }
            AgentMessage::View { reply } => {
                let view = AgentView {
                    presence: state.state.presence.clone(),
                    sessions: state.state.sessions.iter().map(|(s, _)| *s).collect(),
                    offers: state.state.offers.iter().map(|(s, _)| *s).collect(),
                };
                // The caller may have given up waiting.
                let _ = reply.send(view);
            }
        }
        Ok(())
    }
}

impl AgentActor {
    /// Runs the state machine and carries out its effects.
    fn apply(
        &self,
        myself: &ActorRef<AgentMessage>,
        state: &mut AgentActorState,
        event: AgentEvent,
    ) -> Result<(), ApiError> {
        let effects = state
            .state
            .apply(&state.profile, event, crate::clock::now())?;
        for effect in effects {
            match effect {
                AgentEffect::AvailabilityChanged => self.report(state),
                AgentEffect::StartWrapUpTimer(until) => {
                    let delay = Duration::from_millis((until - crate::clock::now()).max(0) as u64);
                    myself.send_after(delay, || AgentMessage::WrapUpTimer);
                }
                AgentEffect::OfferLapsed(session) => {
                    if let Some(session_ref) = state.offered.remove(&session) {
                        // A stopped session has nothing to lapse.
                        session_ref.cast(
                            &self.shared,
                            SessionMessage::OfferLapsed {
                                agent: state.profile.id.clone(),
                            },
                        );
                    }
                }
            }
        }
        state
            .offered
            .retain(|session, _| state.state.offers.iter().any(|(s, _)| s == session));
        self.log_activity(myself, state);
        Ok(())
    }

    /// Writes the agent's activity to their log when it changed (on or off
    /// contacts, presence): what the agent report's time in each state and
    /// occupancy read. Not waited for; a failed write is logged and tried
    /// again a second later with the activity then (the stretch in between
    /// counts as the activity before it).
    fn log_activity(&self, myself: &ActorRef<AgentMessage>, state: &mut AgentActorState) {
        let activity = AgentActivity::of(&state.state.presence, !state.state.sessions.is_empty());
        if state.logged == Some(activity) {
            return;
        }
        state.logged = Some(activity);
        self.write_activity(Some(myself.clone()), &state.profile.id, activity);
    }

    /// Appends `activity` from now to the agent's log; on failure asks
    /// `retry` (the agent's actor, when it is still there) to write again.
    fn write_activity(
        &self,
        retry: Option<ActorRef<AgentMessage>>,
        agent: &AgentId,
        activity: AgentActivity,
    ) {
        let now = crate::clock::now();
        let entry = AgentLogEntry {
            agent: agent.clone(),
            at: now,
            id: self.shared.audit_id(now),
            kind: AgentLogKind::Activity { activity },
        };
        let agent = agent.clone();
        let done: crate::store_writer::Completion = Box::new(move |result| {
            if let Err(err) = result {
                warn!(agent_id = %agent, ?activity, error = %err, "agent activity not logged");
                if let Some(actor) = retry {
                    actor.send_after(Duration::from_secs(1), || AgentMessage::RelogActivity);
                }
            }
        });
        // A writer that is gone is a node shutting down: nothing to log then.
        let _ = self.shared.writer.cast(StoreWriterMessage::Write {
            ops: vec![WriteOp::PutAgentLog(entry)],
            done,
        });
    }

    async fn accept(
        &self,
        myself: &ActorRef<AgentMessage>,
        state: &mut AgentActorState,
        session: SessionId,
    ) -> Result<(), ApiError> {
        let session_ref = state.offered.get(&session).cloned();
        self.apply(myself, state, AgentEvent::Accept { session })?;
        let Some(session_ref) = session_ref else {
            return Err(ApiError::Unavailable(format!("session {session}")));
        };
        let agent = state.profile.id.clone();
        let display_name = state.profile.display_name.clone();
        let result = match session_ref {
            SessionRef::Local(session_ref) => {
                let outcome = session_ref
                    .call(
                        |reply| SessionMessage::Accept {
                            agent,
                            display_name,
                            reply,
                        },
                        Some(ACCEPT_PATIENCE),
                    )
                    .await;
                match outcome {
                    Ok(ractor::rpc::CallResult::Success(result)) => result,
                    Ok(_) => Err(ApiError::Unavailable(format!("session {session}"))),
                    Err(err) => Err(ApiError::from(err)),
                }
            }
            SessionRef::Elsewhere(session) => self
                .shared
                .call_session(
                    session,
                    |reply| SessionMessage::Accept {
                        agent,
                        display_name,
                        reply,
                    },
                    ACCEPT_PATIENCE,
                )
                .await
                .and_then(|result| result),
        };
        if result.is_err() {
            // The session did not take the assignment: give the capacity back.
            let _ = self.apply(myself, state, AgentEvent::Release { session });
        }
        result
    }

    fn status(&self, state: &AgentActorState) -> MemberStatus {
        MemberStatus {
            available: state.state.presence == Presence::Available,
            load: state.state.load.clone(),
            idle_since: state.state.idle_since,
        }
    }

    /// Tells every group of the agent its availability.
    fn report(&self, state: &AgentActorState) {
        for group in &state.profile.groups {
            self.report_to(state, group);
        }
    }

    fn report_to(&self, state: &AgentActorState, group: &GroupId) {
        self.tell_group(
            group,
            GroupMessage::Member {
                profile: state.profile.clone(),
                status: self.status(state),
            },
        );
    }

    fn tell_group(&self, group: &GroupId, message: GroupMessage) {
        self.shared.tell_group(group, message);
    }
}
