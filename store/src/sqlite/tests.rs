//! The contract suite on real files, plus what only SQLite has: reopening
//! the same file, corrupt rows, schema versions, closing.

use std::ops::Deref;
use std::sync::Arc;

use tempfile::TempDir;

use super::*;
use engine::message::{Sender, StoredMessage};

/// A store on a fresh file that lives as long as the store.
struct TempStore {
    // Declared first: dropped (flushed, closed) before the directory goes.
    store: SqliteStore,
    _dir: TempDir,
}

impl Deref for TempStore {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

async fn fresh_store() -> TempStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("switchboard.db")).expect("open");
    TempStore { store, _dir: dir }
}

crate::store_contract_tests!(fresh_store());

fn message(session: u64, seq: u64, body: &str) -> StoredMessage {
    StoredMessage {
        session_id: SessionId(session),
        seq,
        sender: Sender::Agent(AgentId::new("alice")),
        body: body.to_owned(),
        client_message_id: None,
        channel: Channel::Web,
        at: 1_000 + seq as Millis,
    }
}

fn session(id: u64) -> Session {
    Session::new(
        SessionId(id),
        CustomerId::new("c-1"),
        Channel::Wechat,
        1_000,
    )
}

#[tokio::test]
async fn writes_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .write(&[
            WriteOp::PutSession(session(1)),
            WriteOp::AppendMessage(message(1, 1, "订单已发货")),
        ])
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);

    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(
        reopened.get_session(SessionId(1)).await.unwrap(),
        Some(session(1))
    );
    assert_eq!(
        reopened.messages(SessionId(1), 0, 10).await.unwrap(),
        vec![message(1, 1, "订单已发货")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writes_are_flushed_when_the_store_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let writers: Vec<_> = (1..=100u64)
        .map(|seq| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .write_owned(vec![WriteOp::AppendMessage(message(1, seq, "x"))])
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    drop(store); // the last Arc: Drop flushes and joins the writer

    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(
        reopened
            .messages(SessionId(1), 0, 1_000)
            .await
            .unwrap()
            .len(),
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_tasks_share_an_arc_dyn_store_and_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("switchboard.db")).unwrap());
    let tasks: Vec<_> = (0..50u64)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for seq in 1..=10 {
                    store
                        .write(&[WriteOp::AppendMessage(message(task, seq, "并发"))])
                        .await?;
                }
                Ok::<(), StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for task in 0..50u64 {
        assert_eq!(
            store.messages(SessionId(task), 0, 100).await.unwrap().len(),
            10
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_share_transactions() {
    let fixture = fresh_store().await;
    let store: &SqliteStore = &fixture;
    let writes = (1..=200u64).map(|seq| async move {
        store
            .write(&[WriteOp::AppendMessage(message(1, seq, "x"))])
            .await
    });
    for result in futures_join(writes).await {
        result.unwrap();
    }
    let stats = store.commit_stats();
    assert_eq!(stats.batches, 200);
    assert!(
        stats.transactions < stats.batches,
        "200 concurrent batches took {} transactions",
        stats.transactions
    );
}

/// Starts every future at once (each sends its batch before the first reply).
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn corrupt_rows_are_reported_with_table_and_key() {
    let fixture = fresh_store().await;
    let mut agent_alice = engine::agent::Agent {
        id: AgentId::new("alice"),
        display_name: "Alice".to_owned(),
        role: engine::agent::Role::Expert,
        skills: Default::default(),
        groups: vec![],
        languages: vec![],
        capacity: Default::default(),
        sip: None,
    };
    agent_alice.skills.insert("billing".to_owned(), 3);
    fixture
        .write(&[
            WriteOp::PutAgent(agent_alice),
            WriteOp::PutSession(session(77)),
            WriteOp::AppendMessage(message(77, 1, "ok")),
        ])
        .await
        .unwrap();

    let raw = Connection::open(fixture.path()).unwrap();
    raw.execute(
        "UPDATE agents SET skills = '{not json' WHERE agent_id = 'alice'",
        [],
    )
    .unwrap();
    raw.execute("UPDATE sessions SET state = 'exploded'", [])
        .unwrap();
    raw.execute("UPDATE session_messages SET seq = 'one'", [])
        .unwrap();
    drop(raw);

    let corrupt = |result: Result<_, StoreError>| match result {
        Err(StoreError::Corrupt { what }) => what,
        other => panic!("expected a corrupt-row error, got {other:?}"),
    };
    let agents = corrupt(fixture.list_agents().await.map(|_| ()));
    assert!(
        agents.contains("agents") && agents.contains("alice") && agents.contains("skills"),
        "{agents}"
    );
    let one_agent = corrupt(fixture.get_agent(&AgentId::new("alice")).await.map(|_| ()));
    assert_eq!(one_agent, agents);

    let sessions = corrupt(fixture.get_session(SessionId(77)).await.map(|_| ()));
    assert!(
        sessions.contains("sessions")
            && sessions.contains("session_id=77")
            && sessions.contains("exploded"),
        "{sessions}"
    );
    let open = corrupt(fixture.open_sessions().await.map(|_| ()));
    assert_eq!(open, sessions);

    let messages = corrupt(fixture.messages(SessionId(77), 0, 10).await.map(|_| ()));
    assert!(
        messages.contains("session_messages")
            && messages.contains("session_id=77")
            && messages.contains("seq"),
        "{messages}"
    );
    // The store keeps working for rows that do decode.
    assert_eq!(fixture.list_groups().await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    drop(SqliteStore::open(&path).unwrap());
    let raw = Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);

    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(
        err,
        StoreError::Backend("sqlite: schema version 99 is newer than this build's 9".to_owned())
    );
}

#[tokio::test]
async fn reopening_keeps_the_schema_version_and_synchronous_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        read_connections: 1,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&path, options.clone()).unwrap();
    store
        .write(&[WriteOp::PutSession(session(3))])
        .await
        .unwrap();
    drop(store);
    let store = SqliteStore::open_with(&path, options).unwrap();
    assert_eq!(store.open_sessions().await.unwrap().len(), 1);

    let raw = Connection::open(&path).unwrap();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    let journal_mode: String = raw
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!((version, journal_mode.as_str()), (9, "wal"));
}

#[tokio::test]
async fn a_version_1_database_is_upgraded_and_keeps_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(schema::SCHEMA_V1).unwrap();
    raw.pragma_update(None, "user_version", 1).unwrap();
    raw.execute(
        "INSERT INTO sessions (session_id, customer_id, channel, state, is_open, created_at,
                               last_seq, transfers)
         VALUES (?1, 'c-1', 'wechat', 'new', 1, 1000, 0, 0)",
        [rows::session_id_to_sql(SessionId(3))],
    )
    .unwrap();
    drop(raw);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.get_session(SessionId(3)).await.unwrap(),
        Some(session(3))
    );
    let mut rated = session(3);
    rated.state = engine::session::SessionState::Closed;
    rated.rating = Some(3);
    rated.reply_route = Some(engine::session::ReplyRoute {
        account: "sms-gw".into(),
        to: "+8613912345678".into(),
        context: None,
    });
    rated.group = Some(engine::ids::GroupId::new("sales"));
    rated.sla_group = Some(engine::ids::GroupId::new("support"));
    store
        .write(&[WriteOp::PutSession(rated.clone())])
        .await
        .unwrap();
    assert_eq!(store.get_session(SessionId(3)).await.unwrap(), Some(rated));
    drop(store);
    let raw = Connection::open(&path).unwrap();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 9);
}

