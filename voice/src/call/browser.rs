//! The browser as the agent's phone (docs/voice.md, "The browser as the
//! phone"): the agent's desktop answers a call by negotiating a WebRTC leg
//! (`webrtc::BrowserLeg`) with the call's task, which bridges it like a
//! desk phone that answered.
//!
//! | the desktop / the leg                        | the call                                                  |
//! |----------------------------------------------|-----------------------------------------------------------|
//! | an agent who chose "ring this browser" is offered the call | no INVITE to their desk phone: the desktop rings |
//! | their SDP offer ([`CallFlow::browser_offer`]) | the answer; a desk phone of theirs still ringing is cancelled |
//! | their ICE candidates                         | handed to the leg                                         |
//! | the leg connects (ICE + DTLS)                | `accept` (unless already assigned), bridged, `answered`   |
//! | it fails to connect, or the offer lapses     | `reject`: the next agent, as a declined phone             |
//! | it drops after the answer                    | `call_control(HangUp)`, as a phone's BYE                  |
//! | transfer, hang-up, the call's end            | the leg is closed                                         |
//!
//! A supervisor following the call hears it in their browser the same way
//! (monitor_browser.rs).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use engine::ids::{AgentId, SessionId};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::CallFlow;
use super::task::CallTask;
use crate::media::{AgentLeg, RtpSocket};
use crate::webrtc::{
    Answered, BrowserEnd, BrowserEvent, BrowserLeg, BrowserLegSetup, CONNECT_TIMEOUT, WebRtcError,
};

/// Why a browser's offer or candidate for a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BrowserCallError {
    /// No call with that session is up on this node.
    #[error("no live call {0} here")]
    NoSuchCall(String),
    /// The call is neither offered nor assigned to this agent.
    #[error("the call is not offered to you")]
    NotYours,
    /// Answered on the agent's desk phone already.
    #[error("the call is already answered on your desk phone")]
    AnsweredElsewhere,
    /// No candidate: no browser leg is being set up for this agent.
    #[error("no browser leg is being set up for this call")]
    NoLeg,
    /// No RTP port free.
    #[error("no rtp port free for the browser leg")]
    NoPort,
    /// A monitoring offer from someone not following the call (`monitor`
    /// first).
    #[error("you are not following this call: send `monitor` first")]
    NotFollowing,
    /// Another supervisor already hears the call on their phone or browser.
    #[error("another supervisor already hears this call")]
    SupervisorOnTheCall,
    /// The offer or candidate itself.
    #[error(transparent)]
    WebRtc(#[from] WebRtcError),
    /// The call ended meanwhile.
    #[error("the call has ended")]
    Ended,
}

impl BrowserCallError {
    /// The wire code (PROTOCOL.md §5.5).
    pub fn code(&self) -> &'static str {
        match self {
            BrowserCallError::NoSuchCall(_) => "not_found",
            BrowserCallError::NotYours => "not_your_session",
            BrowserCallError::AnsweredElsewhere | BrowserCallError::Ended => "invalid_state",
            BrowserCallError::NoLeg | BrowserCallError::NotFollowing => "invalid_state",
            BrowserCallError::SupervisorOnTheCall => "invalid_state",
            BrowserCallError::NoPort => "unavailable",
            BrowserCallError::WebRtc(_) => "invalid_message",
        }
    }
}

/// How long a browser's offer or candidate waits for the call's task.
const COMMAND_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a supervisor's monitoring offer waits for the call to hear that
/// they follow it.
const FOLLOW_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A request to a call's task from outside it.
#[derive(Debug)]
pub(crate) enum CallCommand {
    BrowserOffer {
        agent: AgentId,
        offer: String,
        reply: oneshot::Sender<Result<String, BrowserCallError>>,
    },
    BrowserCandidate {
        agent: AgentId,
        candidate: String,
        reply: oneshot::Sender<Result<(), BrowserCallError>>,
    },
    /// A supervisor following the call offers to hear it in their browser.
    MonitorOffer {
        supervisor: AgentId,
        offer: String,
        reply: oneshot::Sender<Result<String, BrowserCallError>>,
    },
}

