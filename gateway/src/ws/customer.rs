//! `/ws/customer`: the web widget's and the mobile app's socket.
//!
//! The token names the customer; `?channel=web` (default) or `app` says
//! which channel their messages travel on. The first frame is usually
//! `hello`, which may carry the last `seq` seen per session: the server
//! answers `welcome`, replays everything after those, then streams live.

use std::collections::{BTreeMap, HashSet};

use actors::{Event, EventKind};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use engine::channel::Channel;
use engine::ids::{CustomerId, SessionId};
use engine::message::Sender;
use serde::{Deserialize, Serialize};

use crate::access::Caller;
use crate::error::HttpError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use crate::wire::WireSession;
use crate::wire::event::{Viewer, event_frame};
use crate::ws::delivered::{Delivered, replay};
use crate::ws::frames::{ClientFrame, NoFields};
use crate::ws::link::{self, Flow, Handler, Link};
use crate::ws::replies::{Replier, SocketGuard};

/// A resume names sessions among the customer's newest this many.
const RESUMABLE_SESSIONS: usize = 100;

/// Every client frame `type` this endpoint takes (PROTOCOL.md §4.1 lists
/// the same; `tests/server/protocol_doc.rs` checks both against the dispatch).
pub const CLIENT_FRAME_TYPES: [&str; 6] = ["hello", "message", "typing", "leave", "rate", "ping"];

/// Query parameters of the upgrade.
#[derive(Debug, Deserialize)]
pub struct CustomerQuery {
    /// `web` (default) or `app`.
    channel: Option<String>,
}

/// Checks the URL, the token and the customer, in the order PROTOCOL.md §1
/// gives (a bad `channel` is 400 whatever the token), then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CustomerQuery>,
    caller: Result<Caller, HttpError>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, HttpError> {
    let channel = match query.channel.as_deref().unwrap_or("web") {
        "web" => Channel::Web,
        "app" => Channel::App,
        other => {
            return Err(HttpError::bad_request(format!(
                "`channel` must be web or app, not `{other}`; other channels arrive through their adapters"
            )));
        }
    };
    let Some(customer) = caller?.customer_id() else {
        return Err(HttpError::forbidden(
            "/ws/customer needs a customer token; agents use /ws/agent",
        ));
    };
    let profile = state
        .switchboard
        .store()
        .get_customer(&customer)
        .await
        .map_err(|err| HttpError::from(actors::ApiError::from(err)))?;
    let Some(profile) = profile else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "unknown_customer",
            format!("token names customer `{customer}`, who does not exist"),
        ));
    };
    let span = tracing::info_span!("customer_socket", customer_id = %customer, channel = %channel);
    link::serve(&state, upgrade, span, move |state| {
        let events = state.switchboard.subscribe_customer(&customer);
        let notices = state
            .platform
            .subscribe(actors::Audience::Customer(customer.clone()));
        let handler = CustomerHandler {
            _guard: SocketGuard::customer(state),
            state: state.clone(),
            customer,
            display_name: profile.display_name,
            tier: profile.tier,
            channel,
            delivered: Delivered::default(),
            waiting: HashSet::new(),
            started: false,
        };
        (handler, events, notices)
    })
}

