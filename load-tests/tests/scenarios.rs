//! Small scenarios against a real switchboard (and the relay), through the
//! `loadgen` binary exactly as a load tester runs it: zero errors and exact
//! sent / received counts, read back from the JSON report.
//!
//! The switchboard binary comes from the same target directory
//! (`cargo test --workspace` builds it; `scripts/test` builds it first).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn loadgen() -> &'static str {
    env!("CARGO_BIN_EXE_loadgen")
}

fn switchboard() -> PathBuf {
    let path = Path::new(loadgen()).with_file_name("switchboard");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p gateway` (scripts/test does)",
        path.display()
    );
    path
}

/// Runs `loadgen run SCENARIO --set …` into a temporary directory and
/// returns the report's runs; the command must succeed.
fn run(scenario: &str, sets: &[&str], baseline: bool) -> (Vec<Value>, Value, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let mut command = Command::new(loadgen());
    command
        .args(["run", scenario, "--quiet", "--out"])
        .arg(out.path())
        .arg("--switchboard-bin")
        .arg(switchboard());
    for set in sets {
        command.args(["--set", set]);
    }
    if baseline {
        command.arg("--baseline");
    }
    let output = command.output().expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadgen {scenario} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let runs = report["runs"].as_array().unwrap().clone();
    let ratios = report["ratios_switchboard_over_relay"].clone();
    (runs, ratios, out)
}

fn counter(run: &Value, name: &str) -> i64 {
    run["counters"][name].as_i64().unwrap_or(0)
}

fn assert_clean(run: &Value) {
    assert_eq!(
        run["errors"],
        serde_json::json!({}),
        "errors in {}",
        run["target"]
    );
    assert_eq!(run["passed"], true);
    for check in run["checks"].as_array().unwrap() {
        assert_eq!(check["ok"], true, "{check}");
    }
}

#[test]
fn steady_chat_delivers_every_message_exactly_once_on_switchboard_and_the_relay() {
    let (runs, ratios, out) = run(
        "steady-chat",
        &[
            "customers=20",
            "agents=4",
            "rate=100",
            "duration_secs=3",
            "processes=2",
            "sources=2",
        ],
        true,
    );
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["target"], "switchboard");
    assert_eq!(runs[1]["target"], "relay");
    for run in &runs {
        assert_clean(run);
        assert_eq!(run["processes"], 2);
        // 20 first messages, then about 100/s for 3 s (a stalled generator
        // skips rather than bursts: at least half); every one answered.
        let sent = counter(run, "customer_messages_sent");
        assert!(sent >= 20 + 150, "{sent} sent");
        assert_eq!(counter(run, "customer_messages_received_by_agents"), sent);
        assert_eq!(counter(run, "agent_messages_sent"), sent);
        assert_eq!(counter(run, "agent_messages_received_by_customers"), sent);
        assert_eq!(counter(run, "sessions_answered"), 20);
        assert_eq!(
            run["latency"]["e2e_customer_to_agent"]["count"].as_i64(),
            Some(sent - 20)
        );
        assert!(run["memory"]["rss_peak_kib"].as_u64().unwrap() > 1_000);
        assert!(!run["series"].as_array().unwrap().is_empty());
    }
    assert!(
        ratios["messages_per_sec"].as_f64().unwrap() > 0.5,
        "{ratios}"
    );
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("steady-chat on relay"),
        "the HTML report plots both runs"
    );
}

#[test]
fn a_node_killed_under_steady_chat_loses_nothing_and_its_clients_resume_elsewhere() {
    let (runs, _, _out) = run(
        "steady-chat",
        &[
            "nodes=3",
            "customers=30",
            "agents=6",
            "rate=60",
            "duration_secs=5",
            "kill_node_at_secs=2",
            "sources=2",
        ],
        false,
    );
    let run = &runs[0];
    assert_eq!(run["params"]["nodes"], 3);
    // Every message acked once, received once and answered once, across the kill.
    assert_clean(run);
    // Three processes, one per node: the third node's 10 customers and 2
    // agents (agents 2 and 5) lost their socket and went on elsewhere, once each.
    assert_eq!(run["processes"], 3);
    assert_eq!(counter(run, "reconnected_to_another_node"), 12);
    assert_eq!(run["latency"]["failover_reconnect"]["count"], 12);
    let killed_at = figure(run, "node_killed_at_secs");
    assert!((2.0..5.0).contains(&killed_at), "killed at {killed_at} s");
    // Messages were in flight across the kill, and their longest wait is reported.
    assert!(figure(run, "longest_round_trip_ms_after_the_kill") > 0.0);
    // Customers kept writing after the kill: 30 first messages, then about
    // 60/s for 5 s (at least half, as above), all answered.
    let sent = counter(run, "customer_messages_sent");
    assert!(sent >= 30 + 150, "{sent} sent");
    assert_eq!(counter(run, "agent_messages_received_by_customers"), sent);
}

#[test]
fn resume_storm_loses_nothing_and_repeats_nothing() {
    let (runs, _, _out) = run(
        "resume-storm",
        &[
            "customers=30",
            "agents=3",
            "agent_capacity=20",
            "rounds=2",
            "processes=2",
        ],
        false,
    );
    let run = &runs[0];
    assert_clean(run);
    assert_eq!(counter(run, "resumed"), 60);
    // One first message and one per round, each answered once.
    assert_eq!(counter(run, "customer_messages_acked"), 90);
    assert_eq!(counter(run, "agent_messages_received_by_customers"), 90);
    assert_eq!(counter(run, "duplicate_events"), 0);
}

#[test]
fn a_short_contact_center_day_answers_or_abandons_every_arrival() {
    let (runs, _, _out) = run(
        "contact-center-day",
        &[
            "arrivals_per_sec=4",
            "duration_secs=4",
            "handle_secs=1",
            "talk_interval_secs=0.2",
            "patience_secs=5",
            "agents=4",
            "agent_capacity=2",
            "wrap_up_secs=0.2",
        ],
        false,
    );
    let run = &runs[0];
    assert_clean(run);
    let arrived = counter(run, "customers_arrived");
    assert!(arrived > 3, "{arrived} arrived");
    assert_eq!(
        counter(run, "sessions_answered") + counter(run, "sessions_abandoned"),
        arrived
    );
    // An accept refused because the offer was gone is forgiven only as the
    // race with a customer abandoning: never more of them than abandons.
    assert!(
        counter(run, "agent_accepts_refused_offer_gone") <= counter(run, "sessions_abandoned"),
        "{}",
        run["counters"]
    );
    let level = &run["service_level"];
    assert!(level["level"].as_f64().unwrap() > 0.0, "{level}");
}

#[test]
fn storms_and_idle_sessions_measure_memory_per_session() {
    let (runs, _, _out) = run(
        "connection-storm",
        &["customers=300", "hold_secs=1", "sources=3"],
        false,
    );
    let storm = &runs[0];
    assert_clean(storm);
    assert_eq!(storm["memory"]["sessions"], 300);
    assert_eq!(counter(storm, "sessions_opened"), 300);
    assert!(storm["memory"]["kib_per_session"].as_f64().is_some());
    assert_eq!(
        counter(storm, "sessions_answered"),
        0,
        "nobody answers without agents"
    );

    // With agents online every session is answered before the hold.
    let (runs, _, _out) = run(
        "connection-storm",
        &[
            "customers=120",
            "hold_secs=1",
            "sources=2",
            "agents=3",
            "agent_capacity=40",
        ],
        false,
    );
    let assigned = &runs[0];
    assert_clean(assigned);
    assert_eq!(counter(assigned, "sessions_opened"), 120);
    assert_eq!(counter(assigned, "sessions_answered"), 120);
    assert!(assigned["memory"]["kib_per_session"].as_f64().is_some());

    let (runs, _, _out) = run(
        "idle-sessions",
        &["sessions=500", "concurrency=8", "processes=1"],
        false,
    );
    let idle = &runs[0];
    assert_clean(idle);
    assert_eq!(counter(idle, "sessions_opened"), 500);
    assert_eq!(idle["memory"]["sessions"], 500);
    assert!(idle["latency"]["inbound"]["count"].as_i64() == Some(500));
}

#[test]
fn bad_parameters_are_refused_naming_the_key() {
    let output = Command::new(loadgen())
        .args(["run", "steady-chat", "--set", "custmers=5"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown parameter `custmers`"), "{stderr}");
    let output = Command::new(loadgen())
        .args(["run", "no-such"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scenario `no-such`"));
}

fn figure(run: &Value, name: &str) -> f64 {
    run["figures"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no figure {name} in {}", run["figures"]))
}

#[test]
fn call_setup_answers_every_call_and_hangs_up_every_one() {
    let (runs, _, _out) = run(
        "call-setup",
        &["rate=20", "duration_secs=2", "hold_secs=0.5"],
        false,
    );
    let run = &runs[0];
    assert_clean(run);
    assert_eq!(counter(run, "calls_placed"), 40);
    assert_eq!(counter(run, "calls_answered"), 40);
    assert_eq!(counter(run, "calls_hung_up"), 40);
    assert_eq!(run["latency"]["call_setup"]["count"], 40);
    assert!(counter(run, "hold_audio_packets_received") > 0, "{run}");
    assert!(figure(run, "calls_answered_per_sec") > 10.0);
}

#[test]
fn voice_relay_delivers_every_rtp_packet_both_ways() {
    let (runs, _, _out) = run("voice-relay", &["calls=5", "media_secs=2"], false);
    let run = &runs[0];
    assert_clean(run);
    assert_eq!(counter(run, "calls_bridged"), 5);
    assert_eq!(counter(run, "agent_phones_hung_up"), 5);
    for direction in ["caller_to_agent", "agent_to_caller"] {
        // 5 calls × 2 s × 50 packets/s.
        assert_eq!(counter(run, &format!("rtp_{direction}_sent")), 500);
        assert_eq!(counter(run, &format!("rtp_{direction}_received")), 500);
        assert_eq!(counter(run, &format!("rtp_{direction}_lost")), 0);
        assert_eq!(run["latency"][format!("rtp_{direction}")]["count"], 500);
        assert!(figure(run, &format!("jitter_{direction}_max_ms")) >= 0.0);
    }
    // The server's own view of the same packets.
    for direction in ["from_caller", "from_agent"] {
        let name = format!("server_rtp_packets{{direction=\"{direction}\",outcome=\"relayed\"}}");
        assert_eq!(counter(run, &name), 500, "{}", run["counters"]);
    }
    assert!(figure(run, "server_cpu_cores_media") >= 0.0);
    assert!(figure(run, "server_relay_p99_ms_at_most") > 0.0);
}

#[test]
fn channel_webhook_acks_every_message_and_delivers_every_reply_once() {
    let (runs, _, _out) = run(
        "channel-webhook",
        &[
            "rate=200",
            "duration_secs=2",
            "customers=20",
            "agents=2",
            "batch=2",
            // Ends as soon as every reply is delivered; long enough for the
            // nine scenarios of this file running at once on two cores.
            "drain_secs=40",
        ],
        false,
    );
    let run = &runs[0];
    assert_clean(run);
    // 200 messages/s for 2 s, two per request.
    assert_eq!(counter(run, "customer_messages_sent"), 400);
    assert_eq!(counter(run, "customer_messages_acked"), 400);
    assert_eq!(run["latency"]["channel_inbound_ack"]["count"], 400);
    // Each customer message answered, and each answer delivered once.
    assert_eq!(counter(run, "agent_messages_acked"), 400);
    assert_eq!(counter(run, "replies_delivered"), 400);
    assert_eq!(counter(run, "replies_delivered_twice"), 0);
    assert_eq!(run["latency"]["channel_delivery"]["count"], 400);
    assert!(figure(run, "inbound_messages_per_sec") > 100.0);
    assert!(figure(run, "outbound_deliveries_per_sec") > 0.0);
}
