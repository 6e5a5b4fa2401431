//! The message-channel scenario `channel-webhook` (docs/channels.md): a
//! platform posts its customers' messages to a webhook channel account at
//! `rate` messages/s, signed, `batch` per request; each is timed from its
//! scheduled send to the `200` that says it is durable. With `agents` > 0,
//! agents on the desktop socket take the sessions and answer every message,
//! and their replies come back through the durable outbox to the
//! platform's reply URL, a sink in this process that times each from the
//! agent's send and counts it once by delivery id.
//!
//! It runs in the coordinator's process: HTTP requests on a pool of
//! keep-alive connections (`concurrency` in flight at most) and, with
//! agents, one socket per agent.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::agent::{AgentBehaviour, AgentRun};
use crate::phone::{Measured, report};
use crate::report::{Check, Memory, Report};
use crate::run::RunOptions;
use crate::stats::{Stats, count};
use crate::target::{CHANNEL_ACCOUNT, CHANNEL_SECRET, Server, agent_id};
use crate::wire::{self, Endpoint};

/// Histograms of the channel scenario (µs).
pub mod hist {
    /// A platform message's scheduled send → the `200` saying it is durable.
    pub const INBOUND_ACK: &str = "channel_inbound_ack";
    /// An agent's reply sent → the platform's reply URL receives it.
    pub const DELIVERY: &str = "channel_delivery";
}

