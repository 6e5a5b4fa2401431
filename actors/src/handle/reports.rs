//! Historical reports through the handle (docs/reports.md): the store read
//! page by page into the engine's report builders, so a month of contacts
//! is never held at once. Callers decide who may see which groups.

use std::collections::BTreeSet;
use std::sync::Mutex;

use engine::agent::Role;
use engine::ids::{AgentId, GroupId};
use engine::session::Session;
use engine::sla::report::{
    AgentLogEntry, AgentLogKind, AgentReport, AgentReportBuilder, DeskPanel, IntervalReport,
    IntervalReportBuilder, ReportWindow, RouteReport, RouteReportBuilder, UsageAction, UsageReport,
    UsageReportBuilder,
};
use store::{Store, StoreError, WriteOp};

use super::Switchboard;
use crate::error::ApiError;
use crate::store_writer::write_and_wait;

/// Records read from the store per page.
const PAGE: usize = 5_000;

/// Which groups a report covers: every one, or these (a supervisor's).
#[derive(Debug, Clone, Default)]
pub struct ReportScope {
    /// `None`: every group.
    pub groups: Option<BTreeSet<GroupId>>,
}

impl ReportScope {
    /// Covers `group` (a record without one only when every group is covered).
    pub fn covers(&self, group: Option<&GroupId>) -> bool {
        match (&self.groups, group) {
            (None, _) => true,
            (Some(groups), Some(group)) => groups.contains(group),
            (Some(_), None) => false,
        }
    }
}

impl Switchboard {
    /// The interval report over `window` of the contacts whose SLA group
    /// `scope` covers.
    pub async fn interval_report(
        &self,
        window: ReportWindow,
        scope: &ReportScope,
    ) -> Result<IntervalReport, ApiError> {
        let store = &*self.shared.store;
        let groups = store.list_groups().await?;
        let mut builder = IntervalReportBuilder::new(window, &groups);
        each_session(store, &window, |session| {
            if scope.covers(session.sla_group()) {
                builder.add(session);
            }
        })
        .await?;
        Ok(builder.finish())
    }

    /// The agent report over `window` of the agents in a group `scope`
    /// covers, time counted up to now.
    pub async fn agent_report(
        &self,
        window: ReportWindow,
        scope: &ReportScope,
    ) -> Result<AgentReport, ApiError> {
        let store = &*self.shared.store;
        let groups = store.list_groups().await?;
        let agents: BTreeSet<AgentId> = agents_in(store, scope)
            .await?
            .map(|agent| agent.id)
            .collect();
        let mut builder = AgentReportBuilder::new(window, crate::clock::now(), &groups);
        for agent in &agents {
            builder.include(agent);
            if let Some(entry) = store.agent_activity_before(agent, window.from).await? {
                builder.set_initial(&entry);
            }
        }
        // The sessions and the agents' log are read side by side (two
        // reader connections); the builder takes them in any order.
        let builder = Mutex::new(builder);
        let add = |f: &mut dyn FnMut(&mut AgentReportBuilder)| {
            f(&mut builder.lock().unwrap_or_else(|p| p.into_inner()));
        };
        // An agent in several groups: only the contacts of the groups in
        // scope count for them here.
        let sessions = each_session(store, &window, |session| {
            let theirs = session.agent.as_ref().is_some_and(|a| agents.contains(a));
            if theirs && scope.covers(session.sla_group()) {
                add(&mut |builder| builder.add_session(session));
            }
        });
        let log = each_log(store, &window, |entry| {
            if agents.contains(&entry.agent) {
                add(&mut |builder| builder.add_log(entry));
            }
        });
        tokio::try_join!(sessions, log)?;
        let builder = builder.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(builder.finish())
    }

    /// The routing report over `window`: the steps in a group `scope`
    /// covers.
    pub async fn route_report(
        &self,
        window: ReportWindow,
        scope: &ReportScope,
    ) -> Result<RouteReport, ApiError> {
        let store = &*self.shared.store;
        let mut builder = RouteReportBuilder::new(window);
        each_session(store, &window, |session| {
            let covered = match session.route.is_empty() {
                true => scope.covers(session.sla_group()),
                false => session
                    .route
                    .iter()
                    .any(|step| scope.covers(Some(&step.group))),
            };
            if covered {
                builder.add(session);
            }
        })
        .await?;
        let mut report = builder.finish();
        report.rows.retain(|row| scope.covers(Some(&row.group)));
        Ok(report)
    }
}