/// The browser leg of a call, connecting or connected.
pub(super) struct BrowserCallLeg {
    pub(super) agent: AgentId,
    pub(super) leg: BrowserLeg,
    pub(super) events: mpsc::UnboundedReceiver<BrowserEvent>,
    /// The media task's socket for the leg; the media task's once connected.
    pub(super) socket: Option<RtpSocket>,
    /// Connected (ICE and DTLS up) and taken by the media task.
    pub(super) answered: bool,
}

impl CallTask {
    pub(super) async fn on_command(&mut self, command: CallCommand) {
        match command {
            CallCommand::BrowserOffer {
                agent,
                offer,
                reply,
            } => {
                let answered = self.browser_offer(agent, &offer);
                // The asker gave up waiting (its timeout): nobody to tell.
                let _ = reply.send(answered);
            }
            CallCommand::BrowserCandidate {
                agent,
                candidate,
                reply,
            } => {
                // The agent's own leg, else the one they monitor through.
                let leg = match self.browser.as_ref() {
                    Some(leg) if leg.agent == agent => Some(leg),
                    _ => self.supervisor_browser_of(&agent),
                };
                let added = match leg {
                    Some(leg) => leg
                        .leg
                        .add_remote_candidate(&candidate)
                        .map_err(BrowserCallError::from),
                    None => Err(BrowserCallError::NoLeg),
                };
                // As above: an asker that gave up needs no answer.
                let _ = reply.send(added);
            }
            CallCommand::MonitorOffer {
                supervisor,
                offer,
                reply,
            } => {
                let answered = self.monitor_offer(supervisor, &offer);
                // As above.
                let _ = reply.send(answered);
            }
        }
    }

    /// The agent's browser offers to take the call: answered here, bridged
    /// once connected.
    fn browser_offer(&mut self, agent: AgentId, offer: &str) -> Result<String, BrowserCallError> {
        if self.ended {
            return Err(BrowserCallError::Ended);
        }
        let theirs =
            self.assigned.as_ref() == Some(&agent) || self.offered.as_ref() == Some(&agent);
        if !theirs {
            return Err(BrowserCallError::NotYours);
        }
        if self.agent_leg_answered_by(&agent) {
            return Err(BrowserCallError::AnsweredElsewhere);
        }
        let (leg, answer) = self.open_browser_leg(agent, offer)?;
        // The browser takes it: a desk phone of theirs still ringing stops.
        if self.agent_leg_ringing_for(&leg.agent) {
            self.drop_agent_leg();
        }
        // A leg left from an earlier offer (a reload) goes.
        self.drop_browser_leg();
        info!(session_id = %self.session(), agent_id = %leg.agent, "the agent's browser takes the call: connecting");
        self.browser = Some(leg);
        Ok(answer)
    }

    /// A WebRTC leg for `agent`'s browser answering its `offer` in the
    /// call's codec, on two ports of the range (the browser's, and the
    /// media task's end of the loopback hop); the SDP answer.
    pub(super) fn open_browser_leg(
        &mut self,
        agent: AgentId,
        offer: &str,
    ) -> Result<(BrowserCallLeg, String), BrowserCallError> {
        let media_socket = self
            .inner
            .ports
            .allocate()
            .map_err(|_| BrowserCallError::NoPort)?;
        let browser_socket = self
            .inner
            .ports
            .allocate()
            .map_err(|_| BrowserCallError::NoPort)?;
        let advertised = SocketAddr::new(self.inner.public_ip, browser_socket.local_addr().port());
        let media_peer = loopback_if_unspecified(media_socket.local_addr());
        let Answered {
            leg,
            answer,
            events,
        } = BrowserLeg::answer(
            offer,
            self.live.answer.format,
            BrowserLegSetup {
                browser: browser_socket,
                advertised,
                media_peer,
                connect_timeout: CONNECT_TIMEOUT,
            },
        )?;
        let leg = BrowserCallLeg {
            agent,
            leg,
            events,
            socket: Some(media_socket),
            answered: false,
        };
        Ok((leg, answer))
    }