/// What the reply sink saw.
#[derive(Default)]
pub struct Sink {
    delivery_ids: HashSet<String>,
    duplicates: i64,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// The platform's reply URL: records each delivery once.
async fn take_reply(
    State((sink, stats)): State<(Arc<Mutex<Sink>>, Stats)>,
    headers: HeaderMap,
    body: String,
) -> &'static str {
    if !headers.contains_key("x-switchboard-signature") {
        stats.error("a reply came unsigned");
    }
    let Ok(reply) = serde_json::from_str::<serde_json::Value>(&body) else {
        stats.error("a reply that is not JSON");
        return "{}";
    };
    let id = reply["delivery_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let now = Instant::now();
    let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
    if !sink.delivery_ids.insert(id) {
        sink.duplicates += 1;
        return "{}";
    }
    sink.first.get_or_insert(now);
    sink.last = Some(now);
    // `re <customer stamp> <reply stamp>`: timed from the agent's send.
    if let Some(stamp) = reply["text"]
        .as_str()
        .and_then(|text| text.split(' ').nth(2))
        .and_then(|stamp| stamp.parse::<u64>().ok())
    {
        stats.record(hist::DELIVERY, wire::micros_since(stamp));
    }
    "{}"
}

/// Starts the reply sink on loopback; its URL and its records.
pub async fn start_sink(stats: &Stats) -> Result<(String, Arc<Mutex<Sink>>)> {
    let sink = Arc::new(Mutex::new(Sink::default()));
    let app = axum::Router::new()
        .route("/replies", axum::routing::post(take_reply))
        .with_state((sink.clone(), stats.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("failed to bind the reply sink")?;
    let url = format!("http://{}/replies", listener.local_addr()?);
    tokio::spawn(async move {
        // The sink lives as long as the run; an error ends only it.
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, sink))
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
fn signature(body: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut mac =
        Hmac::<Sha256>::new_from_slice(CHANNEL_SECRET.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// The customer id on the platform of sender `idx`.
fn sender(idx: u32) -> String {
    format!("+86150{idx:08}")
}

/// Runs `channel-webhook` against `server`, whose account replies to `sink`.
pub async fn drive(
    options: &RunOptions,
    server: &Server,
    stats: Stats,
    sink: Arc<Mutex<Sink>>,
) -> Result<Report> {
    let params = &options.params;
    let started_at = crate::now_rfc3339();
    let rss_start = server.rss_kib();
    let (stop, stopped) = watch::channel(false);
    let mut agents = JoinSet::new();
    for idx in 0..params.agents {
        let id = agent_id(idx);
        let agent = AgentRun {
            token: server.token(&id, "agent"),
            id,
            source: "127.0.0.1".parse()?,
            endpoint: Endpoint { addr: server.addr },
            behaviour: AgentBehaviour {
                wrap_up: Duration::ZERO,
            },
            stats: stats.clone(),
            // One node: a lost socket is an error.
            failover: Default::default(),
        };
        let socket = agent.connect().await?;
        agents.spawn(agent.work(socket, stopped.clone()));
    }
    let rss_go = server.rss_kib();
    let batch = params.batch.max(1);
    let n_requests = ((params.rate * params.duration_secs) / f64::from(batch)).round() as u64;
    let request_rate = params.rate / f64::from(batch);
    let url = format!(
        "http://{}/api/v1/channels/{CHANNEL_ACCOUNT}/inbound",
        server.addr
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(params.concurrency as usize)
        .timeout(Duration::from_secs(30))
        .build()?;
    let in_flight = Arc::new(Semaphore::new(params.concurrency.max(1) as usize));
    let go = Instant::now() + Duration::from_millis(50);
    let mut requests = JoinSet::new();
    let customers = params.customers.max(1);
    let mut n_message: u64 = 0;
    for idx in 0..n_requests {
        let due = go + Duration::from_secs_f64(idx as f64 / request_rate);
        tokio::time::sleep_until(due).await;
        let permit = in_flight.clone().acquire_owned().await?;
        let messages: Vec<serde_json::Value> = (0..batch)
            .map(|_| {
                n_message += 1;
                let customer = (n_message % u64::from(customers)) as u32;
                serde_json::json!({
                    "id": format!("lg-{n_message}"),
                    "from": sender(customer),
                    "text": wire::customer_body(wire::now_ns()),
                    "sent_at": "2026-01-05T10:00:00Z",
                })
            })
            .collect();
        let body = if batch == 1 {
            messages[0].to_string()
        } else {
            serde_json::json!({ "messages": messages }).to_string()
        };
        let client = client.clone();
        let url = url.clone();
        let stats = stats.clone();
        requests.spawn(async move {
            stats.add(count::CUSTOMER_SENT, i64::from(batch));
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-switchboard-signature", signature(&body))
                .body(body)
                .send()
                .await;
            let answer = match sent {
                Ok(response) if response.status().is_success() => {
                    response.json::<serde_json::Value>().await.ok()
                }
                Ok(response) => {
                    stats.error(format!("inbound answered {}", response.status().as_u16()));
                    None
                }
                Err(err) => {
                    stats.error(format!("inbound request failed: {}", err.without_url()));
                    None
                }
            };
            // Timed from the scheduled send: a server that falls behind
            // shows in the latency, not as a slower sender.
            let micros = due.elapsed().as_micros() as u64;
            drop(permit);
            if let Some(answer) = answer {
                let accepted = answer["accepted"].as_array().map_or(0, Vec::len);
                for _ in 0..accepted {
                    stats.record(hist::INBOUND_ACK, micros);
                }
                stats.add(count::CUSTOMER_ACKED, accepted as i64);
            }
        });
    }
    while requests.join_next().await.is_some() {}
    let inbound_secs = go.elapsed().as_secs_f64();
    let rss_inbound = server.rss_kib();
    // The agents answer what is left, and the outbox delivers it.
    let drain_until = Instant::now() + Duration::from_secs_f64(params.drain_secs);
    if params.agents > 0 {
        loop {
            let replied = stats.counter(count::AGENT_ACKED);
            let delivered = sink
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .delivery_ids
                .len() as i64;
            let answered_all = replied >= stats.counter(count::CUSTOMER_ACKED);
            if (answered_all && delivered >= replied) || Instant::now() >= drain_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = stop.send(true);
    while let Some(joined) = agents.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(err)) => stats.error(format!("{err:#}")),
            Err(err) => stats.error(format!("an agent task failed: {err}")),
        }
    }
    let measured_secs = go.elapsed().as_secs_f64();
    let rss_end = server.rss_kib();

    let sent = stats.counter(count::CUSTOMER_SENT);
    let acked = stats.counter(count::CUSTOMER_ACKED);
    let (delivered, duplicates, first, last) = {
        let sink = sink.lock().unwrap_or_else(|p| p.into_inner());
        (
            sink.delivery_ids.len() as i64,
            sink.duplicates,
            sink.first,
            sink.last,
        )
    };
    let mut figures = BTreeMap::new();
    figures.insert("inbound_messages_per_sec_target".into(), params.rate);
    figures.insert(
        "inbound_messages_per_sec".into(),
        acked as f64 / inbound_secs,
    );
    if let (Some(first), Some(last)) = (first, last) {
        let span = last.duration_since(first).as_secs_f64();
        if span > 0.0 {
            figures.insert(
                "outbound_deliveries_per_sec".into(),
                delivered as f64 / span,
            );
        }
    }
    let mut counters = BTreeMap::new();
    // The server's own account of the deliveries and what still waits.
    if let Some(admin) = server.admin {
        match crate::phone::server_stats::scrape(admin).await {
            Ok(samples) => {
                for (name, value) in samples.iter().filter(|(name, _)| {
                    name.starts_with("switchboard_channel_deliveries_total")
                        || name.starts_with("switchboard_outbox_depth")
                }) {
                    counters.insert(
                        format!("server_{}", name.trim_start_matches("switchboard_")),
                        *value as i64,
                    );
                }
            }
            Err(err) => stats.error(format!("{err:#}")),
        }
    }
    counters.insert("replies_delivered".into(), delivered);
    counters.insert("replies_delivered_twice".into(), duplicates);
    let mut checks = vec![Check::new("inbound messages acked = sent", sent, acked)];
    if params.agents > 0 {
        let replied = stats.counter(count::AGENT_ACKED);
        checks.push(Check::new(
            "inbound messages answered by agents (within drain_secs)",
            acked,
            replied,
        ));
        checks.push(Check::new(
            "replies delivered = replies stored",
            replied,
            delivered,
        ));
        checks.push(Check::new("replies delivered twice", 0, duplicates));
    }
    let durable_per_sec =
        (acked + stats.counter(count::AGENT_ACKED)) as f64 / measured_secs.max(1e-9);
    let mut report = report(
        options,
        started_at,
        Measured {
            stats,
            extra_latency: BTreeMap::new(),
            counters,
            figures,
            checks,
            measured_secs,
            memory: Memory {
                rss_start_kib: rss_start,
                rss_go_kib: rss_go,
                rss_peak_kib: rss_end.max(rss_inbound).max(rss_go),
                rss_end_kib: rss_end,
                ..Memory::default()
            },
        },
    );
    report.durable_messages_per_sec = durable_per_sec;
    Ok(report)
}
