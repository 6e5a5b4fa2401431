//! SLA accounting (docs/sla.md): one scripted scenario, counted by hand,
//! read three ways that must agree per group and channel: the wallboard,
//! Prometheus (the raw counters and the dashboards' own panel queries,
//! through a real Prometheus), and `SlaReport` over the stored sessions.
//! (A test binary of its own: the metrics recorder is one per process.)

mod common;

use std::time::Duration;

use common::prometheus::{panel_queries, seed_demo_with_thresholds, start_prometheus};
use common::{Client, TestServer, accept_offer, session_of, test_config};
use gateway::Server;
use serde_json::json;

/// One scripted scenario, counted by hand, read three ways: the wallboard,
/// Prometheus (raw counters and the dashboards' own panel queries), and
/// `SlaReport` over the stored sessions. Every contact queues in
/// gold_service (3 s step) and overflows to default; thresholds are 6 s,
/// short abandons under 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_figures_agree_across_the_wallboard_prometheus_and_the_report() {
    use engine::channel::Channel;
    use engine::ids::SessionId;
    use engine::sla::SlaReport;
    use gateway::auth::Role;

    let dir = tempfile::tempdir().unwrap();
    seed_demo_with_thresholds(dir.path(), 6, 1).await;
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
name = "gold_then_default"
filter = "true"
  [[rule.step]]
  group = "gold_service"
  timeout = "3s"
  [[rule.step]]
  group = "default"
