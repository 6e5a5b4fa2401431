//! The data platform's tables without a server: records round-trip through
//! their rows, bad records name table, key and column, write planning
//! (one row per key, the later op winning; a ticket event appended twice
//! fails the batch), the outbox's buckets and due order, and which seq a
//! conditional ticket event append that was not applied reports.

use std::collections::BTreeSet;

use super::super::platform::{
    self, ArticleKey, LIST_BUCKET, OUTBOX_BUCKETS, OutboxKey, PlatformUpsert, TemplateKey,
    TicketEventRow, due_rows, outbox_bucket, taken_seq,
};
use super::super::write::{Upsert, plan};
use super::*;
use engine::assist::ReplyTemplate;
use engine::ids::{ArticleId, TemplateId, TicketId};
use engine::kb::Article;
use engine::outbox::{OutboxEntry, RetryPolicy};
use engine::summary::{Outcome, SessionSummary};
use engine::ticket::{NewTicket, Ticket, TicketEvent};

pub(super) fn ticket(id: &str, customer: &str) -> (Ticket, TicketEvent) {
    let new = NewTicket {
        subject: format!("订单问题 {id}"),
        description: "包裹破损，需要换货".into(),
        tags: vec!["物流".into()],
        session: Some(SessionId(u64::MAX - 3)),
        ..NewTicket::default()
    };
    Ticket::open(
        TicketId::new(id),
        CustomerId::new(customer),
        new,
        Sender::Agent(AgentId::new("li.na")),
        T0,
    )
    .expect("a valid ticket")
}

pub(super) fn article(id: &str) -> Article {
    Article {
        id: ArticleId::new(id),
        language: "zh-CN".into(),
        title: "退款多久到账".into(),
        body: "退款审核通过后原路退回，一般1到7个工作日到账。".into(),
        tags: vec!["退款".into()],
        updated_at: T0,
    }
}

pub(super) fn template(id: &str) -> ReplyTemplate {
    ReplyTemplate {
        id: TemplateId::new(id),
        language: "zh-CN".into(),
        title: "订单延迟安抚".into(),
        body: "您的订单因物流原因延迟,预计3天内送达。".into(),
        triggers: vec!["订单延迟".into()],
        updated_at: T0,
    }
}

pub(super) fn summary(session: SessionId) -> SessionSummary {
    SessionSummary {
        session_id: session,
        customer_id: CustomerId::new("c-1"),
        key_sentences: vec!["我的订单还没发货。".into()],
        topics: vec!["delivery".into()],
        outcome: Outcome::Resolved,
        summarizer: "extractive-v1".into(),
        created_at: T0,
    }
}

pub(super) fn outbox(event: &str, due: Millis) -> OutboxEntry {
    let mut entry = OutboxEntry::new(
        event,
        "crm",
        "ticket.updated",
        format!("{{\"event\":\"{event}\"}}"),
        T0,
    );
    entry.next_attempt_at = due;
    entry
}

/// A batch with every data-platform op, for the binding tests.
pub(super) fn every_platform_op() -> Vec<WriteOp> {
    let (ticket, created) = ticket("T-1", "c-1");
    vec![
        WriteOp::PutTicket(ticket),
        WriteOp::AppendTicketEvent(created),
        WriteOp::PutArticle(article("kb-refund")),
        WriteOp::DeleteArticle(ArticleId::new("kb-old")),
        WriteOp::PutTemplate(template("tpl-a")),
        WriteOp::DeleteTemplate(TemplateId::new("tpl-old")),
        WriteOp::PutSummary(summary(SessionId(u64::MAX - 1))),
        WriteOp::PutOutbox(outbox("e-1", T0)),
        WriteOp::DeleteOutbox("e-2/crm".into()),
        WriteOp::PutAudit(engine::supervision::AuditEntry {
            id: 9,
            at: T0,
            by: engine::supervision::Actor::Admin("ops".into()),
            action: engine::supervision::AuditAction::SetPresence {
                agent: engine::ids::AgentId::new("li.na"),
                presence: engine::supervision::ForcedPresence::Offline,
            },
            reason: "left for the day".into(),
        }),
        WriteOp::PutAgentLog(engine::sla::report::AgentLogEntry {
            agent: engine::ids::AgentId::new("li.na"),
            at: T0,
            id: 10,
            kind: engine::sla::report::AgentLogKind::Activity {
                activity: engine::sla::AgentActivity::WrapUp,
            },
        }),
    ]
}

