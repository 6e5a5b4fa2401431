//! Per-call media statistics: packet counts per direction, RFC 3550 jitter
//! and the relay's added latency.
//!
//! The call's task writes them with relaxed atomics as packets go by; the
//! SIP side reads a [`CallStatsSnapshot`] whenever it likes, without a
//! message round trip. Nothing here allocates per packet.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::call::Mode;
use super::mix::Monitoring;
use super::sdp::Codec;

/// Counters of one inbound direction (from the caller, the agent or the
/// supervisor).
#[derive(Debug, Default)]
pub(crate) struct InboundStats {
    pub relayed: AtomicU64,
    pub mixed: AtomicU64,
    pub absorbed: AtomicU64,
    pub dropped_source: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub send_failed: AtomicU64,
    /// RFC 3550 §6.4.1 jitter in timestamp units, times 16 (the RFC's
    /// integer form, appendix A.8).
    pub jitter_x16: AtomicU32,
}

impl InboundStats {
    fn snapshot(&self) -> InboundSnapshot {
        let jitter_units = f64::from(self.jitter_x16.load(Relaxed)) / 16.0;
        InboundSnapshot {
            relayed: self.relayed.load(Relaxed),
            mixed: self.mixed.load(Relaxed),
            absorbed: self.absorbed.load(Relaxed),
            dropped_source: self.dropped_source.load(Relaxed),
            dropped_malformed: self.dropped_malformed.load(Relaxed),
            send_failed: self.send_failed.load(Relaxed),
            jitter: Duration::from_secs_f64(jitter_units / f64::from(Codec::CLOCK_RATE)),
        }
    }
}

/// What the task records, shared with [`super::CallMedia`].
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    pub from_caller: InboundStats,
    pub from_agent: InboundStats,
    pub from_supervisor: InboundStats,
    pub hold_sent: AtomicU64,
    pub hold_send_failed: AtomicU64,
    /// Mixed packets sent, per party in [`super::mix::Party::ALL`] order.
    pub mixed_sent: [AtomicU64; 3],
    pub mixed_send_failed: [AtomicU64; 3],
    /// Frames the mix dropped because a source ran ahead of it.
    pub mix_dropped_frames: AtomicU64,
    pub dtmf_digits: AtomicU64,
    pub relay_latency: LatencyHistogram,
    /// The mode the task is in, as [`Mode::code`].
    pub mode: AtomicU8,
    /// How a supervisor follows the call: 0 nobody's phone is on it, else
    /// [`monitoring_code`].
    pub monitoring: AtomicU8,
}

/// A [`Monitoring`] as stored in [`CallStats::monitoring`].
pub(crate) fn monitoring_code(monitoring: Option<Monitoring>) -> u8 {
    match monitoring {
        None => 0,
        Some(Monitoring::Listen) => 1,
        Some(Monitoring::Whisper) => 2,
        Some(Monitoring::Barge) => 3,
    }
}

fn monitoring_of(code: u8) -> Option<Monitoring> {
    match code {
        1 => Some(Monitoring::Listen),
        2 => Some(Monitoring::Whisper),
        3 => Some(Monitoring::Barge),
        _ => None,
    }
}

impl CallStats {
    pub fn snapshot(&self) -> CallStatsSnapshot {
        CallStatsSnapshot {
            mode: Mode::from_code(self.mode.load(Relaxed)),
            from_caller: self.from_caller.snapshot(),
            from_agent: self.from_agent.snapshot(),
            from_supervisor: self.from_supervisor.snapshot(),
            monitoring: monitoring_of(self.monitoring.load(Relaxed)),
            hold_sent: self.hold_sent.load(Relaxed),
            hold_send_failed: self.hold_send_failed.load(Relaxed),
            mixed_sent: std::array::from_fn(|party| self.mixed_sent[party].load(Relaxed)),
            mixed_send_failed: std::array::from_fn(|party| {
                self.mixed_send_failed[party].load(Relaxed)
            }),
            mix_dropped_frames: self.mix_dropped_frames.load(Relaxed),
            dtmf_digits: self.dtmf_digits.load(Relaxed),
            relay_latency: self.relay_latency.snapshot(),
        }
    }
}

/// Packets of one inbound direction so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboundSnapshot {
    /// Sent on unchanged to at least one other leg.
    pub relayed: u64,
    /// Not relayed to anyone, but queued for the mix of a party who hears
    /// it together with another (a supervisor on the call).
    pub mixed: u64,
    /// Accepted while on hold or stopped, not forwarded.
    pub absorbed: u64,
    /// From a source other than the signalled IP and latched port.
    pub dropped_source: u64,
    /// Not RTP.
    pub dropped_malformed: u64,
    /// Accepted, but sending on failed.
    pub send_failed: u64,
    /// RFC 3550 interarrival jitter of the current stream.
    pub jitter: Duration,
}

