//! The data platform over a running switchboard: its writes go through the
//! StoreWriter, and the outbox worker retries through a courier.

use std::sync::Mutex;

use async_trait::async_trait;
use engine::outbox::{OutboxEntry, RetryPolicy};
use engine::ticket::NewTicket;
use store::CachedStore;

use super::*;
use crate::Notice;
use crate::event::Audience;
use crate::platform::{
    Courier, DeliveryError, EventEncoder, Platform, PlatformEvent, PlatformSettings,
};

/// One entry per event, for endpoint `test`.
struct TestEncoder;

impl EventEncoder for TestEncoder {
    fn entries_for(&self, event: &PlatformEvent<'_>, now: Millis) -> Vec<OutboxEntry> {
        let id = format!("evt-{now}-{}", event.event_type());
        vec![OutboxEntry::new(
            &id,
            "test",
            event.event_type(),
            "{}".into(),
            now,
        )]
    }
}

/// Delivers to endpoint `test`: fails the first `n_failures` attempts.
struct TestCourier {
    n_failures: u32,
    /// `entry.attempts` as each attempt saw it.
    attempts: Mutex<Vec<u32>>,
}

#[async_trait]
impl Courier for TestCourier {
    fn delivers(&self, endpoint: &str) -> bool {
        endpoint == "test"
    }

    async fn deliver(&self, entry: &OutboxEntry) -> Result<(), DeliveryError> {
        let mut attempts = self.attempts.lock().unwrap();
        attempts.push(entry.attempts);
        match attempts.len() as u32 <= self.n_failures {
            true => Err(DeliveryError("HTTP 503 Service Unavailable".into())),
            false => Ok(()),
        }
    }
}

/// The test switchboard over `store` (through a customer cache, as the
/// server runs it) and a platform on it with fast retries.
async fn start_platform(
    store: Arc<TestStore>,
    couriers: Vec<Arc<dyn Courier>>,
) -> (Switchboard, Arc<Platform>) {
    let inner: Arc<dyn Store> = store;
    let cache = Arc::new(CachedStore::new(inner, 16));
    let board = start(cache.clone(), config()).await;
    let settings = PlatformSettings {
        summaries: true,
        retry: RetryPolicy {
            initial_ms: 20,
            max_ms: 40,
            max_attempts: 3,
        },
        poll: Duration::from_millis(10),
    };
    let platform = Platform::load(
        board.clone(),
        cache,
        settings,
        Arc::new(TestEncoder),
        couriers,
    )
    .await
    .unwrap();
    (board, platform)
}

fn new_ticket(subject: &str) -> NewTicket {
    NewTicket {
        subject: subject.into(),
        description: String::new(),
        priority: None,
        assignee: None,
        group: None,
        tags: Vec::new(),
        session: None,
    }
}

/// Waits until `condition` holds, for at most 5 s.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn ticket_writes_go_through_the_store_writer_with_their_outbox_entries() {
    let store = Arc::new(TestStore::new());
    let (board, platform) = start_platform(store.clone(), Vec::new()).await;
    let customer = CustomerId::new("plain");
    let mut notices = platform.subscribe(Audience::Customer(customer.clone()));

    store.close_gate();
    let opening = |subject: &'static str| {
        let (platform, customer) = (platform.clone(), customer.clone());
        tokio::spawn(async move {
            platform
                .open_ticket(customer, new_ticket(subject), Sender::Customer)
                .await
        })
    };
    let first = opening("物流查询");
    store.until_a_write_waits().await;
    let mut second = opening("退款");
    // The second batch waits in the StoreWriter behind the commit in
    // flight, not at the store: a write straight to the store would wait
    // at the gate beside the first.
    timeout(Duration::from_millis(100), &mut second)
        .await
        .unwrap_err();
    assert_eq!(store.n_writes_waiting(), 1);
    store.open_gate();
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();

    let stored = platform
        .store
        .tickets_of_customer(&customer, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    // Each ticket's outbox entry came in its batch.
    let due = platform.store.outbox_due(i64::MAX, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["ticket.created"; 2]
    );
    // Each change is pushed to the customer (the two tasks may finish in
    // either order).
    let mut pushed = Vec::new();
    for _ in 0..2 {
        let notice = timeout(Duration::from_secs(5), notices.recv())
            .await
            .unwrap()
            .unwrap();
        match &*notice {
            Notice::Ticket { ticket, events } => {
                assert_eq!(events.len(), 1);
                pushed.push(ticket.id.clone());
            }
            other => panic!("{other:?}"),
        }
    }
    pushed.sort();
    let mut opened = vec![first.id, second.id];
    opened.sort();
    assert_eq!(pushed, opened);
    board.shutdown().await;
}