#[tokio::test]
async fn a_version_3_database_is_migrated_and_every_message_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(schema::SCHEMA_V1).unwrap();
    raw.execute_batch(schema::SCHEMA_V2).unwrap();
    raw.execute_batch(records::SCHEMA_V3).unwrap();
    raw.pragma_update(None, "user_version", 3).unwrap();
    // Three sessions appending in turn, as the writer interleaves them.
    let sessions = [5, 6, 7];
    let mut expected: Vec<Vec<StoredMessage>> = vec![Vec::new(); sessions.len()];
    for seq in 1..=4 {
        for (session_idx, &session) in sessions.iter().enumerate() {
            let mut stored = message(session, seq, &format!("s{session} m{seq}"));
            stored.client_message_id = Some(format!("c-{session}-{seq}"));
            raw.execute(
                "INSERT INTO session_messages
                 (session_id, seq, sender_kind, sender_agent, body, client_message_id, channel, at)
                 VALUES (?1, ?2, 'agent', 'alice', ?3, ?4, 'web', ?5)",
                rusqlite::params![
                    rows::session_id_to_sql(SessionId(session)),
                    seq as i64,
                    stored.body,
                    stored.client_message_id,
                    stored.at,
                ],
            )
            .unwrap();
            expected[session_idx].push(stored);
        }
    }
    drop(raw);

    let store = SqliteStore::open(&path).unwrap();
    for (session_idx, &session) in sessions.iter().enumerate() {
        // Every message, in seq order, with the client ids the session's
        // dedup is rebuilt from.
        assert_eq!(
            store.messages(SessionId(session), 0, 100).await.unwrap(),
            expected[session_idx]
        );
    }
    assert_eq!(
        store.messages(SessionId(6), 2, 1).await.unwrap(),
        expected[1][2..3]
    );
    // A migrated seq is still written once; the next one appends after it.
    assert_eq!(
        store
            .write(&[WriteOp::AppendMessage(message(6, 4, "again"))])
            .await,
        Err(StoreError::DuplicateSeq {
            session: SessionId(6),
            seq: 4
        })
    );
    store
        .write(&[WriteOp::AppendMessage(message(6, 5, "fifth"))])
        .await
        .unwrap();
    assert_eq!(
        store.messages(SessionId(6), 4, 10).await.unwrap(),
        vec![message(6, 5, "fifth")]
    );
    drop(store);
    let raw = Connection::open(&path).unwrap();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    let plan: String = raw
        .query_row(
            "EXPLAIN QUERY PLAN SELECT * FROM session_messages
             WHERE session_id = 1 AND seq > 0 ORDER BY seq",
            [],
            |row| row.get(3),
        )
        .unwrap();
    assert_eq!(version, 9);
    assert!(plan.contains("session_messages_by_seq"), "{plan}");
}

