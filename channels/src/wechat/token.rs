//! The account's access token: one cached per account, fetched again
//! before it expires, and fetched once however many deliveries need it at
//! the same moment.
//!
//! WeChat answers `GET /cgi-bin/token` with `{"access_token", "expires_in"}`
//! (7200 s today); a new token ends the old one's life some minutes later,
//! so fetching it more often than needed makes other deliveries fail.
//! [`AccessTokens::get`] holds the cache's lock while it fetches: a
//! delivery that needs the token meanwhile waits for that fetch and takes
//! its result.

use std::future::Future;
use std::time::{Duration, Instant};

use engine::secret::Secret;
use tokio::sync::Mutex;

/// A token as WeChat gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshToken {
    /// The token.
    pub value: Secret,
    /// Seconds it lives, from when it was given.
    pub expires_in: u64,
}

/// The account's cached token.
#[derive(Debug, Default)]
pub struct AccessTokens {
    cached: Mutex<Option<CachedToken>>,
}

#[derive(Debug)]
struct CachedToken {
    value: Secret,
    /// From here on the token is fetched again, well before WeChat ends it.
    refresh_at: Instant,
}

/// How long a token that lives `expires_in` seconds is used: 80% of its
/// life, so that a delivery never sends one that is about to end (7200 s:
/// fetched again after 96 minutes, 24 before it would expire).
pub fn refresh_after(expires_in: u64) -> Duration {
    Duration::from_millis(expires_in.saturating_mul(800))
}

impl AccessTokens {
    /// The cached token while it is fresh at `now`; otherwise the one
    /// `fetch` gets, cached. One fetch at a time: callers arriving during
    /// a fetch wait and share its result (or try again after its error).
    pub async fn get<Fetch, Fetching, E>(&self, now: Instant, fetch: Fetch) -> Result<Secret, E>
    where
        Fetch: FnOnce() -> Fetching,
        Fetching: Future<Output = Result<FreshToken, E>>,
    {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && now < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let fresh = fetch().await?;
        *cached = Some(CachedToken {
            value: fresh.value.clone(),
            refresh_at: now + refresh_after(fresh.expires_in),
        });
        Ok(fresh.value)
    }

    /// WeChat refused `rejected` (expired, or ended by a fetch elsewhere):
    /// forget it, unless the cache already holds a newer one that another
    /// delivery fetched after the same refusal.
    pub async fn forget(&self, rejected: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|token| &token.value == rejected)
        {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A fetch that counts itself and hands out `token-<n>`, living `expires_in`.
    fn fetcher(
        n_fetches: &Arc<AtomicU64>,
        expires_in: u64,
    ) -> impl Future<Output = Result<FreshToken, String>> + use<> {
        let n_fetches = n_fetches.clone();
        async move {
            // Long enough for every other caller to queue behind this fetch.
            tokio::task::yield_now().await;
            let n = n_fetches.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(FreshToken {
                value: Secret::from(format!("token-{n}")),
                expires_in,
            })
        }
    }

    #[test]
    fn a_token_is_used_for_80_percent_of_its_life() {
        for (expires_in, used_for) in [(7200, 5760), (100, 80), (1, 0), (0, 0)] {
            assert_eq!(
                refresh_after(expires_in).as_secs(),
                used_for,
                "{expires_in}"
            );
        }
        assert_eq!(refresh_after(1), Duration::from_millis(800));
        assert_eq!(refresh_after(u64::MAX), Duration::from_millis(u64::MAX));
    }

    #[tokio::test]
    async fn the_token_is_fetched_once_then_again_before_it_expires() {
        let tokens = AccessTokens::default();
        let n_fetches = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let get = |at: Duration| tokens.get(start + at, || fetcher(&n_fetches, 7200));
        assert_eq!(get(Duration::ZERO).await.unwrap().expose(), "token-1");
        assert_eq!(
            get(Duration::from_secs(5759)).await.unwrap().expose(),
            "token-1"
        );
        // 80% of 7200 s: fetched again, 24 minutes before it would expire.
        assert_eq!(
            get(Duration::from_secs(5760)).await.unwrap().expose(),
            "token-2"
        );
        assert_eq!(n_fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let tokens = Arc::new(AccessTokens::default());
        let n_fetches = Arc::new(AtomicU64::new(0));
        let now = Instant::now();
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let tokens = tokens.clone();
                let n_fetches = n_fetches.clone();
                tokio::spawn(async move { tokens.get(now, || fetcher(&n_fetches, 7200)).await })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap().expose(), "token-1");
        }
        assert_eq!(n_fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_rejected_token_is_forgotten_once() {
        let tokens = AccessTokens::default();
        let n_fetches = Arc::new(AtomicU64::new(0));
        let now = Instant::now();
        let first = tokens.get(now, || fetcher(&n_fetches, 7200)).await.unwrap();
        tokens.forget(&first).await;
        let second = tokens.get(now, || fetcher(&n_fetches, 7200)).await.unwrap();
        assert_eq!(second.expose(), "token-2");
        // A second delivery refused with the first token does not throw
        // away the second one.
        tokens.forget(&first).await;
        let still = tokens.get(now, || fetcher(&n_fetches, 7200)).await.unwrap();
        assert_eq!(still.expose(), "token-2");
        // A failed fetch caches nothing: the next caller fetches.
        let failed = tokens.forget(&still);
        failed.await;
        let err = tokens
            .get(now, || async { Err::<FreshToken, _>("down".to_string()) })
            .await;
        assert_eq!(err.unwrap_err(), "down");
        let again = tokens.get(now, || fetcher(&n_fetches, 7200)).await.unwrap();
        assert_eq!(again.expose(), "token-3");
    }
}