#[tokio::test]
async fn the_outbox_worker_retries_with_backoff_then_deletes_what_was_delivered() {
    let store = Arc::new(TestStore::new());
    let courier = Arc::new(TestCourier {
        n_failures: 2,
        attempts: Mutex::new(Vec::new()),
    });
    let (board, platform) = start_platform(store.clone(), vec![courier.clone()]).await;
    let now = engine::now_millis();
    platform
        .write(vec![
            WriteOp::PutOutbox(OutboxEntry::new(
                "evt-1",
                "test",
                "ticket.created",
                "{}".into(),
                now,
            )),
            // An endpoint no courier delivers (removed from the configuration).
            WriteOp::PutOutbox(OutboxEntry::new(
                "evt-1",
                "gone",
                "ticket.created",
                "{}".into(),
                now,
            )),
        ])
        .await
        .unwrap();
    platform.start_workers();

    let outbox = platform.store.clone();
    eventually("the entry is delivered and deleted", async || {
        let due = outbox.outbox_due(i64::MAX, 10).await.unwrap();
        !due.iter().any(|e| e.endpoint == "test")
    })
    .await;
    // Each attempt saw the failures before it, as the worker stored them.
    assert_eq!(*courier.attempts.lock().unwrap(), [0, 1, 2]);
    platform.stop(Duration::from_secs(1)).await;
    // The entry no courier takes is parked: not due again.
    assert!(outbox.outbox_due(i64::MAX, 10).await.unwrap().is_empty());
    board.shutdown().await;
}

#[tokio::test]
async fn an_entry_that_keeps_failing_is_kept_dead_after_the_last_attempt() {
    let store = Arc::new(TestStore::new());
    let courier = Arc::new(TestCourier {
        n_failures: u32::MAX,
        attempts: Mutex::new(Vec::new()),
    });
    let (board, platform) = start_platform(store.clone(), vec![courier.clone()]).await;
    let now = engine::now_millis();
    platform
        .write(vec![WriteOp::PutOutbox(OutboxEntry::new(
            "evt-2",
            "test",
            "ticket.updated",
            "{}".into(),
            now,
        ))])
        .await
        .unwrap();
    platform.start_workers();
    let outbox = platform.store.clone();
    eventually("the entry is given up", async || {
        outbox.outbox_due(i64::MAX, 10).await.unwrap().is_empty()
    })
    .await;
    // max_attempts = 3, and nothing more once it is dead.
    let seen = courier.clone();
    timeout(
        Duration::from_millis(100),
        eventually("a fourth attempt", async || {
            seen.attempts.lock().unwrap().len() > 3
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(*courier.attempts.lock().unwrap(), [0, 1, 2]);
    platform.stop(Duration::from_secs(1)).await;
    board.shutdown().await;
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_stays_an_unknown_outcome() {
    let store = Arc::new(TestStore::new());
    let (board, platform) = start_platform(store.clone(), Vec::new()).await;
    let template = |id: &str| WriteOp::DeleteTemplate(engine::ids::TemplateId::new(id));
    store.fail_writes_where(
        Failure::AppliedButUnanswered,
        |op| matches!(op, WriteOp::DeleteTemplate(id) if id.as_str() == "lost"),
    );
    let lost = board.write(vec![template("lost")]).await.unwrap_err();
    assert!(
        matches!(lost, store::StoreError::OutcomeUnknown { .. }),
        "{lost:?}"
    );
    assert!(matches!(ApiError::from(lost), ApiError::OutcomeUnknown(_)));
    store.fail_writes_where(
        Failure::Refused,
        |op| matches!(op, WriteOp::DeleteTemplate(id) if id.as_str() == "refused"),
    );
    let refused = platform.write(vec![template("refused")]).await.unwrap_err();
    assert_eq!(ApiError::from(refused).code(), "store_unavailable");
    board.write(vec![template("other")]).await.unwrap();
    board.shutdown().await;
}
