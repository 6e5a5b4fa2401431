//! What one socket has already sent, so a `hello` replay and the live
//! stream never repeat an event, and the replay itself.

use std::collections::HashMap;

use actors::{ApiError, Event};
use engine::ids::SessionId;

use crate::state::AppState;
use crate::ws::link::{Flow, Handler, Link};

/// Highest `seq` sent per session.
#[derive(Debug, Default)]
pub struct Delivered {
    last_seq: HashMap<SessionId, u64>,
}

impl Delivered {
    /// The client says it has everything of `session` up to `seq`.
    pub fn client_has(&mut self, session: SessionId, seq: u64) {
        let last = self.last_seq.entry(session).or_insert(0);
        *last = (*last).max(seq);
    }

    /// Whether `event` is new to this client, recording it if so.
    /// Ephemeral events (typing, the due time of a reply) carry the last
    /// published `seq` and are always new.
    pub fn admit(&mut self, event: &Event) -> bool {
        if event.kind.is_ephemeral() {
            return true;
        }
        let last = self.last_seq.entry(event.session).or_insert(0);
        if event.seq <= *last {
            return false;
        }
        *last = event.seq;
        true
    }

    /// The highest `seq` sent for `session`.
    pub fn last(&self, session: SessionId) -> u64 {
        self.last_seq.get(&session).copied().unwrap_or(0)
    }

    /// Whether anything of `session` went through this socket (or the
    /// client said it had some): a session the client knows.
    pub fn knows(&self, session: SessionId) -> bool {
        self.last_seq.contains_key(&session)
    }
}

/// Sends what `handler`'s client missed of `session` after `after` (the
/// higher of what the client said it has and what this socket sent), in
/// order, through the handler's own event delivery (so filtering and
/// de-duplication are the live stream's).
pub async fn replay<H: Handler>(
    handler: &mut H,
    link: &mut Link,
    state: &AppState,
    session: SessionId,
    after: u64,
) -> Result<Flow, ApiError> {
    let history = state.switchboard.history(session, after).await?;
    for event in history {
        if handler.on_event(link, event).await == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::EventKind;
    use engine::message::Sender;

    fn event(session: u64, seq: u64, kind: EventKind) -> Event {
        Event {
            session: SessionId(session),
            seq,
            at: 0,
            kind,
        }
    }

    #[test]
    fn events_pass_once_in_seq_order_and_typing_always() {
        let mut delivered = Delivered::default();
        delivered.client_has(SessionId(1), 3);
        let typing = EventKind::Typing {
            sender: Sender::Customer,
        };
        let cases = [
            (event(1, 2, EventKind::WrapUp), false),
            (event(1, 3, EventKind::WrapUp), false),
            (event(1, 4, EventKind::WrapUp), true),
            (event(1, 4, EventKind::WrapUp), false),
            (event(1, 4, typing.clone()), true),
            (event(1, 4, typing), true),
            (event(2, 1, EventKind::WrapUp), true),
        ];
        for (event, expected) in cases {
            assert_eq!(delivered.admit(&event), expected, "{event:?}");
        }
        assert_eq!(delivered.last(SessionId(1)), 4);
        assert!(delivered.knows(SessionId(2)));
        assert!(!delivered.knows(SessionId(3)));
    }
}
