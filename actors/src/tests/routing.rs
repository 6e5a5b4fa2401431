//! Routing: offer timeouts, step overflow, sticky agents and rule reloads.

use super::*;

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
async fn a_session_that_overflows_to_another_group_leaves_the_old_groups_queue() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let gold = GroupId::new("gold_service");
    let default = GroupId::new("default");
    let vip = board
        .customer_message(envelope(Channel::Wechat, "v-wx", "vip", "v1"))
        .await
        .unwrap();
    assert_eq!(board.group_view(&gold).await.unwrap().waiting.len(), 1);
    // The 30 s step in gold_service times out: the session moves to default.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let record = board.session(vip.session).await.unwrap();
    assert_eq!(record.group, Some(default.clone()));
    assert_eq!(board.group_view(&default).await.unwrap().waiting.len(), 1);
    // Only the `LeaveQueue` effect of moving groups takes it out of gold_service:
    assert!(board.group_view(&gold).await.unwrap().waiting.is_empty());
    // so a gold_service agent who becomes available is not offered it.
    let mut gina = board.subscribe_agent(&id("gina"));
    available(&board, &["gina"]).await;
    timeout(Duration::from_secs(5), offered_session(&mut gina))
        .await
        .unwrap_err();
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
        .write(&[store::WriteOp::PutCustomer(vip)])
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

