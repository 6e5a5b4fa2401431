//! The HTTP middleware every public route passes, from `tower-http`:
//! request ids, access logs, request timeouts, compression and CORS.
//!
//! - Request ids: a request's `x-request-id` is kept, or a new UUID is set;
//!   the response carries it back, and the access log line names it.
//! - Access log: one `info` line per request (target `switchboard::access`)
//!   with method, path (never the query: WebSocket tokens travel there),
//!   status, latency and request id. Health checks are not logged.
//! - Timeouts: a request not answered within `limits.request_timeout_ms` gets
//!   504 `request_timeout`. A WebSocket upgrade is answered at once, so the
//!   socket itself is not limited.
//! - Compression: REST and OpenAPI responses are gzipped for clients that
//!   accept it (the web pages come pre-compressed, `crate::web`).
//! - CORS: off unless `server.cors_allow_origins` names origins.

use std::time::Duration;

use axum::Router;
use axum::http::header::{CONTENT_TYPE, HeaderName};
use axum::http::{HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{Span, info, info_span};

use crate::config::Config;
use crate::error::HttpError;

/// The header that carries a request's id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps every route of `router` in the middleware stack.
pub fn layer<S: Clone + Send + Sync + 'static>(router: Router<S>, config: &Config) -> Router<S> {
    let request_timeout = Duration::from_millis(config.limits.request_timeout_ms);
    // Innermost first: the timeout wraps the handler alone; the request id is
    // set before anything else sees the request.
    let router = router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::map_response(move |response: Response| {
            timeout_body(response, request_timeout)
        }))
        .layer(CompressionLayer::new());
    let router = match cors(&config.server.cors_allow_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(access_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unfit_request_id))
}

/// A client's `x-request-id` is kept only if it is short and plain
/// (`[A-Za-z0-9._:-]`, at most 128 bytes): anything else could forge
/// fields in a text log line. An unfit one is replaced with a new UUID.
async fn drop_unfit_request_id<B>(mut request: Request<B>) -> Request<B> {
    let fit = request.headers().get(&REQUEST_ID).is_none_or(|value| {
        let bytes = value.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 128
            && bytes
                .iter()
                .all(|byte| byte.is_ascii_alphanumeric() || b"._:-".contains(byte))
    });
    if !fit {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The access log's span: method, path and request id, never the query.
fn access_span<B>(request: &Request<B>) -> Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    info_span!(
        target: "switchboard::access",
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}

/// The access log line, inside the request's span.
fn log_response<B>(response: &Response<B>, latency: Duration, _span: &Span) {
    info!(
        target: "switchboard::access",
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request served"
    );
}

/// The timeout layer answers with an empty 504; give it the JSON error body
/// every other REST error has.
async fn timeout_body(response: Response, timeout: Duration) -> Response {
    if response.status() != StatusCode::GATEWAY_TIMEOUT
        || response.headers().contains_key(CONTENT_TYPE)
    {
        return response;
    }
    HttpError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "request_timeout",
        format!(
            "the request was not answered within limits.request_timeout_ms ({} ms); whether it took effect is unknown: read the resource back, or resend (messages with the same client_message_id are stored once)",
            timeout.as_millis()
        ),
    )
    .into_response()
}

/// The CORS layer for the configured origins, if any.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(Any)
            .expose_headers([REQUEST_ID])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod stack_tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::routing::get;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    fn app(tweak: impl FnOnce(&mut Config)) -> Router {
        let mut config = Config::default();
        tweak(&mut config);
        let routes = Router::new()
            .route(
                "/slow",
                get(|| tokio::time::sleep(Duration::from_secs(3600))),
            )
            .route("/big", get(|| async { "word ".repeat(1000) }));
        layer(routes, &config)
    }

    async fn call(app: Router, request: Request<Body>) -> (Response, Vec<u8>) {
        let response = app.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (Response::from_parts(parts, Body::empty()), bytes)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_request_gets_504_with_a_json_body() {
        let app = app(|config| config.limits.request_timeout_ms = 2_000);
        let request = Request::get("/slow").body(Body::empty()).unwrap();
        let (response, body) = call(app, request).await;
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "request_timeout", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("2000 ms"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn request_ids_are_set_or_kept_and_returned() {
        let request = Request::get("/big").body(Body::empty()).unwrap();
        let (response, _) = call(app(|_| {}), request).await;
        let generated = response.headers()[&REQUEST_ID]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(generated.len(), 36, "a UUID: {generated}");
        let request = Request::get("/big")
            .header(&REQUEST_ID, "abc-123")
            .body(Body::empty())
            .unwrap();
        let (response, _) = call(app(|_| {}), request).await;
        assert_eq!(response.headers()[&REQUEST_ID], "abc-123");
        // One that could forge log fields is replaced.
        for unfit in ["a b", "x\"y", &"z".repeat(129), ""] {
            let request = Request::get("/big")
                .header(&REQUEST_ID, unfit)
                .body(Body::empty())
                .unwrap();
            let (response, _) = call(app(|_| {}), request).await;
            let id = response.headers()[&REQUEST_ID].to_str().unwrap();
            assert_eq!(id.len(), 36, "{unfit:?} became {id}");
        }
    }

    #[tokio::test]
    async fn responses_are_gzipped_for_clients_that_accept_it() {
        let request = Request::get("/big")
            .header("accept-encoding", "gzip")
            .body(Body::empty())
            .unwrap();
        let (response, body) = call(app(|_| {}), request).await;
        assert_eq!(response.headers()["content-encoding"], "gzip");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        assert_eq!(text, "word ".repeat(1000));
        let request = Request::get("/big").body(Body::empty()).unwrap();
        let (response, body) = call(app(|_| {}), request).await;
        assert!(!response.headers().contains_key("content-encoding"));
        assert_eq!(body.len(), 5000);
    }

    fn preflight(origin: &str) -> Request<Body> {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/big")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn cors_is_off_by_default_and_follows_the_configured_origins() {
        let (response, _) = call(app(|_| {}), preflight("https://crm.example.com")).await;
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin")
        );
        let configured = || {
            app(|config| config.server.cors_allow_origins = vec!["https://crm.example.com".into()])
        };
        let (response, _) = call(configured(), preflight("https://crm.example.com")).await;
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://crm.example.com"
        );
        let (response, _) = call(configured(), preflight("https://evil.example")).await;
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin")
        );
    }

    /// A log writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_access_log_names_the_request_but_not_its_query() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let request = Request::get("/big?token=secret-token-value")
            .header(&REQUEST_ID, "req-42")
            .body(Body::empty())
            .unwrap();
        call(app(|_| {}), request).await;
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("request served"), "{log}");
        assert!(log.contains("status=200"), "{log}");
        assert!(log.contains("request_id=req-42"), "{log}");
        assert!(log.contains("path=/big"), "{log}");
        assert!(!log.contains("secret-token-value"), "{log}");
    }
}
