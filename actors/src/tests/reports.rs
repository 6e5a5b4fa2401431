//! The historical reports over a scripted day through the real actors and
//! store, against figures counted by hand (docs/reports.md).

use engine::agent::Role;
use engine::sla::report::{ReportWindow, UsageAction};

use super::*;
use crate::ReportScope;

const MIN: u64 = 60;
const HOUR: u64 = 60 * MIN;

/// One day on a paused clock, every step at a known second of it: groups
/// default (threshold 30 s, short abandon under 5 s) and gold_service;
/// ann and bob in default, gina in gold_service (never in).
///
/// | time | what | counts in default |
/// |---|---|---|
/// | 08:00 | ann available | |
/// | 09:10:00 | c1 (web) queues, offered to ann | 09: offered |
/// | 09:10:10 | ann accepts (10 s), replies at :20, closes 09:20:10 | answered within |
/// | 09:30 | ann away | |
/// | 09:40:00 | c2 (web) queues | 09: offered |
/// | 09:40:40 | ann available, offered c2, accepts at :45 (45 s), closes 09:50:45 | answered late |
/// | 10:30:00 | c3 (web) queues, leaves after 3 s | 10: short abandon |
/// | 10:45 | ann away until 11:45 | |
/// | 11:00:00 | c4 (web) queues, leaves after 60 s | 11: abandon |
/// | 13:00 | bob available; 14:00 ann away until 16:00 | |
/// | 14:15:00 | the VIP (wechat) queues in gold_service, overflows to default at :30, offered to bob | 14: offered |
/// | 14:15:40 | bob accepts (40 s from the first queue), replies at 14:16:00, closes 14:30:40 | answered late |
/// | 18:00 | ann and bob offline | |
/// | 23:50:00 | c5 (web) queues, nobody there | 23: open |
#[tokio::test(start_paused = true)]
async fn the_reports_of_a_scripted_day_give_the_figures_counted_by_hand() {
    let store = Arc::new(MemoryStore::new());
    let board = start(store.clone(), config()).await;
    let day_start = tokio::time::Instant::now();
    let from = crate::clock::now();
    let at = |secs: u64| tokio::time::sleep_until(day_start + Duration::from_secs(secs));
    let hm = |h: u64, m: u64, s: u64| h * HOUR + m * MIN + s;
    let mut ann_events = board.subscribe_agent(&id("ann"));
    let mut bob_events = board.subscribe_agent(&id("bob"));
    let presence = |agent: &'static str, request: PresenceRequest| {
        let board = &board;
        async move { board.set_presence(&id(agent), request).await.unwrap() }
    };
    let away = || PresenceRequest::Away {
        reason: "break".into(),
    };

    at(hm(8, 0, 0)).await;
    presence("ann", PresenceRequest::Available).await;

    at(hm(9, 10, 0)).await;
    let c1 = board
        .customer_message(envelope(Channel::Web, "day-1", "c1", "c1"))
        .await
        .unwrap()
        .session;
    assert_eq!(offered_session(&mut ann_events).await, c1);
    at(hm(9, 10, 10)).await;
    board.accept(&id("ann"), c1).await.unwrap();
    at(hm(9, 10, 15)).await;
    board
        .record_usage(
            &id("ann"),
            UsageAction::SuggestionInserted,
            None,
            Role::Expert,
        )
        .await
        .unwrap();
    at(hm(9, 10, 20)).await;
    board
        .agent_message(&id("ann"), c1, "您好".into(), None)
        .await
        .unwrap();
    at(hm(9, 20, 10)).await;
    board.close(&id("ann"), c1, None).await.unwrap();
    at(hm(9, 30, 0)).await;
    presence("ann", away()).await;

    at(hm(9, 40, 0)).await;
    let c2 = board
        .customer_message(envelope(Channel::Web, "day-2", "c2", "c2"))
        .await
        .unwrap()
        .session;
    at(hm(9, 40, 40)).await;
    presence("ann", PresenceRequest::Available).await;
    assert_eq!(offered_session(&mut ann_events).await, c2);
    at(hm(9, 40, 45)).await;
    board.accept(&id("ann"), c2).await.unwrap();
    at(hm(9, 50, 45)).await;
    board.close(&id("ann"), c2, None).await.unwrap();

    // c3 is offered to ann, who lets it ring; the customer leaves after 3 s.
    let leaves_after = |name: &'static str, start: u64, stay: u64| {
        let board = &board;
        async move {
            at(start).await;
            let session = board
                .customer_message(envelope(Channel::Web, name, name, name))
                .await
                .unwrap()
                .session;
            at(start + stay).await;
            let customer = board.session(session).await.unwrap().customer_id;
            board.customer_leave(&customer, session).await.unwrap();
        }
    };
    leaves_after("day-3", hm(10, 30, 0), 3).await;
    at(hm(10, 45, 0)).await;
    presence("ann", away()).await;
    leaves_after("day-4", hm(11, 0, 0), 60).await;
    at(hm(11, 45, 0)).await;
    presence("ann", PresenceRequest::Available).await;
    at(hm(13, 0, 0)).await;
    presence("bob", PresenceRequest::Available).await;
    at(hm(14, 0, 0)).await;
    presence("ann", away()).await;

    at(hm(14, 15, 0)).await;
    let vip = board
        .customer_message(envelope(Channel::Wechat, "v-wx", "vip", "v1"))
        .await
        .unwrap()
        .session;
    assert_eq!(offered_session(&mut bob_events).await, vip);
    at(hm(14, 15, 40)).await;
    board.accept(&id("bob"), vip).await.unwrap();
    at(hm(14, 16, 0)).await;
    board
        .agent_message(&id("bob"), vip, "王女士您好".into(), None)
        .await
        .unwrap();
    at(hm(14, 30, 40)).await;
    board.close(&id("bob"), vip, None).await.unwrap();

    at(hm(16, 0, 0)).await;
    presence("ann", PresenceRequest::Available).await;
    at(hm(18, 0, 0)).await;
    presence("ann", PresenceRequest::Offline).await;
    presence("bob", PresenceRequest::Offline).await;
    at(hm(23, 50, 0)).await;
    board
        .customer_message(envelope(Channel::Web, "day-5", "c5", "c5"))
        .await
        .unwrap();
    at(hm(24, 1, 0)).await;
    board.flush().await.unwrap();

    let day = |minutes| ReportWindow::new(from, from + 24 * 3_600_000, minutes).unwrap();
    let everything = ReportScope::default();

    // Intervals: the default group's rows with contacts (the other hours
    // have empty rows; gold_service has none: the VIP counts where it was
    // answered).
    let report = board.interval_report(day(60), &everything).await.unwrap();
    assert!(
        report
            .rows
            .iter()
            .all(|row| row.group.as_str() == "default")
    );
    assert_eq!(
        report.rows.iter().filter(|r| r.channel.is_none()).count(),
        24
    );
    let csv = report.to_csv();
    // The lines with contacts, without their interval times.
    let lines: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|line| line.splitn(3, ',').nth(2).unwrap())
        .filter(|fields| fields.split(',').nth(2) != Some("0"))
        .collect();
    assert_eq!(
        lines,
        [
            // 09: 1 of 2 within 30 s; ASA (10 + 45) / 2; AHT 10 min.
            "default,all,2,2,1,0,0,50.00,80,27.500,600.000,45.000,0.00",
            "default,web,2,2,1,0,0,50.00,80,27.500,600.000,45.000,0.00",
            // 10: a short abandon, out of the service level.
            "default,all,1,0,0,1,1,,80,,,3.000,100.00",
            "default,web,1,0,0,1,1,,80,,,3.000,100.00",
            // 11: an abandon after a minute.
            "default,all,1,0,0,1,0,0.00,80,,,60.000,100.00",
            "default,web,1,0,0,1,0,0.00,80,,,60.000,100.00",
            // 14: the VIP, 40 s from its first queue, handled 15 min.
            "default,all,1,1,0,0,0,0.00,80,40.000,900.000,40.000,0.00",
            "default,wechat,1,1,0,0,0,0.00,80,40.000,900.000,40.000,0.00",
            // 23: still waiting.
            "default,all,1,0,0,0,0,,80,,,,0.00",
            "default,web,1,0,0,0,0,,80,,,,0.00",
        ]
    );
    // The rows are in their hours.
    let hour_of = |row: &engine::sla::report::IntervalRow| (row.start - from) / 3_600_000;
    let busy: Vec<i64> = report
        .rows
        .iter()
        .filter(|row| row.channel.is_none() && row.figures.n_entered > 0)
        .map(hour_of)
        .collect();
    assert_eq!(busy, [9, 10, 11, 14, 23]);
    // Fifteen-minute intervals split 09:00–10:00: c1 at 09:10, c2 at 09:40.
    let quarter = board.interval_report(day(15), &everything).await.unwrap();
    let nine: Vec<(i64, u64, u64)> = quarter
        .rows
        .iter()
        .filter(|row| row.channel.is_none() && row.figures.n_entered > 0)
        .map(|row| {
            (
                (row.start - from) / 60_000,
                row.figures.n_entered,
                row.figures.n_answered_within,
            )
        })
        .collect();
    assert_eq!(
        nine,
        [
            (9 * 60, 1, 1),
            (9 * 60 + 30, 1, 0),
            (10 * 60 + 30, 1, 0),
            (11 * 60, 1, 0),
            (14 * 60 + 15, 1, 0),
            (23 * 60 + 45, 1, 0)
        ]
    );
    // A supervisor of gold_service only sees nothing of default.
    let gold = ReportScope {
        groups: Some([GroupId::new("gold_service")].into()),
    };
    assert!(
        board
            .interval_report(day(60), &gold)
            .await
            .unwrap()
            .rows
            .is_empty()
    );

    // Agents: contacts, and time in each state over the day.
    let agents = board.agent_report(day(60), &everything).await.unwrap();
    assert_eq!(agents.counted_until, from + 24 * 3_600_000);
    let csv = agents.to_csv();
    // The agents' fields, without the usage columns but the first.
    let lines: Vec<&str> = csv
        .lines()
        .map(|line| {
            &line[..line
                .match_indices(',')
                .nth(13)
                .map_or(line.len(), |(i, _)| i)]
        })
        .collect();
    assert_eq!(
        lines,
        [
            "agent,answered,answered_within,handled,aht_secs,first_response_mean_secs,first_response_p90_secs,on_contact_secs,available_idle_secs,away_secs,wrap_up_secs,offline_secs,occupancy_pct,suggestion_inserted",
            // Available 70m10s + 9m50s + 5s + 54m15s + 2h15m + 2h; away
            // 10m40s + 1h + 2h; offline 8h + 6h; 1,200 / 24,560 busy; one
            // suggestion inserted.
            "ann,2,1,2,600.000,10.000,10.000,1200.000,23360.000,11440.000,0.000,50400.000,4.89,1",
            // Available 1h15m40s + 3h29m20s; offline 13h + 6h.
            "bob,1,0,1,900.000,20.000,20.000,900.000,17100.000,0.000,0.000,68400.000,5.00,0",
            "gina,0,0,0,,,,0.000,0.000,0.000,0.000,86400.000,,0",
        ]
    );

    // Usage per layout (every test agent is an expert): three answered,
    // first replies 20 s (c1, offered 09:10:00) and 30 s (the VIP, first
    // offered at its overflow, 14:15:30) after the offer.
    let usage = board.usage_report(day(60), &everything).await.unwrap();
    assert_eq!(usage.rows.len(), 1);
    let expert = &usage.rows[0];
    assert_eq!(
        (
            expert.layout,
            expert.n_agents,
            expert.n_answered,
            expert.offer_to_first_reply_mean_ms,
            expert.offer_to_first_reply_p90_ms
        ),
        (Role::Expert, 2, 3, Some(25_000.0), Some(30_000))
    );
    assert_eq!(
        expert.usage.get("suggestion_inserted"),
        Some(&1),
        "{:?}",
        expert.usage
    );

    // Routing: the VIP skipped the sticky step (no last agent), waited its
    // 30 s in gold_service and was answered in default.
    let routes = board.route_report(day(60), &everything).await.unwrap();
    assert_eq!(
        routes.to_csv().lines().collect::<Vec<_>>(),
        [
            "rule,step,group,entered,answered,abandoned,open,overflowed,moved",
            "everyone_else,1,default,5,2,2,1,0,0",
            "vip,2,gold_service,1,0,0,0,1,0",
            "vip,3,default,1,1,0,0,0,0",
        ]
    );
    assert_eq!(routes.n_without_route, 0);
    let routes = board.route_report(day(60), &gold).await.unwrap();
    assert_eq!(routes.rows.len(), 1, "only the gold_service step");
    board.shutdown().await;
}
