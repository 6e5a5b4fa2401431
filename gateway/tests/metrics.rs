//! `/metrics` on the admin listener counts a scripted scenario exactly.
//! One test in its own binary: the `metrics` recorder is process-wide.

mod common;

use std::collections::BTreeMap;

use common::{TestServer, accept_offer, session_of};
use serde_json::json;

/// `name{labels} value` lines of the Prometheus text format.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_scenario_is_counted_exactly() {
    let test = TestServer::start(|_| {}).await;
    let mut agent = test.available_agent("wang.min").await;

    // Answered at once (within the 30 s threshold).
    let mut answered = test.customer("cust-003").await;
    answered.hello(json!({})).await;
    let ack = answered.say(json!({}), "a-1", "hello").await;
    let session = session_of(&ack);
    accept_offer(&mut agent, &session).await;
    agent.say(json!({"session": session}), "r-1", "hi!").await;

    // Left the queue at once: a short abandon (wang.min takes one chat).
    let mut left = test.customer("cust-002").await;
    left.hello(json!({})).await;
    let ack = left.say(json!({}), "l-1", "anyone?").await;
    left.expect("queued").await;
    let gone = left
        .request(json!({"type": "leave", "session": session_of(&ack)}))
        .await;
    assert_eq!(gone["type"], "ok", "{gone}");

    // One malformed frame, counted by its code.
    left.send_raw(tokio_tungstenite::tungstenite::Message::Text(
        "not json".into(),
    ))
    .await;
    left.expect("error").await;
    // The customer's message reached the agent's socket; the agent's reply the customer's.
    answered
        .wait_for("the reply", |f| {
            f["type"] == "message" && f["body"] == "hi!"
        })
        .await;

    let url = format!("http://{}/metrics", test.server.admin_addr);
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let samples = samples(&text);
    let get = |key: &str| {
        samples
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in\n{text}"))
    };
    let labels = r#"{group="default",channel="web"}"#;
    assert_eq!(
        get(&format!("switchboard_contacts_entered_total{labels}")),
        2.0
    );
    assert_eq!(
        get(&format!("switchboard_contacts_answered_total{labels}")),
        1.0
    );
    assert_eq!(
        get(&format!(
            "switchboard_contacts_answered_within_threshold_total{labels}"
        )),
        1.0
    );
    assert_eq!(
        get(&format!(
            "switchboard_contacts_short_abandoned_total{labels}"
        )),
        1.0
    );
    assert_eq!(
        get(&format!("switchboard_time_to_answer_seconds_count{labels}")),
        1.0
    );
    assert_eq!(
        get(&format!("switchboard_first_response_seconds_count{labels}")),
        1.0
    );
    assert!(get("switchboard_store_commit_seconds_count") > 0.0);
    assert_eq!(
        get(r#"switchboard_messages_total{direction="in",channel="web"}"#),
        2.0
    );
    assert_eq!(
        get(r#"switchboard_messages_total{direction="out",channel="web"}"#),
        1.0
    );
    assert_eq!(get("switchboard_ack_latency_seconds_count"), 3.0);
    assert!(
        get(r#"switchboard_delivery_latency_seconds_count{direction="customer_to_agent"}"#) >= 1.0
    );
    assert_eq!(
        get(r#"switchboard_delivery_latency_seconds_count{direction="agent_to_customer"}"#),
        1.0
    );
    assert_eq!(
        get(r#"switchboard_errors_total{code="bad_json",api="socket"}"#),
        1.0
    );
    assert_eq!(
        get(r#"switchboard_connections{kind="customer_socket"}"#),
        2.0
    );
    assert_eq!(get(r#"switchboard_connections{kind="agent_socket"}"#), 1.0);
    assert_eq!(
        get(r#"switchboard_agents{group="default",state="available"}"#),
        1.0
    );
    // The standard process metrics, read from the OS at the scrape.
    assert!(get("process_resident_memory_bytes") > 1e6);
    assert!(get("process_virtual_memory_bytes") >= get("process_resident_memory_bytes"));
    assert!(get("process_open_fds") >= 3.0);
    assert!(get("process_threads") >= 2.0);
    assert!(get("process_start_time_seconds") > 1.6e9);
    // Durations are in seconds: the scenario's acks took well under 5 s
    // each, and a histogram in milliseconds would sum to more.
    let ack_sum = get("switchboard_ack_latency_seconds_sum");
    assert!(ack_sum > 0.0 && ack_sum < 15.0, "ack latency sum {ack_sum}");
    assert!(text.contains(r#"switchboard_ack_latency_seconds_bucket{le="0.0005"}"#));
    assert!(
        !text.contains("_ms_"),
        "no millisecond metric is left:\n{text}"
    );
    // The public listener does not serve it.
    let public = reqwest::get(test.http_url("/metrics")).await.unwrap();
    assert_eq!(public.status(), 404);
    test.server.shutdown().await.unwrap();
}
