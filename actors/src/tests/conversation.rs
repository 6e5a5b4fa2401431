//! A conversation from first message to close, passivation, transfers,
//! bad input, a customer who leaves, and a session actor that panics.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_conversation_end_to_end() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    available(&board, &["ann"]).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    let mut customer = board.subscribe_customer(&CustomerId::new("plain"));

    let ack = board
        .customer_message(envelope(Channel::Web, "p-web", "我的订单何时发货?", "c1"))
        .await
        .unwrap();
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    let session = offered_session(&mut ann).await;
    assert_eq!(session, ack.session);
    board.accept(&id("ann"), session).await.unwrap();
    let assigned = next_event(&mut customer, |k| matches!(k, EventKind::Assigned { .. })).await;
    assert!(
        matches!(assigned.kind, EventKind::Assigned { ref agent, ref display_name } if agent == &id("ann") && display_name == "ANN"),
        "{assigned:?}"
    );

    let reply = board
        .agent_message(&id("ann"), session, "明天发货".into(), Some("a1".into()))
        .await
        .unwrap();
    let seen = next_event(&mut customer, |k| {
        matches!(
            k,
            EventKind::Message {
                sender: Sender::Agent(_),
                ..
            }
        )
    })
    .await;
    assert_eq!(seen.seq, reply.seq);
    board
        .close(&id("ann"), session, Some("shipping date given".into()))
        .await
        .unwrap();
    next_event(&mut customer, |k| matches!(k, EventKind::Closed { .. })).await;

    let record = board.session(session).await.unwrap();
    assert_eq!(record.state, SessionState::Closed);
    assert!(record.times.answered.is_some() && record.times.first_response.is_some());
    // Every event is stored, in seq order, with no gaps.
    let history = board.history(session, 0).await.unwrap();
    let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=history.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        bodies(&history),
        vec![
            (1, "我的订单何时发货?".into()),
            (reply.seq, "明天发货".into())
        ]
    );
    // The customer's cross-channel history and last agent are recorded.
    let interactions = board
        .store()
        .interactions(&CustomerId::new("plain"), crate::clock::now(), 10)
        .await
        .unwrap();
    assert_eq!(interactions[0].summary, "shipping date given");
    let profile = board
        .store()
        .get_customer(&CustomerId::new("plain"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile.last_agent, Some(id("ann")));
    // So is the session-ended job (summary and webhooks), with the end.
    let jobs = board.store().outbox_due(Millis::MAX, 10).await.unwrap();
    assert_eq!(
        jobs.iter()
            .map(|job| (job.ended_session(), job.event_type.as_str()))
            .collect::<Vec<_>>(),
        vec![(Some(session), "session.closed")]
    );
    // The agent is free again.
    assert!(
        board
            .agent_view(&id("ann"))
            .await
            .unwrap()
            .sessions
            .is_empty()
    );
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn passivation_then_reactivation_keeps_every_message() {
    let config = RuntimeConfig {
        passivate_after: Duration::from_secs(60),
        ..config()
    };
    let board = start(Arc::new(MemoryStore::new()), config).await;
    available(&board, &["ann"]).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    board
        .customer_message(envelope(Channel::Web, "p-web", "one", "c1"))
        .await
        .unwrap();
    let session = offered_session(&mut ann).await;
    board.accept(&id("ann"), session).await.unwrap();
    board
        .customer_message(envelope(Channel::Web, "p-web", "two", "c2"))
        .await
        .unwrap();
    assert_eq!(board.stats().await.unwrap().n_live_sessions, 1);

    tokio::time::sleep(Duration::from_secs(180)).await;
    let stats = board.stats().await.unwrap();
    assert_eq!(
        (stats.n_live_sessions, stats.n_open_sessions),
        (0, 1),
        "idle session passivated"
    );

    // The next event re-activates it with its history and sequence intact.
    let three = board
        .customer_message(envelope(Channel::Web, "p-web", "three", "c3"))
        .await
        .unwrap();
    assert_eq!(three.session, session);
    let resent = board
        .customer_message(envelope(Channel::Web, "p-web", "two", "c2"))
        .await
        .unwrap();
    assert!(
        resent.duplicate,
        "a resend after re-activation is recognised"
    );
    board
        .agent_message(&id("ann"), session, "four".into(), None)
        .await
        .unwrap();
    let history = board.history(session, 0).await.unwrap();
    let texts: Vec<String> = bodies(&history).into_iter().map(|(_, b)| b).collect();
    assert_eq!(texts, ["one", "two", "three", "four"]);
    let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=history.len() as u64).collect::<Vec<_>>());
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn transfer_to_a_group_and_to_an_agent() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    available(&board, &["ann", "gina"]).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    let mut gina = board.subscribe_agent(&id("gina"));
    board
        .customer_message(envelope(Channel::Web, "p-web", "help", "c1"))
        .await
        .unwrap();
    let session = offered_session(&mut ann).await;
    board.accept(&id("ann"), session).await.unwrap();
    board
        .transfer(
            &id("ann"),
            session,
            TransferTarget::Group {
                group: GroupId::new("gold_service"),
            },
        )
        .await
        .unwrap();
    assert_eq!(offered_session(&mut gina).await, session);
    board.accept(&id("gina"), session).await.unwrap();
    // To one agent who is away: Bob, available in the same group, is not offered it;
    // it waits for Ann and is offered to her once she is back.
    let coffee = PresenceRequest::Away {
        reason: "coffee".into(),
    };
    board.set_presence(&id("ann"), coffee).await.unwrap();
    available(&board, &["bob"]).await;
    let mut bob = board.subscribe_agent(&id("bob"));
    let to_ann = TransferTarget::Agent { agent: id("ann") };
    board.transfer(&id("gina"), session, to_ann).await.unwrap();
    timeout(Duration::from_secs(60), offered_session(&mut bob))
        .await
        .unwrap_err();
    available(&board, &["ann"]).await;
    assert_eq!(offered_session(&mut ann).await, session);
    board.accept(&id("ann"), session).await.unwrap();
    let record = board.live_session(session).await.unwrap();
    assert_eq!(
        (record.state, record.transfers, record.agent),
        (SessionState::Assigned, 2, Some(id("ann")))
    );
    let to_nobody = TransferTarget::Agent { agent: id("zed") };
    let err = board
        .transfer(&id("ann"), session, to_nobody)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown agent `zed`");
    let err = board
        .transfer(
            &id("ann"),
            session,
            TransferTarget::Group {
                group: GroupId::new("nowhere"),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown skill group `nowhere`");
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn bad_input_names_the_thing() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let unknown_channel = board
        .customer_message(envelope(Channel::parse("fax").unwrap(), "x", "hi", "c1"))
        .await
        .unwrap_err();
    assert_eq!(unknown_channel.to_string(), "unknown channel `fax`");
    let unknown_agent = board
        .set_presence(&id("zed"), PresenceRequest::Available)
        .await
        .unwrap_err();
    assert_eq!(unknown_agent.to_string(), "unknown agent `zed`");
    let unknown_group = board.group_view(&GroupId::new("nope")).await.unwrap_err();
    assert_eq!(unknown_group.to_string(), "unknown skill group `nope`");
    let unknown_session = board.accept(&id("ann"), SessionId(42)).await.unwrap_err();
    assert_eq!(
        unknown_session.to_string(),
        "session 42 is not offered to agent ann"
    );
    let ack = board
        .customer_message(envelope(Channel::Web, "p-web", "hi", "c1"))
        .await
        .unwrap();
    let not_yours = board
        .agent_message(&id("bob"), ack.session, "hi".into(), None)
        .await
        .unwrap_err();
    assert_eq!(
        not_yours.to_string(),
        format!("session {} is not assigned to agent bob", ack.session)
    );
    // A session that does not exist is unknown, not a transient failure to retry.
    let missing = board.live_session(SessionId(7)).await.unwrap_err();
    assert_eq!(
        (missing.code(), missing.to_string().as_str()),
        ("unknown_session", "unknown session `7`")
    );
    board.shutdown().await;
}

/// A session actor panics mid-conversation: it is restarted from a real SQLite
/// file, every acknowledged message is there exactly once, and resent
/// messages are recognised, not stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_session_is_restarted_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("switchboard.db")).unwrap());
    let board = start(store, config()).await;
    let mut acked: Vec<Ack> = Vec::new();
    for n in 0..20 {
        acked.push(
            board
                .customer_message(envelope(
                    Channel::Web,
                    "p-web",
                    &format!("m{n}"),
                    &format!("c{n}"),
                ))
                .await
                .unwrap(),
        );
    }
    let session = acked[0].session;
    board.crash_session(session).await.unwrap();
    // While it restarts, clients resend (same ids) and keep writing.
    let mut n_retries = 0;
    for n in 10..30 {
        let message = envelope(Channel::Web, "p-web", &format!("m{n}"), &format!("c{n}"));
        let ack = loop {
            match board.customer_message(message.clone()).await {
                Ok(ack) => break ack,
                Err(ApiError::Unavailable(_) | ApiError::OutcomeUnknown(_)) => n_retries += 1,
                Err(other) => panic!("unexpected error {other}"),
            }
            // Unavailable only while it restarts (a SQLite reload): 30 s
            // is patience for a slow machine, not a target.
            assert!(
                n_retries < 3_000,
                "the session was unavailable for over 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if n < 20 {
            assert!(
                ack.duplicate && ack.seq == acked[n].seq,
                "resend of c{n}: {ack:?} vs {:?}",
                acked[n]
            );
        } else {
            acked.push(ack);
        }
    }
    assert_eq!(board.stats().await.unwrap().n_restarts, 1);
    let history = board.history(session, 0).await.unwrap();
    let texts: Vec<String> = bodies(&history).into_iter().map(|(_, b)| b).collect();
    assert_eq!(texts, (0..30).map(|n| format!("m{n}")).collect::<Vec<_>>());
    for ack in &acked {
        assert!(
            history.iter().any(|e| e.seq == ack.seq),
            "acked seq {} is stored",
            ack.seq
        );
    }
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_customer_who_leaves_the_queue_abandons() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let ack = board
        .customer_message(envelope(Channel::Web, "p-web", "anyone?", "c1"))
        .await
        .unwrap();
    let default = GroupId::new("default");
    assert_eq!(board.group_view(&default).await.unwrap().waiting.len(), 1);
    tokio::time::sleep(Duration::from_secs(40)).await;
    board
        .customer_leave(&CustomerId::new("plain"), ack.session)
        .await
        .unwrap();
    let record = board.session(ack.session).await.unwrap();
    assert_eq!(record.state, SessionState::Abandoned);
    let jobs = board.store().outbox_due(Millis::MAX, 10).await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        (jobs[0].ended_session(), jobs[0].event_type.as_str()),
        (Some(ack.session), "session.abandoned")
    );
    assert!(board.group_view(&default).await.unwrap().waiting.is_empty());
    // Another customer cannot close it, and the next message opens a new session.
    let err = board
        .customer_leave(&CustomerId::new("vip"), ack.session)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("unknown session `{}`", ack.session)),
        "{err}"
    );
    let next = board
        .customer_message(envelope(Channel::Web, "p-web", "back again", "c2"))
        .await
        .unwrap();
    assert_ne!(next.session, ack.session);
    board.shutdown().await;
}

