//! The Directory off the hot path: a session whose actor is slow to start
//! holds up no other session, whatever asks for it meanwhile joins the one
//! start, and a customer's next message goes straight to their session's
//! actor while it runs and the session is open.

use std::collections::BTreeSet;

use super::*;

/// Sessions passivate after 2 s, waiting or not.
fn passivating() -> RuntimeConfig {
    RuntimeConfig {
        passivate_after: Duration::from_secs(2),
        passivate_waiting_after: Duration::from_secs(2),
        ..config()
    }
}

/// plain's session, opened and then passivated (nobody is available, so it waits).
async fn passivated_session(board: &Switchboard) -> Ack {
    let first = board
        .customer_message_as(
            &CustomerId::new("plain"),
            Channel::Web,
            "hello".into(),
            Some("p0".into()),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(board.stats().await.unwrap().n_live_sessions, 0);
    first
}

#[tokio::test(start_paused = true)]
async fn a_slow_reactivation_does_not_hold_up_another_session() {
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), passivating()).await;
    let plain = CustomerId::new("plain");
    let first = passivated_session(&board).await;

    // plain's next message re-activates the session, whose reads hang.
    store.hold_reads_of(first.session);
    let mut held_back = tokio::spawn({
        let board = board.clone();
        let plain = plain.clone();
        async move {
            board
                .customer_message_as(&plain, Channel::Web, "again".into(), Some("p1".into()))
                .await
        }
    });
    store.until_a_read_waits().await;

    // Meanwhile another customer opens a session and is answered.
    let vip = board
        .customer_message_as(
            &CustomerId::new("vip"),
            Channel::Web,
            "你好".into(),
            Some("v1".into()),
        )
        .await
        .unwrap();
    assert_ne!(vip.session, first.session);
    timeout(Duration::from_millis(1), &mut held_back)
        .await
        .expect_err("plain's message waits for its session's start");

    // Once the store answers, plain's message reaches its session.
    store.release_reads_of(first.session);
    let again = held_back.await.unwrap().unwrap();
    assert_eq!(again.session, first.session);
    assert!(again.seq > first.seq, "{again:?} after {first:?}");
    let history = board.history(first.session, 0).await.unwrap();
    assert_eq!(
        bodies(&history),
        [
            (first.seq, "hello".to_owned()),
            (again.seq, "again".to_owned())
        ]
    );
    assert_eq!(store.n_record_reads(first.session), 1);
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn lookups_of_a_passivated_session_at_once_start_one_actor() {
    const N_MESSAGES: usize = 6;
    const N_LOOKUPS: usize = 4;
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), passivating()).await;
    let plain = CustomerId::new("plain");
    let first = passivated_session(&board).await;
    let session = first.session;

    store.hold_reads_of(session);
    let messages: Vec<_> = (0..N_MESSAGES)
        .map(|i| {
            let board = board.clone();
            let plain = plain.clone();
            tokio::spawn(async move {
                board
                    .customer_message_as(
                        &plain,
                        Channel::Web,
                        format!("message {i}"),
                        Some(format!("m{i}")),
                    )
                    .await
            })
        })
        .collect();
    let lookups: Vec<_> = (0..N_LOOKUPS)
        .map(|_| {
            let board = board.clone();
            tokio::spawn(async move { board.live_session(session).await })
        })
        .collect();
    // On the paused clock this returns once every task waits: all of them
    // asked for the session while its one start hangs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.until_a_read_waits().await;
    assert_eq!(store.n_record_reads(session), 1);

    store.release_reads_of(session);
    let mut seqs = BTreeSet::new();
    for message in messages {
        let ack = message.await.unwrap().unwrap();
        assert_eq!((ack.session, ack.duplicate), (session, false));
        seqs.insert(ack.seq);
    }
    assert_eq!(seqs.len(), N_MESSAGES);
    for lookup in lookups {
        assert_eq!(lookup.await.unwrap().unwrap().id, session);
    }
    assert_eq!(store.n_record_reads(session), 1, "one start, one actor");
    let stats = board.stats().await.unwrap();
    assert_eq!((stats.n_live_sessions, stats.n_restarts), (1, 0));
    board.shutdown().await;
}

