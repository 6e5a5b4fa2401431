//! Historical reports from the store (docs/reports.md):
//!
//! | method and path | what | who |
//! |---|---|---|
//! | `GET /api/v1/reports/intervals` | per 15/30/60-minute interval, group and channel: offered, answered, abandoned, service level, ASA, AHT, longest wait | supervisors (their groups), admins |
//! | `GET /api/v1/reports/agents` | per agent: answered, handled, AHT, first response, time in each activity, occupancy | supervisors (agents of their groups), admins |
//! | `GET /api/v1/reports/routes` | per routing rule and step: entered, answered, abandoned, overflowed, moved | supervisors (steps in their groups), admins |
//! | `GET /api/v1/reports/usage` | per role layout: desktop actions and panels used, offer → first reply | supervisors (agents of their groups), admins |
//!
//! Each takes a window `from`–`to` (ms since the Unix epoch; default the
//! last 24 hours, at most 31 days) and answers JSON, or CSV with
//! `format=csv`. Contacts count in the interval they first queued in and in
//! their SLA group, with the definitions of docs/sla.md (`engine::sla`).

use std::collections::{BTreeMap, BTreeSet};

use actors::ReportScope;
use axum::Json;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use engine::EngineError;
use engine::Millis;
use engine::ids::GroupId;
use engine::sla::report::{AgentReport, IntervalReport, ReportWindow, RouteReport, UsageReport};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{Caller, Overseer};
use crate::error::{ErrorBody, HttpError, invalid_field};
use crate::extract::ApiQuery;
use crate::state::AppState;
use crate::wire::Time;

/// 9999-12-31T23:59:59.999Z: the latest `to`.
const LATEST: i64 = 253_402_300_799_999;
/// The window without `from`.
const DEFAULT_WINDOW_MS: Millis = 24 * 60 * 60 * 1000;

/// A report's window, group and format.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ReportQuery {
    /// From this time (ms since the Unix epoch, inclusive); default 24 hours before `to`.
    pub from: Option<i64>,
    /// Up to this time (exclusive); default now. At most 31 days after `from`.
    pub to: Option<i64>,
    /// Interval length in minutes: 15, 30 or 60 (default 60); the interval report only.
    pub interval: Option<u32>,
    /// Only this group (a supervisor's own; default every group the caller may see).
    pub group: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// What a report covers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportSpan {
    /// Start, inclusive.
    pub from: Time,
    /// End, exclusive.
    pub to: Time,
    /// Interval length in minutes.
    pub interval_minutes: u32,
}

/// `GET /api/v1/reports/intervals`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntervalReportBody {
    /// What it covers.
    pub window: ReportSpan,
    /// Oldest interval first, then by group; a group's row over every
    /// channel (`channel` null) is there for every interval of the window
    /// once the group had a contact in it, then one row per channel with
    /// contacts in that interval.
    pub rows: Vec<IntervalRowBody>,
}

/// One interval of one group (and channel).
#[derive(Debug, Serialize, ToSchema)]
pub struct IntervalRowBody {
    /// Interval start.
    pub start: Time,
    /// Interval end.
    pub end: Time,
    /// The SLA group.
    pub group: String,
    /// The channel; null: every channel together.
    pub channel: Option<String>,
    /// The group's service-level target in percent.
    pub target_pct: f64,
    /// Contacts that first queued in the interval.
    pub offered: u64,
    /// Of those, answered.
    pub answered: u64,
    /// Answered within their channel's threshold.
    pub answered_within: u64,
    /// Left before an answer, short abandons included.
    pub abandoned: u64,
    /// Left sooner than the group's short-abandon time.
    pub short_abandoned: u64,
    /// Still waiting.
    pub open: u64,
    /// answered_within / (answered + abandoned − short_abandoned), 0–1.
    pub service_level: Option<f64>,
    /// Mean wait of the answered contacts.
    pub asa_ms: Option<f64>,
    /// Mean handle time of the closed ones.
    pub aht_ms: Option<f64>,
    /// The longest wait until an answer or abandon.
    pub longest_wait_ms: Option<i64>,
    /// abandoned / offered, 0–1.
    pub abandonment_rate: Option<f64>,
}

