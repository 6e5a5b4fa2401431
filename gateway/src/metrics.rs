//! `/metrics` on the admin listener: the Prometheus text format of every
//! counter and histogram the engine and the gateway record, plus gauges
//! read at scrape time (connections, sessions, queues, agents, and the
//! standard `process_*` metrics of `metrics-process`). Durations are in
//! seconds, as Prometheus names them. docs/metrics.md lists them.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::gauge;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Seconds, from half a millisecond to 5 s: acknowledgements, deliveries,
/// store commits.
const LATENCY_SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
/// Seconds: waits before an answer, first responses.
const WAIT_SECONDS_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];
/// Seconds: handle times, from half a minute to an hour.
const HANDLE_SECONDS_BUCKETS: &[f64] = &[
    30.0, 60.0, 120.0, 180.0, 300.0, 420.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];
/// Operations per group commit.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 4096.0,
];

/// Every histogram and its buckets: one without buckets here would be
/// rendered as a summary, which dashboards cannot aggregate.
const HISTOGRAMS: [(&str, &[f64]); 7] = [
    ("switchboard_ack_latency_seconds", LATENCY_SECONDS_BUCKETS),
    (
        "switchboard_delivery_latency_seconds",
        LATENCY_SECONDS_BUCKETS,
    ),
    ("switchboard_store_commit_seconds", LATENCY_SECONDS_BUCKETS),
    ("switchboard_store_batch_ops", BATCH_BUCKETS),
    ("switchboard_time_to_answer_seconds", WAIT_SECONDS_BUCKETS),
    ("switchboard_first_response_seconds", WAIT_SECONDS_BUCKETS),
    ("switchboard_handle_time_seconds", HANDLE_SECONDS_BUCKETS),
];

/// The process-wide recorder (the `metrics` facade has one), installed on
/// first use, with its upkeep task.
pub fn handle() -> PrometheusHandle {
    install(None)
}

/// Installs the process-wide recorder unless it is installed already; in a
/// cluster every series carries the label `node` (the node's id), so that
/// one Prometheus can scrape every node apart. The server calls it before
/// anything records; the first call decides.
pub fn install(node_id: Option<u8>) -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = match node_id {
                Some(node_id) => {
                    PrometheusBuilder::new().add_global_label("node", node_id.to_string())
                }
                None => PrometheusBuilder::new(),
            };
            let builder = HISTOGRAMS
                .iter()
                .chain(voice::media::metrics::HISTOGRAM_BUCKETS.iter())
                .chain(voice::webrtc::metrics::HISTOGRAM_BUCKETS.iter())
                .try_fold(builder, |builder, (name, buckets)| {
                    builder.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
                })
                .expect("bucket lists are not empty");
            let handle = builder
                .install_recorder()
                .expect("the metrics recorder is installed once");
            process_collector().describe();
            let upkeep = handle.clone();
            // Histograms drain on upkeep; without it they grow between scrapes.
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// The standard `process_*` metrics (CPU seconds, resident and virtual
/// memory, open and maximum file descriptors, threads, start time), read
/// from the OS at each scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Creates every series a dashboard or alert reads, at zero, for each group
/// and built-in channel, so a fresh server's panels show 0 rather than "No
/// data", and a counter that first appeared above zero would not lose that
/// first step in `increase()`. Series labelled by what is unknown at start
/// (error codes) are covered by `or on() vector(0)` in the panel instead.
pub fn register_series(groups: &[engine::group::SkillGroup]) {
    use engine::channel::Channel;
    const SLA_COUNTERS: [&str; 7] = [
        "switchboard_queue_entries_total",
        "switchboard_contacts_entered_total",
        "switchboard_contacts_moved_out_total",
        "switchboard_contacts_answered_total",
        "switchboard_contacts_answered_within_threshold_total",
        "switchboard_contacts_abandoned_total",
        "switchboard_contacts_short_abandoned_total",
    ];
    for group in groups {
        metrics::gauge!("switchboard_service_level_target_percent", "group" => group.id.to_string())
            .set(group.sla_target_pct);
        for channel in Channel::BUILT_IN.iter() {
            for name in SLA_COUNTERS {
                let labels = [
                    ("group", group.id.to_string()),
                    ("channel", channel.to_string()),
                ];
                metrics::counter!(name, &labels).increment(0);
            }
            let labels = [
                ("group", group.id.to_string()),
                ("channel", channel.to_string()),
            ];
            for name in [
                "switchboard_time_to_answer_seconds",
                "switchboard_first_response_seconds",
                "switchboard_handle_time_seconds",
            ] {
                // Registering is enough: the histogram renders with zero
                // counts, and the handle is not needed.
                let _ = metrics::histogram!(name, &labels);
            }
        }
    }
    for channel in Channel::BUILT_IN.iter() {
        for direction in ["in", "out"] {
            metrics::counter!("switchboard_messages_total", "direction" => direction, "channel" => channel.to_string())
                .increment(0);
        }
    }
    for direction in ["customer_to_agent", "agent_to_customer"] {
        let _ =
            metrics::histogram!("switchboard_delivery_latency_seconds", "direction" => direction);
    }
    for name in [
        "switchboard_ack_latency_seconds",
        "switchboard_store_commit_seconds",
        "switchboard_store_batch_ops",
    ] {
        let _ = metrics::histogram!(name);
    }
    for kind in ["session", "agent", "group"] {
        metrics::counter!("switchboard_actor_restarts_total", "kind" => kind).increment(0);
    }
    metrics::counter!("switchboard_store_commit_errors_total").increment(0);
    // The phone panels read these whether or not `voice.enabled` is on.
    voice::sip::metrics::describe();
    voice::media::metrics::describe();
    voice::webrtc::metrics::describe();
}

