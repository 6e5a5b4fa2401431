//! A session event on the wire: the one encoding of [`actors::Event`] that
//! the customer socket, the agent socket, `history`, the REST session
//! history and the desktop's diagnostics all send.
//!
//! Every event is an object with `type` (the kind's one name), `session`,
//! `seq` and `at`, plus the fields of its kind. What a customer may see of
//! it is decided here, once ([`Viewer`]).

use std::collections::BTreeMap;

use actors::{CallEnd, CallEvent, Event, EventKind};
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use super::{Time, WireSession, sender};

/// One session event as every client sees it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EventFrame {
    /// What happened: the `type` and the kind's own fields.
    #[serde(flatten)]
    pub body: EventBody,
    /// The session (a decimal string).
    pub session: WireSession,
    /// The session's sequence number of this event (messages and state
    /// changes share one counter); a resuming client sends the highest it
    /// has seen.
    pub seq: u64,
    /// When the engine recorded it (ms since the Unix epoch).
    pub at: Time,
}

/// What happened, tagged by `type`. A field marked "agents only" is absent
/// from what customers see ([`Viewer::Customer`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// A customer, agent or system message.
    Message {
        /// The text.
        body: String,
        /// The channel it travelled on.
        channel: String,
        /// The sender's own id for the message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
        /// `customer`, `agent:<agent id>` or `system`.
        #[schema(example = "agent:chen.jie")]
        sender: String,
    },
    /// The session waits in a group's queue.
    Queued {
        /// The group (agents only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// Offered to an agent, who accepts before `deadline` (agents only).
    Offer {
        /// The agent it is offered to.
        agent: String,
        /// The channel; live and in a `hello` replay on the agent socket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        /// Who is asking; live and in a `hello` replay on the agent socket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<OfferCustomer>,
        /// Accept by this time (ms since the Unix epoch).
        deadline: Time,
        /// The queue's group; live and in a `hello` replay on the agent socket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// The offer lapsed, was rejected or withdrawn (agents only).
    OfferWithdrawn {
        /// The agent that had it.
        agent: String,
    },
    /// An agent took the session.
    Assigned {
        /// The agent (agents only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// The agent's name, as the customer sees it.
        agent_name: String,
    },
    /// The other party is typing (live only: never stored, never in a history).
    Typing {
        /// `customer`, `agent:<agent id>` or `system`.
        sender: String,
    },
    /// Handed on to another group or agent; `queued` and a new `assigned` follow.
    Transferred {
        /// The agent that handed it on (agents only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// The agent ended the conversation and writes notes; rating is open.
    WrapUp,
    /// Done: the session takes no more messages.
    Closed {
        /// The agent's note (agents only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// The customer left before an agent took the session.
    Abandoned,
    /// The customer rated the conversation.
    Rated {
        /// What the customer wrote with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// Satisfaction, 1 (worst) to 5 (best).
        score: u8,
    },
    /// Something happened to the phone call the session is (docs/voice.md).
    Call {
        /// `started`, `ringing` (agents only), `answered`, `held`,
        /// `resumed`, `digits` or `ended`.
        call: String,
        /// `ringing`, `answered`: the agent (agents only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// `ended`: `caller`, `agent` or `dropped` (the process holding the
        /// call stopped).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// `started`: what the caller keyed in the IVR menu (may be
        /// empty); `digits`: the keys pressed during the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digits: Option<String>,
        /// `started`: the caller's number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// `ended`: how long caller and agent were connected (ms, 0 if never).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        talk_ms: Option<u64>,
    },
    /// Where an agent's message to a customer on a message platform stands
    /// (agents only; docs/channels.md): `queued` when stored, then `sent`,
    /// `delivered` (the platform's receipt) or `failed`; `retrying` after a
    /// first failed attempt.
    Delivery {
        /// The channel account it goes through.
        account: String,
        /// `failed`, `retrying`: the platform's error code
        /// (`45015`; `retries_exhausted` when every retry failed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// The `seq` of the agent's message.
        of: u64,
        /// `failed`, `retrying`: why, in words for the agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// `queued`, `retrying`, `sent`, `delivered` or `failed`.
        state: String,
    },
    /// A reply the customer waited for was not sent by its due time
    /// (staff only; the `[[response]]` targets of the rule file).
    ResponseBreached {
        /// When it was due.
        due: Time,
        /// The group the session was in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// `first` (the first reply of the conversation) or `next`.
        kind: String,
        /// When the customer's unanswered message came.
        since: Time,
    },
    /// When the reply the customer waits for is due (`due`, with `kind`
    /// `first` or `next`), or that none is owed (neither field). Staff only,
    /// live only: never stored, it carries the last `seq` published.
    ResponseDue {
        /// When it is due.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<Time>,
        /// `first` or `next`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
    },
    /// A supervisor started following the session live (`mode` `listen`,
    /// `whisper` or `barge`), changed how, or stopped (`stop`); staff only.
    Monitored {
        /// `supervisor:<agent id>`.
        by: String,
        /// `listen`, `whisper`, `barge` or `stop`.
        mode: String,
    },
    /// A supervisor's note to the agent (staff only: the customer never
    /// sees it).
    Whisper {
        /// The text.
        body: String,
        /// The supervisor's own id for it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
        /// `supervisor:<agent id>`.
        sender: String,
    },
    /// A supervisor moved the waiting session or changed its priority
    /// (staff only; docs/supervisor.md); `change` says which.
    Steered {
        /// `supervisor:<agent id>` or `admin:<name>`.
        by: String,
        /// Why, in their words.
        reason: String,
        /// What changed.
        #[serde(flatten)]
        steer: SteerBody,
    },
}

/// What a supervisor changed, in a `steered` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SteerBody {
    /// Queued in `group` (for `agent` only, if set), keeping its place in line.
    Reassigned {
        /// The one agent it is offered to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// The group it waits in now.
        group: String,
        /// Its priority there (the one it had).
        priority: i32,
    },
    /// Another priority where it waits.
    Reprioritised {
        /// The priority before.
        from: i32,
        /// The priority now.
        to: i32,
    },
}

/// The customer an offer is for, as the agent socket shows it with a live offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfferCustomer {
    /// How agents address the customer.
    pub display_name: String,
    /// The customer's id.
    pub id: String,
    /// Service tier (`standard`, `vip`, …).
    pub tier: String,
}

/// Who is looking at an event: the one rule for what customers may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// The customer sees what happened in their conversation, not how the
    /// contact centre routed it: no `offer` or `offer_withdrawn`, none of
    /// the fields marked "agents only" (`queued.group`, `assigned.agent`,
    /// `transferred.from`, `closed.summary`), and in a session record no
    /// `group`, `agent` or `summary` ([`super::records::SessionRecord::new`]).
    /// Senders keep their agent id (`agent:<id>`), as ticket authors do.
    Customer,
    /// Agents, supervisors and admins: everything.
    Staff,
}