/// `GET /api/v1/reports/agents`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentReportBody {
    /// What it covers.
    pub window: ReportSpan,
    /// Time is counted up to here (the window's end, or now).
    pub counted_until: Time,
    /// One row per agent, by id.
    pub rows: Vec<AgentRowBody>,
}

/// One agent's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentRowBody {
    /// The agent.
    pub agent: String,
    /// Contacts that queued in the window and that this agent answered (a
    /// contact transferred after its answer counts for the agent it went to).
    pub answered: u64,
    /// Of those, within their channel's threshold.
    pub answered_within: u64,
    /// Of those, closed.
    pub handled: u64,
    /// Mean handle time.
    pub aht_ms: Option<f64>,
    /// Mean time from the answer to the first agent message.
    pub first_response_mean_ms: Option<f64>,
    /// 90th percentile of those.
    pub first_response_p90_ms: Option<i64>,
    /// Time on contacts.
    pub on_contact_ms: i64,
    /// Time available without contacts.
    pub available_idle_ms: i64,
    /// Time away (breaks, not responding).
    pub away_ms: i64,
    /// Time in wrap-up.
    pub wrap_up_ms: i64,
    /// Time offline (or nothing known).
    pub offline_ms: i64,
    /// (on contact + wrap-up) / (that + available idle), 0–1.
    pub occupancy: Option<f64>,
    /// Desktop actions and panels used: `suggestion_inserted`,
    /// `kb_article_inserted`, `transfer`, `ticket_created`,
    /// `panel_used:<panel>` → count (only those used).
    pub usage: BTreeMap<String, u64>,
}

/// `GET /api/v1/reports/usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReportBody {
    /// What it covers.
    pub window: ReportSpan,
    /// One row per role layout (junior, expert, supervisor) with anything in it.
    pub rows: Vec<UsageRowBody>,
}

/// One role layout's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRowBody {
    /// `junior`, `expert` or `supervisor`: the desktop layout of that role.
    pub layout: String,
    /// Agents of the layout who answered or used anything.
    pub agents: u64,
    /// Contacts that queued in the window answered by agents of the layout.
    pub answered: u64,
    /// Mean time from a contact's first offer to the first agent reply.
    pub offer_to_first_reply_mean_ms: Option<f64>,
    /// 90th percentile of those.
    pub offer_to_first_reply_p90_ms: Option<i64>,
    /// Actions and panels used in the layout → count.
    pub usage: BTreeMap<String, u64>,
}

/// `GET /api/v1/reports/routes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteReportBody {
    /// What it covers.
    pub window: ReportSpan,
    /// By rule, then step.
    pub rows: Vec<RouteRowBody>,
    /// Contacts whose record has no route (stored by an older build).
    pub without_route: u64,
}

/// One step of one routing rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteRowBody {
    /// The rule (`direct`: a supervisor's reassignment; `fallback`: no rule matched).
    pub rule: String,
    /// The step, from 1 as the rule file lists them.
    pub step: u32,
    /// Its group.
    pub group: String,
    /// Contacts that waited in it.
    pub entered: u64,
    /// Answered there.
    pub answered: u64,
    /// Left there.
    pub abandoned: u64,
    /// Still waiting there.
    pub open: u64,
    /// Moved on to a later step of the rule (timed out).
    pub overflowed: u64,
    /// Moved elsewhere before an answer (a supervisor's reassignment).
    pub moved: u64,
}

/// The window, the groups the caller may see, and the format asked for.
struct Asked {
    window: ReportWindow,
    scope: ReportScope,
    csv: bool,
}

