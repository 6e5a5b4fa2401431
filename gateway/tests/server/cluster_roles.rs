//! Nodes with different roles (`cluster.roles`) form one working cluster:
//! an edge node serves the sockets, a core node runs the routing, a workers
//! node delivers the webhooks, each exactly once (also when every node
//! could deliver); an article written on one node is found on the others,
//! and rules replaced on one are in force on the others;
//! a node without `edge`
//! points clients to the edge nodes; a role no live member runs is
//! reported, and its work waits in the store until a member runs it again.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::accept_offer;
use common::cluster::{
    NO_WRAP_UP, Node, SETTLE, free_port, start_node, until_all_ready, until_members,
};
use serde_json::{Value, json};

/// Deliveries the receiver got: idempotency key → (event type, times).
type Received = Arc<Mutex<BTreeMap<String, (String, u32)>>>;

/// A webhook receiver on a free port that answers 200 to everything.
async fn receiver() -> (u16, Received) {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap| {
            let sink = sink.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let mut sink = sink.lock().unwrap();
                let entry = sink
                    .entry(header("idempotency-key"))
                    .or_insert_with(|| (header("x-switchboard-event"), 0));
                entry.1 += 1;
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, received)
}

/// A data directory for the nodes' one store, and the path of a config
/// file there that sends `session.*` webhooks to a [`receiver`] (polled
/// every 50 ms), with what it receives.
async fn store_with_a_webhook() -> (Arc<tempfile::TempDir>, String, Received) {
    let (hook_port, received) = receiver().await;
    let data = Arc::new(tempfile::tempdir().unwrap());
    let config = data.path().join("hooks.toml");
    std::fs::write(
        &config,
        format!(
            "[webhooks]\npoll_ms = 50\ninitial_backoff_ms = 100\n\n[[webhooks.endpoints]]\nname = \"crm\"\nurl = \"http://127.0.0.1:{hook_port}/hooks\"\nsecret = \"webhook-secret-0123456789\"\nevents = [\"session.*\"]\n"
        ),
    )
    .unwrap();
    (data, config.display().to_string(), received)
}

/// The `session.closed` deliveries so far, each with how often it came.
fn closed(received: &Received) -> Vec<u32> {
    received
        .lock()
        .unwrap()
        .values()
        .filter(|(event, _)| event == "session.closed")
        .map(|(_, times)| *times)
        .collect()
}

