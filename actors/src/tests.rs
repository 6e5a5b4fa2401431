//! Actor tests: the whole system over a real store, driven through the
//! [`Switchboard`] handle. Timing tests run on tokio's paused clock over the
//! in-memory store (a file's IO happens outside the runtime, and the paused
//! clock would jump past timers while it is in flight); crash tests use a
//! real SQLite file.

use std::sync::Arc;
use std::time::Duration;

use engine::agent::{Agent, Capacity, Role};
use engine::channel::{Channel, ChannelRegistry};
use engine::customer::{Customer, Identity};
use engine::envelope::Envelope;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::presence::PresenceRequest;
use engine::routing::RuleSet;
use engine::session::SessionState;
use engine::store::{MemoryStore, Sender, SqliteStore, Store};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::{Ack, ApiError, Event, EventKind, RuntimeConfig, Switchboard, TransferTarget};

const RULES: &str = r#"
[[rule]]
name = "vip"
filter = 'customer.tier == "vip"'
  [[rule.step]]
  sticky = true
  group = "gold_service"
  timeout = "20s"
  [[rule.step]]
  group = "gold_service"
  timeout = "30s"
  [[rule.step]]
  group = "default"

[[rule]]
name = "everyone_else"
filter = "true"
  [[rule.step]]
  group = "default"
"#;

fn agent(id: &str, groups: &[&str]) -> Agent {
    Agent {
        id: AgentId::new(id),
        display_name: id.to_uppercase(),
        role: Role::Expert,
        skills: Default::default(),
        groups: groups.iter().map(GroupId::new).collect(),
        languages: vec!["zh-CN".into()],
        capacity: Capacity::default(),
    }
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        offer_timeout: Duration::from_secs(15),
        wrap_up: Duration::ZERO,
        passivate_after: Duration::from_secs(600),
        n_session_shards: 2,
        ..RuntimeConfig::default()
    }
}

/// Groups gold_service and default; ann and bob in default, gina in
/// gold_service; customers: vip (tier vip, on web and wechat) and plain.
async fn start(store: Arc<dyn Store>, config: RuntimeConfig) -> Switchboard {
    let groups = vec![
        SkillGroup::new("gold_service", "Gold"),
        SkillGroup::new("default", "Default"),
    ];
    let agents = vec![
        agent("ann", &["default"]),
        agent("bob", &["default"]),
        agent("gina", &["gold_service"]),
    ];
    let mut vip = Customer::new("vip", "Wang Fang");
    vip.tier = "vip".into();
    vip.identities = vec![
        Identity {
            channel: Channel::Web,
            external_id: "v-web".into(),
        },
        Identity {
            channel: Channel::Wechat,
            external_id: "v-wx".into(),
        },
    ];
    let mut plain = Customer::new("plain", "Li Lei");
    plain.identities = vec![Identity {
        channel: Channel::Web,
        external_id: "p-web".into(),
    }];
    Switchboard::seed(store.as_ref(), agents, groups, vec![vip, plain])
        .await
        .unwrap();
    let rules = RuleSet::parse(RULES, "test.toml").unwrap();
    Switchboard::start(store, rules, ChannelRegistry::default(), config)
        .await
        .unwrap()
}

fn envelope(channel: Channel, external_id: &str, text: &str, client_id: &str) -> Envelope {
    Envelope {
        channel,
        customer_id: external_id.into(),
        message: text.into(),
        timestamp: chrono::Utc::now(),
        client_message_id: Some(client_id.into()),
        display_name: None,
    }
}

fn id(name: &str) -> AgentId {
    AgentId::new(name)
}

async fn available(board: &Switchboard, agents: &[&str]) {
    for agent in agents {
        board
            .set_presence(&id(agent), PresenceRequest::Available)
            .await
            .unwrap();
    }
}

/// The next event matching `wanted`, skipping others; fails after 5 minutes of (paused) time.
async fn next_event(
    events: &mut mpsc::Receiver<Event>,
    wanted: impl Fn(&EventKind) -> bool,
) -> Event {
    timeout(Duration::from_secs(300), async {
        loop {
            let event = events.recv().await.expect("subscription open");
            if wanted(&event.kind) {
                return event;
            }
        }
    })
    .await
    .expect("event arrived")
}

fn is_offer(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Offered { .. })
}

async fn offered_session(events: &mut mpsc::Receiver<Event>) -> SessionId {
    next_event(events, is_offer).await.session
}

