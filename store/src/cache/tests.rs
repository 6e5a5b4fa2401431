use super::*;
use crate::MemoryStore;

const T0: Millis = 1_764_000_000_000;

async fn fresh_store() -> Box<CachedStore> {
    Box::new(CachedStore::new(Arc::new(MemoryStore::new()), 4))
}

// The cache must not change what the store answers.
crate::store_contract_tests!(fresh_store());

fn interaction(customer: &str, at: Millis, session: u64) -> Interaction {
    Interaction {
        customer_id: CustomerId::new(customer),
        at,
        session_id: SessionId(session),
        channel: Channel::Wechat,
        summary: format!("session {session}"),
    }
}

fn counts(store: &CachedStore) -> (u64, u64, u64, u64) {
    let stats = store.stats();
    (
        stats.hits.load(Ordering::Relaxed),
        stats.misses.load(Ordering::Relaxed),
        stats.evictions.load(Ordering::Relaxed),
        stats.invalidations.load(Ordering::Relaxed),
    )
}

#[tokio::test]
async fn hits_after_a_miss_and_writes_invalidate() {
    let store = CachedStore::new(Arc::new(MemoryStore::new()), 4);
    let id = CustomerId::new("c-1");
    store
        .write(&[WriteOp::PutCustomer(Customer::new("c-1", "王芳"))])
        .await
        .unwrap();
    assert_eq!(
        store.get_customer(&id).await.unwrap().unwrap().display_name,
        "王芳"
    );
    assert_eq!(
        store.get_customer(&id).await.unwrap().unwrap().display_name,
        "王芳"
    );
    assert_eq!(counts(&store), (1, 1, 0, 0));

    // A write through the wrapper is seen at once.
    store
        .write(&[WriteOp::PutCustomer(Customer::new("c-1", "Wang Fang"))])
        .await
        .unwrap();
    assert_eq!(
        store.get_customer(&id).await.unwrap().unwrap().display_name,
        "Wang Fang"
    );
    assert_eq!(counts(&store), (1, 2, 0, 1));

    store
        .write(&[WriteOp::RecordInteraction(interaction("c-1", T0, 1))])
        .await
        .unwrap();
    assert_eq!(store.interactions(&id, T0, 10).await.unwrap().len(), 1);
    store
        .write(&[WriteOp::RecordInteraction(interaction("c-1", T0 + 5, 2))])
        .await
        .unwrap();
    let rows = store.interactions(&id, T0 + 10, 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.session_id.0).collect::<Vec<_>>(),
        vec![2, 1]
    );
    // Served from the cache, still filtered by time and limit.
    let (hits_before, ..) = counts(&store);
    assert_eq!(store.interactions(&id, T0 + 10, 1).await.unwrap().len(), 1);
    assert!(
        store
            .interactions(&id, T0 + INTERACTION_TTL_MS + 6, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(counts(&store).0, hits_before + 2);
}

#[tokio::test]
async fn unknown_customers_are_cached_until_created() {
    let store = CachedStore::new(Arc::new(MemoryStore::new()), 4);
    let id = CustomerId::new("c-new");
    assert_eq!(store.get_customer(&id).await.unwrap(), None);
    assert_eq!(store.get_customer(&id).await.unwrap(), None);
    store
        .write(&[WriteOp::PutCustomer(Customer::new("c-new", "新客户"))])
        .await
        .unwrap();
    assert!(store.get_customer(&id).await.unwrap().is_some());
}

#[tokio::test]
async fn bounded_least_recently_used_first() {
    let store = CachedStore::new(Arc::new(MemoryStore::new()), 2);
    for id in ["a", "b", "c"] {
        store
            .write(&[WriteOp::PutCustomer(Customer::new(id, id))])
            .await
            .unwrap();
    }
    let get = |id: &'static str| {
        let store = &store;
        async move { store.get_customer(&CustomerId::new(id)).await.unwrap() }
    };
    get("a").await;
    get("b").await;
    get("a").await; // a is now more recent than b
    get("c").await; // evicts b
    assert_eq!(store.len(), 2);
    let (hits, misses, evictions, _) = counts(&store);
    assert_eq!((hits, misses, evictions), (1, 3, 1));
    get("a").await;
    assert_eq!(counts(&store).0, 2, "a stayed");
    get("b").await;
    assert_eq!(counts(&store).1, 4, "b was evicted");
}

#[tokio::test]
async fn a_read_racing_a_write_does_not_cache_the_old_answer() {
    let store = CachedStore::new(Arc::new(MemoryStore::new()), 4);
    let id = CustomerId::new("c-1");
    // A reader notes the epoch, then a write lands before it fills.
    let epoch = store.epoch(&id).load(Ordering::Acquire);
    store
        .write(&[WriteOp::PutCustomer(Customer::new("c-1", "new"))])
        .await
        .unwrap();
    store.fill(&id, epoch, |entry| {
        entry.profile = Some(Some(Customer::new("c-1", "old")))
    });
    assert!(store.is_empty());
    assert_eq!(
        store.get_customer(&id).await.unwrap().unwrap().display_name,
        "new"
    );
}

#[tokio::test]
async fn capacity_zero_turns_the_cache_off() {
    let store = CachedStore::new(Arc::new(MemoryStore::new()), 0);
    let id = CustomerId::new("c-1");
    store.get_customer(&id).await.unwrap();
    store.get_customer(&id).await.unwrap();
    assert_eq!(counts(&store), (0, 2, 0, 0));
    assert!(store.is_empty());
}
