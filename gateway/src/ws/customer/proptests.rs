//! Every `/ws/customer` frame type round-trips through the decoder and
//! refuses a field it does not have (`ws::frames::proptests`).

use proptest::prelude::*;

use super::{Hello, OnSession, Rate, SendMessage};
use crate::ws::frames::proptests::{check_round_trip, request_id, session};

proptest! {
    #[test]
    fn hello_round_trips(
        channel in prop::option::of("\\PC{0,8}"),
        last_seq in prop::collection::btree_map(session(), any::<u64>(), 0..4),
        request_id in request_id(),
    ) {
        let hello = Hello { _channel: channel, last_seq };
        check_round_trip("hello", &hello, request_id)?;
    }

    #[test]
    fn message_round_trips(
        client_message_id in "\\PC{0,32}",
        body in "\\PC{0,64}",
        request_id in request_id(),
    ) {
        check_round_trip("message", &SendMessage { client_message_id, body }, request_id)?;
    }

    #[test]
    fn typing_and_leave_round_trip(session in session(), request_id in request_id()) {
        check_round_trip("typing", &OnSession { session }, request_id.clone())?;
        check_round_trip("leave", &OnSession { session }, request_id)?;
    }

    #[test]
    fn rate_round_trips(
        session in session(),
        score in any::<u8>(),
        comment in prop::option::of("\\PC{0,64}"),
        request_id in request_id(),
    ) {
        check_round_trip("rate", &Rate { session, score, comment }, request_id)?;
    }
}
