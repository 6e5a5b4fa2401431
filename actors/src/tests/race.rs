//! Concurrent messages of one customer: one session start however many
//! first messages arrive at once, one `seq` writer per session, answers that
//! tell the truth about durability, and every stored message published.

use std::collections::BTreeSet;

use super::*;

/// Many first messages of a new customer at once, on real threads and a
/// real SQLite file, round after round: the session's actor is still
/// starting when the next message asks for it, and must not be started twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_messages_sent_at_once_start_one_session_and_are_stored_once() {
    const N_ROUNDS: usize = 20;
    const N_MESSAGES: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("switchboard.db")).unwrap());
    let board = start(store.clone(), config()).await;
    for round in 0..N_ROUNDS {
        let external_id = format!("new-{round}");
        let mut events = board.subscribe_customer(&CustomerId::new(format!("web:{external_id}")));
        let sent: Vec<(String, String)> = (0..N_MESSAGES)
            .map(|i| (format!("r{round}-m{i}"), format!("message {i}")))
            .collect();
        let sending: Vec<_> = sent
            .iter()
            .map(|(client_id, body)| {
                let message = envelope(Channel::Web, &external_id, body, client_id);
                let board = board.clone();
                tokio::spawn(async move { board.customer_message(message).await })
            })
            .collect();
        let mut acks: Vec<Ack> = Vec::new();
        for sending in sending {
            let result = sending.await.unwrap();
            acks.push(result.unwrap_or_else(|err| panic!("round {round}: {err}")));
        }
        let sessions: BTreeSet<SessionId> = acks.iter().map(|ack| ack.session).collect();
        assert_eq!(sessions.len(), 1, "round {round}: {acks:?}");
        let seqs: BTreeSet<u64> = acks.iter().map(|ack| ack.seq).collect();
        assert_eq!(seqs.len(), N_MESSAGES, "round {round}: {acks:?}");

        let session = acks[0].session;
        let stored = store.messages(session, 0, usize::MAX).await.unwrap();
        let stored_ids: Vec<&str> = stored
            .iter()
            .filter_map(|message| message.client_message_id.as_deref())
            .collect();
        for (client_id, _) in &sent {
            let n_stored = stored_ids.iter().filter(|id| **id == client_id).count();
            assert_eq!(n_stored, 1, "round {round}: {client_id} in {stored_ids:?}");
        }
        let stored_seqs: Vec<u64> = stored.iter().map(|message| message.seq).collect();
        let gapless: Vec<u64> = (1..=stored.len() as u64).collect();
        assert_eq!(stored_seqs, gapless, "round {round}");

        let mut published = BTreeSet::new();
        while published.len() < N_MESSAGES {
            let event = next_event(&mut events, |kind| {
                matches!(kind, EventKind::Message { .. })
            })
            .await;
            assert_eq!(event.session, session, "round {round}");
            published.insert(event.seq);
        }
        assert_eq!(published, seqs, "round {round}");
    }
    assert_eq!(board.stats().await.unwrap().n_restarts, 0);
    board.shutdown().await;
}

