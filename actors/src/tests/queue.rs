//! What a waiting customer is told (place in line, estimated wait), the
//! sessions-per-customer limit, and flushing before shutdown.

use super::*;
use crate::QueueStatus;

/// A customer (created on first contact) calling in on the phone, which
/// holds an agent's whole capacity: one answer at a time.
async fn call_in(board: &Switchboard, caller: &str) -> SessionId {
    board
        .customer_message(envelope(Channel::Phone, caller, "ring", caller))
        .await
        .unwrap()
        .session
}

fn status(position: usize, n_waiting: usize, estimated_wait_secs: u32) -> Option<QueueStatus> {
    Some(QueueStatus {
        group: GroupId::new("default"),
        position,
        n_waiting,
        estimated_wait_secs,
    })
}

#[tokio::test(start_paused = true)]
async fn waiting_customers_learn_their_place_and_the_estimated_wait() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let calls = [
        call_in(&board, "c1").await,
        call_in(&board, "c2").await,
        call_in(&board, "c3").await,
    ];
    // Nothing answered yet: one SLA threshold (30 s) per place in line.
    assert_eq!(
        board.queue_status(calls[0]).await.unwrap(),
        status(1, 3, 30)
    );
    assert_eq!(
        board.queue_status(calls[2]).await.unwrap(),
        status(3, 3, 90)
    );

    // Ann answers the first call 10 s after the queue started.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    available(&board, &["ann"]).await;
    assert_eq!(offered_session(&mut ann).await, calls[0]);
    board.accept(&id("ann"), calls[0]).await.unwrap();
    assert_eq!(board.queue_status(calls[0]).await.unwrap(), None);
    assert_eq!(
        board.queue_status(calls[1]).await.unwrap(),
        status(1, 2, 10)
    );
    assert_eq!(
        board.queue_status(calls[2]).await.unwrap(),
        status(2, 2, 20)
    );

    // A minute without answers: the estimate grows with it.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        board.queue_status(calls[2]).await.unwrap(),
        status(2, 2, 120)
    );

    let missing = board.queue_status(SessionId(999)).await.unwrap_err();
    assert_eq!(missing.code(), "unknown_session");
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_customer_opens_at_most_so_many_new_sessions_an_hour() {
    let config = RuntimeConfig {
        max_new_sessions_per_customer_per_hour: 2,
        ..config()
    };
    let board = start(Arc::new(MemoryStore::new()), config).await;
    let plain = CustomerId::new("plain");
    for n in 0..2 {
        let ack = board
            .customer_message(envelope(Channel::Web, "p-web", "hi", &format!("c{n}")))
            .await
            .unwrap();
        // More messages in the open session are not new sessions.
        board
            .customer_message(envelope(
                Channel::Web,
                "p-web",
                "still me",
                &format!("d{n}"),
            ))
            .await
            .unwrap();
        board.customer_leave(&plain, ack.session).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let limited = board
        .customer_message(envelope(Channel::Web, "p-web", "third", "c2"))
        .await
        .unwrap_err();
    assert!(matches!(
        limited,
        ApiError::Limited {
            what: "sessions_per_customer",
            ..
        }
    ));
    assert_eq!(limited.code(), "limited");
    let text = limited.to_string();
    let prefix = "limit `sessions_per_customer` reached: customer `plain` opened 2 new sessions \
                  within the last hour; the next is allowed in ";
    let retry_in_secs: u64 = text
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!((3570..=3580).contains(&retry_in_secs), "{text}");
    // The authenticated path counts the same sessions; other customers are not affected.
    let as_plain = board
        .customer_message_as(&plain, Channel::Web, "third".into(), None)
        .await
        .unwrap_err();
    assert_eq!(as_plain.code(), "limited");
    board
        .customer_message(envelope(Channel::Web, "v-web", "hi", "v1"))
        .await
        .unwrap();

    // An hour after the first session, one more is allowed.
    tokio::time::sleep(Duration::from_secs(retry_in_secs)).await;
    board
        .customer_message(envelope(Channel::Web, "p-web", "third", "c2"))
        .await
        .unwrap();
    assert_eq!(board.stats().await.unwrap().n_customers_counted, 2);
    // The counts are forgotten once old: the bookkeeping does not grow.
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    assert_eq!(board.stats().await.unwrap().n_customers_counted, 0);
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn flush_waits_for_every_write_in_flight() {
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), config()).await;
    store.close_gate();
    let sending = tokio::spawn({
        let board = board.clone();
        async move {
            board
                .customer_message(envelope(Channel::Web, "p-web", "hi", "c1"))
                .await
        }
    });
    store.until_a_write_waits().await;
    let mut flushing = tokio::spawn({
        let board = board.clone();
        async move { board.flush().await }
    });
    timeout(Duration::from_secs(5), &mut flushing)
        .await
        .unwrap_err();
    assert!(
        !sending.is_finished(),
        "nothing is acknowledged before it is durable"
    );

    store.open_gate();
    flushing.await.unwrap().unwrap();
    // Everything sent before the flush is durable now.
    let ack = sending.await.unwrap().unwrap();
    let history = board.history(ack.session, 0).await.unwrap();
    assert_eq!(bodies(&history), [(1, "hi".to_owned())]);
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn changes_within_one_update_interval_are_told_once() {
    let config = RuntimeConfig {
        queue_update: Duration::from_secs(5),
        ..config()
    };
    let board = start(Arc::new(MemoryStore::new()), config).await;
    let calls = [
        call_in(&board, "c1").await,
        call_in(&board, "c2").await,
        call_in(&board, "c3").await,
    ];
    let mut customers = Vec::new();
    for call in calls {
        customers.push(board.session(call).await.unwrap().customer_id);
    }
    let mut third = board.subscribe_customer(&customers[2]);
    // Within the first interval: three arrivals and two hang-ups.
    tokio::time::sleep(Duration::from_secs(1)).await;
    board.customer_leave(&customers[0], calls[0]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    board.customer_leave(&customers[1], calls[1]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut told = Vec::new();
    while let Ok(event) = third.try_recv() {
        if let EventKind::QueuePosition(status) = &event.kind {
            told.push((event.session, status.clone()));
        }
    }
    assert_eq!(told, [(calls[2], status(1, 1, 30).unwrap())]);
    // Nothing changes: nothing more is told.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(third.try_recv().is_err());
    board.shutdown().await;
}
