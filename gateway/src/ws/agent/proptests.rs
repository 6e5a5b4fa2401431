//! Every `/ws/agent` frame type round-trips through the decoder and
//! refuses a field it does not have (`ws::frames::proptests`); `presence`
//! is the engine's `PresenceRequest`, which PROTOCOL.md lets ignore
//! unknown fields, so only its round trip is checked.

use actors::CallControl;
use engine::ids::{AgentId, GroupId};
use engine::presence::PresenceRequest;
use proptest::prelude::*;

use super::{Call, Finish, Hello, History, OnSession, OnTicket, SendMessage, Transfer};
use crate::ws::frames::ClientFrame;
use crate::ws::frames::proptests::{check_round_trip, request_id, session};

fn presence() -> impl Strategy<Value = PresenceRequest> {
    prop_oneof![
        Just(PresenceRequest::Available),
        Just(PresenceRequest::Offline),
        "\\PC{0,20}".prop_map(|reason| PresenceRequest::Away { reason }),
    ]
}

fn call_action() -> impl Strategy<Value = CallControl> {
    prop_oneof![
        Just(CallControl::Hold),
        Just(CallControl::Resume),
        Just(CallControl::HangUp),
    ]
}

/// The error a `call` frame with these fields gets (`None`: accepted).
fn call_error(fields: serde_json::Value) -> Option<(&'static str, String)> {
    let mut value = fields;
    value["type"] = "call".into();
    let frame = ClientFrame::parse(&value.to_string()).unwrap();
    frame
        .fields::<Call>()
        .err()
        .map(|err| (err.code, err.message))
}

#[test]
fn call_actions_are_spelled_as_protocol_md_gives_them() {
    let session = "7530936009453907968";
    for action in ["hold", "resume", "hang_up"] {
        assert_eq!(
            call_error(serde_json::json!({"session": session, "action": action})),
            None
        );
    }
    for (fields, named) in [
        (
            serde_json::json!({"session": session, "action": "park"}),
            "`action`",
        ),
        (
            serde_json::json!({"session": session, "action": "HOLD"}),
            "`action`",
        ),
        (serde_json::json!({"session": session}), "`action`"),
        (serde_json::json!({"action": "hold"}), "`session`"),
    ] {
        let (code, message) = call_error(fields.clone()).expect("refused");
        assert_eq!(code, "invalid_frame", "{fields}");
        assert!(message.contains(named), "{fields}: {message}");
    }
}

proptest! {
    #[test]
    fn hello_round_trips(
        last_seq in prop::collection::btree_map(session(), any::<u64>(), 0..4),
        request_id in request_id(),
    ) {
        check_round_trip("hello", &Hello { last_seq }, request_id)?;
    }

    #[test]
    fn session_frames_round_trip(session in session(), request_id in request_id()) {
        for kind in ["accept", "reject", "typing"] {
            check_round_trip(kind, &OnSession { session }, request_id.clone())?;
        }
    }

    #[test]
    fn message_round_trips(
        session in session(),
        client_message_id in "\\PC{0,32}",
        body in "\\PC{0,64}",
        request_id in request_id(),
    ) {
        let message = SendMessage { session, client_message_id, body };
        check_round_trip("message", &message, request_id)?;
    }

    #[test]
    fn transfer_round_trips(
        session in session(),
        group in prop::option::of("[a-z_]{1,16}"),
        agent in prop::option::of("[a-z.]{1,16}"),
        request_id in request_id(),
    ) {
        let transfer = Transfer {
            session,
            group: group.map(GroupId::new),
            agent: agent.map(AgentId::new),
        };
        check_round_trip("transfer", &transfer, request_id)?;
    }

    #[test]
    fn call_round_trips(session in session(), action in call_action(), request_id in request_id()) {
        check_round_trip("call", &Call { session, action }, request_id)?;
    }

    #[test]
    fn any_other_call_action_is_refused_naming_the_field(
        session in session(),
        action in "\\PC{0,12}",
    ) {
        prop_assume!(!["hold", "resume", "hang_up"].contains(&action.as_str()));
        let fields = serde_json::json!({"session": session, "action": action});
        let (code, message) = call_error(fields).expect("refused");
        prop_assert_eq!(code, "invalid_frame");
        prop_assert!(message.contains("`action`"), "{}", message);
    }

    #[test]
    fn wrap_up_and_close_round_trip(
        session in session(),
        summary in prop::option::of("\\PC{0,64}"),
        request_id in request_id(),
    ) {
        for kind in ["wrap_up", "close"] {
            let finish = Finish { session, summary: summary.clone() };
            check_round_trip(kind, &finish, request_id.clone())?;
        }
    }

    #[test]
    fn history_round_trips(session in session(), after_seq in any::<u64>(), request_id in request_id()) {
        check_round_trip("history", &History { session, after_seq }, request_id)?;
    }

    #[test]
    fn ticket_frames_round_trip(ticket_id in "\\PC{0,24}", request_id in request_id()) {
        for kind in ["watch_ticket", "unwatch_ticket"] {
            let on = OnTicket { ticket_id: ticket_id.clone() };
            check_round_trip(kind, &on, request_id.clone())?;
        }
    }

    #[test]
    fn presence_round_trips(request in presence()) {
        let mut value = serde_json::to_value(&request).unwrap();
        value["type"] = "presence".into();
        let frame = ClientFrame::parse(&value.to_string()).unwrap();
        let (back, _) = frame.fields::<PresenceRequest>().unwrap();
        prop_assert_eq!(back, request);
    }
}
