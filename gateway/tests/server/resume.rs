//! Resume: clients that drop mid-conversation reconnect with their last
//! `seq` and miss nothing, duplicate nothing; a server killed with SIGKILL
//! restarts on the same data with every acknowledged message.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, TestServer, accept_offer, process_token, session_of, start_process};
use gateway::auth::Role;
use serde_json::{Value, json};

/// The `seq`s of `kind` frames in `frames`, in order.
fn message_seqs(frames: &[Value], sender: &str) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "message" && f["sender"] == sender)
        .map(|f| f["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_clients_resume_from_their_last_seq() {
    let test = TestServer::start(|_| {}).await;
    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer.say(json!({}), "c-1", "hello").await;
    let session = session_of(&ack);
    accept_offer(&mut agent, &session).await;
    customer.expect("assigned").await;
    agent
        .wait_for("first message", |f| {
            f["type"] == "message" && f["body"] == "hello"
        })
        .await;

    // The customer's network drops; the agent goes on writing.
    let customer_last = customer.last_seq.clone();
    customer.drop_connection();
    let mut agent_seqs = Vec::new();
    for index in 0..3 {
        let ack = agent
            .say(
                json!({"session": session}),
                &format!("a-{index}"),
                &format!("reply {index}"),
            )
            .await;
        agent_seqs.push(ack["seq"].as_u64().unwrap());
    }
    // The agent sees its own messages as events too; once it has the last
    // one, its network drops.
    let last_reply = *agent_seqs.last().unwrap();
    agent
        .wait_for("own last reply", |f| {
            f["type"] == "message" && f["seq"] == last_reply
        })
        .await;
    let agent_last = agent.last_seq.clone();
    agent.drop_connection();

    let mut customer = test.customer("cust-003").await;
    customer.resume(&customer_last).await;
    let mut customer_seqs = Vec::new();
    for index in 0..2 {
        let ack = customer
            .say(
                json!({}),
                &format!("c-late-{index}"),
                &format!("late {index}"),
            )
            .await;
        customer_seqs.push(ack["seq"].as_u64().unwrap());
    }
    // The same message resent (the client never saw its ack): stored once.
    let resent = customer.say(json!({}), "c-late-1", "late 1").await;
    assert_eq!(resent["duplicate"], true);
    assert_eq!(resent["seq"].as_u64().unwrap(), customer_seqs[1]);
    customer.request(json!({"type": "ping"})).await;
    let frames = customer.take_pending();
    assert_eq!(
        message_seqs(&frames, "agent:chen.jie"),
        agent_seqs,
        "{frames:?}"
    );

    let mut agent =
        Client::connect(&test.ws_url("/ws/agent", &test.token("chen.jie", Role::Agent))).await;
    let welcome = agent.resume(&agent_last).await;
    assert_eq!(welcome["sessions"][0]["session"], session.as_str());
    agent.request(json!({"type": "ping"})).await;
    let frames = agent.take_pending();
    assert_eq!(
        message_seqs(&frames, "customer"),
        customer_seqs,
        "{frames:?}"
    );
    assert!(
        message_seqs(&frames, "agent:chen.jie").is_empty(),
        "nothing the agent had is repeated"
    );
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_conversation_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = start_process(
        dir.path(),
        &[("SWITCHBOARD_ROUTING_OFFER_TIMEOUT_MS", "60000")],
        None,
    )
    .await;
    let url = |addr: &str, path: &str, sub: &str, role| {
        format!(
            "ws://{addr}{path}?token={}",
            process_token(dir.path(), sub, role)
        )
    };
    let mut agent =
        Client::connect(&url(&process.addr, "/ws/agent", "chen.jie", Role::Agent)).await;
    agent.hello(json!({})).await;
    agent
        .request(json!({"type": "presence", "state": "available"}))
        .await;
    let mut customer = Client::connect(&url(
        &process.addr,
        "/ws/customer",
        "cust-003",
        Role::Customer,
    ))
    .await;
    customer.hello(json!({})).await;
    let first = customer.say(json!({}), "c-0", "hello").await;
    let session = session_of(&first);
    accept_offer(&mut agent, &session).await;

    // Both sides write as fast as acks come back; the kill lands mid-stream.
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    acked
        .lock()
        .unwrap()
        .push(("c-0".into(), first["seq"].as_u64().unwrap()));
    let customer_acks = acked.clone();
    let customer_task = tokio::spawn(async move {
        for index in 1.. {
            let id = format!("c-{index}");
            let frame = json!({"type": "message", "client_message_id": id, "body": format!("customer {index}")});
            match customer.send_until_acked(frame).await {
                Some(seq) => customer_acks.lock().unwrap().push((id, seq)),
                None => return,
            }
        }
    });
    let agent_acks = acked.clone();
    let agent_session = session.clone();
    let agent_task = tokio::spawn(async move {
        for index in 0.. {
            let id = format!("a-{index}");
            let frame = json!({"type": "message", "session": agent_session, "client_message_id": id, "body": format!("agent {index}")});
            match agent.send_until_acked(frame).await {
                Some(seq) => agent_acks.lock().unwrap().push((id, seq)),
                None => return,
            }
        }
    });
    while acked.lock().unwrap().len() < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    process.child.start_kill().unwrap();
    process.child.wait().await.unwrap();
    customer_task.await.unwrap();
    agent_task.await.unwrap();
    let acked = acked.lock().unwrap().clone();

    // Restart on the same data; the customer resumes from scratch and must
    // see every acknowledged message, once, in seq order.
    let process = start_process(
        dir.path(),
        &[("SWITCHBOARD_ROUTING_OFFER_TIMEOUT_MS", "60000")],
        None,
    )
    .await;
    let mut customer = Client::connect(&url(
        &process.addr,
        "/ws/customer",
        "cust-003",
        Role::Customer,
    ))
    .await;
    let welcome = customer.hello(json!({})).await;
    assert_eq!(welcome["sessions"][0]["session"], session.as_str());
    customer.request(json!({"type": "ping"})).await;
    let frames = customer.take_pending();
    let messages: Vec<(String, u64)> = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| {
            (
                f["client_message_id"].as_str().unwrap_or("").to_string(),
                f["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let seqs: Vec<u64> = messages.iter().map(|(_, seq)| *seq).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "in order, no repeats: {seqs:?}"
    );
    for (id, seq) in &acked {
        assert!(
            messages.contains(&(id.clone(), *seq)),
            "acknowledged {id} (seq {seq}) is missing after restart"
        );
    }
    eprintln!(
        "sigkill: {} acknowledged messages, all present after restart ({} stored)",
        acked.len(),
        messages.len()
    );

    // The agent resumes too and the conversation goes on.
    let mut agent =
        Client::connect(&url(&process.addr, "/ws/agent", "chen.jie", Role::Agent)).await;
    let welcome = agent.hello(json!({})).await;
    assert_eq!(welcome["sessions"][0]["session"], session.as_str());
    agent
        .say(json!({"session": session}), "after-restart", "we are back")
        .await;
    customer
        .wait_for("message after restart", |f| f["body"] == "we are back")
        .await;
}

/// Result of a message: its `seq`, or `None` if the socket died first.
/// Sends `frame` (a `message` with `client_message_id`) and, when the
/// socket's frame limit refuses it (`rate_limited`, PROTOCOL.md: resend
/// it), sends it again.
trait WaitForResult {
    async fn send_until_acked(&mut self, frame: serde_json::Value) -> Option<u64>;
    async fn wait_for_result(&mut self, client_message_id: &str) -> Result<Option<u64>, u64>;
}

impl WaitForResult for Client {
    async fn send_until_acked(&mut self, frame: serde_json::Value) -> Option<u64> {
        let id = frame["client_message_id"].as_str().unwrap().to_owned();
        loop {
            self.send(frame.clone()).await;
            match self.wait_for_result(&id).await {
                Ok(result) => return result,
                Err(retry_ms) => tokio::time::sleep(Duration::from_millis(retry_ms.max(1))).await,
            }
        }
    }

    /// `Err(ms)`: refused by the frame limit, resend after `ms`.
    async fn wait_for_result(&mut self, client_message_id: &str) -> Result<Option<u64>, u64> {
        loop {
            match self.read().await {
                Ok(frame)
                    if frame["type"] == "ack"
                        && frame["client_message_id"] == client_message_id =>
                {
                    return Ok(frame["seq"].as_u64());
                }
                Ok(frame) if frame["type"] == "error" && frame["code"] == "rate_limited" => {
                    return Err(frame["retry_after_ms"].as_u64().unwrap_or(5));
                }
                Ok(frame) if frame["type"] == "error" => panic!("message refused: {frame}"),
                Ok(_) => continue,
                Err(_) => return Ok(None),
            }
        }
    }
}
