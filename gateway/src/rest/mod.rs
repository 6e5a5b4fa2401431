//! The REST API (JSON under `/api/v1`), collected with its OpenAPI document
//! (served at `/api/openapi.json`).
//!
//! | method and path | who |
//! |---|---|
//! | `POST /api/v1/visitors` | anyone, when `auth.allow_visitors` |
//! | `GET /api/v1/me` | any token |
//! | `GET /api/v1/customers/{id}` | the customer; staff per [`crate::access::customers`] |
//! | `POST /api/v1/customers` | staff |
//! | `POST /api/v1/customers/{id}/identities` | staff per [`crate::access::customers`] |
//! | `GET /api/v1/customers/{id}/view` | the customer; staff per [`crate::access::customers`] |
//! | `POST`, `GET /api/v1/tickets`, `GET`, `PATCH /api/v1/tickets/{id}` | see [`tickets`] |
//! | `GET /api/v1/kb/search`, `GET /api/v1/kb/articles[/{id}]` | any token |
//! | `PUT`, `DELETE /api/v1/kb/articles/{id}`, `PUT`, `DELETE /api/v1/templates/{id}` | supervisors, admins |
//! | `GET /api/v1/templates` | staff |
//! | `GET /api/v1/sessions/{id}/suggestions` | staff who may read the session |
//! | `GET /api/v1/sessions` | any token, each sees their own (see [`sessions`]) |
//! | `GET /api/v1/sessions/{id}` | [`crate::access::Caller::check_session_read`] |
//! | `GET /api/v1/sessions/{id}/diagnostics` | experts, supervisors, admins who may read the session (see [`desk`]) |
//! | `GET /api/v1/wallboard` | supervisors (their groups), admins |
//! | `GET /api/v1/agents` | staff |
//! | `GET /api/v1/agents/{id}` | the agent, supervisors of their groups, admins |
//! | `GET /api/v1/groups` | staff |
//! | `GET /api/v1/groups/{id}` | [`crate::access::Caller::check_group_read`] |
//! | `POST /api/v1/sessions/{id}/reassign`, `POST /api/v1/sessions/{id}/priority`, `PUT /api/v1/agents/{id}/presence` | supervisors of the groups concerned, admins (see [`supervise`]) |
//! | `GET /api/v1/audit` | admins |
//! | `GET /api/v1/reports/intervals`, `/agents`, `/routes`, `/usage` | supervisors (their groups), admins (see [`reports`]) |
//! | `GET`, `PUT /api/v1/rules` | admins |
//! | `POST /api/v1/inbound` | admins: channel adapters hold an admin token (see [`inbound`]) |
//! | `POST`, `GET /api/v1/channels/{name}/inbound` | the platform of a `[[channels]]` account (messages; a URL check), authenticated by the account's adapter (a signature), no token (see [`channel_inbound`]) |
//! | `GET /api/v1/channels/{name}/bridge` (WebSocket) | the out-of-process adapter of a `[[channels]]` account of kind `bridge`, `Authorization: Bearer <the account's secret>` (see [`channel_bridge`]) |
//!
//! Staff means agents, supervisors and admins. Wire conventions (ids and
//! timestamps as strings) are in [`types`]. Every error is JSON
//! `{code, message, details?}` ([`crate::error::ErrorBody`]), including
//! unknown paths (`404 not_found`) and wrong methods (`405 method_not_allowed`)
//! under `/api`.

pub mod agents;
pub mod channel_bridge;
pub mod channel_inbound;
pub mod cluster;
pub mod customers;
pub mod desk;
pub mod groups;
pub mod inbound;
pub mod knowledge;
pub mod me;
pub mod reports;
pub mod rules;
pub mod sessions;
pub mod supervise;
pub mod tickets;
pub mod types;

use axum::http::header::CONTENT_TYPE;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::HttpError;
use crate::state::AppState;

