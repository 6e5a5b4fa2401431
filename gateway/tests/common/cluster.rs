//! Real `switchboard` processes as cluster nodes on loopback: starting
//! them over one store, reading their member lists, sockets on each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::ids::{AgentId, CustomerId};
use engine::placement::Placement;
use gateway::auth::Role;
use serde_json::{Value, json};

use super::{Client, Process, process_token, start_process};

pub const COOKIE: &str = "cluster-test-cookie-0123456789";
/// How long a cluster may take to settle in these tests: far above what it
/// needs (tens of milliseconds), so a slow CI machine does not fail them.
pub const SETTLE: Duration = Duration::from_secs(15);

/// One node: its process, data and cluster port.
pub struct Node {
    pub node_id: u8,
    pub port: u16,
    /// Shared by nodes over one store.
    pub data: Arc<tempfile::TempDir>,
    pub process: Process,
}

impl Node {
    /// `GET /api/v1/cluster` as an admin of this node.
    pub async fn status(&self) -> Value {
        let status = self
            .process
            .get_json("/api/v1/cluster", &self.admin())
            .await;
        assert!(status["members"].is_array(), "{status}");
        status
    }

    /// The node ids this node lists as members.
    pub async fn member_ids(&self) -> Vec<u64> {
        self.status().await["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member["node_id"].as_u64().unwrap())
            .collect()
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.process.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}").as_str(), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

/// A loopback port free now, below the ephemeral range (32768 and up on
/// Linux): a port the OS hands out for `:0` may be taken again as the
/// source port of another test's connection before the node binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id()) << 20
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    (0..1_000)
        .map(|i| {
            let n = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed) + i);
            20_000 + (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as u16 % 12_000
        })
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port between 20000 and 32000")
}

pub fn seeds(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The environment of node `node_id` listening on `port`, seeded by `seed_ports`.
pub fn cluster_env(
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

pub async fn start_node(
    node_id: u8,
    port: u16,
    seed_ports: &[u16],
    data: impl Into<Arc<tempfile::TempDir>>,
    extra: &[(&str, &str)],
) -> Node {
    let data = data.into();
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
pub async fn until_members(nodes: &[&Node], expected: &[u64]) -> Duration {
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

impl Node {
    /// An admin token (the nodes of one store share its secret).
    pub fn admin(&self) -> String {
        process_token(self.data.path(), "admin", Role::Admin)
    }

    /// A socket of supervisor or agent `agent`, signed in, away.
    pub async fn agent_as(&self, agent: &str, role: Role) -> Client {
        let token = process_token(self.data.path(), agent, role);
        let url = format!("ws://{}/ws/agent?token={token}", self.process.addr);
        let mut client = Client::connect(&url).await;
        client.hello(json!({})).await;
        client
    }

    /// A socket of `agent`, signed in; available when `available`.
    pub async fn agent(&self, agent: &str, available: bool) -> Client {
        let token = process_token(self.data.path(), agent, Role::Agent);
        let url = format!("ws://{}/ws/agent?token={token}", self.process.addr);
        let mut client = Client::connect(&url).await;
        client.hello(json!({})).await;
        if available {
            let presence = client
                .request(json!({"type": "presence", "state": "available"}))
                .await;
            assert_eq!(presence["type"], "presence", "{presence}");
        }
        client
    }

    /// A socket of customer `customer`, said hello.
    pub async fn customer(&self, customer: &str) -> Client {
        let mut client = self.customer_socket(customer).await;
        client.hello(json!({})).await;
        client
    }

    /// A socket of customer `customer`, before its hello.
    pub async fn customer_socket(&self, customer: &str) -> Client {
        let token = process_token(self.data.path(), customer, Role::Customer);
        let url = format!("ws://{}/ws/customer?token={token}", self.process.addr);
        Client::connect(&url).await
    }

    /// Creates customer `id` (standard tier: routed to `default`).
    pub async fn create_customer(&self, id: &str) {
        let response = reqwest::Client::new()
            .post(format!("http://{}/api/v1/customers", self.process.addr))
            .bearer_auth(self.admin())
            .json(&json!({"id": id, "display_name": id, "language": "en"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            201,
            "{}",
            response.text().await.unwrap()
        );
    }

    /// Whether every member this node lists is ready.
    pub async fn all_ready(&self) -> bool {
        self.status().await["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|member| member["ready"] == true)
    }
}

/// The environment of the nodes over one store: agents are available again
/// as soon as they close a session (no wrap-up).
pub const NO_WRAP_UP: [(&str, &str); 1] = [("SWITCHBOARD_ROUTING_WRAP_UP_MS", "0")];

/// Three nodes over one SQLite file (node 1 seeds the demo), with [`NO_WRAP_UP`].
pub async fn three_nodes_over_one_store() -> (Vec<Node>, [u16; 3]) {
    let ports = [free_port(), free_port(), free_port()];
    let data = Arc::new(tempfile::tempdir().unwrap());
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        nodes.push(start_node(i as u8 + 1, *port, &ports, data.clone(), &NO_WRAP_UP).await);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    until_members(&refs, &[1, 2, 3]).await;
    until_all_ready(&refs).await;
    (nodes, ports)
}

/// A member of `default` placed on `node`, and a customer id placed there.
pub fn agent_and_customer_on(placement: &Placement, node: u8) -> (&'static str, String) {
    let agent = ["chen.jie", "liu.yang", "li.na", "zhang.wei"]
        .into_iter()
        .find(|agent| placement.agent(&AgentId::new(*agent)) == node)
        .unwrap_or_else(|| panic!("no member of default is placed on node {node}"));
    (agent, customer_on(placement, node, "cl"))
}

/// A customer id starting with `prefix` that is placed on `node`.
pub fn customer_on(placement: &Placement, node: u8, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| placement.customer(&CustomerId::new(id.as_str())) == node)
        .expect("some customer id lands on every node")
}

/// Waits until every node in `nodes` lists every member as ready.
pub async fn until_all_ready(nodes: &[&Node]) {
    let start = Instant::now();
    for node in nodes {
        while !node.all_ready().await {
            assert!(
                start.elapsed() < SETTLE,
                "node {} never saw every member ready",
                node.node_id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
