//! stub
use axum::response::IntoResponse;
/// stub
pub async fn upgrade() -> impl IntoResponse { "todo" }
