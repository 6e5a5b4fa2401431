//! Calls to actors on other nodes: a message with a reply port is split
//! into its data ([`SessionCall`], [`AgentCall`], [`GroupCall`]) and a
//! [`Replier`] that fills the port when the answer comes back; the node
//! that runs the actor joins the data to a fresh port and sends the
//! answer back as JSON. An answer of `Result<_, ApiError>` crosses with its
//! error as [`RemoteError`]; a failure of the crossing itself (the node is
//! gone, no answer in time) reaches the caller as that error, or, where the
//! reply has no room for an error, as a reply that never comes.

use std::future::Future;

use engine::channel::Channel;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::presence::{Presence, PresenceRequest};
use engine::routing::{RuleSet, StepParts};
use engine::session::{ReplyRoute, Session};
use ractor::RpcReplyPort;
use ractor::concurrency::oneshot;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RemoteError;
use crate::agent::{AgentMessage, AgentView};
use crate::error::ApiError;
use crate::event::{CallControl, CallEnd, CallEvent, DeliveryReport};
use crate::group::{GroupMessage, GroupView, QueueStatus};
use crate::session::{Ack, SessionMessage, Typist};

/// Fills a caller's reply port with an answer from another node.
pub type Replier = Box<dyn FnOnce(Result<Value, ApiError>) + Send>;

/// A message with a reply for a session on another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SessionCall {
    /// See [`SessionMessage::CustomerMessage`].
    CustomerMessage {
        /// The text.
        body: String,
        /// The sender's id for de-duplication.
        client_message_id: Option<String>,
        /// Where it came from.
        channel: Channel,
        /// The channel account it came through.
        route: Option<ReplyRoute>,
    },
    /// See [`SessionMessage::AgentMessage`].
    AgentMessage {
        /// The agent.
        agent: AgentId,
        /// The text.
        body: String,
        /// The sender's id for de-duplication.
        client_message_id: Option<String>,
    },
    /// See [`SessionMessage::Accept`].
    Accept {
        /// The agent.
        agent: AgentId,
        /// Their name, for the customer.
        display_name: String,
    },
    /// See [`SessionMessage::Transfer`].
    Transfer {
        /// The agent.
        agent: AgentId,
        /// Where to.
        step: StepParts,
    },
    /// See [`SessionMessage::WrapUp`].
    WrapUp {
        /// The agent.
        agent: AgentId,
        /// Their notes.
        summary: Option<String>,
    },
    /// See [`SessionMessage::Close`].
    Close {
        /// The agent, or `None` for the customer.
        agent: Option<AgentId>,
        /// Notes.
        summary: Option<String>,
    },
    /// See [`SessionMessage::Typing`].
    Typing {
        /// Who types.
        typist: Typist,
    },
    /// See [`SessionMessage::Rate`].
    Rate {
        /// The customer.
        customer: CustomerId,
        /// 1 to 5.
        score: u8,
        /// Their words.
        comment: Option<String>,
    },
    /// See [`SessionMessage::Snapshot`].
    Snapshot,
    /// See [`SessionMessage::ResponseStatus`].
    ResponseStatus,
    /// See [`SessionMessage::CallEvent`].
    CallEvent {
        /// What happened.
        event: CallEvent,
    },
    /// See [`SessionMessage::EndCall`].
    EndCall {
        /// Who ended it.
        by: CallEnd,
    },
    /// See [`SessionMessage::AgentCall`].
    AgentCall {
        /// The agent.
        agent: AgentId,
        /// Hold, resume, hang up.
        control: CallControl,
    },
    /// See [`SessionMessage::Monitor`].
    Monitor {
        /// The supervisor.
        by: AgentId,
        /// How; none to stop.
        mode: Option<engine::supervision::MonitorMode>,
        /// The group the caller saw the session in.
        seen_in: Option<GroupId>,
    },
    /// See [`SessionMessage::Whisper`].
    Whisper {
        /// The supervisor.
        by: AgentId,
        /// Text.
        body: String,
        /// Their id for de-duplication.
        client_message_id: Option<String>,
    },
    /// See [`SessionMessage::Steer`].
    Steer {
        /// Who.
        by: engine::supervision::Actor,
        /// What.
        request: crate::session::SteerRequest,
        /// Why.
        reason: String,
        /// The group the caller saw the session in.
        seen_in: GroupId,
    },
    /// See [`SessionMessage::Delivery`].
    Delivery {
        /// What became of a reply.
        report: DeliveryReport,
    },
}