/// A write fails while the session's next write is already on its way to
/// the store: the failed message is refused (nothing stored), the next one
/// is acknowledged and published as the store holds it, and the session
/// goes on from the store.
#[tokio::test(start_paused = true)]
async fn a_failed_write_does_not_lose_the_answer_or_the_event_of_the_write_after_it() {
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), config()).await;
    let plain = CustomerId::new("plain");
    let first = board
        .customer_message_as(&plain, Channel::Web, "hello".into(), Some("p0".into()))
        .await
        .unwrap();
    let session = first.session;
    let mut events = board.subscribe_customer(&plain);

    store.fail_writes_of("poison");
    store.close_gate();
    let failing = board
        .submit_customer_message(&plain, Channel::Web, "poison".into(), Some("p1".into()))
        .await
        .unwrap();
    store.until_a_write_waits().await;
    let following = board
        .submit_customer_message(&plain, Channel::Web, "fine".into(), Some("p2".into()))
        .await
        .unwrap();
    // The session handles its mailbox in order: once it answers this, the
    // second message's write is with the StoreWriter, behind the first.
    board.live_session(session).await.unwrap();
    store.open_gate();

    let failed = failing.ack().await;
    assert!(
        matches!(failed, Err(ApiError::Store(_))),
        "the failed write is refused as a store failure: {failed:?}"
    );
    let ack = following
        .ack()
        .await
        .expect("the write after it is durable");
    assert_eq!((ack.session, ack.duplicate), (session, false));
    let event = next_event(
        &mut events,
        |kind| matches!(kind, EventKind::Message { body, .. } if body == "fine"),
    )
    .await;
    assert_eq!((event.session, event.seq), (session, ack.seq));
    let bodies: Vec<String> = store
        .messages(session, 0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|message| message.sender == Sender::Customer)
        .map(|message| message.body)
        .collect();
    assert_eq!(bodies, ["hello", "fine"]);

    // The session restarted from the store: a resend is recognised, and
    // the conversation goes on.
    let resent = board
        .customer_message_as(&plain, Channel::Web, "fine".into(), Some("p2".into()))
        .await
        .unwrap();
    assert_eq!((resent.seq, resent.duplicate), (ack.seq, true));
    let next = board
        .customer_message_as(&plain, Channel::Web, "again".into(), Some("p3".into()))
        .await
        .unwrap();
    assert!(next.seq > ack.seq, "{next:?} after {ack:?}");
    let event = next_event(
        &mut events,
        |kind| matches!(kind, EventKind::Message { body, .. } if body == "again"),
    )
    .await;
    assert_eq!(event.seq, next.seq);
    board.shutdown().await;
}

/// The first write of a new session fails, so the session was never
/// stored: the customer's next message opens a session instead of being
/// told that their own session does not exist.
#[tokio::test(start_paused = true)]
async fn a_session_whose_first_write_failed_does_not_hold_its_customer() {
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), config()).await;
    let plain = CustomerId::new("plain");
    store.fail_writes_of("lost");
    let failed = board
        .customer_message_as(&plain, Channel::Web, "lost".into(), Some("l1".into()))
        .await;
    assert!(
        matches!(failed, Err(ApiError::Store(_))),
        "refused as a store failure: {failed:?}"
    );
    let ack = board
        .customer_message_as(&plain, Channel::Web, "found".into(), Some("l2".into()))
        .await
        .unwrap();
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    let record = board.session(ack.session).await.unwrap();
    assert_eq!(record.customer_id, plain);
    board.shutdown().await;
}

/// The store takes longer than the caller's patience: the answer says the
/// outcome is unknown (not that nothing was stored), and the resend with
/// the same client id, once the store is back, finds the message stored.
#[tokio::test(start_paused = true)]
async fn a_write_without_an_answer_in_time_is_an_unknown_outcome_not_a_refusal() {
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), config()).await;
    let plain = CustomerId::new("plain");
    let first = board
        .customer_message_as(&plain, Channel::Web, "hello".into(), Some("s0".into()))
        .await
        .unwrap();

    store.close_gate();
    let slow = board
        .customer_message_as(&plain, Channel::Web, "slow".into(), Some("s1".into()))
        .await;
    assert!(
        matches!(slow, Err(ApiError::OutcomeUnknown(_))),
        "no answer within the patience: {slow:?}"
    );
    store.open_gate();
    let resent = board
        .customer_message_as(&plain, Channel::Web, "slow".into(), Some("s1".into()))
        .await
        .unwrap();
    assert_eq!((resent.session, resent.duplicate), (first.session, true));
    board.shutdown().await;
}

