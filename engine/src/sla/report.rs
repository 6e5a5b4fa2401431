//! Historical reports over stored records (docs/reports.md): interval reports
//! per group and channel, per-agent figures, and how each routing rule's
//! steps fared. Pure: the caller reads the store page by page and feeds every
//! record to a builder, so a report over a busy month never holds the month.
//!
//! Which contacts count, for every report: the sessions that **first queued
//! inside the window** (`times.queued`), each in the interval it queued in
//! and in its SLA group ([`Session::sla_group`]), judged with the same
//! definitions as the wallboard and Prometheus ([`super::changes`]).
//! An abandon or answer is reported in the interval the contact queued in,
//! not the one it happened in, so an interval's service level is final once
//! its contacts are.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{
    AgentActivity, AgentInterval, Contact, Occupancy, Outcome, SlaFigures, Tally, elapsed,
    quantile_of_sorted, ratio, secs_to_ms,
};
use crate::Millis;
use crate::agent::Role;
use crate::channel::Channel;
use crate::error::EngineError;
use crate::group::SkillGroup;
use crate::ids::{AgentId, GroupId};
use crate::session::{Session, SessionState};

/// The interval lengths a report may use, in minutes.
pub const INTERVAL_MINUTES: [u32; 3] = [15, 30, 60];

/// The longest window one report covers: 31 days.
pub const MAX_WINDOW_MS: Millis = 31 * DAY_MS;

const MINUTE_MS: Millis = 60_000;
const DAY_MS: Millis = 24 * 60 * MINUTE_MS;

/// The time a report covers, `[from, to)`, cut into intervals that start at
/// `from` (so a window starting at a local midnight has local intervals).
/// The last interval ends at `to` and may be shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReportWindow {
    /// Start, inclusive (Unix milliseconds).
    pub from: Millis,
    /// End, exclusive.
    pub to: Millis,
    /// Length of one interval.
    pub interval_ms: Millis,
}

impl ReportWindow {
    /// Checks a window: `0 <= from < to`, at most [`MAX_WINDOW_MS`] long,
    /// intervals of one of [`INTERVAL_MINUTES`]. Errors name the field.
    pub fn new(
        from: Millis,
        to: Millis,
        interval_minutes: u32,
    ) -> Result<ReportWindow, EngineError> {
        let invalid = |field, reason: String| EngineError::Invalid { field, reason };
        if from < 0 {
            return Err(invalid("from", format!("{from} is before 1970")));
        }
        if to <= from {
            return Err(invalid("to", format!("{to} is not after `from` ({from})")));
        }
        if to - from > MAX_WINDOW_MS {
            return Err(invalid(
                "to",
                format!(
                    "the window is {} days long; a report covers at most 31",
                    ((to - from) as u64).div_ceil(DAY_MS as u64)
                ),
            ));
        }
        if !INTERVAL_MINUTES.contains(&interval_minutes) {
            return Err(invalid(
                "interval",
                format!("{interval_minutes} minutes; use 15, 30 or 60"),
            ));
        }
        Ok(ReportWindow {
            from,
            to,
            interval_ms: Millis::from(interval_minutes) * MINUTE_MS,
        })
    }

    /// How many intervals the window has.
    pub fn n_intervals(&self) -> usize {
        ((self.to - self.from) as u64).div_ceil(self.interval_ms as u64) as usize
    }

    /// The interval `at` falls in, if it is inside the window.
    pub fn interval_of(&self, at: Millis) -> Option<usize> {
        (self.from..self.to)
            .contains(&at)
            .then(|| ((at - self.from) / self.interval_ms) as usize)
    }

    /// Start and end of interval `i`.
    pub fn interval(&self, i: usize) -> (Millis, Millis) {
        let start = self.from + i as Millis * self.interval_ms;
        (start, (start + self.interval_ms).min(self.to))
    }
}

/// Interval report: per interval, group and channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalReport {
    /// What it covers.
    pub window: ReportWindow,
    /// Per interval (oldest first), then group, then channel: first the
    /// group's row over every channel (`channel` none), present for every
    /// interval of a group with any contact in the window, then one row per
    /// channel with contacts in that interval.
    pub rows: Vec<IntervalRow>,
}