#[test]
fn platform_rows_map_both_ways() {
    let (ticket, created) = ticket("T-1", "c-1");
    let row = platform::ticket_row(&ticket).unwrap();
    assert_eq!(
        (
            row.ticket_id.as_str(),
            row.customer_id.as_str(),
            row.created_at
        ),
        ("T-1", "c-1", T0)
    );
    assert_eq!(platform::ticket_from_row("tickets", &row), Ok(ticket));

    let row = platform::ticket_event_row(&created).unwrap();
    assert_eq!((row.ticket_id.as_str(), row.seq), ("T-1", 1));
    assert_eq!(platform::ticket_event_from_row(&row), Ok(created));

    let row = platform::article_row(&article("kb-refund")).unwrap();
    assert_eq!(row.bucket, LIST_BUCKET);
    assert_eq!(platform::article_from_row(&row), Ok(article("kb-refund")));

    let row = platform::template_row(&template("tpl-a")).unwrap();
    assert_eq!(row.bucket, LIST_BUCKET);
    assert_eq!(platform::template_from_row(&row), Ok(template("tpl-a")));

    // Session ids past i64::MAX keep their order, as for `sessions`.
    let late = summary(SessionId(u64::MAX - 1));
    let row = platform::summary_row(&late).unwrap();
    assert!(row.session_id > 0);
    assert_eq!(platform::summary_from_row(&row), Ok(late));

    let mut entry = outbox("e-dead", T0 + 5);
    entry.failed("timeout".into(), T0, &RetryPolicy::default());
    entry.dead = true;
    let row = platform::outbox_row(&entry).unwrap();
    assert_eq!(
        (row.outbox_id.as_str(), row.next_attempt_at, row.dead),
        ("e-dead/crm", entry.next_attempt_at, true)
    );
    assert_eq!(row.bucket, outbox_bucket("e-dead/crm"));
    assert_eq!(platform::outbox_from_row(&row), Ok(entry));
}

#[test]
fn bad_records_name_table_key_and_column() {
    let (ticket, created) = ticket("T-1", "c-1");
    let mut row = platform::ticket_row(&ticket).unwrap();
    row.record = "{\"id\":".into();
    let err = platform::ticket_from_row("tickets_by_customer", &row).unwrap_err();
    let StoreError::Corrupt { what } = err else {
        panic!("expected Corrupt, got {err:?}");
    };
    assert!(
        what.starts_with("tickets_by_customer (ticket_id=\"T-1\"), column record: "),
        "{what}"
    );
    let mut row = platform::ticket_event_row(&created).unwrap();
    row.record = "[]".into();
    let err = platform::ticket_event_from_row(&row).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { what }
            if what.starts_with("ticket_events (ticket_id=\"T-1\", seq=1), column record: ")),
        "{err:?}"
    );
    let mut row = platform::summary_row(&summary(SessionId(9))).unwrap();
    row.record = "null".into();
    let err = platform::summary_from_row(&row).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { what }
            if what.starts_with("session_summaries (session_id=9), column record: ")),
        "{err:?}"
    );
    let mut row = platform::outbox_row(&outbox("e-1", T0)).unwrap();
    row.record = String::new();
    let err = platform::outbox_from_row(&row).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { what }
            if what.starts_with("webhook_outbox (outbox_id=\"e-1/crm\"), column record: ")),
        "{err:?}"
    );
}

