//! A token bucket per connection: `burst` frames at once, then
//! `per_second`. Pure, so it is tested with made-up instants.

use std::time::{Duration, Instant};

/// What the bucket says about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Allow,
    /// Refuse it with an error frame; the connection stays open.
    Refuse,
    /// Refused too many in a row: close the connection (flood).
    Close,
}

/// The bucket.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    refused_in_a_row: u32,
    close_after: u32,
}

impl RateLimiter {
    /// Full at `now`.
    pub fn new(per_second: u32, burst: u32, close_after: u32, now: Instant) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
            refused_in_a_row: 0,
            close_after: close_after.max(1),
        }
    }

    /// One frame at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused_in_a_row = 0;
            return Verdict::Allow;
        }
        self.refused_in_a_row += 1;
        if self.refused_in_a_row >= self.close_after {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }

    /// How long until the next frame would be allowed.
    pub fn retry_after(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.per_second.max(f64::MIN_POSITIVE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames at the given offsets (ms) against a 10/s bucket with burst 3,
    /// closing after 4 refusals in a row.
    fn check(offsets_ms: &[u64], expected: &[Verdict]) {
        let start = Instant::now();
        let mut bucket = RateLimiter::new(10, 3, 4, start);
        let verdicts: Vec<Verdict> = offsets_ms
            .iter()
            .map(|ms| bucket.check(start + Duration::from_millis(*ms)))
            .collect();
        assert_eq!(verdicts, expected, "offsets {offsets_ms:?}");
    }

    #[test]
    fn bursts_then_the_rate_then_flood() {
        use Verdict::*;
        check(&[0, 0, 0], &[Allow, Allow, Allow]);
        check(&[0, 0, 0, 0], &[Allow, Allow, Allow, Refuse]);
        // 100 ms earns one frame at 10/s.
        check(&[0, 0, 0, 0, 100], &[Allow, Allow, Allow, Refuse, Allow]);
        check(
            &[0, 0, 0, 0, 0, 0, 0],
            &[Allow, Allow, Allow, Refuse, Refuse, Refuse, Close],
        );
        // An allowed frame resets the refusal count.
        check(
            &[0, 0, 0, 0, 0, 0, 100, 100, 100],
            &[
                Allow, Allow, Allow, Refuse, Refuse, Refuse, Allow, Refuse, Refuse,
            ],
        );
        // Idle time refills only up to the burst.
        check(
            &[0, 0, 0, 10_000, 10_000, 10_000, 10_000],
            &[Allow, Allow, Allow, Allow, Allow, Allow, Refuse],
        );
    }
}
