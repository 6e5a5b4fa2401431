//! Property tests of the client frame decoder: any text gets a frame or a
//! clear error, never a panic; the endpoints' frame types round-trip
//! (`ws::customer::proptests`, `ws::agent::proptests`) through the helpers
//! here. `PROPTEST_CASES` raises the number of cases.

use std::fmt::Debug;

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{ClientFrame, NoFields, WireSession};

/// The codes an undecodable frame may get.
const DECODE_CODES: [&str; 3] = ["bad_json", "missing_type", "invalid_frame"];

/// Any JSON value, nested a little.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        "[0-9]{1,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A `request_id` as clients send them.
pub(crate) fn request_id() -> impl Strategy<Value = Option<String>> {
    // At most 128 bytes: 30 characters of up to 4 bytes.
    prop::option::of("\\PC{0,30}")
}

/// Any session id.
pub(crate) fn session() -> impl Strategy<Value = WireSession> {
    any::<u64>().prop_map(|id| WireSession(engine::ids::SessionId(id)))
}

/// Checks that `frame`, sent as a `kind` frame with `request_id`, decodes
/// to itself, and that the same frame with one field too many is refused
/// with `invalid_frame` naming that field.
pub(crate) fn check_round_trip<T>(
    kind: &str,
    frame: &T,
    request_id: Option<String>,
) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Value::Object(mut fields) = serde_json::to_value(frame).unwrap() else {
        panic!("{kind} frames are objects");
    };
    fields.insert("type".into(), Value::from(kind));
    if let Some(id) = &request_id {
        fields.insert("request_id".into(), Value::from(id.clone()));
    }
    let text = Value::Object(fields.clone()).to_string();
    let decoded = ClientFrame::parse(&text).map_err(|err| fail(&text, err))?;
    prop_assert_eq!(&decoded.kind, kind);
    prop_assert_eq!(&decoded.request_id, &request_id);
    let (back, echoed) = decoded.fields::<T>().map_err(|err| fail(&text, err))?;
    prop_assert_eq!(&back, frame, "{}", text);
    prop_assert_eq!(echoed, request_id);

    fields.insert("not_a_field".into(), Value::from(1));
    let text = Value::Object(fields).to_string();
    let err = ClientFrame::parse(&text)
        .map_err(|err| fail(&text, err))?
        .fields::<T>()
        .expect_err("an unknown field is refused");
    prop_assert_eq!(err.code, "invalid_frame");
    prop_assert!(err.message.contains("`not_a_field`"), "{}", err.message);
    Ok(())
}

fn fail(text: &str, err: super::FrameError) -> TestCaseError {
    TestCaseError::fail(format!("{text}: {} {}", err.code, err.message))
}

/// Decodes `text` as far as it goes, as an endpoint does, into `T`.
fn decode_as<T: DeserializeOwned>(text: &str) -> Result<(), super::FrameError> {
    ClientFrame::parse(text)?.fields::<T>().map(|_| ())
}

/// Frame-like text: JSON objects with a `type`, broken in places.
fn frame_like_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        (
            prop::option::of(json_value()),
            prop::collection::btree_map("[a-z_]{1,12}", json_value(), 0..5),
        )
            .prop_map(|(kind, fields)| {
                let mut object: Map<String, Value> = fields.into_iter().collect();
                if let Some(kind) = kind {
                    object.insert("type".into(), kind);
                }
                Value::Object(object).to_string()
            }),
        (json_value(), 0.0..1.0f64).prop_map(|(value, cut)| {
            let text = value.to_string();
            let mut at = (cut * text.len() as f64) as usize;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text[..at].to_string()
        }),
    ]
}

proptest! {
    #[test]
    fn any_text_decodes_or_gets_a_clear_error(text in frame_like_text()) {
        match ClientFrame::parse(&text) {
            Ok(frame) => {
                prop_assert!(frame.value.is_object());
                prop_assert!(frame.request_id.as_ref().is_none_or(|id| id.len() <= 128));
                // Step three never panics either, whatever the type.
                if let Err(err) = frame.fields::<NoFields>() {
                    prop_assert_eq!(err.code, "invalid_frame");
                    prop_assert!(err.message.contains('`'), "{}", err.message);
                }
            }
            Err(err) => {
                prop_assert!(DECODE_CODES.contains(&err.code), "{}", err.code);
                prop_assert!(!err.message.is_empty());
            }
        }
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named(
        kind in "[a-z_]{1,12}",
        value in json_value(),
    ) {
        prop_assume!(!value.is_string());
        let text = serde_json::json!({"type": kind, "session": value}).to_string();
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct OnSession {
            session: WireSession,
        }
        let err = decode_as::<OnSession>(&text).expect_err("a session id is a string");
        prop_assert_eq!(err.code, "invalid_frame");
        prop_assert!(err.message.starts_with("field `session`: "), "{}", err.message);
    }

    #[test]
    fn session_ids_round_trip_as_decimal_strings(session in session()) {
        let text = serde_json::to_string(&session).unwrap();
        prop_assert_eq!(&text, &format!("\"{}\"", session.0.0));
        prop_assert_eq!(serde_json::from_str::<WireSession>(&text).unwrap(), session);
    }

    #[test]
    fn frames_without_fields_round_trip(request_id in request_id()) {
        check_round_trip("ping", &NoFields {}, request_id)?;
    }
}
