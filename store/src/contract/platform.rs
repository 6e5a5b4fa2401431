//! Contract cases: tickets and their history, articles, templates, session
//! summaries and the webhook outbox.

use super::*;
use engine::assist::ReplyTemplate;
use engine::ids::{ArticleId, TemplateId, TicketId};
use engine::kb::Article;
use engine::outbox::OutboxEntry;
use engine::summary::{Outcome, SessionSummary};
use engine::ticket::{
    NewTicket, Priority, Ticket, TicketChange, TicketEvent, TicketStatus, TicketUpdate,
};

fn ticket(id: &str, customer: &str, created: Millis) -> (Ticket, TicketEvent) {
    let new = NewTicket {
        subject: format!("订单问题 {id}"),
        description: "包裹破损，需要换货".into(),
        tags: vec!["物流".into()],
        session: Some(SessionId(u64::MAX - 3)),
        ..NewTicket::default()
    };
    let author = Sender::Agent(AgentId::new("li.na"));
    Ticket::open(
        TicketId::new(id),
        CustomerId::new(customer),
        new,
        author,
        created,
    )
    .expect("valid ticket")
}

/// A ticket and its events round-trip; tickets list newest first per customer.
pub async fn tickets_round_trip_newest_first(store: &dyn Store) {
    let (mut first, created) = ticket("T-1", "c-1", T0);
    let (second, second_created) = ticket("T-2", "c-1", T0 + SECOND);
    let (other, other_created) = ticket("T-3", "c-2", T0 + 2 * SECOND);
    write(
        store,
        vec![
            WriteOp::PutTicket(first.clone()),
            WriteOp::AppendTicketEvent(created.clone()),
            WriteOp::PutTicket(second.clone()),
            WriteOp::AppendTicketEvent(second_created),
            WriteOp::PutTicket(other),
            WriteOp::AppendTicketEvent(other_created),
        ],
    )
    .await;
    let update = TicketUpdate {
        status: Some(TicketStatus::Solved),
        priority: Some(Priority::Urgent),
        assignee: Some(Some(AgentId::new("chen.jie"))),
        ..TicketUpdate::default()
    };
    let events = first
        .apply(
            update,
            Sender::Agent(AgentId::new("li.na")),
            T0 + 9 * SECOND,
        )
        .unwrap();
    let mut batch = vec![WriteOp::PutTicket(first.clone())];
    batch.extend(events.iter().cloned().map(WriteOp::AppendTicketEvent));
    write(store, batch).await;

    assert_eq!(
        store.get_ticket(&first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.get_ticket(&TicketId::new("T-404")).await.unwrap(),
        None
    );
    let mine: Vec<TicketId> = store
        .tickets_of_customer(&CustomerId::new("c-1"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(mine, vec![second.id.clone(), first.id.clone()]);
    assert_eq!(
        store
            .tickets_of_customer(&CustomerId::new("c-1"), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .tickets_of_customer(&CustomerId::new("nobody"), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let history = store.ticket_events(&first.id, 0, 100).await.unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[0], created);
    assert_eq!(history[1..], events[..]);
    let after = store.ticket_events(&first.id, 2, 1).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, 3);
    assert!(matches!(after[0].change, TicketChange::Priority { .. }));
}

/// A ticket event whose seq is stored already fails its whole batch.
pub async fn duplicate_ticket_event_fails_the_batch(store: &dyn Store) {
    let (first, created) = ticket("T-9", "c-1", T0);
    write(
        store,
        vec![
            WriteOp::PutTicket(first.clone()),
            WriteOp::AppendTicketEvent(created.clone()),
        ],
    )
    .await;
    let mut changed = first.clone();
    changed.subject = "不该写入".into();
    let err = store
        .write(&[
            WriteOp::PutTicket(changed),
            WriteOp::AppendTicketEvent(created.clone()),
        ])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::DuplicateTicketEvent {
            ticket: first.id.clone(),
            seq: 1
        }
    );
    assert_eq!(
        store.get_ticket(&first.id).await.unwrap(),
        Some(first.clone())
    );
    // Twice in one batch fails too.
    let mut again = created.clone();
    again.seq = 2;
    let err = store
        .write(&[
            WriteOp::AppendTicketEvent(again.clone()),
            WriteOp::AppendTicketEvent(again),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateTicketEvent { seq: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        store.ticket_events(&first.id, 0, 10).await.unwrap().len(),
        1
    );
}

/// Articles and templates: put, replace, delete, listed by id.
pub async fn articles_and_templates_round_trip(store: &dyn Store) {
    let article = |id: &str, title: &str| Article {
        id: ArticleId::new(id),
        language: "zh-CN".into(),
        title: title.into(),
        body: "退款审核通过后原路退回，一般1到7个工作日到账。".into(),
        tags: vec!["退款".into()],
        updated_at: T0,
    };
    let template = |id: &str| ReplyTemplate {
        id: TemplateId::new(id),
        language: "zh-CN".into(),
        title: "订单延迟安抚".into(),
        body: "您的订单因物流原因延迟,预计3天内送达,我们已为您优先处理。".into(),
        triggers: vec!["订单延迟".into()],
        updated_at: T0,
    };
    let refund = article("kb-refund", "退款多久到账");
    write(
        store,
        vec![
            WriteOp::PutArticle(article("kb-zz", "最后")),
            WriteOp::PutArticle(refund.clone()),
            WriteOp::PutTemplate(template("tpl-b")),
            WriteOp::PutTemplate(template("tpl-a")),
        ],
    )
    .await;
    let mut renamed = refund.clone();
    renamed.title = "退款到账时间".into();
    write(
        store,
        vec![
            WriteOp::PutArticle(renamed.clone()),
            WriteOp::DeleteArticle(ArticleId::new("kb-zz")),
            WriteOp::DeleteArticle(ArticleId::new("kb-never")),
            WriteOp::DeleteTemplate(TemplateId::new("tpl-b")),
        ],
    )
    .await;
    assert_eq!(store.list_articles().await.unwrap(), vec![renamed]);
    assert_eq!(
        store.list_templates().await.unwrap(),
        vec![template("tpl-a")]
    );
}

/// A summary is stored per session and replaced by a later one.
pub async fn summaries_round_trip(store: &dyn Store) {
    let id = SessionIdGen::new(1).next(T0);
    let mut summary = SessionSummary {
        session_id: id,
        customer_id: CustomerId::new("c-1"),
        key_sentences: vec!["我的订单还没发货。".into()],
        topics: vec!["delivery".into()],
        outcome: Outcome::Resolved,
        summarizer: "extractive-v1".into(),
        created_at: T0,
    };
    write(store, vec![WriteOp::PutSummary(summary.clone())]).await;
    assert_eq!(store.get_summary(id).await.unwrap(), Some(summary.clone()));
    summary.outcome = Outcome::Unresolved;
    write(store, vec![WriteOp::PutSummary(summary.clone())]).await;
    assert_eq!(store.get_summary(id).await.unwrap(), Some(summary));
    assert_eq!(store.get_summary(SessionId(1)).await.unwrap(), None);
}

/// Due entries soonest first; dead and future ones are not due; delivered ones go.
pub async fn outbox_due_in_order(store: &dyn Store) {
    let entry = |event: &str, due: Millis| {
        let mut entry = OutboxEntry::new(
            event,
            "crm",
            "ticket.updated",
            format!("{{\"event\":\"{event}\"}}"),
            T0,
        );
        entry.next_attempt_at = due;
        entry
    };
    let mut dead = entry("e-dead", T0);
    dead.dead = true;
    write(
        store,
        vec![
            WriteOp::PutOutbox(entry("e-late", T0 + 5 * SECOND)),
            WriteOp::PutOutbox(entry("e-b", T0 + SECOND)),
            WriteOp::PutOutbox(entry("e-a", T0 + SECOND)),
            WriteOp::PutOutbox(entry("e-first", T0)),
            WriteOp::PutOutbox(dead),
        ],
    )
    .await;
    let due_ids =
        |entries: Vec<OutboxEntry>| entries.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
    let due = store.outbox_due(T0 + SECOND, 10).await.unwrap();
    assert_eq!(due[0], entry("e-first", T0));
    assert_eq!(due_ids(due), vec!["e-first", "e-a", "e-b"]);
    assert_eq!(
        due_ids(store.outbox_due(T0 + SECOND, 2).await.unwrap()),
        vec!["e-first", "e-a"]
    );

    let mut retried = entry("e-first", T0);
    retried.failed(
        "connection refused".into(),
        T0,
        &engine::outbox::RetryPolicy::default(),
    );
    write(
        store,
        vec![
            WriteOp::PutOutbox(retried),
            WriteOp::DeleteOutbox("e-a/crm".into()),
        ],
    )
    .await;
    assert_eq!(
        due_ids(store.outbox_due(T0 + SECOND, 10).await.unwrap()),
        vec!["e-b", "e-first"]
    );
    assert_eq!(
        due_ids(store.outbox_due(T0 + 10 * SECOND, 10).await.unwrap()),
        vec!["e-b", "e-first", "e-late"]
    );
}

/// Audit entries newest first within `[since, until)`, across days, bounded
/// by `limit`; the same entry written twice is stored once.
pub async fn audit_log_newest_first_across_days(store: &dyn Store) {
    use engine::supervision::{Actor, AuditAction, AuditEntry, ForcedPresence, Steer};
    let entry = |id: u64, at: Millis| AuditEntry {
        id,
        at,
        by: Actor::Supervisor(AgentId::new("li.na")),
        action: match id % 2 {
            0 => AuditAction::SetPresence {
                agent: AgentId::new("chen.jie"),
                presence: ForcedPresence::Away,
            },
            _ => AuditAction::SteerSession {
                session: SessionId(u64::MAX - id),
                group: Some(GroupId::new("general")),
                steer: Steer::Reprioritised { from: 0, to: 5 },
            },
        },
        reason: format!("原因 {id}"),
    };
    let ids = |entries: Vec<AuditEntry>| entries.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let written = [
        entry(1, T0 - DAY),
        entry(2, T0),
        entry(3, T0),
        entry(4, T0 + SECOND),
        entry(5, T0 + 2 * DAY),
    ];
    write(
        store,
        written.iter().cloned().map(WriteOp::PutAudit).collect(),
    )
    .await;
    // A retried write of the same entry.
    write(store, vec![WriteOp::PutAudit(entry(4, T0 + SECOND))]).await;

    let all = store.audit_log(0, T0 + 3 * DAY, 100).await.unwrap();
    assert_eq!(all[0], written[4]);
    assert_eq!(ids(all), vec![5, 4, 3, 2, 1]);
    assert_eq!(
        ids(store.audit_log(T0, T0 + DAY, 100).await.unwrap()),
        vec![4, 3, 2],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        ids(store.audit_log(T0 - DAY, T0 + 3 * DAY, 3).await.unwrap()),
        vec![5, 4, 3]
    );
    assert!(store.audit_log(T0, T0, 10).await.unwrap().is_empty());
    assert!(store.audit_log(T0 + DAY, T0, 10).await.unwrap().is_empty());
}
