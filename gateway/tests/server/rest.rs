//! The REST API over the real engine and a temporary SQLite store with the
//! demo data: customers cust-vip-001 (VIP; web id wf-visitor-77), cust-002
//! (phone +8613900000002), cust-003 (web el-visitor-9); agents li.na
//! (gold_service, default), zhang.wei (phone_support, default), chen.jie
//! (default), liu.yang (default, phone_support), wang.min (supervisor of all
//! three); groups gold_service, phone_support, default.
//!
//! Requests go through `gateway::router` with `oneshot`; one test uses a
//! real socket. The submodules are by topic.

#[path = "rest/access.rs"]
mod access;
#[path = "rest/bodies.rs"]
mod bodies;
#[path = "rest/customers.rs"]
mod customers;
#[path = "rest/desk.rs"]
mod desk;
#[path = "rest/reports.rs"]
mod reports;
#[path = "rest/resources.rs"]
mod resources;
#[path = "rest/supervise.rs"]
mod supervise;
#[path = "rest/support.rs"]
mod support;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use gateway::auth::Role;

use support::{TestServer, code};

/// Every operation the router serves, as the OpenAPI document must list it.
const OPERATIONS: [(&str, &str); 42] = [
    ("post", "/api/v1/visitors"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/customers"),
    ("get", "/api/v1/customers/{id}"),
    ("post", "/api/v1/customers/{id}/identities"),
    ("get", "/api/v1/sessions"),
    ("get", "/api/v1/sessions/{id}"),
    ("get", "/api/v1/agents"),
    ("get", "/api/v1/agents/{id}"),
    ("put", "/api/v1/agents/{id}/sip-password"),
    ("put", "/api/v1/agents/{id}/presence"),
    ("post", "/api/v1/sessions/{id}/reassign"),
    ("post", "/api/v1/sessions/{id}/priority"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/reports/intervals"),
    ("get", "/api/v1/reports/agents"),
    ("get", "/api/v1/reports/routes"),
    ("get", "/api/v1/reports/usage"),
    ("get", "/api/v1/groups"),
    ("get", "/api/v1/groups/{id}"),
    ("get", "/api/v1/rules"),
    ("put", "/api/v1/rules"),
    ("post", "/api/v1/inbound"),
    ("get", "/api/v1/customers/{id}/view"),
    ("post", "/api/v1/tickets"),
    ("get", "/api/v1/tickets"),
    ("get", "/api/v1/tickets/{id}"),
    ("patch", "/api/v1/tickets/{id}"),
    ("get", "/api/v1/kb/search"),
    ("get", "/api/v1/kb/articles"),
    ("get", "/api/v1/kb/articles/{id}"),
    ("put", "/api/v1/kb/articles/{id}"),
    ("delete", "/api/v1/kb/articles/{id}"),
    ("get", "/api/v1/templates"),
    ("put", "/api/v1/templates/{id}"),
    ("delete", "/api/v1/templates/{id}"),
    ("get", "/api/v1/sessions/{id}/suggestions"),
    ("get", "/api/v1/sessions/{id}/diagnostics"),
    ("get", "/api/v1/wallboard"),
    ("post", "/api/v1/channels/{name}/inbound"),
    ("get", "/api/v1/channels/{name}/inbound"),
    ("get", "/api/v1/cluster"),
];

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let server = TestServer::start().await;
    let (status, doc) = server
        .send(Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "switchboard");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let methods = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            methods
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(|method| (method.to_string(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(documented, expected);
    for (method, path) in OPERATIONS {
        let operation = &doc["paths"][path][method];
        assert!(
            operation["tags"]
                .as_array()
                .is_some_and(|tags| !tags.is_empty()),
            "{method} {path} has no tag"
        );
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
        // Served: without a token every operation but the visitor one says 401, never 404 or 405.
        let concrete = path.replace("{id}", "x").replace("{name}", "x");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, body) = server.send(method.clone(), &concrete, None, None).await;
        let expected = match path {
            "/api/v1/visitors" => StatusCode::CREATED,
            // No token needed (the platform signs); served, it says no
            // such account, with its own code rather than `not_found`.
            "/api/v1/channels/{name}/inbound" => StatusCode::NOT_FOUND,
            _ => StatusCode::UNAUTHORIZED,
        };
        assert_eq!(status, expected, "{method} {concrete}: {body}");
        if status == StatusCode::NOT_FOUND {
            assert_eq!(body["code"], "unknown_channel_account", "{body}");
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_under_api_are_json_errors() {
    let server = TestServer::start().await;
    let admin = server.token("admin", Role::Admin);
    let cases = [
        (
            Method::GET,
            "/api/v1/nope",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (Method::GET, "/api", StatusCode::NOT_FOUND, "not_found"),
        (
            Method::POST,
            "/api/v2/customers",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/api/v1/rules",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::PUT,
            "/api/v1/me",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, path, status, expected_code) in cases {
        let (got, body) = server.send(method.clone(), path, Some(&admin), None).await;
        assert_eq!(
            (got, code(&body)),
            (status, expected_code),
            "{method} {path}: {body}"
        );
    }
    server.shutdown().await;
}
