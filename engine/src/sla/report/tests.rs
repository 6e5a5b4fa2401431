//! The reports over a scripted hour whose figures are counted by hand.
use super::*;
use crate::ids::{CustomerId, SessionId};
use crate::session::{RouteStep, SessionTimes};

/// 2026-12-06T00:00:00Z.
const T0: Millis = 1_796_515_200_000;
const MIN: Millis = 60_000;
const SEC: Millis = 1_000;

fn window() -> ReportWindow {
    ReportWindow::new(T0, T0 + 60 * MIN, 15).unwrap()
}

fn groups() -> Vec<SkillGroup> {
    // 30 s threshold, 80 % target, short abandon below 5 s.
    vec![SkillGroup::new("support", "Support"), {
        let mut sales = SkillGroup::new("sales", "Sales");
        sales.sla_target_pct = 90.0;
        sales
    }]
}

struct Contact<'a> {
    group: &'a str,
    channel: Channel,
    queued: Millis,
    /// Offsets from `queued`.
    answered: Option<Millis>,
    first_response: Option<Millis>,
    closed: Option<Millis>,
    agent: Option<&'a str>,
    route: &'a [(&'a str, u32, &'a str)],
}

fn session(id: u64, c: Contact<'_>) -> Session {
    let mut session = Session::new(
        SessionId(id),
        CustomerId::new("c"),
        c.channel,
        c.queued - SEC,
    );
    session.group = Some(GroupId::new(c.group));
    session.sla_group = Some(GroupId::new(c.group));
    session.agent = c.agent.map(AgentId::new);
    session.state = match (c.answered, c.closed) {
        (Some(_), Some(_)) => SessionState::Closed,
        (Some(_), None) => SessionState::Assigned,
        (None, Some(_)) => SessionState::Abandoned,
        (None, None) => SessionState::Queued,
    };
    let at = |offset: Option<Millis>| offset.map(|o| c.queued + o);
    session.times = SessionTimes {
        queued: Some(c.queued),
        answered: at(c.answered),
        first_response: at(c.first_response),
        closed: at(c.closed),
        ..session.times
    };
    session.route = c
        .route
        .iter()
        .map(|&(rule, step, group)| RouteStep {
            rule: rule.into(),
            step,
            group: GroupId::new(group),
        })
        .collect();
    session
}

fn base(group: &str, channel: Channel, queued: Millis) -> Contact<'_> {
    Contact {
        group,
        channel,
        queued,
        answered: None,
        first_response: None,
        closed: None,
        agent: None,
        route: &[],
    }
}

/// The scripted hour: what each contact did, and (in the comments) where
/// it counts.
fn hour() -> Vec<Session> {
    vec![
        // 00:01 support/web, answered in 10 s by a, first reply 5 s later,
        // closed a minute after the answer: interval 0, within.
        session(
            1,
            Contact {
                answered: Some(10 * SEC),
                first_response: Some(15 * SEC),
                closed: Some(70 * SEC),
                agent: Some("a"),
                route: &[("vip", 0, "support")],
                ..base("support", Channel::Web, T0 + MIN)
            },
        ),
        // 00:02 support/web, answered after 35 s by b (late), still open
        // with b; moved by a supervisor before the answer.
        session(
            2,
            Contact {
                answered: Some(35 * SEC),
                agent: Some("b"),
                route: &[("default", 0, "support"), ("direct", 0, "support")],
                ..base("support", Channel::Web, T0 + 2 * MIN)
            },
        ),
        // 00:03 support/app, left after 3 s: a short abandon.
        session(
            3,
            Contact {
                closed: Some(3 * SEC),
                ..base("support", Channel::App, T0 + 3 * MIN)
            },
        ),
        // 00:20 support/web, left after 40 s: interval 1.
        session(
            4,
            Contact {
                closed: Some(40 * SEC),
                route: &[("vip", 0, "support")],
                ..base("support", Channel::Web, T0 + 20 * MIN)
            },
        ),
        // 00:16 sales/web, overflowed from support, answered in 20 s by a.
        session(
            5,
            Contact {
                answered: Some(20 * SEC),
                agent: Some("a"),
                route: &[("vip", 0, "support"), ("vip", 1, "sales")],
                ..base("sales", Channel::Web, T0 + 16 * MIN)
            },
        ),
        // 00:50 support/web, still waiting: interval 3, open.
        session(
            6,
            Contact {
                route: &[("vip", 0, "support")],
                ..base("support", Channel::Web, T0 + 50 * MIN)
            },
        ),
        // Queued before the window and exactly at its end: not counted.
        session(
            7,
            Contact {
                answered: Some(SEC),
                agent: Some("a"),
                ..base("support", Channel::Web, T0 - SEC)
            },
        ),
        session(8, base("support", Channel::Web, T0 + 60 * MIN)),
    ]
}