/// A message with a reply for an agent on another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AgentCall {
    /// See [`AgentMessage::SetPresence`].
    SetPresence {
        /// What the agent asks for.
        request: PresenceRequest,
    },
    /// See [`AgentMessage::Accept`].
    Accept {
        /// The session.
        session: SessionId,
    },
    /// See [`AgentMessage::Reject`].
    Reject {
        /// The session.
        session: SessionId,
    },
    /// See [`AgentMessage::View`].
    View,
}

/// A message with a reply for a skill group on another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupCall {
    /// See [`GroupMessage::Status`].
    Status {
        /// The session.
        session: SessionId,
    },
    /// See [`GroupMessage::View`].
    View,
}

/// A reply as it crosses between nodes.
pub trait Answer: Sized + Send + 'static {
    /// Its form on the wire.
    type Wire: Serialize + DeserializeOwned;
    /// To the wire.
    fn to_wire(self) -> Self::Wire;
    /// From the wire.
    fn from_wire(wire: Self::Wire) -> Self;
    /// The reply that says the crossing failed, where the reply has room
    /// for an error.
    fn failed(err: ApiError) -> Option<Self>;
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Answer for Result<T, ApiError> {
    type Wire = Result<T, RemoteError>;
    fn to_wire(self) -> Self::Wire {
        self.map_err(|err| RemoteError::from(&err))
    }
    fn from_wire(wire: Self::Wire) -> Self {
        wire.map_err(ApiError::from_remote)
    }
    fn failed(err: ApiError) -> Option<Self> {
        Some(Err(err))
    }
}

macro_rules! plain_answer {
    ($($ty:ty),*) => {$(
        impl Answer for $ty {
            type Wire = $ty;
            fn to_wire(self) -> Self::Wire {
                self
            }
            fn from_wire(wire: Self::Wire) -> Self {
                wire
            }
            fn failed(_: ApiError) -> Option<Self> {
                None
            }
        }
    )*};
}

plain_answer!(
    Session,
    AgentView,
    GroupView,
    Option<QueueStatus>,
    Option<(engine::routing::ResponseKind, engine::Millis)>
);

/// The replier that fills `port` with an answer of type `T`.
fn replier<T: Answer>(port: RpcReplyPort<T>) -> Replier {
    Box::new(move |answer: Result<Value, ApiError>| {
        let answer = answer.and_then(|value| {
            serde_json::from_value::<T::Wire>(value)
                .map(T::from_wire)
                .map_err(|err| {
                    ApiError::Unavailable(format!("an unreadable answer from another node ({err})"))
                })
        });
        let reply = match answer {
            Ok(reply) => Some(reply),
            Err(err) => T::failed(err),
        };
        // The caller may have given up waiting; a reply without room for
        // an error is dropped, which the caller sees as an actor that
        // stopped before answering.
        if let Some(reply) = reply {
            let _ = port.send(reply);
        }
    })
}

/// A fresh port for the actor here, and the answer it will give, as JSON.
fn port<T: Answer>() -> (
    RpcReplyPort<T>,
    impl Future<Output = Result<Value, ApiError>> + Send,
) {
    let (sender, receiver) = oneshot();
    let answer = async move {
        let reply: T = receiver
            .await
            .map_err(|_| ApiError::Unavailable("the actor stopped before answering".into()))?;
        serde_json::to_value(reply.to_wire()).map_err(|err| {
            ApiError::Unavailable(format!("an answer that does not serialise ({err})"))
        })
    };
    (sender.into(), answer)
}

