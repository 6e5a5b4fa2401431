//! The browser legs' metrics, through the `metrics` facade (docs/metrics.md).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `switchboard_webrtc_legs` | gauge | — (browser legs whose task runs) |
//! | `switchboard_webrtc_legs_total` | counter | `outcome`: `connected`, `failed` (did not connect in time, or an error), `disconnected` (the browser went away after connecting), `closed` (by switchboard: hang-up, transfer, the call's end) |
//! | `switchboard_webrtc_jitter_seconds` | histogram | — (the browser's audio as switchboard receives it, RFC 3550, once a second per leg) |
//! | `switchboard_webrtc_loss_ratio` | histogram | — (fraction of the browser's audio lost, from RTCP, once a second per leg) |
//! | `switchboard_webrtc_rtt_seconds` | histogram | — (round trip to the browser from RTCP, once a second per leg) |

use metrics::{Counter, Gauge, Histogram};

use super::BrowserEnd;

/// Browser legs whose task runs.
pub const LEGS: &str = "switchboard_webrtc_legs";
/// Browser legs by how they went.
pub const LEGS_TOTAL: &str = "switchboard_webrtc_legs_total";
/// Interarrival jitter of the browsers' audio.
pub const JITTER_SECONDS: &str = "switchboard_webrtc_jitter_seconds";
/// Loss of the browsers' audio.
pub const LOSS_RATIO: &str = "switchboard_webrtc_loss_ratio";
/// Round-trip time to the browsers.
pub const RTT_SECONDS: &str = "switchboard_webrtc_rtt_seconds";

/// Buckets for the histograms, for the exporter.
pub const HISTOGRAM_BUCKETS: [(&str, &[f64]); 3] = [
    (
        JITTER_SECONDS,
        &[
            0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2,
        ],
    ),
    (
        LOSS_RATIO,
        &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
    ),
    (
        RTT_SECONDS,
        &[
            0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0,
        ],
    ),
];

fn outcome(end: &BrowserEnd) -> &'static str {
    match end {
        BrowserEnd::Failed(_) => "failed",
        BrowserEnd::Disconnected => "disconnected",
        BrowserEnd::Closed => "closed",
    }
}

/// One leg's handles; counts the leg as running until dropped.
pub(super) struct LegMetrics {
    pub jitter: Histogram,
    pub loss: Histogram,
    pub rtt: Histogram,
    legs: Gauge,
}

impl LegMetrics {
    pub fn start() -> LegMetrics {
        let legs = metrics::gauge!(LEGS);
        legs.increment(1.0);
        LegMetrics {
            jitter: metrics::histogram!(JITTER_SECONDS),
            loss: metrics::histogram!(LOSS_RATIO),
            rtt: metrics::histogram!(RTT_SECONDS),
            legs,
        }
    }

    pub fn connected(&self) {
        counter("connected").increment(1);
    }

    pub fn ended(&self, end: &BrowserEnd) {
        counter(outcome(end)).increment(1);
    }
}

impl Drop for LegMetrics {
    fn drop(&mut self) {
        self.legs.decrement(1.0);
    }
}

fn counter(outcome: &'static str) -> Counter {
    metrics::counter!(LEGS_TOTAL, "outcome" => outcome)
}

/// Registers every series at zero, so a server that has not carried a
/// browser call shows 0 rather than "No data".
pub fn describe() {
    metrics::gauge!(LEGS).increment(0.0);
    for outcome in ["connected", "failed", "disconnected", "closed"] {
        counter(outcome).increment(0);
    }
    let _ = metrics::histogram!(JITTER_SECONDS);
    let _ = metrics::histogram!(LOSS_RATIO);
    let _ = metrics::histogram!(RTT_SECONDS);
}
