//! The contract test suite every [`Store`] backend passes.
//!
//! Each case is a `pub async fn` that takes a fresh, empty store and panics
//! when the backend breaks the contract. A backend runs all of them with
//! [`store_contract_tests!`](crate::store_contract_tests), given an async
//! expression that makes a fresh store (anything that derefs to a `Store`, so
//! a wrapper can keep a temporary directory alive):
//!
//! ```ignore
//! engine::store_contract_tests!(fresh_store());
//! ```
//!
//! Compiled for this crate's tests and, for other crates, with the engine's
//! `contract-tests` feature. The calling crate needs `tokio` with the
//! `macros` and `rt-multi-thread` features.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use super::{INTERACTION_TTL_MS, Interaction, Sender, Store, StoreError, StoredMessage, WriteOp};
use crate::Millis;
use crate::agent::{Agent, Capacity, Role};
use crate::channel::Channel;
use crate::customer::{Customer, Identity};
use crate::group::SkillGroup;
use crate::ids::{AgentId, CustomerId, GroupId, SessionId, SessionIdGen};
use crate::session::{Session, SessionState, SessionTimes};

/// Expands to one `#[tokio::test]` per contract case; `$factory` is an
/// expression evaluated once per test whose `.await` gives a fresh store.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:expr) => {
        $crate::store_contract_tests!(@cases $factory;
            empty_store_reads_nothing,
            customer_round_trip_with_identities,
            one_person_across_channels,
            identity_owned_by_another_fails_the_whole_batch,
            session_round_trip_with_every_field,
            open_sessions_exclude_closed_and_abandoned,
            messages_ascending_paged_and_chinese_intact,
            duplicate_seq_fails_the_batch_atomically,
            sessions_of_customer_newest_first,
            interactions_newest_first_and_expire,
            agents_and_groups_round_trip,
            large_batch_all_readable,
            concurrent_writes_all_land,
            bad_batch_among_concurrent_ones_fails_alone,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $factory.await;
                $crate::store::contract::$case(&*fixture).await;
            }
        )*
    };
}

const T0: Millis = 1_696_154_400_000; // 2023-10-01T10:00:00Z
const SECOND: Millis = 1_000;
const DAY: Millis = 24 * 60 * 60 * SECOND;

fn identity(channel: Channel, external_id: &str) -> Identity {
    Identity {
        channel,
        external_id: external_id.to_owned(),
    }
}

fn session(id: u64, customer: &str, channel: Channel, created: Millis) -> Session {
    Session::new(SessionId(id), CustomerId::new(customer), channel, created)
}

fn message(session: u64, seq: u64, sender: Sender, body: &str) -> StoredMessage {
    StoredMessage {
        session_id: SessionId(session),
        seq,
        sender,
        body: body.to_owned(),
        client_message_id: Some(format!("c-{session}-{seq}")),
        channel: Channel::Wechat,
        at: T0 + seq as Millis * SECOND,
    }
}

async fn write(store: &dyn Store, batch: Vec<WriteOp>) {
    store.write(&batch).await.expect("write");
}

fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn ids(sessions: &[Session]) -> Vec<u64> {
    sessions.iter().map(|s| s.id.0).collect()
}