/// One row of an [`IntervalReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalRow {
    /// Interval start.
    pub start: Millis,
    /// Interval end.
    pub end: Millis,
    /// The SLA group.
    pub group: GroupId,
    /// The channel; none: every channel together.
    pub channel: Option<Channel>,
    /// The group's service-level target in percent.
    pub target_pct: f64,
    /// The figures (offered is `n_entered`).
    pub figures: SlaFigures,
}

/// Builds an [`IntervalReport`] from sessions fed one by one.
pub struct IntervalReportBuilder {
    window: ReportWindow,
    groups: HashMap<GroupId, SkillGroup>,
    cells: BTreeMap<(usize, GroupId, Option<Channel>), Tally>,
    seen_groups: BTreeSet<GroupId>,
}

impl IntervalReportBuilder {
    /// A report over `window`, judging contacts with `groups`' thresholds (a
    /// group no longer configured is judged with the defaults).
    pub fn new(window: ReportWindow, groups: &[SkillGroup]) -> IntervalReportBuilder {
        IntervalReportBuilder {
            window,
            groups: groups.iter().map(|g| (g.id.clone(), g.clone())).collect(),
            cells: BTreeMap::new(),
            seen_groups: BTreeSet::new(),
        }
    }

    /// Counts `session` if it first queued inside the window.
    pub fn add(&mut self, session: &Session) {
        let Some((interval, group, contact)) = contact_in(&self.window, &mut self.groups, session)
        else {
            return;
        };
        let threshold = secs_to_ms(group.threshold_secs(&session.channel));
        if !self.seen_groups.contains(&group.id) {
            self.seen_groups.insert(group.id.clone());
        }
        let key = (interval, group.id.clone(), None);
        match self.cells.get_mut(&key) {
            Some(tally) => tally.add(&contact),
            None => {
                let mut tally = Tally::with_threshold(None);
                tally.add(&contact);
                self.cells.insert(key, tally);
            }
        }
        let key = (interval, group.id.clone(), Some(session.channel.clone()));
        self.cells
            .entry(key)
            .or_insert_with(|| Tally::with_threshold(Some(threshold)))
            .add(&contact);
    }

    /// The report.
    pub fn finish(self) -> IntervalReport {
        let IntervalReportBuilder {
            window,
            groups,
            mut cells,
            seen_groups,
        } = self;
        // Every interval of a group that had contacts gets its total row,
        // so a chart of the window has no holes.
        for interval in 0..window.n_intervals() {
            for group in &seen_groups {
                cells
                    .entry((interval, group.clone(), None))
                    .or_insert_with(|| Tally::with_threshold(None));
            }
        }
        let rows = cells
            .into_iter()
            .map(|((interval, group, channel), tally)| {
                let (start, end) = window.interval(interval);
                let target_pct = group_or_default(&groups, &group).sla_target_pct;
                IntervalRow {
                    start,
                    end,
                    group,
                    channel,
                    target_pct,
                    figures: tally.finish(),
                }
            })
            .collect();
        IntervalReport { window, rows }
    }
}

/// The interval, SLA group and judgement of `session`, if it first queued
/// inside `window`. A group no longer configured is judged with the
/// defaults (and remembered so).
fn contact_in<'g>(
    window: &ReportWindow,
    groups: &'g mut HashMap<GroupId, SkillGroup>,
    session: &Session,
) -> Option<(usize, &'g SkillGroup, Contact)> {
    let interval = window.interval_of(session.times.queued?)?;
    let id = session.sla_group()?;
    if !groups.contains_key(id) {
        groups.insert(id.clone(), SkillGroup::new(id.clone(), id.to_string()));
    }
    let group = &groups[id];
    let threshold = secs_to_ms(group.threshold_secs(&session.channel));
    let contact = Contact::classify(session, threshold, secs_to_ms(group.short_abandon_secs))?;
    Some((interval, group, contact))
}

