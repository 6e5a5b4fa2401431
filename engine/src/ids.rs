//! Identifiers. String ids are `Arc<str>` inside so that actors can clone them
//! freely on the hot path.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Builds the id from any string.
            pub fn new(id: impl AsRef<str>) -> Self {
                Self(Arc::from(id.as_ref()))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self::new(id)
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// One person across every channel (see `customer_identities`).
    CustomerId
);
string_id!(
    /// An agent's login name.
    AgentId
);
string_id!(
    /// A skill group's name, as used in routing rules (`gold_service`).
    GroupId
);

string_id!(
    /// A ticket (`T-` and a base-36 number from [`TicketIdGen`]).
    TicketId
);
string_id!(
    /// A knowledge-base article (`kb-zh-order-delay`).
    ArticleId
);
string_id!(
    /// A reply template (`tpl-order-delay`).
    TemplateId
);

/// Makes ticket ids with the session id scheme (time, node, counter), written
/// `T-` and base 36 so that a customer can read one out on the phone.
#[derive(Debug)]
pub struct TicketIdGen(SessionIdGen);

impl TicketIdGen {
    /// A generator for node `node`.
    pub fn new(node: u8) -> Self {
        TicketIdGen(SessionIdGen::new(node))
    }

    /// The next id at time `now` (ms).
    pub fn next(&mut self, now: crate::Millis) -> TicketId {
        const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut n = self.0.next(now).0;
        let mut digits = Vec::with_capacity(13);
        loop {
            digits.push(DIGITS[(n % 36) as usize]);
            n /= 36;
            if n == 0 {
                break;
            }
        }
        digits.reverse();
        TicketId::new(format!("T-{}", String::from_utf8_lossy(&digits)))
    }
}

/// A session (one conversation). Numeric so that it hashes cheaply to a
/// supervisor shard and sorts by creation time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

/// Makes session ids that are unique across restarts of one node and across
/// nodes: 42 bits of milliseconds, 8 bits of node id, 14 bits of counter.
#[derive(Debug)]
pub struct SessionIdGen {
    node: u64,
    last_ms: u64,
    counter: u64,
}

impl SessionIdGen {
    /// A generator for node `node` (only the low 8 bits are used).
    pub fn new(node: u8) -> Self {
        Self {
            node: u64::from(node),
            last_ms: 0,
            counter: 0,
        }
    }

    /// The next id at time `now` (ms). Ids increase even if the clock steps back.
    pub fn next(&mut self, now: crate::Millis) -> SessionId {
        let now = (now.max(0) as u64) & ((1 << 42) - 1);
        if now > self.last_ms {
            self.last_ms = now;
            self.counter = 0;
        } else {
            self.counter += 1;
            if self.counter >= 1 << 14 {
                self.last_ms += 1;
                self.counter = 0;
            }
        }
        SessionId((self.last_ms << 22) | (self.node << 14) | self.counter)
    }
}

/// The node that minted `session` (its 8 bits of node id).
pub fn node_of(session: SessionId) -> u8 {
    ((session.0 >> 14) & 0xff) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_names_the_node_that_minted_it() {
        for node in [0, 1, 7, 255] {
            let mut ids = SessionIdGen::new(node);
            for now in [0, 1_000, 1 << 41] {
                assert_eq!(node_of(ids.next(now)), node);
            }
        }
    }

    #[test]
    fn session_ids_increase_even_when_clock_repeats_or_steps_back() {
        let mut ids = SessionIdGen::new(3);
        let mut last = ids.next(1_000);
        for now in [1_000, 1_000, 999, 2_000, 1_500] {
            let next = ids.next(now);
            assert!(next > last, "{next} after {last}");
            last = next;
        }
        // 2^14 ids in one millisecond spill into the next millisecond, still unique.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            assert!(seen.insert(ids.next(5_000)));
        }
    }

    #[test]
    fn ticket_ids_are_short_unique_and_readable() {
        let mut ids = TicketIdGen::new(1);
        let first = ids.next(1_764_000_000_000);
        let second = ids.next(1_764_000_000_000);
        assert_ne!(first, second);
        assert!(first.as_str().starts_with("T-"), "{first}");
        assert!(first.as_str().len() <= 15, "{first}");
        assert!(
            first.as_str()[2..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
    }
}
