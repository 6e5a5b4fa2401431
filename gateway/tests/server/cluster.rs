//! Real `switchboard` processes on loopback form one cluster: members join,
//! a killed one leaves at once, a hung one after the failure timeout, both
//! come back, and a node whose id a live node has refuses to start.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{
    NO_WRAP_UP, Node, SETTLE, agent_and_customer_on, cluster_env, customer_on, free_port,
    start_node, three_nodes_over_one_store, until_all_ready, until_members,
};
use common::{accept_offer, session_of};
use engine::ids::{CustomerId, GroupId};
use engine::placement::Placement;
use gateway::auth::Role;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_one_cluster_and_a_killed_one_leaves_at_once_and_rejoins() {
    let ports = [free_port(), free_port(), free_port()];
    let data = Arc::new(tempfile::tempdir().unwrap());
    let one = start_node(1, ports[0], &ports, data.clone(), &[]).await;
    let two = start_node(2, ports[1], &ports, data.clone(), &[]).await;
    let three = start_node(3, ports[2], &ports, data.clone(), &[]).await;
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

    // A customer may write to any node: every message reaches their one
    // open session, on the node placed to serve them, whose id is in the
    // session's id (bits 14-21).
    let customer_node = Placement::new([1, 2, 3]).customer(&CustomerId::new("cust-003"));
    let mut sessions = Vec::new();
    for (i, node) in [&one, &two, &three].into_iter().enumerate() {
        let mut customer = node.customer("cust-003").await;
        let ack = customer
            .say(json!({}), &format!("c-{i}"), "which node are you?")
            .await;
        let session: u64 = session_of(&ack).parse().unwrap();
        assert_eq!(
            (session >> 14) & 0xff,
            u64::from(customer_node),
            "session {session}"
        );
        sessions.push(session);
    }
    sessions.dedup();
    assert_eq!(sessions.len(), 1, "one open session: {sessions:?}");

    // kill -9: its connections close, so the others drop it at once, not
    // after the failure timeout.
    three.signal("KILL");
    let took = until_members(&[&one, &two], &[1, 2]).await;
    println!("a killed member was removed by both survivors after {took:?}");
    // (On a loaded machine a live member may also miss its heartbeats for
    // a moment and be counted leaving for silence: only the departure by
    // a closed connection is asserted.)
    let status = two.status().await;
    assert!(status["n_left"].as_u64() >= Some(1), "{status}");
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
                && line.contains(r#"why="disconnected""#)
        })
        .unwrap_or_else(|| panic!("not removed because its connection closed: {metrics}"));
    assert!(
        left.ends_with(" 1"),
        "one departure by disconnection: {left}"
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
    let data = Arc::new(tempfile::tempdir().unwrap());
    let one = start_node(1, ports[0], &ports, data.clone(), &timing).await;
    let two = start_node(2, ports[1], &ports, data.clone(), &timing).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_on_one_node_serves_agents_and_customers_on_the_others_and_fails_over() {
    let (nodes, _) = three_nodes_over_one_store().await;
    let placement = Placement::new([1, 2, 3]);
    let group_node = placement.group(&GroupId::new("default"));
    let others: Vec<u8> = [1, 2, 3].into_iter().filter(|n| *n != group_node).collect();
    let node = |id: u8| &nodes[usize::from(id) - 1];
    let (agent_a, customer_a) = agent_and_customer_on(&placement, others[0]);
    let (agent_b, customer_b) = agent_and_customer_on(&placement, others[1]);
    for customer in [&customer_a, &customer_b] {
        nodes[0].create_customer(customer).await;
    }
    println!(
        "default on node {group_node}; {agent_a} and {customer_a} on node {}; {agent_b} and {customer_b} on node {}",
        others[0], others[1]
    );

    // The group on its node serves the first agent's node: its offer also
    // reaches the agent's second desktop, open on the group's node.
    let mut desk_a = node(others[0]).agent(agent_a, true).await;
    let mut desk_a_elsewhere = node(group_node).agent(agent_a, false).await;
    let mut chat_a = node(others[0]).customer(&customer_a).await;
    let ack = chat_a.say(json!({}), "a-1", "hello from node A").await;
    let session_a = session_of(&ack);
    accept_offer(&mut desk_a, &session_a).await;
    desk_a_elsewhere
        .wait_for("the offer on the other desktop", |f| {
            f["type"] == "offer" && f["session"] == session_a.as_str()
        })
        .await;
    chat_a
        .wait_for("assigned", |f| f["type"] == "assigned")
        .await;
    let reply = desk_a
        .request(json!({"type": "message", "session": session_a, "client_message_id": "r-1", "body": "hi A"}))
        .await;
    assert_eq!(reply["type"], "ack", "{reply}");
    chat_a
        .wait_for("the agent's reply", |f| {
            f["type"] == "message" && f["body"] == "hi A"
        })
        .await;
    let closed = desk_a
        .request(json!({"type": "close", "session": session_a}))
        .await;
    assert_eq!(closed["type"], "ok", "{closed}");
    desk_a
        .request(json!({"type": "presence", "state": "away", "reason": "test"}))
        .await;

    // ... and the other agent's node.
    let mut desk_b = node(others[1]).agent(agent_b, true).await;
    let mut chat_b = node(others[1]).customer(&customer_b).await;
    let ack = chat_b.say(json!({}), "b-1", "hello from node B").await;
    let session_b = session_of(&ack);
    accept_offer(&mut desk_b, &session_b).await;
    chat_b
        .wait_for("assigned", |f| f["type"] == "assigned")
        .await;
    let closed = desk_b
        .request(json!({"type": "close", "session": session_b}))
        .await;
    assert_eq!(closed["type"], "ok", "{closed}");
    desk_b
        .request(json!({"type": "presence", "state": "away", "reason": "test"}))
        .await;

    // A customer served by the node that will die, and connected to it,
    // talks with the first agent (who is on another node).
    let customer_c = customer_on(&placement, group_node, "cc");
    nodes[0].create_customer(&customer_c).await;
    let mut chat_c = node(group_node).customer(&customer_c).await;
    desk_a
        .request(json!({"type": "presence", "state": "available"}))
        .await;
    let ack = chat_c
        .say(json!({}), "c-1", "served by the node that will die")
        .await;
    let session_c = session_of(&ack);
    accept_offer(&mut desk_a, &session_c).await;
    chat_c
        .wait_for("assigned", |f| f["type"] == "assigned")
        .await;
    desk_a
        .request(json!({"type": "presence", "state": "away", "reason": "test"}))
        .await;

    // Both customers write again and wait (nobody is available): A first.
    let ack = chat_a.say(json!({}), "a-2", "waiting, first").await;
    let waiting_a = session_of(&ack);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let ack = chat_b.say(json!({}), "b-2", "waiting, second").await;
    let waiting_b = session_of(&ack);

    // kill -9 the group's node: the survivors take the group and its
    // queue from the store, and offers flow again in the queue's order.
    // Wang Min takes one chat at a time, so the group's order shows in the
    // order of her offers (two offers made at once travel through
    // different nodes and may arrive either way round). Her desktop is on
    // a survivor, wherever her actor runs.
    let mut desk_w = node(others[1]).agent_as("wang.min", Role::Supervisor).await;
    let killed_at = Instant::now();
    node(group_node).signal("KILL");
    let survivors = [node(others[0]), node(others[1])];
    until_members(&survivors, &[u64::from(others[0]), u64::from(others[1])]).await;
    // The agent keeps her session, re-activated on a survivor, and writes
    // while the customer is away; the customer reconnects to another node
    // and resumes: the reply arrives once.
    let reply = desk_a
        .request(json!({"type": "message", "session": session_c, "client_message_id": "r-c", "body": "still here"}))
        .await;
    assert_eq!(reply["type"], "ack", "{reply}");
    let last_seq = chat_c.last_seq.clone();
    drop(chat_c);
    let mut chat_c = node(others[0]).customer_socket(&customer_c).await;
    chat_c.resume(&last_seq).await;
    chat_c
        .wait_for("the reply written while away", |f| {
            f["type"] == "message" && f["body"] == "still here"
        })
        .await;
    let ack = chat_c.say(json!({}), "c-2", "back, on another node").await;
    assert_eq!(session_of(&ack), session_c, "the same session");
    let copies = chat_c
        .take_pending()
        .iter()
        .filter(|f| f["type"] == "message" && f["body"] == "still here")
        .count();
    assert_eq!(copies, 0, "the reply came once");

    let presence = desk_w
        .request(json!({"type": "presence", "state": "available"}))
        .await;
    assert_eq!(presence["type"], "presence", "{presence}");
    let first = desk_w
        .wait_for("an offer after the failover", |f| f["type"] == "offer")
        .await;
    println!(
        "failover: kill -9 to the first offer took {:?}",
        killed_at.elapsed()
    );
    assert_eq!(
        first["session"],
        waiting_a.as_str(),
        "the longest waiting first"
    );
    let accepted = desk_w
        .request(json!({"type": "accept", "session": waiting_a}))
        .await;
    assert_eq!(accepted["type"], "ok", "{accepted}");
    chat_a
        .wait_for("assigned after the failover", |f| f["type"] == "assigned")
        .await;
    let closed = desk_w
        .request(json!({"type": "close", "session": waiting_a}))
        .await;
    assert_eq!(closed["type"], "ok", "{closed}");
    let second = desk_w
        .wait_for("the second offer", |f| f["type"] == "offer")
        .await;
    assert_eq!(second["session"], waiting_b.as_str());

    // Every acknowledged message is stored once.
    for (session, bodies) in [
        (&waiting_a, vec!["waiting, first"]),
        (&waiting_b, vec!["waiting, second"]),
        (
            &session_c,
            vec![
                "served by the node that will die",
                "still here",
                "back, on another node",
            ],
        ),
    ] {
        let record = survivors[0]
            .process
            .get_json(
                &format!("/api/v1/sessions/{session}"),
                &survivors[0].admin(),
            )
            .await;
        let messages: Vec<&str> = record["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events in {record}"))
            .iter()
            .filter(|event| event["type"] == "message")
            .map(|event| event["body"].as_str().unwrap())
            .collect();
        assert_eq!(messages, bodies, "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_takes_its_share_and_a_leaving_node_hands_its_share_over() {
    let (mut nodes, ports) = three_nodes_over_one_store().await;
    let fourth_port = free_port();
    let data = nodes[0].data.clone();
    nodes.push(start_node(4, fourth_port, &ports, data, &NO_WRAP_UP).await);
    let refs: Vec<&Node> = nodes.iter().collect();
    until_members(&refs, &[1, 2, 3, 4]).await;
    until_all_ready(&refs).await;

    // Every node places groups and agents alike, the newcomer included.
    let placement = Placement::new([1, 2, 3, 4]);
    let start = Instant::now();
    for node in &nodes {
        loop {
            let seen = node.status().await["placement"].clone();
            let agreed = seen["members"] == json!([1, 2, 3, 4])
                && ["default", "gold_service", "phone_support"]
                    .iter()
                    .all(|group| {
                        seen["groups"][group] == u64::from(placement.group(&GroupId::new(*group)))
                    });
            if agreed {
                break;
            }
            assert!(
                start.elapsed() < SETTLE,
                "node {} places otherwise: {seen}",
                node.node_id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let status = nodes[3].status().await;
    let runs_something = status["placement"]["groups"]
        .as_object()
        .unwrap()
        .values()
        .chain(status["placement"]["agents"].as_object().unwrap().values())
        .any(|node| node == 4);
    assert!(runs_something, "the fourth node takes a share: {status}");

    // Two customers wait in `default`, each on a node other than the
    // group's; then the group's node leaves gracefully (SIGTERM).
    let leaving = placement.group(&GroupId::new("default"));
    let staying: Vec<u8> = [1, 2, 3, 4].into_iter().filter(|n| *n != leaving).collect();
    let node = |id: u8| &nodes[usize::from(id) - 1];
    let mut chats = Vec::new();
    let mut waiting = Vec::new();
    for (i, on) in staying.iter().take(2).enumerate() {
        let customer = customer_on(&placement, *on, &format!("leave{i}"));
        node(*on).create_customer(&customer).await;
        let mut chat = node(*on).customer(&customer).await;
        let ack = chat.say(json!({}), "w-1", "waiting through a leave").await;
        waiting.push(session_of(&ack));
        chats.push(chat);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut desk_w = node(staying[0])
        .agent_as("wang.min", Role::Supervisor)
        .await;
    let left_at = Instant::now();
    node(leaving).signal("TERM");
    // It hands its share over, then exits cleanly.
    let mut leaving_node = nodes.remove(usize::from(leaving) - 1);
    let status = tokio::time::timeout(SETTLE, leaving_node.process.child.wait())
        .await
        .expect("the leaving node exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
    println!(
        "graceful leave: SIGTERM to exit took {:?}",
        left_at.elapsed()
    );
    // An agent whose actor moved comes back away; her desktop sets her
    // available (told to retry while her actor moves, as a real one is).
    loop {
        let presence = desk_w
            .request(json!({"type": "presence", "state": "available"}))
            .await;
        if presence["type"] == "presence" {
            break;
        }
        assert_eq!(presence["code"], "unavailable", "{presence}");
        assert!(left_at.elapsed() < SETTLE, "{presence}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for session in &waiting {
        let offer = desk_w
            .wait_for("an offer after the leave", |f| f["type"] == "offer")
            .await;
        assert_eq!(offer["session"], session.as_str(), "in the queue's order");
        let accepted = desk_w
            .request(json!({"type": "accept", "session": session}))
            .await;
        assert_eq!(accepted["type"], "ok", "{accepted}");
        let closed = desk_w
            .request(json!({"type": "close", "session": session}))
            .await;
        assert_eq!(closed["type"], "ok", "{closed}");
    }
    // The others no longer count it.
    let refs: Vec<&Node> = nodes.iter().collect();
    let expected: Vec<u64> = staying.iter().map(|n| u64::from(*n)).collect();
    until_members(&refs, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_changed_through_one_node_is_seen_changed_by_every_node_at_once() {
    let ports = [free_port(), free_port()];
    let data = Arc::new(tempfile::tempdir().unwrap());
    let one = start_node(1, ports[0], &ports, data.clone(), &[]).await;
    let two = start_node(2, ports[1], &ports, data.clone(), &[]).await;
    until_members(&[&one, &two], &[1, 2]).await;
    until_all_ready(&[&one, &two]).await;
    let read_on_two = || async {
        let record = two
            .process
            .get_json("/api/v1/customers/cust-003", &two.admin())
            .await;
        record["identities"].as_array().unwrap().len()
    };
    // Node two reads the profile (and keeps it in its cache) ...
    let before = read_on_two().await;
    assert_eq!(read_on_two().await, before);
    // ... node one links an identity; once it answers, node two reads the
    // change, not its cached copy.
    let linked = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/customers/cust-003/identities",
            one.process.addr
        ))
        .bearer_auth(one.admin())
        .json(&json!({"channel": "sms", "external_id": "+8613900000003"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        linked.status().as_u16(),
        200,
        "{}",
        linked.text().await.unwrap()
    );
    assert_eq!(
        read_on_two().await,
        before + 1,
        "node two serves the change at once"
    );
}
