use super::*;

const T0: Millis = 1_764_000_000_000;

fn agent(id: &str) -> Sender {
    Sender::Agent(AgentId::new(id))
}

fn opened() -> Ticket {
    let new = NewTicket {
        subject: " 订单未发货 ".into(),
        description: "客户的订单已经一周没有发货".into(),
        tags: vec!["物流".into()],
        session: Some(SessionId(7)),
        ..NewTicket::default()
    };
    let (ticket, created) = Ticket::open(
        TicketId::new("T-1"),
        CustomerId::new("c-1"),
        new,
        agent("li.na"),
        T0,
    )
    .unwrap();
    assert_eq!(created.seq, 1);
    assert_eq!(
        created.change,
        TicketChange::Created {
            subject: "订单未发货".into()
        }
    );
    ticket
}

#[test]
fn open_validates_and_defaults() {
    let ticket = opened();
    assert_eq!(ticket.subject, "订单未发货");
    assert_eq!(ticket.status, TicketStatus::Open);
    assert_eq!(ticket.priority, Priority::Normal);
    assert_eq!(ticket.sessions, vec![SessionId(7)]);
    assert_eq!(ticket.last_seq, 1);

    let empty = NewTicket::default();
    let err = Ticket::open(
        TicketId::new("T-2"),
        CustomerId::new("c"),
        empty,
        Sender::Customer,
        T0,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "invalid `subject`: must not be empty");
}

#[test]
fn each_change_is_one_event_numbered_after_the_last() {
    let mut ticket = opened();
    let update = TicketUpdate {
        status: Some(TicketStatus::Pending),
        priority: Some(Priority::High),
        assignee: Some(Some(AgentId::new("chen.jie"))),
        comment: Some("已联系仓库".into()),
        ..TicketUpdate::default()
    };
    let events = ticket.apply(update, agent("li.na"), T0 + 5).unwrap();
    let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, vec![2, 3, 4, 5]);
    assert_eq!(
        events[0].change,
        TicketChange::Status {
            from: TicketStatus::Open,
            to: TicketStatus::Pending
        }
    );
    assert_eq!(ticket.status, TicketStatus::Pending);
    assert_eq!(ticket.assignee, Some(AgentId::new("chen.jie")));
    assert_eq!((ticket.last_seq, ticket.updated_at), (5, T0 + 5));

    // Setting what is already there changes nothing.
    let same = TicketUpdate {
        status: Some(TicketStatus::Pending),
        link_session: Some(SessionId(7)),
        ..TicketUpdate::default()
    };
    assert!(
        ticket
            .apply(same, agent("li.na"), T0 + 9)
            .unwrap()
            .is_empty()
    );
    assert_eq!(ticket.updated_at, T0 + 5);
}

#[test]
fn a_bad_field_changes_nothing() {
    let mut ticket = opened();
    let before = ticket.clone();
    let update = TicketUpdate {
        status: Some(TicketStatus::Solved),
        tags: Some(vec!["x".repeat(MAX_TAG_CHARS + 1)]),
        ..TicketUpdate::default()
    };
    let err = ticket.apply(update, agent("li.na"), T0).unwrap_err();
    assert!(err.to_string().starts_with("invalid `tags`"), "{err}");
    assert_eq!(ticket, before);
}

#[test]
fn closed_tickets_do_not_change() {
    let mut ticket = opened();
    let close = TicketUpdate {
        status: Some(TicketStatus::Closed),
        ..TicketUpdate::default()
    };
    ticket.apply(close, agent("li.na"), T0).unwrap();
    let comment = TicketUpdate {
        comment: Some("再看看".into()),
        ..TicketUpdate::default()
    };
    let err = ticket.apply(comment, agent("li.na"), T0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `status`: ticket T-1 is closed and cannot change"
    );
}

#[test]
fn customers_may_comment_reopen_and_close_only() {
    let mut ticket = opened();
    let check = |ticket: &Ticket, update: TicketUpdate, expected: Result<(), &str>| {
        let got = update
            .check_customer_may(ticket)
            .map_err(|err| err.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "{update:?}");
    };
    let status = |status| TicketUpdate {
        status: Some(status),
        ..TicketUpdate::default()
    };
    check(
        &ticket,
        TicketUpdate {
            comment: Some("还没收到".into()),
            ..TicketUpdate::default()
        },
        Ok(()),
    );
    check(&ticket, status(TicketStatus::Closed), Ok(()));
    check(
        &ticket,
        status(TicketStatus::Solved),
        Err(
            "invalid `status`: a customer may reopen a solved ticket or close one, not move it from open to solved",
        ),
    );
    check(
        &ticket,
        TicketUpdate {
            priority: Some(Priority::Urgent),
            ..TicketUpdate::default()
        },
        Err("invalid `priority`: customers may only comment on, reopen or close their tickets"),
    );
    ticket.status = TicketStatus::Solved;
    check(&ticket, status(TicketStatus::Open), Ok(()));
}

#[test]
fn tickets_and_events_serialize_with_wire_names() {
    let ticket = opened();
    let json = serde_json::to_value(&ticket).unwrap();
    assert_eq!(json["status"], "open");
    assert_eq!(json["priority"], "normal");
    let back: Ticket = serde_json::from_value(json).unwrap();
    assert_eq!(back, ticket);
    let event = TicketEvent {
        ticket_id: ticket.id.clone(),
        seq: 2,
        at: T0,
        author: Sender::Customer,
        change: TicketChange::Status {
            from: TicketStatus::Solved,
            to: TicketStatus::Open,
        },
    };
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["change"]["kind"], "status");
    assert_eq!(json["change"]["to"], "open");
}
