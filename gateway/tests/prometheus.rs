//! A real Prometheus scrapes a real run: every query of every dashboard
//! panel evaluates and returns data, on a fresh server and after the
//! scenario, the SLA figures equal the scenario's
//! ground truth, and the alert rules pass `promtool`. The test command
//! installs Prometheus (Debian package `prometheus`) when it is missing.

mod common;

use std::time::Duration;

use common::prometheus::{
    GRAFANA, alert_expr, panel_queries, seed_demo_with_thresholds, start_prometheus,
};
use common::{Client, TestServer, accept_offer, session_of, test_config};
use gateway::Server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_sla_figures_against_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    // A 2 s threshold and short-abandon limit, so the scenario takes
    // seconds (and a slow machine still answers A and lets D go well inside them).
    seed_demo_with_thresholds(dir.path(), 2, 2).await;
    let mut config = test_config(&dir);
    config.routing.wrap_up_ms = 50;
    let server = Server::start(config).await.unwrap();
    let test = TestServer { server, dir };
    let prometheus = start_prometheus(test.server.admin_addr).await;
    let default_web = r#"group="default",channel="web""#;
    // Prometheus has the zeroed series before anything happens.
    prometheus
        .wait_for(
            &format!("switchboard_contacts_entered_total{{{default_web}}}"),
            0.0,
        )
        .await;
    // A fresh server: every panel shows a number (0 where nothing happened
    // yet, also for ratios of zeros), not "No data" or an empty graph, once
    // Prometheus has the two scrapes `rate()` needs.
    prometheus
        .wait_for_any(r#"count_over_time(up{job="switchboard"}[1m]) >= 3"#)
        .await;
    let panels = panel_queries();
    let empty = prometheus.panels_without_data(&panels).await;
    assert!(
        empty.is_empty(),
        "panels with no data on a fresh server:\n{}",
        empty.join("\n")
    );
    let nan = prometheus.panels_with_nan(&panels).await;
    assert!(
        nan.is_empty(),
        "panels showing NaN on a fresh server:\n{}",
        nan.join("\n")
    );

    // wang.min takes one chat at a time.
    let mut agent = test.available_agent("wang.min").await;
    // A: answered at once (within 2 s).
    let mut first = test.customer("cust-003").await;
    first.hello(json!({})).await;
    let a = session_of(&first.say(json!({}), "a", "first").await);
    accept_offer(&mut agent, &a).await;
    agent.say(json!({"session": a}), "ra", "hello A").await;
    // B waits behind A for 3 s.
    let mut second = test.customer("cust-002").await;
    second.hello(json!({})).await;
    let b = session_of(&second.say(json!({}), "b", "second").await);
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    // A closes; B is answered late (over 2 s).
    assert_eq!(
        agent.request(json!({"type": "close", "session": a})).await["type"],
        "ok"
    );
    accept_offer(&mut agent, &b).await;
    agent
        .say(json!({"session": b}), "rb", "sorry for the wait")
        .await;
    // C: a visitor who waits 3 s, then leaves: abandoned.
    let visitor = test.visitor_token().await;
    let mut c_client = Client::connect(&test.ws_url("/ws/customer", &visitor)).await;
    c_client.hello(json!({})).await;
    let c = session_of(&c_client.say(json!({}), "c", "third").await);
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(
        c_client
            .request(json!({"type": "leave", "session": c}))
            .await["type"],
        "ok"
    );
    // D: leaves at once: a short abandon.
    let d = session_of(&c_client.say(json!({}), "d", "fourth").await);
    assert_eq!(
        c_client
            .request(json!({"type": "leave", "session": d}))
            .await["type"],
        "ok"
    );
    // One malformed frame, for the errors panel.
    c_client
        .send_raw(tokio_tungstenite::tungstenite::Message::Text("oops".into()))
        .await;
    c_client.expect("error").await;

    // Ground truth, exactly, once Prometheus has scraped it.
    prometheus
        .wait_for(
            &format!("switchboard_contacts_entered_total{{{default_web}}}"),
            4.0,
        )
        .await;
    prometheus
        .wait_for(
            &format!("switchboard_contacts_short_abandoned_total{{{default_web}}}"),
            1.0,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (name, expected) in [
        ("switchboard_contacts_answered_total", 2.0),
        ("switchboard_contacts_answered_within_threshold_total", 1.0),
        ("switchboard_contacts_abandoned_total", 1.0),
        ("switchboard_contacts_short_abandoned_total", 1.0),
        ("switchboard_time_to_answer_seconds_count", 2.0),
    ] {
        let got = prometheus.value(&format!("{name}{{{default_web}}}")).await;
        assert_eq!(got, expected, "{name}");
    }
    // Service level 1 / (2 + 1), as the dashboard computes it.
    let service_level = &panels
        .iter()
        .find(|(_, title, _)| title.starts_with("Service level"))
        .unwrap()
        .2;
    let by_series = prometheus.query(service_level).await;
    let default_web_level = by_series
        .iter()
        .find(|s| s["metric"]["group"] == "default" && s["metric"]["channel"] == "web")
        .expect("a default/web series");
    let level: f64 = default_web_level["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((level - 100.0 / 3.0).abs() < 0.01, "service level {level}");
    // ASA: the histogram's sum is exact. A waits next to nothing and B at
    // least 3 s, so the average is at least 1.5 s; the bound of 3 s leaves
    // their sum 3 s of slack.
    let asa = prometheus
        .value(&format!(
            "switchboard_time_to_answer_seconds_sum{{{default_web}}} / switchboard_time_to_answer_seconds_count{{{default_web}}}"
        ))
        .await;
    assert!((1.5..=3.0).contains(&asa), "ASA {asa}");
    eprintln!("prometheus: service level {level:.2} %, ASA {asa:.3} s");

    // The scenario breaches the 80 % target: the alert's expression is true
    // for default/web.
    let breach = prometheus
        .query(&alert_expr("ServiceLevelBelowTarget"))
        .await;
    assert!(
        breach
            .iter()
            .any(|s| s["metric"]["group"] == "default" && s["metric"]["channel"] == "web"),
        "{breach:?}"
    );

    // Every panel query evaluates and returns data after the scenario too.
    let empty = prometheus.panels_without_data(&panels).await;
    assert!(
        empty.is_empty(),
        "panels with no data:\n{}",
        empty.join("\n")
    );
    // Latencies are in seconds: the scenario's p99 delivery is under 5 s.
    let p99 = prometheus
        .value(
            "histogram_quantile(0.99, sum by (le) (rate(switchboard_delivery_latency_seconds_bucket[1m])))",
        )
        .await;
    assert!((0.0..5.0).contains(&p99), "delivery p99 {p99} s");
    drop(prometheus);
    test.server.shutdown().await.unwrap();
}

#[test]
fn the_alert_rules_pass_promtool() {
    let output = std::process::Command::new("promtool")
        .args(["check", "rules", &format!("{GRAFANA}/alerts.yml")])
        .output()
        .expect("promtool is installed (scripts/test installs prometheus)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("SUCCESS: 6 rules found"), "{text}");
}
