//! The actors' clock: wall-clock milliseconds that advance with tokio's
//! clock, so that tests on a paused clock see timers and timestamps agree.

use std::sync::OnceLock;

use engine::Millis;
use tokio::time::Instant;

static ORIGIN: OnceLock<(Millis, Instant)> = OnceLock::new();

/// Milliseconds since the Unix epoch, advancing with `tokio::time`.
pub fn now() -> Millis {
    let (wall, instant) = *ORIGIN.get_or_init(|| (engine::now_millis(), Instant::now()));
    let now = wall
        + Instant::now()
            .saturating_duration_since(instant)
            .as_millis() as Millis;
    #[cfg(test)]
    let now = now + test_ticks::next();
    now
}

/// A clock that moves on by a millisecond at every read, on this thread
/// only, so a test can tell apart two readings that real time would often
/// put in the same millisecond.
#[cfg(test)]
pub(crate) mod test_ticks {
    use std::cell::Cell;

    use engine::Millis;

    thread_local! {
        static TICKING: Cell<bool> = const { Cell::new(false) };
        static TICKS: Cell<Millis> = const { Cell::new(0) };
    }

    /// From now on, on this thread, every reading of the clock is a millisecond later.
    pub(crate) fn tick_on_every_read() {
        TICKING.with(|ticking| ticking.set(true));
    }

    pub(super) fn next() -> Millis {
        if !TICKING.with(Cell::get) {
            return 0;
        }
        TICKS.with(|ticks| {
            ticks.set(ticks.get() + 1);
            ticks.get()
        })
    }
}