/// A call's media statistics at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallStatsSnapshot {
    /// The mode the task is in (commands already applied).
    pub mode: Mode,
    /// Caller → switchboard (→ agent when bridged).
    pub from_caller: InboundSnapshot,
    /// Agent → switchboard (→ caller when bridged).
    pub from_agent: InboundSnapshot,
    /// The monitoring supervisor's phone → switchboard (→ whoever hears
    /// them: docs/supervisor.md, "Monitoring calls").
    pub from_supervisor: InboundSnapshot,
    /// How the supervisor whose phone is on the call follows it.
    pub monitoring: Option<Monitoring>,
    /// Hold-audio packets sent to the caller.
    pub hold_sent: u64,
    /// Hold-audio packets that could not be sent.
    pub hold_send_failed: u64,
    /// Mixed packets sent to the caller, the agent and the supervisor
    /// ([`super::mix::Party::ALL`] order).
    pub mixed_sent: [u64; 3],
    /// Mixed packets that could not be sent, per party as `mixed_sent`.
    pub mixed_send_failed: [u64; 3],
    /// 20 ms frames the mix dropped because a party's packets ran ahead of
    /// it (a burst after a stall, a fast clock): docs/voice.md.
    pub mix_dropped_frames: u64,
    /// DTMF digits detected from the caller.
    pub dtmf_digits: u64,
    /// The relay's added latency (recv → send), both directions; merge
    /// several calls' before taking quantiles.
    pub relay_latency: LatencyHistogramSnapshot,
}

/// Exact below this many µs, then four buckets per power of two.
const LINEAR_MICROS: u64 = 8;
/// Powers of two covered after the linear part: up to about 1 s.
const N_OCTAVES: usize = 18;
const N_BUCKETS: usize = LINEAR_MICROS as usize + 4 * N_OCTAVES + 1;

/// A lock-free log-linear histogram of durations in microseconds: exact
/// below 8 µs, then within 25 %, up to about 1 s (beyond that, one
/// overflow bucket).
#[derive(Debug)]
pub(crate) struct LatencyHistogram {
    buckets: [AtomicU64; N_BUCKETS],
    sum_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos / 1000)].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
        self.max_nanos.fetch_max(nanos, Relaxed);
    }

    pub fn snapshot(&self) -> LatencyHistogramSnapshot {
        LatencyHistogramSnapshot {
            counts: std::array::from_fn(|index| self.buckets[index].load(Relaxed)),
            sum_nanos: self.sum_nanos.load(Relaxed),
            max_nanos: self.max_nanos.load(Relaxed),
        }
    }
}

/// A latency histogram at one moment: mergeable across calls, summarised
/// into quantiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyHistogramSnapshot {
    counts: [u64; N_BUCKETS],
    sum_nanos: u64,
    max_nanos: u64,
}

impl Default for LatencyHistogramSnapshot {
    fn default() -> LatencyHistogramSnapshot {
        LatencyHistogramSnapshot {
            counts: [0; N_BUCKETS],
            sum_nanos: 0,
            max_nanos: 0,
        }
    }
}

impl LatencyHistogramSnapshot {
    /// Adds another histogram's samples (another call's, say).
    pub fn merge(&mut self, other: &LatencyHistogramSnapshot) {
        for (count, other) in self.counts.iter_mut().zip(other.counts) {
            *count += other;
        }
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
        self.max_nanos = self.max_nanos.max(other.max_nanos);
    }

    /// Count, exact mean and maximum, and quantiles as bucket upper bounds
    /// (at most 25 % high, never above the maximum).
    pub fn summary(&self) -> LatencySummary {
        let count: u64 = self.counts.iter().sum();
        let max = Duration::from_nanos(self.max_nanos);
        let quantile = |q: f64| -> Duration {
            if count == 0 {
                return Duration::ZERO;
            }
            let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (index, n) in self.counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Duration::from_micros(bucket_end(index)).min(max);
                }
            }
            max
        };
        LatencySummary {
            count,
            mean: Duration::from_nanos(self.sum_nanos.checked_div(count).unwrap_or(0)),
            p50: quantile(0.50),
            p90: quantile(0.90),
            p99: quantile(0.99),
            p999: quantile(0.999),
            max,
        }
    }
}

fn bucket_of(micros: u64) -> usize {
    if micros < LINEAR_MICROS {
        return micros as usize;
    }
    let octave = (63 - micros.leading_zeros()) as usize - 3;
    if octave >= N_OCTAVES {
        return N_BUCKETS - 1;
    }
    let quarter = ((micros >> (octave + 1)) & 3) as usize;
    LINEAR_MICROS as usize + 4 * octave + quarter
}