#[test]
fn a_window_is_checked_and_cut_into_intervals_from_its_start() {
    let w = ReportWindow::new(T0 + 7 * MIN, T0 + 7 * MIN + 100 * MIN, 30).unwrap();
    assert_eq!(w.n_intervals(), 4);
    assert_eq!(w.interval(3), (T0 + 97 * MIN, T0 + 107 * MIN));
    assert_eq!(w.interval_of(T0 + 7 * MIN), Some(0));
    assert_eq!(w.interval_of(T0 + 37 * MIN), Some(1));
    assert_eq!(w.interval_of(T0 + 107 * MIN), None);
    assert_eq!(w.interval_of(T0 + 7 * MIN - 1), None);
    for (from, to, minutes, field, words) in [
        (T0, T0, 15, "to", "not after"),
        (-1, T0, 15, "from", "before 1970"),
        (T0, T0 + 32 * DAY_MS, 60, "to", "at most 31"),
        (T0, T0 + MIN, 20, "interval", "15, 30 or 60"),
    ] {
        let err = ReportWindow::new(from, to, minutes).unwrap_err();
        assert!(
            matches!(&err, EngineError::Invalid { field: f, reason } if *f == field && reason.contains(words)),
            "{err}"
        );
    }
    assert!(ReportWindow::new(T0, T0 + MAX_WINDOW_MS, 60).is_ok());
}

#[test]
fn the_interval_report_counts_each_contact_in_the_interval_and_group_it_queued_in() {
    let mut builder = IntervalReportBuilder::new(window(), &groups());
    for session in hour() {
        builder.add(&session);
    }
    let report = builder.finish();
    let csv = report.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "interval_start,interval_end,group,channel,offered,answered,answered_within,abandoned,short_abandoned,service_level_pct,target_pct,asa_secs,aht_secs,longest_wait_secs,abandonment_pct",
            // Interval 0: sales had nothing yet, but has a row (it had
            // contacts later in the window).
            "2026-12-06T00:00:00Z,2026-12-06T00:15:00Z,sales,all,0,0,0,0,0,,90,,,,",
            // 1 within of 2 answered; the short abandon is left out of the
            // service level but counts as abandoned.
            "2026-12-06T00:00:00Z,2026-12-06T00:15:00Z,support,all,3,2,1,1,1,50.00,80,22.500,60.000,35.000,33.33",
            "2026-12-06T00:00:00Z,2026-12-06T00:15:00Z,support,web,2,2,1,0,0,50.00,80,22.500,60.000,35.000,0.00",
            "2026-12-06T00:00:00Z,2026-12-06T00:15:00Z,support,app,1,0,0,1,1,,80,,,3.000,100.00",
            "2026-12-06T00:15:00Z,2026-12-06T00:30:00Z,sales,all,1,1,1,0,0,100.00,90,20.000,,20.000,0.00",
            "2026-12-06T00:15:00Z,2026-12-06T00:30:00Z,sales,web,1,1,1,0,0,100.00,90,20.000,,20.000,0.00",
            "2026-12-06T00:15:00Z,2026-12-06T00:30:00Z,support,all,1,0,0,1,0,0.00,80,,,40.000,100.00",
            "2026-12-06T00:15:00Z,2026-12-06T00:30:00Z,support,web,1,0,0,1,0,0.00,80,,,40.000,100.00",
            "2026-12-06T00:30:00Z,2026-12-06T00:45:00Z,sales,all,0,0,0,0,0,,90,,,,",
            "2026-12-06T00:30:00Z,2026-12-06T00:45:00Z,support,all,0,0,0,0,0,,80,,,,",
            "2026-12-06T00:45:00Z,2026-12-06T01:00:00Z,sales,all,0,0,0,0,0,,90,,,,",
            // Still waiting: offered and open, no longest wait yet.
            "2026-12-06T00:45:00Z,2026-12-06T01:00:00Z,support,all,1,0,0,0,0,,80,,,,0.00",
            "2026-12-06T00:45:00Z,2026-12-06T01:00:00Z,support,web,1,0,0,0,0,,80,,,,0.00",
        ]
    );
    assert!(csv.ends_with("\r\n"));
    // The JSON rows carry the same figures.
    let row = &report.rows[1];
    assert_eq!(
        (
            row.group.as_str(),
            row.channel.as_ref(),
            row.figures.n_entered
        ),
        ("support", None, 3)
    );
}