/// The boxed answer of a joined call.
pub type Answering = std::pin::Pin<Box<dyn Future<Output = Result<Value, ApiError>> + Send>>;

impl SessionCall {
    /// The call `message` makes, with the replier of its port; `None` when
    /// it has no reply (a cast), which is then dropped.
    pub fn split(message: SessionMessage) -> Option<(SessionCall, Replier)> {
        Some(match message {
            SessionMessage::CustomerMessage {
                body,
                client_message_id,
                channel,
                route,
                reply,
            } => (
                SessionCall::CustomerMessage {
                    body,
                    client_message_id,
                    channel,
                    route,
                },
                replier::<Result<Ack, ApiError>>(reply),
            ),
            SessionMessage::AgentMessage {
                agent,
                body,
                client_message_id,
                reply,
            } => (
                SessionCall::AgentMessage {
                    agent,
                    body,
                    client_message_id,
                },
                replier::<Result<Ack, ApiError>>(reply),
            ),
            SessionMessage::Accept {
                agent,
                display_name,
                reply,
            } => (
                SessionCall::Accept {
                    agent,
                    display_name,
                },
                replier::<Result<(), ApiError>>(reply),
            ),
            SessionMessage::Transfer { agent, step, reply } => (
                SessionCall::Transfer {
                    agent,
                    step: step.parts(),
                },
                replier::<Result<(), ApiError>>(reply),
            ),
            SessionMessage::WrapUp {
                agent,
                summary,
                reply,
            } => (
                SessionCall::WrapUp { agent, summary },
                replier::<Result<(), ApiError>>(reply),
            ),
            SessionMessage::Close {
                agent,
                summary,
                reply,
            } => (
                SessionCall::Close { agent, summary },
                replier::<Result<(), ApiError>>(reply),
            ),
            SessionMessage::Typing { typist, reply } => (
                SessionCall::Typing { typist },
                replier::<Result<(), ApiError>>(reply),
            ),
            SessionMessage::Rate {
                customer,
                score,
                comment,
                reply,
            } => (
                SessionCall::Rate {
                    customer,
                    score,
                    comment,
                },
                replier::<Result<Ack, ApiError>>(reply),
            ),
            SessionMessage::Snapshot { reply } => {
                (SessionCall::Snapshot, replier::<Session>(reply))
            }
            SessionMessage::ResponseStatus { reply } => (
                SessionCall::ResponseStatus,
                replier::<Option<(engine::routing::ResponseKind, engine::Millis)>>(reply),
            ),
            SessionMessage::CallEvent { event, reply } => (
                SessionCall::CallEvent { event },
                replier::<Result<Ack, ApiError>>(reply),
            ),
            SessionMessage::EndCall { by, reply } => (
                SessionCall::EndCall { by },
                replier::<Result<Ack, ApiError>>(reply),
            ),
            SessionMessage::AgentCall {
                agent,
                control,
                reply,
            } => (
                SessionCall::AgentCall { agent, control },
                replier::<Result<Ack, ApiError>>(reply),
            ),
            SessionMessage::Monitor {
                by,
                mode,
                seen_in,
                reply,
            } => (
                SessionCall::Monitor { by, mode, seen_in },
                replier::<Result<Ack, ApiError>>(reply),
            ),
            SessionMessage::Whisper {
                by,
                body,
                client_message_id,
                reply,
            } => (
                SessionCall::Whisper {
                    by,
                    body,
                    client_message_id,
                },
                replier::<Result<Ack, ApiError>>(reply),
            ),
            SessionMessage::Steer {
                by,
                request,
                reason,
                seen_in,
                reply,
            } => (
                SessionCall::Steer {
                    by,
                    request,
                    reason,
                    seen_in,
                },
                replier::<Result<Ack, ApiError>>(reply),
            ),
            SessionMessage::Delivery { report, reply } => (
                SessionCall::Delivery { report },
                replier::<Result<(), ApiError>>(reply),
            ),
            _ => return None,
        })
    }

