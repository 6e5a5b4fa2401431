//! Phone calls as sessions: a session of its own per call, routed by the
//! same rules (the caller recognised by number, IVR digits in
//! `contact.digits`), call events in the history, and calls found open at
//! start ended as dropped.

use super::*;
use crate::event::{CallControl, CallEnd, CallEvent};
use crate::handle::CallStart;

fn call_from(number: &str, digits: &str) -> CallStart {
    CallStart {
        number: number.into(),
        display_name: None,
        digits: digits.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_is_a_session_of_its_own_routed_like_any_contact() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    // The VIP chats on the web, then calls from their number.
    let chat = board
        .customer_message(envelope(Channel::Web, "v-web", "hello", "c1"))
        .await
        .unwrap();
    let (customer, call) = board
        .start_call(call_from("+8613900000009", ""))
        .await
        .unwrap();
    assert_eq!(customer, CustomerId::new("vip"), "recognised by number");
    assert_ne!(call.session, chat.session, "a call is a session of its own");
    assert_eq!(call.seq, 1);
    let record = board.session(call.session).await.unwrap();
    assert_eq!(record.channel, Channel::Phone);
    assert_eq!(record.group, Some(GroupId::new("gold_service")));
    let history = board.history(call.session, 0).await.unwrap();
    assert_eq!(
        history[0].kind,
        EventKind::Call(CallEvent::Started {
            from: "+8613900000009".into(),
            digits: String::new(),
        })
    );
    // The chat goes on in its own session.
    let next = board
        .customer_message(envelope(Channel::Web, "v-web", "still here", "c2"))
        .await
        .unwrap();
    assert_eq!(next.session, chat.session);

    // An unknown number becomes a new customer.
    let (stranger, _) = board
        .start_call(call_from("+8613800000001", ""))
        .await
        .unwrap();
    assert_eq!(stranger, CustomerId::new("phone:+8613800000001"));

    // Call events go into the call's history, and only a call's.
    let held = board
        .call_event(call.session, CallEvent::Held)
        .await
        .unwrap();
    let last = board.history(call.session, 0).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.seq, last.kind),
        (held, EventKind::Call(CallEvent::Held))
    );
    let not_a_call = board
        .call_event(chat.session, CallEvent::Held)
        .await
        .unwrap_err();
    assert_eq!(not_a_call.code(), "invalid_state");
    // Withheld numbers: every anonymous call is a customer of its own.
    let (first, _) = board.start_call(call_from("", "")).await.unwrap();
    let (second, _) = board.start_call(call_from("", "")).await.unwrap();
    assert_ne!(first, second);
    assert!(first.as_str().starts_with("phone:anonymous-"), "{first}");
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn ivr_digits_route_the_call() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let rules = RuleSet::parse(
        "[[rule]]\nname = \"gold_line\"\nfilter = 'contact.digits == \"2\"'\n\
         [[rule.step]]\ngroup = \"gold_service\"\n\
         [[rule]]\nname = \"rest\"\nfilter = \"true\"\n[[rule.step]]\ngroup = \"default\"\n",
        "ivr.toml",
    )
    .unwrap();
    board.reload_rules(rules).await.unwrap();
    let (_, two) = board
        .start_call(call_from("+8613800000002", "2"))
        .await
        .unwrap();
    let (_, none) = board
        .start_call(call_from("+8613800000003", ""))
        .await
        .unwrap();
    let group = |session| {
        let board = board.clone();
        async move { board.session(session).await.unwrap().group }
    };
    assert_eq!(group(two.session).await, Some(GroupId::new("gold_service")));
    assert_eq!(group(none.session).await, Some(GroupId::new("default")));
    board.shutdown().await;
}

