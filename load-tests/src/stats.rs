//! What one generator process measures, in a form the coordinator can merge:
//! HDR histograms (microseconds) travel as `(value, count)` pairs, counters
//! and errors as maps.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Histograms, by name. Latencies are in microseconds.
pub mod hist {
    /// Customer send → the agent's desktop receives the message.
    pub const CUSTOMER_TO_AGENT: &str = "e2e_customer_to_agent";
    /// Agent send → the customer receives the reply.
    pub const AGENT_TO_CUSTOMER: &str = "e2e_agent_to_customer";
    /// Customer send → the agent's reply to it is back at the customer.
    pub const ROUND_TRIP: &str = "round_trip";
    /// Customer send → `ack` (the message is durable).
    pub const ACK: &str = "ack";
    /// Agent send → `ack`.
    pub const AGENT_ACK: &str = "agent_ack";
    /// A session's first customer message → the agent receives the offer.
    pub const TIME_TO_OFFER: &str = "time_to_offer";
    /// A session's first customer message → the customer sees `assigned`.
    pub const TIME_TO_ANSWER: &str = "time_to_answer";
    /// TCP connect + upgrade + `hello` → `welcome`.
    pub const CONNECT: &str = "connect";
    /// A dropped customer's reconnect + `hello` with `last_seq` → `welcome`.
    pub const RESUME: &str = "resume";
    /// `POST /api/v1/inbound` → its answer (the message is durable).
    pub const INBOUND: &str = "inbound";
    /// A node killed under the client (`kill_node_at_secs`): the socket
    /// lost → `welcome` from another node.
    pub const FAILOVER_RECONNECT: &str = "failover_reconnect";
    /// The socket lost → every message the customer was waiting on at that
    /// moment (an ack or the agent's reply) has come, through another node.
    pub const FAILOVER_RECOVERY: &str = "failover_recovery";

    /// Every histogram name, in report order.
    pub const ALL: [&str; 12] = [
        CUSTOMER_TO_AGENT,
        AGENT_TO_CUSTOMER,
        ROUND_TRIP,
        ACK,
        AGENT_ACK,
        TIME_TO_OFFER,
        TIME_TO_ANSWER,
        CONNECT,
        RESUME,
        INBOUND,
        FAILOVER_RECONNECT,
        FAILOVER_RECOVERY,
    ];
}

/// Counters, by name.
pub mod count {
    /// Customer messages sent.
    pub const CUSTOMER_SENT: &str = "customer_messages_sent";
    /// Customer messages acknowledged (durable).
    pub const CUSTOMER_ACKED: &str = "customer_messages_acked";
    /// Customer messages received by agents (each stored message once).
    pub const AGENT_RECEIVED: &str = "customer_messages_received_by_agents";
    /// Agent messages sent.
    pub const AGENT_SENT: &str = "agent_messages_sent";
    /// Agent messages acknowledged.
    pub const AGENT_ACKED: &str = "agent_messages_acked";
    /// Agent messages received by customers (each once).
    pub const CUSTOMER_RECEIVED: &str = "agent_messages_received_by_customers";
    /// Events received a second time (a `(session, seq)` seen before).
    pub const DUPLICATES: &str = "duplicate_events";
    /// Stored events a holder of the session never received (gaps in `seq`).
    pub const SKIPPED: &str = "events_skipped";
    /// Sockets open now (gauge-like: connects minus closes).
    pub const CONNECTED: &str = "connected";
    /// Sessions that reached an agent.
    pub const ANSWERED: &str = "sessions_answered";
    /// Of those, answered within the scenario's service-level threshold.
    pub const ANSWERED_IN_SL: &str = "sessions_answered_within_threshold";
    /// Sessions the customer left before an agent came.
    pub const ABANDONED: &str = "sessions_abandoned";
    /// Sessions the agent closed.
    pub const CLOSED: &str = "sessions_closed";
    /// Sessions opened (first message acknowledged).
    pub const OPENED: &str = "sessions_opened";
    /// Customers who arrived (contact-center day).
    pub const ARRIVED: &str = "customers_arrived";
    /// Reconnects that resumed.
    pub const RESUMED: &str = "resumed";
    /// Customers and agents who lost their node and resumed on another.
    pub const RECONNECTED: &str = "reconnected_to_another_node";
    /// Messages refused as `unavailable` (nothing stored) and sent again.
    pub const RESENT_AFTER_UNAVAILABLE: &str = "messages_resent_after_unavailable";
}

/// A histogram as `(value, count)` pairs, the form that crosses processes.
pub type Buckets = Vec<(u64, u64)>;

