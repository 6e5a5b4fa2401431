//! Agents, groups and rules, and one request over a real socket.

use axum::http::{Method, StatusCode};
use engine::channel::Channel;
use engine::session::SessionState;
use gateway::auth::Role;
use serde_json::{Value, json};

use crate::rest::support::{TestServer, code, two_sessions};

#[tokio::test]
async fn agents_and_groups_with_their_live_state() {
    let server = TestServer::start().await;
    let sessions = two_sessions(&server).await;
    let li_na = server.token("li.na", Role::Agent);
    let wang_min = server.token("wang.min", Role::Supervisor);
    let admin = server.token("admin", Role::Admin);

    let (status, list) = server.get("/api/v1/agents", &li_na).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["chen.jie", "li.na", "liu.yang", "wang.min", "zhang.wei"]
    );
    for token in [&li_na, &wang_min, &admin] {
        let (status, detail) = server.get("/api/v1/agents/li.na", token).await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        assert_eq!(detail["presence"]["state"], "available");
        assert_eq!(detail["sessions"], json!([sessions.assigned.to_string()]));
        assert_eq!(detail["agent"]["capacity"]["limits"]["web"], 4);
    }
    let (_, offline) = server.get("/api/v1/agents/chen.jie", &wang_min).await;
    assert_eq!(
        (
            offline["presence"]["state"].as_str(),
            offline["sessions"].clone()
        ),
        (Some("offline"), json!([]))
    );

    let (status, groups) = server.get("/api/v1/groups", &li_na).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["default", "gold_service", "phone_support"]);
    for token in [&wang_min, &admin] {
        let (status, detail) = server.get("/api/v1/groups/phone_support", token).await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        assert_eq!(detail["group"]["sla_threshold_secs"], 30);
        let waiting = detail["queue"]["waiting"].as_array().unwrap();
        assert_eq!(waiting.len(), 1, "{detail}");
        assert_eq!(waiting[0]["session_id"], sessions.queued.to_string());
        assert_eq!(detail["queue"]["n_ready_agents"], 0);
    }
    let (status, detail) = server.get("/api/v1/groups/gold_service", &li_na).await;
    assert_eq!(
        (status, detail["queue"]["waiting"].clone()),
        (StatusCode::OK, json!([]))
    );
    let (status, body) = server.get("/api/v1/groups/nope", &admin).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "unknown_group")
    );
    server.shutdown().await;
}

const ALL_TO_PHONE: &str = r#"
[[rule]]
name = "everyone"
filter = "true"
  [[rule.step]]
  group = "phone_support"
"#;

#[tokio::test]
async fn bad_rules_are_refused_with_line_and_column_and_the_old_rules_stay() {
    let server = TestServer::start().await;
    let admin = server.token("admin", Role::Admin);
    let (status, text) = server.get("/api/v1/rules", &admin).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, Some(gateway::server::DEFAULT_RULES))
    );

    let unknown_group =
        "[[rule]]\nname = \"x\"\nfilter = \"true\"\n  [[rule.step]]\n  group = \"nowhere\"\n";
    let bad_filter = "[[rule]]\nname = \"x\"\nfilter = 'customer.tier =='\n  [[rule.step]]\n  group = \"default\"\n";
    for (rules, line) in [(unknown_group, 5), (bad_filter, 3), ("[[rule]\n", 1)] {
        let (status, body) = server.put_rules(&admin, rules).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_rules"),
            "{body}"
        );
        let details = &body["details"];
        assert_eq!(details["line"], line, "{rules}: {body}");
        assert!(details["column"].as_u64().unwrap() >= 1, "{body}");
        assert_eq!(details["file"], "rules.toml");
        assert!(!details["message"].as_str().unwrap().is_empty());
    }
    // Still the old text, and new contacts still route by the old rules.
    let (_, text) = server.get("/api/v1/rules", &admin).await;
    assert_eq!(text.as_str(), Some(gateway::server::DEFAULT_RULES));
    let session = server.message(Channel::Web, "el-visitor-9", "hello").await;
    let record = server.stored_in(session, SessionState::Queued).await;
    assert_eq!(record.group.unwrap().as_str(), "default");

    // Good rules take effect for the next contact; GET returns them.
    let (status, body) = server.put_rules(&admin, ALL_TO_PHONE).await;
    assert_eq!(
        (status, body["groups"].clone()),
        (StatusCode::OK, json!(["phone_support"])),
        "{body}"
    );
    let (_, text) = server.get("/api/v1/rules", &admin).await;
    assert_eq!(text.as_str(), Some(ALL_TO_PHONE));
    let session = server.message(Channel::Web, "zl-visitor-3", "hello").await;
    let record = server.stored_in(session, SessionState::Queued).await;
    assert_eq!(record.group.unwrap().as_str(), "phone_support");

    let json_body = server
        .send(
            Method::PUT,
            "/api/v1/rules",
            Some(&admin),
            Some(("application/json", "{}".into())),
        )
        .await;
    assert_eq!(json_body.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = "#".repeat(server.server.state.config.limits.max_http_body_bytes + 1);
    let (status, body) = server.put_rules(&admin, &huge).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    let (_, text) = server.get("/api/v1/rules", &admin).await;
    assert_eq!(text.as_str(), Some(ALL_TO_PHONE));
    server.shutdown().await;
}

