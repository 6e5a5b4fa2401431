//! The actors' clock: wall-clock milliseconds that advance with tokio's
//! clock, so that tests on a paused clock see timers and timestamps agree.

use std::sync::OnceLock;

use engine::Millis;
use tokio::time::Instant;

static ORIGIN: OnceLock<(Millis, Instant)> = OnceLock::new();

/// Milliseconds since the Unix epoch, advancing with `tokio::time`.
pub fn now() -> Millis {
    let (wall, instant) = *ORIGIN.get_or_init(|| (engine::now_millis(), Instant::now()));
    wall + Instant::now()
        .saturating_duration_since(instant)
        .as_millis() as Millis
}