/// The frame of `event` for `viewer`, or `None` if the viewer does not see
/// it. A queue position is no event frame: the customer socket sends it as
/// `queue_status`, REST as the session's `queue`.
pub fn event_frame(event: &Event, viewer: Viewer) -> Option<EventFrame> {
    let staff = |value: String| (viewer == Viewer::Staff).then_some(value);
    let body = match &event.kind {
        EventKind::Message {
            sender: from,
            body,
            client_message_id,
            channel,
        } => EventBody::Message {
            body: body.clone(),
            channel: channel.to_string(),
            client_message_id: client_message_id.clone(),
            sender: sender(from),
        },
        EventKind::Queued { group } => EventBody::Queued {
            group: staff(group.to_string()),
        },
        EventKind::Offered { agent, deadline } => {
            if viewer == Viewer::Customer {
                return None;
            }
            EventBody::Offer {
                agent: agent.to_string(),
                channel: None,
                customer: None,
                deadline: Time(*deadline),
                group: None,
            }
        }
        EventKind::OfferLapsed { agent } => {
            if viewer == Viewer::Customer {
                return None;
            }
            EventBody::OfferWithdrawn {
                agent: agent.to_string(),
            }
        }
        EventKind::Assigned {
            agent,
            display_name,
        } => EventBody::Assigned {
            agent: staff(agent.to_string()),
            agent_name: display_name.clone(),
        },
        EventKind::Transferred { from } => EventBody::Transferred {
            from: staff(from.to_string()),
        },
        EventKind::WrapUp => EventBody::WrapUp,
        EventKind::Closed { summary } => EventBody::Closed {
            summary: summary.clone().and_then(staff),
        },
        EventKind::Abandoned => EventBody::Abandoned,
        EventKind::Typing { sender: from } => EventBody::Typing {
            sender: sender(from),
        },
        EventKind::QueuePosition(_) => return None,
        EventKind::Rated { score, comment } => EventBody::Rated {
            comment: comment.clone(),
            score: *score,
        },
        EventKind::Call(call) => {
            if viewer == Viewer::Customer && matches!(call, CallEvent::Ringing { .. }) {
                return None;
            }
            call_body(call, viewer)
        }
        EventKind::Delivery(report) => {
            if viewer == Viewer::Customer {
                return None;
            }
            EventBody::Delivery {
                account: report.account.clone(),
                code: report.code.clone(),
                of: report.of,
                reason: report.reason.clone(),
                state: report.state.as_str().to_owned(),
            }
        }
        EventKind::ResponseBreached {
            kind,
            due,
            since,
            group,
        } => {
            if viewer == Viewer::Customer {
                return None;
            }
            EventBody::ResponseBreached {
                due: Time(*due),
                group: group.as_ref().map(ToString::to_string),
                kind: kind.as_str().to_owned(),
                since: Time(*since),
            }
        }
        EventKind::ResponseDue { kind, due } => {
            if viewer == Viewer::Customer {
                return None;
            }
            EventBody::ResponseDue {
                due: due.map(Time),
                kind: kind.map(|kind| kind.as_str().to_owned()),
            }
        }
        EventKind::Monitored { by, mode } => {
            if viewer == Viewer::Customer {
                return None;
            }
            EventBody::Monitored {
                by: by.to_string(),
                mode: mode.map_or("stop", |mode| mode.as_str()).to_owned(),
            }
        }
        EventKind::Whisper {
            from,
            body,
            client_message_id,
        } => {
            if viewer == Viewer::Customer {
                return None;
            }
            EventBody::Whisper {
                body: body.clone(),
                client_message_id: client_message_id.clone(),
                sender: sender(&engine::message::Sender::Supervisor(from.clone())),
            }
        }
        EventKind::Steered { by, steer, reason } => {
            if viewer == Viewer::Customer {
                return None;
            }
            let steer = match steer {
                engine::supervision::Steer::Reassigned {
                    group,
                    agent,
                    priority,
                } => SteerBody::Reassigned {
                    agent: agent.as_ref().map(ToString::to_string),
                    group: group.to_string(),
                    priority: *priority,
                },
                engine::supervision::Steer::Reprioritised { from, to } => {
                    SteerBody::Reprioritised {
                        from: *from,
                        to: *to,
                    }
                }
            };
            EventBody::Steered {
                by: by.to_string(),
                reason: reason.clone(),
                steer,
            }
        }
    };
    Some(EventFrame {
        body,
        session: WireSession(event.session),
        seq: event.seq,
        at: Time(event.at),
    })
}

