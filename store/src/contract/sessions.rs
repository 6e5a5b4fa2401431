//! Contract cases: session records, recovery, agents and skill groups.

use super::*;

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
    full.rating = Some(4);
    full.reply_route = Some(engine::session::ReplyRoute {
        account: "wx-main".into(),
        to: "o6_bmjrPTlm6_2sgVt7hMZOPfL2M".into(),
        context: Some(r#"{"msg_id":"m-1"}"#.into()),
    });
    // Answered in support, then transferred: it counts in support.
    full.sla_group = Some(GroupId::new("support"));
    full.route = vec![
        engine::session::RouteStep {
            rule: "金卡".into(),
            step: 0,
            group: GroupId::new("gold_service"),
        },
        engine::session::RouteStep {
            rule: "金卡".into(),
            step: 1,
            group: GroupId::new("support"),
        },
    ];

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
    full.rating = Some(5);
    full.reply_route = None;
    full.sla_group = None;
    full.route.clear();
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
        sip: Some(SipCredentials {
            realm: "switchboard".to_owned(),
            ha1_md5: "0".repeat(32),
            ha1_sha256: "f".repeat(64),
        }),
    };
    let bob = Agent {
        id: AgentId::new("bob"),
        display_name: "Bob".to_owned(),
        role: Role::Junior,
        skills: BTreeMap::new(),
        groups: vec![],
        languages: vec![],
        capacity: Capacity::default(),
        sip: None,
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

    // SIP credentials are replaced and removed with the profile.
    let mut rotated = alice.clone();
    rotated.sip.as_mut().unwrap().ha1_md5 = "1".repeat(32);
    write(store, vec![WriteOp::PutAgent(rotated.clone())]).await;
    assert_eq!(
        store.get_agent(&alice.id).await.unwrap(),
        Some(rotated.clone())
    );
    let mut without = rotated;
    without.sip = None;
    write(store, vec![WriteOp::PutAgent(without.clone())]).await;
    assert_eq!(
        store.get_agent(&alice.id).await.unwrap(),
        Some(without.clone())
    );
    assert_eq!(store.list_agents().await.unwrap()[0], without);
}

/// Sessions by the time they first queued, in `(queued, id)` order within
/// `[from, to)`, across days, paged with `after`; a session that never
/// queued is not there, and a later put of one is found once.
pub async fn sessions_queued_in_order_paged_across_days(store: &dyn Store) {
    let queued = |id: u64, at: Millis| {
        let mut s = session(id, "c-1", Channel::Web, at - SECOND);
        s.state = SessionState::Queued;
        s.times.queued = Some(at);
        s
    };
    let written = [
        queued(1, T0 - DAY),
        queued(u64::MAX - 3, T0),
        queued(2, T0),
        queued(3, T0 + SECOND),
        queued(4, T0 + DAY),
        queued(5, T0 + 2 * DAY),
        session(6, "c-1", Channel::Web, T0),
    ];
    write(
        store,
        written.iter().cloned().map(WriteOp::PutSession).collect(),
    )
    .await;
    // A later state of one of them is the same entry.
    let mut answered = written[3].clone();
    answered.state = SessionState::Assigned;
    answered.times.answered = Some(T0 + 5 * SECOND);
    write(store, vec![WriteOp::PutSession(answered.clone())]).await;

    let all = store
        .sessions_queued(T0, T0 + 2 * DAY, None, 100)
        .await
        .unwrap();
    assert_eq!(
        ids(&all),
        vec![2, u64::MAX - 3, 3, 4],
        "from inclusive, to exclusive; ids in order at one time"
    );
    assert_eq!(all[2], answered);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .sessions_queued(T0 - DAY, T0 + 3 * DAY, after, 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some((last.times.queued.unwrap(), last.id));
        paged.extend(ids(&page));
    }
    assert_eq!(
        paged,
        vec![1, 2, u64::MAX - 3, 3, 4, 5],
        "pages resume after their last"
    );
    assert!(
        store
            .sessions_queued(T0, T0, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .sessions_queued(T0, T0 + DAY, None, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The agents' log in `(at, id)` order within `[from, to)`, across days,
/// paged with `after`; what an agent was doing before a time.
pub async fn agent_log_in_order_and_activity_before(store: &dyn Store) {
    use engine::sla::AgentActivity;
    use engine::sla::report::{AgentLogEntry, AgentLogKind};
    let entry = |id: u64, agent: &str, at: Millis, activity| AgentLogEntry {
        agent: AgentId::new(agent),
        at,
        id,
        kind: AgentLogKind::Activity { activity },
    };
    let written = [
        entry(1, "alice", T0 - DAY, AgentActivity::AvailableIdle),
        entry(2, "bob", T0 - SECOND, AgentActivity::Away),
        entry(3, "alice", T0, AgentActivity::OnContact),
        entry(4, "bob", T0, AgentActivity::AvailableIdle),
        entry(5, "alice", T0 + DAY, AgentActivity::WrapUp),
    ];
    write(
        store,
        written.iter().cloned().map(WriteOp::PutAgentLog).collect(),
    )
    .await;
    write(store, vec![WriteOp::PutAgentLog(written[2].clone())]).await;
    let ids = |entries: &[AgentLogEntry]| entries.iter().map(|e| e.id).collect::<Vec<_>>();

    let all = store
        .agent_log(T0 - DAY, T0 + 2 * DAY, None, 100)
        .await
        .unwrap();
    assert_eq!(ids(&all), vec![1, 2, 3, 4, 5]);
    assert_eq!(all[2], written[2]);
    let window = store.agent_log(T0, T0 + DAY, None, 100).await.unwrap();
    assert_eq!(ids(&window), vec![3, 4], "from inclusive, to exclusive");
    let page = store
        .agent_log(T0 - DAY, T0 + 2 * DAY, Some((T0, 3)), 2)
        .await
        .unwrap();
    assert_eq!(ids(&page), vec![4, 5], "a page resumes after its last");

    let before = |agent: &str, at| {
        let agent = AgentId::new(agent);
        async move {
            store
                .agent_activity_before(&agent, at)
                .await
                .unwrap()
                .map(|e| e.id)
        }
    };
    assert_eq!(before("alice", T0).await, Some(1), "strictly before");
    assert_eq!(before("alice", T0 + 1).await, Some(3));
    assert_eq!(before("bob", T0).await, Some(2));
    assert_eq!(before("alice", T0 + 3 * DAY).await, Some(5));
    assert_eq!(before("alice", T0 - DAY).await, None);
    assert_eq!(before("carol", T0 + DAY).await, None);
}