fn group_or_default(groups: &HashMap<GroupId, SkillGroup>, id: &GroupId) -> SkillGroup {
    groups
        .get(id)
        .cloned()
        .unwrap_or_else(|| SkillGroup::new(id.clone(), id.to_string()))
}

impl IntervalReport {
    /// The report as CSV (RFC 4180, header first): one line per row,
    /// durations in seconds, ratios in percent, empty where there is nothing
    /// to divide by; `channel` is `all` on a group's total row.
    pub fn to_csv(&self) -> String {
        let mut csv = String::from(
            "interval_start,interval_end,group,channel,offered,answered,answered_within,\
             abandoned,short_abandoned,service_level_pct,target_pct,asa_secs,aht_secs,\
             longest_wait_secs,abandonment_pct\r\n",
        );
        for row in &self.rows {
            let f = &row.figures;
            let fields = [
                iso(row.start),
                iso(row.end),
                row.group.to_string(),
                row.channel
                    .as_ref()
                    .map_or_else(|| "all".to_owned(), |c| c.as_str().to_owned()),
                f.n_entered.to_string(),
                f.n_answered.to_string(),
                f.n_answered_within.to_string(),
                f.n_abandoned.to_string(),
                f.n_short_abandoned.to_string(),
                percent(f.service_level),
                format!("{}", row.target_pct),
                secs(f.asa_ms),
                secs(f.aht_ms),
                secs(f.longest_wait_ms.map(|ms| ms as f64)),
                percent(f.abandonment_rate),
            ];
            push_csv_line(&mut csv, &fields);
        }
        csv
    }
}

/// One entry of an agent's log, what the reports read besides sessions:
/// what the agent was doing from `at` on, or what they used in the desktop
/// ([`usage`]). Nothing personal beyond the agent's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLogEntry {
    /// The agent.
    pub agent: AgentId,
    /// When.
    pub at: Millis,
    /// Unique and ordered like `at` (minted like a session id).
    pub id: u64,
    /// What.
    pub kind: AgentLogKind,
}

/// What an [`AgentLogEntry`] records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentLogKind {
    /// From `at` on the agent does this ([`AgentActivity::of`]).
    Activity {
        /// The activity.
        activity: AgentActivity,
    },
    /// The agent used a desktop action or panel ([`usage`]).
    Usage {
        /// What.
        action: UsageAction,
        /// Which panel, for [`UsageAction::PanelUsed`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        panel: Option<DeskPanel>,
        /// The desktop layout they used it in: their role's.
        layout: Role,
    },
}

impl AgentLogKind {
    /// The kind's name, as stored beside the record.
    pub fn name(&self) -> &'static str {
        match self {
            AgentLogKind::Activity { .. } => "activity",
            AgentLogKind::Usage { .. } => "usage",
        }
    }
}

/// Per-agent report over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentReport {
    /// What it covers (its intervals are not used).
    pub window: ReportWindow,
    /// Time counted up to here: the window's end, or now if that is earlier.
    pub counted_until: Millis,
    /// One row per agent, by id.
    pub rows: Vec<AgentRow>,
}

/// One agent's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    /// The agent.
    pub agent: AgentId,
    /// Contacts that queued in the window and that this agent holds or
    /// held last (a contact transferred after its answer counts for the
    /// agent it went to).
    pub n_answered: u64,
    /// Of those, answered within their channel's threshold.
    pub n_answered_within: u64,
    /// Of those, closed (the ones with a handle time).
    pub n_handled: u64,
    /// Mean handle time (answer → close, wrap-up included).
    pub aht_ms: Option<f64>,
    /// Mean time from the answer to the first agent message.
    pub first_response_mean_ms: Option<f64>,
    /// Nearest-rank 90th percentile of those.
    pub first_response_p90_ms: Option<Millis>,
    /// Time in each activity inside the window.
    pub time_ms: ActivityTimes,
    /// On contact (wrap-up included) over on contact plus available idle.
    pub occupancy: Option<f64>,
    /// Desktop actions and panels used, by [`usage_key`]
    /// (`suggestion_inserted`, `panel_used:kb`, …).
    pub usage: BTreeMap<String, u64>,
}