    pub(super) async fn on_browser_event(&mut self, event: Option<BrowserEvent>) {
        match event {
            Some(BrowserEvent::Connected) => self.browser_connected().await,
            Some(BrowserEvent::Ended(end)) => self.browser_leg_ended(end).await,
            None => self.drop_browser_leg(),
        }
    }

    /// ICE and DTLS are up: the browser's answer is the agent's accept, and
    /// the legs are bridged (as a desk phone's 200).
    async fn browser_connected(&mut self) {
        let session = self.session();
        let Some(leg) = self.browser.as_ref() else {
            return;
        };
        let agent = leg.agent.clone();
        if !self.answer_is_accept(&agent).await {
            self.drop_browser_leg();
            return;
        }
        let Some(leg) = self.browser.as_mut() else {
            return;
        };
        leg.answered = true;
        self.ever_answered = true;
        let media_addr = leg.leg.media_addr();
        let socket = leg.socket.take();
        self.answer_early_media_caller();
        if let Some(socket) = socket {
            self.media_result(self.live.media.bridge(AgentLeg {
                socket,
                remote: Some(media_addr),
            }));
            if self.held {
                self.media_result(self.live.media.hold());
            }
        }
        info!(session_id = %session, agent_id = %agent, "call answered in the browser");
        if !self.record_answered(agent).await {
            self.drop_browser_leg();
        }
    }

    async fn browser_leg_ended(&mut self, end: BrowserEnd) {
        let Some(leg) = self.browser.take() else {
            return;
        };
        let session = self.session();
        let agent = leg.agent;
        if leg.answered {
            self.media_result(self.live.media.release_agent());
            if self.ended {
                return;
            }
            info!(session_id = %session, agent_id = %agent, ?end, "the browser's leg dropped: the agent's end of the call");
            self.agent_hung_up(&agent).await;
            return;
        }
        match end {
            BrowserEnd::Closed => {}
            _ if self.assigned.as_ref() == Some(&agent) => {
                warn!(session_id = %session, agent_id = %agent, ?end, "the assigned agent's browser did not connect: the caller waits on hold");
            }
            _ => {
                info!(session_id = %session, agent_id = %agent, ?end, "the agent's browser did not connect: next agent");
                if let Err(error) = self.switchboard().reject(&agent, session).await {
                    debug!(session_id = %session, %error, "reject not taken");
                }
            }
        }
    }

    /// Closes the browser leg without waiting (its task says goodbye to the
    /// browser: RTCP BYE, DTLS close_notify).
    pub(super) fn drop_browser_leg(&mut self) {
        let Some(leg) = self.browser.take() else {
            return;
        };
        if leg.answered {
            self.media_result(self.live.media.release_agent());
        }
        drop(leg.socket);
        tokio::spawn(leg.leg.close());
    }
}

impl BrowserCallLeg {
    /// The leg is `agent`'s.
    pub(super) fn is_for(&self, agent: &AgentId) -> bool {
        &self.agent == agent
    }

    /// ICE and DTLS came up and the call is bridged to it.
    pub(super) fn is_answered(&self) -> bool {
        self.answered
    }
}

impl CallTask {
    /// The browser leg is `agent`'s and not connected yet (an offer lapsed).
    pub(super) fn browser_ringing_for(&self, agent: &AgentId) -> bool {
        self.browser
            .as_ref()
            .is_some_and(|leg| &leg.agent == agent && !leg.answered)
    }
}

/// The browser leg's next event; pending while there is none.
pub(super) async fn next_browser_event(leg: &mut Option<BrowserCallLeg>) -> Option<BrowserEvent> {
    match leg {
        Some(leg) => leg.events.recv().await,
        None => std::future::pending().await,
    }
}

/// A socket bound on every address is reached on loopback.
fn loopback_if_unspecified(address: SocketAddr) -> SocketAddr {
    match address.ip().is_unspecified() {
        true => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), address.port()),
        false => address,
    }
}

