//! The JSON frames of the WebSocket protocol (PROTOCOL.md is their manual).
//!
//! Client frames are objects with a `type`; parsing goes in steps so that
//! each kind of mistake gets its own error code: not JSON (`bad_json`), not
//! an object with a string `type` (`missing_type`), a `type` this endpoint
//! does not know (`unknown_type`), and fields missing or of the wrong type
//! (`invalid_frame`, naming the field).
//!
//! Session events, session ids, times and senders are encoded by
//! [`crate::wire`], the same as in the REST API.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::wire::WireSession;

/// A client frame that passed the first checks: a JSON object with a
/// string `type`, and its optional `request_id`.
#[derive(Debug)]
pub struct ClientFrame {
    /// The `type`.
    pub kind: String,
    /// Echoed in the reply (`ack`, `ok` or `error`) so clients can match it.
    pub request_id: Option<String>,
    /// The whole object.
    pub value: serde_json::Value,
}

/// The fields of a frame type that has none besides `type` and
/// `request_id` (`ping`, `queues`, `sessions`): anything else is refused
/// like an unknown field of any other type.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(Serialize, PartialEq))]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// A frame the server could not use, with what to tell the client.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    /// Stable code.
    pub code: &'static str,
    /// For people, naming the field at fault.
    pub message: String,
    /// The frame's `request_id`, when it had one.
    pub request_id: Option<String>,
}

impl ClientFrame {
    /// Steps one and two: JSON, an object, a string `type`.
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        let error = |code, message: String| FrameError {
            code,
            message,
            request_id: None,
        };
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|err| error("bad_json", format!("frame is not JSON: {err}")))?;
        let Some(object) = value.as_object() else {
            return Err(error("missing_type", "frame must be a JSON object".into()));
        };
        let request_id = match object.get("request_id") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(id)) if id.len() <= 128 => Some(id.clone()),
            Some(_) => {
                return Err(error(
                    "invalid_frame",
                    "`request_id` must be a string of at most 128 bytes".into(),
                ));
            }
        };
        let kind = match object.get("type") {
            Some(serde_json::Value::String(kind)) => kind.clone(),
            Some(_) => {
                return Err(FrameError {
                    request_id,
                    ..error("missing_type", "`type` must be a string".into())
                });
            }
            None => {
                return Err(FrameError {
                    request_id,
                    ..error("missing_type", "frame has no `type` field".into())
                });
            }
        };
        Ok(ClientFrame {
            kind,
            request_id,
            value,
        })
    }

    /// Step three: the fields of this `type` (besides `type` and
    /// `request_id`), with the path of a bad one.
    pub fn fields<T: DeserializeOwned>(self) -> Result<(T, Option<String>), FrameError> {
        let request_id = self.request_id;
        let kind = self.kind;
        let mut value = self.value;
        if let Some(object) = value.as_object_mut() {
            object.remove("type");
            object.remove("request_id");
        }
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(fields) => Ok((fields, request_id)),
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner().to_string();
                let message = if path == "." {
                    format!("bad `{kind}` frame: {inner}")
                } else {
                    format!("field `{path}`: {inner}")
                };
                Err(FrameError {
                    code: "invalid_frame",
                    message,
                    request_id,
                })
            }
        }
    }

    /// The error for a `type` this endpoint does not know.
    pub fn unknown(self, known: &[&str]) -> FrameError {
        FrameError {
            code: "unknown_type",
            message: format!(
                "unknown frame type `{}`; this endpoint takes {}",
                self.kind,
                known.join(", ")
            ),
            request_id: self.request_id,
        }
    }
}

/// Something the server sends that is not a session event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// A message was stored (durably) with this `seq`.
    Ack {
        /// Echo of the frame's `request_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// Echo of the message's client id.
        client_message_id: String,
        /// The session it went to.
        session: WireSession,
        /// Its sequence number.
        seq: u64,
        /// It had been stored before; nothing new was stored.
        duplicate: bool,
    },
    /// A request without a result of its own succeeded.
    Ok {
        /// Echo of the frame's `request_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// A request failed; the connection stays open.
    Error {
        /// Echo of the frame's `request_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// Echo of the message's client id, for `message` frames.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_message_id: Option<String>,
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Answer to `ping`.
    Pong {
        /// Echo of the frame's `request_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
}

impl Reply {
    /// The error frame for `err`.
    pub fn error(err: FrameError) -> Reply {
        Reply::Error {
            request_id: err.request_id,
            client_message_id: None,
            code: err.code,
            message: err.message,
        }
    }
}

/// Serializes a frame; frames are built from our own types and always serialize.
pub fn to_text<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).expect("frames serialize")
}

#[cfg(test)]
pub(crate) mod proptests;
