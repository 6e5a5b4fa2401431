//! Real `switchboard` processes on loopback form one cluster: members join,
//! a killed one leaves at once, a hung one after the failure timeout, both
//! come back, and a node whose id a live node has refuses to start.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Process, process_token, session_of, start_process};
use gateway::auth::Role;
use serde_json::{Value, json};

const COOKIE: &str = "cluster-test-cookie-0123456789";
/// How long a cluster may take to settle in these tests: far above what it
/// needs (tens of milliseconds), so a slow CI machine does not fail them.
const SETTLE: Duration = Duration::from_secs(15);

/// One node: its process, data and cluster port.
struct Node {
    node_id: u8,
    port: u16,
    data: tempfile::TempDir,
    process: Process,
}

impl Node {
    /// `GET /api/v1/cluster` as an admin of this node.
    async fn status(&self) -> Value {
        let token = process_token(self.data.path(), "admin", Role::Admin);
        let response = reqwest::Client::new()
            .get(format!("http://{}/api/v1/cluster", self.process.addr))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.expect("a JSON answer")
    }

    /// The node ids this node lists as members.
    async fn member_ids(&self) -> Vec<u64> {
        self.status().await["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member["node_id"].as_u64().unwrap())
            .collect()
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`) to the process.
    fn signal(&self, signal: &str) {
        let pid = self.process.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}").as_str(), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn seeds(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The environment of node `node_id` listening on `port`, seeded by `seed_ports`.
fn cluster_env(
    node_id: u8,
    port: u16,
    seed_ports: &[u16],
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "SWITCHBOARD_CLUSTER_NODE_ID".to_string(),
            node_id.to_string(),
        ),
        (
            "SWITCHBOARD_CLUSTER_LISTEN".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        ("SWITCHBOARD_CLUSTER_SEEDS".to_string(), seeds(seed_ports)),
        ("SWITCHBOARD_CLUSTER_COOKIE".to_string(), COOKIE.to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn start_node(
    node_id: u8,
    port: u16,
    seed_ports: &[u16],
    data: tempfile::TempDir,
    extra: &[(&str, &str)],
) -> Node {
    let env = cluster_env(node_id, port, seed_ports, extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let process = start_process(data.path(), &env, None).await;
    Node {
        node_id,
        port,
        data,
        process,
    }
}

/// Polls every node's member list until each lists exactly `expected`;
/// returns how long that took.
async fn until_members(nodes: &[&Node], expected: &[u64]) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        for node in nodes {
            if node.member_ids().await != expected {
                all = false;
            }
        }
        if all {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < SETTLE,
            "the members never became {expected:?}: {:?}",
            {
                let mut seen = Vec::new();
                for node in nodes {
                    seen.push((node.node_id, node.member_ids().await));
                }
                seen
            }
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_one_cluster_and_a_killed_one_leaves_at_once_and_rejoins() {
    let ports = [free_port(), free_port(), free_port()];
    let one = start_node(1, ports[0], &ports, tempfile::tempdir().unwrap(), &[]).await;
    let two = start_node(2, ports[1], &ports, tempfile::tempdir().unwrap(), &[]).await;
    let three = start_node(3, ports[2], &ports, tempfile::tempdir().unwrap(), &[]).await;
    until_members(&[&one, &two, &three], &[1, 2, 3]).await;

    // Each member's public address is the one its process listens on, and
    // each lists itself as the node that answered.
    let status = one.status().await;
    assert_eq!(status["mode"], "cluster");
    assert_eq!(status["node_id"], 1);
    for (member, node) in status["members"]
        .as_array()
        .unwrap()
        .iter()
        .zip([&one, &two, &three])
    {
        assert_eq!(member["api_addr"], node.process.addr.as_str(), "{member}");
        assert_eq!(member["cluster_addr"], format!("127.0.0.1:{}", node.port));
        assert_eq!(member["this_node"], node.node_id == 1);
    }

    // Each node mints session ids with its own id in them (bits 14–21).
    for node in [&one, &two, &three] {
        let token = process_token(node.data.path(), "cust-003", Role::Customer);
        let url = format!("ws://{}/ws/customer?token={token}", node.process.addr);
        let mut customer = Client::connect(&url).await;
        customer.hello(json!({})).await;
        let ack = customer.say(json!({}), "c-1", "which node are you?").await;
        let session: u64 = session_of(&ack).parse().unwrap();
        assert_eq!(
            (session >> 14) & 0xff,
            u64::from(node.node_id),
            "session {session}"
        );
    }

    // kill -9: its connections close, so the others drop it at once, not
    // after the failure timeout.
    three.signal("KILL");
    let took = until_members(&[&one, &two], &[1, 2]).await;
    println!("a killed member was removed by both survivors after {took:?}");
    let status = two.status().await;
    assert_eq!(status["n_left"], 1, "{status}");
    let metrics = reqwest::get(format!("http://{}/metrics", two.process.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let left = metrics
        .lines()
        .find(|line| {
            line.starts_with("switchboard_cluster_member_changes_total{")
                && line.contains(r#"change="left""#)
        })
        .unwrap_or_else(|| panic!("no departures counted: {metrics}"));
    assert!(
        left.contains(r#"why="disconnected""#) && left.ends_with(" 1"),
        "removed because its connection closed, not after its silence: {left}"
    );
    // Every series says which node it comes from.
    for line in metrics
        .lines()
        .filter(|line| line.starts_with("switchboard_"))
    {
        assert!(line.contains(r#"node="2""#), "no node label: {line}");
    }

    // Restarted on its data, it joins again through its seeds.
    let Node { data, port, .. } = three;
    let three = start_node(3, port, &ports, data, &[]).await;
    until_members(&[&one, &two, &three], &[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_member_is_removed_after_the_failure_timeout_and_readmitted_when_it_wakes() {
    let ports = [free_port(), free_port()];
    let timing = [
        ("SWITCHBOARD_CLUSTER_HEARTBEAT_MS", "100"),
        ("SWITCHBOARD_CLUSTER_FAILURE_TIMEOUT_MS", "500"),
    ];
    let one = start_node(1, ports[0], &ports, tempfile::tempdir().unwrap(), &timing).await;
    let two = start_node(2, ports[1], &ports, tempfile::tempdir().unwrap(), &timing).await;
    until_members(&[&one, &two], &[1, 2]).await;

    // Stopped, not killed: its connection stays open, only its silence tells.
    two.signal("STOP");
    let took = until_members(&[&one], &[1]).await;
    println!("a hung member was removed after {took:?} (failure timeout 500 ms)");
    assert!(
        took >= Duration::from_millis(400),
        "removed before its failure timeout could pass: {took:?}"
    );
    two.signal("CONT");
    until_members(&[&one, &two], &[1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_id_a_live_node_has_refuses_to_start() {
    let ports = [free_port(), free_port()];
    let one = start_node(1, ports[0], &ports, tempfile::tempdir().unwrap(), &[]).await;

    let data = tempfile::tempdir().unwrap();
    let env = cluster_env(1, ports[1], &ports, &[]);
    let output = tokio::time::timeout(
        SETTLE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .env("SWITCHBOARD_SERVER_LISTEN", "127.0.0.1:0")
            .env("SWITCHBOARD_SERVER_ADMIN_LISTEN", "127.0.0.1:0")
            .env("SWITCHBOARD_STORE_DATA_DIR", data.path())
            .env("SWITCHBOARD_VOICE_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "error")
            .envs(env)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the second node gives up in time")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it must not run: {stderr}");
    assert!(
        stderr.contains(&format!(
            "node id 1 is already taken by the live node at 127.0.0.1:{}",
            ports[0]
        )),
        "the error names the id and the node that has it: {stderr}"
    );

    // The first node never counted it as a member and still serves.
    assert_eq!(one.member_ids().await, [1]);
    assert_eq!(one.status().await["n_joined"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_cookie_is_not_admitted() {
    let ports = [free_port(), free_port()];
    let one = start_node(1, ports[0], &ports, tempfile::tempdir().unwrap(), &[]).await;
    let intruder = start_node(
        2,
        ports[1],
        &ports,
        tempfile::tempdir().unwrap(),
        &[(
            "SWITCHBOARD_CLUSTER_COOKIE",
            "not-the-cluster-cookie-at-all",
        )],
    )
    .await;
    // It started (after waiting for its seed to say hello) and has had
    // more than ten heartbeats' time to be admitted: neither side lists
    // the other.
    assert_eq!(one.member_ids().await, [1]);
    assert_eq!(intruder.member_ids().await, [2]);
    assert_eq!(one.status().await["n_joined"], 0);
}
