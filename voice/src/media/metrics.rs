//! The media metrics, through the `metrics` facade.
//!
//! Names are here once. Each call resolves its handles when it starts, so
//! the per-packet cost is an atomic add, not a registry lookup.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `switchboard_rtp_packets_total` | counter | `direction`: `from_caller`, `from_agent`, `from_supervisor`, `hold_to_caller`, `mix_to_caller`, `mix_to_agent`, `mix_to_supervisor`; `outcome`: see [`Outcome`] |
//! | `switchboard_rtp_relay_latency_seconds` | histogram | — (recv → send of each relayed packet) |
//! | `switchboard_rtp_jitter_seconds` | histogram | `direction`: `from_caller`, `from_agent`, `from_supervisor` (RFC 3550 estimate, sampled once a second per stream) |
//! | `switchboard_rtp_dtmf_digits_total` | counter | — (digits detected from callers) |
//! | `switchboard_rtp_mix_dropped_frames_total` | counter | — (20 ms frames the supervised calls' mix dropped: a party ran ahead) |
//! | `switchboard_rtp_calls` | gauge | — (calls whose media task runs) |

use metrics::{Counter, Gauge, Histogram};

/// RTP packets by direction and outcome.
pub const PACKETS_TOTAL: &str = "switchboard_rtp_packets_total";
/// Time from receiving a packet to having sent it on, per relayed packet.
pub const RELAY_LATENCY_SECONDS: &str = "switchboard_rtp_relay_latency_seconds";
/// Interarrival jitter of inbound streams.
pub const JITTER_SECONDS: &str = "switchboard_rtp_jitter_seconds";
/// DTMF digits detected on callers' streams.
pub const DTMF_DIGITS_TOTAL: &str = "switchboard_rtp_dtmf_digits_total";
/// Calls whose media task runs.
pub const CALLS: &str = "switchboard_rtp_calls";
/// Frames the mix of supervised calls dropped because a party ran ahead.
pub const MIX_DROPPED_FRAMES_TOTAL: &str = "switchboard_rtp_mix_dropped_frames_total";

/// Buckets for the two histograms, for the exporter (a histogram without
/// buckets is rendered as a summary, which dashboards cannot aggregate).
pub const HISTOGRAM_BUCKETS: [(&str, &[f64]); 2] = [
    (
        RELAY_LATENCY_SECONDS,
        &[
            0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
            0.025, 0.05,
        ],
    ),
    (
        JITTER_SECONDS,
        &[
            0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2,
        ],
    ),
];

/// What became of an inbound packet (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent on to another leg.
    Relayed,
    /// Not relayed, queued for a mix (a supervisor on the call).
    Mixed,
    /// Accepted but not forwarded: the call is on hold or stopped (the
    /// caller's DTMF is still read).
    Absorbed,
    /// From an address other than the leg's signalled IP or latched port.
    DroppedSource,
    /// Not an RTP packet.
    DroppedMalformed,
    /// Sending failed (socket buffer full, network error).
    SendFailed,
    /// A hold-audio (or IVR prompt) packet, or a mixed one, sent.
    Sent,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Relayed => "relayed",
            Outcome::Mixed => "mixed",
            Outcome::Absorbed => "absorbed",
            Outcome::DroppedSource => "dropped_source",
            Outcome::DroppedMalformed => "dropped_malformed",
            Outcome::SendFailed => "send_failed",
            Outcome::Sent => "sent",
        }
    }
}

/// One inbound direction's handles.
#[derive(Debug)]
pub(crate) struct InboundMetrics {
    pub relayed: Counter,
    pub mixed: Counter,
    pub absorbed: Counter,
    pub dropped_source: Counter,
    pub dropped_malformed: Counter,
    pub send_failed: Counter,
    pub jitter: Histogram,
}