#[tokio::test]
async fn a_real_socket_with_the_token_in_the_query() {
    let server = TestServer::start().await;
    let token = server.token("wang.min", Role::Supervisor);
    let base = format!("http://{}", server.server.addr);
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{base}/api/v1/me?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(
        (me["sub"].as_str(), me["agent"]["role"].as_str()),
        (Some("wang.min"), Some("supervisor"))
    );
    let response = client
        .get(format!("{base}/api/v1/sessions?limit=5&token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let response = client
        .get(format!("{base}/api/v1/groups"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let response = client
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    server.shutdown().await;
}

#[tokio::test]
async fn an_admin_sets_an_agents_sip_password_which_is_stored_hashed() {
    let server = TestServer::start().await;
    let admin = server.token("admin", Role::Admin);
    let agent = server.token("li.na", Role::Agent);
    let put = |token: &str, id: &str, body: Value| {
        let token = token.to_owned();
        let path = format!("/api/v1/agents/{id}/sip-password");
        let server = &server;
        async move {
            server
                .send(
                    Method::PUT,
                    &path,
                    Some(&token),
                    Some(("application/json", body.to_string())),
                )
                .await
        }
    };
    // The demo seeds its agents with their demo phone passwords.
    let (_, before) = server.get("/api/v1/agents/li.na", &admin).await;
    assert_eq!(before["agent"]["sip_password_set"], true, "{before}");
    let stored_sip = || async {
        server
            .server
            .state
            .switchboard
            .store()
            .get_agent(&engine::ids::AgentId::new("li.na"))
            .await
            .unwrap()
            .unwrap()
            .sip
    };
    assert_eq!(
        stored_sip().await,
        Some(voice::sip::credentials(
            "li.na",
            "switchboard",
            &gateway::demo::sip_password("li.na")
        ))
    );

    let (status, body) = put(&agent, "li.na", json!({"password": "desk-phone-7"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    let (status, body) = put(&admin, "li.na", json!({"password": "short"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"]["field"], "password", "{body}");
    let (status, body) = put(&admin, "nobody", json!({"password": "desk-phone-7"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "unknown_agent"),
        "{body}"
    );
    let (status, body) = put(&admin, "li.na", json!({"password": "desk-phone-7"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (_, after) = server.get("/api/v1/agents/li.na", &admin).await;
    assert_eq!(after["agent"]["sip_password_set"], true, "{after}");
    assert!(
        !after.to_string().contains("ha1"),
        "no hash on the wire: {after}"
    );
    assert_eq!(
        stored_sip().await,
        Some(voice::sip::credentials(
            "li.na",
            "switchboard",
            "desk-phone-7"
        ))
    );
}