    /// The message for the session here, and the answer it will give.
    /// `rules` compile a transfer's step.
    pub fn join(self, rules: &RuleSet) -> Result<(SessionMessage, Answering), ApiError> {
        Ok(match self {
            SessionCall::CustomerMessage {
                body,
                client_message_id,
                channel,
                route,
            } => {
                let (reply, answer) = port::<Result<Ack, ApiError>>();
                let message = SessionMessage::CustomerMessage {
                    body,
                    client_message_id,
                    channel,
                    route,
                    reply,
                };
                (message, Box::pin(answer))
            }
            SessionCall::AgentMessage {
                agent,
                body,
                client_message_id,
            } => {
                let (reply, answer) = port::<Result<Ack, ApiError>>();
                let message = SessionMessage::AgentMessage {
                    agent,
                    body,
                    client_message_id,
                    reply,
                };
                (message, Box::pin(answer))
            }
            SessionCall::Accept {
                agent,
                display_name,
            } => {
                let (reply, answer) = port::<Result<(), ApiError>>();
                let message = SessionMessage::Accept {
                    agent,
                    display_name,
                    reply,
                };
                (message, Box::pin(answer))
            }
            SessionCall::Transfer { agent, step } => {
                let step =
                    rules
                        .step_from_parts(step)
                        .map_err(|reason| engine::EngineError::Invalid {
                            field: "step",
                            reason,
                        })?;
                let (reply, answer) = port::<Result<(), ApiError>>();
                let message = SessionMessage::Transfer { agent, step, reply };
                (message, Box::pin(answer))
            }
            SessionCall::WrapUp { agent, summary } => {
                let (reply, answer) = port::<Result<(), ApiError>>();
                let message = SessionMessage::WrapUp {
                    agent,
                    summary,
                    reply,
                };
                (message, Box::pin(answer))
            }
            SessionCall::Close { agent, summary } => {
                let (reply, answer) = port::<Result<(), ApiError>>();
                let message = SessionMessage::Close {
                    agent,
                    summary,
                    reply,
                };
                (message, Box::pin(answer))
            }
            SessionCall::Typing { typist } => {
                let (reply, answer) = port::<Result<(), ApiError>>();
                (SessionMessage::Typing { typist, reply }, Box::pin(answer))
            }
            SessionCall::Rate {
                customer,
                score,
                comment,
            } => {
                let (reply, answer) = port::<Result<Ack, ApiError>>();
                let message = SessionMessage::Rate {
                    customer,
                    score,
                    comment,
                    reply,
                };
                (message, Box::pin(answer))
            }
            SessionCall::Snapshot => {
                let (reply, answer) = port::<Session>();
                (SessionMessage::Snapshot { reply }, Box::pin(answer))
            }
            SessionCall::ResponseStatus => {
                let (reply, answer) =
                    port::<Option<(engine::routing::ResponseKind, engine::Millis)>>();
                (SessionMessage::ResponseStatus { reply }, Box::pin(answer))
            }
            SessionCall::CallEvent { event } => {
                let (reply, answer) = port::<Result<Ack, ApiError>>();
                (SessionMessage::CallEvent { event, reply }, Box::pin(answer))
            }
            SessionCall::EndCall { by } => {
                let (reply, answer) = port::<Result<Ack, ApiError>>();
                (SessionMessage::EndCall { by, reply }, Box::pin(answer))
            }
            SessionCall::AgentCall { agent, control } => {
                let (reply, answer) = port::<Result<Ack, ApiError>>();
                let message = SessionMessage::AgentCall {
                    agent,
                    control,
                    reply,
                };
                (message, Box::pin(answer))
            }
            SessionCall::Delivery { report } => {
                let (reply, answer) = port::<Result<(), ApiError>>();
                (SessionMessage::Delivery { report, reply }, Box::pin(answer))
            }
            SessionCall::Monitor { by, mode, seen_in } => {
                let (reply, answer) = port::<Result<Ack, ApiError>>();
                let message = SessionMessage::Monitor {
                    by,
                    mode,
                    seen_in,
                    reply,
                };
                (message, Box::pin(answer))
            }
            SessionCall::Whisper {
                by,
                body,
                client_message_id,
            } => {
                let (reply, answer) = port::<Result<Ack, ApiError>>();
                let message = SessionMessage::Whisper {
                    by,
                    body,
                    client_message_id,
                    reply,
                };
                (message, Box::pin(answer))
            }
            SessionCall::Steer {
                by,
                request,
                reason,
                seen_in,
            } => {
                let (reply, answer) = port::<Result<Ack, ApiError>>();
                let message = SessionMessage::Steer {
                    by,
                    request,
                    reason,
                    seen_in,
                    reply,
                };
                (message, Box::pin(answer))
            }
        })
    }
}