/// The step-timeout edge (docs/routing.md, "An offer out when the step
/// times out"): an offer made just before a step's timeout may still be
/// accepted after it, and the contact stays in that step's group; had the
/// agent refused it instead, the contact moves on at once.
#[tokio::test(start_paused = true)]
async fn an_offer_out_when_the_step_times_out_may_still_be_accepted_there() {
    let gold = GroupId::new("gold_service");
    let default = GroupId::new("default");
    for accepts in [true, false] {
        let board = start(Arc::new(MemoryStore::new()), config()).await;
        let mut gina = board.subscribe_agent(&id("gina"));
        let vip = board
            .customer_message(envelope(Channel::Wechat, "v-wx", "vip", "v1"))
            .await
            .unwrap();
        // The VIP waits in gold_service (30 s step; nobody available). Gina
        // comes 1 ms before the timeout and is offered the contact.
        tokio::time::sleep(Duration::from_millis(29_999)).await;
        available(&board, &["gina"]).await;
        assert_eq!(offered_session(&mut gina).await, vip.session);
        // The step's timeout passes while the offer is out...
        tokio::time::sleep(Duration::from_millis(2)).await;
        let record = board.session(vip.session).await.unwrap();
        assert_eq!(record.state, SessionState::Offered, "accepts: {accepts}");
        assert_eq!(record.group, Some(gold.clone()));
        let history = board.history(vip.session, 0).await.unwrap();
        let queued_in = |history: &[Event]| -> Vec<GroupId> {
            history
                .iter()
                .filter_map(|event| match &event.kind {
                    EventKind::Queued { group } => Some(group.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(queued_in(&history), std::slice::from_ref(&gold));
        if accepts {
            // ...and Gina's accept after it stands: the contact is answered
            // in gold_service and never queued in default.
            board.accept(&id("gina"), vip.session).await.unwrap();
            let record = board.session(vip.session).await.unwrap();
            assert_eq!(record.state, SessionState::Assigned);
            assert_eq!(record.group, Some(gold.clone()));
            let history = board.history(vip.session, 0).await.unwrap();
            assert_eq!(queued_in(&history), std::slice::from_ref(&gold));
        } else {
            // ...and Gina's refusal moves it on at once, to default.
            board.reject(&id("gina"), vip.session).await.unwrap();
            let history = board.history(vip.session, 0).await.unwrap();
            assert_eq!(queued_in(&history), [gold.clone(), default.clone()]);
            let record = board.session(vip.session).await.unwrap();
            assert_eq!(record.group, Some(default.clone()));
            assert_eq!(board.group_view(&default).await.unwrap().waiting.len(), 1);
        }
        board.shutdown().await;
    }
}

/// A session whose actor restarts while it is offered takes its routing
/// plan back before the offer is treated as lapsed, so its step still
/// times out and it overflows on time.
#[tokio::test(start_paused = true)]
async fn a_session_restarted_while_offered_still_overflows_on_time() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let default = GroupId::new("default");
    let mut gina = board.subscribe_agent(&id("gina"));
    available(&board, &["gina"]).await;
    let vip = board
        .customer_message(envelope(Channel::Wechat, "v-wx", "vip", "v1"))
        .await
        .unwrap();
    // Offered to Gina in gold_service (its 30 s step); then the actor dies.
    assert_eq!(offered_session(&mut gina).await, vip.session);
    board.crash_session(vip.session).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Restarted, the offer lapsed; Gina does not take it again (she is not
    // responding), so it waits until the step times out.
    let record = board.session(vip.session).await.unwrap();
    assert_eq!(record.group, Some(GroupId::new("gold_service")));
    assert_ne!(record.state, SessionState::Offered);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let record = board.session(vip.session).await.unwrap();
    assert_eq!(record.group, Some(default.clone()), "{record:?}");
    assert_eq!(board.group_view(&default).await.unwrap().waiting.len(), 1);
    board.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_steered_session_keeps_its_new_queue_and_priority_across_a_restart() {
    use engine::supervision::Actor;
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let gold = GroupId::new("gold_service");
    let default = GroupId::new("default");
    let vip = board
        .customer_message(envelope(Channel::Wechat, "v-wx", "vip first", "v1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A plain customer's rule knows only default: a supervisor moves them
    // to gold_service, ahead of the VIP.
    let plain = board
        .customer_message(envelope(Channel::Web, "p-web", "plain later", "p1"))
        .await
        .unwrap();
    let supervisor = Actor::Supervisor(id("sue"));
    let reassign = crate::SteerRequest::Reassign {
        group: gold.clone(),
        agent: None,
    };
    board
        .steer_session(
            supervisor.clone(),
            plain.session,
            default.clone(),
            reassign,
            "gold has room",
        )
        .await
        .unwrap();
    // Authorised for default, where it no longer waits: refused.
    let raise = crate::SteerRequest::Priority { priority: 10 };
    let stale = board
        .steer_session(
            supervisor.clone(),
            plain.session,
            default.clone(),
            raise.clone(),
            "escalated",
        )
        .await
        .unwrap_err();
    assert!(
        stale.to_string().contains("left group `default`"),
        "{stale}"
    );
    board
        .steer_session(supervisor, plain.session, gold.clone(), raise, "escalated")
        .await
        .unwrap();
    let order = |view: crate::group::GroupView| {
        view.waiting
            .iter()
            .map(|(session, priority, ..)| (*session, *priority))
            .collect::<Vec<_>>()
    };
    let expected = vec![(plain.session, 10), (vip.session, 0)];
    assert_eq!(order(board.group_view(&gold).await.unwrap()), expected);
    assert!(board.group_view(&default).await.unwrap().waiting.is_empty());

    // Restarted, it waits where the supervisor put it, as they put it.
    board.crash_session(plain.session).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(order(board.group_view(&gold).await.unwrap()), expected);
    assert!(board.group_view(&default).await.unwrap().waiting.is_empty());
    let record = board.session(plain.session).await.unwrap();
    assert_eq!(record.group, Some(gold.clone()));
    // Both actions are in the audit log, newest first.
    let audit = board.audit_log(0, i64::MAX, 10).await.unwrap();
    let reasons: Vec<&str> = audit.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["escalated", "gold has room"]);
    board.shutdown().await;
}

/// The agent hears when a reply is due (the first 30 s by default after
/// they accepted); a reply not sent by then is a stored breach, once; a
/// reply answers it and the next wait starts with the customer's next
/// message, due 30 s after it.
#[tokio::test(start_paused = true)]
async fn a_reply_owed_past_its_target_is_a_breach_and_the_agent_hears_when_it_is_due() {
    use engine::routing::ResponseKind;
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    available(&board, &["ann"]).await;
    let first = board
        .customer_message(envelope(Channel::Web, "p-web", "hello", "c1"))
        .await
        .unwrap();
    let session = offered_session(&mut ann).await;
    assert_eq!(session, first.session);
    board.accept(&id("ann"), session).await.unwrap();
    let accepted_at = assigned_at(&board, session).await;
    let due = next_event(&mut ann, |kind| {
        matches!(kind, EventKind::ResponseDue { due: Some(_), .. })
    })
    .await;
    assert_eq!(
        due.kind,
        EventKind::ResponseDue {
            kind: Some(ResponseKind::First),
            due: Some(accepted_at + 30_000)
        }
    );
    assert_eq!(
        board.response_due(session).await.unwrap(),
        Some((ResponseKind::First, accepted_at + 30_000))
    );
    let breaches = |events: &[Event]| {
        events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::ResponseBreached { kind, due, .. } => Some((*kind, *due)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(breaches(&board.history(session, 0).await.unwrap()).is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let breached = next_event(&mut ann, |kind| {
        matches!(kind, EventKind::ResponseBreached { .. })
    })
    .await;
    assert_eq!(
        breached.at,
        accepted_at + 30_000,
        "at the due time, not later"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        breaches(&board.history(session, 0).await.unwrap()),
        [(ResponseKind::First, accepted_at + 30_000)],
        "one breach per wait"
    );

    // The reply answers it; the customer's next message owes a next reply,
    // answered in time: no breach.
    board
        .agent_message(
            &id("ann"),
            session,
            "sorry for the wait".into(),
            Some("a1".into()),
        )
        .await
        .unwrap();
    next_event(&mut ann, |kind| {
        *kind
            == EventKind::ResponseDue {
                kind: None,
                due: None,
            }
    })
    .await;
    board
        .customer_message(envelope(Channel::Web, "p-web", "ok, and?", "c2"))
        .await
        .unwrap();
    let due = next_event(&mut ann, |kind| {
        matches!(kind, EventKind::ResponseDue { due: Some(_), .. })
    })
    .await;
    assert!(matches!(
        due.kind,
        EventKind::ResponseDue {
            kind: Some(ResponseKind::Next),
            ..
        }
    ));
    tokio::time::sleep(Duration::from_secs(10)).await;
    board
        .agent_message(&id("ann"), session, "done".into(), Some("a2".into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(breaches(&board.history(session, 0).await.unwrap()).len(), 1);
    assert_eq!(board.response_due(session).await.unwrap(), None);
    board.shutdown().await;
}

/// A session restarted while a reply is owed keeps its due time and still
/// breaches on time.
#[tokio::test(start_paused = true)]
async fn a_reply_owed_when_the_session_restarts_still_breaches_on_time() {
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    available(&board, &["ann"]).await;
    board
        .customer_message(envelope(Channel::Web, "p-web", "hello", "c1"))
        .await
        .unwrap();
    let session = offered_session(&mut ann).await;
    board.accept(&id("ann"), session).await.unwrap();
    let accepted_at = assigned_at(&board, session).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    board.crash_session(session).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        board.response_due(session).await.unwrap(),
        Some((engine::routing::ResponseKind::First, accepted_at + 30_000))
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let n_breaches = board
        .history(session, 0)
        .await
        .unwrap()
        .iter()
        .filter(|event| matches!(event.kind, EventKind::ResponseBreached { .. }))
        .count();
    assert_eq!(n_breaches, 1);
    board.shutdown().await;
}

/// When `session` was assigned, from its history.
async fn assigned_at(board: &Switchboard, session: SessionId) -> engine::Millis {
    board
        .history(session, 0)
        .await
        .unwrap()
        .iter()
        .find(|event| matches!(event.kind, EventKind::Assigned { .. }))
        .expect("assigned")
        .at
}

/// Someone following a waiting session was allowed for its group: when it
/// overflows to another group they stop following it (recorded).
#[tokio::test(start_paused = true)]
async fn followers_stop_when_the_session_moves_to_another_group() {
    use engine::supervision::{Actor, MonitorMode};
    let board = start(Arc::new(MemoryStore::new()), config()).await;
    let gold = GroupId::new("gold_service");
    let vip = board
        .customer_message(envelope(Channel::Wechat, "v-wx", "vip", "v1"))
        .await
        .unwrap();
    let sue = id("sue");
    board
        .monitor_session(
            &sue,
            vip.session,
            Some(gold.clone()),
            Some(MonitorMode::Listen),
        )
        .await
        .unwrap();
    let mut followed = board.subscribe_agent(&sue);
    // The 30 s gold_service step times out: it overflows to default.
    let stopped = next_event(&mut followed, |kind| {
        matches!(kind, EventKind::Monitored { mode: None, .. })
    })
    .await;
    assert_eq!(
        stopped.kind,
        EventKind::Monitored {
            by: Actor::Supervisor(sue.clone()),
            mode: None
        }
    );
    let record = board.session(vip.session).await.unwrap();
    assert_eq!(record.group, Some(GroupId::new("default")));
    // The stop is audited, saying why.
    let audit = board.audit_log(0, i64::MAX, 10).await.unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(
        audit[0].reason.contains("moved to group `default`"),
        "{audit:?}"
    );
    // Starting again with the group seen before is refused.
    let err = board
        .monitor_session(&sue, vip.session, Some(gold), Some(MonitorMode::Listen))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("left group `gold_service`"),
        "{err}"
    );
    board.shutdown().await;
}

/// What the reports read: the steps a contact waited in until its answer
/// (a sticky step skipped, an overflow, nothing after the answer), and
/// each change of an agent's activity in the agent log.
#[tokio::test(start_paused = true)]
async fn the_route_steps_and_the_agents_activity_are_recorded_for_reports() {
    use engine::session::RouteStep;
    use engine::sla::AgentActivity;
    use engine::sla::report::AgentLogKind;
    let store = Arc::new(MemoryStore::new());
    let board = start(store.clone(), config()).await;
    let vip = board
        .customer_message(envelope(Channel::Wechat, "v-wx", "vip", "v1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(31)).await;
    let mut ann = board.subscribe_agent(&id("ann"));
    available(&board, &["ann"]).await;
    let offered = offered_session(&mut ann).await;
    assert_eq!(offered, vip.session);
    board.accept(&id("ann"), offered).await.unwrap();
    board.flush().await.unwrap();
    let step = |step: u32, group: &str| RouteStep {
        rule: "vip".into(),
        step,
        group: GroupId::new(group),
    };
    let record = board.session(vip.session).await.unwrap();
    assert_eq!(
        record.route,
        vec![step(1, "gold_service"), step(2, "default")]
    );
    let stored = store.get_session(vip.session).await.unwrap().unwrap();
    assert_eq!(stored.route, record.route);

    let log = store.agent_log(0, Millis::MAX, None, 1000).await.unwrap();
    let ann_log: Vec<AgentActivity> = log
        .iter()
        .filter(|entry| entry.agent == id("ann"))
        .filter_map(|entry| match entry.kind {
            AgentLogKind::Activity { activity } => Some(activity),
            AgentLogKind::Usage { .. } => None,
        })
        .collect();
    assert_eq!(
        ann_log,
        [
            AgentActivity::Offline,
            AgentActivity::AvailableIdle,
            AgentActivity::OnContact
        ]
    );
    board.shutdown().await;
}