impl Switchboard {
    /// Records that `agent` used `action` (a `panel` for
    /// [`UsageAction::PanelUsed`]) in the desktop layout of `layout`, now;
    /// returns once it is stored (docs/reports.md "Desktop usage").
    pub async fn record_usage(
        &self,
        agent: &engine::ids::AgentId,
        action: UsageAction,
        panel: Option<DeskPanel>,
        layout: Role,
    ) -> Result<(), ApiError> {
        let at = crate::clock::now();
        let entry = AgentLogEntry {
            agent: agent.clone(),
            at,
            id: self.shared.audit_id(at),
            kind: AgentLogKind::Usage {
                action,
                panel: panel.filter(|_| action == UsageAction::PanelUsed),
                layout,
            },
        };
        write_and_wait(&self.shared.writer, vec![WriteOp::PutAgentLog(entry)]).await?;
        Ok(())
    }

    /// [`Switchboard::record_usage`] without waiting: what the server
    /// records beside an action that already succeeded (a transfer, a
    /// ticket); a failed write is logged.
    pub fn note_usage(&self, agent: &engine::ids::AgentId, action: UsageAction, layout: Role) {
        let at = crate::clock::now();
        let entry = AgentLogEntry {
            agent: agent.clone(),
            at,
            id: self.shared.audit_id(at),
            kind: AgentLogKind::Usage {
                action,
                panel: None,
                layout,
            },
        };
        let agent = agent.clone();
        let done: crate::store_writer::Completion = Box::new(move |result| {
            if let Err(err) = result {
                tracing::warn!(agent_id = %agent, action = action.as_str(), error = %err, "usage not recorded");
            }
        });
        // A writer that is gone is a node shutting down.
        let _ = self
            .shared
            .writer
            .cast(crate::store_writer::StoreWriterMessage::Write {
                ops: vec![WriteOp::PutAgentLog(entry)],
                done,
            });
    }

    /// The desktop usage report over `window` of the agents in a group
    /// `scope` covers, per role layout.
    pub async fn usage_report(
        &self,
        window: ReportWindow,
        scope: &ReportScope,
    ) -> Result<UsageReport, ApiError> {
        let store = &*self.shared.store;
        let roles: std::collections::BTreeMap<_, _> = agents_in(store, scope)
            .await?
            .map(|agent| (agent.id, agent.role))
            .collect();
        let builder = Mutex::new(UsageReportBuilder::new(window, roles.clone()));
        let add = |f: &mut dyn FnMut(&mut UsageReportBuilder)| {
            f(&mut builder.lock().unwrap_or_else(|p| p.into_inner()));
        };
        let sessions = each_session(store, &window, |session| {
            if scope.covers(session.sla_group()) {
                add(&mut |builder| builder.add_session(session));
            }
        });
        let log = each_log(store, &window, |entry| {
            if roles.contains_key(&entry.agent) {
                add(&mut |builder| builder.add_log(entry));
            }
        });
        tokio::try_join!(sessions, log)?;
        let builder = builder.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(builder.finish())
    }
}

/// The agents of the groups `scope` covers.
async fn agents_in(
    store: &dyn Store,
    scope: &ReportScope,
) -> Result<impl Iterator<Item = engine::agent::Agent>, StoreError> {
    let agents = store.list_agents().await?;
    let scope = scope.clone();
    Ok(agents
        .into_iter()
        .filter(move |agent| agent.groups.iter().any(|group| scope.covers(Some(group)))))
}

/// Feeds every agent log entry in `window` to `each`, a page at a time.
async fn each_log(
    store: &dyn Store,
    window: &ReportWindow,
    mut each: impl FnMut(&AgentLogEntry),
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = store.agent_log(window.from, window.to, after, PAGE).await?;
        for entry in &page {
            each(entry);
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some((last.at, last.id)),
            _ => return Ok(()),
        }
    }
}

/// Feeds every session that first queued in `window` to `each`, a page at
/// a time.
async fn each_session(
    store: &dyn Store,
    window: &ReportWindow,
    mut each: impl FnMut(&Session),
) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let page = store
            .sessions_queued(window.from, window.to, after, PAGE)
            .await?;
        for session in &page {
            each(session);
        }
        match page.last() {
            Some(last) if page.len() == PAGE => {
                after = last.times.queued.map(|queued| (queued, last.id));
            }
            _ => return Ok(()),
        }
    }
}
