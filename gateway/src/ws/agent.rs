//! `/ws/agent`: the agent desktop's socket (agents and supervisors).
//!
//! `hello` answers with `welcome` (the agent, their presence, the sessions
//! they hold and are offered, the queues of their groups), replays what the
//! agent missed in those sessions after the `last_seq` they send, then
//! streams offers and their sessions' events live, and (with the phone
//! channel on) the agent's phone registering or not (`phone`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use actors::{CallControl, Event, EventKind, TransferTarget};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use engine::agent::Agent;
use engine::ids::{AgentId, GroupId, SessionId, TicketId};
use engine::message::Sender;
use engine::presence::{Presence, PresenceRequest};
use engine::sla::report::{DeskPanel, UsageAction};
use engine::supervision::MonitorMode;
use serde::{Deserialize, Serialize};

use crate::access::Caller;
use crate::error::HttpError;
use crate::state::AppState;
use crate::wire::event::{EventBody, OfferCustomer, Viewer, event_frame};
use crate::wire::platform::{notice_frame, ticket_notice};
use crate::wire::{PhoneRecord, WireSession};
use crate::ws::delivered::{Delivered, replay};
use crate::ws::frames::{ClientFrame, FrameError, NoFields};
use crate::ws::link::{self, Flow, Handler, Link};
use crate::ws::replies::{Replier, SocketGuard};

use self::phone::PhoneWatch;
use self::softphone::SoftphoneChoice;

/// Every client frame `type` this endpoint takes (PROTOCOL.md §5.1 lists
/// the same; `tests/server/protocol_doc.rs` checks both against the dispatch).
pub const CLIENT_FRAME_TYPES: [&str; 22] = [
    "hello",
    "presence",
    "accept",
    "reject",
    "message",
    "typing",
    "transfer",
    "call",
    "wrap_up",
    "close",
    "queues",
    "sessions",
    "history",
    "watch_ticket",
    "unwatch_ticket",
    "monitor",
    "whisper",
    "usage",
    "softphone",
    "webrtc_offer",
    "webrtc_candidate",
    "ping",
];

/// Checks the token and the agent, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> Result<Response, HttpError> {
    let Some(profile) = caller.agent_profile(&state).await? else {
        return Err(HttpError::forbidden(
            "/ws/agent needs an agent or supervisor token; customers use /ws/customer",
        ));
    };
    let span = tracing::info_span!("agent_socket", agent_id = %profile.id);
    link::serve(&state, upgrade, span, move |state| {
        let events = state.switchboard.subscribe_agent(&profile.id);
        let notices = state
            .platform
            .subscribe(actors::Audience::Agent(profile.id.clone()));
        let phone = PhoneWatch::start(state.phones.as_ref(), profile.id.as_str());
        let handler = AgentHandler {
            _guard: SocketGuard::agent(state),
            state: state.clone(),
            caller,
            profile,
            delivered: Delivered::default(),
            started: false,
            watching: Vec::new(),
            handed_on: HashSet::new(),
            phone,
            softphone: None,
            usage_sent: Vec::new(),
        };
        (handler, events, notices)
    })
}

struct AgentHandler {
    state: AppState,
    caller: Caller,
    profile: Agent,
    /// What this socket already sent.
    delivered: Delivered,
    /// The client has sent its first frame; live events flow from then on.
    started: bool,
    /// Tickets this socket watches (`watch_ticket`): their changes are pushed to it.
    watching: Vec<TicketId>,
    /// Sessions this socket has seen leave the agent (transferred on, offer
    /// lapsed, abandoned) since their last offer: a 360° view built for that
    /// offer and arriving after it is stale and not sent.
    handed_on: HashSet<SessionId>,
    /// The agent's phone registration (`None`: the phone channel is off).
    phone: Option<PhoneWatch>,
    /// This socket chose the browser as the agent's phone (`softphone`).
    softphone: Option<SoftphoneChoice>,
    /// `usage` entries recorded in the last minute ([`AgentHandler::usage_admitted`]).
    usage_sent: Vec<((UsageAction, Option<DeskPanel>), std::time::Instant)>,
    _guard: SocketGuard,
}