impl EventFrame {
    /// The `type`: the one name of the event's kind.
    pub fn kind(&self) -> &'static str {
        match self.body {
            EventBody::Message { .. } => "message",
            EventBody::Queued { .. } => "queued",
            EventBody::Offer { .. } => "offer",
            EventBody::OfferWithdrawn { .. } => "offer_withdrawn",
            EventBody::Assigned { .. } => "assigned",
            EventBody::Typing { .. } => "typing",
            EventBody::Transferred { .. } => "transferred",
            EventBody::WrapUp => "wrap_up",
            EventBody::Closed { .. } => "closed",
            EventBody::Abandoned => "abandoned",
            EventBody::Rated { .. } => "rated",
            EventBody::Call { .. } => "call",
            EventBody::Delivery { .. } => "delivery",
            EventBody::Steered { .. } => "steered",
            EventBody::Monitored { .. } => "monitored",
            EventBody::ResponseBreached { .. } => "response_breached",
            EventBody::ResponseDue { .. } => "response_due",
            EventBody::Whisper { .. } => "whisper",
        }
    }
}

/// The `call` frame's fields for one call event.
fn call_body(event: &CallEvent, viewer: Viewer) -> EventBody {
    let staff = |agent: &engine::ids::AgentId| (viewer == Viewer::Staff).then(|| agent.to_string());
    let (call, agent, by, digits, from, talk_ms) = match event {
        CallEvent::Started { from, digits } => (
            "started",
            None,
            None,
            Some(digits.clone()),
            Some(from.clone()),
            None,
        ),
        CallEvent::Ringing { agent } => ("ringing", staff(agent), None, None, None, None),
        CallEvent::Answered { agent } => ("answered", staff(agent), None, None, None, None),
        CallEvent::Held => ("held", None, None, None, None, None),
        CallEvent::Resumed => ("resumed", None, None, None, None, None),
        CallEvent::Digits { digits } => ("digits", None, None, Some(digits.clone()), None, None),
        CallEvent::Ended { by, talk_ms } => {
            let by = match by {
                CallEnd::Caller => "caller",
                CallEnd::Agent => "agent",
                CallEnd::Dropped => "dropped",
            };
            (
                "ended",
                None,
                Some(by.to_owned()),
                None,
                None,
                Some(*talk_ms),
            )
        }
    };
    EventBody::Call {
        call: call.to_owned(),
        agent,
        by,
        digits,
        from,
        talk_ms,
    }
}