/// The first µs value above a bucket (`u64::MAX` for the overflow bucket).
fn bucket_end(index: usize) -> u64 {
    if index < LINEAR_MICROS as usize {
        return index as u64 + 1;
    }
    if index == N_BUCKETS - 1 {
        return u64::MAX;
    }
    let octave = (index - LINEAR_MICROS as usize) / 4;
    let quarter = ((index - LINEAR_MICROS as usize) % 4) as u64;
    (4 + quarter + 1) << (octave + 1)
}

/// Quantiles of the relay's added latency (bucket upper bounds, so at most
/// 25 % high).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// Packets measured.
    pub count: u64,
    /// Exact mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Exact maximum.
    pub max: Duration,
}

/// RFC 3550 §6.4.1 interarrival jitter of one inbound stream, in the
/// RFC's integer form (appendix A.8).
#[derive(Debug, Default)]
pub(crate) struct JitterEstimator {
    /// The stream being measured; a new SSRC starts over.
    ssrc: Option<u32>,
    /// Arrival minus RTP timestamp of the previous packet, in timestamp units.
    transit: u32,
    jitter_x16: u32,
}

impl JitterEstimator {
    /// Updates with a packet's RTP timestamp and its arrival time in
    /// timestamp units (any epoch, as long as it is the same for the call);
    /// returns the jitter times 16.
    pub fn update(&mut self, ssrc: u32, rtp_timestamp: u32, arrival: u32) -> u32 {
        let transit = arrival.wrapping_sub(rtp_timestamp);
        if self.ssrc != Some(ssrc) {
            *self = JitterEstimator {
                ssrc: Some(ssrc),
                transit,
                jitter_x16: 0,
            };
            return 0;
        }
        let difference = transit.wrapping_sub(self.transit) as i32;
        self.transit = transit;
        let difference = difference.unsigned_abs().min(u32::MAX >> 5);
        // J += (|D| - J) / 16, kept times 16.
        self.jitter_x16 = self.jitter_x16 + difference - ((self.jitter_x16 + 8) >> 4);
        self.jitter_x16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_their_values() {
        for micros in 0..2_000_000u64 {
            let index = bucket_of(micros);
            assert!(micros < bucket_end(index), "{micros} µs in bucket {index}");
            if index > 0 {
                assert!(
                    micros >= bucket_end(index - 1),
                    "{micros} µs in bucket {index}"
                );
            }
        }
        assert_eq!(bucket_of(u64::MAX / 1000), N_BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let histogram = LatencyHistogram::default();
        for micros in 1..=1000u64 {
            histogram.record(Duration::from_micros(micros));
        }
        let summary = histogram.snapshot().summary();
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.max, Duration::from_micros(1000));
        assert!(
            (Duration::from_micros(500)..=Duration::from_micros(625)).contains(&summary.p50),
            "{summary:?}"
        );
        assert!(
            (Duration::from_micros(990)..=Duration::from_micros(1000)).contains(&summary.p99),
            "{summary:?}"
        );
        assert_eq!(summary.mean, Duration::from_nanos(500_500));
        assert_eq!(
            LatencyHistogram::default().snapshot().summary(),
            LatencySummary::default()
        );
    }

    #[test]
    fn merged_histograms_summarise_all_samples() {
        let fast = LatencyHistogram::default();
        let slow = LatencyHistogram::default();
        for _ in 0..99 {
            fast.record(Duration::from_micros(4));
        }
        slow.record(Duration::from_micros(900));
        let mut merged = fast.snapshot();
        merged.merge(&slow.snapshot());
        let summary = merged.summary();
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50, Duration::from_micros(5));
        assert_eq!(summary.p99, Duration::from_micros(5));
        assert_eq!(summary.p999, Duration::from_micros(900));
        assert_eq!(summary.max, Duration::from_micros(900));
        assert_eq!(
            summary.mean,
            Duration::from_nanos((99 * 4_000 + 900_000) / 100)
        );
    }

    #[test]
    fn jitter_is_zero_for_a_steady_stream_and_follows_rfc_3550() {
        let mut steady = JitterEstimator::default();
        for packet in 0..50u32 {
            assert_eq!(
                steady.update(7, 1000 + 160 * packet, 90_000 + 160 * packet),
                0
            );
        }
        // Every other packet 80 units (10 ms) late: |D| alternates 80, 80.
        let mut jittery = JitterEstimator::default();
        let mut jitter = 0;
        for packet in 0..400u32 {
            let late = if packet % 2 == 1 { 80 } else { 0 };
            jitter = jittery.update(7, 160 * packet, 5 + 160 * packet + late);
        }
        // J converges to |D| = 80 units: 10 ms at 8 kHz.
        assert!((79 * 16..=80 * 16).contains(&jitter), "{jitter}");
        // A new SSRC starts over.
        assert_eq!(jittery.update(8, 0, 123), 0);
    }
}