#[test]
fn the_agent_report_counts_contacts_and_time_in_each_activity_until_now() {
    let now = T0 + 40 * MIN;
    let mut builder = AgentReportBuilder::new(window(), now, &groups());
    builder.include(&AgentId::new("c"));
    for session in hour() {
        builder.add_session(&session);
    }
    let log = |agent: &str, at: Millis, id: u64, activity| AgentLogEntry {
        agent: AgentId::new(agent),
        at,
        id,
        kind: AgentLogKind::Activity { activity },
    };
    // a was available before the window; took the 00:01 contact at 00:01:10,
    // wrapped up from 00:02:10 to 00:02:40, logged off at 00:30.
    builder.set_initial(&log("a", T0 - 5 * MIN, 1, AgentActivity::AvailableIdle));
    for entry in [
        log(
            "a",
            T0 + 2 * MIN + 40 * SEC,
            4,
            AgentActivity::AvailableIdle,
        ),
        log("a", T0 + MIN + 10 * SEC, 2, AgentActivity::OnContact),
        log("a", T0 + 2 * MIN + 10 * SEC, 3, AgentActivity::WrapUp),
        log("a", T0 + 30 * MIN, 5, AgentActivity::Offline),
        // After the window: ignored.
        log("a", T0 + 60 * MIN, 6, AgentActivity::AvailableIdle),
    ] {
        builder.add_log(&entry);
    }
    // Usage entries count per agent and change no time.
    for (id, action, panel) in [
        (7, UsageAction::SuggestionInserted, None),
        (8, UsageAction::SuggestionInserted, None),
        (9, UsageAction::PanelUsed, Some(DeskPanel::Kb)),
    ] {
        builder.add_log(&AgentLogEntry {
            agent: AgentId::new("a"),
            at: T0 + 5 * MIN,
            id,
            kind: AgentLogKind::Usage {
                action,
                panel,
                layout: Role::Expert,
            },
        });
    }
    let report = builder.finish();
    assert_eq!(report.counted_until, now);
    let lines: Vec<String> = report.to_csv().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            format!("agent,answered,answered_within,handled,aht_secs,first_response_mean_secs,first_response_p90_secs,on_contact_secs,available_idle_secs,away_secs,wrap_up_secs,offline_secs,occupancy_pct,{}", usage::usage_columns().join(",")),
            // 70 s + 27 min 20 s available, 60 s on contact, 30 s wrap-up,
            // 10 min offline: occupancy 90 / 1,730 s; two suggestions
            // inserted, the knowledge-base panel used once.
            "a,2,2,1,60.000,5.000,5.000,60.000,1710.000,0.000,30.000,600.000,5.00,2,0,0,0,0,0,1,0,0,0,0,0".to_owned(),
            // Nothing logged: offline the whole time counted.
            format!("b,1,0,0,,,,0.000,0.000,0.000,0.000,2400.000,{}", ",0".repeat(12)),
            format!("c,0,0,0,,,,0.000,0.000,0.000,0.000,2400.000,{}", ",0".repeat(12)),
        ]
    );
}