/// `type`, `session`, `seq` and `at` first, then the kind's fields by name,
/// so a frame reads the same in a log, a capture and PROTOCOL.md.
impl Serialize for EventFrame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let body = serde_json::to_value(&self.body).map_err(S::Error::custom)?;
        let fields: BTreeMap<&String, &serde_json::Value> = body
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.as_str() != "type")
            .collect();
        let mut map = serializer.serialize_map(Some(fields.len() + 4))?;
        map.serialize_entry("type", self.kind())?;
        map.serialize_entry("session", &self.session)?;
        map.serialize_entry("seq", &self.seq)?;
        map.serialize_entry("at", &self.at)?;
        for (name, value) in fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use actors::group::QueueStatus;
    use engine::ids::{AgentId, GroupId, SessionId};
    use engine::message::Sender;
    use serde_json::json;

    use super::*;

    fn event(kind: EventKind) -> Event {
        Event {
            session: SessionId(7),
            seq: 3,
            at: 1_795_514_724_169,
            kind,
        }
    }

    fn check(
        kind: EventKind,
        customer: Option<serde_json::Value>,
        staff: Option<serde_json::Value>,
    ) {
        let event = event(kind);
        let encode =
            |viewer| event_frame(&event, viewer).map(|frame| serde_json::to_value(frame).unwrap());
        assert_eq!(
            encode(Viewer::Customer),
            customer,
            "customer view of {event:?}"
        );
        assert_eq!(encode(Viewer::Staff), staff, "staff view of {event:?}");
    }

    /// The frame of the sample event (session 7, seq 3) with `kind`'s and
    /// `fields`' entries.
    fn frame_of(kind: serde_json::Value, fields: serde_json::Value) -> Option<serde_json::Value> {
        let mut value = json!({"session": "7", "seq": 3, "at": 1_795_514_724_169_i64});
        let object = value.as_object_mut().unwrap();
        object.extend(kind.as_object().unwrap().clone());
        object.extend(fields.as_object().unwrap().clone());
        Some(value)
    }

    #[test]
    fn customers_see_their_call_but_not_which_phone_rang() {
        let agent = AgentId::new("chen.jie");
        let with = |fields: serde_json::Value| frame_of(json!({"type": "call"}), fields);
        check(
            EventKind::Call(CallEvent::Ringing {
                agent: agent.clone(),
            }),
            None,
            with(json!({"call": "ringing", "agent": "chen.jie"})),
        );
        check(
            EventKind::Call(CallEvent::Answered { agent }),
            with(json!({"call": "answered"})),
            with(json!({"call": "answered", "agent": "chen.jie"})),
        );
        check(
            EventKind::Call(CallEvent::Ended {
                by: CallEnd::Dropped,
                talk_ms: 0,
            }),
            with(json!({"call": "ended", "by": "dropped", "talk_ms": 0})),
            with(json!({"call": "ended", "by": "dropped", "talk_ms": 0})),
        );
    }

    #[test]
    fn customers_see_no_offers_and_no_agents_only_fields() {
        let with = |fields: serde_json::Value| frame_of(json!({}), fields);
        let chen = AgentId::new("chen.jie");
        check(
            EventKind::Message {
                sender: Sender::Agent(chen.clone()),
                body: "hi".into(),
                client_message_id: None,
                channel: engine::channel::Channel::Web,
            },
            with(
                json!({"type": "message", "body": "hi", "channel": "web", "sender": "agent:chen.jie"}),
            ),
            with(
                json!({"type": "message", "body": "hi", "channel": "web", "sender": "agent:chen.jie"}),
            ),
        );
        check(
            EventKind::Queued {
                group: GroupId::new("vip"),
            },
            with(json!({"type": "queued"})),
            with(json!({"type": "queued", "group": "vip"})),
        );
        check(
            EventKind::Offered {
                agent: chen.clone(),
                deadline: 5,
            },
            None,
            with(json!({"type": "offer", "agent": "chen.jie", "deadline": 5})),
        );
        check(
            EventKind::OfferLapsed {
                agent: chen.clone(),
            },
            None,
            with(json!({"type": "offer_withdrawn", "agent": "chen.jie"})),
        );
        check(
            EventKind::Assigned {
                agent: chen.clone(),
                display_name: "Chen Jie".into(),
            },
            with(json!({"type": "assigned", "agent_name": "Chen Jie"})),
            with(json!({"type": "assigned", "agent": "chen.jie", "agent_name": "Chen Jie"})),
        );
        check(
            EventKind::Transferred { from: chen.clone() },
            with(json!({"type": "transferred"})),
            with(json!({"type": "transferred", "from": "chen.jie"})),
        );
        check(
            EventKind::Closed {
                summary: Some("done".into()),
            },
            with(json!({"type": "closed"})),
            with(json!({"type": "closed", "summary": "done"})),
        );
        check(
            EventKind::Typing {
                sender: Sender::Customer,
            },
            with(json!({"type": "typing", "sender": "customer"})),
            with(json!({"type": "typing", "sender": "customer"})),
        );
        check(
            EventKind::Rated {
                score: 5,
                comment: None,
            },
            with(json!({"type": "rated", "score": 5})),
            with(json!({"type": "rated", "score": 5})),
        );
        check(
            EventKind::WrapUp,
            with(json!({"type": "wrap_up"})),
            with(json!({"type": "wrap_up"})),
        );
        check(
            EventKind::Abandoned,
            with(json!({"type": "abandoned"})),
            with(json!({"type": "abandoned"})),
        );
        check(
            EventKind::QueuePosition(QueueStatus {
                group: GroupId::new("vip"),
                position: 1,
                n_waiting: 1,
                estimated_wait_secs: 30,
            }),
            None,
            None,
        );
    }

    #[test]
    fn only_agents_see_where_a_platform_reply_stands() {
        check(
            EventKind::Delivery(actors::DeliveryReport {
                of: 2,
                account: "wx-main".into(),
                state: actors::DeliveryState::Failed,
                code: Some("45015".into()),
                reason: Some("outside the 48-hour window".into()),
            }),
            None,
            frame_of(
                json!({"type": "delivery"}),
                json!({"account": "wx-main", "code": "45015", "of": 2, "reason": "outside the 48-hour window", "state": "failed"}),
            ),
        );
    }

    #[test]
    fn frames_start_with_type_session_seq_and_at_and_read_back() {
        let frame = event_frame(
            &event(EventKind::Rated {
                score: 4,
                comment: Some("ok".into()),
            }),
            Viewer::Staff,
        )
        .unwrap();
        let text = serde_json::to_string(&frame).unwrap();
        assert_eq!(
            text,
            r#"{"type":"rated","session":"7","seq":3,"at":1795514724169,"comment":"ok","score":4}"#
        );
        let back: EventFrame = serde_json::from_str(&text).unwrap();
        assert_eq!(back.body, frame.body);
        assert_eq!(
            (back.session, back.seq, back.at),
            (frame.session, frame.seq, frame.at)
        );
    }
}