#[test]
fn ticket_seq_past_bigint_is_refused() {
    let (_, mut created) = ticket("T-1", "c-1");
    created.seq = u64::MAX;
    assert_eq!(
        plan(&[WriteOp::AppendTicketEvent(created)]),
        Err(StoreError::Backend(format!(
            "scylla: ticket T-1 seq {} exceeds bigint",
            u64::MAX
        )))
    );
}

fn event_seqs(planned: &super::super::write::WritePlan, ticket: &str) -> Vec<i64> {
    planned.ticket_events[&TicketId::new(ticket)]
        .iter()
        .map(|row| row.seq)
        .collect()
}

#[test]
fn planning_ticket_events_catches_duplicates_inside_the_batch() {
    let (first, created) = ticket("T-1", "c-1");
    let (_, other_created) = ticket("T-2", "c-1");
    let mut second = created.clone();
    second.seq = 2;
    // The same seq on two tickets is fine; events keep batch order.
    let planned = plan(&[
        WriteOp::PutTicket(first.clone()),
        WriteOp::AppendTicketEvent(second.clone()),
        WriteOp::AppendTicketEvent(created.clone()),
        WriteOp::AppendTicketEvent(other_created),
    ])
    .unwrap();
    assert_eq!(event_seqs(&planned, "T-1"), [2, 1]);
    assert_eq!(event_seqs(&planned, "T-2"), [1]);
    assert!(planned.messages.is_empty() && planned.claims.is_empty());
    let row = platform::ticket_row(&first).unwrap();
    assert_eq!(
        planned.upserts,
        [
            Upsert::Platform(PlatformUpsert::TicketByCustomer(row.clone())),
            Upsert::Platform(PlatformUpsert::Ticket(row)),
        ]
    );

    // Twice in one batch fails the whole batch, wherever the two are.
    let mut changed = created.clone();
    changed.at += 1;
    let twice_in_a_row = vec![
        WriteOp::AppendTicketEvent(second.clone()),
        WriteOp::AppendTicketEvent(second),
    ];
    let apart = vec![
        WriteOp::AppendTicketEvent(created),
        WriteOp::PutTicket(first),
        WriteOp::PutArticle(article("kb-a")),
        WriteOp::AppendTicketEvent(changed),
    ];
    for (batch, seq) in [(twice_in_a_row, 2), (apart, 1)] {
        assert_eq!(
            plan(&batch),
            Err(StoreError::DuplicateTicketEvent {
                ticket: TicketId::new("T-1"),
                seq,
            })
        );
    }
}

#[test]
fn planning_keeps_the_later_op_per_key() {
    let (mut ticket_v1, _) = ticket("T-1", "c-1");
    ticket_v1.subject = "第一版".into();
    let (ticket_v2, _) = ticket("T-1", "c-1");
    let mut renamed = article("kb-a");
    renamed.title = "改名".into();
    let mut retried = outbox("e-1", T0);
    retried.failed("refused".into(), T0, &RetryPolicy::default());
    let planned = plan(&[
        WriteOp::PutTicket(ticket_v1),
        WriteOp::PutTicket(ticket_v2.clone()),
        // Put then delete: deleted. Delete then put: stored.
        WriteOp::PutArticle(article("kb-a")),
        WriteOp::DeleteArticle(ArticleId::new("kb-b")),
        WriteOp::PutArticle(article("kb-b")),
        WriteOp::PutArticle(renamed.clone()),
        WriteOp::PutTemplate(template("tpl-a")),
        WriteOp::DeleteTemplate(TemplateId::new("tpl-a")),
        WriteOp::PutSummary(summary(SessionId(3))),
        WriteOp::PutSummary({
            let mut later = summary(SessionId(3));
            later.outcome = Outcome::Unresolved;
            later
        }),
        WriteOp::PutOutbox(outbox("e-1", T0)),
        WriteOp::PutOutbox(retried.clone()),
        WriteOp::PutOutbox(outbox("e-2", T0)),
        WriteOp::DeleteOutbox("e-2/crm".into()),
    ])
    .unwrap();
    let mut later_summary = summary(SessionId(3));
    later_summary.outcome = Outcome::Unresolved;
    let ticket_row = platform::ticket_row(&ticket_v2).unwrap();
    let expected: Vec<Upsert> = [
        PlatformUpsert::TicketByCustomer(ticket_row.clone()),
        PlatformUpsert::Ticket(ticket_row),
        PlatformUpsert::Article(platform::article_row(&renamed).unwrap()),
        PlatformUpsert::Article(platform::article_row(&article("kb-b")).unwrap()),
        PlatformUpsert::DeletedTemplate(TemplateKey {
            bucket: LIST_BUCKET,
            template_id: "tpl-a".into(),
        }),
        PlatformUpsert::Summary(platform::summary_row(&later_summary).unwrap()),
        PlatformUpsert::Outbox(platform::outbox_row(&retried).unwrap()),
        PlatformUpsert::DeletedOutbox(OutboxKey {
            bucket: outbox_bucket("e-2/crm"),
            outbox_id: "e-2/crm".into(),
        }),
    ]
    .into_iter()
    .map(Upsert::Platform)
    .collect();
    assert_eq!(planned.upserts, expected);

    // A delete of a key never put is planned as is (a no-op on the server).
    let planned = plan(&[WriteOp::DeleteArticle(ArticleId::new("kb-never"))]).unwrap();
    assert_eq!(
        planned.upserts,
        [Upsert::Platform(PlatformUpsert::DeletedArticle(
            ArticleKey {
                bucket: LIST_BUCKET,
                article_id: "kb-never".into(),
            }
        ))]
    );
}