/// Milliseconds in each [`AgentActivity`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ActivityTimes {
    /// Holding at least one contact.
    pub on_contact: Millis,
    /// Ready, without contacts.
    pub available_idle: Millis,
    /// Logged in, not taking contacts (breaks, not responding).
    pub away: Millis,
    /// After-contact work.
    pub wrap_up: Millis,
    /// Logged out, or nothing known (before the agent's first log entry).
    pub offline: Millis,
}

impl ActivityTimes {
    fn add(&mut self, activity: AgentActivity, ms: Millis) {
        let slot = match activity {
            AgentActivity::OnContact => &mut self.on_contact,
            AgentActivity::AvailableIdle => &mut self.available_idle,
            AgentActivity::Away => &mut self.away,
            AgentActivity::WrapUp => &mut self.wrap_up,
            AgentActivity::Offline => &mut self.offline,
        };
        *slot += ms;
    }
}

#[derive(Default)]
struct AgentTally {
    n_answered: u64,
    n_answered_within: u64,
    n_handled: u64,
    total_handle_ms: i128,
    first_response_ms: Vec<Millis>,
    /// The activity at the window's start.
    initial: Option<AgentActivity>,
    /// Desktop actions and panels used, by [`usage_key`].
    usage: BTreeMap<String, u64>,
    changes: Vec<(Millis, u64, AgentActivity)>,
}

/// Builds an [`AgentReport`] from sessions and agent log entries.
pub struct AgentReportBuilder {
    window: ReportWindow,
    now: Millis,
    groups: HashMap<GroupId, SkillGroup>,
    agents: BTreeMap<AgentId, AgentTally>,
}

impl AgentReportBuilder {
    /// A report over `window` at `now` (time after `now` is not counted).
    pub fn new(window: ReportWindow, now: Millis, groups: &[SkillGroup]) -> AgentReportBuilder {
        AgentReportBuilder {
            window,
            now,
            groups: groups.iter().map(|g| (g.id.clone(), g.clone())).collect(),
            agents: BTreeMap::new(),
        }
    }

    /// Gives `agent` a row even without anything in the window.
    pub fn include(&mut self, agent: &AgentId) {
        self.agents.entry(agent.clone()).or_default();
    }

    /// Counts `session` for its agent if it first queued inside the window
    /// and was answered.
    pub fn add_session(&mut self, session: &Session) {
        let Some(agent) = &session.agent else {
            return;
        };
        let Some((_, _, contact)) = contact_in(&self.window, &mut self.groups, session) else {
            return;
        };
        let Outcome::Answered { within } = contact.outcome else {
            return;
        };
        let tally = self.agents.entry(agent.clone()).or_default();
        tally.n_answered += 1;
        tally.n_answered_within += u64::from(within);
        if let Some(handle_ms) = contact.handle_ms {
            tally.n_handled += 1;
            tally.total_handle_ms += i128::from(handle_ms);
        }
        tally.first_response_ms.extend(contact.first_response_ms);
    }

    /// The agent's last activity before the window: what they did at its
    /// start.
    pub fn set_initial(&mut self, entry: &AgentLogEntry) {
        let AgentLogKind::Activity { activity } = entry.kind else {
            return;
        };
        let tally = self.agents.entry(entry.agent.clone()).or_default();
        tally.initial = Some(activity);
    }

    /// A log entry inside the window (entries outside it are ignored).
    pub fn add_log(&mut self, entry: &AgentLogEntry) {
        if !(self.window.from..self.window.to).contains(&entry.at) {
            return;
        }
        let tally = self.agents.entry(entry.agent.clone()).or_default();
        match &entry.kind {
            AgentLogKind::Activity { activity } => {
                tally.changes.push((entry.at, entry.id, *activity));
            }
            AgentLogKind::Usage { action, panel, .. } => {
                *tally.usage.entry(usage_key(*action, *panel)).or_default() += 1;
            }
        }
    }