impl Drop for AgentHandler {
    fn drop(&mut self) {
        for ticket in &self.watching {
            self.state.platform.desk.unwatch(&self.profile.id, ticket);
        }
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct OnTicket {
    ticket_id: String,
}

/// Most tickets one socket watches at once.
const MAX_WATCHED_TICKETS: usize = 100;

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct Hello {
    #[serde(default)]
    last_seq: BTreeMap<WireSession, u64>,
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
struct SendMessage {
    session: WireSession,
    client_message_id: String,
    body: String,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct Transfer {
    session: WireSession,
    #[serde(default)]
    group: Option<GroupId>,
    #[serde(default)]
    agent: Option<AgentId>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct Call {
    session: WireSession,
    action: CallControl,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct Finish {
    session: WireSession,
    #[serde(default)]
    summary: Option<String>,
}

/// `usage`: the desktop reports an action or panel the agent used
/// (docs/reports.md "Desktop usage").
#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct Usage {
    action: String,
    #[serde(default)]
    panel: Option<String>,
}

/// Most `usage` entries one socket records a minute.
const USAGE_PER_MINUTE: usize = 120;

/// What a `usage` frame may record: the actions only the desktop sees
/// (transfers and tickets are recorded by the server as they happen).
fn client_usage(usage: &Usage) -> Result<(UsageAction, Option<DeskPanel>), String> {
    let action = match UsageAction::parse(&usage.action) {
        Some(
            action @ (UsageAction::SuggestionInserted
            | UsageAction::KbArticleInserted
            | UsageAction::PanelUsed),
        ) => action,
        Some(_) => {
            return Err(format!(
                "field `action`: `{}` is recorded by the server itself",
                usage.action
            ));
        }
        None => {
            return Err(format!(
                "field `action`: unknown action `{}`; one of suggestion_inserted, kb_article_inserted, panel_used",
                usage.action
            ));
        }
    };
    let panel = match (action, usage.panel.as_deref()) {
        (UsageAction::PanelUsed, Some(name)) => Some(DeskPanel::parse(name).ok_or_else(|| {
            let names: Vec<&str> = DeskPanel::ALL.iter().map(|p| p.as_str()).collect();
            format!(
                "field `panel`: unknown panel `{name}`; one of {}",
                names.join(", ")
            )
        })?),
        (UsageAction::PanelUsed, None) => {
            return Err("field `panel`: `panel_used` names the panel".into());
        }
        (_, Some(_)) => return Err("field `panel`: only `panel_used` names a panel".into()),
        (_, None) => None,
    };
    Ok((action, panel))
}

/// `monitor`: a supervisor follows a session of their groups live.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct Monitor {
    session: WireSession,
    mode: MonitorRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
#[serde(rename_all = "snake_case")]
enum MonitorRequest {
    Listen,
    Whisper,
    Barge,
    Stop,
}

impl MonitorRequest {
    fn mode(self) -> Option<MonitorMode> {
        match self {
            MonitorRequest::Listen => Some(MonitorMode::Listen),
            MonitorRequest::Whisper => Some(MonitorMode::Whisper),
            MonitorRequest::Barge => Some(MonitorMode::Barge),
            MonitorRequest::Stop => None,
        }
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq, Serialize))]
#[serde(deny_unknown_fields)]
struct History {
    session: WireSession,
    #[serde(default)]
    after_seq: u64,
}

#[derive(Serialize)]
struct Welcome {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    agent: AgentSummary,
    presence: Presence,
    sessions: Vec<SessionCard>,
    offers: Vec<SessionCard>,
    queues: Vec<QueueView>,
    /// The agent's phone; absent when the phone channel is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<PhoneRecord>,
}

#[derive(Serialize)]
struct AgentSummary {
    id: String,
    display_name: String,
    role: &'static str,
    groups: Vec<String>,
}

/// What the desktop shows of a session before opening it.
#[derive(Serialize)]
struct SessionCard {
    session: WireSession,
    state: &'static str,
    channel: String,
    group: Option<String>,
    customer: OfferCustomer,
    /// When the reply the customer waits for is due, if one is owed.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_due: Option<crate::wire::Time>,
    /// `first` or `next`, with `response_due`.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_kind: Option<&'static str>,
}

#[derive(Serialize)]
struct QueueView {
    group: String,
    n_waiting: usize,
    n_ready_agents: usize,
    longest_wait_ms: Option<i64>,
    waiting: Vec<WaitingEntry>,
}

#[derive(Serialize)]
struct WaitingEntry {
    session: WireSession,
    priority: i32,
    queued_at: i64,
    offered_to: Option<String>,
}

#[derive(Serialize)]
struct Listing<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct PresenceBody {
    presence: Presence,
}

#[derive(Serialize)]
struct QueuesBody {
    queues: Vec<QueueView>,
}

#[derive(Serialize)]
struct SessionsBody {
    sessions: Vec<SessionCard>,
    offers: Vec<SessionCard>,
}

impl Handler for AgentHandler {
    async fn on_frame(&mut self, link: &mut Link, frame: ClientFrame) -> Flow {
        self.started = true;
        let replier = Replier::new(frame.request_id.clone());
        let me = self.profile.id.clone();
        let switchboard = self.state.switchboard.clone();
        match frame.kind.as_str() {
            "hello" => match frame.fields::<Hello>() {
                Ok((hello, request_id)) => self.hello(link, hello, request_id).await,
                Err(err) => link.send_error(err).await,
            },
            "presence" => match frame.fields::<PresenceRequest>() {
                Ok((request, request_id)) => match switchboard.set_presence(&me, request).await {
                    Ok(presence) => {
                        let body = PresenceBody { presence };
                        link.send(&listing("presence", request_id, body)).await
                    }
                    Err(err) => replier.error(link, err, None).await,
                },
                Err(err) => link.send_error(err).await,
            },
            "accept" => match frame.fields::<OnSession>() {
                Ok((on, _)) => {
                    let result = switchboard.accept(&me, on.session.0).await;
                    replier.result(link, result).await
                }
                Err(err) => link.send_error(err).await,
            },
            "reject" => match frame.fields::<OnSession>() {
                Ok((on, _)) => {
                    let result = switchboard.reject(&me, on.session.0).await;
                    replier.result(link, result).await
                }
                Err(err) => link.send_error(err).await,
            },
            "message" => match frame.fields::<SendMessage>() {
                Ok((message, _)) => {
                    let limits = &self.state.config.limits;
                    let check =
                        replier.check_message(&message.client_message_id, &message.body, limits);
                    if let Err(err) = check {
                        return link.send_error(err).await;
                    }
                    let submitted = switchboard
                        .submit_agent_message(
                            &me,
                            message.session.0,
                            message.body,
                            Some(message.client_message_id.clone()),
                        )
                        .await;
                    match submitted {
                        Ok(pending) => {
                            link.defer_ack(replier, message.client_message_id, pending);
                            Flow::Continue
                        }
                        Err(err) => replier.ack(link, message.client_message_id, Err(err)).await,
                    }
                }
                Err(err) => link.send_error(err).await,
            },
            "typing" => match frame.fields::<OnSession>() {
                Ok((on, _)) => {
                    let result = switchboard.agent_typing(&me, on.session.0).await;
                    replier.quiet_result(link, result).await
                }
                Err(err) => link.send_error(err).await,
            },
            "transfer" => match frame.fields::<Transfer>() {
                Ok((transfer, request_id)) => {
                    let target = match (transfer.group, transfer.agent) {
                        (Some(group), None) => TransferTarget::Group { group },
                        (None, Some(agent)) => TransferTarget::Agent { agent },
                        _ => {
                            let err = FrameError {
                                code: "invalid_frame",
                                message: "`transfer` needs exactly one of `group` and `agent`"
                                    .into(),
                                request_id,
                            };
                            return link.send_error(err).await;
                        }
                    };
                    let result = switchboard.transfer(&me, transfer.session.0, target).await;
                    if result.is_ok() {
                        switchboard.note_usage(&me, UsageAction::Transfer, self.profile.role);
                    }
                    replier.result(link, result).await
                }
                Err(err) => link.send_error(err).await,
            },
            "call" => match frame.fields::<Call>() {
                Ok((call, _)) => {
                    let result = switchboard
                        .call_control(&me, call.session.0, call.action)
                        .await
                        .map(|_| ());
                    replier.result(link, result).await
                }
                Err(err) => link.send_error(err).await,
            },
            kind @ ("wrap_up" | "close") => {
                let closing = kind == "close";
                match frame.fields::<Finish>() {
                    Ok((finish, _)) => {
                        let max_chars = self.state.config.limits.max_body_chars;
                        let n_chars = finish.summary.as_deref().map_or(0, |s| s.chars().count());
                        if n_chars > max_chars {
                            let message = format!(
                                "field `summary`: {n_chars} characters is over the limit of {max_chars}"
                            );
                            return replier.refuse(link, "body_too_long", message).await;
                        }
                        let (session, summary) = (finish.session.0, finish.summary);
                        let result = match closing {
                            true => switchboard.close(&me, session, summary).await,
                            false => switchboard.wrap_up(&me, session, summary).await,
                        };
                        replier.result(link, result).await
                    }
                    Err(err) => link.send_error(err).await,
                }
            }
            "queues" => match frame.fields::<NoFields>() {
                Ok((_, request_id)) => {
                    let queues = self.queues().await;
                    link.send(&listing("queues", request_id, QueuesBody { queues }))
                        .await
                }
                Err(err) => link.send_error(err).await,
            },
            "sessions" => match frame.fields::<NoFields>() {
                Ok((_, request_id)) => match self.sessions().await {
                    Ok((sessions, offers)) => {
                        let body = SessionsBody { sessions, offers };
                        link.send(&listing("sessions", request_id, body)).await
                    }
                    Err(err) => replier.error(link, err, None).await,
                },
                Err(err) => link.send_error(err).await,
            },
            "history" => match frame.fields::<History>() {
                Ok((history, _)) => self.history(link, &replier, history).await,
                Err(err) => link.send_error(err).await,
            },
            "watch_ticket" => match frame.fields::<OnTicket>() {
                Ok((on, request_id)) => self.watch(link, on, request_id).await,
                Err(err) => link.send_error(err).await,
            },
            "unwatch_ticket" => match frame.fields::<OnTicket>() {
                Ok((on, _)) => {
                    let ticket = TicketId::new(on.ticket_id);
                    if let Some(idx) = self.watching.iter().position(|t| *t == ticket) {
                        self.watching.swap_remove(idx);
                        self.state.platform.desk.unwatch(&me, &ticket);
                    }
                    replier.result(link, Ok(())).await
                }
                Err(err) => link.send_error(err).await,
            },
            "monitor" => match frame.fields::<Monitor>() {
                Ok((monitor, _)) => self.monitor(link, &replier, monitor).await,
                Err(err) => link.send_error(err).await,
            },
            "whisper" => match frame.fields::<SendMessage>() {
                Ok((message, _)) => {
                    let limits = &self.state.config.limits;
                    let check =
                        replier.check_message(&message.client_message_id, &message.body, limits);
                    if let Err(err) = check {
                        return link.send_error(err).await;
                    }
                    // Still a supervisor (the session checks they follow it).
                    if let Err(err) = self.caller.overseer(&self.state).await {
                        return replier.refuse(link, err.body.code, err.body.message).await;
                    }
                    let client_message_id = message.client_message_id;
                    let result = switchboard
                        .whisper(
                            &me,
                            message.session.0,
                            message.body,
                            Some(client_message_id.clone()),
                        )
                        .await;
                    replier.ack(link, client_message_id, result).await
                }
                Err(err) => link.send_error(err).await,
            },
            "usage" => match frame.fields::<Usage>() {
                Ok((usage, _)) => match client_usage(&usage) {
                    Ok((action, panel)) if !self.usage_admitted(action, panel) => {
                        replier.result(link, Ok(())).await
                    }
                    Ok((action, panel)) => {
                        let result = switchboard
                            .record_usage(&me, action, panel, self.profile.role)
                            .await;
                        replier.result(link, result).await
                    }
                    Err(message) => replier.refuse(link, "invalid", message).await,
                },
                Err(err) => link.send_error(err).await,
            },
            "softphone" => self.on_softphone(link, &replier, frame).await,
            "webrtc_offer" => self.on_webrtc_offer(link, &replier, frame).await,
            "webrtc_candidate" => self.on_webrtc_candidate(link, &replier, frame).await,
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

    async fn on_notice(&mut self, link: &mut Link, notice: Arc<actors::Notice>) -> Flow {
        let stale = matches!(&*notice, actors::Notice::CustomerView { session, .. }
            if self.handed_on.contains(session));
        if stale {
            return Flow::Continue;
        }
        link.send(&notice_frame(&notice)).await
    }

    /// Whether the agent's phone is registered, when it changes.
    type Push = PhoneRecord;

    async fn next_push(&mut self) -> PhoneRecord {
        match &mut self.phone {
            Some(phone) => PhoneRecord {
                registered: phone.changed().await,
            },
            None => std::future::pending().await,
        }
    }

    async fn on_push(&mut self, link: &mut Link, phone: PhoneRecord) -> Flow {
        link.send(&listing("phone", None, phone)).await
    }
}

fn listing<T: Serialize>(kind: &'static str, request_id: Option<String>, body: T) -> Listing<T> {
    Listing {
        kind,
        request_id,
        body,
    }
}

impl AgentHandler {
    /// Whether a `usage` frame is recorded: a panel at most once a
    /// minute, at most [`USAGE_PER_MINUTE`] entries a minute in all (more
    /// is acknowledged and not recorded: a desktop that misbehaves does not
    /// skew the reports nor grow the log).
    fn usage_admitted(&mut self, action: UsageAction, panel: Option<DeskPanel>) -> bool {
        let now = std::time::Instant::now();
        let minute = std::time::Duration::from_secs(60);
        self.usage_sent
            .retain(|(_, at)| now.duration_since(*at) < minute);
        let key = (action, panel);
        let repeated_panel = action == UsageAction::PanelUsed
            && self.usage_sent.iter().any(|(sent, _)| *sent == key);
        if repeated_panel || self.usage_sent.len() >= USAGE_PER_MINUTE {
            return false;
        }
        self.usage_sent.push((key, now));
        true
    }

    async fn hello(&mut self, link: &mut Link, hello: Hello, request_id: Option<String>) -> Flow {
        let replier = Replier::new(request_id.clone());
        let view = match self.state.switchboard.agent_view(&self.profile.id).await {
            Ok(view) => view,
            Err(err) => return replier.error(link, err, None).await,
        };
        let (sessions, offers) = match self.cards(&view).await {
            Ok(cards) => cards,
            Err(err) => return replier.error(link, err, None).await,
        };
        let welcome = Welcome {
            kind: "welcome",
            request_id,
            agent: AgentSummary {
                id: self.profile.id.to_string(),
                display_name: self.profile.display_name.clone(),
                role: self.profile.role.as_str(),
                groups: self.profile.groups.iter().map(|g| g.to_string()).collect(),
            },
            presence: view.presence,
            sessions,
            offers,
            queues: self.queues().await,
            phone: self.phone.as_mut().map(|phone| PhoneRecord {
                registered: phone.tell_now(),
            }),
        };
        if link.send(&welcome).await == Flow::Stop {
            return Flow::Stop;
        }
        let state = self.state.clone();
        for session in view.sessions.iter().chain(view.offers.iter()) {
            let after = hello.last_seq.get(&WireSession(*session)).copied();
            let after = after.unwrap_or(0);
            self.delivered.client_has(*session, after);
            let after = self.delivered.last(*session);
            match replay(self, link, &state, *session, after).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => return Flow::Stop,
                Err(err) => return replier.error(link, err, None).await,
            }
        }
        Flow::Continue
    }

    /// A supervisor starts following a session of a group they supervise,
    /// changes how, or stops (stopping needs no check).
    async fn monitor(&mut self, link: &mut Link, replier: &Replier, monitor: Monitor) -> Flow {
        let id = monitor.session.0;
        let mode = monitor.mode.mode();
        let mut seen_in = None;
        if mode.is_some() {
            let overseer = match self.caller.overseer(&self.state).await {
                Ok(overseer) => overseer,
                Err(err) => return replier.refuse(link, err.body.code, err.body.message).await,
            };
            let session = match self.state.switchboard.session(id).await {
                Ok(session) => session,
                Err(err) => return replier.error(link, err, None).await,
            };
            let Some(group) = session.group.as_ref() else {
                let message = format!("session {id} is not in a group's queue yet");
                return replier.refuse(link, "invalid_state", message).await;
            };
            if let Err(err) = overseer.check_group(group) {
                return replier.refuse(link, err.body.code, err.body.message).await;
            }
            seen_in = Some(group.clone());
        }
        let result = self
            .state
            .switchboard
            .monitor_session(&self.profile.id, id, seen_in, mode)
            .await
            .map(|_| ());
        replier.result(link, result).await
    }

    /// Replays a session's events after `after_seq`, if the agent may read it.
    async fn history(&mut self, link: &mut Link, replier: &Replier, history: History) -> Flow {
        let session = match self.state.switchboard.session(history.session.0).await {
            Ok(session) => session,
            Err(err) => return replier.error(link, err, None).await,
        };
        if let Err(err) = self.caller.check_session_read(&self.state, &session).await {
            return replier.refuse(link, err.body.code, err.body.message).await;
        }
        let events = match self
            .state
            .switchboard
            .history(session.id, history.after_seq)
            .await
        {
            Ok(events) => events,
            Err(err) => return replier.error(link, err, None).await,
        };
        for event in events {
            // Listening is silent: agents do not see who monitored.
            let monitoring = matches!(event.kind, EventKind::Monitored { .. });
            if monitoring && self.caller.role() != crate::auth::Role::Supervisor {
                continue;
            }
            let Some(frame) = event_frame(&event, Viewer::Staff) else {
                continue;
            };
            if link.send(&frame).await == Flow::Stop {
                return Flow::Stop;
            }
        }
        replier.result(link, Ok(())).await
    }

    /// Starts pushing a ticket's changes to this socket, after the same
    /// check as `GET /api/v1/tickets/{id}`; answers with the ticket and its history.
    async fn watch(&mut self, link: &mut Link, on: OnTicket, request_id: Option<String>) -> Flow {
        let platform = &self.state.platform;
        let id = TicketId::new(on.ticket_id);
        let checked = async {
            let ticket = platform.load_ticket(&id).await?;
            crate::access::customers::check_ticket(&self.caller, &self.state, &ticket).await?;
            let events = platform
                .store
                .ticket_events(&id, 0, actors::platform::tickets::MAX_EVENTS)
                .await
                .map_err(crate::error::store_error)?;
            Ok::<_, crate::error::HttpError>((ticket, events))
        };
        let (ticket, events) = match checked.await {
            Ok(found) => found,
            Err(err) => {
                let err = FrameError {
                    code: err.body.code,
                    message: err.body.message,
                    request_id,
                };
                return link.send_error(err).await;
            }
        };
        if !self.watching.contains(&id) {
            if self.watching.len() >= MAX_WATCHED_TICKETS {
                let err = FrameError {
                    code: "invalid_frame",
                    message: format!(
                        "a socket watches at most {MAX_WATCHED_TICKETS} tickets; unwatch one first"
                    ),
                    request_id,
                };
                return link.send_error(err).await;
            }
            platform.desk.watch(&self.profile.id, &id);
            self.watching.push(id);
        }
        let mut frame = ticket_notice(&ticket, &events);
        if let Some(request_id) = request_id {
            frame["request_id"] = serde_json::Value::String(request_id);
        }
        link.send(&frame).await
    }

    /// Pushes the customer's 360° view to this agent's sockets, off this
    /// socket's loop (the offer itself is not held back by it).
    fn push_customer_view(&self, session: SessionId) {
        let platform = self.state.platform.clone();
        let agent = self.profile.id.clone();
        tokio::spawn(async move {
            let view = async {
                let session = platform.store.get_session(session).await?;
                match session {
                    Some(session) => platform.customer_view(&session.customer_id, true).await,
                    None => Ok(None),
                }
            };
            match view.await {
                Ok(Some(view)) => {
                    let notice = actors::Notice::CustomerView {
                        session,
                        view: Box::new(view),
                    };
                    platform.notify(&actors::Audience::Agent(agent), &notice);
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(session_id = %session, error = %err, "customer view for an offer failed")
                }
            }
        });
    }

    /// Sends `event` unless it is not for this agent or already sent. A new
    /// offer first brings the conversation so far, so the desktop shows the
    /// customer's messages with the offer.
    async fn deliver(&mut self, link: &mut Link, event: Event) -> Flow {
        let new_offer = matches!(event.kind, EventKind::Offered { .. })
            && self.is_for_me(&event)
            && event.seq > self.delivered.last(event.session);
        if new_offer {
            self.push_customer_view(event.session);
            let after = self.delivered.last(event.session);
            // Without the history the offer still goes out below.
            if let Ok(history) = self.state.switchboard.history(event.session, after).await {
                for earlier in history.into_iter().filter(|e| e.seq < event.seq) {
                    if self.send_event(link, earlier).await == Flow::Stop {
                        return Flow::Stop;
                    }
                }
            }
        }
        self.send_event(link, event).await
    }

    /// Not the agent's own typing (not echoed), not an offer to someone else
    /// (seen in a replay or in the conversation an offer brings), not
    /// someone else's monitoring (listening is silent).
    fn is_for_me(&self, event: &Event) -> bool {
        match &event.kind {
            EventKind::Typing {
                sender: Sender::Agent(_),
            } => false,
            EventKind::Offered { agent, .. } | EventKind::OfferLapsed { agent } => {
                agent == &self.profile.id
            }
            EventKind::Monitored { by, .. } => {
                matches!(by, engine::supervision::Actor::Supervisor(id) if id == &self.profile.id)
            }
            _ => true,
        }
    }

    /// Sends one event once, if it is for this agent; offers carry the
    /// customer and channel so the desktop can show them at once.
    async fn send_event(&mut self, link: &mut Link, event: Event) -> Flow {
        if !self.is_for_me(&event) || !self.delivered.admit(&event) {
            return Flow::Continue;
        }
        match &event.kind {
            EventKind::Offered { .. } => {
                self.handed_on.remove(&event.session);
            }
            EventKind::Transferred { from } if from == &self.profile.id => {
                self.handed_on.insert(event.session);
            }
            EventKind::OfferLapsed { .. } | EventKind::Abandoned => {
                self.handed_on.insert(event.session);
            }
            // An ended session is offered no more: nothing left to drop.
            EventKind::Closed { .. } => {
                self.handed_on.remove(&event.session);
            }
            _ => {}
        }
        let Some(mut frame) = event_frame(&event, Viewer::Staff) else {
            return Flow::Continue;
        };
        if let EventKind::Message {
            sender: Sender::Customer,
            ..
        } = &event.kind
        {
            crate::metrics::record_delivery("customer_to_agent", event.at);
        }
        if let EventBody::Offer {
            channel,
            customer,
            group,
            ..
        } = &mut frame.body
            && let Ok(card) = self.card(event.session).await
        {
            *channel = Some(card.channel);
            *group = card.group;
            *customer = Some(card.customer);
        }
        link.send(&frame).await
    }

    async fn sessions(&self) -> Result<(Vec<SessionCard>, Vec<SessionCard>), actors::ApiError> {
        let view = self.state.switchboard.agent_view(&self.profile.id).await?;
        self.cards(&view).await
    }

    /// Cards of the sessions held and offered in `view`.
    async fn cards(
        &self,
        view: &actors::agent::AgentView,
    ) -> Result<(Vec<SessionCard>, Vec<SessionCard>), actors::ApiError> {
        let mut sessions = Vec::with_capacity(view.sessions.len());
        for session in &view.sessions {
            sessions.push(self.card(*session).await?);
        }
        let mut offers = Vec::with_capacity(view.offers.len());
        for session in &view.offers {
            offers.push(self.card(*session).await?);
        }
        Ok((sessions, offers))
    }

    async fn card(&self, session: SessionId) -> Result<SessionCard, actors::ApiError> {
        let record = self.state.switchboard.live_session(session).await?;
        let customer = self
            .state
            .switchboard
            .store()
            .get_customer(&record.customer_id)
            .await?;
        let (display_name, tier) = customer
            .map(|customer| (customer.display_name, customer.tier))
            .unwrap_or_default();
        // Without an answer the card only lacks its countdown.
        let owed = self
            .state
            .switchboard
            .response_due(session)
            .await
            .ok()
            .flatten();
        Ok(SessionCard {
            response_due: owed.map(|(_, due)| crate::wire::Time(due)),
            response_kind: owed.map(|(kind, _)| kind.as_str()),
            session: WireSession(session),
            state: record.state.as_str(),
            channel: record.channel.to_string(),
            group: record.group.map(|group| group.to_string()),
            customer: OfferCustomer {
                id: record.customer_id.to_string(),
                display_name,
                tier,
            },
        })
    }

    async fn queues(&self) -> Vec<QueueView> {
        let mut queues = Vec::new();
        for group in &self.profile.groups {
            // A group that does not answer is left out rather than failing the frame.
            let Ok(view) = self.state.switchboard.group_view(group).await else {
                continue;
            };
            queues.push(QueueView {
                group: group.to_string(),
                n_waiting: view.waiting.len(),
                n_ready_agents: view.n_ready_agents,
                longest_wait_ms: view.longest_wait_ms,
                waiting: view
                    .waiting
                    .iter()
                    .map(|(session, priority, queued_at, offered_to)| WaitingEntry {
                        session: WireSession(*session),
                        priority: *priority,
                        queued_at: *queued_at,
                        offered_to: offered_to.as_ref().map(|agent| agent.to_string()),
                    })
                    .collect(),
            });
        }
        queues
    }
}

mod phone;
#[cfg(test)]
mod proptests;
mod softphone;