/// The first message finds the session through the Directory; the next go
/// straight to its actor. An actor that passivated, or a session that
/// ended, is not used: the next message re-activates the session, or opens
/// a new one.
#[tokio::test(start_paused = true)]
async fn a_customers_next_message_goes_to_their_running_open_session() {
    let board = start(Arc::new(MemoryStore::new()), passivating()).await;
    let plain = CustomerId::new("plain");
    let send = |body: &'static str, client_id: &'static str| {
        let board = board.clone();
        let plain = plain.clone();
        async move {
            board
                .customer_message_as(&plain, Channel::Web, body.into(), Some(client_id.into()))
                .await
                .unwrap()
        }
    };
    let first = send("one", "c1").await;
    let held = board.shared().open_sessions.get(&plain).expect("held");
    let second = send("two", "c2").await;
    assert_eq!(second.session, first.session);

    // Passivated: the entry is gone, and the session comes back.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(board.shared().open_sessions.is_empty());
    let third = send("three", "c3").await;
    assert_eq!(third.session, first.session);
    let again = board
        .shared()
        .open_sessions
        .get(&plain)
        .expect("held again");
    assert_ne!(again.get_id(), held.get_id(), "a new actor");

    // Ended: the next message opens a new session.
    board.customer_leave(&plain, first.session).await.unwrap();
    assert!(board.shared().open_sessions.is_empty());
    let fourth = send("four", "c4").await;
    assert_ne!(fourth.session, first.session);
    let fifth = send("five", "c5").await;
    assert_eq!(fifth.session, fourth.session);
    assert_eq!(
        fifth.seq,
        fourth.seq + 2,
        "after fourth and its Queued event"
    );
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_sent_through_the_cache_as_the_session_passivates_is_taken() {
    let board = start(Arc::new(MemoryStore::new()), passivating()).await;
    let plain = CustomerId::new("plain");
    let first = board
        .customer_message_as(&plain, Channel::Web, "one".into(), Some("c1".into()))
        .await
        .unwrap();
    // A caller takes the actor from the cache ...
    let held = board.shared().open_sessions.get(&plain).expect("held");
    // ... and the session, idle, takes itself out of it to passivate.
    while board.shared().open_sessions.get(&plain).is_some() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The caller's send comes now, as submit_from's does right after its
    // lookup: the actor still runs and takes it.
    let (sender, receiver) = ractor::concurrency::oneshot();
    held.send_message(crate::session::SessionMessage::CustomerMessage {
        body: "two".into(),
        client_message_id: Some("c2".into()),
        channel: Channel::Web,
        route: None,
        reply: sender.into(),
    })
    .expect("the actor still runs");
    let second = receiver.await.expect("answered").expect("stored");
    assert_eq!((second.session, second.duplicate), (first.session, false));
    assert_eq!(
        bodies(&board.history(first.session, 0).await.unwrap()),
        [(1, "one".to_owned()), (second.seq, "two".to_owned())]
    );
    // The message was activity: the actor is back in the cache.
    let again = board
        .shared()
        .open_sessions
        .get(&plain)
        .expect("held again");
    assert_eq!(again.get_id(), held.get_id());
    board.shutdown().await;
}

/// A race, so real threads and many rounds: a customer whose messages go
/// straight to their session's actor leaves, and the next message opens a
/// new session rather than reaching the ended one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_right_after_leaving_a_session_it_went_straight_to_opens_a_new_one() {
    let mut config = config();
    config.max_new_sessions_per_customer_per_hour = 0;
    let board = start(Arc::new(MemoryStore::new()), config).await;
    let plain = CustomerId::new("plain");
    let mut session = None;
    for round in 0..200 {
        let mut acks = Vec::new();
        for i in 0..3 {
            let ack = board
                .customer_message_as(
                    &plain,
                    Channel::Web,
                    format!("message {i}"),
                    Some(format!("r{round}-{i}")),
                )
                .await
                .unwrap();
            acks.push(ack);
        }
        assert!(
            acks.iter().all(|ack| ack.session == acks[0].session),
            "round {round}: {acks:?}"
        );
        assert_ne!(Some(acks[0].session), session, "round {round}");
        session = Some(acks[0].session);
        // No pause: the ended session took itself out before this returned.
        board.customer_leave(&plain, acks[0].session).await.unwrap();
    }
    board.shutdown().await;
}