/// Polls every future on the current task until all are done: concurrent
/// callers without needing `'static` tasks (the store is borrowed).
async fn join_all<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// Reads of things never written are empty, not errors; an empty batch is fine.
pub async fn empty_store_reads_nothing(store: &dyn Store) {
    let nobody = CustomerId::new("nobody");
    store.write(&[]).await.expect("empty batch");
    assert_eq!(store.get_customer(&nobody).await.unwrap(), None);
    assert_eq!(
        store
            .find_customer_by_identity(&Channel::Web, "v-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_session(SessionId(1)).await.unwrap(), None);
    assert!(
        store
            .sessions_of_customer(&nobody, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.open_sessions().await.unwrap().is_empty());
    assert!(
        store
            .messages(SessionId(1), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .interactions(&nobody, T0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.purge_expired(T0).await.unwrap(), 0);
    assert!(store.list_agents().await.unwrap().is_empty());
    assert_eq!(store.get_agent(&AgentId::new("alice")).await.unwrap(), None);
    assert!(store.list_groups().await.unwrap().is_empty());
}

/// Every customer field comes back; a later put updates the profile and adds
/// identities without dropping the ones linked before.
pub async fn customer_round_trip_with_identities(store: &dyn Store) {
    let mut customer = Customer::new("c-42", "王小明");
    customer.tier = "vip".to_owned();
    customer.tags = vec!["complaint".to_owned(), "退款".to_owned()];
    customer.language = "en".to_owned();
    customer.last_agent = Some(AgentId::new("alice"));
    customer.created_at = T0;
    customer.identities = vec![
        identity(Channel::Web, "visitor-9"),
        identity(Channel::Wechat, "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"),
    ];
    customer.identities.sort();
    write(store, vec![WriteOp::PutCustomer(customer.clone())]).await;
    assert_eq!(
        store.get_customer(&customer.id).await.unwrap(),
        Some(customer.clone())
    );

    let mut updated = customer.clone();
    updated.tier = "standard".to_owned();
    updated.tags.clear();
    updated.last_agent = None;
    updated.identities = vec![identity(Channel::Phone, "+8613800000000")];
    write(store, vec![WriteOp::PutCustomer(updated.clone())]).await;

    let mut expected = updated;
    expected.identities = customer
        .identities
        .iter()
        .cloned()
        .chain([identity(Channel::Phone, "+8613800000000")])
        .collect();
    expected.identities.sort();
    assert_eq!(
        store.get_customer(&customer.id).await.unwrap(),
        Some(expected)
    );
}

/// One person reached over web, app, phone and WeChat is one customer; the
/// same external id on another channel is another identity.
pub async fn one_person_across_channels(store: &dyn Store) {
    let customer = Customer::new("c-1", "Li Lei");
    write(store, vec![WriteOp::PutCustomer(customer.clone())]).await;
    let identities = [
        identity(Channel::Web, "visitor-77"),
        identity(Channel::App, "device-abc"),
        identity(Channel::Phone, "+8613800000001"),
        identity(Channel::Wechat, "o6_wx_1"),
    ];
    for identity in &identities {
        write(
            store,
            vec![WriteOp::LinkIdentity {
                customer: customer.id.clone(),
                identity: identity.clone(),
            }],
        )
        .await;
    }
    // Linking again to the same owner is a no-op, not an error.
    write(
        store,
        vec![WriteOp::LinkIdentity {
            customer: customer.id.clone(),
            identity: identities[3].clone(),
        }],
    )
    .await;

    for identity in &identities {
        assert_eq!(
            store
                .find_customer_by_identity(&identity.channel, &identity.external_id)
                .await
                .unwrap(),
            Some(customer.id.clone()),
            "{identity:?}"
        );
    }
    assert_eq!(
        store
            .find_customer_by_identity(&Channel::Sms, "+8613800000001")
            .await
            .unwrap(),
        None
    );
    let mut expected = identities.to_vec();
    expected.sort();
    let stored = store.get_customer(&customer.id).await.unwrap().unwrap();
    assert_eq!(stored.identities, expected);
}

/// An identity that belongs to someone else fails the batch, and none of the
/// batch's other ops are written.
pub async fn identity_owned_by_another_fails_the_whole_batch(store: &dyn Store) {
    let wechat = identity(Channel::Wechat, "o6_taken");
    let mut alice = Customer::new("alice", "Alice");
    alice.identities = vec![wechat.clone()];
    write(store, vec![WriteOp::PutCustomer(alice)]).await;

    let bob = Customer::new("bob", "Bob");
    let bobs_session = session(7, "bob", Channel::Wechat, T0);
    let batch = vec![
        WriteOp::PutCustomer(bob.clone()),
        WriteOp::PutSession(bobs_session.clone()),
        WriteOp::AppendMessage(message(7, 1, Sender::Customer, "你好")),
        WriteOp::LinkIdentity {
            customer: bob.id.clone(),
            identity: wechat.clone(),
        },
        WriteOp::LinkIdentity {
            customer: bob.id.clone(),
            identity: identity(Channel::Web, "bob-web"),
        },
    ];
    let expected_error = StoreError::IdentityTaken {
        channel: Channel::Wechat,
        external_id: "o6_taken".to_owned(),
        owner: CustomerId::new("alice"),
    };
    assert_eq!(store.write(&batch).await, Err(expected_error.clone()));

    assert_eq!(store.get_customer(&bob.id).await.unwrap(), None);
    assert_eq!(store.get_session(bobs_session.id).await.unwrap(), None);
    assert!(
        store
            .messages(bobs_session.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_customer_by_identity(&Channel::Web, "bob-web")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_customer_by_identity(&Channel::Wechat, "o6_taken")
            .await
            .unwrap(),
        Some(CustomerId::new("alice"))
    );

    // The identity listed inside a customer put is checked the same way.
    let mut bob_claiming = bob.clone();
    bob_claiming.identities = vec![wechat];
    assert_eq!(
        store.write(&[WriteOp::PutCustomer(bob_claiming)]).await,
        Err(expected_error)
    );
    assert_eq!(store.get_customer(&bob.id).await.unwrap(), None);
}

/// Every session field, every timestamp and ids past `i64::MAX` survive.
pub async fn session_round_trip_with_every_field(store: &dyn Store) {
    let id = SessionIdGen::new(7).next(T0);
    let mut full = Session::new(id, CustomerId::new("c-1"), Channel::Phone, T0);
    full.state = SessionState::WrapUp;
    full.group = Some(GroupId::new("gold_service"));
    full.agent = Some(AgentId::new("alice"));
    full.times = SessionTimes {
        created: Some(T0),
        queued: Some(T0 + 1),
        offered: Some(T0 + 2_000),
        answered: Some(T0 + 3_000),
        first_response: Some(T0 + 4_000),
        wrap_up: Some(T0 + 500_000),
        closed: None,
    };
    full.last_seq = 42;
    full.transfers = 2;
    full.summary = Some("客户询问订单发货时间，已告知".to_owned());

    let mut sparse = session(u64::MAX - 1, "c-2", Channel::parse("line").unwrap(), T0);
    sparse.times.created = None;
    let mut high_bit = session((1 << 63) + 5, "c-2", Channel::Web, T0 + 1);
    high_bit.state = SessionState::Queued;

    write(
        store,
        vec![
            WriteOp::PutSession(full.clone()),
            WriteOp::PutSession(sparse.clone()),
            WriteOp::PutSession(high_bit.clone()),
        ],
    )
    .await;
    assert_eq!(
        store.get_session(full.id).await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(store.get_session(sparse.id).await.unwrap(), Some(sparse));
    assert_eq!(
        store.get_session(high_bit.id).await.unwrap(),
        Some(high_bit)
    );

    // A put replaces the record.
    full.state = SessionState::Closed;
    full.times.closed = Some(T0 + 600_000);
    full.summary = None;
    write(store, vec![WriteOp::PutSession(full.clone())]).await;
    assert_eq!(store.get_session(full.id).await.unwrap(), Some(full));
}

/// Recovery sees every session that is not closed or abandoned, by id.
pub async fn open_sessions_exclude_closed_and_abandoned(store: &dyn Store) {
    use SessionState::*;
    let states = [
        New,
        Routing,
        Queued,
        Offered,
        Assigned,
        WrapUp,
        Closed,
        Abandoned,
        Transferred,
    ];
    let batch = states
        .iter()
        .enumerate()
        .rev()
        .map(|(i, &state)| {
            let mut s = session(100 + i as u64, "c-1", Channel::Web, T0 + i as Millis);
            s.state = state;
            WriteOp::PutSession(s)
        })
        .collect();
    write(store, batch).await;

    let open = store.open_sessions().await.unwrap();
    let open_states: Vec<SessionState> = open.iter().map(|s| s.state).collect();
    assert_eq!(
        open_states,
        vec![New, Routing, Queued, Offered, Assigned, WrapUp, Transferred]
    );
    assert_eq!(ids(&open), vec![100, 101, 102, 103, 104, 105, 108]);

    let mut closing = open[4].clone();
    closing.state = Closed;
    write(store, vec![WriteOp::PutSession(closing)]).await;
    assert_eq!(
        ids(&store.open_sessions().await.unwrap()),
        vec![100, 101, 102, 103, 105, 108]
    );
}

/// Messages come back in seq order whatever the write order, `after_seq` and
/// `limit` page through them, other sessions stay out, and text is intact.
pub async fn messages_ascending_paged_and_chinese_intact(store: &dyn Store) {
    let chinese = "我的订单何时发货? 订单号 #2023-10-01 🚚";
    let senders = [
        Sender::Customer,
        Sender::Agent(AgentId::new("小李")),
        Sender::System,
    ];
    let all: Vec<StoredMessage> = (1..=10)
        .map(|seq| {
            let mut m = message(
                1,
                seq,
                senders[seq as usize % 3].clone(),
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

/// A customer's sessions come newest first and `limit` keeps the newest.
pub async fn sessions_of_customer_newest_first(store: &dyn Store) {
    let created = [
        (11, 3 * DAY),
        (12, DAY),
        (13, 5 * DAY),
        (14, 2 * DAY),
        (15, 4 * DAY),
    ];
    let mut batch: Vec<WriteOp> = created
        .iter()
        .map(|&(id, at)| WriteOp::PutSession(session(id, "c-1", Channel::Web, T0 + at)))
        .collect();
    batch.push(WriteOp::PutSession(session(
        16,
        "c-2",
        Channel::Web,
        T0 + 9 * DAY,
    )));
    write(store, batch).await;

    let customer = CustomerId::new("c-1");
    assert_eq!(
        ids(&store.sessions_of_customer(&customer, 10).await.unwrap()),
        vec![13, 15, 11, 14, 12]
    );
    assert_eq!(
        ids(&store.sessions_of_customer(&customer, 2).await.unwrap()),
        vec![13, 15]
    );
}

/// The recent history is newest first, hides what is older than the TTL at
/// `now`, and purging deletes the expired rows for good.
pub async fn interactions_newest_first_and_expire(store: &dyn Store) {
    let now = T0 + 100 * DAY;
    let customer = CustomerId::new("c-1");
    let interaction = |at: Millis, session_id: u64, channel: Channel| Interaction {
        customer_id: customer.clone(),
        at,
        session_id: SessionId(session_id),
        channel,
        summary: format!("咨询 {session_id}"),
    };
    let hour_ago = interaction(now - 3_600 * SECOND, 1, Channel::Wechat);
    let almost_month_ago = interaction(now - 29 * DAY, 2, Channel::Phone);
    let exactly_ttl_ago = interaction(now - INTERACTION_TTL_MS, 3, Channel::Web);
    let month_and_day_ago = interaction(now - 31 * DAY, 4, Channel::App);
    let someone_else = Interaction {
        customer_id: CustomerId::new("c-2"),
        ..hour_ago.clone()
    };
    write(
        store,
        [
            &month_and_day_ago,
            &hour_ago,
            &exactly_ttl_ago,
            &someone_else,
            &almost_month_ago,
        ]
        .into_iter()
        .cloned()
        .map(WriteOp::RecordInteraction)
        .collect(),
    )
    .await;

    assert_eq!(
        store.interactions(&customer, now, 10).await.unwrap(),
        vec![hour_ago.clone(), almost_month_ago.clone()]
    );
    assert_eq!(
        store.interactions(&customer, now, 1).await.unwrap(),
        vec![hour_ago.clone()]
    );
    // Two days earlier the older two had not expired yet.
    let two_days_earlier = now - 2 * DAY;
    assert_eq!(
        store
            .interactions(&customer, two_days_earlier, 10)
            .await
            .unwrap(),
        vec![
            hour_ago.clone(),
            almost_month_ago.clone(),
            exactly_ttl_ago,
            month_and_day_ago
        ]
    );

    assert_eq!(store.purge_expired(now).await.unwrap(), 2);
    assert_eq!(
        store
            .interactions(&customer, two_days_earlier, 10)
            .await
            .unwrap(),
        vec![hour_ago.clone(), almost_month_ago]
    );
    assert_eq!(
        store
            .interactions(&CustomerId::new("c-2"), now, 10)
            .await
            .unwrap(),
        vec![someone_else]
    );
    assert_eq!(store.purge_expired(now).await.unwrap(), 0);
}

/// Agent profiles (skills, capacity with exclusive channels) and skill groups
/// (per-channel SLA thresholds) come back as written, listed by id.
pub async fn agents_and_groups_round_trip(store: &dyn Store) {
    let line = Channel::parse("line").unwrap();
    let alice = Agent {
        id: AgentId::new("alice"),
        display_name: "张丽".to_owned(),
        role: Role::Expert,
        skills: BTreeMap::from([("billing".to_owned(), 4), ("退款".to_owned(), 5)]),
        groups: vec![GroupId::new("gold_service"), GroupId::new("default")],
        languages: vec!["zh-CN".to_owned(), "en".to_owned()],
        capacity: Capacity {
            limits: BTreeMap::from([(Channel::Phone, 1), (Channel::Web, 3), (line.clone(), 2)]),
            exclusive: BTreeSet::from([Channel::Phone, Channel::Email]),
        },
    };
    let bob = Agent {
        id: AgentId::new("bob"),
        display_name: "Bob".to_owned(),
        role: Role::Junior,
        skills: BTreeMap::new(),
        groups: vec![],
        languages: vec![],
        capacity: Capacity::default(),
    };
    let mut gold = SkillGroup::new("gold_service", "金牌服务");
    gold.sla_threshold_secs = 20;
    gold.sla_threshold_by_channel = BTreeMap::from([(Channel::Email, 4 * 3_600), (line, 120)]);
    gold.sla_target_pct = 90.5;
    gold.short_abandon_secs = 3;
    let default = SkillGroup::new("default", "Default");

    write(
        store,
        vec![
            WriteOp::PutAgent(bob.clone()),
            WriteOp::PutAgent(alice.clone()),
            WriteOp::PutGroup(gold.clone()),
            WriteOp::PutGroup(default.clone()),
        ],
    )
    .await;
    assert_eq!(
        store.list_agents().await.unwrap(),
        vec![alice.clone(), bob.clone()]
    );
    assert_eq!(
        store.get_agent(&alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.list_groups().await.unwrap(),
        vec![default.clone(), gold.clone()]
    );

    let mut promoted = bob;
    promoted.role = Role::Supervisor;
    promoted.skills.insert("diagnostics".to_owned(), 2);
    let mut relaxed = gold;
    relaxed.sla_threshold_by_channel.clear();
    write(
        store,
        vec![
            WriteOp::PutAgent(promoted.clone()),
            WriteOp::PutGroup(relaxed.clone()),
        ],
    )
    .await;
    assert_eq!(store.get_agent(&promoted.id).await.unwrap(), Some(promoted));
    assert_eq!(store.list_groups().await.unwrap(), vec![default, relaxed]);
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
