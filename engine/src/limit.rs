//! "At most `limit` per key within `window`": a sliding-window count kept
//! as the times of the recent events of each key.
//!
//! Memory is bounded: a key keeps at most `limit` times, and [`WindowLimit::prune`]
//! forgets every time older than the window and every key left with none.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::Millis;

/// A key reached its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReached {
    /// Events of the key within the window (the limit).
    pub n_recent: usize,
    /// When the oldest of them leaves the window and one more is allowed.
    pub retry_at: Millis,
}

/// Sliding-window counts per key. A limit of 0 turns the limit off.
#[derive(Debug, Clone)]
pub struct WindowLimit<K> {
    limit: u32,
    window: Millis,
    /// Times within the window, oldest first.
    recent: HashMap<K, VecDeque<Millis>>,
}

impl<K: Hash + Eq + Clone> WindowLimit<K> {
    /// At most `limit` events per key within `window` milliseconds.
    pub fn new(limit: u32, window: Millis) -> Self {
        WindowLimit {
            limit,
            window,
            recent: HashMap::new(),
        }
    }

    /// Whether `key` may have one more event at `now`.
    pub fn check(&mut self, key: &K, now: Millis) -> Result<(), LimitReached> {
        if self.limit == 0 {
            return Ok(());
        }
        let Some(times) = self.recent.get_mut(key) else {
            return Ok(());
        };
        let window = self.window;
        while times.front().is_some_and(|at| now - at >= window) {
            times.pop_front();
        }
        match times.front() {
            Some(oldest) if times.len() >= self.limit as usize => Err(LimitReached {
                n_recent: times.len(),
                retry_at: oldest + window,
            }),
            None => {
                self.recent.remove(key);
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    /// Counts an event of `key` at `now` (after [`WindowLimit::check`] allowed it).
    pub fn record(&mut self, key: &K, now: Millis) {
        if self.limit == 0 {
            return;
        }
        let times = self.recent.entry(key.clone()).or_default();
        times.push_back(now);
        // Never more than the limit: older times cannot matter any more.
        while times.len() > self.limit as usize {
            times.pop_front();
        }
    }

    /// Forgets times older than the window, and keys with none left.
    pub fn prune(&mut self, now: Millis) {
        let window = self.window;
        self.recent.retain(|_, times| {
            times.retain(|at| now - at < window);
            !times.is_empty()
        });
    }

    /// Keys with an event within the window (as of the last prune).
    pub fn n_keys(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (what, key, at, expected outcome of `check` or the key count after `prune`).
    enum Step {
        /// Check, and record if allowed.
        Open(&'static str, Millis, Result<(), LimitReached>),
        Prune(Millis, usize),
    }

    fn check(limit: u32, window: Millis, steps: &[Step]) {
        let mut limits = WindowLimit::new(limit, window);
        for (idx, step) in steps.iter().enumerate() {
            match step {
                Step::Open(key, at, expected) => {
                    let key = key.to_string();
                    let got = limits.check(&key, *at);
                    assert_eq!(&got, expected, "step {idx}");
                    if got.is_ok() {
                        limits.record(&key, *at);
                    }
                }
                Step::Prune(at, n_keys) => {
                    limits.prune(*at);
                    assert_eq!(limits.n_keys(), *n_keys, "step {idx}");
                }
            }
        }
    }

    fn reached(n_recent: usize, retry_at: Millis) -> Result<(), LimitReached> {
        Err(LimitReached { n_recent, retry_at })
    }

    #[test]
    fn at_most_limit_per_key_within_the_window() {
        use Step::*;
        // Two per 100 ms: the third is refused until the first leaves the window.
        check(
            2,
            100,
            &[
                Open("a", 0, Ok(())),
                Open("a", 10, Ok(())),
                Open("a", 50, reached(2, 100)),
                Open("b", 50, Ok(())),
                Open("a", 99, reached(2, 100)),
                Open("a", 100, Ok(())),
                Open("a", 105, reached(2, 110)),
            ],
        );
        // Pruning forgets old times and keys left with none.
        check(
            2,
            100,
            &[
                Open("a", 0, Ok(())),
                Open("b", 60, Ok(())),
                Prune(50, 2),
                Prune(100, 1),
                Prune(160, 0),
                Open("a", 170, Ok(())),
                Prune(170, 1),
            ],
        );
        // A limit of 0 is no limit and keeps nothing.
        check(
            0,
            100,
            &[Open("a", 0, Ok(())), Open("a", 0, Ok(())), Prune(0, 0)],
        );
    }
}
