//! Estimated wait: how fast a skill group answers, and what that means for a
//! customer at a given place in line (docs/sla.md, "Estimated wait").
//!
//! The group's pace is an exponentially weighted moving average of the time
//! between answers while someone was waiting; time with an empty queue does
//! not count, so a quiet night does not make the morning look slow. A
//! customer at place `n` waits about `n` such intervals.

use crate::Millis;

/// Weight of the newest interval in the moving average: the last ten or so
/// answers dominate, so the estimate follows a shift change within minutes.
pub const PACE_WEIGHT: f64 = 0.2;

/// How fast a group answers. Cheap to keep in the group's actor: two numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerPace {
    /// Smoothed time between answers; `None` until the first answer.
    average_ms: Option<f64>,
    /// Where the next interval starts: the last answer, or the moment the
    /// queue stopped being empty if that came later.
    since: Option<Millis>,
}

impl AnswerPace {
    /// A session joined the empty queue at `at`: the idle time before it is
    /// not time the group took to answer.
    pub fn queue_started(&mut self, at: Millis) {
        self.since = Some(at);
    }

    /// A waiting session was answered (an agent accepted it) at `at`.
    pub fn answered(&mut self, at: Millis) {
        if let Some(since) = self.since {
            let interval = (at - since).max(0) as f64;
            self.average_ms = Some(match self.average_ms {
                Some(average) => average + PACE_WEIGHT * (interval - average),
                None => interval,
            });
        }
        self.since = Some(at);
    }

    /// The smoothed time between answers, once anything was answered.
    pub fn average_ms(&self) -> Option<f64> {
        self.average_ms
    }

    /// The time between answers to plan with at `now`, while someone waits:
    /// the average (`default_ms` before the first answer), but at least the
    /// time since the last answer, so that a group whose agents all left
    /// does not keep promising its old pace.
    pub fn expected_interval_ms(&self, now: Millis, default_ms: Millis) -> f64 {
        let average = self.average_ms.unwrap_or(default_ms as f64);
        let current = self.since.map_or(0, |since| (now - since).max(0)) as f64;
        average.max(current)
    }
}

/// Seconds until the session at 1-based `position` is answered, at one answer
/// every `interval_ms`: `⌈position × interval_ms / 1000⌉`, saturating.
pub fn estimate_wait(position: usize, interval_ms: f64) -> u32 {
    let secs = (position as f64 * interval_ms.max(0.0) / 1000.0).ceil();
    if secs >= u32::MAX as f64 {
        u32::MAX
    } else {
        secs as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(position: usize, interval_ms: f64, expected_secs: u32) {
        assert_eq!(
            estimate_wait(position, interval_ms),
            expected_secs,
            "position {position} at {interval_ms} ms"
        );
    }

    #[test]
    fn estimate_is_position_times_interval_rounded_up() {
        let cases: [(usize, f64, u32); 7] = [
            (1, 30_000.0, 30),
            (3, 30_000.0, 90),
            (2, 1_500.0, 3),
            (1, 1.0, 1),
            (5, 0.0, 0),
            (1, -10.0, 0),
            (usize::MAX, 1e12, u32::MAX),
        ];
        for (position, interval_ms, expected) in cases {
            check(position, interval_ms, expected);
        }
    }

    /// What happens to the pace, as (time, event).
    enum Step {
        QueueStarted(Millis),
        Answered(Millis),
    }

    fn check_pace(steps: &[Step], now: Millis, expected_average: Option<f64>, expected: f64) {
        let mut pace = AnswerPace::default();
        for step in steps {
            match step {
                Step::QueueStarted(at) => pace.queue_started(*at),
                Step::Answered(at) => pace.answered(*at),
            }
        }
        assert_eq!(pace.average_ms(), expected_average);
        assert_eq!(pace.expected_interval_ms(now, 30_000), expected);
    }

    #[test]
    fn pace_is_a_moving_average_of_intervals_while_someone_waits() {
        use Step::*;
        // Nothing answered yet: the default, or the time waited so far if longer.
        check_pace(&[], 0, None, 30_000.0);
        check_pace(&[QueueStarted(0)], 10_000, None, 30_000.0);
        check_pace(&[QueueStarted(0)], 45_000, None, 45_000.0);
        // The first interval counts from when the queue started.
        check_pace(
            &[QueueStarted(1_000), Answered(11_000)],
            11_000,
            Some(10_000.0),
            10_000.0,
        );
        // Then each new interval moves the average by a fifth of the difference.
        check_pace(
            &[QueueStarted(0), Answered(10_000), Answered(30_000)],
            30_000,
            Some(12_000.0),
            12_000.0,
        );
        // An hour with an empty queue between two answers is not an interval.
        check_pace(
            &[
                QueueStarted(0),
                Answered(10_000),
                QueueStarted(3_610_000),
                Answered(3_620_000),
            ],
            3_620_000,
            Some(10_000.0),
            10_000.0,
        );
        // Nobody answered for a minute: plan with a minute, not the old 10 s.
        check_pace(
            &[QueueStarted(0), Answered(10_000)],
            70_000,
            Some(10_000.0),
            60_000.0,
        );
    }
}
