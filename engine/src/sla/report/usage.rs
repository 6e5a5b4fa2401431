//! Desktop usage (docs/reports.md "Desktop usage"): which actions and panels
//! agents use, and how soon they first reply after an offer, per role
//! layout — the evidence for tuning the desktop's layouts and the routing.
//! Entries carry the agent id, the time, the action and the layout; nothing
//! about the customer or what was written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AgentLogEntry, AgentLogKind, ReportWindow, push_csv_line, secs};
use crate::Millis;
use crate::agent::Role;
use crate::ids::AgentId;
use crate::session::Session;
use crate::sla::{quantile_of_sorted, ratio};

/// A desktop action worth counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageAction {
    /// A reply suggestion put into the composer (click or Alt+1–3).
    SuggestionInserted,
    /// A knowledge-base article put into the composer.
    KbArticleInserted,
    /// A conversation handed to another group or agent.
    Transfer,
    /// A ticket opened from the desktop.
    TicketCreated,
    /// A panel worked in ([`DeskPanel`]), counted at most once a minute per
    /// panel and desktop.
    PanelUsed,
}

impl UsageAction {
    /// Every action, in report order.
    pub const ALL: [UsageAction; 5] = [
        UsageAction::SuggestionInserted,
        UsageAction::KbArticleInserted,
        UsageAction::Transfer,
        UsageAction::TicketCreated,
        UsageAction::PanelUsed,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageAction::SuggestionInserted => "suggestion_inserted",
            UsageAction::KbArticleInserted => "kb_article_inserted",
            UsageAction::Transfer => "transfer",
            UsageAction::TicketCreated => "ticket_created",
            UsageAction::PanelUsed => "panel_used",
        }
    }

    /// Parses [`UsageAction::as_str`].
    pub fn parse(name: &str) -> Option<UsageAction> {
        UsageAction::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// A panel of the desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeskPanel {
    /// The customer 360° view.
    Customer,
    /// Ticket entry and the customer's tickets.
    Tickets,
    /// Knowledge-base search.
    Kb,
    /// Reply suggestions.
    Suggestions,
    /// The session's event timeline and routing decision (experts).
    Diagnostics,
    /// The wallboard (supervisors).
    Wallboard,
    /// Supervisor control.
    Control,
    /// The reports (supervisors).
    Reports,
}

impl DeskPanel {
    /// Every panel.
    pub const ALL: [DeskPanel; 8] = [
        DeskPanel::Customer,
        DeskPanel::Tickets,
        DeskPanel::Kb,
        DeskPanel::Suggestions,
        DeskPanel::Diagnostics,
        DeskPanel::Wallboard,
        DeskPanel::Control,
        DeskPanel::Reports,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeskPanel::Customer => "customer",
            DeskPanel::Tickets => "tickets",
            DeskPanel::Kb => "kb",
            DeskPanel::Suggestions => "suggestions",
            DeskPanel::Diagnostics => "diagnostics",
            DeskPanel::Wallboard => "wallboard",
            DeskPanel::Control => "control",
            DeskPanel::Reports => "reports",
        }
    }

    /// Parses [`DeskPanel::as_str`].
    pub fn parse(name: &str) -> Option<DeskPanel> {
        DeskPanel::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// How an action is counted in a report: its name, or `panel_used:<panel>`.
pub fn usage_key(action: UsageAction, panel: Option<DeskPanel>) -> String {
    match (action, panel) {
        (UsageAction::PanelUsed, Some(panel)) => format!("panel_used:{}", panel.as_str()),
        (action, _) => action.as_str().to_owned(),
    }
}

/// Usage per role layout over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    /// What it covers (its intervals are not used).
    pub window: ReportWindow,
    /// One row per layout (junior, expert, supervisor) with anything in it.
    pub rows: Vec<UsageRow>,
}

/// One role layout's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// The layout (the role whose desktop it is).
    pub layout: Role,
    /// Agents of this layout who answered a contact or used anything.
    pub n_agents: u64,
    /// Contacts that queued in the window, answered by agents of this
    /// layout (their role now).
    pub n_answered: u64,
    /// Mean time from the contact's first offer to the first agent reply.
    pub offer_to_first_reply_mean_ms: Option<f64>,
    /// Nearest-rank 90th percentile of those.
    pub offer_to_first_reply_p90_ms: Option<Millis>,
    /// Actions and panels used in this layout, by [`usage_key`].
    pub usage: BTreeMap<String, u64>,
}

#[derive(Default)]
struct LayoutTally {
    agents: std::collections::BTreeSet<AgentId>,
    n_answered: u64,
    offer_to_reply: Vec<Millis>,
    usage: BTreeMap<String, u64>,
}

