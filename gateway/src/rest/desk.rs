//! What the agent desktop shows beyond sessions and tickets: the supervisor's
//! live wallboard and an expert's diagnostics of one session.
//!
//! - `GET /api/v1/wallboard`: supervisors (their groups) and admins (every
//!   group): each queue, its members by state, and its service level since the
//!   server started (the figures `/metrics` counts, DESIGN §7, docs/sla.md).
//! - `GET /api/v1/sessions/{id}/diagnostics`: experts, supervisors and admins
//!   who may read the session: its whole event timeline (offers included) and
//!   the routing decision, re-evaluated with the rules in force.

use std::collections::BTreeMap;

use actors::EventKind;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::agent::{Agent, Role as AgentRole};
use engine::message::Sender;
use engine::presence::Presence;
use engine::routing::{Contact, RoutePlan};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Caller;
use crate::auth::Role;
use crate::error::{ErrorBody, HttpError, store_error};
use crate::rest::sessions::parse_session_id;
use crate::rest::types::PresenceRecord;
use crate::state::AppState;
use crate::wire::Time;
use crate::wire::event::{EventFrame, Viewer, event_frame};
use crate::wire::records::SessionRecord;

/// The live wallboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Wallboard {
    /// When it was read.
    pub at: Time,
    /// The caller's groups (every group for admins).
    pub groups: Vec<WallboardGroup>,
    /// The members of those groups.
    pub agents: Vec<WallboardAgent>,
}

/// One group on the wallboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WallboardGroup {
    /// Group id.
    pub id: String,
    /// Shown on the board.
    pub display_name: String,
    /// Sessions waiting now.
    pub n_waiting: usize,
    /// Members available with free capacity.
    pub n_ready_agents: usize,
    /// The oldest waiting session's wait, in milliseconds.
    pub longest_wait_ms: Option<i64>,
    /// Members by activity: `available`, `busy` (available and holding
    /// sessions), `away`, `wrap_up`, `not_responding`, `offline`.
    pub agents_by_state: BTreeMap<String, usize>,
    /// Service level since the server started.
    pub service_level: ServiceLevel,
    /// Service level over the last 15 minutes (as `service_level`, of the
    /// contacts answered or abandoned in that time).
    pub service_level_15m: RecentServiceLevel,
    /// The same over the last 60 minutes.
    pub service_level_60m: RecentServiceLevel,
    /// The service level of each 5-minute slot of the last hour, oldest
    /// first (12 values, 0–1, `null` for a slot with nothing answered or
    /// abandoned): the wallboard's sparkline.
    pub sparkline: Vec<Option<f64>>,
    /// The last 15 minutes' service level is below the target: the
    /// wallboard's alert.
    pub below_target: bool,
}

/// A group's service level over a recent span.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecentServiceLevel {
    /// Answered by an agent in the span.
    pub n_answered: u64,
    /// Of those, within the threshold.
    pub n_answered_within: u64,
    /// Left unanswered in the span (short abandons included).
    pub n_abandoned: u64,
    /// Left before `short_abandon_secs`.
    pub n_short_abandoned: u64,
    /// `n_answered_within / (n_answered + n_abandoned - n_short_abandoned)`,
    /// 0–1; `null` with nothing answered or abandoned in the span.
    pub fraction: Option<f64>,
}

impl From<engine::sla::SlaTally> for RecentServiceLevel {
    fn from(tally: engine::sla::SlaTally) -> Self {
        RecentServiceLevel {
            n_answered: tally.n_answered,
            n_answered_within: tally.n_answered_within,
            n_abandoned: tally.n_abandoned,
            n_short_abandoned: tally.n_short_abandoned,
            fraction: tally.service_level(),
        }
    }
}

/// A group's service level since the server started, counted as docs/sla.md
/// defines it (a contact counts in [`engine::session::Session::sla_group`]):
/// the same figures as `/metrics` and the SLA report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceLevel {
    /// Contacts that count in the group: they entered its queue and did not
    /// move on to another group before being answered.
    pub n_entered: u64,
    /// Entries into the group's queue, every one (overflows and transfers
    /// into it, also of contacts answered elsewhere before): the queue's
    /// load, not its contacts.
    pub n_queue_entries: u64,
    /// Answered by an agent.
    pub n_answered: u64,
    /// Answered within the threshold.
    pub n_answered_within: u64,
    /// Left unanswered (short abandons included).
    pub n_abandoned: u64,
    /// Left before `short_abandon_secs` (not held against the group).
    pub n_short_abandoned: u64,
    /// `n_answered_within / (n_answered + n_abandoned - n_short_abandoned)`,
    /// 0–1; `null` before the first answer or abandon.
    pub fraction: Option<f64>,
    /// `n_abandoned / n_entered`, 0–1 (short abandons included); `null`
    /// before the first contact.
    pub abandonment_rate: Option<f64>,
    /// The group's target, in percent.
    pub target_pct: f64,
    /// Answer within this many seconds (the default; channels may differ).
    pub threshold_secs: u32,
}

