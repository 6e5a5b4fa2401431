//! Table-driven tests of the SLA arithmetic.
use super::*;
use crate::ids::{AgentId, CustomerId, SessionId};
use crate::session::{SessionEvent, SessionTimes};

/// When every test contact entered the queue; offsets below are from here.
const QUEUED: Millis = 1_700_000_000_000;

enum Input {
    /// A report for the group over the sessions.
    Report(SkillGroup, Vec<Session>),
    /// Nearest-rank quantiles of the durations at each q.
    Quantiles(Vec<Millis>, Vec<f64>),
    /// Longest wait of contacts queued at these times, at `now`.
    LongestWait(Vec<Millis>, Millis),
    /// Occupancy over the intervals, optionally clipped to a window.
    Occupancy(Vec<AgentInterval>, Option<(Millis, Millis)>),
}

/// Computes `input` and compares a one-line-per-figure-set rendering with
/// `expected` (leading whitespace and blank lines are ignored).
fn check(input: Input, expected: &str) {
    let got = match input {
        Input::Report(group, sessions) => {
            let report = SlaReport::from_sessions(&group, &sessions);
            let mut lines = vec![format!("total: {}", render_figures(&report.total))];
            for (channel, figures) in &report.by_channel {
                lines.push(format!("{channel}: {}", render_figures(figures)));
            }
            lines.join("\n")
        }
        Input::Quantiles(durations, qs) => qs
            .iter()
            .map(|&q| format!("q{q}={}", opt(quantile(&durations, q))))
            .collect::<Vec<_>>()
            .join(" "),
        Input::LongestWait(queued_since, now) => opt(longest_wait(queued_since.into_iter(), now)),
        Input::Occupancy(intervals, window) => {
            let occupancy = match window {
                Some((from, to)) => Occupancy::within(&intervals, from, to),
                None => Occupancy::from_intervals(&intervals),
            };
            format!(
                "on {} idle {} occupancy {}",
                secs(Some(occupancy.on_contact_ms as f64)),
                secs(Some(occupancy.available_idle_ms as f64)),
                pct(occupancy.occupancy)
            )
        }
    };
    let normalise = |text: &str| {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(normalise(&got), normalise(expected));
}

fn render_figures(f: &SlaFigures) -> String {
    format!(
        "threshold {} entered {} answered {} within {} abandoned {} short {} open {} handled {}\n\
         | sl {} asa {} aht {} abandon {} frt {} p50 {} p90 {}",
        secs(f.threshold_ms.map(|ms| ms as f64)),
        f.n_entered,
        f.n_answered,
        f.n_answered_within,
        f.n_abandoned,
        f.n_short_abandoned,
        f.n_open,
        f.n_handled,
        pct(f.service_level),
        secs(f.asa_ms),
        secs(f.aht_ms),
        pct(f.abandonment_rate),
        secs(f.first_response_mean_ms),
        secs(f.first_response_p50_ms.map(|ms| ms as f64)),
        secs(f.first_response_p90_ms.map(|ms| ms as f64)),
    )
}

fn pct(ratio: Option<f64>) -> String {
    ratio.map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
}
fn secs(ms: Option<f64>) -> String {
    ms.map_or("-".into(), |ms| format!("{}s", ms / 1000.0))
}
fn opt(value: Option<Millis>) -> String {
    value.map_or("-".into(), |v| v.to_string())
}

fn s(seconds: f64) -> Millis {
    (seconds * 1000.0).round() as Millis
}

/// A contact of group `support` on `channel`, queued at [`QUEUED`]; the
/// offsets are milliseconds after queueing.
fn contact(channel: Channel, state: SessionState, times: [Option<Millis>; 4]) -> Session {
    let [answered, first_response, wrap_up, closed] = times.map(|t| t.map(|t| QUEUED + t));
    let mut session = Session::new(SessionId(1), CustomerId::new("c"), channel, QUEUED - 500);
    session.state = state;
    session.group = Some(GroupId::new("support"));
    session.times = SessionTimes {
        queued: Some(QUEUED),
        offered: answered,
        answered,
        first_response,
        wrap_up,
        closed,
        ..session.times
    };
    session
}
/// Accepted by an agent `wait` after queueing, still being handled.
fn answered(channel: Channel, wait: Millis) -> Session {
    contact(
        channel,
        SessionState::Assigned,
        [Some(wait), None, None, None],
    )
}
/// The customer left `after` queueing, unanswered.
fn abandoned(channel: Channel, after: Millis) -> Session {
    contact(
        channel,
        SessionState::Abandoned,
        [None, None, None, Some(after)],
    )
}
fn waiting(channel: Channel) -> Session {
    contact(channel, SessionState::Queued, [None; 4])
}
fn of_group(mut session: Session, group: &str) -> Session {
    session.group = Some(GroupId::new(group));
    session
}

fn support() -> SkillGroup {
    SkillGroup::new("support", "Support") // 30 s threshold, 5 s short abandon
}

#[test]
fn service_level_and_abandonment() {
    use Channel::{Email, Web};
    let mut email_hours = support();
    email_hours.sla_threshold_by_channel.insert(Email, 3600);
    let never_queued = {
        let mut session = abandoned(Web, s(2.0));
        session.times.queued = None;
        session
    };
    let cases = vec![
        // 10 web contacts (threshold 30 s, short abandon 5 s):
        // 6 answered within 30 s (5, 10, 15, 20, 25 and exactly 30 s: ≤ is
        // within), 2 answered at 45 s and 70 s, 1 abandoned after 12 s,
        // 1 abandoned after 3 s (short).
        // SL = 6 / (8 + 1) = 66.7 %; ASA = (5+10+15+20+25+30+45+70) / 8
        // = 220 / 8 = 27.5 s; abandonment = 2 / 10 = 20 %.
        // A `sales` contact and one that never queued are ignored.
        (
            support(),
            [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 70.0]
                .map(|wait| answered(Web, s(wait)))
                .into_iter()
                .chain([
                    abandoned(Web, s(12.0)),
                    abandoned(Web, s(3.0)),
                    of_group(answered(Web, s(1.0)), "sales"),
                    never_queued,
                ])
                .collect(),
            "total: threshold - entered 10 answered 8 within 6 abandoned 2 short 1 open 0 handled 0
               | sl 66.7% asa 27.5s aht - abandon 20.0% frt - p50 - p90 -
             web: threshold 30s entered 10 answered 8 within 6 abandoned 2 short 1 open 0 handled 0
               | sl 66.7% asa 27.5s aht - abandon 20.0% frt - p50 - p90 -",
        ),
        // Exactly at the threshold is within, one millisecond later is not:
        // answered at 30.000 s and 30.001 s → SL = 1 / 2 = 50 %,
        // ASA = 30.0005 s.
        (
            support(),
            vec![answered(Web, 30_000), answered(Web, 30_001)],
            "total: threshold - entered 2 answered 2 within 1 abandoned 0 short 0 open 0 handled 0
               | sl 50.0% asa 30.0005s aht - abandon 0.0% frt - p50 - p90 -
             web: threshold 30s entered 2 answered 2 within 1 abandoned 0 short 0 open 0 handled 0
               | sl 50.0% asa 30.0005s aht - abandon 0.0% frt - p50 - p90 -",
        ),
        // Per-channel thresholds: email 3600 s, web the default 30 s.
        // Email answered at 1200 s, 3000 s, 5400 s → 2 within → SL 2/3 = 66.7 %,
        //   ASA (1200+3000+5400)/3 = 3200 s.
        // Web answered at 20 s, 40 s → 1 within → SL 1/2 = 50 %, ASA 30 s.
        // Total: each judged by its own channel → SL 3/5 = 60 %,
        //   ASA (9600+60)/5 = 1932 s. (One 30 s threshold would give 1/5.)
        (
            email_hours,
            vec![
                answered(Email, s(1200.0)),
                answered(Email, s(3000.0)),
                answered(Email, s(5400.0)),
                answered(Web, s(20.0)),
                answered(Web, s(40.0)),
            ],
            "total: threshold - entered 5 answered 5 within 3 abandoned 0 short 0 open 0 handled 0
               | sl 60.0% asa 1932s aht - abandon 0.0% frt - p50 - p90 -
             web: threshold 30s entered 2 answered 2 within 1 abandoned 0 short 0 open 0 handled 0
               | sl 50.0% asa 30s aht - abandon 0.0% frt - p50 - p90 -
             email: threshold 3600s entered 3 answered 3 within 2 abandoned 0 short 0 open 0 handled 0
               | sl 66.7% asa 3200s aht - abandon 0.0% frt - p50 - p90 -",
        ),
        // Short-abandon boundary (5 s, strictly less is short): answered at
        // 10 s, abandoned after 4.999 s (short) and after exactly 5 s (not).
        // SL = 1 / (1 + 2 - 1) = 50 %; abandonment = 2 / 3 = 66.7 %.
        (
            support(),
            vec![
                answered(Web, s(10.0)),
                abandoned(Web, 4_999),
                abandoned(Web, 5_000),
            ],
            "total: threshold - entered 3 answered 1 within 1 abandoned 2 short 1 open 0 handled 0
               | sl 50.0% asa 10s aht - abandon 66.7% frt - p50 - p90 -
             web: threshold 30s entered 3 answered 1 within 1 abandoned 2 short 1 open 0 handled 0
               | sl 50.0% asa 10s aht - abandon 66.7% frt - p50 - p90 -",
        ),
        // Empty group: every ratio and mean is None, no channel rows.
        (
            support(),
            vec![],
            "total: threshold - entered 0 answered 0 within 0 abandoned 0 short 0 open 0 handled 0
               | sl - asa - aht - abandon - frt - p50 - p90 -",
        ),
        // Only other groups' sessions: the same as empty.
        (
            support(),
            vec![of_group(answered(Web, s(1.0)), "sales")],
            "total: threshold - entered 0 answered 0 within 0 abandoned 0 short 0 open 0 handled 0
               | sl - asa - aht - abandon - frt - p50 - p90 -",
        ),
        // One short abandon (2 s) and one still waiting: the SL denominator
        // 0 + 1 - 1 = 0 → SL None; both entered → abandonment 1 / 2 = 50 %.
        (
            support(),
            vec![abandoned(Web, s(2.0)), waiting(Web)],
            "total: threshold - entered 2 answered 0 within 0 abandoned 1 short 1 open 1 handled 0
               | sl - asa - aht - abandon 50.0% frt - p50 - p90 -
             web: threshold 30s entered 2 answered 0 within 0 abandoned 1 short 1 open 1 handled 0
               | sl - asa - aht - abandon 50.0% frt - p50 - p90 -",
        ),
        // Answered at 10 s, then transferred, re-queued and abandoned: it
        // counts once, as answered within → SL 1/1, abandonment 0/1; not
        // closed, so no handle time.
        (
            support(),
            vec![contact(
                Web,
                SessionState::Abandoned,
                [Some(s(10.0)), None, None, Some(s(300.0))],
            )],
            "total: threshold - entered 1 answered 1 within 1 abandoned 0 short 0 open 0 handled 0
               | sl 100.0% asa 10s aht - abandon 0.0% frt - p50 - p90 -
             web: threshold 30s entered 1 answered 1 within 1 abandoned 0 short 0 open 0 handled 0
               | sl 100.0% asa 10s aht - abandon 0.0% frt - p50 - p90 -",
        ),
    ];
    for (group, sessions, expected) in cases {
        check(Input::Report(group, sessions), expected);
    }
}

#[test]
fn speed_handle_and_first_response_times() {
    use Channel::Web;
    use SessionState::{Assigned, Closed};
    // Offsets after queueing, in seconds:
    //   answered  first reply  wrap-up  closed   state
    //   10        12           130      160      closed   AHT 150, FRT 2
    //   20        35           200      260      closed   AHT 240, FRT 15
    //   30        31           -        -        assigned FRT 1
    //   40        -            -        -        assigned (no reply yet)
    // ASA = (10+20+30+40)/4 = 25 s; within 30 s: 3/4 = 75 %.
    // AHT over the 2 closed = (150+240)/2 = 195 s (answered → closed).
    // FRT mean = (2+15+1)/3 = 6 s; sorted [1, 2, 15]:
    //   p50 rank ⌈0.5·3⌉ = 2 → 2 s; p90 rank ⌈0.9·3⌉ = 3 → 15 s.
    let at = |seconds: [f64; 4]| seconds.map(|t| (t >= 0.0).then(|| s(t)));
    check(
        Input::Report(
            support(),
            vec![
                contact(Web, Closed, at([10.0, 12.0, 130.0, 160.0])),
                contact(Web, Closed, at([20.0, 35.0, 200.0, 260.0])),
                contact(Web, Assigned, at([30.0, 31.0, -1.0, -1.0])),
                contact(Web, Assigned, at([40.0, -1.0, -1.0, -1.0])),
            ],
        ),
        "total: threshold - entered 4 answered 4 within 3 abandoned 0 short 0 open 0 handled 2
           | sl 75.0% asa 25s aht 195s abandon 0.0% frt 6s p50 2s p90 15s
         web: threshold 30s entered 4 answered 4 within 3 abandoned 0 short 0 open 0 handled 2
           | sl 75.0% asa 25s aht 195s abandon 0.0% frt 6s p50 2s p90 15s",
    );
}

#[test]
fn quantiles_longest_wait_and_occupancy() {
    use AgentActivity::*;
    let qs = || vec![0.0, 0.5, 0.7, 0.9, 1.0];
    let interval = |state, start: f64, end: f64| AgentInterval {
        state,
        start: s(start),
        end: s(end),
    };
    // An agent's hour: on contact 0–600 s, wrap-up 600–660, idle 660–900,
    // away 900–1800, on contact 1800–2100, offline 2100–3600.
    let hour = vec![
        interval(OnContact, 0.0, 600.0),
        interval(WrapUp, 600.0, 660.0),
        interval(AvailableIdle, 660.0, 900.0),
        interval(Away, 900.0, 1800.0),
        interval(OnContact, 1800.0, 2100.0),
        interval(Offline, 2100.0, 3600.0),
    ];
    let cases = vec![
        // Ten values, unsorted. Nearest rank ⌈q·10⌉: p0 → rank 1 (the
        // minimum), p50 → 5, p70 → 7 (not 8: 0.7·10 is 7.000000000000001
        // in binary), p90 → 9, p100 → 10.
        (
            Input::Quantiles(vec![70, 30, 100, 10, 50, 90, 20, 80, 40, 60], qs()),
            "q0=10 q0.5=50 q0.7=70 q0.9=90 q1=100",
        ),
        (
            Input::Quantiles(vec![42], qs()),
            "q0=42 q0.5=42 q0.7=42 q0.9=42 q1=42",
        ),
        (
            Input::Quantiles(vec![], qs()),
            "q0=- q0.5=- q0.7=- q0.9=- q1=-",
        ),
        (
            Input::Quantiles(vec![1, 2, 3], vec![-0.1, 1.5, f64::NAN]),
            "q-0.1=- q1.5=- qNaN=-",
        ),
        // Queued at 40 s, 95 s, 70 s; now 100 s → longest wait 60 s.
        (
            Input::LongestWait(vec![40_000, 95_000, 70_000], 100_000),
            "60000",
        ),
        (Input::LongestWait(vec![], 100_000), "-"),
        // Queued "in the future" by another node's clock → 0, not negative.
        (Input::LongestWait(vec![100_500], 100_000), "0"),
        // The hour: on contact 600 + 60 (wrap-up) + 300 = 960 s, idle 240 s,
        // away/offline ignored → 960 / (960 + 240) = 80 %.
        (
            Input::Occupancy(hour.clone(), None),
            "on 960s idle 240s occupancy 80.0%",
        ),
        // Clipped to [600 s, 1800 s): wrap-up 60 s, idle 240 s, away 900 s
        // → 60 / (60 + 240) = 20 %.
        (
            Input::Occupancy(hour, Some((s(600.0), s(1800.0)))),
            "on 60s idle 240s occupancy 20.0%",
        ),
        // Only idle → 0 %; only away/offline → None; an interval that ends
        // before it starts counts nothing.
        (
            Input::Occupancy(vec![interval(AvailableIdle, 0.0, 60.0)], None),
            "on 0s idle 60s occupancy 0.0%",
        ),
        (
            Input::Occupancy(
                vec![
                    interval(Away, 0.0, 60.0),
                    interval(Offline, 60.0, 120.0),
                    interval(OnContact, 200.0, 100.0),
                ],
                None,
            ),
            "on 0s idle 0s occupancy -",
        ),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn report_serialises_to_json_with_channel_keys_and_nulls() {
    let report = SlaReport::from_sessions(&support(), &[answered(Channel::Web, s(10.0))]);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["group"], "support");
    assert_eq!(json["by_channel"]["web"]["service_level"], 1.0);
    assert_eq!(json["by_channel"]["web"]["threshold_ms"], 30_000);
    assert_eq!(json["total"]["aht_ms"], serde_json::Value::Null);
    assert!(json["total"].get("first_response_ms").is_none());
}

/// (answered within, abandoned short, wait) of a judged session.
type JudgedParts = (Option<bool>, Option<bool>, Option<Millis>);

#[test]
fn judging_one_session_agrees_with_the_report() {
    let group = support();
    let cases: Vec<(Session, Option<JudgedParts>)> = vec![
        (
            answered(Channel::Web, s(10.0)),
            Some((Some(true), None, Some(s(10.0)))),
        ),
        (
            answered(Channel::Web, s(30.0)),
            Some((Some(true), None, Some(s(30.0)))),
        ),
        (
            answered(Channel::Web, s(31.0)),
            Some((Some(false), None, Some(s(31.0)))),
        ),
        (
            abandoned(Channel::Web, s(4.0)),
            Some((None, Some(true), None)),
        ),
        (
            abandoned(Channel::Web, s(6.0)),
            Some((None, Some(false), None)),
        ),
        (waiting(Channel::Web), Some((None, None, None))),
        (contact(Channel::Web, SessionState::New, [None; 4]), None),
    ];
    for (mut session, expected) in cases {
        session.times.queued = session
            .times
            .queued
            .filter(|_| session.state != SessionState::New);
        let got = judge(&session, &group).map(|judged| {
            (
                judged.answered_within,
                judged.abandoned_short,
                judged.wait_ms,
            )
        });
        assert_eq!(got, expected, "{:?} {:?}", session.state, session.times);
    }
}

/// One session's life through the state machine, each step's SLA changes
/// collected as the live side counts them.
struct Life {
    session: Session,
    changes: Vec<SlaChange>,
}

impl Life {
    fn new(id: u64, channel: Channel) -> Life {
        let session = Session::new(SessionId(id), CustomerId::new("c"), channel, QUEUED - 500);
        Life {
            session,
            changes: Vec::new(),
        }
    }

    /// Applies `event` `at_secs` after [`QUEUED`] and collects its changes.
    fn then(mut self, event: SessionEvent, at_secs: f64) -> Life {
        let before = SlaPoint::of(&self.session);
        self.session.apply(event, QUEUED + s(at_secs)).unwrap();
        let groups = groups();
        self.changes.extend(changes(&before, &self.session, |id| {
            groups.iter().find(|g| &g.id == id)
        }));
        self
    }

    fn queue(self, group: &str, at_secs: f64) -> Life {
        let life = if self.session.state == SessionState::New {
            self.then(SessionEvent::StartRouting, at_secs)
        } else {
            self
        };
        life.then(
            SessionEvent::Enqueue {
                group: GroupId::new(group),
            },
            at_secs,
        )
    }

    fn answer(self, agent: &str, at_secs: f64) -> Life {
        let agent = AgentId::new(agent);
        self.then(
            SessionEvent::Offer {
                agent: agent.clone(),
            },
            at_secs,
        )
        .then(SessionEvent::Accept { agent }, at_secs)
    }
}

fn groups() -> Vec<SkillGroup> {
    let mut sales = SkillGroup::new("sales", "Sales");
    sales.sla_threshold_secs = 10;
    vec![support(), sales]
}

#[test]
fn the_live_changes_add_up_to_the_report_for_every_group() {
    use Channel::{Phone, Web};
    let lives = [
        // Answered in support at 5 s, replied, closed: within.
        Life::new(1, Web)
            .queue("support", 0.0)
            .answer("ann", 5.0)
            .then(SessionEvent::AgentReplied, 8.0)
            .then(SessionEvent::Close { summary: None }, 60.0),
        // Overflows from support to sales at 20 s, answered there at 25 s:
        // a contact of sales (25 s from the first queue: over sales' 10 s),
        // an entry of both queues.
        Life::new(2, Web)
            .queue("support", 0.0)
            .queue("sales", 20.0)
            .answer("sam", 25.0),
        // Overflows and is abandoned in sales at 40 s (long).
        Life::new(3, Phone)
            .queue("support", 0.0)
            .queue("sales", 20.0)
            .then(SessionEvent::CustomerLeft, 40.0),
        // Abandoned in support after 3 s (short).
        Life::new(4, Web)
            .queue("support", 0.0)
            .then(SessionEvent::CustomerLeft, 3.0),
        // Answered in support at 31 s (late), transferred to sales after the
        // answer, answered again there and closed: one contact of support,
        // answered once; sales' queue counts an entry.
        Life::new(5, Phone)
            .queue("support", 0.0)
            .answer("ann", 31.0)
            .then(SessionEvent::Transfer, 50.0)
            .queue("sales", 50.0)
            .answer("sam", 55.0)
            .then(SessionEvent::AgentReplied, 56.0)
            .then(SessionEvent::Close { summary: None }, 90.0),
        // Still waiting in sales after moving there.
        Life::new(6, Web).queue("support", 0.0).queue("sales", 20.0),
        // An offer lapses and the contact is back in line: no new entry;
        // answered at the second offer, within.
        Life::new(7, Web)
            .queue("support", 0.0)
            .then(
                SessionEvent::Offer {
                    agent: AgentId::new("ann"),
                },
                1.0,
            )
            .then(SessionEvent::OfferLapsed, 16.0)
            .answer("ann", 17.0),
    ];
    let sessions: Vec<Session> = lives.iter().map(|life| life.session.clone()).collect();
    for group in groups() {
        let mut tally = SlaTally::default();
        let mut handled = Vec::new();
        for change in lives.iter().flat_map(|life| &life.changes) {
            if change.group() == &group.id {
                tally.apply(change);
                if let SlaChange::Handled { handle_ms, .. } = change {
                    handled.push(*handle_ms);
                }
            }
        }
        let report = SlaReport::from_sessions(&group, &sessions).total;
        assert_eq!(
            (
                tally.n_entered(),
                tally.n_answered,
                tally.n_answered_within,
                tally.n_abandoned,
                tally.n_short_abandoned,
                handled.len() as u64,
            ),
            (
                report.n_entered,
                report.n_answered,
                report.n_answered_within,
                report.n_abandoned,
                report.n_short_abandoned,
                report.n_handled,
            ),
            "{}",
            group.id
        );
        assert_eq!(tally.service_level(), report.service_level, "{}", group.id);
        assert_eq!(
            tally.abandonment_rate(),
            report.abandonment_rate,
            "{}",
            group.id
        );
    }
    // Counted by hand. support: contacts 1, 4, 5, 7 (2, 3 and 6 came and
    // moved on); queue entries 1–7, one each. sales: contacts 2, 3, 6;
    // entries 2, 3, 5, 6.
    let tally_of = |group: &str| {
        let mut tally = SlaTally::default();
        for change in lives.iter().flat_map(|life| &life.changes) {
            if change.group().as_str() == group {
                tally.apply(change);
            }
        }
        tally
    };
    let support_tally = tally_of("support");
    assert_eq!(
        support_tally,
        SlaTally {
            n_came: 7,
            n_moved_out: 3,
            n_queue_entries: 7,
            n_answered: 3,
            n_answered_within: 2,
            n_abandoned: 1,
            n_short_abandoned: 1,
        }
    );
    let sales_tally = tally_of("sales");
    assert_eq!(
        sales_tally,
        SlaTally {
            n_came: 3,
            n_moved_out: 0,
            n_queue_entries: 4,
            n_answered: 1,
            n_answered_within: 0,
            n_abandoned: 1,
            n_short_abandoned: 0,
        }
    );
    assert_eq!(support_tally.n_entered(), 4);
    // support: 2 within of (3 answered + 1 abandoned - 1 short).
    assert_eq!(support_tally.service_level(), Some(2.0 / 3.0));
    assert_eq!(sales_tally.abandonment_rate(), Some(1.0 / 3.0));
    // Session 5 is support's: its first answer, its handle time from it.
    assert_eq!(sessions[4].sla_group(), Some(&GroupId::new("support")));
    assert_eq!(sessions[4].group, Some(GroupId::new("sales")));
    assert_eq!(SlaTally::default().service_level(), None);
}

#[test]
fn an_agents_activity_for_occupancy_comes_from_their_contacts_then_presence() {
    use crate::presence::Presence;
    let away = Presence::Away {
        reason: "lunch".into(),
    };
    let wrap_up = Presence::WrapUp { until: QUEUED };
    let cases = [
        (
            Presence::Available,
            true,
            AgentActivity::OnContact,
            Some(true),
        ),
        (away.clone(), true, AgentActivity::OnContact, Some(true)),
        (
            Presence::Available,
            false,
            AgentActivity::AvailableIdle,
            Some(false),
        ),
        (wrap_up, false, AgentActivity::WrapUp, Some(true)),
        (away, false, AgentActivity::Away, None),
        (Presence::NotResponding, false, AgentActivity::Away, None),
        (Presence::Offline, false, AgentActivity::Offline, None),
    ];
    for (presence, holds, activity, occupied) in cases {
        let got = AgentActivity::of(&presence, holds);
        assert_eq!(got, activity, "{presence:?} holding {holds}");
        assert_eq!(got.occupied(), occupied, "{presence:?}");
    }
}

#[test]
fn a_record_from_before_sla_group_keeps_counting_where_it_was_answered() {
    // Stored before the field: answered in support, no sla_group.
    let mut legacy = answered(Channel::Web, s(4.0));
    legacy.sla_group = None;
    assert_eq!(legacy.sla_group(), Some(&GroupId::new("support")));
    let before = SlaPoint::of(&legacy);
    legacy
        .apply(SessionEvent::Transfer, QUEUED + s(30.0))
        .unwrap();
    legacy
        .apply(
            SessionEvent::Enqueue {
                group: GroupId::new("sales"),
            },
            QUEUED + s(30.0),
        )
        .unwrap();
    // Still support's contact; sales' queue has an entry.
    assert_eq!(legacy.sla_group(), Some(&GroupId::new("support")));
    let groups = groups();
    let got = changes(&before, &legacy, |id| groups.iter().find(|g| &g.id == id));
    assert_eq!(
        got,
        [SlaChange::QueueEntry {
            group: GroupId::new("sales")
        }]
    );
}

#[test]
fn the_window_counts_the_last_15_and_60_minutes_and_draws_5_minute_slots() {
    let group = GroupId::new("default");
    let answered = |within: bool| SlaChange::Answered {
        group: group.clone(),
        within,
        wait_ms: 1_000,
    };
    let abandoned = |short: bool| SlaChange::Abandoned {
        group: group.clone(),
        short,
    };
    let minute = 60_000;
    let t0: Millis = 1_772_409_600_000; // a whole minute
    let mut window = SlaWindow::default();
    // 70 minutes ago: falls out of the hour. 50 minutes ago: 2 answered late.
    window.apply(&answered(true), t0 - 70 * minute);
    window.apply(&answered(false), t0 - 50 * minute);
    window.apply(&answered(false), t0 - 50 * minute + 30_000);
    // 10 minutes ago: 3 in time, an abandon, a short abandon (left out).
    for _ in 0..3 {
        window.apply(&answered(true), t0 - 10 * minute);
    }
    window.apply(&abandoned(false), t0 - 10 * minute + 30_000);
    window.apply(&abandoned(true), t0 - 10 * minute + 30_000);
    let now = t0 + 20_000;
    let last_15 = window.over(15, now);
    assert_eq!(
        (
            last_15.n_answered,
            last_15.n_answered_within,
            last_15.n_abandoned
        ),
        (3, 3, 2)
    );
    assert_eq!(last_15.service_level(), Some(0.75));
    let last_60 = window.over(60, now);
    assert_eq!((last_60.n_answered, last_60.n_answered_within), (5, 3));
    assert_eq!(last_60.service_level(), Some(3.0 / 6.0));
    // Twelve 5-minute slots, oldest first, the last ending with the minute
    // of `now`: the slot holding 50 minutes ago at 0 %, the one holding
    // 10 minutes ago at 75 %, the others empty.
    let line = window.sparkline(5, now);
    assert_eq!(line.len(), 12);
    let drawn: Vec<(usize, f64)> = line
        .iter()
        .enumerate()
        .filter_map(|(slot, point)| point.map(|sl| (slot, sl)))
        .collect();
    assert_eq!(drawn, [(1, 0.0), (9, 0.75)]);
    // An hour later nothing is left.
    assert_eq!(window.over(60, now + 61 * minute), SlaTally::default());
}
