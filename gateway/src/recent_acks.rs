//! Platform messages acknowledged lately, by channel account and platform
//! message id: a session recognises a resent message itself while it is
//! open; this answers a platform's retry that arrives after it closed with
//! the same ack instead of a new session
//! (`rest::channel_inbound`).

use channels::Accepted;

/// How long an ack is remembered for a platform's retry: WeChat retries
/// three times within 15 s; others within minutes.
const RECENT_ACK_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// The most acks remembered, every account together (about 200 bytes each).
const RECENT_ACKS_MAX: usize = 100_000;

/// Platform messages acknowledged in the last [`RECENT_ACK_TTL`] (at most
/// [`RECENT_ACKS_MAX`]), by account and platform message id. A session
/// recognises a resent message itself while it is open; this covers a
/// retry that arrives after it closed. In memory: a restart forgets them.
#[derive(Default)]
pub struct RecentAcks {
    inner: std::sync::Mutex<RecentInner>,
}

#[derive(Default)]
struct RecentInner {
    by_id: std::collections::HashMap<(String, String), Accepted>,
    /// Oldest first: when each was remembered.
    order: std::collections::VecDeque<(std::time::Instant, (String, String))>,
}

impl RecentAcks {
    /// The ack of `id` on `account`, if remembered.
    pub fn get(&self, account: &str, id: &str) -> Option<Accepted> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .by_id
            .get(&(account.to_owned(), id.to_owned()))
            .cloned()
    }

    /// Remembers `ack` of `account`, forgetting what is too old or too many.
    pub fn insert(&self, account: &str, ack: Accepted) {
        let now = std::time::Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((at, key)) = inner.order.front() {
            let expired = now.duration_since(*at) > RECENT_ACK_TTL;
            if !expired && inner.order.len() < RECENT_ACKS_MAX {
                break;
            }
            let key = key.clone();
            inner.order.pop_front();
            inner.by_id.remove(&key);
        }
        let key = (account.to_owned(), ack.platform_message_id.clone());
        if inner.by_id.insert(key.clone(), ack).is_none() {
            inner.order.push_back((now, key));
        }
    }
}