/// One agent on the wallboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WallboardAgent {
    /// Login name.
    pub id: String,
    /// Shown on the board.
    pub display_name: String,
    /// `junior`, `expert` or `supervisor`.
    pub role: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// Presence now.
    pub presence: PresenceRecord,
    /// As in [`WallboardGroup::agents_by_state`].
    pub activity: String,
    /// Sessions held now.
    pub n_sessions: usize,
    /// Offers waiting for their answer.
    pub n_offers: usize,
}

/// Queues, agents by state and service level of the caller's groups.
#[utoipa::path(
    get,
    path = "/api/v1/wallboard",
    tag = "groups",
    responses(
        (status = 200, description = "The live wallboard", body = Wallboard),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn wallboard(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Wallboard>, HttpError> {
    let profile = caller.agent_profile(&state).await?;
    let store = state.switchboard.store();
    let mut groups = store.list_groups().await.map_err(store_error)?;
    match (caller.role(), &profile) {
        (Role::Admin, _) => {}
        (Role::Supervisor, Some(me)) => groups.retain(|group| me.groups.contains(&group.id)),
        _ => {
            return Err(HttpError::forbidden(
                "the wallboard needs a supervisor or admin token",
            ));
        }
    }
    let mut agents: Vec<Agent> = store.list_agents().await.map_err(store_error)?;
    agents.retain(|agent| {
        agent
            .groups
            .iter()
            .any(|g| groups.iter().any(|group| &group.id == g))
    });
    let views = join_all(
        agents
            .iter()
            .map(|agent| state.switchboard.agent_view(&agent.id)),
    )
    .await;
    let queues = join_all(
        groups
            .iter()
            .map(|group| state.switchboard.group_view(&group.id)),
    )
    .await;
    let tallies = state.switchboard.sla_tallies();
    let (windows, now) = state.switchboard.sla_windows();
    let mut board_agents = Vec::with_capacity(agents.len());
    for (agent, view) in agents.iter().zip(views) {
        let view = view?;
        board_agents.push(WallboardAgent {
            id: agent.id.to_string(),
            display_name: agent.display_name.clone(),
            role: agent.role.as_str().to_string(),
            groups: agent.groups.iter().map(ToString::to_string).collect(),
            presence: PresenceRecord::from(&view.presence),
            activity: activity(&view.presence, view.sessions.len()).to_string(),
            n_sessions: view.sessions.len(),
            n_offers: view.offers.len(),
        });
    }
    let mut board_groups = Vec::with_capacity(groups.len());
    for (group, queue) in groups.iter().zip(queues) {
        let queue = queue?;
        let mut agents_by_state = BTreeMap::new();
        for (agent, board_agent) in agents.iter().zip(&board_agents) {
            if agent.groups.contains(&group.id) {
                *agents_by_state
                    .entry(board_agent.activity.clone())
                    .or_insert(0) += 1;
            }
        }
        let tally = tallies.get(&group.id).copied().unwrap_or_default();
        let window = windows.get(&group.id).cloned().unwrap_or_default();
        let last_15 = window.over(15, now);
        let below_target = last_15
            .service_level()
            .is_some_and(|fraction| fraction * 100.0 < group.sla_target_pct);
        board_groups.push(WallboardGroup {
            service_level_15m: last_15.into(),
            service_level_60m: window.over(60, now).into(),
            sparkline: window.sparkline(5, now),
            below_target,
            id: group.id.to_string(),
            display_name: group.display_name.clone(),
            n_waiting: queue.waiting.len(),
            n_ready_agents: queue.n_ready_agents,
            longest_wait_ms: queue.longest_wait_ms,
            agents_by_state,
            service_level: ServiceLevel {
                n_entered: tally.n_entered(),
                n_queue_entries: tally.n_queue_entries,
                n_answered: tally.n_answered,
                n_answered_within: tally.n_answered_within,
                n_abandoned: tally.n_abandoned,
                n_short_abandoned: tally.n_short_abandoned,
                fraction: tally.service_level(),
                abandonment_rate: tally.abandonment_rate(),
                target_pct: group.sla_target_pct,
                threshold_secs: group.sla_threshold_secs,
            },
        });
    }
    Ok(Json(Wallboard {
        at: Time(engine::now_millis()),
        groups: board_groups,
        agents: board_agents,
    }))
}

/// The wallboard's word for what an agent is doing.
fn activity(presence: &Presence, n_sessions: usize) -> &'static str {
    match presence {
        Presence::Available if n_sessions > 0 => "busy",
        other => other.as_str(),
    }
}

/// An expert's view of one session: everything that happened to it and why
/// it went where it did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionDiagnostics {
    /// The session record with its timestamps.
    pub session: SessionRecord,
    /// Every stored event, offers and lapses included, in `seq` order.
    pub events: Vec<EventFrame>,
    /// The routing decision.
    pub routing: RoutingDecision,
}

