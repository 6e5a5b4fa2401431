//! Errors as the wire shows them: a stable `code`, a human `message`, and for
//! REST an HTTP status. WebSocket error frames use the same codes.

use actors::ApiError;
use actors::platform::TicketError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use store::StoreError;

use crate::auth::TokenError;

/// The body of every REST error.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, snake_case; see PROTOCOL.md for the list.
    pub code: &'static str,
    /// For people; may change.
    pub message: String,
    /// Extra detail, e.g. rule errors with line and column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// A REST error.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
}

impl HttpError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                details: None,
            },
        }
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// Adds details.
    pub fn with_details(mut self, details: serde_json::Value) -> HttpError {
        self.body.details = Some(details);
        self
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        metrics::counter!("switchboard_errors_total", "code" => self.body.code, "api" => "rest")
            .increment(1);
        (self.status, Json(self.body)).into_response()
    }
}

impl From<ApiError> for HttpError {
    /// An invalid field is named in `details.field` as well as in the message.
    fn from(err: ApiError) -> HttpError {
        let (status, code) = classify(&err);
        let error = HttpError::new(status, code, err.to_string());
        match &err {
            ApiError::Invalid(engine::EngineError::Invalid { field, .. }) => {
                error.with_details(serde_json::json!({ "field": field }))
            }
            _ => error,
        }
    }
}

impl From<TokenError> for HttpError {
    fn from(err: TokenError) -> HttpError {
        HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
    }
}

/// The status and stable code of an engine error. Codes are the engine's
/// (`ApiError::code`), except that the per-customer session limit is
/// `too_many_sessions` on the wire.
pub fn classify(err: &ApiError) -> (StatusCode, &'static str) {
    let code = match err {
        ApiError::Limited {
            what: "sessions_per_customer",
            ..
        } => "too_many_sessions",
        other => other.code(),
    };
    let status = match code {
        "unknown_session" | "unknown_customer" | "unknown_agent" | "unknown_group" => {
            StatusCode::NOT_FOUND
        }
        "unknown_channel" | "invalid" => StatusCode::BAD_REQUEST,
        "not_your_session" => StatusCode::FORBIDDEN,
        "invalid_state" | "agent_unavailable" => StatusCode::CONFLICT,
        "limited" | "too_many_sessions" => StatusCode::TOO_MANY_REQUESTS,
        // Not 503, which promises that nothing was stored.
        "outcome_unknown" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, code)
}

/// A platform's request a channel adapter refused: the adapter's status and
/// code, and `details.field` when a field is at fault.
impl From<channels::ChannelError> for HttpError {
    fn from(err: channels::ChannelError) -> HttpError {
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let field = err.field().map(str::to_owned);
        let error = HttpError::new(status, err.code(), err.to_string());
        match field {
            Some(field) => error.with_details(serde_json::json!({ "field": field })),
            None => error,
        }
    }
}

/// A ticket that is not there is `404 unknown_ticket` (the same for a
/// customer asking for another customer's ticket, see
/// `access::customers::check_ticket`).
impl From<TicketError> for HttpError {
    fn from(err: TicketError) -> HttpError {
        match err {
            TicketError::Unknown(id) => HttpError::new(
                StatusCode::NOT_FOUND,
                "unknown_ticket",
                format!("unknown ticket `{id}`"),
            ),
            TicketError::Invalid(err) => engine_invalid(err),
            TicketError::Store(err) => store_error(err),
        }
    }
}

/// A store read failed: `503 store_unavailable`.
pub fn store_error(err: StoreError) -> HttpError {
    HttpError::from(actors::ApiError::from(err))
}

/// `400 invalid` naming `field`, with `details.field`.
pub fn invalid_field(field: &str, reason: impl std::fmt::Display) -> HttpError {
    HttpError::bad_request(format!("invalid `{field}`: {reason}"))
        .with_details(serde_json::json!({ "field": field }))
}

/// An engine validation error as `400 invalid` naming its field.
pub fn engine_invalid(err: engine::EngineError) -> HttpError {
    match err {
        engine::EngineError::Invalid { field, reason } => invalid_field(field, reason),
        other => HttpError::bad_request(other.to_string()),
    }
}