/// A session's end is stamped with the instant the engine applied it,
/// before its agent is released: the `closed` event and the stored record
/// agree, and nothing the released agent does next can come earlier. The
/// clock ticks at every reading here, so a second reading would show.
#[tokio::test(start_paused = true)]
async fn the_end_of_a_session_is_stamped_before_its_agent_is_released() {
    crate::clock::test_ticks::tick_on_every_read();
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    available(&board, &["ann"]).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    let ack = board
        .customer_message(envelope(Channel::Web, "tick-web", "hello", "t1"))
        .await
        .unwrap();
    let session = offered_session(&mut ann).await;
    board.accept(&id("ann"), session).await.unwrap();
    board.close(&id("ann"), session, None).await.unwrap();
    let closed = next_event(&mut ann, |k| matches!(k, EventKind::Closed { .. })).await;
    let record = board.session(ack.session).await.unwrap();
    assert_eq!(
        Some(closed.at),
        record.times.closed,
        "{closed:?} {:?}",
        record.times
    );

    // The same for a customer who leaves while offered.
    let waiting = board
        .customer_message(envelope(Channel::Web, "p-web", "anyone?", "t2"))
        .await
        .unwrap();
    assert_eq!(offered_session(&mut ann).await, waiting.session);
    board
        .customer_leave(&CustomerId::new("plain"), waiting.session)
        .await
        .unwrap();
    let history = board.history(waiting.session, 0).await.unwrap();
    let abandoned = history
        .iter()
        .find(|event| matches!(event.kind, EventKind::Abandoned))
        .expect("an abandoned event");
    let record = board.session(waiting.session).await.unwrap();
    assert_eq!(
        Some(abandoned.at),
        record.times.closed,
        "{abandoned:?} {:?}",
        record.times
    );
    board.shutdown().await;
}

/// An agent's reply racing the customer's leave finds the session ended:
/// `invalid_state` (the state changed), not `not_your_session` (a permission).
#[tokio::test(start_paused = true)]
async fn a_reply_after_the_customer_left_is_invalid_state_for_its_agent() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    available(&board, &["ann", "bob"]).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    let ack = board
        .customer_message(envelope(Channel::Web, "p-web", "hello", "c1"))
        .await
        .unwrap();
    let session = offered_session(&mut ann).await;
    board.accept(&id("ann"), session).await.unwrap();
    board
        .customer_leave(&CustomerId::new("plain"), ack.session)
        .await
        .unwrap();
    let late = board
        .agent_message(&id("ann"), session, "still there?".into(), None)
        .await
        .unwrap_err();
    assert_eq!(
        (late.code(), late.to_string()),
        (
            "invalid_state",
            format!("session {session}: cannot reply while closed")
        )
    );
    // Anyone else still hears that it is not theirs.
    let other = board
        .agent_message(&id("bob"), session, "hi".into(), None)
        .await
        .unwrap_err();
    assert_eq!(other.code(), "not_your_session");
    board.shutdown().await;
}
