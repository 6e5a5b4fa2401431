//! Property tests of the REST bodies: arbitrary JSON sent to every endpoint
//! that takes a JSON body never gets a 5xx, and a `400` names what is wrong
//! (the field, in `details.field` and in the message, or the JSON syntax).
//! Requests go through the router like every test here; 64 cases per
//! endpoint, or `PROPTEST_CASES`.

use axum::http::{Method, StatusCode};
use gateway::auth::Role;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

use crate::rest::support::{TestServer, code};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "web", "wechat", "open", "solved", "high", "cust-003", ""
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Bodies that use the endpoint's own field names, with arbitrary values,
/// plus arbitrary JSON and text that is not JSON.
fn body(fields: &'static [&'static str]) -> impl Strategy<Value = String> {
    let field = prop_oneof![
        8 => prop::sample::select(fields).prop_map(str::to_owned),
        1 => "[a-z_]{1,10}",
    ];
    prop_oneof![
        6 => prop::collection::btree_map(field, json_value(), 0..6).prop_map(|map| {
            Value::Object(map.into_iter().collect::<Map<_, _>>()).to_string()
        }),
        1 => json_value().prop_map(|value| value.to_string()),
        1 => "\\PC{0,30}",
    ]
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(64);
    Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

/// What a refused body must say.
fn check_answer(
    what: &str,
    body: &str,
    status: StatusCode,
    response: &Value,
) -> Result<(), TestCaseError> {
    prop_assert!(
        !status.is_server_error(),
        "{what} {body}: {status} {response}"
    );
    if status != StatusCode::BAD_REQUEST {
        return Ok(());
    }
    let message = response["message"].as_str().unwrap_or_default();
    prop_assert!(!message.is_empty(), "{what} {body}: {response}");
    if code(response) != "invalid" {
        return Ok(());
    }
    match response["details"]["field"].as_str() {
        Some(field) => {
            prop_assert!(!field.is_empty(), "{what} {body}: {response}");
            prop_assert!(message.contains(field), "{what} {body}: {response}");
        }
        None => prop_assert!(
            message.starts_with("request body is not valid JSON")
                || message.starts_with("invalid request body")
                || message.starts_with("request body has trailing characters"),
            "{what} {body}: {response}"
        ),
    }
    Ok(())
}

#[test]
fn arbitrary_json_bodies_get_an_answer_that_names_the_field() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestServer::start());
    let admin = server.token("admin", Role::Admin);
    let li_na = server.token("li.na", Role::Agent);
    let emma = server.token("cust-003", Role::Customer);
    let (status, ticket) = runtime.block_on(server.post(
        "/api/v1/tickets",
        Some(&admin),
        json!({"customer_id": "cust-003", "subject": "s", "description": "d"}),
    ));
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let ticket_path = format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap());
    #[rustfmt::skip]
    let endpoints: Vec<(Method, &str, &str, &'static [&'static str])> = vec![
        (Method::POST, "/api/v1/inbound", &admin, &["channel", "customer_id", "message", "timestamp", "client_message_id", "display_name"]),
        (Method::POST, "/api/v1/customers", &li_na, &["id", "display_name", "tier", "tags", "language", "identities"]),
        (Method::POST, "/api/v1/customers/cust-003/identities", &admin, &["channel", "external_id"]),
        (Method::POST, "/api/v1/visitors", &admin, &["display_name"]),
        (Method::POST, "/api/v1/tickets", &emma, &["session_id", "customer_id", "subject", "description", "priority", "assignee", "group", "tags"]),
        (Method::PATCH, &ticket_path, &admin, &["subject", "description", "status", "priority", "assignee", "group", "tags", "link_session", "comment"]),
        (Method::PUT, "/api/v1/kb/articles/prop-1", &admin, &["language", "title", "body", "tags"]),
        (Method::PUT, "/api/v1/templates/prop-1", &admin, &["language", "title", "body", "triggers"]),
    ];
    for (method, path, token, fields) in endpoints {
        let what = format!("{method} {path}");
        TestRunner::new(config())
            .run(&body(fields), |body| {
                let (status, response) = runtime.block_on(server.send(
                    method.clone(),
                    path,
                    Some(token),
                    Some(("application/json", body.clone())),
                ));
                check_answer(&what, &body, status, &response)
            })
            .unwrap_or_else(|failure| panic!("{what}: {failure}"));
    }
    runtime.block_on(server.shutdown());
}
