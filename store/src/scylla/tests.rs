//! The backend's own logic, without a server: row mapping both ways,
//! migration order, TTL and consistency settings, and write planning.
//! Statements against the schema are checked in `tests/statements.rs`, the
//! data platform's tables in `tests/platform.rs`.

mod platform;
mod statements;

use std::collections::BTreeMap;
use std::time::Duration;

use super::rows::{self, MessageRow};
use super::schema::{self, INTERACTION_TTL_SECS, MIGRATIONS};
use super::write::{Upsert, plan};
use super::*;
use crate::StoreError;
use engine::agent::{Agent, Capacity, Role};
use engine::customer::Identity;
use engine::ids::GroupId;
use engine::message::Sender;
use engine::session::{SessionState, SessionTimes};

const T0: Millis = 1_696_154_400_000;

fn customer() -> Customer {
    let mut customer = Customer::new("c-1", "王小明");
    customer.tier = "vip".into();
    customer.tags = vec!["billing".into(), "老客户".into()];
    customer.language = "zh".into();
    customer.identities = vec![
        Identity {
            channel: Channel::Wechat,
            external_id: "wx-1".into(),
        },
        Identity {
            channel: Channel::Phone,
            external_id: "+8613800000000".into(),
        },
    ];
    customer.last_agent = Some(AgentId::new("alice"));
    customer.created_at = T0;
    customer
}

