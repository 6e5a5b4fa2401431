//! `loadgen max-rate`: the highest steady-chat rate a target sustains with
//! customer → agent p99 at or under a limit, found by doubling and then
//! bisecting, each step a fresh run; then one run at half that rate.

use serde::{Deserialize, Serialize};

use crate::report::Report;
use crate::stats::hist;

/// One step of the search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Customer messages per second asked for.
    pub rate: f64,
    /// Durable messages per second reached (customer messages and replies).
    pub durable_messages_per_sec: f64,
    pub e2e_p99_ms: Option<f64>,
    pub round_trip_p99_ms: Option<f64>,
    pub passed_checks: bool,
    /// Sustained: checks passed, p99 within the limit, and at least 95 % of
    /// the asked rate reached.
    pub good: bool,
}

impl Step {
    /// Judges a run at `rate` against `p99_limit_ms`.
    pub fn of(rate: f64, report: &Report, p99_limit_ms: f64) -> Step {
        let e2e_p99_ms = report.p99_ms(hist::CUSTOMER_TO_AGENT);
        let reached = report.counter(crate::stats::count::CUSTOMER_ACKED) as f64
            / report.params.duration_secs;
        let good = report.passed
            && e2e_p99_ms.is_some_and(|p99| p99 <= p99_limit_ms)
            && reached >= 0.95 * rate;
        Step {
            rate,
            durable_messages_per_sec: report.durable_messages_per_sec,
            e2e_p99_ms,
            round_trip_p99_ms: report.p99_ms(hist::ROUND_TRIP),
            passed_checks: report.passed,
            good,
        }
    }
}

/// Where the search stands: the best good rate and the lowest bad one.
#[derive(Debug, Clone, Default)]
pub struct Bracket {
    pub good: Option<f64>,
    pub bad: Option<f64>,
}

impl Bracket {
    /// Takes one step's outcome.
    pub fn record(&mut self, rate: f64, good: bool) {
        if good {
            self.good = Some(self.good.map_or(rate, |g| g.max(rate)));
        } else {
            self.bad = Some(self.bad.map_or(rate, |b| b.min(rate)));
        }
    }

    /// The next rate to try, or `None` when done: double while nothing
    /// failed, halve while nothing passed, then bisect `bisections` times.
    pub fn next(&self, start: f64, steps_taken: u32, max_steps: u32) -> Option<f64> {
        if steps_taken >= max_steps {
            return None;
        }
        match (self.good, self.bad) {
            (None, None) => Some(start),
            (Some(good), None) => Some(good * 2.0),
            (None, Some(bad)) if bad > 1.0 => Some(bad / 2.0),
            (None, Some(_)) => None,
            (Some(good), Some(bad)) => {
                let middle = (good + bad) / 2.0;
                // Within 5 %: close enough on a noisy machine.
                (bad - good > 0.05 * good).then_some(middle.round())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that holds up to `capacity`: the search ends near it.
    fn search(capacity: f64, start: f64, max_steps: u32) -> (Option<f64>, Vec<f64>) {
        let mut bracket = Bracket::default();
        let mut tried = Vec::new();
        while let Some(rate) = bracket.next(start, tried.len() as u32, max_steps) {
            tried.push(rate);
            bracket.record(rate, rate <= capacity);
        }
        (bracket.good, tried)
    }

    #[test]
    fn doubling_then_bisecting_finds_the_capacity() {
        let (good, tried) = search(3_000.0, 500.0, 20);
        assert_eq!(&tried[..4], &[500.0, 1_000.0, 2_000.0, 4_000.0]);
        let good = good.unwrap();
        assert!(
            (2_850.0..=3_000.0).contains(&good),
            "{good} after {tried:?}"
        );
    }

    #[test]
    fn a_start_above_capacity_halves_first_and_steps_are_bounded() {
        let (good, tried) = search(300.0, 1_000.0, 20);
        assert_eq!(&tried[..3], &[1_000.0, 500.0, 250.0]);
        assert!(good.unwrap() >= 285.0);
        let (_, tried) = search(1e9, 100.0, 5);
        assert_eq!(tried.len(), 5);
    }
}