impl InboundMetrics {
    fn new(direction: &'static str) -> InboundMetrics {
        let packets = |outcome: Outcome| metrics::counter!(PACKETS_TOTAL, "direction" => direction, "outcome" => outcome.label());
        InboundMetrics {
            relayed: packets(Outcome::Relayed),
            mixed: packets(Outcome::Mixed),
            absorbed: packets(Outcome::Absorbed),
            dropped_source: packets(Outcome::DroppedSource),
            dropped_malformed: packets(Outcome::DroppedMalformed),
            send_failed: packets(Outcome::SendFailed),
            jitter: metrics::histogram!(JITTER_SECONDS, "direction" => direction),
        }
    }
}

/// The `direction` of mixed packets, per party in [`super::mix::Party::ALL`] order.
const MIX_DIRECTIONS: [&str; 3] = ["mix_to_caller", "mix_to_agent", "mix_to_supervisor"];

fn mixed(direction: &'static str, outcome: Outcome) -> Counter {
    metrics::counter!(PACKETS_TOTAL, "direction" => direction, "outcome" => outcome.label())
}

/// A call's handles, resolved when its task starts.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    pub from_caller: InboundMetrics,
    pub from_agent: InboundMetrics,
    pub from_supervisor: InboundMetrics,
    pub hold_sent: Counter,
    pub hold_send_failed: Counter,
    /// Per party in [`super::mix::Party::ALL`] order.
    pub mixed_sent: [Counter; 3],
    pub mixed_send_failed: [Counter; 3],
    pub mix_dropped_frames: Counter,
    pub relay_latency: Histogram,
    pub dtmf_digits: Counter,
    calls: Gauge,
}

impl CallMetrics {
    /// Resolves the handles and counts the call as running until dropped.
    pub fn start() -> CallMetrics {
        let hold = |outcome: Outcome| metrics::counter!(PACKETS_TOTAL, "direction" => "hold_to_caller", "outcome" => outcome.label());
        let calls = metrics::gauge!(CALLS);
        calls.increment(1.0);
        CallMetrics {
            from_caller: InboundMetrics::new("from_caller"),
            from_agent: InboundMetrics::new("from_agent"),
            from_supervisor: InboundMetrics::new("from_supervisor"),
            hold_sent: hold(Outcome::Sent),
            hold_send_failed: hold(Outcome::SendFailed),
            mixed_sent: MIX_DIRECTIONS.map(|direction| mixed(direction, Outcome::Sent)),
            mixed_send_failed: MIX_DIRECTIONS
                .map(|direction| mixed(direction, Outcome::SendFailed)),
            mix_dropped_frames: metrics::counter!(MIX_DROPPED_FRAMES_TOTAL),
            relay_latency: metrics::histogram!(RELAY_LATENCY_SECONDS),
            dtmf_digits: metrics::counter!(DTMF_DIGITS_TOTAL),
            calls,
        }
    }
}

impl Drop for CallMetrics {
    fn drop(&mut self) {
        self.calls.decrement(1.0);
    }
}

/// Registers every series a dashboard reads, at zero, so that a server that
/// has not carried a call yet shows 0 rather than "No data".
pub fn describe() {
    for direction in ["from_caller", "from_agent", "from_supervisor"] {
        let inbound = InboundMetrics::new(direction);
        for counter in [
            &inbound.relayed,
            &inbound.mixed,
            &inbound.absorbed,
            &inbound.dropped_source,
            &inbound.dropped_malformed,
            &inbound.send_failed,
        ] {
            counter.increment(0);
        }
    }
    for outcome in [Outcome::Sent, Outcome::SendFailed] {
        metrics::counter!(PACKETS_TOTAL, "direction" => "hold_to_caller", "outcome" => outcome.label())
            .increment(0);
        for direction in MIX_DIRECTIONS {
            mixed(direction, outcome).increment(0);
        }
    }
    let _ = metrics::histogram!(RELAY_LATENCY_SECONDS);
    metrics::counter!(DTMF_DIGITS_TOTAL).increment(0);
    metrics::counter!(MIX_DROPPED_FRAMES_TOTAL).increment(0);
    metrics::gauge!(CALLS).increment(0.0);
}