    /// The report.
    pub fn finish(self) -> AgentReport {
        let from = self.window.from;
        let until = self.window.to.min(self.now).max(from);
        let rows = self
            .agents
            .into_iter()
            .map(|(agent, mut tally)| {
                tally.changes.sort_unstable_by_key(|&(at, id, _)| (at, id));
                let mut intervals = Vec::with_capacity(tally.changes.len() + 1);
                let mut current = tally.initial.unwrap_or(AgentActivity::Offline);
                let mut since = from;
                for &(at, _, activity) in &tally.changes {
                    intervals.push(AgentInterval {
                        state: current,
                        start: since,
                        end: at,
                    });
                    current = activity;
                    since = at;
                }
                intervals.push(AgentInterval {
                    state: current,
                    start: since,
                    end: until,
                });
                let mut time_ms = ActivityTimes::default();
                for interval in &intervals {
                    let ms = elapsed(interval.start.max(from), interval.end.min(until));
                    time_ms.add(interval.state, ms);
                }
                let occupancy = Occupancy::within(&intervals, from, until).occupancy;
                tally.first_response_ms.sort_unstable();
                let total_first_response: i128 = tally
                    .first_response_ms
                    .iter()
                    .map(|&ms| i128::from(ms))
                    .sum();
                AgentRow {
                    agent,
                    n_answered: tally.n_answered,
                    n_answered_within: tally.n_answered_within,
                    n_handled: tally.n_handled,
                    aht_ms: ratio(tally.total_handle_ms as f64, tally.n_handled),
                    first_response_mean_ms: ratio(
                        total_first_response as f64,
                        tally.first_response_ms.len() as u64,
                    ),
                    first_response_p90_ms: quantile_of_sorted(&tally.first_response_ms, 0.9),
                    time_ms,
                    occupancy,
                    usage: tally.usage,
                }
            })
            .collect();
        AgentReport {
            window: self.window,
            counted_until: until,
            rows,
        }
    }
}

impl AgentReport {
    /// The report as CSV: one line per agent, durations in seconds.
    pub fn to_csv(&self) -> String {
        let mut csv = String::from(
            "agent,answered,answered_within,handled,aht_secs,first_response_mean_secs,\
             first_response_p90_secs,on_contact_secs,available_idle_secs,away_secs,\
             wrap_up_secs,offline_secs,occupancy_pct",
        );
        let columns = usage::usage_columns();
        for column in &columns {
            csv.push(',');
            csv.push_str(column);
        }
        csv.push_str("\r\n");
        for row in &self.rows {
            let t = &row.time_ms;
            let fields = [
                row.agent.to_string(),
                row.n_answered.to_string(),
                row.n_answered_within.to_string(),
                row.n_handled.to_string(),
                secs(row.aht_ms),
                secs(row.first_response_mean_ms),
                secs(row.first_response_p90_ms.map(|ms| ms as f64)),
                secs(Some(t.on_contact as f64)),
                secs(Some(t.available_idle as f64)),
                secs(Some(t.away as f64)),
                secs(Some(t.wrap_up as f64)),
                secs(Some(t.offline as f64)),
                percent(row.occupancy),
            ];
            let usage = columns
                .iter()
                .map(|c| row.usage.get(c).copied().unwrap_or(0).to_string());
            let fields: Vec<String> = fields.into_iter().chain(usage).collect();
            push_csv_line(&mut csv, &fields);
        }
        csv
    }
}

/// How each routing rule's steps fared over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteReport {
    /// What it covers (its intervals are not used).
    pub window: ReportWindow,
    /// By rule, then step.
    pub rows: Vec<RouteRow>,
    /// Contacts that queued in the window but whose record has no route
    /// (stored before routes were recorded).
    pub n_without_route: u64,
}

/// One step of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteRow {
    /// The rule's name.
    pub rule: String,
    /// The step, from 1 as the rule file lists them.
    pub step: u32,
    /// The group it queued in.
    pub group: GroupId,
    /// Contacts that waited in this step.
    pub n_entered: u64,
    /// Answered while in it.
    pub n_answered: u64,
    /// Left while in it.
    pub n_abandoned: u64,
    /// Still waiting in it.
    pub n_open: u64,
    /// Moved on to a later step of the same rule (timed out).
    pub n_overflowed: u64,
    /// Moved elsewhere before an answer (a supervisor's reassignment).
    pub n_moved: u64,
}