impl AgentCall {
    /// The call `message` makes, with the replier of its port; `None` when
    /// it has no reply.
    pub fn split(message: AgentMessage) -> Option<(AgentCall, Replier)> {
        Some(match message {
            AgentMessage::SetPresence { request, reply } => (
                AgentCall::SetPresence { request },
                replier::<Result<Presence, ApiError>>(reply),
            ),
            AgentMessage::Accept { session, reply } => (
                AgentCall::Accept { session },
                replier::<Result<(), ApiError>>(reply),
            ),
            AgentMessage::Reject { session, reply } => (
                AgentCall::Reject { session },
                replier::<Result<(), ApiError>>(reply),
            ),
            AgentMessage::View { reply } => (AgentCall::View, replier::<AgentView>(reply)),
            _ => return None,
        })
    }

    /// The message for the agent here, and the answer it will give.
    pub fn join(self) -> (AgentMessage, Answering) {
        match self {
            AgentCall::SetPresence { request } => {
                let (reply, answer) = port::<Result<Presence, ApiError>>();
                (
                    AgentMessage::SetPresence { request, reply },
                    Box::pin(answer),
                )
            }
            AgentCall::Accept { session } => {
                let (reply, answer) = port::<Result<(), ApiError>>();
                (AgentMessage::Accept { session, reply }, Box::pin(answer))
            }
            AgentCall::Reject { session } => {
                let (reply, answer) = port::<Result<(), ApiError>>();
                (AgentMessage::Reject { session, reply }, Box::pin(answer))
            }
            AgentCall::View => {
                let (reply, answer) = port::<AgentView>();
                (AgentMessage::View { reply }, Box::pin(answer))
            }
        }
    }
}

impl GroupCall {
    /// The call `message` makes, with the replier of its port; `None` when
    /// it has no reply.
    pub fn split(message: GroupMessage) -> Option<(GroupCall, Replier)> {
        Some(match message {
            GroupMessage::Status { session, reply } => (
                GroupCall::Status { session },
                replier::<Option<QueueStatus>>(reply),
            ),
            GroupMessage::View { reply } => (GroupCall::View, replier::<GroupView>(reply)),
            _ => return None,
        })
    }

    /// The message for the group here, and the answer it will give.
    pub fn join(self) -> (GroupMessage, Answering) {
        match self {
            GroupCall::Status { session } => {
                let (reply, answer) = port::<Option<QueueStatus>>();
                (GroupMessage::Status { session, reply }, Box::pin(answer))
            }
            GroupCall::View => {
                let (reply, answer) = port::<GroupView>();
                (GroupMessage::View { reply }, Box::pin(answer))
            }
        }
    }
}
