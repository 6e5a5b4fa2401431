//! Contract cases: session messages, batch atomicity, volume and concurrency.

use super::*;

/// Messages come back in seq order whatever the write order, `after_seq` and
/// `limit` page through them, other sessions stay out, and text is intact.
pub async fn messages_ascending_paged_and_chinese_intact(store: &dyn Store) {
    let chinese = "我的订单何时发货? 订单号 #2023-10-01 🚚";
    let senders = [
        Sender::Customer,
        Sender::Agent(AgentId::new("小李")),
        Sender::System,
        Sender::Supervisor(AgentId::new("wang.min")),
    ];
    let all: Vec<StoredMessage> = (1..=10)
        .map(|seq| {
            let mut m = message(
                1,
                seq,
                senders[seq as usize % senders.len()].clone(),
                &format!("{chinese} ({seq})"),
            );
            if seq == 5 {
                m.client_message_id = None;
                m.channel = Channel::Phone;
            }
            m
        })
        .collect();
    let (even, odd): (Vec<_>, Vec<_>) = all.iter().cloned().partition(|m| m.seq % 2 == 0);
    write(
        store,
        odd.into_iter().rev().map(WriteOp::AppendMessage).collect(),
    )
    .await;
    write(
        store,
        even.into_iter()
            .map(WriteOp::AppendMessage)
            .chain([WriteOp::AppendMessage(message(
                2,
                1,
                Sender::Customer,
                "other",
            ))])
            .collect(),
    )
    .await;

    assert_eq!(store.messages(SessionId(1), 0, 100).await.unwrap(), all);
    assert_eq!(
        seqs(&store.messages(SessionId(1), 3, 4).await.unwrap()),
        vec![4, 5, 6, 7]
    );
    assert_eq!(
        seqs(&store.messages(SessionId(1), 9, 4).await.unwrap()),
        vec![10]
    );
    assert!(
        store
            .messages(SessionId(1), 10, 4)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.messages(SessionId(1), 0, 0).await.unwrap().is_empty());
    assert_eq!(
        seqs(&store.messages(SessionId(2), 0, 100).await.unwrap()),
        vec![1]
    );
}

/// Appending a `(session, seq)` that exists fails the batch and writes
/// nothing of it, whether the duplicate is stored or earlier in the batch.
pub async fn duplicate_seq_fails_the_batch_atomically(store: &dyn Store) {
    let mut s = session(9, "c-1", Channel::Web, T0);
    s.last_seq = 1;
    let first = message(9, 1, Sender::Customer, "first");
    write(
        store,
        vec![
            WriteOp::PutSession(s.clone()),
            WriteOp::AppendMessage(first.clone()),
        ],
    )
    .await;

    let mut advanced = s.clone();
    advanced.last_seq = 3;
    let batch = vec![
        WriteOp::PutSession(advanced.clone()),
        WriteOp::AppendMessage(message(9, 2, Sender::Customer, "second")),
        WriteOp::AppendMessage(message(9, 1, Sender::Customer, "first, resent")),
        WriteOp::AppendMessage(message(9, 3, Sender::Customer, "third")),
    ];
    assert_eq!(
        store.write(&batch).await,
        Err(StoreError::DuplicateSeq {
            session: SessionId(9),
            seq: 1
        })
    );
    assert_eq!(
        store.messages(SessionId(9), 0, 10).await.unwrap(),
        vec![first.clone()]
    );
    assert_eq!(store.get_session(SessionId(9)).await.unwrap(), Some(s));

    let twice_in_one_batch = vec![
        WriteOp::PutSession(advanced),
        WriteOp::AppendMessage(message(9, 2, Sender::Customer, "second")),
        WriteOp::AppendMessage(message(9, 2, Sender::Customer, "second again")),
    ];
    assert_eq!(
        store.write(&twice_in_one_batch).await,
        Err(StoreError::DuplicateSeq {
            session: SessionId(9),
            seq: 2
        })
    );
    assert_eq!(
        store.messages(SessionId(9), 0, 10).await.unwrap(),
        vec![first]
    );
    assert_eq!(
        store
            .get_session(SessionId(9))
            .await
            .unwrap()
            .unwrap()
            .last_seq,
        1
    );
}

