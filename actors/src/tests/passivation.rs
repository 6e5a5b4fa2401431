//! Waiting sessions passivate: their actor stops, their place in line stays
//! in the group, and they are offered, assigned and overflowed as if they
//! had kept it, with nothing lost.

use super::*;

/// A config whose waiting sessions passivate after 2 s.
fn passivating() -> RuntimeConfig {
    RuntimeConfig {
        passivate_waiting_after: Duration::from_secs(2),
        ..config()
    }
}

async fn n_live(board: &Switchboard) -> usize {
    board.stats().await.unwrap().n_live_sessions
}

#[tokio::test(start_paused = true)]
async fn a_passivated_waiting_session_is_offered_and_assigned_with_nothing_lost() {
    let board = start(Arc::new(MemoryStore::new()), passivating()).await;
    // Nobody is available: both wait in default, plain first.
    let first = board
        .customer_message(envelope(Channel::Web, "p-web", "first", "p1"))
        .await
        .unwrap();
    let again = board
        .customer_message(envelope(Channel::Web, "p-web", "second", "p2"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = board
        .customer_message(envelope(Channel::Web, "later", "third", "l1"))
        .await
        .unwrap();
    assert_eq!(n_live(&board).await, 2);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Both actors stopped; both sessions are still open and in line, in order.
    let stats = board.stats().await.unwrap();
    assert_eq!((stats.n_live_sessions, stats.n_open_sessions), (0, 2));
    let default = GroupId::new("default");
    let view = board.group_view(&default).await.unwrap();
    let order: Vec<SessionId> = view.waiting.iter().map(|w| w.0).collect();
    assert_eq!(order, [first.session, later.session]);

    // An agent becomes available: the first session is re-activated and offered.
    let mut ann = board.subscribe_agent(&id("ann"));
    available(&board, &["ann"]).await;
    assert_eq!(offered_session(&mut ann).await, first.session);
    board.accept(&id("ann"), first.session).await.unwrap();
    let record = board.session(first.session).await.unwrap();
    assert_eq!(record.state, SessionState::Assigned);
    assert_eq!(record.agent, Some(id("ann")));
    // The resent first message is recognised; the next one continues the seq.
    let resent = board
        .customer_message(envelope(Channel::Web, "p-web", "first", "p1"))
        .await
        .unwrap();
    assert_eq!((resent.seq, resent.duplicate), (first.seq, true));
    let reply = board
        .agent_message(&id("ann"), first.session, "hello".into(), Some("a1".into()))
        .await
        .unwrap();
    assert!(reply.seq > again.seq);
    let history = board.history(first.session, 0).await.unwrap();
    let messages: Vec<String> = bodies(&history).into_iter().map(|(_, b)| b).collect();
    assert_eq!(messages, ["first", "second", "hello"]);
    // The other one still waits in its place.
    let view = board.group_view(&default).await.unwrap();
    assert_eq!(view.waiting.len(), 1);
    assert_eq!(view.waiting[0].0, later.session);
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_step_timeout_overflows_a_passivated_waiting_session() {
    let board = start(Arc::new(MemoryStore::new()), passivating()).await;
    // The VIP waits in gold_service (30 s step), where nobody is available.
    let vip = board
        .customer_message(envelope(Channel::Wechat, "v-wx", "vip", "v1"))
        .await
        .unwrap();
    let gold = GroupId::new("gold_service");
    let default = GroupId::new("default");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(n_live(&board).await, 0, "the waiting VIP passivated");
    assert_eq!(board.group_view(&gold).await.unwrap().waiting.len(), 1);
    tokio::time::sleep(Duration::from_secs(21)).await;
    // The timeout re-activated it and it moved on, keeping its queue time.
    assert!(board.group_view(&gold).await.unwrap().waiting.is_empty());
    let view = board.group_view(&default).await.unwrap();
    assert_eq!(view.waiting.len(), 1);
    assert_eq!(view.waiting[0].0, vip.session);
    let record = board.session(vip.session).await.unwrap();
    assert_eq!(record.group, Some(default.clone()));
    assert_eq!(view.waiting[0].2, record.times.queued.unwrap());
    // And it passivates again, then is offered in default.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(n_live(&board).await, 0);
    let mut bob = board.subscribe_agent(&id("bob"));
    available(&board, &["bob"]).await;
    assert_eq!(offered_session(&mut bob).await, vip.session);
    board.accept(&id("bob"), vip.session).await.unwrap();
    assert_eq!(
        board.session(vip.session).await.unwrap().state,
        SessionState::Assigned
    );
    board.shutdown().await;
}

/// The place in line `session` is told, skipping other events.
async fn next_position(
    events: &mut crate::event::Subscription,
    session: SessionId,
) -> crate::QueueStatus {
    loop {
        let event = next_event(events, |k| matches!(k, EventKind::QueuePosition(_))).await;
        if let (true, EventKind::QueuePosition(status)) = (event.session == session, event.kind) {
            return status;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_session_passivates_while_its_customer_is_told_its_place() {
    let config = RuntimeConfig {
        queue_update: Duration::from_millis(500),
        ..passivating()
    };
    let board = start(Arc::new(MemoryStore::new()), config).await;
    // Three phone calls wait in default (a call takes an agent's whole capacity).
    let mut calls = Vec::new();
    for caller in ["c1", "c2", "c3"] {
        let ack = board
            .customer_message(envelope(Channel::Phone, caller, "ring", caller))
            .await
            .unwrap();
        calls.push(ack.session);
    }
    let mut customers = Vec::new();
    for call in &calls {
        customers.push(board.session(*call).await.unwrap().customer_id);
    }
    // The third customer is connected (subscribed) and asks where they stand,
    // as a socket does after `queued` and `welcome`: neither keeps the session up.
    let mut third = board.subscribe_customer(&customers[2]);
    let first_told = next_position(&mut third, calls[2]).await;
    assert_eq!((first_told.position, first_told.n_waiting), (3, 3));
    for _ in 0..5 {
        assert!(board.queue_status(calls[2]).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(n_live(&board).await, 0, "every waiting session passivated");

    // The first caller hangs up: the third is told it moved up.
    board.customer_leave(&customers[0], calls[0]).await.unwrap();
    let told = next_position(&mut third, calls[2]).await;
    assert_eq!((told.position, told.n_waiting), (2, 2));
    // Ann answers the second: the third is first in line.
    let mut ann = board.subscribe_agent(&id("ann"));
    available(&board, &["ann"]).await;
    assert_eq!(offered_session(&mut ann).await, calls[1]);
    board.accept(&id("ann"), calls[1]).await.unwrap();
    loop {
        let told = next_position(&mut third, calls[2]).await;
        if (told.position, told.n_waiting) == (1, 1) {
            break;
        }
    }
    // The third session was never woken for any of it.
    let view = board.group_view(&GroupId::new("default")).await.unwrap();
    assert_eq!(view.waiting.len(), 1);
    assert_eq!(n_live(&board).await, 1, "the answered call's actor only");
    board.shutdown().await;
}