/// A call connected to an agent when the process stops is ended as dropped
/// at the next start, on a real SQLite file, and its agent is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_found_open_at_start_end_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let board = start(store.clone(), config()).await;
    available(&board, &["ann"]).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    let (_, call) = board
        .start_call(call_from("+8613800000004", ""))
        .await
        .unwrap();
    assert_eq!(offered_session(&mut ann).await, call.session);
    board.accept(&id("ann"), call.session).await.unwrap();
    let (_, waiting) = board
        .start_call(call_from("+8613800000005", ""))
        .await
        .unwrap();
    board.shutdown().await;
    drop(store);

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let board = start(store, config()).await;
    let ended = |session| {
        let board = board.clone();
        async move {
            for _ in 0..200 {
                let record = board.session(session).await.unwrap();
                if record.state.is_final() {
                    return record;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("session {session} still open");
        }
    };
    assert_eq!(ended(call.session).await.state, SessionState::Closed);
    assert_eq!(ended(waiting.session).await.state, SessionState::Abandoned);
    let history = board.history(call.session, 0).await.unwrap();
    assert!(
        history.iter().any(|event| matches!(
            event.kind,
            EventKind::Call(CallEvent::Ended {
                by: CallEnd::Dropped,
                ..
            })
        )),
        "{history:?}"
    );
    let view = board.agent_view(&id("ann")).await.unwrap();
    assert!(view.sessions.is_empty(), "{view:?}");
    board.shutdown().await;
}

/// The call's first write fails: the caller is refused, and no session of
/// it stays queued for an agent to be offered; the next call goes through.
#[tokio::test(start_paused = true)]
async fn a_call_whose_start_was_not_stored_leaves_nothing_queued() {
    let store = Arc::new(TestStore::new());
    let board = start(store.clone(), config()).await;
    // The call's start (the first event, stored as JSON) is refused.
    store.fail_writes_where(Failure::Refused, |op| {
        matches!(op, WriteOp::AppendMessage(message) if message.body.contains("+8613800000099"))
    });
    let refused = board
        .start_call(call_from("+8613800000099", ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "store_unavailable", "{refused}");
    let default = GroupId::new("default");
    let mut waiting = usize::MAX;
    for _ in 0..100 {
        waiting = board.group_view(&default).await.unwrap().waiting.len();
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting, 0, "a refused call stays queued");
    store.fail_writes_where(Failure::Refused, |_| false);
    let (_, call) = board
        .start_call(call_from("+8613800000098", ""))
        .await
        .unwrap();
    assert_eq!(
        board.group_view(&default).await.unwrap().waiting.len(),
        1,
        "the next call waits"
    );
    assert_eq!(call.seq, 1);
    board.shutdown().await;
}

/// The call's own audience carries its offers, the agent's controls and
/// its end, from its first event on; a connected call the caller hangs up
/// goes to wrap-up with its talk time, and a second end changes nothing.
#[tokio::test(start_paused = true)]
async fn a_call_is_controlled_through_its_session() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    available(&board, &["ann"]).await;
    let (_, mut call) = board
        .start_call(call_from("+8613800000010", ""))
        .await
        .unwrap();
    let first = next_event(&mut call.events, |_| true).await;
    assert_eq!(first.seq, 1, "the subscription sees the call's start");
    let offer = next_event(&mut call.events, is_offer).await;
    // A phone cannot answer what its agent does not have.
    let early = board
        .call_event(call.session, CallEvent::Answered { agent: id("ann") })
        .await
        .unwrap_err();
    assert_eq!(early.code(), "invalid_state", "{early}");
    assert_eq!(
        offer.kind,
        EventKind::Offered {
            agent: id("ann"),
            deadline: match offer.kind {
                EventKind::Offered { deadline, .. } => deadline,
                _ => unreachable!(),
            },
        }
    );
    board.accept(&id("ann"), call.session).await.unwrap();
    board
        .call_event(call.session, CallEvent::Answered { agent: id("ann") })
        .await
        .unwrap();

    // Hold and resume: only by the assigned agent, each recorded once.
    let not_yours = board
        .call_control(&id("bob"), call.session, CallControl::Hold)
        .await
        .unwrap_err();
    assert_eq!(not_yours.code(), "not_your_session", "{not_yours}");
    let held = board
        .call_control(&id("ann"), call.session, CallControl::Hold)
        .await
        .unwrap();
    let again = board
        .call_control(&id("ann"), call.session, CallControl::Hold)
        .await
        .unwrap();
    assert_eq!(again, held, "a second hold records nothing");
    let event = next_event(&mut call.events, |kind| {
        matches!(kind, EventKind::Call(CallEvent::Held))
    })
    .await;
    assert_eq!(event.seq, held);
    board
        .call_control(&id("ann"), call.session, CallControl::Resume)
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_secs(42)).await;
    board.end_call(call.session, CallEnd::Caller).await.unwrap();
    let ended = next_event(&mut call.events, |kind| {
        matches!(kind, EventKind::Call(CallEvent::Ended { .. }))
    })
    .await;
    let EventKind::Call(CallEvent::Ended { by, talk_ms }) = ended.kind else {
        unreachable!()
    };
    assert_eq!(by, CallEnd::Caller);
    assert!((42_000..43_000).contains(&talk_ms), "talk_ms {talk_ms}");
    let wrap_up = next_event(&mut call.events, |_| true).await;
    assert_eq!(wrap_up.kind, EventKind::WrapUp, "the agent writes notes");
    let record = board.session(call.session).await.unwrap();
    assert_eq!(record.state, SessionState::WrapUp);
    // The agent's hang-up arriving after the caller's is a duplicate.
    board.end_call(call.session, CallEnd::Agent).await.unwrap();
    let refused = board
        .call_control(&id("ann"), call.session, CallControl::HangUp)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_state", "{refused}");
    let n_ends = board
        .history(call.session, 0)
        .await
        .unwrap()
        .iter()
        .filter(|event| matches!(event.kind, EventKind::Call(CallEvent::Ended { .. })))
        .count();
    assert_eq!(n_ends, 1);
    board.close(&id("ann"), call.session, None).await.unwrap();
    board.shutdown().await;
}

/// A waiting call that ends is abandoned; an agent who wraps up a call
/// that is still up hangs it up (`ended` by agent) before the wrap-up.
#[tokio::test(start_paused = true)]
async fn a_call_ends_with_its_session_and_the_session_with_its_call() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let (_, waiting) = board
        .start_call(call_from("+8613800000011", ""))
        .await
        .unwrap();
    board
        .end_call(waiting.session, CallEnd::Caller)
        .await
        .unwrap();
    assert_eq!(
        board.session(waiting.session).await.unwrap().state,
        SessionState::Abandoned
    );

    available(&board, &["ann"]).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    let (_, call) = board
        .start_call(call_from("+8613800000012", ""))
        .await
        .unwrap();
    assert_eq!(offered_session(&mut ann).await, call.session);
    board.accept(&id("ann"), call.session).await.unwrap();
    board.wrap_up(&id("ann"), call.session, None).await.unwrap();
    let history = board.history(call.session, 0).await.unwrap();
    let tail: Vec<_> = history
        .iter()
        .rev()
        .take(2)
        .map(|event| &event.kind)
        .collect();
    assert_eq!(
        tail,
        vec![
            &EventKind::WrapUp,
            &EventKind::Call(CallEvent::Ended {
                by: CallEnd::Agent,
                talk_ms: 0
            }),
        ],
        "never answered on a phone: no talk time"
    );
    board.shutdown().await;
}
