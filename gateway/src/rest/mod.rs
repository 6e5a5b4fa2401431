//! The REST API (JSON under `/api/v1`), collected with its OpenAPI document.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every REST route with its OpenAPI operation.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