/// Which rule routes this contact and its steps.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoutingDecision {
    /// The matching rule's `name`, or `fallback` when none matched.
    pub rule: String,
    /// The rules file it comes from.
    pub rules_file: String,
    /// The plan's steps in order.
    pub steps: Vec<RouteStep>,
    /// What the rules saw: channel, tier and the first message.
    pub inputs: BTreeMap<String, String>,
    /// The rules are evaluated now, with the rules in force and the
    /// customer's profile now; the groups the session actually waited in are
    /// the `queued` events.
    pub evaluated_at: Time,
}

/// One step of a routing plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteStep {
    /// The group whose queue holds the session.
    pub group: String,
    /// Higher is served first.
    pub priority: i32,
    /// Overflow to the next step after this long; `null` waits forever.
    pub timeout_ms: Option<i64>,
    /// Only the customer's last agent.
    pub sticky: bool,
    /// The step's `agent` condition, as written.
    pub agent_condition: Option<String>,
}

/// The event timeline and routing decision of a session.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}/diagnostics",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id (decimal string)")),
    responses(
        (status = 200, description = "Timeline and routing decision", body = SessionDiagnostics),
        (status = 400, description = "The id is not a decimal number", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Junior agents and customers (`forbidden`); staff who may not read the session (`not_your_session`)", body = ErrorBody),
        (status = 404, description = "No such session (`unknown_session`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn diagnostics(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionDiagnostics>, HttpError> {
    let id = parse_session_id(&id)?;
    let profile = caller.agent_profile(&state).await?;
    let allowed = match caller.role() {
        Role::Admin => true,
        Role::Agent | Role::Supervisor => profile
            .as_ref()
            .is_some_and(|agent| agent.role != AgentRole::Junior),
        Role::Customer => false,
    };
    if !allowed {
        return Err(HttpError::forbidden(
            "diagnostics need an expert, supervisor or admin token",
        ));
    }
    let session = state.switchboard.session(id).await?;
    caller.check_session_read(&state, &session).await?;
    let events = state.switchboard.history(id, 0).await?;
    let customer = state
        .switchboard
        .store()
        .get_customer(&session.customer_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "unknown_customer",
                format!(
                    "customer `{}` of the session no longer exists",
                    session.customer_id
                ),
            )
        })?;
    let first_message = events
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::Message {
                sender: Sender::Customer,
                body,
                ..
            } => Some(body.clone()),
            _ => None,
        })
        .unwrap_or_default();
    // A call's IVR digits, from its first event.
    let digits = events
        .first()
        .and_then(|event| match &event.kind {
            EventKind::Call(call) => call.started_digits().map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default();
    let events: Vec<EventFrame> = events
        .iter()
        // Listening is silent: agents do not see who monitored.
        .filter(|event| {
            caller.role() != Role::Agent
                || !matches!(event.kind, actors::EventKind::Monitored { .. })
        })
        .filter_map(|event| event_frame(event, Viewer::Staff))
        .collect();
    let contact = Contact {
        channel: session.channel.clone(),
        customer,
        message: first_message,
        digits,
        at: session.times.created.unwrap_or_else(engine::now_millis),
    };
    let plan = state.switchboard.route_plan(&contact);
    let rules_file = state.switchboard.rules_file_name();
    let plan_steps = |plan: &RoutePlan| {
        plan.steps
            .iter()
            .map(|step| RouteStep {
                group: step.group.to_string(),
                priority: step.priority,
                timeout_ms: step.timeout_ms,
                sticky: step.sticky,
                agent_condition: step.agent_expression().map(str::to_owned),
            })
            .collect()
    };
    let (rule, steps) = match &plan {
        Some(plan) => (plan.rule.to_string(), plan_steps(plan)),
        None => {
            let fallback = RoutePlan::fallback();
            (fallback.rule.to_string(), plan_steps(&fallback))
        }
    };
    let inputs = BTreeMap::from([
        ("channel".to_string(), contact.channel.to_string()),
        ("customer.tier".to_string(), contact.customer.tier.clone()),
        (
            "customer.language".to_string(),
            contact.customer.language.clone(),
        ),
        ("message".to_string(), contact.message.clone()),
    ]);
    Ok(Json(SessionDiagnostics {
        session: SessionRecord::new(&session, Viewer::Staff),
        events,
        routing: RoutingDecision {
            rule,
            rules_file,
            steps,
            inputs,
            evaluated_at: Time(engine::now_millis()),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_agents_with_sessions_are_busy() {
        assert_eq!(activity(&Presence::Available, 0), "available");
        assert_eq!(activity(&Presence::Available, 2), "busy");
        assert_eq!(
            activity(
                &Presence::Away {
                    reason: "lunch".into()
                },
                1
            ),
            "away"
        );
        assert_eq!(activity(&Presence::Offline, 0), "offline");
    }
}
