//! What a customer-facing gateway adds: messages from an authenticated
//! customer, typing indicators, and the satisfaction rating.

use super::*;

fn plain() -> CustomerId {
    CustomerId::new("plain")
}

/// A plain customer's session, accepted by Ann; returns it with both subscriptions.
async fn assigned_to_ann(
    board: &Switchboard,
) -> (
    SessionId,
    crate::event::Subscription,
    crate::event::Subscription,
) {
    let mut ann = board.subscribe_agent(&id("ann"));
    let customer = board.subscribe_customer(&plain());
    available(board, &["ann"]).await;
    board
        .customer_message_as(&plain(), Channel::Web, "hello".into(), Some("c1".into()))
        .await
        .unwrap();
    let session = offered_session(&mut ann).await;
    board.accept(&id("ann"), session).await.unwrap();
    (session, ann, customer)
}

async fn wait_until_no_live_session(board: &Switchboard) {
    timeout(Duration::from_secs(900), async {
        while board.stats().await.unwrap().n_live_sessions > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every session actor stopped");
}

#[tokio::test(start_paused = true)]
async fn an_authenticated_customer_skips_identity_resolution_and_shares_dedup() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let ghost = board
        .customer_message_as(&CustomerId::new("ghost"), Channel::Web, "hi".into(), None)
        .await
        .unwrap_err();
    assert_eq!(
        (ghost.code(), ghost.to_string().as_str()),
        ("unknown_customer", "unknown customer `ghost`")
    );
    let fax = Channel::parse("fax").unwrap();
    let unknown_channel = board
        .customer_message_as(&plain(), fax, "hi".into(), None)
        .await
        .unwrap_err();
    assert_eq!(unknown_channel.code(), "unknown_channel");

    let first = board
        .customer_message_as(&plain(), Channel::Web, "one".into(), Some("c1".into()))
        .await
        .unwrap();
    assert_eq!((first.seq, first.duplicate), (1, false));
    let resent = board
        .customer_message_as(&plain(), Channel::Web, "one".into(), Some("c1".into()))
        .await
        .unwrap();
    assert_eq!(
        resent,
        Ack {
            duplicate: true,
            ..first
        }
    );
    // The channel-identity path reaches the same open session and the same dedup.
    let by_identity = board
        .customer_message(envelope(Channel::Web, "p-web", "one", "c1"))
        .await
        .unwrap();
    assert_eq!(
        by_identity,
        Ack {
            duplicate: true,
            ..first
        }
    );
    let two = board
        .customer_message(envelope(Channel::Web, "p-web", "two", "c2"))
        .await
        .unwrap();
    assert_eq!((two.session, two.duplicate), (first.session, false));
    let history = board.history(first.session, 0).await.unwrap();
    let texts: Vec<String> = bodies(&history).into_iter().map(|(_, b)| b).collect();
    assert_eq!(texts, ["one", "two"]);
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn typing_reaches_the_other_party_and_is_not_stored() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let mut gina = board.subscribe_agent(&id("gina"));
    let ack = board
        .customer_message_as(&plain(), Channel::Web, "anyone?".into(), None)
        .await
        .unwrap();
    // Waiting: nobody to tell, and no agent may type in it.
    board.customer_typing(&plain(), ack.session).await.unwrap();
    let err = board
        .agent_typing(&id("gina"), ack.session)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_your_session");

    let mut ann = board.subscribe_agent(&id("ann"));
    let mut customer = board.subscribe_customer(&plain());
    available(&board, &["ann"]).await;
    let session = offered_session(&mut ann).await;
    board.accept(&id("ann"), session).await.unwrap();
    next_event(&mut customer, |k| matches!(k, EventKind::Assigned { .. })).await;
    let last_seq = board.live_session(session).await.unwrap().last_seq;

    board.customer_typing(&plain(), session).await.unwrap();
    let typing = next_event(&mut ann, |k| matches!(k, EventKind::Typing { .. })).await;
    assert_eq!(
        (typing.session, typing.seq, typing.kind),
        (
            session,
            last_seq,
            EventKind::Typing {
                sender: Sender::Customer
            }
        )
    );
    board.agent_typing(&id("ann"), session).await.unwrap();
    let typing = next_event(&mut customer, |k| matches!(k, EventKind::Typing { .. })).await;
    assert_eq!(
        (typing.seq, typing.kind),
        (
            last_seq,
            EventKind::Typing {
                sender: Sender::Agent(id("ann"))
            }
        )
    );
    // Only the session's own customer and agent.
    let not_yours = board.agent_typing(&id("bob"), session).await.unwrap_err();
    assert_eq!(not_yours.code(), "not_your_session");
    let other = board
        .customer_typing(&CustomerId::new("vip"), session)
        .await
        .unwrap_err();
    assert_eq!(
        (other.code(), other.to_string()),
        ("unknown_session", format!("unknown session `{session}`"))
    );
    // Nothing stored, no seq used; agents not on the session saw nothing.
    assert_eq!(
        board.live_session(session).await.unwrap().last_seq,
        last_seq
    );
    let history = board.history(session, 0).await.unwrap();
    assert_eq!(history.last().unwrap().seq, last_seq);
    assert!(
        !history
            .iter()
            .any(|e| matches!(e.kind, EventKind::Typing { .. }))
    );
    assert!(gina.try_recv().is_err());
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rating_after_close_reaches_the_stopped_session_once() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let (session, mut ann, mut customer) = assigned_to_ann(&board).await;
    let too_early = board.rate(&plain(), session, 5, None).await.unwrap_err();
    assert_eq!(
        (too_early.code(), too_early.to_string()),
        (
            "invalid_state",
            format!("session {session}: cannot rate while assigned")
        )
    );
    board
        .close(&id("ann"), session, Some("done".into()))
        .await
        .unwrap();
    // The closed session's actor stops; the rating re-activates it from the store.
    wait_until_no_live_session(&board).await;

    let out_of_range = board.rate(&plain(), session, 6, None).await.unwrap_err();
    assert_eq!(
        (out_of_range.code(), out_of_range.to_string().as_str()),
        ("invalid", "invalid `score`: must be 1 to 5, got 6")
    );
    // Another customer's session answers exactly like one that does not exist.
    let not_theirs = board
        .rate(&CustomerId::new("vip"), session, 5, None)
        .await
        .unwrap_err();
    assert_eq!(
        (not_theirs.code(), not_theirs.to_string()),
        ("unknown_session", format!("unknown session `{session}`"))
    );
    let missing = board
        .rate(&plain(), SessionId(999), 5, None)
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code(), missing.to_string().as_str()),
        ("unknown_session", "unknown session `999`")
    );

    // Since then the customer talked to Bob in another session.
    let mut profile = board.store().get_customer(&plain()).await.unwrap().unwrap();
    assert_eq!(profile.last_agent, Some(id("ann")));
    profile.last_agent = Some(id("bob"));
    let put = store::WriteOp::PutCustomer(profile);
    board.store().write(&[put]).await.unwrap();

    let closed_seq = board.session(session).await.unwrap().last_seq;
    let ack = board
        .rate(&plain(), session, 4, Some("quick and kind".into()))
        .await
        .unwrap();
    assert_eq!(
        (ack.session, ack.seq, ack.duplicate),
        (session, closed_seq + 1, false)
    );
    let rated = EventKind::Rated {
        score: 4,
        comment: Some("quick and kind".into()),
    };
    let is_rated = |k: &EventKind| matches!(k, EventKind::Rated { .. });
    for events in [&mut customer, &mut ann] {
        let seen = next_event(events, is_rated).await;
        assert_eq!((seen.seq, &seen.kind), (ack.seq, &rated));
    }
    let history = board.history(session, closed_seq).await.unwrap();
    assert_eq!(
        history.iter().map(|e| (e.seq, &e.kind)).collect::<Vec<_>>(),
        [(ack.seq, &rated)]
    );
    let record = board.session(session).await.unwrap();
    assert_eq!(
        (record.state, record.rating),
        (SessionState::Closed, Some(4))
    );
    // Closing is not done again: the customer's last agent stays Bob.
    let profile = board.store().get_customer(&plain()).await.unwrap().unwrap();
    assert_eq!(profile.last_agent, Some(id("bob")));

    let twice = board.rate(&plain(), session, 1, None).await.unwrap_err();
    assert_eq!(
        (twice.code(), twice.to_string()),
        (
            "invalid_state",
            format!("session {session}: cannot rate again while closed")
        )
    );
    // Re-activated only to refuse: it stops again once idle.
    wait_until_no_live_session(&board).await;
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rating_in_wrap_up_is_kept_through_close() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let (session, _ann, _customer) = assigned_to_ann(&board).await;
    board.wrap_up(&id("ann"), session, None).await.unwrap();
    board.rate(&plain(), session, 2, None).await.unwrap();
    board.close(&id("ann"), session, None).await.unwrap();
    let record = board.session(session).await.unwrap();
    assert_eq!(
        (record.state, record.rating),
        (SessionState::Closed, Some(2))
    );
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn typing_carries_the_last_published_seq_while_a_write_is_in_flight() {
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), config()).await;
    let (session, _ann, mut customer) = assigned_to_ann(&board).await;
    let published = board.live_session(session).await.unwrap().last_seq;

    store.close_gate();
    let replying = tokio::spawn({
        let board = board.clone();
        async move {
            board
                .agent_message(&id("ann"), session, "one moment".into(), None)
                .await
        }
    });
    store.until_a_write_waits().await;
    board.agent_typing(&id("ann"), session).await.unwrap();
    // The reply has its seq but is not durable: typing must not claim it.
    let typing = next_event(&mut customer, |k| matches!(k, EventKind::Typing { .. })).await;
    assert_eq!(typing.seq, published);

    store.open_gate();
    let reply = replying.await.unwrap().unwrap();
    assert_eq!(reply.seq, published + 1);
    let seen = next_event(&mut customer, |k| matches!(k, EventKind::Message { .. })).await;
    assert_eq!(seen.seq, reply.seq);
    board.shutdown().await;
}

/// A race, so real threads and many rounds: the leave's reply and the
/// directory's notice of the end travel separately.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_right_after_leaving_opens_a_new_session() {
    let mut config = config();
    config.max_new_sessions_per_customer_per_hour = 0;
    let board = start(Arc::new(MemoryStore::new()), config).await;
    for round in 0..200 {
        let first = board
            .customer_message_as(
                &plain(),
                Channel::Web,
                "hello".into(),
                Some(format!("a{round}")),
            )
            .await
            .unwrap();
        board.customer_leave(&plain(), first.session).await.unwrap();
        // No pause: the directory must already know the session ended.
        let next = board
            .customer_message_as(
                &plain(),
                Channel::Web,
                "again".into(),
                Some(format!("b{round}")),
            )
            .await
            .unwrap();
        assert_ne!(next.session, first.session, "round {round}");
        board.customer_leave(&plain(), next.session).await.unwrap();
    }
}