/// One batch of 1,000 sessions and 10,000 messages is all readable afterwards.
pub async fn large_batch_all_readable(store: &dyn Store) {
    const N_SESSIONS: u64 = 1_000;
    const PER_SESSION: u64 = 10;
    let mut batch = Vec::with_capacity((N_SESSIONS * (PER_SESSION + 1)) as usize);
    for s in 0..N_SESSIONS {
        let mut record = session(10_000 + s, &format!("c-{}", s % 97), Channel::App, T0);
        record.last_seq = PER_SESSION;
        batch.push(WriteOp::PutSession(record));
    }
    // Interleaved across sessions, as the group-commit writer would send them.
    for seq in 1..=PER_SESSION {
        for s in 0..N_SESSIONS {
            batch.push(WriteOp::AppendMessage(message(
                10_000 + s,
                seq,
                Sender::Customer,
                &format!("会话 {s} 消息 {seq}"),
            )));
        }
    }
    write(store, batch).await;

    assert_eq!(
        store.open_sessions().await.unwrap().len(),
        N_SESSIONS as usize
    );
    for s in 0..N_SESSIONS {
        let messages = store.messages(SessionId(10_000 + s), 0, 100).await.unwrap();
        assert_eq!(seqs(&messages), (1..=PER_SESSION).collect::<Vec<_>>());
        assert_eq!(messages[9].body, format!("会话 {s} 消息 10"));
    }
}

/// 50 writers, each putting a session and appending 20 messages one batch at
/// a time, all concurrently: every write lands.
pub async fn concurrent_writes_all_land(store: &dyn Store) {
    const N_WRITERS: u64 = 50;
    const PER_WRITER: u64 = 20;
    let writers = (0..N_WRITERS)
        .map(|w| {
            Box::pin(async move {
                let id = 5_000 + w;
                store
                    .write(&[WriteOp::PutSession(session(id, "c-1", Channel::Web, T0))])
                    .await?;
                for seq in 1..=PER_WRITER {
                    store
                        .write(&[WriteOp::AppendMessage(message(
                            id,
                            seq,
                            Sender::Customer,
                            "并发",
                        ))])
                        .await?;
                }
                Ok(())
            }) as Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>
        })
        .collect();
    for result in join_all(writers).await {
        result.expect("concurrent write");
    }
    assert_eq!(
        store.open_sessions().await.unwrap().len(),
        N_WRITERS as usize
    );
    for w in 0..N_WRITERS {
        let messages = store.messages(SessionId(5_000 + w), 0, 100).await.unwrap();
        assert_eq!(seqs(&messages), (1..=PER_WRITER).collect::<Vec<_>>());
    }
}

/// A failing batch submitted together with good ones (which a backend may
/// commit in one transaction) fails alone: the good ones all land.
pub async fn bad_batch_among_concurrent_ones_fails_alone(store: &dyn Store) {
    write(
        store,
        vec![WriteOp::AppendMessage(message(
            1,
            1,
            Sender::Customer,
            "stored",
        ))],
    )
    .await;
    let batches: Vec<Vec<WriteOp>> = (0..40u64)
        .map(|i| {
            if i == 20 {
                vec![
                    WriteOp::AppendMessage(message(2, 1, Sender::Customer, "never stored")),
                    WriteOp::AppendMessage(message(1, 1, Sender::Customer, "duplicate")),
                ]
            } else {
                vec![
                    WriteOp::PutSession(session(100 + i, "c-1", Channel::Web, T0)),
                    WriteOp::AppendMessage(message(100 + i, 1, Sender::Customer, "ok")),
                ]
            }
        })
        .collect();
    let writes = batches
        .iter()
        .map(|batch| {
            Box::pin(store.write(batch))
                as Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>
        })
        .collect();
    let results = join_all(writes).await;
    for (i, result) in results.into_iter().enumerate() {
        if i == 20 {
            assert_eq!(
                result,
                Err(StoreError::DuplicateSeq {
                    session: SessionId(1),
                    seq: 1
                })
            );
        } else {
            assert_eq!(result, Ok(()), "batch {i}");
        }
    }
    assert!(
        store
            .messages(SessionId(2), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.messages(SessionId(1), 0, 10).await.unwrap()[0].body,
        "stored"
    );
    assert_eq!(store.open_sessions().await.unwrap().len(), 39);
    for i in (0..40u64).filter(|&i| i != 20) {
        assert_eq!(
            seqs(&store.messages(SessionId(100 + i), 0, 10).await.unwrap()),
            vec![1]
        );
    }
}