/// Waits until `received` holds `n` `session.closed` deliveries, then a
/// little longer (several outbox polls) for any second delivery.
async fn until_closed(received: &Received, n: usize) -> Vec<u32> {
    let start = Instant::now();
    while closed(received).len() < n {
        assert!(
            start.elapsed() < SETTLE,
            "{n} session.closed deliveries expected, got {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    closed(received)
}

/// A customer on `edge` talks with `agent` on `edge`, the agent closes the
/// session and goes away; returns the session id.
async fn conversation(edge: &Node, customer: &str, agent: &str) -> u64 {
    edge.create_customer(customer).await;
    let mut desk = edge.agent(agent, true).await;
    let mut chat = edge.customer(customer).await;
    let ack = chat.say(json!({}), "m-1", "hello edge").await;
    let session = common::session_of(&ack);
    accept_offer(&mut desk, &session).await;
    let reply = desk
        .request(json!({"type": "message", "session": session, "client_message_id": "r-1", "body": "hi"}))
        .await;
    assert_eq!(reply["type"], "ack", "{reply}");
    chat.wait_for("the agent's reply", |f| {
        f["type"] == "message" && f["body"] == "hi"
    })
    .await;
    let closed = desk
        .request(json!({"type": "close", "session": session}))
        .await;
    assert_eq!(closed["type"], "ok", "{closed}");
    // Not offered the next conversation's session (a closed socket keeps
    // an agent's presence for a while).
    let away = desk
        .request(json!({"type": "presence", "state": "away", "reason": "test"}))
        .await;
    assert_eq!(away["type"], "presence", "{away}");
    session.parse().unwrap()
}

/// The role-related part of a node's `GET /api/v1/cluster`.
async fn roles_of(node: &Node) -> (Vec<u64>, Value, bool) {
    let status = node.status().await;
    let placed_on = status["placement"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_u64().unwrap())
        .collect();
    (
        placed_on,
        status["uncovered_roles"].clone(),
        status["delivers_outbox"] == true,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_a_core_and_a_workers_node_serve_together_and_each_webhook_goes_once() {
    let (data, config, received) = store_with_a_webhook().await;
    let ports = [free_port(), free_port(), free_port()];
    let env = |role: &'static str| {
        let mut env = vec![
            ("SWITCHBOARD_CONFIG", config.as_str()),
            ("SWITCHBOARD_CLUSTER_ROLES", role),
        ];
        env.extend(NO_WRAP_UP);
        env
    };
    let edge = start_node(1, ports[0], &ports, data.clone(), &env("edge")).await;
    let core = start_node(2, ports[1], &ports, data.clone(), &env("core")).await;
    let workers = start_node(3, ports[2], &ports, data.clone(), &env("workers")).await;
    until_members(&[&edge, &core, &workers], &[1, 2, 3]).await;
    until_all_ready(&[&edge, &core, &workers]).await;

    // Every node places the actors on the core node alone, sees every
    // role covered, and agrees that the workers node delivers.
    for (node, delivers) in [(&edge, false), (&core, false), (&workers, true)] {
        let (placed_on, uncovered, delivering) = roles_of(node).await;
        assert_eq!(placed_on, [2], "node {}", node.node_id);
        assert_eq!(uncovered, json!([]), "node {}", node.node_id);
        assert_eq!(delivering, delivers, "node {}", node.node_id);
    }
    let members = edge.status().await["members"].clone();
    assert_eq!(members[1]["roles"], json!(["core"]), "{members}");

    // A client that reached the core node is pointed to the edge node;
    // the cluster status still answers there.
    let response = reqwest::Client::new()
        .get(format!("http://{}/api/v1/groups", core.process.addr))
        .bearer_auth(core.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 421);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_an_edge_node", "{body}");
    let edge_url = format!("http://{}", edge.process.addr);
    assert!(
        body["message"].as_str().unwrap().contains(&edge_url),
        "{body}"
    );

    // A conversation through the edge node runs on the core node (its
    // session id carries node 2) and its webhook is delivered once.
    let session = conversation(&edge, "roles-c1", "chen.jie").await;
    assert_eq!((session >> 14) & 0xff, 2, "session {session}");
    assert_eq!(until_closed(&received, 1).await, [1]);

    // Without the workers node, no one delivers and every node says so;
    // what happens meanwhile waits in the store, and goes (once) when a
    // node with the role is back.
    workers.signal("KILL");
    let Node { port, data, .. } = workers;
    until_members(&[&edge, &core], &[1, 2]).await;
    assert_eq!(roles_of(&edge).await.1, json!(["workers"]));
    conversation(&edge, "roles-c2", "li.na").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(closed(&received), [1], "delivered with no workers node");
    let workers = start_node(3, port, &ports, data, &env("workers")).await;
    until_members(&[&edge, &core, &workers], &[1, 2, 3]).await;
    assert_eq!(until_closed(&received, 2).await, [1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_every_role_deliver_each_webhook_once() {
    let (data, config, received) = store_with_a_webhook().await;
    let mut env = vec![("SWITCHBOARD_CONFIG", config.as_str())];
    env.extend(NO_WRAP_UP);
    let ports = [free_port(), free_port()];
    let one = start_node(1, ports[0], &ports, data.clone(), &env).await;
    let two = start_node(2, ports[1], &ports, data.clone(), &env).await;
    until_members(&[&one, &two], &[1, 2]).await;
    until_all_ready(&[&one, &two]).await;
    assert!(roles_of(&one).await.2 && !roles_of(&two).await.2);

    // Both nodes poll the same outbox; only the deliverer sends.
    for (i, agent) in ["chen.jie", "li.na", "liu.yang"].into_iter().enumerate() {
        let node = if i % 2 == 0 { &one } else { &two };
        conversation(node, &format!("every-role-{i}"), agent).await;
    }
    assert_eq!(until_closed(&received, 3).await, [1, 1, 1]);

    // An article written through one node is found through the other: its
    // index follows the change.
    let written = reqwest::Client::new()
        .put(format!("http://{}/api/v1/kb/articles/cluster-zebra", one.process.addr))
        .bearer_auth(one.admin())
        .json(&json!({"language": "en", "title": "Zebra crossings", "body": "How a zebra crossing works."}))
        .send()
        .await
        .unwrap();
    assert!(written.status().is_success(), "{}", written.status());
    let start = Instant::now();
    loop {
        let hits = two
            .process
            .get_json("/api/v1/kb/search?q=zebra", &two.admin())
            .await;
        if hits
            .as_array()
            .unwrap()
            .iter()
            .any(|hit| hit["id"] == "cluster-zebra")
        {
            println!(
                "an article written on node 1 was found on node 2 after {:?}",
                start.elapsed()
            );
            break;
        }
        assert!(start.elapsed() < SETTLE, "never found on node 2: {hits}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Rules replaced through one node are in force on the other.
    let client = reqwest::Client::new();
    let rules_url = |node: &Node| format!("http://{}/api/v1/rules", node.process.addr);
    let rules = |node: &Node| {
        let request = client.get(rules_url(node)).bearer_auth(node.admin());
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let changed = format!("{}\n# replaced through node 1\n", rules(&one).await);
    let put = client
        .put(rules_url(&one))
        .bearer_auth(one.admin())
        .header("content-type", "application/toml")
        .body(changed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200, "{}", put.text().await.unwrap());
    let start = Instant::now();
    while rules(&two).await != changed {
        assert!(start.elapsed() < SETTLE, "node 2 never took the rules");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "rules replaced on node 1 were in force on node 2 after {:?}",
        start.elapsed()
    );
}