/// Builds a [`RouteReport`].
pub struct RouteReportBuilder {
    window: ReportWindow,
    rows: BTreeMap<(String, u32, GroupId), RouteRow>,
    n_without_route: u64,
}

impl RouteReportBuilder {
    /// A report over `window`.
    pub fn new(window: ReportWindow) -> RouteReportBuilder {
        RouteReportBuilder {
            window,
            rows: BTreeMap::new(),
            n_without_route: 0,
        }
    }

    /// Counts `session` if it first queued inside the window.
    pub fn add(&mut self, session: &Session) {
        let Some(queued) = session.times.queued else {
            return;
        };
        if self.window.interval_of(queued).is_none() {
            return;
        }
        if session.route.is_empty() {
            self.n_without_route += 1;
            return;
        }
        for (i, entry) in session.route.iter().enumerate() {
            let row = self
                .rows
                .entry((entry.rule.clone(), entry.step, entry.group.clone()))
                .or_insert_with(|| RouteRow {
                    rule: entry.rule.clone(),
                    step: entry.step + 1,
                    group: entry.group.clone(),
                    n_entered: 0,
                    n_answered: 0,
                    n_abandoned: 0,
                    n_open: 0,
                    n_overflowed: 0,
                    n_moved: 0,
                });
            row.n_entered += 1;
            match session.route.get(i + 1) {
                Some(next) if next.rule == entry.rule && next.step > entry.step => {
                    row.n_overflowed += 1;
                }
                Some(_) => row.n_moved += 1,
                None if session.times.answered.is_some() => row.n_answered += 1,
                None if session.state == SessionState::Abandoned => row.n_abandoned += 1,
                None => row.n_open += 1,
            }
        }
    }

    /// The report.
    pub fn finish(self) -> RouteReport {
        RouteReport {
            window: self.window,
            rows: self.rows.into_values().collect(),
            n_without_route: self.n_without_route,
        }
    }
}

impl RouteReport {
    /// The report as CSV: one line per rule and step.
    pub fn to_csv(&self) -> String {
        let mut csv =
            String::from("rule,step,group,entered,answered,abandoned,open,overflowed,moved\r\n");
        for row in &self.rows {
            let fields = [
                row.rule.clone(),
                row.step.to_string(),
                row.group.to_string(),
                row.n_entered.to_string(),
                row.n_answered.to_string(),
                row.n_abandoned.to_string(),
                row.n_open.to_string(),
                row.n_overflowed.to_string(),
                row.n_moved.to_string(),
            ];
            push_csv_line(&mut csv, &fields);
        }
        csv
    }
}

/// Appends one CSV line, quoting fields that need it (RFC 4180). A text
/// field a spreadsheet would take for a formula (`=`, `+`, `-`, `@` first,
/// and not a number) gets a leading `'`, so opening the file runs nothing.
fn push_csv_line(csv: &mut String, fields: &[String]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            csv.push(',');
        }
        let formula = field.starts_with(['=', '+', '-', '@']) && field.parse::<f64>().is_err();
        let quoted;
        let field = if formula {
            quoted = format!("'{field}");
            &quoted
        } else {
            field
        };
        if field.contains([',', '"', '\r', '\n']) {
            csv.push('"');
            csv.push_str(&field.replace('"', "\"\""));
            csv.push('"');
        } else {
            csv.push_str(field);
        }
    }
    csv.push_str("\r\n");
}

/// A ratio as a percentage with two decimals; empty for none.
fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(String::new, |r| format!("{:.2}", r * 100.0))
}

/// Milliseconds as seconds with three decimals; empty for none.
fn secs(ms: Option<f64>) -> String {
    ms.map_or_else(String::new, |ms| format!("{:.3}", ms / 1000.0))
}

/// Unix milliseconds as an RFC 3339 UTC time (`2026-12-06T09:15:00Z`).
pub fn iso(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at).map_or_else(
        || at.to_string(),
        |time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

pub mod usage;

pub use usage::{DeskPanel, UsageAction, UsageReport, UsageReportBuilder, UsageRow, usage_key};

#[cfg(test)]
mod tests;