struct CustomerHandler {
    state: AppState,
    customer: CustomerId,
    display_name: String,
    tier: String,
    channel: Channel,
    /// What this socket already sent.
    delivered: Delivered,
    /// Sessions waiting in a queue: their group's pushes of the place in
    /// line are sent as `queue_status`, others' (late ones) are not.
    waiting: HashSet<SessionId>,
    /// The client has sent its first frame; live events flow from then on.
    started: bool,
    _guard: SocketGuard,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct Hello {
    /// Ignored: the channel is fixed by the URL.
    #[serde(default, rename = "channel")]
    _channel: Option<String>,
    /// Last `seq` seen per session.
    #[serde(default)]
    last_seq: BTreeMap<WireSession, u64>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct SendMessage {
    client_message_id: String,
    body: String,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct OnSession {
    session: WireSession,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct Rate {
    session: WireSession,
    score: u8,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Serialize)]
struct Welcome<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    customer: WelcomeCustomer<'a>,
    channel: String,
    sessions: Vec<SessionSummary>,
}

#[derive(Serialize)]
struct WelcomeCustomer<'a> {
    id: &'a str,
    display_name: &'a str,
    tier: &'a str,
}

#[derive(Serialize)]
struct SessionSummary {
    session: WireSession,
    state: String,
    channel: String,
}

/// Where a waiting customer stands.
#[derive(Serialize)]
struct QueueStatusFrame {
    #[serde(rename = "type")]
    kind: &'static str,
    session: WireSession,
    /// The last `seq` of the session (this frame is not stored and has none of its own).
    seq: u64,
    position: usize,
    n_waiting: usize,
    estimated_wait_secs: u32,
}

impl Handler for CustomerHandler {
    async fn on_frame(&mut self, link: &mut Link, frame: ClientFrame) -> Flow {
        self.started = true;
        let replier = Replier::new(frame.request_id.clone());
        match frame.kind.as_str() {
            "hello" => match frame.fields::<Hello>() {
                Ok((hello, request_id)) => self.hello(link, hello, request_id).await,
                Err(err) => link.send_error(err).await,
            },
            "message" => match frame.fields::<SendMessage>() {
                Ok((message, _)) => self.message(link, &replier, message).await,
                Err(err) => link.send_error(err).await,
            },
            "typing" => match frame.fields::<OnSession>() {
                Ok((typing, _)) => {
                    let result = match self.check_owned(typing.session.0).await {
                        Ok(()) => {
                            let switchboard = &self.state.switchboard;
                            switchboard
                                .customer_typing(&self.customer, typing.session.0)
                                .await
                        }
                        Err(err) => Err(err),
                    };
                    replier.quiet_result(link, result).await
                }
                Err(err) => link.send_error(err).await,
            },
            "leave" => match frame.fields::<OnSession>() {
                Ok((leave, _)) => {
                    let result = match self.check_owned(leave.session.0).await {
                        Ok(()) => {
                            let switchboard = &self.state.switchboard;
                            switchboard
                                .customer_leave(&self.customer, leave.session.0)
                                .await
                        }
                        Err(err) => Err(err),
                    };
                    replier.result(link, result).await
                }
                Err(err) => link.send_error(err).await,
            },
            "rate" => match frame.fields::<Rate>() {
                Ok((rate, _)) => {
                    let max_chars = self.state.config.limits.max_body_chars;
                    let n_chars = rate.comment.as_deref().map_or(0, |c| c.chars().count());
                    if n_chars > max_chars {
                        let message = format!(
                            "field `comment`: {n_chars} characters is over the limit of {max_chars}"
                        );
                        return replier.refuse(link, "body_too_long", message).await;
                    }
                    let result = match self.check_owned(rate.session.0).await {
                        Ok(()) => {
                            let switchboard = &self.state.switchboard;
                            switchboard
                                .rate(&self.customer, rate.session.0, rate.score, rate.comment)
                                .await
                                .map(|_| ())
                        }
                        Err(err) => Err(err),
                    };
                    replier.result(link, result).await
                }
                Err(err) => link.send_error(err).await,
            },
            "ping" => match frame.fields::<NoFields>() {
                Ok(_) => replier.pong(link).await,
                Err(err) => link.send_error(err).await,
            },
            _ => link.send_error(frame.unknown(&CLIENT_FRAME_TYPES)).await,
        }
    }

    async fn on_event(&mut self, link: &mut Link, event: Event) -> Flow {
        self.deliver(link, event).await
    }

    fn wants_events(&self) -> bool {
        self.started
    }

    /// The customer socket pushes nothing of its own.
    type Push = std::convert::Infallible;

