//! Tokens: web visitors get one without credentials; anyone with one can ask
//! who they are.

use actors::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use engine::channel::Channel;
use engine::customer::{Customer, Identity};
use store::WriteOp;

use crate::access::Caller;
use crate::auth::{Claims, Role, unix_now};
use crate::error::{ErrorBody, HttpError};
use crate::extract::ApiJson;
use crate::rest::customers::check_display_name;
use crate::rest::types::{AgentProfile, Me, NewVisitor, VisitorToken};
use crate::state::AppState;
use crate::wire::Time;

/// The display name of a visitor who gave none.
const DEFAULT_VISITOR_NAME: &str = "Visitor";

/// Creates a web visitor: a customer with one identity on channel `web`,
/// and a customer token for it (valid `auth.visitor_ttl_secs`). The chat
/// widget calls this once and keeps the token.
#[utoipa::path(
    post,
    path = "/api/v1/visitors",
    tag = "auth",
    request_body(content = Option<NewVisitor>, description = "Optional; `{}` or no body at all is fine"),
    responses(
        (status = 201, description = "The visitor and their token", body = VisitorToken),
        (status = 400, description = "Invalid body (code `invalid`)", body = ErrorBody),
        (status = 403, description = "Visitor tokens are disabled (`auth.allow_visitors = false`)", body = ErrorBody),
        (status = 429, description = "Too many new visitors (`limits.new_visitors_per_second`)", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
    ),
    security(()),
)]
pub async fn create_visitor(
    State(state): State<AppState>,
    body: Option<ApiJson<NewVisitor>>,
) -> Result<(StatusCode, Json<VisitorToken>), HttpError> {
    if !state.config.auth.allow_visitors {
        return Err(HttpError::forbidden(
            "visitor tokens are disabled on this server (auth.allow_visitors)",
        ));
    }
    if !state.admit_visitor() {
        return Err(HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many new visitors right now (limits.new_visitors_per_second); retry in a second",
        ));
    }
    let request = body.map(|ApiJson(request)| request).unwrap_or_default();
    let display_name = match request.display_name {
        Some(name) => check_display_name(&name)?,
        None => DEFAULT_VISITOR_NAME.to_string(),
    };
    let visitor_id = random_visitor_id()?;
    // The id the engine itself gives an unknown web identity, so the two never disagree.
    let customer_id = format!("{}:{visitor_id}", Channel::Web);
    let mut customer = Customer::new(customer_id.as_str(), display_name);
    customer.created_at = engine::now_millis();
    customer.identities.push(Identity {
        channel: Channel::Web,
        external_id: visitor_id.clone(),
    });
    state
        .switchboard
        .write(vec![WriteOp::PutCustomer(customer)])
        .await
        .map_err(ApiError::from)?;
    let exp = unix_now().saturating_add(state.config.auth.visitor_ttl_secs as i64);
    let token = state.signer.mint(&Claims {
        sub: customer_id.clone(),
        role: Role::Customer,
        exp,
    });
    tracing::info!(customer_id = %customer_id, "web visitor created");
    Ok((
        StatusCode::CREATED,
        Json(VisitorToken {
            customer_id,
            visitor_id,
            token,
            expires_at: Time::from_secs(exp),
        }),
    ))
}

/// Who the token says the caller is; agents and supervisors also get their profile.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Missing, malformed, forged or expired token, or an agent token for an agent that does not exist", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, HttpError> {
    let profile = caller.agent_profile(&state).await?;
    Ok(Json(Me {
        sub: caller.claims.sub.clone(),
        role: caller.claims.role,
        expires_at: Time::from_secs(caller.claims.exp),
        agent: profile.as_ref().map(AgentProfile::from),
    }))
}

/// `v-` and 32 random hex digits: unguessable, so a visitor id is not a credential leak.
fn random_visitor_id() -> Result<String, HttpError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("no randomness for a visitor id: {err}"),
        )
    })?;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("v-{hex}"))
}