async fn asked(
    state: &AppState,
    caller: &Caller,
    query: &ReportQuery,
    interval_report: bool,
) -> Result<Asked, HttpError> {
    let overseer: Overseer = caller.overseer(state).await?;
    let to = query.to.unwrap_or_else(actors::clock::now);
    if to > LATEST {
        return Err(invalid_field("to", format!("{to} is after the year 9999")));
    }
    let from = query.from.unwrap_or(to.saturating_sub(DEFAULT_WINDOW_MS));
    if query.interval.is_some() && !interval_report {
        return Err(invalid_field(
            "interval",
            "only the interval report takes an interval",
        ));
    }
    let window = ReportWindow::new(from, to, query.interval.unwrap_or(60)).map_err(engine_error)?;
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(invalid_field(
                "format",
                format!("`{other}`: use json or csv"),
            ));
        }
    };
    // A group no longer configured keeps its history: an admin sees it,
    // a supervisor the groups of their profile.
    let groups = match &query.group {
        Some(group) => {
            let group = GroupId::new(group);
            overseer.check_group(&group)?;
            Some(BTreeSet::from([group]))
        }
        None => overseer
            .groups()
            .map(|groups| groups.iter().cloned().collect()),
    };
    Ok(Asked {
        window,
        scope: ReportScope { groups },
        csv,
    })
}

fn engine_error(err: EngineError) -> HttpError {
    match err {
        EngineError::Invalid { field, reason } => invalid_field(field, reason),
        other => HttpError::bad_request(other.to_string()),
    }
}

fn span(window: &ReportWindow) -> ReportSpan {
    ReportSpan {
        from: Time(window.from),
        to: Time(window.to),
        interval_minutes: u32::try_from(window.interval_ms / 60_000).unwrap_or(60),
    }
}

/// The report as asked: CSV (a download named after the report and the
/// window) or JSON.
fn answer<R, B: Serialize>(
    asked: &Asked,
    name: &str,
    report: &R,
    csv: fn(&R) -> String,
    json: fn(&R) -> B,
) -> Response {
    if !asked.csv {
        return Json(json(report)).into_response();
    }
    let file = format!(
        "attachment; filename=\"{name}-{}-{}.csv\"",
        asked.window.from, asked.window.to
    );
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (CONTENT_DISPOSITION, file),
        ],
        csv(report),
    )
        .into_response()
}