/// Everything one process measured.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub histograms: BTreeMap<String, Buckets>,
    pub counters: BTreeMap<String, i64>,
    pub errors: BTreeMap<String, u64>,
}

/// A new histogram: 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// The pairs of `histogram`.
pub fn to_buckets(histogram: &Histogram<u64>) -> Buckets {
    histogram
        .iter_recorded()
        .map(|value| (value.value_iterated_to(), value.count_at_value()))
        .collect()
}

/// Adds `buckets` into `histogram`.
pub fn add_buckets(histogram: &mut Histogram<u64>, buckets: &Buckets) {
    for &(value, count) in buckets {
        histogram.saturating_record_n(value.max(1), count);
    }
}

#[derive(Default)]
struct Inner {
    histograms: BTreeMap<&'static str, Histogram<u64>>,
    /// Since the last progress line, for the plots over time.
    interval: BTreeMap<&'static str, Histogram<u64>>,
    counters: BTreeMap<&'static str, i64>,
    errors: BTreeMap<String, u64>,
}

/// One process's recorder, shared by its tasks.
#[derive(Clone, Default)]
pub struct Stats {
    inner: Arc<Mutex<Inner>>,
}

/// Histograms that also feed the per-second series.
const INTERVAL: [&str; 3] = [hist::CUSTOMER_TO_AGENT, hist::ROUND_TRIP, hist::ACK];

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A task that panicked while holding the lock left plain numbers behind.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one latency in microseconds.
    pub fn record(&self, name: &'static str, micros: u64) {
        let mut inner = self.lock();
        inner
            .histograms
            .entry(name)
            .or_insert_with(new_histogram)
            .saturating_record(micros.max(1));
        if INTERVAL.contains(&name) {
            inner
                .interval
                .entry(name)
                .or_insert_with(new_histogram)
                .saturating_record(micros.max(1));
        }
    }

    /// Adds `delta` to a counter.
    pub fn add(&self, name: &'static str, delta: i64) {
        *self.lock().counters.entry(name).or_default() += delta;
    }

    /// Counts one error of `kind` (an error code, `connect: …`, `timeout: …`).
    pub fn error(&self, kind: impl Into<String>) {
        *self.lock().errors.entry(kind.into()).or_default() += 1;
    }

    /// The value of a counter.
    pub fn counter(&self, name: &'static str) -> i64 {
        self.lock().counters.get(name).copied().unwrap_or(0)
    }

    /// Everything so far.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            histograms: inner
                .histograms
                .iter()
                .map(|(name, histogram)| (name.to_string(), to_buckets(histogram)))
                .collect(),
            counters: inner
                .counters
                .iter()
                .map(|(name, value)| (name.to_string(), *value))
                .collect(),
            errors: inner.errors.clone(),
        }
    }

    /// The interval histograms since the last call, emptied.
    pub fn take_interval(&self) -> BTreeMap<String, Buckets> {
        let mut inner = self.lock();
        let taken = inner
            .interval
            .iter()
            .map(|(name, histogram)| (name.to_string(), to_buckets(histogram)))
            .collect();
        for histogram in inner.interval.values_mut() {
            histogram.reset();
        }
        taken
    }
}

/// Summary of a histogram, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Of `histogram` (microseconds).
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Percentiles {
            count: histogram.len(),
            min_ms: ms(histogram.min()),
            mean_ms: histogram.mean() / 1_000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_buckets_give_the_percentiles_of_all_samples() {
        let first = Stats::default();
        let second = Stats::default();
        for micros in 1..=500 {
            first.record(hist::ACK, micros);
        }
        for micros in 501..=1000 {
            second.record(hist::ACK, micros);
        }
        let mut merged = new_histogram();
        for stats in [&first, &second] {
            add_buckets(&mut merged, &stats.snapshot().histograms[hist::ACK]);
        }
        let summary = Percentiles::of(&merged);
        assert_eq!(summary.count, 1000);
        assert!((summary.p50_ms - 0.5).abs() < 0.01, "{summary:?}");
        assert!((summary.p99_ms - 0.99).abs() < 0.01, "{summary:?}");
        assert_eq!(summary.max_ms, 1.0);
    }

    #[test]
    fn interval_histograms_empty_after_they_are_taken() {
        let stats = Stats::default();
        stats.record(hist::ROUND_TRIP, 10);
        stats.record(hist::CONNECT, 10);
        let first = stats.take_interval();
        assert_eq!(first[hist::ROUND_TRIP], vec![(10, 1)]);
        assert!(!first.contains_key(hist::CONNECT), "not a series");
        assert!(stats.take_interval()[hist::ROUND_TRIP].is_empty());
        assert_eq!(stats.snapshot().histograms[hist::ROUND_TRIP], vec![(10, 1)]);
    }
}