fn bodies(events: &[Event]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message { body, .. } => Some((e.seq, body.clone())),
            _ => None,
        })
        .collect()
}

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
async fn offer_timeout_moves_to_the_next_agent() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    available(&board, &["ann"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    available(&board, &["bob"]).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    let mut bob = board.subscribe_agent(&id("bob"));

    board
        .customer_message(envelope(Channel::Web, "p-web", "hello", "c1"))
        .await
        .unwrap();
    // Ann has been idle longest: she gets the offer first.
    let session = offered_session(&mut ann).await;
    let started = tokio::time::Instant::now();
    // Ann says nothing; after the offer timeout Bob gets it and Ann is not responding.
    let to_bob = offered_session(&mut bob).await;
    assert_eq!(to_bob, session);
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "moved after {:?}",
        started.elapsed()
    );
    assert_eq!(
        board
            .agent_view(&id("ann"))
            .await
            .unwrap()
            .presence
            .as_str(),
        "not_responding"
    );
    board.accept(&id("bob"), session).await.unwrap();
    // Ann can no longer accept the lapsed offer.
    let err = board.accept(&id("ann"), session).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("session {session} is not offered to agent ann")
    );
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn step_timeout_overflows_keeping_the_place_in_line() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    // Nobody in gold_service is available. A plain customer queues in default first.
    board
        .customer_message(envelope(Channel::Web, "p-web", "plain first", "p1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let vip = board
        .customer_message(envelope(Channel::Wechat, "v-wx", "vip later", "v1"))
        .await
        .unwrap();
    let gold = GroupId::new("gold_service");
    let default = GroupId::new("default");
    // The VIP has no last agent: the sticky step is skipped, the session waits in gold_service.
    assert_eq!(board.group_view(&gold).await.unwrap().waiting.len(), 1);
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(board.group_view(&default).await.unwrap().waiting.len(), 1);
    // After the 30 s step timeout it overflows to default...
    tokio::time::sleep(Duration::from_secs(2)).await;
    let view = board.group_view(&default).await.unwrap();
    assert!(board.group_view(&gold).await.unwrap().waiting.is_empty());
    assert_eq!(view.waiting.len(), 2);
    // ...behind the plain customer, who queued earlier: it kept its first queue time.
    let record = board.session(vip.session).await.unwrap();
    assert_eq!(view.waiting[1].0, vip.session);
    assert_eq!(view.waiting[1].2, record.times.queued.unwrap());
    // A later arrival in default queues behind both.
    board
        .customer_message(envelope(Channel::Web, "later", "third", "l1"))
        .await
        .unwrap();
    let view = board.group_view(&default).await.unwrap();
    assert_eq!(view.waiting.len(), 3);
    assert_eq!(view.waiting[1].0, vip.session);
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn sticky_step_offers_the_last_agent_first() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let mut vip = board
        .store()
        .get_customer(&CustomerId::new("vip"))
        .await
        .unwrap()
        .unwrap();
    vip.last_agent = Some(id("gina"));
    board
        .store()
        .write(&[engine::store::WriteOp::PutCustomer(vip)])
        .await
        .unwrap();
    available(&board, &["gina"]).await;
    let mut gina = board.subscribe_agent(&id("gina"));
    let ack = board
        .customer_message(envelope(Channel::Web, "v-web", "again", "v1"))
        .await
        .unwrap();
    assert_eq!(offered_session(&mut gina).await, ack.session);
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
    let missing = board.live_session(SessionId(7)).await.unwrap_err();
    assert!(
        missing.to_string().contains("unknown session `7`"),
        "{missing}"
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
                Err(ApiError::Unavailable(_)) => n_retries += 1,
                Err(other) => panic!("unexpected error {other}"),
            }
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
    assert!(n_retries < 100);
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

#[tokio::test(start_paused = true)]
async fn invalid_rules_are_rejected_and_the_old_ones_stay() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let bad = RuleSet::parse(
        "[[rule]]\nname = \"x\"\nfilter = \"true\"\n  [[rule.step]]\n  group = \"nowhere\"\n",
        "new.toml",
    )
    .unwrap();
    let err = board.reload_rules(bad).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "new.toml:5:12: unknown skill group `nowhere`"
    );
    // The old rules still route: a VIP waits in gold_service.
    board
        .customer_message(envelope(Channel::Web, "v-web", "hi", "v1"))
        .await
        .unwrap();
    assert_eq!(
        board
            .group_view(&GroupId::new("gold_service"))
            .await
            .unwrap()
            .waiting
            .len(),
        1
    );
    let good = RuleSet::parse(
        "[[rule]]\nname = \"all\"\nfilter = \"true\"\n  [[rule.step]]\n  group = \"default\"\n",
        "new.toml",
    )
    .unwrap();
    board.reload_rules(good).await.unwrap();
    board
        .customer_message(envelope(Channel::Web, "p-web", "hi", "p1"))
        .await
        .unwrap();
    assert_eq!(
        board
            .group_view(&GroupId::new("default"))
            .await
            .unwrap()
            .waiting
            .len(),
        1
    );
    board.shutdown().await;
}