/// The document's fixed parts; paths come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "switchboard",
        description = "Real-time sessions for omnichannel contact centers: customers and their 360° view, sessions, tickets, the knowledge base and reply templates, agents, skill groups and routing rules. Authenticate with `Authorization: Bearer <token>` (or `?token=<token>`); session ids are decimal strings, times are integer milliseconds since the Unix epoch, senders are `customer`, `agent:<id>`, `supervisor:<id>` or `system`, and session events have the shape of the WebSocket events (PROTOCOL.md §2).",
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Visitor tokens and who the caller is"),
        (name = "customers", description = "Customer profiles and their channel identities"),
        (name = "sessions", description = "Conversations and their history"),
        (name = "agents", description = "Agent profiles and live presence"),
        (name = "groups", description = "Skill groups and their live queues"),
        (name = "rules", description = "Routing rules (admins)"),
        (name = "inbound", description = "Customer messages from channel adapters (admins)"),
        (name = "channels", description = "Customer messages posted by the platforms of `[[channels]]` accounts, authenticated by signature (docs/channels.md)"),
        (name = "tickets", description = "Tickets with their history, synced live to customers and agents"),
        (name = "knowledge", description = "Knowledge-base search and articles, reply templates and suggestions"),
        (name = "cluster", description = "The nodes of a cluster and their health (admins; docs/cluster.md)"),
        (name = "reports", description = "Historical reports from the store — interval, agent and routing reports, JSON or CSV (docs/reports.md)"),
        (name = "supervision", description = "Supervisors steering the live system — reassign or re-prioritise a waiting session, set an agent's presence — each with its reason in the audit log (docs/supervisor.md)"),
    ),
    components(schemas(crate::error::ErrorBody, types::RuleErrorDetails)),
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme the operations refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("switchboard token (v1.<claims>.<signature>)")
                    .description(Some(
                        "A token from `switchboard token`, the demo banner or `POST /api/v1/visitors`; also accepted as `?token=`",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every REST route with its OpenAPI operation, plus JSON answers for
/// unknown paths and methods under `/api`.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me::create_visitor))
        .routes(routes!(me::me))
        .routes(routes!(customers::create_customer))
        .routes(routes!(customers::get_customer))
        .routes(routes!(customers::link_identity))
        .routes(routes!(customers::get_customer_view))
        .routes(routes!(tickets::create_ticket, tickets::list_tickets))
        .routes(routes!(tickets::get_ticket, tickets::update_ticket))
        .routes(routes!(knowledge::search))
        .routes(routes!(knowledge::list_articles))
        .routes(routes!(
            knowledge::get_article,
            knowledge::put_article,
            knowledge::delete_article
        ))
        .routes(routes!(knowledge::list_templates))
        .routes(routes!(knowledge::put_template, knowledge::delete_template))
        .routes(routes!(knowledge::suggestions))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::get_session))
        .routes(routes!(desk::diagnostics))
        .routes(routes!(desk::wallboard))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::get_agent))
        .routes(routes!(agents::put_sip_password))
        .routes(routes!(groups::list_groups))
        .routes(routes!(groups::get_group))
        .routes(routes!(rules::get_rules, rules::put_rules))
        .routes(routes!(inbound::inbound))
        .routes(routes!(
            channel_inbound::channel_inbound,
            channel_inbound::channel_check
        ))
        .routes(routes!(cluster::cluster_status))
        .routes(routes!(supervise::reassign))
        .routes(routes!(supervise::reprioritise))
        .routes(routes!(supervise::force_presence))
        .routes(routes!(supervise::audit_log))
        .routes(routes!(reports::interval_report))
        .routes(routes!(reports::agent_report))
        .routes(routes!(reports::route_report))
        .routes(routes!(reports::usage_report))
        .route("/api", any(unknown_path))
        .route("/api/{*rest}", any(unknown_path))
        .layer(axum::middleware::map_response(json_errors))
}

/// `404 not_found` for a path under `/api` that no route serves.
async fn unknown_path(uri: Uri) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no api route at `{}`", uri.path()),
    )
}

/// Turns the empty or plain-text errors axum produces by itself (`405` for a
/// known path with another method, path rejections) into the API's JSON errors.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        status if status.is_server_error() => "internal",
        _ => "invalid",
    };
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let mut json = HttpError::new(status, code, reason).into_response();
    // Keep `Allow` on 405s so clients can see what the path takes.
    if let Some(allow) = response.headers().get(axum::http::header::ALLOW) {
        json.headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    json
}

/// Agents, supervisors and admins; an agent or supervisor token must name an
/// existing agent (of the right role). Returns the caller's agent profile.
pub(crate) async fn require_staff(
    caller: &crate::access::Caller,
    state: &AppState,
) -> Result<Option<engine::agent::Agent>, HttpError> {
    caller.require_staff()?;
    caller.agent_profile(state).await
}
