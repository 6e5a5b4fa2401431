//! The web pages: the agent desktop (`/desktop`), the customer chat
//! (`/chat`, also for an app's web view) and a landing page (`/`). They are
//! plain HTML, CSS and JavaScript modules from `gateway/web/`, built into the
//! binary so that `cargo run` is all they need; `server.web_dir` serves them
//! from a folder instead while they are being edited.
//!
//! Only the files listed in [`ASSETS`] are served, by name: a request can
//! never reach another file of `web_dir`. Every answer carries an `ETag`
//! (revalidated with `If-None-Match`) and a content security policy that
//! allows only this origin's scripts, styles and sockets.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::warn;

use crate::state::AppState;

/// One file of `gateway/web/`.
pub struct Asset {
    /// Its name under `gateway/web/` and `/web/`.
    pub name: &'static str,
    /// Built in at compile time.
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(Asset { name: $name, bytes: include_bytes!(concat!("../web/", $name)) }),*]
    };
}

/// Every file the pages use.
pub const ASSETS: &[Asset] = assets![
    "index.html",
    "desktop.html",
    "chat.html",
    "base.css",
    "desktop.css",
    "chat.css",
    "i18n.js",
    "socket.js",
    "api.js",
    "dom.js",
    "chat.js",
    "chat-text.js",
    "chat-tickets.js",
    "chat-store.js",
    "desktop.js",
    "desktop-text.js",
    "desktop-session.js",
    "desktop-side.js",
    "wallboard.js",
];

/// Lets the pages talk to this origin only (REST and WebSockets) and be
/// shown inside an app's web view or another site's frame.
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
                   style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'";

/// `/`, `/desktop`, `/chat` and `/web/{name}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|state, headers| page(state, headers, "index.html")),
        )
        .route(
            "/desktop",
            get(|state, headers| page(state, headers, "desktop.html")),
        )
        .route(
            "/chat",
            get(|state, headers| page(state, headers, "chat.html")),
        )
        .route("/web/{name}", get(asset))
}

async fn page(State(state): State<AppState>, headers: HeaderMap, name: &'static str) -> Response {
    serve(&state, &headers, name).await
}

async fn asset(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> Response {
    serve(&state, &headers, &name).await
}

async fn serve(state: &AppState, headers: &HeaderMap, name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let web_dir = &state.config.server.web_dir;
    let bytes = if web_dir.as_os_str().is_empty() {
        asset.bytes.to_vec()
    } else {
        match read_from(web_dir, asset.name).await {
            Some(bytes) => bytes,
            None => asset.bytes.to_vec(),
        }
    };
    respond(headers, asset.name, bytes)
}

/// The file from `server.web_dir`, or `None` (logged) to fall back on the
/// built-in copy.
async fn read_from(dir: &Path, name: &str) -> Option<Vec<u8>> {
    let path = dir.join(name);
    match tokio::fs::read(&path).await {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            warn!(path = %path.display(), error = %err, "server.web_dir: file not readable, serving the built-in copy");
            None
        }
    }
}

fn respond(headers: &HeaderMap, name: &str, bytes: Vec<u8>) -> Response {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    let etag = HeaderValue::from_str(&etag).expect("hex is a valid header value");
    let fresh = headers
        .get(IF_NONE_MATCH)
        .is_some_and(|given| given.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        bytes.into_response()
    };
    let out = response.headers_mut();
    out.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    out.insert(ETAG, etag);
    out.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    out.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_content_type_and_is_referenced() {
        let pages: String = ASSETS
            .iter()
            .map(|asset| String::from_utf8_lossy(asset.bytes).into_owned())
            .collect();
        for asset in ASSETS {
            assert_ne!(
                content_type(asset.name),
                "application/octet-stream",
                "{}",
                asset.name
            );
            if asset.name != "index.html"
                && !asset.name.ends_with("desktop.html")
                && asset.name != "chat.html"
            {
                assert!(
                    pages.contains(asset.name),
                    "{} is listed but no page or module refers to it",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn a_matching_etag_answers_not_modified() {
        let first = respond(&HeaderMap::new(), "chat.js", b"x".to_vec());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, etag);
        let again = respond(&headers, "chat.js", b"x".to_vec());
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let changed = respond(&headers, "chat.js", b"y".to_vec());
        assert_eq!(changed.status(), StatusCode::OK);
    }
}
