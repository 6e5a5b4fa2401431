//! Routing rules (admins): read the TOML source in force, replace it.
//!
//! A replacement is parsed and checked against the deployment (every group
//! exists, every channel is known) before it takes effect; a file with an
//! error changes nothing. Replaced rules live in memory: a restart loads
//! `routing.rules_file` (or the built-in rules) again. In a cluster the
//! other nodes take the replacement too (`Switchboard::share_rules`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use engine::routing::{RuleError, RuleSet};
use tokio::sync::Mutex;

use crate::access::Caller;
use crate::error::{ErrorBody, HttpError};
use crate::extract::TomlText;
use crate::rest::types::{RuleErrorDetails, RulesReplaced};
use crate::state::AppState;

/// The media type of the rules source.
pub const TOML_MEDIA_TYPE: &str = "application/toml";

/// The name errors give a file sent with `PUT` when no rules file is configured.
const UPLOADED_FILE_NAME: &str = "rules.toml";

/// One replacement at a time, so that the text kept for `GET` is always the
/// text of the rules in force. Process-wide: one server per process in
/// production; tests with several only wait a little.
static REPLACING_RULES: Mutex<()> = Mutex::const_new(());

/// The TOML source of the rules in force.
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "rules",
    responses(
        (status = 200, description = "The rules file (docs/routing.md)", body = String, content_type = "application/toml"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, HttpError> {
    caller.require_admin()?;
    let text = state.rules_text.lock().expect("rules text lock").clone();
    Ok(([(CONTENT_TYPE, TOML_MEDIA_TYPE)], text))
}

/// Replaces the routing rules. New sessions route by them at once; sessions
/// already routed keep their plan.
#[utoipa::path(
    put,
    path = "/api/v1/rules",
    tag = "rules",
    request_body(
        description = "The whole rules file (docs/routing.md)",
        content((String = "application/toml"), (String = "text/plain")),
    ),
    responses(
        (status = 200, description = "The rules are in force", body = RulesReplaced),
        (status = 400, description = "The body is not UTF-8", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 415, description = "Not text/plain or application/toml", body = ErrorBody),
        (status = 422, description = "The rules have an error (`invalid_rules`; `details` is a RuleErrorDetails with line and column); the old rules stay in force", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn put_rules(
    State(state): State<AppState>,
    caller: Caller,
    TomlText(text): TomlText,
) -> Result<Json<RulesReplaced>, HttpError> {
    caller.require_admin()?;
    let file_name = file_name(&state);
    let rules = RuleSet::parse(&text, &file_name).map_err(invalid_rules)?;
    let groups = rules.groups().map(ToString::to_string).collect();
    let _replacing = REPLACING_RULES.lock().await;
    state
        .switchboard
        .reload_rules(rules)
        .await
        .map_err(invalid_rules)?;
    // Every other node of a cluster takes them too (milliseconds later).
    state.switchboard.share_rules(&text, &file_name);
    *state.rules_text.lock().expect("rules text lock") = text;
    tracing::info!(by = %caller.claims.sub, file = %file_name, "routing rules replaced");
    Ok(Json(RulesReplaced { groups }))
}

/// The configured rules file's name, so errors point at the file the admin edits.
fn file_name(state: &AppState) -> String {
    state
        .config
        .routing
        .rules_file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| UPLOADED_FILE_NAME.to_string())
}

/// `422 invalid_rules` with where the error is.
fn invalid_rules(err: RuleError) -> HttpError {
    let details = RuleErrorDetails {
        file: err.file.clone(),
        line: err.line,
        column: err.column,
        message: err.message.clone(),
    };
    HttpError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_rules",
        format!("invalid rules: {err}"),
    )
    .with_details(serde_json::to_value(details).expect("rule error details serialize"))
}
