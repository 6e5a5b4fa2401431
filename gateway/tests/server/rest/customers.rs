//! Visitors, `/me` and customers.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use engine::channel::Channel;
use engine::ids::CustomerId;
use gateway::auth::Role;
use serde_json::json;

use crate::rest::support::{TestServer, code, session_ids};

#[tokio::test]
async fn visitors_me_and_customers() {
    let server = TestServer::start().await;
    let admin = server.token("admin", Role::Admin);
    let li_na = server.token("li.na", Role::Agent);

    // A visitor, with and without a body; the token works at once.
    let (status, visitor) = server
        .send(Method::POST, "/api/v1/visitors", None, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{visitor}");
    let (status, named) = server
        .post("/api/v1/visitors", None, json!({"display_name": "Ada"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{named}");
    let customer_id = named["customer_id"].as_str().unwrap();
    assert_eq!(
        customer_id,
        format!("web:{}", named["visitor_id"].as_str().unwrap())
    );
    assert_ne!(visitor["customer_id"], named["customer_id"]);
    let token = named["token"].as_str().unwrap();
    let (status, me) = server.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["sub"].as_str(), me["role"].as_str()),
        (Some(customer_id), Some("customer"))
    );
    assert!(me.get("agent").is_none());
    let (status, record) = server
        .get(&format!("/api/v1/customers/{customer_id}"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["display_name"], "Ada");
    assert_eq!(
        record["identities"],
        json!([{"channel": "web", "external_id": named["visitor_id"]}])
    );
    let (_, own) = server.get("/api/v1/sessions", token).await;
    assert_eq!(session_ids(&own), BTreeSet::new());
    let (status, body) = server
        .post("/api/v1/visitors", None, json!({"display_name": 7}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid"));
    assert_eq!(body["details"]["field"], "display_name");

    // The scheme is case-insensitive (RFC 7235) and extra spaces are fine;
    // another scheme is no token at all.
    for (authorization, expected) in [
        (format!("bearer {token}"), StatusCode::OK),
        (format!("BEARER   {token}"), StatusCode::OK),
        (format!("Bearer\t{token} "), StatusCode::OK),
        (format!("Basic {token}"), StatusCode::UNAUTHORIZED),
    ] {
        let (status, me) = server
            .get_with_authorization("/api/v1/me", &authorization)
            .await;
        assert_eq!(status, expected, "{authorization}: {me}");
    }

    // An agent's /me carries the profile.
    let (_, me) = server.get("/api/v1/me", &li_na).await;
    assert_eq!(
        (me["role"].as_str(), me["agent"]["groups"].clone()),
        (Some("agent"), json!(["gold_service", "default"]))
    );

    // A profile is read under the 360° view's rule: admins, the customer
    // themself, not an agent none of whose sessions is theirs (issue 16).
    let (status, body) = server.get("/api/v1/customers/cust-vip-001", &li_na).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "not_your_customer"),
        "{body}"
    );
    let (status, vip) = server.get("/api/v1/customers/cust-vip-001", &admin).await;
    assert_eq!(
        (status, vip["tier"].as_str()),
        (StatusCode::OK, Some("vip"))
    );
    assert_eq!(vip["identities"].as_array().unwrap().len(), 4);
    let (status, _) = server
        .get(
            "/api/v1/customers/cust-vip-001",
            &server.token("cust-vip-001", Role::Customer),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.get("/api/v1/customers/nobody", &admin).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "unknown_customer")
    );

    // Create, then refuse a second create and a taken identity.
    let new = json!({
        "id": "cust-1001", "display_name": "Sun Li", "tier": "vip", "tags": ["b2b"],
        "language": "en", "identities": [{"channel": "wechat", "external_id": "wx-1001"}],
    });
    let (status, created) = server
        .post("/api/v1/customers", Some(&li_na), new.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (created["id"].as_str(), created["tier"].as_str()),
        (Some("cust-1001"), Some("vip"))
    );
    assert!(created["created_at"].as_i64().unwrap() > 1_700_000_000_000);
    let (status, body) = server.post("/api/v1/customers", Some(&admin), new).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "customer_exists")
    );
    let taken = json!({"id": "cust-1002", "display_name": "X", "identities": [{"channel": "wechat", "external_id": "12345"}]});
    let (status, body) = server.post("/api/v1/customers", Some(&admin), taken).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "identity_taken"),
        "{body}"
    );
    assert_eq!(body["details"]["owner"], "cust-vip-001");

    // Bad fields are named.
    let bad_bodies = [
        (json!({"display_name": "X"}), "id", "invalid"),
        (json!({"id": "a:b", "display_name": "X"}), "id", "invalid"),
        (json!({"id": "", "display_name": "X"}), "id", "invalid"),
        (
            json!({"id": "ok", "display_name": ""}),
            "display_name",
            "invalid",
        ),
        (
            json!({"id": "ok", "display_name": 3}),
            "display_name",
            "invalid",
        ),
        (
            json!({"id": "ok", "display_name": "X", "tier": "V I P"}),
            "tier",
            "invalid",
        ),
        (
            json!({"id": "ok", "display_name": "X", "tags": ["ok", ""]}),
            "tags[1]",
            "invalid",
        ),
        (
            json!({"id": "ok", "display_name": "X", "colour": "red"}),
            "colour",
            "invalid",
        ),
        (
            json!({"id": "ok", "display_name": "X", "identities": [{"channel": "fax", "external_id": "1"}]}),
            "identities[0].channel",
            "unknown_channel",
        ),
        (
            json!({"id": "ok", "display_name": "X", "identities": [{"channel": "qq"}]}),
            "identities[0].external_id",
            "invalid",
        ),
    ];
    for (body, field, expected_code) in bad_bodies {
        let (status, response) = server
            .post("/api/v1/customers", Some(&admin), body.clone())
            .await;
        assert_eq!(
            (status, code(&response)),
            (StatusCode::BAD_REQUEST, expected_code),
            "{body}: {response}"
        );
        assert_eq!(response["details"]["field"], field, "{body}: {response}");
    }
    let not_json = server
        .send(
            Method::POST,
            "/api/v1/customers",
            Some(&admin),
            Some(("application/json", "{\"id\":".into())),
        )
        .await;
    assert_eq!(
        (not_json.0, code(&not_json.1)),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    let wrong_type = server
        .send(
            Method::POST,
            "/api/v1/customers",
            Some(&admin),
            Some(("text/plain", "{}".into())),
        )
        .await;
    assert_eq!(
        (wrong_type.0, code(&wrong_type.1)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid")
    );

    // Link identities: new, already theirs, someone else's, unknown channel, unknown customer.
    let link = "/api/v1/customers/cust-1001/identities";
    let (status, linked) = server
        .post(
            link,
            Some(&admin),
            json!({"channel": "phone", "external_id": "+8613700000000"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!(linked["identities"].as_array().unwrap().len(), 2);
    let (status, again) = server
        .post(
            link,
            Some(&admin),
            json!({"channel": "phone", "external_id": "+8613700000000"}),
        )
        .await;
    assert_eq!(
        (status, again["identities"].as_array().unwrap().len()),
        (StatusCode::OK, 2)
    );
    let links = [
        (
            link,
            json!({"channel": "web", "external_id": "wf-visitor-77"}),
            StatusCode::CONFLICT,
            "identity_taken",
        ),
        (
            link,
            json!({"channel": "fax", "external_id": "1"}),
            StatusCode::BAD_REQUEST,
            "unknown_channel",
        ),
        (
            link,
            json!({"channel": "Not Valid", "external_id": "1"}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            link,
            json!({"channel": "qq"}),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            "/api/v1/customers/nobody/identities",
            json!({"channel": "qq", "external_id": "1"}),
            StatusCode::NOT_FOUND,
            "unknown_customer",
        ),
    ];
    for (path, body, status, expected_code) in links {
        let (got, response) = server.post(path, Some(&admin), body.clone()).await;
        assert_eq!(
            (got, code(&response)),
            (status, expected_code),
            "{body}: {response}"
        );
    }
    // The linked identity routes to the customer.
    let session = server.message(Channel::Phone, "+8613700000000", "hi").await;
    let record = server.server.switchboard().session(session).await.unwrap();
    assert_eq!(record.customer_id, CustomerId::new("cust-1001"));
    server.shutdown().await;
}

#[tokio::test]
async fn visitors_can_be_turned_off() {
    let server = TestServer::start_with(|config| config.auth.allow_visitors = false).await;
    let (status, body) = server.post("/api/v1/visitors", None, json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    server.shutdown().await;
}

#[tokio::test]
async fn visitor_creation_is_paced_for_the_whole_server() {
    let server = TestServer::start_with(|config| {
        config.limits.new_visitor_burst = 3;
        config.limits.new_visitors_per_second = 1;
    })
    .await;
    // Ten at once: the burst of 3, plus one more for every whole second the
    // requests took (each seeds a customer with a durable write), are
    // created; the rest are refused.
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all(
        (0..10).map(|_| server.post("/api/v1/visitors", None, json!({}))),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let (status, body) = answers
        .iter()
        .find(|(status, _)| *status != StatusCode::CREATED)
        .expect("all 10 visitors were created");
    assert_eq!(
        (*status, code(body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(
        created >= 3 && created as f64 <= 3.0 + elapsed.floor(),
        "{created} created in {elapsed:.2} s"
    );
    server.shutdown().await;
}