fn full_session() -> ContactSession {
    ContactSession {
        id: SessionId(u64::MAX - 7),
        customer_id: CustomerId::new("c-1"),
        channel: Channel::Custom("line".into()),
        state: SessionState::WrapUp,
        group: Some(GroupId::new("billing")),
        sla_group: Some(GroupId::new("sales")),
        agent: Some(AgentId::new("alice")),
        times: SessionTimes {
            created: Some(T0),
            queued: Some(T0 + 1),
            offered: Some(T0 + 2),
            answered: Some(T0 + 3),
            first_response: Some(T0 + 4),
            wrap_up: Some(T0 + 5),
            closed: None,
        },
        last_seq: 42,
        transfers: 2,
        summary: Some("退款已处理".into()),
        rating: Some(5),
        reply_route: Some(engine::session::ReplyRoute {
            account: "qq-bot".into(),
            to: "member-1".into(),
            context: Some(r#"{"group_openid":"g-1"}"#.into()),
        }),
        route: vec![
            engine::session::RouteStep {
                rule: "vip".into(),
                step: 0,
                group: GroupId::new("sales"),
            },
            engine::session::RouteStep {
                rule: "vip".into(),
                step: 1,
                group: GroupId::new("billing"),
            },
        ],
    }
}

fn agent() -> Agent {
    let mut capacity = Capacity::default();
    capacity.exclusive.insert(Channel::Phone);
    Agent {
        id: AgentId::new("alice"),
        display_name: "Alice".into(),
        role: Role::Supervisor,
        skills: BTreeMap::from([("billing".into(), 5), ("中文".into(), 3)]),
        groups: vec![GroupId::new("billing"), GroupId::new("vip")],
        languages: vec!["zh".into(), "en".into()],
        capacity,
        sip: None,
    }
}

fn group() -> SkillGroup {
    let mut group = SkillGroup::new("billing", "Billing");
    group.sla_threshold_by_channel.insert(Channel::Phone, 20);
    group.sla_target_pct = 85.5;
    group
}

fn message(session: u64, seq: u64, sender: Sender) -> StoredMessage {
    StoredMessage {
        session_id: SessionId(session),
        seq,
        sender,
        body: format!("消息 {seq}"),
        client_message_id: Some(format!("c-{seq}")),
        channel: Channel::Wechat,
        at: T0 + seq as Millis,
    }
}

#[test]
fn rows_map_both_ways() {
    let customer = customer();
    let identity_rows = customer
        .identities
        .iter()
        .map(|identity| rows::identity_to_row(&customer.id, identity))
        .collect();
    let mut sorted = customer.clone();
    sorted.identities.sort();
    assert_eq!(
        rows::customer_from_row(rows::customer_to_row(&customer), identity_rows),
        Ok(sorted)
    );

    let session = full_session();
    let row = rows::session_to_row(&session);
    assert!(row.session_id > 0, "ids past i64::MAX keep their order");
    let mut read = rows::session_from_row(row).unwrap();
    assert_eq!(read.reply_route, None, "the route has its own table");
    assert_eq!(read.sla_group, None, "so has the SLA group");
    assert!(read.route.is_empty(), "and the steps");
    rows::add_session_route(&mut read, rows::session_route_to_row(&session)).unwrap();
    rows::add_session_sla_group(&mut read, rows::session_sla_group_to_row(&session));
    rows::add_session_steps(&mut read, rows::session_steps_to_row(&session)).unwrap();
    let by_day = rows::session_by_queued_day_row(&session).expect("it queued");
    assert_eq!(
        (by_day.day, by_day.queued_at),
        (super::platform::utc_day(T0 + 1), T0 + 1)
    );
    assert_eq!(read, session);
    // A corrupt route names its table and column.
    let mut corrupt = rows::session_route_to_row(&session);
    corrupt.record = Some("{not json".into());
    let err = rows::add_session_route(&mut read, corrupt).unwrap_err();
    assert!(err.to_string().contains("session_reply_route"), "{err}");

    for sender in [
        Sender::Customer,
        Sender::System,
        Sender::Agent(AgentId::new("bob")),
    ] {
        let message = message(7, 3, sender);
        assert_eq!(
            rows::message_from_row(rows::message_to_row(&message)),
            Ok(message)
        );
    }

    let interaction = Interaction {
        customer_id: CustomerId::new("c-1"),
        at: T0,
        session_id: SessionId(9),
        channel: Channel::Phone,
        summary: "来电咨询".into(),
    };
    assert_eq!(
        rows::interaction_from_row(rows::interaction_to_row(&interaction)),
        Ok(interaction)
    );
    assert_eq!(
        rows::agent_from_row(rows::agent_to_row(&agent())),
        Ok(agent())
    );
    assert_eq!(
        rows::group_from_row(rows::group_to_row(&group())),
        Ok(group())
    );
}

#[test]
fn absent_collections_read_as_empty() {
    // CQL gives an empty collection back as null.
    let mut row = rows::agent_to_row(&agent());
    row.skills = None;
    row.groups = None;
    row.languages = None;
    row.capacity_limits = None;
    row.capacity_exclusive = None;
    let read = rows::agent_from_row(row).unwrap();
    assert!(read.skills.is_empty() && read.groups.is_empty() && read.languages.is_empty());
    assert!(read.capacity.limits.is_empty() && read.capacity.exclusive.is_empty());
}

fn check_corrupt(result: Result<impl std::fmt::Debug, StoreError>, expected: &str) {
    match result {
        Err(StoreError::Corrupt { what }) => assert_eq!(what, expected),
        other => panic!("expected Corrupt({expected}), got {other:?}"),
    }
}

#[test]
fn bad_rows_name_table_key_and_column() {
    let mut row = rows::session_to_row(&full_session());
    row.state = "flying".into();
    check_corrupt(
        rows::session_from_row(row),
        "sessions (session_id=18446744073709551608), column state: unknown state \"flying\"",
    );
    let mut row = rows::session_to_row(&full_session());
    row.transfers = -1;
    check_corrupt(
        rows::session_from_row(row),
        "sessions (session_id=18446744073709551608), column transfers: out of range: -1",
    );
    let mut row = rows::message_to_row(&message(7, 3, Sender::Customer));
    row.sender_kind = "agent".into();
    check_corrupt(
        rows::message_from_row(row),
        "session_messages (session_id=7, seq=3), column sender_kind: \"agent\" with sender_agent None",
    );
    let mut row = rows::agent_to_row(&agent());
    row.role = "boss".into();
    check_corrupt(
        rows::agent_from_row(row),
        "agents (agent_id=\"alice\"), column role: unknown role \"boss\"",
    );
    let mut row = rows::agent_to_row(&agent());
    row.skills = Some(BTreeMap::from([("billing".into(), 300)]));
    check_corrupt(
        rows::agent_from_row(row),
        "agents (agent_id=\"alice\"), column skills: out of range: 300",
    );
}

#[test]
fn migrations_are_ordered_and_idempotent() {
    let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(versions, (1..=MIGRATIONS.len() as i32).collect::<Vec<_>>());
    assert_eq!(schema::latest_version(), MIGRATIONS.len() as i32);
    for migration in MIGRATIONS {
        for statement in migration.statements {
            assert!(
                statement.starts_with("CREATE TABLE IF NOT EXISTS "),
                "v{}: not idempotent: {statement}",
                migration.version
            );
        }
    }
    let created_by = |version: i32| {
        MIGRATIONS[version as usize - 1]
            .statements
            .iter()
            .map(|s| s.split_whitespace().nth(5).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        created_by(3),
        [
            "tickets",
            "tickets_by_customer",
            "ticket_events",
            "kb_articles",
            "reply_templates",
            "session_summaries",
            "webhook_outbox"
        ]
    );
    let pending_versions = |applied: &[i32]| {
        schema::pending(applied).map(|p| p.iter().map(|m| m.version).collect::<Vec<_>>())
    };
    assert_eq!(pending_versions(&[]), Ok(versions.clone()));
    assert_eq!(pending_versions(&[1]), Ok(versions[1..].to_vec()));
    assert_eq!(pending_versions(&versions), Ok(vec![]));
    let newer = schema::latest_version() + 1;
    assert_eq!(
        pending_versions(&[1, newer]),
        Err(StoreError::Backend(format!(
            "scylla: schema version {newer} is newer than this build's {}",
            schema::latest_version()
        )))
    );
}

#[test]
fn keyspace_replication() {
    assert_eq!(
        schema::create_keyspace("switchboard", &Replication::Simple { factor: 3 }),
        "CREATE KEYSPACE IF NOT EXISTS switchboard WITH replication = \
         {'class': 'SimpleStrategy', 'replication_factor': 3}"
    );
    let topology = Replication::NetworkTopology {
        datacenters: BTreeMap::from([("dc1".into(), 3), ("dc2".into(), 2)]),
    };
    assert_eq!(
        topology.to_cql(),
        "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
    );
}

#[test]
fn interactions_expire_after_thirty_days() {
    assert_eq!(INTERACTION_TTL_SECS, 30 * 24 * 60 * 60);
    let tables_with_ttl: Vec<&str> = MIGRATIONS
        .iter()
        .flat_map(|m| m.statements.iter())
        .filter(|s| s.contains(&format!("default_time_to_live = {INTERACTION_TTL_SECS}")))
        .map(|s| s.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(
        tables_with_ttl,
        [
            "customer_interactions",
            "interactions_by_day",
            "interaction_days"
        ]
    );
    assert_eq!(rows::interaction_day(0), 0);
    assert_eq!(rows::interaction_day(rows::DAY_MS - 1), 0);
    assert_eq!(rows::interaction_day(rows::DAY_MS), 1);
    assert_eq!(rows::interaction_day(-1), -1);
}

#[test]
fn consistency_and_timeouts() {
    let options = ScyllaOptions::default();
    let profile = execution_profile(&options);
    assert_eq!(profile.get_consistency(), Consistency::LocalQuorum);
    assert_eq!(
        profile.get_serial_consistency(),
        Some(SerialConsistency::LocalSerial)
    );
    assert_eq!(profile.get_request_timeout(), Some(Duration::from_secs(2)));

    let tuned = ScyllaOptions {
        consistency: parse_consistency("QUORUM").unwrap(),
        serial_consistency: parse_serial_consistency("serial").unwrap(),
        request_timeout: Duration::from_millis(750),
        local_datacenter: Some("dc1".into()),
        ..ScyllaOptions::default()
    };
    let profile = execution_profile(&tuned);
    assert_eq!(profile.get_consistency(), Consistency::Quorum);
    assert_eq!(
        profile.get_serial_consistency(),
        Some(SerialConsistency::Serial)
    );
    assert_eq!(
        profile.get_request_timeout(),
        Some(Duration::from_millis(750))
    );
    for (name, level) in [
        ("one", Consistency::One),
        ("local_one", Consistency::LocalOne),
        ("each_quorum", Consistency::EachQuorum),
        ("all", Consistency::All),
    ] {
        assert_eq!(parse_consistency(name), Ok(level));
    }
    assert!(
        parse_consistency("serial")
            .unwrap_err()
            .contains("unknown consistency `serial`")
    );
    assert!(parse_serial_consistency("quorum").is_err());
}

#[test]
fn options_are_validated_naming_the_field() {
    let check = |options: ScyllaOptions, field: &str, why: &str| {
        let (bad, reason) = options.validate().unwrap_err();
        assert_eq!(bad, field);
        assert!(reason.contains(why), "{reason}");
    };
    assert_eq!(ScyllaOptions::default().validate(), Ok(()));
    check(
        ScyllaOptions {
            contact_points: vec![],
            ..ScyllaOptions::default()
        },
        "contact_points",
        "at least one node",
    );
    check(
        ScyllaOptions {
            keyspace: "switch-board; DROP".into(),
            ..ScyllaOptions::default()
        },
        "keyspace",
        "is not a CQL name",
    );
    check(
        ScyllaOptions {
            replication: Replication::Simple { factor: 0 },
            ..ScyllaOptions::default()
        },
        "replication_factor",
        "at least 1",
    );
    check(
        ScyllaOptions {
            replication: Replication::NetworkTopology {
                datacenters: BTreeMap::from([("dc'1".into(), 3)]),
            },
            ..ScyllaOptions::default()
        },
        "datacenters",
        "not a data center name",
    );
    check(
        ScyllaOptions {
            request_timeout: Duration::ZERO,
            ..ScyllaOptions::default()
        },
        "request_timeout_ms",
        "greater than 0",
    );
}

#[test]
fn planning_coalesces_and_catches_conflicts_inside_the_batch() {
    let mut first = full_session();
    first.id = SessionId(1);
    let mut later = first.clone();
    later.state = SessionState::Closed;
    let planned = plan(&[
        WriteOp::PutSession(first),
        WriteOp::AppendMessage(message(1, 1, Sender::Customer)),
        WriteOp::AppendMessage(message(1, 2, Sender::System)),
        WriteOp::PutSession(later.clone()),
    ])
    .unwrap();
    // The later record wins, and the closed session leaves open_sessions.
    assert_eq!(
        planned.upserts,
        vec![
            Upsert::SessionByCustomer(rows::session_by_customer_row(&later)),
            Upsert::ClosedSession(rows::open_session_row(SessionId(1))),
            Upsert::Session(rows::session_to_row(&later)),
            Upsert::SessionRoute(rows::session_route_to_row(&later)),
            Upsert::SessionSlaGroup(rows::session_sla_group_to_row(&later)),
            Upsert::SessionSteps(rows::session_steps_to_row(&later)),
            Upsert::SessionByQueuedDay(rows::session_by_queued_day_row(&later).unwrap()),
        ]
    );
    let seqs: Vec<i64> = planned.messages[&SessionId(1)]
        .iter()
        .map(|m: &MessageRow| m.seq)
        .collect();
    assert_eq!(seqs, [1, 2]);

    assert_eq!(
        plan(&[
            WriteOp::AppendMessage(message(1, 2, Sender::Customer)),
            WriteOp::AppendMessage(message(1, 2, Sender::System)),
        ]),
        Err(StoreError::DuplicateSeq {
            session: SessionId(1),
            seq: 2
        })
    );
    let wechat = Identity {
        channel: Channel::Wechat,
        external_id: "wx-1".into(),
    };
    assert_eq!(
        plan(&[
            WriteOp::PutCustomer(customer()),
            WriteOp::LinkIdentity {
                customer: CustomerId::new("c-1"),
                identity: wechat.clone(),
            },
            WriteOp::LinkIdentity {
                customer: CustomerId::new("c-2"),
                identity: wechat,
            },
        ]),
        Err(StoreError::IdentityTaken {
            channel: Channel::Wechat,
            external_id: "wx-1".into(),
            owner: CustomerId::new("c-1"),
        })
    );
    // Linking an identity the batch already gave the same customer claims it once.
    let planned = plan(&[
        WriteOp::PutCustomer(customer()),
        WriteOp::LinkIdentity {
            customer: CustomerId::new("c-1"),
            identity: customer().identities[0].clone(),
        },
    ])
    .unwrap();
    assert_eq!(planned.claims.len(), 2);
}