#[test]
fn the_route_report_says_where_each_step_sent_its_contacts() {
    let mut builder = RouteReportBuilder::new(window());
    for session in hour() {
        builder.add(&session);
    }
    let report = builder.finish();
    assert_eq!(report.n_without_route, 1, "the short abandon has no route");
    let lines: Vec<String> = report.to_csv().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "rule,step,group,entered,answered,abandoned,open,overflowed,moved",
            "default,1,support,1,0,0,0,0,1",
            "direct,1,support,1,1,0,0,0,0",
            "vip,1,support,4,1,1,1,1,0",
            "vip,2,sales,1,1,0,0,0,0",
        ]
    );
}

#[test]
fn csv_fields_with_commas_or_quotes_are_quoted() {
    let mut csv = String::new();
    push_csv_line(
        &mut csv,
        &[
            "plain".into(),
            "a,b".into(),
            "say \"hi\"".into(),
            "x\ny".into(),
        ],
    );
    assert_eq!(csv, "plain,\"a,b\",\"say \"\"hi\"\"\",\"x\ny\"\r\n");
    let mut csv = String::new();
    push_csv_line(
        &mut csv,
        &[
            "=HYPERLINK(\"x\")".into(),
            "@sum".into(),
            "-5".into(),
            "-x".into(),
            "+1.5".into(),
        ],
    );
    assert_eq!(
        csv, "\"'=HYPERLINK(\"\"x\"\")\",'@sum,-5,'-x,+1.5\r\n",
        "formulas neutralised, numbers kept"
    );
}

#[test]
fn the_usage_report_counts_actions_per_layout_and_offer_to_first_reply() {
    let roles = [("a", Role::Expert), ("b", Role::Junior)]
        .into_iter()
        .map(|(id, role)| (AgentId::new(id), role))
        .collect();
    let mut builder = UsageReportBuilder::new(window(), roles);
    let mut sessions = hour();
    // First offers: 2 s after queueing for the first contact (replied at
    // 15 s: 13 s), the VIP's at 18 s (no reply).
    sessions[0].times.offered = Some(sessions[0].times.queued.unwrap() + 2 * SEC);
    sessions[4].times.offered = Some(sessions[4].times.queued.unwrap() + 18 * SEC);
    for session in &sessions {
        builder.add_session(session);
    }
    let usage = |id, agent: &str, action, panel, layout| AgentLogEntry {
        agent: AgentId::new(agent),
        at: T0 + 10 * MIN,
        id,
        kind: AgentLogKind::Usage {
            action,
            panel,
            layout,
        },
    };
    for entry in [
        usage(1, "a", UsageAction::KbArticleInserted, None, Role::Expert),
        usage(
            2,
            "a",
            UsageAction::PanelUsed,
            Some(DeskPanel::Customer),
            Role::Expert,
        ),
        usage(3, "c", UsageAction::TicketCreated, None, Role::Junior),
        usage(4, "c", UsageAction::Transfer, None, Role::Junior),
        // An activity entry is not usage.
        AgentLogEntry {
            agent: AgentId::new("c"),
            at: T0 + 10 * MIN,
            id: 5,
            kind: AgentLogKind::Activity {
                activity: AgentActivity::Away,
            },
        },
    ] {
        builder.add_log(&entry);
    }
    let report = builder.finish();
    let lines: Vec<String> = report.to_csv().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            format!(
                "layout,agents,answered,offer_to_first_reply_mean_secs,offer_to_first_reply_p90_secs,{}",
                usage::usage_columns().join(",")
            ),
            // b answered one (no reply); c created a ticket and transferred.
            "junior,2,1,,,0,0,1,1,0,0,0,0,0,0,0,0".to_owned(),
            // a answered two; one replied 13 s after the offer; the
            // session queued before the window is not counted.
            "expert,1,2,13.000,13.000,0,1,0,0,1,0,0,0,0,0,0,0".to_owned(),
        ]
    );
}

#[test]
fn usage_names_round_trip() {
    for action in UsageAction::ALL {
        assert_eq!(UsageAction::parse(action.as_str()), Some(action));
    }
    for panel in DeskPanel::ALL {
        assert_eq!(DeskPanel::parse(panel.as_str()), Some(panel));
    }
    assert_eq!(UsageAction::parse("typed"), None);
    assert_eq!(
        usage_key(UsageAction::PanelUsed, Some(DeskPanel::Kb)),
        "panel_used:kb"
    );
}
