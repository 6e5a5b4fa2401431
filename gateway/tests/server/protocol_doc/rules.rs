//! The rules of §2, §3 and §8 about `seq`s and the backlog, on a live server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, accept_offer, session_of};

/// The `seq`s of stored events among `frames`: frames with a `session` and
/// a `seq` except `ack`, `typing` and `queue_status`.
fn stored_seqs(frames: &[Value]) -> BTreeSet<u64> {
    frames
        .iter()
        .filter(|frame| {
            frame["session"].is_string()
                && !["ack", "typing", "queue_status"].contains(&frame["type"].as_str().unwrap())
        })
        .filter_map(|frame| frame["seq"].as_u64())
        .collect()
}

/// §3 rule 1 counts the `seq` of `typing` and `queue_status` frames, so a
/// client that resumes from one must miss nothing: every stored event at or
/// below that `seq` came before the frame. The agent types right after each
/// message, while the message's write may still be in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_the_seq_of_typing_or_queue_status_misses_no_stored_event() {
    let test = TestServer::start(|config| {
        config.routing.queue_update_ms = 50;
        config.limits.messages_per_second = 10_000;
        config.limits.message_burst = 10_000;
    })
    .await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    customer
        .send(json!({"type": "message", "client_message_id": "c-1", "body": "hello"}))
        .await;
    let mut stream = Vec::new();
    // The group tells the customer again when the queue changes: another
    // customer comes and goes, so three `queue_status` frames arrive.
    let mut other = test.customer("cust-002").await;
    other.hello(json!({})).await;
    let mut other_session = String::new();
    for (n_told, n_waiting) in [(1, 1), (2, 2), (3, 1)] {
        loop {
            let frame = customer.read().await.unwrap();
            let told = frame["type"] == "queue_status" && frame["n_waiting"] == n_waiting;
            stream.push(frame);
            let n_status = stream
                .iter()
                .filter(|f| f["type"] == "queue_status")
                .count();
            if told && n_status >= n_told {
                break;
            }
        }
        match n_told {
            1 => other_session = session_of(&other.say(json!({}), "o-1", "me too").await),
            2 => {
                let left = other
                    .request(json!({"type": "leave", "session": other_session}))
                    .await;
                assert_eq!(left["type"], "ok", "{left}");
            }
            _ => {}
        }
    }
    let session = session_of(stream.iter().find(|frame| frame["type"] == "ack").unwrap());
    let mut agent = test.available_agent("chen.jie").await;
    accept_offer(&mut agent, &session).await;

    let n_messages = 30;
    let burst: Vec<Value> = (0..n_messages)
        .flat_map(|idx| {
            [
                json!({"type": "message", "session": session, "client_message_id": format!("a-{idx}"), "body": format!("reply {idx}")}),
                json!({"type": "typing", "session": session}),
            ]
        })
        .collect();
    agent.send_batch(&burst).await;
    let last_id = format!("a-{}", n_messages - 1);
    loop {
        let frame = customer.read().await.unwrap();
        let done = frame["type"] == "message" && frame["client_message_id"] == last_id.as_str();
        stream.push(frame);
        if done {
            break;
        }
    }
    let stored = stored_seqs(&stream);
    let mut n_checked = 0;
    for (idx, frame) in stream.iter().enumerate() {
        if frame["type"] != "typing" && frame["type"] != "queue_status" {
            continue;
        }
        n_checked += 1;
        let resume_from = frame["seq"].as_u64().unwrap();
        let before = stored_seqs(&stream[..idx]);
        let missed: Vec<_> = stored
            .iter()
            .filter(|seq| **seq <= resume_from && !before.contains(seq))
            .collect();
        assert!(
            missed.is_empty(),
            "resuming from {frame} would miss the stored events {missed:?}"
        );
    }
    assert!(
        n_checked >= 3 + n_messages / 2,
        "too few typing frames: {n_checked}"
    );

    // And a real resume from the last typing frame's seq.
    let (typing_idx, typing) = stream
        .iter()
        .enumerate()
        .rfind(|(_, frame)| frame["type"] == "typing")
        .unwrap();
    let mut resumed = test.customer("cust-003").await;
    let last_seq = BTreeMap::from([(session.clone(), typing["seq"].as_u64().unwrap())]);
    resumed.resume(&last_seq).await;
    resumed.request(json!({"type": "ping"})).await;
    let mut seen = stored_seqs(&stream[..typing_idx]);
    seen.extend(stored_seqs(&resumed.take_pending()));
    assert!(
        stored.is_subset(&seen),
        "missed {:?} after resuming from {typing}",
        stored.difference(&seen).collect::<Vec<_>>()
    );
    test.server.shutdown().await.unwrap();
}

/// §2/§8: a socket that has not sent its first frame is held, never closed
/// for its backlog while it stays silent; past `limits.outbound_backlog`
/// events, its first frame is answered (a `hello` with the whole replay)
/// and then it gets 4008. Within the backlog it is not closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_silent_past_its_backlog_gets_4008_after_its_first_frame_is_answered() {
    let test = TestServer::start(|config| config.limits.outbound_backlog = 4).await;
    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer.say(json!({}), "c-1", "hello").await;
    let session = session_of(&ack);
    accept_offer(&mut agent, &session).await;
    customer.expect("assigned").await;

    let mut silent = test.customer("cust-003").await;
    let mut sent = BTreeSet::new();
    for idx in 0..8 {
        let ack = agent
            .say(json!({"session": session}), &format!("a-{idx}"), "more")
            .await;
        sent.insert(ack["seq"].as_u64().unwrap());
    }
    // Held: nothing arrives and the socket stays open while it is silent.
    tokio::time::timeout(Duration::from_millis(300), silent.read())
        .await
        .unwrap_err();

    // Within the backlog: a socket that missed 2 events is not closed.
    let mut within = test.customer("cust-003").await;
    for idx in 8..10 {
        let ack = agent
            .say(json!({"session": session}), &format!("a-{idx}"), "more")
            .await;
        sent.insert(ack["seq"].as_u64().unwrap());
    }
    within.hello(json!({})).await;
    within.request(json!({"type": "ping"})).await;
    tokio::time::timeout(Duration::from_millis(300), within.read())
        .await
        .unwrap_err();

    // Past it: the first frame gets its answer and the replay, then 4008.
    silent.hello(json!({})).await;
    assert_eq!(silent.closed().await, Some(4008));
    let replayed = stored_seqs(&silent.take_pending());
    assert!(
        sent.is_subset(&replayed),
        "the replay before 4008 has every message: {replayed:?}"
    );
    test.server.shutdown().await.unwrap();
}