/// Builds a [`UsageReport`] from sessions and agent log entries.
pub struct UsageReportBuilder {
    window: ReportWindow,
    roles: BTreeMap<AgentId, Role>,
    layouts: BTreeMap<&'static str, (Role, LayoutTally)>,
}

impl UsageReportBuilder {
    /// A report over `window`; `roles` places answered contacts in their
    /// agent's layout (an agent not listed is left out).
    pub fn new(window: ReportWindow, roles: BTreeMap<AgentId, Role>) -> UsageReportBuilder {
        UsageReportBuilder {
            window,
            roles,
            layouts: BTreeMap::new(),
        }
    }

    fn layout(&mut self, role: Role) -> &mut LayoutTally {
        &mut self
            .layouts
            .entry(role.as_str())
            .or_insert_with(|| (role, LayoutTally::default()))
            .1
    }

    /// Counts `session` if it first queued inside the window and was
    /// answered by an agent whose role is known.
    pub fn add_session(&mut self, session: &Session) {
        let times = &session.times;
        let in_window = times
            .queued
            .is_some_and(|queued| self.window.interval_of(queued).is_some());
        let (Some(agent), Some(_), true) = (&session.agent, times.answered, in_window) else {
            return;
        };
        let Some(&role) = self.roles.get(agent) else {
            return;
        };
        let agent = agent.clone();
        let tally = self.layout(role);
        tally.agents.insert(agent);
        tally.n_answered += 1;
        if let (Some(offered), Some(first_reply)) = (times.offered, times.first_response) {
            tally
                .offer_to_reply
                .push(first_reply.saturating_sub(offered).max(0));
        }
    }

    /// Counts a usage entry inside the window in the layout it was used in.
    pub fn add_log(&mut self, entry: &AgentLogEntry) {
        if !(self.window.from..self.window.to).contains(&entry.at) {
            return;
        }
        let AgentLogKind::Usage {
            action,
            panel,
            layout,
        } = entry.kind
        else {
            return;
        };
        let agent = entry.agent.clone();
        let tally = self.layout(layout);
        tally.agents.insert(agent);
        *tally.usage.entry(usage_key(action, panel)).or_default() += 1;
    }

    /// The report.
    pub fn finish(self) -> UsageReport {
        let mut layouts = self.layouts;
        let rows = [Role::Junior, Role::Expert, Role::Supervisor]
            .into_iter()
            .filter_map(|role| {
                let (_, mut tally) = layouts.remove(role.as_str())?;
                tally.offer_to_reply.sort_unstable();
                let total: i128 = tally.offer_to_reply.iter().map(|&ms| i128::from(ms)).sum();
                Some(UsageRow {
                    layout: role,
                    n_agents: tally.agents.len() as u64,
                    n_answered: tally.n_answered,
                    offer_to_first_reply_mean_ms: ratio(
                        total as f64,
                        tally.offer_to_reply.len() as u64,
                    ),
                    offer_to_first_reply_p90_ms: quantile_of_sorted(&tally.offer_to_reply, 0.9),
                    usage: tally.usage,
                })
            })
            .collect();
        UsageReport {
            window: self.window,
            rows,
        }
    }
}

/// The columns of the usage counts in the CSVs: every action, then every
/// panel.
pub fn usage_columns() -> Vec<String> {
    let mut columns: Vec<String> = UsageAction::ALL
        .into_iter()
        .filter(|action| *action != UsageAction::PanelUsed)
        .map(|action| action.as_str().to_owned())
        .collect();
    columns.extend(
        DeskPanel::ALL
            .into_iter()
            .map(|panel| usage_key(UsageAction::PanelUsed, Some(panel))),
    );
    columns
}

impl UsageReport {
    /// The report as CSV: one line per layout.
    pub fn to_csv(&self) -> String {
        let columns = usage_columns();
        let mut csv = String::from(
            "layout,agents,answered,offer_to_first_reply_mean_secs,offer_to_first_reply_p90_secs",
        );
        for column in &columns {
            csv.push(',');
            csv.push_str(column);
        }
        csv.push_str("\r\n");
        for row in &self.rows {
            let mut fields = vec![
                row.layout.as_str().to_owned(),
                row.n_agents.to_string(),
                row.n_answered.to_string(),
                secs(row.offer_to_first_reply_mean_ms),
                secs(row.offer_to_first_reply_p90_ms.map(|ms| ms as f64)),
            ];
            fields.extend(
                columns
                    .iter()
                    .map(|c| row.usage.get(c).copied().unwrap_or(0).to_string()),
            );
            push_csv_line(&mut csv, &fields);
        }
        csv
    }
}