/// The store applies a write and its answer is lost (a Scylla request
/// timeout): the caller hears that the outcome is unknown, not that nothing
/// was stored; a resend with the same client id is a duplicate; and the
/// customer's open subscription gets the stored message live, once, after
/// the session restarts from the store.
#[tokio::test(start_paused = true)]
async fn a_write_applied_without_an_answer_is_an_unknown_outcome_and_is_published_once() {
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), config()).await;
    let plain = CustomerId::new("plain");
    let first = board
        .customer_message_as(&plain, Channel::Web, "hello".into(), Some("u0".into()))
        .await
        .unwrap();
    let session = first.session;
    let mut events = board.subscribe_customer(&plain);

    store.lose_answers_to_writes_of("unanswered");
    let unknown = board
        .customer_message_as(&plain, Channel::Web, "unanswered".into(), Some("u1".into()))
        .await;
    assert!(
        matches!(unknown, Err(ApiError::OutcomeUnknown(_))),
        "the caller may not be told that nothing was stored: {unknown:?}"
    );
    let published = next_event(
        &mut events,
        |kind| matches!(kind, EventKind::Message { body, .. } if body == "unanswered"),
    )
    .await;
    assert_eq!(published.session, session);

    let resent = board
        .customer_message_as(&plain, Channel::Web, "unanswered".into(), Some("u1".into()))
        .await
        .unwrap();
    assert_eq!(
        (resent.session, resent.seq, resent.duplicate),
        (session, published.seq, true)
    );
    let next = board
        .customer_message_as(&plain, Channel::Web, "next".into(), Some("u2".into()))
        .await
        .unwrap();
    assert_eq!(next.seq, published.seq + 1);
    let mut seen = Vec::new();
    loop {
        let event = timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("the next message is published")
            .expect("subscription open");
        seen.push(event.seq);
        if event.seq == next.seq {
            break;
        }
    }
    assert!(!seen.contains(&published.seq), "published twice: {seen:?}");
    board.shutdown().await;
}

/// The store refuses an agent's accept and first reply while the agent's
/// second reply is already on its way to it: that reply is stored, and so
/// is the record it needs (assigned to that agent), so the restarted
/// session agrees with its stored events and the conversation goes on.
/// (The first reply changes the record itself, by its first-response time;
/// the second is the one that would carry no record.)
#[tokio::test(start_paused = true)]
async fn a_write_after_a_failed_one_stores_the_session_record_its_events_need() {
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), config()).await;
    available(&board, &["ann"]).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    let plain = CustomerId::new("plain");
    board
        .customer_message_as(&plain, Channel::Web, "hello".into(), Some("c1".into()))
        .await
        .unwrap();
    let session = offered_session(&mut ann).await;

    store.fail_writes_where(Failure::Refused, |op| {
        matches!(op, WriteOp::AppendMessage(message)
            if message.body == "on it"
                || matches!(Event::from_stored(message).kind, EventKind::Assigned { .. }))
    });
    store.close_gate();
    let accepting = tokio::spawn({
        let board = board.clone();
        async move { board.accept(&id("ann"), session).await }
    });
    store.until_a_write_waits().await;
    let replying = board
        .submit_agent_message(&id("ann"), session, "on it".into(), Some("a1".into()))
        .await
        .unwrap();
    let replying_again = board
        .submit_agent_message(&id("ann"), session, "second".into(), Some("a2".into()))
        .await
        .unwrap();
    // The session handles its mailbox in order: once it answers this, the
    // replies' writes are with the StoreWriter, behind the accept's.
    board.live_session(session).await.unwrap();
    store.open_gate();

    let accepted = accepting.await.unwrap();
    assert!(
        matches!(accepted, Err(ApiError::Store(_))),
        "refused: {accepted:?}"
    );
    let refused = replying.ack().await;
    assert!(
        matches!(refused, Err(ApiError::Store(_))),
        "refused: {refused:?}"
    );
    let reply = replying_again
        .ack()
        .await
        .expect("the second reply is durable");
    let stored_replies: Vec<(u64, String)> = store
        .messages(session, 0, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|message| message.sender == Sender::Agent(id("ann")))
        .map(|message| (message.seq, message.body))
        .collect();
    assert_eq!(stored_replies, [(reply.seq, "second".to_owned())]);
    let record = store.get_session(session).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.agent),
        (SessionState::Assigned, Some(id("ann"))),
        "the stored record agrees with the stored reply of ann"
    );

    // Restarted from the store, the session is ann's, and goes on.
    let again = board
        .agent_message(&id("ann"), session, "still here".into(), Some("a3".into()))
        .await
        .unwrap();
    assert!(again.seq > reply.seq, "{again:?} after {reply:?}");
    let record = board.session(session).await.unwrap();
    assert_eq!(record.state, SessionState::Assigned);
    board.shutdown().await;
}
