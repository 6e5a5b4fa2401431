//! Per-source INVITE rate limit: a token bucket per IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Sources tracked before idle ones (full buckets) are forgotten.
const PRUNE_ABOVE_SOURCES: usize = 10_000;

/// Token buckets by source IP: `burst` INVITEs at once, refilled at `per_sec`.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_sec` sustained and `burst` at once (both ≥ 1).
    pub fn new(per_sec: u32, burst: u32) -> Self {
        RateLimiter {
            per_sec: f64::from(per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `source`, or says how long until one is free.
    pub fn check(&mut self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() > PRUNE_ABOVE_SOURCES {
            self.prune(now);
        }
        let (per_sec, burst) = (self.per_sec, self.burst);
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }

    /// Forgets sources whose bucket has refilled: they are as good as new.
    fn prune(&mut self, now: Instant) {
        let (per_sec, burst) = (self.per_sec, self.burst);
        self.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * per_sec < burst
        });
    }

    /// Sources currently tracked (tests, metrics).
    pub fn n_sources(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate_per_source() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(a, start), Ok(()));
        }
        let wait = limiter.check(a, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(
            limiter.check(b, start),
            Ok(()),
            "another source has its own bucket"
        );
        assert!(
            limiter
                .check(a, start + Duration::from_millis(400))
                .is_err()
        );
        assert_eq!(limiter.check(a, start + Duration::from_millis(500)), Ok(()));
        assert_eq!(limiter.check(a, start + Duration::from_secs(60)), Ok(()));
        assert_eq!(limiter.check(a, start + Duration::from_secs(60)), Ok(()));
        assert_eq!(limiter.check(a, start + Duration::from_secs(60)), Ok(()));
        assert!(
            limiter.check(a, start + Duration::from_secs(60)).is_err(),
            "refill caps at the burst"
        );
    }

    #[test]
    fn idle_sources_are_forgotten_when_many_are_tracked() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, 10);
        for n in 0..=PRUNE_ABOVE_SOURCES as u32 {
            limiter.check(IpAddr::from(n.to_be_bytes()), start).unwrap();
        }
        assert_eq!(limiter.n_sources(), PRUNE_ABOVE_SOURCES + 1);
        limiter
            .check(
                "198.51.100.1".parse().unwrap(),
                start + Duration::from_secs(1),
            )
            .unwrap();
        assert_eq!(limiter.n_sources(), 1);
    }
}
