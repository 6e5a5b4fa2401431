//! Idle sessions: envelopes posted to `POST /api/v1/inbound` (a channel that
//! needs no socket, as a WeChat or SMS adapter would), each from a new
//! customer, so that every one opens a session nobody answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::stats::{Stats, count, hist};
use crate::wire::{self, Endpoint};
use crate::worker::WorkerPlan;

/// Posts this process's share of the envelopes, `concurrency` at a time.
pub async fn run(plan: &WorkerPlan, endpoint: &Endpoint, stats: &Stats) {
    let next = Arc::new(AtomicU64::new(plan.first_session));
    let end = plan.first_session + plan.sessions;
    let url = format!("{}/api/v1/inbound", endpoint.http_base());
    let mut tasks = JoinSet::new();
    for task_idx in 0..plan.params.concurrency {
        let client = match reqwest::Client::builder()
            .local_address(plan.sources[task_idx as usize % plan.sources.len()])
            .timeout(Duration::from_secs(30))
            .build()
        {
            Ok(client) => client,
            Err(err) => {
                stats.error(format!("inbound client: {err}"));
                return;
            }
        };
        let (next, url, stats) = (next.clone(), url.clone(), stats.clone());
        let channel = plan.params.channel.clone();
        let token = plan.admin_token.clone();
        tasks.spawn(async move {
            loop {
                let idx = next.fetch_add(1, Ordering::Relaxed);
                if idx >= end {
                    break;
                }
                let envelope = serde_json::json!({
                    "channel": channel,
                    "customer_id": format!("lt-idle-{idx}"),
                    "message": wire::customer_body(wire::now_ns()),
                    "timestamp": "2026-01-01T00:00:00Z",
                    "client_message_id": format!("idle-{idx}"),
                });
                let sent = Instant::now();
                stats.add(count::CUSTOMER_SENT, 1);
                match client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&envelope)
                    .send()
                    .await
                {
                    Ok(response) if response.status().is_success() => {
                        stats.record(hist::INBOUND, sent.elapsed().as_micros() as u64);
                        stats.add(count::CUSTOMER_ACKED, 1);
                        stats.add(count::OPENED, 1);
                        // Read the body so the connection is reused.
                        let _ = response.bytes().await; // its content is not needed
                    }
                    Ok(response) => {
                        let status = response.status();
                        let body: serde_json::Value = response.json().await.unwrap_or_default();
                        let code = body["code"].as_str().unwrap_or("?").to_string();
                        stats.error(format!("inbound: http {} {code}", status.as_u16()));
                    }
                    Err(err) => stats.error(format!("inbound: {}", without_url(&err))),
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // Let the server settle (waiting sessions passivate) before the last memory reading.
    tokio::time::sleep(Duration::from_secs_f64(plan.params.hold_secs)).await;
}

/// A reqwest error without the URL (which is the same for every request).
fn without_url(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else if err.is_connect() {
        "connect failed".into()
    } else {
        err.to_string().chars().take(80).collect()
    }
}