"#,
    )
    .unwrap();
    let mut config = test_config(&dir);
    config.routing.wrap_up_ms = 0;
    config.routing.rules_file = rules;
    let server = Server::start(config).await.unwrap();
    let test = TestServer { server, dir };
    let prometheus = start_prometheus(test.server.admin_addr).await;
    // Prometheus has the zeroed series, twice, before anything happens:
    // `increase()` then sees every step from 0.
    prometheus
        .wait_for(
            r#"switchboard_contacts_answered_total{group="gold_service",channel="web"}"#,
            0.0,
        )
        .await;
    prometheus
        .wait_for_any(r#"count_over_time(up{job="switchboard"}[1m]) >= 3"#)
        .await;
    let admin = test.token("ops", Role::Admin);
    // Sessions waiting in `group` now, from the wallboard.
    let waiting_in = |group: &'static str| {
        let test = &test;
        let admin = admin.clone();
        async move {
            let board = test.get_json("/api/v1/wallboard", &admin).await;
            board["groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["id"] == group)
                .unwrap()["n_waiting"]
                .as_u64()
                .unwrap()
        }
    };
    let until_waiting = |group: &'static str, n: u64| {
        let waiting_in = &waiting_in;
        async move {
            for _ in 0..200 {
                if waiting_in(group).await == n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{group} never had {n} waiting");
        }
    };
    // A new visitor on `channel`, after hello.
    let visitor = |channel: &'static str| {
        let test = &test;
        async move {
            let token = test.visitor_token().await;
            let url = format!("{}&channel={channel}", test.ws_url("/ws/customer", &token));
            let mut client = Client::connect(&url).await;
            client.hello(json!({})).await;
            client
        }
    };

    // li.na (gold_service and default) answers C1 at once: within, in gold.
    let mut li = test.available_agent("li.na").await;
    let mut c1 = visitor("web").await;
    let s1 = session_of(&c1.say(json!({}), "c1", "one").await);
    accept_offer(&mut li, &s1).await;
    let away = json!({"type": "presence", "state": "away", "reason": "lunch"});
    assert_eq!(li.request(away.clone()).await["type"], "presence");
    // C4 leaves at once: a short abandon in gold.
    let mut c4 = visitor("web").await;
    let s4 = session_of(&c4.say(json!({}), "c4", "four").await);
    leave(&mut c4, &s4).await;
    // C5 (app) leaves after 1.3 s, before its overflow: abandoned in gold.
    let mut c5 = visitor("app").await;
    let s5 = session_of(&c5.say(json!({}), "c5", "five").await);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    leave(&mut c5, &s5).await;
    // C2 overflows to default, where chen.jie answers it (about 3 s: within).
    let mut chen =
        Client::connect(&test.ws_url("/ws/agent", &test.token("chen.jie", Role::Agent))).await;
    chen.hello(json!({})).await;
    let available = json!({"type": "presence", "state": "available"});
    let mut c2 = visitor("web").await;
    let s2 = session_of(&c2.say(json!({}), "c2", "two").await);
    until_waiting("default", 1).await;
    assert_eq!(chen.request(available.clone()).await["type"], "presence");
    accept_offer(&mut chen, &s2).await;
    let closed = chen.request(json!({"type": "close", "session": s2})).await;
    assert_eq!(closed["type"], "ok", "{closed}");
    assert_eq!(chen.request(away.clone()).await["type"], "presence");
    // C3 (app) overflows to default and leaves there: abandoned in default.
    let mut c3 = visitor("app").await;
    let s3 = session_of(&c3.say(json!({}), "c3", "three").await);
    until_waiting("default", 1).await;
    leave(&mut c3, &s3).await;
    // C6 overflows and is answered after 6.5 s: late, in default.
    let mut c6 = visitor("web").await;
    let sent = tokio::time::Instant::now();
    let s6 = session_of(&c6.say(json!({}), "c6", "six").await);
    until_waiting("default", 1).await;
    tokio::time::sleep_until(sent + Duration::from_millis(6_500)).await;
    assert_eq!(chen.request(available.clone()).await["type"], "presence");
    accept_offer(&mut chen, &s6).await;
    // li.na transfers C1 to default after its answer: an entry of default's
    // queue, still one contact of gold, answered once.
    let transferred = li
        .request(json!({"type": "transfer", "session": s1, "group": "default"}))
        .await;
    assert_eq!(transferred["type"], "ok", "{transferred}");
    accept_offer(&mut chen, &s1).await;

    // Counted by hand, per (group, channel): contacts entered (less those
    // that moved on), queue entries, answered, within, abandoned (short
    // included), short.
    let truth: [(&str, &str, [u64; 6]); 4] = [
        ("gold_service", "web", [2, 4, 1, 1, 1, 1]), // C1, C4; entries C1 C2 C4 C6
        ("gold_service", "app", [1, 2, 0, 0, 1, 0]), // C5; entries C3 C5
        ("default", "web", [2, 3, 2, 1, 0, 0]),      // C2, C6; entries C2 C6 C1
        ("default", "app", [1, 1, 0, 0, 1, 0]),      // C3
    ];

    // SlaReport over the stored sessions.
    let store = test.server.switchboard().store();
    let mut sessions = Vec::new();
    for id in [&s1, &s2, &s3, &s4, &s5, &s6] {
        let id = SessionId(id.parse().unwrap());
        sessions.push(store.get_session(id).await.unwrap().unwrap());
    }
    let groups = store.list_groups().await.unwrap();
    for (group, channel, expected) in truth {
        let group = groups.iter().find(|g| g.id.as_str() == group).unwrap();
        let report = SlaReport::from_sessions(group, &sessions);
        let figures = &report.by_channel[&Channel::parse(channel).unwrap()];
        assert_eq!(
            [
                figures.n_entered,
                expected[1],
                figures.n_answered,
                figures.n_answered_within,
                figures.n_abandoned,
                figures.n_short_abandoned,
            ],
            expected,
            "SlaReport {} / {channel}",
            group.id
        );
    }

    // The wallboard, per group (every channel).
    let board = test.get_json("/api/v1/wallboard", &admin).await;
    for group in ["gold_service", "default"] {
        let mut expected = [0u64; 6];
        for (_, _, counts) in truth.iter().filter(|(g, _, _)| *g == group) {
            for (sum, count) in expected.iter_mut().zip(counts) {
                *sum += count;
            }
        }
        let row = board["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == group)
            .unwrap();
        let level = &row["service_level"];
        // The scenario took under a minute: the last 15 and 60 minutes
        // hold every answer and abandon since start, and the sparkline's
        // last slot (or the one before, across a 5-minute boundary) their
        // service level.
        for recent in ["service_level_15m", "service_level_60m"] {
            let recent = &row[recent];
            let got = [
                "n_answered",
                "n_answered_within",
                "n_abandoned",
                "n_short_abandoned",
            ]
            .map(|key| recent[key].as_u64().unwrap());
            assert_eq!(
                got,
                [expected[2], expected[3], expected[4], expected[5]],
                "{row}"
            );
            assert_eq!(recent["fraction"], level["fraction"], "{row}");
        }
        let sparkline = row["sparkline"].as_array().unwrap();
        assert_eq!(sparkline.len(), 12, "{row}");
        assert!(
            sparkline[10..].iter().any(|point| !point.is_null()),
            "{row}"
        );
        let fraction = level["fraction"].as_f64().unwrap();
        let target = level["target_pct"].as_f64().unwrap();
        assert_eq!(row["below_target"], fraction * 100.0 < target, "{row}");
        let got = [
            "n_entered",
            "n_queue_entries",
            "n_answered",
            "n_answered_within",
            "n_abandoned",
            "n_short_abandoned",
        ]
        .map(|key| level[key].as_u64().unwrap());
        assert_eq!(got, expected, "wallboard {group}: {level}");
        let rate = level["abandonment_rate"].as_f64().unwrap();
        assert!(
            (rate - expected[4] as f64 / expected[0] as f64).abs() < 1e-9,
            "{level}"
        );
    }

    // Prometheus: the raw counters, once scraped...
    prometheus
        .wait_for(
            r#"switchboard_queue_entries_total{group="default",channel="web"}"#,
            3.0,
        )
        .await;
    for (group, channel, expected) in truth {
        let labels = format!(r#"group="{group}",channel="{channel}""#);
        let q = |name: &str| format!("{name}{{{labels}}}");
        let got = [
            prometheus
                .value(&format!(
                    "{} - {}",
                    q("switchboard_contacts_entered_total"),
                    q("switchboard_contacts_moved_out_total")
                ))
                .await,
            prometheus
                .value(&q("switchboard_queue_entries_total"))
                .await,
            prometheus
                .value(&q("switchboard_contacts_answered_total"))
                .await,
            prometheus
                .value(&q("switchboard_contacts_answered_within_threshold_total"))
                .await,
            prometheus
                .value(&format!(
                    "{} + {}",
                    q("switchboard_contacts_abandoned_total"),
                    q("switchboard_contacts_short_abandoned_total")
                ))
                .await,
            prometheus
                .value(&q("switchboard_contacts_short_abandoned_total"))
                .await,
        ]
        .map(|value| value as u64);
        assert_eq!(got, expected, "Prometheus {group} / {channel}");
    }
    // ...and the dashboards' own queries: service level per group and
    // channel, abandonment rate per group.
    let panels = panel_queries();
    let panel = |prefix: &str| {
        panels
            .iter()
            .find(|(_, title, _)| title.starts_with(prefix))
            .unwrap_or_else(|| panic!("no panel {prefix}"))
            .2
            .clone()
    };
    let service_level = prometheus.query(&panel("Service level %")).await;
    for (group, channel, [_, _, answered, within, abandoned, short]) in truth {
        let series = service_level
            .iter()
            .find(|s| s["metric"]["group"] == group && s["metric"]["channel"] == channel)
            .unwrap_or_else(|| panic!("no service level for {group} / {channel}"));
        let got: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        let expected = 100.0 * within as f64 / (answered + abandoned - short) as f64;
        assert!(
            (got - expected).abs() < 0.01,
            "service level {group} / {channel}: {got} vs {expected}"
        );
    }
    let abandonment = prometheus.query(&panel("Abandonment rate")).await;
    for (group, expected) in [("gold_service", 2.0 / 3.0), ("default", 1.0 / 3.0)] {
        let series = abandonment
            .iter()
            .find(|s| s["metric"]["group"] == group)
            .unwrap_or_else(|| panic!("no abandonment rate for {group}"));
        let got: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        assert!(
            (got - 100.0 * expected).abs() < 0.01,
            "abandonment {group}: {got}"
        );
    }
    drop(prometheus);
    test.server.shutdown().await.unwrap();
}

/// The customer leaves `session`.
async fn leave(client: &mut Client, session: &str) {
    let left = client
        .request(json!({"type": "leave", "session": session}))
        .await;
    assert_eq!(left["type"], "ok", "{left}");
}