impl CallFlow {
    /// `agent`'s browser offers to take call `session` (its SDP `offer`);
    /// the SDP answer to send back. The leg connects on its own; the call
    /// is the agent's once it does.
    pub async fn browser_offer(
        &self,
        agent: &AgentId,
        session: SessionId,
        offer: String,
    ) -> Result<String, BrowserCallError> {
        self.ask(session, |reply| CallCommand::BrowserOffer {
            agent: agent.clone(),
            offer,
            reply,
        })
        .await
    }

    /// An ICE candidate from `agent`'s browser for call `session`.
    pub async fn browser_candidate(
        &self,
        agent: &AgentId,
        session: SessionId,
        candidate: String,
    ) -> Result<(), BrowserCallError> {
        self.ask(session, |reply| CallCommand::BrowserCandidate {
            agent: agent.clone(),
            candidate,
            reply,
        })
        .await
    }

    /// `supervisor`'s browser offers to hear call `session`, which they
    /// follow (listen, whisper or barge); the SDP answer. The session's
    /// `monitored` event may reach the call a moment after the desktop's
    /// offer: an offer from someone not (yet) following is tried again for
    /// up to [`FOLLOW_WAIT`].
    pub async fn monitor_offer(
        &self,
        supervisor: &AgentId,
        session: SessionId,
        offer: String,
    ) -> Result<String, BrowserCallError> {
        let until = tokio::time::Instant::now() + FOLLOW_WAIT;
        loop {
            let answered = self
                .ask(session, |reply| CallCommand::MonitorOffer {
                    supervisor: supervisor.clone(),
                    offer: offer.clone(),
                    reply,
                })
                .await;
            match answered {
                Err(BrowserCallError::NotFollowing) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                answered => return answered,
            }
        }
    }

    /// Sends call `session`'s task the command `make` builds around a
    /// reply channel, and waits at most [`COMMAND_WAIT`] for the reply: a
    /// call's task busy ending the call must not hold the socket.
    async fn ask<T>(
        &self,
        session: SessionId,
        make: impl FnOnce(oneshot::Sender<Result<T, BrowserCallError>>) -> CallCommand,
    ) -> Result<T, BrowserCallError> {
        let (reply, answer) = oneshot::channel();
        let call = self
            .live_calls()
            .get(session)
            .ok_or_else(|| BrowserCallError::NoSuchCall(session.to_string()))?;
        call.commands
            .send(make(reply))
            .map_err(|_| BrowserCallError::Ended)?;
        match tokio::time::timeout(COMMAND_WAIT, answer).await {
            Ok(answer) => answer.map_err(|_| BrowserCallError::Ended)?,
            Err(_) => Err(BrowserCallError::Ended),
        }
    }
}

/// Which agents chose "ring this browser", and on which desktop
/// connection: their desk phone is not rung, their desktop rings instead.
#[derive(Debug, Default)]
pub struct Softphones {
    chosen: std::sync::Mutex<std::collections::HashMap<AgentId, u64>>,
}

impl Softphones {
    /// `agent`'s desktop connection `connection` is their phone from now on.
    pub fn choose_browser(&self, agent: &AgentId, connection: u64) {
        self.lock().insert(agent.clone(), connection);
    }

    /// `agent` goes back to their desk phone — if `connection` is the one
    /// that chose the browser (a later desktop's choice stands).
    pub fn release(&self, agent: &AgentId, connection: u64) {
        let mut chosen = self.lock();
        if chosen.get(agent) == Some(&connection) {
            chosen.remove(agent);
        }
    }

    /// Whether `agent` takes calls in their browser.
    pub fn prefers_browser(&self, agent: &AgentId) -> bool {
        self.lock().contains_key(agent)
    }

    /// Whether `connection` is the desktop connection `agent`'s calls ring.
    pub fn holds(&self, agent: &AgentId, connection: u64) -> bool {
        self.lock().get(agent) == Some(&connection)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<AgentId, u64>> {
        self.chosen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