#[tokio::test]
async fn calls_after_close_fail_with_closed() {
    let fixture = fresh_store().await;
    fixture
        .write(&[WriteOp::PutSession(session(5))])
        .await
        .unwrap();
    fixture.close().await.unwrap();
    fixture.close().await.unwrap();
    assert_eq!(
        fixture.write(&[WriteOp::PutSession(session(6))]).await,
        Err(StoreError::Closed)
    );
    assert_eq!(
        fixture.get_session(SessionId(5)).await,
        Err(StoreError::Closed)
    );
    assert_eq!(fixture.purge_expired(0).await, Err(StoreError::Closed));
}

#[test]
fn an_unwritable_path_is_a_backend_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("switchboard.db");
    match SqliteStore::open(&path) {
        Err(StoreError::Backend(text)) => {
            assert!(text.starts_with("sqlite: opening "), "{text}");
            assert!(text.contains("missing-dir"), "{text}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_fails_writes_with_context_and_the_writer_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let options = SqliteOptions {
        busy_timeout: std::time::Duration::from_millis(50),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&path, options).unwrap();
    let other_process = Connection::open(&path).unwrap();
    other_process.execute_batch("BEGIN IMMEDIATE").unwrap();

    let first = [WriteOp::AppendMessage(message(1, 1, "a"))];
    let second = [WriteOp::AppendMessage(message(1, 2, "b"))];
    let (a, b) = tokio::join!(store.write(&first), store.write(&second));
    for result in [a, b] {
        match result {
            Err(StoreError::Backend(text)) => assert!(
                text.starts_with("sqlite: beginning write transaction: database is locked"),
                "{text}"
            ),
            other => panic!("expected a backend error, got {other:?}"),
        }
    }
    assert!(
        store
            .messages(SessionId(1), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    other_process.execute_batch("ROLLBACK").unwrap();
    store.write(&first).await.unwrap();
    assert_eq!(store.messages(SessionId(1), 0, 10).await.unwrap().len(), 1);
}

/// Writes 300 messages in bursts of 30 and returns the WAL's size and the
/// store's commit statistics.
async fn wal_after_bursts(checkpoint_interval: Option<Duration>) -> (u64, CommitStats) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("switchboard.db");
    let options = SqliteOptions {
        checkpoint_interval,
        // The commits' own checkpoint out of the way: only the thread's count.
        wal_autocheckpoint_pages: 1_000_000,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&path, options).expect("open");
    for burst in 0..10u64 {
        for i in 0..30u64 {
            let body = "x".repeat(2_000);
            store
                .write(&[WriteOp::AppendMessage(message(burst, i + 1, &body))])
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    for burst in 0..10u64 {
        assert_eq!(
            store
                .messages(SessionId(burst), 0, 100)
                .await
                .unwrap()
                .len(),
            30
        );
    }
    let wal = std::fs::metadata(dir.path().join("switchboard.db-wal"))
        .expect("the WAL exists while the store is open")
        .len();
    let stats = store.commit_stats();
    store.close().await.unwrap();
    // Everything written is in the file after the close.
    let reopened = SqliteStore::open(&path).expect("reopen");
    assert_eq!(
        reopened.messages(SessionId(9), 0, 100).await.unwrap().len(),
        30
    );
    (wal, stats)
}

#[tokio::test]
async fn the_checkpointer_keeps_the_wal_small_without_a_commit_checkpointing() {
    let (with_thread, stats) = wal_after_bursts(Some(Duration::from_millis(10))).await;
    assert!(stats.checkpoints > 0, "{stats:?}");
    let (without, stats) = wal_after_bursts(None).await;
    assert_eq!(stats.checkpoints, 0);
    // 300 commits of a 2 KB message each append at least 300 pages without
    // a checkpoint; with the thread, the WAL starts over after each burst.
    assert!(
        with_thread * 3 < without,
        "WAL {with_thread} bytes with the checkpointer, {without} without"
    );
}