    async fn on_push(&mut self, _link: &mut Link, push: Self::Push) -> Flow {
        match push {}
    }
}

impl CustomerHandler {
    async fn hello(&mut self, link: &mut Link, hello: Hello, request_id: Option<String>) -> Flow {
        let replier = Replier::new(request_id.clone());
        let sessions = match self
            .state
            .switchboard
            .store()
            .sessions_of_customer(&self.customer, RESUMABLE_SESSIONS)
            .await
        {
            Ok(sessions) => sessions,
            Err(err) => return replier.error(link, actors::ApiError::from(err), None).await,
        };
        let open: Vec<_> = sessions
            .iter()
            .filter(|session| !session.state.is_final())
            .collect();
        // Waiting ones get queue_status after the replay, whatever it holds.
        let waiting: Vec<SessionId> = open
            .iter()
            .filter(|session| session.state.is_waiting())
            .map(|session| session.id)
            .collect();
        self.waiting.extend(waiting.iter().copied());
        let welcome = Welcome {
            kind: "welcome",
            request_id,
            customer: WelcomeCustomer {
                id: self.customer.as_str(),
                display_name: &self.display_name,
                tier: &self.tier,
            },
            channel: self.channel.to_string(),
            sessions: open
                .iter()
                .map(|session| SessionSummary {
                    session: WireSession(session.id),
                    state: session.state.as_str().to_string(),
                    channel: session.channel.to_string(),
                })
                .collect(),
        };
        if link.send(&welcome).await == Flow::Stop {
            return Flow::Stop;
        }
        // Replay: every open session, and closed ones the client asked about.
        let mut to_replay: Vec<(SessionId, u64)> = open
            .iter()
            .map(|session| {
                let after = hello.last_seq.get(&WireSession(session.id)).copied();
                (session.id, after.unwrap_or(0))
            })
            .collect();
        for (session, after) in &hello.last_seq {
            let owned = sessions.iter().any(|record| record.id == session.0);
            if owned && !to_replay.iter().any(|(id, _)| *id == session.0) {
                to_replay.push((session.0, *after));
            }
        }
        let state = self.state.clone();
        for (session, after) in to_replay {
            self.delivered.client_has(session, after);
            let after = self.delivered.last(session);
            match replay(self, link, &state, session, after).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => return Flow::Stop,
                Err(err) => return replier.error(link, err, None).await,
            }
        }
        for session in waiting {
            if self.send_queue_status(link, session).await == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Refuses a session that is not this customer's before anything is
    /// activated for it: a session this socket has seen is theirs (events
    /// reach only the owner); otherwise one store read decides. Another
    /// customer's session is `unknown_session`, like one that does not exist.
    async fn check_owned(&self, session: SessionId) -> Result<(), actors::ApiError> {
        if self.delivered.knows(session) {
            return Ok(());
        }
        let record = self.state.switchboard.store().get_session(session).await?;
        match record {
            Some(record) if record.customer_id == self.customer => Ok(()),
            _ => Err(engine::EngineError::UnknownSession(session.0).into()),
        }
    }

    async fn message(&mut self, link: &mut Link, replier: &Replier, message: SendMessage) -> Flow {
        let limits = &self.state.config.limits;
        if let Err(err) = replier.check_message(&message.client_message_id, &message.body, limits) {
            return link.send_error(err).await;
        }
        let submitted = self
            .state
            .switchboard
            .submit_customer_message(
                &self.customer,
                self.channel.clone(),
                message.body,
                Some(message.client_message_id.clone()),
            )
            .await;
        match submitted {
            Ok(pending) => {
                link.defer_ack(replier.clone(), message.client_message_id, pending);
                Flow::Continue
            }
            Err(err) => replier.ack(link, message.client_message_id, Err(err)).await,
        }
    }

    /// Sends `event` unless the customer does not see it or already has it.
    async fn deliver(&mut self, link: &mut Link, event: Event) -> Flow {
        if let EventKind::QueuePosition(status) = &event.kind {
            if !self.waiting.contains(&event.session) {
                return Flow::Continue; // Answered or gone since the group sent it.
            }
            return self.send_status_frame(link, event.session, status).await;
        }
        if !self.delivered.admit(&event) {
            return Flow::Continue;
        }
        match &event.kind {
            EventKind::Queued { .. } => {
                self.waiting.insert(event.session);
            }
            EventKind::Assigned { .. }
            | EventKind::WrapUp
            | EventKind::Closed { .. }
            | EventKind::Abandoned => {
                self.waiting.remove(&event.session);
            }
            _ => {}
        }
        if matches!(
            event.kind,
            EventKind::Typing {
                sender: Sender::Customer
            }
        ) {
            return Flow::Continue; // The customer's own typing is not echoed.
        }
        let Some(frame) = event_frame(&event, Viewer::Customer) else {
            return Flow::Continue;
        };
        if let EventKind::Message {
            sender: Sender::Agent(_),
            ..
        } = &event.kind
        {
            crate::metrics::record_delivery("agent_to_customer", event.at);
        }
        if link.send(&frame).await == Flow::Stop {
            return Flow::Stop;
        }
        if matches!(event.kind, EventKind::Queued { .. }) {
            return self.send_queue_status(link, event.session).await;
        }
        Flow::Continue
    }

    /// Asks the group once (right after `queued` and `welcome`); later
    /// changes come as the group's pushes.
    async fn send_queue_status(&mut self, link: &mut Link, session: SessionId) -> Flow {
        let status = match self.state.switchboard.queue_status(session).await {
            Ok(Some(status)) => status,
            Ok(None) | Err(_) => {
                // No longer waiting (or gone): the events that follow say where it went.
                self.waiting.remove(&session);
                return Flow::Continue;
            }
        };
        self.send_status_frame(link, session, &status).await
    }

    async fn send_status_frame(
        &mut self,
        link: &mut Link,
        session: SessionId,
        status: &actors::QueueStatus,
    ) -> Flow {
        let frame = QueueStatusFrame {
            kind: "queue_status",
            session: WireSession(session),
            seq: self.delivered.last(session),
            position: status.position,
            n_waiting: status.n_waiting,
            estimated_wait_secs: status.estimated_wait_secs,
        };
        link.send(&frame).await
    }
}

#[cfg(test)]
mod proptests;