/// Interval report: per interval, group and channel.
#[utoipa::path(
    get,
    path = "/api/v1/reports/intervals",
    tag = "reports",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report (JSON, or CSV with `format=csv`)", body = IntervalReportBody),
        (status = 400, description = "A bad window, interval or format (`invalid`, `details.field`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin, or `group` is not one of the supervisor's", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn interval_report(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, HttpError> {
    let asked = asked(&state, &caller, &query, true).await?;
    let report = state
        .switchboard
        .interval_report(asked.window, &asked.scope)
        .await?;
    Ok(answer(
        &asked,
        "intervals",
        &report,
        IntervalReport::to_csv,
        interval_body,
    ))
}

fn interval_body(report: &IntervalReport) -> IntervalReportBody {
    IntervalReportBody {
        window: span(&report.window),
        rows: report
            .rows
            .iter()
            .map(|row| {
                let f = &row.figures;
                IntervalRowBody {
                    start: Time(row.start),
                    end: Time(row.end),
                    group: row.group.to_string(),
                    channel: row.channel.as_ref().map(|c| c.as_str().to_owned()),
                    target_pct: row.target_pct,
                    offered: f.n_entered,
                    answered: f.n_answered,
                    answered_within: f.n_answered_within,
                    abandoned: f.n_abandoned,
                    short_abandoned: f.n_short_abandoned,
                    open: f.n_open,
                    service_level: f.service_level,
                    asa_ms: f.asa_ms,
                    aht_ms: f.aht_ms,
                    longest_wait_ms: f.longest_wait_ms,
                    abandonment_rate: f.abandonment_rate,
                }
            })
            .collect(),
    }
}

/// Per-agent report.
#[utoipa::path(
    get,
    path = "/api/v1/reports/agents",
    tag = "reports",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report (JSON, or CSV with `format=csv`)", body = AgentReportBody),
        (status = 400, description = "A bad window or format (`invalid`, `details.field`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin, or `group` is not one of the supervisor's", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn agent_report(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, HttpError> {
    let asked = asked(&state, &caller, &query, false).await?;
    let report = state
        .switchboard
        .agent_report(asked.window, &asked.scope)
        .await?;
    Ok(answer(
        &asked,
        "agents",
        &report,
        AgentReport::to_csv,
        agent_body,
    ))
}

fn agent_body(report: &AgentReport) -> AgentReportBody {
    AgentReportBody {
        window: span(&report.window),
        counted_until: Time(report.counted_until),
        rows: report
            .rows
            .iter()
            .map(|row| AgentRowBody {
                agent: row.agent.to_string(),
                answered: row.n_answered,
                answered_within: row.n_answered_within,
                handled: row.n_handled,
                aht_ms: row.aht_ms,
                first_response_mean_ms: row.first_response_mean_ms,
                first_response_p90_ms: row.first_response_p90_ms,
                on_contact_ms: row.time_ms.on_contact,
                available_idle_ms: row.time_ms.available_idle,
                away_ms: row.time_ms.away,
                wrap_up_ms: row.time_ms.wrap_up,
                offline_ms: row.time_ms.offline,
                occupancy: row.occupancy,
                usage: row.usage.clone(),
            })
            .collect(),
    }
}

/// Per routing rule and step.
#[utoipa::path(
    get,
    path = "/api/v1/reports/routes",
    tag = "reports",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report (JSON, or CSV with `format=csv`)", body = RouteReportBody),
        (status = 400, description = "A bad window or format (`invalid`, `details.field`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin, or `group` is not one of the supervisor's", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn route_report(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, HttpError> {
    let asked = asked(&state, &caller, &query, false).await?;
    let report = state
        .switchboard
        .route_report(asked.window, &asked.scope)
        .await?;
    Ok(answer(
        &asked,
        "routes",
        &report,
        RouteReport::to_csv,
        route_body,
    ))
}

fn route_body(report: &RouteReport) -> RouteReportBody {
    RouteReportBody {
        window: span(&report.window),
        rows: report
            .rows
            .iter()
            .map(|row| RouteRowBody {
                rule: row.rule.clone(),
                step: row.step,
                group: row.group.to_string(),
                entered: row.n_entered,
                answered: row.n_answered,
                abandoned: row.n_abandoned,
                open: row.n_open,
                overflowed: row.n_overflowed,
                moved: row.n_moved,
            })
            .collect(),
        without_route: report.n_without_route,
    }
}

/// Desktop usage per role layout.
#[utoipa::path(
    get,
    path = "/api/v1/reports/usage",
    tag = "reports",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report (JSON, or CSV with `format=csv`)", body = UsageReportBody),
        (status = 400, description = "A bad window or format (`invalid`, `details.field`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin, or `group` is not one of the supervisor's", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn usage_report(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, HttpError> {
    let asked = asked(&state, &caller, &query, false).await?;
    let report = state
        .switchboard
        .usage_report(asked.window, &asked.scope)
        .await?;
    Ok(answer(
        &asked,
        "usage",
        &report,
        UsageReport::to_csv,
        usage_body,
    ))
}

fn usage_body(report: &UsageReport) -> UsageReportBody {
    UsageReportBody {
        window: span(&report.window),
        rows: report
            .rows
            .iter()
            .map(|row| UsageRowBody {
                layout: row.layout.as_str().to_owned(),
                agents: row.n_agents,
                answered: row.n_answered,
                offer_to_first_reply_mean_ms: row.offer_to_first_reply_mean_ms,
                offer_to_first_reply_p90_ms: row.offer_to_first_reply_p90_ms,
                usage: row.usage.clone(),
            })
            .collect(),
    }
}
