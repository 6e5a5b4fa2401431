//! The JSON conventions every client sees, written once and used by the
//! sockets (`ws`), the REST API (`rest`) and the webhooks (`webhooks`)
//! alike (PROTOCOL.md §2):
//!
//! - session ids are decimal **strings** ([`WireSession`]): they exceed 2^53,
//!   past which JavaScript numbers lose digits;
//! - times are integer **milliseconds since the Unix epoch** (UTC, the
//!   server's clock) ([`Time`]); a time the engine does not know is absent;
//! - whoever wrote something is one string ([`sender`]): `customer`,
//!   `agent:<agent id>` or `system`;
//! - a session event is one object, [`event::EventFrame`], whose `type` names
//!   its kind, with one rule for what a customer may see of it
//!   ([`event::Viewer`]);
//! - the records both REST and the data platform send (customers, sessions)
//!   are in [`records`]; the data platform's own (tickets, the 360° view,
//!   articles) and its socket notices in [`platform`].
//!
//! Architecture invariant: this module is a leaf of the crate: it knows the
//! engine's types and serde, and no other module of the gateway, so that
//! `rest`, `ws` and `webhooks` can all use it without depending on each other.

pub mod event;
pub mod platform;
pub mod records;

use engine::ids::SessionId;
use engine::message::Sender;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// A session id on the wire: a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, example = "7530934589636739072")]
pub struct WireSession(pub SessionId);

impl Serialize for WireSession {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.0)
    }
}

impl<'de> Deserialize<'de> for WireSession {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse::<u64>()
            .map(|id| WireSession(SessionId(id)))
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a session id")))
    }
}

/// A time on the wire: integer milliseconds since the Unix epoch (UTC). It
/// is the engine's own [`engine::Millis`], so nothing is rounded or reformatted on
/// the way (spelled `i64` here: the OpenAPI derive does not see through the
/// alias).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(example = 1_795_514_724_169_i64)]
pub struct Time(pub i64);

impl Time {
    /// Unix seconds (token claims) as a time.
    pub fn from_secs(secs: i64) -> Time {
        Time(secs.saturating_mul(1000))
    }
}

/// An agent's SIP phone as the registrar knows it: REST's agent detail and
/// the agent socket's `welcome` and `phone` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PhoneRecord {
    /// At least one live registration (`sip:<agent id>@…`).
    pub registered: bool,
}

/// `customer`, `agent:<id>`, `supervisor:<id>` or `system`: who wrote a
/// message, who is typing, who created or changed a ticket.
pub fn sender(sender: &Sender) -> String {
    match sender {
        Sender::Customer => "customer".into(),
        Sender::Agent(agent) => format!("agent:{agent}"),
        Sender::Supervisor(agent) => format!("supervisor:{agent}"),
        Sender::System => "system".into(),
    }
}

#[cfg(test)]
mod tests {
    use engine::ids::AgentId;

    use super::*;

    #[test]
    fn senders_are_one_string() {
        assert_eq!(sender(&Sender::Customer), "customer");
        assert_eq!(
            sender(&Sender::Agent(AgentId::new("chen.jie"))),
            "agent:chen.jie"
        );
        assert_eq!(sender(&Sender::System), "system");
    }

    #[test]
    fn session_ids_are_decimal_strings() {
        let session = WireSession(SessionId(7_530_934_589_636_739_072));
        let text = serde_json::to_string(&session).unwrap();
        assert_eq!(text, r#""7530934589636739072""#);
        assert_eq!(serde_json::from_str::<WireSession>(&text).unwrap(), session);
        assert!(serde_json::from_str::<WireSession>("7").is_err());
    }
}
