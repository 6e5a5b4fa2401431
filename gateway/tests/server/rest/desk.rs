//! What the web pages read: the pages themselves, the wallboard and a
//! session's diagnostics, with their access rules.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use engine::channel::Channel;
use gateway::auth::Role;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::rest::support::{TestServer, code};

/// A GET through the router: status, headers and the body as text.
async fn fetch(
    server: &TestServer,
    path: &str,
    if_none_match: Option<&str>,
) -> (StatusCode, header::HeaderMap, String) {
    let (status, headers, bytes) = fetch_with(server, path, if_none_match, None).await;
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// The same with an `Accept-Encoding`; the body as sent.
async fn fetch_with(
    server: &TestServer,
    path: &str,
    if_none_match: Option<&str>,
    accept_encoding: Option<&str>,
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(Method::GET).uri(path);
    if let Some(etag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    if let Some(encoding) = accept_encoding {
        request = request.header(header::ACCEPT_ENCODING, encoding);
    }
    let response = gateway::router(server.server.state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

#[tokio::test]
async fn the_pages_are_served_with_their_types_a_policy_and_an_etag() {
    let server = TestServer::start().await;
    for (path, content_type, contains) in [
        ("/desktop", "text/html; charset=utf-8", "/web/desktop.js"),
        ("/chat", "text/html; charset=utf-8", "/web/chat.js"),
        ("/", "text/html; charset=utf-8", "/desktop"),
        (
            "/web/socket.js",
            "text/javascript; charset=utf-8",
            "last_seq",
        ),
        ("/web/base.css", "text/css; charset=utf-8", ":focus-visible"),
    ] {
        let (status, headers, body) = fetch(&server, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(body.contains(contains), "{path}");
        let etag = headers[header::ETAG].to_str().unwrap().to_string();
        let (again, _, body) = fetch(&server, path, Some(&etag)).await;
        assert_eq!(again, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
    }
    // Browsers that accept gzip get it: the same file, smaller, its own tag.
    let (_, plain_headers, plain) = fetch(&server, "/web/desktop.js", None).await;
    let (status, headers, gzipped) =
        fetch_with(&server, "/web/desktop.js", None, Some("gzip, deflate, br")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(headers[header::VARY], "accept-encoding");
    assert_ne!(headers[header::ETAG], plain_headers[header::ETAG]);
    let mut unzipped = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(gzipped.as_slice()),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain);
    assert!(
        gzipped.len() * 2 < plain.len(),
        "{} of {}",
        gzipped.len(),
        plain.len()
    );
    for path in ["/web/nope.js", "/web/..%2FCargo.toml", "/web/web.rs"] {
        let (status, _, _) = fetch(&server, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn web_dir_serves_edited_files_and_falls_back_to_the_built_in_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chat.html"), "<p>EDITED</p>").unwrap();
    let web_dir = dir.path().to_owned();
    let server = TestServer::start_with(move |config| config.server.web_dir = web_dir).await;
    let (status, _, body) = fetch(&server, "/chat", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "<p>EDITED</p>"));
    let (status, _, body) = fetch(&server, "/desktop", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("/web/desktop.js"),
        "the built-in page: {body}"
    );
    server.shutdown().await;
}

/// Polls the wallboard until `done` holds for it.
async fn wallboard_until(server: &TestServer, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (status, board) = server.get("/api/v1/wallboard", token).await;
        assert_eq!(status, StatusCode::OK, "{board}");
        if done(&board) {
            return board;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the wallboard never got there");
}

#[tokio::test]
async fn the_wallboard_is_for_supervisors_and_admins() {
    let server = TestServer::start().await;
    for (sub, role) in [
        ("cust-003", Role::Customer),
        ("chen.jie", Role::Agent),
        ("zhang.wei", Role::Agent),
    ] {
        let (status, body) = server
            .get("/api/v1/wallboard", &server.token(sub, role))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{sub}: {body}");
        assert_eq!(code(&body), "forbidden");
    }
    server
        .message(Channel::Web, "el-visitor-9", "where is my parcel")
        .await;
    let supervisor = server.token("wang.min", Role::Supervisor);
    let board = wallboard_until(&server, &supervisor, |board| {
        board["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|group| group["id"] == "default" && group["n_waiting"] == 1)
    })
    .await;
    let default = board["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["id"] == "default")
        .unwrap();
    assert_eq!(default["service_level"]["n_entered"], 1, "{default}");
    assert_eq!(
        default["service_level"]["fraction"],
        Value::Null,
        "nothing answered yet"
    );
    assert_eq!(default["agents_by_state"]["offline"], 5, "{default}");
    let agents: Vec<&str> = board["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| agent["id"].as_str().unwrap())
        .collect();
    assert!(agents.contains(&"zhang.wei"), "{agents:?}");
    let admin = server.token("admin", Role::Admin);
    let (status, all) = server.get("/api/v1/wallboard", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["groups"].as_array().unwrap().len(), 3, "{all}");
    server.shutdown().await;
}

#[tokio::test]
async fn diagnostics_are_for_experts_and_above_who_may_read_the_session() {
    let server = TestServer::start().await;
    let session = server
        .message(Channel::Web, "el-visitor-9", "my parcel is late")
        .await;
    let path = format!("/api/v1/sessions/{session}/diagnostics");
    let (status, body) = server
        .get(&path, &server.token("chen.jie", Role::Agent))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "junior"
    );
    let (status, body) = server
        .get(&path, &server.token("zhang.wei", Role::Agent))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "not_your_session"),
        "an expert without the session"
    );
    let (status, body) = server
        .get(&path, &server.token("cust-003", Role::Customer))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, diagnostics) = server
        .get(&path, &server.token("wang.min", Role::Supervisor))
        .await;
    assert_eq!(status, StatusCode::OK, "{diagnostics}");
    let routing = &diagnostics["routing"];
    assert_eq!(routing["rule"], "everyone_else", "{routing}");
    assert_eq!(routing["steps"][0]["group"], "default", "{routing}");
    assert_eq!(routing["inputs"]["channel"], "web");
    assert_eq!(routing["inputs"]["message"], "my parcel is late");
    assert_eq!(routing["inputs"]["customer.tier"], "standard");
    let types: Vec<&str> = diagnostics["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(types[..2], ["message", "queued"], "{types:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_node_alone_lists_itself_as_the_only_member_to_admins_only() {
    let server = TestServer::start().await;
    let admin = server.token("ops", Role::Admin);
    let (status, body) = server
        .send(Method::GET, "/api/v1/cluster", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mode"], "standalone");
    assert_eq!(body["node_id"], 0);
    let members = body["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{body}");
    assert_eq!(members[0]["this_node"], true);
    assert!(members[0]["started_at"].as_i64().unwrap() > 0);

    let supervisor = server.token("wang.min", Role::Supervisor);
    let (status, body) = server
        .send(Method::GET, "/api/v1/cluster", Some(&supervisor), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "forbidden");
}
