//! The web pages: the agent desktop (`/desktop`), the customer chat
//! (`/chat`, also for an app's web view) and a landing page (`/`). They are
//! plain HTML, CSS and JavaScript modules from `gateway/web/`, built into the
//! binary so that `cargo run` is all they need; `server.web_dir` serves them
//! from a folder instead while they are being edited.
//!
//! Only the files listed in [`ASSETS`] are served, by name: a request can
//! never reach another file of `web_dir`. Every answer carries an `ETag`
//! (revalidated with `If-None-Match`) and a content security policy that
//! allows only this origin's scripts, styles and sockets, and is gzipped for
//! clients that accept it (a phone on a slow network loads about a third).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use flate2::Compression;
use flate2::write::GzEncoder;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY, X_CONTENT_TYPE_OPTIONS,
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
    "desktop-call.js",
    "desktop-side.js",
    "wallboard.js",
    "supervise.js",
    "reports.js",
    "softphone.js",
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
    let Some(asset_idx) = ASSETS.iter().position(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let asset = &ASSETS[asset_idx];
    let web_dir = &state.config.server.web_dir;
    let from_disk = match web_dir.as_os_str().is_empty() {
        true => None,
        false => read_from(web_dir, asset.name).await,
    };
    let body = match from_disk {
        Some(plain) => Body::Disk { plain },
        None => Body::Builtin(asset_idx),
    };
    respond(headers, asset.name, body)
}

/// What to send: a built-in file (compressed once, on first use) or one
/// read from `server.web_dir` (compressed per request).
enum Body {
    Builtin(usize),
    Disk { plain: Vec<u8> },
}

impl Body {
    fn plain(&self) -> &[u8] {
        match self {
            Body::Builtin(idx) => ASSETS[*idx].bytes,
            Body::Disk { plain } => plain,
        }
    }

    fn gzipped(&self) -> Vec<u8> {
        match self {
            Body::Builtin(idx) => builtin_gzipped()[*idx].clone(),
            Body::Disk { plain } => gzip(plain),
        }
    }
}

/// Every built-in file gzipped, in [`ASSETS`] order (about 3.5 times smaller).
fn builtin_gzipped() -> &'static [Vec<u8>] {
    static GZIPPED: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    GZIPPED.get_or_init(|| ASSETS.iter().map(|asset| gzip(asset.bytes)).collect())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(bytes)
        .expect("writing to memory does not fail");
    encoder.finish().expect("writing to memory does not fail")
}

/// Whether `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(accepted) = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accepted.split(',').any(|part| {
        let mut pieces = part.split(';').map(str::trim);
        let coding = pieces.next().unwrap_or_default();
        let refused = pieces.any(|param| {
            param
                .strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
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

fn respond(headers: &HeaderMap, name: &str, body: Body) -> Response {
    let gzipped = accepts_gzip(headers);
    let mut hasher = DefaultHasher::new();
    body.plain().hash(&mut hasher);
    // Each encoding is its own representation, with its own tag.
    let suffix = if gzipped { "-gz" } else { "" };
    let etag = format!("\"{:016x}{suffix}\"", hasher.finish());
    let etag = HeaderValue::from_str(&etag).expect("hex is a valid header value");
    let fresh = headers
        .get(IF_NONE_MATCH)
        .is_some_and(|given| given.as_bytes() == etag.as_bytes());
    let mut response = match (fresh, gzipped) {
        (true, _) => StatusCode::NOT_MODIFIED.into_response(),
        (false, true) => body.gzipped().into_response(),
        (false, false) => body.plain().to_vec().into_response(),
    };
    let out = response.headers_mut();
    if gzipped && !fresh {
        out.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    out.insert(VARY, HeaderValue::from_static("accept-encoding"));
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

    fn disk(text: &str) -> Body {
        Body::Disk {
            plain: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_matching_etag_answers_not_modified() {
        let first = respond(&HeaderMap::new(), "chat.js", disk("x"));
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, etag);
        let again = respond(&headers, "chat.js", disk("x"));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let changed = respond(&headers, "chat.js", disk("y"));
        assert_eq!(changed.status(), StatusCode::OK);
    }

    #[test]
    fn gzip_is_chosen_from_accept_encoding() {
        let check = |accept: &str, expected: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(accept).unwrap());
            assert_eq!(accepts_gzip(&headers), expected, "{accept}");
        };
        check("gzip, deflate, br, zstd", true);
        check("br;q=1.0, gzip;q=0.8", true);
        check("GZIP", true);
        check("*", true);
        check("gzip;q=0", false);
        check("identity", false);
        check("br", false);
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn every_built_in_file_unzips_to_itself() {
        use std::io::Read as _;
        for (asset, gzipped) in ASSETS.iter().zip(builtin_gzipped()) {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(gzipped.as_slice())
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain, asset.bytes, "{}", asset.name);
            assert!(
                gzipped.len() < asset.bytes.len(),
                "{} got bigger",
                asset.name
            );
        }
    }
}