#[test]
fn outbox_buckets_are_stable_and_spread() {
    // Pinned: a different hash would strand every stored entry.
    for (id, bucket) in [
        ("e-1/crm", 1),
        ("e-2/crm", 0),
        ("e-3/crm", 3),
        ("e-4/crm", 2),
        ("工单/crm", 2),
        ("", 1),
    ] {
        assert_eq!(outbox_bucket(id), bucket, "{id}");
    }
    let used: BTreeSet<i32> = (0..100)
        .map(|i| outbox_bucket(&format!("e-{i}/crm")))
        .collect();
    assert_eq!(used, (0..OUTBOX_BUCKETS).collect());
}

#[test]
fn outbox_due_is_not_dead_due_soonest_then_by_id() {
    let row = |event: &str, due: Millis, dead: bool| {
        let mut entry = outbox(event, due);
        entry.dead = dead;
        platform::outbox_row(&entry).unwrap()
    };
    let all = vec![
        row("e-late", T0 + 5_000, false),
        row("e-b", T0 + 1_000, false),
        row("e-dead", T0, true),
        row("e-a", T0 + 1_000, false),
        row("e-first", T0, false),
    ];
    let ids = |rows: Vec<platform::OutboxRow>| {
        rows.into_iter()
            .map(|row| row.outbox_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(due_rows(all.clone(), T0 + 1_000, 10)),
        ["e-first/crm", "e-a/crm", "e-b/crm"]
    );
    assert_eq!(
        ids(due_rows(all.clone(), T0 + 1_000, 2)),
        ["e-first/crm", "e-a/crm"]
    );
    assert!(due_rows(all.clone(), T0 - 1, 10).is_empty());
    assert!(due_rows(all, T0 + 9_000, 0).is_empty());
}

#[test]
fn a_ticket_event_append_not_applied_names_the_taken_seq() {
    let event_row = |seq: i64| TicketEventRow {
        ticket_id: "T-1".into(),
        seq,
        record: format!("{{\"seq\":{seq}}}"),
    };
    let ours = [event_row(3), event_row(2), event_row(4)];
    let check = |stored: &[i64], expected: Option<u64>| {
        assert_eq!(taken_seq(&ours, stored), expected, "{stored:?}");
    };
    // The first taken one in batch order, whatever the stored event holds:
    // an identical event stored earlier is a duplicate too.
    check(&[2, 3, 4], Some(3));
    check(&[2, 4], Some(2));
    check(&[4], Some(4));
    // The row in the way was taken back meanwhile.
    check(&[], None);
}