/// A message event of time `at` (engine clock) going out on a socket now:
/// end-to-end latency from the sender's durable write to the reader's socket.
/// Replays of old events are not latency and are left out.
pub fn record_delivery(direction: &'static str, at: engine::Millis) {
    let latency_ms = actors::clock::now() - at;
    if (0..60_000).contains(&latency_ms) {
        metrics::histogram!("switchboard_delivery_latency_seconds", "direction" => direction)
            .record(latency_ms as f64 / 1000.0);
    }
}

/// The admin router: `/metrics`, and `/healthz` and `/readyz` as on the
/// public listener (a probe here is answered even when the public
/// listener is at its connection cap).
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(render))
        // Probes can use this listener: it is not full when the public one is.
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(crate::health::readyz))
        .with_state(state)
}

async fn render(State(state): State<AppState>) -> impl IntoResponse {
    refresh_gauges(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle().render(),
    )
}

/// Gauges that are cheaper to read at scrape time than to keep up to date.
async fn refresh_gauges(state: &AppState) {
    use std::sync::atomic::Ordering;
    gauge!("switchboard_connections", "kind" => "tcp").set(state.gauge.open() as f64);
    let cache = &state.platform.cache;
    let stats = cache.stats();
    for (result, count) in [
        ("hit", &stats.hits),
        ("miss", &stats.misses),
        ("eviction", &stats.evictions),
        ("invalidation", &stats.invalidations),
    ] {
        metrics::counter!("switchboard_customer_cache_total", "result" => result)
            .absolute(count.load(std::sync::atomic::Ordering::Relaxed));
    }
    gauge!("switchboard_customer_cache_entries").set(cache.len() as f64);
    gauge!("switchboard_connections", "kind" => "customer_socket")
        .set(state.n_customer_sockets.load(Ordering::Relaxed) as f64);
    gauge!("switchboard_connections", "kind" => "agent_socket")
        .set(state.n_agent_sockets.load(Ordering::Relaxed) as f64);
    metrics::counter!("switchboard_connections_refused_total").absolute(state.gauge.refused());
    if let Ok(stats) = state.switchboard.stats().await {
        gauge!("switchboard_sessions", "state" => "active").set(stats.n_live_sessions as f64);
        gauge!("switchboard_sessions", "state" => "open").set(stats.n_open_sessions as f64);
        gauge!("switchboard_sessions", "state" => "passivated")
            .set(stats.n_open_sessions.saturating_sub(stats.n_live_sessions) as f64);
    }
    process_collector().collect();
    let groups = state
        .switchboard
        .store()
        .list_groups()
        .await
        .unwrap_or_default();
    // In a cluster each node reports the groups and agents it runs, so
    // that a sum over the nodes counts each once.
    for group in groups
        .iter()
        .filter(|g| state.switchboard.runs_group(&g.id))
    {
        let Ok(view) = state.switchboard.group_view(&group.id).await else {
            continue;
        };
        let label = group.id.to_string();
        gauge!("switchboard_queue_depth", "group" => label.clone()).set(view.waiting.len() as f64);
        gauge!("switchboard_longest_wait_seconds", "group" => label.clone())
            .set(view.longest_wait_ms.unwrap_or(0) as f64 / 1000.0);
        gauge!("switchboard_agents_ready", "group" => label).set(view.n_ready_agents as f64);
    }
    let agents = state
        .switchboard
        .store()
        .list_agents()
        .await
        .unwrap_or_default();
    let mut by_state: std::collections::BTreeMap<(String, &'static str), u32> = Default::default();
    for agent in agents
        .iter()
        .filter(|a| state.switchboard.runs_agent(&a.id))
    {
        let Ok(view) = state.switchboard.agent_view(&agent.id).await else {
            continue;
        };
        // Occupancy inputs, as docs/sla.md counts them: on contacts or in
        // wrap-up is busy, available with none is idle.
        let activity = engine::sla::AgentActivity::of(&view.presence, !view.sessions.is_empty());
        let load = activity
            .occupied()
            .map(|busy| if busy { "busy" } else { "idle" });
        for group in &agent.groups {
            *by_state
                .entry((group.to_string(), view.presence.as_str()))
                .or_default() += 1;
            if let Some(load) = load {
                *by_state.entry((group.to_string(), load)).or_default() += 1;
            }
        }
    }
    for group in &groups {
        for load in ["busy", "idle"] {
            let n = by_state
                .get(&(group.id.to_string(), load))
                .copied()
                .unwrap_or(0);
            gauge!("switchboard_agents_occupancy", "group" => group.id.to_string(), "load" => load)
                .set(f64::from(n));
        }
        for presence in ["offline", "available", "away", "wrap_up", "not_responding"] {
            let n = by_state
                .get(&(group.id.to_string(), presence))
                .copied()
                .unwrap_or(0);
            gauge!("switchboard_agents", "group" => group.id.to_string(), "state" => presence)
                .set(f64::from(n));
        }
    }
}
